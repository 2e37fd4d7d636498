//! Durations typed by people (`24h`, `90m`, `7d`), parsed with humantime
//! and bounded, so that an absurd value is a clear error instead of an
//! overflow in date arithmetic further on.

use std::time::Duration;

/// The longest TTL a block may have.
pub const MAX_TTL: Duration = Duration::from_secs(10 * 366 * 86_400);

/// Parses `text` as a duration of at most `max` (`what` names it in the error).
pub fn parse_bounded(text: &str, max: Duration, what: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text.trim()).map_err(|e| format!("{what} {text:?}: {e}"))?;
    if duration > max {
        return Err(format!("{what} {text:?} is longer than {}", humantime::format_duration(max)));
    }
    if duration.is_zero() {
        return Err(format!("{what} {text:?} is zero"));
    }
    Ok(duration)
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
    }
}
