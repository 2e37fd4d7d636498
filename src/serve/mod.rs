//! `serve`: the real-time front door. A signed webhook receives findings
//! and, a coalescing window later, their policies are in the cluster; a
//! token-protected API blocks and unblocks as the CLI does; probes and
//! Prometheus metrics tell operators how it goes.
//!
//! Nothing here is a second pipeline: findings go through
//! [`crate::pipeline`] and [`crate::rollout`] like `sync`'s, manual blocks
//! through [`crate::block`] like `block`'s. State lives in the
//! cluster, so replicas behind one Service converge on the same objects and
//! a restart loses nothing but what was queued when it was killed (a
//! SIGTERM drains the queue first).
//!
//! - [`http`]: routes, authentication, limits, JSON errors;
//! - [`intake`]: coalescing, the mapper thread, applying with retries;
//! - [`auth`]: secrets, tokens, the replay cache, the finding ids seen;
//! - [`housekeeping`]: TTL expiry, the cluster's guardrails, gauges;
//! - [`listen`]: connections, TLS, graceful shutdown;
//! - [`metrics`], [`limits`], [`tls`].

pub mod auth;
pub mod housekeeping;
pub mod http;
pub mod intake;
pub mod limits;
pub mod listen;
pub mod metrics;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::{Notify, Semaphore, mpsc};

use crate::cluster::Cluster;
use crate::guardrails::Protected;
use crate::mapper::Registry;
use crate::pipeline::Options;
use crate::reputation::Judge;
use auth::{Material, ReplayCache, SeenFindings};
use http::{AppState, BlockSettings, HttpLimits, Readiness};
use intake::{Intake, MapperWorker, Sink};
use metrics::Metrics;

/// Findings waiting for the intake, at most.
const QUEUE: usize = 4_096;
/// Finding ids remembered to drop repeats.
const SEEN_IDS: usize = 200_000;
/// Webhook ids remembered, at most.
const REPLAY_IDS: usize = 200_000;

/// How to serve.
pub struct Config {
    /// Where to listen.
    pub listen: SocketAddr,
    /// TLS, if any.
    pub tls: Option<tls::TlsFiles>,
    /// Webhook secrets file.
    pub secret_file: Option<PathBuf>,
    /// Accept unsigned webhooks.
    pub insecure_skip_signature: bool,
    /// API tokens file.
    pub token_file: Option<PathBuf>,
    /// The cluster, with `--apply`.
    pub cluster: Option<Cluster>,
    /// `--output-dir`.
    pub dir: Option<PathBuf>,
    /// Mode and CRD versions of generated policies.
    pub options: Options,
    /// Burst window.
    pub coalesce: Duration,
    /// Request limits.
    pub limits: HttpLimits,
    /// Header read timeout (and TLS handshake).
    pub header_timeout: Duration,
    /// Requests served at once.
    pub concurrency: usize,
    /// Per-client requests a second, and burst.
    pub rate: (u32, u32),
    /// Manual blocks.
    pub blocks: BlockSettings,
    /// Reputation.
    pub judge: Arc<Judge>,
    /// The cluster's ranges, shared with the judge and kept current.
    pub protected: Arc<RwLock<Protected>>,
    /// How often expired blocks are removed.
    pub expire_interval: Duration,
    /// How long in-flight requests may take once SIGTERM arrived.
    pub grace: Duration,
    /// With `--leader-elect`: block expiry only while this replica leads
    /// (every replica answers requests).
    pub leader: Option<crate::cluster::lease::Leader>,
}

/// Runs the server until SIGTERM or SIGINT, then drains.
pub async fn run(
    mut config: Config,
    registry: impl FnOnce() -> anyhow::Result<Registry> + Send + 'static,
) -> anyhow::Result<()> {
    let secrets = Material::load(config.secret_file.clone(), auth::SECRET_ENV, auth::parse_secrets)
        .context("cannot read the webhook secrets")?;
    let secrets = match (secrets.is_empty(), config.insecure_skip_signature) {
        (false, _) => Some(secrets),
        (true, true) => {
            tracing::warn!("--insecure-skip-signature: webhook requests are accepted WITHOUT signature verification");
            None
        }
        (true, false) => anyhow::bail!(
            "no webhook secret: pass --webhook-secret-file (or set {}) with whsec_ secrets, or --insecure-skip-signature for a test setup",
            auth::SECRET_ENV
        ),
    };
    let tokens = Material::load(config.token_file.clone(), auth::TOKEN_ENV, auth::parse_tokens)
        .context("cannot read the API tokens")?;
    if tokens.is_empty() {
        tracing::warn!("no API token: /api/block, /api/unblock and /status answer 403");
    }
    let tls = config.tls.as_ref().map(tls::Tls::load).transpose().context("cannot set up TLS")?;
    let metrics = Arc::new(Metrics::new());
    let seen = Arc::new(SeenFindings::new(SEEN_IDS));
    let actor = match &config.cluster {
        Some(cluster) => Some((cluster.clone(), cluster.actor().await)),
        None => None,
    };
    if let Some((cluster, _)) = &actor {
        housekeeping::prepare(cluster, &seen, &config.protected).await;
    }
    let mapper = MapperWorker::start(registry, config.options.clone(), Arc::clone(&metrics))?;
    let (queue, receiver) = mpsc::channel(QUEUE);
    let intake = Intake {
        window: config.coalesce,
        mapper,
        sink: Sink {
            cluster: actor.clone(),
            dir: config.dir.clone(),
            versions: config.options.versions.clone(),
            guardrails: config.options.guardrails.clone(),
            protected: Arc::clone(&config.protected),
        },
        metrics: Arc::clone(&metrics),
        seen: Arc::clone(&seen),
    };
    let stop_intake = Arc::new(Notify::new());
    let intake = tokio::spawn(intake.run(receiver, Arc::clone(&stop_intake)));
    let tolerance = Duration::from_secs(config.limits.tolerance.unsigned_abs());
    let state = Arc::new(AppState {
        metrics: Arc::clone(&metrics),
        secrets,
        tokens,
        replay: ReplayCache::new((tolerance * 2).max(Duration::from_secs(600)), REPLAY_IDS),
        seen: Arc::clone(&seen),
        limiter: limits::RateLimiter::new(config.rate.0, config.rate.1),
        concurrency: Arc::new(Semaphore::new(config.concurrency.max(1))),
        judge: Arc::clone(&config.judge),
        queue,
        cluster: actor.clone(),
        dir: config.dir.clone(),
        limits: config.limits.clone(),
        blocks: config.blocks.clone(),
        readiness: Readiness::default(),
    });
    let leader = config.leader.take();
    let leading = leader.as_ref().map(|l| l.leading.clone());
    let housekeeping = actor.clone().map(|(cluster, actor)| {
        tokio::spawn(housekeeping::run(housekeeping::Housekeeping {
            cluster,
            actor,
            versions: config.blocks.versions.clone(),
            guardrails: config.options.guardrails.clone(),
            metrics: Arc::clone(&metrics),
            seen: Arc::clone(&seen),
            protected: Arc::clone(&config.protected),
            every: config.expire_interval,
            leading,
        }))
    });
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr().context("cannot read the listening address")?;
    tracing::warn!(%address, tls = tls.is_some(), "serving");
    let stopping_state = Arc::clone(&state);
    let app = http::router(Arc::clone(&state));
    listen::serve(listener, app, tls, config.header_timeout, config.grace, async move {
        crate::signal::shutdown().await;
        stopping_state.readiness.stopping.store(true, Ordering::Relaxed);
        tracing::warn!("stopping: no new connections; finishing requests and queued findings");
    })
    .await;
    if let Some(task) = housekeeping {
        task.abort();
    }
    if let Some(leader) = leader {
        leader.stop().await;
    }
    drop(state);
    stop_intake.notify_one();
    intake.await.context("the intake stopped abnormally")?;
    tracing::warn!("stopped");
    Ok(())
}
