//! The binary is a kubectl plugin: the real `kubectl` finds it on PATH.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn kubectl_finds_the_plugin_and_prints_our_usage() {
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_kubectl-qualys_respond"));
    let bin_dir = binary.parent().unwrap();
    let path = std::env::join_paths(
        std::iter::once(bin_dir.to_path_buf())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .unwrap();
    let home = tempfile::tempdir().unwrap();
    let output = Command::new("kubectl")
        .args(["qualys-respond", "--help"])
        .env("PATH", path)
        .env("HOME", home.path())
        .output()
        .expect("kubectl is installed (.ci/run installs it)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "kubectl failed: {}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("Usage: kubectl qualys-respond"), "{stdout}");
    assert!(stdout.contains("sync"), "{stdout}");
}
