//! The served resources (a few built-in kinds and Tetragon's CRDs) and the
//! documents that describe them: version, API groups and resource lists,
//! and the OpenAPI v3 document `kubectl` reads.

use serde_json::{Value, json};

use super::Inner;

const CRUD: [&str; 6] = ["create", "delete", "get", "list", "patch", "update"];
const TETRAGON_CRDS: [&str; 2] = [
    include_str!("../../../crds/tetragon/main/cilium.io_tracingpolicies.yaml"),
    include_str!("../../../crds/tetragon/main/cilium.io_tracingpoliciesnamespaced.yaml"),
];

/// A served resource, as discovery describes it.
#[derive(Debug, Clone, Default)]
pub(super) struct Resource {
    pub(super) group: String,
    pub(super) version: String,
    pub(super) plural: String,
    singular: String,
    pub(super) kind: String,
    pub(super) namespaced: bool,
    pub(super) verbs: Vec<&'static str>,
    short_names: Vec<String>,
    categories: Vec<String>,
    /// Defined by a CustomResourceDefinition.
    pub(super) custom: bool,
}

impl Resource {
    pub(super) fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// `tracingpolicies.cilium.io`, or `configmaps` in the core group.
    pub(super) fn qualified(&self) -> String {
        if self.group.is_empty() { self.plural.clone() } else { format!("{}.{}", self.plural, self.group) }
    }

    pub(super) fn details(&self, name: &str) -> Value {
        let mut details = json!({"name": name, "group": self.group, "kind": self.plural});
        if self.group.is_empty() {
            details.as_object_mut().unwrap().remove("group");
        }
        details
    }

    fn discovery(&self) -> Value {
        let mut entry = json!({"name": self.plural, "singularName": self.singular, "namespaced": self.namespaced,
            "kind": self.kind, "verbs": self.verbs});
        for (key, list) in [("shortNames", &self.short_names), ("categories", &self.categories)] {
            if !list.is_empty() {
                entry[key] = json!(list);
            }
        }
        entry
    }
}

fn builtin(group: &str, plural: &str, kind: &str, namespaced: bool, short_names: &[&str]) -> Resource {
    Resource {
        group: group.into(),
        version: "v1".into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        kind: kind.into(),
        namespaced,
        verbs: CRUD.to_vec(),
        short_names: short_names.iter().map(|s| s.to_string()).collect(),
        ..Resource::default()
    }
}

fn from_crd(yaml: &str) -> Resource {
    let crd: Value = serde_yaml::from_str(yaml).unwrap();
    let (spec, names) = (&crd["spec"], &crd["spec"]["names"]);
    let text = |value: &Value| value.as_str().unwrap().to_string();
    let strings = |value: &Value| -> Vec<String> { value.as_array().into_iter().flatten().map(text).collect() };
    Resource {
        group: text(&spec["group"]),
        version: text(&spec["versions"][0]["name"]),
        plural: text(&names["plural"]),
        singular: text(&names["singular"]),
        kind: text(&names["kind"]),
        namespaced: spec["scope"] == "Namespaced",
        verbs: CRUD.to_vec(),
        short_names: strings(&names["shortNames"]),
        categories: strings(&names["categories"]),
        custom: true,
    }
}

pub(super) fn resources(tetragon: bool) -> Vec<Resource> {
    let mut all = vec![
        builtin("", "namespaces", "Namespace", false, &["ns"]),
        builtin("", "nodes", "Node", false, &["no"]),
        builtin("", "configmaps", "ConfigMap", true, &["cm"]),
        builtin("", "services", "Service", true, &["svc"]),
        builtin("", "endpoints", "Endpoints", true, &["ep"]),
        builtin("networking.k8s.io", "networkpolicies", "NetworkPolicy", true, &["netpol"]),
        builtin("networking.k8s.io", "servicecidrs", "ServiceCIDR", false, &[]),
        Resource {
            verbs: vec!["create"],
            ..builtin("authentication.k8s.io", "selfsubjectreviews", "SelfSubjectReview", false, &[])
        },
    ];
    if tetragon {
        all.extend(TETRAGON_CRDS.map(from_crd));
    }
    all
}

impl Inner {
    fn group_versions(&self) -> Vec<(String, String)> {
        let mut seen = Vec::new();
        for r in self.resources.iter().filter(|r| !r.group.is_empty()) {
            if !seen.contains(&(r.group.clone(), r.version.clone())) {
                seen.push((r.group.clone(), r.version.clone()));
            }
        }
        seen
    }

    pub(super) fn discovery(&self, segments: &[&str]) -> Option<Value> {
        let group_doc = |(group, version): &(String, String)| {
            let version = json!({"groupVersion": format!("{group}/{version}"), "version": version});
            json!({"name": group, "versions": [version], "preferredVersion": version})
        };
        let served = self.group_versions();
        Some(match segments {
            ["version"] => json!({"major": "1", "minor": "33", "gitVersion": "v1.33.1", "gitTreeState": "clean",
                "gitCommit": "8adc0f041b8e7ad1d30e29cc59c6ae7a15e19828", "buildDate": "2025-05-15T08:19:19Z",
                "goVersion": "go1.24.2", "compiler": "gc", "platform": "linux/amd64"}),
            ["api"] => json!({"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "192.168.49.2:8443"}]}),
            ["apis"] => json!({"kind": "APIGroupList", "apiVersion": "v1",
                "groups": served.iter().map(group_doc).collect::<Vec<_>>()}),
            ["apis", group] => {
                let mut doc = group_doc(served.iter().find(|(g, _)| g == group)?);
                doc.as_object_mut()?.extend([("kind".into(), json!("APIGroup")), ("apiVersion".into(), json!("v1"))]);
                doc
            }
            ["api", "v1"] => self.resource_list("", "v1")?,
            ["apis", group, version] => self.resource_list(group, version)?,
            ["openapi", "v3"] => {
                let mut paths = serde_json::Map::new();
                for (group, version) in [(String::new(), "v1".to_string())].into_iter().chain(served) {
                    let path = if group.is_empty() { "api/v1".into() } else { format!("apis/{group}/{version}") };
                    paths.insert(path.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash=fake")}));
                }
                json!({"paths": paths})
            }
            ["openapi", "v3", "api", "v1"] => self.openapi("", "v1")?,
            ["openapi", "v3", "apis", group, version] => self.openapi(group, version)?,
            _ => return None,
        })
    }

    fn resource_list(&self, group: &str, version: &str) -> Option<Value> {
        let served: Vec<Value> = self
            .resources
            .iter()
            .filter(|r| r.group == group && r.version == version)
            .map(Resource::discovery)
            .collect();
        let group_version = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
        (!served.is_empty())
            .then(|| json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": served}))
    }

    /// The OpenAPI v3 document of one group version, reduced to what
    /// `kubectl` reads: which PATCH operations take `fieldValidation`.
    fn openapi(&self, group: &str, version: &str) -> Option<Value> {
        let mut paths = serde_json::Map::new();
        for r in
            self.resources.iter().filter(|r| r.group == group && r.version == version && r.verbs.contains(&"patch"))
        {
            let prefix = if group.is_empty() { "/api/v1".into() } else { format!("/apis/{group}/{version}") };
            let scope = if r.namespaced { "/namespaces/{namespace}" } else { "" };
            let parameters: Vec<Value> = ["dryRun", "fieldManager", "fieldValidation", "force"]
                .iter()
                .map(|name| json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}}))
                .collect();
            let patch = json!({"operationId": format!("patch{}", r.kind), "parameters": parameters,
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": r.kind}});
            paths.insert(format!("{prefix}{scope}/{}/{{name}}", r.plural), json!({"patch": patch}));
        }
        (!paths.is_empty())
            .then(|| json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.33.1"}, "paths": paths}))
    }
}
