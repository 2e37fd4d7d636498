//! Selector macros as Tetragon's loader expands them (`appendMacrosSelectors`
//! and `useMacro` in `pkg/sensors/tracing/generic.go`, v1.7.0 and main):
//! before compiling a hook's selectors, each macro a selector names has its
//! filters and actions appended to the selector. The loader refuses an
//! undefined macro, a macro that names macros, and a field set in two
//! places (the selector and a macro, or two macros); every other rule then
//! applies to the expanded selector.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::super::problem::{Problem, problem};
use crate::policy::spec::array;

/// The selector fields a macro adds to a selector; any other field of a
/// macro (`macros` aside) is ignored by Tetragon.
const FIELDS: &[&str] = &[
    "matchPIDs",
    "matchArgs",
    "matchData",
    "matchActions",
    "matchReturnArgs",
    "matchReturnActions",
    "matchBinaries",
    "matchParentBinaries",
    "matchNamespaces",
    "matchNamespaceChanges",
    "matchCapabilities",
    "matchCapabilityChanges",
];

/// A selector as the loader compiles it.
pub(super) struct Expanded<'a> {
    pub selector: Cow<'a, Value>,
    /// The macros it took fields from, in order, for messages.
    pub from: Vec<&'a str>,
}

/// Expands the macros `selector` (at `at`) names from the spec's
/// `selectorsMacros`, adding a problem for each one Tetragon refuses.
pub(super) fn expand<'a>(
    selector: &'a Value,
    macros: Option<&'a Map<String, Value>>,
    at: &str,
    out: &mut Vec<Problem>,
) -> Expanded<'a> {
    let names = array(selector, "macros");
    if names.is_empty() {
        return Expanded { selector: Cow::Borrowed(selector), from: Vec::new() };
    }
    let mut merged = selector.clone();
    let mut from = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let at = format!("{at}.macros[{i}]");
        let name = name.as_str().unwrap_or_default();
        let Some(defined) = macros.filter(|m| !m.is_empty()) else {
            out.push(problem(
                at,
                "loader/macro",
                format!("macro {name:?} is used, but spec.selectorsMacros defines no macros"),
            ));
            continue;
        };
        let Some(body) = defined.get(name) else {
            let known: Vec<&str> = defined.keys().map(String::as_str).collect();
            out.push(problem(
                at,
                "loader/macro",
                format!("undefined macro {name:?}; spec.selectorsMacros defines {}", known.join(", ")),
            ));
            continue;
        };
        if !array(body, "macros").is_empty() {
            out.push(problem(
                at,
                "loader/macro",
                format!(
                    "macro {name:?} names other macros (spec.selectorsMacros.{name}.macros); a macro cannot use macros"
                ),
            ));
            continue;
        }
        for field in FIELDS {
            let added = array(body, field);
            if added.is_empty() {
                continue;
            }
            if array(&merged, field).is_empty() {
                merged[*field] = Value::Array(added.to_vec());
            } else {
                out.push(problem(
                    &at,
                    "loader/macro",
                    format!(
                        "{field} is set both by macro {name:?} and by the selector or an earlier macro; Tetragon takes each field from one place: move it into one"
                    ),
                ));
            }
        }
        from.push(name);
    }
    Expanded { selector: Cow::Owned(merged), from }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run(selector: Value, macros: Value) -> (Value, Vec<String>, Vec<Problem>) {
        let mut out = Vec::new();
        let macros = macros.as_object().cloned();
        let expanded = expand(&selector, macros.as_ref(), "s", &mut out);
        let from = expanded.from.iter().map(|n| n.to_string()).collect();
        (expanded.selector.into_owned(), from, out)
    }

    #[test]
    fn a_macro_adds_its_fields_to_the_selector_that_names_it() {
        let (merged, from, problems) = run(
            json!({"macros": ["pids", "bins"], "matchArgs": [{"index": 0, "operator": "Equal", "values": ["a"]}]}),
            json!({"pids": {"matchPIDs": [{"operator": "NotIn", "values": [1]}]},
                   "bins": {"matchBinaries": [{"operator": "In", "values": ["/bin/sh"]}], "matchArgs": []}}),
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(from, ["pids", "bins"]);
        assert_eq!(merged["matchPIDs"][0]["values"], json!([1]));
        assert_eq!(merged["matchBinaries"][0]["values"], json!(["/bin/sh"]));
        assert_eq!(merged["matchArgs"].as_array().unwrap().len(), 1, "an empty list in a macro adds nothing");
    }

    #[test]
    fn tetragons_refusals_are_each_reported_where_the_macro_is_named() {
        let pids = json!({"matchPIDs": [{"operator": "NotIn", "values": [1]}]});
        let cases = [
            (json!({"macros": ["a"]}), json!({}), "defines no macros"),
            (json!({"macros": ["b"]}), json!({"a": pids}), "undefined macro \"b\"; spec.selectorsMacros defines a"),
            (json!({"macros": ["a"]}), json!({"a": {"macros": ["c"]}}), "a macro cannot use macros"),
            (
                json!({"macros": ["a"], "matchPIDs": [{"operator": "In", "values": [2]}]}),
                json!({"a": pids}),
                "matchPIDs is set both",
            ),
            (json!({"macros": ["a", "b"]}), json!({"a": pids, "b": pids}), "matchPIDs is set both by macro \"b\""),
        ];
        for (selector, macros, words) in cases {
            let (_, _, problems) = run(selector.clone(), macros);
            assert_eq!(problems.len(), 1, "{selector}: {problems:?}");
            assert_eq!(problems[0].rule, "loader/macro");
            assert!(problems[0].message.contains(words), "{selector}: {}", problems[0]);
            assert!(problems[0].path.starts_with("s.macros["), "{}", problems[0].path);
        }
    }

    #[test]
    fn a_selector_without_macros_is_not_copied() {
        let selector = json!({"matchActions": [{"action": "Post"}]});
        let mut out = Vec::new();
        let expanded = expand(&selector, None, "s", &mut out);
        assert!(matches!(expanded.selector, Cow::Borrowed(_)) && out.is_empty());
    }
}
