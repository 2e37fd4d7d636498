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

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::managed::{Json, ManagedPolicy, Transition, timestamp};
use super::mode::Mode;
use super::object::labels;
use super::spec::{ACTION_LISTS, ENFORCING_ACTIONS, action_holders, array, erase_values, text, unite_values};

/// Transitions kept in the history annotation (the oldest are dropped).
const HISTORY_ENTRIES: usize = 20;
/// Finding ids listed in the annotation (the count stays exact).
const MAX_LISTED_IDS: usize = 100;

pub use super::error::LifecycleError;

/// The action lists of `enforced_spec` that hold an enforcing action, by
/// JSON pointer, in their enforce-mode form: the value of the
/// `enforce-actions` annotation.
pub fn enforce_actions(enforced_spec: &Value) -> BTreeMap<String, Vec<Value>> {
    let mut out = BTreeMap::new();
    for (pointer, selector) in action_holders(enforced_spec) {
        for key in ACTION_LISTS {
            let mut list = array(selector, key).to_vec();
            if list.iter().any(|a| ENFORCING_ACTIONS.contains(&text(a, "action"))) {
                Mode::Sigkill.rewrite_actions(&mut list);
                out.insert(format!("{pointer}/{key}"), list);
            }
        }
    }
    out
}

impl ManagedPolicy {
    /// Switches the policy to `mode`: every action list named by its
    /// enforce-actions annotation becomes its enforcing form or that form
    /// rewritten for audit, and the mode label follows.
    pub fn set_mode(&mut self, mode: Mode) -> Result<(), LifecycleError> {
        let Some(lists) = self.enforce_actions.valid() else {
            return Err(LifecycleError::NoEnforceActions { name: self.to_string() });
        };
        for (pointer, enforced) in lists {
            let mut list = enforced.clone();
            mode.rewrite_actions(&mut list);
            if let Some(slot) = self.spec.pointer_mut(pointer) {
                *slot = Value::Array(list);
            }
        }
        self.set_label(labels::MODE, Some(mode.label()));
        Ok(())
    }

    /// Appends a transition to the history and, for mode changes, moves the
    /// `mode-since` mark. An unreadable history starts again.
    pub fn record(&mut self, event: &str, by: &str, at: DateTime<Utc>) {
        let mode = self.mode().unwrap_or_default();
        let mut history = match std::mem::take(&mut self.history) {
            Json::Valid(history) => history,
            Json::Absent | Json::Invalid(_) => Vec::new(),
        };
        let changes_mode = history.last().is_none_or(|last| last.mode != mode.label());
        history.push(Transition {
            at: timestamp(at),
            by: by.to_string(),
            event: event.to_string(),
            mode: mode.label().to_string(),
        });
        let drop = history.len().saturating_sub(HISTORY_ENTRIES);
        history.drain(..drop);
        self.history = Json::Valid(history);
        if changes_mode || self.mode_since.is_none() {
            self.mode_since = Some(timestamp(at));
        }
    }

    /// Merges what a sync built (`self`) into what the cluster holds
    /// (`existing`, made by us earlier): the existing mode, tuning and history
    /// stay; indicators, values and finding ids are united.
    pub fn merge_existing(&mut self, existing: &ManagedPolicy) -> Result<(), LifecycleError> {
        self.carry_over(existing)?;
        let (mut a, mut b) = (self.spec.clone(), existing.spec.clone());
        erase_values(&mut a);
        erase_values(&mut b);
        if a == b {
            unite_values(&mut self.spec, &existing.spec);
            // A united In list may have taken back an excluded binary.
            self.tune(&existing.tuning)?;
        }
        let old_ids: BTreeSet<&String> = existing.finding_ids().iter().collect();
        let new_ids: BTreeSet<&String> = self.finding_ids().iter().filter(|id| !old_ids.contains(id)).collect();
        let count = existing.findings() + new_ids.len();
        let ids: Vec<String> = old_ids.union(&new_ids).take(MAX_LISTED_IDS).map(|id| (*id).clone()).collect();
        self.finding_ids = Some(ids);
        self.finding_count = Some(count);
        let indicators: BTreeSet<&String> = existing.indicators().iter().chain(self.indicators()).collect();
        self.indicators = Some(indicators.into_iter().cloned().collect());
        self.last_detected = self.last_detected.max(existing.last_detected);
        super::evidence::merge(self, existing);
        Ok(())
    }

    /// Gives `self`, a rebuilt version of `existing` (one of ours), the
    /// existing mode, tuning and history; its content stays as built.
    pub fn carry_over(&mut self, existing: &ManagedPolicy) -> Result<(), LifecycleError> {
        if !existing.is_managed() {
            return Err(LifecycleError::NotManaged(existing.to_string()));
        }
        let mode = existing.mode().unwrap_or_default();
        if self.mode() != Some(mode) {
            self.set_mode(mode)?;
        }
        self.tune(&existing.tuning)?;
        self.history = existing.history.clone();
        self.mode_since = existing.mode_since.clone();
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use serde_json::json;

    use super::*;
    use crate::policy::managed::Tuning;
    use crate::policy::{Kind, PolicyObject};

    /// An audit-mode policy whose one selector has `actions` when enforced.
    pub(in crate::policy) fn object(actions: Value) -> ManagedPolicy {
        let enforced = json!({"kprobes": [{"call": "tcp_connect", "syscall": false,
            "args": [{"index": 0, "type": "sock"}],
            "selectors": [{"matchArgs": [{"index": 0, "operator": "DPort", "values": ["4444"]}],
                "matchBinaries": [{"operator": "NotPostfix", "values": ["/kubelet"]}],
                "matchActions": actions}]}]});
        let annotation = serde_json::to_string(&enforce_actions(&enforced)).unwrap();
        let mut spec = enforced.clone();
        Mode::Post.apply(&mut spec);
        ManagedPolicy::from_object(PolicyObject {
            kind: Kind::TracingPolicy,
            name: "p".into(),
            namespace: None,
            labels: BTreeMap::from([
                (labels::MANAGED_BY.to_string(), labels::MANAGER.to_string()),
                (labels::MODE.to_string(), "audit".to_string()),
            ]),
            annotations: BTreeMap::from([(labels::ENFORCE_ACTIONS.to_string(), annotation)]),
            spec,
        })
    }

    fn actions(policy: &ManagedPolicy) -> &Value {
        &policy.spec["kprobes"][0]["selectors"][0]["matchActions"]
    }

    #[test]
    fn promote_and_demote_restore_the_exact_lists() {
        let mut policy = object(json!([{"action": "Post", "rateLimit": "1m"}, {"action": "Override", "argError": -1}]));
        assert_eq!(actions(&policy), &json!([{"action": "Post", "rateLimit": "1m"}, {"action": "Post"}]));
        policy.set_mode(Mode::Sigkill).unwrap();
        assert_eq!(
            actions(&policy),
            &json!([{"action": "Post", "rateLimit": "1m"}, {"action": "Override", "argError": -1}]),
            "promote restores the mapper's own action"
        );
        assert_eq!(policy.label(labels::MODE), Some("enforce"));
        policy.set_mode(Mode::Post).unwrap();
        assert_eq!(actions(&policy), &json!([{"action": "Post", "rateLimit": "1m"}, {"action": "Post"}]));
        assert!(!actions(&policy).to_string().contains(ENFORCING_ACTIONS[0]));
    }

    #[test]
    fn the_annotation_names_macros_by_escaped_pointers_that_resolve() {
        let spec = json!({
            "kprobes": [{"call": "sys_openat", "syscall": true, "selectors": [
                {"matchActions": [{"action": "Post"}]},
                {"macros": ["a/b~c"], "matchActions": [{"action": "Sigkill"}]},
            ]}],
            "selectorsMacros": {"a/b~c": {"matchReturnActions": [{"action": "Override", "argError": -1}]}},
        });
        let lists = enforce_actions(&spec);
        let pointers: Vec<&str> = lists.keys().map(String::as_str).collect();
        assert_eq!(pointers, ["/kprobes/0/selectors/1/matchActions", "/selectorsMacros/a~1b~0c/matchReturnActions"]);
        for (pointer, list) in &lists {
            assert_eq!(spec.pointer(pointer), Some(&Value::Array(list.clone())), "{pointer}");
        }
    }

    #[test]
    fn a_policy_without_the_annotation_cannot_switch() {
        let mut policy = object(json!([{"action": "Sigkill"}]));
        policy.enforce_actions = Json::Absent;
        assert!(matches!(policy.set_mode(Mode::Sigkill), Err(LifecycleError::NoEnforceActions { .. })));
        policy.enforce_actions = Json::Invalid("{".into());
        assert!(matches!(policy.set_mode(Mode::Sigkill), Err(LifecycleError::NoEnforceActions { .. })));
    }

    #[test]
    fn history_records_transitions_and_the_mode_mark() {
        let mut policy = object(json!([{"action": "Sigkill"}]));
        let t0 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
        policy.record("created", "alice", t0);
        policy.set_mode(Mode::Sigkill).unwrap();
        policy.record("promoted", "bob", t0 + chrono::Duration::hours(1));
        policy.record("tuned", "bob", t0 + chrono::Duration::hours(2));
        let written = policy.to_value();
        let history: Vec<Value> =
            serde_json::from_str(written["metadata"]["annotations"][labels::HISTORY].as_str().unwrap()).unwrap();
        assert_eq!(history.len(), 3);
        assert_eq!(
            history[1],
            json!({"at": "2026-01-01T01:00:00Z", "by": "bob", "event": "promoted", "mode": "enforce"})
        );
        assert_eq!(policy.mode_since.as_deref(), Some("2026-01-01T01:00:00Z"));
        let read = ManagedPolicy::from_value(&written).unwrap();
        assert_eq!(read, policy, "the lifecycle's annotations read back as written");
    }

    #[test]
    fn a_sync_merges_into_what_exists_and_keeps_mode_and_tuning() {
        let mut existing = object(json!([{"action": "Sigkill"}]));
        existing.set_mode(Mode::Sigkill).unwrap();
        existing.tune(&Tuning { binaries: BTreeSet::from(["/usr/bin/nc".to_string()]), ..Tuning::default() }).unwrap();
        existing.finding_ids = Some(vec!["a".into(), "b".into()]);
        existing.finding_count = Some(2);
        existing.record("promoted", "bob", Utc::now());
        let mut desired = object(json!([{"action": "Sigkill"}]));
        desired.spec["kprobes"][0]["selectors"][0]["matchArgs"][0]["values"] = json!(["5555"]);
        desired.finding_ids = Some(vec!["b".into(), "c".into()]);
        desired.merge_existing(&existing).unwrap();
        assert_eq!(desired.mode(), Some(Mode::Sigkill));
        assert_eq!(actions(&desired), &json!([{"action": "Sigkill"}]));
        let selector = &desired.spec["kprobes"][0]["selectors"][0];
        assert_eq!(selector["matchArgs"][0]["values"], json!(["4444", "5555"]));
        assert_eq!(selector["matchBinaries"][0]["values"], json!(["/kubelet", "/usr/bin/nc"]));
        assert_eq!(desired.finding_ids(), ["a", "b", "c"]);
        assert_eq!(desired.finding_count, Some(3));
        assert_eq!(desired.history, existing.history);
        let mut foreign = existing.clone();
        foreign.set_label(labels::MANAGED_BY, None);
        assert!(matches!(desired.merge_existing(&foreign), Err(LifecycleError::NotManaged(_))));
    }
}
