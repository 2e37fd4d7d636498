//! The cluster stage: where policies meet Kubernetes.
//!
//! [`Cluster`] connects the way kubectl does (`--kubeconfig`, `--context`,
//! `KUBECONFIG`, in-cluster service account, exec credential plugins) and
//! speaks to the API server with kube-rs; [`resource`] names the kinds we
//! touch; [`apply`] turns a list of wanted changes into server-side applies
//! and deletes and reports each one as kubectl would; [`diff`] shows them
//! before they happen. Kubernetes is the database: everything we know about a
//! policy (mode, history, tuning, finding ids) lives on the object.

mod addresses;
pub mod apply;
mod checkpoint;
mod connect;
pub mod diff;
mod error;
pub mod lease;
pub mod resource;

pub use checkpoint::NAME as CHECKPOINT_CONFIGMAP;
pub use connect::{Cluster, KubeArgs};
pub use error::ClusterError;

/// Our field manager for server-side apply.
pub const FIELD_MANAGER: &str = "kubectl-qualys-respond";

/// `app.kubernetes.io/managed-by=kubectl-qualys-respond`: the label selector of
/// every object we manage.
pub fn managed_selector() -> String {
    format!("{}={}", crate::policy::labels::MANAGED_BY, crate::policy::labels::MANAGER)
}
