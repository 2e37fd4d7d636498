//! The cluster commands end to end: the real binary against the Kubernetes
//! API fake through a kubeconfig (sync --apply, diff, status, promote,
//! demote, tune, prune, block, unblock), and what a real cluster's refusals
//! look like to the operator.

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::{Value, json};

use crate::fake_kube::{FakeKube, Options};
use crate::support::bin;

const SAMPLE: &str = "samples/findings.json";

fn kube(fake: &FakeKube, args: &[&str]) -> Command {
    let mut command = bin();
    command.arg(args[0]).arg("--kubeconfig").arg(fake.kubeconfig()).args(&args[1..]);
    command
}

/// A fake cluster with the namespaces the sample findings come from.
pub fn cluster() -> FakeKube {
    let fake = FakeKube::start();
    for namespace in ["batch", "ci", "web"] {
        fake.insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}));
    }
    fake
}

pub fn policies(fake: &FakeKube) -> Vec<Value> {
    let mut all = fake.list("tracingpolicies");
    all.extend(fake.list("tracingpoliciesnamespaced"));
    all
}

fn names(objects: &[Value]) -> Vec<String> {
    objects.iter().map(|o| o["metadata"]["name"].as_str().unwrap().to_string()).collect()
}

pub fn annotation<'a>(object: &'a Value, key: &str) -> &'a str {
    object["metadata"]["annotations"][key].as_str().unwrap_or_default()
}

fn label<'a>(object: &'a Value, key: &str) -> &'a str {
    object["metadata"]["labels"][key].as_str().unwrap_or_default()
}

fn stdout_lines(output: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout).lines().map(str::to_string).collect()
}

fn scanner(fake: &FakeKube) -> Value {
    policies(fake)
        .into_iter()
        .find(|p| p["metadata"]["name"] == "cdr-network-scanning-utility-scanner-exec")
        .expect("the scanner policy is in the cluster")
}

#[test]
fn sync_apply_second_run_promote_tune_sync_prune() {
    let fake = cluster();
    let first = kube(&fake, &["sync", "--from-file", SAMPLE, "--apply"]).assert().code(0).get_output().clone();
    let lines = stdout_lines(&first);
    assert_eq!(lines.len(), 9, "{lines:?}");
    assert!(lines.iter().all(|l| l.ends_with(" created")), "{lines:?}");
    let applied = policies(&fake);
    assert_eq!(applied.len(), 9);
    for policy in &applied {
        assert_eq!(label(policy, "app.kubernetes.io/managed-by"), "kubectl-qualys-respond");
        assert_eq!(label(policy, "qualys-respond.io/mode"), "audit");
        let history: Value = serde_json::from_str(annotation(policy, "qualys-respond.io/history")).unwrap();
        assert_eq!(history[0]["by"], "admin");
        assert_eq!(history[0]["event"], "created");
        assert!(!policy.to_string().contains("Sigkill\"}]"), "audit mode has no Sigkill action: {policy}");
    }

    let writes = fake.writes();
    let second = kube(&fake, &["sync", "--from-file", SAMPLE, "--apply"]).assert().code(0).get_output().clone();
    let lines = stdout_lines(&second);
    assert_eq!(lines.len(), 9);
    assert!(lines.iter().all(|l| l.ends_with(" unchanged")), "{lines:?}");
    assert_eq!(fake.writes(), writes, "an identical run writes nothing");

    kube(&fake, &["promote", "cdr-network-scanning-utility-scanner-exec"])
        .assert()
        .success()
        .stdout(predicate::str::contains("cdr-network-scanning-utility-scanner-exec -n web configured"));
    let promoted = scanner(&fake);
    assert_eq!(label(&promoted, "qualys-respond.io/mode"), "enforce");
    assert!(promoted["spec"].to_string().contains("Sigkill"));
    let history: Value = serde_json::from_str(annotation(&promoted, "qualys-respond.io/history")).unwrap();
    assert_eq!(history[1]["event"], "promoted");
    assert_eq!(history[1]["mode"], "enforce");

    kube(&fake, &["tune", "cdr-network-scanning-utility-scanner-exec", "--exclude-binary", "/opt/tools/masscan-ok"])
        .assert()
        .success();
    let tuned = scanner(&fake);
    assert_eq!(annotation(&tuned, "qualys-respond.io/excluded-binaries"), "/opt/tools/masscan-ok");
    assert!(
        tuned["spec"]["kprobes"][0]["selectors"][0]["matchBinaries"][0]["values"]
            .as_array()
            .unwrap()
            .contains(&json!("/opt/tools/masscan-ok"))
    );

    let third = kube(&fake, &["sync", "--from-file", SAMPLE, "--apply"]).assert().code(0).get_output().clone();
    assert!(stdout_lines(&third).iter().all(|l| l.ends_with(" unchanged")), "{:?}", stdout_lines(&third));
    let kept = scanner(&fake);
    assert_eq!(label(&kept, "qualys-respond.io/mode"), "enforce", "a sync keeps the promotion");
    assert_eq!(kept["spec"], tuned["spec"], "a sync keeps the tuning");

    let foreign = json!({"apiVersion": "cilium.io/v1alpha1", "kind": "TracingPolicy",
        "metadata": {"name": "someone-elses"}, "spec": {}});
    fake.insert(foreign);
    let empty = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(empty.path(), "[]").unwrap();
    let pruned = kube(&fake, &["sync", "--from-file"])
        .arg(empty.path())
        .args(["--apply", "--prune", "--prune-after", "0s"])
        .assert()
        .success()
        .get_output()
        .clone();
    let lines = stdout_lines(&pruned);
    assert_eq!(lines.len(), 8, "every audit policy goes: {lines:?}");
    assert!(lines.iter().all(|l| l.contains("deleted (audit only and no finding for 0s)")), "{lines:?}");
    let left = names(&policies(&fake));
    assert_eq!(left, ["someone-elses", "cdr-network-scanning-utility-scanner-exec"]);
}

#[test]
fn missing_crds_are_named_and_nothing_is_written() {
    let fake = FakeKube::start_with(Options { tetragon: false, ..Options::default() });
    kube(&fake, &["sync", "--from-file", SAMPLE, "--apply"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("install Tetragon or Qualys CRS first; nothing was written"));
    kube(&fake, &["block", "--ip", "203.0.113.7"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("TracingPolicy CRDs"));
    assert_eq!(fake.writes(), 0);
}

#[test]
fn an_api_error_halfway_reports_what_was_and_was_not_applied() {
    let fake = cluster();
    fake.fail_writes_after(3);
    let output = kube(&fake, &["sync", "--from-file", SAMPLE, "--apply"]).assert().code(1).get_output().clone();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.matches(" created").count(), 3, "{stdout}");
    assert!(stdout.contains("FAILED"), "{stdout}");
    assert!(stdout.contains("stopped: 3 object(s) were applied before the failure"), "{stdout}");
    let not_applied = stdout.lines().find(|l| l.contains("not applied:")).unwrap();
    assert_eq!(not_applied.matches(", ").count(), 4, "five objects were never sent: {not_applied}");
    assert_eq!(policies(&fake).len(), 3);
    assert!(String::from_utf8_lossy(&output.stderr).contains("was not applied"));
}

#[test]
fn dry_runs_and_diff_store_nothing() {
    let fake = cluster();
    for mode in ["--dry-run=client", "--dry-run=server"] {
        kube(&fake, &["sync", "--from-file", SAMPLE, "--apply", mode])
            .assert()
            .success()
            .stdout(predicate::str::contains("created (").and(predicate::str::contains("dry run)")));
    }
    kube(&fake, &["diff", "--from-file", SAMPLE]).assert().code(4).stdout(
        predicate::str::contains("+++ wanted/tracingpolicynamespaced.cilium.io/cdr-")
            .and(predicate::str::contains("+  name: cdr-")),
    );
    assert_eq!(fake.writes(), 0);
    assert!(policies(&fake).is_empty());
    kube(&fake, &["sync", "--from-file", SAMPLE, "--apply"]).assert().code(0);
    kube(&fake, &["diff", "--from-file", SAMPLE]).assert().success().stdout("");
}

#[test]
fn status_tells_the_story_from_the_cluster() {
    let fake = cluster();
    kube(&fake, &["status"]).assert().success().stdout("No managed policies found.\n");
    kube(&fake, &["sync", "--from-file", SAMPLE, "--apply"]).assert().code(0);
    kube(&fake, &["status"])
        .assert()
        .success()
        .stdout(predicate::str::contains("NAME").and(predicate::str::contains("cdr-crypto-mining-pool-ports")))
        .stdout(predicate::str::contains("T1496").and(predicate::str::contains("audit")));
    let output = kube(&fake, &["status", "cdr-reverse-shell-shell-egress", "-o", "json"])
        .assert()
        .success()
        .get_output()
        .clone();
    let rows: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(rows[0]["technique"], "T1059.004");
    assert_eq!(rows[0]["namespace"], "web");
    assert_eq!(rows[0]["findingIds"], json!(["3f1c9a52-0007-4c1e-9b1a-rvsh00000007"]));
    let output = kube(&fake, &["status", "-o", "yaml", "-n", "batch"]).assert().success().get_output().clone();
    let rows: Value = serde_yaml::from_slice(&output.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2, "the two policies of namespace batch");
    kube(&fake, &["status", "nope"]).assert().code(1).stderr(predicate::str::contains("no managed policy named nope"));
}

#[test]
fn exec_plugins_and_broken_kubeconfigs() {
    let fake = FakeKube::start();
    bin().args(["status", "--kubeconfig"]).arg(fake.exec_kubeconfig()).assert().success();
    bin().arg("status").env("KUBECONFIG", fake.kubeconfig()).assert().success();
    let broken = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(broken.path(), "clusters: [oops").unwrap();
    bin()
        .args(["status", "--kubeconfig"])
        .arg(broken.path())
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cannot read the kubeconfig"));
    bin()
        .args(["status", "--context", "nope", "--kubeconfig"])
        .arg(fake.kubeconfig())
        .assert()
        .code(1)
        .stderr(predicate::str::contains("nope"));
}

fn block_policy(fake: &FakeKube, kind: &str, namespace: Option<&str>) -> Option<Value> {
    let resource = if namespace.is_some() { "tracingpoliciesnamespaced" } else { "tracingpolicies" };
    fake.get(resource, namespace, &format!("cdr-manual-block-{kind}"))
}

fn blocked_values(policy: &Value) -> Value {
    policy["spec"]["kprobes"][0]["selectors"][0]["matchArgs"][0]["values"].clone()
}

#[test]
fn block_and_unblock_round_trip() {
    let fake = FakeKube::start();
    kube(&fake, &["block", "--ip", "203.0.113.7,198.51.100.0/24", "--reason", "C2 communication detected"])
        .assert()
        .success()
        .stdout("tracingpolicy.cilium.io/cdr-manual-block-ip created\n");
    kube(&fake, &["block", "--port", "4444", "--port", "6666", "--reason", "Reverse shell ports"]).assert().success();
    let ips = block_policy(&fake, "ip", None).unwrap();
    assert_eq!(blocked_values(&ips), json!(["198.51.100.0/24", "203.0.113.7/32"]));
    assert_eq!(ips["spec"]["kprobes"][0]["call"], "tcp_connect");
    assert_eq!(ips["spec"]["kprobes"][0]["selectors"][0]["matchArgs"][0]["operator"], "DAddr");
    assert_eq!(label(&ips, "qualys-respond.io/mode"), "audit");
    let entries: Value = serde_json::from_str(annotation(&ips, "qualys-respond.io/blocks")).unwrap();
    assert_eq!(entries[0]["reason"], "C2 communication detected");
    assert_eq!(entries[0]["by"], "admin");
    let ports = block_policy(&fake, "port", None).unwrap();
    assert_eq!(blocked_values(&ports), json!(["4444", "6666"]));
    assert_eq!(ports["spec"]["kprobes"][0]["selectors"][0]["matchArgs"][0]["operator"], "DPort");

    kube(&fake, &["unblock", "--ip", "203.0.113.7"])
        .assert()
        .success()
        .stdout("tracingpolicy.cilium.io/cdr-manual-block-ip configured\n");
    assert_eq!(blocked_values(&block_policy(&fake, "ip", None).unwrap()), json!(["198.51.100.0/24"]));
    kube(&fake, &["unblock", "--ip", "198.51.100.0/24"])
        .assert()
        .success()
        .stdout(predicate::str::contains("deleted (unblocked: 198.51.100.0/24)"));
    assert_eq!(block_policy(&fake, "ip", None), None, "the last entry takes the policy with it");
    kube(&fake, &["unblock", "--ip", "203.0.113.9"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("was not blocked"));
    kube(&fake, &["unblock", "--all"]).assert().success();
    assert!(policies(&fake).is_empty());
}

#[test]
fn every_guardrail_refuses_and_writes_nothing() {
    let fake = FakeKube::start();
    let refusals = [
        (vec!["--ip", "0.0.0.0/0"], "every address"),
        (vec!["--ip", "::/0"], "every address"),
        (vec!["--ip", "127.0.0.1"], "loopback"),
        (vec!["--ip", "::1"], "loopback"),
        (vec!["--ip", "192.168.49.2"], "node node-1"),
        (vec!["--ip", "192.168.49.0/24"], "node node-"),
        (vec!["--ip", "10.96.0.1"], "the API server service"),
        (vec!["--ip", "10.96.0.10"], "the cluster DNS service"),
        (vec!["--ip", "10.244.0.17"], "the pod range of node node-1"),
        (vec!["--ip", "10.100.0.5"], "the service range"),
        (vec!["--ip", "10.0.0.1/8"], "did you mean 10.0.0.0/8"),
        (vec!["--ip", "not-an-ip"], "is not an IP address"),
        (vec!["--port", "53"], "DNS"),
        (vec!["--port", "8443"], "the API server's port"),
        (vec!["--ip", "203.0.113.1,203.0.113.2", "--max-entries", "1"], "more than --max-entries 1"),
        (vec!["--ip", "203.0.113.1", "--protect", "203.0.113.0/24"], "--protect 203.0.113.0/24"),
    ];
    for (args, message) in refusals {
        let mut all = vec!["block"];
        all.extend(args.iter().copied());
        kube(&fake, &all)
            .assert()
            .code(1)
            .stderr(predicate::str::contains(message).and(predicate::str::contains("nothing was written")));
    }
    assert_eq!(fake.writes(), 0);
    kube(&fake, &["block", "--ip", "10.244.0.17", "--force"]).assert().success();
    kube(&fake, &["block", "--ip", "127.0.0.1", "--force"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("loopback"));
}

#[test]
fn expired_blocks_are_removed_by_the_next_sync() {
    let fake = FakeKube::start();
    kube(&fake, &["block", "--ip", "203.0.113.7", "--ttl", "1h"]).assert().success();
    kube(&fake, &["block", "--ip", "198.51.100.7"]).assert().success();
    let mut policy = block_policy(&fake, "ip", None).unwrap();
    let mut entries: Value = serde_json::from_str(annotation(&policy, "qualys-respond.io/blocks")).unwrap();
    let expiring = entries.as_array_mut().unwrap().iter_mut().find(|e| e["value"] == "203.0.113.7/32").unwrap();
    assert!(expiring["expires"].is_string());
    expiring["expires"] = json!("2020-01-01T00:00:00Z");
    policy["metadata"]["annotations"]["qualys-respond.io/blocks"] = json!(entries.to_string());
    fake.insert(policy);
    let empty = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(empty.path(), "[]").unwrap();
    kube(&fake, &["sync", "--apply", "--from-file"])
        .arg(empty.path())
        .assert()
        .success()
        .stdout(predicate::str::contains("cdr-manual-block-ip configured"));
    assert_eq!(blocked_values(&block_policy(&fake, "ip", None).unwrap()), json!(["198.51.100.7/32"]));
}

#[test]
fn a_network_policy_follows_an_enforced_ip_block() {
    let fake = FakeKube::start();
    kube(&fake, &["block", "--ip", "203.0.113.7", "-n", "payments", "--network-policy"]).assert().success();
    assert!(block_policy(&fake, "ip", Some("payments")).is_some());
    assert_eq!(fake.get("networkpolicies", Some("payments"), "cdr-manual-block-ip"), None, "audit mode blocks nothing");
    kube(&fake, &["block", "--ip", "203.0.113.8", "-n", "payments", "--action", "Sigkill"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("promote it"));
    kube(&fake, &["promote", "cdr-manual-block-ip", "-n", "payments"])
        .assert()
        .success()
        .stdout(predicate::str::contains("networkpolicy.networking.k8s.io/cdr-manual-block-ip -n payments created"));
    let network = fake.get("networkpolicies", Some("payments"), "cdr-manual-block-ip").unwrap();
    assert_eq!(
        network["spec"]["egress"][0]["to"][1]["ipBlock"],
        json!({"cidr": "0.0.0.0/0", "except": ["203.0.113.7/32"]})
    );
    assert_eq!(label(&network, "app.kubernetes.io/managed-by"), "kubectl-qualys-respond");
    kube(&fake, &["block", "--ip", "203.0.113.8", "-n", "payments"]).assert().success();
    let network = fake.get("networkpolicies", Some("payments"), "cdr-manual-block-ip").unwrap();
    assert_eq!(network["spec"]["egress"][0]["to"][1]["ipBlock"]["except"], json!(["203.0.113.7/32", "203.0.113.8/32"]));
    kube(&fake, &["demote", "--all", "-n", "payments"]).assert().success();
    assert_eq!(fake.get("networkpolicies", Some("payments"), "cdr-manual-block-ip"), None);
    kube(&fake, &["block", "--ip", "203.0.113.7", "--network-policy"]).assert().code(2);
}

#[test]
fn kubectl_sees_what_we_applied() {
    let fake = cluster();
    kube(&fake, &["sync", "--from-file", SAMPLE, "--apply"]).assert().code(0);
    let output = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(fake.kubeconfig())
        .args([
            "get",
            "tracingpoliciesnamespaced",
            "-A",
            "-l",
            "app.kubernetes.io/managed-by=kubectl-qualys-respond",
            "-o",
            "name",
        ])
        .output()
        .expect("kubectl runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let listed = String::from_utf8_lossy(&output.stdout);
    assert!(listed.contains("tracingpolicynamespaced.cilium.io/cdr-crypto-mining-pool-ports"), "{listed}");
}

#[test]
fn policies_of_a_namespace_that_is_gone_are_not_applied() {
    let fake = FakeKube::start();
    let output = kube(&fake, &["sync", "--from-file", SAMPLE, "--apply"]).assert().success().get_output().clone();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("warning: namespace web no longer exists; its 4 policy(ies) were not applied"), "{stderr}");
    let applied = names(&policies(&fake));
    assert_eq!(
        applied,
        ["cdr-cloud-credentials-accessed-by-network-utility-imds-egress"],
        "only namespace payments exists"
    );
}

#[test]
fn an_object_we_do_not_manage_is_never_taken_over() {
    let fake = cluster();
    let theirs = json!({"apiVersion": "cilium.io/v1alpha1", "kind": "TracingPolicyNamespaced",
        "metadata": {"name": "cdr-crypto-mining-pool-ports", "namespace": "batch", "labels": {"team": "secops"}},
        "spec": {}});
    fake.insert(theirs);
    kube(&fake, &["sync", "--from-file", SAMPLE, "--apply"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("exists and is not managed by kubectl qualys-respond"))
        .stdout(predicate::str::contains("stopped: 0 object(s) were applied"));
    assert!(policies(&fake).len() == 1, "nothing was written");
    let kept = fake.get("tracingpoliciesnamespaced", Some("batch"), "cdr-crypto-mining-pool-ports").unwrap();
    assert_eq!(kept["spec"], json!({}));
    assert_eq!(kept["metadata"]["labels"], json!({"team": "secops"}));
}
