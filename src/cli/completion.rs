//! `completion bash|zsh|fish`: the shell completion script, from the same
//! clap definitions the parser uses.

use clap::{Args, ValueEnum};

use super::exit::Exit;
use super::io::print_stdout;

/// The shells we write completions for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    /// Bash.
    Bash,
    /// Zsh.
    Zsh,
    /// Fish.
    Fish,
}

/// Print a shell completion script for kubectl-qualys_respond.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  source <(kubectl qualys-respond completion bash)
  kubectl qualys-respond completion zsh > \"${fpath[1]}/_kubectl-qualys_respond\"
  kubectl qualys-respond completion fish > ~/.config/fish/completions/kubectl-qualys_respond.fish

The script completes the plugin's binary, kubectl-qualys_respond (its commands and flags).
Completing `kubectl qualys-respond …` through kubectl needs a kubectl_complete-qualys_respond
helper on PATH (kubectl 1.26 and later), which this script is not.")]
pub struct CompletionArgs {
    /// The shell.
    #[arg(value_enum)]
    shell: Shell,
}

/// Prints the script for `command`, the whole command line as clap defines it.
pub fn run(args: CompletionArgs, mut command: clap::Command) -> anyhow::Result<Exit> {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "kubectl-qualys_respond", &mut script);
    print_stdout(&String::from_utf8_lossy(&script))?;
    Ok(Exit::Ok)
}
