//! The default mapper component, built from `plugins/default` by `build.rs`
//! and compiled at most once per process, and once per machine with the
//! disk cache (`cache.rs`).

use std::sync::OnceLock;

use wasmtime::component::Component;

use super::digest::hex_sha256;
use super::error::LoadError;

/// The component's bytes.
const DEFAULT_MAPPER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/default_mapper.wasm"));

/// The compiled default mapper and the SHA-256 of its bytes, both made once
/// per process and shared by every registry.
pub(crate) fn default_component() -> Result<(&'static Component, &'static str), LoadError> {
    static COMPILED: OnceLock<(String, Result<Component, String>)> = OnceLock::new();
    let (digest, compiled) = COMPILED.get_or_init(|| {
        let digest = hex_sha256(DEFAULT_MAPPER);
        let compiled =
            super::cache::compile(DEFAULT_MAPPER, &digest, "embedded default mapper").map_err(|e| format!("{e:#}"));
        (digest, compiled)
    });
    match compiled {
        Ok(component) => Ok((component, digest)),
        Err(reason) => {
            Err(LoadError::Compile { source_name: "embedded default mapper".into(), reason: reason.clone() })
        }
    }
}
