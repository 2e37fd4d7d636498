//! `kubectl-qualys_respond`: the kubectl plugin binary. Parses the command
//! line, starts logging, runs, and turns the result into an exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use qualys_respond::cli::{Cli, Exit, LogFormat, default_to_sync};
use tracing_subscriber::EnvFilter;

/// mimalloc instead of the C library's allocator: a run allocates and frees
/// small strings and JSON values for every finding, and with glibc's
/// `malloc`/`free` that was a fifth of `pipeline::run`'s instructions
/// (BENCHMARKS.md has the figures).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse_from(default_to_sync(std::env::args_os().collect()));
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(EnvFilter::new(level))
        .with_target(false);
    match cli.log_format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().init(),
    }
    match cli.run() {
        Ok(exit) => exit.into(),
        Err(error) => {
            eprintln!("error: {error:#}");
            Exit::Error.into()
        }
    }
}
