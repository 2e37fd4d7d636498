//! One run of the offline pipeline: records → findings → mapper → policies,
//! with every skip accounted for in a [`Report`].

use std::collections::{BTreeMap, BTreeSet};

use crate::finding::Finding;
use crate::mapper::Registry;
use crate::policy::validate::{self, TetragonVersion};
use crate::policy::{Assembled, Draft, Mode, assemble};
use crate::qualys::records::Record;
use crate::qualys::wire;
use crate::report::{Report, Skip, SkipReason};

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Audit or enforce.
    pub mode: Mode,
    /// Tetragon schema versions every object must pass.
    pub versions: Vec<TetragonVersion>,
}

impl Default for Options {
    fn default() -> Self {
        Options { mode: Mode::Post, versions: TetragonVersion::ALL.to_vec() }
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    /// Valid objects, sorted by kind, namespace and name.
    pub policies: Vec<Assembled>,
    /// What happened.
    pub report: Report,
}

/// Runs the pipeline over `records`.
pub fn run(records: Vec<Record>, registry: &mut Registry, options: &Options) -> Outcome {
    let mut report = Report { records: records.len(), ..Report::default() };
    let findings = normalise(records, &mut report);
    let mut drafts = Vec::new();
    for finding in &findings {
        let key = finding.category_key();
        *report.findings.entry(key.clone()).or_default() += 1;
        let subject = || format!("finding {} ({})", finding.id, finding.category);
        let Some(plugin) = registry.route(&key) else {
            report.skipped.push(Skip { subject: subject(), reason: SkipReason::UnknownCategory });
            continue;
        };
        let mapper = format!("{}@{}", plugin.info().name, plugin.info().version);
        match plugin.map(finding) {
            Ok(policies) => drafts.extend(policies.into_iter().map(|policy| Draft {
                finding_id: finding.id.clone(),
                category: finding.category.clone(),
                mapper: mapper.clone(),
                policy,
            })),
            Err(error) => {
                tracing::warn!(finding = %finding.id, %mapper, %error, "mapper failed");
                report
                    .skipped
                    .push(Skip { subject: subject(), reason: SkipReason::Mapper { mapper, error: error.to_string() } });
            }
        }
    }
    let categories: BTreeMap<&str, &str> = findings.iter().map(|f| (f.id.as_str(), f.category.as_str())).collect();
    let mut policies = Vec::new();
    for assembled in assemble(drafts, options.mode) {
        let mut problems = validate::validate(&assembled.object.to_value(), &options.versions);
        if assembled.enforced != assembled.object {
            problems.extend(validate::validate(&assembled.enforced.to_value(), &options.versions));
            problems.sort();
            problems.dedup();
        }
        if problems.is_empty() {
            let category = assembled.object.labels.get(crate::policy::labels::CATEGORY).cloned().unwrap_or_default();
            let key = findings_key(&assembled, &findings).unwrap_or(category);
            *report.policies.entry(key).or_default() += 1;
            policies.push(assembled);
            continue;
        }
        let object = assembled.object.display_name();
        tracing::warn!(%object, problems = problems.len(), "generated policy failed validation");
        for id in &assembled.finding_ids {
            report.skipped.push(Skip {
                subject: format!("finding {id} ({})", categories.get(id.as_str()).copied().unwrap_or("?")),
                reason: SkipReason::InvalidPolicy { object: object.clone(), problems: problems.clone() },
            });
        }
    }
    Outcome { policies, report }
}

/// The category key of the findings behind an object.
fn findings_key(assembled: &Assembled, findings: &[Finding]) -> Option<String> {
    let id = assembled.finding_ids.first()?;
    findings.iter().find(|f| &f.id == id).map(Finding::category_key)
}

/// Parses records into findings, sorted by category and id so that mapping
/// order never depends on input order; repeated ids are processed once.
fn normalise(records: Vec<Record>, report: &mut Report) -> Vec<Finding> {
    let mut seen = BTreeSet::new();
    let mut findings = Vec::with_capacity(records.len());
    for record in records {
        let parsed = record.value.map_err(|e| e.to_string()).and_then(|v| wire::to_finding(&v).map_err(|e| e.0));
        match parsed {
            Ok(finding) if seen.insert(finding.id.clone()) => findings.push(finding),
            Ok(_) => report.duplicates += 1,
            Err(why) => report.skipped.push(Skip { subject: record.position, reason: SkipReason::Malformed(why) }),
        }
    }
    findings.sort_by(|a, b| (a.category_key(), &a.id).cmp(&(b.category_key(), &b.id)));
    findings
}
