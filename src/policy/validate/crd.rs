//! The Tetragon CRDs, embedded from `crds/tetragon/` (copied verbatim from
//! the Tetragon repository, see `crds/tetragon/SOURCE.txt`) and parsed once.

use std::fmt;
use std::sync::OnceLock;

use serde_json::Value;

use crate::policy::Kind;

/// A Tetragon schema version the validator knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum TetragonVersion {
    /// The development branch (CRD schema 1.8.13).
    #[value(name = "main")]
    Main,
    /// The latest release (CRD schema 1.7.17), what released clusters run.
    #[value(name = "v1.7.0")]
    V1_7_0,
}

impl TetragonVersion {
    /// Every known version.
    pub const ALL: &'static [TetragonVersion] = &[TetragonVersion::Main, TetragonVersion::V1_7_0];
}

impl fmt::Display for TetragonVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TetragonVersion::Main => "main",
            TetragonVersion::V1_7_0 => "v1.7.0",
        })
    }
}

macro_rules! crd {
    ($dir:literal, $file:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/crds/tetragon/", $dir, "/", $file))
    };
}

/// The raw CRD documents: (version, kind, YAML).
pub(crate) const CRDS: [(TetragonVersion, Kind, &str); 4] = [
    (TetragonVersion::Main, Kind::TracingPolicy, crd!("main", "cilium.io_tracingpolicies.yaml")),
    (TetragonVersion::Main, Kind::TracingPolicyNamespaced, crd!("main", "cilium.io_tracingpoliciesnamespaced.yaml")),
    (TetragonVersion::V1_7_0, Kind::TracingPolicy, crd!("v1.7.0", "cilium.io_tracingpolicies.yaml")),
    (
        TetragonVersion::V1_7_0,
        Kind::TracingPolicyNamespaced,
        crd!("v1.7.0", "cilium.io_tracingpoliciesnamespaced.yaml"),
    ),
];

/// The `openAPIV3Schema` of one kind at one version.
pub(crate) fn schema(version: TetragonVersion, kind: Kind) -> &'static Value {
    static PARSED: [OnceLock<Value>; 4] = [const { OnceLock::new() }; 4];
    let index = CRDS.iter().position(|(v, k, _)| *v == version && *k == kind).expect("every version has both kinds");
    PARSED[index].get_or_init(|| {
        let crd: Value = serde_yaml::from_str(CRDS[index].2).expect("the embedded CRDs are valid YAML");
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_crd_has_a_schema() {
        for (version, kind, _) in CRDS {
            assert_eq!(schema(version, kind)["type"], "object", "{version} {kind:?}");
        }
    }
}
