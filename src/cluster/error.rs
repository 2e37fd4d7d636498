//! What can go wrong between us and the API server, in words an operator
//! can act on.

/// A failed conversation with the cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No usable configuration.
    #[error("cannot configure the Kubernetes client: {0}")]
    Config(String),
    /// The TracingPolicy CRDs are not served.
    #[error(
        "the cluster does not serve the TracingPolicy CRDs (cilium.io/v1alpha1 tracingpolicies and tracingpoliciesnamespaced): install Tetragon or Qualys CRS first; nothing was written"
    )]
    TetragonMissing,
    /// The API server answered with an error status.
    #[error("{what}: the API server answered {code} {reason}: {message}")]
    Refused {
        /// What we were doing.
        what: String,
        /// HTTP code.
        code: u16,
        /// The Status reason (NotFound, Invalid, Forbidden, …).
        reason: String,
        /// The Status message.
        message: String,
    },
    /// Another field manager set, to other values, fields we would change.
    #[error(
        "{what}: another field manager changed what we would change ({conflicts}); nothing of theirs was overwritten. Review it (kubectl qualys-respond diff, kubectl get -o yaml --show-managed-fields) and re-run with --force-conflicts to take those fields back"
    )]
    Conflict {
        /// What we were doing.
        what: String,
        /// Each conflict as the server words it, with the field.
        conflicts: String,
    },
    /// The API server could not be reached or answered nonsense.
    #[error("{what}: {source}")]
    Unreachable {
        /// What we were doing.
        what: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// An object in the cluster that we cannot make sense of.
    #[error("{0}")]
    Object(String),
}

impl ClusterError {
    /// Wraps a kube error with what we were doing.
    pub fn from_kube(what: impl Into<String>, error: kube::Error) -> ClusterError {
        let what = what.into();
        match error {
            kube::Error::Api(status) if status.code == 409 && field_conflicts(&status).is_some() => {
                ClusterError::Conflict { what, conflicts: field_conflicts(&status).unwrap_or_default() }
            }
            kube::Error::Api(status) => ClusterError::Refused {
                what,
                code: status.code,
                reason: status.reason.clone(),
                message: status.message.clone(),
            },
            source => ClusterError::Unreachable { what, source },
        }
    }

    /// True for a 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClusterError::Refused { code: 404, .. })
    }

    /// True when trying again may succeed: a conflict with a concurrent
    /// writer (409, after which the caller plans again), the server being
    /// busy or failing (429, 5xx), or no answer at all.
    pub fn is_transient(&self) -> bool {
        match self {
            ClusterError::Refused { code, .. } => *code == 409 || *code == 429 || *code >= 500,
            ClusterError::Unreachable { .. } => true,
            ClusterError::Config(_)
            | ClusterError::TetragonMissing
            | ClusterError::Object(_)
            | ClusterError::Conflict { .. } => false,
        }
    }
}

/// The field-manager conflicts of a refused apply (`conflict with "x" using
/// v1: .spec.a`), or `None` for any other 409.
fn field_conflicts(status: &kube::core::Status) -> Option<String> {
    let causes = &status.details.as_ref()?.causes;
    let words: Vec<String> = causes
        .iter()
        .filter(|cause| cause.reason == "FieldManagerConflict")
        .map(|cause| format!("{}: {}", cause.message, cause.field))
        .collect();
    (!words.is_empty()).then(|| words.join("; "))
}
