//! Checks a TracingPolicy object before it leaves the host, or when a user
//! runs `lint`: against Tetragon's CRD schemas (`schema`, with the CEL rules
//! in `cel`), against what Tetragon's loader rejects only at load time
//! (`loader`, see `../shared/reference/tetragon-policies.md`), and against
//! our safety rules (`safety`).

mod cel;
mod crd;
mod loader;
mod problem;
mod safety;
mod schema;

use serde_json::Value;

use super::object::{API_VERSION, Kind};
use crate::guardrails::Guardrails;

pub use crd::TetragonVersion;
use problem::problem;
pub use problem::{Problem, Weight};

/// What an API server serving Tetragon's CRD of `version` rejects in
/// `object`: the structural schema and its CEL rules, nothing of the loader.
/// `None` when the object is not one of the two kinds.
pub fn crd_problems(object: &Value, version: TetragonVersion) -> Option<Vec<Problem>> {
    let kind = object.get("kind").and_then(Value::as_str).and_then(Kind::parse)?;
    let mut found = Vec::new();
    schema::check(crd::schema(version, kind), object, "", &mut found);
    found.sort();
    found.dedup();
    Some(found)
}

/// Every problem of `object` for the given Tetragon versions, sorted, with
/// the default guardrails (no cluster known).
pub fn validate(object: &Value, versions: &[TetragonVersion]) -> Vec<Problem> {
    validate_with(object, versions, &DEFAULT_GUARDRAILS)
}

static DEFAULT_GUARDRAILS: std::sync::LazyLock<Guardrails> = std::sync::LazyLock::new(Guardrails::default);

/// Every problem of `object` for the given Tetragon versions, sorted;
/// `guardrails` holds what no enforcing policy may target (with the
/// cluster's own ranges when they are known).
pub fn validate_with(object: &Value, versions: &[TetragonVersion], guardrails: &Guardrails) -> Vec<Problem> {
    let mut problems = Vec::new();
    if object.get("apiVersion").and_then(Value::as_str) != Some(API_VERSION) {
        problems.push(problem("apiVersion", "kind", format!("must be {API_VERSION}")));
    }
    let Some(kind) = object.get("kind").and_then(Value::as_str).and_then(Kind::parse) else {
        problems.push(problem("kind", "kind", "must be TracingPolicy or TracingPolicyNamespaced"));
        return problems;
    };
    // Identical findings from several schema versions are reported once.
    let mut by_version: Vec<(TetragonVersion, Vec<Problem>)> = Vec::new();
    for version in versions {
        by_version.push((*version, crd_problems(object, *version).unwrap_or_default()));
    }
    let mut schema_problems: Vec<Problem> = Vec::new();
    for (version, found) in &by_version {
        for p in found {
            let everywhere = by_version.iter().all(|(_, other)| other.contains(p));
            let rule =
                if everywhere || versions.len() == 1 { "schema".to_string() } else { format!("schema ({version})") };
            schema_problems.push(Problem { rule, ..p.clone() });
        }
    }
    problems.extend(schema_problems);
    loader::check(object, kind, versions, &mut problems);
    safety::check(object, kind, guardrails, &mut problems);
    problems.sort();
    problems.dedup();
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(spec: Value) -> Value {
        json!({"apiVersion": API_VERSION, "kind": "TracingPolicy", "metadata": {"name": "ok"}, "spec": spec})
    }

    fn rules(spec: Value) -> Vec<String> {
        validate(&object(spec), TetragonVersion::ALL).into_iter().map(|p| p.rule).collect()
    }

    #[test]
    fn the_reference_patterns_pass() {
        let imds = json!({"podSelector": {}, "kprobes": [{"call": "tcp_connect", "syscall": false,
            "args": [{"index": 0, "type": "sock"}],
            "selectors": [{"matchArgs": [{"index": 0, "operator": "DAddr", "values": ["169.254.169.254/32"]}],
                "matchBinaries": [{"operator": "In", "values": ["/usr/bin/curl"]}],
                "matchNamespaces": [{"namespace": "Pid", "operator": "NotIn", "values": ["host_ns"]}],
                "matchActions": [{"action": "Sigkill"}]}]}]});
        assert_eq!(validate(&object(imds), TetragonVersion::ALL), vec![]);
    }

    #[test]
    fn unknown_fields_and_enums_are_schema_problems() {
        let found =
            validate(&object(json!({"kprobes": [{"call": "x", "syscall": false, "bogus": 1}]})), TetragonVersion::ALL);
        assert!(found.iter().any(|p| p.path == "spec.kprobes[0].bogus" && p.rule == "schema"), "{found:?}");
        let found = validate(&object(json!({"nodeSelector": {}})), TetragonVersion::ALL);
        assert!(found.iter().any(|p| p.rule == "schema (v1.7.0)"), "{found:?}");
    }

    #[test]
    fn enforcing_policies_may_not_cut_off_every_address_or_loopback() {
        let spec = |values: Value| {
            json!({"podSelector": {}, "kprobes": [{"call": "tcp_connect", "syscall": false,
                "args": [{"index": 0, "type": "sock"}],
                "selectors": [{"matchArgs": [{"index": 0, "operator": "DAddr", "values": values}],
                    "matchBinaries": [{"operator": "In", "values": ["/usr/bin/curl"]}],
                    "matchNamespaces": [{"namespace": "Pid", "operator": "NotIn", "values": ["host_ns"]}],
                    "matchActions": [{"action": "Sigkill"}]}]}]})
        };
        assert!(rules(spec(json!(["0.0.0.0/0"]))).contains(&"safety/address".to_string()));
        assert!(rules(spec(json!(["127.0.0.1"]))).contains(&"safety/address".to_string()));
        assert!(rules(spec(json!(["::/0"]))).contains(&"safety/address".to_string()));
        assert_eq!(rules(spec(json!(["203.0.113.0/24", "169.254.169.254"]))), Vec::<String>::new());
    }

    /// A one-selector enforcing kprobe, guarded as the host emits it.
    fn hook(call: &str, args: Value, selector: Value) -> Value {
        let mut selector = selector;
        selector["matchActions"] = json!([{"action": "Sigkill"}]);
        let syscall = call.starts_with("sys_");
        let mut spec = json!({"kprobes": [{"call": call, "syscall": syscall, "args": args, "selectors": [selector]}]});
        crate::policy::guard::apply(&mut spec, true, &Guardrails::default());
        spec
    }

    #[test]
    fn the_blast_radius_is_judged_on_every_enforcing_selector() {
        let sock = json!([{"index": 0, "type": "sock"}]);
        let binprm = json!([{"index": 0, "type": "linux_binprm"}]);
        let cases = [
            (
                "every exec",
                hook(
                    "security_bprm_check",
                    binprm.clone(),
                    json!({"matchArgs": [{"index": 0, "operator": "Prefix", "values": ["/"]}]}),
                ),
                "safety/unfiltered",
            ),
            (
                "exclusions only",
                hook(
                    "tcp_connect",
                    sock.clone(),
                    json!({"matchArgs": [{"index": 0, "operator": "NotDAddr", "values": ["127.0.0.1"]}]}),
                ),
                "safety/unfiltered",
            ),
            (
                "two halves",
                hook(
                    "tcp_connect",
                    sock.clone(),
                    json!({"matchArgs": [{"index": 0, "operator": "DAddr", "values": ["0.0.0.0/1", "128.0.0.0/1"]}]}),
                ),
                "safety/address",
            ),
            (
                "DNS",
                hook(
                    "tcp_connect",
                    sock.clone(),
                    json!({"matchArgs": [{"index": 0, "operator": "DPort", "values": ["53"]}]}),
                ),
                "safety/port",
            ),
            (
                "most ports",
                hook(
                    "tcp_connect",
                    sock.clone(),
                    json!({"matchArgs": [{"index": 0, "operator": "DPort", "values": ["1024:65535"]}]}),
                ),
                "safety/port",
            ),
            (
                "the kubelet's port",
                hook(
                    "tcp_connect",
                    sock.clone(),
                    json!({"matchArgs": [{"index": 0, "operator": "DPort", "values": ["10000:10300"]}]}),
                ),
                "safety/port",
            ),
            (
                "every shell's exec",
                hook(
                    "security_bprm_check",
                    binprm.clone(),
                    json!({"matchArgs": [{"index": 0, "operator": "Postfix", "values": ["/sh"]}]}),
                ),
                "safety/common-binary",
            ),
            (
                "every shell's connections",
                hook(
                    "tcp_connect",
                    sock.clone(),
                    json!({"matchBinaries": [{"operator": "Postfix", "values": ["/bash"]}]}),
                ),
                "safety/common-binary",
            ),
            (
                "kubelet's exec",
                hook(
                    "security_bprm_check",
                    binprm.clone(),
                    json!({"matchArgs": [{"index": 0, "operator": "Postfix", "values": ["/kubelet"]}]}),
                ),
                "safety/protected-binary",
            ),
            (
                "the host",
                hook(
                    "tcp_connect",
                    sock.clone(),
                    json!({"matchArgs": [{"index": 0, "operator": "DPort", "values": ["4444"]}]}),
                ),
                "",
            ),
        ];
        for (what, spec, rule) in cases {
            let found = rules(spec);
            if rule.is_empty() {
                assert_eq!(found, Vec::<String>::new(), "{what}");
            } else {
                assert!(found.iter().any(|r| r == rule), "{what}: {found:?}");
            }
        }
        let mut host = hook(
            "tcp_connect",
            sock.clone(),
            json!({"matchArgs": [{"index": 0, "operator": "DPort", "values": ["4444"]}]}),
        );
        host["kprobes"][0]["selectors"][0]["matchNamespaces"] =
            json!([{"namespace": "Pid", "operator": "In", "values": ["host_ns"]}]);
        assert!(rules(host).contains(&"safety/host".to_string()));
        // Narrow policies stay allowed: the same shell rule for one workload.
        let mut narrow = hook(
            "security_bprm_check",
            binprm,
            json!({"matchArgs": [{"index": 0, "operator": "Postfix", "values": ["/sh"]}]}),
        );
        narrow["podSelector"]["matchLabels"] = json!({"app": "frontend"});
        assert_eq!(rules(narrow), Vec::<String>::new());
        let narrow_address = hook(
            "tcp_connect",
            sock,
            json!({"matchArgs": [{"index": 0, "operator": "DAddr", "values": ["203.0.113.7/32"]}]}),
        );
        assert_eq!(rules(narrow_address), Vec::<String>::new());
    }

    #[test]
    fn enforcing_actions_hidden_in_a_macro_or_on_the_return_are_judged() {
        let exec = json!([{"index": 0, "type": "linux_binprm"}]);
        // Kill every exec, through a macro the selector names.
        let mut through_macro = hook("security_bprm_check", exec.clone(), json!({"macros": ["kill"]}));
        through_macro["kprobes"][0]["selectors"][0].as_object_mut().unwrap().remove("matchActions");
        through_macro["selectorsMacros"] = json!({"kill": {"matchActions": [{"action": "Sigkill"}]}});
        assert!(rules(through_macro.clone()).contains(&"safety/macro-action".to_string()), "{through_macro}");
        // A macro that adds a filter the selector does not have is not refused for it.
        let mut filter_macro = hook(
            "security_bprm_check",
            exec.clone(),
            json!({"macros": ["not-init"], "matchArgs": [{"index": 0, "operator": "Postfix", "values": ["/xmrig"]}]}),
        );
        filter_macro["selectorsMacros"] = json!({"not-init": {"matchPIDs": [{"operator": "NotIn",
            "followForks": true, "isNamespacePID": true, "values": [1]}]}});
        assert!(!rules(filter_macro).contains(&"safety/macro-action".to_string()));
        // Kill every caller on the return: as unfiltered as on the call.
        let mut on_return = hook("security_bprm_check", exec, json!({}));
        let selector = on_return["kprobes"][0]["selectors"][0].as_object_mut().unwrap();
        let actions = selector.remove("matchActions").unwrap();
        selector.insert("matchReturnActions".into(), actions);
        on_return["kprobes"][0]["return"] = json!(true);
        on_return["kprobes"][0]["returnArg"] = json!({"index": 0, "type": "int"});
        assert!(rules(on_return.clone()).contains(&"safety/unfiltered".to_string()), "{on_return}");
        // `Set` writes into the traced process: enforcing, so never into a protected one.
        let set = json!({"usdts": [{"path": "/usr/bin/kubelet", "provider": "app", "name": "probe",
            "args": [{"index": 0, "type": "int"}],
            "selectors": [{"matchActions": [{"action": "Set", "argIndex": 0, "argValue": 1}]}]}]});
        assert!(rules(set.clone()).contains(&"safety/protected-binary".to_string()), "{set}");
    }

    #[test]
    fn a_macro_named_by_many_selectors_does_not_multiply_the_problems_without_bound() {
        let bad: Vec<Value> = (0..5).map(|_| json!({"index": 1, "operator": "Contains", "values": ["x"]})).collect();
        let selectors: Vec<Value> = (0..2000).map(|_| json!({"macros": ["bad"]})).collect();
        let spec = json!({"podSelector": {}, "selectorsMacros": {"bad": {"matchArgs": bad}},
            "kprobes": [{"call": "sys_openat", "syscall": true, "args": [{"index": 1, "type": "string"}],
                "selectors": selectors}]});
        let problems = rules(spec);
        let loader: Vec<&String> = problems.iter().filter(|r| r.starts_with("loader/")).collect();
        // The bound, one selector's five problems past it, and the note that it stopped.
        assert!(loader.len() <= 1000 + 5 + 1, "{} loader problems", loader.len());
        assert!(loader.iter().any(|r| *r == "loader/problems"), "the list says it stopped");
    }

    #[test]
    fn the_clusters_own_ranges_are_judged_when_known() {
        let sock = json!([{"index": 0, "type": "sock"}]);
        let spec = hook(
            "tcp_connect",
            sock,
            json!({"matchArgs": [{"index": 0, "operator": "DAddr", "values": ["10.244.1.7"]}]}),
        );
        assert_eq!(rules(spec.clone()), Vec::<String>::new());
        let mut protected = crate::guardrails::Protected::baseline();
        protected.range("10.244.0.0/16".parse().unwrap(), "the pod range of node-1", true);
        let guardrails = Guardrails::default().with_cluster(protected);
        let found = validate_with(&object(spec), TetragonVersion::ALL, &guardrails);
        assert!(found.iter().any(|p| p.rule == "safety/address" && p.message.contains("pod range")), "{found:?}");
    }

    #[test]
    fn wrong_kinds_stop_early() {
        assert_eq!(rules(json!({})), Vec::<String>::new());
        let found = validate(&json!({"apiVersion": "v1", "kind": "ConfigMap"}), TetragonVersion::ALL);
        assert_eq!(found.len(), 2);
    }
}
