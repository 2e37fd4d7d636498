//! The exit codes, as `--help` documents them.

use std::process::ExitCode;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything handled.
    Ok,
    /// The run stopped on an error.
    Error,
    /// Done, but some input had problems.
    Problems,
    /// `diff`: the cluster differs from what would be applied.
    Changes,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(match exit {
            Exit::Ok => 0,
            Exit::Error => 1,
            Exit::Problems => 3,
            Exit::Changes => 4,
        })
    }
}
