//! `tune`: exclusions an operator adds to a policy that stopped something it
//! should not have. They are kept on the object (the `tuning` annotation)
//! and applied again whenever the object is rebuilt, so they survive later
//! syncs and promotions.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::error::LifecycleError;
use super::guard;
use super::managed::{ManagedPolicy, Tuning};
use super::object::Kind;
use super::spec::{text, try_for_each_selector_mut, value_order};

impl ManagedPolicy {
    /// Narrows the policy by `tuning`'s exclusions and records them on it.
    ///
    /// A binary leaves every `In` list and joins every `NotIn`/`NotPostfix`
    /// list; a namespace joins a `NotIn` expression on the pod namespace label
    /// of a cluster-wide policy. Anything that cannot be expressed in
    /// Tetragon's one binary filter per selector is refused, as is a tuning
    /// that would leave a selector without binaries to match.
    pub fn tune(&mut self, tuning: &Tuning) -> Result<(), LifecycleError> {
        let refuse = |reason: String| LifecycleError::Tuning { name: self.to_string(), reason };
        for path in &tuning.binaries {
            if !path.starts_with('/') || path.len() >= 128 {
                return Err(refuse(format!("{path} is not an absolute path shorter than 128 characters")));
            }
        }
        if self.kind == Kind::TracingPolicyNamespaced && !tuning.namespaces.is_empty() {
            let own = self.namespace.as_deref().unwrap_or_default();
            return Err(refuse(format!(
                "it is a TracingPolicyNamespaced that only applies to namespace {own}; demote or delete it instead of excluding namespaces"
            )));
        }
        if !tuning.binaries.is_empty() {
            let mut spec = self.spec.clone();
            exclude_binaries(&mut spec, &tuning.binaries).map_err(refuse)?;
            self.spec = spec;
        }
        if !tuning.namespaces.is_empty() {
            exclude_namespaces(&mut self.spec, &tuning.namespaces);
        }
        self.tuning = tuning.clone();
        Ok(())
    }
}

/// Adds `paths` to every binary filter of a kernel hook's selectors as an
/// exclusion; the reason it cannot, when it cannot.
fn exclude_binaries(spec: &mut Value, paths: &BTreeSet<String>) -> Result<(), String> {
    try_for_each_selector_mut(spec, |site, selector| {
        if !site.is_kernel() {
            return Ok(());
        }
        let at = site.path();
        let Some(entry) = selector.pointer_mut("/matchBinaries/0") else {
            return Err(format!("{at} has no binary filter to add an exclusion to"));
        };
        let operator = text(entry, "operator").to_string();
        let Some(values) = entry.get_mut("values").and_then(Value::as_array_mut) else { return Ok(()) };
        match operator.as_str() {
            "In" => {
                values.retain(|v| !v.as_str().is_some_and(|v| paths.contains(v)));
                if values.is_empty() {
                    return Err(format!(
                        "excluding every binary of {at} would leave it matching none; demote or delete the policy instead"
                    ));
                }
            }
            "NotIn" | "NotPostfix" => {
                for path in paths {
                    if !values.iter().any(|v| v.as_str() == Some(path)) {
                        values.push(json!(path));
                    }
                }
                values.sort_by(value_order);
            }
            other => {
                return Err(format!(
                    "{at} filters binaries with {other}, and Tetragon allows one binary filter per selector"
                ));
            }
        }
        Ok(())
    })
}

fn exclude_namespaces(spec: &mut Value, namespaces: &BTreeSet<String>) {
    let Some(object) = spec.as_object_mut() else { return };
    let selector = object.entry("podSelector").or_insert_with(|| json!({}));
    guard::exclude_namespaces(selector, namespaces);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::guard::NAMESPACE_LABEL;
    use crate::policy::lifecycle::tests::object;

    #[test]
    fn tuning_narrows_binary_filters_and_namespaces() {
        let mut policy = object(json!([{"action": "Sigkill"}]));
        let tuning = Tuning {
            binaries: BTreeSet::from(["/usr/bin/nc".to_string()]),
            namespaces: BTreeSet::from(["ci".to_string()]),
        };
        policy.tune(&tuning).unwrap();
        let binaries = &policy.spec["kprobes"][0]["selectors"][0]["matchBinaries"][0]["values"];
        assert_eq!(binaries, &json!(["/kubelet", "/usr/bin/nc"]));
        assert_eq!(
            policy.spec["podSelector"]["matchExpressions"],
            json!([{"key": NAMESPACE_LABEL, "operator": "NotIn", "values": ["ci"]}])
        );
        assert_eq!(ManagedPolicy::from_value(&policy.to_value()).unwrap().tuning, tuning);
    }

    #[test]
    fn tuning_refuses_what_it_cannot_express() {
        let mut policy = object(json!([{"action": "Sigkill"}]));
        policy.spec["kprobes"][0]["selectors"][0]["matchBinaries"] =
            json!([{"operator": "In", "values": ["/usr/bin/nc"]}]);
        let only = Tuning { binaries: BTreeSet::from(["/usr/bin/nc".to_string()]), ..Tuning::default() };
        let before = policy.clone();
        assert!(policy.tune(&only).unwrap_err().to_string().contains("matching none"));
        assert_eq!(policy, before, "a refused tuning changes nothing");
        policy.kind = Kind::TracingPolicyNamespaced;
        let namespace = Tuning { namespaces: BTreeSet::from(["x".to_string()]), ..Tuning::default() };
        assert!(policy.tune(&namespace).unwrap_err().to_string().contains("TracingPolicyNamespaced"));
    }
}
