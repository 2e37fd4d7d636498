//! `sync`: findings in (a file or the CDR API), validated TracingPolicies out.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};

use super::cluster;
use super::exit::Exit;
use super::guard::GuardArgs;
use super::io::{print_stdout, read_input};
use super::mappers::MapperArgs;
use super::reputation::ReputationArgs;
use std::sync::{Arc, RwLock};

use crate::checkpoint::Checkpoint;
use crate::cluster::apply::DryRun;
use crate::cluster::{Cluster, KubeArgs, lease};
use crate::finding::category_key;
use crate::guardrails::Guardrails;
use crate::mapper::Registry;
use crate::output;
use crate::pipeline::Options;
use crate::policy::Mode;
use crate::policy::validate::TetragonVersion;
use crate::qualys::client::{Client, ClientConfig, FindingsQuery};
use crate::qualys::credentials::Sources;
use crate::qualys::platform::Platform;
use crate::qualys::retry::RetryPolicy;
use crate::reconcile::Change;
use crate::reputation::Judge;
use crate::sync::{self, Fetched, Source, Store, Window};
use crate::{reconcile, rollout};

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
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::span, conflicts_with = "hours")]
    since: Option<Duration>,

    /// Same as --since, in hours (the CronJob form: --hours=24).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=87_840))]
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
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::wait, default_value = "500ms")]
    retry_delay: Duration,

    /// Timeout of one API request.
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::wait, default_value = "30s")]
    timeout: Duration,

    /// Keep the checkpoint here, so the next run neither misses nor repeats findings.
    #[arg(long, value_name = "PATH")]
    state_file: Option<PathBuf>,

    /// How far before the checkpoint the next window starts (late-indexed findings).
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::span_or_zero, default_value = "15m")]
    overlap: Duration,

    /// Run once and exit (the default; the CronJob form).
    #[arg(long, conflicts_with = "watch")]
    once: bool,

    /// Keep running: sync, wait --interval, sync again; SIGTERM or SIGINT stops it cleanly.
    #[arg(long)]
    watch: bool,

    /// Time between two syncs with --watch.
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::span, default_value = "1h")]
    interval: Duration,

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
    dry_run: DryRun,

    /// With --apply: delete the policies we manage that lost their reason to
    /// exist (a category no mapper handles any more; with --prune-after, audit
    /// policies without a finding for that long). Never touches an object
    /// without our managed-by label, and never deletes an enforced policy for age.
    #[arg(long)]
    prune: bool,

    /// With --prune: how long an audit-mode policy may go without a finding
    /// (`0s` prunes every audit policy without a finding in this run).
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::span_or_zero, requires = "prune")]
    prune_after: Option<Duration>,

    /// With --apply: take over fields another field manager set on our
    /// objects; without it such a write is refused and their edit stays.
    #[arg(long, requires = "apply", help_heading = "Cluster")]
    force_conflicts: bool,

    /// Namespace of the checkpoint ConfigMap with --apply (default: the context's namespace).
    #[arg(short, long, value_name = "NS")]
    namespace: Option<String>,

    #[command(flatten)]
    clusters: super::scope::ClusterArgs,

    #[command(flatten)]
    election: super::election::ElectionArgs,

    #[command(flatten)]
    kube: KubeArgs,

    #[command(flatten)]
    mappers: MapperArgs,

    #[command(flatten)]
    reputation: ReputationArgs,

    #[command(flatten)]
    guard: GuardArgs,

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
  kubectl qualys-respond sync --platform US1 --watch --interval 1h --state-file state.json --output-dir policies/
  kubectl qualys-respond sync --once --hours=24 --apply                # the CronJob: audit mode, checkpoint in the cluster
  kubectl qualys-respond sync --from-file findings.json --apply --dry-run=server
  kubectl qualys-respond sync --platform US1 --apply --prune --prune-after 30d";

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

/// What a run does with its policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Target {
    /// Print them or write them to a directory.
    Output,
    /// Apply them to the cluster.
    Apply,
    /// Show what applying them would change.
    Diff,
}

pub fn run(args: SyncArgs) -> anyhow::Result<Exit> {
    if !args.apply && (args.prune || args.dry_run != DryRun::None) {
        bail!("--prune and --dry-run act on what --apply writes; add --apply (or use kubectl qualys-respond diff)");
    }
    let target = if args.apply { Target::Apply } else { Target::Output };
    run_as(args, target)
}

pub(super) fn run_as(args: SyncArgs, target: Target) -> anyhow::Result<Exit> {
    let runtime = cluster::runtime()?;
    runtime.block_on(async {
        let cluster = match target {
            Target::Output => None,
            Target::Apply | Target::Diff => {
                let cluster = Cluster::connect(&args.kube).await?.forcing_conflicts(args.force_conflicts);
                cluster.ensure_tetragon().await?;
                Some(cluster)
            }
        };
        let mut registry = args.mappers.registry()?;
        if args.election.leader_elect && !(args.watch && target == Target::Apply) {
            bail!("--leader-elect is for sync --watch --apply (several replicas of a controller)");
        }
        if !args.watch {
            let guardrails = guardrails(&args, target, cluster.as_ref()).await?;
            let run = Run { args: &args, target, cluster: cluster.as_ref(), guardrails };
            return run.once(&mut registry).await;
        }
        let mut leader = cluster.as_ref().and_then(|cluster| args.election.start(cluster));
        loop {
            if let Some(leader) = &mut leader {
                tokio::select! {
                    () = lease::until_leading(&mut leader.leading) => {}
                    () = crate::signal::shutdown() => break,
                }
            }
            // The cluster's addresses as they are now (nodes come and go).
            let once = async {
                let guardrails = guardrails(&args, target, cluster.as_ref()).await?;
                Run { args: &args, target, cluster: cluster.as_ref(), guardrails }.once(&mut registry).await
            };
            let exit = tokio::select! {
                exit = once => exit,
                () = lost(leader.as_mut()) => {
                    eprintln!("warning: lost the lease; this sync was stopped, another replica takes over");
                    continue;
                }
                () = crate::signal::shutdown() => break,
            };
            if let Err(error) = &exit {
                // A failed sync does not stop the controller; the next one retries.
                eprintln!("error: {error:#}");
            }
            tracing::info!(next_in = ?args.interval, "waiting for the next sync");
            tokio::select! {
                () = tokio::time::sleep(args.interval) => {}
                () = crate::signal::shutdown() => break,
            }
        }
        if let Some(leader) = leader {
            leader.stop().await;
        }
        Ok(Exit::Ok)
    })
}

/// The guardrails with the cluster's own addresses. Applying without them
/// is refused: a guardrail that cannot see is no guardrail.
async fn guardrails(args: &SyncArgs, target: Target, cluster: Option<&Cluster>) -> anyhow::Result<Guardrails> {
    let Some(cluster) = cluster else { return Ok(args.guard.guardrails()) };
    match cluster.protected().await {
        Ok(protected) => Ok(args.guard.guardrails().with_cluster(protected)),
        Err(error) if target == Target::Apply => bail!(
            "{error}: the guardrails need the cluster's addresses (the reads of deploy/rbac.yaml); nothing was written"
        ),
        Err(error) => {
            eprintln!("warning: {error}; only the built-in ranges and ports are protected");
            Ok(args.guard.guardrails())
        }
    }
}

/// Resolves when `leader` stops leading; never without an election.
async fn lost(leader: Option<&mut lease::Leader>) {
    match leader {
        Some(leader) => lease::until_not_leading(&mut leader.leading).await,
        None => std::future::pending().await,
    }
}

/// One sync's settings and where its policies go.
struct Run<'a> {
    args: &'a SyncArgs,
    target: Target,
    cluster: Option<&'a Cluster>,
    /// With the cluster's own ranges when there is a cluster.
    guardrails: Guardrails,
}

impl Run<'_> {
    async fn once(&self, registry: &mut Registry) -> anyhow::Result<Exit> {
        let args = self.args;
        let source = source(args)?;
        let applying_to = self.cluster.filter(|_| self.target == Target::Apply);
        let store =
            Store::choose(args.state_file.as_deref(), applying_to, args.from_file.is_none(), args.namespace.as_deref());
        let scope = args.clusters.scope(self.target != Target::Output);
        let checkpoint = match &store {
            Some(store) => store.load(&scope).await?,
            None => None,
        };
        let options = Options {
            mode: args.action,
            versions: self.versions(),
            guardrails: self.guardrails.clone(),
            cluster: scope.clone(),
        };
        let bar = progress_bar(args.quiet);
        let mut progress = |done: u64, total: Option<u64>| {
            if let Some(total) = total {
                bar.set_length(total);
            }
            bar.set_position(done);
        };
        let judge = self.judge()?;
        let fetched = sync::fetch(source, registry, &options, checkpoint.as_ref(), judge.as_ref(), &mut progress).await;
        bar.finish_and_clear();
        let Fetched { outcome, window } = fetched?;
        if let Some(refusal) = outcome.report.unnamed_refusal() {
            bail!("{refusal}");
        }
        let objects: Vec<_> = outcome.policies.iter().map(|a| &a.object).collect();
        if let Some(dir) = &args.output_dir {
            let written = output::write_dir(dir, &objects)
                .with_context(|| format!("cannot write policies to {}", dir.display()))?;
            tracing::info!(files = written.len(), dir = %dir.display(), "policies written");
        }
        let mut exit = if outcome.report.has_errors() { Exit::Problems } else { Exit::Ok };
        let mut advance = true;
        match (self.target, self.cluster) {
            (Target::Output, _) | (_, None) => {
                if args.output_dir.is_none() {
                    let text = match args.output {
                        Format::Yaml => output::yaml_stream(&objects).context("cannot render YAML")?,
                        Format::Json => output::json_list(&objects),
                    };
                    print_stdout(&text).context("cannot write to stdout")?;
                }
            }
            (target, Some(cluster)) => {
                let changes = match self.plan(cluster, registry, &outcome).await? {
                    Ok(changes) => changes,
                    Err(errors) => return Ok(cluster::refuse(&errors)),
                };
                if target == Target::Diff {
                    let diff = crate::cluster::diff::render(cluster, &changes).await?;
                    print_stdout(&diff).context("cannot write to stdout")?;
                    advance = false;
                    if !diff.is_empty() && exit == Exit::Ok {
                        exit = Exit::Changes;
                    }
                } else {
                    cluster::carry_out(cluster, changes, args.dry_run).await?;
                    advance = args.dry_run == DryRun::None;
                }
            }
        }
        if advance {
            let handled = outcome.handled.iter().map(|(id, at)| (id.as_str(), *at));
            if let Some(mut next) = Checkpoint::advance(checkpoint.as_ref(), handled, args.overlap) {
                next.cluster = scope.name().map(str::to_string);
                if let Some(store) = &store {
                    store.save(&next).await?;
                }
            }
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
        Ok(exit)
    }

    /// The reputation judge: when --feed, --allow or AbuseIPDB ask for one,
    /// and with a cluster, whose own ranges are never blocked.
    fn judge(&self) -> anyhow::Result<Option<Judge>> {
        if !self.args.reputation.configured() && self.cluster.is_none() {
            return Ok(None);
        }
        let protected = Arc::new(RwLock::new(self.guardrails.protected.clone()));
        Ok(Some(self.args.reputation.judge(protected)?))
    }

    fn versions(&self) -> Vec<TetragonVersion> {
        self.args.tetragon_version.map_or_else(|| TetragonVersion::ALL.to_vec(), |v| vec![v])
    }

    /// The changes that bring the cluster to this run's policies.
    async fn plan(
        &self,
        cluster: &Cluster,
        registry: &Registry,
        outcome: &crate::pipeline::Outcome,
    ) -> anyhow::Result<Result<Vec<Change>, Vec<reconcile::ReconcileError>>> {
        let context = reconcile::Context {
            actor: cluster.actor().await,
            now: Utc::now(),
            versions: self.versions(),
            guardrails: self.guardrails.clone(),
        };
        let handled = |category: &str| registry.handles(&category_key(category));
        let rules = reconcile::PruneRules { after: self.args.prune_after, handled: &handled };
        let plan = rollout::gather(cluster, rollout::desired(outcome))
            .await?
            .plan(&context, self.args.prune.then_some(&rules));
        for (namespace, count) in &plan.gone_namespaces {
            eprintln!("warning: namespace {namespace} no longer exists; its {count} policy(ies) were not applied");
        }
        Ok(if plan.errors.is_empty() { Ok(plan.changes) } else { Err(plan.errors) })
    }
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
    let Window { start, end } = Window::resolve(args.start, args.end, args.since, args.hours, Utc::now())?;
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
