//! The wasmtime host: loads mapper components, runs them sandboxed, and hands
//! back what they return as unchecked [`MappedPolicy`] values.
//!
//! One [`wasmtime::Engine`] serves the whole process (`engine.rs`). Each
//! component is compiled once and kept as an `InstancePre`; its live instance
//! is reused across findings and replaced after a trap (`plugin.rs`), in the
//! sandbox of `sandbox.rs`, with what crosses the boundary shaped and checked
//! by `boundary.rs` and the WIT version checked by `version.rs`. The
//! [`Registry`] routes categories to components (`registry.rs`), and
//! [`Catalog`] says which custom components to load (`catalog.rs`). Nothing here
//! knows about policy names, labels or validation: that is `crate::policy`.

mod bindings;
mod boundary;
mod cache;
mod catalog;
mod digest;
mod embedded;
mod engine;
mod error;
mod plugin;
mod registry;
mod sandbox;
mod version;

pub use boundary::{MappedPolicy, Reads, SPEC_CACHE_ENTRIES, Scope};
pub use catalog::{Catalog, Config, Entry};
pub use engine::Limits;
pub use error::{CallError, InvalidInfo, InvalidOutput, LoadError, PolicyProblem};
pub use plugin::{Plugin, PluginInfo, Source};
pub use registry::Registry;
pub use version::WIT_VERSION;
