//! The CDR API client: JWT login, findings pages, retries.
//!
//! Login follows the documented flow (form POST to `/auth`, 200 or 201, the
//! token as plain text). The token is refreshed before its four hours run out
//! and once more when a call answers 401; a second 401 means the credentials
//! are rejected. 429, 5xx, timeouts and broken connections are retried with
//! backoff ([`RetryPolicy`]); when the budget is spent the call fails with
//! what the gateway last said, so an outage is never mistaken for a quiet day.
//! Passwords and tokens are [`SecretString`]s and never reach a message.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::credentials::Credentials;
use super::records::Record;
use super::retry::{RetryPolicy, jitter, server_hint};

/// Refresh the JWT this long after login (it lives four hours).
const TOKEN_REFRESH_AFTER: Duration = Duration::from_secs(3 * 3600 + 30 * 60);
/// An error body is quoted up to this many characters.
const MAX_QUOTED_BODY: usize = 300;

/// Why a gateway call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The gateway refused the credentials (a 401 at login, or twice in a row).
    #[error("Qualys rejected the credentials ({0}); check QUALYS_USERNAME/QUALYS_PASSWORD or the token")]
    CredentialsRejected(String),
    /// A pre-issued token expired or was refused; it cannot be renewed here.
    #[error(
        "the Qualys access token was refused ({0}); it cannot be refreshed: supply a new one or a username and password"
    )]
    TokenRefused(String),
    /// An answer that retrying will not change (400, 403, 404, …).
    #[error("{what}: the gateway answered {status}: {message}")]
    Refused {
        /// The call.
        what: String,
        /// HTTP status.
        status: StatusCode,
        /// The gateway's message.
        message: String,
    },
    /// Retries ran out.
    #[error("{what}: gave up after {attempts} attempts over {elapsed:?}; last: {last}")]
    Exhausted {
        /// The call.
        what: String,
        /// How many attempts were made.
        attempts: u32,
        /// Time spent.
        elapsed: Duration,
        /// The last failure.
        last: String,
    },
    /// The gateway answered something that is not a findings page.
    #[error("{what}: the answer is not a findings page: {reason}")]
    Protocol {
        /// The call.
        what: String,
        /// Why.
        reason: String,
    },
    /// The client could not be built (bad CA file, bad URL).
    #[error("cannot set up the Qualys client: {0}")]
    Setup(String),
}

/// Where and how to reach the gateway.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Gateway base URL, e.g. `https://gateway.qg1.apps.qualys.com`.
    pub gateway: String,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Retry budget per call.
    pub retry: RetryPolicy,
}

/// The findings query (`/cdr-api/rest/v1/findings`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingsQuery {
    /// `startAt`.
    pub start: DateTime<Utc>,
    /// `endAt`.
    pub end: DateTime<Utc>,
    /// `severity`, e.g. `HIGH`.
    pub severity: Option<String>,
    /// `category`.
    pub category: Option<String>,
    /// `query` (QQL).
    pub query: Option<String>,
}

/// One page of findings.
#[derive(Debug)]
pub struct Page {
    /// The records, numbered across pages (`record 101` is the first of page 2 at limit 100).
    pub records: Vec<Record>,
    /// `totalElements`, when the envelope gives it.
    pub total: Option<u64>,
}

/// A logged-in (or logging-in) client.
pub struct Client {
    http: reqwest::Client,
    config: ClientConfig,
    credentials: Credentials,
    token: Option<(SecretString, Instant)>,
}

impl Client {
    /// A client; `ca_file` adds a PEM CA for private gateways. Proxies come
    /// from `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY`.
    pub fn new(config: ClientConfig, credentials: Credentials, ca_file: Option<&Path>) -> Result<Client, ClientError> {
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("kubectl-qualys-respond/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = ca_file {
            let pem =
                std::fs::read(path).map_err(|e| ClientError::Setup(format!("cannot read {}: {e}", path.display())))?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| ClientError::Setup(format!("{} is not a PEM certificate bundle: {e}", path.display())))?;
            if certificates.is_empty() {
                return Err(ClientError::Setup(format!(
                    "{} is not a PEM certificate bundle: no certificate in it",
                    path.display()
                )));
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder.build().map_err(|e| ClientError::Setup(e.to_string()))?;
        let config = ClientConfig { gateway: config.gateway.trim_end_matches('/').to_string(), ..config };
        reqwest::Url::parse(&config.gateway)
            .map_err(|e| ClientError::Setup(format!("gateway {:?}: {e}", config.gateway)))?;
        let token = match &credentials {
            Credentials::Token(token) => Some((token.clone(), Instant::now())),
            Credentials::Password { .. } => None,
        };
        Ok(Client { http, config, credentials, token })
    }

    /// A valid token: the current one, or a fresh login when it is missing or old.
    async fn token(&mut self) -> Result<SecretString, ClientError> {
        match (&self.token, &self.credentials) {
            (Some((token, _)), Credentials::Token(_)) => return Ok(token.clone()),
            (Some((token, at)), _) if at.elapsed() < TOKEN_REFRESH_AFTER => return Ok(token.clone()),
            _ => {}
        }
        let Credentials::Password { username, password } = &self.credentials else {
            return Err(ClientError::TokenRefused("expired".into()));
        };
        let form = [("username", username.as_str()), ("password", password.expose_secret()), ("token", "true")];
        let url = format!("{}/auth", self.config.gateway);
        let http = self.http.clone();
        let response = with_retries("login", &self.config.retry, || http.post(&url).form(&form).send()).await?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        match status {
            StatusCode::OK | StatusCode::CREATED if !body.trim().is_empty() => {
                tracing::debug!("logged in to the Qualys gateway");
                let token = SecretString::from(body.trim());
                self.token = Some((token.clone(), Instant::now()));
                Ok(token)
            }
            StatusCode::OK | StatusCode::CREATED => {
                Err(ClientError::Protocol { what: "login".into(), reason: "empty token".into() })
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Err(ClientError::CredentialsRejected(status.to_string()))
            }
            status => Err(ClientError::Refused { what: "login".into(), status, message: quote(&body) }),
        }
    }

    /// Fetches one page at `offset`.
    pub async fn page(&mut self, query: &FindingsQuery, offset: u64, limit: u64) -> Result<Page, ClientError> {
        let url = format!("{}/cdr-api/rest/v1/findings", self.config.gateway);
        let what = format!("findings page at offset {offset}");
        let mut parameters: Vec<(&str, String)> = vec![
            ("startAt", query.start.to_rfc3339_opts(SecondsFormat::Millis, true)),
            ("endAt", query.end.to_rfc3339_opts(SecondsFormat::Millis, true)),
            ("offSet", offset.to_string()),
            ("limit", limit.to_string()),
        ];
        for (name, value) in [("severity", &query.severity), ("category", &query.category), ("query", &query.query)] {
            if let Some(value) = value {
                parameters.push((name, value.clone()));
            }
        }
        let mut refreshed = false;
        loop {
            let token = self.token().await?;
            let http = self.http.clone();
            let response = with_retries(&what, &self.config.retry, || {
                http.get(&url).query(&parameters).bearer_auth(token.expose_secret()).send()
            })
            .await?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED {
                if refreshed || matches!(self.credentials, Credentials::Token(_)) {
                    return Err(match self.credentials {
                        Credentials::Token(_) => ClientError::TokenRefused(status.to_string()),
                        Credentials::Password { .. } => ClientError::CredentialsRejected(status.to_string()),
                    });
                }
                tracing::info!("the gateway refused the token; logging in again");
                self.token = None;
                refreshed = true;
                continue;
            }
            let body = response
                .text()
                .await
                .map_err(|e| ClientError::Protocol { what: what.clone(), reason: e.to_string() })?;
            if !status.is_success() {
                return Err(ClientError::Refused { what, status, message: quote(&body) });
            }
            return parse_page(&body, offset).map_err(|reason| ClientError::Protocol { what, reason });
        }
    }
}

/// Sends with retries on 429, 5xx, timeouts and connection failures.
async fn with_retries<F, Fut>(what: &str, policy: &RetryPolicy, mut send: F) -> Result<reqwest::Response, ClientError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = reqwest::Result<reqwest::Response>>,
{
    let started = Instant::now();
    let mut retry = 0;
    loop {
        let (last, hint) = match send().await {
            Ok(response) if retryable(response.status()) => {
                let hint = server_hint(response.headers());
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                (format!("{status}: {}", quote(&body)), hint)
            }
            Ok(response) => return Ok(response),
            Err(error) if error.is_timeout() || error.is_connect() || error.is_request() || error.is_body() => {
                (describe(&error), None)
            }
            Err(error) => {
                return Err(ClientError::Exhausted {
                    what: what.into(),
                    attempts: retry + 1,
                    elapsed: started.elapsed(),
                    last: describe(&error),
                });
            }
        };
        let delay = policy.delay(retry, hint, jitter());
        if retry >= policy.retries || started.elapsed() + delay > policy.max_total {
            return Err(ClientError::Exhausted {
                what: what.into(),
                attempts: retry + 1,
                elapsed: started.elapsed(),
                last,
            });
        }
        tracing::warn!(call = what, attempt = retry + 1, wait = ?delay, reason = %last, "retrying");
        tokio::time::sleep(delay).await;
        retry += 1;
    }
}

fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::CONFLICT || status.is_server_error()
}

/// A reqwest error with its causes, without the URL's query (it names no
/// secret, but it is long).
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.without_url_ref().to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let kind = if self.is_timeout() {
            "timed out"
        } else if self.is_connect() {
            "cannot connect"
        } else if self.is_body() || self.is_decode() {
            "broken response body"
        } else {
            "request failed"
        };
        kind.to_string()
    }
}

/// The gateway's error message (`{"message": …}`) or the start of the body.
fn quote(body: &str) -> String {
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| body.trim().to_string());
    let clipped: String = message.chars().filter(|c| !c.is_control()).take(MAX_QUOTED_BODY).collect();
    if clipped.is_empty() { "(no message)".into() } else { clipped }
}

/// Splits a findings envelope into numbered records.
fn parse_page(body: &str, offset: u64) -> Result<Page, String> {
    let mut envelope: Value = serde_json::from_str(body).map_err(|e| format!("not valid JSON: {e}"))?;
    let total = envelope.get("totalElements").and_then(Value::as_u64);
    let items = match envelope.get_mut("content").map(Value::take) {
        Some(Value::Array(items)) => items,
        Some(Value::Null) | None if total == Some(0) => Vec::new(),
        Some(_) => return Err("`content` is not an array".into()),
        None => return Err("no `content`".into()),
    };
    let records = items
        .into_iter()
        .enumerate()
        .map(|(i, value)| Record::from_value(format!("record {}", offset + i as u64 + 1), value))
        .collect();
    Ok(Page { records, total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_numbered_across_offsets() {
        let page = parse_page(r#"{"content":[{"uuid":"a"},{"uuid":"b"}],"totalElements":250}"#, 100).unwrap();
        assert_eq!(page.total, Some(250));
        assert_eq!(page.records.iter().map(|r| r.position.as_str()).collect::<Vec<_>>(), ["record 101", "record 102"]);
        assert!(parse_page(r#"{"content":[{"uuid":"a"}"#, 0).unwrap_err().contains("not valid JSON"));
        assert!(parse_page(r#"{"totalElements":3}"#, 0).unwrap_err().contains("no `content`"));
        assert!(parse_page(r#"{"totalElements":0}"#, 0).unwrap().records.is_empty());
    }

    #[test]
    fn error_bodies_are_quoted_briefly() {
        assert_eq!(quote(r#"{"errorCode":"403 FORBIDDEN","message":"no access","timestamp":1}"#), "no access");
        assert_eq!(quote(""), "(no message)");
        assert_eq!(quote(&"x".repeat(1000)).len(), MAX_QUOTED_BODY);
    }
}
