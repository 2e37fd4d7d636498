//! `sync`: findings in (a file or the CDR API), validated TracingPolicies out.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};

use super::{Exit, print_stdout, read_input};
use crate::mapper::{Limits, Registry};
use crate::output;
use crate::pipeline::Options;
use crate::policy::Mode;
use crate::policy::validate::TetragonVersion;
use crate::qualys::client::{Client, ClientConfig, FindingsQuery};
use crate::qualys::credentials::Sources;
use crate::qualys::platform::Platform;
use crate::qualys::retry::RetryPolicy;
use crate::sync::{self, Fetched, Source, StateFile};

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
    from_file: Option<PathBuf>,

    /// Qualys API gateway URL [env: QUALYS_GATEWAY_URL].
    #[arg(long, value_name = "URL")]
    gateway: Option<String>,

    /// Qualys platform, instead of --gateway [env: QUALYS_PLATFORM].
    #[arg(long, value_enum, ignore_case = true, conflicts_with = "gateway")]
    platform: Option<Platform>,

    /// PEM CA bundle for a gateway behind a private CA.
    #[arg(long, value_name = "PATH")]
    ca_file: Option<PathBuf>,

    /// File holding the API username (e.g. a mounted Secret).
    #[arg(long, value_name = "PATH")]
    username_file: Option<PathBuf>,

    /// File holding the API password (e.g. a mounted Secret).
    #[arg(long, value_name = "PATH")]
    password_file: Option<PathBuf>,

    /// Fetch findings detected in this last span (e.g. 24h, 90m, 7d).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, conflicts_with = "hours")]
    since: Option<Duration>,

    /// Same as --since, in hours (the CronJob form: --hours=24).
    #[arg(long, value_name = "N")]
    hours: Option<u64>,

    /// Window start, RFC 3339 (wins over --since and over the checkpoint).
    #[arg(long, value_name = "TIME")]
    start: Option<DateTime<Utc>>,

    /// Window end, RFC 3339 (default: now).
    #[arg(long, value_name = "TIME")]
    end: Option<DateTime<Utc>>,

    /// Only findings of this severity.
    #[arg(long, value_enum, ignore_case = true)]
    severity: Option<Severity>,

    /// Only findings of this category, as Qualys names it.
    #[arg(long, value_name = "NAME")]
    category: Option<String>,

    /// A QQL filter, e.g. 'tc.findings.cloudProvider: AWS'.
    #[arg(long, value_name = "QQL")]
    query: Option<String>,

    /// Findings per page.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
    page_size: u64,

    /// Stop with an error after this many pages (guards against a gateway that never ends).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    max_pages: u64,

    /// Retries per API call on 429, 5xx, timeouts and broken connections.
    #[arg(long, value_name = "N", default_value_t = 5)]
    retries: u32,

    /// First backoff between retries; it doubles, with jitter.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "500ms")]
    retry_delay: Duration,

    /// Timeout of one API request.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "30s")]
    timeout: Duration,

    /// Keep the checkpoint here, so the next run neither misses nor repeats findings.
    #[arg(long, value_name = "PATH")]
    state_file: Option<PathBuf>,

    /// How far before the checkpoint the next window starts (late-indexed findings).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "15m")]
    overlap: Duration,

    /// Run once and exit (the default; the CronJob form).
    #[arg(long, conflicts_with = "watch")]
    once: bool,

    /// Keep running: sync, wait --interval, sync again; SIGTERM or SIGINT stops it cleanly.
    #[arg(long)]
    watch: bool,

    /// Time between two syncs with --watch.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "1h")]
    interval: Duration,

    /// Apply the policies to the cluster (not available in this version: use --output-dir and kubectl apply).
    #[arg(long)]
    apply: bool,

    /// Write one YAML file per policy into DIR (<name>.yaml; namespaced ones as
    /// <namespace>/<name>.yaml) instead of printing them.
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

    /// No progress bar.
    #[arg(short, long)]
    quiet: bool,
}

const EXAMPLES: &str = "\
Examples:
  kubectl qualys-respond sync --from-file findings.json
  kubectl qualys-respond sync --from-file - -o json < findings.jsonl
  kubectl qualys-respond sync --from-file findings.json --output-dir policies/ --action Sigkill
  QUALYS_USERNAME=api-user QUALYS_PASSWORD=… kubectl qualys-respond sync --platform US2 --since 24h
  kubectl qualys-respond sync --platform EU1 --username-file /secrets/username --password-file /secrets/password \\
      --once --hours=24 --state-file /state/checkpoint.json --output-dir /policies
  kubectl qualys-respond sync --platform US1 --watch --interval 1h --state-file state.json --output-dir policies/";

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Yaml,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "UPPER")]
enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }
}

pub fn run(args: SyncArgs) -> anyhow::Result<Exit> {
    if args.apply {
        bail!(
            "--apply is not available in this version yet; write the policies with --output-dir and apply them with kubectl apply -R -f DIR"
        );
    }
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the runtime")?;
    runtime.block_on(async {
        let mut registry = Registry::with_defaults(Limits::default()).context("cannot load the default mappings")?;
        if !args.watch {
            return once(&args, &mut registry).await;
        }
        loop {
            let exit = tokio::select! {
                exit = once(&args, &mut registry) => exit,
                () = shutdown() => return Ok(Exit::Ok),
            };
            if let Err(error) = &exit {
                // A failed sync does not stop the controller; the next one retries.
                eprintln!("error: {error:#}");
            }
            tracing::info!(next_in = ?args.interval, "waiting for the next sync");
            tokio::select! {
                () = tokio::time::sleep(args.interval) => {}
                () = shutdown() => return Ok(Exit::Ok),
            }
        }
    })
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("signal received; stopping before the next write");
}

async fn once(args: &SyncArgs, registry: &mut Registry) -> anyhow::Result<Exit> {
    let source = source(args)?;
    let state = args.state_file.as_ref().map(|path| StateFile { path: path.clone(), overlap: args.overlap });
    let checkpoint = match &state {
        Some(state) => state.load()?,
        None => None,
    };
    let options = Options {
        mode: args.action,
        versions: args.tetragon_version.map_or_else(|| TetragonVersion::ALL.to_vec(), |v| vec![v]),
    };
    let bar = progress_bar(args.quiet);
    let mut progress = |done: u64, total: Option<u64>| {
        if let Some(total) = total {
            bar.set_length(total);
        }
        bar.set_position(done);
    };
    let fetched = sync::fetch(source, registry, &options, checkpoint.as_ref(), &mut progress).await;
    bar.finish_and_clear();
    let Fetched { outcome, window } = fetched?;
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
    if let Some(state) = &state {
        state.advance(checkpoint.as_ref(), &outcome)?;
    }
    let mut summary = String::new();
    if let Some(window) = window {
        summary.push_str(&format!("window: {} to {}\n", window.start.to_rfc3339(), window.end.to_rfc3339()));
    }
    summary.push_str(&outcome.report.render(match args.action {
        Mode::Post => "audit mode: enforcing actions are Post",
        Mode::Sigkill => "enforce mode: enforcing actions are Sigkill",
    }));
    eprint!("{summary}");
    Ok(if outcome.report.has_errors() { Exit::Problems } else { Exit::Ok })
}

fn source(args: &SyncArgs) -> anyhow::Result<Source> {
    if let Some(path) = &args.from_file {
        let name = path.display().to_string();
        let text = read_input(path).with_context(|| format!("cannot read findings from {name}"))?;
        return Ok(Source::Text { name, text });
    }
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let gateway = match (&args.gateway, args.platform) {
        (Some(url), _) => url.clone(),
        (None, Some(platform)) => platform.gateway().to_string(),
        (None, None) => match (env("QUALYS_GATEWAY_URL"), env("QUALYS_PLATFORM")) {
            (Some(url), _) => url,
            (None, Some(name)) => <Platform as ValueEnum>::from_str(&name, true)
                .map_err(|_| anyhow::anyhow!("QUALYS_PLATFORM={name} is not a Qualys platform (US1 … US4, EU1, EU2, IN1, CA1, AE1, UK1, AU1, KSA1)"))?
                .gateway()
                .to_string(),
            (None, None) => bail!(
                "no source of findings: pass --from-file, or --gateway/--platform (or QUALYS_GATEWAY_URL/QUALYS_PLATFORM) to fetch from the Qualys API"
            ),
        },
    };
    let credentials = Sources {
        username_file: args.username_file.as_deref(),
        password_file: args.password_file.as_deref(),
        username: env("QUALYS_USERNAME"),
        password: std::env::var("QUALYS_PASSWORD").ok(),
        token: env("QUALYS_ACCESS_TOKEN"),
    }
    .resolve()?;
    let retry = RetryPolicy { retries: args.retries, initial_delay: args.retry_delay, ..RetryPolicy::default() };
    let client =
        Client::new(ClientConfig { gateway, timeout: args.timeout, retry }, credentials, args.ca_file.as_deref())?;
    let end = args.end.unwrap_or_else(Utc::now);
    let since = args
        .since
        .or(args.hours.map(|h| Duration::from_secs(h.saturating_mul(3600))))
        .unwrap_or(Duration::from_secs(24 * 3600));
    let start = match args.start {
        Some(start) => start,
        None => end - chrono::Duration::from_std(since).context("--since is too long")?,
    };
    if start >= end {
        bail!("the window is empty: start {start} is not before end {end}");
    }
    let query = FindingsQuery {
        start,
        end,
        severity: args.severity.map(|s| s.as_str().to_string()),
        category: args.category.clone(),
        query: args.query.clone(),
    };
    Ok(Source::Api {
        client: Box::new(client),
        query,
        start_is_explicit: args.start.is_some(),
        page_size: args.page_size,
        max_pages: args.max_pages,
    })
}

fn progress_bar(quiet: bool) -> indicatif::ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} fetching findings {pos}/{len} [{elapsed}]") {
        bar.set_style(style);
    }
    bar
}
