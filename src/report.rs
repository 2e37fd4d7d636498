//! What a run did, for the summary on stderr and the exit code.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::policy::validate::Problem;

/// Why a record or finding produced no policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// The record is not a usable finding.
    Malformed(String),
    /// No mapper claims the category: not an error.
    UnknownCategory,
    /// The mapper failed for this finding.
    Mapper {
        /// `name@version` of the mapper.
        mapper: String,
        /// What went wrong.
        error: String,
    },
    /// A policy built from this finding failed validation and was dropped.
    InvalidPolicy {
        /// The dropped object, `Kind/name`.
        object: String,
        /// What is wrong with it.
        problems: Vec<Problem>,
    },
}

/// One record or finding that produced no policy (or lost one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    /// `record 3`, `line 7`, or `finding <id> (<category>)`.
    pub subject: String,
    /// Why.
    pub reason: SkipReason,
}

impl Skip {
    /// True unless the skip is expected (an unknown category).
    pub fn is_error(&self) -> bool {
        !matches!(self.reason, SkipReason::UnknownCategory)
    }
}

/// Counts and skips of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Records read.
    pub records: usize,
    /// Findings per category key.
    pub findings: BTreeMap<String, usize>,
    /// Policies per category key.
    pub policies: BTreeMap<String, usize>,
    /// Findings that repeated an id already seen (processed once).
    pub duplicates: usize,
    /// Findings an earlier run already handled (by the checkpoint).
    pub already_handled: usize,
    /// Findings of other clusters (or of none) left out by `--cluster-name`,
    /// per cluster they name (`""` for none).
    pub other_clusters: BTreeMap<String, usize>,
    /// Findings that name a cluster, refused because the run applies with
    /// no `--cluster-name`, per cluster.
    pub unnamed_refused: BTreeMap<String, usize>,
    /// What was skipped, in input order.
    pub skipped: Vec<Skip>,
    /// What the operator should know although nothing was skipped (a policy
    /// kept in audit mode in a system namespace, a finding's value not used).
    pub warnings: Vec<String>,
}

impl Report {
    /// True when something was skipped for an error.
    pub fn has_errors(&self) -> bool {
        self.skipped.iter().any(Skip::is_error)
    }

    /// The refusal of a run that applies with no cluster name while some
    /// findings name a cluster: what to do about it.
    pub fn unnamed_refusal(&self) -> Option<String> {
        if self.unnamed_refused.is_empty() {
            return None;
        }
        let count: usize = self.unnamed_refused.values().sum();
        let clusters: Vec<&str> = self.unnamed_refused.keys().map(String::as_str).collect();
        Some(format!(
            "{count} finding(s) name a cluster ({}), and this run applies to a cluster without knowing its name: \
             pass --cluster-name NAME (or set QUALYS_RESPOND_CLUSTER_NAME) to this cluster's name as Qualys knows it, \
             or --all-clusters to apply every cluster's findings here; nothing was written",
            clusters.join(", ")
        ))
    }

    /// The summary, as printed on stderr.
    pub fn render(&self, mode_note: &str) -> String {
        let mut out = String::new();
        let total: usize = self.policies.values().sum();
        let _ = writeln!(
            out,
            "findings read: {} (duplicates ignored: {}, already handled by an earlier run: {})",
            self.records, self.duplicates, self.already_handled
        );
        if !self.other_clusters.is_empty() {
            let clusters: Vec<String> = self
                .other_clusters
                .iter()
                .map(|(cluster, count)| match cluster.as_str() {
                    "" => format!("no cluster named: {count}"),
                    cluster => format!("{cluster}: {count}"),
                })
                .collect();
            let _ = writeln!(out, "findings of other clusters left out: {}", clusters.join(", "));
        }
        if !self.findings.is_empty() {
            let width = self.findings.keys().map(String::len).max().unwrap_or(0).max(8);
            let _ = writeln!(out, "  {:width$}  findings  policies", "category");
            for (category, count) in &self.findings {
                let policies = self.policies.get(category).copied().unwrap_or(0);
                let _ = writeln!(out, "  {category:width$}  {count:>8}  {policies:>8}");
            }
        }
        let _ = writeln!(out, "policies generated: {total} ({mode_note})");
        for warning in &self.warnings {
            let _ = writeln!(out, "warning: {warning}");
        }
        if !self.skipped.is_empty() {
            let errors = self.skipped.iter().filter(|s| s.is_error()).count();
            let _ = writeln!(out, "skipped: {} ({errors} for an error)", self.skipped.len());
            for skip in &self.skipped {
                let _ = match &skip.reason {
                    SkipReason::Malformed(why) => writeln!(out, "  {}: malformed: {why}", skip.subject),
                    SkipReason::UnknownCategory => writeln!(out, "  {}: unknown category, no policy", skip.subject),
                    SkipReason::Mapper { mapper, error } => {
                        writeln!(out, "  {}: mapper {mapper} {error}", skip.subject)
                    }
                    SkipReason::InvalidPolicy { object, problems } => {
                        let _ =
                            writeln!(out, "  {}: policy {object} failed validation and was not written:", skip.subject);
                        problems.iter().try_for_each(|p| writeln!(out, "      {p}"))
                    }
                };
            }
        }
        out
    }
}
