//! Errors of the mapper host.

use std::time::Duration;

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
    #[error("component {source_name} does not implement qualys:respond/mapper@{}: {reason}", super::WIT_VERSION)]
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
    /// `info` returned something the host refuses.
    #[error("component {source_name} describes itself wrongly: {reason}")]
    Info {
        /// Where the component came from.
        source_name: String,
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
    /// The component tried to grow its memory past the limit.
    #[error("exceeded its memory limit of {0} MiB")]
    Memory(usize),
    /// The component trapped (panic, unreachable, stack overflow, …).
    #[error("trapped: {0}")]
    Trap(String),
    /// The component returned an error for this finding.
    #[error("returned an error: {0}")]
    Refused(String),
    /// The component returned something the host refuses.
    #[error("returned an invalid result: {0}")]
    Invalid(String),
    /// A fresh instance could not be started after an earlier failure.
    #[error("could not be restarted: {0}")]
    Restart(String),
}
