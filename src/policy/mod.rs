//! The policy stage: what the host does with the specs mappers return.
//!
//! `assemble` merges the drafts of one category, template and scope into one
//! object, names it deterministically, records labels and annotations, sets
//! audit or enforce mode (`mode`) and the host's safety scoping (`guard`).
//! `validate` checks every object against Tetragon's CRDs, the loader rules
//! and our safety rules before anything leaves the host. `object` is the
//! Kubernetes object itself and `managed` our typed model of it, from here to
//! the cluster, which `lifecycle` moves along and `tuning` narrows; `block` builds the manual
//! block policies; `spec` holds helpers for walking a spec.

mod assemble;
pub mod binaries;
pub mod block;
mod error;
pub mod evidence;
pub mod guard;
pub mod lifecycle;
pub mod managed;
mod mode;
mod object;
pub(crate) mod spec;
mod tuning;
pub mod validate;

pub use assemble::{Assembled, Assembler, Draft, assemble, system_namespace_mode};
pub use guard::{PROTECTED_BINARIES, PROTECTED_PATHS};
pub use managed::{Found, Inventory, ManagedPolicy};
pub use mode::Mode;
pub use object::{API_VERSION, Kind, ObjectName, PolicyObject, labels};
