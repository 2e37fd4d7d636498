//! `lint` rejects each loader rule of the reference (and our safety rules)
//! with a message that names the rule, and accepts a valid policy.

use predicates::prelude::*;

use super::support::{bin, data};

/// Lints one file of `tests/data/lint` (strictly, so that safety rules are
/// errors too) and returns stdout, expecting problems.
fn problems(file: &str) -> String {
    let out = bin().args(["lint", "--strict"]).arg(data(&format!("lint/{file}"))).assert().code(3);
    String::from_utf8(out.get_output().stdout.clone()).unwrap()
}

fn assert_rule(file: &str, path: &str, rule: &str, words: &str) {
    let stdout = problems(file);
    let line = stdout
        .lines()
        .find(|l| l.contains(&format!("[{rule}]")))
        .unwrap_or_else(|| panic!("{file}: no [{rule}] problem in:\n{stdout}"));
    assert!(line.contains(path) && line.contains(words), "{file}: {line}");
    assert!(line.starts_with(&data(&format!("lint/{file}")).display().to_string()), "the line names the file: {line}");
}

#[test]
fn dport_on_sockaddr() {
    assert_rule(
        "dport-on-sockaddr.yaml",
        "TracingPolicy/block-mining-ports: spec.kprobes[0].selectors[0].matchArgs[0].operator",
        "loader/operator-type",
        "DPort does not work on a sockaddr argument",
    );
}

#[test]
fn contains_operator() {
    assert_rule(
        "contains-operator.yaml",
        "matchArgs[0].operator",
        "loader/operator",
        "no Contains operator; use SubString",
    );
    assert_rule("contains-operator.yaml", "matchArgs[0].operator", "schema", "\"Contains\" is not one of");
}

#[test]
fn symbolic_mask() {
    assert_rule("symbolic-mask.yaml", "matchArgs[0].values[0]", "loader/numeric-value", "\"O_WRONLY\" is not a number");
}

#[test]
fn undeclared_index() {
    assert_rule("undeclared-index.yaml", "matchArgs[0].index", "loader/undeclared-index", "index 1 is not declared");
}

#[test]
fn too_many_selectors() {
    assert_rule(
        "too-many-selectors.yaml",
        "spec.kprobes[0].selectors",
        "loader/too-many-selectors",
        "6 selectors, at most 5",
    );
}

#[test]
fn bad_name() {
    assert_rule("bad-name.yaml", "metadata.name", "loader/name", "is not a DNS-1123 subdomain");
}

#[test]
fn pod_selector_namespace_is_not_a_label_selector_field() {
    assert_rule("pod-selector-namespace.yaml", "spec.podSelector.namespace", "schema", "unknown field");
}

#[test]
fn missing_syscall_on_a_kernel_function() {
    assert_rule("missing-syscall.yaml", "spec.kprobes[0].syscall", "loader/syscall", "defaults to true");
}

#[test]
fn override_on_a_plain_kernel_function() {
    assert_rule("override-on-kernel-function.yaml", "matchActions[0]", "loader/override", "use Sigkill");
}

#[test]
fn unscoped_sigkill() {
    assert_rule("unscoped-sigkill.yaml", "spec.podSelector", "safety/unscoped", "must be limited to containers");
    assert_rule("unscoped-sigkill.yaml", "selectors[0]", "safety/protected-binary", "matches every binary");
    assert_rule("unscoped-sigkill.yaml", "selectors[0]", "safety/unfiltered", "matches every call");
}

#[test]
fn a_selector_that_reaches_kubelet() {
    assert_rule(
        "kills-kubelet.yaml",
        "selectors[0]",
        "safety/protected-binary",
        "Prefix matches the protected binary /usr/bin/",
    );
}

#[test]
fn a_valid_file_passes() {
    bin()
        .arg("lint")
        .arg(data("lint/valid.yaml"))
        .assert()
        .code(0)
        .stdout("")
        .stderr(predicate::str::contains("2 objects checked (0 other documents skipped): 0 errors, 0 warnings"));
}

#[test]
fn safety_rules_are_warnings_for_a_users_files_unless_strict() {
    let out = bin().arg("lint").arg(data("lint/unscoped-sigkill.yaml")).assert().code(0);
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(stdout.lines().all(|l| l.starts_with("warning: ")), "{stdout}");
    assert!(stdout.contains("[safety/unscoped]"), "{stdout}");
    bin().args(["lint", "--strict"]).arg(data("lint/unscoped-sigkill.yaml")).assert().code(3);
    // What Tetragon rejects stays an error.
    bin().arg("lint").arg(data("lint/dport-on-sockaddr.yaml")).assert().code(3);
}

#[test]
fn allow_silences_one_rule() {
    let out = bin()
        .args(["lint", "--strict", "--allow", "safety/unscoped", "--allow", "safety/protected-binary"])
        .arg(data("lint/unscoped-sigkill.yaml"))
        .assert()
        .code(3);
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(!stdout.contains("safety/unscoped") && !stdout.contains("safety/protected-binary"), "{stdout}");
    assert!(stdout.contains("[safety/unfiltered]"), "{stdout}");
    bin()
        .args(["lint", "--allow", "schema", "--allow", "loader/name"])
        .arg(data("lint/bad-name.yaml"))
        .assert()
        .code(0);
}

#[test]
fn json_output_for_ci() {
    let out = bin()
        .args(["lint", "-o", "json"])
        .arg(data("lint/unscoped-sigkill.yaml"))
        .arg(data("lint/symbolic-mask.yaml"))
        .assert()
        .code(3);
    let results: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(results["objects"], 2);
    assert!(results["errors"].as_u64().unwrap() >= 1 && results["warnings"].as_u64().unwrap() >= 3, "{results}");
    let mask = results["problems"].as_array().unwrap().iter().find(|p| p["rule"] == "loader/numeric-value").unwrap();
    assert_eq!(mask["severity"], "error");
    assert!(mask["file"].as_str().unwrap().ends_with("symbolic-mask.yaml"));
    assert_eq!(mask["object"], "TracingPolicy/watch-writes");
    assert!(mask["path"].as_str().unwrap().ends_with("values[0]"));
}

#[test]
fn what_tetragon_takes_is_not_an_error() {
    let corpus = std::fs::read_to_string(data("oracle/corpus.yaml")).unwrap();
    let pick =
        |name: &str| corpus.split("\n---\n").find(|d| d.contains(&format!("name: {name}\n"))).unwrap().to_string();
    for name in ["corpus-tracepoint-position-index", "corpus-raw-tracepoint-list", "corpus-cel"] {
        bin().args(["lint", "-"]).write_stdin(pick(name)).assert().code(0).stdout("");
    }
    let out = bin().args(["lint", "-"]).write_stdin(pick("corpus-namespaced-without-namespace")).assert().code(0);
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(
        stdout.starts_with("warning: ") && stdout.contains("kubectl apply` puts it in the current namespace"),
        "{stdout}"
    );
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n---\n".to_string() + &pick("corpus-kprobe-file");
    bin()
        .args(["lint", "-"])
        .write_stdin(pod)
        .assert()
        .code(0)
        .stderr(predicate::str::contains("1 objects checked (1 other documents skipped)"));
}

#[test]
fn tetragon_without_the_oracle_says_how_to_get_it() {
    bin().args(["lint", "--tetragon", "/nonexistent/oracle"]).arg(data("lint/valid.yaml")).assert().code(1).stderr(
        predicate::str::contains("cannot run the Tetragon oracle /nonexistent/oracle")
            .and(predicate::str::contains("tests/oracle")),
    );
}

#[test]
fn every_problem_of_several_files_is_reported() {
    let out = bin().arg("lint").arg(data("lint/bad-name.yaml")).arg(data("lint/symbolic-mask.yaml")).assert().code(3);
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(stdout.contains("bad-name.yaml") && stdout.contains("symbolic-mask.yaml"), "{stdout}");
}

#[test]
fn a_file_that_is_not_yaml_is_a_problem() {
    bin()
        .args(["lint", "-"])
        .write_stdin("kind: [unclosed")
        .assert()
        .code(3)
        .stdout(predicate::str::contains("-: document 1: not valid YAML"));
}
