//! The flags that choose mapper components, shared by `sync`, `diff` and
//! `plugin list`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::mapper::{Catalog, Limits, Registry};

/// Which mappers to load, on top of the embedded defaults.
#[derive(Debug, Clone, Args)]
pub struct MapperArgs {
    /// A mapper component to load for the categories it declares (repeatable);
    /// custom mappers override the embedded defaults per category.
    #[arg(long = "plugin", value_name = "FILE.wasm", help_heading = "Mappers")]
    plugin: Vec<PathBuf>,

    /// Load every .wasm file of DIR as a mapper (repeatable).
    #[arg(long = "plugins", value_name = "DIR", help_heading = "Mappers")]
    plugins: Vec<PathBuf>,

    /// Mapper configuration: components pinned by sha256, the categories or
    /// patterns each handles, settings [default: ~/.config/qualys-respond/config.yaml,
    /// then /etc/qualys-respond/config.yaml, if present].
    #[arg(long, value_name = "FILE", help_heading = "Mappers")]
    config: Option<PathBuf>,

    /// Do not read a configuration file unless --config names one.
    #[arg(long, conflicts_with = "config", help_heading = "Mappers")]
    no_config: bool,

    /// Time limit of one mapper call.
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::wait, default_value = "200ms",
        help_heading = "Mappers")]
    mapper_timeout: Duration,

    /// Instructions (wasmtime fuel) one mapper call may execute.
    #[arg(long, value_name = "N", default_value_t = Limits::default().fuel, help_heading = "Mappers")]
    mapper_fuel: u64,
}

impl MapperArgs {
    /// The sandbox limits these flags ask for.
    pub fn limits(&self) -> Limits {
        Limits { deadline: self.mapper_timeout, fuel: self.mapper_fuel, ..Limits::default() }
    }

    /// The embedded defaults plus every custom component asked for.
    pub fn registry(&self) -> anyhow::Result<Registry> {
        let config = match (&self.config, self.no_config) {
            (Some(path), _) => Some(path.clone()),
            (None, true) => None,
            (None, false) => Catalog::default_config(),
        };
        if let Some(path) = &config {
            tracing::info!(config = %path.display(), "mapper configuration");
        }
        let catalog = Catalog { files: self.plugin.clone(), dirs: self.plugins.clone(), config };
        catalog.load(self.limits()).context("cannot load the mappers")
    }
}
