//! What the user typed for `sync` (and `diff`): the command line as clap
//! parses it, with its help and examples. `plan.rs` turns it into what a
//! run does.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};

use super::super::guard::GuardArgs;
use super::super::mappers::MapperArgs;
use super::super::reputation::ReputationArgs;
use crate::cluster::KubeArgs;
use crate::cluster::apply::DryRun;
use crate::policy::Mode;
use crate::policy::validate::TetragonVersion;
use crate::qualys::platform::Platform;

/// Generate TracingPolicies from CDR findings.
///
/// Reads findings from a file (--from-file) or fetches them from the Qualys
/// CDR API (--gateway or --platform, credentials from QUALYS_USERNAME and
/// QUALYS_PASSWORD, --username-file/--password-file, or QUALYS_ACCESS_TOKEN),
/// maps each category through its mapper, merges the findings of one category
/// and namespace into one policy, and prints the policies as a YAML stream (or
/// writes one file each with --output-dir). A summary goes to stderr.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct SyncArgs {
    /// Read findings from this file ('-' for stdin) instead of the API: the
    /// envelope {"content": [...]}, a JSON array, or one JSON object per line.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["gateway", "platform"])]
    pub(super) from_file: Option<PathBuf>,

    /// Qualys API gateway URL [env: QUALYS_GATEWAY_URL].
    #[arg(long, value_name = "URL")]
    pub(super) gateway: Option<String>,

    /// Qualys platform, instead of --gateway [env: QUALYS_PLATFORM].
    #[arg(long, value_enum, ignore_case = true, conflicts_with = "gateway")]
    pub(super) platform: Option<Platform>,

    /// PEM CA bundle for a gateway behind a private CA.
    #[arg(long, value_name = "PATH")]
    pub(super) ca_file: Option<PathBuf>,

    /// File holding the API username (e.g. a mounted Secret).
    #[arg(long, value_name = "PATH")]
    pub(super) username_file: Option<PathBuf>,

    /// File holding the API password (e.g. a mounted Secret).
    #[arg(long, value_name = "PATH")]
    pub(super) password_file: Option<PathBuf>,

    /// Fetch findings detected in this last span (e.g. 24h, 90m, 7d).
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::span, conflicts_with = "hours")]
    pub(super) since: Option<Duration>,

    /// Same as --since, in hours (the CronJob form: --hours=24).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=87_840))]
    pub(super) hours: Option<u64>,

    /// Window start, RFC 3339 (wins over --since and over the checkpoint).
    #[arg(long, value_name = "TIME")]
    pub(super) start: Option<DateTime<Utc>>,

    /// Window end, RFC 3339 (default: now).
    #[arg(long, value_name = "TIME")]
    pub(super) end: Option<DateTime<Utc>>,

    /// Only findings of this severity.
    #[arg(long, value_enum, ignore_case = true)]
    pub(super) severity: Option<Severity>,

    /// Only findings of this category, as Qualys names it.
    #[arg(long, value_name = "NAME")]
    pub(super) category: Option<String>,

    /// A QQL filter, e.g. 'tc.findings.cloudProvider: AWS'.
    #[arg(long, value_name = "QQL")]
    pub(super) query: Option<String>,

    /// Findings per page.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub(super) page_size: u64,

    /// Stop with an error after this many pages (guards against a gateway that never ends).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub(super) max_pages: u64,

    /// Retries per API call on 429, 5xx, timeouts and broken connections.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub(super) retries: u32,

    /// First backoff between retries; it doubles, with jitter.
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::wait, default_value = "500ms")]
    pub(super) retry_delay: Duration,

    /// Timeout of one API request.
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::wait, default_value = "30s")]
    pub(super) timeout: Duration,

    /// Keep the checkpoint here, so the next run neither misses nor repeats findings.
    #[arg(long, value_name = "PATH")]
    pub(super) state_file: Option<PathBuf>,

    /// How far before the checkpoint the next window starts (late-indexed findings).
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::span_or_zero, default_value = "15m")]
    pub(super) overlap: Duration,

    /// Run once and exit (the default; the CronJob form).
    #[arg(long, conflicts_with = "watch")]
    pub(super) once: bool,

    /// Keep running: sync, wait --interval, sync again; SIGTERM or SIGINT stops it cleanly.
    #[arg(long)]
    pub(super) watch: bool,

    /// Time between two syncs with --watch.
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::span, default_value = "1h")]
    pub(super) interval: Duration,

    /// Apply the policies to the cluster (server-side apply): new ones in audit
    /// mode unless --action says otherwise, existing ones keep their mode and
    /// tuning and gain the new indicators; expired blocks are removed. The
    /// checkpoint then lives in the ConfigMap qualys-respond-checkpoint
    /// (unless --state-file).
    #[arg(long)]
    pub(super) apply: bool,

    /// With --apply: 'client' only compares with the cluster, 'server' sends
    /// every write as a server-side dry run; nothing is stored either way.
    #[arg(long, value_enum, value_name = "MODE", num_args = 0..=1, default_missing_value = "client",
        default_value = "none")]
    pub(super) dry_run: DryRun,

    /// With --apply: delete the policies we manage that lost their reason to
    /// exist (a category no mapper handles any more; with --prune-after, audit
    /// policies without a finding for that long). Never touches an object
    /// without our managed-by label, and never deletes an enforced policy for age.
    #[arg(long)]
    pub(super) prune: bool,

    /// With --prune: how long an audit-mode policy may go without a finding
    /// (`0s` prunes every audit policy without a finding in this run).
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::span_or_zero, requires = "prune")]
    pub(super) prune_after: Option<Duration>,

    /// With --apply: take over fields another field manager set on our
    /// objects; without it such a write is refused and their edit stays.
    #[arg(long, requires = "apply", help_heading = "Cluster")]
    pub(super) force_conflicts: bool,

    /// Namespace of the checkpoint ConfigMap with --apply (default: the context's namespace).
    #[arg(short, long, value_name = "NS")]
    pub(super) namespace: Option<String>,

    #[command(flatten)]
    pub(super) clusters: super::super::scope::ClusterArgs,

    #[command(flatten)]
    pub(super) election: super::super::election::ElectionArgs,

    #[command(flatten)]
    pub(super) kube: KubeArgs,

    #[command(flatten)]
    pub(super) mappers: MapperArgs,

    #[command(flatten)]
    pub(super) reputation: ReputationArgs,

    #[command(flatten)]
    pub(super) guard: GuardArgs,

    /// Write one YAML file per policy into DIR (<name>.yaml; namespaced ones as
    /// <namespace>/<name>.yaml) instead of printing them.
    #[arg(long, value_name = "DIR")]
    pub(super) output_dir: Option<PathBuf>,

    /// Output format on stdout.
    #[arg(short, long, value_enum, default_value_t = Format::Yaml)]
    pub(super) output: Format,

    /// What enforcing actions become: Post audits (logs only), Sigkill enforces.
    #[arg(long, value_enum, default_value_t = Mode::Post)]
    pub(super) action: Mode,

    /// Validate against this Tetragon CRD version only (default: both main and v1.7.0).
    #[arg(long, value_enum)]
    pub(super) tetragon_version: Option<TetragonVersion>,

    /// No progress bar.
    #[arg(short, long)]
    pub(super) quiet: bool,
}

const EXAMPLES: &str = "\
Examples:
  kubectl qualys-respond sync --from-file findings.json
  kubectl qualys-respond sync --from-file - -o json < findings.jsonl
  kubectl qualys-respond sync --from-file findings.json --output-dir policies/ --action Sigkill
  QUALYS_USERNAME=api-user QUALYS_PASSWORD=… kubectl qualys-respond sync --platform US2 --since 24h
  kubectl qualys-respond sync --platform EU1 --username-file /secrets/username --password-file /secrets/password \\
      --once --hours=24 --state-file /state/checkpoint.json --output-dir /policies
  kubectl qualys-respond sync --platform US1 --watch --interval 1h --state-file state.json --output-dir policies/
  kubectl qualys-respond sync --once --hours=24 --apply                # the CronJob: audit mode, checkpoint in the cluster
  kubectl qualys-respond sync --from-file findings.json --apply --dry-run=server
  kubectl qualys-respond sync --platform US1 --apply --prune --prune-after 30d";

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum Format {
    Yaml,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "UPPER")]
pub(super) enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }
}
