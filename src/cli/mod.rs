//! The command line: clap types and one module per subcommand. Each
//! subcommand returns an [`Exit`] code; errors that stop a run are returned
//! as [`anyhow::Error`] and printed by `main`.

mod block;
mod cluster;
mod completion;
mod election;
mod exit;
mod guard;
mod install;
mod io;
mod lifecycle;
mod lint;
mod mappers;
mod plugin;
mod reputation;
mod scope;
mod send;
mod serve;
mod status;
mod sync;

use clap::{Parser, Subcommand};

pub use exit::Exit;

const EXIT_CODES: &str = "\
Exit codes:
  0  done: every finding handled, or every linted object valid
  1  error: the run stopped and wrote nothing (unreadable input, broken component, write failure)
  2  usage error
  3  done with problems: findings skipped for an error (malformed record, mapper failure,
     invalid policy), or lint found problems
  4  diff: the cluster differs from what sync --apply would make it

Lifecycle: sync --apply puts new policies in audit mode (Post); review them with status,
narrow them with tune, enforce them with promote (Sigkill), step back with demote.";

/// Turn Qualys CDR findings into validated Tetragon TracingPolicies.
///
/// Findings go through sandboxed WASM mappers (the defaults are built in);
/// every policy is scoped to containers, tagged with its MITRE ATT&CK
/// technique, checked against Tetragon's CRDs and loader rules, and emitted in
/// audit mode (action Post) unless you ask for enforcement (--action Sigkill).
#[derive(Debug, Parser)]
#[command(name = "kubectl qualys-respond", bin_name = "kubectl qualys-respond", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Log line format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For people.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    Sync(Box<sync::SyncArgs>),
    /// Show what sync --apply would change in the cluster, as unified diffs.
    ///
    /// Takes the flags of sync (without --apply); reads the cluster and asks
    /// the API server for a dry run of every write. Exits 4 when something
    /// would change.
    Diff(Box<sync::SyncArgs>),
    Status(Box<status::StatusArgs>),
    /// Switch policies to enforcement (Sigkill) after review.
    Promote(Box<lifecycle::ModeArgs>),
    /// Switch policies back to audit mode (Post).
    Demote(Box<lifecycle::ModeArgs>),
    Tune(Box<lifecycle::TuneArgs>),
    Block(Box<block::BlockArgs>),
    Unblock(Box<block::UnblockArgs>),
    Lint(lint::LintArgs),
    Plugin(plugin::PluginArgs),
    Serve(Box<serve::ServeArgs>),
    Send(Box<send::SendArgs>),
    Install(Box<install::InstallArgs>),
    Uninstall(Box<install::UninstallArgs>),
    Completion(completion::CompletionArgs),
}

impl Cli {
    /// Runs the chosen subcommand.
    pub fn run(self) -> anyhow::Result<Exit> {
        match self.command {
            Command::Sync(args) => sync::run(*args),
            Command::Diff(args) => sync::run_as(*args, sync::Target::Diff),
            Command::Status(args) => status::run(*args),
            Command::Promote(args) => lifecycle::switch(*args, crate::policy::Mode::Sigkill),
            Command::Demote(args) => lifecycle::switch(*args, crate::policy::Mode::Post),
            Command::Tune(args) => lifecycle::tune(*args),
            Command::Block(args) => block::block(*args),
            Command::Unblock(args) => block::unblock(*args),
            Command::Lint(args) => lint::run(args),
            Command::Plugin(args) => plugin::run(args),
            Command::Serve(args) => serve::run(*args),
            Command::Send(args) => send::run(*args),
            Command::Install(args) => install::install(*args),
            Command::Uninstall(args) => install::uninstall(*args),
            Command::Completion(args) => completion::run(args, <Cli as clap::CommandFactory>::command()),
        }
    }
}

/// The design's CronJob runs the image with `--once --hours=24 --apply` and
/// no subcommand: flags that come before any subcommand are `sync`'s.
pub fn default_to_sync(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let mut i = 1;
    while let Some(arg) = args.get(i).and_then(|a| a.to_str()) {
        match arg {
            "-v" | "-vv" | "-vvv" | "--verbose" => i += 1,
            "--log-format" => i += 2,
            _ if arg.starts_with("--log-format=") => i += 1,
            "-h" | "--help" | "-V" | "--version" => return args,
            _ if arg.starts_with('-') => {
                args.insert(i, "sync".into());
                return args;
            }
            _ => return args,
        }
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(args: &[&str]) -> Vec<String> {
        default_to_sync(args.iter().map(Into::into).collect()).into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    #[test]
    fn bare_flags_are_sync_flags() {
        assert_eq!(words(&["k", "--once", "--hours=24", "--apply"]), ["k", "sync", "--once", "--hours=24", "--apply"]);
        assert_eq!(
            words(&["k", "-v", "--log-format", "json", "--once"]),
            ["k", "-v", "--log-format", "json", "sync", "--once"]
        );
        assert_eq!(words(&["k", "status"]), ["k", "status"]);
        assert_eq!(words(&["k", "--help"]), ["k", "--help"]);
        assert_eq!(words(&["k"]), ["k"]);
    }
}
