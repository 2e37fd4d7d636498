//! The host's safety scoping, applied to every spec whatever the mapper did:
//! cluster-wide policies are limited to containers outside the system
//! namespaces, no selector may match the binaries that keep a node running
//! (kubelet, the container runtimes, the security agents; see
//! [`super::binaries`]), and no enforcing selector reaches the host's PID
//! namespace. The validator (`validate::safety`) checks the same rules on
//! everything, including files users lint.

use serde_json::{Value, json};

use super::binaries;
use super::spec::{array, enforces, for_each_selector_mut, text, value_order};
use crate::guardrails::Guardrails;

/// The pod label Tetragon gives every pod with its namespace; a cluster-wide
/// policy's `podSelector` excludes namespaces with it.
pub const NAMESPACE_LABEL: &str = "k8s:io.kubernetes.pod.namespace";

pub use super::binaries::PROTECTED as PROTECTED_BINARIES;

/// Every protected path, sorted: each protected binary in each system
/// directory, and the Qualys agent's own.
pub static PROTECTED_PATHS: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
    let mut paths = binaries::paths(PROTECTED_BINARIES);
    paths.push(binaries::QUALYS_AGENT.to_string());
    paths.sort();
    paths
});

/// `/kubelet`, `/runc`, …: suffixes that exclude a protected binary wherever it lives.
fn protected_suffixes() -> impl Iterator<Item = String> {
    PROTECTED_BINARIES.iter().map(|name| format!("/{name}"))
}

/// Limits a cluster-wide spec to containers outside the system namespaces,
/// excludes the protected binaries from every selector of a kernel hook,
/// and keeps every enforcing one off the host's PID namespace (hostPID pods
/// and the node's own processes).
pub fn apply(spec: &mut Value, cluster_wide: bool, guardrails: &Guardrails) {
    if cluster_wide && let Some(object) = spec.as_object_mut() {
        let selector = object.entry("podSelector").or_insert_with(|| json!({}));
        exclude_namespaces(selector, &guardrails.system_namespaces);
    }
    for_each_selector_mut(spec, |site, selector| {
        if !site.is_kernel() {
            return; // checked by the validator
        }
        exclude_protected(selector);
        if enforces(selector) {
            exclude_host_pid_namespace(selector);
        }
    });
}

/// Adds `namespaces` to the pod selector's `NotIn` expression on the pod
/// namespace label (one expression, shared with `tune`).
pub fn exclude_namespaces<'a>(pod_selector: &mut Value, namespaces: impl IntoIterator<Item = &'a String>) {
    let mut namespaces = namespaces.into_iter().peekable();
    if namespaces.peek().is_none() {
        return;
    }
    let Some(selector) = pod_selector.as_object_mut() else { return };
    let expressions = selector.entry("matchExpressions").or_insert_with(|| json!([]));
    let Some(expressions) = expressions.as_array_mut() else { return };
    let position = expressions.iter().position(|e| text(e, "key") == NAMESPACE_LABEL && text(e, "operator") == "NotIn");
    let index = position.unwrap_or_else(|| {
        expressions.push(json!({"key": NAMESPACE_LABEL, "operator": "NotIn", "values": []}));
        expressions.len() - 1
    });
    let mut values: Vec<String> =
        array(&expressions[index], "values").iter().filter_map(Value::as_str).map(str::to_string).collect();
    values.extend(namespaces.cloned());
    values.sort();
    values.dedup();
    expressions[index]["values"] = json!(values);
}

/// The `matchNamespaces` entry that keeps a selector off the host's PID namespace.
pub fn host_pid_exclusion() -> Value {
    json!({"namespace": "Pid", "operator": "NotIn", "values": ["host_ns"]})
}

fn exclude_host_pid_namespace(selector: &mut Value) {
    let Some(object) = selector.as_object_mut() else { return };
    let entries = object.entry("matchNamespaces").or_insert_with(|| json!([]));
    let Some(entries) = entries.as_array_mut() else { return };
    let pid = entries.iter_mut().find(|e| text(e, "namespace") == "Pid" && text(e, "operator") == "NotIn");
    match pid {
        Some(entry) => {
            if let Some(values) = entry.get_mut("values").and_then(Value::as_array_mut)
                && !values.iter().any(|v| v == "host_ns")
            {
                values.push(json!("host_ns"));
            }
        }
        None => entries.push(host_pid_exclusion()),
    }
}

/// Adds the protected binaries to a selector's binary filter where the
/// filter's operator allows it; other operators are left to the validator.
fn exclude_protected(selector: &mut Value) {
    let Some(object) = selector.as_object_mut() else { return };
    let entries = object.entry("matchBinaries").or_insert_with(|| json!([]));
    let Some(entries) = entries.as_array_mut() else { return };
    if entries.is_empty() {
        let mut suffixes: Vec<String> = protected_suffixes().collect();
        suffixes.sort();
        entries.push(json!({ "operator": "NotPostfix", "values": suffixes }));
        return;
    }
    let operator = text(&entries[0], "operator").to_string();
    let additions: Vec<String> = match operator.as_str() {
        "NotIn" => PROTECTED_PATHS.clone(),
        "NotPostfix" => protected_suffixes().collect(),
        _ => return,
    };
    let present: Vec<String> =
        array(&entries[0], "values").iter().filter_map(Value::as_str).map(str::to_string).collect();
    if let Some(values) = entries[0].get_mut("values").and_then(Value::as_array_mut) {
        values.extend(additions.into_iter().filter(|a| !present.contains(a)).map(Value::String));
        values.sort_by(value_order);
    } else if let Some(entry) = entries[0].as_object_mut() {
        entry.insert("values".into(), json!(additions));
    }
}

/// Why a binary filter could match a protected binary, if it could.
/// `entries` is a selector's `matchBinaries`; no entry matches every binary.
pub fn protected_match(entries: &[Value]) -> Option<String> {
    let Some(entry) = entries.first() else {
        return Some("it has no matchBinaries, so it matches every binary".into());
    };
    let values: Vec<&str> = array(entry, "values").iter().filter_map(Value::as_str).collect();
    let paths = PROTECTED_PATHS.iter().map(String::as_str);
    let base = |path: &str| path.rsplit('/').next().unwrap_or(path).to_string();
    let hit = match text(entry, "operator") {
        "In" => values.iter().find(|v| PROTECTED_BINARIES.contains(&base(v).as_str())).map(|v| v.to_string()),
        "Prefix" => paths.clone().find(|p| values.iter().any(|v| p.starts_with(v))).map(str::to_string),
        "Postfix" => paths.clone().find(|p| values.iter().any(|v| p.ends_with(v))).map(str::to_string),
        "NotIn" => paths.clone().find(|p| !values.contains(p)).map(str::to_string),
        "NotPrefix" => paths.clone().find(|p| !values.iter().any(|v| p.starts_with(v))).map(str::to_string),
        "NotPostfix" => paths.clone().find(|p| !values.iter().any(|v| p.ends_with(v))).map(str::to_string),
        _ => None,
    };
    hit.map(|path| format!("its matchBinaries {} matches the protected binary {path}", text(entry, "operator")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_wide_specs_get_a_pod_selector_and_every_selector_an_exclusion() {
        let mut spec = json!({"kprobes": [{"call": "sys_setns", "syscall": true, "selectors": [
            {"matchActions": [{"action": "Sigkill"}]},
            {"matchBinaries": [{"operator": "NotIn", "values": ["/usr/bin/ping"]}]},
            {"matchBinaries": [{"operator": "In", "values": ["/usr/bin/curl"]}]},
        ]}]});
        apply(&mut spec, true, &Guardrails::new(&[], &["kube-node-lease".into()]));
        assert_eq!(
            spec["podSelector"],
            json!({"matchExpressions": [{"key": NAMESPACE_LABEL, "operator": "NotIn",
                "values": ["kube-public", "kube-system", "qualys", "tetragon"]}]})
        );
        let selectors = spec["kprobes"][0]["selectors"].as_array().unwrap();
        for selector in selectors {
            assert_eq!(protected_match(array(selector, "matchBinaries")), None, "{selector}");
        }
        assert_eq!(selectors[2]["matchBinaries"][0]["values"], json!(["/usr/bin/curl"]));
    }

    #[test]
    fn filters_that_reach_a_protected_binary_are_named() {
        let check = |operator: &str, values: Value| protected_match(&[json!({"operator": operator, "values": values})]);
        assert!(check("In", json!(["/opt/bin/runc"])).unwrap().contains("runc"));
        assert!(check("Prefix", json!(["/usr/bin/"])).is_some());
        assert!(check("Postfix", json!(["let"])).unwrap().contains("kubelet"));
        assert!(check("NotPrefix", json!(["/tmp"])).is_some());
        assert!(check("NotIn", json!(["/usr/bin/kubelet"])).is_some());
        assert_eq!(check("Postfix", json!(["/nmap"])), None);
        assert_eq!(check("In", json!(["/usr/bin/curl"])), None);
        assert!(protected_match(&[]).is_some());
    }
}
