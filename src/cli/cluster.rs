//! What the commands that touch the cluster share: the runtime, the write
//! flags, and finishing a run with its report.

use anyhow::Context;

use super::exit::Exit;
use super::io::print_stdout;
use crate::cluster::apply::{DryRun, Report, execute};
use crate::cluster::{Cluster, KubeArgs};
use crate::reconcile::Change;

/// The flags of every command that writes to the cluster.
#[derive(Debug, clap::Args)]
pub struct WriteArgs {
    /// 'client' shows what would change; 'server' asks the server to validate without storing.
    #[arg(long, value_enum, value_name = "MODE", num_args = 0..=1, default_missing_value = "client",
        default_value = "none")]
    pub dry_run: DryRun,

    /// Take over fields another field manager (a person's `kubectl edit`, a
    /// GitOps tool) set on our objects; without it such a write is refused
    /// and their edit stays.
    #[arg(long, help_heading = "Cluster")]
    pub force_conflicts: bool,

    #[command(flatten)]
    pub kube: KubeArgs,

    #[command(flatten)]
    pub guard: super::guard::GuardArgs,
}

impl WriteArgs {
    /// Connects as `--kubeconfig`/`--context` say, with `--force-conflicts`.
    pub async fn connect(&self) -> Result<Cluster, crate::cluster::ClusterError> {
        Ok(Cluster::connect(&self.kube).await?.forcing_conflicts(self.force_conflicts))
    }
}

/// A single-threaded runtime for one command.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the runtime")
}

/// Applies `changes`, prints the report on stdout, and fails if a write failed.
pub async fn carry_out(cluster: &Cluster, changes: Vec<Change>, dry_run: DryRun) -> anyhow::Result<Report> {
    let report = execute(cluster, changes, dry_run).await;
    print_stdout(&report.render()).context("cannot write to stdout")?;
    if let Some((name, error)) = &report.failed {
        anyhow::bail!("{name} was not applied: {error}");
    }
    Ok(report)
}

/// Exit code after errors found while planning: print them, write nothing.
pub fn refuse(errors: &[impl std::fmt::Display]) -> Exit {
    for error in errors {
        eprintln!("error: {error}");
    }
    eprintln!("nothing was written");
    Exit::Error
}
