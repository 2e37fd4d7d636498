//! `sync`: findings in (a file or the CDR API), validated TracingPolicies out.
//! `args.rs` is what the user typed, `plan.rs` what it resolves to; this
//! module runs it: once, or as a controller with `--watch`.

mod args;
mod plan;

pub use args::SyncArgs;
pub(super) use plan::Target;

use std::io::IsTerminal;
use std::sync::{Arc, RwLock};

use anyhow::{Context, bail};
use chrono::Utc;

use super::cluster;
use super::exit::Exit;
use super::io::print_stdout;
use crate::checkpoint::Checkpoint;
use crate::cluster::apply::DryRun;
use crate::cluster::{Cluster, lease};
use crate::finding::category_key;
use crate::guardrails::Guardrails;
use crate::mapper::Registry;
use crate::output;
use crate::pipeline::Options;
use crate::policy::Mode;
use crate::reconcile::Change;
use crate::reputation::Judge;
use crate::sync::{self, Fetched, Store};
use crate::{reconcile, rollout};
use args::Format;

/// `sync`: prints the policies, or applies them with --apply.
pub fn run(args: SyncArgs) -> anyhow::Result<Exit> {
    let target = plan::target(&args)?;
    run_as(args, target)
}

/// `sync` with its policies going to `target` (`diff` is [`Target::Diff`]).
pub(super) fn run_as(args: SyncArgs, target: Target) -> anyhow::Result<Exit> {
    plan::check(&args, target)?;
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
        let source = plan::source(args)?;
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
            versions: plan::versions(args),
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
                        Format::Yaml => output::yaml_stream(&objects),
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
            versions: plan::versions(self.args),
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
