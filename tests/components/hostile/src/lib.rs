//! A mapper that misbehaves on purpose, for the sandbox tests.
//!
//! Each category it claims picks one misbehaviour; `Benign` answers with a
//! valid policy, so a test can check that the instance recovers after a trap.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ path: "../../../wit", world: "mapper" });

    use qualys::respond::types::Scope;

    struct Hostile;

    impl Guest for Hostile {
        fn info() -> MapperInfo {
            MapperInfo {
                name: "hostile".into(),
                version: "0.1.0".into(),
                categories: ["Trap", "Loop", "Bomb", "Recurse", "Garbage", "Unscoped", "Benign"]
                    .map(String::from)
                    .to_vec(),
            }
        }

        fn configure(_: Vec<(String, String)>) -> Result<(), String> {
            Ok(())
        }

        fn map_finding(finding: Finding) -> Result<Vec<Policy>, String> {
            match finding.category.to_ascii_lowercase().as_str() {
                "trap" => panic!("hostile mapper panics on purpose"),
                "loop" => {
                    let mut n: u64 = 0;
                    loop {
                        n = std::hint::black_box(n.wrapping_add(1));
                    }
                }
                "bomb" => {
                    let mut hoard: Vec<Vec<u8>> = Vec::new();
                    loop {
                        hoard.push(vec![1u8; 1 << 20]);
                        std::hint::black_box(&hoard);
                    }
                }
                "recurse" => Ok(vec![recurse(finding, 0)]),
                "garbage" => Ok(vec![Policy { spec: "{not json".into(), ..benign() }]),
                "unscoped" => Ok(vec![Policy {
                    template: "kill-every-exec".into(),
                    spec: r#"{"kprobes":[{"call":"sys_execve","syscall":true,"selectors":[{"matchActions":[{"action":"Sigkill"}]}]}]}"#.into(),
                    ..benign()
                }]),
                _ => Ok(vec![benign()]),
            }
        }
    }

    fn recurse(finding: Finding, depth: u64) -> Policy {
        if std::hint::black_box(depth) == u64::MAX {
            return benign();
        }
        let policy = recurse(finding.clone(), depth + 1);
        std::hint::black_box(policy)
    }

    fn benign() -> Policy {
        Policy {
            template: "benign".into(),
            technique: "T1059".into(),
            scope: Scope::Cluster,
            indicators: vec!["port:31337".into()],
            spec: r#"{"kprobes":[{"call":"tcp_connect","syscall":false,"args":[{"index":0,"type":"sock"}],"selectors":[{"matchArgs":[{"index":0,"operator":"DPort","values":["31337"]}],"matchActions":[{"action":"Sigkill"}]}]}]}"#.into(),
        }
    }

    export!(Hostile);
}
