//! The flags that say where policies may enforce, shared by every command
//! that writes policies.

use clap::Args;

use crate::guardrails::Guardrails;

/// System namespaces: where policies stay in audit mode and which
/// cluster-wide policies leave out.
#[derive(Debug, Clone, Default, Args)]
pub struct GuardArgs {
    /// Another namespace where policies must stay in audit mode (default: kube-system,
    /// kube-public, kube-node-lease, tetragon, qualys); repeatable.
    #[arg(long = "system-namespace", value_name = "NS", help_heading = "Guardrails")]
    system_namespace: Vec<String>,

    /// Allow enforcement in this system namespace (and cluster-wide policies to reach it); repeatable.
    #[arg(long = "allow-enforce-in", value_name = "NS", help_heading = "Guardrails")]
    allow_enforce_in: Vec<String>,
}

impl GuardArgs {
    /// The guardrails these flags describe (without the cluster's ranges).
    pub fn guardrails(&self) -> Guardrails {
        Guardrails::new(&self.system_namespace, &self.allow_enforce_in)
    }
}
