//! `block` and `unblock`: manual blocks of destination addresses and ports,
//! checked against the guardrails, applied in audit mode first like every
//! other policy. The work is [`crate::block`]'s, shared with
//! `serve`'s `/api/block` and `/api/unblock`.

use std::time::Duration;

use chrono::Utc;
use clap::Args;

use super::cluster;
use super::cluster::WriteArgs;
use super::exit::Exit;
use crate::block::{self, BlockError, BlockRequest, MAX_ENTRIES, UnblockRequest, parse_values};
use crate::cluster::Cluster;
use crate::guardrails::parse_ip;
use crate::policy::Mode;
use crate::policy::validate::TetragonVersion;
use crate::reconcile::Context;

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
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::ttl)]
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
    #[arg(long, value_name = "N", default_value_t = MAX_ENTRIES)]
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

/// The exit code of a request the library refused (printed), or the error.
fn refused(error: BlockError) -> anyhow::Result<Exit> {
    match error {
        BlockError::Refused(reasons) => Ok(cluster::refuse(&reasons)),
        BlockError::Invalid(_) | BlockError::NotManaged(_) | BlockError::Corrupt(_) => {
            Ok(cluster::refuse(&[error.to_string()]))
        }
        BlockError::NothingToUnblock { warnings } => {
            warnings.iter().for_each(|w| eprintln!("warning: {w}"));
            anyhow::bail!("nothing to unblock")
        }
        BlockError::Cluster(error) => Err(error.into()),
    }
}

async fn context(cluster: &Cluster, write: &WriteArgs, protected: Option<crate::guardrails::Protected>) -> Context {
    let guardrails = write.guard.guardrails();
    let guardrails = match protected {
        Some(protected) => guardrails.with_cluster(protected),
        None => guardrails,
    };
    Context { actor: cluster.actor().await, now: Utc::now(), versions: TetragonVersion::ALL.to_vec(), guardrails }
}

pub fn block(args: BlockArgs) -> anyhow::Result<Exit> {
    let (ips, ports) = match parse_values(&args.ip, &args.port) {
        Ok(values) => values,
        Err(error) => return refused(error),
    };
    let mut protect = Vec::new();
    for cidr in &args.protect {
        protect.push((parse_ip(cidr)?, cidr.clone()));
    }
    let request = BlockRequest {
        ips,
        ports,
        reason: args.reason.clone(),
        ttl: args.ttl,
        action: args.action,
        namespace: args.namespace.clone(),
        network_policy: args.network_policy,
        force: args.force,
        max_entries: args.max_entries,
        protect,
    };
    cluster::runtime()?.block_on(async {
        let cluster = args.write.connect().await?;
        cluster.ensure_tetragon().await?;
        let protected = cluster.protected().await?;
        let context = context(&cluster, &args.write, Some(protected.clone())).await;
        let planned = match block::plan_block(&cluster, &request, &protected, &context).await {
            Ok(planned) => planned,
            Err(error) => return refused(error),
        };
        planned.warnings.iter().for_each(|w| eprintln!("warning: {w}"));
        cluster::carry_out(&cluster, planned.changes, args.write.dry_run).await?;
        Ok(Exit::Ok)
    })
}

pub fn unblock(args: UnblockArgs) -> anyhow::Result<Exit> {
    let (ips, ports) = match parse_values(&args.ip, &args.port) {
        Ok(values) => values,
        Err(error) => return refused(error),
    };
    let request = UnblockRequest { ips, ports, all: args.all, namespace: args.namespace.clone() };
    cluster::runtime()?.block_on(async {
        let cluster = args.write.connect().await?;
        cluster.ensure_tetragon().await?;
        let planned = match block::plan_unblock(&cluster, &request, &context(&cluster, &args.write, None).await).await {
            Ok(planned) => planned,
            Err(error) => return refused(error),
        };
        planned.warnings.iter().for_each(|w| eprintln!("warning: {w}"));
        cluster::carry_out(&cluster, planned.changes, args.write.dry_run).await?;
        Ok(Exit::Ok)
    })
}
