//! The wire shape of a CDR finding and its conversion into our [`Finding`].
//!
//! Qualys does not publish the shape, so field names follow public clients
//! (`../shared/reference/qualys-cdr-api.md`) and every field is optional
//! except the id and the category. Values that are present but wrong (an
//! address that is not one, a port out of range) make the record malformed:
//! a policy built from them could block the wrong thing.

use std::collections::BTreeMap;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::finding::{Finding, Process, Raw, Severity};

/// Why a record is not a usable finding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

fn malformed(message: impl Into<String>) -> Malformed {
    Malformed(message.into())
}

/// Converts one record into a [`Finding`], keeping a copy of it as `raw`.
pub fn to_finding(value: &Value) -> Result<Finding, Malformed> {
    to_finding_with_raw(value.clone(), None)
}

/// Like [`to_finding`], taking the record: `raw` is the record's original
/// text when the reader kept it, else the record itself.
pub fn to_finding_with_raw(value: Value, text: Option<String>) -> Result<Finding, Malformed> {
    let finding = fields_of(&value)?;
    let raw = match text {
        Some(text) => Raw::Text(text),
        None => Raw::from(value),
    };
    Ok(Finding { raw, ..finding })
}

/// Every field of `value` but `raw`.
fn fields_of(value: &Value) -> Result<Finding, Malformed> {
    let Value::Object(record) = value else {
        return Err(malformed(format!("expected a JSON object, got {}", kind(value))));
    };
    let fields = Fields::of(record);
    let id = fields.text(&[Field::Uuid, Field::Id, Field::FindingId])?.ok_or_else(|| malformed("missing `uuid`"))?;
    let category =
        fields.text(&[Field::ThreatCategory, Field::Category])?.ok_or_else(|| malformed("missing `threatCategory`"))?;
    const DESTINATION_IP: &[Field] = &[Field::DestinationIp, Field::DestinationIpUpper, Field::DstIp];
    let destination_ip =
        match fields.text(DESTINATION_IP)? {
            Some(ip) => Some(ip.parse::<IpAddr>().map_err(|_| {
                malformed(format!("`{}` {ip:?} is not an IP address", fields.key_present(DESTINATION_IP)))
            })?),
            // `triggeredResource`/`affectedResource` often hold the suspicious
            // address, but just as often a host name: use them only as an address.
            None => fields
                .text(&[Field::TriggeredResource, Field::AffectedResource])?
                .and_then(|resource| resource.parse().ok()),
        };
    let binary = fields.text(&[Field::ProcessPath, Field::ProcessName, Field::Process])?;
    let arguments = match fields.text(&[Field::ProcessArgs, Field::CommandLine, Field::CmdLine])? {
        Some(line) => line.split_whitespace().map(str::to_string).collect(),
        None => Vec::new(),
    };
    Ok(Finding {
        id,
        category,
        severity: fields.severity()?,
        detected_at: fields.timestamp()?,
        cluster: fields.text(&[Field::ClusterName, Field::Cluster])?,
        namespace: fields.name(
            &[Field::Namespace, Field::PodNamespace],
            crate::names::is_dns_label,
            "a namespace name",
        )?,
        pod: fields.name(&[Field::Pod, Field::PodName], crate::names::is_dns_subdomain, "a pod name")?,
        container: fields.text(&[Field::ContainerName, Field::Container])?,
        image: fields.text(&[Field::ImageName, Field::Image])?,
        process: binary.map(|binary| Process { binary, arguments }),
        destination_ip,
        destination_port: fields.port()?,
        mitre_techniques: fields.techniques()?,
        labels: fields.labels()?,
        raw: Raw::default(),
    })
}

/// At most 64 characters of `text`, for messages.
fn clip(text: &str) -> String {
    text.chars().take(64).collect()
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Declares [`Field`], the record keys we read, each with its name on the wire.
macro_rules! wire_fields {
    ($($field:ident = $name:literal,)*) => {
        /// A record key we read (several spell one finding field).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Field {
            $($field,)*
        }

        /// How many keys we read.
        const FIELDS: usize = [$(Field::$field),*].len();

        impl Field {
            /// The field a record's key names, if we read it.
            fn of(key: &str) -> Option<Field> {
                match key {
                    $($name => Some(Field::$field),)*
                    _ => None,
                }
            }

            /// The key as records spell it.
            fn name(self) -> &'static str {
                match self {
                    $(Field::$field => $name,)*
                }
            }
        }
    };
}

wire_fields! {
    Uuid = "uuid",
    Id = "id",
    FindingId = "findingId",
    ThreatCategory = "threatCategory",
    Category = "category",
    DestinationIp = "destinationIp",
    DestinationIpUpper = "destinationIP",
    DstIp = "dstIp",
    TriggeredResource = "triggeredResource",
    AffectedResource = "affectedResource",
    ProcessPath = "processPath",
    ProcessName = "processName",
    Process = "process",
    ProcessArgs = "processArgs",
    CommandLine = "commandLine",
    CmdLine = "cmdLine",
    ClusterName = "clusterName",
    Cluster = "cluster",
    Namespace = "namespace",
    PodNamespace = "podNamespace",
    Pod = "pod",
    PodName = "podName",
    ContainerName = "containerName",
    Container = "container",
    ImageName = "imageName",
    Image = "image",
    Severity = "severity",
    Timestamp = "timestamp",
    DetectedAt = "detectedAt",
    EventTime = "eventTime",
    DestinationPort = "destinationPort",
    DstPort = "dstPort",
    MitreRulesInfo = "mitreRulesInfo",
    MitreTechniques = "mitreTechniques",
    PodLabels = "podLabels",
    Labels = "labels",
}

/// The values of a record's keys we read, found in one pass over the record
/// (null ones included: a message names a key that is present).
struct Fields<'a>([Option<&'a Value>; FIELDS]);

impl<'a> Fields<'a> {
    fn of(record: &'a Map<String, Value>) -> Fields<'a> {
        let mut slots = [None; FIELDS];
        for (key, value) in record {
            if let Some(field) = Field::of(key) {
                slots[field as usize] = Some(value);
            }
        }
        Fields(slots)
    }

    /// The first of `fields` that is present and not null, with its key.
    fn get(&self, fields: &[Field]) -> Option<(&'static str, &'a Value)> {
        fields.iter().find_map(|&field| self.0[field as usize].filter(|v| !v.is_null()).map(|v| (field.name(), v)))
    }

    /// The first of `fields` the record has (null or not), for messages.
    fn key_present(&self, fields: &[Field]) -> &'static str {
        fields.iter().copied().find(|f| self.0[*f as usize].is_some()).unwrap_or(fields[0]).name()
    }

    /// A non-empty string (numbers are accepted and written out).
    fn text(&self, fields: &[Field]) -> Result<Option<String>, Malformed> {
        match self.get(fields) {
            None => Ok(None),
            Some((_, Value::String(s))) if s.trim().is_empty() => Ok(None),
            Some((_, Value::String(s))) => Ok(Some(s.trim().to_string())),
            Some((_, Value::Number(n))) => Ok(Some(n.to_string())),
            Some((name, other)) => Err(malformed(format!("`{name}` should be a string, got {}", kind(other)))),
        }
    }

    /// A Kubernetes name: text that `valid` accepts.
    fn name(&self, fields: &[Field], valid: fn(&str) -> bool, what: &str) -> Result<Option<String>, Malformed> {
        match self.text(fields)? {
            Some(name) if !valid(&name) => {
                Err(malformed(format!("`{}` {:?} is not {what}", self.key_present(fields), clip(&name))))
            }
            other => Ok(other),
        }
    }

    fn severity(&self) -> Result<Severity, Malformed> {
        let level = match self.get(&[Field::Severity]) {
            None => return Ok(Severity::Unknown),
            Some((_, Value::Number(n))) => n.as_i64(),
            Some((_, Value::String(s))) => match s.trim().to_ascii_uppercase().as_str() {
                "LOW" => Some(1),
                "MEDIUM" => Some(2),
                "HIGH" => Some(3),
                "CRITICAL" => Some(4),
                other => other.parse().ok(),
            },
            Some((_, other)) => return Err(malformed(format!("`severity` should be a number, got {}", kind(other)))),
        };
        Ok(match level {
            Some(1) => Severity::Low,
            Some(2) => Severity::Medium,
            Some(3) => Severity::High,
            Some(n) if n >= 4 => Severity::Critical,
            _ => Severity::Unknown,
        })
    }

    /// `timestamp`: an RFC 3339 string, or Unix epoch milliseconds.
    fn timestamp(&self) -> Result<Option<DateTime<Utc>>, Malformed> {
        match self.get(&[Field::Timestamp, Field::DetectedAt, Field::EventTime]) {
            None => Ok(None),
            Some((name, Value::String(s))) => DateTime::parse_from_rfc3339(s.trim())
                .map(|t| Some(t.with_timezone(&Utc)))
                .map_err(|e| malformed(format!("`{name}` {s:?} is not an RFC 3339 time: {e}"))),
            Some((name, Value::Number(n))) => n
                .as_i64()
                .and_then(DateTime::from_timestamp_millis)
                .map(Some)
                .ok_or_else(|| malformed(format!("`{name}` {n} is not a time"))),
            Some((name, other)) => Err(malformed(format!("`{name}` should be a time, got {}", kind(other)))),
        }
    }

    fn port(&self) -> Result<Option<u16>, Malformed> {
        const PORT: &[Field] = &[Field::DestinationPort, Field::DstPort];
        let raw = match self.get(PORT) {
            None => return Ok(None),
            Some((_, Value::Number(n))) => n.to_string(),
            Some((_, Value::String(s))) if s.trim().is_empty() => return Ok(None),
            Some((_, Value::String(s))) => s.trim().to_string(),
            Some((name, other)) => {
                return Err(malformed(format!("`{name}` should be a port number, got {}", kind(other))));
            }
        };
        match raw.parse::<u16>() {
            Ok(port) if port > 0 => Ok(Some(port)),
            _ => Err(malformed(format!("`{}` {raw} is not a port (1-65535)", self.key_present(PORT)))),
        }
    }

    /// `mitreRulesInfo` keyed by technique id, or a list of `{technique}` or ids.
    fn techniques(&self) -> Result<Vec<String>, Malformed> {
        let mut ids: Vec<String> = match self.get(&[Field::MitreRulesInfo, Field::MitreTechniques]) {
            None => Vec::new(),
            Some((_, Value::Object(map))) => map.keys().cloned().collect(),
            Some((_, Value::Array(items))) => items
                .iter()
                .filter_map(|item| match item {
                    Value::String(s) => Some(s.clone()),
                    Value::Object(o) => {
                        o.get("technique").or_else(|| o.get("techniqueId")).and_then(Value::as_str).map(str::to_string)
                    }
                    _ => None,
                })
                .collect(),
            Some((name, other)) => {
                return Err(malformed(format!("`{name}` should be an object or a list, got {}", kind(other))));
            }
        };
        ids.iter_mut().for_each(|id| *id = id.trim().to_string());
        ids.retain(|id| !id.is_empty());
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    fn labels(&self) -> Result<BTreeMap<String, String>, Malformed> {
        match self.get(&[Field::PodLabels, Field::Labels]) {
            None => Ok(BTreeMap::new()),
            Some((_, Value::Object(map))) => Ok(map
                .iter()
                .filter_map(|(k, v)| match v {
                    Value::String(s) => Some((k.clone(), s.clone())),
                    Value::Number(_) | Value::Bool(_) => Some((k.clone(), v.to_string())),
                    _ => None,
                })
                .collect()),
            Some((name, other)) => Err(malformed(format!("`{name}` should be an object, got {}", kind(other)))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_fields_clients_report() {
        let record = json!({
            "uuid": "f-1", "threatCategory": "Crypto_Mining", "severity": 4,
            "timestamp": 1_737_968_081_396_i64, "namespace": "shop", "pod": "web-1",
            "containerName": "web", "imageName": "shop/web:1.2", "processName": "/usr/bin/xmrig",
            "destinationIp": "198.51.100.7", "destinationPort": "3333",
            "mitreRulesInfo": {"T1496": {"name": "Resource Hijacking"}},
            "podLabels": {"app": "web"}, "somethingNew": [1, 2]
        });
        let finding = to_finding(&record).unwrap();
        assert_eq!(finding.severity, Severity::Critical);
        assert_eq!(
            finding.detected_at.unwrap().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "2025-01-27T08:54:41.396Z"
        );
        assert_eq!(finding.destination_port, Some(3333));
        assert_eq!(finding.destination_ip, Some("198.51.100.7".parse().unwrap()));
        assert_eq!(finding.mitre_techniques, vec!["T1496"]);
        assert_eq!(finding.process.unwrap().binary, "/usr/bin/xmrig");
        assert!(finding.raw.text().contains("somethingNew"), "unknown fields stay in raw");
    }

    #[test]
    fn bad_values_make_a_record_malformed() {
        let base = json!({"uuid": "f-1", "threatCategory": "Crypto_Mining"});
        for (field, value, message) in [
            ("destinationIp", json!("999.1.1.1"), "not an IP address"),
            ("destinationPort", json!(70000), "is not a port"),
            ("severity", json!([1]), "should be a number"),
            ("timestamp", json!("yesterday"), "is not an RFC 3339 time"),
            ("uuid", json!({}), "should be a string"),
            ("namespace", json!("Kube_System"), "is not a namespace name"),
            ("namespace", json!("../../etc"), "is not a namespace name"),
            ("pod", json!("web 1"), "is not a pod name"),
        ] {
            let mut record = base.clone();
            record[field] = value;
            let error = to_finding(&record).unwrap_err().0;
            assert!(error.contains(message), "{field}: {error}");
        }
        assert_eq!(to_finding(&json!({"uuid": "x"})).unwrap_err().0, "missing `threatCategory`");
        assert_eq!(to_finding(&json!(3)).unwrap_err().0, "expected a JSON object, got a number");
    }

    #[test]
    fn the_first_key_present_and_not_null_wins_and_messages_name_the_key_given() {
        let record = json!({"id": "second", "uuid": "first", "threatCategory": "X"});
        assert_eq!(to_finding(&record).unwrap().id, "first");
        let record = json!({"uuid": null, "findingId": "third", "category": "X", "dstPort": 22});
        let finding = to_finding(&record).unwrap();
        assert_eq!((finding.id.as_str(), finding.destination_port), ("third", Some(22)));
        let error = to_finding(&json!({"uuid": "a", "threatCategory": "X", "podName": "Web 1"})).unwrap_err().0;
        assert!(error.starts_with("`podName` "), "{error}");
        let error = to_finding(&json!({"uuid": "a", "threatCategory": "X", "pod": null, "podName": "Web 1"}));
        assert!(error.unwrap_err().0.starts_with("`pod` "), "the first key present is named, as before");
        let error = to_finding(&json!({"uuid": "a", "threatCategory": "X", "dstIp": "10.0.0"})).unwrap_err().0;
        assert!(error.starts_with("`dstIp` \"10.0.0\" is not"), "{error}");
        let error = to_finding(&json!({"uuid": "a", "threatCategory": "X", "dstPort": "0"})).unwrap_err().0;
        assert_eq!(error, "`dstPort` 0 is not a port (1-65535)");
    }

    #[test]
    fn a_host_name_resource_is_not_an_address() {
        let record = json!({"uuid": "a", "threatCategory": "X", "triggeredResource": "evil.example"});
        assert_eq!(to_finding(&record).unwrap().destination_ip, None);
        let record = json!({"uuid": "a", "threatCategory": "X", "triggeredResource": "203.0.113.9"});
        assert_eq!(to_finding(&record).unwrap().destination_ip, Some("203.0.113.9".parse().unwrap()));
    }
}
