//! What ships besides the binary: the release archives and the krew
//! manifest they fill, the container image's Dockerfile, the GitHub
//! workflows (which cannot run here: their YAML and what they call are
//! checked), and the Grafana dashboard (every metric it charts is one the
//! server registers).

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::support::root;

const BIN: &str = "kubectl-qualys_respond";

fn yaml(path: &str) -> serde_yaml::Value {
    serde_yaml::from_str(&std::fs::read_to_string(root().join(path)).unwrap()).unwrap()
}

fn sha256(path: &Path) -> String {
    format!("{:x}", Sha256::digest(std::fs::read(path).unwrap()))
}

/// The archive of `target` made by `scripts/package.sh` from the test binary.
fn package(target: &str, out: &Path) -> (String, std::path::PathBuf) {
    let output = Command::new(root().join("scripts/package.sh"))
        .args([target, out.to_str().unwrap()])
        .env("BINARY", env!("CARGO_BIN_EXE_kubectl-qualys_respond"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let line = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let (sha, path) = line.split_once("  ").expect("sha256sum's format");
    (sha.to_string(), std::path::PathBuf::from(path))
}

fn platforms() -> Vec<serde_yaml::Value> {
    yaml("krew-manifest.yaml")["spec"]["platforms"].as_sequence().unwrap().clone()
}

/// The Rust target an archive of the manifest is for, from its URI.
fn target_of(uri: &str) -> String {
    let file = uri.rsplit('/').next().unwrap();
    let version = format!("-v{}-", env!("CARGO_PKG_VERSION"));
    file.split_once(&version).unwrap().1.trim_end_matches(".tar.gz").to_string()
}

#[test]
fn the_archive_holds_what_the_manifest_names_and_the_manifest_gets_its_sha256() {
    let dist = tempfile::tempdir().unwrap();
    let mut made = Vec::new();
    for platform in platforms() {
        let uri = platform["uri"].as_str().unwrap();
        let (sha, archive) = package(&target_of(uri), dist.path());
        assert_eq!(archive.file_name().unwrap(), uri.rsplit('/').next().unwrap(), "the name the manifest points at");
        assert_eq!(sha, sha256(&archive), "the printed sha256 is the archive's");
        let listing = Command::new("tar").arg("-tzf").arg(&archive).output().unwrap();
        let mut entries: Vec<String> = String::from_utf8_lossy(&listing.stdout).lines().map(str::to_string).collect();
        entries.sort();
        let mut named: Vec<String> =
            platform["files"].as_sequence().unwrap().iter().map(|f| f["from"].as_str().unwrap().to_string()).collect();
        named.sort();
        assert_eq!(entries, named, "exactly the files the manifest copies");
        assert!(named.contains(&platform["bin"].as_str().unwrap().to_string()));
        made.push(sha);
    }
    let version = format!("v{}", env!("CARGO_PKG_VERSION"));
    let output = Command::new(root().join("scripts/krew-manifest.sh"))
        .args([&version, dist.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let filled: serde_yaml::Value = serde_yaml::from_slice(&output.stdout).unwrap();
    let shas: Vec<String> = filled["spec"]["platforms"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| p["sha256"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(shas, made);
    let missing = tempfile::tempdir().unwrap();
    let output = Command::new(root().join("scripts/krew-manifest.sh"))
        .args([&version, missing.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success() && String::from_utf8_lossy(&output.stderr).contains("missing archive"));
}

#[test]
fn the_dockerfile_agrees_with_the_build_context_and_the_install_manifests() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let lines: Vec<&str> = dockerfile.lines().map(str::trim).collect();
    let last_from = lines.iter().rposition(|l| l.starts_with("FROM ")).unwrap();
    assert_eq!(lines[last_from], "FROM scratch", "a static image without a distribution");
    let copy = lines[last_from..].iter().find(|l| l.starts_with("COPY --from=build ")).unwrap();
    let parts: Vec<&str> = copy.split_whitespace().collect();
    let (built, installed) = (parts[2], parts[3]);
    assert!(dockerfile.contains(&format!("release/{BIN}\" {built}")), "the build stage leaves the binary at {built}");
    let cargo = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    assert!(cargo.contains(&format!("[[bin]]\nname = \"{BIN}\"")), "the binary's name in Cargo.toml");
    assert!(dockerfile.contains(&format!("--bin {BIN}")));
    assert!(lines.contains(&format!("ENTRYPOINT [\"{installed}\"]").as_str()), "the entrypoint is the binary");
    let user = lines[last_from..].iter().find_map(|l| l.strip_prefix("USER ")).unwrap();
    let install = Command::new(env!("CARGO_BIN_EXE_kubectl-qualys_respond"))
        .args(["install", "--mode=cronjob", "--cluster-name=prod"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&install.stdout);
    assert!(text.contains(&format!("runAsUser: {}", user.split(':').next().unwrap())), "install runs the image's user");
    assert!(text.contains(&format!("runAsGroup: {}", user.split(':').nth(1).unwrap())));

    // The build context keeps what cargo needs: the workspace members, the
    // build script's inputs and what the sources embed.
    let ignored: Vec<String> = std::fs::read_to_string(root().join(".dockerignore"))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    let members = cargo.lines().find_map(|l| l.strip_prefix("members = [")).expect("the workspace members");
    let mut needed: Vec<String> =
        members.split('"').skip(1).step_by(2).map(str::to_string).filter(|m| m != ".").collect();
    needed.extend(["Cargo.toml", "Cargo.lock", "build.rs", "src", "wit", "crds", "LICENSE"].map(String::from));
    for path in &needed {
        assert!(root().join(path).exists(), "{path}");
        let excluded = ignored.iter().any(|pattern| path == pattern || path.starts_with(&format!("{pattern}/")));
        assert!(!excluded, ".dockerignore leaves out {path}, which the build needs");
    }
    assert!(ignored.iter().any(|p| p == "target"), "no build outputs in the context");
}

#[test]
fn the_workflows_parse_and_build_every_platform_of_the_manifest() {
    let release = yaml(".github/workflows/release.yml");
    let mut targets: Vec<String> = release["jobs"]["archives"]["strategy"]["matrix"]["include"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|row| row["target"].as_str().unwrap().to_string())
        .collect();
    targets.sort();
    let mut wanted: Vec<String> = platforms().iter().map(|p| target_of(p["uri"].as_str().unwrap())).collect();
    wanted.sort();
    assert_eq!(targets, wanted, "the release builds exactly the manifest's archives");
    let e2e = yaml(".github/workflows/e2e.yml");
    let text = serde_yaml::to_string(&e2e).unwrap();
    for needed in
        ["kind", "tetragon", "install --mode cronjob", "tetra tracingpolicy list", "169.254.169.254", "promote"]
    {
        assert!(text.contains(needed), "the e2e workflow has {needed}");
    }
    for workflow in [&release, &e2e] {
        for job in workflow["jobs"].as_mapping().unwrap().values() {
            for step in job["steps"].as_sequence().unwrap() {
                let run = step["run"].as_str().unwrap_or_default();
                for script in run.split_whitespace().filter(|w| w.starts_with("scripts/")) {
                    assert!(root().join(script).exists(), "{script}");
                }
            }
        }
    }
}

#[test]
fn every_metric_the_dashboard_charts_is_exported() {
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("deploy/grafana-dashboard.json")).unwrap()).unwrap();
    // What the server registers: `registry.register("name", …)`, with the
    // prefix, and `_seconds` for the histograms registered with their unit.
    let source = std::fs::read_to_string(root().join("src/serve/metrics.rs")).unwrap();
    let mut exported = Vec::new();
    for (call, suffix) in [("registry.register(", ""), ("registry.register_with_unit(", "_seconds")] {
        for rest in source.split(call).skip(1) {
            let name = rest.split('"').nth(1).unwrap();
            exported.push(format!("qualys_respond_{name}{suffix}"));
        }
    }
    let base = |name: &str| {
        ["_bucket", "_sum", "_count", "_total"].iter().fold(name.to_string(), |n, s| n.trim_end_matches(s).to_string())
    };
    let mut charted = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        assert!(panel["title"].is_string() && panel["gridPos"].is_object());
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.starts_with("qualys_respond_") {
                    charted += 1;
                    assert!(exported.iter().any(|e| base(e) == base(word)), "{word} is not exported: {exported:?}");
                }
            }
        }
    }
    assert!(charted >= 8);
}
