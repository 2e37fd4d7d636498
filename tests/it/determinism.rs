//! The same findings, in any order, give byte-identical output.

use serde_json::Value;

use super::support::{bin, root};

/// A small deterministic shuffle (no RNG crate needed): a fixed LCG.
fn shuffled(mut items: Vec<Value>, seed: u64) -> Vec<Value> {
    let mut state = seed;
    for i in (1..items.len()).rev() {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        items.swap(i, (state >> 33) as usize % (i + 1));
    }
    items
}

pub fn sample_findings() -> Vec<Value> {
    let text = std::fs::read_to_string(root().join("samples/findings.json")).unwrap();
    let mut findings: Vec<Value> = serde_json::from_str::<Value>(&text).unwrap()["content"].as_array().unwrap().clone();
    for golden in ["cloud-credentials", "network-scanning", "crypto-mining", "reverse-shell"] {
        let text = std::fs::read_to_string(root().join(format!("tests/data/golden/{golden}.json"))).unwrap();
        findings.extend(serde_json::from_str::<Vec<Value>>(&text).unwrap());
    }
    findings
}

#[test]
fn shuffled_input_gives_byte_identical_output() {
    let findings = sample_findings();
    let run = |input: Vec<Value>| {
        let out =
            bin().args(["sync", "--from-file", "-"]).write_stdin(Value::Array(input).to_string()).assert().success();
        out.get_output().stdout.clone()
    };
    let reference = run(findings.clone());
    assert!(!reference.is_empty());
    for seed in [1, 7, 42] {
        let order = shuffled(findings.clone(), seed);
        assert_ne!(order, findings, "seed {seed} did not shuffle");
        assert!(run(order) == reference, "seed {seed} changed the output");
    }
}

#[test]
fn shuffled_input_writes_identical_files() {
    let findings = sample_findings();
    let write = |input: Vec<Value>| {
        let dir = tempfile::tempdir().unwrap();
        bin()
            .args(["sync", "--from-file", "-", "--output-dir"])
            .arg(dir.path())
            .write_stdin(Value::Array(input).to_string())
            .assert()
            .success();
        let mut files = Vec::new();
        for entry in walk(dir.path()) {
            let relative = entry.strip_prefix(dir.path()).unwrap().to_path_buf();
            files.push((relative, std::fs::read(&entry).unwrap()));
        }
        files.sort();
        files
    };
    assert_eq!(write(findings.clone()), write(shuffled(findings, 3)));
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { out.extend(walk(&path)) } else { out.push(path) }
    }
    out
}
