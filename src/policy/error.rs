//! Why a step in a policy's life (a mode switch, a tuning, a merge into
//! what the cluster holds) cannot be taken; shared by `lifecycle` and
//! `tuning`, which both take such steps.

use super::object::labels;

/// Why a lifecycle step cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    /// The object is not ours.
    #[error("{0} is not managed by kubectl qualys-respond (no {managed}={manager} label); it is left alone", managed = labels::MANAGED_BY, manager = labels::MANAGER)]
    NotManaged(String),
    /// The enforce-actions annotation is missing or broken.
    #[error("{name} has no valid {annotation} annotation, so its enforcing actions are unknown; regenerate it with sync", annotation = labels::ENFORCE_ACTIONS)]
    NoEnforceActions {
        /// The object.
        name: String,
    },
    /// A tuning request that cannot be expressed or would break the policy.
    #[error("cannot tune {name}: {reason}")]
    Tuning {
        /// The object.
        name: String,
        /// Why.
        reason: String,
    },
}
