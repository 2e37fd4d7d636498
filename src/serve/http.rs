//! The server's routes and what guards them.
//!
//! | route | auth | does |
//! |---|---|---|
//! | `POST /webhook/cdr` | Standard Webhooks signature | findings → intake (202) |
//! | `POST /api/block`, `/api/unblock` | bearer token | the CLI's `block`/`unblock` |
//! | `GET /status` | bearer token | blocks and managed policies, from the cluster |
//! | `GET /health`, `/readyz`, `/metrics` | none | liveness, readiness, Prometheus |
//!
//! Every request passes the frame first: a per-client rate limit (429),
//! the concurrency limit and a request timeout (408), then metrics and a log
//! line. Errors are JSON `{"error": "…"}` with their code. A request refused
//! for any reason never reaches the intake and never changes the cluster.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{Mutex, Semaphore, mpsc};

use super::auth::{Material, ReplayCache, Seen, SeenFindings, TokenDigest};
use super::intake::Item;
use super::limits::RateLimiter;
use super::metrics::{Metrics, ReasonLabels, ReputationLabels, RequestLabels};
use crate::block::{self, BlockError, BlockRequest, UnblockRequest, parse_values};
use crate::cluster::Cluster;
use crate::cluster::apply::{DryRun, Report, execute};
use crate::output;
use crate::pipeline;
use crate::policy::Inventory;
use crate::policy::Mode;
use crate::policy::validate::TetragonVersion;
use crate::qualys::records;
use crate::reconcile::Context;
use crate::reputation::Judge;
use crate::signature::{self, Headers, Secret};
use crate::status;

/// Findings one webhook request may carry.
pub const MAX_FINDINGS: usize = 1_000;
/// Planning rounds of one block or unblock (conflicts with another writer).
const BLOCK_ROUNDS: usize = 3;

/// The peer address of a connection, put on each of its requests.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// Request limits.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Largest body.
    pub max_body: usize,
    /// Whole request, body included.
    pub timeout: Duration,
    /// Signature timestamp tolerance, in seconds, both ways.
    pub tolerance: i64,
}

/// What `/api/block` may do.
#[derive(Debug, Clone)]
pub struct BlockSettings {
    /// Most entries one block policy may hold.
    pub max_entries: usize,
    /// Ranges that must never be blocked, with how they were named.
    pub protect: Vec<(ipnet::IpNet, String)>,
    /// CRD versions to validate against.
    pub versions: Vec<TetragonVersion>,
    /// Where blocks stay in audit mode (the command line's guardrails).
    pub guardrails: crate::guardrails::Guardrails,
}

/// Readiness, checked against the cluster at most once per interval.
pub struct Readiness {
    /// Set when shutting down.
    pub stopping: AtomicBool,
    last: Mutex<Option<(Instant, Result<(), String>)>>,
}

impl Default for Readiness {
    fn default() -> Self {
        Readiness { stopping: AtomicBool::new(false), last: Mutex::new(None) }
    }
}

/// Everything the handlers share.
pub struct AppState {
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Webhook secrets; `None` with `--insecure-skip-signature`.
    pub secrets: Option<Material<Secret>>,
    /// API tokens.
    pub tokens: Material<TokenDigest>,
    /// Message ids seen.
    pub replay: ReplayCache,
    /// Finding ids handled.
    pub seen: Arc<SeenFindings>,
    /// Per-client rate limit.
    pub limiter: RateLimiter,
    /// Requests served at once.
    pub concurrency: Arc<Semaphore>,
    /// Reputation.
    pub judge: Arc<Judge>,
    /// The intake's queue.
    pub queue: mpsc::Sender<Item>,
    /// The cluster (with `--apply`), and who we are in it.
    pub cluster: Option<(Cluster, String)>,
    /// `--output-dir`.
    pub dir: Option<std::path::PathBuf>,
    /// Limits.
    pub limits: HttpLimits,
    /// Manual blocks.
    pub blocks: BlockSettings,
    /// Readiness.
    pub readiness: Readiness,
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    extra: Option<Value>,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), extra: None, retry_after: None }
    }

    fn with(mut self, extra: Value) -> ApiError {
        self.extra = Some(extra);
        self
    }

    fn retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after = Some(seconds);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if let (Some(Value::Object(extra)), Some(map)) = (self.extra, body.as_object_mut()) {
            map.extend(extra);
        }
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

type Answer = Result<Response, ApiError>;

/// The router.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/webhook/cdr", post(webhook))
        .route("/api/block", post(block))
        .route("/api/unblock", post(unblock))
        .route("/status", get(status_report))
        .route("/health", get(health))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint") })
        .method_not_allowed_fallback(|| async { ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed") })
        .layer(middleware::from_fn_with_state(Arc::clone(&state), frame))
        .with_state(state)
}

/// The label of a path: a route, or `other`.
fn endpoint(path: &str) -> &'static str {
    match path {
        "/webhook/cdr" => "/webhook/cdr",
        "/api/block" => "/api/block",
        "/api/unblock" => "/api/unblock",
        "/status" => "/status",
        "/health" => "/health",
        "/readyz" => "/readyz",
        "/metrics" => "/metrics",
        _ => "other",
    }
}

async fn frame(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let endpoint = endpoint(request.uri().path());
    let client = request.extensions().get::<ClientAddr>().map(|c| c.0);
    let probe = matches!(endpoint, "/health" | "/readyz" | "/metrics");
    let response = match client.filter(|_| !probe).map(|c| state.limiter.take(c.ip())) {
        Some(Err(wait)) => ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too many requests from this client")
            .retry_after(wait)
            .into_response(),
        _ => {
            let timeout = state.limits.timeout;
            let run = async {
                let _permit = Arc::clone(&state.concurrency).acquire_owned().await;
                next.run(request).await
            };
            match tokio::time::timeout(timeout, run).await {
                Ok(response) => response,
                Err(_) => {
                    ApiError::new(StatusCode::REQUEST_TIMEOUT, format!("the request took longer than {timeout:?}"))
                        .into_response()
                }
            }
        }
    };
    let code = response.status().as_u16();
    state.metrics.requests.get_or_create(&RequestLabels { endpoint: endpoint.to_string(), code }).inc();
    let client = client.map(|c| c.to_string()).unwrap_or_default();
    if state.secrets.is_none() {
        tracing::info!(endpoint, code, %client, took = ?started.elapsed(), insecure = "webhook signatures are NOT verified (--insecure-skip-signature)", "request");
    } else {
        tracing::info!(endpoint, code, %client, took = ?started.elapsed(), "request");
    }
    response
}

fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "the body must be application/json"))
    }
}

async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("the body is larger than {limit} bytes"));
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|error| {
        let over =
            std::error::Error::source(&error).is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
        if over { too_large() } else { ApiError::new(StatusCode::BAD_REQUEST, "the body could not be read") }
    })
}

fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if state.tokens.is_empty() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "the manual API is disabled: start the server with --api-token-file or QUALYS_RESPOND_API_TOKEN",
        ));
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|token| TokenDigest::of(&secrecy::SecretString::from(token.trim())));
    let Some(presented) = presented else {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "a bearer token is required"));
    };
    if state.tokens.any(|known| known.matches(&presented)) {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::UNAUTHORIZED, "the bearer token is not valid"))
    }
}

/// Forgets a message id unless the request ends accepted.
struct Acceptance<'a> {
    replay: &'a ReplayCache,
    id: Option<String>,
}

impl Acceptance<'_> {
    fn accepted(mut self) {
        self.id = None;
    }
}

impl Drop for Acceptance<'_> {
    fn drop(&mut self) {
        if let Some(id) = &self.id {
            self.replay.forget(id);
        }
    }
}

async fn webhook(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Answer {
    require_json(&headers)?;
    let bytes = read_body(&headers, body, state.limits.max_body).await?;
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let message_id = match &state.secrets {
        Some(secrets) => {
            let signed = Headers {
                id: text(signature::ID_HEADER),
                timestamp: text(signature::TIMESTAMP_HEADER),
                signature: text(signature::SIGNATURE_HEADER),
            };
            let now = Utc::now().timestamp();
            let verified = secrets.with_all(|all| signature::verify(all, signed, &bytes, now, state.limits.tolerance));
            let verified = verified.map_err(|refusal| {
                let reason = refusal.reason().to_string();
                state.metrics.signature_failures.get_or_create(&ReasonLabels { reason }).inc();
                tracing::warn!(%refusal, "webhook refused");
                ApiError::new(StatusCode::UNAUTHORIZED, format!("signature refused: {refusal}"))
            })?;
            match state.replay.check(&verified.id, verified.timestamp, &bytes) {
                Seen::New => Some(verified.id),
                Seen::Replay => {
                    state.metrics.signature_failures.get_or_create(&ReasonLabels { reason: "replay".into() }).inc();
                    tracing::warn!(id = %verified.id, "webhook refused: a replay of a message already received");
                    return Err(ApiError::new(StatusCode::CONFLICT, "this message was received before (replay)"));
                }
                Seen::Retry => {
                    return Ok((StatusCode::OK, axum::Json(json!({"status": "duplicate", "webhookId": verified.id})))
                        .into_response());
                }
            }
        }
        None => {
            tracing::warn!("webhook accepted WITHOUT signature verification (--insecure-skip-signature)");
            None
        }
    };
    let acceptance = Acceptance { replay: &state.replay, id: message_id.clone() };
    let answer = intake(&state, &bytes, message_id).await;
    if answer.is_ok() {
        acceptance.accepted();
    }
    answer
}

/// Parses, deduplicates, judges and queues the findings of a verified body.
async fn intake(state: &AppState, bytes: &[u8], message_id: Option<String>) -> Answer {
    let document: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("the body is not valid JSON: {e}")))?;
    let records = records::from_value(document).map_err(|error| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("the body holds no findings: {error}"))
    })?;
    if records.is_empty() {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "the body holds no findings"));
    }
    if records.len() > MAX_FINDINGS {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("more than {MAX_FINDINGS} findings in one request"),
        ));
    }
    let mut findings = Vec::with_capacity(records.len());
    let mut problems = Vec::new();
    for record in records {
        match pipeline::parse(record) {
            Ok(finding) => findings.push(finding),
            Err(skip) => problems.push(format!(
                "{}: {}",
                skip.subject,
                match skip.reason {
                    crate::report::SkipReason::Malformed(why) => why,
                    other => format!("{other:?}"),
                }
            )),
        }
    }
    if !problems.is_empty() {
        state.metrics.event("refused", (findings.len() + problems.len()) as u64);
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "malformed findings; nothing was accepted")
            .with(json!({"problems": problems})));
    }
    let mut duplicates = Vec::new();
    let mut fresh = Vec::new();
    for finding in findings {
        if state.seen.insert(&finding.id) {
            fresh.push(finding);
        } else {
            duplicates.push(finding.id);
        }
    }
    state.metrics.event("duplicate", duplicates.len() as u64);
    if fresh.is_empty() {
        return Ok((
            StatusCode::OK,
            axum::Json(json!({"accepted": [], "duplicates": duplicates, "webhookId": message_id})),
        )
            .into_response());
    }
    let permits = match state.queue.try_reserve_many(fresh.len()) {
        Ok(permits) => permits,
        Err(_) => {
            state.seen.forget(fresh.iter().map(|f| f.id.as_str()));
            return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the server is busy; try again").retry_after(1));
        }
    };
    let received = Instant::now();
    let mut accepted = Vec::with_capacity(fresh.len());
    for (finding, permit) in fresh.into_iter().zip(permits) {
        let assessment = state.judge.assess(&finding).await;
        for decision in assessment.evidence.decisions.values() {
            let source = decision.source.split(':').next().unwrap_or_default().to_string();
            let verdict = decision.verdict.label().to_string();
            state.metrics.reputation.get_or_create(&ReputationLabels { source, verdict }).inc();
        }
        accepted.push(finding.id.clone());
        permit.send(Item { finding, assessment, received });
    }
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({"accepted": accepted, "duplicates": duplicates, "webhookId": message_id})),
    )
        .into_response())
}

fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("the request is not valid: {e}"))
        }
        _ => ApiError::new(StatusCode::BAD_REQUEST, format!("the body is not valid JSON: {e}")),
    })
}

/// `ip` or `port`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Ip,
    Port,
}

/// The body of `/api/block`: the design's, plus `ttl`, `namespace` and `networkPolicy`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct BlockBody {
    #[serde(rename = "type")]
    kind: Kind,
    values: Vec<Value>,
    #[serde(default)]
    reason: String,
    action: Option<String>,
    ttl: Option<String>,
    namespace: Option<String>,
    #[serde(default)]
    network_policy: bool,
}

/// The body of `/api/unblock`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UnblockBody {
    #[serde(rename = "type")]
    kind: Option<Kind>,
    #[serde(default)]
    values: Vec<Value>,
    #[serde(default)]
    all: bool,
    namespace: Option<String>,
}

/// Values as text: `"1.2.3.4"` or `4444`.
fn texts(values: &[Value]) -> Result<Vec<String>, ApiError> {
    values
        .iter()
        .map(|v| match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            other => {
                Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("{other} is not an address or a port")))
            }
        })
        .collect()
}

fn split(kind: Kind, values: Vec<String>) -> (Vec<String>, Vec<String>) {
    match kind {
        Kind::Ip => (values, Vec::new()),
        Kind::Port => (Vec::new(), values),
    }
}

fn cluster_of(state: &AppState) -> Result<&(Cluster, String), ApiError> {
    state.cluster.as_ref().ok_or_else(|| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "manual blocks need the cluster: start the server with --apply")
    })
}

fn block_error(error: BlockError) -> ApiError {
    match error {
        BlockError::Refused(refusals) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "refused; nothing was written")
                .with(json!({"refusals": refusals.iter().map(ToString::to_string).collect::<Vec<_>>()}))
        }
        BlockError::NothingToUnblock { warnings } => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "nothing to unblock").with(json!({"warnings": warnings}))
        }
        BlockError::Invalid(error) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "refused; nothing was written")
            .with(json!({"refusals": [error.to_string()]})),
        BlockError::NotManaged(_) | BlockError::Corrupt(_) => ApiError::new(StatusCode::CONFLICT, error.to_string()),
        BlockError::Cluster(error) => cluster_error(&error),
    }
}

fn cluster_error(error: &crate::cluster::ClusterError) -> ApiError {
    tracing::error!(%error, "cluster call failed");
    ApiError::new(StatusCode::BAD_GATEWAY, format!("the cluster refused or could not be reached: {error}"))
}

fn report_json(report: &Report, warnings: &[String]) -> Value {
    let changes: Vec<Value> =
        report.done.iter().map(|(object, outcome)| json!({"object": object, "outcome": outcome.to_string()})).collect();
    json!({"changes": changes, "warnings": warnings})
}

/// Plans with `plan` and applies, planning again after a conflict.
async fn carry_out<F, Fut>(cluster: &Cluster, mut plan: F) -> Answer
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<block::Planned, BlockError>>,
{
    for round in 1..=BLOCK_ROUNDS {
        let planned = plan().await.map_err(block_error)?;
        let report = execute(cluster, planned.changes, DryRun::None).await;
        match &report.failed {
            None => return Ok(axum::Json(report_json(&report, &planned.warnings)).into_response()),
            Some((name, error)) if error.is_transient() && round < BLOCK_ROUNDS => {
                tracing::warn!(object = %name, %error, "write refused; planning again");
            }
            Some((name, error)) => {
                let status =
                    if error.is_transient() { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::BAD_GATEWAY };
                return Err(ApiError::new(status, format!("{name} was not applied: {error}"))
                    .with(report_json(&report, &planned.warnings)));
            }
        }
    }
    Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the block policies kept changing; try again").retry_after(1))
}

fn context(actor: &str, client: Option<&ClientAddr>, route: &str, settings: &BlockSettings) -> Context {
    let from = client.map(|c| format!(" from {}", c.0.ip())).unwrap_or_default();
    Context {
        actor: format!("{actor} via {route}{from}"),
        now: Utc::now(),
        versions: settings.versions.clone(),
        guardrails: settings.guardrails.clone(),
    }
}

async fn block(State(state): State<Arc<AppState>>, request: Request) -> Answer {
    let (parts, body) = request.into_parts();
    authorize(&state, &parts.headers)?;
    require_json(&parts.headers)?;
    let bytes = read_body(&parts.headers, body, state.limits.max_body).await?;
    let body: BlockBody = parse_json(&bytes)?;
    let (ips, ports) = split(body.kind, texts(&body.values)?);
    if ips.is_empty() && ports.is_empty() {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "values is empty"));
    }
    let (ips, ports) = parse_values(&ips, &ports).map_err(block_error)?;
    let action = match body.action.as_deref() {
        Some(text) => Some(<Mode as clap::ValueEnum>::from_str(text, true).map_err(|_| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("action {text:?} is not Post or Sigkill"))
        })?),
        None => None,
    };
    let ttl = body
        .ttl
        .as_deref()
        .map(crate::duration::ttl)
        .transpose()
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e))?;
    if body.network_policy && body.namespace.is_none() {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "networkPolicy needs a namespace"));
    }
    let (cluster, actor) = cluster_of(&state)?;
    let wanted = BlockRequest {
        ips,
        ports,
        reason: body.reason,
        ttl,
        action,
        namespace: body.namespace,
        network_policy: body.network_policy,
        force: false,
        max_entries: state.blocks.max_entries,
        protect: state.blocks.protect.clone(),
    };
    let client = parts.extensions.get::<ClientAddr>();
    carry_out(cluster, || async {
        let protected = cluster.protected().await?;
        let mut context = context(actor, client, "/api/block", &state.blocks);
        context.guardrails = context.guardrails.with_cluster(protected.clone());
        block::plan_block(cluster, &wanted, &protected, &context).await
    })
    .await
}

async fn unblock(State(state): State<Arc<AppState>>, request: Request) -> Answer {
    let (parts, body) = request.into_parts();
    authorize(&state, &parts.headers)?;
    require_json(&parts.headers)?;
    let bytes = read_body(&parts.headers, body, state.limits.max_body).await?;
    let body: UnblockBody = parse_json(&bytes)?;
    let values = texts(&body.values)?;
    let (ips, ports) = match body.kind {
        Some(kind) => split(kind, values),
        None if values.is_empty() => (Vec::new(), Vec::new()),
        None => return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "values need a type (ip or port)")),
    };
    if ips.is_empty() && ports.is_empty() && !body.all {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "name values to unblock, or all: true"));
    }
    let (ips, ports) = parse_values(&ips, &ports).map_err(block_error)?;
    let (cluster, actor) = cluster_of(&state)?;
    let wanted = UnblockRequest { ips, ports, all: body.all, namespace: body.namespace };
    let client = parts.extensions.get::<ClientAddr>();
    carry_out(cluster, || async {
        let context = context(actor, client, "/api/unblock", &state.blocks);
        block::plan_unblock(cluster, &wanted, &context).await
    })
    .await
}

async fn status_report(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Answer {
    authorize(&state, &headers)?;
    let inventory = match (&state.cluster, &state.dir) {
        (Some((cluster, _)), _) => cluster.managed(None).await.map_err(|e| cluster_error(&e))?,
        (None, Some(dir)) => Inventory::new(output::read_dir(dir).map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot read {}: {e}", dir.display()))
        })?),
        (None, None) => Inventory::default(),
    };
    let rows = status::rows(&inventory);
    let blocks = status::blocked(&rows);
    Ok(axum::Json(json!({"blocks": blocks, "policies": rows})).into_response())
}

async fn health() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

/// How long a readiness answer is reused.
const READY_CACHE: Duration = Duration::from_secs(2);

async fn readyz(State(state): State<Arc<AppState>>) -> Answer {
    if state.readiness.stopping.load(Ordering::Relaxed) {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting down"));
    }
    let Some((cluster, _)) = &state.cluster else {
        return Ok(axum::Json(json!({"status": "ready"})).into_response());
    };
    let mut last = state.readiness.last.lock().await;
    let fresh = last.as_ref().filter(|(at, _)| at.elapsed() < READY_CACHE).map(|(_, r)| r.clone());
    let result = match fresh {
        Some(result) => result,
        None => {
            let result = cluster.ensure_tetragon().await.map_err(|e| e.to_string());
            *last = Some((Instant::now(), result.clone()));
            result
        }
    };
    match result {
        Ok(()) => Ok(axum::Json(json!({"status": "ready"})).into_response()),
        Err(error) => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, error)),
    }
}

async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let (content_type, text) = state.metrics.encode(accept);
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}
