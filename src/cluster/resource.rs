//! The kinds we read and write, and where the API server serves them.

use kube::core::ApiResource;
use serde_json::Value;

use crate::policy::ObjectName;

/// A kind we touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    /// `cilium.io/v1alpha1` `TracingPolicy`, cluster-scoped.
    TracingPolicy,
    /// `cilium.io/v1alpha1` `TracingPolicyNamespaced`.
    TracingPolicyNamespaced,
    /// `networking.k8s.io/v1` `NetworkPolicy`.
    NetworkPolicy,
    /// `v1` `ConfigMap` (the checkpoint).
    ConfigMap,
}

impl Resource {
    /// Group, version, kind and plural.
    pub fn api_resource(self) -> ApiResource {
        let (group, version, kind, plural) = match self {
            Resource::TracingPolicy => ("cilium.io", "v1alpha1", "TracingPolicy", "tracingpolicies"),
            Resource::TracingPolicyNamespaced => {
                ("cilium.io", "v1alpha1", "TracingPolicyNamespaced", "tracingpoliciesnamespaced")
            }
            Resource::NetworkPolicy => ("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies"),
            Resource::ConfigMap => ("", "v1", "ConfigMap", "configmaps"),
        };
        let api_version = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
        ApiResource {
            group: group.into(),
            version: version.into(),
            api_version,
            kind: kind.into(),
            plural: plural.into(),
        }
    }

    /// True for namespaced kinds.
    pub fn namespaced(self) -> bool {
        self != Resource::TracingPolicy
    }

    /// The kind of `object`, if it is one of ours.
    pub fn of(object: &Value) -> Option<Resource> {
        let api_version = object.get("apiVersion").and_then(Value::as_str)?;
        let kind = object.get("kind").and_then(Value::as_str)?;
        [Resource::TracingPolicy, Resource::TracingPolicyNamespaced, Resource::NetworkPolicy, Resource::ConfigMap]
            .into_iter()
            .find(|r| {
                let ar = r.api_resource();
                ar.api_version == api_version && ar.kind == kind
            })
    }

    /// `tracingpolicy.cilium.io`, as kubectl names kinds in its messages.
    pub fn short(self) -> String {
        let ar = self.api_resource();
        let kind = ar.kind.to_lowercase();
        if ar.group.is_empty() { kind } else { format!("{kind}.{}", ar.group) }
    }
}

/// `tracingpolicy.cilium.io/name` or `…/namespace/name`.
pub fn display(object: &Value) -> String {
    let kind = Resource::of(object)
        .map(Resource::short)
        .unwrap_or_else(|| object.get("kind").and_then(Value::as_str).unwrap_or("object").to_lowercase());
    let name = ObjectName::of(object);
    match name.namespace {
        Some(ns) => format!("{kind}/{} -n {ns}", name.name),
        None => format!("{kind}/{}", name.name),
    }
}
