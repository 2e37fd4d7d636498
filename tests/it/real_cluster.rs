//! The cluster commands against a real API server (`apiserver`: etcd and
//! kube-apiserver built from their Go modules, RBAC on). Every command runs
//! as the service account bound to `deploy/rbac.yaml`, never as an admin,
//! so each test also proves those rights are enough; `rbac_*` proves each
//! one of them is needed. Tests share one server and take namespaces of
//! their own; the few that are about a whole cluster (pruning, missing CRDs,
//! the other CRD version) start one of their own.
//!
//! `cargo test --test it real_cluster` runs exactly these.

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::{Value, json};

use crate::apiserver::{self, ApiServer, Crds, Identity, collection};
use qualys_respond::policy::validate::{self, TetragonVersion, Weight};

use crate::fake_qualys::FakeQualys;
use crate::support::{bin, root};

const RESPONDER: &str = "system:serviceaccount:qualys-respond:qualys-respond";

/// One test's corner of a server: the sample's namespaces (`batch`, `ci`,
/// `web`, `payments`) under names of its own.
struct Scene<'a> {
    server: &'a ApiServer,
    suffix: String,
    _findings: tempfile::TempDir,
    findings: std::path::PathBuf,
}

impl<'a> Scene<'a> {
    fn new(server: &'a ApiServer) -> Scene<'a> {
        let suffix = server.namespace("scene");
        for base in ["batch", "ci", "web", "payments"] {
            let namespace = json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": format!("{base}-{suffix}")}});
            server.apply(&namespace, "test-admin").unwrap();
        }
        let mut sample: Value =
            serde_json::from_str(&std::fs::read_to_string(root().join("samples/findings.json")).unwrap()).unwrap();
        for finding in sample["content"].as_array_mut().unwrap() {
            if let Some(namespace) = finding["namespace"].as_str()
                && namespace != "kube-system"
            {
                finding["namespace"] = json!(format!("{namespace}-{suffix}"));
            }
        }
        let (dir, findings) = apiserver::temp_file("findings.json", &sample.to_string());
        Scene { server, suffix, _findings: dir, findings }
    }

    /// The scene's name for one of the sample's namespaces.
    fn ns(&self, base: &str) -> String {
        format!("{base}-{}", self.suffix)
    }

    /// The binary as the responder, `args[0]` the command.
    fn run(&self, args: &[&str]) -> Command {
        as_identity(self.server, Identity::Responder, args)
    }

    /// `sync` of the scene's findings with `extra` arguments.
    fn sync(&self, extra: &[&str]) -> Command {
        let mut command = self.run(&["sync", "--from-file"]);
        command.arg(&self.findings).args(extra);
        command
    }

    /// Every managed policy in the scene's namespaces.
    fn policies(&self) -> Vec<Value> {
        ["batch", "ci", "web", "payments"]
            .iter()
            .flat_map(|base| self.server.list("tracingpoliciesnamespaced", Some(&self.ns(base))))
            .collect()
    }

    fn policy(&self, base: &str, name: &str) -> Option<Value> {
        let path = format!("{}/{name}", collection("tracingpoliciesnamespaced", Some(&self.ns(base))));
        self.server.get(&path)
    }
}

fn as_identity(server: &ApiServer, identity: Identity, args: &[&str]) -> Command {
    let mut command = bin();
    command.arg(args[0]).arg("--kubeconfig").arg(server.kubeconfig(identity)).args(&args[1..]);
    command
}

fn lines(output: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout).lines().map(str::to_string).collect()
}

fn annotation<'v>(object: &'v Value, key: &str) -> &'v str {
    object["metadata"]["annotations"][key].as_str().unwrap_or_default()
}

fn label<'v>(object: &'v Value, key: &str) -> &'v str {
    object["metadata"]["labels"][key].as_str().unwrap_or_default()
}

fn versions(objects: &[Value]) -> Vec<(String, String)> {
    let mut versions: Vec<_> = objects
        .iter()
        .map(|o| {
            let name = format!("{}/{}", o["metadata"]["namespace"], o["metadata"]["name"]);
            (name, o["metadata"]["resourceVersion"].as_str().unwrap().to_string())
        })
        .collect();
    versions.sort();
    versions
}

#[test]
fn the_server_is_up_serves_the_crds_and_refuses_a_policy_that_breaks_their_schema() {
    let server = ApiServer::shared();
    let version = server.get("/version").unwrap();
    assert_eq!(version["gitVersion"], apiserver::KUBERNETES_VERSION);
    let group = server.get("/apis/cilium.io/v1alpha1").unwrap();
    let served: Vec<&str> = group["resources"].as_array().unwrap().iter().filter_map(|r| r["name"].as_str()).collect();
    assert!(served.contains(&"tracingpolicies") && served.contains(&"tracingpoliciesnamespaced"), "{served:?}");
    let namespace = server.namespace("schema");
    let broken = json!({"apiVersion": "cilium.io/v1alpha1", "kind": "TracingPolicyNamespaced",
        "metadata": {"name": "broken", "namespace": namespace},
        "spec": {"kprobes": [{"call": "tcp_connect", "syscall": "no", "selectors": "all"}]}});
    let (code, status) = server.admits(&broken).unwrap_err();
    assert_eq!((code, &status["reason"]), (422, &json!("Invalid")), "{status}");
    let message = status["message"].as_str().unwrap();
    assert!(message.contains("spec.kprobes[0].syscall") && message.contains("spec.kprobes[0].selectors"), "{message}");
    let (code, status) = server.request(Identity::Trimmed, "GET", &collection("tracingpolicies", None), None);
    assert_eq!(code, 403, "an identity without a binding is refused: {status}");
}

/// Everything our pipeline writes (the goldens, the sample in both modes,
/// every kind of block), checked by the real server against each CRD
/// version's schema and CEL rules with strict field validation; and no
/// object our validator passes is refused by the server.
#[test]
fn every_object_we_produce_is_admitted_by_both_crd_versions() {
    let mut objects = Vec::new();
    let mut inputs: Vec<std::path::PathBuf> = std::fs::read_dir(root().join("tests/data/golden"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    inputs.push(root().join("samples/findings.json"));
    for input in &inputs {
        for action in ["Post", "Sigkill"] {
            let output = bin().args(["sync", "--action", action, "--from-file"]).arg(input).output().unwrap();
            assert!(output.status.success() || output.status.code() == Some(3), "{input:?}: {output:?}");
            objects.extend(apiserver::documents(&String::from_utf8_lossy(&output.stdout)));
        }
    }
    assert!(objects.len() > 30, "{} objects", objects.len());
    let main = ApiServer::start(Crds::Tetragon("main"));
    for (version, server) in [("v1.7.0", ApiServer::shared()), ("main", &main)] {
        let namespace = server.namespace("admitted");
        for object in &objects {
            let mut object = object.clone();
            if object["metadata"]["namespace"].is_string() {
                object["metadata"]["namespace"] = json!(namespace);
            }
            if let Err((code, status)) = server.admits(&object) {
                panic!("the {version} CRD refuses {}: {code} {status}", object["metadata"]["name"]);
            }
        }
        // What our validator passes, the real server stores: Tetragon's own
        // examples and the hand-written corpus, and the lint fixtures.
        let tetragon = match version {
            "main" => TetragonVersion::Main,
            _ => TetragonVersion::V1_7_0,
        };
        let mut passed = 0;
        for document in corpus() {
            let rejected = validate::validate(&document, &[tetragon]).iter().any(|p| p.weight() == Weight::Rejected);
            if rejected {
                continue;
            }
            passed += 1;
            let mut document = document.clone();
            if document["kind"] == "TracingPolicyNamespaced" {
                document["metadata"]["namespace"] = json!(namespace);
            }
            if let Err((code, status)) = server.admits(&document) {
                panic!(
                    "our validator passes, the {version} CRD refuses {}: {code} {status}",
                    document["metadata"]["name"]
                );
            }
        }
        assert!(passed > 20, "{passed} corpus objects pass our validator");
        // Blocks in both modes, stored for real: namespaced, and cluster-wide
        // on the server of this test only (the shared one's other tests
        // would see them).
        let scopes: &[&[&str]] = match version {
            "main" => &[&["-n", namespace.as_str()], &[]],
            _ => &[&["-n", namespace.as_str()]],
        };
        for &scope in scopes {
            for args in [["block", "--ip", "203.0.113.7,2001:db8::/32"], ["block", "--port", "4444,6666"]] {
                as_identity(server, Identity::Responder, &args).args(scope).assert().success();
            }
            for kind in ["ip", "port"] {
                let name = format!("cdr-manual-block-{kind}");
                as_identity(server, Identity::Responder, &["promote", &name]).args(scope).assert().success();
            }
        }
    }
}

/// The oracle's corpus (Tetragon's published examples among them) and the
/// lint fixtures, one object each.
fn corpus() -> Vec<Value> {
    let mut files = vec![root().join("tests/data/oracle/corpus.yaml")];
    files.extend(std::fs::read_dir(root().join("tests/data/lint")).unwrap().map(|e| e.unwrap().path()));
    files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "yaml"))
        .flat_map(|f| apiserver::documents(&std::fs::read_to_string(f).unwrap()))
        .filter(|d| d["apiVersion"] == "cilium.io/v1alpha1")
        .collect()
}

#[test]
fn sync_apply_creates_then_changes_nothing_then_promote_tune_and_demote() {
    let scene = Scene::new(ApiServer::shared());
    let first = scene.sync(&["--apply"]).assert().code(0).get_output().clone();
    let created = lines(&first);
    assert_eq!(created.len(), 9, "{created:?}");
    assert!(created.iter().all(|l| l.ends_with(" created")), "{created:?}");
    let applied = scene.policies();
    assert_eq!(applied.len(), 9);
    for policy in &applied {
        assert_eq!(label(policy, "app.kubernetes.io/managed-by"), "kubectl-qualys-respond");
        assert_eq!(label(policy, "qualys-respond.io/mode"), "audit");
        let history: Value = serde_json::from_str(annotation(policy, "qualys-respond.io/history")).unwrap();
        assert_eq!(history[0]["by"], RESPONDER, "who did it, as the API server knows them");
        let managers: Vec<&str> = policy["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["manager"].as_str().unwrap())
            .collect();
        assert_eq!(managers, ["kubectl-qualys-respond"]);
    }

    let second = scene.sync(&["--apply"]).assert().code(0).get_output().clone();
    assert!(lines(&second).iter().all(|l| l.ends_with(" unchanged")), "{:?}", lines(&second));
    assert_eq!(versions(&scene.policies()), versions(&applied), "an identical run writes nothing");

    let web = scene.ns("web");
    let scanner = "cdr-network-scanning-utility-scanner-exec";
    scene
        .run(&["promote", scanner, "-n", &web])
        .assert()
        .success()
        .stdout(format!("tracingpolicynamespaced.cilium.io/{scanner} -n {web} configured\n"));
    let promoted = scene.policy("web", scanner).unwrap();
    assert_eq!(label(&promoted, "qualys-respond.io/mode"), "enforce");
    assert!(promoted["spec"].to_string().contains("Sigkill"));

    scene.run(&["tune", scanner, "-n", &web, "--exclude-binary", "/opt/tools/masscan-ok"]).assert().success();
    let tuned = scene.policy("web", scanner).unwrap();
    assert_eq!(annotation(&tuned, "qualys-respond.io/excluded-binaries"), "/opt/tools/masscan-ok");
    let third = scene.sync(&["--apply"]).assert().code(0).get_output().clone();
    assert!(lines(&third).iter().all(|l| l.ends_with(" unchanged")), "{:?}", lines(&third));
    let kept = scene.policy("web", scanner).unwrap();
    assert_eq!(label(&kept, "qualys-respond.io/mode"), "enforce", "a sync keeps the promotion");
    assert_eq!(kept["spec"], tuned["spec"], "a sync keeps the tuning");

    scene.run(&["demote", scanner, "-n", &web]).assert().success();
    let demoted = scene.policy("web", scanner).unwrap();
    assert_eq!(label(&demoted, "qualys-respond.io/mode"), "audit");
    assert!(!demoted["spec"].to_string().contains("Sigkill"));
    let history: Value = serde_json::from_str(annotation(&demoted, "qualys-respond.io/history")).unwrap();
    let events: Vec<&str> = history.as_array().unwrap().iter().map(|h| h["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["created", "promoted", "tuned", "demoted"]);
}

#[test]
fn diff_and_both_dry_runs_store_nothing() {
    let scene = Scene::new(ApiServer::shared());
    for mode in ["--dry-run=client", "--dry-run=server"] {
        scene
            .sync(&["--apply", mode])
            .assert()
            .success()
            .stdout(predicate::str::contains("created (").and(predicate::str::contains("dry run)")));
    }
    let mut diff = scene.run(&["diff", "--from-file"]);
    diff.arg(&scene.findings).assert().code(4).stdout(
        predicate::str::contains("+++ wanted/tracingpolicynamespaced.cilium.io/cdr-")
            .and(predicate::str::contains("+  name: cdr-")),
    );
    assert!(scene.policies().is_empty(), "nothing was stored");
    scene.sync(&["--apply"]).assert().code(0);
    let mut diff = scene.run(&["diff", "--from-file"]);
    diff.arg(&scene.findings).assert().success().stdout("");
}

#[test]
fn status_reads_the_story_from_the_cluster() {
    let scene = Scene::new(ApiServer::shared());
    let batch = scene.ns("batch");
    scene.run(&["status", "-n", &batch]).assert().success().stdout("No managed policies found.\n");
    scene.sync(&["--apply"]).assert().code(0);
    let output = scene.run(&["status", "-o", "json", "-n", &batch]).assert().success().get_output().clone();
    let rows: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2, "the two policies of namespace batch: {rows}");
    scene
        .run(&["status", "-n", &batch])
        .assert()
        .success()
        .stdout(predicate::str::contains("cdr-crypto-mining-pool-ports").and(predicate::str::contains("T1496")))
        .stdout(predicate::str::contains("audit"));
    let web = scene.ns("web");
    let output = scene
        .run(&["status", "cdr-reverse-shell-shell-egress", "-n", &web, "-o", "yaml"])
        .assert()
        .success()
        .get_output()
        .clone();
    let rows: Value = serde_yaml::from_slice(&output.stdout).unwrap();
    assert_eq!((&rows[0]["technique"], &rows[0]["namespace"]), (&json!("T1059.004"), &json!(web)));
    assert_eq!(rows[0]["findingIds"], json!(["3f1c9a52-0007-4c1e-9b1a-rvsh00000007"]));
    scene
        .run(&["status", "nope", "-n", &web])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no managed policy named nope"));
}

/// Credentials the way real clusters hand them out (an exec plugin), the
/// `KUBECONFIG` variable, and kubeconfigs that cannot work.
#[test]
fn exec_plugins_and_broken_kubeconfigs() {
    let server = ApiServer::shared();
    let ns = server.namespace("exec");
    let exec = server.exec_kubeconfig(Identity::Responder);
    bin().args(["status", "-n", &ns, "--kubeconfig"]).arg(&exec).assert().success();
    bin().args(["status", "-n", &ns]).env("KUBECONFIG", server.kubeconfig(Identity::Responder)).assert().success();
    let (_dir, broken) = apiserver::temp_file("kubeconfig", "clusters: [oops");
    bin()
        .args(["status", "--kubeconfig"])
        .arg(&broken)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cannot read the kubeconfig"));
    bin()
        .args(["status", "--context", "nope", "--kubeconfig"])
        .arg(server.kubeconfig(Identity::Responder))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("nope"));
}

#[test]
fn policies_of_a_namespace_that_does_not_exist_are_not_applied() {
    let server = ApiServer::shared();
    let namespace = server.namespace("present");
    let findings = json!([
        {"uuid": "gone-1", "threatCategory": "Crypto_Mining", "namespace": format!("{namespace}-gone")},
        {"uuid": "here-1", "threatCategory": "Crypto_Mining", "namespace": namespace},
    ]);
    let (_dir, file) = apiserver::temp_file("findings.json", &findings.to_string());
    let mut command = as_identity(server, Identity::Responder, &["sync", "--apply", "--from-file"]);
    let output = command.arg(&file).assert().success().get_output().clone();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("warning: namespace {namespace}-gone no longer exists")), "{stderr}");
    assert_eq!(server.list("tracingpoliciesnamespaced", Some(&namespace)).len(), 1);
    assert!(server.get(&format!("/api/v1/namespaces/{namespace}-gone")).is_none());
}

#[test]
fn an_object_we_do_not_manage_is_never_taken_over() {
    let scene = Scene::new(ApiServer::shared());
    let theirs = json!({"apiVersion": "cilium.io/v1alpha1", "kind": "TracingPolicyNamespaced",
        "metadata": {"name": "cdr-crypto-mining-pool-ports", "namespace": scene.ns("batch"), "labels": {"team": "secops"}},
        "spec": {}});
    scene.server.apply(&theirs, "secops").unwrap();
    scene
        .sync(&["--apply"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("exists and is not managed by kubectl qualys-respond"))
        .stdout(predicate::str::contains("stopped: 0 object(s) were applied"));
    assert_eq!(scene.policies().len(), 1, "nothing was written");
    let kept = scene.policy("batch", "cdr-crypto-mining-pool-ports").unwrap();
    assert_eq!((&kept["spec"], &kept["metadata"]["labels"]), (&json!({}), &json!({"team": "secops"})));
}

/// Someone else edits a field of our policy with their own field manager:
/// our next write of that field is refused by the server's conflict
/// detection and reported, their edit stays, and `--force-conflicts` takes
/// the field back when that is what the operator wants.
#[test]
fn a_concurrent_edit_by_another_field_manager_is_refused_and_not_lost() {
    let scene = Scene::new(ApiServer::shared());
    scene.sync(&["--apply"]).assert().code(0);
    let web = scene.ns("web");
    let scanner = "cdr-network-scanning-utility-scanner-exec";
    let mut theirs = scene.policy("web", scanner).unwrap();
    let selectors = &mut theirs["spec"]["kprobes"][0]["selectors"][0];
    selectors["matchBinaries"][0]["values"].as_array_mut().unwrap().push(json!("/opt/scanners/approved"));
    let edit = json!({"apiVersion": "cilium.io/v1alpha1", "kind": "TracingPolicyNamespaced",
        "metadata": {"name": scanner, "namespace": web}, "spec": theirs["spec"]});
    scene.server.apply(&edit, "secops-console").unwrap();

    let output = scene.run(&["promote", scanner, "-n", &web]).assert().code(1).get_output().clone();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stdout.contains("FAILED") || stderr.contains("conflict"), "{stdout}{stderr}");
    let said = format!("{stdout}{stderr}");
    assert!(said.contains("secops-console") && said.contains(".spec"), "names who and what: {said}");
    assert!(said.contains("--force-conflicts"), "says how to take the fields back: {said}");
    let kept = scene.policy("web", scanner).unwrap();
    assert_eq!(kept["spec"], edit["spec"], "their edit is not lost");
    assert_eq!(label(&kept, "qualys-respond.io/mode"), "audit", "and nothing half-done: still audit");

    scene.run(&["promote", scanner, "-n", &web, "--force-conflicts"]).assert().success();
    let taken = scene.policy("web", scanner).unwrap();
    assert_eq!(label(&taken, "qualys-respond.io/mode"), "enforce");
}

fn block_policy(server: &ApiServer, namespace: &str, kind: &str) -> Option<Value> {
    server.get(&format!("{}/cdr-manual-block-{kind}", collection("tracingpoliciesnamespaced", Some(namespace))))
}

fn blocked_values(policy: &Value) -> Value {
    policy["spec"]["kprobes"][0]["selectors"][0]["matchArgs"][0]["values"].clone()
}

#[test]
fn block_and_unblock_round_trip() {
    let server = ApiServer::shared();
    let ns = server.namespace("block");
    let run = |args: &[&str]| {
        let mut command = as_identity(server, Identity::Responder, args);
        command.args(["-n", &ns]);
        command
    };
    run(&["block", "--ip", "203.0.113.7,198.51.100.0/24", "--reason", "C2 communication detected"])
        .assert()
        .success()
        .stdout(format!("tracingpolicynamespaced.cilium.io/cdr-manual-block-ip -n {ns} created\n"));
    run(&["block", "--port", "4444", "--port", "6666"]).assert().success();
    let ips = block_policy(server, &ns, "ip").unwrap();
    assert_eq!(blocked_values(&ips), json!(["198.51.100.0/24", "203.0.113.7/32"]));
    let entries: Value = serde_json::from_str(annotation(&ips, "qualys-respond.io/blocks")).unwrap();
    assert_eq!((&entries[0]["reason"], &entries[0]["by"]), (&json!("C2 communication detected"), &json!(RESPONDER)));
    assert_eq!(blocked_values(&block_policy(server, &ns, "port").unwrap()), json!(["4444", "6666"]));

    run(&["unblock", "--ip", "203.0.113.7"]).assert().success();
    assert_eq!(blocked_values(&block_policy(server, &ns, "ip").unwrap()), json!(["198.51.100.0/24"]));
    run(&["unblock", "--ip", "198.51.100.0/24"])
        .assert()
        .success()
        .stdout(predicate::str::contains("deleted (unblocked: 198.51.100.0/24)"));
    assert_eq!(block_policy(server, &ns, "ip"), None, "the last entry takes the policy with it");
    run(&["unblock", "--ip", "203.0.113.9"]).assert().code(1).stderr(predicate::str::contains("was not blocked"));
    run(&["unblock", "--all"]).assert().success();
    assert!(server.list("tracingpoliciesnamespaced", Some(&ns)).is_empty());
}

/// The guardrails come from the server's own objects: the Nodes and their
/// pod ranges, the `kubernetes` Service and its endpoints (this server's
/// address and port), CoreDNS's Service and the ServiceCIDR the API server
/// made from `--service-cluster-ip-range`.
#[test]
fn the_guardrails_are_read_from_the_real_cluster() {
    let server = ApiServer::shared();
    let ns = server.namespace("guard");
    let api_port = server.url.rsplit(':').next().unwrap().to_string();
    let refusals: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--ip", "192.168.10.11"], "node node-a"),
        (vec!["--ip", "192.168.10.0/24"], "node node-"),
        (vec!["--ip", "10.244.1.9"], "the pod range of node node-b"),
        (vec!["--ip", "10.96.0.1"], "the API server service"),
        (vec!["--ip", apiserver::ADVERTISED], "the API server"),
        (vec!["--ip", "10.96.0.10"], "the cluster DNS service"),
        (vec!["--ip", "10.96.200.5"], "the service range"),
        (vec!["--ip", "127.0.0.1"], "loopback"),
        (vec!["--ip", "::1"], "loopback"),
        (vec!["--ip", "0.0.0.0/0"], "every address"),
        (vec!["--ip", "::/0"], "every address"),
        (vec!["--ip", "10.0.0.1/8"], "did you mean 10.0.0.0/8"),
        (vec!["--ip", "not-an-ip"], "is not an IP address"),
        (vec!["--port", &api_port], "the API server's port"),
        (vec!["--port", "443"], "the API server service's port"),
        (vec!["--port", "53"], "DNS"),
        (vec!["--ip", "203.0.113.1,203.0.113.2", "--max-entries", "1"], "more than --max-entries 1"),
        (vec!["--ip", "203.0.113.1", "--protect", "203.0.113.0/24"], "--protect 203.0.113.0/24"),
    ];
    for (args, message) in refusals {
        let mut all = vec!["block"];
        all.extend(&args);
        as_identity(server, Identity::Responder, &all)
            .args(["-n", &ns])
            .assert()
            .code(1)
            .stderr(predicate::str::contains(message).and(predicate::str::contains("nothing was written")));
    }
    assert!(server.list("tracingpoliciesnamespaced", Some(&ns)).is_empty(), "nothing was written");
    as_identity(server, Identity::Responder, &["block", "--ip", "10.244.0.17", "--force", "-n", &ns])
        .assert()
        .success();
    as_identity(server, Identity::Responder, &["block", "--ip", "127.0.0.1", "--force", "-n", &ns])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("loopback"));
}

#[test]
fn a_network_policy_follows_an_enforced_ip_block() {
    let server = ApiServer::shared();
    let ns = server.namespace("netpol");
    let run = |args: &[&str]| {
        let mut command = as_identity(server, Identity::Responder, args);
        command.args(["-n", &ns]);
        command
    };
    let network = || server.get(&format!("{}/cdr-manual-block-ip", collection("networkpolicies", Some(&ns))));
    run(&["block", "--ip", "203.0.113.7", "--network-policy"]).assert().success();
    assert_eq!(network(), None, "audit mode blocks nothing");
    run(&["block", "--ip", "203.0.113.8", "--action", "Sigkill"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("promote it"));
    run(&["promote", "cdr-manual-block-ip"]).assert().success().stdout(predicate::str::contains(format!(
        "networkpolicy.networking.k8s.io/cdr-manual-block-ip -n {ns} created"
    )));
    let stored = network().expect("the real server stored the NetworkPolicy");
    assert_eq!(
        stored["spec"]["egress"][0]["to"][1]["ipBlock"],
        json!({"cidr": "0.0.0.0/0", "except": ["203.0.113.7/32"]})
    );
    run(&["block", "--ip", "203.0.113.8"]).assert().success();
    assert_eq!(
        network().unwrap()["spec"]["egress"][0]["to"][1]["ipBlock"]["except"],
        json!(["203.0.113.7/32", "203.0.113.8/32"])
    );
    run(&["demote", "--all"]).assert().success();
    assert_eq!(network(), None);
    as_identity(server, Identity::Responder, &["block", "--ip", "203.0.113.7", "--network-policy"]).assert().code(2);
}

/// An expired entry is dropped by the next sync. The expiry is moved into
/// the past by our own field manager, as an earlier run would have set it.
#[test]
fn expired_blocks_are_removed_by_the_next_sync() {
    let server = ApiServer::shared();
    let ns = server.namespace("expiry");
    as_identity(server, Identity::Responder, &["block", "--ip", "203.0.113.7", "--ttl", "1h", "-n", &ns])
        .assert()
        .success();
    as_identity(server, Identity::Responder, &["block", "--ip", "198.51.100.7", "-n", &ns]).assert().success();
    let policy = block_policy(server, &ns, "ip").unwrap();
    let mut entries: Value = serde_json::from_str(annotation(&policy, "qualys-respond.io/blocks")).unwrap();
    let expiring = entries.as_array_mut().unwrap().iter_mut().find(|e| e["value"] == "203.0.113.7/32").unwrap();
    expiring["expires"] = json!("2020-01-01T00:00:00Z");
    let mut edit = json!({"apiVersion": "cilium.io/v1alpha1", "kind": "TracingPolicyNamespaced",
        "metadata": {"name": "cdr-manual-block-ip", "namespace": ns, "labels": policy["metadata"]["labels"],
            "annotations": policy["metadata"]["annotations"]}, "spec": policy["spec"]});
    edit["metadata"]["annotations"]["qualys-respond.io/blocks"] = json!(entries.to_string());
    let path = format!("{}/cdr-manual-block-ip", collection("tracingpoliciesnamespaced", Some(&ns)));
    let (code, body) =
        server.request(Identity::Admin, "PATCH", &format!("{path}?fieldManager=kubectl-qualys-respond"), Some(&edit));
    assert_eq!(code, 200, "{body}");
    let (_dir, empty) = apiserver::temp_file("empty.json", "[]");
    let mut sync = as_identity(server, Identity::Responder, &["sync", "--apply", "--from-file"]);
    sync.arg(&empty).assert().success().stdout(predicate::str::contains("cdr-manual-block-ip -n"));
    assert_eq!(blocked_values(&block_policy(server, &ns, "ip").unwrap()), json!(["198.51.100.7/32"]));
}

/// The CronJob form, `sync --once --hours=24 --apply`, keeps its checkpoint
/// in a real ConfigMap: the second run neither misses nor repeats a finding.
#[test]
fn scheduled_runs_keep_their_checkpoint_in_a_configmap() {
    let server = ApiServer::shared();
    let ns = server.namespace("cron");
    let at = |minutes: i64| (chrono::Utc::now() - chrono::Duration::minutes(minutes)).to_rfc3339();
    let qualys = FakeQualys::start("api-user", "cr0n");
    qualys.set_findings(vec![
        json!({"uuid": "a", "timestamp": at(50), "threatCategory": "Crypto_Mining", "namespace": ns}),
        json!({"uuid": "b", "timestamp": at(40), "threatCategory": "Reverse_Shell", "namespace": ns}),
    ]);
    let cronjob = || {
        let mut command = as_identity(server, Identity::Responder, &["sync"]);
        command
            .args(["--gateway", &qualys.url, "--once", "--hours=24", "--apply", "-n", "qualys-respond"])
            .env("QUALYS_USERNAME", "api-user")
            .env("QUALYS_PASSWORD", "cr0n")
            .env("NO_PROXY", "127.0.0.1,localhost");
        command
    };
    let checkpoint = || {
        let map = server.get("/api/v1/namespaces/qualys-respond/configmaps/qualys-respond-checkpoint")?;
        serde_json::from_str::<Value>(map["data"]["checkpoint.json"].as_str()?).ok()
    };
    cronjob().assert().success().stdout(predicate::str::contains("created"));
    assert_eq!(checkpoint().expect("the checkpoint is a ConfigMap")["recentIds"], json!(["a", "b"]));
    cronjob().assert().success().stdout("").stderr(predicate::str::contains("already handled by an earlier run: 2"));
}

#[test]
fn kubectl_sees_what_we_applied() {
    let scene = Scene::new(ApiServer::shared());
    scene.sync(&["--apply"]).assert().code(0);
    let home = tempfile::tempdir().unwrap();
    let output = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(scene.server.kubeconfig(Identity::Admin))
        .args(["get", "tracingpoliciesnamespaced", "-n", &scene.ns("batch"), "-o", "name"])
        .env("HOME", home.path())
        .output()
        .expect("kubectl is installed (.ci/run installs it)");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let listed = String::from_utf8_lossy(&output.stdout);
    assert!(listed.contains("tracingpolicynamespaced.cilium.io/cdr-crypto-mining-pool-ports"), "{listed}");
}

/// Pruning looks at every managed policy of the cluster: a cluster of its own.
#[test]
fn prune_deletes_only_our_audit_policies_without_a_reason() {
    let server = ApiServer::start(Crds::Tetragon("v1.7.0"));
    let scene = Scene::new(&server);
    scene.sync(&["--apply"]).assert().code(0);
    let web = scene.ns("web");
    scene.run(&["promote", "cdr-network-scanning-utility-scanner-exec", "-n", &web]).assert().success();
    let foreign = json!({"apiVersion": "cilium.io/v1alpha1", "kind": "TracingPolicy",
        "metadata": {"name": "someone-elses"}, "spec": {}});
    server.apply(&foreign, "secops").unwrap();
    let (_dir, empty) = apiserver::temp_file("empty.json", "[]");
    let mut prune = scene.run(&["sync", "--apply", "--prune", "--prune-after", "0s", "--from-file"]);
    let output = prune.arg(&empty).assert().success().get_output().clone();
    let pruned = lines(&output);
    assert_eq!(pruned.len(), 8, "every audit policy goes: {pruned:?}");
    assert!(pruned.iter().all(|l| l.contains("deleted (audit only and no finding for 0s)")), "{pruned:?}");
    let left: Vec<Value> = scene.policies();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["metadata"]["name"], "cdr-network-scanning-utility-scanner-exec");
    assert!(server.get(&format!("{}/someone-elses", collection("tracingpolicies", None))).is_some());
}

#[test]
fn missing_crds_are_named_and_nothing_is_written() {
    let server = ApiServer::start(Crds::None);
    let scene = Scene::new(&server);
    scene
        .sync(&["--apply"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("install Tetragon or Qualys CRS first; nothing was written"));
    scene
        .run(&["block", "--ip", "203.0.113.7"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("TracingPolicy CRDs"));
    scene.run(&["status"]).assert().code(1).stderr(predicate::str::contains("TracingPolicy CRDs"));
}

/// One right of a set of RBAC documents: which document, which rule, which verb.
#[derive(Debug, Clone)]
struct Right {
    document: usize,
    rule: usize,
    verb: String,
}

impl Right {
    fn resources(&self, rbac: &[Value]) -> Vec<String> {
        let rule = &rbac[self.document]["rules"][self.rule];
        rule["resources"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect()
    }

    fn is(&self, other: &Right) -> bool {
        (self.document, self.rule, &self.verb) == (other.document, other.rule, &other.verb)
    }

    /// Every right of `rbac`'s Roles and ClusterRoles.
    fn all(rbac: &[Value]) -> Vec<Right> {
        let mut rights = Vec::new();
        for (document, object) in rbac.iter().enumerate() {
            for (rule, body) in object["rules"].as_array().into_iter().flatten().enumerate() {
                for verb in body["verbs"].as_array().unwrap() {
                    rights.push(Right { document, rule, verb: verb.as_str().unwrap().to_string() });
                }
            }
        }
        rights
    }
}

/// `rbac` without `removed` (a rule left with no verb goes).
fn without(rbac: &[Value], removed: Option<&Right>) -> Vec<Value> {
    let mut documents = rbac.to_vec();
    if let Some(right) = removed {
        let rules = documents[right.document]["rules"].as_array_mut().unwrap();
        let verbs = rules[right.rule]["verbs"].as_array_mut().unwrap();
        verbs.retain(|v| v != right.verb.as_str());
        if verbs.is_empty() {
            rules.remove(right.rule);
        }
    }
    documents
}

/// `deploy/rbac.yaml` for the trimmed identity: its own names, its namespace.
fn for_trimmed(rbac: &[Value]) -> Vec<Value> {
    let mut documents = rbac.to_vec();
    for document in &mut documents {
        let cluster_scoped = matches!(document["kind"].as_str(), Some("ClusterRole" | "ClusterRoleBinding"));
        if cluster_scoped {
            document["metadata"]["name"] = json!("qualys-respond-trimmed");
        } else {
            document["metadata"]["namespace"] = json!("qualys-respond-trimmed");
        }
        if document["roleRef"]["kind"] == "ClusterRole" {
            document["roleRef"]["name"] = json!("qualys-respond-trimmed");
        }
        for subject in document.get_mut("subjects").and_then(Value::as_array_mut).into_iter().flatten() {
            subject["namespace"] = json!("qualys-respond-trimmed");
        }
    }
    documents
}

/// Whom a set of RBAC documents is for: the service account `namespace/name`.
struct Account {
    namespace: String,
    name: String,
}

impl Account {
    fn user(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.name)
    }
}

/// True once the server's authorizer agrees that `account` has every right
/// of `rbac` but `removed`.
fn authorizer_agrees(
    server: &ApiServer,
    rbac: &[Value],
    rights: &[Right],
    removed: Option<&Right>,
    account: &Account,
) -> bool {
    rights.iter().all(|right| {
        let rule = &rbac[right.document]["rules"][right.rule];
        let mut attributes = json!({"verb": right.verb, "group": rule["apiGroups"][0],
            "resource": right.resources(rbac)[0], "name": rule["resourceNames"][0]});
        if rbac[right.document]["kind"] == "Role" {
            attributes["namespace"] = rbac[right.document]["metadata"]["namespace"].clone();
        }
        let groups = json!([
            "system:serviceaccounts",
            format!("system:serviceaccounts:{}", account.namespace),
            "system:authenticated"
        ]);
        let review = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": account.user(), "groups": groups, "resourceAttributes": attributes}});
        let (_, answer) = server.request(
            Identity::Admin,
            "POST",
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            Some(&review),
        );
        let allowed = answer["status"]["allowed"] == true;
        allowed != removed.is_some_and(|r| r.is(right))
    })
}

/// `tour` works with exactly the rights of `rbac` (applied for `account`):
/// with all of them, and without any one of them it fails with the server's
/// "forbidden" naming that verb and resource.
fn every_right_is_needed(server: &ApiServer, rbac: &[Value], account: &Account, tour: impl Fn() -> Result<(), String>) {
    let rights = Right::all(rbac);
    let grant = |removed: Option<&Right>| {
        for object in without(rbac, removed) {
            server.apply(&object, "test-admin").unwrap();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !authorizer_agrees(server, rbac, &rights, removed, account) {
            assert!(std::time::Instant::now() < deadline, "RBAC did not settle on {removed:?}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    grant(None);
    tour().expect("every command works with exactly these rights");
    let mut unneeded = Vec::new();
    for right in &rights {
        grant(Some(right));
        match tour() {
            Ok(()) => unneeded.push(format!("{} on {:?}", right.verb, right.resources(rbac))),
            Err(failure) => {
                let named = right
                    .resources(rbac)
                    .iter()
                    .any(|resource| failure.contains(&format!("cannot {} resource \"{resource}\"", right.verb)));
                assert!(named && failure.contains("forbidden"), "without {right:?}: {failure}");
            }
        }
    }
    grant(None);
    assert!(unneeded.is_empty(), "rights no command uses: {unneeded:?}");
}

/// Runs `steps` with `kubeconfig`: the first that fails, with what it printed.
fn run_steps(kubeconfig: &std::path::Path, steps: &[Vec<&str>]) -> Result<(), String> {
    for step in steps {
        let output = bin()
            .arg(step[0])
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(&step[1..])
            .env("QUALYS_USERNAME", "api-user")
            .env("QUALYS_PASSWORD", "tour")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env_remove("QUALYS_RESPOND_CLUSTER_NAME")
            .output()
            .unwrap();
        // diff exits 4 when there are differences.
        if !(output.status.success() || (step[0] == "diff" && output.status.code() == Some(4))) {
            let said =
                format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
            return Err(format!("`{}` failed ({}): {said}", step.join(" "), output.status));
        }
    }
    Ok(())
}

/// Everything the tool does in a cluster, as the trimmed identity, in a new
/// scene.
fn tour(server: &ApiServer, qualys: &FakeQualys) -> Result<(), String> {
    server.delete("/api/v1/namespaces/qualys-respond-trimmed/configmaps/qualys-respond-checkpoint");
    let scene = Scene::new(server);
    let (ns, web) = (scene.ns("batch"), scene.ns("web"));
    let (_dir, empty) = apiserver::temp_file("empty.json", "[]");
    let findings = scene.findings.display().to_string();
    let empty = empty.display().to_string();
    let steps: Vec<Vec<&str>> = vec![
        vec!["sync", "--from-file", &findings, "--apply"],
        vec!["sync", "--from-file", &findings, "--apply"],
        vec!["status", "-n", &ns],
        vec!["diff", "--from-file", &findings],
        vec!["promote", "cdr-network-scanning-utility-scanner-exec", "-n", &web],
        vec!["tune", "cdr-network-scanning-utility-scanner-exec", "-n", &web, "--exclude-binary", "/opt/ok"],
        vec!["block", "--ip", "203.0.113.7", "-n", &ns, "--network-policy"],
        vec!["promote", "cdr-manual-block-ip", "-n", &ns],
        vec!["unblock", "--ip", "203.0.113.7", "-n", &ns],
        vec!["sync", "--from-file", &empty, "--apply", "--prune", "--prune-after", "0s"],
        vec!["sync", "--gateway", &qualys.url, "--once", "--hours=24", "--apply", "-n", "qualys-respond-trimmed"],
    ];
    run_steps(&server.kubeconfig(Identity::Trimmed), &steps)
}

/// Every command works with exactly the rights of `deploy/rbac.yaml`, and
/// each of those rights is needed: without any one verb, a command fails
/// with the server's "forbidden" naming that verb and resource.
#[test]
fn rbac_every_right_of_deploy_rbac_yaml_is_needed_and_its_absence_named() {
    let server = ApiServer::start(Crds::Tetragon("v1.7.0"));
    let qualys = FakeQualys::start("api-user", "tour");
    qualys.set_findings(vec![json!({"uuid": "t1", "timestamp": chrono::Utc::now().to_rfc3339(),
        "threatCategory": "Crypto_Mining", "namespace": "qualys-respond-trimmed"})]);
    let rbac = apiserver::documents(&std::fs::read_to_string(root().join("deploy/rbac.yaml")).unwrap());
    let account = Account { namespace: "qualys-respond-trimmed".into(), name: "qualys-respond".into() };
    every_right_is_needed(&server, &for_trimmed(&rbac), &account, || tour(&server, &qualys));
}

#[test]
fn each_cluster_applies_only_its_own_findings() {
    let server = ApiServer::shared();
    let ns = server.namespace("fleet");
    let at = chrono::Utc::now().to_rfc3339();
    let findings = json!([
        {"uuid": "prod-1", "threatCategory": "Crypto_Mining", "namespace": ns, "clusterName": "prod", "timestamp": at},
        {"uuid": "staging-1", "threatCategory": "Reverse_Shell", "namespace": ns, "clusterName": "staging", "timestamp": at},
        {"uuid": "nameless-1", "threatCategory": "Container_Escape", "namespace": ns, "timestamp": at},
    ]);
    let (dir, file) = apiserver::temp_file("findings.json", &findings.to_string());
    let sync = |extra: &[&str]| {
        let mut command = as_identity(server, Identity::Responder, &["sync", "--apply", "--from-file"]);
        command.arg(&file).args(extra).env_remove("QUALYS_RESPOND_CLUSTER_NAME");
        command
    };
    let categories = || {
        let mut found: Vec<(String, String)> = server
            .list("tracingpoliciesnamespaced", Some(&ns))
            .iter()
            .map(|p| {
                (label(p, "qualys-respond.io/category").to_string(), label(p, "qualys-respond.io/cluster").to_string())
            })
            .collect();
        found.sort();
        found
    };

    sync(&[]).assert().code(1).stderr(
        predicate::str::contains("2 finding(s) name a cluster (prod, staging)")
            .and(predicate::str::contains("--cluster-name NAME"))
            .and(predicate::str::contains("nothing was written")),
    );
    assert!(categories().is_empty());

    sync(&["--cluster-name", "prod"])
        .assert()
        .success()
        .stderr(predicate::str::contains("findings of other clusters left out: no cluster named: 1, staging: 1"));
    assert_eq!(categories(), [("crypto_mining".to_string(), "prod".to_string())]);
    sync(&[]).env("QUALYS_RESPOND_CLUSTER_NAME", "staging").assert().success();
    assert_eq!(categories().len(), 2);
    assert!(categories().contains(&("reverse_shell".to_string(), "staging".to_string())));
    sync(&["--all-clusters"]).assert().success();
    assert_eq!(categories().len(), 3, "every cluster's findings, here");
    sync(&["--cluster-name", "prod/eu"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not usable as a label value"));

    // Without --apply, as before: every finding, no cluster asked for.
    let output =
        bin().args(["sync", "--from-file"]).arg(&file).env_remove("QUALYS_RESPOND_CLUSTER_NAME").output().unwrap();
    assert_eq!(apiserver::documents(&String::from_utf8_lossy(&output.stdout)).len(), 3, "{output:?}");

    let state = dir.path().join("state.json");
    let mut prod = bin();
    prod.args(["sync", "--from-file"]).arg(&file).args(["--cluster-name", "prod", "--state-file"]).arg(&state);
    prod.assert().success();
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(stored["cluster"], "prod");
    assert_eq!(
        stored["recentIds"],
        json!(["nameless-1", "prod-1", "staging-1"]),
        "the mark moves past what was left out"
    );
    let mut staging = bin();
    staging.args(["sync", "--from-file"]).arg(&file).args(["--cluster-name", "staging", "--state-file"]).arg(&state);
    staging.assert().code(1).stderr(predicate::str::contains("the checkpoint belongs to cluster prod"));
}

/// The manifests of `install --mode …`, as JSON documents.
fn install(args: &[&str]) -> Vec<Value> {
    let output = bin().arg("install").args(args).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    apiserver::documents(&String::from_utf8_lossy(&output.stdout))
}

/// Each document as the Kubernetes API's own type (k8s-openapi), so a
/// misspelt field or a wrong type fails here.
fn typed(document: &Value) -> Result<(), String> {
    use k8s_openapi::api;
    let value = document.clone();
    let parsed = match document["kind"].as_str().unwrap() {
        "Namespace" => serde_json::from_value::<api::core::v1::Namespace>(value).map(drop),
        "ServiceAccount" => serde_json::from_value::<api::core::v1::ServiceAccount>(value).map(drop),
        "Service" => serde_json::from_value::<api::core::v1::Service>(value).map(drop),
        "ClusterRole" => serde_json::from_value::<api::rbac::v1::ClusterRole>(value).map(drop),
        "ClusterRoleBinding" => serde_json::from_value::<api::rbac::v1::ClusterRoleBinding>(value).map(drop),
        "Role" => serde_json::from_value::<api::rbac::v1::Role>(value).map(drop),
        "RoleBinding" => serde_json::from_value::<api::rbac::v1::RoleBinding>(value).map(drop),
        "CronJob" => serde_json::from_value::<api::batch::v1::CronJob>(value).map(drop),
        "Deployment" => serde_json::from_value::<api::apps::v1::Deployment>(value).map(drop),
        "PodDisruptionBudget" => serde_json::from_value::<api::policy::v1::PodDisruptionBudget>(value).map(drop),
        "NetworkPolicy" => serde_json::from_value::<api::networking::v1::NetworkPolicy>(value).map(drop),
        // The Prometheus Operator's kind: no k8s-openapi type.
        "ServiceMonitor" => Ok(()),
        kind => return Err(format!("unexpected kind {kind}")),
    };
    parsed.map_err(|e| format!("{}: {e}", document["kind"]))
}

/// The pod templates of the workloads among `documents`.
fn pods(documents: &[Value]) -> Vec<(String, Value)> {
    documents
        .iter()
        .filter_map(|d| {
            let template = match d["kind"].as_str()? {
                "CronJob" => &d["spec"]["jobTemplate"]["spec"]["template"],
                "Deployment" => &d["spec"]["template"],
                _ => return None,
            };
            Some((d["metadata"]["name"].as_str()?.to_string(), template.clone()))
        })
        .collect()
}

#[test]
fn install_prints_typed_hardened_manifests_the_server_accepts() {
    let server = ApiServer::start(Crds::Tetragon("v1.7.0"));
    let documents = install(&[
        "--mode=cronjob,controller,webhook",
        "--namespace=qr-install",
        "--cluster-name=prod",
        "--network-policy",
        "--service-monitor",
        "--server-network-policy",
    ]);
    let kinds: Vec<&str> = documents.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    for kind in
        ["Namespace", "CronJob", "Deployment", "Service", "PodDisruptionBudget", "ServiceMonitor", "NetworkPolicy"]
    {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    assert!(!serde_json::to_string(&documents).unwrap().contains("password\":\""), "no credential values");
    for document in &documents {
        typed(document).unwrap();
        if document["kind"] != "ServiceMonitor" {
            server.apply(document, "kubectl").unwrap_or_else(|e| panic!("{}: {e:?}", document["kind"]));
        }
    }
    let cronjob = documents.iter().find(|d| d["kind"] == "CronJob").unwrap();
    assert_eq!(cronjob["spec"]["concurrencyPolicy"], "Forbid");
    let args = &cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"];
    assert_eq!(
        args.as_array().unwrap()[0..3],
        [json!("--once"), json!("--hours=24"), json!("--apply")],
        "the design's contract"
    );
    assert!(args.as_array().unwrap().contains(&json!("--cluster-name=prod")));
    let webhook =
        documents.iter().find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == "qualys-respond-webhook");
    let webhook = webhook.unwrap();
    assert_eq!(webhook["spec"]["replicas"], 2);
    let container = &webhook["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        (&container["livenessProbe"]["httpGet"]["path"], &container["readinessProbe"]["httpGet"]["path"]),
        (&json!("/health"), &json!("/readyz"))
    );
    for (name, pod) in pods(&documents) {
        let spec = &pod["spec"];
        assert_eq!(spec["securityContext"]["seccompProfile"]["type"], "RuntimeDefault", "{name}");
        assert!(spec["serviceAccountName"].as_str().unwrap().starts_with("qualys-respond-"), "{name}");
        for container in spec["containers"].as_array().unwrap() {
            let security = &container["securityContext"];
            assert_eq!(security["runAsNonRoot"], true, "{name}");
            assert_eq!(security["readOnlyRootFilesystem"], true, "{name}");
            assert_eq!(security["allowPrivilegeEscalation"], false, "{name}");
            assert_eq!(security["capabilities"]["drop"], json!(["ALL"]), "{name}");
            assert!(container["resources"]["requests"].is_object() && container["resources"]["limits"].is_object());
            for variable in container["env"].as_array().unwrap() {
                assert!(
                    variable.get("value").is_none() || variable["name"] == "QUALYS_RESPOND_CACHE_DIR",
                    "{variable}"
                );
            }
        }
    }
    let accounts: Vec<&Value> = documents.iter().filter(|d| d["kind"] == "ServiceAccount").collect();
    assert_eq!(accounts.len(), 3, "one service account per mode");
    assert!(accounts.iter().all(|a| a["automountServiceAccountToken"] == false));
}

/// The CronJob's RBAC is exactly what its command calls: the CronJob's own
/// arguments (with the fake gateway for the platform) run as its service
/// account with a token the server issued, and fail without any one right.
#[test]
fn install_rbac_of_the_cronjob_is_exactly_what_it_calls() {
    let server = ApiServer::start(Crds::Tetragon("v1.7.0"));
    let ns = "qr-cron";
    let documents = install(&["--mode=cronjob", &format!("--namespace={ns}"), "--cluster-name=prod"]);
    let (rbac, rest): (Vec<Value>, Vec<Value>) = documents.into_iter().partition(|d| {
        matches!(d["kind"].as_str(), Some("ClusterRole" | "ClusterRoleBinding" | "Role" | "RoleBinding"))
    });
    for document in rest.iter().filter(|d| d["kind"] != "CronJob") {
        server.apply(document, "kubectl").unwrap();
    }
    let cronjob = rest.iter().find(|d| d["kind"] == "CronJob").unwrap();
    let args: Vec<String> = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let qualys = FakeQualys::start("api-user", "tour");
    let retired_in = server.namespace("retired");
    let args: Vec<String> = args
        .into_iter()
        .map(|a| if a.starts_with("--platform=") { format!("--gateway={}", qualys.url) } else { a })
        .collect();
    let kubeconfig = server.service_account_kubeconfig(ns, "qualys-respond-cronjob");
    let retired = json!({"apiVersion": "cilium.io/v1alpha1", "kind": "TracingPolicyNamespaced",
        "metadata": {"name": "cdr-retired", "namespace": retired_in, "labels": {
            "app.kubernetes.io/managed-by": "kubectl-qualys-respond", "qualys-respond.io/source": "cdr",
            "qualys-respond.io/category": "retired_category"}},
        "spec": {"kprobes": [{"call": "security_bprm_check", "syscall": false, "args": [{"index": 0, "type": "linux_binprm"}],
            "selectors": [{"matchArgs": [{"index": 0, "operator": "Equal", "values": ["/usr/bin/xmrig"]}]}]}]}});
    let tour = || {
        // A fresh start each time: no checkpoint, a new finding, one policy to prune.
        server.delete(&format!("/api/v1/namespaces/{ns}/configmaps/qualys-respond-checkpoint"));
        let namespace = server.namespace("cron");
        qualys.set_findings(vec![json!({"uuid": namespace, "timestamp": chrono::Utc::now().to_rfc3339(),
            "threatCategory": "Crypto_Mining", "namespace": namespace, "clusterName": "prod"})]);
        server.apply(&retired, "kubectl-qualys-respond").map_err(|e| format!("{e:?}"))?;
        run_steps(&kubeconfig, &[args.iter().map(String::as_str).collect()])?;
        if server.get(&format!("/api/v1/namespaces/{ns}/configmaps/qualys-respond-checkpoint")).is_none() {
            return Err("no checkpoint was stored".to_string());
        }
        Ok(())
    };
    let account = Account { namespace: ns.into(), name: "qualys-respond-cronjob".into() };
    every_right_is_needed(&server, &rbac, &account, tour);
}

/// An answer's `error` as text (not JSON-escaped), or the whole answer.
fn said(body: &Value) -> String {
    body["error"].as_str().map_or_else(|| body.to_string(), str::to_string)
}

/// Waits up to `seconds` for `check`; `Err` with the server's log when it never holds.
fn within(
    server: &crate::server::Server,
    seconds: u64,
    what: &str,
    mut check: impl FnMut() -> bool,
) -> Result<(), String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while !check() {
        if std::time::Instant::now() > deadline {
            return Err(format!("{what} did not happen:\n{}", server.log()));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Ok(())
}

/// The webhook mode's RBAC is exactly what `serve` calls: the server runs
/// as its service account; a signed finding becomes a policy, the block API
/// blocks and unblocks, `/status` reads, and without any one right one of
/// them fails with the server's "forbidden" in the log.
#[test]
fn install_rbac_of_the_webhook_is_exactly_what_serve_calls() {
    use crate::server::{Server, Setup};
    let server = ApiServer::start(Crds::Tetragon("v1.7.0"));
    let ns = "qr-webhook";
    let documents = install(&["--mode=webhook", &format!("--namespace={ns}"), "--cluster-name=prod"]);
    let (rbac, rest): (Vec<Value>, Vec<Value>) = documents.into_iter().partition(|d| {
        matches!(d["kind"].as_str(), Some("ClusterRole" | "ClusterRoleBinding" | "Role" | "RoleBinding"))
    });
    for document in rest.iter().filter(|d| matches!(d["kind"].as_str(), Some("Namespace" | "ServiceAccount"))) {
        server.apply(document, "kubectl").unwrap();
    }
    let deployment = rest.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let args: Vec<String> = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        // The harness gives its own address, secret and token files.
        .filter(|a| !["serve", "--apply", "--log-format=json"].contains(&a.as_str()))
        .chain(["--lease-duration=2s".to_string()])
        .filter(|a| {
            !a.starts_with("--listen=")
                && !a.starts_with("--webhook-secret-file=")
                && !a.starts_with("--api-token-file=")
        })
        .collect();
    let kubeconfig = server.service_account_kubeconfig(ns, "qualys-respond-webhook");
    let lease = format!("/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/qualys-respond-webhook");
    let renewed = || server.get(&lease).map(|l| l["spec"]["renewTime"].clone());
    let tour = || {
        server.delete(&lease);
        let scene = server.namespace("tour");
        let serve =
            Server::start(Setup { kubeconfig: Some(kubeconfig.clone()), args: args.clone(), ..Setup::default() });
        within(&serve, 20, "readiness", || serve.get("/readyz", &[]).0 == 200)?;
        // It leads (the Lease is created and held) and renews.
        within(&serve, 10, "the lease", || renewed().is_some())?;
        let first = renewed();
        within(&serve, 10, "a renewal of the lease", || renewed() != first)?;
        let finding = json!({"uuid": format!("w-{scene}"), "threatCategory": "Crypto_Mining", "namespace": scene,
            "clusterName": "prod"});
        let (code, body) = serve.webhook(&finding);
        if code != 202 {
            return Err(format!("webhook {code} {}\n{}", said(&body), serve.log()));
        }
        let policies = || server.list("tracingpoliciesnamespaced", Some(&scene));
        within(&serve, 10, "the finding's policy", || {
            policies().iter().any(|p| p["metadata"]["name"] == "cdr-crypto-mining-pool-ports")
        })?;
        let block = json!({"type": "ip", "values": ["203.0.113.7"], "reason": "tour", "namespace": scene});
        let (code, body) = serve.api("/api/block", &block);
        if code != 200 {
            return Err(format!("block {code} {}\n{}", said(&body), serve.log()));
        }
        let unblock = json!({"type": "ip", "values": ["203.0.113.7"], "namespace": scene});
        let (code, body) = serve.api("/api/unblock", &unblock);
        if code != 200 {
            return Err(format!("unblock {code} {}\n{}", said(&body), serve.log()));
        }
        let (code, text) = serve.get("/status", &[("authorization", format!("Bearer {}", crate::server::TOKEN))]);
        if code != 200 {
            return Err(format!("status {code} {text}\n{}", serve.log()));
        }
        Ok(())
    };
    let account = Account { namespace: ns.into(), name: "qualys-respond-webhook".into() };
    every_right_is_needed(&server, &rbac, &account, tour);
}

/// The controller calls what the CronJob calls (the same sync, on a timer),
/// plus its Lease, whose rights are the webhook's (proved above): so its
/// rights are proved too.
#[test]
fn install_rbac_of_the_controller_is_the_cronjobs_and_a_lease() {
    let rules = |mode: &str, kind: &str| -> Vec<Value> {
        install(&[&format!("--mode={mode}"), "--cluster-name=prod"])
            .into_iter()
            .filter(|d| d["kind"] == kind)
            .flat_map(|d| d["rules"].as_array().cloned().unwrap_or_default())
            .collect()
    };
    assert_eq!(rules("controller", "ClusterRole"), rules("cronjob", "ClusterRole"));
    let lease = |rule: &Value| rule["resources"] == json!(["leases"]);
    let (leases, checkpoint): (Vec<Value>, Vec<Value>) = rules("controller", "Role").into_iter().partition(lease);
    assert_eq!(checkpoint, rules("cronjob", "Role"));
    let webhook: Vec<Value> = rules("webhook", "Role").into_iter().filter(lease).collect();
    let unnamed = |rules: Vec<Value>| -> Vec<Value> {
        rules
            .into_iter()
            .map(|mut rule| {
                rule.as_object_mut().unwrap().remove("resourceNames");
                rule
            })
            .collect()
    };
    assert_eq!(unnamed(leases), unnamed(webhook), "the same verbs, on the mode's own Lease");
    let both = install(&["--mode=controller,cronjob", "--cluster-name=prod"]);
    let deployment = both.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"].as_array().unwrap();
    assert_eq!(args[0..3], [json!("sync"), json!("--watch"), json!("--interval=1h")]);
    assert!(args.contains(&json!("--leader-elect")));
    assert_eq!(deployment["spec"]["replicas"], 2, "two replicas, one leader");

    bin().arg("install").assert().code(2).stderr(predicate::str::contains("--cluster-name"));
    let names = |documents: Vec<Value>, kind: &str| -> Vec<String> {
        let found = documents.iter().filter(|d| d["kind"] == kind);
        found.map(|d| d["metadata"]["name"].as_str().unwrap().to_string()).collect()
    };
    let elsewhere = install(&["--mode=cronjob", "--namespace=elsewhere", "--cluster-name=prod"]);
    assert_eq!(names(elsewhere, "ClusterRoleBinding"), ["elsewhere-cronjob"], "an install per namespace, apart");
    let listing = bin().arg("uninstall").output().unwrap();
    let listed = apiserver::documents(&String::from_utf8_lossy(&listing.stdout));
    let mut roles = names(listed, "ClusterRole");
    roles.sort();
    assert_eq!(roles, ["qualys-respond-controller", "qualys-respond-cronjob", "qualys-respond-webhook"]);
}

/// Two controller replicas as the controller's service account (the
/// install's RBAC): one leads and syncs, the other does nothing; when the
/// leader stops renewing (SIGSTOP) the other takes over within the lease
/// duration, and the old leader, resumed, stays a follower.
#[test]
fn leader_election_one_replica_syncs_and_the_other_takes_over() {
    use crate::server::terminate;
    let server = ApiServer::start(Crds::Tetragon("v1.7.0"));
    let ns = "qr-lead";
    for document in install(&["--mode=controller", &format!("--namespace={ns}"), "--cluster-name=prod"]) {
        if document["kind"] != "Deployment" {
            server.apply(&document, "kubectl").unwrap();
        }
    }
    let kubeconfig = server.service_account_kubeconfig(ns, "qualys-respond-controller");
    let target = server.namespace("lead");
    let finding = json!({"uuid": "l1", "timestamp": chrono::Utc::now().to_rfc3339(), "threatCategory": "Crypto_Mining",
        "namespace": target, "clusterName": "prod"});
    let logs = tempfile::tempdir().unwrap();
    let replica = |name: &str| {
        let qualys = FakeQualys::start("api-user", "lead");
        qualys.set_findings(vec![finding.clone()]);
        let log = std::fs::File::create(logs.path().join(name)).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-qualys_respond"))
            .args(["sync", "--watch", "--interval=500ms", "--hours=24", "--apply", "--cluster-name=prod"])
            .args(["--gateway", &qualys.url, "--kubeconfig"])
            .arg(&kubeconfig)
            .args(["--leader-elect", "--lease-name=qualys-respond-controller", "--lease-duration=2s"])
            .args(["--leader-identity", name])
            .env("QUALYS_USERNAME", "api-user")
            .env("QUALYS_PASSWORD", "lead")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        (child, qualys)
    };
    let (mut a, qualys_a) = replica("replica-a");
    let (mut b, qualys_b) = replica("replica-b");
    let lease_path = format!("/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/qualys-respond-controller");
    let holder = || server.get(&lease_path).and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string));
    let log = |name: &str| std::fs::read_to_string(logs.path().join(name)).unwrap_or_default();
    let wait = |what: &str, check: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !check() {
            assert!(std::time::Instant::now() < deadline, "{what}:\n{}\n{}", log("replica-a"), log("replica-b"));
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    wait("a leader", &|| holder().is_some());
    let first = holder().unwrap();
    let (leader_pid, leader_fake, follower_fake, follower) = if first == "replica-a" {
        (a.id(), &qualys_a, &qualys_b, "replica-b")
    } else {
        (b.id(), &qualys_b, &qualys_a, "replica-a")
    };
    wait("the leader syncing", &|| leader_fake.logins() >= 2);
    assert_eq!(follower_fake.logins(), 0, "the follower does no periodic work");
    let policy = format!("{}/cdr-crypto-mining-pool-ports", collection("tracingpoliciesnamespaced", Some(&target)));
    assert!(server.get(&policy).is_some(), "the leader applied the finding's policy");

    let signal = |name: &str| {
        let sent = std::process::Command::new("kill").args([name, &leader_pid.to_string()]).status().unwrap();
        assert!(sent.success());
    };
    signal("-STOP");
    wait("the follower taking over", &|| holder().as_deref() == Some(follower));
    wait("the new leader syncing", &|| follower_fake.logins() >= 1);
    signal("-CONT");
    std::thread::sleep(std::time::Duration::from_secs(2));
    let settled = leader_fake.logins();
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(leader_fake.logins(), settled, "the old leader, resumed, stays a follower:\n{}", log(&first));
    assert_eq!(holder().as_deref(), Some(follower));

    for child in [&mut a, &mut b] {
        terminate(child.id());
        assert!(child.wait().unwrap().success());
    }
    assert_eq!(holder(), None, "a clean stop gives the Lease up");
}

/// What `install` makes, `kubectl apply` creates and `uninstall` with
/// `kubectl delete` removes; `uninstall --policies` deletes our policies
/// (and nothing else) only once confirmed.
#[test]
fn uninstall_removes_what_install_made_and_with_policies_our_policies() {
    let server = ApiServer::start(Crds::Tetragon("v1.7.0"));
    let kubectl = |args: &[&str], input: &[u8]| {
        use std::io::Write;
        let home = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(server.kubeconfig(Identity::Admin))
            .args(args)
            .env("HOME", home.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl is installed (.ci/run installs it)");
        child.stdin.take().unwrap().write_all(input).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    };
    let modes = ["--mode=cronjob,webhook", "-n", "qr-un"];
    let manifests =
        bin().arg("install").args(["--mode=cronjob,webhook", "--namespace=qr-un", "--all-clusters"]).output().unwrap();
    kubectl(&["apply", "-f", "-"], &manifests.stdout);
    let role = "/apis/rbac.authorization.k8s.io/v1/clusterroles/qr-un-webhook";
    assert!(server.get(role).is_some());

    let scene = Scene::new(&server);
    scene.sync(&["--apply"]).assert().success();
    let foreign = json!({"apiVersion": "cilium.io/v1alpha1", "kind": "TracingPolicy",
        "metadata": {"name": "someone-elses"}, "spec": {}});
    server.apply(&foreign, "secops").unwrap();

    let listing = bin().arg("uninstall").args(modes).output().unwrap();
    assert!(listing.status.success());
    kubectl(&["delete", "--ignore-not-found", "--wait=false", "-f", "-"], &listing.stdout);
    assert!(server.get(role).is_none(), "uninstall's objects are deleted");
    assert_eq!(scene.policies().len(), 9, "without --policies, policies stay");

    let admin = server.kubeconfig(Identity::Admin);
    bin()
        .args(["uninstall", "--policies", "--kubeconfig"])
        .arg(&admin)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("pass --yes"));
    assert_eq!(scene.policies().len(), 9, "not confirmed: nothing deleted");
    let output = bin().args(["uninstall", "--policies", "--yes", "--kubeconfig"]).arg(&admin).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(lines(&output).iter().filter(|l| l.ends_with("deleted (uninstall)")).count(), 9, "{output:?}");
    assert!(scene.policies().is_empty());
    assert!(server.get(&format!("{}/someone-elses", collection("tracingpolicies", None))).is_some(), "not ours: kept");
}
