//! The leader-election flags of the commands that do periodic work with
//! several replicas (`sync --watch --apply`, `serve --apply`).

use std::time::Duration;

use clap::Args;

use crate::cluster::Cluster;
use crate::cluster::lease::{Election, Leader};

/// `--leader-elect` and the Lease it holds.
#[derive(Debug, Clone, Args)]
pub struct ElectionArgs {
    /// Do the periodic work (syncs; block expiry in serve) only while holding a
    /// coordination.k8s.io Lease, so that of several replicas exactly one does it.
    #[arg(long, help_heading = "Leader election")]
    pub leader_elect: bool,

    /// The Lease's name.
    #[arg(long, value_name = "NAME", default_value = "qualys-respond", help_heading = "Leader election")]
    pub lease_name: String,

    /// The Lease's namespace (default: the context's or the pod's namespace).
    #[arg(long, value_name = "NS", help_heading = "Leader election")]
    pub lease_namespace: Option<String>,

    /// How long a Lease not renewed stays its holder's: a failover takes at most this long.
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::wait, default_value = "15s",
        help_heading = "Leader election")]
    pub lease_duration: Duration,

    /// This replica's name in the Lease (default: the host name and process id).
    #[arg(long, env = "POD_NAME", value_name = "NAME", help_heading = "Leader election")]
    pub leader_identity: Option<String>,
}

impl ElectionArgs {
    /// Starts the election when `--leader-elect` asks for it.
    pub fn start(&self, cluster: &Cluster) -> Option<Leader> {
        if !self.leader_elect {
            return None;
        }
        let identity = self.leader_identity.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .or_else(|_| std::env::var("HOSTNAME"))
                .unwrap_or_else(|_| "qualys-respond".to_string());
            format!("{host}_{}", std::process::id())
        });
        let namespace = self.lease_namespace.clone().unwrap_or_else(|| cluster.default_namespace().to_string());
        Some(Leader::start(
            cluster,
            Election { namespace, name: self.lease_name.clone(), identity, duration: self.lease_duration },
        ))
    }
}
