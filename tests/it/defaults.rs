//! Every object the default mappings can produce passes both Tetragon CRDs,
//! the loader rules and the safety rules, in audit and in enforce mode; and
//! the CRDs embedded in the binary are the reference ones.

use qualys_respond::mapper::{Limits, Registry};
use qualys_respond::pipeline::{self, Options};
use qualys_respond::policy::Mode;
use qualys_respond::policy::validate::{TetragonVersion, validate};
use qualys_respond::qualys::records::Record;
use serde_json::{Value, json};

use super::support::root;

/// Each category crossed with the finding fields the rules read.
fn variants() -> Vec<Value> {
    let namespaces = [None, Some("payments")];
    let binaries = [None, Some("/usr/bin/curl"), Some("nmap"), Some("/bin/bash"), Some("/tmp/evil binary")];
    let peers = [
        None,
        Some(("203.0.113.9", 3334)),
        Some(("169.254.170.2", 80)),
        Some(("10.1.2.3", 443)),
        Some(("2001:db8::7", 14444)),
    ];
    let mut out = Vec::new();
    for category in qualys_respond_default_mapper::CATEGORIES.iter().map(|c| c.name) {
        for namespace in namespaces {
            for binary in binaries {
                for peer in peers {
                    let mut finding = json!({"uuid": format!("v-{}", out.len()), "threatCategory": category});
                    if let Some(ns) = namespace {
                        finding["namespace"] = json!(ns);
                    }
                    if let Some(binary) = binary {
                        finding["processName"] = json!(binary);
                    }
                    if let Some((ip, port)) = peer {
                        finding["destinationIp"] = json!(ip);
                        finding["destinationPort"] = json!(port);
                    }
                    out.push(finding);
                }
            }
        }
    }
    out
}

#[test]
fn every_default_policy_is_valid_in_both_modes_and_versions() {
    let mut registry = Registry::with_defaults(Limits::default()).unwrap();
    for mode in [Mode::Post, Mode::Sigkill] {
        let records = variants()
            .into_iter()
            .enumerate()
            .map(|(i, value)| Record::from_value(format!("record {}", i + 1), value))
            .collect();
        let options = Options { mode, versions: TetragonVersion::ALL.to_vec(), ..Options::default() };
        let outcome = pipeline::run(records, &mut registry, &options);
        assert!(!outcome.report.has_errors(), "{mode:?}: {}", outcome.report.render(""));
        assert!(outcome.policies.len() >= 17, "{mode:?}: only {} policies", outcome.policies.len());
        for assembled in &outcome.policies {
            let object = assembled.object.to_value();
            for version in TetragonVersion::ALL {
                assert_eq!(validate(&object, &[*version]), vec![], "{version}: {object}");
            }
            let labels = &object["metadata"]["labels"];
            assert_eq!(labels["app.kubernetes.io/managed-by"], "kubectl-qualys-respond");
            assert_eq!(labels["qualys-respond.io/mode"], if mode == Mode::Post { "audit" } else { "enforce" });
            let text = object["spec"].to_string();
            assert_eq!(text.contains("\"Sigkill\""), mode == Mode::Sigkill, "{text}");
        }
    }
}

#[test]
fn private_and_cluster_addresses_are_never_blocked() {
    let mut registry = Registry::with_defaults(Limits::default()).unwrap();
    let records = variants().into_iter().map(|value| Record::from_value(String::new(), value)).collect();
    let outcome = pipeline::run(records, &mut registry, &Options::default());
    for assembled in &outcome.policies {
        let text = assembled.object.spec.to_string();
        assert!(!text.contains("10.1.2.3"), "{}", assembled.object.name);
    }
}

#[test]
fn the_embedded_crds_are_the_reference_ones() {
    let shared = root().join("../shared/schemas/tetragon");
    if !shared.exists() {
        // A clone outside the workplace has no ../shared; the copies are then the only source.
        return;
    }
    for (embedded, reference) in [
        ("crds/tetragon/main/cilium.io_tracingpolicies.yaml", "cilium.io_tracingpolicies.yaml"),
        ("crds/tetragon/main/cilium.io_tracingpoliciesnamespaced.yaml", "cilium.io_tracingpoliciesnamespaced.yaml"),
        ("crds/tetragon/v1.7.0/cilium.io_tracingpolicies.yaml", "v1.7.0/cilium.io_tracingpolicies.yaml"),
        (
            "crds/tetragon/v1.7.0/cilium.io_tracingpoliciesnamespaced.yaml",
            "v1.7.0/cilium.io_tracingpoliciesnamespaced.yaml",
        ),
    ] {
        let ours = std::fs::read(root().join(embedded)).unwrap();
        let theirs = std::fs::read(shared.join(reference)).unwrap();
        assert!(ours == theirs, "{embedded} differs from the reference {reference}");
    }
}
