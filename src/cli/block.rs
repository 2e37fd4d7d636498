//! `block` and `unblock`: manual blocks of destination addresses and ports,
//! checked against the guardrails, applied in audit mode first like every
//! other policy.

use std::time::Duration;

use anyhow::bail;
use chrono::Utc;
use clap::Args;
use serde_json::Value;

use super::cluster::WriteArgs;
use super::{Exit, cluster};
use crate::block::guardrails::{check_ip, check_port, parse_ip, parse_port};
use crate::block::{self, Entry, Target};
use crate::cluster::Cluster;
use crate::cluster::resource::Resource;
use crate::policy::Mode;
use crate::policy::lifecycle::{self, name_of};
use crate::policy::validate::TetragonVersion;
use crate::reconcile::{self, Context, block_changes};

const BLOCK_EXAMPLES: &str = "\
Examples:
  kubectl qualys-respond block --ip 203.0.113.7,198.51.100.0/24 --reason 'C2 communication detected'
  kubectl qualys-respond block --port 4444,6666 --reason 'Reverse shell ports' --ttl 24h
  kubectl qualys-respond block --ip 203.0.113.7 -n payments --network-policy --action Sigkill
  kubectl qualys-respond promote cdr-manual-block-ip     # audit → enforce, after review

Refused: 0.0.0.0/0 and ::/0, ranges broader than /8 (IPv4) or /16 (IPv6), loopback, the
nodes' addresses, the API server, the cluster DNS, DNS's port 53, and more than --max-entries
entries. The pod and service ranges and the API server's and kubelet's ports are refused
unless --force.";

/// Block connections to addresses or ports.
///
/// Adds the values to the block policy (cdr-manual-block-ip or
/// cdr-manual-block-port; cluster-wide for containers, or a
/// TracingPolicyNamespaced with -n), which hooks tcp_connect and matches the
/// destination. A new block policy starts in audit mode (Post) unless
/// --action Sigkill; promote it once reviewed.
#[derive(Debug, Args)]
#[command(after_help = BLOCK_EXAMPLES)]
pub struct BlockArgs {
    /// Addresses or CIDRs, comma-separated or repeated.
    #[arg(long, value_name = "IP[,IP…]", value_delimiter = ',', required_unless_present = "port")]
    ip: Vec<String>,

    /// Ports, comma-separated or repeated.
    #[arg(long, value_name = "PORT[,PORT…]", value_delimiter = ',')]
    port: Vec<String>,

    /// Why: recorded with each entry.
    #[arg(long, value_name = "TEXT", default_value = "")]
    reason: String,

    /// Remove the entries after this long (the next sync or block removes them).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    ttl: Option<Duration>,

    /// Mode of a new block policy; an existing one keeps its mode (promote or demote it).
    #[arg(long, value_enum)]
    action: Option<Mode>,

    /// Block in this namespace only (TracingPolicyNamespaced); default: every container.
    #[arg(short, long, value_name = "NS")]
    namespace: Option<String>,

    /// Also deny egress to the addresses with a NetworkPolicy in --namespace while the block is enforced.
    #[arg(long, requires = "namespace")]
    network_policy: bool,

    /// Override the refusals marked as forceable (pod and service ranges, API server and kubelet ports).
    #[arg(long)]
    force: bool,

    /// Most entries one block policy may hold.
    #[arg(long, value_name = "N", default_value_t = 256)]
    max_entries: usize,

    /// Another range that must never be blocked (e.g. a VPN); repeatable.
    #[arg(long, value_name = "CIDR")]
    protect: Vec<String>,

    #[command(flatten)]
    write: WriteArgs,
}

/// Remove blocked addresses or ports.
///
/// Shrinks the block policy, or deletes it (and its NetworkPolicy) when no
/// entry is left.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  kubectl qualys-respond unblock --ip 203.0.113.7\n  kubectl qualys-respond unblock --port 4444 -n payments\n  kubectl qualys-respond unblock --all"
)]
pub struct UnblockArgs {
    /// Addresses or CIDRs, as they were blocked.
    #[arg(long, value_name = "IP[,IP…]", value_delimiter = ',', required_unless_present_any = ["port", "all"])]
    ip: Vec<String>,

    /// Ports.
    #[arg(long, value_name = "PORT[,PORT…]", value_delimiter = ',')]
    port: Vec<String>,

    /// Every entry of the block policies in scope.
    #[arg(long, conflicts_with_all = ["ip", "port"])]
    all: bool,

    /// The namespace the block was made in (default: the cluster-wide block).
    #[arg(short, long, value_name = "NS")]
    namespace: Option<String>,

    #[command(flatten)]
    write: WriteArgs,
}

async fn current(cluster: &Cluster, target: Target, namespace: Option<&str>) -> anyhow::Result<Option<Value>> {
    let resource = if namespace.is_some() { Resource::TracingPolicyNamespaced } else { Resource::TracingPolicy };
    let found = cluster.get(resource, namespace, target.policy_name()).await?;
    if let Some(object) = &found
        && !lifecycle::is_managed(object)
    {
        bail!("{} exists but is not managed by kubectl qualys-respond; it is left alone", name_of(object));
    }
    Ok(found)
}

async fn companions(cluster: &Cluster, namespace: Option<&str>) -> anyhow::Result<Vec<Value>> {
    Ok(match namespace {
        Some(ns) => cluster.list(Resource::NetworkPolicy, Some(ns), &cluster::managed_selector()).await?,
        None => Vec::new(),
    })
}

pub fn block(args: BlockArgs) -> anyhow::Result<Exit> {
    let mut refusals = Vec::new();
    let ips: Vec<ipnet::IpNet> =
        args.ip.iter().filter_map(|v| parse_ip(v).map_err(|e| refusals.push(e)).ok()).collect();
    let ports: Vec<u16> = args.port.iter().filter_map(|v| parse_port(v).map_err(|e| refusals.push(e)).ok()).collect();
    if !refusals.is_empty() {
        return Ok(cluster::refuse(&refusals));
    }
    cluster::runtime()?.block_on(async {
        let cluster = Cluster::connect(&args.write.kube).await?;
        cluster.ensure_tetragon().await?;
        let mut protected = cluster.protected().await?;
        for cidr in &args.protect {
            protected.range(parse_ip(cidr).map_err(anyhow::Error::msg)?, format!("--protect {cidr}"), false);
        }
        refusals.extend(ips.iter().filter_map(|ip| check_ip(ip, &protected, args.force)));
        refusals.extend(ports.iter().filter_map(|port| check_port(*port, &protected, args.force)));
        if !refusals.is_empty() {
            return Ok(cluster::refuse(&refusals));
        }
        let namespace = args.namespace.as_deref();
        let context =
            Context { actor: cluster.actor().await, now: Utc::now(), versions: TetragonVersion::ALL.to_vec() };
        let existing = companions(&cluster, namespace).await?;
        let mut changes = Vec::new();
        let wanted = [
            (Target::Ip, ips.iter().map(|ip| ip.to_string()).collect::<Vec<_>>()),
            (Target::Port, ports.iter().map(|p| p.to_string()).collect::<Vec<_>>()),
        ];
        for (target, values) in wanted.into_iter().filter(|(_, v)| !v.is_empty()) {
            let old = current(&cluster, target, namespace).await?;
            let mut entries: Vec<Entry> = match &old {
                Some(old) => block::entries_of(old).map_err(anyhow::Error::msg)?,
                None => Vec::new(),
            };
            entries.retain(|e| !e.expired(context.now));
            let new_entries = values
                .into_iter()
                .map(|value| block::entry(value, &args.reason, &context.actor, context.now, args.ttl))
                .collect();
            block::upsert(&mut entries, new_entries);
            if entries.len() > args.max_entries {
                return Ok(cluster::refuse(&[format!(
                    "{} would hold {} entries, more than --max-entries {}; unblock some or raise the limit",
                    target.policy_name(),
                    entries.len(),
                    args.max_entries
                )]));
            }
            let existing_mode = old.as_ref().and_then(lifecycle::mode_of);
            if let (Some(existing_mode), Some(wanted_mode)) = (existing_mode, args.action)
                && existing_mode != wanted_mode
            {
                let verb = if wanted_mode == Mode::Sigkill { "promote" } else { "demote" };
                return Ok(cluster::refuse(&[format!(
                    "{} is in {} mode; {verb} it (kubectl qualys-respond {verb} {}) or leave out --action",
                    target.policy_name(),
                    existing_mode.label(),
                    target.policy_name()
                )]));
            }
            let mode = existing_mode.or(args.action).unwrap_or_default();
            let network = args.network_policy
                || old.as_ref().and_then(|o| lifecycle::annotation(o, block::NETWORK_POLICY)) == Some("true");
            let mut new = block::build(target, &entries, namespace, mode, network && target == Target::Ip);
            match &old {
                Some(old) => lifecycle::carry_over(&mut new, old)?,
                None => lifecycle::record(&mut new, "created", &context.actor, context.now),
            }
            if let Err(error) = reconcile::check(&new, &context.versions) {
                return Ok(cluster::refuse(&[error]));
            }
            changes.extend(block_changes(old.as_ref(), Some(new), &existing, ""));
        }
        cluster::carry_out(&cluster, changes, args.write.dry_run).await?;
        Ok(Exit::Ok)
    })
}

pub fn unblock(args: UnblockArgs) -> anyhow::Result<Exit> {
    let mut problems = Vec::new();
    let ips: Vec<String> =
        args.ip.iter().filter_map(|v| parse_ip(v).map(|n| n.to_string()).map_err(|e| problems.push(e)).ok()).collect();
    let ports: Vec<String> = args
        .port
        .iter()
        .filter_map(|v| parse_port(v).map(|p| p.to_string()).map_err(|e| problems.push(e)).ok())
        .collect();
    if !problems.is_empty() {
        return Ok(cluster::refuse(&problems));
    }
    cluster::runtime()?.block_on(async {
        let cluster = Cluster::connect(&args.write.kube).await?;
        cluster.ensure_tetragon().await?;
        let namespace = args.namespace.as_deref();
        let context =
            Context { actor: cluster.actor().await, now: Utc::now(), versions: TetragonVersion::ALL.to_vec() };
        let existing = companions(&cluster, namespace).await?;
        let mut changes = Vec::new();
        let mut not_blocked: Vec<String> = Vec::new();
        let mut removed = 0;
        for (target, values) in [(Target::Ip, &ips), (Target::Port, &ports)] {
            if values.is_empty() && !args.all {
                continue;
            }
            let Some(old) = current(&cluster, target, namespace).await? else {
                not_blocked.extend(values.iter().cloned());
                continue;
            };
            let entries = block::entries_of(&old).map_err(anyhow::Error::msg)?;
            let (gone, kept): (Vec<Entry>, Vec<Entry>) =
                entries.into_iter().partition(|e| args.all || values.contains(&e.value));
            not_blocked.extend(values.iter().filter(|v| !gone.iter().any(|e| &e.value == *v)).cloned());
            if gone.is_empty() {
                continue;
            }
            removed += gone.len();
            let reason = format!("unblocked: {}", gone.iter().map(|e| e.value.as_str()).collect::<Vec<_>>().join(", "));
            let new = if kept.is_empty() {
                None
            } else {
                let mut rebuilt = reconcile::rebuild_block(&old, kept, &context).map_err(anyhow::Error::msg)?;
                lifecycle::record(&mut rebuilt, "unblocked", &context.actor, context.now);
                Some(rebuilt)
            };
            changes.extend(block_changes(Some(&old), new, &existing, &reason));
        }
        for value in &not_blocked {
            eprintln!("warning: {value} was not blocked{}", namespace.map(|n| format!(" in {n}")).unwrap_or_default());
        }
        if removed == 0 {
            bail!("nothing to unblock");
        }
        cluster::carry_out(&cluster, changes, args.write.dry_run).await?;
        Ok(Exit::Ok)
    })
}
