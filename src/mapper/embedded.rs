//! The default mapper component, built from `plugins/default` by `build.rs`
//! and compiled at most once per process, and once per machine with the
//! disk cache (`cache.rs`).

use std::sync::OnceLock;

use wasmtime::component::Component;

use super::error::LoadError;
use super::plugin::hex_sha256;

/// The component's bytes.
pub(crate) const DEFAULT_MAPPER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/default_mapper.wasm"));

/// The compiled default mapper, shared by every registry of the process.
pub(crate) fn default_component() -> Result<&'static Component, LoadError> {
    static COMPILED: OnceLock<Result<Component, String>> = OnceLock::new();
    COMPILED
        .get_or_init(|| {
            let digest = hex_sha256(DEFAULT_MAPPER);
            super::cache::compile(DEFAULT_MAPPER, &digest, "embedded default mapper").map_err(|e| format!("{e:#}"))
        })
        .as_ref()
        .map_err(|reason| LoadError::Compile { source_name: "embedded default mapper".into(), reason: reason.clone() })
}
