//! The evidence behind a policy's addresses, kept on the object: the
//! reputation decision on every address its findings named (verdict,
//! source, score) and the domains they named. Sync and serve write it, and a
//! later run unites it with what the cluster holds, newer decisions winning.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::managed::{MAX_DOMAINS, ManagedPolicy, encode_reputation};
use super::object::labels;
use crate::reputation::Decision;

/// Records the decisions and domains of a new policy in its annotations.
pub fn record(
    annotations: &mut BTreeMap<String, String>,
    decisions: &BTreeMap<IpAddr, Decision>,
    domains: &BTreeSet<String>,
) {
    if !decisions.is_empty() {
        annotations.insert(labels::REPUTATION.to_string(), encode_reputation(decisions));
    }
    if !domains.is_empty() {
        let kept: Vec<&str> = domains.iter().take(MAX_DOMAINS).map(String::as_str).collect();
        annotations.insert(labels::DOMAINS.to_string(), kept.join(","));
    }
}

/// Unites the evidence of `existing` with `desired`'s, into `desired`; a
/// decision `desired` holds on an address replaces the existing one.
pub fn merge(desired: &mut ManagedPolicy, existing: &ManagedPolicy) {
    let mut decisions = existing.reputation.clone();
    decisions.append(&mut desired.reputation);
    desired.reputation = decisions;
    let domains: BTreeSet<&String> = existing.domains.iter().chain(&desired.domains).collect();
    desired.domains = domains.into_iter().take(MAX_DOMAINS).cloned().collect();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::managed::MAX_DECISIONS;
    use crate::policy::{Kind, PolicyObject};
    use crate::reputation::Verdict;
    use serde_json::json;

    fn decision(verdict: Verdict, score: u8) -> Decision {
        Decision { verdict, source: "abuseipdb".into(), score: Some(score), note: None }
    }

    fn policy(annotations: BTreeMap<String, String>) -> ManagedPolicy {
        ManagedPolicy::from_object(PolicyObject {
            kind: Kind::TracingPolicy,
            name: "p".into(),
            namespace: None,
            labels: BTreeMap::new(),
            annotations,
            spec: json!({}),
        })
    }

    #[test]
    fn evidence_is_united_and_the_newer_decision_wins() {
        let mut annotations = BTreeMap::new();
        let old = BTreeMap::from([
            ("203.0.113.9".parse().unwrap(), decision(Verdict::Clean, 10)),
            ("198.51.100.7".parse().unwrap(), decision(Verdict::Malicious, 99)),
        ]);
        record(&mut annotations, &old, &BTreeSet::from(["a.example".to_string()]));
        let existing = policy(annotations);
        let mut new_annotations = BTreeMap::new();
        let new = BTreeMap::from([("203.0.113.9".parse().unwrap(), decision(Verdict::Malicious, 90))]);
        record(&mut new_annotations, &new, &BTreeSet::from(["b.example".to_string()]));
        let mut desired = policy(new_annotations);
        merge(&mut desired, &existing);
        assert_eq!(desired.reputation.len(), 2);
        assert_eq!(desired.reputation[&"203.0.113.9".parse().unwrap()].score, Some(90));
        assert_eq!(desired.annotations()[labels::DOMAINS], "a.example,b.example");
        let mut nothing = policy(BTreeMap::new());
        merge(&mut nothing, &policy(BTreeMap::new()));
        assert_eq!(nothing.annotations(), BTreeMap::new());
    }

    #[test]
    fn a_flood_keeps_the_malicious_decisions() {
        let mut decisions: BTreeMap<IpAddr, Decision> =
            (0..100u8).map(|i| (IpAddr::from([203, 0, 113, i]), decision(Verdict::Clean, 1))).collect();
        decisions.insert(IpAddr::from([203, 0, 113, 250]), decision(Verdict::Malicious, 100));
        let mut annotations = BTreeMap::new();
        record(&mut annotations, &decisions, &BTreeSet::new());
        let kept: BTreeMap<String, Decision> = serde_json::from_str(&annotations[labels::REPUTATION]).unwrap();
        assert_eq!(kept.len(), MAX_DECISIONS);
        assert!(kept.contains_key("203.0.113.250"));
    }
}
