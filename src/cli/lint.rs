//! `lint`: the validator, for policies people write or edit by hand.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde::Deserialize;
use serde_json::Value;

use super::{Exit, read_input};
use crate::policy::validate::{self, TetragonVersion};

/// Check TracingPolicy files against Tetragon's CRDs, its loader rules and our safety rules.
///
/// Every problem is printed as FILE: KIND/NAME: PATH: MESSAGE [RULE]. Files
/// may hold several YAML documents or a JSON/YAML `List`.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct LintArgs {
    /// Files to check ('-' for stdin).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,

    /// Check against this Tetragon CRD version only (default: both main and v1.7.0).
    #[arg(long, value_enum)]
    tetragon_version: Option<TetragonVersion>,
}

const EXAMPLES: &str = "\
Examples:
  kubectl qualys-respond lint policies/*.yaml
  kubectl qualys-respond sync --from-file findings.json | kubectl qualys-respond lint -";

pub fn run(args: LintArgs) -> anyhow::Result<Exit> {
    let versions = args.tetragon_version.map_or_else(|| TetragonVersion::ALL.to_vec(), |v| vec![v]);
    let (mut objects, mut problems) = (0, 0);
    let mut report = String::new();
    for file in &args.files {
        let name = file.display().to_string();
        let text = read_input(file).with_context(|| format!("cannot read {name}"))?;
        for (index, document) in serde_yaml::Deserializer::from_str(&text).enumerate() {
            let value = match Value::deserialize(document) {
                Ok(Value::Null) => continue,
                Ok(value) => value,
                Err(e) => {
                    problems += 1;
                    report.push_str(&format!("{name}: document {}: not valid YAML: {e} [yaml]\n", index + 1));
                    break; // the parser cannot resume after an error
                }
            };
            let items = match value.get("kind").and_then(Value::as_str) {
                Some("List") => value.get("items").and_then(Value::as_array).cloned().unwrap_or_default(),
                _ => vec![value],
            };
            for item in items {
                objects += 1;
                let label = object_label(&item, index);
                for problem in validate::validate(&item, &versions) {
                    problems += 1;
                    report.push_str(&format!("{name}: {label}: {problem}\n"));
                }
            }
        }
    }
    print!("{report}");
    eprintln!("{objects} objects checked, {problems} problems");
    Ok(if problems == 0 { Exit::Ok } else { Exit::Problems })
}

fn object_label(object: &Value, index: usize) -> String {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("?");
    let name = object.pointer("/metadata/name").and_then(Value::as_str);
    let namespace = object.pointer("/metadata/namespace").and_then(Value::as_str);
    match (namespace, name) {
        (Some(ns), Some(name)) => format!("{kind}/{ns}/{name}"),
        (None, Some(name)) => format!("{kind}/{name}"),
        (_, None) => format!("{kind} (document {})", index + 1),
    }
}
