//! Builds the default mapper component (`plugins/default`) for `wasm32-wasip2`
//! and leaves it in `OUT_DIR`, where `src/mapper/embedded.rs` embeds it, so
//! that one installed binary carries its default mappings.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const PLUGIN: &str = "qualys-respond-default-mapper";
const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for watched in ["plugins/default/src", "plugins/default/Cargo.toml", "wit", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", manifest_dir.join(watched).display());
    }

    let target_dir = out_dir.join("wasm-target");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(&manifest_dir)
        .args(["build", "--quiet", "--profile", "plugin", "--target", TARGET, "--package", PLUGIN])
        .arg("--target-dir")
        .arg(&target_dir);
    if manifest_dir.join("Cargo.lock").exists() {
        command.arg("--locked");
    }
    // The outer build's settings are for the host; the guest gets its own.
    for var in
        ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_TARGET_DIR", "CARGO_BUILD_TARGET", "RUSTC_WORKSPACE_WRAPPER"]
    {
        command.env_remove(var);
    }
    let status = command.status().unwrap_or_else(|e| panic!("cannot run cargo to build the default mapper: {e}"));
    if !status.success() {
        panic!(
            "building the default mapper component failed ({status}). \
             If the {TARGET} target is missing, run `rustup target add {TARGET}`."
        );
    }
    let built = target_dir.join(TARGET).join("plugin").join(format!("{}.wasm", PLUGIN.replace('-', "_")));
    copy(&built, &out_dir.join("default_mapper.wasm"));
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("cannot copy {} to {}: {e}", from.display(), to.display()));
}
