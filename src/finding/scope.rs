//! Which cluster's findings a run takes. A Qualys account covers many
//! clusters; a run that applies policies must take only the findings of the
//! cluster it writes to, or a CronJob in `staging` writes `prod`'s policies.

use super::Finding;

/// Which findings a run takes, by the cluster they name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ClusterScope {
    /// Every finding: output without `--apply`, or `--all-clusters`.
    #[default]
    All,
    /// Only the findings of this cluster (`--cluster-name`).
    Named(String),
    /// Applying with no cluster name: a finding that names a cluster is
    /// refused (the run says how to set the name), one that names none is taken.
    Unnamed,
}

/// Why a finding is not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutOfScope {
    /// It names another cluster.
    OtherCluster(String),
    /// It names no cluster, and the run takes one cluster's findings only.
    NoCluster,
    /// It names a cluster, and the run was given no name.
    Unnamed(String),
}

impl ClusterScope {
    /// `Ok` when the run takes `finding`.
    pub fn admit(&self, finding: &Finding) -> Result<(), OutOfScope> {
        match (self, finding.cluster.as_deref()) {
            (ClusterScope::All, _) | (ClusterScope::Unnamed, None) => Ok(()),
            (ClusterScope::Named(name), Some(cluster)) if cluster == name => Ok(()),
            (ClusterScope::Named(_), Some(cluster)) => Err(OutOfScope::OtherCluster(cluster.to_string())),
            (ClusterScope::Named(_), None) => Err(OutOfScope::NoCluster),
            (ClusterScope::Unnamed, Some(cluster)) => Err(OutOfScope::Unnamed(cluster.to_string())),
        }
    }

    /// The cluster's name, when the run has one.
    pub fn name(&self) -> Option<&str> {
        match self {
            ClusterScope::Named(name) => Some(name),
            ClusterScope::All | ClusterScope::Unnamed => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(cluster: Option<&str>) -> Finding {
        Finding {
            id: "id".into(),
            category: "Crypto_Mining".into(),
            severity: crate::finding::Severity::Unknown,
            detected_at: None,
            cluster: cluster.map(str::to_string),
            namespace: None,
            pod: None,
            container: None,
            image: None,
            process: None,
            destination_ip: None,
            destination_port: None,
            mitre_techniques: Vec::new(),
            labels: Default::default(),
            raw: Default::default(),
        }
    }

    #[test]
    fn each_scope_takes_what_it_should() {
        let named = ClusterScope::Named("prod".into());
        assert_eq!(named.admit(&finding(Some("prod"))), Ok(()));
        assert_eq!(named.admit(&finding(Some("staging"))), Err(OutOfScope::OtherCluster("staging".into())));
        assert_eq!(named.admit(&finding(None)), Err(OutOfScope::NoCluster));
        assert_eq!(ClusterScope::Unnamed.admit(&finding(None)), Ok(()));
        assert_eq!(ClusterScope::Unnamed.admit(&finding(Some("prod"))), Err(OutOfScope::Unnamed("prod".into())));
        assert_eq!(ClusterScope::All.admit(&finding(Some("prod"))), Ok(()));
    }
}
