//! When and how long to wait before trying a gateway call again: exponential
//! backoff with jitter, bounded in attempts and in total time, and the
//! server's own hint (`Retry-After`, else `X-RateLimit-ToWait-Sec`) first.

use std::time::Duration;

/// The retry budget of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts after the first one.
    pub retries: u32,
    /// The first backoff; each next one doubles.
    pub initial_delay: Duration,
    /// No single wait is longer.
    pub max_delay: Duration,
    /// Waiting stops once this much time has been spent on one call.
    pub max_total: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 5,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
            max_total: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0-based): the server's hint when
    /// it gave one, else `initial_delay · 2^retry`, capped, with "equal
    /// jitter" (between half and all of it, `jitter` in `[0, 1)`).
    pub fn delay(&self, retry: u32, hint: Option<Duration>, jitter: f64) -> Duration {
        if let Some(hint) = hint {
            return hint.min(self.max_delay);
        }
        let exponential = self.initial_delay.saturating_mul(1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX));
        let capped = exponential.min(self.max_delay);
        capped.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0)
    }
}

/// The server's hint: `Retry-After` (seconds), else `X-RateLimit-ToWait-Sec`.
pub fn server_hint(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    ["retry-after", "x-ratelimit-towait-sec"].iter().find_map(|name| {
        let value = headers.get(*name)?.to_str().ok()?.trim();
        value.parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0).map(Duration::from_secs_f64)
    })
}

/// A jitter source that needs no RNG crate: the low bits of the clock,
/// mixed. Good enough to keep replicas from retrying in lockstep.
pub fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let mut x = u64::from(nanos) ^ 0x9E37_79B9_7F4A_7C15;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let policy = RetryPolicy {
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(10),
            ..RetryPolicy::default()
        };
        assert_eq!(policy.delay(0, None, 0.0), Duration::from_millis(500));
        assert!(
            policy.delay(0, None, 0.75) > Duration::from_millis(870)
                && policy.delay(0, None, 0.75) < Duration::from_millis(880)
        );
        assert_eq!(policy.delay(2, None, 1.0), Duration::from_secs(4));
        assert_eq!(policy.delay(40, None, 1.0), Duration::from_secs(10));
        assert_eq!(policy.delay(3, Some(Duration::from_secs(2)), 0.5), Duration::from_secs(2));
        assert_eq!(policy.delay(3, Some(Duration::from_secs(99)), 0.5), Duration::from_secs(10));
    }

    #[test]
    fn hints_prefer_retry_after() {
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-towait-sec", HeaderValue::from_static("7"));
        assert_eq!(server_hint(&headers), Some(Duration::from_secs(7)));
        headers.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(server_hint(&headers), Some(Duration::from_secs(2)));
        headers.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(server_hint(&headers), Some(Duration::from_secs(7)));
    }

    #[test]
    fn jitter_is_a_fraction() {
        let j = jitter();
        assert!((0.0..1.0).contains(&j), "{j}");
    }
}
