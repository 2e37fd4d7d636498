//! The default mapper component, built from `plugins/default` by `build.rs`
//! and compiled at most once per process, and once per machine with the
//! disk cache (`cache.rs`).

use std::sync::OnceLock;

use wasmtime::component::Component;

use super::error::LoadError;

/// The component's bytes.
const DEFAULT_MAPPER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/default_mapper.wasm"));
/// Their SHA-256, hex, written by `build.rs`.
const DEFAULT_MAPPER_DIGEST: &str = include_str!(concat!(env!("OUT_DIR"), "/default_mapper.sha256"));

/// The compiled default mapper, made once per process and shared by every
/// registry, and the SHA-256 of its bytes.
pub(crate) fn default_component() -> Result<(&'static Component, &'static str), LoadError> {
    static COMPILED: OnceLock<Result<Component, String>> = OnceLock::new();
    let compiled = COMPILED.get_or_init(|| {
        super::cache::compile(DEFAULT_MAPPER, DEFAULT_MAPPER_DIGEST, "embedded default mapper")
            .map_err(|e| format!("{e:#}"))
    });
    match compiled {
        Ok(component) => Ok((component, DEFAULT_MAPPER_DIGEST)),
        Err(reason) => {
            Err(LoadError::Compile { source_name: "embedded default mapper".into(), reason: reason.clone() })
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_digest_written_at_build_time_is_the_components() {
        assert_eq!(super::super::digest::hex_sha256(super::DEFAULT_MAPPER), super::DEFAULT_MAPPER_DIGEST);
    }
}
