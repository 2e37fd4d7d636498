//! The host's safety scoping, applied to every spec whatever the mapper did:
//! cluster-wide policies are limited to containers, and no selector may match
//! the binaries that keep a node running (kubelet, the container runtimes,
//! the security agents). The validator (`validate::safety`) checks the same
//! rules on everything, including files users lint.

use serde_json::{Value, json};

use super::spec::{array, for_each_selector_mut, text, value_order};

/// Executables a policy must never match, by base name.
pub const PROTECTED_BINARIES: &[&str] = &[
    "kubelet",
    "kube-proxy",
    "containerd",
    "containerd-shim",
    "containerd-shim-runc-v2",
    "runc",
    "crun",
    "crio",
    "conmon",
    "dockerd",
    "tetragon",
    "qualys-cloud-agent",
];

/// Where the protected binaries are installed, for `NotIn` lists.
const PROTECTED_DIRS: &[&str] = &["/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"];

/// The Qualys Cloud Agent's own install path.
const QUALYS_AGENT: &str = "/usr/local/qualys/cloud-agent/bin/qualys-cloud-agent";

/// Every protected path, sorted: each protected binary in each system directory.
pub static PROTECTED_PATHS: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
    let mut paths: Vec<String> = PROTECTED_DIRS
        .iter()
        .flat_map(|dir| PROTECTED_BINARIES.iter().map(move |name| format!("{dir}/{name}")))
        .chain(std::iter::once(QUALYS_AGENT.to_string()))
        .collect();
    paths.sort();
    paths
});

/// `/kubelet`, `/runc`, …: suffixes that exclude a protected binary wherever it lives.
fn protected_suffixes() -> impl Iterator<Item = String> {
    PROTECTED_BINARIES.iter().map(|name| format!("/{name}"))
}

/// Limits a cluster-wide spec to containers and excludes the protected
/// binaries from every selector of a kernel hook.
pub fn apply(spec: &mut Value, cluster_wide: bool) {
    if cluster_wide && let Some(object) = spec.as_object_mut() {
        object.entry("podSelector").or_insert_with(|| json!({}));
    }
    for_each_selector_mut(spec, |hook_list, selector| {
        if matches!(hook_list, "uprobes" | "usdts") {
            return; // bound to one binary's path; checked by the validator
        }
        exclude_protected(selector);
    });
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
        apply(&mut spec, true);
        assert_eq!(spec["podSelector"], json!({}));
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
