//! A component that traps, loops forever, allocates without bound, recurses
//! without end, floods the host with output, asks for policies the loader or
//! the safety rules refuse, or tries to read files and the environment is
//! stopped and reported, and every other category still gets its policies,
//! including the hostile component's own well-behaved one.

use std::time::Duration;

use qualys_respond::mapper::{CallError, InvalidOutput, Limits, Plugin, PolicyProblem, Registry, Source};
use qualys_respond::pipeline::{self, Options};
use qualys_respond::qualys::records::Record;
use qualys_respond::report::{Skip, SkipReason};
use serde_json::json;

use super::support::component;

/// What the hostile component calls itself in reports.
const HOSTILE: &str = "hostile@0.1.0";

fn hostile(limits: Limits) -> Plugin {
    let path = component("hostile-mapper");
    Plugin::load(&std::fs::read(path).unwrap(), Source::File(path.to_path_buf()), limits).unwrap()
}

fn record(id: &str, category: &str) -> Record {
    Record::from_value(id.into(), json!({"uuid": id, "threatCategory": category}))
}

/// The records of the pipeline test: `(id, category)`.
const RECORDS: &[(&str, &str)] = &[
    ("01-trap", "Trap"),
    ("02-loop", "Loop"),
    ("03-bomb", "Bomb"),
    ("04-recurse", "Recurse"),
    ("05-huge", "Huge"),
    ("06-flood", "Flood"),
    ("07-garbage", "Garbage"),
    ("08-loader", "Loader"),
    ("08-undeclared", "Undeclared"),
    ("09-unscoped", "Unscoped"),
    ("10-kubelet", "Kubelet"),
    ("11-read-file", "ReadFile"),
    ("11-read-env", "ReadEnv"),
    ("20-benign", "Benign"),
    ("21-mining", "Crypto_Mining"),
    ("22-escape", "Container_Escape"),
];

/// The skip reported for finding `id`; exactly one must exist.
fn skip_of<'a>(skipped: &'a [Skip], id: &str) -> &'a SkipReason {
    let (category, subject) = RECORDS
        .iter()
        .find(|(i, _)| *i == id)
        .map(|(i, c)| (*c, format!("finding {i} ({c})")))
        .unwrap_or_else(|| panic!("no record {id}"));
    let found: Vec<&Skip> = skipped.iter().filter(|s| s.subject == subject).collect();
    assert_eq!(found.len(), 1, "skips of {id} ({category}): {found:#?}");
    &found[0].reason
}

/// The error text of a mapper failure for finding `id`.
fn mapper_error<'a>(skipped: &'a [Skip], id: &str) -> &'a str {
    match skip_of(skipped, id) {
        SkipReason::Mapper { mapper, error } => {
            assert_eq!(mapper, HOSTILE, "{id}");
            error
        }
        other => panic!("{id}: expected a mapper failure, got {other:#?}"),
    }
}

/// `(path, rule, message)` of every problem of the policy dropped for `id`,
/// after checking that it is the object `object`.
fn invalid_policy(skipped: &[Skip], id: &str, expected_object: &str) -> Vec<(String, String, String)> {
    match skip_of(skipped, id) {
        SkipReason::InvalidPolicy { object, problems } => {
            assert_eq!(object, expected_object, "{id}");
            problems.iter().map(|p| (p.path.clone(), p.rule.clone(), p.message.clone())).collect()
        }
        other => panic!("{id}: expected an invalid policy, got {other:#?}"),
    }
}

/// `(path, rule)` of each problem.
fn rules(problems: &[(String, String, String)]) -> Vec<(&str, &str)> {
    problems.iter().map(|(path, rule, _)| (path.as_str(), rule.as_str())).collect()
}

#[test]
fn misbehaving_calls_are_stopped_and_the_rest_still_maps() {
    let limits = Limits::default();
    let mut registry = Registry::with_defaults(limits).unwrap();
    registry.add(hostile(limits));
    let records = RECORDS.iter().map(|(id, category)| record(id, category)).collect();
    let outcome = pipeline::run(records, &mut registry, &Options::default());
    let skipped = &outcome.report.skipped;
    let report = outcome.report.render("audit mode");

    // A component that could read a file or the environment answers with a
    // `leaked-*` policy instead of refusing.
    let names: Vec<&str> = outcome.policies.iter().map(|a| a.object.name.as_str()).collect();
    let leaked: Vec<&&str> = names.iter().filter(|n| n.contains("-leaked-")).collect();
    assert!(leaked.is_empty(), "the sandbox let the component read a file or the environment: {leaked:?}");

    // Every misbehaviour is one skip of its own finding, and nothing else is skipped.
    let bad = RECORDS.iter().filter(|(_, c)| !matches!(*c, "Benign" | "Crypto_Mining" | "Container_Escape"));
    for (id, _) in bad.clone() {
        skip_of(skipped, id);
    }
    assert_eq!(skipped.len(), bad.count(), "{report}");

    // 4. A panic (`panic = "abort"`) is reported with its message, read from the component's stderr.
    let panicked = mapper_error(skipped, "01-trap");
    assert!(panicked.starts_with("panicked at "), "{panicked}");
    assert!(panicked.ends_with(": hostile mapper panics on purpose"), "{panicked}");
    // 1. An infinite loop is stopped by whichever default bound it reaches
    //    first: the 200 ms deadline or the fuel (5 * 10^9 units, which a
    //    tight loop burns in about 0.9 s on a 2-core test machine, so only a
    //    much faster machine reaches it first). Both lines are exact;
    //    `each_bound_stops_a_loop_on_its_own` checks each bound alone.
    let looped = mapper_error(skipped, "02-loop");
    let loop_stops = ["timed out after 200ms", "ran out of fuel (5000000000 units) before it finished"];
    assert!(loop_stops.contains(&looped), "{looped}");
    // 2. A memory bomb hits the memory limit.
    assert_eq!(mapper_error(skipped, "03-bomb"), "exceeded its memory limit of 64 MiB");
    // 3. Runaway recursion exhausts the wasm stack, not the host's.
    assert_eq!(mapper_error(skipped, "04-recurse"), "trapped: stack overflow (call stack exhausted)");
    // 5. Several megabytes of output are refused by the per-call cap, not parsed.
    assert_eq!(
        mapper_error(skipped, "05-huge"),
        "returned an invalid result: 5242899 bytes of policies, more than the limit of 1048576"
    );
    // 6. 10,000 policies are refused as a whole.
    assert_eq!(
        mapper_error(skipped, "06-flood"),
        "returned an invalid result: 10000 policies, more than the limit of 64"
    );
    // 7. A spec that is not JSON.
    let garbage = mapper_error(skipped, "07-garbage");
    assert!(garbage.starts_with("returned an invalid result: policy 1: spec is not valid JSON: "), "{garbage}");

    // 8. Schema-valid policies that Tetragon's loader would reject.
    let loader = invalid_policy(skipped, "08-loader", "TracingPolicy/cdr-loader-connect-dport");
    assert_eq!(rules(&loader), [("spec.kprobes[0].selectors[0].matchArgs[0].operator", "loader/operator-type")]);
    assert!(loader[0].2.starts_with("DPort does not work on a sockaddr argument"), "{loader:?}");
    let undeclared = invalid_policy(skipped, "08-undeclared", "TracingPolicy/cdr-undeclared-undeclared-index");
    assert_eq!(rules(&undeclared), [("spec.kprobes[0].selectors[0].matchArgs[0].index", "loader/undeclared-index")]);
    assert_eq!(undeclared[0].2, "index 1 is not declared in the hook's args");

    // 9. Sigkill on every execve: the host limits it to containers and keeps
    //    the protected binaries out, and the safety rule still refuses a
    //    selector that matches every call.
    let unscoped = invalid_policy(skipped, "09-unscoped", "TracingPolicy/cdr-unscoped-kill-every-exec");
    assert_eq!(rules(&unscoped), [("spec.kprobes[0].selectors[0]", "safety/unfiltered")]);

    // 10. A policy that would kill kubelet.
    let kubelet = invalid_policy(skipped, "10-kubelet", "TracingPolicy/cdr-kubelet-kill-kubelet");
    assert_eq!(rules(&kubelet), [("spec.kprobes[0].selectors[0]", "safety/protected-binary")]);
    assert!(
        kubelet[0].2.ends_with("its matchBinaries In matches the protected binary /usr/bin/kubelet"),
        "{kubelet:?}"
    );

    // 11. No files and no environment inside the sandbox: the component got
    //     an error back and refused (a successful read would be a policy).
    //     Today the read fails with "No such file or directory (os error 44)":
    //     there is no preopened directory to resolve the path against.
    let read_file = mapper_error(skipped, "11-read-file");
    assert!(read_file.starts_with("returned an error: read failed: "), "{read_file}");
    assert!(!read_file.contains("root:"), "{read_file}");
    assert_eq!(
        mapper_error(skipped, "11-read-env"),
        "returned an error: HOME: environment variable not found; 0 variables visible"
    );

    // The summary names each failure on its finding's line.
    let loop_line = format!("  finding 02-loop (Loop): mapper hostile@0.1.0 {looped}\n");
    let trap_line = format!("  finding 01-trap (Trap): mapper hostile@0.1.0 {panicked}\n");
    for line in [
        trap_line.as_str(),
        loop_line.as_str(),
        "  finding 03-bomb (Bomb): mapper hostile@0.1.0 exceeded its memory limit of 64 MiB\n",
        "  finding 06-flood (Flood): mapper hostile@0.1.0 returned an invalid result: 10000 policies, more than the limit of 64\n",
        "  finding 10-kubelet (Kubelet): policy TracingPolicy/cdr-kubelet-kill-kubelet failed validation and was not written:\n",
        "[safety/protected-binary]\n",
        "[loader/operator-type]\n",
        "[loader/undeclared-index]\n",
    ] {
        assert!(report.contains(line), "{line:?} not in\n{report}");
    }

    // The other categories, and the hostile component's own benign one, still map.
    assert_eq!(names, ["cdr-benign-benign", "cdr-container-escape-namespace-escape", "cdr-crypto-mining-pool-ports"]);
}

#[test]
fn an_instance_recovers_after_every_kind_of_failure() {
    // 100 ms rather than less: `Huge` and `Flood` take 5 to 40 ms on a loaded
    // machine. Fuel without bound, so that the loop meets the deadline.
    let limits =
        Limits { deadline: Duration::from_millis(100), fuel: u64::MAX, memory_bytes: 16 << 20, ..Limits::default() };
    let mut plugin = hostile(limits);
    let finding = |category: &str| {
        qualys_respond::qualys::wire::to_finding(&json!({"uuid": "x", "threatCategory": category})).unwrap()
    };
    for bad in ["Trap", "Loop", "Bomb", "Recurse", "Garbage", "Huge", "Flood", "ReadFile", "ReadEnv"] {
        let error = plugin.map(&finding(bad)).unwrap_err();
        let expected = match (bad, &error) {
            ("Trap", CallError::Panic(why)) => why.ends_with(": hostile mapper panics on purpose"),
            ("Loop", CallError::Timeout(after)) => *after == Duration::from_millis(100),
            ("Bomb", CallError::Memory(mib)) => *mib == 16,
            ("Recurse", CallError::Trap(why)) => why == "stack overflow (call stack exhausted)",
            (
                "Garbage",
                CallError::Invalid(why @ InvalidOutput::Policy { index: 1, problem: PolicyProblem::SpecNotJson(_) }),
            ) => why.to_string().starts_with("policy 1: spec is not valid JSON: "),
            ("Huge", CallError::Invalid(why @ InvalidOutput::TooLarge { bytes: 5_242_899, limit: 1_048_576 })) => {
                why.to_string() == "5242899 bytes of policies, more than the limit of 1048576"
            }
            ("Flood", CallError::Invalid(why @ InvalidOutput::TooManyPolicies { count: 10_000, limit: 64 })) => {
                why.to_string() == "10000 policies, more than the limit of 64"
            }
            ("ReadFile", CallError::Refused(why)) => why.starts_with("read failed: "),
            ("ReadEnv", CallError::Refused(why)) => why == "HOME: environment variable not found; 0 variables visible",
            _ => false,
        };
        assert!(expected, "{bad}: {error:?}");
        let after = plugin.map(&finding("Benign")).unwrap();
        assert_eq!(after.len(), 1, "after {bad}");
    }
}

#[test]
fn each_bound_stops_a_loop_on_its_own() {
    let finding = qualys_respond::qualys::wire::to_finding(&json!({"uuid": "x", "threatCategory": "Loop"})).unwrap();
    let benign = qualys_respond::qualys::wire::to_finding(&json!({"uuid": "y", "threatCategory": "Benign"})).unwrap();
    let timed = Limits { deadline: Duration::from_millis(50), fuel: u64::MAX, ..Limits::default() };
    let fueled = Limits { deadline: Duration::from_secs(10), fuel: 30_000_000, ..Limits::default() };
    for (limits, expected) in [(timed, CallError::Timeout(timed.deadline)), (fueled, CallError::Fuel(30_000_000))] {
        let mut plugin = hostile(limits);
        let started = std::time::Instant::now();
        assert_eq!(plugin.map(&finding), Err(expected.clone()));
        assert!(started.elapsed() < Duration::from_secs(2), "{expected}: {:?}", started.elapsed());
        assert_eq!(plugin.map(&benign).unwrap().len(), 1, "after {expected}");
    }
}
