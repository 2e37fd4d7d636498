//! Errors of the mapper host.

use std::time::Duration;

pub use super::boundary::{InvalidInfo, InvalidOutput, PolicyProblem};

/// A component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Not a component, or not one this host can compile.
    #[error("cannot compile component {source_name}: {reason}")]
    Compile {
        /// Where the component came from.
        source_name: String,
        /// wasmtime's explanation.
        reason: String,
    },
    /// It does not implement the `qualys:respond/mapper` world.
    #[error(
        "component {source_name} does not implement qualys:respond/mapper@{}: {reason}",
        super::version::WIT_VERSION
    )]
    Link {
        /// Where the component came from.
        source_name: String,
        /// wasmtime's explanation.
        reason: String,
    },
    /// `info` or `configure` failed.
    #[error("component {source_name} failed to start: {reason}")]
    Start {
        /// Where the component came from.
        source_name: String,
        /// What went wrong.
        reason: String,
    },
    /// `info` or `reads` returned something the host refuses.
    #[error("component {source_name} describes itself wrongly: {reason}")]
    Info {
        /// Where the component came from.
        source_name: String,
        /// What is wrong.
        #[source]
        reason: InvalidInfo,
    },
    /// Built against a WIT version this host does not accept.
    #[error(
        "component {source_name} was built against qualys:respond@{found}, which this host does not accept: it implements qualys:respond@{host} and accepts {accepts}; rebuild the component against this host's wit/"
    )]
    Version {
        /// Where the component came from.
        source_name: String,
        /// The version the component targets.
        found: String,
        /// The host's version.
        host: &'static str,
        /// The range the host accepts, in words.
        accepts: String,
    },
    /// The file could not be read.
    #[error("cannot read component {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A pinned digest does not match the file.
    #[error(
        "component {path} does not match its pin: the configuration pins sha256 {pinned}, the file has sha256 {actual}; refusing to load it"
    )]
    DigestMismatch {
        /// The file.
        path: String,
        /// The digest in the configuration.
        pinned: String,
        /// The file's digest.
        actual: String,
    },
    /// Two custom components claim one category.
    #[error(
        "category {category} is claimed by both {first} and {second}; keep one, or give each its own categories in the configuration"
    )]
    DuplicateClaim {
        /// The category.
        category: String,
        /// The component that claimed it first.
        first: String,
        /// The component that claimed it again.
        second: String,
    },
    /// The configuration file is not usable.
    #[error("the mapper configuration {path}: {reason}")]
    Config {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// One call into a component failed; the run goes on without its result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The call ran past its deadline and was interrupted.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The call used up its fuel (instructions).
    #[error("ran out of fuel ({0} units) before it finished")]
    Fuel(u64),
    /// The component tried to grow its memory past the limit.
    #[error("exceeded its memory limit of {0} MiB")]
    Memory(usize),
    /// The component panicked; its panic message, from its stderr.
    #[error("{0}")]
    Panic(String),
    /// The component trapped (unreachable, stack overflow, …).
    #[error("trapped: {0}")]
    Trap(String),
    /// The component returned an error for this finding.
    #[error("returned an error: {0}")]
    Refused(String),
    /// The component returned something the host refuses.
    #[error("returned an invalid result: {0}")]
    Invalid(#[source] InvalidOutput),
    /// A fresh instance could not be started after an earlier failure.
    #[error("could not be restarted: {0}")]
    Restart(String),
}
