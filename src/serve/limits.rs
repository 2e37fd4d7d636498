//! A per-client rate limit: one token bucket per client address, refilled
//! at `rate` tokens a second up to `burst`. Buckets of clients that went
//! quiet are dropped, so a scan from many addresses cannot grow the table
//! without bound.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Buckets kept before idle ones are swept.
const SWEEP_AT: usize = 10_000;

/// The limiter; a `rate` of 0 turns it off.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl RateLimiter {
    /// `rate` requests a second per client, bursts of `burst`.
    pub fn new(rate: u32, burst: u32) -> RateLimiter {
        RateLimiter { rate: f64::from(rate), burst: f64::from(burst.max(1)), buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes a token for `client`; `Err(seconds)` says when to try again.
    pub fn take(&self, client: IpAddr) -> Result<(), u64> {
        if self.rate == 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= SWEEP_AT {
            let full_after = self.burst / self.rate;
            buckets.retain(|_, (_, at)| now.duration_since(*at).as_secs_f64() < full_after);
        }
        let (tokens, at) = buckets.entry(client).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_burst_then_waits_and_others_are_not_affected() {
        let limiter = RateLimiter::new(1, 3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert!((0..3).all(|_| limiter.take(a).is_ok()));
        assert_eq!(limiter.take(a), Err(1));
        assert!(limiter.take("192.0.2.2".parse().unwrap()).is_ok());
        assert!(RateLimiter::new(0, 0).take(a).is_ok());
    }
}
