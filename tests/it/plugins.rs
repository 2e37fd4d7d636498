//! Custom mappers: loading with --plugin, --plugins and a pinned
//! configuration, precedence over the defaults, duplicate claims, settings,
//! `plugin list`, and the WIT version check.

use std::path::Path;

use predicates::prelude::*;
use serde_json::{Value, json};

use crate::support::{bin, component};

fn sha256(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(std::fs::read(path).unwrap()).iter().map(|b| format!("{b:02x}")).collect()
}

fn findings(dir: &Path, items: Value) -> std::path::PathBuf {
    let path = dir.join("findings.json");
    std::fs::write(&path, items.to_string()).unwrap();
    path
}

fn config(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The settings mapper copied into `dir` and a configuration pinning it
/// (to `pin`, or to its real digest) with `extra` YAML lines for its entry.
fn pinned(dir: &Path, pin: Option<&str>, extra: &str) -> std::path::PathBuf {
    let settings = component("settings-mapper");
    std::fs::copy(settings, dir.join("settings.wasm")).unwrap();
    let pin = pin.map_or_else(|| sha256(settings), str::to_string);
    config(dir, &format!("plugins:\n  - path: settings.wasm\n    sha256: {pin}\n{extra}"))
}

fn list(args: &[&str], extra: &[&Path]) -> Value {
    let mut command = bin();
    command.args(["plugin", "list", "--no-config", "-o", "json"]).args(args);
    for path in extra {
        command.arg(path);
    }
    serde_json::from_slice(&command.assert().success().get_output().stdout).unwrap()
}

#[test]
fn plugin_list_shows_every_component_and_what_it_serves() {
    let embedded = list(&[], &[]);
    assert_eq!(embedded.as_array().unwrap().len(), 1);
    assert_eq!(embedded[0]["source"], "embedded");
    assert_eq!(embedded[0]["witVersion"], "0.1.2");
    assert_eq!(
        embedded[0]["reads"],
        json!(["category", "namespace", "process", "destination-ip", "destination-port"]),
        "the default mapper is a selective mapper"
    );
    assert_eq!(
        embedded[0]["readsByCategory"]["container_escape"],
        json!(["category", "namespace"]),
        "and a category-selective one"
    );
    assert_eq!(
        embedded[0]["readsByCategory"]["crypto_mining"],
        json!(["category", "namespace", "destination-ip", "destination-port"])
    );
    assert_eq!(embedded[0]["readsByCategory"].as_object().unwrap().len(), 6);
    let settings = component("settings-mapper");
    let both = list(&["--plugin"], &[settings]);
    assert_eq!(both[1]["name"], "settings");
    assert_eq!(both[1]["version"], "1.2.3");
    assert_eq!(both[1]["categories"], json!(["settings_probe"]));
    assert_eq!(both[1]["sha256"], sha256(settings));
    assert!(both[1].get("readsByCategory").is_none(), "a plain mapper reads every field of every category");
    assert_eq!(both[1]["source"], settings.display().to_string());
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(settings, dir.path().join("a.wasm")).unwrap();
    let from_dir = list(&["--plugins"], &[dir.path()]);
    assert_eq!(from_dir[1]["name"], "settings");
    bin().args(["plugin", "list", "--no-config"]).assert().success().stdout(predicate::str::contains("embedded"));
}

#[test]
fn a_pinned_component_overrides_a_default_category_with_its_settings() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "    categories: [Crypto_*]\n    settings: {ports: \"3333,5555\", team: secops}\n";
    let config = pinned(dir.path(), None, extra);
    let input = findings(
        dir.path(),
        json!([{"uuid": "m1", "threatCategory": "Crypto_Mining", "namespace": "batch"},
               {"uuid": "e1", "threatCategory": "Container_Escape", "namespace": "ci"}]),
    );
    let output = bin()
        .args(["sync", "-o", "json", "--config"])
        .arg(&config)
        .arg("--from-file")
        .arg(&input)
        .assert()
        .success()
        .get_output()
        .clone();
    let list: Value = serde_json::from_slice(&output.stdout).unwrap();
    let names: Vec<&str> =
        list["items"].as_array().unwrap().iter().map(|o| o["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["cdr-crypto-mining-configured-ports", "cdr-container-escape-namespace-escape"]);
    let mining = &list["items"][0];
    assert_eq!(mining["metadata"]["annotations"]["qualys-respond.io/mapper"], "settings@1.2.3");
    assert_eq!(
        mining["metadata"]["annotations"]["qualys-respond.io/indicators"],
        "setting:ports=3333;5555,setting:team=secops"
    );
    assert_eq!(mining["spec"]["kprobes"][0]["selectors"][0]["matchArgs"][0]["values"], json!(["3333", "5555"]));
    let listed = list_with_config(&config);
    assert_eq!(
        listed[0]["categories"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c.as_str().unwrap().starts_with("crypto"))
            .count(),
        0,
        "the default lost crypto_mining"
    );
    assert_eq!(listed[1]["categories"], json!(["crypto_*"]));
}

fn list_with_config(config: &Path) -> Value {
    let output =
        bin().args(["plugin", "list", "-o", "json", "--config"]).arg(config).assert().success().get_output().clone();
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn a_pin_that_does_not_match_is_refused_with_both_digests() {
    let dir = tempfile::tempdir().unwrap();
    let settings = component("settings-mapper");
    let wrong = "0".repeat(64);
    let config = pinned(dir.path(), Some(&wrong), "");
    bin()
        .args(["plugin", "list", "--config"])
        .arg(&config)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!("pins sha256 {wrong}")))
        .stderr(predicate::str::contains(format!("the file has sha256 {}", sha256(settings))));
}

#[test]
fn a_category_claimed_twice_is_an_error_naming_both() {
    let settings = component("settings-mapper");
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("again.wasm");
    std::fs::copy(settings, &copy).unwrap();
    bin()
        .args(["plugin", "list", "--no-config", "--plugin"])
        .arg(settings)
        .arg("--plugin")
        .arg(&copy)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("category Settings_Probe is claimed by both settings@1.2.3"))
        .stderr(predicate::str::contains("again.wasm"));
}

#[test]
fn settings_reach_configure_and_a_refusal_stops_the_load() {
    let dir = tempfile::tempdir().unwrap();
    let config = pinned(dir.path(), None, "    settings: {refuse: \"yes\"}\n");
    bin()
        .args(["plugin", "list", "--config"])
        .arg(&config)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("configure refused: told to refuse"));
}

#[test]
fn the_wit_version_is_checked() {
    let future = component("future-mapper");
    bin()
        .args(["plugin", "list", "--no-config", "--plugin"])
        .arg(future)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("was built against qualys:respond@0.2.0"))
        .stderr(predicate::str::contains("implements qualys:respond@0.1.2 and accepts 0.1.0 up to 0.1.2"));
    let accepted = list(&["--plugin"], &[component("settings-mapper")]);
    assert_eq!(accepted[1]["witVersion"], "0.1.0", "a component of an older 0.1.x still runs");
    assert_eq!(accepted[1]["reads"].as_array().map(Vec::len), Some(15), "a plain mapper is sent every field");
}

#[test]
fn a_second_run_loads_compiled_components_from_the_disk_cache() {
    let cache = tempfile::tempdir().unwrap();
    let settings = component("settings-mapper");
    let run = || {
        let output = bin()
            .args(["-v", "plugin", "list", "--no-config", "--plugin"])
            .arg(settings)
            .env("QUALYS_RESPOND_CACHE_DIR", cache.path())
            .assert()
            .success()
            .get_output()
            .clone();
        String::from_utf8_lossy(&output.stderr).to_string()
    };
    let first = run();
    assert_eq!(first.matches("compiling component (not in the disk cache)").count(), 2, "{first}");
    let second = run();
    assert!(!second.contains("compiling component"), "{second}");
    assert_eq!(second.matches("compiled component loaded from the disk cache").count(), 2, "{second}");
    for entry in std::fs::read_dir(cache.path().join("components")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "cwasm") {
            std::fs::write(&path, b"tampered").unwrap();
        }
    }
    let third = run();
    assert_eq!(third.matches("does not match its digest; compiling afresh").count(), 2, "{third}");
}
