//! Compiled components on disk, so that a second run does not compile
//! again: `<cache>/components/<component sha256>-<engine>.cwasm`, where
//! `<engine>` changes with anything that makes compiled code incompatible
//! (wasmtime version, its settings, the CPU features). The cache directory is
//! `$QUALYS_RESPOND_CACHE_DIR`, else `$XDG_CACHE_HOME/qualys-respond`, else
//! `~/.cache/qualys-respond`; without any, components are compiled per run.
//!
//! Each entry sits beside the sha256 of its bytes, checked before the bytes
//! are handed to wasmtime: a truncated or altered file is compiled afresh,
//! never loaded.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::component::Component;

use super::digest::hex_sha256;
use super::engine::engine;
use crate::atomic::{self, Access};

fn directory() -> Option<PathBuf> {
    let from = |name: &str| std::env::var_os(name).map(PathBuf::from).filter(|p| p.is_absolute());
    from("QUALYS_RESPOND_CACHE_DIR")
        .or_else(|| from("XDG_CACHE_HOME").map(|p| p.join("qualys-respond")))
        .or_else(|| from("HOME").map(|p| p.join(".cache/qualys-respond")))
        .map(|p| p.join("components"))
}

/// What compiled code depends on besides the component's bytes.
fn engine_key() -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine().precompile_compatibility_hash().hash(&mut hasher);
    env!("CARGO_PKG_VERSION").hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

/// The compiled form of `bytes` (whose sha256 is `digest`), from the disk
/// cache when it holds it, otherwise compiled and stored there.
pub(crate) fn compile(bytes: &[u8], digest: &str, what: &str) -> wasmtime::Result<Component> {
    let Some(dir) = directory() else {
        tracing::info!(component = what, "compiling component (no cache directory)");
        return Component::new(engine(), bytes);
    };
    let path = dir.join(format!("{digest}-{}.cwasm", engine_key()));
    if let Some(component) = load(&path) {
        tracing::info!(component = what, cache = %path.display(), "compiled component loaded from the disk cache");
        return Ok(component);
    }
    tracing::info!(component = what, "compiling component (not in the disk cache)");
    let component = Component::new(engine(), bytes)?;
    if let Err(error) = store(&dir, &path, &component) {
        tracing::warn!(component = what, cache = %dir.display(), %error, "cannot store the compiled component");
    }
    Ok(component)
}

fn sidecar(path: &Path) -> PathBuf {
    path.with_extension("cwasm.sha256")
}

fn load(path: &Path) -> Option<Component> {
    let bytes = std::fs::read(path).ok()?;
    let expected = std::fs::read_to_string(sidecar(path)).ok()?;
    if hex_sha256(&bytes) != expected.trim() {
        tracing::warn!(cache = %path.display(), "cached component does not match its digest; compiling afresh");
        return None;
    }
    deserialize(&bytes)
        .map_err(|e| tracing::warn!(cache = %path.display(), error = %e, "cached component refused"))
        .ok()
}

#[allow(unsafe_code)]
fn deserialize(bytes: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: wasmtime requires the bytes to come from `Component::serialize`
    // of a compatible engine. They do: this module wrote them, into a
    // directory of the user's own, and their sha256 (written after them) was
    // just checked, so a partial or altered file never gets here; wasmtime
    // itself checks the engine compatibility recorded in the header.
    unsafe { Component::deserialize(engine(), bytes) }
}

fn store(dir: &Path, path: &Path, component: &Component) -> std::io::Result<()> {
    let bytes = component.serialize().map_err(std::io::Error::other)?;
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    atomic::write(path, &bytes, Access::Private)?;
    atomic::write(&sidecar(path), hex_sha256(&bytes).as_bytes(), Access::Private)
}
