//! `promote`, `demote` and `tune`: moving reviewed policies along the
//! lifecycle (Audit → Enforcement, back, or Tuned), recording who did it and
//! when on the object.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Args;
use serde_json::Value;

use super::cluster::WriteArgs;
use super::{Exit, cluster};
use crate::cluster::apply::Change;
use crate::policy::lifecycle::{self, Tuning, annotation, label, name_of};
use crate::policy::validate::TetragonVersion;
use crate::policy::{Mode, labels};
use crate::reconcile::{self, block_changes};

/// Which policies a lifecycle command acts on.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  kubectl qualys-respond promote cdr-crypto-mining-pool-ports
  kubectl qualys-respond promote --all --older-than 24h       # every policy audited for a day
  kubectl qualys-respond demote --all -n payments
  kubectl qualys-respond promote cdr-manual-block-ip --dry-run=server

Promoting re-validates the policy in enforce mode first; the time and the user (from the API
server) are recorded in its qualys-respond.io/history annotation. See them with status.")]
pub struct ModeArgs {
    /// The policies (metadata.name).
    #[arg(value_name = "NAME", required_unless_present = "all")]
    names: Vec<String>,

    /// Every managed policy (in --namespace, if given).
    #[arg(long, conflicts_with = "names")]
    all: bool,

    /// Only policies that have been in their current mode for longer than this (e.g. 24h).
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::span)]
    older_than: Option<Duration>,

    /// Only policies of this namespace (and the cluster-wide ones).
    #[arg(short, long, value_name = "NS")]
    namespace: Option<String>,

    #[command(flatten)]
    write: WriteArgs,
}

/// Narrow a policy: binaries or namespaces it must not match.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  kubectl qualys-respond tune cdr-network-scanning-utility-scanner-exec --exclude-binary /usr/bin/nmap\n  kubectl qualys-respond tune cdr-reverse-shell-shell-spawn --exclude-namespace ci --exclude-namespace build"
)]
pub struct TuneArgs {
    /// The policy (metadata.name).
    #[arg(value_name = "NAME")]
    name: String,

    /// A binary (full path) the policy must not match; repeatable.
    #[arg(long, value_name = "PATH", required_unless_present = "exclude_namespace")]
    exclude_binary: Vec<String>,

    /// A namespace a cluster-wide policy must not apply to; repeatable.
    #[arg(long, value_name = "NS")]
    exclude_namespace: Vec<String>,

    /// The namespace of a TracingPolicyNamespaced of that name.
    #[arg(short, long, value_name = "NS")]
    namespace: Option<String>,

    #[command(flatten)]
    write: WriteArgs,
}

fn is_tracing_policy(object: &Value) -> bool {
    object.get("kind").and_then(Value::as_str).is_some_and(|k| k.starts_with("TracingPolicy"))
}

fn name(object: &Value) -> &str {
    object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default()
}

/// The changes that take `old` to `new`, with a block's NetworkPolicy companion.
fn changes_for(old: &Value, new: Value, existing: &[Value]) -> Vec<Change> {
    if label(old, labels::SOURCE) == Some("block") {
        block_changes(Some(old), Some(new), existing, "")
    } else {
        vec![Change::Apply { desired: new, existing: Some(old.clone()) }]
    }
}

/// `promote` (to `Mode::Sigkill`) or `demote` (to `Mode::Post`).
pub fn switch(args: ModeArgs, mode: Mode) -> anyhow::Result<Exit> {
    let (event, verb) = match mode {
        Mode::Sigkill => ("promoted", "enforced"),
        Mode::Post => ("demoted", "in audit mode"),
    };
    cluster::runtime()?.block_on(async {
        let cluster = args.write.connect().await?;
        cluster.ensure_tetragon().await?;
        let existing = cluster.managed(args.namespace.as_deref()).await?;
        let policies: Vec<&Value> = existing.iter().filter(|o| is_tracing_policy(o)).collect();
        let missing: Vec<&String> = args.names.iter().filter(|n| !policies.iter().any(|p| name(p) == *n)).collect();
        if !missing.is_empty() {
            let names: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
            anyhow::bail!("no managed TracingPolicy named {} (see kubectl qualys-respond status)", names.join(", "));
        }
        let context = reconcile::Context {
            actor: cluster.actor().await,
            now: Utc::now(),
            versions: TetragonVersion::ALL.to_vec(),
            guardrails: args.write.guard.guardrails(),
        };
        let now = context.now;
        let mut changes = Vec::new();
        let mut errors = Vec::new();
        for old in policies.into_iter().filter(|p| args.all || args.names.iter().any(|n| n == name(p))) {
            if lifecycle::mode_of(old) == Some(mode) {
                eprintln!("{} is already {verb}", name_of(old));
                continue;
            }
            if let Some(min) = args.older_than
                && !older_than(old, min, now)
            {
                eprintln!("{} skipped: in its mode for less than {}", name_of(old), humantime::format_duration(min));
                continue;
            }
            let namespace = old.pointer("/metadata/namespace").and_then(Value::as_str);
            if let Some(ns) = namespace.filter(|ns| mode == Mode::Sigkill && context.guardrails.is_system(ns)) {
                errors.push(format!(
                    "{} is in the system namespace {ns}, where policies stay in audit mode; pass --allow-enforce-in {ns} to enforce there",
                    name_of(old)
                ));
                continue;
            }
            let mut new = old.clone();
            let switched = lifecycle::set_mode(&mut new, mode).map_err(|e| e.to_string()).and_then(|()| {
                lifecycle::record(&mut new, event, &context.actor, now);
                reconcile::check(&new, &context)
            });
            match switched {
                Ok(()) => changes.extend(changes_for(old, new, &existing)),
                Err(error) => errors.push(error),
            }
        }
        if !errors.is_empty() {
            return Ok(cluster::refuse(&errors));
        }
        cluster::carry_out(&cluster, changes, args.write.dry_run).await?;
        Ok(Exit::Ok)
    })
}

fn older_than(object: &Value, min: Duration, now: DateTime<Utc>) -> bool {
    let since = annotation(object, labels::MODE_SINCE)
        .or_else(|| object.pointer("/metadata/creationTimestamp").and_then(Value::as_str))
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
    since.is_some_and(|t| now.signed_duration_since(t.with_timezone(&Utc)).to_std().is_ok_and(|age| age > min))
}

/// `tune`.
pub fn tune(args: TuneArgs) -> anyhow::Result<Exit> {
    cluster::runtime()?.block_on(async {
        let cluster = args.write.connect().await?;
        cluster.ensure_tetragon().await?;
        let existing = cluster.managed(args.namespace.as_deref()).await?;
        let found: Vec<&Value> = existing.iter().filter(|o| is_tracing_policy(o) && name(o) == args.name).collect();
        let old = match found.as_slice() {
            [] => anyhow::bail!("no managed TracingPolicy named {} (see kubectl qualys-respond status)", args.name),
            [one] => *one,
            several => anyhow::bail!(
                "{} names several policies ({}); pass -n NAMESPACE",
                args.name,
                several.iter().map(|o| name_of(o)).collect::<Vec<_>>().join(", ")
            ),
        };
        let mut tuning = Tuning::of(old);
        tuning.extend(Tuning {
            binaries: args.exclude_binary.iter().cloned().collect::<BTreeSet<_>>(),
            namespaces: args.exclude_namespace.iter().cloned().collect::<BTreeSet<_>>(),
        });
        let mut new = old.clone();
        tuning.apply(&mut new)?;
        let context = reconcile::Context {
            actor: cluster.actor().await,
            now: Utc::now(),
            versions: TetragonVersion::ALL.to_vec(),
            guardrails: args.write.guard.guardrails(),
        };
        lifecycle::record(&mut new, "tuned", &context.actor, context.now);
        if let Err(error) = reconcile::check(&new, &context) {
            return Ok(cluster::refuse(&[error]));
        }
        cluster::carry_out(&cluster, changes_for(old, new, &existing), args.write.dry_run).await?;
        Ok(Exit::Ok)
    })
}
