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

/// The selector fields a macro adds to a selector. Of its other fields,
/// main also copies `label` to a selector without one (no check reads it);
/// the rest are ignored.
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

/// Names listed at most in a message about an undefined macro.
const NAMES_SHOWN: usize = 10;

/// A selector as the loader compiles it.
pub(super) struct Expanded<'a> {
    pub selector: Cow<'a, Value>,
    /// Each field a macro supplied, with that macro's name.
    supplied: Vec<(&'static str, &'a str)>,
}

impl Expanded<'_> {
    /// Points the problems found in the expanded selector at `at` to where
    /// their cause is written: a problem in a field a macro supplied moves
    /// to that macro (`spec.selectorsMacros.NAME.matchArgs[0]`, its indices
    /// unchanged: a field comes from one place), and a problem of the whole
    /// selector says which macros added to it.
    pub fn attribute(&self, at: &str, problems: &mut [Problem]) {
        if self.supplied.is_empty() {
            return;
        }
        for p in problems {
            let rest = p.path.strip_prefix(at).and_then(|r| r.strip_prefix('.')).unwrap_or_default();
            let supplier = self.supplied.iter().find(|(field, _)| {
                rest.strip_prefix(field).is_some_and(|tail| tail.is_empty() || tail.starts_with(['[', '.']))
            });
            match supplier {
                Some((_, name)) => {
                    p.path = format!("spec.selectorsMacros.{name}.{rest}");
                    p.message.push_str(&format!(" (macro {name:?}, named by {at})"));
                }
                None if rest.is_empty() => {
                    let mut names: Vec<&str> = self.supplied.iter().map(|(_, name)| *name).collect();
                    names.dedup();
                    p.message.push_str(&format!(" (with the fields of macro {})", names.join(", ")));
                }
                None => {}
            }
        }
    }
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
        return Expanded { selector: Cow::Borrowed(selector), supplied: Vec::new() };
    }
    let mut merged = selector.clone();
    let mut supplied = Vec::new();
    // A name that is not a string is the schema's finding, not ours.
    for (i, name) in names.iter().enumerate().filter_map(|(i, n)| Some((i, n.as_str()?))) {
        let at = format!("{at}.macros[{i}]");
        let Some(defined) = macros.filter(|m| !m.is_empty()) else {
            out.push(problem(
                at,
                "loader/macro",
                format!("macro {name:?} is used, but spec.selectorsMacros defines no macros"),
            ));
            continue;
        };
        let Some(body) = defined.get(name) else {
            let mut known: Vec<&str> = defined.keys().map(String::as_str).take(NAMES_SHOWN).collect();
            if defined.len() > NAMES_SHOWN {
                known.push("…");
            }
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
                supplied.push((*field, name));
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
    }
    Expanded { selector: Cow::Owned(merged), supplied }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run(selector: Value, macros: Value) -> (Value, Vec<String>, Vec<Problem>) {
        let mut out = Vec::new();
        let macros = macros.as_object().cloned();
        let expanded = expand(&selector, macros.as_ref(), "s", &mut out);
        let supplied = expanded.supplied.iter().map(|(field, name)| format!("{field}:{name}")).collect();
        (expanded.selector.into_owned(), supplied, out)
    }

    #[test]
    fn a_macro_adds_its_fields_to_the_selector_that_names_it() {
        let (merged, supplied, problems) = run(
            json!({"macros": ["pids", "bins"], "matchArgs": [{"index": 0, "operator": "Equal", "values": ["a"]}]}),
            json!({"pids": {"matchPIDs": [{"operator": "NotIn", "values": [1]}]},
                   "bins": {"matchBinaries": [{"operator": "In", "values": ["/bin/sh"]}], "matchArgs": []}}),
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(supplied, ["matchPIDs:pids", "matchBinaries:bins"]);
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

    #[test]
    fn problems_point_at_the_macro_that_supplied_the_field() {
        let selector = json!({"macros": ["port"], "matchBinaries": [{"operator": "In", "values": ["/bin/x"]}]});
        let macros = json!({"port": {"matchArgs": [{"index": 1, "operator": "DPort", "values": ["443"]}]}});
        let mut out = Vec::new();
        let expanded = expand(&selector, macros.as_object(), "spec.kprobes[0].selectors[0]", &mut out);
        let at = "spec.kprobes[0].selectors[0]";
        let mut problems = vec![
            problem(format!("{at}.matchArgs[0].operator"), "loader/operator-type", "bad"),
            problem(format!("{at}.matchBinaries[0]"), "loader/binary-path-length", "own"),
            problem(at, "loader/too-many-match-args", "whole"),
        ];
        expanded.attribute(at, &mut problems);
        assert_eq!(problems[0].path, "spec.selectorsMacros.port.matchArgs[0].operator");
        assert!(problems[0].message.ends_with(&format!("(macro \"port\", named by {at})")), "{}", problems[0]);
        assert_eq!(
            (problems[1].path.as_str(), problems[1].message.as_str()),
            (&*format!("{at}.matchBinaries[0]"), "own")
        );
        assert_eq!(problems[2].message, "whole (with the fields of macro port)");
    }

    #[test]
    fn an_undefined_macro_lists_a_few_names_and_a_name_that_is_no_string_is_left_to_the_schema() {
        let many: serde_json::Map<String, Value> = (0..50).map(|i| (format!("m{i:02}"), json!({}))).collect();
        let (_, _, problems) = run(json!({"macros": ["nope", 7]}), Value::Object(many));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].message.ends_with("m09, …"), "{}", problems[0]);
    }
}
