//! The boundary between the host and a component, in both directions.
//!
//! In: a [`Finding`] becomes the WIT `finding` record, borrowed from ours
//! rather than copied, and holding only the fields the component reads
//! ([`Reads`]); the same fields make the key under which a selective
//! mapper's answers are remembered.
//!
//! Out: nothing a component returns is trusted. Its `info` and every policy
//! are checked here (slugs, technique ids, namespaces, indicators, sizes,
//! JSON objects) before they become a [`MappedPolicy`]; the failures are
//! typed ([`InvalidInfo`], [`InvalidOutput`]).

use std::net::IpAddr;
use std::sync::Arc;

use serde_json::Value;

use super::bindings::qualys::respond::types as wit;
use super::engine::Limits;
use crate::finding::{Finding, Process, Severity, category_key, key_matcher};
use crate::names::is_dns_label;
use crate::recent::Recent;

/// Where a mapped policy applies.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Every container of the cluster.
    Cluster,
    /// The pods of one namespace.
    Namespace(String),
}

/// One policy as a component returned it, with the host's first checks done:
/// the fields are well-formed and the spec is a JSON object. Not yet merged,
/// named, scoped or validated.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedPolicy {
    /// Template slug.
    pub template: String,
    /// MITRE ATT&CK technique id.
    pub technique: String,
    /// Where it applies.
    pub scope: Scope,
    /// What it blocks.
    pub indicators: Vec<String>,
    /// The TracingPolicy spec. Identical texts from one component share one
    /// parsed value, which the policy stage uses to skip repeated merging.
    pub spec: Arc<Value>,
}

/// The fields of the WIT `finding` record, in its order, by their WIT names.
const FIELDS: [&str; 15] = [
    "id",
    "category",
    "severity",
    "detected-at",
    "cluster",
    "namespace",
    "pod",
    "container",
    "image",
    "process",
    "destination-ip",
    "destination-port",
    "mitre-techniques",
    "labels",
    "raw",
];

/// Bits of [`Reads`], one per field, in the order of [`FIELDS`].
mod bit {
    pub(super) const ID: u16 = 1 << 0;
    pub(super) const CATEGORY: u16 = 1 << 1;
    pub(super) const SEVERITY: u16 = 1 << 2;
    pub(super) const DETECTED_AT: u16 = 1 << 3;
    pub(super) const CLUSTER: u16 = 1 << 4;
    pub(super) const NAMESPACE: u16 = 1 << 5;
    pub(super) const POD: u16 = 1 << 6;
    pub(super) const CONTAINER: u16 = 1 << 7;
    pub(super) const IMAGE: u16 = 1 << 8;
    pub(super) const PROCESS: u16 = 1 << 9;
    pub(super) const DESTINATION_IP: u16 = 1 << 10;
    pub(super) const DESTINATION_PORT: u16 = 1 << 11;
    pub(super) const MITRE_TECHNIQUES: u16 = 1 << 12;
    pub(super) const LABELS: u16 = 1 << 13;
    pub(super) const RAW: u16 = 1 << 14;
}

/// Which fields of a finding a component reads: every one for a plain
/// `mapper`, those it names for a `selective-mapper` (always with `category`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reads(u16);

impl Reads {
    /// Every field: what a plain `mapper` gets.
    pub const ALL: Reads = Reads((1 << FIELDS.len()) - 1);

    /// The fields named by a selective mapper's `reads`.
    pub fn parse(names: &[String]) -> Result<Reads, InvalidInfo> {
        let mut bits = bit::CATEGORY; // the host routes by it, so it is always sent
        for name in names {
            bits |= Reads::bit_of(name)?;
        }
        Ok(Reads(bits))
    }

    /// The bit of the field named `name`.
    fn bit_of(name: &str) -> Result<u16, InvalidInfo> {
        let index =
            FIELDS.iter().position(|field| *field == name).ok_or_else(|| InvalidInfo::UnknownField(clip(name)))?;
        Ok(1 << index)
    }

    fn has(self, field: u16) -> bool {
        self.0 & field != 0
    }

    /// True for a plain mapper, which gets every field.
    pub fn is_all(self) -> bool {
        self == Reads::ALL
    }

    /// The fields, by their WIT names.
    pub fn names(self) -> Vec<&'static str> {
        FIELDS.iter().enumerate().filter(|(i, _)| self.0 & (1 << i) != 0).map(|(_, f)| *f).collect()
    }
}

/// What `reads-by-category` returns, as the component sent it: categories
/// with the names of their fields.
pub type RawCategoryReads = Vec<(String, Vec<String>)>;

/// What a `category-selective-mapper` reads per category: the category keys
/// (see [`category_key`]) it named, each with its fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CategoryReads(Vec<(String, Reads)>);

impl CategoryReads {
    /// Checks what `reads-by-category` returned against what the component
    /// claims (`categories`, from `info`) and reads as a whole (`all`).
    pub fn parse(
        by_category: &[(String, Vec<String>)],
        categories: &[String],
        all: Reads,
    ) -> Result<CategoryReads, InvalidInfo> {
        let mut parsed: Vec<(String, Reads)> = Vec::with_capacity(by_category.len());
        for (category, names) in by_category {
            let key = category_key(category);
            if !categories.iter().any(|claimed| category_key(claimed) == key) {
                return Err(InvalidInfo::UnclaimedCategory(clip(category)));
            }
            if parsed.iter().any(|(seen, _)| *seen == key) {
                return Err(InvalidInfo::RepeatedCategory(clip(category)));
            }
            let mut reads = Reads(bit::CATEGORY);
            for name in names {
                let field = Reads::bit_of(name)?;
                if !all.has(field) {
                    return Err(InvalidInfo::NotRead { category: clip(category), field: clip(name) });
                }
                reads.0 |= field;
            }
            parsed.push((key, reads));
        }
        Ok(CategoryReads(parsed))
    }

    /// What is read of a finding of `category` (any spelling of it), or
    /// `None` when the component named no fields for it.
    pub fn of(&self, category: &str) -> Option<Reads> {
        let is_key = key_matcher(category);
        self.0.iter().find(|(key, _)| is_key(key)).map(|(_, reads)| *reads)
    }
}

/// A finding as a component gets it: the fields it reads, borrowed from the
/// host's [`Finding`]; the few the host must format are formatted here once.
pub(super) struct Sent<'a> {
    finding: &'a Finding,
    reads: Reads,
    process: Option<&'a Process>,
    detected_at: Option<String>,
    destination_ip: Option<String>,
    arguments: Vec<&'a str>,
    techniques: Vec<&'a str>,
    labels: Vec<(&'a str, &'a str)>,
    raw: std::borrow::Cow<'a, str>,
}

impl<'a> Sent<'a> {
    /// What of `finding` a component that reads `reads` is sent.
    pub(super) fn new(finding: &'a Finding, reads: Reads) -> Sent<'a> {
        let process = finding.process.as_ref().filter(|_| reads.has(bit::PROCESS));
        Sent {
            finding,
            reads,
            process,
            detected_at: finding
                .detected_at
                .filter(|_| reads.has(bit::DETECTED_AT))
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            destination_ip: finding.destination_ip.filter(|_| reads.has(bit::DESTINATION_IP)).map(ip_text),
            arguments: process.map(|p| p.arguments.iter().map(String::as_str).collect()).unwrap_or_default(),
            techniques: if reads.has(bit::MITRE_TECHNIQUES) {
                finding.mitre_techniques.iter().map(String::as_str).collect()
            } else {
                Vec::new()
            },
            labels: if reads.has(bit::LABELS) {
                finding.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
            } else {
                Vec::new()
            },
            raw: if reads.has(bit::RAW) { finding.raw.text() } else { std::borrow::Cow::Borrowed("") },
        }
    }

    fn text(&self, field: u16, value: &'a str) -> &'a str {
        if self.reads.has(field) { value } else { "" }
    }

    fn optional(&self, field: u16, value: &'a Option<String>) -> Option<&'a str> {
        value.as_deref().filter(|_| self.reads.has(field))
    }

    /// The WIT record.
    pub(super) fn record(&self) -> wit::Finding<'_> {
        let f = self.finding;
        wit::Finding {
            id: self.text(bit::ID, &f.id),
            category: &f.category,
            severity: if self.reads.has(bit::SEVERITY) { severity(f.severity) } else { wit::Severity::Unknown },
            detected_at: self.detected_at.as_deref(),
            cluster: self.optional(bit::CLUSTER, &f.cluster),
            namespace: self.optional(bit::NAMESPACE, &f.namespace),
            pod: self.optional(bit::POD, &f.pod),
            container: self.optional(bit::CONTAINER, &f.container),
            image: self.optional(bit::IMAGE, &f.image),
            process: self.process.map(|p| wit::Process { binary: &p.binary, arguments: &self.arguments }),
            destination_ip: self.destination_ip.as_deref(),
            destination_port: f.destination_port.filter(|_| self.reads.has(bit::DESTINATION_PORT)),
            mitre_techniques: &self.techniques,
            labels: &self.labels,
            raw: &self.raw,
        }
    }

    /// Everything sent, as bytes: equal keys mean equal records. Each part
    /// is length-prefixed and each list ends with an absent part, so no two
    /// records share a key.
    pub(super) fn key(&self) -> Vec<u8> {
        fn text(text: Option<&str>) -> Option<&[u8]> {
            text.map(str::as_bytes)
        }
        let record = self.record();
        let mut key = Vec::with_capacity(128);
        let mut part = |bytes: Option<&[u8]>| match bytes {
            None => key.push(0),
            Some(bytes) => {
                key.push(1);
                key.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                key.extend_from_slice(bytes);
            }
        };
        part(text(Some(record.id)));
        part(text(Some(record.category)));
        part(text(Some(severity_name(record.severity))));
        part(text(record.detected_at));
        part(text(record.cluster));
        part(text(record.namespace));
        part(text(record.pod));
        part(text(record.container));
        part(text(record.image));
        part(text(record.process.as_ref().map(|p| p.binary)));
        for argument in record.process.as_ref().map(|p| p.arguments).unwrap_or_default() {
            part(text(Some(argument)));
        }
        part(None);
        part(text(record.destination_ip));
        part(record.destination_port.map(u16::to_le_bytes).as_ref().map(|port| &port[..]));
        for technique in record.mitre_techniques {
            part(text(Some(technique)));
        }
        part(None);
        for (k, v) in record.labels {
            part(text(Some(k)));
            part(text(Some(v)));
        }
        part(None);
        part(text(Some(record.raw)));
        key
    }
}

/// The canonical text of `ip`, as `Display` writes it; an IPv4 address
/// without `core::fmt`, which costs ten times more and runs for most
/// findings, even those whose answer is remembered.
fn ip_text(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else { return ip.to_string() };
    let mut text = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        if octet >= 100 {
            text.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            text.push(char::from(b'0' + octet / 10 % 10));
        }
        text.push(char::from(b'0' + octet % 10));
    }
    text
}

fn severity(severity: Severity) -> wit::Severity {
    match severity {
        Severity::Unknown => wit::Severity::Unknown,
        Severity::Low => wit::Severity::Low,
        Severity::Medium => wit::Severity::Medium,
        Severity::High => wit::Severity::High,
        Severity::Critical => wit::Severity::Critical,
    }
}

fn severity_name(severity: wit::Severity) -> &'static str {
    match severity {
        wit::Severity::Unknown => "unknown",
        wit::Severity::Low => "low",
        wit::Severity::Medium => "medium",
        wit::Severity::High => "high",
        wit::Severity::Critical => "critical",
    }
}

/// Why a component's `info` or `reads` is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidInfo {
    /// The name is not a slug.
    #[error("name {0:?} is not a slug of lowercase letters, digits and '-' (at most 40)")]
    Name(String),
    /// The version is empty or too long.
    #[error("version must be 1 to 64 characters")]
    Version,
    /// Too few or too many categories.
    #[error("it must claim 1 to 256 categories, not {0}")]
    CategoryCount(usize),
    /// A category that cannot be one.
    #[error("category {0:?} is empty, too long or has control characters")]
    Category(String),
    /// `reads` named a field the finding record does not have.
    #[error("reads names {0:?}, which is not a field of qualys:respond/types.finding")]
    UnknownField(String),
    /// `reads-by-category` named a category `info` does not claim.
    #[error("reads-by-category names {0:?}, a category info does not claim")]
    UnclaimedCategory(String),
    /// `reads-by-category` named a category twice.
    #[error("reads-by-category names {0:?} twice")]
    RepeatedCategory(String),
    /// `reads-by-category` gave a category a field `reads` does not name.
    #[error("reads-by-category gives {category:?} the field {field:?}, which reads does not name")]
    NotRead {
        /// The category, as the component spelled it.
        category: String,
        /// The field.
        field: String,
    },
}

/// Checks what `info` returned.
pub(super) fn check_info(info: &wit::MapperInfo) -> Result<(), InvalidInfo> {
    if !is_slug(&info.name, 40) {
        return Err(InvalidInfo::Name(clip(&info.name)));
    }
    if info.version.is_empty() || info.version.len() > 64 {
        return Err(InvalidInfo::Version);
    }
    if info.categories.is_empty() || info.categories.len() > 256 {
        return Err(InvalidInfo::CategoryCount(info.categories.len()));
    }
    match info.categories.iter().find(|c| c.trim().is_empty() || c.len() > 128 || c.chars().any(char::is_control)) {
        Some(bad) => Err(InvalidInfo::Category(clip(bad))),
        None => Ok(()),
    }
}

/// Why what a call returned is refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidOutput {
    /// More policies than one call may return.
    #[error("{count} policies, more than the limit of {limit}")]
    TooManyPolicies {
        /// Returned.
        count: usize,
        /// Allowed.
        limit: usize,
    },
    /// More bytes than one call may return.
    #[error("{bytes} bytes of policies, more than the limit of {limit}")]
    TooLarge {
        /// Returned.
        bytes: usize,
        /// Allowed.
        limit: usize,
    },
    /// One of the policies is refused.
    #[error("policy {index}: {problem}")]
    Policy {
        /// 1-based, in the order returned.
        index: usize,
        /// What is wrong with it.
        #[source]
        problem: PolicyProblem,
    },
}

/// What is wrong with one returned policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyProblem {
    /// The template is not a slug.
    #[error("template {0:?} is not a slug of lowercase letters, digits and '-' (at most 40)")]
    Template(String),
    /// The technique is not a MITRE ATT&CK id.
    #[error("technique {0:?} is not a MITRE ATT&CK id like T1552.005")]
    Technique(String),
    /// The scope names something that is not a namespace name.
    #[error("namespace {0:?} is not a valid namespace name")]
    Namespace(String),
    /// Too many indicators.
    #[error("{count} indicators, more than the limit of {limit}")]
    TooManyIndicators {
        /// Returned.
        count: usize,
        /// Allowed.
        limit: usize,
    },
    /// An indicator that cannot be listed in an annotation.
    #[error("indicator {0:?} is empty, longer than 256 bytes, or has a comma or control character")]
    Indicator(String),
    /// The spec is too large.
    #[error("spec of {bytes} bytes, more than the limit of {limit}")]
    SpecTooLarge {
        /// Returned.
        bytes: usize,
        /// Allowed.
        limit: usize,
    },
    /// The spec does not parse.
    #[error("spec is not valid JSON: {0}")]
    SpecNotJson(String),
    /// The spec parses, but not to an object.
    #[error("spec is not a JSON object")]
    SpecNotObject,
}

/// Parsed spec texts kept per component, per generation of [`Recent`].
pub const SPEC_CACHE_ENTRIES: usize = 2048;

/// A component's spec texts already parsed: identical texts share one value.
pub(super) struct Specs(Recent<String, Arc<Value>>);

impl Default for Specs {
    fn default() -> Specs {
        Specs(Recent::new(SPEC_CACHE_ENTRIES))
    }
}

impl Specs {
    fn parse(&mut self, text: String) -> Result<Arc<Value>, PolicyProblem> {
        if let Some(parsed) = self.0.get(text.as_str()) {
            return Ok(Arc::clone(parsed));
        }
        let parsed: Value = serde_json::from_str(&text).map_err(|e| PolicyProblem::SpecNotJson(e.to_string()))?;
        if !parsed.is_object() {
            return Err(PolicyProblem::SpecNotObject);
        }
        let parsed = Arc::new(parsed);
        self.0.insert(text, Arc::clone(&parsed));
        Ok(parsed)
    }
}

/// Checks what a call returned.
pub(super) fn check_output(
    policies: Vec<wit::Policy>,
    limits: &Limits,
    specs: &mut Specs,
) -> Result<Vec<MappedPolicy>, InvalidOutput> {
    if policies.len() > limits.max_policies {
        return Err(InvalidOutput::TooManyPolicies { count: policies.len(), limit: limits.max_policies });
    }
    let bytes: usize = policies
        .iter()
        .map(|p| {
            p.spec.len() + p.template.len() + p.technique.len() + p.indicators.iter().map(String::len).sum::<usize>()
        })
        .sum();
    if bytes > limits.max_output_bytes {
        return Err(InvalidOutput::TooLarge { bytes, limit: limits.max_output_bytes });
    }
    policies
        .into_iter()
        .enumerate()
        .map(|(i, policy)| {
            check_policy(policy, limits, specs).map_err(|problem| InvalidOutput::Policy { index: i + 1, problem })
        })
        .collect()
}

fn check_policy(policy: wit::Policy, limits: &Limits, specs: &mut Specs) -> Result<MappedPolicy, PolicyProblem> {
    if !is_slug(&policy.template, 40) {
        return Err(PolicyProblem::Template(clip(&policy.template)));
    }
    if !is_technique(&policy.technique) {
        return Err(PolicyProblem::Technique(clip(&policy.technique)));
    }
    let scope = match policy.scope {
        wit::Scope::Cluster => Scope::Cluster,
        wit::Scope::Namespace(ns) if is_dns_label(&ns) => Scope::Namespace(ns),
        wit::Scope::Namespace(ns) => return Err(PolicyProblem::Namespace(clip(&ns))),
    };
    if policy.indicators.len() > limits.max_indicators {
        return Err(PolicyProblem::TooManyIndicators { count: policy.indicators.len(), limit: limits.max_indicators });
    }
    if let Some(bad) = policy
        .indicators
        .iter()
        .find(|i| i.is_empty() || i.len() > 256 || i.chars().any(|c| c.is_control() || c == ','))
    {
        return Err(PolicyProblem::Indicator(clip(bad)));
    }
    if policy.spec.len() > limits.max_spec_bytes {
        return Err(PolicyProblem::SpecTooLarge { bytes: policy.spec.len(), limit: limits.max_spec_bytes });
    }
    let spec = specs.parse(policy.spec)?;
    Ok(MappedPolicy {
        template: policy.template,
        technique: policy.technique,
        scope,
        indicators: policy.indicators,
        spec,
    })
}

fn is_slug(text: &str, max: usize) -> bool {
    !text.is_empty()
        && text.len() <= max
        && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

/// True for a MITRE ATT&CK technique id: `T1234` or `T1234.567`.
pub(crate) fn is_technique(id: &str) -> bool {
    let bytes = id.as_bytes();
    let base = bytes.len() >= 5 && bytes[0] == b'T' && bytes[1..5].iter().all(u8::is_ascii_digit);
    base && (bytes.len() == 5 || (bytes.len() == 9 && bytes[5] == b'.' && bytes[6..].iter().all(u8::is_ascii_digit)))
}

/// Keeps a component-supplied message to one bounded line.
pub(crate) fn clip(message: &str) -> String {
    const MAX: usize = 300;
    let line: String = message.chars().map(|c| if c.is_control() { ' ' } else { c }).take(MAX).collect();
    if message.chars().count() > MAX { format!("{line}…") } else { line }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Process;

    #[test]
    fn technique_ids() {
        for good in ["T1046", "T1552.005", "T1059.004"] {
            assert!(is_technique(good), "{good}");
        }
        for bad in ["", "T104", "t1046", "T1552.5", "T1552.0051", "T1552-005", "1046"] {
            assert!(!is_technique(bad), "{bad}");
        }
    }

    #[test]
    fn reads_are_checked_and_always_include_the_category() {
        let reads = Reads::parse(&["namespace".into(), "destination-port".into()]).unwrap();
        assert_eq!(reads.names(), ["category", "namespace", "destination-port"]);
        assert!(!reads.is_all() && Reads::ALL.is_all());
        assert_eq!(Reads::ALL.names().len(), 15);
        assert_eq!(
            Reads::parse(&["destination_port".into()]),
            Err(InvalidInfo::UnknownField("destination_port".into()))
        );
    }

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn reads_by_category_are_checked_against_info_and_reads() {
        let claimed = strings(&["Crypto_Mining", "Container_Escape"]);
        let all = Reads::parse(&strings(&["namespace", "destination-port"])).unwrap();
        let by = |pairs: &[(&str, &[&str])]| -> Vec<(String, Vec<String>)> {
            pairs.iter().map(|(c, f)| (c.to_string(), strings(f))).collect()
        };
        let parsed = CategoryReads::parse(
            &by(&[("crypto-mining", &["destination-port"]), ("Container_Escape", &[])]),
            &claimed,
            all,
        )
        .unwrap();
        assert_eq!(parsed.of("Crypto_Mining").map(Reads::names), Some(vec!["category", "destination-port"]));
        assert_eq!(parsed.of(" crypto mining ").map(Reads::names), Some(vec!["category", "destination-port"]));
        assert_eq!(parsed.of("CONTAINER_ESCAPE").map(Reads::names), Some(vec!["category"]));
        assert_eq!(parsed.of("Reverse_Shell"), None, "a category not named gets what reads names");
        assert_eq!(
            parsed,
            CategoryReads(vec![
                ("crypto_mining".into(), Reads::parse(&strings(&["destination-port"])).unwrap()),
                ("container_escape".into(), Reads(bit::CATEGORY)),
            ])
        );
        assert_eq!(
            CategoryReads::parse(&by(&[("Reverse_Shell", &[])]), &claimed, all),
            Err(InvalidInfo::UnclaimedCategory("Reverse_Shell".into()))
        );
        assert_eq!(
            CategoryReads::parse(&by(&[("Crypto_Mining", &[]), ("crypto-mining", &[])]), &claimed, all),
            Err(InvalidInfo::RepeatedCategory("crypto-mining".into()))
        );
        assert_eq!(
            CategoryReads::parse(&by(&[("Crypto_Mining", &["pod"])]), &claimed, all),
            Err(InvalidInfo::NotRead { category: "Crypto_Mining".into(), field: "pod".into() })
        );
        assert_eq!(
            CategoryReads::parse(&by(&[("Crypto_Mining", &["port"])]), &claimed, all),
            Err(InvalidInfo::UnknownField("port".into()))
        );
    }

    #[test]
    fn a_category_that_reads_less_shares_more_answers() {
        let narrow = Reads::parse(&strings(&["namespace"])).unwrap();
        let wide = Reads::parse(&strings(&["namespace", "process", "destination-port"])).unwrap();
        let (a, mut b) = (finding("a", "pod-1"), finding("b", "pod-2"));
        b.process = Some(Process { binary: "/usr/bin/curl".into(), arguments: Vec::new() });
        b.destination_port = Some(8080);
        assert_ne!(Sent::new(&a, wide).key(), Sent::new(&b, wide).key());
        assert_eq!(Sent::new(&a, narrow).key(), Sent::new(&b, narrow).key());
    }

    fn finding(id: &str, pod: &str) -> Finding {
        Finding {
            id: id.into(),
            category: "Crypto_Mining".into(),
            namespace: Some("shop".into()),
            pod: Some(pod.into()),
            process: Some(Process { binary: "/tmp/xmrig".into(), arguments: vec!["-o".into()] }),
            destination_port: Some(3333),
            raw: format!("{{\"uuid\":\"{id}\"}}").into(),
            ..Finding::default()
        }
    }

    #[test]
    fn only_what_is_read_is_sent_and_it_makes_the_key() {
        let reads = Reads::parse(&["namespace".into(), "process".into(), "destination-port".into()]).unwrap();
        let (a, b) = (finding("a", "pod-1"), finding("b", "pod-2"));
        let (sent_a, sent_b) = (Sent::new(&a, reads), Sent::new(&b, reads));
        let record = sent_a.record();
        assert_eq!((record.id, record.raw, record.pod), ("", "", None), "unread fields arrive empty");
        assert_eq!(record.namespace, Some("shop"));
        assert_eq!(record.process.as_ref().map(|p| p.arguments), Some(&["-o"][..]));
        assert_eq!(sent_a.key(), sent_b.key(), "findings that differ only in what is not read share a key");
        let everything = (Sent::new(&a, Reads::ALL), Sent::new(&b, Reads::ALL));
        assert_ne!(everything.0.key(), everything.1.key());
        assert_eq!(everything.0.record().raw, a.raw.text());
        let mut other_port = finding("c", "pod-1");
        other_port.destination_port = Some(4444);
        assert_ne!(Sent::new(&other_port, reads).key(), sent_a.key());
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for text in ["0.0.0.0", "9.10.99.100", "169.254.169.254", "255.255.255.255", "203.0.113.5", "fd00:ec2::254"] {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(ip_text(ip), ip.to_string());
            assert_eq!(ip_text(ip), text);
        }
        for octet in 0..=255u8 {
            let ip = IpAddr::from([octet, 255 - octet, octet / 3, 7]);
            assert_eq!(ip_text(ip), ip.to_string());
        }
    }

    #[test]
    fn keys_do_not_run_fields_together() {
        let reads = Reads::parse(&["namespace".into(), "pod".into()]).unwrap();
        let mut a = finding("a", "b-c");
        a.namespace = Some("a".into());
        let mut b = finding("a", "c");
        b.namespace = Some("a-b".into());
        assert_ne!(Sent::new(&a, reads).key(), Sent::new(&b, reads).key());
    }

    #[test]
    fn an_argument_is_never_taken_for_the_address_after_it() {
        // Port 12337 is the bytes "10", the same as a technique "10": without
        // an end to the argument list these two findings shared a key.
        let reads = Reads::ALL;
        let mut a = finding("a", "p");
        a.process = Some(Process { binary: "/bin/x".into(), arguments: vec!["203.0.113.5".into()] });
        a.destination_port = Some(u16::from_le_bytes(*b"10"));
        let mut b = finding("a", "p");
        b.process = Some(Process { binary: "/bin/x".into(), arguments: Vec::new() });
        b.destination_ip = Some("203.0.113.5".parse().unwrap());
        b.destination_port = None;
        b.mitre_techniques = vec!["10".into()];
        assert_ne!(Sent::new(&a, reads).key(), Sent::new(&b, reads).key());
    }
}
