//! The Tetragon CRDs' schemas: `crds/tetragon/` (copied verbatim from the
//! Tetragon repository, see `crds/tetragon/SOURCE.txt`) turned into compact
//! JSON by `build.rs`, embedded, and each parsed once, when first needed.

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

macro_rules! schema {
    ($file:literal) => {
        include_str!(concat!(env!("OUT_DIR"), "/", $file))
    };
}

/// The embedded schemas: (version, kind, `openAPIV3Schema` as JSON).
const SCHEMAS: [(TetragonVersion, Kind, &str); 4] = [
    (TetragonVersion::Main, Kind::TracingPolicy, schema!("main-cilium.io_tracingpolicies.json")),
    (TetragonVersion::Main, Kind::TracingPolicyNamespaced, schema!("main-cilium.io_tracingpoliciesnamespaced.json")),
    (TetragonVersion::V1_7_0, Kind::TracingPolicy, schema!("v1.7.0-cilium.io_tracingpolicies.json")),
    (
        TetragonVersion::V1_7_0,
        Kind::TracingPolicyNamespaced,
        schema!("v1.7.0-cilium.io_tracingpoliciesnamespaced.json"),
    ),
];

/// The `openAPIV3Schema` of one kind at one version.
pub(crate) fn schema(version: TetragonVersion, kind: Kind) -> &'static Value {
    static PARSED: [OnceLock<Value>; 4] = [const { OnceLock::new() }; 4];
    let index = SCHEMAS.iter().position(|(v, k, _)| *v == version && *k == kind).expect("every version has both kinds");
    PARSED[index].get_or_init(|| serde_json::from_str(SCHEMAS[index].2).expect("build.rs writes valid JSON"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_crd_has_a_schema() {
        for (version, kind, _) in SCHEMAS {
            assert_eq!(schema(version, kind)["type"], "object", "{version} {kind:?}");
        }
    }
}
