//! A category-selective mapper (WIT 0.1.2) for the contract tests: what its
//! `reads-by-category` answers is picked by the setting `answer`, so one
//! component shows both what the host refuses and what it sends.
//!
//! `reads` names `namespace` and `pod`. With `answer=good` (or no setting),
//! `Narrow` reads the namespace only, `Wide` both fields, and `Unnamed` is
//! left out (it gets what `reads` names). The other answers are refused:
//!
//! | `answer`        | what `reads-by-category` returns                     |
//! |-----------------|------------------------------------------------------|
//! | `unclaimed`     | a category `info` does not claim                     |
//! | `repeated`      | `Narrow` twice, spelled differently                  |
//! | `not-read`      | `Narrow` reading `destination-port`                  |
//! | `unknown-field` | `Narrow` reading a field the finding does not have   |
//!
//! Every policy lists what crossed the boundary as indicators
//! (`namespace:…`, `pod:…`) and which call this instance answered
//! (`call:N`), so a test sees what was sent and what was remembered.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ path: "../../../wit", world: "category-selective-mapper" });

    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};

    use qualys::respond::types::Scope;

    static ANSWER: Mutex<String> = Mutex::new(String::new());
    static CALLS: AtomicU32 = AtomicU32::new(0);

    struct Selective;

    impl Guest for Selective {
        fn info() -> MapperInfo {
            MapperInfo {
                name: "selective".into(),
                version: "0.1.0".into(),
                categories: ["Narrow", "Wide", "Unnamed"].map(String::from).to_vec(),
            }
        }

        fn configure(settings: Vec<(String, String)>) -> Result<(), String> {
            let answer = settings.into_iter().find(|(k, _)| k == "answer").map(|(_, v)| v).unwrap_or_default();
            *ANSWER.lock().map_err(|_| "poisoned")? = answer;
            Ok(())
        }

        fn reads() -> Vec<String> {
            vec!["namespace".into(), "pod".into()]
        }

        fn reads_by_category() -> Vec<(String, Vec<String>)> {
            let answer = ANSWER.lock().map(|a| a.clone()).unwrap_or_default();
            let fields = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
            let narrow = ("Narrow".to_string(), fields(&["namespace"]));
            let wide = ("Wide".to_string(), fields(&["namespace", "pod"]));
            match answer.as_str() {
                "unclaimed" => vec![narrow, ("Elsewhere".into(), fields(&["namespace"]))],
                "repeated" => vec![narrow, ("narrow".into(), fields(&["pod"]))],
                "not-read" => vec![("Narrow".into(), fields(&["destination-port"])), wide],
                "unknown-field" => vec![("Narrow".into(), fields(&["shoe-size"])), wide],
                _ => vec![narrow, wide],
            }
        }

        fn map_finding(finding: Finding) -> Result<Vec<Policy>, String> {
            let call = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
            let mut indicators = vec![format!("call:{call}")];
            indicators.extend(finding.namespace.as_ref().map(|ns| format!("namespace:{ns}")));
            indicators.extend(finding.pod.map(|pod| format!("pod:{pod}")));
            Ok(vec![Policy {
                template: "probe".into(),
                technique: "T1059".into(),
                scope: finding.namespace.map_or(Scope::Cluster, Scope::Namespace),
                indicators,
                spec: r#"{"kprobes":[{"call":"tcp_connect","syscall":false,"args":[{"index":0,"type":"sock"}],"selectors":[{"matchArgs":[{"index":0,"operator":"DPort","values":["31337"]}],"matchActions":[{"action":"Sigkill"}]}]}]}"#.into(),
            }])
        }
    }

    export!(Selective);
}
