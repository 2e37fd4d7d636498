//! Turning wanted changes into server-side applies and deletes, one object
//! at a time, and telling the operator what happened to each, as kubectl
//! does (`created`, `configured`, `unchanged`, `deleted`).
//!
//! The changes are planned by [`crate::reconcile`]. Every object was validated before it gets here. The first refusal stops
//! the run: the report then lists what was applied before it and what was
//! not, so nothing is half-applied without the operator knowing exactly how.

use std::fmt;

use serde_json::Value;

use super::connect::Cluster;
use super::error::ClusterError;
use super::resource::{Resource, display};
use crate::policy::labels;
use crate::reconcile::Change;

/// `--dry-run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DryRun {
    /// Write for real.
    #[default]
    None,
    /// Only compare with what the cluster holds; send no write.
    Client,
    /// Send every write with dryRun=All: the server validates and defaults, stores nothing.
    Server,
}

/// The object a change is about, as kubectl names it.
pub(super) fn change_name(change: &Change) -> String {
    match change {
        Change::Apply { desired, .. } => display(desired),
        Change::Delete { existing, .. } => display(existing),
    }
}

/// What happened to one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It did not exist.
    Created,
    /// It changed.
    Configured,
    /// It already was as wanted.
    Unchanged,
    /// It was deleted, for this reason.
    Deleted(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Created => f.write_str("created"),
            Outcome::Configured => f.write_str("configured"),
            Outcome::Unchanged => f.write_str("unchanged"),
            Outcome::Deleted(reason) => write!(f, "deleted ({reason})"),
        }
    }
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Report {
    /// Objects handled, in order, with what happened.
    pub done: Vec<(String, Outcome)>,
    /// The object whose write failed, and why.
    pub failed: Option<(String, ClusterError)>,
    /// Objects not attempted after the failure.
    pub pending: Vec<String>,
    /// The dry-run mode the report is for.
    pub dry_run: DryRun,
}

impl Report {
    /// True when every change went through.
    pub fn complete(&self) -> bool {
        self.failed.is_none()
    }

    /// How many objects changed (created, configured or deleted).
    pub fn changed(&self) -> usize {
        self.done.iter().filter(|(_, o)| *o != Outcome::Unchanged).count()
    }

    /// kubectl-style lines, then, after a failure, what was not applied.
    pub fn render(&self) -> String {
        let suffix = match self.dry_run {
            DryRun::None => "",
            DryRun::Client => " (dry run)",
            DryRun::Server => " (server dry run)",
        };
        let mut out = String::new();
        for (name, outcome) in &self.done {
            out.push_str(&format!("{name} {outcome}{suffix}\n"));
        }
        if let Some((name, error)) = &self.failed {
            out.push_str(&format!("{name} FAILED: {error}\n"));
            out.push_str(&format!(
                "stopped: {} object(s) were applied before the failure (listed above); not applied: {}\n",
                self.done.len(),
                if self.pending.is_empty() { "nothing else".to_string() } else { self.pending.join(", ") }
            ));
        }
        out
    }
}

/// The content a change can alter: labels, annotations and everything
/// outside `metadata` and `status`.
pub fn content(object: &Value) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(map) = object.as_object() {
        for (key, value) in map {
            if !matches!(key.as_str(), "metadata" | "status") {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    for key in ["labels", "annotations"] {
        let value = object.pointer(&format!("/metadata/{key}")).cloned().unwrap_or_else(|| serde_json::json!({}));
        out.insert(key.into(), value);
    }
    Value::Object(out)
}

/// Carries out `changes` in order and reports each; stops at the first
/// failure. Every change is checked first (no object we do not manage is in
/// the way), so such a refusal writes nothing at all.
pub async fn execute(cluster: &Cluster, changes: Vec<Change>, dry_run: DryRun) -> Report {
    let mut report = Report { dry_run, ..Report::default() };
    let mut prepared = Vec::with_capacity(changes.len());
    for change in &changes {
        let body = match change {
            Change::Apply { desired, existing } if dry_run != DryRun::Client => {
                match guarded(cluster, desired, existing.as_ref()).await {
                    Ok(body) => Some(body),
                    Err(error) => {
                        report.failed = Some((change_name(change), error));
                        let name = change_name(change);
                        report.pending = changes.iter().map(change_name).filter(|n| *n != name).collect();
                        return report;
                    }
                }
            }
            _ => None,
        };
        prepared.push(body);
    }
    let mut steps = changes.into_iter().zip(prepared);
    for (change, body) in steps.by_ref() {
        let name = change_name(&change);
        match run_one(cluster, &change, body.as_ref(), dry_run).await {
            Ok(outcome) => report.done.push((name, outcome)),
            Err(error) => {
                report.failed = Some((name, error));
                break;
            }
        }
    }
    report.pending = steps.map(|(c, _)| change_name(&c)).collect();
    report
}

/// `desired`, made safe to apply: based on `existing`, it carries its
/// resourceVersion, so a change made since we read it is refused, not lost; a
/// creation is refused when an object we do not manage has the name.
pub async fn guarded(cluster: &Cluster, desired: &Value, existing: Option<&Value>) -> Result<Value, ClusterError> {
    let mut body = desired.clone();
    match existing {
        Some(existing) => {
            if let (Some(version), Some(metadata)) = (
                existing.pointer("/metadata/resourceVersion").cloned(),
                body.get_mut("metadata").and_then(Value::as_object_mut),
            ) {
                metadata.insert("resourceVersion".into(), version);
            }
        }
        None => {
            let resource = Resource::of(desired)
                .ok_or_else(|| ClusterError::Object(format!("{}: unknown kind", display(desired))))?;
            let namespace = desired.pointer("/metadata/namespace").and_then(Value::as_str);
            let name = desired.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
            if let Some(found) = cluster.get(resource, namespace, name).await?
                && !is_managed(&found)
            {
                return Err(ClusterError::Object(format!(
                    "{} exists and is not managed by kubectl qualys-respond; it is left alone (rename or delete it)",
                    display(desired)
                )));
            }
        }
    }
    Ok(body)
}

/// True when `object` (a policy or a companion) carries our managed-by label.
fn is_managed(object: &Value) -> bool {
    let label = object.pointer("/metadata/labels").and_then(|l| l.get(labels::MANAGED_BY));
    label.and_then(Value::as_str) == Some(labels::MANAGER)
}

async fn run_one(
    cluster: &Cluster,
    change: &Change,
    body: Option<&Value>,
    dry_run: DryRun,
) -> Result<Outcome, ClusterError> {
    match change {
        Change::Apply { desired, existing } => {
            if dry_run == DryRun::Client {
                return Ok(match existing {
                    None => Outcome::Created,
                    Some(existing) if content(existing) == content(desired) => Outcome::Unchanged,
                    Some(_) => Outcome::Configured,
                });
            }
            let applied = cluster.apply(body.unwrap_or(desired), dry_run == DryRun::Server).await?;
            Ok(match existing {
                None => Outcome::Created,
                Some(existing) => {
                    let version = |o: &Value| o.pointer("/metadata/resourceVersion").cloned();
                    let same_version = dry_run == DryRun::None && version(existing) == version(&applied);
                    if same_version || content(existing) == content(&applied) {
                        Outcome::Unchanged
                    } else {
                        Outcome::Configured
                    }
                }
            })
        }
        Change::Delete { existing, reason } => {
            if dry_run != DryRun::Client {
                cluster.delete(existing, dry_run == DryRun::Server).await?;
            }
            Ok(Outcome::Deleted(reason.clone()))
        }
    }
}
