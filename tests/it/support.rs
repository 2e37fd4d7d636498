//! Shared helpers: the binary under test, test data, and test components
//! built once per test run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::sync::{Mutex, OnceLock};

use assert_cmd::Command;
use serde_json::{Value, json};

/// The repository root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A file under `tests/data`.
pub fn data(relative: &str) -> PathBuf {
    root().join("tests/data").join(relative)
}

/// The binary under test.
pub fn bin() -> Command {
    let mut command = Command::cargo_bin("kubectl-qualys_respond").expect("the binary is built for the tests");
    command.current_dir(root());
    command
}

/// A finding in the API's shape.
pub fn finding(id: &str, category: &str) -> Value {
    json!({ "uuid": id, "threatCategory": category })
}

/// The wasm file of a test component (a workspace member under
/// `tests/components`), built once per test run.
pub fn component(package: &'static str) -> &'static Path {
    static BUILT: OnceLock<Mutex<HashMap<&'static str, &'static Path>>> = OnceLock::new();
    let mut built = BUILT.get_or_init(Mutex::default).lock().unwrap_or_else(|e| e.into_inner());
    built.entry(package).or_insert_with(|| Box::leak(build_component(package).into_boxed_path()))
}

fn build_component(package: &str) -> PathBuf {
    let target_dir = root().join("target/test-components");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = StdCommand::new(cargo)
        .current_dir(root())
        .args([
            "build",
            "--quiet",
            "--locked",
            "--profile",
            "plugin",
            "--target",
            "wasm32-wasip2",
            "--package",
            package,
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building {package} failed");
    target_dir.join("wasm32-wasip2/plugin").join(format!("{}.wasm", package.replace('-', "_")))
}
