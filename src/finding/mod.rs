//! Our normalised model of a CDR finding, independent of how Qualys spells it
//! on the wire (`crate::qualys::wire`) and of how mappers receive it (WIT).

mod category;
mod raw;
mod scope;

pub use category::{category_key, key_matcher};
pub use raw::Raw;
pub use scope::{ClusterScope, OutOfScope};

use std::collections::BTreeMap;
use std::net::IpAddr;

use chrono::{DateTime, Utc};

/// Qualys' severity scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Severity {
    /// Missing or not understood.
    #[default]
    Unknown,
    /// Qualys 1.
    Low,
    /// Qualys 2.
    Medium,
    /// Qualys 3.
    High,
    /// Qualys 4 and above.
    Critical,
}

/// The process a finding is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// Absolute path when known, else the name Qualys reports.
    pub binary: String,
    /// Command-line arguments after the executable.
    pub arguments: Vec<String>,
}

/// One CDR finding, normalised.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Finding {
    /// Qualys' id (`uuid`), never empty.
    pub id: String,
    /// The category exactly as Qualys names it, never empty.
    pub category: String,
    /// Severity.
    pub severity: Severity,
    /// Detection time.
    pub detected_at: Option<DateTime<Utc>>,
    /// Cluster name as Qualys knows it.
    pub cluster: Option<String>,
    /// Namespace of the affected pod.
    pub namespace: Option<String>,
    /// Affected pod.
    pub pod: Option<String>,
    /// Affected container.
    pub container: Option<String>,
    /// Affected image.
    pub image: Option<String>,
    /// The triggering process.
    pub process: Option<Process>,
    /// Remote address.
    pub destination_ip: Option<IpAddr>,
    /// Remote port.
    pub destination_port: Option<u16>,
    /// MITRE ATT&CK technique ids, sorted.
    pub mitre_techniques: Vec<String>,
    /// Pod labels.
    pub labels: BTreeMap<String, String>,
    /// The original record.
    pub raw: Raw,
}

impl Finding {
    /// The category's lookup key (see [`category_key`]).
    pub fn category_key(&self) -> String {
        category_key(&self.category)
    }
}
