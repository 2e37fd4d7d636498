//! `plugin test COMPONENT --finding FILE`: runs a component on findings.

use std::path::PathBuf;

use clap::Args;

use super::Exit;

/// Run a component on findings.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// The component (.wasm).
    component: PathBuf,
}

pub fn run(args: TestArgs) -> anyhow::Result<Exit> {
    anyhow::bail!("plugin test {} is not written yet", args.component.display())
}
