//! The AbuseIPDB API v2 `check` call, with a verdict cache and a circuit.
//!
//! `GET {base}/api/v2/check?ipAddress=…&maxAgeInDays=…` with the `Key` and
//! `Accept: application/json` headers; the answer's
//! `data.abuseConfidenceScore` (0–100) against a threshold makes the
//! verdict, and `isWhitelisted` always means clean. Quotas are small (1,000
//! checks a day on the free plan): verdicts are cached per address, and a
//! 429 opens a circuit until `X-RateLimit-Reset` (else `Retry-After`), during
//! which every verdict is "unknown" at once. Nothing here ever sleeps on
//! the caller's path: a slow or failing AbuseIPDB only makes verdicts
//! unknown, and an unknown address is not blocked.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::verdict::{Decision, Verdict};

/// The public API.
pub const DEFAULT_URL: &str = "https://api.abuseipdb.com";
/// Addresses whose verdict is remembered, at most.
const CACHE_ENTRIES: usize = 10_000;
/// How long a failed lookup is remembered as unknown, so a broken AbuseIPDB
/// is not asked again for every finding.
const FAILURE_TTL: Duration = Duration::from_secs(60);
/// How long the circuit stays open after a 429 that names no reset time.
const DEFAULT_BACKOFF: Duration = Duration::from_secs(3600);

/// How to use AbuseIPDB.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Base URL (the public API, or a fake in tests).
    pub url: String,
    /// A score at or above this is malicious.
    pub threshold: u8,
    /// Reports older than this many days do not count (1–365).
    pub max_age_days: u16,
    /// Verdicts are reused this long.
    pub cache_ttl: Duration,
    /// Timeout of one lookup.
    pub timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            url: DEFAULT_URL.to_string(),
            threshold: 75,
            max_age_days: 30,
            cache_ttl: Duration::from_secs(6 * 3600),
            timeout: Duration::from_secs(2),
        }
    }
}

/// A client.
pub struct AbuseIpDb {
    http: reqwest::Client,
    key: Box<dyn Fn() -> SecretString + Send + Sync>,
    settings: Settings,
    cache: Mutex<HashMap<IpAddr, (Decision, Instant)>>,
    open_until: Mutex<Option<(Instant, SystemTime)>>,
}

const SOURCE: &str = "abuseipdb";

fn unknown(note: impl Into<String>) -> Decision {
    Decision { verdict: Verdict::Unknown, source: SOURCE.into(), score: None, note: Some(note.into()) }
}

impl AbuseIpDb {
    /// A client that reads its API key through `key` (so a rotated key file
    /// is used at once).
    pub fn new(settings: Settings, key: Box<dyn Fn() -> SecretString + Send + Sync>) -> Result<AbuseIpDb, String> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .user_agent(concat!("kubectl-qualys-respond/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot set up the AbuseIPDB client: {e}"))?;
        Ok(AbuseIpDb { http, key, settings, cache: Mutex::new(HashMap::new()), open_until: Mutex::new(None) })
    }

    /// The verdict on `ip`.
    pub async fn check(&self, ip: IpAddr) -> Decision {
        if let Some((decision, at)) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(&ip) {
            let ttl = if decision.verdict == Verdict::Unknown { FAILURE_TTL } else { self.settings.cache_ttl };
            if at.elapsed() < ttl {
                return decision.clone();
            }
        }
        if let Some((until, wall)) = *self.open_until.lock().unwrap_or_else(|e| e.into_inner())
            && Instant::now() < until
        {
            return unknown(format!("rate limited until {}", humantime::format_rfc3339_seconds(wall)));
        }
        let decision = self.lookup(ip).await;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_ENTRIES {
            cache.retain(|_, (_, at)| at.elapsed() < self.settings.cache_ttl);
            if cache.len() >= CACHE_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(ip, (decision.clone(), Instant::now()));
        decision
    }

    async fn lookup(&self, ip: IpAddr) -> Decision {
        let url = format!("{}/api/v2/check", self.settings.url.trim_end_matches('/'));
        let max_age = self.settings.max_age_days.to_string();
        let sent = self
            .http
            .get(&url)
            .query(&[("ipAddress", ip.to_string().as_str()), ("maxAgeInDays", max_age.as_str())])
            .header("Key", (self.key)().expose_secret())
            .header("Accept", "application/json")
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(error) if error.is_timeout() => {
                tracing::warn!(%ip, "AbuseIPDB did not answer in time; reputation unknown");
                return unknown("timeout");
            }
            Err(error) => {
                tracing::warn!(%ip, error = %error.without_url(), "AbuseIPDB unreachable; reputation unknown");
                return unknown("unreachable");
            }
        };
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            let (until, wall) = reset_time(response.headers());
            tracing::warn!(reset = %humantime::format_rfc3339_seconds(wall), "AbuseIPDB quota exhausted; reputation unknown until the reset");
            *self.open_until.lock().unwrap_or_else(|e| e.into_inner()) = Some((until, wall));
            return unknown(format!("rate limited until {}", humantime::format_rfc3339_seconds(wall)));
        }
        if !status.is_success() {
            tracing::warn!(%ip, %status, "AbuseIPDB refused the lookup; reputation unknown");
            return unknown(format!("answered {}", status.as_u16()));
        }
        let body: Value = match response.json().await {
            Ok(body) => body,
            Err(_) => return unknown("unreadable answer"),
        };
        let data = &body["data"];
        let Some(score) = data["abuseConfidenceScore"].as_u64().map(|s| s.min(100) as u8) else {
            return unknown("answer without abuseConfidenceScore");
        };
        let verdict = if data["isWhitelisted"].as_bool() == Some(true) {
            Verdict::Clean
        } else if score >= self.settings.threshold {
            Verdict::Malicious
        } else {
            Verdict::Clean
        };
        let note = (data["isWhitelisted"].as_bool() == Some(true)).then(|| "whitelisted by AbuseIPDB".to_string());
        Decision { verdict, source: SOURCE.into(), score: Some(score), note }
    }
}

/// When a 429's quota resets: `X-RateLimit-Reset` (epoch seconds), else
/// `Retry-After` (seconds), else an hour from now.
fn reset_time(headers: &reqwest::header::HeaderMap) -> (Instant, SystemTime) {
    let number =
        |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    let now = SystemTime::now();
    let wait = number("x-ratelimit-reset")
        .map(|epoch| (UNIX_EPOCH + Duration::from_secs(epoch)).duration_since(now).unwrap_or_default())
        .or_else(|| number("retry-after").map(Duration::from_secs))
        .unwrap_or(DEFAULT_BACKOFF)
        .min(Duration::from_secs(48 * 3600));
    (Instant::now() + wait, now + wait)
}
