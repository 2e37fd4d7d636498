//! A component that traps, loops forever, allocates without bound or recurses
//! without end is stopped and reported, and every other category still gets
//! its policies, including the hostile component's own well-behaved one.

use std::time::Duration;

use qualys_respond::mapper::{CallError, Limits, Plugin, Registry, Source};
use qualys_respond::pipeline::{self, Options};
use qualys_respond::qualys::records::Record;
use qualys_respond::report::SkipReason;
use serde_json::json;

use super::support::component;

fn hostile(limits: Limits) -> Plugin {
    let path = component("hostile-mapper");
    Plugin::load(&std::fs::read(path).unwrap(), Source::File(path.to_path_buf()), limits).unwrap()
}

fn record(id: &str, category: &str) -> Record {
    Record { position: id.into(), value: Ok(json!({"uuid": id, "threatCategory": category})) }
}

#[test]
fn misbehaving_calls_are_stopped_and_the_rest_still_maps() {
    let limits = Limits::default();
    let mut registry = Registry::with_defaults(limits).unwrap();
    registry.add(hostile(limits));
    let records = vec![
        record("1-trap", "Trap"),
        record("2-loop", "Loop"),
        record("3-bomb", "Bomb"),
        record("4-recurse", "Recurse"),
        record("5-benign", "Benign"),
        record("5-garbage", "Garbage"),
        record("5-unscoped", "Unscoped"),
        record("6-mining", "Crypto_Mining"),
        record("7-escape", "Container_Escape"),
    ];
    let outcome = pipeline::run(records, &mut registry, &Options::default());
    let errors: Vec<(String, String)> = outcome
        .report
        .skipped
        .iter()
        .map(|skip| match &skip.reason {
            SkipReason::Mapper { mapper, error } => (skip.subject.clone(), format!("{mapper} {error}")),
            SkipReason::InvalidPolicy { object, problems } => {
                let rules: Vec<&str> = problems.iter().map(|p| p.rule.as_str()).collect();
                (skip.subject.clone(), format!("{object} {rules:?}"))
            }
            other => panic!("unexpected skip {other:?}"),
        })
        .collect();
    assert_eq!(errors.len(), 6, "{errors:?}");
    let error_of = |id: &str| errors.iter().find(|(s, _)| s.contains(id)).map(|(_, e)| e.clone()).unwrap();
    assert!(error_of("1-trap").contains("hostile@0.1.0 trapped"), "{}", error_of("1-trap"));
    assert!(error_of("2-loop").contains("timed out after 200ms"), "{}", error_of("2-loop"));
    assert!(error_of("3-bomb").contains("exceeded its memory limit of 64 MiB"), "{}", error_of("3-bomb"));
    assert!(error_of("4-recurse").contains("stack overflow"), "{}", error_of("4-recurse"));
    assert!(
        error_of("5-garbage").contains("returned an invalid result: policy 1: spec is not valid JSON"),
        "{}",
        error_of("5-garbage")
    );
    assert_eq!(error_of("5-unscoped"), r#"TracingPolicy/cdr-unscoped-kill-every-exec ["safety/unfiltered"]"#);
    let names: Vec<&str> = outcome.policies.iter().map(|a| a.object.name.as_str()).collect();
    assert_eq!(names, ["cdr-benign-benign", "cdr-container-escape-namespace-escape", "cdr-crypto-mining-pool-ports"]);
}

#[test]
fn an_instance_recovers_after_every_kind_of_failure() {
    let limits = Limits { deadline: Duration::from_millis(50), memory_bytes: 16 << 20, ..Limits::default() };
    let mut plugin = hostile(limits);
    let finding = |category: &str| {
        qualys_respond::qualys::wire::to_finding(&json!({"uuid": "x", "threatCategory": category})).unwrap()
    };
    for bad in ["Trap", "Loop", "Bomb", "Recurse"] {
        let error = plugin.map(&finding(bad)).unwrap_err();
        let expected = match bad {
            "Loop" => matches!(error, CallError::Timeout(_)),
            "Bomb" => matches!(error, CallError::Memory(16)),
            _ => matches!(error, CallError::Trap(_)),
        };
        assert!(expected, "{bad}: {error:?}");
        let after = plugin.map(&finding("Benign")).unwrap();
        assert_eq!(after.len(), 1, "after {bad}");
    }
}
