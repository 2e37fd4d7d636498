//! `sync --from-file`: every input form, every output form, skips and exit
//! codes; and the shell completion scripts.

use predicates::prelude::*;
use serde_json::{Value, json};

use super::support::{bin, finding};

fn policies_of(stdout: &[u8]) -> Vec<Value> {
    let list: Value = serde_json::from_slice(stdout).expect("-o json prints JSON");
    assert_eq!(list["kind"], "List");
    list["items"].as_array().unwrap().clone()
}

fn names(stdout: &[u8]) -> Vec<String> {
    policies_of(stdout).iter().map(|p| p["metadata"]["name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn the_sample_file_gives_policies_for_every_known_category() {
    let out = bin().args(["sync", "--from-file", "samples/findings.json", "-o", "json"]).assert().success();
    let output = out.get_output();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("findings read: 8"), "{stderr}");
    assert!(stderr.contains("Suspicious_Kernel_Module_Load): unknown category, no policy"), "{stderr}");
    let techniques: std::collections::BTreeSet<String> = policies_of(&output.stdout)
        .iter()
        .map(|p| p["metadata"]["labels"]["mitre.attack/technique"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        techniques.into_iter().collect::<Vec<_>>(),
        ["T1046", "T1059.004", "T1496", "T1548", "T1552.005", "T1611"]
    );
}

#[test]
fn every_input_form_gives_the_same_policies() {
    let findings = vec![
        json!({"uuid": "a", "threatCategory": "Crypto_Mining", "namespace": "batch", "destinationPort": 3334}),
        json!({"uuid": "b", "threatCategory": "reverse_shell", "destinationIp": "203.0.113.5"}),
    ];
    let envelope = json!({"content": findings, "totalElements": 2}).to_string();
    let array = Value::Array(findings.clone()).to_string();
    let lines: String = findings.iter().map(|f| format!("{f}\n")).collect();
    let dir = tempfile::tempdir().unwrap();
    let mut outputs = Vec::new();
    for (name, text) in [("envelope.json", &envelope), ("array.json", &array), ("lines.jsonl", &lines)] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let out = bin().args(["sync", "-o", "json", "--from-file"]).arg(&path).assert().success();
        outputs.push(out.get_output().stdout.clone());
    }
    let out = bin().args(["sync", "-o", "json", "--from-file", "-"]).write_stdin(lines.clone()).assert().success();
    outputs.push(out.get_output().stdout.clone());
    assert!(outputs.windows(2).all(|w| w[0] == w[1]), "the forms disagree");
    assert_eq!(
        names(&outputs[0]),
        ["cdr-reverse-shell-peer-addresses", "cdr-crypto-mining-pool-ports"],
        "a reverse shell without a namespace blocks its peer only: cluster-wide, shell-egress would stop every shell"
    );
}

#[test]
fn yaml_is_the_default_output_and_is_a_document_stream() {
    let out = bin().args(["sync", "--from-file", "samples/findings.json"]).assert().success();
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let documents: Vec<serde_yaml::Value> =
        serde_yaml::Deserializer::from_str(&stdout).map(|d| serde::Deserialize::deserialize(d).unwrap()).collect();
    assert_eq!(documents.len(), 9);
    assert!(documents.iter().all(|d| d["apiVersion"] == "cilium.io/v1alpha1"));
}

#[test]
fn output_dir_writes_one_file_per_object() {
    let dir = tempfile::tempdir().unwrap();
    let out =
        bin().args(["sync", "--from-file", "samples/findings.json", "--output-dir"]).arg(dir.path()).assert().success();
    assert!(out.get_output().stdout.is_empty(), "nothing on stdout with --output-dir");
    let listed = bin().args(["sync", "--from-file", "samples/findings.json", "-o", "json"]).assert().success();
    for policy in policies_of(&listed.get_output().stdout) {
        let name = policy["metadata"]["name"].as_str().unwrap();
        let path = match policy["metadata"]["namespace"].as_str() {
            Some(ns) => dir.path().join(ns).join(format!("{name}.yaml")),
            None => dir.path().join(format!("{name}.yaml")),
        };
        let written: Value = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(written, policy, "{}", path.display());
    }
}

#[test]
fn an_unknown_category_is_reported_but_is_not_an_error() {
    let input = json!([finding("u-1", "Totally_New_Category")]).to_string();
    bin()
        .args(["sync", "--from-file", "-"])
        .write_stdin(input)
        .assert()
        .code(0)
        .stdout("")
        .stderr(predicate::str::contains("finding u-1 (Totally_New_Category): unknown category, no policy"));
}

#[test]
fn malformed_records_are_reported_with_their_position_and_the_rest_still_maps() {
    let input = "{\"uuid\":\"ok-1\",\"threatCategory\":\"Container_Escape\"}\n{not json\n{\"uuid\":\"x\"}\n{\"uuid\":\"bad-ip\",\"threatCategory\":\"Crypto_Mining\",\"destinationIp\":\"172.2\"}\n";
    let out = bin().args(["sync", "-o", "json", "--from-file", "-"]).write_stdin(input).assert().code(3);
    let output = out.get_output();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("line 2: malformed: not valid JSON"), "{stderr}");
    assert!(stderr.contains("line 3: malformed: missing `threatCategory`"), "{stderr}");
    assert!(stderr.contains("line 4: malformed: `destinationIp` \"172.2\" is not an IP address"), "{stderr}");
    assert_eq!(names(&output.stdout), ["cdr-container-escape-namespace-escape"]);
}

#[test]
fn a_broken_document_or_missing_file_is_an_error_and_writes_nothing() {
    bin()
        .args(["sync", "--from-file", "-"])
        .write_stdin("[{\"uuid\": ")
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains("error: cannot read findings from -: not valid JSON"));
    bin()
        .args(["sync", "--from-file", "does/not/exist.json"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cannot read findings from does/not/exist.json"));
}

#[test]
fn usage_errors_exit_2_and_a_missing_source_is_explained() {
    bin()
        .args(["sync"])
        .env_remove("QUALYS_GATEWAY_URL")
        .env_remove("QUALYS_PLATFORM")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no source of findings: pass --from-file"));
    bin().args(["sync", "--from-file", "x", "--action", "Kill"]).assert().code(2);
}

#[test]
fn action_sigkill_enforces_and_post_audits() {
    let input = json!([finding("e-1", "Privilege_Escalation")]).to_string();
    let actions = |mode: &str| {
        let out = bin()
            .args(["sync", "-o", "json", "--from-file", "-", "--action", mode])
            .write_stdin(input.clone())
            .assert()
            .success();
        let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
        (text.contains("\"Sigkill\""), text.contains("\"Post\""), text.contains("\"enforce\""))
    };
    assert_eq!(actions("Post"), (false, true, false));
    assert_eq!(actions("Sigkill"), (true, false, true));
}

#[test]
fn help_teaches_the_exit_codes_and_examples() {
    bin()
        .args(["sync", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("kubectl qualys-respond sync --from-file findings.json"));
    bin().arg("--help").assert().success().stdout(predicate::str::contains("Exit codes"));
}

#[test]
fn the_design_cronjob_flags_work_without_the_sync_word() {
    let with =
        bin().args(["sync", "--from-file", "samples/findings.json"]).assert().success().get_output().stdout.clone();
    bin().args(["--from-file", "samples/findings.json", "--once", "--hours=24"]).assert().success().stdout(with);
}

#[test]
fn completion_scripts_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let output = bin().args(["completion", shell]).output().unwrap();
        assert!(output.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&output.stdout);
        for word in ["sync", "install", "--cluster-name", "--apply"] {
            assert!(script.contains(word), "{shell} completes {word}");
        }
        if shell == "bash" {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("completion.bash");
            std::fs::write(&file, script.as_bytes()).unwrap();
            let checked = std::process::Command::new("bash").arg("-n").arg(&file).status().unwrap();
            assert!(checked.success(), "bash -n accepts the script");
        }
    }
    bin().args(["completion", "powershell"]).assert().code(2);
}
