//! A mapper that asks for policies no automatic system should enforce, and
//! narrow ones beside them, for the blast-radius tests. Every policy is in
//! the scope the finding names (its namespace, else the whole cluster).
//!
//! | category      | the policy it asks for                                                   |
//! |---------------|--------------------------------------------------------------------------|
//! | `EveryExec`   | Sigkill on every exec: `security_bprm_check` with `Prefix "/"`           |
//! | `Egress`      | Sigkill on every connection but to loopback (`NotDAddr`, no binaries)     |
//! | `DenyOpen`    | Override on every `sys_openat` with `Prefix "/"`                          |
//! | `Dns`         | Sigkill on TCP connections to port 53                                     |
//! | `Shells`      | Signal 9 on the exec of every shell (`Postfix "/sh"`)                     |
//! | `HostNs`      | Sigkill in the host's PID namespace (`matchNamespaces Pid In host_ns`)    |
//! | `Halves`      | Sigkill to `0.0.0.0/1` and `128.0.0.0/1`                                  |
//! | `AllPorts`    | Sigkill to ports `1:65535`                                                |
//! | `MacroKill`   | Sigkill on every exec, from a selector macro the selector names           |
//! | `Narrow`      | Override on `unshare(CLONE_NEWUSER)` and Signal on one address: accepted |

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ path: "../../../wit", world: "mapper" });

    use qualys::respond::types::Scope;

    struct Blast;

    fn tcp_connect(selector: &str) -> String {
        format!(
            r#"{{"kprobes":[{{"call":"tcp_connect","syscall":false,"args":[{{"index":0,"type":"sock"}}],"selectors":[{selector}]}}]}}"#
        )
    }

    fn exec(selector: &str) -> String {
        format!(
            r#"{{"kprobes":[{{"call":"security_bprm_check","syscall":false,"args":[{{"index":0,"type":"linux_binprm"}}],"selectors":[{selector}]}}]}}"#
        )
    }

    fn policy(finding: &Finding, template: &str, spec: String) -> Policy {
        Policy {
            template: template.into(),
            technique: "T1059".into(),
            scope: finding.namespace.clone().map_or(Scope::Cluster, Scope::Namespace),
            indicators: vec![format!("test:{template}")],
            spec,
        }
    }

    impl Guest for Blast {
        fn info() -> MapperInfo {
            MapperInfo {
                name: "blast".into(),
                version: "0.1.0".into(),
                categories: [
                    "EveryExec",
                    "Egress",
                    "DenyOpen",
                    "Dns",
                    "Shells",
                    "HostNs",
                    "Halves",
                    "AllPorts",
                    "MacroKill",
                    "Narrow",
                ]
                .map(String::from)
                .to_vec(),
            }
        }

        fn configure(_: Vec<(String, String)>) -> Result<(), String> {
            Ok(())
        }

        fn map_finding(finding: Finding) -> Result<Vec<Policy>, String> {
            let spec = match finding.category.to_ascii_lowercase().as_str() {
                "everyexec" => exec(r#"{"matchArgs":[{"index":0,"operator":"Prefix","values":["/"]}],"matchActions":[{"action":"Sigkill"}]}"#),
                "egress" => tcp_connect(r#"{"matchArgs":[{"index":0,"operator":"NotDAddr","values":["127.0.0.1"]}],"matchActions":[{"action":"Sigkill"}]}"#),
                "denyopen" => r#"{"kprobes":[{"call":"sys_openat","syscall":true,"args":[{"index":1,"type":"string"}],"selectors":[{"matchArgs":[{"index":1,"operator":"Prefix","values":["/"]}],"matchActions":[{"action":"Override","argError":-1}]}]}]}"#.to_string(),
                "dns" => tcp_connect(r#"{"matchArgs":[{"index":0,"operator":"DPort","values":["53"]}],"matchActions":[{"action":"Sigkill"}]}"#),
                "shells" => exec(r#"{"matchArgs":[{"index":0,"operator":"Postfix","values":["/sh"]}],"matchActions":[{"action":"Signal","argSig":9}]}"#),
                "hostns" => tcp_connect(r#"{"matchArgs":[{"index":0,"operator":"DPort","values":["4444"]}],"matchNamespaces":[{"namespace":"Pid","operator":"In","values":["host_ns"]}],"matchActions":[{"action":"Sigkill"}]}"#),
                "halves" => tcp_connect(r#"{"matchArgs":[{"index":0,"operator":"DAddr","values":["0.0.0.0/1","128.0.0.0/1"]}],"matchActions":[{"action":"Sigkill"}]}"#),
                "allports" => tcp_connect(r#"{"matchArgs":[{"index":0,"operator":"DPort","values":["1:65535"]}],"matchActions":[{"action":"Sigkill"}]}"#),
                "macrokill" => r#"{"kprobes":[{"call":"security_bprm_check","syscall":false,"args":[{"index":0,"type":"linux_binprm"}],"selectors":[{"macros":["kill"]}]}],"selectorsMacros":{"kill":{"matchActions":[{"action":"Sigkill"}]}}}"#.to_string(),
                _ => {
                    let unshare = r#"{"kprobes":[{"call":"sys_unshare","syscall":true,"args":[{"index":0,"type":"int"}],"selectors":[{"matchArgs":[{"index":0,"operator":"Mask","values":["268435456"]}],"matchActions":[{"action":"Override","argError":-1}]}]}]}"#;
                    let peer = tcp_connect(r#"{"matchArgs":[{"index":0,"operator":"DAddr","values":["203.0.113.7/32"]}],"matchActions":[{"action":"Signal","argSig":9}]}"#);
                    return Ok(vec![policy(&finding, "narrow-unshare", unshare.into()), policy(&finding, "narrow-peer", peer)]);
                }
            };
            Ok(vec![policy(&finding, "wide", spec)])
        }
    }

    export!(Blast);
}
