//! The category-selective contract (WIT 0.1.2) end to end, with a component
//! other than the default mapper: a `reads-by-category` answer the host must
//! refuse keeps the component from loading, with the reason as a typed kind;
//! a good one narrows what each category is sent, and remembered answers
//! follow what was sent.

use std::path::Path;

use qualys_respond::finding::Finding;
use qualys_respond::mapper::{InvalidInfo, Limits, LoadError, Plugin, Source};

use super::support::component;

fn load(answer: &str) -> Result<Plugin, LoadError> {
    let path: &Path = component("selective-mapper");
    let settings = vec![("answer".to_string(), answer.to_string())];
    Plugin::load_with_settings(
        &std::fs::read(path).unwrap(),
        Source::File(path.to_path_buf()),
        Limits::default(),
        settings,
    )
}

#[test]
fn a_wrong_reads_by_category_refuses_the_component_with_its_reason() {
    for answer in ["unclaimed", "repeated", "not-read", "unknown-field"] {
        let error = load(answer).err().unwrap_or_else(|| panic!("answer={answer} was accepted"));
        let LoadError::Info { reason, .. } = &error else { panic!("answer={answer}: {error}") };
        let expected = match answer {
            "unclaimed" => matches!(reason, InvalidInfo::UnclaimedCategory(c) if c == "Elsewhere"),
            "repeated" => matches!(reason, InvalidInfo::RepeatedCategory(c) if c == "narrow"),
            "not-read" => {
                matches!(reason, InvalidInfo::NotRead { category, field } if category == "Narrow" && field == "destination-port")
            }
            _ => matches!(reason, InvalidInfo::UnknownField(f) if f == "shoe-size"),
        };
        assert!(expected, "answer={answer}: {error}");
        assert!(error.to_string().contains("selective_mapper.wasm"), "the message names the component: {error}");
    }
}

fn finding(id: &str, category: &str, pod: &str) -> Finding {
    Finding {
        id: id.into(),
        category: category.into(),
        namespace: Some("shop".into()),
        pod: Some(pod.into()),
        ..Finding::default()
    }
}

/// The indicators of the one policy `finding` maps to.
fn indicators(plugin: &mut Plugin, finding: &Finding) -> Vec<String> {
    let policies = plugin.map(finding).unwrap();
    assert_eq!(policies.len(), 1);
    policies[0].indicators.clone()
}

#[test]
fn each_category_is_sent_what_it_reads_and_its_answers_are_remembered_by_that() {
    let mut plugin = load("good").unwrap();
    let reads = |plugin: &Plugin, category: &str| plugin.info().reads_of(category).names();
    assert_eq!(reads(&plugin, "Narrow"), ["category", "namespace"]);
    assert_eq!(reads(&plugin, " wide "), ["category", "namespace", "pod"], "any spelling of a named category");
    assert_eq!(reads(&plugin, "Unnamed"), ["category", "namespace", "pod"], "a category not named gets reads");

    assert_eq!(indicators(&mut plugin, &finding("a", "Narrow", "web-1")), ["call:1", "namespace:shop"]);
    assert_eq!(
        indicators(&mut plugin, &finding("b", "Narrow", "web-2")),
        ["call:1", "namespace:shop"],
        "another pod, which Narrow does not read: the answer given before"
    );
    assert_eq!(indicators(&mut plugin, &finding("c", "Wide", "web-1")), ["call:2", "namespace:shop", "pod:web-1"]);
    assert_eq!(indicators(&mut plugin, &finding("d", "Wide", "web-2")), ["call:3", "namespace:shop", "pod:web-2"]);
    assert_eq!(indicators(&mut plugin, &finding("e", "Unnamed", "web-2")), ["call:4", "namespace:shop", "pod:web-2"]);
}
