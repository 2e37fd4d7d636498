//! `sync`: findings in, validated TracingPolicies out.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};

use super::{Exit, print_stdout, read_input};
use crate::mapper::{Limits, Registry};
use crate::output;
use crate::pipeline::{self, Options};
use crate::policy::Mode;
use crate::policy::validate::TetragonVersion;
use crate::qualys::records;

/// Generate TracingPolicies from CDR findings.
///
/// Reads findings, maps each category through its mapper, merges the findings
/// of one category and namespace into one policy, and prints the policies as a
/// YAML stream (or writes one file each with --output-dir). A summary goes to
/// stderr.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct SyncArgs {
    /// Read findings from this file ('-' for stdin): the API envelope
    /// {"content": [...]}, a JSON array, or one JSON object per line.
    #[arg(long, value_name = "PATH")]
    from_file: PathBuf,

    /// Write one YAML file per policy into DIR (<name>.yaml; namespaced ones
    /// as <namespace>/<name>.yaml) instead of printing them.
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,

    /// Output format on stdout.
    #[arg(short, long, value_enum, default_value_t = Format::Yaml)]
    output: Format,

    /// What enforcing actions become: Post audits (logs only), Sigkill enforces.
    #[arg(long, value_enum, default_value_t = Mode::Post)]
    action: Mode,

    /// Validate against this Tetragon CRD version only (default: both main and v1.7.0).
    #[arg(long, value_enum)]
    tetragon_version: Option<TetragonVersion>,
}

const EXAMPLES: &str = "\
Examples:
  kubectl qualys-respond sync --from-file findings.json
  kubectl qualys-respond sync --from-file - -o json < findings.jsonl
  kubectl qualys-respond sync --from-file findings.json --output-dir policies/ --action Sigkill";

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Yaml,
    Json,
}

pub fn run(args: SyncArgs) -> anyhow::Result<Exit> {
    let source = args.from_file.display().to_string();
    let text = read_input(&args.from_file).with_context(|| format!("cannot read findings from {source}"))?;
    let records = records::split(&text).with_context(|| format!("cannot read findings from {source}"))?;
    let mut registry = Registry::with_defaults(Limits::default()).context("cannot load the default mappings")?;
    let options = Options {
        mode: args.action,
        versions: args.tetragon_version.map_or_else(|| TetragonVersion::ALL.to_vec(), |v| vec![v]),
    };
    let outcome = pipeline::run(records, &mut registry, &options);
    let objects: Vec<_> = outcome.policies.iter().map(|a| &a.object).collect();
    match &args.output_dir {
        Some(dir) => {
            let written = output::write_dir(dir, &objects)
                .with_context(|| format!("cannot write policies to {}", dir.display()))?;
            tracing::info!(files = written.len(), dir = %dir.display(), "policies written");
        }
        None => {
            let text = match args.output {
                Format::Yaml => output::yaml_stream(&objects).context("cannot render YAML")?,
                Format::Json => output::json_list(&objects),
            };
            print_stdout(&text).context("cannot write to stdout")?;
        }
    }
    let mode_note = match args.action {
        Mode::Post => "audit mode: enforcing actions are Post",
        Mode::Sigkill => "enforce mode: enforcing actions are Sigkill",
    };
    eprint!("{}", outcome.report.render(mode_note));
    Ok(if outcome.report.has_errors() { Exit::Problems } else { Exit::Ok })
}
