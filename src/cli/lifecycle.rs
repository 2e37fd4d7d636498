//! `promote`, `demote` and `tune`: moving reviewed policies along the
//! lifecycle (Audit → Enforcement, back, or Tuned), recording who did it and
//! when on the object.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Args;

use super::cluster;
use super::cluster::WriteArgs;
use super::exit::Exit;
use crate::policy::managed::Tuning;
use crate::policy::validate::TetragonVersion;
use crate::policy::{Found, ManagedPolicy, Mode};
use crate::reconcile::{self, Block, ReconcileError, block_changes};

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
        let missing: Vec<&String> =
            args.names.iter().filter(|n| !existing.policies.iter().any(|f| &f.policy.name == *n)).collect();
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
        for old in existing.policies.iter().filter(|f| args.all || args.names.contains(&f.policy.name)) {
            let policy = &old.policy;
            if policy.mode() == Some(mode) {
                eprintln!("{policy} is already {verb}");
                continue;
            }
            if let Some(min) = args.older_than
                && !older_than(policy, min, now)
            {
                eprintln!("{policy} skipped: in its mode for less than {}", humantime::format_duration(min));
                continue;
            }
            let namespace = policy.namespace.as_deref();
            if let Some(ns) = namespace.filter(|ns| mode == Mode::Sigkill && context.guardrails.is_system(ns)) {
                errors.push(format!(
                    "{policy} is in the system namespace {ns}, where policies stay in audit mode; pass --allow-enforce-in {ns} to enforce there"
                ));
                continue;
            }
            let mut new = policy.clone();
            let switched = new.set_mode(mode).map_err(ReconcileError::from).and_then(|()| {
                new.record(event, &context.actor, now);
                Block::checked(new, &context)
            });
            match switched {
                Ok(new) => changes.extend(block_changes(Some(old), Some(new), &existing.others, "")),
                Err(error) => errors.push(error.to_string()),
            }
        }
        if !errors.is_empty() {
            return Ok(cluster::refuse(&errors));
        }
        cluster::carry_out(&cluster, changes, args.write.dry_run).await?;
        Ok(Exit::Ok)
    })
}

fn older_than(policy: &ManagedPolicy, min: Duration, now: DateTime<Utc>) -> bool {
    policy.in_mode_since().is_some_and(|t| now.signed_duration_since(t).to_std().is_ok_and(|age| age > min))
}

/// `tune`.
pub fn tune(args: TuneArgs) -> anyhow::Result<Exit> {
    cluster::runtime()?.block_on(async {
        let cluster = args.write.connect().await?;
        cluster.ensure_tetragon().await?;
        let existing = cluster.managed(args.namespace.as_deref()).await?;
        let found: Vec<&Found> = existing.policies.iter().filter(|f| f.policy.name == args.name).collect();
        let old = match found.as_slice() {
            [] => anyhow::bail!("no managed TracingPolicy named {} (see kubectl qualys-respond status)", args.name),
            [one] => *one,
            several => anyhow::bail!(
                "{} names several policies ({}); pass -n NAMESPACE",
                args.name,
                several.iter().map(|f| f.policy.to_string()).collect::<Vec<_>>().join(", ")
            ),
        };
        let mut tuning = old.policy.tuning.clone();
        tuning.extend(Tuning {
            binaries: args.exclude_binary.iter().cloned().collect::<BTreeSet<_>>(),
            namespaces: args.exclude_namespace.iter().cloned().collect::<BTreeSet<_>>(),
        });
        let mut new = old.policy.clone();
        new.tune(&tuning)?;
        let context = reconcile::Context {
            actor: cluster.actor().await,
            now: Utc::now(),
            versions: TetragonVersion::ALL.to_vec(),
            guardrails: args.write.guard.guardrails(),
        };
        new.record("tuned", &context.actor, context.now);
        let new = match Block::checked(new, &context) {
            Ok(new) => new,
            Err(error) => return Ok(cluster::refuse(&[error])),
        };
        // A block policy brings its NetworkPolicy companion along.
        let changes = block_changes(Some(old), Some(new), &existing.others, "");
        cluster::carry_out(&cluster, changes, args.write.dry_run).await?;
        Ok(Exit::Ok)
    })
}
