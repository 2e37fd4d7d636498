//! What `lint` reads: YAML documents of any shape, each validated against
//! both CRD versions, the loader rules and the safety rules.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qualys_respond::policy::validate::{TetragonVersion, validate};
use serde::Deserialize;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for document in serde_yaml::Deserializer::from_str(text) {
        match serde_json::Value::deserialize(document) {
            Ok(value) => {
                let _ = validate(&value, TetragonVersion::ALL);
            }
            Err(_) => break,
        }
    }
});
