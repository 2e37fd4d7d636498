//! The binary is a kubectl plugin: the real `kubectl` finds it on PATH,
//! and reads the YAML we write as we meant it.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

use crate::apiserver::{self, ApiServer, Identity, collection};

#[test]
fn kubectl_finds_the_plugin_and_prints_our_usage() {
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_kubectl-qualys_respond"));
    let bin_dir = binary.parent().unwrap();
    let path = std::env::join_paths(
        std::iter::once(bin_dir.to_path_buf())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .unwrap();
    let home = tempfile::tempdir().unwrap();
    let output = Command::new("kubectl")
        .args(["qualys-respond", "--help"])
        .env("PATH", path)
        .env("HOME", home.path())
        .output()
        .expect("kubectl is installed (.ci/run installs it)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "kubectl failed: {}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("Usage: kubectl qualys-respond"), "{stdout}");
    assert!(stdout.contains("sync"), "{stdout}");
}

/// YAML 1.1, which `kubectl` reads, takes `on`, `NO`, `y`, `1_000` or `017`
/// for booleans and numbers where YAML 1.2 sees strings: the API server
/// would refuse such a policy (`must be of type string`) or take a label
/// for a boolean. What we print must reach the server as the JSON it was.
#[test]
fn kubectl_applies_our_yaml_with_every_string_still_a_string() {
    let server = ApiServer::shared();
    let namespace = server.namespace("yaml");
    let words = ["on", "NO", "y", "Off", "1_000", "0b1", "017", "08", "<<", "1e3", "2026-12-04", "~", "null"];
    let policy = json!({
        "apiVersion": "cilium.io/v1alpha1", "kind": "TracingPolicyNamespaced",
        "metadata": {"name": "yaml-words", "namespace": namespace,
            "labels": {"qualys-respond.io/enforce": "yes"}, "annotations": {"n": "off", "count": "1_000"}},
        "spec": {
            "options": [{"name": "disable-kprobe-multi", "value": "y"}],
            "kprobes": [{"call": "security_file_open", "syscall": false, "args": [{"index": 0, "type": "file"}],
                "selectors": [{"matchArgs": [{"index": 0, "operator": "Equal", "values": words}]}]}]}
    });
    let text = qualys_respond::output::yaml_values([&policy]);
    let (_dir, file) = apiserver::temp_file("policy.yaml", &text);
    let home = tempfile::tempdir().unwrap();
    let applied = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(server.kubeconfig(Identity::Admin))
        .args(["apply", "--server-side", "-f"])
        .arg(&file)
        .env("HOME", home.path())
        .env_remove("KUBECONFIG")
        .output()
        .expect("kubectl is installed (.ci/run installs it)");
    assert!(applied.status.success(), "{}\n{text}", String::from_utf8_lossy(&applied.stderr));
    let stored = server
        .get(&format!("{}/yaml-words", collection("tracingpoliciesnamespaced", Some(&namespace))))
        .expect("the policy is stored");
    // The server fills in the CRD's defaults (`return`, `maxData`, …), so only what we wrote is compared.
    let spec = |object: &Value| (object["spec"]["options"].clone(), object["spec"]["kprobes"][0]["selectors"].clone());
    assert_eq!(spec(&stored), spec(&policy), "{text}");
    for field in ["labels", "annotations"] {
        let written = policy["metadata"][field].as_object().unwrap();
        for (key, value) in written {
            assert_eq!(&stored["metadata"][field][key], value, "{field} {key}: {text}");
        }
    }
}
