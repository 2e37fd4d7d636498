//! The manifests in `deploy/`: the CronJob's arguments are ones the binary
//! takes. (That `rbac.yaml` grants every call and nothing more is proved
//! against a real API server: `real_cluster::rbac_*`.)

use serde::Deserialize;
use serde_json::Value;

use crate::apiserver::{ApiServer, Identity};
use crate::support::{bin, root};

fn documents(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(root().join("deploy").join(file)).unwrap();
    serde_yaml::Deserializer::from_str(&text).map(|d| Value::deserialize(d).unwrap()).collect()
}

#[test]
fn the_cronjob_arguments_are_accepted() {
    let cronjob = documents("cronjob.yaml").remove(0);
    let container = &cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert_eq!(&args[..3], ["--once", "--hours=24", "--apply"], "the design's contract");
    // Parsed as sync flags; the run then stops on the missing mounted Secret, not on usage.
    bin()
        .args(&args)
        .arg("--kubeconfig")
        .arg(ApiServer::shared().kubeconfig(Identity::Responder))
        .assert()
        .code(1)
        .stderr(predicates::str::contains("/secrets/username"));
}
