//! The NetworkPolicy companion of an enforced IP block: the CNI's second
//! layer, for the namespace the block applies to.
//!
//! NetworkPolicies only allow; they cannot deny. This one selects every pod
//! of the namespace for egress and allows all of it except the blocked
//! ranges (`ipBlock` with `except`), plus every pod in the cluster (pod
//! traffic is not meant to be matched by `ipBlock`). Another egress policy
//! in the namespace that allows a blocked range still wins; the TracingPolicy
//! blocks regardless.

use ipnet::IpNet;
use serde_json::{Value, json};

use crate::policy::{ManagedPolicy, labels};

/// The NetworkPolicy for a namespace whose block policy is `block`, with
/// the blocked `ranges`; `None` when no range is an address range.
pub fn network_policy(block: &ManagedPolicy, namespace: &str, ranges: &[IpNet]) -> Option<Value> {
    if ranges.is_empty() {
        return None;
    }
    let mut v4: Vec<String> = ranges.iter().filter(|n| matches!(n, IpNet::V4(_))).map(IpNet::to_string).collect();
    let mut v6: Vec<String> = ranges.iter().filter(|n| matches!(n, IpNet::V6(_))).map(IpNet::to_string).collect();
    v4.sort();
    v6.sort();
    let mut peers = vec![json!({"namespaceSelector": {}})];
    peers.push(json!({"ipBlock": {"cidr": "0.0.0.0/0", "except": v4}}));
    peers.push(json!({"ipBlock": {"cidr": "::/0", "except": v6}}));
    for peer in &mut peers {
        if let Some(block) = peer.get_mut("ipBlock")
            && block["except"].as_array().is_some_and(Vec::is_empty)
            && let Some(map) = block.as_object_mut()
        {
            map.remove("except");
        }
    }
    let labels: serde_json::Map<String, Value> =
        block.labels.iter().filter(|(k, _)| *k != labels::MODE).map(|(k, v)| (k.clone(), json!(v))).collect();
    Some(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": block.name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {labels::INDICATORS: ranges.iter().map(IpNet::to_string).collect::<Vec<_>>().join(",")},
        },
        "spec": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{"to": peers}],
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Kind;
    use std::collections::BTreeMap;

    #[test]
    fn blocked_ranges_become_exceptions_per_family() {
        let labels = BTreeMap::from([(labels::MODE.to_string(), "enforce".to_string()), ("a".into(), "b".into())]);
        let block = ManagedPolicy::new(Kind::TracingPolicy, "cdr-manual-block-ip".into(), None, labels, json!({}));
        let ranges: Vec<IpNet> = ["203.0.113.7/32", "2001:db8::/64"].iter().map(|r| r.parse().unwrap()).collect();
        let policy = network_policy(&block, "payments", &ranges).unwrap();
        assert_eq!(policy["metadata"]["labels"], json!({"a": "b"}));
        let peers = &policy["spec"]["egress"][0]["to"];
        assert_eq!(peers[1], json!({"ipBlock": {"cidr": "0.0.0.0/0", "except": ["203.0.113.7/32"]}}));
        assert_eq!(peers[2], json!({"ipBlock": {"cidr": "::/0", "except": ["2001:db8::/64"]}}));
        assert_eq!(network_policy(&block, "payments", &[]), None);
    }
}
