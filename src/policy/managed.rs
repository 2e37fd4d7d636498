//! One of our policies as the host holds it from the policy stage to the
//! cluster: a `TracingPolicy` or `TracingPolicyNamespaced` whose labels are
//! read through typed accessors and whose annotations (the enforcing action
//! lists, the history, tuning, finding ids, indicators, evidence, block
//! entries) are parsed once when the object is read and written once when it
//! is written. What the cluster holds of ours is an [`Inventory`], read once
//! per step.
//!
//! An annotation holding JSON that does not parse is kept as it was found
//! ([`Json::Invalid`]) and written back unchanged, so reading and writing an
//! object never loses what someone put there; the steps that need its
//! content refuse instead.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::mode::Mode;
use super::object::{Kind, ObjectName, PolicyObject, labels, object_value};
use crate::reputation::Decision;

/// Annotation: the entries of a block policy, as a JSON list.
pub const BLOCK_ENTRIES: &str = "qualys-respond.io/blocks";
/// Reputation decisions kept on one policy (the malicious ones first).
pub const MAX_DECISIONS: usize = 64;
/// Domains kept on one policy.
pub const MAX_DOMAINS: usize = 64;

/// RFC 3339 with seconds, as every timestamp we write.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&Utc))
}

/// An annotation that holds JSON.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Json<T> {
    /// Not there.
    #[default]
    Absent,
    /// There and readable.
    Valid(T),
    /// There but not readable: the text as found, written back unchanged.
    Invalid(String),
}

impl<T: Serialize + DeserializeOwned> Json<T> {
    fn read(text: Option<String>) -> Json<T> {
        match text {
            None => Json::Absent,
            Some(text) => serde_json::from_str(&text).map(Json::Valid).unwrap_or(Json::Invalid(text)),
        }
    }

    fn write(&self) -> Option<String> {
        match self {
            Json::Absent => None,
            Json::Valid(value) => serde_json::to_string(value).ok(),
            Json::Invalid(text) => Some(text.clone()),
        }
    }

    /// The content, when it is there and readable.
    pub fn valid(&self) -> Option<&T> {
        match self {
            Json::Valid(value) => Some(value),
            Json::Absent | Json::Invalid(_) => None,
        }
    }
}

/// One entry of the history annotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// When (RFC 3339).
    pub at: String,
    /// Who (the user the API server saw).
    pub by: String,
    /// `created`, `promoted`, `tuned`, …
    pub event: String,
    /// The mode label after it.
    pub mode: String,
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
    /// Nothing excluded.
    pub fn is_empty(&self) -> bool {
        self.binaries.is_empty() && self.namespaces.is_empty()
    }

    /// Adds `other`'s exclusions.
    pub fn extend(&mut self, other: Tuning) {
        self.binaries.extend(other.binaries);
        self.namespaces.extend(other.namespaces);
    }
}

/// One blocked value of a block policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockEntry {
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

impl BlockEntry {
    /// True when the entry's TTL has run out at `now`.
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expires.as_deref().and_then(parse_time).is_some_and(|t| t <= now)
    }
}

/// A policy of ours, with what we keep on it typed.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedPolicy {
    /// Its kind.
    pub kind: Kind,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`, for the namespaced kind.
    pub namespace: Option<String>,
    /// `metadata.labels`, ours (read through the accessors) and others'.
    pub labels: BTreeMap<String, String>,
    /// `spec`.
    pub spec: Value,
    /// The ids of the findings behind it, as listed (at most a hundred);
    /// `None` when the annotation is not there (an empty list is written).
    pub finding_ids: Option<Vec<String>>,
    /// How many findings are behind it, when recorded.
    pub finding_count: Option<usize>,
    /// What it blocks; `None` when the annotation is not there.
    pub indicators: Option<Vec<String>>,
    /// Every action list enforcement changes, by JSON pointer, in its enforcing form.
    pub enforce_actions: Json<BTreeMap<String, Vec<Value>>>,
    /// The transitions, oldest first.
    pub history: Json<Vec<Transition>>,
    /// When it entered its current mode (RFC 3339).
    pub mode_since: Option<String>,
    /// Latest detection of the findings behind it.
    pub last_detected: Option<DateTime<Utc>>,
    /// The reputation decision on each address its findings named.
    pub reputation: BTreeMap<IpAddr, Decision>,
    /// Domains its findings named.
    pub domains: Vec<String>,
    /// What `tune` excluded.
    pub tuning: Tuning,
    /// A block policy whose enforcement also writes a NetworkPolicy.
    pub network_policy: bool,
    /// The entries of a block policy.
    pub blocks: Json<Vec<BlockEntry>>,
    /// Every other annotation, as found.
    pub annotations: BTreeMap<String, String>,
    /// `metadata.creationTimestamp`, for an object read from the cluster.
    pub created: Option<DateTime<Utc>>,
}

fn items(text: Option<String>) -> Vec<String> {
    text.unwrap_or_default().split(',').filter(|s| !s.is_empty()).map(str::to_string).collect()
}

fn listed(text: Option<String>) -> Option<Vec<String>> {
    text.map(|text| items(Some(text)))
}

fn joined<'a>(items: impl IntoIterator<Item = &'a String>) -> Option<String> {
    let list: Vec<&str> = items.into_iter().map(String::as_str).collect();
    (!list.is_empty()).then(|| list.join(","))
}

/// The reputation annotation: the malicious decisions first when there are
/// too many, keyed by address.
pub(crate) fn encode_reputation(decisions: &BTreeMap<IpAddr, Decision>) -> String {
    let mut ordered: Vec<(&IpAddr, &Decision)> = decisions.iter().collect();
    ordered.sort_by_key(|(ip, d)| (d.verdict, **ip));
    let kept: BTreeMap<String, &Decision> =
        ordered.into_iter().take(MAX_DECISIONS).map(|(ip, d)| (ip.to_string(), d)).collect();
    serde_json::to_string(&kept).unwrap_or_default()
}

fn decode_reputation(text: Option<String>) -> BTreeMap<IpAddr, Decision> {
    let parsed: BTreeMap<String, Decision> = text.and_then(|text| serde_json::from_str(&text).ok()).unwrap_or_default();
    parsed.into_iter().filter_map(|(ip, d)| Some((ip.parse().ok()?, d))).collect()
}

impl ManagedPolicy {
    /// A policy with nothing recorded on it yet.
    pub fn new(
        kind: Kind,
        name: String,
        namespace: Option<String>,
        labels: BTreeMap<String, String>,
        spec: Value,
    ) -> Self {
        ManagedPolicy::from_object(PolicyObject { kind, name, namespace, labels, annotations: BTreeMap::new(), spec })
    }

    /// Reads `object`'s annotations into the typed fields.
    pub fn from_object(object: PolicyObject) -> ManagedPolicy {
        let PolicyObject { kind, name, namespace, labels, mut annotations, spec } = object;
        let mut take = |key: &str| annotations.remove(key);
        let tuning = Tuning {
            binaries: items(take(labels::EXCLUDED_BINARIES)).into_iter().collect(),
            namespaces: items(take(labels::EXCLUDED_NAMESPACES)).into_iter().collect(),
        };
        ManagedPolicy {
            finding_ids: listed(take(labels::FINDING_IDS)),
            finding_count: take(labels::FINDING_COUNT).and_then(|c| c.parse().ok()),
            indicators: listed(take(labels::INDICATORS)),
            enforce_actions: Json::read(take(labels::ENFORCE_ACTIONS)),
            history: Json::read(take(labels::HISTORY)),
            mode_since: take(labels::MODE_SINCE),
            last_detected: take(labels::LAST_DETECTED).as_deref().and_then(parse_time),
            reputation: decode_reputation(take(labels::REPUTATION)),
            domains: items(take(labels::DOMAINS)),
            tuning,
            network_policy: take(labels::NETWORK_POLICY).is_some_and(|v| v == "true"),
            blocks: Json::read(take(BLOCK_ENTRIES)),
            kind,
            name,
            namespace,
            labels,
            spec,
            annotations,
            created: None,
        }
    }

    /// Reads a TracingPolicy or TracingPolicyNamespaced as the cluster
    /// returns it; `None` for any other object.
    pub fn from_value(object: &Value) -> Option<ManagedPolicy> {
        let kind = Kind::parse(object.get("kind")?.as_str()?)?;
        let metadata = object.get("metadata")?;
        let strings = |field: &str| -> BTreeMap<String, String> {
            metadata
                .get(field)
                .and_then(Value::as_object)
                .map(|map| map.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
                .unwrap_or_default()
        };
        let text = |field: &str| metadata.get(field).and_then(Value::as_str);
        let mut policy = ManagedPolicy::from_object(PolicyObject {
            kind,
            name: text("name")?.to_string(),
            namespace: text("namespace").map(str::to_string),
            labels: strings("labels"),
            annotations: strings("annotations"),
            spec: object.get("spec").cloned().unwrap_or_else(|| json!({})),
        });
        policy.created = text("creationTimestamp").and_then(parse_time);
        Some(policy)
    }

    /// Every annotation, ours written from the typed fields.
    pub fn annotations(&self) -> BTreeMap<String, String> {
        let mut out = self.annotations.clone();
        let mut put = |key: &str, value: Option<String>| {
            if let Some(value) = value {
                out.insert(key.to_string(), value);
            }
        };
        put(labels::FINDING_IDS, self.finding_ids.as_ref().map(|ids| ids.join(",")));
        put(labels::FINDING_COUNT, self.finding_count.map(|c| c.to_string()));
        put(labels::INDICATORS, self.indicators.as_ref().map(|items| items.join(",")));
        put(labels::ENFORCE_ACTIONS, self.enforce_actions.write());
        put(labels::HISTORY, self.history.write());
        put(labels::MODE_SINCE, self.mode_since.clone());
        put(labels::LAST_DETECTED, self.last_detected.map(timestamp));
        put(labels::REPUTATION, (!self.reputation.is_empty()).then(|| encode_reputation(&self.reputation)));
        put(labels::DOMAINS, joined(self.domains.iter().take(MAX_DOMAINS)));
        put(labels::EXCLUDED_BINARIES, joined(&self.tuning.binaries));
        put(labels::EXCLUDED_NAMESPACES, joined(&self.tuning.namespaces));
        put(labels::NETWORK_POLICY, self.network_policy.then(|| "true".to_string()));
        put(BLOCK_ENTRIES, self.blocks.write());
        out
    }

    /// The whole object as JSON, keys in a fixed order: what is validated and applied.
    pub fn to_value(&self) -> Value {
        object_value(self.object_name(), &self.labels, &self.annotations(), &self.spec)
    }

    /// Its name, for messages.
    pub fn object_name(&self) -> ObjectName<'_> {
        ObjectName::new(self.kind, self.namespace.as_deref(), &self.name)
    }

    /// The label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }

    /// Sets (or, with `None`, removes) the label `key`.
    pub fn set_label(&mut self, key: &str, value: Option<&str>) {
        match value {
            Some(value) => self.labels.insert(key.to_string(), value.to_string()),
            None => self.labels.remove(key),
        };
    }

    /// True when it carries our managed-by label.
    pub fn is_managed(&self) -> bool {
        self.label(labels::MANAGED_BY) == Some(labels::MANAGER)
    }

    /// Its mode, from its label.
    pub fn mode(&self) -> Option<Mode> {
        self.label(labels::MODE).and_then(Mode::from_label)
    }

    /// `cdr` or `block`.
    pub fn source(&self) -> Option<&str> {
        self.label(labels::SOURCE)
    }

    /// The finding category it answers.
    pub fn category(&self) -> Option<&str> {
        self.label(labels::CATEGORY)
    }

    /// The listed finding ids.
    pub fn finding_ids(&self) -> &[String] {
        self.finding_ids.as_deref().unwrap_or_default()
    }

    /// What it blocks.
    pub fn indicators(&self) -> &[String] {
        self.indicators.as_deref().unwrap_or_default()
    }

    /// How many findings are behind it: the recorded count, else the listed ids.
    pub fn findings(&self) -> usize {
        self.finding_count.unwrap_or(self.finding_ids().len())
    }

    /// Since when it has been in its mode: the recorded mark, else its creation.
    pub fn in_mode_since(&self) -> Option<DateTime<Utc>> {
        self.mode_since.as_deref().and_then(parse_time).or(self.created)
    }

    /// The latest detection behind it, else its creation.
    pub fn last_seen(&self) -> Option<DateTime<Utc>> {
        self.last_detected.or(self.created)
    }
}

/// An object of ours read from the cluster: typed, and as the cluster
/// returned it (its resourceVersion makes a write conditional on it).
#[derive(Debug, Clone)]
pub struct Found {
    /// Typed.
    pub policy: ManagedPolicy,
    /// As read.
    pub object: Value,
}

/// Everything of ours the cluster holds, read once.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// The TracingPolicies and TracingPolicyNamespaced.
    pub policies: Vec<Found>,
    /// The rest (the NetworkPolicy companions of blocks), as read.
    pub others: Vec<Value>,
}

impl Inventory {
    /// Sorts `objects` into policies and the rest, reading each policy once.
    pub fn new(objects: Vec<Value>) -> Inventory {
        let mut inventory = Inventory::default();
        for object in objects {
            match ManagedPolicy::from_value(&object) {
                Some(policy) => inventory.policies.push(Found { policy, object }),
                None => inventory.others.push(object),
            }
        }
        inventory
    }

    /// The policy of that kind, namespace and name.
    pub fn policy(&self, kind: Kind, namespace: Option<&str>, name: &str) -> Option<&Found> {
        self.policies
            .iter()
            .find(|f| f.policy.kind == kind && f.policy.namespace.as_deref() == namespace && f.policy.name == name)
    }

    /// Every object, as read.
    pub fn into_objects(self) -> impl Iterator<Item = Value> {
        self.policies.into_iter().map(|found| found.object).chain(self.others)
    }

    /// True when some block wants NetworkPolicy companions.
    pub fn wants_companions(&self) -> bool {
        self.policies.iter().any(|f| f.policy.network_policy)
    }
}

impl fmt::Display for ManagedPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.object_name().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::API_VERSION;
    use crate::reputation::Verdict;

    fn stored() -> Value {
        json!({"apiVersion": API_VERSION, "kind": "TracingPolicyNamespaced",
            "metadata": {"name": "p", "namespace": "payments", "resourceVersion": "7",
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "labels": {labels::MANAGED_BY: labels::MANAGER, labels::MODE: "audit", "team": "pay"},
                "annotations": {
                    labels::FINDING_IDS: "a,b", labels::FINDING_COUNT: "5", labels::INDICATORS: "4444",
                    labels::ENFORCE_ACTIONS: r#"{"/kprobes/0/selectors/0/matchActions":[{"action":"Sigkill"}]}"#,
                    labels::HISTORY: r#"[{"at":"2026-01-01T00:00:00Z","by":"alice","event":"created","mode":"audit"}]"#,
                    labels::MODE_SINCE: "2026-01-01T00:00:00Z",
                    labels::LAST_DETECTED: "2026-01-02T00:00:00Z",
                    labels::REPUTATION: r#"{"203.0.113.9":{"verdict":"malicious","source":"abuseipdb","score":99}}"#,
                    labels::DOMAINS: "a.example,b.example",
                    labels::EXCLUDED_BINARIES: "/usr/bin/nc",
                    labels::NETWORK_POLICY: "true",
                    BLOCK_ENTRIES: r#"[{"value":"4444","reason":"shell","by":"alice","at":"2026-01-01T00:00:00Z"}]"#,
                    "kubectl.kubernetes.io/note": "kept"}},
            "spec": {"kprobes": []}})
    }

    #[test]
    fn annotations_round_trip_through_the_typed_model() {
        let value = stored();
        let policy = ManagedPolicy::from_value(&value).unwrap();
        assert_eq!(policy.mode(), Some(Mode::Post));
        assert_eq!(policy.finding_ids(), ["a", "b"]);
        assert_eq!(policy.findings(), 5);
        assert_eq!(policy.enforce_actions.valid().unwrap().len(), 1);
        assert_eq!(policy.history.valid().unwrap()[0].by, "alice");
        assert_eq!(policy.reputation[&"203.0.113.9".parse::<IpAddr>().unwrap()].verdict, Verdict::Malicious);
        assert_eq!(policy.tuning.binaries, BTreeSet::from(["/usr/bin/nc".to_string()]));
        assert!(policy.network_policy);
        assert_eq!(policy.blocks.valid().unwrap()[0].value, "4444");
        assert_eq!(policy.created, parse_time("2026-01-01T00:00:00Z"));
        assert_eq!(policy.to_string(), "TracingPolicyNamespaced/payments/p");
        let mut expected = value.clone();
        let metadata = expected["metadata"].as_object_mut().unwrap();
        metadata.remove("resourceVersion");
        metadata.remove("creationTimestamp");
        assert_eq!(policy.to_value(), expected, "what we read is written back as it was");
    }

    #[test]
    fn unreadable_json_annotations_are_kept_as_found() {
        let mut value = stored();
        value["metadata"]["annotations"][labels::ENFORCE_ACTIONS] = json!("{broken");
        value["metadata"]["annotations"][BLOCK_ENTRIES] = json!("[1");
        let policy = ManagedPolicy::from_value(&value).unwrap();
        assert_eq!(policy.enforce_actions, Json::Invalid("{broken".into()));
        assert_eq!(policy.blocks.valid(), None);
        let written = policy.to_value();
        assert_eq!(written["metadata"]["annotations"][labels::ENFORCE_ACTIONS], "{broken");
        assert_eq!(written["metadata"]["annotations"][BLOCK_ENTRIES], "[1");
    }

    #[test]
    fn an_inventory_sorts_policies_from_companions() {
        let companion = json!({"kind": "NetworkPolicy", "metadata": {"name": "p", "namespace": "payments"}});
        let inventory = Inventory::new(vec![stored(), companion.clone()]);
        assert_eq!(inventory.policies.len(), 1);
        assert_eq!(inventory.others, [companion]);
        assert!(inventory.wants_companions());
        assert!(inventory.policy(Kind::TracingPolicyNamespaced, Some("payments"), "p").is_some());
        assert!(inventory.policy(Kind::TracingPolicy, None, "p").is_none());
    }
}
