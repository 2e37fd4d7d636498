//! A block or unblock request, from whichever door it came in (`block` and
//! `unblock` on the command line, `POST /api/block` and `/api/unblock` on
//! the server), turned into the changes that carry it out. Both doors share
//! this code, so they share every guardrail, the audit default and the
//! objects they write.

use std::time::Duration;

use ipnet::IpNet;
use serde_json::Value;

use crate::cluster::resource::Resource;
use crate::cluster::{Cluster, ClusterError, managed_selector};
use crate::guardrails::{Protected, Refusal, ValueError, check_ip, check_port, parse_ip, parse_port};
use crate::policy::block::{Target, build, entry, upsert};
use crate::policy::managed::BlockEntry;
use crate::policy::{Found, ManagedPolicy, Mode, system_namespace_mode};
use crate::reconcile::{Block, Change, Context, ReconcileError, block_changes, entries, rebuild_block};

/// Default cap on the entries of one block policy.
pub const MAX_ENTRIES: usize = 256;

/// Why a block or unblock request writes nothing.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// Values or the resulting policy refused: every reason, one per line.
    #[error("{}", lines(.0))]
    Refused(Vec<Refused>),
    /// Nothing the request names is blocked.
    #[error("nothing to unblock")]
    NothingToUnblock {
        /// The values that were not blocked.
        warnings: Vec<String>,
    },
    /// The block policy as it would be written is not valid, or cannot keep its mode.
    #[error(transparent)]
    Invalid(ReconcileError),
    /// A block policy of that name exists and is not ours.
    #[error("{0} exists but is not managed by kubectl qualys-respond; it is left alone")]
    NotManaged(String),
    /// A block policy we made whose entries cannot be read.
    #[error(transparent)]
    Corrupt(ReconcileError),
    /// The cluster could not be read.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// One reason a block request writes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// A value is not an address, a range or a port.
    #[error(transparent)]
    Value(#[from] ValueError),
    /// A value is protected by the guardrails.
    #[error(transparent)]
    Protected(#[from] Refusal),
    /// The block policy would hold more entries than allowed.
    #[error("{policy} would hold {entries} entries, more than --max-entries {max}; unblock some or raise the limit")]
    TooManyEntries {
        /// The block policy.
        policy: &'static str,
        /// How many it would hold.
        entries: usize,
        /// The limit.
        max: usize,
    },
    /// The block policy exists in the other mode than the one asked for.
    #[error("{policy} is in {} mode; {verb} it (kubectl qualys-respond {verb} {policy}) or leave out --action", .mode.label(), verb = if *.mode == Mode::Sigkill { "demote" } else { "promote" })]
    OtherMode {
        /// The block policy.
        policy: &'static str,
        /// The mode it is in.
        mode: Mode,
    },
}

fn lines(refusals: &[Refused]) -> String {
    refusals.iter().map(Refused::to_string).collect::<Vec<_>>().join("\n")
}

/// What to block, as parsed and checked for form (not yet for the cluster).
#[derive(Debug, Clone, Default)]
pub struct BlockRequest {
    /// Destination ranges.
    pub ips: Vec<IpNet>,
    /// Destination ports.
    pub ports: Vec<u16>,
    /// Why, recorded with each entry.
    pub reason: String,
    /// Entries expire after this long.
    pub ttl: Option<Duration>,
    /// Mode of a new block policy (an existing one keeps its mode).
    pub action: Option<Mode>,
    /// One namespace (a TracingPolicyNamespaced), or every container.
    pub namespace: Option<String>,
    /// Also a NetworkPolicy in the namespace while enforced.
    pub network_policy: bool,
    /// Override the forceable refusals.
    pub force: bool,
    /// Most entries one block policy may hold.
    pub max_entries: usize,
    /// Further ranges that must never be blocked, with how the user named them.
    pub protect: Vec<(IpNet, String)>,
}

/// What to unblock.
#[derive(Debug, Clone, Default)]
pub struct UnblockRequest {
    /// Ranges, as blocked.
    pub ips: Vec<IpNet>,
    /// Ports.
    pub ports: Vec<u16>,
    /// Every entry of the block policies in scope.
    pub all: bool,
    /// The namespace the block was made in, or the cluster-wide block.
    pub namespace: Option<String>,
}

/// The changes a request makes, and what the operator should hear.
#[derive(Debug)]
pub struct Planned {
    /// In order.
    pub changes: Vec<Change>,
    /// Values that were not blocked, and the like.
    pub warnings: Vec<String>,
}

/// Parses addresses (or CIDRs) and ports; every value that does not parse
/// is a refusal.
pub fn parse_values(ips: &[String], ports: &[String]) -> Result<(Vec<IpNet>, Vec<u16>), BlockError> {
    let mut refusals = Vec::new();
    let ips = ips.iter().filter_map(|v| parse_ip(v).map_err(|e| refusals.push(e.into())).ok()).collect();
    let ports = ports.iter().filter_map(|v| parse_port(v).map_err(|e| refusals.push(e.into())).ok()).collect();
    if refusals.is_empty() { Ok((ips, ports)) } else { Err(BlockError::Refused(refusals)) }
}

fn resource_for(namespace: Option<&str>) -> Resource {
    if namespace.is_some() { Resource::TracingPolicyNamespaced } else { Resource::TracingPolicy }
}

/// The block policy of `target` in scope, if there is one (and it is ours).
async fn current(cluster: &Cluster, target: Target, namespace: Option<&str>) -> Result<Option<Found>, BlockError> {
    let Some(object) = cluster.get(resource_for(namespace), namespace, target.policy_name()).await? else {
        return Ok(None);
    };
    let policy = ManagedPolicy::from_value(&object)
        .ok_or_else(|| BlockError::NotManaged(crate::policy::ObjectName::of(&object).to_string()))?;
    if !policy.is_managed() {
        return Err(BlockError::NotManaged(policy.to_string()));
    }
    Ok(Some(Found { policy, object }))
}

/// The NetworkPolicies we manage in the block's namespace, read only for an
/// IP block with `--network-policy` (so a cluster without companions needs
/// no right to read them).
async fn companions(
    cluster: &Cluster,
    target: Target,
    namespace: Option<&str>,
    network_policy: bool,
) -> Result<Vec<Value>, BlockError> {
    Ok(match namespace {
        Some(ns) if target == Target::Ip && network_policy => {
            cluster.list(Resource::NetworkPolicy, Some(ns), &managed_selector()).await?
        }
        _ => Vec::new(),
    })
}

fn entries_of(found: &Found) -> Result<Vec<BlockEntry>, BlockError> {
    entries(&found.policy).map_err(BlockError::Corrupt)
}

/// The changes that add `request`'s values to the block policies, checked
/// against `protected` (the cluster's guardrails) and validated.
pub async fn plan_block(
    cluster: &Cluster,
    request: &BlockRequest,
    protected: &Protected,
    context: &Context,
) -> Result<Planned, BlockError> {
    let mut protected = protected.clone();
    for (net, named) in &request.protect {
        protected.range(*net, format!("--protect {named}"), false);
    }
    let mut refusals: Vec<Refused> =
        request.ips.iter().filter_map(|ip| check_ip(ip, &protected, request.force)).map(Refused::from).collect();
    refusals.extend(
        request.ports.iter().filter_map(|port| check_port(*port, &protected, request.force)).map(Refused::from),
    );
    if !refusals.is_empty() {
        return Err(BlockError::Refused(refusals));
    }
    // A forced block was allowed past the forceable refusals above; the
    // policy check must not bring them back.
    let forced;
    let context = if request.force {
        let mut stripped = context.clone();
        stripped.guardrails.protected = context.guardrails.protected.without_forceable();
        forced = stripped;
        &forced
    } else {
        context
    };
    let namespace = request.namespace.as_deref();
    let mut changes = Vec::new();
    let mut warnings = Vec::new();
    let wanted = [
        (Target::Ip, request.ips.iter().map(IpNet::to_string).collect::<Vec<_>>()),
        (Target::Port, request.ports.iter().map(u16::to_string).collect::<Vec<_>>()),
    ];
    for (target, values) in wanted.into_iter().filter(|(_, v)| !v.is_empty()) {
        let old = current(cluster, target, namespace).await?;
        let mut entries = match &old {
            Some(old) => entries_of(old)?,
            None => Vec::new(),
        };
        entries.retain(|e| !e.expired(context.now));
        let new_entries = values
            .into_iter()
            .map(|value| entry(value, &request.reason, &context.actor, context.now, request.ttl))
            .collect();
        upsert(&mut entries, new_entries);
        if entries.len() > request.max_entries {
            return Err(BlockError::Refused(vec![Refused::TooManyEntries {
                policy: target.policy_name(),
                entries: entries.len(),
                max: request.max_entries,
            }]));
        }
        let existing_mode = old.as_ref().and_then(|old| old.policy.mode());
        if let (Some(existing_mode), Some(wanted_mode)) = (existing_mode, request.action)
            && existing_mode != wanted_mode
        {
            return Err(BlockError::Refused(vec![Refused::OtherMode {
                policy: target.policy_name(),
                mode: existing_mode,
            }]));
        }
        let mode = match existing_mode {
            Some(mode) => mode,
            None => {
                let (mode, warning) =
                    system_namespace_mode(namespace, request.action.unwrap_or_default(), &context.guardrails);
                warnings.extend(warning);
                mode
            }
        };
        let network = request.network_policy || old.as_ref().is_some_and(|old| old.policy.network_policy);
        let mut new = build(target, &entries, namespace, mode, network && target == Target::Ip, &context.guardrails);
        match &old {
            Some(old) => new.carry_over(&old.policy).map_err(|e| BlockError::Invalid(e.into()))?,
            None => new.record("created", &context.actor, context.now),
        }
        let new = Block::checked(new, context).map_err(BlockError::Invalid)?;
        let existing = companions(cluster, target, namespace, network).await?;
        changes.extend(block_changes(old.as_ref(), Some(new), &existing, ""));
    }
    Ok(Planned { changes, warnings })
}

/// The changes that remove `request`'s values: a block policy shrinks, or
/// goes (with its NetworkPolicy) with its last entry.
pub async fn plan_unblock(
    cluster: &Cluster,
    request: &UnblockRequest,
    context: &Context,
) -> Result<Planned, BlockError> {
    let namespace = request.namespace.as_deref();
    let ips: Vec<String> = request.ips.iter().map(IpNet::to_string).collect();
    let ports: Vec<String> = request.ports.iter().map(u16::to_string).collect();
    let mut changes = Vec::new();
    let mut not_blocked: Vec<String> = Vec::new();
    let mut removed = 0;
    for (target, values) in [(Target::Ip, &ips), (Target::Port, &ports)] {
        if values.is_empty() && !request.all {
            continue;
        }
        let Some(old) = current(cluster, target, namespace).await? else {
            not_blocked.extend(values.iter().cloned());
            continue;
        };
        let (gone, kept): (Vec<BlockEntry>, Vec<BlockEntry>) =
            entries_of(&old)?.into_iter().partition(|e| request.all || values.contains(&e.value));
        not_blocked.extend(values.iter().filter(|v| !gone.iter().any(|e| &e.value == *v)).cloned());
        if gone.is_empty() {
            continue;
        }
        removed += gone.len();
        let reason = format!("unblocked: {}", gone.iter().map(|e| e.value.as_str()).collect::<Vec<_>>().join(", "));
        let new = if kept.is_empty() {
            None
        } else {
            let mut rebuilt = rebuild_block(&old.policy, kept, context).map_err(BlockError::Invalid)?;
            rebuilt.record("unblocked", &context.actor, context.now);
            Some(Block::checked(rebuilt, context).map_err(BlockError::Invalid)?)
        };
        let existing = companions(cluster, target, namespace, old.policy.network_policy).await?;
        changes.extend(block_changes(Some(&old), new, &existing, &reason));
    }
    let scope = namespace.map(|n| format!(" in {n}")).unwrap_or_default();
    let warnings = not_blocked.iter().map(|value| format!("{value} was not blocked{scope}")).collect();
    if removed == 0 {
        return Err(BlockError::NothingToUnblock { warnings });
    }
    Ok(Planned { changes, warnings })
}
