//! From what a run wants and what the cluster holds to the list of changes
//! that `sync --apply` makes: new objects start their history, existing ones
//! absorb the new findings while keeping their mode and tuning, expired
//! block entries go, and with `--prune` so do the policies that lost their
//! reason to exist. Everything is validated again after merging, in the mode
//! it will have and in enforce mode, before a single write. The changes are
//! [`Change`]s, which the cluster module carries out; manual blocks plan
//! theirs here too (`block_changes`), so every door shares the same checks.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::guardrails::Guardrails;
use crate::policy::block::{self, Target, network};
use crate::policy::lifecycle::LifecycleError;
use crate::policy::managed::BlockEntry;
use crate::policy::managed::Json;
use crate::policy::validate::{Problem, TetragonVersion, validate_with};
use crate::policy::{Found, Inventory, ManagedPolicy, Mode, ObjectName};

/// One wanted change.
#[derive(Debug, Clone)]
pub enum Change {
    /// Apply `desired`; `existing` is what the cluster held when the change was planned.
    Apply {
        /// The object as we want it.
        desired: Value,
        /// The object as the cluster had it.
        existing: Option<Value>,
    },
    /// Delete `existing`, for `reason`.
    Delete {
        /// The object as the cluster had it.
        existing: Value,
        /// Why (expired, no mapper, …).
        reason: String,
    },
}

/// Why a change cannot be planned.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReconcileError {
    /// Merging into what exists, switching the mode or re-applying tuning failed.
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    /// The object as it would be stored, or once promoted, breaks a rule.
    #[error("{name} is not valid:\n{}", problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// The object.
        name: String,
        /// Every problem, those of enforce mode marked "(once promoted)".
        problems: Vec<Problem>,
    },
    /// A block policy of ours whose entries cannot be read.
    #[error("{name}: its {annotation} annotation is not valid JSON; fix or delete it", annotation = crate::policy::managed::BLOCK_ENTRIES)]
    UnreadableBlocks {
        /// The object.
        name: String,
    },
    /// A policy treated as a block that is not one of the block policies.
    #[error("{0} is not a block policy")]
    NotABlock(String),
}

/// When a policy we made no longer has a reason to exist.
pub struct PruneRules<'a> {
    /// Audit-mode policies with no finding for this long go. Enforced
    /// policies were reviewed and promoted: age never removes them.
    pub after: Option<Duration>,
    /// Categories some mapper still handles; a generated policy of any
    /// other category goes.
    pub handled: &'a dyn Fn(&str) -> bool,
}

/// Who and when, for the history.
#[derive(Debug, Clone)]
pub struct Context {
    /// The user the API server sees.
    pub actor: String,
    /// Now.
    pub now: DateTime<Utc>,
    /// CRD versions to validate against.
    pub versions: Vec<TetragonVersion>,
    /// What no policy may target (with the cluster's ranges when known),
    /// and where policies stay in audit mode.
    pub guardrails: Guardrails,
}

/// Checks `policy` as it will be stored and as it would be enforced, and
/// returns it as it will be written.
pub fn check(policy: &ManagedPolicy, context: &Context) -> Result<Value, ReconcileError> {
    let (versions, guardrails) = (&context.versions, &context.guardrails);
    let object = policy.to_value();
    let mut problems = validate_with(&object, versions, guardrails);
    if policy.mode() != Some(Mode::Sigkill) {
        let mut enforced = policy.clone();
        enforced.set_mode(Mode::Sigkill)?;
        problems.extend(validate_with(&enforced.to_value(), versions, guardrails).into_iter().map(|mut p| {
            p.message = format!("{} (once promoted)", p.message);
            p
        }));
    }
    if problems.is_empty() { Ok(object) } else { Err(ReconcileError::Invalid { name: policy.to_string(), problems }) }
}

/// The changes that bring the cluster (`existing`: every object we manage)
/// to what this run wants (`desired`), with the block expiry and prune rules.
pub fn plan(
    desired: Vec<ManagedPolicy>,
    existing: &Inventory,
    context: &Context,
    prune: Option<&PruneRules<'_>>,
) -> Result<Vec<Change>, Vec<ReconcileError>> {
    let mut changes = Vec::new();
    let mut errors = Vec::new();
    let mut wanted = Vec::new();
    for mut policy in desired {
        let found = existing.policy(policy.kind, policy.namespace.as_deref(), &policy.name);
        let merged = match found {
            Some(old) => policy.merge_existing(&old.policy).map_err(ReconcileError::from),
            None => {
                policy.record("created", &context.actor, context.now);
                Ok(())
            }
        };
        wanted.push((policy.kind, policy.namespace.clone(), policy.name.clone()));
        match merged.and_then(|()| check(&policy, context)) {
            Ok(object) => changes.push(Change::Apply { desired: object, existing: found.map(|f| f.object.clone()) }),
            Err(error) => errors.push(error),
        }
    }
    let mut removals = Vec::new();
    let left = existing.policies.iter().filter(|found| {
        let key = (found.policy.kind, found.policy.namespace.clone(), found.policy.name.clone());
        !wanted.contains(&key)
    });
    for old in left {
        match old.policy.source() {
            Some("block") => match expire_block(old, existing, context) {
                Ok(found) => removals.extend(found),
                Err(error) => errors.push(error),
            },
            Some("cdr") => {
                if let Some(reason) = prune.and_then(|rules| prune_reason(&old.policy, rules, context.now)) {
                    removals.push(Change::Delete { existing: old.object.clone(), reason });
                }
            }
            _ => {}
        }
    }
    changes.extend(removals);
    if errors.is_empty() { Ok(changes) } else { Err(errors) }
}

fn prune_reason(policy: &ManagedPolicy, rules: &PruneRules<'_>, now: DateTime<Utc>) -> Option<String> {
    let category = policy.category().unwrap_or_default();
    if !(rules.handled)(category) {
        return Some(format!("no mapper handles category {category} any more"));
    }
    let after = rules.after?;
    if policy.mode() == Some(Mode::Sigkill) {
        return None;
    }
    let age = now.signed_duration_since(policy.last_seen()?).to_std().ok()?;
    (age > after).then(|| format!("audit only and no finding for {}", humantime::format_duration(after)))
}

/// The entries of a block policy of ours.
pub fn entries(policy: &ManagedPolicy) -> Result<Vec<BlockEntry>, ReconcileError> {
    match &policy.blocks {
        Json::Absent => Ok(Vec::new()),
        Json::Valid(entries) => Ok(entries.clone()),
        Json::Invalid(_) => Err(ReconcileError::UnreadableBlocks { name: policy.to_string() }),
    }
}

/// The changes that drop the expired entries of a block policy (and its
/// NetworkPolicy companion).
pub fn expire_block(found: &Found, existing: &Inventory, context: &Context) -> Result<Vec<Change>, ReconcileError> {
    let (expired, kept): (Vec<_>, Vec<_>) = entries(&found.policy)?.into_iter().partition(|e| e.expired(context.now));
    if expired.is_empty() {
        return Ok(Vec::new());
    }
    let reason = format!("expired: {}", expired.iter().map(|e| e.value.as_str()).collect::<Vec<_>>().join(", "));
    let updated = if kept.is_empty() {
        None
    } else {
        Some(Block::checked(rebuild_block(&found.policy, kept, context)?, context)?)
    };
    Ok(block_changes(Some(found), updated, &existing.others, &reason))
}

/// `policy` rebuilt with `entries`, keeping its mode, scope, companion and history.
pub fn rebuild_block(
    policy: &ManagedPolicy,
    entries: Vec<BlockEntry>,
    context: &Context,
) -> Result<ManagedPolicy, ReconcileError> {
    let target = Target::of(policy).ok_or_else(|| ReconcileError::NotABlock(policy.to_string()))?;
    let mode = policy.mode().unwrap_or_default();
    let namespace = policy.namespace.as_deref();
    let mut rebuilt = block::build(target, &entries, namespace, mode, policy.network_policy, &context.guardrails);
    rebuilt.carry_over(policy)?;
    Ok(rebuilt)
}

/// A block policy as it will be written, and its NetworkPolicy companion,
/// which exists only while the block is enforced, wants one, and blocks
/// addresses.
pub struct Block {
    policy: ManagedPolicy,
    object: Value,
}

impl Block {
    /// Checks `policy` (see [`check`]) and keeps it with its written form.
    pub fn checked(policy: ManagedPolicy, context: &Context) -> Result<Block, ReconcileError> {
        let object = check(&policy, context)?;
        Ok(Block { policy, object })
    }

    fn companion(&self) -> Option<Value> {
        let policy = &self.policy;
        let namespace = policy.namespace.as_deref()?;
        let wanted =
            policy.network_policy && policy.mode() == Some(Mode::Sigkill) && Target::of(policy) == Some(Target::Ip);
        if !wanted {
            return None;
        }
        let listed = policy.blocks.valid().map(Vec::as_slice).unwrap_or_default();
        let ranges: Vec<ipnet::IpNet> = listed.iter().filter_map(|e| e.value.parse().ok()).collect();
        network::network_policy(policy, namespace, &ranges)
    }
}

/// The changes for a block policy going from `old` to `new` (`None`:
/// deleted): the policy itself and its NetworkPolicy companion among `others`.
pub fn block_changes(old: Option<&Found>, new: Option<Block>, others: &[Value], reason: &str) -> Vec<Change> {
    let mut changes = Vec::new();
    let Some(name) =
        new.as_ref().map(|b| &b.policy).or(old.map(|f| &f.policy)).map(|p| (p.name.clone(), p.namespace.clone()))
    else {
        return changes;
    };
    let live_companion = others.iter().find(|e| {
        let other = ObjectName::of(e);
        other.kind == "NetworkPolicy" && other.name == name.0 && other.namespace == name.1.as_deref()
    });
    let wanted_companion = new.as_ref().and_then(Block::companion);
    match (new, old) {
        (Some(new), old) => {
            changes.push(Change::Apply { desired: new.object, existing: old.map(|f| f.object.clone()) })
        }
        (None, Some(old)) => changes.push(Change::Delete { existing: old.object.clone(), reason: reason.to_string() }),
        (None, None) => {}
    }
    match (wanted_companion, live_companion) {
        (Some(desired), live) => changes.push(Change::Apply { desired, existing: live.cloned() }),
        (None, Some(live)) => changes.push(Change::Delete { existing: live.clone(), reason: reason.to_string() }),
        (None, None) => {}
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::labels;
    use crate::policy::managed::timestamp;

    fn context() -> Context {
        Context {
            actor: "tester".into(),
            now: Utc::now(),
            versions: TetragonVersion::ALL.to_vec(),
            guardrails: Guardrails::default(),
        }
    }

    fn found(policy: ManagedPolicy) -> Found {
        Found { object: policy.to_value(), policy }
    }

    #[test]
    fn expired_entries_shrink_the_block_and_the_last_one_deletes_it() {
        let ctx = context();
        let past = ctx.now - chrono::Duration::hours(2);
        let ttl = Some(Duration::from_secs(3600));
        let entries = vec![
            block::entry("203.0.113.7/32".into(), "c2", "a", past, ttl),
            block::entry("198.51.100.0/24".into(), "c2", "a", past, None),
        ];
        let object = found(block::build(Target::Ip, &entries, None, Mode::Post, false, &Guardrails::default()));
        let changes = expire_block(&object, &Inventory::default(), &ctx).unwrap();
        let Change::Apply { desired, .. } = &changes[0] else { panic!("{changes:?}") };
        let rebuilt = ManagedPolicy::from_value(desired).unwrap();
        assert_eq!(super::entries(&rebuilt).unwrap().len(), 1);
        let only = vec![entries[0].clone()];
        let object = found(block::build(Target::Ip, &only, None, Mode::Post, false, &Guardrails::default()));
        let changes = expire_block(&object, &Inventory::default(), &ctx).unwrap();
        assert!(matches!(&changes[..], [Change::Delete { reason, .. }] if reason.contains("203.0.113.7/32")));
    }

    #[test]
    fn unreadable_block_entries_are_an_error_not_an_empty_block() {
        let mut policy = block::build(Target::Port, &[], None, Mode::Post, false, &Guardrails::default());
        policy.blocks = Json::Invalid("[".into());
        let error = expire_block(&found(policy), &Inventory::default(), &context()).unwrap_err();
        assert!(matches!(error, ReconcileError::UnreadableBlocks { .. }), "{error}");
    }

    #[test]
    fn prune_spares_enforced_and_recent_policies() {
        let ctx = context();
        let handled = |c: &str| c != "gone";
        let rules = PruneRules { after: Some(Duration::from_secs(3600)), handled: &handled };
        let old = timestamp(ctx.now - chrono::Duration::hours(3));
        let object = |category: &str, mode: &str| {
            ManagedPolicy::from_value(&serde_json::json!({"kind": "TracingPolicy",
                "metadata": {"name": "p", "labels": {labels::CATEGORY: category, labels::MODE: mode},
                "annotations": {labels::LAST_DETECTED: old}}}))
            .unwrap()
        };
        assert!(prune_reason(&object("gone", "enforce"), &rules, ctx.now).unwrap().contains("no mapper"));
        assert!(prune_reason(&object("x", "audit"), &rules, ctx.now).unwrap().contains("no finding for 1h"));
        assert_eq!(prune_reason(&object("x", "enforce"), &rules, ctx.now), None);
        let recent = PruneRules { after: Some(Duration::from_secs(5 * 3600)), handled: &|_| true };
        assert_eq!(prune_reason(&object("x", "audit"), &recent, ctx.now), None);
    }
}
