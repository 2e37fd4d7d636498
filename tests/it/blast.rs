//! The blast radius: what no policy may do, whoever asks (a custom
//! component, the defaults, poisoned findings), the mapper's own enforcing
//! action kept, system namespaces left in audit mode, and inputs that once
//! panicked. The cluster steps run against real API servers of their own.

use serde_json::{Value, json};

use crate::apiserver::{ApiServer, Crds, Identity};
use crate::support::{bin, component};

/// A cluster of its own (these tests enforce in kube-system and cluster-wide)
/// with the namespace the findings name.
fn cluster() -> ApiServer {
    let server = ApiServer::start(Crds::Tetragon("v1.7.0"));
    server
        .apply(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "payments"}}), "test-admin")
        .unwrap();
    server
}

fn policies(server: &ApiServer) -> Vec<Value> {
    let mut all = server.list("tracingpolicies", None);
    all.extend(server.list("tracingpoliciesnamespaced", None));
    all
}

/// Runs `sync` on `findings` with the blast component; stdout as JSON, stderr.
fn sync(findings: &Value, extra: &[&str]) -> (Vec<Value>, String) {
    let out = bin()
        .args(["sync", "--from-file", "-", "-o", "json", "--no-config", "--plugin"])
        .arg(component("blast-mapper"))
        .args(extra)
        .write_stdin(findings.to_string())
        .assert();
    let output = out.get_output();
    let list: Value = serde_json::from_slice(&output.stdout).unwrap_or(json!({"items": []}));
    (list["items"].as_array().cloned().unwrap_or_default(), String::from_utf8_lossy(&output.stderr).into_owned())
}

fn finding(id: &str, category: &str, namespace: Option<&str>) -> Value {
    let mut f = json!({"uuid": id, "threatCategory": category});
    if let Some(ns) = namespace {
        f["namespace"] = json!(ns);
    }
    f
}

fn named<'a>(objects: &'a [Value], name: &str) -> &'a Value {
    objects.iter().find(|o| o["metadata"]["name"] == name).unwrap_or_else(|| panic!("no {name} in {objects:?}"))
}

fn actions(object: &Value) -> &Value {
    &object["spec"]["kprobes"][0]["selectors"][0]["matchActions"]
}

#[test]
fn every_dangerous_policy_is_refused_with_its_rule_and_narrow_ones_are_accepted() {
    let cases = [
        ("EveryExec", None, "safety/unfiltered", "Prefix \"/\""),
        ("Egress", Some("kube-system"), "safety/unfiltered", "NotDAddr"),
        ("DenyOpen", Some("payments"), "safety/unfiltered", "Prefix \"/\""),
        ("Dns", Some("payments"), "safety/port", "port 53 is DNS"),
        ("Shells", None, "safety/common-binary", "would stop the exec of /bin/sh in every container"),
        ("HostNs", Some("payments"), "safety/host", "host's Pid namespace"),
        ("Halves", Some("payments"), "safety/address", "cover more than a /8"),
        ("AllPorts", Some("payments"), "safety/port", "cover 65535 of 65535"),
        ("MacroKill", Some("payments"), "safety/macro-action", "a selector macro must not carry an enforcing action"),
    ];
    let mut findings: Vec<Value> = cases.iter().map(|(c, ns, _, _)| finding(&format!("f-{c}"), c, *ns)).collect();
    findings.push(finding("f-narrow", "Narrow", Some("payments")));
    let (objects, stderr) = sync(&Value::Array(findings), &["--action", "Sigkill"]);
    for (category, _, rule, words) in cases {
        let report: Vec<&str> = stderr
            .lines()
            .skip_while(|l| !l.contains(&format!("finding f-{category} ")))
            .skip(1)
            .take_while(|l| l.starts_with("      "))
            .collect();
        assert!(
            report.iter().any(|l| l.contains(&format!("[{rule}]")) && l.contains(words)),
            "{category}: no [{rule}] naming {words:?} in:\n{stderr}"
        );
    }
    let names: Vec<&str> = objects.iter().map(|o| o["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["cdr-narrow-narrow-peer", "cdr-narrow-narrow-unshare"], "{stderr}");
}

#[test]
fn the_mappers_enforcing_action_is_kept_in_enforce_mode_and_restored_by_promote() {
    let findings = json!([finding("f-narrow", "Narrow", Some("payments"))]);
    let (enforced, _) = sync(&findings, &["--action", "Sigkill"]);
    assert_eq!(
        actions(named(&enforced, "cdr-narrow-narrow-unshare")),
        &json!([{"action": "Override", "argError": -1}])
    );
    assert_eq!(actions(named(&enforced, "cdr-narrow-narrow-peer")), &json!([{"action": "Signal", "argSig": 9}]));
    let (audit, _) = sync(&findings, &[]);
    assert_eq!(actions(named(&audit, "cdr-narrow-narrow-unshare")), &json!([{"action": "Post"}]));
    assert_eq!(actions(named(&audit, "cdr-narrow-narrow-peer")), &json!([{"action": "Post"}]));

    let server = cluster();
    let kubeconfig = server.kubeconfig(Identity::Responder);
    bin()
        .args(["sync", "--from-file", "-", "--apply", "--no-config", "--plugin"])
        .arg(component("blast-mapper"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .write_stdin(findings.to_string())
        .assert()
        .success();
    let promote = |name: &str| {
        bin().args(["promote", name, "--kubeconfig"]).arg(&kubeconfig).assert().success();
    };
    promote("cdr-narrow-narrow-unshare");
    promote("cdr-narrow-narrow-peer");
    let live = policies(&server);
    assert_eq!(actions(named(&live, "cdr-narrow-narrow-unshare")), &json!([{"action": "Override", "argError": -1}]));
    assert_eq!(actions(named(&live, "cdr-narrow-narrow-peer")), &json!([{"action": "Signal", "argSig": 9}]));
}

#[test]
fn a_poisoned_finding_never_makes_a_protected_or_common_binary_a_target() {
    let mut findings = Vec::new();
    for (i, binary) in
        ["/usr/bin/kubelet", "/usr/bin/containerd", "/usr/sbin/runc", "/bin/sh", "/usr/bin/python3"].iter().enumerate()
    {
        for category in ["Network_Scanning_Utility", "Crypto_Mining"] {
            findings.push(json!({"uuid": format!("p-{i}-{category}"), "threatCategory": category,
                "namespace": "payments", "processName": binary, "destinationPort": 3333}));
        }
    }
    let out = bin()
        .args(["sync", "--from-file", "-", "-o", "json", "--action", "Sigkill"])
        .write_stdin(Value::Array(findings).to_string())
        .assert()
        .success();
    let output = out.get_output();
    let list: Value = serde_json::from_slice(&output.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    for object in list["items"].as_array().unwrap() {
        for selector in object["spec"]["kprobes"][0]["selectors"].as_array().unwrap() {
            let targets = [&selector["matchArgs"], &selector["matchBinaries"]];
            for entry in targets.iter().flat_map(|t| t.as_array().into_iter().flatten()) {
                if entry["operator"].as_str().is_some_and(|o| o.starts_with("Not")) {
                    continue; // the host's own exclusions
                }
                let values = entry["values"].to_string();
                for name in ["kubelet", "containerd", "runc", "\"/sh\"", "python3"] {
                    assert!(
                        !values.contains(name),
                        "{name} became a target in {}: {values}",
                        object["metadata"]["name"]
                    );
                }
            }
        }
    }
    assert!(stderr.contains("named the process /usr/bin/kubelet (a protected binary)"), "{stderr}");
    assert!(stderr.contains("named the process /usr/bin/python3 (a common system binary)"), "{stderr}");
}

#[test]
fn system_namespaces_stay_in_audit_mode_unless_allowed() {
    let findings = json!([{"uuid": "k-1", "threatCategory": "Crypto_Mining", "namespace": "kube-system", "destinationPort": 3333},
        {"uuid": "k-2", "threatCategory": "Crypto_Mining", "namespace": "payments", "destinationPort": 3333}]);
    let run = |extra: &[&str]| {
        let out = bin()
            .args(["sync", "--from-file", "-", "-o", "json", "--action", "Sigkill"])
            .args(extra)
            .write_stdin(findings.to_string())
            .assert()
            .success();
        let list: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
        (list["items"].as_array().unwrap().clone(), String::from_utf8_lossy(&out.get_output().stderr).into_owned())
    };
    let mode = |objects: &[Value], namespace: &str| {
        objects
            .iter()
            .find(|o| {
                o["metadata"]["namespace"] == namespace && o["metadata"]["name"] == "cdr-crypto-mining-pool-ports"
            })
            .unwrap()["metadata"]["labels"]["qualys-respond.io/mode"]
            .clone()
    };
    let (objects, stderr) = run(&[]);
    assert_eq!(mode(&objects, "kube-system"), "audit");
    assert_eq!(mode(&objects, "payments"), "enforce");
    assert!(stderr.contains("kube-system is a system namespace: the policy stays in audit mode (Post); pass --allow-enforce-in kube-system"), "{stderr}");
    let (objects, stderr) = run(&["--allow-enforce-in", "kube-system"]);
    assert_eq!(mode(&objects, "kube-system"), "enforce", "{stderr}");
    let (objects, _) = run(&["--system-namespace", "payments"]);
    assert_eq!(mode(&objects, "payments"), "audit");

    let server = cluster();
    let kubeconfig = server.kubeconfig(Identity::Responder);
    bin()
        .args(["sync", "--from-file", "-", "--apply", "--kubeconfig"])
        .arg(&kubeconfig)
        .write_stdin(findings.to_string())
        .assert()
        .success();
    let refused =
        bin().args(["promote", "--all", "-n", "kube-system", "--kubeconfig"]).arg(&kubeconfig).assert().code(1);
    assert!(String::from_utf8_lossy(&refused.get_output().stderr).contains("system namespace kube-system"));
    bin()
        .args(["promote", "--all", "-n", "kube-system", "--allow-enforce-in", "kube-system", "--kubeconfig"])
        .arg(&kubeconfig)
        .assert()
        .success();
}

#[test]
fn inputs_that_once_panicked_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("checkpoint.json");
    std::fs::write(
        &checkpoint,
        r#"{"version":1,"mark":"2026-01-01T00:00:00Z","recentIds":[],"overlapSeconds":18446744073709551615}"#,
    )
    .unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, "apiVersion: v1\nclusters: [{name: x, cluster: {server: \"not a url\"}}]\ncontexts: [{name: x, context: {cluster: x, user: u}}]\ncurrent-context: x\nusers: [{name: u, user: {token: t}}]\n").unwrap();
    let cases: Vec<(Vec<String>, i32, &str)> = vec![
        (
            vec!["sync".into(), "--gateway".into(), "http://127.0.0.1:9".into(), "--since".into(), "300000y".into()],
            2,
            "longer than",
        ),
        (
            vec!["sync".into(), "--gateway".into(), "http://127.0.0.1:9".into(), "--overlap".into(), "300000y".into()],
            2,
            "longer than",
        ),
        (
            vec![
                "sync".into(),
                "--gateway".into(),
                "http://127.0.0.1:9".into(),
                "--hours".into(),
                "99999999999".into(),
            ],
            2,
            "not in 1..=87840",
        ),
        (vec!["block".into(), "--ip".into(), "203.0.113.7".into(), "--ttl".into(), "300000y".into()], 2, "longer than"),
        (
            vec![
                "sync".into(),
                "--gateway".into(),
                "http://127.0.0.1:9".into(),
                "--state-file".into(),
                checkpoint.display().to_string(),
            ],
            1,
            "overlapSeconds",
        ),
        (
            vec!["status".into(), "--kubeconfig".into(), kubeconfig.display().to_string()],
            1,
            "cannot configure the Kubernetes client",
        ),
        (vec!["promote".into(), "--all".into(), "--older-than".into(), "300000y".into()], 2, "longer than"),
        (
            vec!["sync".into(), "--from-file".into(), "-".into(), "--mapper-timeout".into(), "300000y".into()],
            2,
            "longer than",
        ),
    ];
    for (args, code, words) in cases {
        let out = bin()
            .args(&args)
            .env("QUALYS_USERNAME", "u")
            .env("QUALYS_PASSWORD", "p")
            .write_stdin("[]")
            .assert()
            .code(code);
        let stderr = String::from_utf8_lossy(&out.get_output().stderr);
        assert!(stderr.contains(words) && !stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    for document in [
        "[{\"uuid\": 1e999999, \"threatCategory\": []}]",
        "{\"content\": [null, 7, \"x\", {\"uuid\": \"a\"}]}",
        "\u{0}\u{1}",
    ] {
        let out = bin().args(["sync", "--from-file", "-"]).write_stdin(document).assert();
        assert!(!String::from_utf8_lossy(&out.get_output().stderr).contains("panicked"), "{document}");
    }
    let out = bin().args(["lint", "-"]).write_stdin("apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nspec: {kprobes: [{selectors: [{matchArgs: [{index: 99999999999999999999}]}]}]}\n").assert();
    assert!(!String::from_utf8_lossy(&out.get_output().stderr).contains("panicked"));
}
