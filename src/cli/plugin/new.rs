//! `plugin new NAME`: scaffolds a mapper crate.

use clap::Args;

use super::Exit;

/// Create a new mapper crate.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The mapper's name.
    name: String,
}

pub fn run(args: NewArgs) -> anyhow::Result<Exit> {
    anyhow::bail!("plugin new {} is not written yet", args.name)
}
