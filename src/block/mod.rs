//! Manual blocks (`block --ip/--port`, `unblock`): one policy per kind of
//! target and scope, whose entries (value, reason, who, when, until when)
//! live in an annotation, so the cluster alone knows what is blocked, why and
//! until when. The policy follows the same audit → enforce path as generated
//! ones; its NetworkPolicy companion (`--network-policy`) exists only while
//! the block is enforced.
//!
//! The policies hook `tcp_connect` with a `sock` argument and match
//! `DAddr` or `DPort`, as Tetragon's loader requires (see
//! `../shared/reference/tetragon-policies.md`).

pub mod network;
pub mod request;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::guardrails::Guardrails;
use crate::policy::lifecycle::{self, annotation, timestamp};
use crate::policy::{Kind, Mode, PolicyObject, guard, labels};

/// Annotation: the entries of a block policy, as a JSON list.
pub const ENTRIES: &str = "qualys-respond.io/blocks";

/// What a block policy matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// Destination addresses and CIDRs.
    Ip,
    /// Destination ports.
    Port,
}

impl Target {
    /// The policy's name.
    pub fn policy_name(self) -> &'static str {
        match self {
            Target::Ip => "cdr-manual-block-ip",
            Target::Port => "cdr-manual-block-port",
        }
    }

    /// The category label.
    pub fn category(self) -> &'static str {
        match self {
            Target::Ip => "manual-block-ip",
            Target::Port => "manual-block-port",
        }
    }

    /// MITRE ATT&CK: command and control over an application protocol, or a
    /// non-standard port.
    pub fn technique(self) -> &'static str {
        match self {
            Target::Ip => "T1071",
            Target::Port => "T1571",
        }
    }

    fn operator(self) -> &'static str {
        match self {
            Target::Ip => "DAddr",
            Target::Port => "DPort",
        }
    }

    /// The target of a block policy object, from its name.
    pub fn of(object: &Value) -> Option<Target> {
        let name = object.pointer("/metadata/name").and_then(Value::as_str)?;
        [Target::Ip, Target::Port].into_iter().find(|t| t.policy_name() == name)
    }
}

/// One blocked value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// A canonical CIDR or a port.
    pub value: String,
    /// Why.
    pub reason: String,
    /// Who blocked it.
    pub by: String,
    /// When (RFC 3339).
    pub at: String,
    /// When it expires (RFC 3339), if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

impl Entry {
    /// True when the entry's TTL has run out at `now`.
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expires
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .is_some_and(|t| t.with_timezone(&Utc) <= now)
    }
}

/// The entries of a block policy in the cluster.
pub fn entries_of(object: &Value) -> Result<Vec<Entry>, String> {
    match annotation(object, ENTRIES) {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(text).map_err(|e| format!("its {ENTRIES} annotation is not valid: {e}")),
    }
}

/// Adds or refreshes entries (a value blocked again takes the new reason and TTL).
pub fn upsert(entries: &mut Vec<Entry>, new: Vec<Entry>) {
    for entry in new {
        match entries.iter_mut().find(|e| e.value == entry.value) {
            Some(old) => *old = entry,
            None => entries.push(entry),
        }
    }
    entries.sort_by(|a, b| value_order(&a.value, &b.value));
}

fn value_order(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<u16>(), b.parse::<u16>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => match (a.parse::<ipnet::IpNet>(), b.parse::<ipnet::IpNet>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => a.cmp(b),
        },
    }
}

/// Where a block applies: the whole cluster's containers, or one namespace.
pub fn kind_for(namespace: Option<&str>) -> Kind {
    if namespace.is_some() { Kind::TracingPolicyNamespaced } else { Kind::TracingPolicy }
}

/// The block policy for `entries` (which must not be empty), in `mode`.
/// `network_policy` records that the block also wants a NetworkPolicy.
pub fn build(
    target: Target,
    entries: &[Entry],
    namespace: Option<&str>,
    mode: Mode,
    network_policy: bool,
    guardrails: &Guardrails,
) -> Value {
    let values: Vec<&str> = entries.iter().map(|e| e.value.as_str()).collect();
    let mut spec = json!({
        "kprobes": [{
            "call": "tcp_connect",
            "syscall": false,
            "args": [{"index": 0, "type": "sock"}],
            "selectors": [{
                "matchArgs": [{"index": 0, "operator": target.operator(), "values": values}],
                "matchActions": [{"action": Mode::Sigkill.action()}],
            }],
        }],
    });
    guard::apply(&mut spec, namespace.is_none(), guardrails);
    let enforce_actions = lifecycle::enforce_actions(&spec);
    mode.apply(&mut spec);
    let object = PolicyObject {
        kind: kind_for(namespace),
        name: target.policy_name().to_string(),
        namespace: namespace.map(str::to_string),
        labels: BTreeMap::from([
            (labels::MANAGED_BY.to_string(), labels::MANAGER.to_string()),
            (labels::CATEGORY.to_string(), target.category().to_string()),
            (labels::TECHNIQUE.to_string(), target.technique().to_string()),
            (labels::MODE.to_string(), mode.label().to_string()),
            (labels::SOURCE.to_string(), "block".to_string()),
        ]),
        annotations: BTreeMap::from([
            (ENTRIES.to_string(), serde_json::to_string(entries).unwrap_or_default()),
            (labels::INDICATORS.to_string(), values.join(",")),
            (labels::ENFORCE_ACTIONS.to_string(), serde_json::to_string(&enforce_actions).unwrap_or_default()),
        ]),
        spec,
    };
    let mut value = object.to_value();
    if network_policy {
        lifecycle::set_annotation(&mut value, labels::NETWORK_POLICY, Some("true"));
    }
    value
}

/// A new entry made now by `by`.
pub fn entry(value: String, reason: &str, by: &str, now: DateTime<Utc>, ttl: Option<std::time::Duration>) -> Entry {
    let expires = ttl.and_then(|ttl| chrono::Duration::from_std(ttl).ok()).map(|ttl| timestamp(now + ttl));
    Entry { value, reason: reason.to_string(), by: by.to_string(), at: timestamp(now), expires }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::validate::{TetragonVersion, validate};

    #[test]
    fn block_policies_pass_the_crds_and_the_loader_in_both_modes() {
        let now = Utc::now();
        let ips = vec![entry("203.0.113.7/32".into(), "c2", "alice", now, None)];
        let ports = vec![entry("4444".into(), "shell", "alice", now, None), entry("6666".into(), "", "bob", now, None)];
        for mode in [Mode::Post, Mode::Sigkill] {
            for namespace in [None, Some("payments")] {
                for (target, entries) in [(Target::Ip, &ips), (Target::Port, &ports)] {
                    let object = build(target, entries, namespace, mode, false, &Guardrails::default());
                    assert_eq!(validate(&object, TetragonVersion::ALL), vec![], "{object}");
                }
            }
        }
        let object = build(Target::Port, &ports, None, Mode::Post, false, &Guardrails::default());
        assert_eq!(object["spec"]["kprobes"][0]["selectors"][0]["matchArgs"][0]["values"], json!(["4444", "6666"]));
        assert_eq!(object["spec"]["kprobes"][0]["selectors"][0]["matchActions"], json!([{"action": "Post"}]));
        assert_eq!(entries_of(&object).unwrap(), ports);
    }

    #[test]
    fn entries_expire_and_are_refreshed() {
        let now = Utc::now();
        let mut entries = vec![entry("4444".into(), "a", "x", now, Some(std::time::Duration::from_secs(60)))];
        assert!(!entries[0].expired(now));
        assert!(entries[0].expired(now + chrono::Duration::minutes(2)));
        upsert(&mut entries, vec![entry("4444".into(), "b", "y", now, None), entry("22".into(), "c", "y", now, None)]);
        assert_eq!(entries.iter().map(|e| e.value.as_str()).collect::<Vec<_>>(), ["22", "4444"]);
        assert_eq!(entries[1].expires, None);
    }
}
