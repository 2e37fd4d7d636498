//! What we manage, as people and programs read it: one [`Row`] per object,
//! built from the object alone (its labels and annotations), for `status`
//! on the command line and `GET /status` on the server.

use serde::Serialize;
use serde_json::Value;

use crate::policy::block;
use crate::policy::managed::BlockEntry;
use crate::policy::{Found, Inventory, ObjectName, labels};

/// One managed object, as `-o yaml|json` shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    /// `metadata.name`.
    pub name: String,
    /// The kind.
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The namespace of a namespaced object.
    pub namespace: Option<String>,
    /// `cdr` (from findings) or `block` (manual).
    pub source: String,
    /// The category label.
    pub category: String,
    /// The MITRE ATT&CK technique.
    pub technique: String,
    /// `audit` or `enforce`.
    pub mode: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Since when it is in its mode (RFC 3339).
    pub mode_since: Option<String>,
    /// When the object was created (RFC 3339).
    pub created: String,
    /// What it blocks.
    pub indicators: Vec<String>,
    /// How many findings are behind it.
    pub finding_count: usize,
    /// The ids of (up to 100 of) those findings.
    pub finding_ids: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    /// Binaries `tune` excluded.
    pub excluded_binaries: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    /// Namespaces `tune` excluded.
    pub excluded_namespaces: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    /// The entries of a block policy.
    pub blocks: Vec<BlockEntry>,
    /// Its transitions, oldest first.
    pub history: Value,
}

/// The row of one managed policy.
pub fn row(found: &Found) -> Row {
    let policy = &found.policy;
    let text = |key: &str| policy.label(key).unwrap_or("-").to_string();
    Row {
        name: policy.name.clone(),
        kind: policy.kind.as_str().to_string(),
        namespace: policy.namespace.clone(),
        source: text(labels::SOURCE),
        category: text(labels::CATEGORY),
        technique: text(labels::TECHNIQUE),
        mode: text(labels::MODE),
        mode_since: policy.mode_since.clone(),
        created: created(&found.object),
        indicators: policy.indicators().to_vec(),
        finding_count: policy.findings(),
        finding_ids: policy.finding_ids().to_vec(),
        excluded_binaries: policy.tuning.binaries.iter().cloned().collect(),
        excluded_namespaces: policy.tuning.namespaces.iter().cloned().collect(),
        blocks: policy.blocks.valid().cloned().unwrap_or_default(),
        history: policy.history.valid().and_then(|h| serde_json::to_value(h).ok()).unwrap_or(Value::Null),
    }
}

fn created(object: &Value) -> String {
    object.pointer("/metadata/creationTimestamp").and_then(Value::as_str).unwrap_or_default().to_string()
}

/// The row of a NetworkPolicy companion: always enforcing, listing the ranges it leaves out.
fn companion_row(object: &Value) -> Row {
    let name = ObjectName::of(object);
    let field = |map: &str, key: &str| {
        object.pointer(&format!("/metadata/{map}")).and_then(|m| m.get(key)).and_then(Value::as_str)
    };
    let label = |key: &str| field("labels", key).unwrap_or("-").to_string();
    let indicators = field("annotations", labels::INDICATORS).unwrap_or_default();
    Row {
        name: name.name.to_string(),
        kind: name.kind.to_string(),
        namespace: name.namespace.map(str::to_string),
        source: label(labels::SOURCE),
        category: label(labels::CATEGORY),
        technique: label(labels::TECHNIQUE),
        mode: "enforce".into(),
        mode_since: None,
        created: created(object),
        indicators: indicators.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect(),
        finding_count: 0,
        finding_ids: Vec::new(),
        excluded_binaries: Vec::new(),
        excluded_namespaces: Vec::new(),
        blocks: Vec::new(),
        history: Value::Null,
    }
}

/// The rows of everything we manage, sorted by namespace, name and kind.
pub fn rows(inventory: &Inventory) -> Vec<Row> {
    let mut rows: Vec<Row> =
        inventory.policies.iter().map(row).chain(inventory.others.iter().map(companion_row)).collect();
    rows.sort_by(|a, b| (&a.namespace, &a.name, &a.kind).cmp(&(&b.namespace, &b.name, &b.kind)));
    rows
}

/// One blocked value and the policy that holds it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blocked {
    /// `ip` or `port`.
    #[serde(rename = "type")]
    pub target: &'static str,
    /// The CIDR or the port.
    pub value: String,
    /// Why.
    pub reason: String,
    /// Who.
    pub by: String,
    /// Since when (RFC 3339).
    pub since: String,
    /// Until when (RFC 3339), if it expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// The block policy.
    pub policy: String,
    /// Its namespace, for a namespaced block.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The block policy's mode: only `enforce` stops connections.
    pub mode: String,
}

/// Every entry of the block policies among `rows`.
pub fn blocked(rows: &[Row]) -> Vec<Blocked> {
    rows.iter()
        .filter(|r| r.kind != "NetworkPolicy")
        .flat_map(|row| {
            let target = if row.category == block::Target::Port.category() { "port" } else { "ip" };
            row.blocks.iter().map(move |entry| Blocked {
                target,
                value: entry.value.clone(),
                reason: entry.reason.clone(),
                by: entry.by.clone(),
                since: entry.at.clone(),
                until: entry.expires.clone(),
                policy: row.name.clone(),
                namespace: row.namespace.clone(),
                mode: row.mode.clone(),
            })
        })
        .collect()
}
