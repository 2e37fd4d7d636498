//! `install` prints the manifests that run the tool in a cluster;
//! `uninstall` prints what to delete, and with `--policies` deletes every
//! policy we manage, after a confirmation.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};

use super::cluster::{self, WriteArgs};
use super::exit::Exit;
use super::io::print_stdout;
use crate::install::{Install, InstallMode};
use crate::output;
use crate::policy::Mode;
use crate::qualys::platform::Platform;
use crate::reconcile::Change;

/// Print the manifests that run kubectl-qualys-respond in a cluster.
///
/// Pipe them to `kubectl apply -f -`. Each mode gets its own service
/// account with only the rights it uses. Credentials are never printed:
/// the pods read them from a Secret you create (see the after-help).
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("clusters").required(true).args(["cluster_name", "all_clusters"])))]
#[command(after_help = "Examples:
  kubectl qualys-respond install --cluster-name prod-eu | kubectl apply -f -
  kubectl qualys-respond install --mode cronjob,webhook --cluster-name prod-eu --service-monitor | kubectl apply -f -

Credentials: create the Secret the pods read (keys username and password; for --mode webhook
also webhook-secret, the whsec_… signing secret, and api-tokens, one bearer token per line):
  kubectl -n qualys-respond create secret generic qualys-credentials \\
      --from-literal=username=… --from-file=password=./password
or let the External Secrets Operator make it from Vault or a cloud secret manager (an
ExternalSecret whose target is qualys-credentials with those keys). Never put them in a
ConfigMap or in the manifests.")]
pub struct InstallArgs {
    /// How it runs; several may be combined (cronjob,webhook).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "cronjob")]
    mode: Vec<InstallMode>,

    /// The namespace everything goes into.
    #[arg(short, long, value_name = "NS", default_value = "qualys-respond")]
    namespace: String,

    /// The container image.
    #[arg(long, value_name = "IMAGE", default_value = concat!("ghcr.io/qualys-respond/kubectl-qualys-respond:v", env!("CARGO_PKG_VERSION")))]
    image: String,

    /// The CronJob's schedule.
    #[arg(long, value_name = "CRON", default_value = "0 * * * *")]
    schedule: String,

    /// New policies in audit mode (Post, the default) or enforcing (Sigkill).
    #[arg(long, value_enum, default_value = "Post")]
    action: Mode,

    /// This cluster's name as Qualys knows it: only its findings are applied
    /// (or --all-clusters; one of the two is required).
    #[arg(long, value_name = "NAME")]
    cluster_name: Option<String>,

    /// Without --cluster-name: apply every cluster's findings here.
    #[arg(long, conflicts_with = "cluster_name")]
    all_clusters: bool,

    /// The Qualys platform the modes fetch from.
    #[arg(long, value_enum, ignore_case = true, default_value = "US1")]
    platform: Platform,

    /// The Secret with the credentials (keys username, password; webhook-secret and api-tokens for the webhook).
    #[arg(long, value_name = "NAME", default_value = "qualys-credentials")]
    secret: String,

    /// Also let the modes manage the NetworkPolicy companions of IP blocks.
    #[arg(long)]
    network_policy: bool,

    /// A ServiceMonitor (Prometheus Operator) for the server's /metrics.
    #[arg(long)]
    service_monitor: bool,

    /// A NetworkPolicy that admits traffic to the server on its port only.
    #[arg(long)]
    server_network_policy: bool,
}

impl InstallArgs {
    fn install(&self) -> anyhow::Result<Install> {
        if let Some(name) = &self.cluster_name
            && !crate::names::is_label_value(name)
        {
            bail!("--cluster-name {name:?} is not usable as a label value");
        }
        if !crate::names::is_dns_label(&self.namespace) {
            bail!("--namespace {:?} is not a valid namespace name", self.namespace);
        }
        Ok(Install {
            modes: self.mode.clone(),
            namespace: self.namespace.clone(),
            image: self.image.clone(),
            schedule: self.schedule.clone(),
            action: self.action,
            cluster_name: self.cluster_name.clone(),
            all_clusters: self.all_clusters,
            platform: self.platform.to_string(),
            secret: self.secret.clone(),
            network_policy: self.network_policy,
            service_monitor: self.service_monitor,
            server_network_policy: self.server_network_policy,
        })
    }
}

/// Prints the manifests.
pub fn install(args: InstallArgs) -> anyhow::Result<Exit> {
    let objects = args.install()?.objects();
    print_stdout(&output::yaml_values(&objects)).context("cannot write to stdout")?;
    Ok(Exit::Ok)
}

/// Print what `install` made, for `kubectl delete -f -`; with --policies,
/// also delete every policy kubectl-qualys-respond manages.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  kubectl qualys-respond uninstall --mode cronjob,webhook | kubectl delete --ignore-not-found -f -
  kubectl qualys-respond uninstall --policies            # asks before deleting every managed policy")]
pub struct UninstallArgs {
    /// The modes that were installed (default: all of them; `kubectl delete
    /// --ignore-not-found` skips what is not there).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "cronjob,controller,webhook")]
    mode: Vec<InstallMode>,

    /// The namespace they were installed into.
    #[arg(short = 'n', long = "install-namespace", value_name = "NS", default_value = "qualys-respond")]
    namespace: String,

    /// The server's ServiceMonitor was installed (--service-monitor).
    #[arg(long)]
    service_monitor: bool,

    /// Also delete, in the cluster, every TracingPolicy and NetworkPolicy we manage.
    #[arg(long)]
    policies: bool,

    /// With --policies: do not ask.
    #[arg(long, requires = "policies")]
    yes: bool,

    #[command(flatten)]
    write: WriteArgs,
}

/// Prints the objects to delete; deletes the managed policies if asked.
pub fn uninstall(args: UninstallArgs) -> anyhow::Result<Exit> {
    let install = Install {
        modes: args.mode.clone(),
        namespace: args.namespace.clone(),
        image: String::new(),
        schedule: String::new(),
        action: Mode::Post,
        cluster_name: None,
        all_clusters: false,
        platform: String::new(),
        secret: String::new(),
        network_policy: false,
        service_monitor: args.service_monitor,
        server_network_policy: true,
    };
    // Names only, the namespace last: what `kubectl delete -f -` needs.
    let mut objects: Vec<Value> = install
        .objects()
        .iter()
        .map(|o| {
            json!({"apiVersion": o["apiVersion"], "kind": o["kind"], "metadata": {
            "name": o["metadata"]["name"], "namespace": o["metadata"]["namespace"]}})
        })
        .map(|mut o| {
            if o["metadata"]["namespace"].is_null() {
                o["metadata"].as_object_mut().map(|m| m.remove("namespace"));
            }
            o
        })
        .collect();
    objects.reverse();
    if !args.policies {
        print_stdout(&output::yaml_values(&objects)).context("cannot write to stdout")?;
        return Ok(Exit::Ok);
    }
    let runtime = cluster::runtime()?;
    runtime.block_on(async {
        let cluster = args.write.connect().await?;
        cluster.ensure_tetragon().await?;
        let managed: Vec<serde_json::Value> = cluster.managed(None).await?.into_objects().collect();
        if managed.is_empty() {
            eprintln!("no managed policies found");
            return Ok(Exit::Ok);
        }
        let names: Vec<String> = managed.iter().map(crate::cluster::resource::display).collect();
        if !args.yes && !confirm(&names)? {
            eprintln!("nothing was deleted");
            return Ok(Exit::Error);
        }
        let changes =
            managed.into_iter().map(|existing| Change::Delete { existing, reason: "uninstall".to_string() }).collect();
        cluster::carry_out(&cluster, changes, args.write.dry_run).await?;
        Ok(Exit::Ok)
    })
}

/// Asks on the terminal whether to delete `names`; refuses when stdin is
/// not a terminal (a script must say --yes).
fn confirm(names: &[String]) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "--policies would delete {} managed policies; stdin is not a terminal to confirm: pass --yes",
            names.len()
        );
    }
    let mut stderr = std::io::stderr().lock();
    writeln!(stderr, "This deletes {} policies kubectl-qualys-respond manages:", names.len())?;
    for name in names {
        writeln!(stderr, "  {name}")?;
    }
    write!(stderr, "Delete them? [y/N] ")?;
    stderr.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}
