//! The wasmtime host: loads mapper components, runs them sandboxed, and hands
//! back what they return as unchecked [`MappedPolicy`] values.
//!
//! One [`wasmtime::Engine`] serves the whole process (`engine.rs`). Each
//! component is compiled once and kept as an `InstancePre`; its live instance
//! is reused across findings and replaced after a trap (`plugin.rs`). The
//! [`Registry`] routes categories to components (`registry.rs`), and
//! [`Catalog`] says which custom components to load (`catalog.rs`). Nothing here
//! knows about policy names, labels or validation: that is `crate::policy`.

mod bindings;
mod cache;
mod catalog;
mod embedded;
mod engine;
mod error;
mod plugin;
mod registry;

pub use catalog::{Catalog, Config, Entry};
pub use engine::Limits;
pub use error::{CallError, LoadError};
pub use plugin::{MappedPolicy, Plugin, PluginInfo, Scope, Source};
pub use registry::Registry;

/// The WIT package version this host implements.
pub const WIT_VERSION: &str = "0.1.0";
