//! The flags that say which cluster's findings a run takes, shared by `sync`
//! and `serve`.

use clap::Args;

use crate::finding::ClusterScope;

/// One cluster's findings, or every cluster's.
#[derive(Debug, Clone, Default, Args)]
pub struct ClusterArgs {
    /// This cluster's name as Qualys knows it: only its findings are taken,
    /// and the name is written on every object (label
    /// qualys-respond.io/cluster) and in the checkpoint.
    #[arg(long, env = "QUALYS_RESPOND_CLUSTER_NAME", value_name = "NAME", value_parser = label_value,
        help_heading = "Which findings")]
    pub cluster_name: Option<String>,

    /// Applying with no --cluster-name: take the findings of every cluster
    /// the Qualys account sees (without it, findings that name a cluster are refused).
    #[arg(long, conflicts_with = "cluster_name", help_heading = "Which findings")]
    pub all_clusters: bool,
}

impl ClusterArgs {
    /// The scope of a run; `applying` when it writes to a cluster.
    pub fn scope(&self, applying: bool) -> ClusterScope {
        match (&self.cluster_name, self.all_clusters || !applying) {
            (Some(name), _) => ClusterScope::Named(name.clone()),
            (None, true) => ClusterScope::All,
            (None, false) => ClusterScope::Unnamed,
        }
    }
}

/// A cluster name usable as a label value.
fn label_value(text: &str) -> Result<String, String> {
    if crate::names::is_label_value(text) {
        Ok(text.to_string())
    } else {
        Err(format!(
            "{text:?} is not usable as a label value (1 to 63 letters, digits, '-', '_' or '.', beginning and ending with a letter or digit)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_label_values_and_the_scope_follows_the_flags() {
        assert!(label_value("prod-eu.1").is_ok());
        for bad in ["", "-prod", "prod/eu", &"x".repeat(64)] {
            assert!(label_value(bad).is_err(), "{bad}");
        }
        let named = ClusterArgs { cluster_name: Some("prod".into()), all_clusters: false };
        assert_eq!(named.scope(true), ClusterScope::Named("prod".into()));
        assert_eq!(ClusterArgs::default().scope(true), ClusterScope::Unnamed);
        assert_eq!(ClusterArgs::default().scope(false), ClusterScope::All);
        assert_eq!(ClusterArgs { cluster_name: None, all_clusters: true }.scope(true), ClusterScope::All);
    }
}
