//! The blast-radius check on arbitrary specs: the host's guard applied as
//! for a mapper's spec, both modes, then every rule.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qualys_respond::guardrails::Guardrails;
use qualys_respond::policy::validate::{TetragonVersion, validate_with};
use qualys_respond::policy::{Mode, guard};
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = serde_json::from_slice::<Value>(data) else { return };
    let guardrails = Guardrails::default();
    for (cluster_wide, mode) in [(true, Mode::Sigkill), (false, Mode::Post)] {
        let mut spec = spec.clone();
        guard::apply(&mut spec, cluster_wide, &guardrails);
        mode.apply(&mut spec);
        let kind = if cluster_wide { "TracingPolicy" } else { "TracingPolicyNamespaced" };
        let object = json!({"apiVersion": "cilium.io/v1alpha1", "kind": kind,
            "metadata": {"name": "fuzz", "namespace": "payments"}, "spec": spec});
        let _ = validate_with(&object, TetragonVersion::ALL, &guardrails);
    }
});
