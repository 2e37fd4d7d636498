//! The life of a policy once it is in the cluster (Generated → Audit →
//! Review → Enforcement, or Tuned → Audit), recorded on the object itself so
//! that the cluster alone tells the story and any replica can pick it up.
//!
//! - The mode lives in the `qualys-respond.io/mode` label; the action lists
//!   enforcement changes are kept, in their enforcing form, in the
//!   `enforce-actions` annotation, so `promote` and `demote` switch an object
//!   exactly, whatever mapper made it.
//! - `tune` exclusions live in annotations and are re-applied whenever the
//!   object is rebuilt, so they survive later syncs and promotions.
//! - Every transition appends `{at, by, event, mode}` to the history.
//! - A sync that meets an object it made before merges into it: indicators
//!   and finding ids are united, the mode and the tuning are kept.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::guard;
#[cfg(test)]
use super::guard::NAMESPACE_LABEL;
use super::mode::Mode;
use super::object::labels;
use super::spec::{ACTION_LISTS, ENFORCING_ACTIONS, HOOKS, array, erase_values, text, unite_values, value_order};

/// Transitions kept in the history annotation (the oldest are dropped).
const HISTORY_ENTRIES: usize = 20;
/// Finding ids listed in the annotation (the count stays exact).
const MAX_LISTED_IDS: usize = 100;

/// Why a lifecycle step cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    /// The object is not ours.
    #[error("{0} is not managed by kubectl qualys-respond (no {managed}={manager} label); it is left alone", managed = labels::MANAGED_BY, manager = labels::MANAGER)]
    NotManaged(String),
    /// The enforce-actions annotation is missing or broken.
    #[error("{name} has no valid {annotation} annotation, so its enforcing actions are unknown; regenerate it with sync", annotation = labels::ENFORCE_ACTIONS)]
    NoEnforceActions {
        /// The object.
        name: String,
    },
    /// A tuning request that cannot be expressed or would break the policy.
    #[error("cannot tune {name}: {reason}")]
    Tuning {
        /// The object.
        name: String,
        /// Why.
        reason: String,
    },
}

/// The name of an object, for messages.
pub fn name_of(object: &Value) -> String {
    let kind = text(object, "kind");
    let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("?");
    match object.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(ns) => format!("{kind}/{ns}/{name}"),
        None => format!("{kind}/{name}"),
    }
}

/// The label `key` of `object`.
pub fn label<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object.pointer("/metadata/labels").and_then(|l| l.get(key)).and_then(Value::as_str)
}

/// The annotation `key` of `object`.
pub fn annotation<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object.pointer("/metadata/annotations").and_then(|a| a.get(key)).and_then(Value::as_str)
}

/// True for a block policy made with `--network-policy`: enforced, it has a
/// NetworkPolicy companion.
pub fn has_network_policy(object: &Value) -> bool {
    annotation(object, labels::NETWORK_POLICY) == Some("true")
}

/// `metadata.<field>` of `object` as a map, made if missing; `None` when
/// `object` is not a JSON object.
/// The comma-separated annotation `key` of `object`, item by item, in stored order.
pub fn annotation_items(object: &Value, key: &str) -> impl Iterator<Item = String> {
    annotation(object, key).unwrap_or_default().split(',').filter(|s| !s.is_empty()).map(str::to_string)
}

fn metadata_map<'a>(object: &'a mut Value, field: &str) -> Option<&'a mut Map<String, Value>> {
    let metadata = object.as_object_mut()?.entry("metadata").or_insert_with(|| json!({})).as_object_mut()?;
    let entry = metadata.entry(field).or_insert_with(|| json!({}));
    if !entry.is_object() {
        *entry = json!({});
    }
    entry.as_object_mut()
}

/// Sets (or, with `None`, removes) the label `key`.
pub fn set_label(object: &mut Value, key: &str, value: Option<&str>) {
    let Some(map) = metadata_map(object, "labels") else { return };
    match value {
        Some(value) => map.insert(key.into(), json!(value)),
        None => map.remove(key),
    };
}

/// Sets (or, with `None`, removes) the annotation `key`.
pub fn set_annotation(object: &mut Value, key: &str, value: Option<&str>) {
    let Some(map) = metadata_map(object, "annotations") else { return };
    match value {
        Some(value) => map.insert(key.into(), json!(value)),
        None => map.remove(key),
    };
}

/// True when the object carries our managed-by label.
pub fn is_managed(object: &Value) -> bool {
    label(object, labels::MANAGED_BY) == Some(labels::MANAGER)
}

/// The object's mode, from its label.
pub fn mode_of(object: &Value) -> Option<Mode> {
    label(object, labels::MODE).and_then(Mode::from_label)
}

/// RFC 3339 with seconds, as every timestamp we write.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The action lists of `enforced_spec` that hold an enforcing action, by
/// JSON pointer, in their enforce-mode form: the value of the
/// `enforce-actions` annotation.
pub fn enforce_actions(enforced_spec: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let mut visit = |pointer: String, selector: &Value| {
        for key in ACTION_LISTS {
            let mut list = array(selector, key).to_vec();
            if list.iter().any(|a| ENFORCING_ACTIONS.contains(&text(a, "action"))) {
                Mode::Sigkill.rewrite_actions(&mut list);
                out.insert(format!("{pointer}/{key}"), Value::Array(list));
            }
        }
    };
    for hook_list in HOOKS {
        for (h, hook) in array(enforced_spec, hook_list).iter().enumerate() {
            for (s, selector) in array(hook, "selectors").iter().enumerate() {
                visit(format!("/{hook_list}/{h}/selectors/{s}"), selector);
            }
        }
    }
    if let Some(macros) = enforced_spec.get("selectorsMacros").and_then(Value::as_object) {
        for (name, selector) in macros {
            visit(format!("/selectorsMacros/{}", name.replace('~', "~0").replace('/', "~1")), selector);
        }
    }
    out
}

/// Switches `object` to `mode`: every action list named by its
/// enforce-actions annotation becomes its enforcing form or that form
/// rewritten for audit, and the mode label follows.
pub fn set_mode(object: &mut Value, mode: Mode) -> Result<(), LifecycleError> {
    let name = name_of(object);
    let no_annotation = || LifecycleError::NoEnforceActions { name: name.clone() };
    let lists: BTreeMap<String, Vec<Value>> = annotation(object, labels::ENFORCE_ACTIONS)
        .and_then(|text| serde_json::from_str(text).ok())
        .ok_or_else(no_annotation)?;
    let Some(spec) = object.get_mut("spec") else { return Err(no_annotation()) };
    for (pointer, enforced) in lists {
        let mut list = enforced;
        mode.rewrite_actions(&mut list);
        if let Some(slot) = spec.pointer_mut(&pointer) {
            *slot = Value::Array(list);
        }
    }
    set_label(object, labels::MODE, Some(mode.label()));
    Ok(())
}

/// Appends a transition to the history and, for mode changes, moves the
/// `mode-since` mark.
pub fn record(object: &mut Value, event: &str, by: &str, at: DateTime<Utc>) {
    let mode = mode_of(object).unwrap_or_default();
    let mut history: Vec<Value> =
        annotation(object, labels::HISTORY).and_then(|h| serde_json::from_str(h).ok()).unwrap_or_default();
    let changes_mode = history.last().is_none_or(|last| text(last, "mode") != mode.label());
    history.push(json!({"at": timestamp(at), "by": by, "event": event, "mode": mode.label()}));
    let drop = history.len().saturating_sub(HISTORY_ENTRIES);
    history.drain(..drop);
    set_annotation(object, labels::HISTORY, Some(&Value::Array(history).to_string()));
    if changes_mode || annotation(object, labels::MODE_SINCE).is_none() {
        set_annotation(object, labels::MODE_SINCE, Some(&timestamp(at)));
    }
}

/// What `tune` excluded from a policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tuning {
    /// Binaries (full paths) the policy must not match.
    pub binaries: BTreeSet<String>,
    /// Namespaces a cluster-wide policy must not apply to.
    pub namespaces: BTreeSet<String>,
}

impl Tuning {
    /// The tuning recorded on `object`.
    pub fn of(object: &Value) -> Tuning {
        Tuning {
            binaries: annotation_items(object, labels::EXCLUDED_BINARIES).collect(),
            namespaces: annotation_items(object, labels::EXCLUDED_NAMESPACES).collect(),
        }
    }

    /// Nothing excluded.
    pub fn is_empty(&self) -> bool {
        self.binaries.is_empty() && self.namespaces.is_empty()
    }

    /// Adds `other`'s exclusions.
    pub fn extend(&mut self, other: Tuning) {
        self.binaries.extend(other.binaries);
        self.namespaces.extend(other.namespaces);
    }

    /// Narrows `object` by the exclusions and records them on it.
    ///
    /// A binary leaves every `In` list and joins every `NotIn`/`NotPostfix`
    /// list; a namespace joins a `NotIn` expression on the pod namespace label
    /// of a cluster-wide policy. Anything that cannot be expressed in
    /// Tetragon's one binary filter per selector is refused, as is a tuning
    /// that would leave a selector without binaries to match.
    pub fn apply(&self, object: &mut Value) -> Result<(), LifecycleError> {
        let name = name_of(object);
        let refuse = |reason: String| LifecycleError::Tuning { name: name.clone(), reason };
        for path in &self.binaries {
            if !path.starts_with('/') || path.len() >= 128 {
                return Err(refuse(format!("{path} is not an absolute path shorter than 128 characters")));
            }
        }
        let namespaced = text(object, "kind") == "TracingPolicyNamespaced";
        if namespaced && !self.namespaces.is_empty() {
            let own = object.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default();
            return Err(refuse(format!(
                "it is a TracingPolicyNamespaced that only applies to namespace {own}; demote or delete it instead of excluding namespaces"
            )));
        }
        let Some(spec) = object.get_mut("spec") else { return Ok(()) };
        if !self.binaries.is_empty() {
            exclude_binaries(spec, &self.binaries).map_err(refuse)?;
        }
        if !self.namespaces.is_empty() {
            exclude_namespaces(spec, &self.namespaces);
        }
        let join =
            |set: &BTreeSet<String>| (!set.is_empty()).then(|| set.iter().cloned().collect::<Vec<_>>().join(","));
        set_annotation(object, labels::EXCLUDED_BINARIES, join(&self.binaries).as_deref());
        set_annotation(object, labels::EXCLUDED_NAMESPACES, join(&self.namespaces).as_deref());
        Ok(())
    }
}

fn exclude_binaries(spec: &mut Value, paths: &BTreeSet<String>) -> Result<(), String> {
    for hook_list in HOOKS.iter().filter(|h| !matches!(**h, "uprobes" | "usdts")) {
        let Some(hooks) = spec.get_mut(*hook_list).and_then(Value::as_array_mut) else { continue };
        for (h, hook) in hooks.iter_mut().enumerate() {
            let Some(selectors) = hook.get_mut("selectors").and_then(Value::as_array_mut) else { continue };
            for (s, selector) in selectors.iter_mut().enumerate() {
                let at = format!("{hook_list}[{h}].selectors[{s}]");
                let Some(entry) = selector.pointer_mut("/matchBinaries/0") else {
                    return Err(format!("{at} has no binary filter to add an exclusion to"));
                };
                let operator = text(entry, "operator").to_string();
                let Some(values) = entry.get_mut("values").and_then(Value::as_array_mut) else { continue };
                match operator.as_str() {
                    "In" => {
                        values.retain(|v| !v.as_str().is_some_and(|v| paths.contains(v)));
                        if values.is_empty() {
                            return Err(format!(
                                "excluding every binary of {at} would leave it matching none; demote or delete the policy instead"
                            ));
                        }
                    }
                    "NotIn" | "NotPostfix" => {
                        for path in paths {
                            if !values.iter().any(|v| v.as_str() == Some(path)) {
                                values.push(json!(path));
                            }
                        }
                        values.sort_by(value_order);
                    }
                    other => {
                        return Err(format!(
                            "{at} filters binaries with {other}, and Tetragon allows one binary filter per selector"
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

fn exclude_namespaces(spec: &mut Value, namespaces: &BTreeSet<String>) {
    let Some(object) = spec.as_object_mut() else { return };
    let selector = object.entry("podSelector").or_insert_with(|| json!({}));
    guard::exclude_namespaces(selector, namespaces);
}

/// Merges what a sync built (`desired`) into what the cluster holds
/// (`existing`, made by us earlier): the existing mode, tuning and history
/// stay; indicators, values and finding ids are united.
pub fn merge_existing(desired: &mut Value, existing: &Value) -> Result<(), LifecycleError> {
    carry_over(desired, existing)?;
    let tuning = Tuning::of(existing);
    if let (Some(into), Some(from)) = (desired.get_mut("spec"), existing.get("spec")) {
        let (mut a, mut b) = (into.clone(), from.clone());
        erase_values(&mut a);
        erase_values(&mut b);
        if a == b {
            unite_values(into, from);
            // A united In list may have taken back an excluded binary.
            tuning.apply(desired)?;
        }
    }
    let list = |object: &Value, key| -> BTreeSet<String> { annotation_items(object, key).collect() };
    let old_ids = list(existing, labels::FINDING_IDS);
    let new_ids: BTreeSet<String> = list(desired, labels::FINDING_IDS).difference(&old_ids).cloned().collect();
    let old_count: usize =
        annotation(existing, labels::FINDING_COUNT).and_then(|c| c.parse().ok()).unwrap_or(old_ids.len());
    let ids: Vec<String> = old_ids.union(&new_ids).take(MAX_LISTED_IDS).cloned().collect();
    set_annotation(desired, labels::FINDING_IDS, Some(&ids.join(",")));
    set_annotation(desired, labels::FINDING_COUNT, Some(&(old_count + new_ids.len()).to_string()));
    let indicators: Vec<String> =
        list(existing, labels::INDICATORS).union(&list(desired, labels::INDICATORS)).cloned().collect();
    set_annotation(desired, labels::INDICATORS, Some(&indicators.join(",")));
    let latest = [annotation(existing, labels::LAST_DETECTED), annotation(desired, labels::LAST_DETECTED)]
        .into_iter()
        .flatten()
        .filter_map(|t| DateTime::parse_from_rfc3339(t).ok())
        .max();
    set_annotation(desired, labels::LAST_DETECTED, latest.map(|t| timestamp(t.with_timezone(&Utc))).as_deref());
    super::evidence::merge(desired, existing);
    Ok(())
}

/// Gives `desired`, a rebuilt version of `existing` (one of ours), the
/// existing mode, tuning and history; its content stays as built.
pub fn carry_over(desired: &mut Value, existing: &Value) -> Result<(), LifecycleError> {
    if !is_managed(existing) {
        return Err(LifecycleError::NotManaged(name_of(existing)));
    }
    let mode = mode_of(existing).unwrap_or_default();
    if mode_of(desired) != Some(mode) {
        set_mode(desired, mode)?;
    }
    Tuning::of(existing).apply(desired)?;
    for key in [labels::HISTORY, labels::MODE_SINCE] {
        set_annotation(desired, key, annotation(existing, key));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(actions: Value) -> Value {
        let enforced = json!({"kprobes": [{"call": "tcp_connect", "syscall": false,
            "args": [{"index": 0, "type": "sock"}],
            "selectors": [{"matchArgs": [{"index": 0, "operator": "DPort", "values": ["4444"]}],
                "matchBinaries": [{"operator": "NotPostfix", "values": ["/kubelet"]}],
                "matchActions": actions}]}]});
        let annotation = serde_json::to_string(&enforce_actions(&enforced)).unwrap();
        let mut spec = enforced.clone();
        Mode::Post.apply(&mut spec);
        json!({"apiVersion": "cilium.io/v1alpha1", "kind": "TracingPolicy",
            "metadata": {"name": "p", "labels": {labels::MANAGED_BY: labels::MANAGER, labels::MODE: "audit"},
                "annotations": {labels::ENFORCE_ACTIONS: annotation}},
            "spec": spec})
    }

    fn actions(object: &Value) -> &Value {
        &object["spec"]["kprobes"][0]["selectors"][0]["matchActions"]
    }

    #[test]
    fn promote_and_demote_restore_the_exact_lists() {
        let mut policy = object(json!([{"action": "Post", "rateLimit": "1m"}, {"action": "Override", "argError": -1}]));
        assert_eq!(actions(&policy), &json!([{"action": "Post", "rateLimit": "1m"}, {"action": "Post"}]));
        set_mode(&mut policy, Mode::Sigkill).unwrap();
        assert_eq!(
            actions(&policy),
            &json!([{"action": "Post", "rateLimit": "1m"}, {"action": "Override", "argError": -1}]),
            "promote restores the mapper's own action"
        );
        assert_eq!(label(&policy, labels::MODE), Some("enforce"));
        set_mode(&mut policy, Mode::Post).unwrap();
        assert_eq!(actions(&policy), &json!([{"action": "Post", "rateLimit": "1m"}, {"action": "Post"}]));
        assert!(!actions(&policy).to_string().contains(ENFORCING_ACTIONS[0]));
    }

    #[test]
    fn a_policy_without_the_annotation_cannot_switch() {
        let mut policy = object(json!([{"action": "Sigkill"}]));
        set_annotation(&mut policy, labels::ENFORCE_ACTIONS, None);
        assert!(matches!(set_mode(&mut policy, Mode::Sigkill), Err(LifecycleError::NoEnforceActions { .. })));
    }

    #[test]
    fn history_records_transitions_and_the_mode_mark() {
        let mut policy = object(json!([{"action": "Sigkill"}]));
        let t0 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
        record(&mut policy, "created", "alice", t0);
        set_mode(&mut policy, Mode::Sigkill).unwrap();
        record(&mut policy, "promoted", "bob", t0 + chrono::Duration::hours(1));
        record(&mut policy, "tuned", "bob", t0 + chrono::Duration::hours(2));
        let history: Vec<Value> = serde_json::from_str(annotation(&policy, labels::HISTORY).unwrap()).unwrap();
        assert_eq!(history.len(), 3);
        assert_eq!(
            history[1],
            json!({"at": "2026-01-01T01:00:00Z", "by": "bob", "event": "promoted", "mode": "enforce"})
        );
        assert_eq!(annotation(&policy, labels::MODE_SINCE), Some("2026-01-01T01:00:00Z"));
    }

    #[test]
    fn tuning_narrows_binary_filters_and_namespaces() {
        let mut policy = object(json!([{"action": "Sigkill"}]));
        let tuning = Tuning {
            binaries: BTreeSet::from(["/usr/bin/nc".to_string()]),
            namespaces: BTreeSet::from(["ci".to_string()]),
        };
        tuning.apply(&mut policy).unwrap();
        let binaries = &policy["spec"]["kprobes"][0]["selectors"][0]["matchBinaries"][0]["values"];
        assert_eq!(binaries, &json!(["/kubelet", "/usr/bin/nc"]));
        assert_eq!(
            policy["spec"]["podSelector"]["matchExpressions"],
            json!([{"key": NAMESPACE_LABEL, "operator": "NotIn", "values": ["ci"]}])
        );
        assert_eq!(Tuning::of(&policy), tuning);
    }

    #[test]
    fn tuning_refuses_what_it_cannot_express() {
        let mut policy = object(json!([{"action": "Sigkill"}]));
        policy["spec"]["kprobes"][0]["selectors"][0]["matchBinaries"] =
            json!([{"operator": "In", "values": ["/usr/bin/nc"]}]);
        let only = Tuning { binaries: BTreeSet::from(["/usr/bin/nc".to_string()]), ..Tuning::default() };
        assert!(only.apply(&mut policy.clone()).unwrap_err().to_string().contains("matching none"));
        policy["kind"] = json!("TracingPolicyNamespaced");
        let namespace = Tuning { namespaces: BTreeSet::from(["x".to_string()]), ..Tuning::default() };
        assert!(namespace.apply(&mut policy).unwrap_err().to_string().contains("TracingPolicyNamespaced"));
    }

    #[test]
    fn a_sync_merges_into_what_exists_and_keeps_mode_and_tuning() {
        let mut existing = object(json!([{"action": "Sigkill"}]));
        set_mode(&mut existing, Mode::Sigkill).unwrap();
        Tuning { binaries: BTreeSet::from(["/usr/bin/nc".to_string()]), ..Tuning::default() }
            .apply(&mut existing)
            .unwrap();
        set_annotation(&mut existing, labels::FINDING_IDS, Some("a,b"));
        set_annotation(&mut existing, labels::FINDING_COUNT, Some("2"));
        record(&mut existing, "promoted", "bob", Utc::now());
        let mut desired = object(json!([{"action": "Sigkill"}]));
        desired["spec"]["kprobes"][0]["selectors"][0]["matchArgs"][0]["values"] = json!(["5555"]);
        set_annotation(&mut desired, labels::FINDING_IDS, Some("b,c"));
        merge_existing(&mut desired, &existing).unwrap();
        assert_eq!(label(&desired, labels::MODE), Some("enforce"));
        assert_eq!(actions(&desired), &json!([{"action": "Sigkill"}]));
        let selector = &desired["spec"]["kprobes"][0]["selectors"][0];
        assert_eq!(selector["matchArgs"][0]["values"], json!(["4444", "5555"]));
        assert_eq!(selector["matchBinaries"][0]["values"], json!(["/kubelet", "/usr/bin/nc"]));
        assert_eq!(annotation(&desired, labels::FINDING_IDS), Some("a,b,c"));
        assert_eq!(annotation(&desired, labels::FINDING_COUNT), Some("3"));
        assert_eq!(annotation(&desired, labels::HISTORY), annotation(&existing, labels::HISTORY));
        let mut foreign = existing.clone();
        set_label(&mut foreign, labels::MANAGED_BY, None);
        assert!(matches!(merge_existing(&mut desired, &foreign), Err(LifecycleError::NotManaged(_))));
    }
}
