//! What the checks report: one [`Problem`] per thing wrong, with where, which
//! rule and what to do, and how much it weighs.

use std::fmt;

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
