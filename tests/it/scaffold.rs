//! `plugin new` and `plugin test`: a scaffolded crate builds as generated
//! into a component whose output matches the golden file it ships with, a
//! changed golden file is a failure with a diff, and a component that traps
//! or makes an invalid policy is reported with exit 3.

use std::path::Path;
use std::process::Command as StdCommand;

use predicates::prelude::*;
use serde_json::json;

use super::support::{bin, component, root};

/// Builds the crate in `dir` for `wasm32-wasip2` (needs crates.io) and
/// returns the component. The target directory under `target/` is kept
/// between runs, so only the first one compiles wit-bindgen.
fn build(dir: &Path, package: &str) -> std::path::PathBuf {
    let target_dir = root().join("target/scaffold-build");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = StdCommand::new(cargo)
        .current_dir(dir)
        .args(["build", "--quiet", "--target", "wasm32-wasip2", "--release"])
        .env("CARGO_TARGET_DIR", &target_dir)
        .output()
        .expect("cargo runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the scaffold does not build:\n{stderr}");
    assert!(!stderr.contains("warning"), "the scaffold builds with warnings:\n{stderr}");
    target_dir.join("wasm32-wasip2/release").join(format!("{}.wasm", package.replace('-', "_")))
}

#[test]
fn a_new_crate_builds_and_passes_its_own_golden_test() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("scaffold-demo");
    bin()
        .args(["plugin", "new", "scaffold-demo", "--dir"])
        .arg(&dir)
        .assert()
        .success()
        .stderr(predicate::str::contains("created mapper crate scaffold-demo"));
    let wit = std::fs::read_to_string(dir.join("wit/mapper.wit")).unwrap();
    assert_eq!(wit, std::fs::read_to_string(root().join("wit/mapper.wit")).unwrap(), "the WIT copy drifted");
    let wasm = build(&dir, "scaffold-demo");

    let test = |extra: &[&str]| {
        let mut command = bin();
        command.current_dir(&dir).args(["plugin", "test"]).arg(&wasm).args(["--finding", "samples/finding.json"]);
        command.args(extra);
        command
    };
    test(&["--expect", "samples/expected.yaml"])
        .assert()
        .code(0)
        .stdout("")
        .stderr(predicate::str::contains("component scaffold-demo@0.1.0 (sha256 "))
        .stderr(predicate::str::contains("output matches samples/expected.yaml"));
    let expected = std::fs::read_to_string(dir.join("samples/expected.yaml")).unwrap();
    assert!(expected.contains("qualys-respond.io/mapper: scaffold-demo@0.1.0"), "{expected}");
    test(&[]).assert().code(0).stdout(expected.clone());

    // A setting reaches configure: the extra port changes the output.
    test(&["--expect", "samples/expected.yaml", "--setting", "ports=5555"])
        .assert()
        .code(3)
        .stdout(predicate::str::contains("+    qualys-respond.io/indicators: port:4444,port:5555"))
        .stderr(predicate::str::contains("output differs from samples/expected.yaml"));
    test(&["--setting", "colour=blue"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(r#"configure refused: unknown setting "colour""#));

    // A changed expectation is a failure, with the diff on stdout.
    std::fs::write(dir.join("samples/expected.yaml"), expected.replace("'4444'", "'4445'")).unwrap();
    test(&["--expect", "samples/expected.yaml"])
        .assert()
        .code(3)
        .stdout(predicate::str::contains("--- samples/expected.yaml\n+++ actual\n"))
        .stdout(predicate::str::contains("-        - '4445'\n+        - '4444'\n"))
        .stderr(predicate::str::contains("output differs from samples/expected.yaml"));

    // The same mapper, claiming a default category, loaded by sync --plugins, overrides it.
    let source = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
    assert!(source.contains("\"Example_Category\""));
    std::fs::write(dir.join("src/lib.rs"), source.replace("\"Example_Category\"", "\"Crypto_Mining\"")).unwrap();
    let wasm = build(&dir, "scaffold-demo");
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(&wasm, plugins.join("scaffold-demo.wasm")).unwrap();
    let findings = tmp.path().join("findings.json");
    let input = json!([
        {"uuid": "m-1", "threatCategory": "Crypto_Mining", "namespace": "batch", "destinationPort": 4444},
        {"uuid": "e-1", "threatCategory": "Container_Escape", "namespace": "ci"}
    ]);
    std::fs::write(&findings, input.to_string()).unwrap();
    let output = bin()
        .args(["sync", "--no-config", "-o", "json", "--plugins"])
        .arg(&plugins)
        .arg("--from-file")
        .arg(&findings)
        .assert()
        .success()
        .get_output()
        .clone();
    let list: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let made: Vec<(&str, &str)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let mapper = o["metadata"]["annotations"]["qualys-respond.io/mapper"].as_str().unwrap();
            (o["metadata"]["name"].as_str().unwrap(), mapper)
        })
        .collect();
    assert_eq!(
        made,
        [
            ("cdr-crypto-mining-egress-port", "scaffold-demo@0.1.0"),
            ("cdr-container-escape-namespace-escape", "default@0.1.0")
        ],
        "the custom mapper replaced the default's crypto-mining policies and nothing else"
    );
}

#[test]
fn new_refuses_an_occupied_directory_and_a_bad_name() {
    let tmp = tempfile::tempdir().unwrap();
    bin().current_dir(tmp.path()).args(["plugin", "new", "first"]).assert().success();
    assert!(tmp.path().join("first/src/lib.rs").is_file(), "the default directory is ./NAME");
    let lib = std::fs::read_to_string(tmp.path().join("first/src/lib.rs")).unwrap();

    std::fs::write(tmp.path().join("first/src/lib.rs"), "// mine").unwrap();
    bin()
        .current_dir(tmp.path())
        .args(["plugin", "new", "first"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("already exists and is not empty"));
    assert_eq!(std::fs::read_to_string(tmp.path().join("first/src/lib.rs")).unwrap(), "// mine");

    std::fs::create_dir(tmp.path().join("empty")).unwrap();
    bin().current_dir(tmp.path()).args(["plugin", "new", "second", "--dir", "empty"]).assert().success();
    assert_eq!(std::fs::read_to_string(tmp.path().join("empty/src/lib.rs")).unwrap(), lib.replace("first", "second"));

    for bad in ["Upper", "under_score", "9lives", "trailing-", "fn"] {
        bin()
            .current_dir(tmp.path())
            .args(["plugin", "new", bad])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("invalid value"));
        assert!(!tmp.path().join(bad).exists(), "{bad}");
    }
}

#[test]
fn test_reports_a_trap_and_an_invalid_policy_and_keeps_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let findings = tmp.path().join("findings.json");
    let records = json!([
        {"uuid": "t-1", "threatCategory": "Trap"},
        {"uuid": "u-1", "threatCategory": "Unscoped"},
        {"uuid": "b-1", "threatCategory": "Benign"},
    ]);
    std::fs::write(&findings, records.to_string()).unwrap();
    bin()
        .args(["plugin", "test"])
        .arg(component("hostile-mapper"))
        .arg("--finding")
        .arg(&findings)
        .assert()
        .code(3)
        .stdout(predicate::str::contains("name: cdr-benign-benign"))
        .stdout(predicate::str::contains("unscoped").not())
        .stderr(predicate::str::contains("finding t-1 (Trap): mapper hostile@0.1.0 panicked at "))
        .stderr(predicate::str::contains("finding u-1 (Unscoped): policy TracingPolicy/cdr-unscoped-kill-every-exec"))
        .stderr(predicate::str::contains("[safety/unfiltered]"));
}

#[test]
fn test_fails_on_a_file_that_is_not_a_component() {
    let tmp = tempfile::tempdir().unwrap();
    let bogus = tmp.path().join("bogus.wasm");
    std::fs::write(&bogus, b"\0asm not really").unwrap();
    bin()
        .args(["plugin", "test"])
        .arg(&bogus)
        .args(["--finding", "samples/findings.json"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains("cannot compile component"));
    bin()
        .args(["plugin", "test"])
        .arg(tmp.path().join("missing.wasm"))
        .args(["--finding", "samples/findings.json"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cannot read component"));
}
