//! Tetragon's own code as the judge of our policies and of our validator.
//!
//! The judge is `tests/oracle`, a Go program built from Tetragon's module: it
//! runs what the agent runs when a policy is added (`FromYAML`, then
//! `SensorsFromPolicy` with the tracing sensors) on this machine's kernel.
//! Its verdicts on every object below are recorded in
//! `tests/data/oracle/verdicts.json`, keyed by the SHA-256 of the object's
//! canonical JSON, for Tetragon v1.7.0 and for the development branch, with
//! the kernel features the verdicts depend on. The tests compare our
//! validator with those verdicts; an object whose verdict is missing (a
//! golden file or the corpus changed) fails with the way to record it:
//!
//! ```text
//! QUALYS_RESPOND_TETRAGON_ORACLE=…/oracle-v1.7.0 QUALYS_RESPOND_TETRAGON_ORACLE_MAIN=…/oracle-main \
//!     BLESS=1 cargo test --test it oracle
//! ```
//!
//! With those variables set (and no BLESS) the oracles also run live and
//! must give the recorded verdicts. A variable may hold a command line: the
//! agent reads `/proc/1/ns/*` for `host_ns`, which a sandbox may hide, so
//! there run it as `unshare --pid --fork --mount-proc …/oracle`. An oracle built from a local checkout
//! of Tetragon reports its version as `v0.0.0`: write the commit into the
//! recording's `oracles` entry.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use qualys_respond::mapper::{Limits, Plugin, Source};
use qualys_respond::policy::validate::{self, TetragonVersion, Weight};
use qualys_respond::policy::{Draft, Mode, assemble};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::{bin, data, root};

const VERDICTS: &str = "oracle/verdicts.json";

/// One object to judge and where it came from.
struct Judged {
    source: String,
    object: Value,
    /// Made by our pipeline: it must be accepted.
    ours: bool,
}

/// Tetragon's verdict on one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Verdict {
    accepted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// Set when the rejection comes from this machine (a kernel feature, a
    /// missing file), not from the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    environment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Recorded {
    object: String,
    source: String,
    verdicts: BTreeMap<String, Verdict>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Recording {
    /// Per oracle: Tetragon's version and the kernel features it saw.
    oracles: BTreeMap<String, Value>,
    /// Per object digest.
    objects: BTreeMap<String, Recorded>,
}

/// The versions the oracles stand for, with the variable naming each binary.
const ORACLES: &[(&str, TetragonVersion, &str)] = &[
    ("v1.7.0", TetragonVersion::V1_7_0, "QUALYS_RESPOND_TETRAGON_ORACLE"),
    ("main", TetragonVersion::Main, "QUALYS_RESPOND_TETRAGON_ORACLE_MAIN"),
];

/// Where the oracle's verdict says the machine, not the policy, failed.
const ENVIRONMENT: &[&str] = &[
    "bpf_override_return helper not available",
    "fmod_ret not available",
    "no override helper or mod_ret support",
    "does you kernel support the bpf LSM",
    "no such file or directory",
    "permission denied",
    "operation not permitted",
];

fn digest(object: &Value) -> String {
    Sha256::digest(object.to_string().as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn name(object: &Value) -> String {
    object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("?").to_string()
}

/// The objects a sync of `findings` prints, as JSON.
fn synced(findings: &str, action: &str) -> Vec<Value> {
    let out = bin().args(["sync", "--from-file", "-", "-o", "json", "--action", action]).write_stdin(findings).assert();
    let list: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    list["items"].as_array().unwrap().clone()
}

fn documents(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .filter_map(|d| Value::deserialize(d).ok())
        .filter(|v| v.get("kind").and_then(Value::as_str).is_some_and(|k| k.starts_with("TracingPolicy")))
        .collect()
}

/// Every object under judgement: what the default mapper makes (each
/// golden file, the determinism set, audit and enforce), the lint
/// fixtures and the hand-written corpus.
fn objects() -> Vec<Judged> {
    let mut out = Vec::new();
    let mut inputs: Vec<(String, String)> = std::fs::read_dir(data("golden"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    inputs.sort();
    inputs.push(("the determinism set".into(), Value::Array(crate::determinism::sample_findings()).to_string()));
    for (input, findings) in &inputs {
        for action in ["Post", "Sigkill"] {
            for object in synced(findings, action) {
                out.push(Judged { source: format!("sync {input} --action {action}"), object, ours: true });
            }
        }
    }
    for (category, object) in hostile_loader_breaks() {
        out.push(Judged { source: format!("the hostile component's {category}"), object, ours: false });
    }
    let mut files: Vec<_> = std::fs::read_dir(data("lint")).unwrap().map(|e| e.unwrap().path()).collect();
    files.push(data("oracle/corpus.yaml"));
    files.sort();
    for file in files {
        let source = file.strip_prefix(root()).unwrap().display().to_string();
        for object in documents(&file) {
            out.push(Judged { source: source.clone(), object, ours: false });
        }
    }
    out
}

/// The objects the host makes of the hostile component's loader-rule
/// breaks (and refuses): its policies, merged and scoped as the host does.
fn hostile_loader_breaks() -> Vec<(String, Value)> {
    let path = crate::support::component("hostile-mapper");
    let mut plugin =
        Plugin::load(&std::fs::read(path).unwrap(), Source::File(path.to_path_buf()), Limits::default()).unwrap();
    ["Loader", "Undeclared"]
        .into_iter()
        .flat_map(|category| {
            let record = json!({"uuid": format!("oracle-{category}"), "threatCategory": category});
            let finding = qualys_respond::qualys::wire::to_finding(&record).unwrap();
            let drafts: Vec<Draft> = plugin
                .map(&finding)
                .unwrap()
                .into_iter()
                .map(|policy| Draft {
                    finding_id: finding.id.clone(),
                    category: category.to_string(),
                    mapper: "hostile@0.1.0".into(),
                    policy,
                    evidence: Default::default(),
                })
                .collect();
            assemble(drafts, Mode::Sigkill, &Default::default())
                .into_iter()
                .map(move |a| (category.to_string(), a.object.to_value()))
        })
        .collect()
}

/// Runs one oracle binary on `objects`: its header and a verdict each.
fn run_oracle(binary: &str, objects: &[Judged]) -> (Value, Vec<Verdict>) {
    let mut stream = String::new();
    for judged in objects {
        stream.push_str("---\n");
        stream.push_str(&qualys_respond::yaml::to_string(&judged.object));
    }
    let mut words = binary.split_whitespace();
    let program = words.next().expect("the oracle variable names a program");
    let mut child = Command::new(program)
        .args(words)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run the oracle {binary}: {e}"));
    child.stdin.take().unwrap().write_all(stream.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "the oracle {binary} failed");
    let text = String::from_utf8(output.stdout).unwrap();
    let mut lines = text.lines();
    let header: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let verdicts: Vec<Verdict> = lines
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            let error = v["error"].as_str().map(str::to_string);
            let environment =
                error.as_deref().and_then(|e| ENVIRONMENT.iter().find(|p| e.contains(**p))).map(|p| p.to_string());
            Verdict { accepted: v["accepted"] == true, error, environment }
        })
        .collect();
    assert_eq!(verdicts.len(), objects.len(), "one verdict per object");
    (header, verdicts)
}

/// The recorded verdicts, refreshed (BLESS) or checked against the live
/// oracles when their binaries are named.
fn recording(objects: &[Judged]) -> Recording {
    let path = data(VERDICTS);
    let mut recording: Recording =
        std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    let live: Vec<(&str, String)> =
        ORACLES.iter().filter_map(|(label, _, var)| std::env::var(var).ok().map(|b| (*label, b))).collect();
    if live.is_empty() {
        return recording;
    }
    let bless = std::env::var_os("BLESS").is_some();
    let mut fresh = Recording::default();
    for (label, binary) in &live {
        let (header, verdicts) = run_oracle(binary, objects);
        let mut header = header;
        header["kernel"] = json!(std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim());
        fresh.oracles.insert(label.to_string(), header);
        for (judged, verdict) in objects.iter().zip(verdicts) {
            let entry = fresh.objects.entry(digest(&judged.object)).or_insert_with(|| Recorded {
                object: name(&judged.object),
                source: judged.source.clone(),
                verdicts: BTreeMap::new(),
            });
            entry.verdicts.insert(label.to_string(), verdict);
        }
    }
    if bless {
        std::fs::write(&path, serde_json::to_string_pretty(&fresh).unwrap() + "\n").unwrap();
        return fresh;
    }
    for (key, entry) in &fresh.objects {
        let recorded = recording.objects.get(key).map(|r| &r.verdicts);
        for (label, verdict) in &entry.verdicts {
            assert_eq!(
                recorded.and_then(|r| r.get(label)),
                Some(verdict),
                "{} ({}): the live {label} oracle differs from the recording",
                entry.object,
                entry.source
            );
        }
    }
    recording.oracles.extend(fresh.oracles);
    recording
}

/// Our verdict: the problems that say Tetragon rejects the object.
fn our_rejections(object: &Value, version: TetragonVersion) -> Vec<String> {
    validate::validate(object, &[version])
        .into_iter()
        .filter(|p| matches!(p.weight(), Weight::Rejected | Weight::Advice))
        .map(|p| p.to_string())
        .collect()
}

/// Where a difference from the oracle is expected, and why.
fn known_difference(object: &str, version: &str) -> Option<&'static str> {
    match (object, version) {
        ("corpus-bad-namespaced-host", "v1.7.0") => {
            Some("the API server evaluates the CRD's CEL rule; the v1.7.0 agent loading a file does not")
        }
        _ => None,
    }
}

#[test]
fn the_oracle_accepts_a_good_policy_and_rejects_a_bad_one_with_tetragons_message() {
    let objects = objects();
    let recording = recording(&objects);
    for (label, _, _) in ORACLES {
        let header = &recording.oracles[*label];
        assert!(header["tetragon"].is_string() && header["features"].is_object(), "{label}: {header}");
        let verdict = |name: &str| {
            let judged = objects.iter().find(|j| crate::oracle::name(&j.object) == name).unwrap();
            recording.objects[&digest(&judged.object)].verdicts[*label].clone()
        };
        assert!(verdict("corpus-kprobe-sock-daddr").accepted, "{label}");
        let bad = verdict("corpus-bad-four-actions");
        assert!(!bad.accepted, "{label}");
        assert!(
            bad.error.unwrap().contains("only 3 actions are support for selector"),
            "{label}: Tetragon's own words"
        );
    }
}

#[test]
fn our_validator_agrees_with_tetragon_on_every_object() {
    let objects = objects();
    let recording = recording(&objects);
    let mut disagreements = Vec::new();
    for judged in &objects {
        let key = digest(&judged.object);
        let object = name(&judged.object);
        let Some(recorded) = recording.objects.get(&key) else {
            disagreements.push(format!(
                "{object} ({}): no recorded verdict; record it with the oracles (see the module doc)",
                judged.source
            ));
            continue;
        };
        for (label, version, _) in ORACLES {
            let Some(verdict) = recorded.verdicts.get(*label) else {
                disagreements.push(format!("{object} ({}): no {label} verdict", judged.source));
                continue;
            };
            let ours = our_rejections(&judged.object, *version);
            let theirs = if verdict.accepted {
                "accepts".to_string()
            } else {
                format!("rejects: {}", verdict.error.clone().unwrap_or_default())
            };
            if judged.ours && !verdict.accepted {
                disagreements
                    .push(format!("{object} ({}): made by our pipeline, and Tetragon {label} {theirs}", judged.source));
            }
            if known_difference(&object, label).is_some() {
                continue;
            }
            match (verdict.accepted, ours.is_empty(), &verdict.environment) {
                (true, false, _) => disagreements.push(format!(
                    "{object} ({}): Tetragon {label} accepts it, our validator rejects it (false positive): {}",
                    judged.source,
                    ours.join("; ")
                )),
                (false, true, None) => disagreements.push(format!(
                    "{object} ({}): Tetragon {label} {theirs}; our validator accepts it (false negative)",
                    judged.source
                )),
                _ => {}
            }
        }
    }
    assert!(disagreements.is_empty(), "{} disagreements:\n{}", disagreements.len(), disagreements.join("\n"));
}

#[test]
fn a_verdict_that_depends_on_the_kernel_is_said_to() {
    let policy = json!({"apiVersion": "cilium.io/v1alpha1", "kind": "TracingPolicy", "metadata": {"name": "k"},
        "spec": {"kprobes": [{"call": "security_file_open", "syscall": false, "args": [{"index": 0, "type": "file"}],
            "selectors": [{"matchActions": [{"action": "Override", "argError": -1}]}]}]}});
    let problems = validate::validate(&policy, TetragonVersion::ALL);
    let kernel: Vec<_> = problems.iter().filter(|p| p.weight() == Weight::KernelDependent).collect();
    assert_eq!(kernel.len(), 1, "{problems:?}");
    assert!(kernel[0].message.contains("on kernels with kprobe_multi"), "{}", kernel[0]);
    assert!(kernel[0].message.contains("and on arm64"), "an Override on the selector turns kprobe_multi off on arm64");
}

#[test]
fn an_override_only_a_macro_gives_is_not_said_to_load_on_arm64() {
    let policy = json!({"apiVersion": "cilium.io/v1alpha1", "kind": "TracingPolicy", "metadata": {"name": "k"},
        "spec": {"selectorsMacros": {"deny": {"matchActions": [{"action": "Override", "argError": -1}]}},
            "kprobes": [{"call": "security_file_open", "syscall": false, "args": [{"index": 0, "type": "file"}],
            "selectors": [{"macros": ["deny"]}]}]}});
    let problems = validate::validate(&policy, TetragonVersion::ALL);
    let kernel: Vec<_> = problems.iter().filter(|p| p.weight() == Weight::KernelDependent).collect();
    assert_eq!(kernel.len(), 1, "{problems:?}");
    assert!(kernel[0].message.contains("on arm64 too"), "{}", kernel[0]);
    assert!(!kernel[0].message.contains("and on arm64"), "{}", kernel[0]);
}

#[test]
fn the_kprobe_multi_option_is_read_as_tetragon_reads_it() {
    let with_options = |options: Value| {
        let policy = json!({"apiVersion": "cilium.io/v1alpha1", "kind": "TracingPolicy", "metadata": {"name": "k"},
            "spec": {"options": options, "kprobes": [{"call": "security_file_open", "syscall": false,
                "args": [{"index": 0, "type": "file"}],
                "selectors": [{"matchActions": [{"action": "Override", "argError": -1}]}]}]}});
        validate::validate(&policy, TetragonVersion::ALL)
    };
    let kernel_dependent =
        |problems: &[validate::Problem]| problems.iter().any(|p| p.weight() == Weight::KernelDependent);
    let refused_option = |problems: &[validate::Problem]| problems.iter().any(|p| p.rule == "loader/option");
    for off in ["1", "t", "True", "TRUE"] {
        let problems = with_options(json!([{"name": "disable-kprobe-multi", "value": off}]));
        assert!(!kernel_dependent(&problems) && !refused_option(&problems), "{off}: {problems:?}");
    }
    let last_wins = with_options(json!([{"name": "disable-kprobe-multi", "value": "1"},
        {"name": "disable-kprobe-multi", "value": "0"}]));
    assert!(kernel_dependent(&last_wins), "the last option counts: {last_wins:?}");
    let refused = with_options(json!([{"name": "disable-kprobe-multi", "value": "yes"}]));
    assert!(
        refused.iter().any(|p| p.rule == "loader/option"
            && p.path == "spec.options[0].value"
            && p.message.contains("Tetragon refuses the policy")
            && p.weight() != Weight::KernelDependent),
        "{refused:?}"
    );
}
