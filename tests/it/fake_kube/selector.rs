//! Label selectors (`k=v`, `k!=v`, `k`, `!k`, `k in (..)`, `k notin (..)`)
//! and field selectors on `metadata.name` and `metadata.namespace`.

use serde_json::Value;

use super::status::{Failure, bad_request};

/// One requirement of a label selector.
pub(super) enum Requirement {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

impl Requirement {
    pub(super) fn matches(&self, labels: &Value) -> bool {
        let label = |key: &str| labels.get(key).and_then(Value::as_str);
        match self {
            Requirement::In(key, values) => label(key).is_some_and(|l| values.iter().any(|v| v == l)),
            Requirement::NotIn(key, values) => label(key).is_none_or(|l| values.iter().all(|v| v != l)),
            Requirement::Exists(key) => label(key).is_some(),
            Requirement::NotExists(key) => label(key).is_none(),
        }
    }
}

/// `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`, joined by commas.
pub(super) fn parse_label_selector(text: &str) -> Result<Vec<Requirement>, Failure> {
    let (mut terms, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&text[start..]);
    terms.into_iter().map(str::trim).filter(|t| !t.is_empty()).map(requirement).collect()
}

fn requirement(term: &str) -> Result<Requirement, Failure> {
    let bad = || bad_request(&format!("unable to parse requirement: {term:?}"));
    let values = |list: &str| list.split(',').map(|v| v.trim().to_string()).collect::<Vec<_>>();
    if let Some(key) = term.strip_prefix('!') {
        return Ok(Requirement::NotExists(key.trim().into()));
    }
    if let Some(inner) = term.strip_suffix(')') {
        let (head, list) = inner.split_once('(').ok_or_else(bad)?;
        return match head.split_whitespace().collect::<Vec<_>>().as_slice() {
            [key, "in"] => Ok(Requirement::In(key.to_string(), values(list))),
            [key, "notin"] => Ok(Requirement::NotIn(key.to_string(), values(list))),
            _ => Err(bad()),
        };
    }
    for (operator, negate) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((key, value)) = term.split_once(operator) {
            let (key, value) = (key.trim().to_string(), values(value));
            return Ok(if negate { Requirement::NotIn(key, value) } else { Requirement::In(key, value) });
        }
    }
    if term.contains(|c: char| c.is_whitespace() || "()".contains(c)) {
        return Err(bad());
    }
    Ok(Requirement::Exists(term.into()))
}

/// `metadata.name=X` / `==` / `!=` and the same for `metadata.namespace`:
/// (metadata field, negated, value).
pub(super) fn parse_field_selector(text: &str) -> Result<Vec<(String, bool, String)>, Failure> {
    let mut terms = Vec::new();
    for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (field, negate, value) = match term.split_once("!=") {
            Some((field, value)) => (field, true, value),
            None => match term.split_once("==").or_else(|| term.split_once('=')) {
                Some((field, value)) => (field, false, value),
                None => return Err(bad_request(&format!("invalid selector: '{text}'; can't understand '{term}'"))),
            },
        };
        let Some(field) = field.trim().strip_prefix("metadata.").filter(|f| matches!(*f, "name" | "namespace")) else {
            return Err(bad_request(&format!("field label not supported: {}", field.trim())));
        };
        terms.push((field.to_string(), negate, value.trim().to_string()));
    }
    Ok(terms)
}
