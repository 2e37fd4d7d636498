//! `plugin`: the mapper author's and operator's commands: what is loaded
//! (`list`), a new mapper crate (`new`), and a component tried on findings
//! (`test`).

mod new;
mod test;

use clap::{Args, Subcommand};

use super::Exit;

/// Work with mapper components.
#[derive(Debug, Args)]
pub struct PluginArgs {
    #[command(subcommand)]
    command: PluginCommand,
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    New(new::NewArgs),
    Test(test::TestArgs),
}

pub fn run(args: PluginArgs) -> anyhow::Result<Exit> {
    match args.command {
        PluginCommand::New(args) => new::run(args),
        PluginCommand::Test(args) => test::run(args),
    }
}
