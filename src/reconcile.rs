//! From what a run wants and what the cluster holds to the list of changes
//! that `sync --apply` makes: new objects start their history, existing ones
//! absorb the new findings while keeping their mode and tuning, expired
//! block entries go, and with `--prune` so do the policies that lost their
//! reason to exist. Everything is validated again after merging, in the mode
//! it will have and in enforce mode, before a single write.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::block::{self, network};
use crate::cluster::apply::Change;
use crate::guardrails::Guardrails;
use crate::policy::lifecycle::{self, annotation, label, name_of};
use crate::policy::validate::{TetragonVersion, validate_with};
use crate::policy::{Mode, labels};

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

fn same_object(a: &Value, b: &Value) -> bool {
    let key = |o: &Value| {
        (o.get("kind").cloned(), o.pointer("/metadata/namespace").cloned(), o.pointer("/metadata/name").cloned())
    };
    key(a) == key(b)
}

/// Checks `object` as it will be stored and as it would be enforced.
pub fn check(object: &Value, context: &Context) -> Result<(), String> {
    let (versions, guardrails) = (&context.versions, &context.guardrails);
    let mut problems = validate_with(object, versions, guardrails);
    if lifecycle::mode_of(object) != Some(Mode::Sigkill) {
        let mut enforced = object.clone();
        lifecycle::set_mode(&mut enforced, Mode::Sigkill).map_err(|e| e.to_string())?;
        problems.extend(validate_with(&enforced, versions, guardrails).into_iter().map(|mut p| {
            p.message = format!("{} (once promoted)", p.message);
            p
        }));
    }
    if problems.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
    Err(format!("{} is not valid:\n{}", name_of(object), lines.join("\n")))
}

/// The changes that bring the cluster (`existing`: every object we manage)
/// to what this run wants (`desired`), with the block expiry and prune rules.
pub fn plan(
    desired: Vec<Value>,
    existing: &[Value],
    context: &Context,
    prune: Option<&PruneRules<'_>>,
) -> Result<Vec<Change>, Vec<String>> {
    let mut changes = Vec::new();
    let mut errors = Vec::new();
    for mut object in desired {
        let found = existing.iter().find(|e| same_object(e, &object));
        let merged = match found {
            Some(old) => lifecycle::merge_existing(&mut object, old).map_err(|e| e.to_string()),
            None => {
                lifecycle::record(&mut object, "created", &context.actor, context.now);
                Ok(())
            }
        };
        match merged.and_then(|()| check(&object, context)) {
            Ok(()) => changes.push(Change::Apply { desired: object, existing: found.cloned() }),
            Err(error) => errors.push(error),
        }
    }
    let wanted: Vec<&Value> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Apply { desired, .. } => Some(desired),
            Change::Delete { .. } => None,
        })
        .collect();
    let mut removals = Vec::new();
    for old in existing.iter().filter(|e| !wanted.iter().any(|w| same_object(w, e))) {
        match label(old, labels::SOURCE) {
            Some("block") if old.get("kind").and_then(Value::as_str) != Some("NetworkPolicy") => {
                match expire_block(old, existing, context) {
                    Ok(found) => removals.extend(found),
                    Err(error) => errors.push(error),
                }
            }
            Some("cdr") => {
                if let Some(reason) = prune.and_then(|rules| prune_reason(old, rules, context.now)) {
                    removals.push(Change::Delete { existing: old.clone(), reason });
                }
            }
            _ => {}
        }
    }
    changes.extend(removals);
    if errors.is_empty() { Ok(changes) } else { Err(errors) }
}

fn prune_reason(object: &Value, rules: &PruneRules<'_>, now: DateTime<Utc>) -> Option<String> {
    let category = label(object, labels::CATEGORY).unwrap_or_default();
    if !(rules.handled)(category) {
        return Some(format!("no mapper handles category {category} any more"));
    }
    let after = rules.after?;
    if lifecycle::mode_of(object) == Some(Mode::Sigkill) {
        return None;
    }
    let last = annotation(object, labels::LAST_DETECTED)
        .or_else(|| object.pointer("/metadata/creationTimestamp").and_then(Value::as_str))
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())?;
    let age = now.signed_duration_since(last.with_timezone(&Utc)).to_std().ok()?;
    (age > after).then(|| format!("audit only and no finding for {}", humantime::format_duration(after)))
}

/// The changes that drop the expired entries of a block policy (and its
/// NetworkPolicy companion).
pub fn expire_block(object: &Value, existing: &[Value], context: &Context) -> Result<Vec<Change>, String> {
    let entries = block::entries_of(object).map_err(|e| format!("{}: {e}", name_of(object)))?;
    let (expired, kept): (Vec<_>, Vec<_>) = entries.into_iter().partition(|e| e.expired(context.now));
    if expired.is_empty() {
        return Ok(Vec::new());
    }
    let reason = format!("expired: {}", expired.iter().map(|e| e.value.as_str()).collect::<Vec<_>>().join(", "));
    let updated = if kept.is_empty() { None } else { Some(rebuild_block(object, kept, context)?) };
    Ok(block_changes(Some(object), updated, existing, &reason))
}

/// `object` rebuilt with `entries`, keeping its mode, scope, companion and history.
pub fn rebuild_block(object: &Value, entries: Vec<block::Entry>, context: &Context) -> Result<Value, String> {
    let target = block::Target::of(object).ok_or_else(|| format!("{} is not a block policy", name_of(object)))?;
    let namespace = object.pointer("/metadata/namespace").and_then(Value::as_str);
    let mode = lifecycle::mode_of(object).unwrap_or_default();
    let network = lifecycle::has_network_policy(object);
    let mut rebuilt = block::build(target, &entries, namespace, mode, network, &context.guardrails);
    lifecycle::carry_over(&mut rebuilt, object).map_err(|e| e.to_string())?;
    check(&rebuilt, context)?;
    Ok(rebuilt)
}

/// The changes for a block policy going from `old` to `new` (`None`:
/// deleted): the policy itself and its NetworkPolicy companion, which exists
/// only while the block is enforced, wants one, and blocks addresses.
pub fn block_changes(old: Option<&Value>, new: Option<Value>, existing: &[Value], reason: &str) -> Vec<Change> {
    let mut changes = Vec::new();
    let companion_of = |policy: &Value| -> Option<Value> {
        let namespace = policy.pointer("/metadata/namespace").and_then(Value::as_str)?;
        let wanted = lifecycle::has_network_policy(policy)
            && lifecycle::mode_of(policy) == Some(Mode::Sigkill)
            && block::Target::of(policy) == Some(block::Target::Ip);
        if !wanted {
            return None;
        }
        let ranges: Vec<ipnet::IpNet> =
            block::entries_of(policy).unwrap_or_default().iter().filter_map(|e| e.value.parse().ok()).collect();
        network::network_policy(policy, namespace, &ranges)
    };
    let Some(policy) = new.as_ref().or(old) else { return changes };
    let live_companion = existing.iter().find(|e| {
        e.get("kind").and_then(Value::as_str) == Some("NetworkPolicy")
            && e.pointer("/metadata/name") == policy.pointer("/metadata/name")
            && e.pointer("/metadata/namespace") == policy.pointer("/metadata/namespace")
    });
    let wanted_companion = new.as_ref().and_then(companion_of);
    match (new, old) {
        (Some(new), old) => changes.push(Change::Apply { desired: new, existing: old.cloned() }),
        (None, Some(old)) => changes.push(Change::Delete { existing: old.clone(), reason: reason.to_string() }),
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
    use serde_json::json;

    fn context() -> Context {
        Context {
            actor: "tester".into(),
            now: Utc::now(),
            versions: TetragonVersion::ALL.to_vec(),
            guardrails: Guardrails::default(),
        }
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
        let object = block::build(block::Target::Ip, &entries, None, Mode::Post, false, &Guardrails::default());
        let changes = expire_block(&object, &[], &ctx).unwrap();
        let Change::Apply { desired, .. } = &changes[0] else { panic!("{changes:?}") };
        assert_eq!(block::entries_of(desired).unwrap().len(), 1);
        let only = vec![entries[0].clone()];
        let object = block::build(block::Target::Ip, &only, None, Mode::Post, false, &Guardrails::default());
        let changes = expire_block(&object, &[], &ctx).unwrap();
        assert!(matches!(&changes[..], [Change::Delete { reason, .. }] if reason.contains("203.0.113.7/32")));
    }

    #[test]
    fn prune_spares_enforced_and_recent_policies() {
        let ctx = context();
        let handled = |c: &str| c != "gone";
        let rules = PruneRules { after: Some(Duration::from_secs(3600)), handled: &handled };
        let old = lifecycle::timestamp(ctx.now - chrono::Duration::hours(3));
        let object = |category: &str, mode: &str| {
            json!({"metadata": {"labels": {labels::CATEGORY: category, labels::MODE: mode},
                "annotations": {labels::LAST_DETECTED: old}}})
        };
        assert!(prune_reason(&object("gone", "enforce"), &rules, ctx.now).unwrap().contains("no mapper"));
        assert!(prune_reason(&object("x", "audit"), &rules, ctx.now).unwrap().contains("no finding for 1h"));
        assert_eq!(prune_reason(&object("x", "enforce"), &rules, ctx.now), None);
        let recent = PruneRules { after: Some(Duration::from_secs(5 * 3600)), handled: &|_| true };
        assert_eq!(prune_reason(&object("x", "audit"), &recent, ctx.now), None);
    }
}
