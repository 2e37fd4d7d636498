//! `lint`: the validator, for policies people write or edit by hand, or
//! copy from somewhere else.
//!
//! What Tetragon rejects (the CRD schema and CEL rules, the loader rules)
//! is an error; what it rejects only on some kernels, or only when the
//! agent loads the file itself, is a warning that says so; our safety rules
//! (which stay errors for everything our pipeline emits) are warnings here
//! unless `--strict`. Documents of other kinds are skipped.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::exit::Exit;
use super::io::{print_stdout, read_input};
use crate::policy::ObjectName;
use crate::policy::validate::{self, Problem, TetragonVersion, Weight};

/// The oracle's name on PATH (`tests/oracle`, built with Go).
const ORACLE: &str = "qualys-respond-tetragon-oracle";

/// Check TracingPolicy files against Tetragon's CRDs, its loader rules and our safety rules.
///
/// Every problem is printed as FILE: KIND/NAME: PATH: MESSAGE [RULE], as an
/// error (Tetragon rejects the policy) or a warning (Tetragon rejects it only
/// on some kernels or load paths, or it breaks one of our safety rules:
/// enforcing on every container, on protected binaries, on every address).
/// Files may hold several YAML documents or a JSON/YAML `List`; documents of
/// other kinds are skipped.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct LintArgs {
    /// Files to check ('-' for stdin).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,

    /// Check against this Tetragon CRD version only (default: both main and v1.7.0).
    #[arg(long, value_enum)]
    tetragon_version: Option<TetragonVersion>,

    /// Treat every warning as an error (what the pipeline does with its own policies).
    #[arg(long)]
    strict: bool,

    /// Do not report this rule (e.g. safety/unscoped); repeatable.
    #[arg(long = "allow", value_name = "RULE")]
    allow: Vec<String>,

    /// Output format on stdout.
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    output: Format,

    /// Also run Tetragon's own code on every object (the oracle of tests/oracle, built with Go;
    /// default: qualys-respond-tetragon-oracle on PATH) and show its verdict beside ours.
    #[arg(long, value_name = "PATH", num_args = 0..=1, default_missing_value = ORACLE)]
    tetragon: Option<PathBuf>,
}

const EXAMPLES: &str = "\
Examples:
  kubectl qualys-respond lint policies/*.yaml
  kubectl qualys-respond lint --strict -o json policies/*.yaml > lint.json     # for CI
  kubectl qualys-respond lint --allow safety/unscoped host-policies.yaml
  kubectl qualys-respond sync --from-file findings.json | kubectl qualys-respond lint --strict -
  kubectl qualys-respond lint --tetragon policies/*.yaml                        # with Tetragon's own verdict

Exit codes: 0 nothing but warnings (without --strict), 3 errors, 1 unreadable input.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

/// `error` or `warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Severity {
    Error,
    Warning,
}

/// One reported problem, as `-o json` shows it.
#[derive(Debug, Serialize)]
struct Finding {
    file: String,
    object: String,
    path: String,
    rule: String,
    severity: Severity,
    message: String,
}

/// Tetragon's verdict on one object, from the oracle.
#[derive(Debug, Clone, Deserialize, Serialize)]
struct OracleVerdict {
    accepted: bool,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct Results {
    objects: usize,
    skipped: usize,
    errors: usize,
    warnings: usize,
    problems: Vec<Finding>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tetragon: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    verdicts: Vec<Verdict>,
}

/// Tetragon's verdict on one object, beside ours.
#[derive(Debug, Serialize)]
struct Verdict {
    file: String,
    object: String,
    accepted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// One TracingPolicy object to check, with where it came from.
struct Object {
    file: String,
    label: String,
    value: Value,
}

fn severity(problem: &Problem, strict: bool) -> Severity {
    match problem.weight() {
        Weight::Rejected => Severity::Error,
        _ if strict => Severity::Error,
        Weight::KernelDependent | Weight::Advice | Weight::Safety => Severity::Warning,
    }
}

/// Every document of every file: TracingPolicy objects, and a count of the others.
fn read_objects(files: &[PathBuf], findings: &mut Vec<Finding>) -> anyhow::Result<(Vec<Object>, usize)> {
    let (mut objects, mut skipped) = (Vec::new(), 0);
    for file in files {
        let name = file.display().to_string();
        let text = read_input(file).with_context(|| format!("cannot read {name}"))?;
        for (index, document) in serde_yaml::Deserializer::from_str(&text).enumerate() {
            let value = match Value::deserialize(document) {
                Ok(Value::Null) => continue,
                Ok(value) => value,
                Err(e) => {
                    findings.push(Finding {
                        file: name.clone(),
                        object: format!("document {}", index + 1),
                        path: String::new(),
                        rule: "yaml".into(),
                        severity: Severity::Error,
                        message: format!("not valid YAML: {e}"),
                    });
                    break; // the parser cannot resume after an error
                }
            };
            let items = match value.get("kind").and_then(Value::as_str) {
                Some("List") => value.get("items").and_then(Value::as_array).cloned().unwrap_or_default(),
                _ => vec![value],
            };
            for item in items {
                let kind = item.get("kind").and_then(Value::as_str).unwrap_or_default();
                let tracing_policy = matches!(kind, "TracingPolicy" | "TracingPolicyNamespaced")
                    || item.get("apiVersion").and_then(Value::as_str) == Some(crate::policy::API_VERSION);
                if !tracing_policy && !kind.is_empty() {
                    skipped += 1;
                    tracing::info!(file = %name, kind, "not a TracingPolicy; skipped");
                    continue;
                }
                objects.push(Object { file: name.clone(), label: object_label(&item, index), value: item });
            }
        }
    }
    Ok((objects, skipped))
}

pub fn run(args: LintArgs) -> anyhow::Result<Exit> {
    let versions = args.tetragon_version.map_or_else(|| TetragonVersion::ALL.to_vec(), |v| vec![v]);
    let mut findings = Vec::new();
    let (objects, skipped) = read_objects(&args.files, &mut findings)?;
    for object in &objects {
        for problem in validate::validate(&object.value, &versions) {
            if args.allow.iter().any(|rule| rule == problem.rule_id() || *rule == problem.rule) {
                continue;
            }
            findings.push(Finding {
                file: object.file.clone(),
                object: object.label.clone(),
                severity: severity(&problem, args.strict),
                path: problem.path,
                rule: problem.rule,
                message: problem.message,
            });
        }
    }
    let (tetragon, verdicts) = match &args.tetragon {
        Some(oracle) => {
            let (version, verdicts) = judge(oracle, &objects, &mut findings)?;
            (Some(version), verdicts)
        }
        None => (None, Vec::new()),
    };
    let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    let results = Results {
        objects: objects.len(),
        skipped,
        errors: count(Severity::Error),
        warnings: count(Severity::Warning),
        problems: findings,
        tetragon,
        verdicts,
    };
    let text = match args.output {
        Format::Text => render(&results),
        Format::Json => serde_json::to_string_pretty(&results).context("cannot render JSON")? + "\n",
    };
    print_stdout(&text).context("cannot write to stdout")?;
    eprintln!(
        "{} objects checked ({} other documents skipped): {} errors, {} warnings",
        results.objects, results.skipped, results.errors, results.warnings
    );
    Ok(if results.errors == 0 { Exit::Ok } else { Exit::Problems })
}

fn render(results: &Results) -> String {
    let mut out = String::new();
    for f in &results.problems {
        let prefix = if f.severity == Severity::Warning { "warning: " } else { "" };
        let path = if f.path.is_empty() { String::new() } else { format!("{}: ", f.path) };
        out.push_str(&format!("{prefix}{}: {}: {path}{} [{}]\n", f.file, f.object, f.message, f.rule));
    }
    if let Some(version) = &results.tetragon {
        out.push_str(&format!("{version}:\n"));
        for v in &results.verdicts {
            let verdict = if v.accepted { "accepts it".to_string() } else { "rejects it".to_string() };
            out.push_str(&format!("  {}: {}: Tetragon {verdict}\n", v.file, v.object));
        }
    }
    out
}

/// Runs the oracle on every object and adds Tetragon's rejections as
/// errors; returns the oracle's version line and its verdicts.
fn judge(oracle: &Path, objects: &[Object], findings: &mut Vec<Finding>) -> anyhow::Result<(String, Vec<Verdict>)> {
    let stream = crate::output::yaml_values(objects.iter().map(|o| &o.value));
    let mut child = Command::new(oracle)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot run the Tetragon oracle {} ({e}): build it from tests/oracle (see the README) or pass --tetragon PATH",
                oracle.display()
            )
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(stream.as_bytes()).context("cannot write to the oracle")?;
    }
    let output = child.wait_with_output().context("the oracle did not finish")?;
    if !output.status.success() {
        bail!("the Tetragon oracle failed: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines = text.lines();
    let header: Value = lines.next().and_then(|l| serde_json::from_str(l).ok()).unwrap_or(Value::Null);
    let version = format!(
        "Tetragon {} on this kernel (features: {})",
        header["tetragon"].as_str().unwrap_or("?"),
        header["features"]
    );
    let verdicts: Vec<OracleVerdict> = lines.filter_map(|l| serde_json::from_str(l).ok()).collect();
    if verdicts.len() != objects.len() {
        bail!("the Tetragon oracle answered for {} of {} objects", verdicts.len(), objects.len());
    }
    let mut shown = Vec::with_capacity(objects.len());
    for (object, verdict) in objects.iter().zip(verdicts) {
        if !verdict.accepted {
            findings.push(Finding {
                file: object.file.clone(),
                object: object.label.clone(),
                path: String::new(),
                rule: "tetragon".into(),
                severity: Severity::Error,
                message: format!("Tetragon rejects it: {}", verdict.error.clone().unwrap_or_default()),
            });
        }
        shown.push(Verdict {
            file: object.file.clone(),
            object: object.label.clone(),
            accepted: verdict.accepted,
            error: verdict.error,
        });
    }
    Ok((version, shown))
}

fn object_label(object: &Value, index: usize) -> String {
    match object.pointer("/metadata/name") {
        Some(_) => ObjectName::of(object).to_string(),
        None => format!("{} (document {})", ObjectName::of(object).kind, index + 1),
    }
}
