//! The CronJob form, `sync --once --hours=24 --apply`, against both fakes:
//! the checkpoint lives in the cluster, so consecutive pods neither miss nor
//! repeat a finding, and it only advances once the policies were applied.

use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};

use super::fake_kube::FakeKube;
use super::fake_qualys::FakeQualys;
use super::support::bin;

const USER: &str = "api-user";
const PASSWORD: &str = "cr0njob-pa55";

fn finding(id: &str, category: &str, minutes_ago: i64) -> Value {
    let at = Utc::now() - chrono::Duration::minutes(minutes_ago);
    json!({"uuid": id, "timestamp": at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "threatCategory": category, "namespace": "payments", "destinationIp": "203.0.113.9"})
}

fn cronjob(qualys: &FakeQualys, kube: &FakeKube) -> assert_cmd::Command {
    let mut command = bin();
    command
        .args(["sync", "--gateway", &qualys.url, "--retry-delay", "10ms", "--once", "--hours=24", "--apply"])
        .args(["-n", "qualys-respond", "--kubeconfig"])
        .arg(kube.kubeconfig())
        .env("QUALYS_USERNAME", USER)
        .env("QUALYS_PASSWORD", PASSWORD)
        .env("NO_PROXY", "127.0.0.1,localhost");
    command
}

fn checkpoint(kube: &FakeKube) -> Option<Value> {
    let map = kube.get("configmaps", Some("qualys-respond"), "qualys-respond-checkpoint")?;
    serde_json::from_str(map["data"]["checkpoint.json"].as_str()?).ok()
}

#[test]
fn scheduled_runs_keep_their_checkpoint_in_the_cluster() {
    let qualys = FakeQualys::start(USER, PASSWORD);
    let kube = FakeKube::start();
    qualys.set_findings(vec![finding("a", "Crypto_Mining", 50), finding("b", "Reverse_Shell", 40)]);

    let first = cronjob(&qualys, &kube).assert().success().get_output().clone();
    assert!(String::from_utf8_lossy(&first.stdout).contains("created"));
    let mark = checkpoint(&kube).expect("the checkpoint is stored in the cluster");
    assert_eq!(mark["recentIds"], json!(["a", "b"]));

    let second = cronjob(&qualys, &kube).assert().success().get_output().clone();
    assert_eq!(String::from_utf8_lossy(&second.stdout), "", "nothing new to apply");
    assert!(String::from_utf8_lossy(&second.stderr).contains("already handled by an earlier run: 2"));

    qualys.set_findings(vec![
        finding("a", "Crypto_Mining", 50),
        finding("b", "Reverse_Shell", 40),
        finding("c", "Container_Escape", 1),
    ]);
    kube.fail_writes_after(0);
    cronjob(&qualys, &kube).assert().code(1);
    assert_eq!(checkpoint(&kube).as_ref(), Some(&mark), "a failed apply leaves the mark where it was");

    kube.fail_writes_after(usize::MAX);
    let fourth = cronjob(&qualys, &kube).assert().success().get_output().clone();
    let stdout = String::from_utf8_lossy(&fourth.stdout);
    assert_eq!(stdout, "tracingpolicynamespaced.cilium.io/cdr-container-escape-namespace-escape -n payments created\n");
    let moved = checkpoint(&kube).unwrap();
    assert_eq!(moved["recentIds"], json!(["c"]), "a and b lie before the overlap of the new mark");
    assert!(moved["mark"].as_str() > mark["mark"].as_str());
}
