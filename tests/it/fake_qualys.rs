//! A fake Qualys gateway on loopback, faithful to
//! `../shared/reference/qualys-cdr-api.md`: form login at `/auth` answering
//! 201 with a plain-text JWT, 401 for wrong credentials and expired tokens,
//! the findings envelope with `offSet`/`limit` paging, 400 without
//! `startAt`/`endAt`, and scripted trouble (429 with rate-limit headers, 500,
//! slow answers, truncated bodies). A real HTTP server the binary talks to.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// Trouble the next findings call meets.
#[derive(Debug, Clone)]
pub enum Trouble {
    /// 429 with `Retry-After` and the rate-limit headers.
    RateLimited,
    /// 500, as when CDR is unavailable.
    ServerError,
    /// An answer after this long.
    Slow(Duration),
    /// A 200 whose JSON stops half-way.
    Truncated,
}

#[derive(Default)]
struct Inner {
    username: String,
    password: String,
    /// Findings with their parsed detection times.
    findings: Vec<(Option<DateTime<Utc>>, Value)>,
    /// Authorised calls a token serves before it expires.
    token_uses: Option<usize>,
    tokens: HashMap<String, usize>,
    logins: usize,
    trouble: VecDeque<Trouble>,
    /// Offsets of the findings pages served.
    pages: Vec<u64>,
}

/// A running fake gateway.
#[derive(Clone)]
pub struct FakeQualys {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeQualys {
    /// Starts a gateway that accepts `username`/`password`.
    pub fn start(username: &str, password: &str) -> FakeQualys {
        let inner =
            Arc::new(Mutex::new(Inner { username: username.into(), password: password.into(), ..Inner::default() }));
        let app = Router::new()
            .route("/auth", post(auth))
            .route("/cdr-api/rest/v1/findings", get(findings))
            .route("/cdr-api/rest/v1/findings/", get(findings))
            .with_state(Arc::clone(&inner));
        let addr = crate::loopback::serve(app);
        FakeQualys { url: format!("http://{addr}"), inner }
    }

    /// Puts a TLS front on the gateway with a fresh self-signed certificate
    /// for 127.0.0.1; returns its `https://` URL and the certificate (PEM).
    pub fn start_tls(&self) -> (String, String) {
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let acceptor = super::tls::tls_acceptor(&certified);
        let backend = self.url.trim_start_matches("http://").to_string();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                sender.send(listener.local_addr().unwrap()).unwrap();
                while let Ok((stream, _)) = listener.accept().await {
                    let (acceptor, backend) = (acceptor.clone(), backend.clone());
                    tokio::spawn(async move {
                        // A failed handshake (an untrusting client) just ends the connection.
                        let Ok(mut tls) = acceptor.accept(stream).await else { return };
                        let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await else { return };
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                    });
                }
            });
        });
        let addr: SocketAddr = receiver.recv().unwrap();
        (format!("https://{addr}"), certified.cert.pem())
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.inner.lock().unwrap())
    }

    /// Sets the findings it serves.
    pub fn set_findings(&self, findings: Vec<Value>) {
        let timed = findings
            .into_iter()
            .map(|f| (f["timestamp"].as_str().and_then(|t| t.parse::<DateTime<Utc>>().ok()), f))
            .collect();
        self.with(|inner| inner.findings = timed);
    }

    /// Tokens expire after this many authorised calls.
    pub fn expire_tokens_after(&self, uses: usize) {
        self.with(|inner| inner.token_uses = Some(uses));
    }

    /// Queues trouble for the next findings calls.
    pub fn trouble(&self, trouble: impl IntoIterator<Item = Trouble>) {
        self.with(|inner| inner.trouble.extend(trouble));
    }

    /// Successful logins so far.
    pub fn logins(&self) -> usize {
        self.with(|inner| inner.logins)
    }

    /// Offsets of the pages served so far.
    pub fn pages(&self) -> Vec<u64> {
        self.with(|inner| inner.pages.clone())
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    let code = format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or_default().to_uppercase());
    (status, axum::Json(json!({"errorCode": code, "message": message, "timestamp": 1_654_169_949_515_u64})))
        .into_response()
}

async fn auth(State(inner): State<Arc<Mutex<Inner>>>, Form(form): Form<HashMap<String, String>>) -> Response {
    let mut inner = inner.lock().unwrap();
    let ok = form.get("username") == Some(&inner.username)
        && form.get("password") == Some(&inner.password)
        && form.get("token").map(String::as_str) == Some("true");
    if !ok {
        return error(StatusCode::UNAUTHORIZED, "Invalid credentials");
    }
    inner.logins += 1;
    let token = format!("jwt-{}", inner.logins);
    let uses = inner.token_uses.unwrap_or(usize::MAX);
    inner.tokens.insert(token.clone(), uses);
    (StatusCode::CREATED, [("content-type", "text/plain")], token).into_response()
}

async fn findings(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let token = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let trouble = {
        let mut inner = inner.lock().unwrap();
        let Some(remaining) = token.and_then(|t| inner.tokens.get_mut(t)) else {
            return error(StatusCode::UNAUTHORIZED, "Invalid or missing token");
        };
        if *remaining == 0 {
            return error(StatusCode::UNAUTHORIZED, "Token expired");
        }
        *remaining -= 1;
        inner.trouble.pop_front()
    };
    match trouble {
        Some(Trouble::RateLimited) => {
            let headers = [
                ("retry-after", "0"),
                ("x-ratelimit-limit", "300"),
                ("x-ratelimit-window-sec", "3600"),
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-towait-sec", "1"),
            ];
            return (headers, error(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded")).into_response();
        }
        Some(Trouble::ServerError) => return error(StatusCode::INTERNAL_SERVER_ERROR, "CDR is unavailable"),
        Some(Trouble::Slow(delay)) => tokio::time::sleep(delay).await,
        Some(Trouble::Truncated) => {
            return (StatusCode::OK, [("content-type", "application/json")], "{\"content\":[{\"uuid\":\"x\",")
                .into_response();
        }
        None => {}
    }
    let window = |name: &str| query.get(name).and_then(|v| v.parse::<DateTime<Utc>>().ok());
    let (Some(start), Some(end)) = (window("startAt"), window("endAt")) else {
        return error(StatusCode::BAD_REQUEST, "startAt and endAt are mandatory");
    };
    let number = |name: &str, default: u64| query.get(name).and_then(|v| v.parse().ok()).unwrap_or(default);
    let (offset, limit) = (number("offSet", 0), number("limit", 100).min(100));
    let mut inner = inner.lock().unwrap();
    inner.pages.push(offset);
    let matching = || inner.findings.iter().filter(|(t, _)| t.is_some_and(|t| t >= start && t <= end));
    let page: Vec<Value> = matching().skip(offset as usize).take(limit as usize).map(|(_, f)| f.clone()).collect();
    let total = matching().count();
    axum::Json(json!({"content": page, "totalElements": total})).into_response()
}
