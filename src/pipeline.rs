//! The offline pipeline: records → findings → mapper → policies, one record
//! at a time, with every skip accounted for in a [`Report`].
//!
//! Records are mapped as they arrive and their drafts merged at once, so a
//! run holds one spec per policy, not one per finding, and no finding's raw
//! JSON outlives its mapping. The result does not depend on record order.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};

use crate::checkpoint::Checkpoint;
use crate::finding::{ClusterScope, Finding, OutOfScope};
use crate::guardrails::Guardrails;
use crate::mapper::Registry;
use crate::policy::binaries;
use crate::policy::validate::{self, TetragonVersion};
use crate::policy::{Assembled, Assembler, Draft, Mode, labels};
use crate::qualys::records::Record;
use crate::qualys::wire;
use crate::report::{Report, Skip, SkipReason};
use crate::reputation::Assessment;

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Audit or enforce.
    pub mode: Mode,
    /// Tetragon schema versions every object must pass.
    pub versions: Vec<TetragonVersion>,
    /// What no policy may target, and where policies stay in audit mode.
    pub guardrails: Guardrails,
    /// Which clusters' findings the run takes; a named cluster is also
    /// written on every object (label [`labels::CLUSTER`]).
    pub cluster: ClusterScope,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            mode: Mode::Post,
            versions: TetragonVersion::ALL.to_vec(),
            guardrails: Guardrails::default(),
            cluster: ClusterScope::All,
        }
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    /// Valid objects, sorted by kind, namespace and name.
    pub policies: Vec<Assembled>,
    /// What happened.
    pub report: Report,
    /// Id and detection time of every finding handled (for the checkpoint).
    pub handled: Vec<(String, DateTime<Utc>)>,
}

/// Runs the pipeline over `records`.
pub fn run(records: Vec<Record>, registry: &mut Registry, options: &Options) -> Outcome {
    let mut pipeline = Pipeline::new(registry, options.clone());
    records.into_iter().for_each(|record| pipeline.push(record));
    pipeline.finish()
}

/// One record as a finding, or the skip that reports why it is none.
pub fn parse(record: Record) -> Result<Finding, Skip> {
    let text = record.text;
    record
        .value
        .and_then(|value| wire::to_finding_with_raw(value, text).map_err(|e| e.0))
        .map_err(|why| Skip { subject: record.position, reason: SkipReason::Malformed(why) })
}

/// A run in progress.
pub struct Pipeline<'r> {
    registry: &'r mut Registry,
    options: Options,
    checkpoint: Option<Checkpoint>,
    assembler: Assembler,
    report: Report,
    seen: HashSet<String>,
    handled: Vec<(String, DateTime<Utc>)>,
    observer: Option<Box<dyn FnMut(std::time::Duration) + Send + 'r>>,
    /// Finding values kept from the mappers, with how many findings named each.
    withheld: BTreeMap<String, usize>,
}

impl<'r> Pipeline<'r> {
    /// A run with the given registry and options.
    pub fn new(registry: &'r mut Registry, options: Options) -> Pipeline<'r> {
        Pipeline {
            registry,
            options,
            checkpoint: None,
            assembler: Assembler::default(),
            report: Report::default(),
            seen: HashSet::new(),
            handled: Vec::new(),
            observer: None,
            withheld: BTreeMap::new(),
        }
    }

    /// Calls `observer` with the duration of every mapper call.
    pub fn with_observer(mut self, observer: impl FnMut(std::time::Duration) + Send + 'r) -> Self {
        self.observer = Some(Box::new(observer));
        self
    }

    /// Skips findings that an earlier run already handled.
    pub fn with_checkpoint(mut self, checkpoint: Option<Checkpoint>) -> Self {
        self.checkpoint = checkpoint;
        self
    }

    /// Normalises and maps one record.
    pub fn push(&mut self, record: Record) {
        match parse(record) {
            Ok(finding) => self.push_finding(finding, &Assessment::default()),
            Err(skip) => self.push_skip(skip),
        }
    }

    /// Counts a record that is not a finding.
    pub fn push_skip(&mut self, skip: Skip) {
        self.report.records += 1;
        self.report.skipped.push(skip);
    }

    /// Maps one finding, with the judgement on its addresses.
    pub fn push_finding(&mut self, mut finding: Finding, assessment: &Assessment) {
        self.report.records += 1;
        match self.options.cluster.admit(&finding) {
            Ok(()) => {}
            Err(OutOfScope::OtherCluster(cluster)) => {
                *self.report.other_clusters.entry(cluster).or_default() += 1;
                self.left_out(&finding);
                return;
            }
            Err(OutOfScope::NoCluster) => {
                *self.report.other_clusters.entry(String::new()).or_default() += 1;
                self.left_out(&finding);
                return;
            }
            Err(OutOfScope::Unnamed(cluster)) => {
                *self.report.unnamed_refused.entry(cluster).or_default() += 1;
                return;
            }
        }
        self.withhold(&mut finding);
        if self.checkpoint.as_ref().is_some_and(|c| c.seen(&finding.id, finding.detected_at)) {
            self.report.already_handled += 1;
            return;
        }
        if !self.seen.insert(finding.id.clone()) {
            self.report.duplicates += 1;
            return;
        }
        self.map(&finding, assessment);
        if let Some(detected) = finding.detected_at {
            self.handled.push((finding.id, detected));
        }
    }

    /// A finding of another cluster is done with too: the checkpoint moves
    /// past it, or a quiet cluster in a busy account would fetch everyone
    /// else's findings again at every run.
    fn left_out(&mut self, finding: &Finding) {
        if let Some(detected) = finding.detected_at {
            self.handled.push((finding.id.clone(), detected));
        }
    }

    /// Keeps from the mappers what a finding (attacker-influenced) must never
    /// make a target: a protected or common system binary as its process, one
    /// of the cluster's own addresses as its peer.
    fn withhold(&mut self, finding: &mut Finding) {
        if let Some(process) = &finding.process {
            let base = process.binary.rsplit('/').next().unwrap_or(&process.binary);
            let kind = if binaries::PROTECTED.contains(&base) {
                Some("a protected binary")
            } else if binaries::COMMON.contains(&base) {
                Some("a common system binary")
            } else {
                None
            };
            if let Some(kind) = kind {
                *self.withheld.entry(format!("process {} ({kind})", process.binary)).or_default() += 1;
                finding.process = None;
            }
        }
        if let Some(ip) = finding.destination_ip
            && let Some(range) = self.options.guardrails.protected.ranges.iter().find(|r| r.net.contains(&ip))
        {
            *self.withheld.entry(format!("peer {ip} ({})", range.what)).or_default() += 1;
            finding.destination_ip = None;
        }
    }

    fn map(&mut self, finding: &Finding, assessment: &Assessment) {
        let key = finding.category_key();
        match self.report.findings.get_mut(&key) {
            Some(count) => *count += 1,
            None => {
                self.report.findings.insert(key.clone(), 1);
            }
        }
        let subject = || format!("finding {} ({})", finding.id, finding.category);
        let Some(plugin) = self.registry.route(&key) else {
            self.report.skipped.push(Skip { subject: subject(), reason: SkipReason::UnknownCategory });
            return;
        };
        let mapper = std::sync::Arc::clone(plugin.label());
        for view in assessment.views(finding) {
            let started = std::time::Instant::now();
            let mapped = plugin.map(&view);
            if let Some(observe) = &mut self.observer {
                observe(started.elapsed());
            }
            match mapped {
                Ok(policies) => policies.into_iter().for_each(|policy| {
                    self.assembler.add(Draft {
                        finding_id: finding.id.clone(),
                        category: finding.category.clone(),
                        mapper: std::sync::Arc::clone(&mapper),
                        policy,
                        evidence: std::sync::Arc::clone(&assessment.evidence),
                    })
                }),
                Err(error) => {
                    tracing::warn!(finding = %finding.id, %mapper, %error, "mapper failed");
                    self.report.skipped.push(Skip {
                        subject: subject(),
                        reason: SkipReason::Mapper { mapper: mapper.to_string(), error: error.to_string() },
                    });
                    return;
                }
            }
        }
    }

    /// Merges, validates and returns the policies.
    pub fn finish(mut self) -> Outcome {
        let mut policies = Vec::new();
        for (value, count) in std::mem::take(&mut self.withheld) {
            self.report.warnings.push(format!(
                "{count} finding(s) named the {value}; it is never made a target, the mappers got the findings without it"
            ));
        }
        let guardrails = &self.options.guardrails;
        for mut assembled in self.assembler.finish(self.options.mode, guardrails) {
            if let Some(name) = self.options.cluster.name() {
                for object in [&mut assembled.object, &mut assembled.enforced] {
                    object.labels.insert(labels::CLUSTER.to_string(), name.to_string());
                }
            }
            if let Some(warning) = &assembled.warning {
                tracing::warn!(object = %assembled.object.object_name(), "{warning}");
                self.report.warnings.push(format!("{}: {warning}", assembled.object.object_name()));
            }
            let versions = &self.options.versions;
            let mut problems = validate::validate_with(&assembled.object.to_value(), versions, guardrails);
            if assembled.enforced != assembled.object {
                problems.extend(validate::validate_with(&assembled.enforced.to_value(), versions, guardrails));
                problems.sort();
                problems.dedup();
            }
            if problems.is_empty() {
                let key = crate::finding::category_key(&assembled.category);
                *self.report.policies.entry(key).or_default() += 1;
                policies.push(assembled);
                continue;
            }
            let object = assembled.object.object_name().to_string();
            tracing::warn!(%object, problems = problems.len(), "generated policy failed validation");
            for id in &assembled.finding_ids {
                self.report.skipped.push(Skip {
                    subject: format!("finding {id} ({})", assembled.category),
                    reason: SkipReason::InvalidPolicy { object: object.clone(), problems: problems.clone() },
                });
            }
        }
        Outcome { policies, report: self.report, handled: self.handled }
    }
}
