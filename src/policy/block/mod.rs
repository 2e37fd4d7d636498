//! The policies of manual blocks (`block --ip/--port`, `unblock`): one policy per kind of
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

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::lifecycle;
use super::managed::{BlockEntry, Json, ManagedPolicy, timestamp};
use super::{Kind, Mode, guard, labels};
use crate::guardrails::Guardrails;

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

    /// The target of a block policy, from its name.
    pub fn of(policy: &ManagedPolicy) -> Option<Target> {
        [Target::Ip, Target::Port].into_iter().find(|t| t.policy_name() == policy.name)
    }
}

/// Adds or refreshes entries (a value blocked again takes the new reason and TTL).
pub fn upsert(entries: &mut Vec<BlockEntry>, new: Vec<BlockEntry>) {
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
    entries: &[BlockEntry],
    namespace: Option<&str>,
    mode: Mode,
    network_policy: bool,
    guardrails: &Guardrails,
) -> ManagedPolicy {
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
    let labels = BTreeMap::from([
        (labels::MANAGED_BY.to_string(), labels::MANAGER.to_string()),
        (labels::CATEGORY.to_string(), target.category().to_string()),
        (labels::TECHNIQUE.to_string(), target.technique().to_string()),
        (labels::MODE.to_string(), mode.label().to_string()),
        (labels::SOURCE.to_string(), "block".to_string()),
    ]);
    let mut policy = ManagedPolicy::new(
        kind_for(namespace),
        target.policy_name().to_string(),
        namespace.map(str::to_string),
        labels,
        spec,
    );
    policy.blocks = Json::Valid(entries.to_vec());
    policy.indicators = Some(values.iter().map(|v| v.to_string()).collect());
    policy.enforce_actions = Json::Valid(enforce_actions);
    policy.network_policy = network_policy;
    policy
}

/// A new entry made now by `by`.
pub fn entry(
    value: String,
    reason: &str,
    by: &str,
    now: DateTime<Utc>,
    ttl: Option<std::time::Duration>,
) -> BlockEntry {
    let expires = ttl.and_then(|ttl| chrono::Duration::from_std(ttl).ok()).map(|ttl| timestamp(now + ttl));
    BlockEntry { value, reason: reason.to_string(), by: by.to_string(), at: timestamp(now), expires }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::validate::{TetragonVersion, validate};
    use serde_json::Value;

    #[test]
    fn block_policies_pass_the_crds_and_the_loader_in_both_modes() {
        let now = Utc::now();
        let ips = vec![entry("203.0.113.7/32".into(), "c2", "alice", now, None)];
        let ports = vec![entry("4444".into(), "shell", "alice", now, None), entry("6666".into(), "", "bob", now, None)];
        for mode in [Mode::Post, Mode::Sigkill] {
            for namespace in [None, Some("payments")] {
                for (target, entries) in [(Target::Ip, &ips), (Target::Port, &ports)] {
                    let object = build(target, entries, namespace, mode, false, &Guardrails::default()).to_value();
                    assert_eq!(validate(&object, TetragonVersion::ALL), vec![], "{object}");
                }
            }
        }
        let policy = build(Target::Port, &ports, None, Mode::Post, false, &Guardrails::default());
        let object: Value = policy.to_value();
        assert_eq!(object["spec"]["kprobes"][0]["selectors"][0]["matchArgs"][0]["values"], json!(["4444", "6666"]));
        assert_eq!(object["spec"]["kprobes"][0]["selectors"][0]["matchActions"], json!([{"action": "Post"}]));
        assert_eq!(ManagedPolicy::from_value(&object).unwrap().blocks, Json::Valid(ports));
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
