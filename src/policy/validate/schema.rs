//! A structural-schema validator for the subset of OpenAPI v3 that Kubernetes
//! CRDs use, applied the way the API server applies it under strict field
//! validation: unknown fields are errors, nulls of optional fields are
//! pruned, and `x-kubernetes-validations` rules are evaluated (`cel`).

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use regex::Regex;
use serde_json::Value;

use super::cel;
use super::problem::{Problem, problem};

/// Checks `value` at `path` against `schema`, adding what is wrong to `out`.
pub fn check(schema: &Value, value: &Value, path: &str, out: &mut Vec<Problem>) {
    check_at(schema, value, &At { parent: None, step: Step::Root(path) }, out);
}

/// Where a value sits in the document: written out only for a problem, so
/// a valid object costs no path strings.
struct At<'a> {
    parent: Option<&'a At<'a>>,
    step: Step<'a>,
}

enum Step<'a> {
    Root(&'a str),
    Key(&'a str),
    Index(usize),
}

impl<'a> At<'a> {
    fn key(&'a self, key: &'a str) -> At<'a> {
        At { parent: Some(self), step: Step::Key(key) }
    }

    fn index(&'a self, index: usize) -> At<'a> {
        At { parent: Some(self), step: Step::Index(index) }
    }

    /// `spec.kprobes[0].call`; the root of an empty path is `(root)`.
    fn render(&self) -> String {
        let mut path = String::new();
        self.write(&mut path);
        if path.is_empty() { "(root)".to_string() } else { path }
    }

    fn write(&self, out: &mut String) {
        if let Some(parent) = self.parent {
            parent.write(out);
        }
        match self.step {
            Step::Root(path) => out.push_str(path),
            Step::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Step::Index(index) => {
                out.push('[');
                out.push_str(&index.to_string());
                out.push(']');
            }
        }
    }
}

fn check_at(schema: &Value, value: &Value, at: &At<'_>, out: &mut Vec<Problem>) {
    if value.is_null() {
        return; // the API server prunes nulls before validating
    }
    if !type_matches(schema, value) {
        let expected = schema.get("type").and_then(Value::as_str).unwrap_or("int-or-string");
        out.push(problem(at.render(), "schema", format!("expected {expected}, got {}", json_type(value))));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let list: Vec<String> =
            allowed.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)).collect();
        out.push(problem(at.render(), "schema", format!("{value} is not one of: {}", list.join(", "))));
    }
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (key, child) in map {
                match (properties.and_then(|p| p.get(key)), additional) {
                    (Some(child_schema), _) | (None, Some(child_schema)) => {
                        check_at(child_schema, child, &at.key(key), out)
                    }
                    (None, None) if properties.is_some() => {
                        out.push(problem(at.key(key).render(), "schema", "unknown field"));
                    }
                    (None, None) => {} // a free-form object such as `metadata`
                }
            }
            for required in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
                let name = required.as_str().unwrap_or_default();
                if map.get(name).is_none_or(Value::is_null) {
                    out.push(problem(at.key(name).render(), "schema", "required field is missing"));
                }
            }
        }
        Value::Array(items) => {
            let count = items.len() as u64;
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && count > max
            {
                out.push(problem(at.render(), "schema", format!("{count} items, at most {max} allowed")));
            }
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && count < min
            {
                out.push(problem(at.render(), "schema", format!("{count} items, at least {min} required")));
            }
            if let Some(item_schema) = schema.get("items") {
                // A schema that only names a type (a `values` list of strings)
                // is checked by its type alone; the full check runs when it fails.
                let plain = item_schema.as_object().is_some_and(|keys| keys.keys().all(|k| k == "type"));
                for (i, item) in items.iter().enumerate() {
                    if !(plain && type_matches(item_schema, item)) {
                        check_at(item_schema, item, &at.index(i), out);
                    }
                }
            }
        }
        Value::String(text) => check_string(schema, text, at, out),
        Value::Number(number) => check_number(schema, number, at, out),
        Value::Bool(_) | Value::Null => {}
    }
    for rule in schema.get("x-kubernetes-validations").and_then(Value::as_array).into_iter().flatten() {
        let expression = rule.get("rule").and_then(Value::as_str).unwrap_or_default();
        let message = rule.get("message").and_then(Value::as_str).unwrap_or(expression);
        match cel::evaluate(expression, value) {
            Ok(true) => {}
            Ok(false) => out.push(problem(at.render(), "schema", message)),
            Err(unsupported) => {
                out.push(problem(at.render(), "schema", format!("cannot evaluate rule {expression:?}: {unsupported}")))
            }
        }
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(schema: &Value, value: &Value) -> bool {
    if schema.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true) {
        return value.is_string() || value.is_i64() || value.is_u64();
    }
    match schema.get("type").and_then(Value::as_str) {
        None => true,
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("boolean") => value.is_boolean(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some(_) => false,
    }
}

fn check_string(schema: &Value, text: &str, at: &At<'_>, out: &mut Vec<Problem>) {
    let length = text.chars().count() as u64;
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && length > max
    {
        out.push(problem(at.render(), "schema", format!("{length} characters, at most {max} allowed")));
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && length < min
    {
        out.push(problem(at.render(), "schema", format!("{length} characters, at least {min} required")));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        match compiled(pattern) {
            Some(regex) if !regex.is_match(text) => {
                out.push(problem(at.render(), "schema", format!("{text:?} does not match {pattern}")));
            }
            Some(_) => {}
            None => out.push(problem(at.render(), "schema", format!("cannot compile pattern {pattern}"))),
        }
    }
}

fn check_number(schema: &Value, number: &serde_json::Number, at: &At<'_>, out: &mut Vec<Problem>) {
    let as_f64 = number.as_f64().unwrap_or(f64::NAN);
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
        && as_f64 < min
    {
        out.push(problem(at.render(), "schema", format!("{number} is less than the minimum {min}")));
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
        && as_f64 > max
    {
        out.push(problem(at.render(), "schema", format!("{number} is more than the maximum {max}")));
    }
    let fits = match schema.get("format").and_then(Value::as_str) {
        Some("int32") => number.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
        Some("int64") => number.as_i64().is_some(),
        _ => true,
    };
    if !fits {
        out.push(problem(
            at.render(),
            "schema",
            format!("{number} does not fit {}", schema["format"].as_str().unwrap_or_default()),
        ));
    }
}

/// Patterns compiled once each.
fn compiled(pattern: &str) -> Option<Regex> {
    static CACHE: LazyLock<Mutex<HashMap<String, Option<Regex>>>> = LazyLock::new(Default::default);
    let mut cache = CACHE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(regex) = cache.get(pattern) {
        return regex.clone();
    }
    let regex = Regex::new(pattern).ok();
    cache.insert(pattern.to_string(), regex.clone());
    regex
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(schema: Value, value: Value) -> Vec<String> {
        let mut out = Vec::new();
        check(&schema, &value, "", &mut out);
        out.into_iter().map(|p| format!("{}: {}", p.path, p.message)).collect()
    }

    #[test]
    fn keywords() {
        let schema = json!({"type": "object", "required": ["a"], "properties": {
            "a": {"type": "integer", "format": "int32", "minimum": 0},
            "b": {"type": "array", "maxItems": 1, "items": {"type": "string", "enum": ["x"]}},
            "c": {"type": "string", "maxLength": 3, "pattern": "^[a-z]*$"},
            "m": {"type": "object", "additionalProperties": {"type": "string"}},
        }});
        assert_eq!(
            problems(schema.clone(), json!({"a": 1, "b": ["x"], "c": "ab", "m": {"k": "v"}})),
            Vec::<String>::new()
        );
        assert_eq!(
            problems(schema, json!({"a": -1, "b": ["y", "x"], "c": "ABCD", "m": {"k": 1}, "z": null, "q": 1})),
            vec![
                "a: -1 is less than the minimum 0",
                "b: 2 items, at most 1 allowed",
                "b[0]: \"y\" is not one of: x",
                "c: 4 characters, at most 3 allowed",
                "c: \"ABCD\" does not match ^[a-z]*$",
                "m.k: expected string, got integer",
                "q: unknown field",
                "z: unknown field",
            ]
        );
        assert_eq!(
            problems(json!({"type": "object", "required": ["a"]}), json!({})),
            vec!["a: required field is missing"]
        );
        assert_eq!(
            problems(json!({"type": "integer", "format": "int32"}), json!(4_000_000_000u64)),
            vec!["(root): 4000000000 does not fit int32"]
        );
    }
}
