//! Durations typed by people (`24h`, `90m`, `7d`), parsed with humantime
//! and bounded, so that an absurd value is a clear error instead of an
//! overflow in date arithmetic further on.

use std::time::Duration;

/// The longest TTL a block may have.
pub const MAX_TTL: Duration = Duration::from_secs(10 * 366 * 86_400);

/// The longest span a command takes (windows, intervals, ages, caches).
pub const MAX_SPAN: Duration = Duration::from_secs(10 * 366 * 86_400);
/// The longest a single wait may be (timeouts, delays, grace periods).
pub const MAX_WAIT: Duration = Duration::from_secs(3600);

/// Parses `text` as a positive duration of at most `max` (`what` names it in the error).
pub fn parse_bounded(text: &str, max: Duration, what: &str) -> Result<Duration, String> {
    let duration = parse_at_most(text, max, what)?;
    if duration.is_zero() {
        return Err(format!("{what} {text:?} is zero"));
    }
    Ok(duration)
}

fn parse_at_most(text: &str, max: Duration, what: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text.trim()).map_err(|e| format!("{what} {text:?}: {e}"))?;
    if duration > max {
        let max = match max.as_secs() {
            secs if secs >= 86_400 => format!("{} days", secs / 86_400),
            _ => humantime::format_duration(max).to_string(),
        };
        return Err(format!("{what} {text:?} is longer than {max}"));
    }
    Ok(duration)
}

/// A span (a window, an interval, an age): positive, at most ten years.
pub fn span(text: &str) -> Result<Duration, String> {
    parse_bounded(text, MAX_SPAN, "the duration")
}

/// A span that may be zero (an overlap, a prune age).
pub fn span_or_zero(text: &str) -> Result<Duration, String> {
    parse_at_most(text, MAX_SPAN, "the duration")
}

/// A wait (a timeout, a delay): positive, at most an hour.
pub fn wait(text: &str) -> Result<Duration, String> {
    parse_bounded(text, MAX_WAIT, "the duration")
}

/// A block's TTL: positive and at most [`MAX_TTL`] (ten years).
pub fn ttl(text: &str) -> Result<Duration, String> {
    parse_bounded(text, MAX_TTL, "the TTL")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_are_bounded() {
        assert_eq!(ttl("24h"), Ok(Duration::from_secs(86_400)));
        assert!(ttl("300000y").unwrap_err().contains("longer than"));
        assert!(ttl("0s").unwrap_err().contains("zero"));
        assert!(ttl("soon").unwrap_err().contains("the TTL \"soon\""));
        assert!(span("300000y").is_err() && wait("2h").is_err() && span_or_zero("0s").is_ok());
    }
}
