//! From mapped drafts to named, labelled, merged objects.
//!
//! Drafts of one category, template and scope merge into one object when
//! their specs are the same but for their `values` lists: the lists are
//! united, sorted and deduplicated. Specs of different shapes for one key
//! become separate objects whose names carry a hash of their shape. Nothing
//! depends on the order drafts arrive in, so the same findings always give
//! the same names and bytes.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use foldhash::quality::RandomState;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::evidence;
use super::guard;
use super::lifecycle;
use super::mode::Mode;
use super::object::{Kind, PolicyObject, labels};
use super::spec;
use crate::finding::category_key;
use crate::guardrails::Guardrails;
use crate::mapper::{MappedPolicy, Scope};
use crate::recent::Recent;
use crate::reputation::{Decision, Evidence};

/// Finding ids listed in the annotation before it is cut (the count stays exact).
const MAX_LISTED_IDS: usize = 100;
/// Longest name we emit; Tetragon derives BPF object names from it.
const MAX_NAME: usize = 63;

/// One mapped policy and where it came from.
#[derive(Debug, Clone)]
pub struct Draft {
    /// The finding behind it.
    pub finding_id: String,
    /// The finding's category, as the finding spells it.
    pub category: String,
    /// `name@version` of the mapper (see [`crate::mapper::Plugin::label`]).
    pub mapper: Arc<str>,
    /// What the mapper returned (shared with the mapper's answer cache).
    pub policy: Arc<MappedPolicy>,
    /// What the host judged about the finding (shared by its drafts).
    pub evidence: Arc<Evidence>,
}

/// One object and the findings behind it.
#[derive(Debug, Clone)]
pub struct Assembled {
    /// The object.
    pub object: PolicyObject,
    /// The same object in enforce mode: what promoting it would apply. An
    /// audit-mode object is only valid if this one is too.
    pub enforced: PolicyObject,
    /// Ids of the findings it answers, sorted.
    pub finding_ids: Vec<String>,
    /// Their category, as the findings spell it (the first in sort order
    /// when they spell it differently).
    pub category: String,
    /// Why it is not in the mode asked for, when it is not.
    pub warning: Option<String>,
}

/// Merges, names, labels, scopes and sets the mode of `drafts`.
/// The result is sorted by kind, namespace and name.
pub fn assemble(drafts: impl IntoIterator<Item = Draft>, mode: Mode, guardrails: &Guardrails) -> Vec<Assembled> {
    let mut assembler = Assembler::default();
    drafts.into_iter().for_each(|draft| assembler.add(draft));
    assembler.finish(mode, guardrails)
}

/// Merges drafts as they come, so that a run holds one spec per group, not
/// one per finding.
pub struct Assembler {
    /// Key → the indices in `groups` of its groups, one per shape.
    index: BTreeMap<GroupKey, Vec<usize>>,
    groups: Vec<Group>,
    /// Specs already merged, by the address of their shared value: a spec a
    /// component returned before adds nothing but its finding's id and
    /// indicators. Each entry keeps its `Arc`, so an address is never reused
    /// while it is remembered.
    merged: Recent<usize, Vec<Merged>>,
}

impl Default for Assembler {
    fn default() -> Assembler {
        Assembler { index: BTreeMap::new(), groups: Vec::new(), merged: Recent::new(MERGED_CACHE_ENTRIES) }
    }
}

/// Merged specs remembered per generation of [`Recent`]: as many as a
/// component's parsed specs ([`crate::mapper::SPEC_CACHE_ENTRIES`]), so a
/// spec the mapper stage shares is recognised here.
const MERGED_CACHE_ENTRIES: usize = crate::mapper::SPEC_CACHE_ENTRIES;

/// Category key, template, scope.
type GroupKey = (String, String, Scope);

/// A spec merged before, with everything that must match for a draft with
/// the same spec to join the same group (compared as written, without
/// building a key).
struct Merged {
    category: String,
    policy: Arc<MappedPolicy>,
    mapper: Arc<str>,
    group: usize,
}

impl Merged {
    fn matches(&self, draft: &Draft) -> bool {
        let (a, b) = (&self.policy, &draft.policy);
        // The scope first: one spec is often shared by the namespaces of a key.
        a.scope == b.scope
            && self.category == draft.category
            && a.template == b.template
            && a.technique == b.technique
            && self.mapper == draft.mapper
    }
}

impl Assembler {
    /// Merges one draft into its group.
    pub fn add(&mut self, draft: Draft) {
        let address = Arc::as_ptr(&draft.policy.spec) as usize;
        let known = self.merged.get(&address).and_then(|merged| merged.iter().find(|m| m.matches(&draft)));
        if let Some(merged) = known {
            // The very answer recorded before: its indicators are in already.
            let indicators = !Arc::ptr_eq(&merged.policy, &draft.policy);
            self.groups[merged.group].record(draft, indicators);
            return;
        }
        let key = (category_key(&draft.category), draft.policy.template.clone(), draft.policy.scope.clone());
        let found =
            self.index.get(&key).and_then(|shapes| shapes.iter().copied().find(|&g| self.groups[g].takes(&draft)));
        let group = match found {
            Some(group) => group,
            None => {
                self.groups.push(Group::new(key.clone(), &draft));
                let group = self.groups.len() - 1;
                self.index.entry(key).or_default().push(group);
                group
            }
        };
        let merged = Merged {
            category: draft.category.clone(),
            policy: Arc::clone(&draft.policy),
            mapper: Arc::clone(&draft.mapper),
            group,
        };
        match self.merged.get_mut(&address) {
            Some(list) => list.push(merged),
            None => self.merged.insert(address, vec![merged]),
        }
        spec::insert_values(&mut self.groups[group].spec, &draft.policy.spec);
        self.groups[group].record(draft, true);
    }

    /// The objects, sorted by kind, namespace and name.
    pub fn finish(self, mode: Mode, guardrails: &Guardrails) -> Vec<Assembled> {
        let shapes: BTreeMap<GroupKey, usize> =
            self.index.into_iter().map(|(key, groups)| (key, groups.len())).collect();
        let mut groups: Vec<(String, Group)> = self.groups.into_iter().map(|group| (group.shape(), group)).collect();
        groups.sort_by(|(a_shape, a), (b_shape, b)| (&a.key, a_shape).cmp(&(&b.key, b_shape)));
        let mut out: Vec<Assembled> = groups
            .into_iter()
            .map(|(shape, group)| {
                let suffix = (shapes[&group.key] > 1).then(|| short_hash(&shape));
                group.finish(suffix.as_deref(), mode, guardrails)
            })
            .collect();
        out.sort_by(|a, b| {
            (a.object.kind, &a.object.namespace, &a.object.name).cmp(&(
                b.object.kind,
                &b.object.namespace,
                &b.object.name,
            ))
        });
        out
    }
}

struct Group {
    key: GroupKey,
    /// The category as the drafts spell it.
    spellings: BTreeSet<String>,
    technique: String,
    mapper: Arc<str>,
    spec: Value,
    /// Sorted and deduplicated when the group is finished.
    finding_ids: Vec<String>,
    /// Sorted when the group is finished.
    indicators: HashSet<String, RandomState>,
    decisions: BTreeMap<std::net::IpAddr, Decision>,
    domains: BTreeSet<String>,
}

impl Group {
    fn new(key: GroupKey, draft: &Draft) -> Group {
        let mut spec = Value::clone(&draft.policy.spec);
        spec::clear_values(&mut spec);
        Group {
            key,
            spellings: BTreeSet::new(),
            technique: draft.policy.technique.clone(),
            mapper: Arc::clone(&draft.mapper),
            spec,
            finding_ids: Vec::new(),
            indicators: HashSet::default(),
            decisions: BTreeMap::new(),
            domains: BTreeSet::new(),
        }
    }

    /// True when `draft` (of this group's key) merges into this group: the
    /// same technique, mapper and spec but for its `values` lists.
    fn takes(&self, draft: &Draft) -> bool {
        self.technique == draft.policy.technique
            && self.mapper == draft.mapper
            && same_shape(&self.spec, &draft.policy.spec)
    }

    /// Everything that must be equal for two drafts to merge, as canonical
    /// JSON: `[technique, mapper, spec]` with every `values` list of the spec
    /// written as `null`. It orders the groups of a key and names them.
    fn shape(&self) -> String {
        let shape = (&self.technique, &*self.mapper, Shape(&self.spec));
        serde_json::to_string(&shape).unwrap_or_default()
    }

    /// Adds the draft's finding and, when asked, its indicators (its values
    /// are already in).
    fn record(&mut self, draft: Draft, indicators: bool) {
        if !self.spellings.contains(&draft.category) {
            self.spellings.insert(draft.category);
        }
        self.finding_ids.push(draft.finding_id);
        for indicator in draft.policy.indicators.iter().filter(|_| indicators) {
            if !self.indicators.contains(indicator) {
                self.indicators.insert(indicator.clone());
            }
        }
        if !draft.evidence.is_empty() {
            self.decisions.extend(draft.evidence.decisions.iter().map(|(ip, d)| (*ip, d.clone())));
            self.domains.extend(draft.evidence.domains.iter().cloned());
        }
    }

    fn finish(mut self, suffix: Option<&str>, mode: Mode, guardrails: &Guardrails) -> Assembled {
        let (category, template, scope) = &self.key;
        let (kind, namespace) = match scope {
            Scope::Cluster => (Kind::TracingPolicy, None),
            Scope::Namespace(ns) => (Kind::TracingPolicyNamespaced, Some(ns.clone())),
        };
        guard::apply(&mut self.spec, namespace.is_none(), guardrails);
        let (mode, warning) = system_namespace_mode(namespace.as_deref(), mode, guardrails);
        let mut enforced_spec = self.spec.clone();
        Mode::Sigkill.apply(&mut enforced_spec);
        mode.apply(&mut self.spec);
        let mut finding_ids = self.finding_ids;
        finding_ids.sort_unstable();
        finding_ids.dedup();
        let object = PolicyObject {
            kind,
            name: object_name(category, template, suffix),
            namespace,
            labels: BTreeMap::from([
                (labels::MANAGED_BY.to_string(), labels::MANAGER.to_string()),
                (labels::CATEGORY.to_string(), label_value(category)),
                (labels::TECHNIQUE.to_string(), self.technique),
                (labels::MODE.to_string(), mode.label().to_string()),
                (labels::TEMPLATE.to_string(), template.to_string()),
                (labels::SOURCE.to_string(), "cdr".to_string()),
            ]),
            annotations: BTreeMap::from([
                (
                    labels::FINDING_IDS.to_string(),
                    finding_ids.iter().take(MAX_LISTED_IDS).cloned().collect::<Vec<_>>().join(","),
                ),
                (labels::FINDING_COUNT.to_string(), finding_ids.len().to_string()),
                (labels::INDICATORS.to_string(), sorted(self.indicators).join(",")),
                (labels::MAPPER.to_string(), self.mapper.to_string()),
                (
                    labels::ENFORCE_ACTIONS.to_string(),
                    serde_json::to_string(&lifecycle::enforce_actions(&enforced_spec)).unwrap_or_default(),
                ),
            ]),
            spec: self.spec,
        };
        let mut object = object;
        evidence::record(&mut object.annotations, &self.decisions, &self.domains);
        let mut enforced = object.clone();
        enforced.labels.insert(labels::MODE.to_string(), Mode::Sigkill.label().to_string());
        enforced.spec = enforced_spec;
        let category = self.spellings.into_iter().next().unwrap_or_default();
        Assembled { object, enforced, finding_ids, category, warning }
    }
}

fn sorted(set: HashSet<String, RandomState>) -> Vec<String> {
    let mut items: Vec<String> = set.into_iter().collect();
    items.sort_unstable();
    items
}

/// Enforcing in a system namespace is for the operator to allow
/// (`--allow-enforce-in`): until then the policy stays in audit mode.
pub fn system_namespace_mode(namespace: Option<&str>, mode: Mode, guardrails: &Guardrails) -> (Mode, Option<String>) {
    match namespace {
        Some(ns) if mode == Mode::Sigkill && guardrails.is_system(ns) => (
            Mode::Post,
            Some(format!(
                "{ns} is a system namespace: the policy stays in audit mode (Post); pass --allow-enforce-in {ns} to enforce there"
            )),
        ),
        _ => (mode, None),
    }
}

/// True when `a` and `b` are the same but for their `values` lists: what
/// [`Shape`] writes of them is the same, compared without writing it.
fn same_shape(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter().zip(b).all(|((key, x), (other, y))| {
                    let values = |v: &Value| key == "values" && v.is_array();
                    key == other
                        && match (values(x), values(y)) {
                            (true, true) => true,
                            (true, false) => y.is_null(),
                            (false, true) => x.is_null(),
                            (false, false) => same_shape(x, y),
                        }
                })
        }
        (Value::Array(a), Value::Array(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_shape(x, y)),
        // As written: `-0.0` and `0.0` are equal numbers but not the same text.
        (Value::Number(a), Value::Number(b)) => {
            a == b && a.as_f64().map(f64::is_sign_negative) == b.as_f64().map(f64::is_sign_negative)
        }
        (a, b) => a == b,
    }
}

/// A spec serialised with its `values` lists as `null`, without copying it.
struct Shape<'a>(&'a Value);

impl serde::Serialize for Shape<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.0 {
            Value::Object(map) => {
                let mut out = serializer.serialize_map(Some(map.len()))?;
                for (key, child) in map {
                    if key == "values" && child.is_array() {
                        out.serialize_entry(key, &())?;
                    } else {
                        out.serialize_entry(key, &Shape(child))?;
                    }
                }
                out.end()
            }
            Value::Array(items) => {
                let mut out = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    out.serialize_element(&Shape(item))?;
                }
                out.end()
            }
            other => other.serialize(serializer),
        }
    }
}

fn short_hash(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// `cdr-<category>-<template>[-<shape hash>]`, a DNS-1123 name of at most 63
/// characters (longer ones are cut and keep a hash of the full name).
fn object_name(category: &str, template: &str, suffix: Option<&str>) -> String {
    let mut name = format!("cdr-{}-{template}", slug(category));
    if let Some(suffix) = suffix {
        name = format!("{name}-{suffix}");
    }
    if name.len() > MAX_NAME {
        let hash = short_hash(&name);
        name.truncate(MAX_NAME - hash.len() - 1);
        name = format!("{}-{hash}", name.trim_end_matches('-'));
    }
    name
}

/// Lowercase letters, digits and single dashes.
fn slug(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let c = if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' };
        if !(c == '-' && (out.is_empty() || out.ends_with('-'))) {
            out.push(c);
        }
    }
    let trimmed = out.trim_end_matches('-');
    if trimmed.is_empty() { "unnamed".into() } else { trimmed.to_string() }
}

/// A category as a label value: at most 63 of `[A-Za-z0-9_.-]`, alphanumeric at both ends.
fn label_value(category: &str) -> String {
    let cleaned: String = category
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') { c } else { '_' })
        .collect();
    let mut value = cleaned.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_string();
    if value.len() > 63 || value != category {
        let hash = short_hash(category);
        value.truncate(63 - hash.len() - 1);
        value = format!("{}-{hash}", value.trim_end_matches(|c: char| !c.is_ascii_alphanumeric()));
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn draft(id: &str, ns: Option<&str>, ports: &[&str]) -> Draft {
        Draft {
            finding_id: id.into(),
            category: "Crypto_Mining".into(),
            mapper: "default@0.1.0".into(),
            policy: Arc::new(MappedPolicy {
                template: "pool-ports".into(),
                technique: "T1496".into(),
                scope: ns.map_or(Scope::Cluster, |ns| Scope::Namespace(ns.into())),
                indicators: ports.iter().map(|p| format!("port:{p}")).collect(),
                spec: Arc::new(json!({"kprobes": [{"call": "tcp_connect", "syscall": false,
                    "args": [{"index": 0, "type": "sock"}],
                    "selectors": [{"matchArgs": [{"index": 0, "operator": "DPort", "values": ports}],
                                   "matchActions": [{"action": "Sigkill"}]}]}]})),
            }),
            evidence: Arc::default(),
        }
    }

    #[test]
    fn same_shape_says_what_comparing_written_shapes_says() {
        let specs = [
            json!({"a": [{"values": [1, 2]}], "b": "x"}),
            json!({"a": [{"values": []}], "b": "x"}),
            json!({"a": [{"values": null}], "b": "x"}),
            json!({"a": [{"values": "3"}], "b": "x"}),
            json!({"a": [{"values": [1]}], "b": "y"}),
            json!({"a": [{"values": [1]}, {}], "b": "x"}),
            json!({"a": [{"values": [1], "c": 1}], "b": "x"}),
            json!({"values": [1]}),
            json!({"values": {"values": [1]}}),
            json!({"values": {"values": [2, 3]}}),
            json!({"a": [{"values": [1]}], "b": 0.0}),
            json!({"a": [{"values": [1]}], "b": -0.0}),
            json!({"a": [{"values": [1]}], "b": 0}),
        ];
        let written = |v: &Value| serde_json::to_string(&Shape(v)).unwrap();
        for a in &specs {
            for b in &specs {
                assert_eq!(same_shape(a, b), written(a) == written(b), "{a} and {b}");
            }
        }
    }

    #[test]
    fn same_shape_merges_and_order_does_not_matter() {
        let a =
            || vec![draft("b", None, &["4444", "3333"]), draft("a", None, &["5555"]), draft("c", Some("shop"), &["1"])];
        let mut reversed = a();
        reversed.reverse();
        let (x, y) =
            (assemble(a(), Mode::Post, &Guardrails::default()), assemble(reversed, Mode::Post, &Guardrails::default()));
        assert_eq!(x.len(), 2);
        assert_eq!(
            format!("{:?}", x.iter().map(|a| a.object.to_value()).collect::<Vec<_>>()),
            format!("{:?}", y.iter().map(|a| a.object.to_value()).collect::<Vec<_>>())
        );
        let merged = &x[0].object;
        assert_eq!(merged.name, "cdr-crypto-mining-pool-ports");
        assert_eq!(merged.kind, Kind::TracingPolicy);
        assert_eq!(
            merged.spec["kprobes"][0]["selectors"][0]["matchArgs"][0]["values"],
            json!(["3333", "4444", "5555"])
        );
        assert_eq!(merged.annotations[labels::FINDING_IDS], "a,b");
        assert_eq!(merged.labels[labels::MODE], "audit");
        assert_eq!(x[1].object.kind, Kind::TracingPolicyNamespaced);
        assert_eq!(x[1].object.namespace.as_deref(), Some("shop"));
    }

    #[test]
    fn a_shared_spec_is_merged_once_but_every_finding_is_recorded() {
        let first = draft("a", None, &["3333"]);
        let mut second = draft("b", None, &["9"]);
        Arc::make_mut(&mut second.policy).spec = Arc::clone(&first.policy.spec);
        let mut other_category = draft("c", None, &["9"]);
        other_category.category = "Reverse_Shell".into();
        Arc::make_mut(&mut other_category.policy).spec = Arc::clone(&first.policy.spec);
        let out = assemble(
            vec![first, second, other_category, draft("d", None, &["4444"])],
            Mode::Post,
            &Guardrails::default(),
        );
        assert_eq!(out.len(), 2);
        let mining = &out[0].object;
        assert_eq!(mining.annotations[labels::FINDING_IDS], "a,b,d");
        assert_eq!(mining.spec["kprobes"][0]["selectors"][0]["matchArgs"][0]["values"], json!(["3333", "4444"]));
        assert_eq!(out[1].object.name, "cdr-reverse-shell-pool-ports");
        assert_eq!(out[1].finding_ids, ["c"]);
    }

    #[test]
    fn different_shapes_get_distinct_stable_names() {
        let mut other = draft("z", None, &["1"]);
        Arc::make_mut(&mut Arc::make_mut(&mut other.policy).spec)["kprobes"][0]["call"] = json!("tcp_sendmsg");
        let out = assemble(vec![draft("a", None, &["2"]), other], Mode::Post, &Guardrails::default());
        assert_eq!(out.len(), 2);
        assert_ne!(out[0].object.name, out[1].object.name);
        assert!(out.iter().all(|a| a.object.name.starts_with("cdr-crypto-mining-pool-ports-")));
    }

    #[test]
    fn names_and_labels_stay_within_kubernetes_limits() {
        let long = "A_Category_Name_That_Goes_On_And_On_Well_Past_Sixty_Three_Characters";
        let name = object_name(&category_key(long), "some-template", None);
        assert!(name.len() <= 63 && !name.ends_with('-'), "{name}");
        let value = label_value(&category_key(long));
        assert!(value.len() <= 63, "{value}");
        assert_eq!(label_value("crypto_mining"), "crypto_mining");
        assert_ne!(label_value("bad/category"), label_value("bad:category"));
        assert_eq!(slug("__Weird__Name!"), "weird-name");
    }
}
