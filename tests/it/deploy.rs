//! The manifests in `deploy/`: the CronJob's arguments are ones the binary
//! takes, and the RBAC rules grant every call the binary makes.

use serde::Deserialize;
use serde_json::Value;

use crate::fake_kube::FakeKube;
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
    let kube = FakeKube::start();
    bin()
        .args(&args)
        .arg("--kubeconfig")
        .arg(kube.kubeconfig())
        .assert()
        .code(1)
        .stderr(predicates::str::contains("/secrets/username"));
}

#[test]
fn the_cluster_role_grants_every_call_we_make() {
    let granted: Vec<(String, String, String)> = documents("rbac.yaml")
        .iter()
        .filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "Role")
        .flat_map(|d| d["rules"].as_array().unwrap().clone())
        .flat_map(|rule| {
            let list = |key: &str| -> Vec<String> {
                rule[key].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
            };
            let (groups, resources, verbs) = (list("apiGroups"), list("resources"), list("verbs"));
            let mut out = Vec::new();
            for g in &groups {
                for r in &resources {
                    for v in &verbs {
                        out.push((g.clone(), r.clone(), v.clone()));
                    }
                }
            }
            out
        })
        .collect();
    let needed = [
        ("cilium.io", "tracingpolicies", ["list", "get", "patch", "delete"].as_slice()),
        ("cilium.io", "tracingpoliciesnamespaced", &["list", "get", "patch", "delete"]),
        ("networking.k8s.io", "networkpolicies", &["list", "patch", "delete"]),
        ("networking.k8s.io", "servicecidrs", &["list"]),
        ("", "configmaps", &["get", "patch"]),
        ("", "nodes", &["list"]),
        ("", "namespaces", &["get"]),
        ("", "services", &["get"]),
        ("", "endpoints", &["get"]),
        ("authentication.k8s.io", "selfsubjectreviews", &["create"]),
    ];
    for (group, resource, verbs) in needed {
        for verb in verbs {
            let triple = (group.to_string(), resource.to_string(), verb.to_string());
            assert!(granted.contains(&triple), "deploy/rbac.yaml does not grant {verb} on {group}/{resource}");
        }
    }
}
