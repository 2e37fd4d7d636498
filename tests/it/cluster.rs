//! What a real API server cannot be made to do on demand: fail half-way
//! through a run. Against the Kubernetes API fake, which can (every other
//! cluster test runs against a real server, in `real_cluster`), and the
//! fake clusters the other areas' tests (`serve`, `blast`) start from.

use serde_json::{Value, json};

use crate::fake_kube::FakeKube;
use crate::support::bin;

const SAMPLE: &str = "samples/findings.json";

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

pub fn annotation<'a>(object: &'a Value, key: &str) -> &'a str {
    object["metadata"]["annotations"][key].as_str().unwrap_or_default()
}

#[test]
fn an_api_error_halfway_reports_what_was_and_was_not_applied() {
    let fake = cluster();
    fake.fail_writes_after(3);
    let output = bin()
        .args(["sync", "--from-file", SAMPLE, "--apply", "--kubeconfig"])
        .arg(fake.kubeconfig())
        .assert()
        .code(1)
        .get_output()
        .clone();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.matches(" created").count(), 3, "{stdout}");
    assert!(stdout.contains("FAILED"), "{stdout}");
    assert!(stdout.contains("stopped: 3 object(s) were applied before the failure"), "{stdout}");
    let not_applied = stdout.lines().find(|l| l.contains("not applied:")).unwrap();
    assert_eq!(not_applied.matches(", ").count(), 4, "five objects were never sent: {not_applied}");
    assert_eq!(policies(&fake).len(), 3);
    assert!(String::from_utf8_lossy(&output.stderr).contains("was not applied"));
}
