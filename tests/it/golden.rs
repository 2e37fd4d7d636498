//! One golden file per category: findings in (`tests/data/golden/*.json`),
//! the exact YAML out (`*.yaml`). Run with `BLESS=1` to rewrite the expected
//! files after an intended change, and review the diff.

use super::support::{bin, data};

fn check(name: &str) {
    let input = data(&format!("golden/{name}.json"));
    let expected_path = data(&format!("golden/{name}.yaml"));
    let out = bin().args(["sync", "--from-file"]).arg(&input).assert().success();
    let actual = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&expected_path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&expected_path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with BLESS=1 to create it)", expected_path.display()));
    assert_eq!(actual, expected, "{name}: output differs from {}", expected_path.display());
}

#[test]
fn cloud_credentials() {
    check("cloud-credentials");
}

#[test]
fn network_scanning() {
    check("network-scanning");
}

#[test]
fn container_escape() {
    check("container-escape");
}

#[test]
fn privilege_escalation() {
    check("privilege-escalation");
}

#[test]
fn crypto_mining() {
    check("crypto-mining");
}

#[test]
fn reverse_shell() {
    check("reverse-shell");
}
