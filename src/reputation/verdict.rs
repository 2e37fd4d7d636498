//! What a reputation source says of an address, and the decision recorded
//! on the policies: the vocabulary every source and the policy stage share.

use serde::{Deserialize, Serialize};

/// What a source says of an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Known bad: may be blocked.
    Malicious,
    /// Known, not bad enough.
    Clean,
    /// Not known (no answer, rate limited, over the lookup budget).
    Unknown,
    /// Never blocked: allowlisted or one of the cluster's own addresses.
    Allowed,
}

impl Verdict {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Malicious => "malicious",
            Verdict::Clean => "clean",
            Verdict::Unknown => "unknown",
            Verdict::Allowed => "allowed",
        }
    }
}

/// One decision on one address, as recorded on the policies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// The verdict.
    pub verdict: Verdict,
    /// `abuseipdb`, `feed:<file>`, `allowlist` or `cluster`.
    pub source: String,
    /// AbuseIPDB's confidence score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<u8>,
    /// Why, where it helps (rate limited, a node's address, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}
