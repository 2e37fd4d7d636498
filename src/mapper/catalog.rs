//! Which custom components to load: files named on the command line
//! (`--plugin`), every `.wasm` of a directory (`--plugins`), and the
//! configuration file, whose entries are pinned by sha256 and may route
//! category names or patterns to a component, with settings for it.
//!
//! ```yaml
//! plugins:
//!   - path: mappers/acme.wasm        # relative to this file
//!     sha256: 3b0c…                  # required: a different file is refused
//!     categories: [Crypto_Mining, "Suspicious_*"]   # optional: default, what it declares
//!     settings: {pool-ports: "3333,4444"}           # optional: handed to configure
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::digest::hex_sha256;
use super::engine::Limits;
use super::error::LoadError;
use super::plugin::{Plugin, Source};
use super::registry::Registry;

/// The configuration file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The pinned components.
    #[serde(default)]
    pub plugins: Vec<Entry>,
}

/// One pinned component.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The `.wasm` file, relative to the configuration file.
    pub path: PathBuf,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// Categories or `*` patterns it handles (default: what it declares).
    #[serde(default)]
    pub categories: Option<Vec<String>>,
    /// Settings for its `configure`.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
}

/// Where custom components come from.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// `--plugin FILE` (repeatable).
    pub files: Vec<PathBuf>,
    /// `--plugins DIR` (repeatable).
    pub dirs: Vec<PathBuf>,
    /// The configuration file, if any.
    pub config: Option<PathBuf>,
}

impl Catalog {
    /// Where the configuration is looked for when `--config` is not given:
    /// the user's (`$XDG_CONFIG_HOME` or `~/.config`, then
    /// `qualys-respond/config.yaml`), then a mounted ConfigMap at
    /// `/etc/qualys-respond/config.yaml`. The first that exists.
    pub fn default_config() -> Option<PathBuf> {
        let user = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))
            .map(|dir| dir.join("qualys-respond/config.yaml"));
        user.into_iter().chain(std::iter::once(PathBuf::from("/etc/qualys-respond/config.yaml"))).find(|p| p.is_file())
    }

    /// The embedded defaults, then the configuration's components, then the
    /// directories', then the files'.
    pub fn load(&self, limits: Limits) -> Result<Registry, LoadError> {
        let mut registry = Registry::with_defaults(limits)?;
        if let Some(path) = &self.config {
            let config = read_config(path)?;
            let base = path.parent().unwrap_or(Path::new("."));
            for entry in config.plugins {
                let file = base.join(&entry.path);
                let bytes = read(&file)?;
                let actual = hex_sha256(&bytes);
                if !actual.eq_ignore_ascii_case(entry.sha256.trim()) {
                    return Err(LoadError::DigestMismatch {
                        path: file.display().to_string(),
                        pinned: entry.sha256.trim().to_string(),
                        actual,
                    });
                }
                let settings = entry.settings.into_iter().collect();
                let plugin = Plugin::load_digested(&bytes, actual, Source::File(file), limits, settings)?;
                registry.add_custom(plugin, entry.categories.as_deref())?;
            }
        }
        for dir in &self.dirs {
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|e| LoadError::Read { path: dir.display().to_string(), reason: e.to_string() })?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "wasm") && p.is_file())
                .collect();
            files.sort();
            for file in files {
                load_file(&mut registry, &file, limits)?;
            }
        }
        for file in &self.files {
            load_file(&mut registry, file, limits)?;
        }
        Ok(registry)
    }
}

fn load_file(registry: &mut Registry, file: &Path, limits: Limits) -> Result<(), LoadError> {
    let bytes = read(file)?;
    let plugin = Plugin::load(&bytes, Source::File(file.to_path_buf()), limits)?;
    tracing::info!(component = %plugin.info().describe(), sha256 = %plugin.info().digest, "custom mapper loaded");
    registry.add_custom(plugin, None)
}

fn read(file: &Path) -> Result<Vec<u8>, LoadError> {
    std::fs::read(file).map_err(|e| LoadError::Read { path: file.display().to_string(), reason: e.to_string() })
}

fn read_config(path: &Path) -> Result<Config, LoadError> {
    let error = |reason: String| LoadError::Config { path: path.display().to_string(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    let config: Config = serde_yaml::from_str(&text).map_err(|e| error(e.to_string()))?;
    for entry in &config.plugins {
        let digest = entry.sha256.trim();
        if digest.len() != 64 || !digest.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(error(format!(
                "the sha256 of {} is not 64 hex digits (sha256sum {} gives it)",
                entry.path.display(),
                entry.path.display()
            )));
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_are_strict() {
        let config: Config = serde_yaml::from_str(
            "plugins:\n  - path: a.wasm\n    sha256: ab\n    categories: [X_*]\n    settings: {k: v}\n",
        )
        .unwrap();
        assert_eq!(config.plugins[0].categories, Some(vec!["X_*".to_string()]));
        assert!(serde_yaml::from_str::<Config>("plugins:\n  - path: a.wasm\n    sha: ab\n").is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, "plugins:\n  - path: a.wasm\n    sha256: abc\n").unwrap();
        assert!(read_config(&path).unwrap_err().to_string().contains("not 64 hex digits"));
    }
}
