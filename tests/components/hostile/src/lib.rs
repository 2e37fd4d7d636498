//! A mapper that misbehaves on purpose, for the sandbox tests.
//!
//! Each category it claims picks one misbehaviour; `Benign` answers with a
//! valid policy, so a test can check that the instance recovers after a trap.
//!
//! | category     | what it does                                                      |
//! |--------------|-------------------------------------------------------------------|
//! | `Trap`       | panics (`panic = "abort"`: an `unreachable` trap)                 |
//! | `Loop`       | spins forever                                                     |
//! | `Bomb`       | allocates 1 MiB after 1 MiB without end                           |
//! | `Recurse`    | recurses without end                                              |
//! | `Garbage`    | returns a spec that is not JSON                                   |
//! | `Huge`       | returns one policy whose spec is a valid 5 MiB JSON object        |
//! | `Flood`      | returns 10,000 benign policies                                    |
//! | `Loader`     | `DPort` on the `sockaddr` argument of `sys_connect` (loader rule) |
//! | `Undeclared` | `matchArgs` on an argument index the hook does not declare        |
//! | `Unscoped`   | `Sigkill` on every `sys_execve`, no filter at all                 |
//! | `Kubelet`    | `Sigkill` on `sys_execve` by `/usr/bin/kubelet`                   |
//! | `ReadFile`   | reads `/etc/passwd`; refuses with the error when the read fails   |
//! | `ReadEnv`    | reads `$HOME`; refuses with the error when it is absent           |
//! | anything else, `Benign` | one valid policy                                       |
//!
//! `ReadFile` and `ReadEnv` answer with a policy that carries what they read
//! when the sandbox lets them read it, so a leak shows up as a policy.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ path: "../../../wit", world: "mapper" });

    use qualys::respond::types::Scope;

    /// Size of the `Huge` spec.
    const HUGE_SPEC_BYTES: usize = 5 << 20;
    /// Policies of the `Flood` answer.
    const FLOOD_POLICIES: usize = 10_000;

    struct Hostile;

    impl Guest for Hostile {
        fn info() -> MapperInfo {
            MapperInfo {
                name: "hostile".into(),
                version: "0.1.0".into(),
                categories: [
                    "Trap",
                    "Loop",
                    "Bomb",
                    "Recurse",
                    "Garbage",
                    "Huge",
                    "Flood",
                    "Loader",
                    "Undeclared",
                    "Unscoped",
                    "Kubelet",
                    "ReadFile",
                    "ReadEnv",
                    "Benign",
                ]
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
                "huge" => Ok(vec![Policy { template: "huge".into(), spec: huge_spec(), ..benign() }]),
                "flood" => Ok((0..FLOOD_POLICIES)
                    .map(|i| Policy { template: format!("flood-{i}"), ..benign() })
                    .collect()),
                "loader" => Ok(vec![Policy {
                    template: "connect-dport".into(),
                    spec: r#"{"kprobes":[{"call":"sys_connect","syscall":true,"args":[{"index":1,"type":"sockaddr"}],"selectors":[{"matchArgs":[{"index":1,"operator":"DPort","values":["31337"]}],"matchActions":[{"action":"Sigkill"}]}]}]}"#.into(),
                    ..benign()
                }]),
                "undeclared" => Ok(vec![Policy {
                    template: "undeclared-index".into(),
                    spec: r#"{"kprobes":[{"call":"tcp_connect","syscall":false,"args":[{"index":0,"type":"sock"}],"selectors":[{"matchArgs":[{"index":1,"operator":"DPort","values":["31337"]}],"matchActions":[{"action":"Sigkill"}]}]}]}"#.into(),
                    ..benign()
                }]),
                "unscoped" => Ok(vec![Policy {
                    template: "kill-every-exec".into(),
                    spec: r#"{"kprobes":[{"call":"sys_execve","syscall":true,"selectors":[{"matchActions":[{"action":"Sigkill"}]}]}]}"#.into(),
                    ..benign()
                }]),
                "kubelet" => Ok(vec![Policy {
                    template: "kill-kubelet".into(),
                    indicators: vec!["binary:/usr/bin/kubelet".into()],
                    spec: r#"{"kprobes":[{"call":"sys_execve","syscall":true,"selectors":[{"matchBinaries":[{"operator":"In","values":["/usr/bin/kubelet"]}],"matchActions":[{"action":"Sigkill"}]}]}]}"#.into(),
                    ..benign()
                }]),
                "readfile" => match std::fs::read_to_string("/etc/passwd") {
                    Ok(text) => Ok(vec![leak("passwd", text.lines().next().unwrap_or("<empty file>"))]),
                    Err(e) => Err(format!("read failed: {e}")),
                },
                "readenv" => match std::env::var("HOME") {
                    Ok(home) => Ok(vec![leak("home", &home)]),
                    Err(e) => Err(format!("HOME: {e}; {} variables visible", std::env::vars_os().count())),
                },
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

    /// A valid JSON object of exactly [`HUGE_SPEC_BYTES`] bytes.
    fn huge_spec() -> String {
        const HEAD: &str = r#"{"padding":""#;
        const TAIL: &str = r#""}"#;
        let mut spec = vec![b'x'; HUGE_SPEC_BYTES];
        spec[..HEAD.len()].copy_from_slice(HEAD.as_bytes());
        spec[HUGE_SPEC_BYTES - TAIL.len()..].copy_from_slice(TAIL.as_bytes());
        String::from_utf8(spec).expect("ASCII")
    }

    /// A valid policy that carries something the sandbox should have kept
    /// from the component, as an indicator the host accepts.
    fn leak(what: &str, secret: &str) -> Policy {
        let secret: String =
            secret.chars().map(|c| if c == ',' || c.is_control() { ' ' } else { c }).take(200).collect();
        Policy { template: format!("leaked-{what}"), indicators: vec![format!("leaked:{secret}")], ..benign() }
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
