//! From a pipeline's outcome to the changes that bring the cluster there:
//! the objects as they will be stored (with their latest detection), minus
//! those of namespaces that are gone, planned against every object we
//! manage. `sync --apply`, `diff` and `serve` all go through here.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use crate::cluster::{Cluster, ClusterError};
use crate::pipeline::Outcome;
use crate::policy::{Inventory, ManagedPolicy};
use crate::reconcile::{self, Change, Context, PruneRules, ReconcileError};

/// The changes a run would make.
#[derive(Debug, Default)]
pub struct Plan {
    /// In order; empty when `errors` is not.
    pub changes: Vec<Change>,
    /// Objects that would not be valid once merged: nothing may be written.
    pub errors: Vec<ReconcileError>,
    /// Namespaces that no longer exist, with how many policies they lost.
    pub gone_namespaces: Vec<(String, usize)>,
    /// Every object we manage, as read before planning.
    pub existing: Inventory,
}

/// The objects of `outcome` as they will be applied: each carries the
/// latest detection time of the findings behind it.
pub fn desired(outcome: &Outcome) -> Vec<ManagedPolicy> {
    let detected: HashMap<&str, DateTime<Utc>> = outcome.handled.iter().map(|(id, at)| (id.as_str(), *at)).collect();
    outcome
        .policies
        .iter()
        .map(|assembled| {
            let mut policy = ManagedPolicy::from_object(assembled.object.clone());
            policy.last_detected =
                assembled.finding_ids.iter().filter_map(|id| detected.get(id.as_str())).max().copied();
            policy
        })
        .collect()
}

/// What planning needs from the cluster, read.
#[derive(Debug)]
pub struct Gathered {
    desired: Vec<ManagedPolicy>,
    gone_namespaces: Vec<(String, usize)>,
    existing: Inventory,
}

/// Reads what planning `desired` needs: which namespaces still exist, and
/// every object we manage.
pub async fn gather(cluster: &Cluster, desired: Vec<ManagedPolicy>) -> Result<Gathered, ClusterError> {
    let (desired, gone_namespaces) = without_gone_namespaces(cluster, desired).await?;
    let existing = cluster.managed(None).await?;
    Ok(Gathered { desired, gone_namespaces, existing })
}

impl Gathered {
    /// The changes, with the block expiry and (optional) prune rules.
    pub fn plan(self, context: &Context, prune: Option<&PruneRules<'_>>) -> Plan {
        let (changes, errors) = match reconcile::plan(self.desired, &self.existing, context, prune) {
            Ok(changes) => (changes, Vec::new()),
            Err(errors) => (Vec::new(), errors),
        };
        Plan { changes, errors, gone_namespaces: self.gone_namespaces, existing: self.existing }
    }
}

/// `desired` without the policies of namespaces that no longer exist (the
/// workload behind the finding is gone), and those namespaces with how many
/// policies each lost.
async fn without_gone_namespaces(
    cluster: &Cluster,
    desired: Vec<ManagedPolicy>,
) -> Result<(Vec<ManagedPolicy>, Vec<(String, usize)>), ClusterError> {
    let namespace_of = |p: &ManagedPolicy| p.namespace.clone();
    let namespaces: BTreeSet<String> = desired.iter().filter_map(namespace_of).collect();
    let mut gone = BTreeSet::new();
    for namespace in namespaces {
        if !cluster.namespace_exists(&namespace).await? {
            gone.insert(namespace);
        }
    }
    let (kept, dropped): (Vec<ManagedPolicy>, Vec<ManagedPolicy>) =
        desired.into_iter().partition(|o| namespace_of(o).is_none_or(|ns| !gone.contains(&ns)));
    let counts = gone
        .into_iter()
        .map(|namespace| {
            let count = dropped.iter().filter(|o| namespace_of(o).as_ref() == Some(&namespace)).count();
            (namespace, count)
        })
        .collect();
    Ok((kept, counts))
}
