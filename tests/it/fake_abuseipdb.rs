//! A fake AbuseIPDB API v2 on loopback, as `../shared/reference/webhook.md`
//! describes it: `GET /api/v2/check?ipAddress=…&maxAgeInDays=…` with the
//! `Key` and `Accept: application/json` headers, the answer under `data`
//! (`abuseConfidenceScore`, `isWhitelisted`, …), 401 for a wrong key, and
//! scripted trouble: a 429 with the `X-RateLimit-*` headers, `Retry-After`
//! and the documented error body, or an answer too slow to wait for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

/// How the fake answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Scores as set.
    Normal,
    /// 429, the quota resetting this many seconds from now.
    RateLimited(u64),
    /// Answers after this long.
    Slow(Duration),
}

struct Inner {
    key: String,
    scores: HashMap<String, (u8, bool)>,
    mode: Mode,
    checks: Vec<String>,
}

/// A running fake.
#[derive(Clone)]
pub struct FakeAbuseIpDb {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeAbuseIpDb {
    /// Starts a fake that accepts the API key `key`; every address scores 0 until set.
    pub fn start(key: &str) -> FakeAbuseIpDb {
        let inner = Arc::new(Mutex::new(Inner {
            key: key.into(),
            scores: HashMap::new(),
            mode: Mode::Normal,
            checks: Vec::new(),
        }));
        let app = Router::new().route("/api/v2/check", get(check)).with_state(Arc::clone(&inner));
        let addr = crate::loopback::serve(app);
        FakeAbuseIpDb { url: format!("http://{addr}"), inner }
    }

    /// Sets the confidence score (and whitelisting) of an address.
    pub fn score(&self, ip: &str, score: u8, whitelisted: bool) {
        self.inner.lock().unwrap().scores.insert(ip.into(), (score, whitelisted));
    }

    /// Changes how it answers.
    pub fn set_mode(&self, mode: Mode) {
        self.inner.lock().unwrap().mode = mode;
    }

    /// The addresses checked so far, in order.
    pub fn checks(&self) -> Vec<String> {
        self.inner.lock().unwrap().checks.clone()
    }
}

async fn check(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (mode, known, score) = {
        let mut inner = inner.lock().unwrap();
        let ip = query.get("ipAddress").cloned().unwrap_or_default();
        inner.checks.push(ip.clone());
        let key_ok = headers.get("key").and_then(|v| v.to_str().ok()) == Some(inner.key.as_str());
        let json_ok = headers.get("accept").and_then(|v| v.to_str().ok()) == Some("application/json");
        if !key_ok || !json_ok {
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"errors": [{"detail": "Authentication failed. Your API key is either missing, incorrect, or revoked.", "status": 401}]})),
            )
                .into_response();
        }
        let max_age: Option<u16> = query.get("maxAgeInDays").and_then(|d| d.parse().ok());
        if ip.parse::<std::net::IpAddr>().is_err() || !max_age.is_some_and(|d| (1..=365).contains(&d)) {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                axum::Json(json!({"errors": [{"detail": "The ip address must be a valid IPv4 or IPv6 address.", "status": 422}]})),
            )
                .into_response();
        }
        (inner.mode, ip.clone(), inner.scores.get(&ip).copied().unwrap_or((0, false)))
    };
    match mode {
        Mode::RateLimited(reset_in) => {
            let reset = chrono::Utc::now().timestamp() as u64 + reset_in;
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                axum::Json(json!({"errors": [{"detail": "Daily rate limit of 1000 requests exceeded for this endpoint. See headers for additional details.", "status": 429}]})),
            )
                .into_response();
            let headers = response.headers_mut();
            headers.insert("x-ratelimit-limit", "1000".parse().unwrap());
            headers.insert("x-ratelimit-remaining", "0".parse().unwrap());
            headers.insert("x-ratelimit-reset", reset.to_string().parse().unwrap());
            headers.insert("retry-after", reset_in.to_string().parse().unwrap());
            return response;
        }
        Mode::Slow(delay) => tokio::time::sleep(delay).await,
        Mode::Normal => {}
    }
    let (score, whitelisted) = score;
    axum::Json(json!({"data": {
        "ipAddress": known, "isPublic": true, "ipVersion": if known.contains(':') { 6 } else { 4 },
        "isWhitelisted": whitelisted, "abuseConfidenceScore": score, "countryCode": "US",
        "usageType": "Data Center/Web Hosting/Transit", "isp": "Example", "domain": "example.com",
        "hostnames": [], "isTor": false, "totalReports": u32::from(score), "numDistinctUsers": u32::from(score / 10),
        "lastReportedAt": if score > 0 { json!("2026-11-30T10:00:00+00:00") } else { json!(null) },
    }}))
    .into_response()
}
