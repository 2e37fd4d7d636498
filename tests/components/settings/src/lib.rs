//! A mapper whose policies show the settings it was configured with, for
//! the configuration tests: it blocks the ports of its `ports` setting and
//! lists every setting as an indicator. It declares `Settings_Probe`; a
//! configuration may route more categories to it. `refuse=yes` makes
//! `configure` fail. It is built against the first contract,
//! `qualys:respond@0.1.0` (`wit/`, a frozen copy), so the tests also prove that
//! the host still runs components of an older 0.1.x.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ path: "wit", world: "mapper" });

    use std::sync::Mutex;

    use qualys::respond::types::Scope;

    static SETTINGS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

    struct Settings;

    impl Guest for Settings {
        fn info() -> MapperInfo {
            MapperInfo { name: "settings".into(), version: "1.2.3".into(), categories: vec!["Settings_Probe".into()] }
        }

        fn configure(settings: Vec<(String, String)>) -> Result<(), String> {
            if settings.iter().any(|(k, v)| k == "refuse" && v == "yes") {
                return Err("told to refuse".into());
            }
            *SETTINGS.lock().map_err(|_| "poisoned")? = settings;
            Ok(())
        }

        fn map_finding(finding: Finding) -> Result<Vec<Policy>, String> {
            let settings = SETTINGS.lock().map_err(|_| "poisoned")?.clone();
            let ports: Vec<String> = settings
                .iter()
                .filter(|(k, _)| k == "ports")
                .flat_map(|(_, v)| v.split(',').map(|p| format!("\"{}\"", p.trim())).collect::<Vec<_>>())
                .collect();
            let ports = if ports.is_empty() { "\"4444\"".to_string() } else { ports.join(",") };
            let spec = format!(
                r#"{{"kprobes":[{{"call":"tcp_connect","syscall":false,"args":[{{"index":0,"type":"sock"}}],"selectors":[{{"matchArgs":[{{"index":0,"operator":"DPort","values":[{ports}]}}],"matchActions":[{{"action":"Sigkill"}}]}}]}}]}}"#
            );
            let scope = match finding.namespace {
                Some(namespace) => Scope::Namespace(namespace),
                None => Scope::Cluster,
            };
            Ok(vec![Policy {
                template: "configured-ports".into(),
                technique: "T1571".into(),
                scope,
                indicators: settings.iter().map(|(k, v)| format!("setting:{k}={}", v.replace(',', ";"))).collect(),
                spec,
            }])
        }
    }

    export!(Settings);
}
