//! `plugin test COMPONENT --finding FILE`: runs one component on findings
//! through the same pipeline as `sync` (merge, name, scope, mode, validate)
//! and, with `--expect`, compares the YAML with a golden file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use similar::TextDiff;

use crate::cli::exit::Exit;
use crate::cli::io::{print_stdout, read_input};
use crate::mapper::{Limits, Plugin, Registry, Source};
use crate::output;
use crate::pipeline::{self, Options};
use crate::policy::Mode;
use crate::policy::validate::TetragonVersion;
use crate::qualys::records;

/// Run a mapper component on findings and check the policies it makes.
///
/// Loads COMPONENT on its own (without the built-in mappings) under the
/// sandbox limits of sync, maps every finding of FILE through it, and merges,
/// names, scopes and validates the policies exactly like sync. The policies go
/// to stdout as a YAML stream; the component's name, version, categories and
/// sha256 (for pinning) and the run report (skipped findings, validation
/// problems) go to stderr.
///
/// With --expect, stdout shows a unified diff from the expected file to the
/// actual output instead of the YAML: nothing when they match.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct TestArgs {
    /// The component (.wasm).
    component: PathBuf,

    /// Findings to map ('-' for stdin): the API envelope {"content": [...]},
    /// a JSON array, or one JSON object per line, as sync --from-file reads.
    #[arg(long, value_name = "FILE")]
    finding: PathBuf,

    /// The expected YAML output (a golden file); a difference exits 3.
    #[arg(long, value_name = "FILE")]
    expect: Option<PathBuf>,

    /// What enforcing actions become: Post audits (logs only), Sigkill enforces.
    #[arg(long, value_enum, default_value_t = Mode::Post)]
    action: Mode,

    /// A setting for the component's configure, as the configuration file's
    /// `settings` would give it (repeatable; a key given twice keeps the last).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_setting)]
    setting: Vec<(String, String)>,
}

/// Splits `KEY=VALUE` at the first `=`.
fn parse_setting(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_string(), value.to_string())),
        _ => Err("expected KEY=VALUE".into()),
    }
}

const EXAMPLES: &str = "\
Examples:
  kubectl qualys-respond plugin test my_mapper.wasm --finding samples/finding.json
  kubectl qualys-respond plugin test my_mapper.wasm --finding samples/finding.json \\
      --expect samples/expected.yaml
  kubectl qualys-respond plugin test my_mapper.wasm --finding f.json --setting ports=5555,6666
  kubectl qualys-respond plugin test my_mapper.wasm --finding samples/finding.json \\
      > samples/expected.yaml     # bless, after an intended change

Exit codes:
  0  no finding skipped for an error (and the output matches --expect); a category the
     component does not claim is reported, as in sync, but is no error
  1  a file cannot be read, or the component cannot be loaded
  3  a finding was skipped for an error (malformed record, mapper failure,
     invalid policy), or the output differs from --expect";

/// Runs the component on the findings.
pub fn run(args: TestArgs) -> anyhow::Result<Exit> {
    let component = args.component.display().to_string();
    let bytes = std::fs::read(&args.component).with_context(|| format!("cannot read component {component}"))?;
    // Sorted by key with one value each, as the configuration file hands them over.
    let settings: BTreeMap<String, String> = args.setting.into_iter().collect();
    let source = Source::File(args.component.clone());
    let plugin = Plugin::load_with_settings(&bytes, source, Limits::default(), settings.into_iter().collect())?;
    let info = plugin.info();
    eprintln!(
        "component {}@{} (sha256 {}) claims: {}",
        info.name,
        info.version,
        info.digest,
        info.categories.join(", ")
    );
    let findings = args.finding.display().to_string();
    let text = read_input(&args.finding).with_context(|| format!("cannot read findings from {findings}"))?;
    let records = records::split(&text).with_context(|| format!("cannot read findings from {findings}"))?;
    let expected = match &args.expect {
        Some(path) => {
            let golden = path.display().to_string();
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read expected output {golden}"))?;
            Some((golden, text))
        }
        None => None,
    };

    let mut registry = Registry::empty();
    registry.add(plugin);
    let options = Options { mode: args.action, versions: TetragonVersion::ALL.to_vec(), ..Options::default() };
    let outcome = pipeline::run(records, &mut registry, &options);
    let objects: Vec<_> = outcome.policies.iter().map(|a| &a.object).collect();
    let actual = output::yaml_stream(&objects);
    eprint!(
        "{}",
        outcome.report.render(match args.action {
            Mode::Post => "audit mode: enforcing actions are Post",
            Mode::Sigkill => "enforce mode: enforcing actions are Sigkill",
        })
    );
    let mut exit = if outcome.report.has_errors() { Exit::Problems } else { Exit::Ok };

    match expected {
        None => print_stdout(&actual).context("cannot write to stdout")?,
        Some((golden, expected)) if expected == actual => eprintln!("output matches {golden}"),
        Some((golden, expected)) => {
            let diff = TextDiff::from_lines(&expected, &actual);
            let text = diff.unified_diff().context_radius(3).header(&golden, "actual").to_string();
            print_stdout(&text).context("cannot write to stdout")?;
            eprintln!("output differs from {golden}");
            exit = Exit::Problems;
        }
    }
    Ok(exit)
}
