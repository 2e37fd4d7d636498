//! Standard Webhooks (v1.0.0) signatures, for `serve` (verifying) and
//! `send` (signing).
//!
//! The signed bytes are `{webhook-id}.{webhook-timestamp}.{body}`, the body
//! exactly as sent; the MAC is HMAC-SHA256 with the decoded bytes of a
//! `whsec_<base64>` secret, sent as `v1,<base64>` in the space-separated
//! `webhook-signature` header. A sender signs with every active secret; a
//! receiver accepts when any signature verifies against any of its secrets,
//! so secrets rotate without a gap. Every MAC is decoded and its length
//! checked before a constant-time comparison: an empty or truncated
//! signature never verifies.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The header carrying the message id.
pub const ID_HEADER: &str = "webhook-id";
/// The header carrying the Unix time of the attempt.
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// The header carrying the signatures.
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// Length of an HMAC-SHA256 tag.
const MAC_LEN: usize = 32;
/// Shortest and longest secret the specification allows, in bytes.
const SECRET_LEN: std::ops::RangeInclusive<usize> = 24..=64;
/// Longest message id we accept.
const MAX_ID_LEN: usize = 256;

/// One signing secret; its bytes never show in a `Debug` or a log line.
pub struct Secret(SecretBox<[u8]>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Why a secret is not usable. The messages never contain the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// No `whsec_` prefix.
    #[error("a webhook secret must start with whsec_ (Standard Webhooks)")]
    Prefix,
    /// Not base64.
    #[error("a webhook secret must be whsec_ followed by standard base64")]
    Base64,
    /// Too short or too long.
    #[error("a webhook secret must decode to 24 to 64 bytes, this one has {0}")]
    Length(usize),
}

impl Secret {
    /// Parses `whsec_<base64>`.
    pub fn parse(text: &str) -> Result<Secret, SecretError> {
        let encoded = text.trim().strip_prefix("whsec_").ok_or(SecretError::Prefix)?;
        let bytes = STANDARD.decode(encoded).map_err(|_| SecretError::Base64)?;
        if !SECRET_LEN.contains(&bytes.len()) {
            return Err(SecretError::Length(bytes.len()));
        }
        Ok(Secret(SecretBox::new(bytes.into_boxed_slice())))
    }

    /// Every secret of `text`: one per line or separated by spaces; blank
    /// lines and `#` comments are skipped.
    pub fn parse_all(text: &str) -> Result<Vec<Secret>, SecretError> {
        text.lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .flat_map(str::split_whitespace)
            .map(Secret::parse)
            .collect()
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
        // HMAC takes keys of any length: this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.0.expose_secret()).expect("HMAC accepts any key");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

/// The `webhook-signature` value for a message: one `v1,<base64>` per secret.
pub fn sign(secrets: &[Secret], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|secret| format!("v1,{}", STANDARD.encode(secret.mac(id, timestamp, body).finalize().into_bytes())))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why a message was refused; [`Refusal::reason`] is its metric label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A header is missing or not text.
    #[error("the {0} header is missing")]
    Missing(&'static str),
    /// The id is empty or too long.
    #[error("the webhook-id header is empty or longer than 256 characters")]
    BadId,
    /// The timestamp is not an integer.
    #[error("the webhook-timestamp header is not a Unix time in seconds")]
    BadTimestamp,
    /// Older than the tolerance.
    #[error("the webhook-timestamp is {0} s old, outside the tolerance")]
    Stale(i64),
    /// Newer than the tolerance.
    #[error("the webhook-timestamp is {0} s in the future, outside the tolerance")]
    Future(i64),
    /// No `v1,` signature that decodes to a MAC.
    #[error("the webhook-signature header holds no well-formed v1 signature")]
    Malformed,
    /// Well-formed signatures, none of which verifies.
    #[error("no signature matches a configured secret")]
    NoMatch,
}

impl Refusal {
    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Missing(_) => "missing_header",
            Refusal::BadId => "bad_id",
            Refusal::BadTimestamp => "bad_timestamp",
            Refusal::Stale(_) => "stale",
            Refusal::Future(_) => "future",
            Refusal::Malformed => "malformed",
            Refusal::NoMatch => "no_match",
        }
    }
}

/// The three headers of a message.
#[derive(Debug, Clone, Copy)]
pub struct Headers<'a> {
    /// `webhook-id`.
    pub id: Option<&'a str>,
    /// `webhook-timestamp`.
    pub timestamp: Option<&'a str>,
    /// `webhook-signature`.
    pub signature: Option<&'a str>,
}

/// A message that verified: its id and timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The message id (the idempotency key).
    pub id: String,
    /// The attempt's Unix time.
    pub timestamp: i64,
}

/// Verifies a message received at `now` (Unix seconds) against `secrets`,
/// with a timestamp tolerance of `tolerance` seconds both ways.
pub fn verify(
    secrets: &[&Secret],
    headers: Headers<'_>,
    body: &[u8],
    now: i64,
    tolerance: i64,
) -> Result<Verified, Refusal> {
    let id = headers.id.ok_or(Refusal::Missing(ID_HEADER))?;
    let timestamp = headers.timestamp.ok_or(Refusal::Missing(TIMESTAMP_HEADER))?;
    let signatures = headers.signature.ok_or(Refusal::Missing(SIGNATURE_HEADER))?;
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(Refusal::BadId);
    }
    let timestamp: i64 = timestamp.trim().parse().map_err(|_| Refusal::BadTimestamp)?;
    let age = now.saturating_sub(timestamp);
    if age > tolerance {
        return Err(Refusal::Stale(age));
    }
    if -age > tolerance {
        return Err(Refusal::Future(-age));
    }
    let macs: Vec<Vec<u8>> = signatures
        .split_whitespace()
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .filter(|mac| mac.len() == MAC_LEN)
        .collect();
    if macs.is_empty() {
        return Err(Refusal::Malformed);
    }
    let mut matched = subtle::Choice::from(0);
    for secret in secrets {
        let expected = secret.mac(id, timestamp, body).finalize().into_bytes();
        for mac in &macs {
            matched |= expected.as_slice().ct_eq(mac);
        }
    }
    if bool::from(matched) { Ok(Verified { id: id.to_string(), timestamp }) } else { Err(Refusal::NoMatch) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference libraries.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TIMESTAMP: i64 = 1614265330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn headers<'a>(id: &'a str, timestamp: &'a str, signature: &'a str) -> Headers<'a> {
        Headers { id: Some(id), timestamp: Some(timestamp), signature: Some(signature) }
    }

    #[test]
    fn signs_and_verifies_the_specification_example() {
        let secrets = vec![Secret::parse(SPEC_SECRET).unwrap()];
        assert_eq!(sign(&secrets, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY), SPEC_SIGNATURE);
        let ts = SPEC_TIMESTAMP.to_string();
        let verified = verify(&[&secrets[0]], headers(SPEC_ID, &ts, SPEC_SIGNATURE), SPEC_BODY, SPEC_TIMESTAMP, 300);
        assert_eq!(verified, Ok(Verified { id: SPEC_ID.into(), timestamp: SPEC_TIMESTAMP }));
    }

    #[test]
    fn forged_truncated_empty_and_stale_signatures_are_refused() {
        let secret = Secret::parse(SPEC_SECRET).unwrap();
        let secrets = [&secret];
        let ts = SPEC_TIMESTAMP.to_string();
        let check =
            |signature: &str, body: &[u8], now: i64| verify(&secrets, headers(SPEC_ID, &ts, signature), body, now, 300);
        assert_eq!(check(SPEC_SIGNATURE, b"{\"test\": 1}", SPEC_TIMESTAMP), Err(Refusal::NoMatch));
        assert_eq!(check("v1,", SPEC_BODY, SPEC_TIMESTAMP), Err(Refusal::Malformed));
        assert_eq!(check("v1,g0hM9SsE+OTPJTGt", SPEC_BODY, SPEC_TIMESTAMP), Err(Refusal::Malformed));
        assert_eq!(
            check("v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", SPEC_BODY, SPEC_TIMESTAMP),
            Err(Refusal::Malformed)
        );
        assert_eq!(check(SPEC_SIGNATURE, SPEC_BODY, SPEC_TIMESTAMP + 301), Err(Refusal::Stale(301)));
        assert_eq!(check(SPEC_SIGNATURE, SPEC_BODY, SPEC_TIMESTAMP - 301), Err(Refusal::Future(301)));
        let missing = Headers { signature: None, ..headers(SPEC_ID, &ts, "") };
        assert_eq!(verify(&secrets, missing, SPEC_BODY, SPEC_TIMESTAMP, 300), Err(Refusal::Missing(SIGNATURE_HEADER)));
        assert_eq!(check(SPEC_SIGNATURE, SPEC_BODY, SPEC_TIMESTAMP + 300).map(|v| v.timestamp), Ok(SPEC_TIMESTAMP));
    }

    #[test]
    fn any_signature_against_any_secret_verifies() {
        let old = Secret::parse(SPEC_SECRET).unwrap();
        let new = Secret::parse("whsec_QWxsIHRoZSB3b3JsZCdzIGEgc3RhZ2UsIGFuZCBhbGw=").unwrap();
        let both = sign(&[old, new], "m", 10, b"x");
        let receiver = Secret::parse("whsec_QWxsIHRoZSB3b3JsZCdzIGEgc3RhZ2UsIGFuZCBhbGw=").unwrap();
        assert!(verify(&[&receiver], headers("m", "10", &both), b"x", 10, 300).is_ok());
        assert_eq!(both.split(' ').count(), 2);
    }

    #[test]
    fn secrets_are_checked_and_never_shown() {
        assert_eq!(Secret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap_err(), SecretError::Prefix);
        assert_eq!(Secret::parse("whsec_***").unwrap_err(), SecretError::Base64);
        assert_eq!(Secret::parse("whsec_c2hvcnQ=").unwrap_err(), SecretError::Length(5));
        let parsed = Secret::parse_all(&format!("# current\n{SPEC_SECRET}\n\n{SPEC_SECRET} {SPEC_SECRET}\n")).unwrap();
        assert_eq!(parsed.len(), 3);
        assert_eq!(format!("{parsed:?}"), "[Secret(***), Secret(***), Secret(***)]");
    }
}
