//! Behind `/webhook/cdr`: findings wait a short window so that a burst
//! gives one apply per policy, then go through the same pipeline as `sync`
//! (mapper, policy stage, validation) and the same rollout (plan against
//! what the cluster holds, server-side apply), or into `--output-dir`.
//!
//! The mappers run on a thread of their own ([`MapperWorker`]): a component
//! call is short, but a hostile one may spin until its deadline, and that
//! must not hold up the HTTP workers. Writes race with other replicas
//! safely: updates carry the resourceVersion they were planned against, a
//! conflict plans again after a jittered pause (for up to 30 s, so a replica
//! that keeps losing to another's burst still gets through), and a batch that
//! created objects is planned once more afterwards, so a creation another
//! replica made at the same moment is merged into rather than lost.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::auth::SeenFindings;
use super::metrics::{Metrics, OutcomeLabels};
use crate::cluster::Cluster;
use crate::cluster::apply::{DryRun, Outcome as Applied, content, execute};
use crate::finding::Finding;
use crate::mapper::Registry;
use crate::pipeline::{Options, Outcome, Pipeline};
use crate::policy::{Inventory, ManagedPolicy};
use crate::qualys::retry::{RetryPolicy, jitter};
use crate::reconcile::{self, Change, Context};
use crate::report::SkipReason;
use crate::reputation::Assessment;
use crate::{output, rollout};

/// How a batch is tried again after a conflict or a busy server: jittered,
/// so replicas racing for one object fall out of step, and for long enough
/// that a replica which keeps losing to another's burst still gets through.
const RETRY: RetryPolicy = RetryPolicy {
    retries: 24,
    initial_delay: Duration::from_millis(100),
    max_delay: Duration::from_secs(2),
    max_total: Duration::from_secs(30),
};

/// One accepted finding.
pub struct Item {
    /// The finding.
    pub finding: Finding,
    /// The judgement on its addresses.
    pub assessment: Assessment,
    /// When its request arrived.
    pub received: Instant,
}

struct Job {
    items: Vec<(Finding, Assessment)>,
    reply: oneshot::Sender<Outcome>,
}

/// The thread that owns the mapper components.
pub struct MapperWorker {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl MapperWorker {
    /// Starts the thread; `registry` loads the components there. Fails when
    /// they do not load.
    pub fn start(
        registry: impl FnOnce() -> anyhow::Result<Registry> + Send + 'static,
        options: Options,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<MapperWorker> {
        let (jobs, receiver) = std::sync::mpsc::channel::<Job>();
        let (ready, started) = std::sync::mpsc::channel();
        std::thread::Builder::new().name("mappers".into()).spawn(move || {
            let mut registry = match registry() {
                Ok(registry) => {
                    let _ = ready.send(Ok(()));
                    registry
                }
                Err(error) => {
                    let _ = ready.send(Err(error));
                    return;
                }
            };
            while let Ok(job) = receiver.recv() {
                let histogram = metrics.mapper_call.clone();
                let mut pipeline = Pipeline::new(&mut registry, options.clone())
                    .with_observer(move |took| Metrics::observe(&histogram, took));
                for (finding, assessment) in job.items {
                    pipeline.push_finding(finding, &assessment);
                }
                let _ = job.reply.send(pipeline.finish());
            }
        })?;
        started.recv().map_err(|_| anyhow::anyhow!("the mapper thread stopped while loading"))??;
        Ok(MapperWorker { jobs })
    }

    /// Maps a batch.
    async fn map(&self, items: Vec<(Finding, Assessment)>) -> Option<Outcome> {
        let (reply, answer) = oneshot::channel();
        self.jobs.send(Job { items, reply }).ok()?;
        answer.await.ok()
    }
}

/// Where policies go.
pub struct Sink {
    /// The cluster, with our identity for the history.
    pub cluster: Option<(Cluster, String)>,
    /// A directory of YAML files (the design's `/policies`).
    pub dir: Option<PathBuf>,
    /// CRD versions to validate against.
    pub versions: Vec<crate::policy::validate::TetragonVersion>,
    /// The guardrails of the command line.
    pub guardrails: crate::guardrails::Guardrails,
    /// The cluster's ranges, kept current by the housekeeping.
    pub protected: Arc<std::sync::RwLock<crate::guardrails::Protected>>,
}

/// The coalescer's shared parts.
pub struct Intake {
    /// Window of a burst.
    pub window: Duration,
    /// The mappers.
    pub mapper: MapperWorker,
    /// Where policies go.
    pub sink: Sink,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Finding ids handled.
    pub seen: Arc<SeenFindings>,
}

impl Intake {
    /// Runs until `stop` fires, then handles what is queued and returns.
    pub async fn run(self, mut queue: mpsc::Receiver<Item>, stop: Arc<tokio::sync::Notify>) {
        let mut stopping = false;
        while !stopping {
            let first = tokio::select! {
                item = queue.recv() => item,
                () = stop.notified() => None,
            };
            let Some(first) = first else { break };
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::now() + self.window;
            loop {
                tokio::select! {
                    item = queue.recv() => match item {
                        Some(item) => batch.push(item),
                        None => break,
                    },
                    () = tokio::time::sleep_until(deadline) => break,
                    () = stop.notified() => {
                        stopping = true;
                        break;
                    }
                }
            }
            self.process(batch).await;
        }
        // Stopping: what was accepted before the listener closed is handled now.
        let mut rest = Vec::new();
        while let Ok(item) = queue.try_recv() {
            rest.push(item);
        }
        if !rest.is_empty() {
            tracing::info!(findings = rest.len(), "applying the findings still queued before stopping");
            self.process(rest).await;
        }
    }

    async fn process(&self, batch: Vec<Item>) {
        let received: Vec<(String, Instant, Option<chrono::DateTime<Utc>>)> =
            batch.iter().map(|i| (i.finding.id.clone(), i.received, i.finding.detected_at)).collect();
        let items = batch.into_iter().map(|i| (i.finding, i.assessment)).collect();
        let Some(outcome) = self.mapper.map(items).await else {
            tracing::error!(findings = received.len(), "the mapper thread is gone; findings not applied");
            self.failed(received.iter().map(|(id, ..)| id.as_str()));
            return;
        };
        for (cluster, count) in &outcome.report.other_clusters {
            self.metrics.event("other_cluster", *count as u64);
            tracing::info!(%cluster, count, "findings of another cluster left out");
        }
        if let Some(refusal) = outcome.report.unnamed_refusal() {
            self.metrics.event("refused", outcome.report.unnamed_refused.values().sum::<usize>() as u64);
            tracing::warn!("{refusal}");
        }
        for skip in &outcome.report.skipped {
            let label = match skip.reason {
                SkipReason::UnknownCategory => "unknown_category",
                _ => "refused",
            };
            self.metrics.event(label, 1);
            tracing::warn!(subject = %skip.subject, reason = ?skip.reason, "finding produced no policy");
        }
        if outcome.policies.is_empty() {
            return;
        }
        let desired = rollout::desired(&outcome);
        let in_policies: BTreeSet<&str> =
            outcome.policies.iter().flat_map(|p| p.finding_ids.iter().map(String::as_str)).collect();
        let result = self.deliver(desired).await;
        let done = Instant::now();
        match result {
            Ok(()) => {
                for (id, at, detected) in received.iter().filter(|(id, ..)| in_policies.contains(id.as_str())) {
                    Metrics::observe(&self.metrics.request_to_applied, done.duration_since(*at));
                    if let Some(detected) = detected
                        && let Ok(age) = Utc::now().signed_duration_since(*detected).to_std()
                    {
                        Metrics::observe(&self.metrics.detection_to_applied, age);
                    }
                    tracing::debug!(finding = %id, "applied");
                }
                self.metrics.event("applied", in_policies.len() as u64);
            }
            Err(error) => {
                tracing::error!(findings = %in_policies.iter().copied().collect::<Vec<_>>().join(","), %error, "findings not applied");
                self.failed(in_policies.iter().copied());
            }
        }
    }

    /// Counts findings as failed and forgets them, so a resend is processed.
    fn failed<'a>(&self, ids: impl Iterator<Item = &'a str> + Clone) {
        self.metrics.event("failed", ids.clone().count() as u64);
        self.seen.forget(ids);
    }

    async fn deliver(&self, desired: Vec<ManagedPolicy>) -> Result<(), String> {
        if let Some((cluster, actor)) = &self.sink.cluster {
            self.apply(cluster, actor, desired.clone()).await?;
        }
        if let Some(dir) = &self.sink.dir {
            self.write(dir, desired).map_err(|e| format!("cannot write policies to {}: {e}", dir.display()))?;
        }
        Ok(())
    }

    fn context(&self, actor: &str) -> Context {
        let protected = self.sink.protected.read().unwrap_or_else(|e| e.into_inner()).clone();
        Context {
            actor: actor.to_string(),
            now: Utc::now(),
            versions: self.sink.versions.clone(),
            guardrails: self.sink.guardrails.clone().with_cluster(protected),
        }
    }

    /// Plans and applies until the cluster holds what the batch wants.
    async fn apply(&self, cluster: &Cluster, actor: &str, desired: Vec<ManagedPolicy>) -> Result<(), String> {
        let mut pause = Pause { retry: 0, started: Instant::now() };
        let mut check_creations = false;
        loop {
            let plan = match rollout::gather(cluster, desired.clone()).await {
                Ok(gathered) => gathered.plan(&self.context(actor), None),
                Err(error) if error.is_transient() => {
                    tracing::warn!(%error, "cannot plan; trying again");
                    pause.wait().await.map_err(|()| format!("still failing after {}: {error}", pause.spent()))?;
                    continue;
                }
                Err(error) => return Err(error.to_string()),
            };
            if !plan.errors.is_empty() {
                return Err(plan.errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "));
            }
            for (namespace, count) in &plan.gone_namespaces {
                tracing::warn!(%namespace, policies = count, "namespace no longer exists; its policies were not applied");
            }
            learn(&self.seen, &plan.existing);
            let (changes, unchanged) = effective(plan.changes);
            if !check_creations {
                self.count("unchanged", unchanged);
            }
            if changes.is_empty() {
                return Ok(());
            }
            let creates = changes.iter().any(|c| matches!(c, Change::Apply { existing: None, .. }));
            let report = execute(cluster, changes, DryRun::None).await;
            for (name, outcome) in &report.done {
                let label = match outcome {
                    Applied::Created => "created",
                    Applied::Configured => "configured",
                    Applied::Unchanged => "unchanged",
                    Applied::Deleted(_) => "deleted",
                };
                self.count(label, 1);
                tracing::info!(object = %name, %outcome, "applied");
            }
            match report.failed {
                None if creates && !check_creations => check_creations = true,
                None => return Ok(()),
                Some((name, error)) if error.is_transient() => {
                    tracing::warn!(object = %name, %error, "write refused; planning again");
                    pause
                        .wait()
                        .await
                        .map_err(|()| format!("{name}: still refused after {}: {error}", pause.spent()))?;
                }
                Some((name, error)) => return Err(format!("{name}: {error}")),
            }
        }
    }

    fn count(&self, outcome: &str, n: u64) {
        if n > 0 {
            self.metrics.policies.get_or_create(&OutcomeLabels { outcome: outcome.to_string() }).inc_by(n);
        }
    }

    /// Merges the batch into the files of `dir` and writes what changed.
    fn write(&self, dir: &std::path::Path, desired: Vec<ManagedPolicy>) -> std::io::Result<()> {
        let existing = Inventory::new(output::read_dir(dir)?);
        let changes = reconcile::plan(desired, &existing, &self.context("serve"), None).map_err(|errors| {
            std::io::Error::other(errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
        })?;
        let (changes, _) = effective(changes);
        let objects: Vec<Value> = changes
            .into_iter()
            .filter_map(|c| match c {
                Change::Apply { desired, .. } => Some(desired),
                Change::Delete { .. } => None,
            })
            .collect();
        let written = output::write_values(dir, &objects)?;
        tracing::info!(files = written.len(), dir = %dir.display(), "policies written");
        Ok(())
    }
}

/// The waits between the tries of one batch.
struct Pause {
    retry: u32,
    started: Instant,
}

impl Pause {
    /// Sleeps before the next try; `Err` once [`RETRY`] is spent.
    async fn wait(&mut self) -> Result<(), ()> {
        let delay = RETRY.delay(self.retry, None, jitter());
        if self.retry >= RETRY.retries || self.started.elapsed() + delay > RETRY.max_total {
            return Err(());
        }
        self.retry += 1;
        tokio::time::sleep(delay).await;
        Ok(())
    }

    /// The time spent so far, for the error.
    fn spent(&self) -> String {
        format!("{} tries in {:.1} s", self.retry + 1, self.started.elapsed().as_secs_f64())
    }
}

/// The changes that alter something, and how many would not.
fn effective(changes: Vec<Change>) -> (Vec<Change>, u64) {
    let mut unchanged = 0;
    let kept = changes
        .into_iter()
        .filter(|change| match change {
            Change::Apply { desired, existing: Some(existing) } if content(existing) == content(desired) => {
                unchanged += 1;
                false
            }
            _ => true,
        })
        .collect();
    (kept, unchanged)
}

/// Records the finding ids the cluster's objects list as handled.
pub fn learn(seen: &SeenFindings, inventory: &Inventory) {
    for found in &inventory.policies {
        for id in found.policy.finding_ids() {
            seen.insert(id);
        }
    }
}
