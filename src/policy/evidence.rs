//! The evidence behind a policy's addresses, kept on the object: the
//! reputation decision on every address its findings named (verdict,
//! source, score) and the domains they named. Sync and serve write it, and a
//! later run unites it with what the cluster holds, newer decisions winning.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde_json::Value;

use super::lifecycle::{annotation, annotation_items, set_annotation};
use super::object::labels;
use crate::reputation::Decision;

/// Decisions kept on one object, at most (malicious ones first).
pub const MAX_DECISIONS: usize = 64;
/// Domains kept on one object, at most.
pub const MAX_DOMAINS: usize = 64;

/// Writes the evidence annotations into `annotations` (nothing when empty).
pub fn record(
    annotations: &mut BTreeMap<String, String>,
    decisions: &BTreeMap<IpAddr, Decision>,
    domains: &BTreeSet<String>,
) {
    if !decisions.is_empty() {
        annotations.insert(labels::REPUTATION.to_string(), encode(decisions));
    }
    if !domains.is_empty() {
        let kept: Vec<&str> = domains.iter().take(MAX_DOMAINS).map(String::as_str).collect();
        annotations.insert(labels::DOMAINS.to_string(), kept.join(","));
    }
}

/// The decisions as the annotation's JSON object, capped with the
/// malicious ones kept first.
fn encode(decisions: &BTreeMap<IpAddr, Decision>) -> String {
    let mut ordered: Vec<(&IpAddr, &Decision)> = decisions.iter().collect();
    ordered.sort_by_key(|(ip, d)| (d.verdict, **ip));
    let kept: BTreeMap<String, &Decision> =
        ordered.into_iter().take(MAX_DECISIONS).map(|(ip, d)| (ip.to_string(), d)).collect();
    serde_json::to_string(&kept).unwrap_or_default()
}

fn decisions_of(object: &Value) -> BTreeMap<IpAddr, Decision> {
    let parsed: BTreeMap<String, Decision> =
        annotation(object, labels::REPUTATION).and_then(|text| serde_json::from_str(text).ok()).unwrap_or_default();
    parsed.into_iter().filter_map(|(ip, d)| Some((ip.parse().ok()?, d))).collect()
}

/// Unites `existing`'s evidence into `desired`'s; `desired`'s decision on an
/// address wins.
pub fn merge(desired: &mut Value, existing: &Value) {
    let mut decisions = decisions_of(existing);
    decisions.extend(decisions_of(desired));
    let domains: BTreeSet<String> =
        annotation_items(existing, labels::DOMAINS).chain(annotation_items(desired, labels::DOMAINS)).collect();
    let domains: Vec<String> = domains.into_iter().take(MAX_DOMAINS).collect();
    set_annotation(desired, labels::REPUTATION, (!decisions.is_empty()).then(|| encode(&decisions)).as_deref());
    set_annotation(desired, labels::DOMAINS, (!domains.is_empty()).then(|| domains.join(",")).as_deref());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reputation::Verdict;
    use serde_json::json;

    fn decision(verdict: Verdict, score: u8) -> Decision {
        Decision { verdict, source: "abuseipdb".into(), score: Some(score), note: None }
    }

    #[test]
    fn evidence_is_united_and_the_newer_decision_wins() {
        let mut annotations = BTreeMap::new();
        let old = BTreeMap::from([
            ("203.0.113.9".parse().unwrap(), decision(Verdict::Clean, 10)),
            ("198.51.100.7".parse().unwrap(), decision(Verdict::Malicious, 99)),
        ]);
        record(&mut annotations, &old, &BTreeSet::from(["a.example".to_string()]));
        let existing = json!({"metadata": {"annotations": annotations}});
        let mut new_annotations = BTreeMap::new();
        let new = BTreeMap::from([("203.0.113.9".parse().unwrap(), decision(Verdict::Malicious, 90))]);
        record(&mut new_annotations, &new, &BTreeSet::from(["b.example".to_string()]));
        let mut desired = json!({"metadata": {"annotations": new_annotations}});
        merge(&mut desired, &existing);
        let merged = decisions_of(&desired);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[&"203.0.113.9".parse().unwrap()].score, Some(90));
        assert_eq!(annotation(&desired, labels::DOMAINS), Some("a.example,b.example"));
        let mut nothing = json!({"metadata": {}});
        merge(&mut nothing, &json!({}));
        assert_eq!(nothing, json!({"metadata": {"annotations": {}}}));
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
