//! What the server does on a timer: removes block entries whose TTL ran
//! out, keeps the cluster's own ranges (which no reputation verdict may
//! block) current, learns the finding ids other replicas handled, and sets
//! the blocked-address gauges. Every replica does it; the writes carry
//! preconditions, so two replicas expiring the same entry cannot clash.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use super::auth::SeenFindings;
use super::intake::learn;
use super::metrics::{Metrics, ModeLabels, OutcomeLabels};
use crate::cluster::Cluster;
use crate::cluster::apply::{DryRun, execute};
use crate::guardrails::{Guardrails, Protected};
use crate::policy::block::Target;
use crate::policy::validate::TetragonVersion;
use crate::policy::{Inventory, Mode};
use crate::reconcile::Context;
use crate::rollout;

/// How often the cluster's ranges are read again.
const PROTECTED_EVERY: Duration = Duration::from_secs(300);

/// First reading at start: finding ids and the cluster's ranges. A failure
/// is logged; the server still starts (readiness reports the cluster).
pub async fn prepare(cluster: &Cluster, seen: &SeenFindings, protected: &RwLock<Protected>) {
    match cluster.managed(None).await {
        Ok(objects) => learn(seen, &objects),
        Err(error) => tracing::warn!(%error, "cannot read the managed policies yet"),
    }
    refresh_protected(cluster, protected).await;
}

async fn refresh_protected(cluster: &Cluster, protected: &RwLock<Protected>) {
    match cluster.protected().await {
        Ok(current) => *protected.write().unwrap_or_else(|e| e.into_inner()) = current,
        Err(error) => tracing::warn!(%error, "cannot read the cluster's addresses; keeping the ones known"),
    }
}

/// Sets the gauges from the block policies among `objects`.
fn gauges(metrics: &Metrics, inventory: &Inventory) {
    let now = Utc::now();
    let count = |target: Target| {
        inventory
            .policies
            .iter()
            .filter(|found| Target::of(&found.policy) == Some(target))
            .flat_map(|found| found.policy.blocks.valid().into_iter().flatten())
            .filter(|e| !e.expired(now))
            .count() as i64
    };
    for mode in [Mode::Post, Mode::Sigkill] {
        let policies = inventory.policies.iter().filter(|found| found.policy.mode() == Some(mode)).count() as i64;
        metrics.managed_policies.get_or_create(&ModeLabels { mode: mode.label().to_string() }).set(policies);
    }
    metrics.blocked_ips.set(count(Target::Ip));
    metrics.blocked_ports.set(count(Target::Port));
}

/// What the timer loop works with.
pub struct Housekeeping {
    /// The cluster.
    pub cluster: Cluster,
    /// Who we are in it.
    pub actor: String,
    /// CRD versions to validate against.
    pub versions: Vec<TetragonVersion>,
    /// The command line's guardrails.
    pub guardrails: Guardrails,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Finding ids handled.
    pub seen: Arc<SeenFindings>,
    /// The cluster's ranges, kept current here.
    pub protected: Arc<RwLock<Protected>>,
    /// How often to run.
    pub every: Duration,
    /// With leader election: `true` while this replica may expire blocks.
    pub leading: Option<watch::Receiver<bool>>,
}

/// The timer loop; runs until aborted. Every replica reads the cluster and
/// keeps its gauges and guardrails current; with leader election only the
/// leader removes expired blocks.
pub async fn run(work: Housekeeping) {
    let Housekeeping { cluster, actor, versions, guardrails, metrics, seen, protected, every, leading } = work;
    let mut since_protected = Duration::ZERO;
    loop {
        let guardrails = guardrails.clone().with_cluster(protected.read().unwrap_or_else(|e| e.into_inner()).clone());
        let context = Context { actor: actor.clone(), now: Utc::now(), versions: versions.clone(), guardrails };
        match rollout::gather(&cluster, Vec::new()).await {
            Ok(gathered) => {
                let plan = gathered.plan(&context, None);
                learn(&seen, &plan.existing);
                gauges(&metrics, &plan.existing);
                if !plan.errors.is_empty() {
                    let errors: Vec<String> = plan.errors.iter().map(ToString::to_string).collect();
                    tracing::error!(errors = %errors.join("; "), "cannot expire blocks");
                } else if !plan.changes.is_empty() && leading.as_ref().is_none_or(|l| *l.borrow()) {
                    let report = execute(&cluster, plan.changes, DryRun::None).await;
                    for (name, outcome) in &report.done {
                        tracing::info!(object = %name, %outcome, "expired blocks removed");
                        let label = if matches!(outcome, crate::cluster::apply::Outcome::Deleted(_)) {
                            "deleted"
                        } else {
                            "configured"
                        };
                        metrics.policies.get_or_create(&OutcomeLabels { outcome: label.into() }).inc();
                    }
                    if let Some((name, error)) = report.failed {
                        tracing::warn!(object = %name, %error, "cannot remove expired blocks yet");
                    }
                    if let Ok(inventory) = cluster.managed(None).await {
                        gauges(&metrics, &inventory);
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "cannot read the cluster for block expiry"),
        }
        if since_protected >= PROTECTED_EVERY {
            since_protected = Duration::ZERO;
            refresh_protected(&cluster, &protected).await;
        }
        tokio::time::sleep(every).await;
        since_protected += every;
    }
}
