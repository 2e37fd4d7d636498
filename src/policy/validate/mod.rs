//! Checks a TracingPolicy object before it leaves the host, or when a user
//! runs `lint`: against Tetragon's CRD schemas (`schema`, with the CEL rules
//! in `cel`), against what Tetragon's loader rejects only at load time
//! (`loader`, see `../shared/reference/tetragon-policies.md`), and against
//! our safety rules (`safety`).

mod cel;
mod crd;
mod loader;
mod safety;
mod schema;

use std::fmt;

use serde_json::Value;

use super::object::{API_VERSION, Kind};

pub use crd::TetragonVersion;

/// One thing wrong with an object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// Where, as `spec.kprobes[0].selectors[1]`.
    pub path: String,
    /// Which rule: `schema`, `schema (v1.7.0)`, `loader/undeclared-index`, `safety/unscoped`, …
    pub rule: String,
    /// What is wrong and, where it helps, what to do.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} [{}]", self.path, self.message, self.rule)
    }
}

/// What a problem means for someone who did not write the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weight {
    /// Tetragon rejects the object: the API server (schema, CEL) or the agent (loader rules).
    Rejected,
    /// Tetragon rejects the object on some kernels only; the message says which.
    KernelDependent,
    /// Tetragon takes the object, but not in every way it can be loaded.
    Advice,
    /// Tetragon takes it, our safety rules do not: it would enforce too widely.
    Safety,
}

impl Problem {
    /// How much the problem weighs (from its rule id).
    pub fn weight(&self) -> Weight {
        match self.rule.as_str() {
            "loader/kprobe-multi-override" => Weight::KernelDependent,
            "loader/namespace-default" => Weight::Advice,
            rule if rule.starts_with("safety/") => Weight::Safety,
            _ => Weight::Rejected,
        }
    }

    /// The rule id without the schema version it may carry (`schema (v1.7.0)` → `schema`).
    pub fn rule_id(&self) -> &str {
        self.rule.split(' ').next().unwrap_or(&self.rule)
    }
}

pub(crate) fn problem(path: impl Into<String>, rule: &str, message: impl Into<String>) -> Problem {
    Problem { path: path.into(), rule: rule.into(), message: message.into() }
}

/// What an API server serving Tetragon's CRD of `version` rejects in
/// `object`: the structural schema and its CEL rules, nothing of the loader.
/// `None` when the object is not one of the two kinds.
pub fn crd_problems(object: &Value, version: TetragonVersion) -> Option<Vec<Problem>> {
    let kind = object.get("kind").and_then(Value::as_str).and_then(Kind::parse)?;
    let mut found = Vec::new();
    schema::check(crd::schema(version, kind), object, "", &mut found);
    found.sort();
    found.dedup();
    Some(found)
}

/// Every problem of `object` for the given Tetragon versions, sorted.
pub fn validate(object: &Value, versions: &[TetragonVersion]) -> Vec<Problem> {
    let mut problems = Vec::new();
    if object.get("apiVersion").and_then(Value::as_str) != Some(API_VERSION) {
        problems.push(problem("apiVersion", "kind", format!("must be {API_VERSION}")));
    }
    let Some(kind) = object.get("kind").and_then(Value::as_str).and_then(Kind::parse) else {
        problems.push(problem("kind", "kind", "must be TracingPolicy or TracingPolicyNamespaced"));
        return problems;
    };
    // Identical findings from several schema versions are reported once.
    let mut by_version: Vec<(TetragonVersion, Vec<Problem>)> = Vec::new();
    for version in versions {
        by_version.push((*version, crd_problems(object, *version).unwrap_or_default()));
    }
    let mut schema_problems: Vec<Problem> = Vec::new();
    for (version, found) in &by_version {
        for p in found {
            let everywhere = by_version.iter().all(|(_, other)| other.contains(p));
            let rule =
                if everywhere || versions.len() == 1 { "schema".to_string() } else { format!("schema ({version})") };
            schema_problems.push(Problem { rule, ..p.clone() });
        }
    }
    problems.extend(schema_problems);
    loader::check(object, kind, &mut problems);
    safety::check(object, kind, &mut problems);
    problems.sort();
    problems.dedup();
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(spec: Value) -> Value {
        json!({"apiVersion": API_VERSION, "kind": "TracingPolicy", "metadata": {"name": "ok"}, "spec": spec})
    }

    fn rules(spec: Value) -> Vec<String> {
        validate(&object(spec), TetragonVersion::ALL).into_iter().map(|p| p.rule).collect()
    }

    #[test]
    fn the_reference_patterns_pass() {
        let imds = json!({"podSelector": {}, "kprobes": [{"call": "tcp_connect", "syscall": false,
            "args": [{"index": 0, "type": "sock"}],
            "selectors": [{"matchArgs": [{"index": 0, "operator": "DAddr", "values": ["169.254.169.254/32"]}],
                "matchBinaries": [{"operator": "In", "values": ["/usr/bin/curl"]}],
                "matchActions": [{"action": "Sigkill"}]}]}]});
        assert_eq!(validate(&object(imds), TetragonVersion::ALL), vec![]);
    }

    #[test]
    fn unknown_fields_and_enums_are_schema_problems() {
        let found =
            validate(&object(json!({"kprobes": [{"call": "x", "syscall": false, "bogus": 1}]})), TetragonVersion::ALL);
        assert!(found.iter().any(|p| p.path == "spec.kprobes[0].bogus" && p.rule == "schema"), "{found:?}");
        let found = validate(&object(json!({"nodeSelector": {}})), TetragonVersion::ALL);
        assert!(found.iter().any(|p| p.rule == "schema (v1.7.0)"), "{found:?}");
    }

    #[test]
    fn enforcing_policies_may_not_cut_off_every_address_or_loopback() {
        let spec = |values: Value| {
            json!({"podSelector": {}, "kprobes": [{"call": "tcp_connect", "syscall": false,
                "args": [{"index": 0, "type": "sock"}],
                "selectors": [{"matchArgs": [{"index": 0, "operator": "DAddr", "values": values}],
                    "matchBinaries": [{"operator": "In", "values": ["/usr/bin/curl"]}],
                    "matchActions": [{"action": "Sigkill"}]}]}]})
        };
        assert!(rules(spec(json!(["0.0.0.0/0"]))).contains(&"safety/address".to_string()));
        assert!(rules(spec(json!(["127.0.0.1"]))).contains(&"safety/address".to_string()));
        assert!(rules(spec(json!(["::/0"]))).contains(&"safety/address".to_string()));
        assert_eq!(rules(spec(json!(["203.0.113.0/24", "169.254.169.254"]))), Vec::<String>::new());
    }

    #[test]
    fn wrong_kinds_stop_early() {
        assert_eq!(rules(json!({})), Vec::<String>::new());
        let found = validate(&json!({"apiVersion": "v1", "kind": "ConfigMap"}), TetragonVersion::ALL);
        assert_eq!(found.len(), 2);
    }
}
