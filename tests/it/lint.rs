//! `lint` rejects each loader rule of the reference (and our safety rules)
//! with a message that names the rule, and accepts a valid policy.

use predicates::prelude::*;

use super::support::{bin, data};

/// Lints one file of `tests/data/lint` and returns stdout, expecting problems.
fn problems(file: &str) -> String {
    let out = bin().arg("lint").arg(data(&format!("lint/{file}"))).assert().code(3);
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
        .stderr(predicate::str::contains("2 objects checked, 0 problems"));
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
