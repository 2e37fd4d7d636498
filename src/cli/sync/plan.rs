//! What `sync`'s command line resolves to: where the policies go, where
//! the findings come from (the file, or the API with its credentials, client
//! and window) and which Tetragon versions judge them. Flags that do not fit
//! together are refused here, before anything is read or written.

use anyhow::{Context, bail};
use chrono::Utc;
use clap::ValueEnum;

use super::args::SyncArgs;
use crate::cli::io::read_input;
use crate::cluster::apply::DryRun;
use crate::policy::validate::TetragonVersion;
use crate::qualys::client::{Client, ClientConfig, FindingsQuery};
use crate::qualys::credentials::Sources;
use crate::qualys::platform::Platform;
use crate::qualys::retry::RetryPolicy;
use crate::sync::{Source, Window};

/// What a run does with its policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::cli) enum Target {
    /// Print them or write them to a directory.
    Output,
    /// Apply them to the cluster.
    Apply,
    /// Show what applying them would change.
    Diff,
}

/// Where `sync` sends its policies: the cluster with --apply, else stdout
/// or a directory.
pub(super) fn target(args: &SyncArgs) -> anyhow::Result<Target> {
    if !args.apply && (args.prune || args.dry_run != DryRun::None) {
        bail!("--prune and --dry-run act on what --apply writes; add --apply (or use kubectl qualys-respond diff)");
    }
    Ok(if args.apply { Target::Apply } else { Target::Output })
}

/// Refuses the flags that make no sense for `target`.
pub(super) fn check(args: &SyncArgs, target: Target) -> anyhow::Result<()> {
    if args.election.leader_elect && !(args.watch && target == Target::Apply) {
        bail!("--leader-elect is for sync --watch --apply (several replicas of a controller)");
    }
    Ok(())
}

/// The Tetragon CRD versions every object must pass.
pub(super) fn versions(args: &SyncArgs) -> Vec<TetragonVersion> {
    args.tetragon_version.map_or_else(|| TetragonVersion::ALL.to_vec(), |v| vec![v])
}

/// Where the findings come from.
pub(super) fn source(args: &SyncArgs) -> anyhow::Result<Source> {
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
