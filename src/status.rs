//! What we manage, as people and programs read it: one [`Row`] per object,
//! built from the object alone (its labels and annotations), for `status`
//! on the command line and `GET /status` on the server.

use serde::Serialize;
use serde_json::Value;

use crate::block;
use crate::policy::labels;
use crate::policy::lifecycle::{Tuning, annotation, annotation_items, label};

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
    pub blocks: Vec<block::Entry>,
    /// Its transitions, oldest first.
    pub history: Value,
}

/// The row of one managed object.
pub fn row(object: &Value) -> Row {
    let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_string();
    let list = |key| -> Vec<String> { annotation_items(object, key).collect() };
    let finding_ids = list(labels::FINDING_IDS);
    let tuning = Tuning::of(object);
    let kind = text("/kind");
    Row {
        name: text("/metadata/name"),
        namespace: object.pointer("/metadata/namespace").and_then(Value::as_str).map(str::to_string),
        source: label(object, labels::SOURCE).unwrap_or("-").to_string(),
        category: label(object, labels::CATEGORY).unwrap_or("-").to_string(),
        technique: label(object, labels::TECHNIQUE).unwrap_or("-").to_string(),
        mode: if kind == "NetworkPolicy" {
            "enforce".into()
        } else {
            label(object, labels::MODE).unwrap_or("-").into()
        },
        kind,
        mode_since: annotation(object, labels::MODE_SINCE).map(str::to_string),
        created: text("/metadata/creationTimestamp"),
        indicators: list(labels::INDICATORS),
        finding_count: annotation(object, labels::FINDING_COUNT)
            .and_then(|c| c.parse().ok())
            .unwrap_or(finding_ids.len()),
        finding_ids,
        excluded_binaries: tuning.binaries.into_iter().collect(),
        excluded_namespaces: tuning.namespaces.into_iter().collect(),
        blocks: block::entries_of(object).unwrap_or_default(),
        history: annotation(object, labels::HISTORY).and_then(|h| serde_json::from_str(h).ok()).unwrap_or(Value::Null),
    }
}

/// Rows of `objects`, sorted by namespace, name and kind.
pub fn rows(objects: &[Value]) -> Vec<Row> {
    let mut rows: Vec<Row> = objects.iter().map(row).collect();
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
