//! The krew manifest is a valid v1alpha2 `Plugin` for every platform we ship.

use serde_yaml::Value;

use super::support::root;

#[test]
fn the_krew_manifest_covers_every_platform() {
    let text = std::fs::read_to_string(root().join("krew-manifest.yaml")).unwrap();
    let manifest: Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(manifest["apiVersion"], "krew.googlecontainertools.github.com/v1alpha2");
    assert_eq!(manifest["kind"], "Plugin");
    assert_eq!(manifest["metadata"]["name"], "qualys-respond");
    let version = manifest["spec"]["version"].as_str().unwrap();
    assert_eq!(version, format!("v{}", env!("CARGO_PKG_VERSION")));
    let mut seen = Vec::new();
    for platform in manifest["spec"]["platforms"].as_sequence().unwrap() {
        let labels = &platform["selector"]["matchLabels"];
        seen.push(format!("{}/{}", labels["os"].as_str().unwrap(), labels["arch"].as_str().unwrap()));
        assert_eq!(platform["bin"], "kubectl-qualys_respond");
        let sha = platform["sha256"].as_str().unwrap();
        assert!(sha.len() == 64 && sha.chars().all(|c| c.is_ascii_hexdigit()), "{sha}");
        assert!(platform["uri"].as_str().unwrap().contains(version));
        let files: Vec<&str> =
            platform["files"].as_sequence().unwrap().iter().map(|f| f["from"].as_str().unwrap()).collect();
        assert!(files.contains(&"LICENSE") && files.contains(&"kubectl-qualys_respond"), "{files:?}");
    }
    seen.sort();
    assert_eq!(seen, ["darwin/amd64", "darwin/arm64", "linux/amd64", "linux/arm64"]);
    assert!(root().join("LICENSE").exists());
}
