//! Builds the default mapper component (`plugins/default`) for `wasm32-wasip2`
//! and leaves it in `OUT_DIR` with its SHA-256, where `src/mapper/embedded.rs`
//! embeds both, so that one installed binary carries its default mappings;
//! and turns the Tetragon CRDs (`crds/tetragon/`, YAML as Tetragon publishes
//! them) into the compact JSON schemas `src/policy/validate/crd.rs` embeds, so that a run
//! parses a few hundred kilobytes of JSON instead of 1.5 MB of YAML.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const PLUGIN: &str = "qualys-respond-default-mapper";
const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    schemas(&manifest_dir, &out_dir);
    for watched in ["plugins/default/src", "plugins/default/Cargo.toml", "wit", "Cargo.toml", "Cargo.lock"] {
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
    digest(&out_dir.join("default_mapper.wasm"), &out_dir.join("default_mapper.sha256"));
}

/// Writes the SHA-256 of the component as 64 lowercase hex digits, so the
/// binary does not hash its own embedded bytes at every start.
fn digest(component: &Path, into: &Path) {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(component).unwrap_or_else(|e| panic!("cannot read {}: {e}", component.display()));
    let hex: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(into, hex).unwrap_or_else(|e| panic!("cannot write {}: {e}", into.display()));
}

/// The CRD files, by version directory.
const CRDS: [(&str, &str); 4] = [
    ("main", "cilium.io_tracingpolicies.yaml"),
    ("main", "cilium.io_tracingpoliciesnamespaced.yaml"),
    ("v1.7.0", "cilium.io_tracingpolicies.yaml"),
    ("v1.7.0", "cilium.io_tracingpoliciesnamespaced.yaml"),
];

/// Writes `<version>-<file>.json` for each CRD: its `openAPIV3Schema`,
/// without the `description` texts, which validation never reads.
fn schemas(manifest_dir: &Path, out_dir: &Path) {
    println!("cargo:rerun-if-changed={}", manifest_dir.join("crds/tetragon").display());
    for (version, file) in CRDS {
        let path = manifest_dir.join("crds/tetragon").join(version).join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let crd: serde_json::Value =
            serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
        let mut schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
        assert!(schema.is_object(), "{} has no openAPIV3Schema", path.display());
        drop_descriptions(&mut schema);
        let json = out_dir.join(format!("{version}-{}", file.replace(".yaml", ".json")));
        std::fs::write(&json, schema.to_string()).unwrap_or_else(|e| panic!("cannot write {}: {e}", json.display()));
    }
}

/// Removes every `description` that is text (a property named
/// `description` has a schema, an object, as its value and stays).
fn drop_descriptions(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            if map.get("description").is_some_and(serde_json::Value::is_string) {
                map.remove("description");
            }
            map.values_mut().for_each(drop_descriptions);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(drop_descriptions),
        _ => {}
    }
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("cannot copy {} to {}: {e}", from.display(), to.display()));
}
