//! The Kubernetes object the host emits: a `TracingPolicy` or a
//! `TracingPolicyNamespaced` of `cilium.io/v1alpha1`.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value, json};

/// Label and annotation keys the host writes.
pub mod labels {
    /// Standard ownership label; `--prune` only ever touches objects with it.
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    /// Our value of [`MANAGED_BY`].
    pub const MANAGER: &str = "kubectl-qualys-respond";
    /// The category, lower-cased as the finding names it.
    pub const CATEGORY: &str = "qualys-respond.io/category";
    /// The MITRE ATT&CK technique.
    pub const TECHNIQUE: &str = "mitre.attack/technique";
    /// `audit` or `enforce`.
    pub const MODE: &str = "qualys-respond.io/mode";
    /// The mapper's template slug.
    pub const TEMPLATE: &str = "qualys-respond.io/template";
    /// Annotation: the ids of the findings behind the policy, sorted, comma-separated.
    pub const FINDING_IDS: &str = "qualys-respond.io/finding-ids";
    /// Annotation: how many findings are behind the policy.
    pub const FINDING_COUNT: &str = "qualys-respond.io/finding-count";
    /// Annotation: what the policy blocks, sorted, comma-separated.
    pub const INDICATORS: &str = "qualys-respond.io/indicators";
    /// Annotation: `name@version` of the mapper that produced the spec.
    pub const MAPPER: &str = "qualys-respond.io/mapper";
    /// The cluster the object was made for, as Qualys names it (`--cluster-name`).
    pub const CLUSTER: &str = "qualys-respond.io/cluster";
    /// `cdr` for policies made from findings, `block` for manual blocks.
    pub const SOURCE: &str = "qualys-respond.io/source";
    /// Annotation: JSON object from the JSON pointer of every action list
    /// that enforcement changes to that list in enforce mode; `promote` and
    /// `demote` switch the mode with it, whatever the mapper was.
    pub const ENFORCE_ACTIONS: &str = "qualys-respond.io/enforce-actions";
    /// Annotation: JSON list of the transitions (`{at, by, event, mode}`), oldest first.
    pub const HISTORY: &str = "qualys-respond.io/history";
    /// Annotation: when the policy entered its current mode (RFC 3339).
    pub const MODE_SINCE: &str = "qualys-respond.io/mode-since";
    /// Annotation: latest detection time of the findings behind the policy (RFC 3339).
    pub const LAST_DETECTED: &str = "qualys-respond.io/last-detected";
    /// Annotation: JSON object from each address the findings named to the
    /// reputation decision on it (`verdict`, `source`, `score`, `note`).
    pub const REPUTATION: &str = "qualys-respond.io/reputation";
    /// Annotation: domains the findings named, sorted, comma-separated.
    pub const DOMAINS: &str = "qualys-respond.io/domains";
    /// Annotation: binaries `tune` excluded, sorted, comma-separated.
    pub const EXCLUDED_BINARIES: &str = "qualys-respond.io/excluded-binaries";
    /// Annotation `"true"` on a block policy whose enforcement also writes a
    /// NetworkPolicy companion (`--network-policy`).
    pub const NETWORK_POLICY: &str = "qualys-respond.io/network-policy";
    /// Annotation: namespaces `tune` excluded, sorted, comma-separated.
    pub const EXCLUDED_NAMESPACES: &str = "qualys-respond.io/excluded-namespaces";
}

/// The two TracingPolicy kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Cluster-wide.
    TracingPolicy,
    /// Limited to the pods of its namespace.
    TracingPolicyNamespaced,
}

impl Kind {
    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::TracingPolicy => "TracingPolicy",
            Kind::TracingPolicyNamespaced => "TracingPolicyNamespaced",
        }
    }

    /// The kind named `name`, if it is one of ours.
    pub fn parse(name: &str) -> Option<Kind> {
        match name {
            "TracingPolicy" => Some(Kind::TracingPolicy),
            "TracingPolicyNamespaced" => Some(Kind::TracingPolicyNamespaced),
            _ => None,
        }
    }
}

/// The API group and version of both kinds.
pub const API_VERSION: &str = "cilium.io/v1alpha1";

/// One policy object.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyObject {
    /// Its kind.
    pub kind: Kind,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`, for the namespaced kind.
    pub namespace: Option<String>,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// `spec`.
    pub spec: Value,
}

impl PolicyObject {
    /// The whole object as JSON, keys in a fixed order.
    pub fn to_value(&self) -> Value {
        object_value(self.object_name(), &self.labels, &self.annotations, &self.spec)
    }

    /// Its name, for messages.
    pub fn object_name(&self) -> ObjectName<'_> {
        ObjectName::new(self.kind, self.namespace.as_deref(), &self.name)
    }
}

/// A TracingPolicy object of `name` as JSON, keys in a fixed order: the one
/// writer of our objects' shape, for [`PolicyObject`] and the managed model.
pub(crate) fn object_value(
    name: ObjectName<'_>,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
    spec: &Value,
) -> Value {
    let mut metadata = Map::new();
    metadata.insert("name".into(), json!(name.name));
    if let Some(namespace) = name.namespace {
        metadata.insert("namespace".into(), json!(namespace));
    }
    metadata.insert("labels".into(), json!(labels));
    metadata.insert("annotations".into(), json!(annotations));
    json!({
        "apiVersion": API_VERSION,
        "kind": name.kind,
        "metadata": metadata,
        "spec": spec,
    })
}

/// How messages name an object: `Kind/name` or `Kind/namespace/name`. The
/// one formatter of object names; the cluster's reports add kubectl's
/// resource form on top of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectName<'a> {
    /// `kind`.
    pub kind: &'a str,
    /// `metadata.namespace`.
    pub namespace: Option<&'a str>,
    /// `metadata.name`.
    pub name: &'a str,
}

impl<'a> ObjectName<'a> {
    /// The name of one of our kinds.
    pub fn new(kind: Kind, namespace: Option<&'a str>, name: &'a str) -> ObjectName<'a> {
        ObjectName { kind: kind.as_str(), namespace, name }
    }

    /// The name of any object, `?` for what it lacks.
    pub fn of(object: &'a Value) -> ObjectName<'a> {
        let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str);
        ObjectName {
            kind: text("/kind").unwrap_or("?"),
            namespace: text("/metadata/namespace"),
            name: text("/metadata/name").unwrap_or("?"),
        }
    }
}

impl fmt::Display for ObjectName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.namespace {
            Some(ns) => write!(f, "{}/{ns}/{}", self.kind, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}
