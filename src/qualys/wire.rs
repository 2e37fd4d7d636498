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
    let fields = Fields(record);
    let id = fields.text(&["uuid", "id", "findingId"])?.ok_or_else(|| malformed("missing `uuid`"))?;
    let category =
        fields.text(&["threatCategory", "category"])?.ok_or_else(|| malformed("missing `threatCategory`"))?;
    let destination_ip = match fields.text(&["destinationIp", "destinationIP", "dstIp"])? {
        Some(ip) => {
            Some(ip.parse::<IpAddr>().map_err(|_| malformed(format!("`destinationIp` {ip:?} is not an IP address")))?)
        }
        // `triggeredResource`/`affectedResource` often hold the suspicious
        // address, but just as often a host name: use them only as an address.
        None => fields.text(&["triggeredResource", "affectedResource"])?.and_then(|resource| resource.parse().ok()),
    };
    let binary = fields.text(&["processPath", "processName", "process"])?;
    let arguments = match fields.text(&["processArgs", "commandLine", "cmdLine"])? {
        Some(line) => line.split_whitespace().map(str::to_string).collect(),
        None => Vec::new(),
    };
    Ok(Finding {
        id,
        category,
        severity: fields.severity()?,
        detected_at: fields.timestamp()?,
        cluster: fields.text(&["clusterName", "cluster"])?,
        namespace: fields.name(&["namespace", "podNamespace"], crate::names::is_dns_label, "a namespace name")?,
        pod: fields.name(&["pod", "podName"], crate::names::is_dns_subdomain, "a pod name")?,
        container: fields.text(&["containerName", "container"])?,
        image: fields.text(&["imageName", "image"])?,
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

struct Fields<'a>(&'a Map<String, Value>);

impl Fields<'_> {
    /// The first of `names` that is present and not null.
    fn get(&self, names: &[&'static str]) -> Option<(&'static str, &Value)> {
        names.iter().find_map(|name| self.0.get(*name).filter(|v| !v.is_null()).map(|v| (*name, v)))
    }

    /// A non-empty string (numbers are accepted and written out).
    fn text(&self, names: &[&'static str]) -> Result<Option<String>, Malformed> {
        match self.get(names) {
            None => Ok(None),
            Some((_, Value::String(s))) if s.trim().is_empty() => Ok(None),
            Some((_, Value::String(s))) => Ok(Some(s.trim().to_string())),
            Some((_, Value::Number(n))) => Ok(Some(n.to_string())),
            Some((name, other)) => Err(malformed(format!("`{name}` should be a string, got {}", kind(other)))),
        }
    }

    /// A Kubernetes name: text that `valid` accepts.
    fn name(&self, names: &[&'static str], valid: fn(&str) -> bool, what: &str) -> Result<Option<String>, Malformed> {
        match self.text(names)? {
            Some(name) if !valid(&name) => {
                let field = names.iter().find(|n| self.0.contains_key(**n)).copied().unwrap_or(names[0]);
                Err(malformed(format!("`{field}` {:?} is not {what}", clip(&name))))
            }
            other => Ok(other),
        }
    }

    fn severity(&self) -> Result<Severity, Malformed> {
        let level = match self.get(&["severity"]) {
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
        match self.get(&["timestamp", "detectedAt", "eventTime"]) {
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
        let raw = match self.get(&["destinationPort", "dstPort"]) {
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
            _ => Err(malformed(format!("`destinationPort` {raw} is not a port (1-65535)"))),
        }
    }

    /// `mitreRulesInfo` keyed by technique id, or a list of `{technique}` or ids.
    fn techniques(&self) -> Result<Vec<String>, Malformed> {
        let mut ids: Vec<String> = match self.get(&["mitreRulesInfo", "mitreTechniques"]) {
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
        match self.get(&["podLabels", "labels"]) {
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
    fn a_host_name_resource_is_not_an_address() {
        let record = json!({"uuid": "a", "threatCategory": "X", "triggeredResource": "evil.example"});
        assert_eq!(to_finding(&record).unwrap().destination_ip, None);
        let record = json!({"uuid": "a", "threatCategory": "X", "triggeredResource": "203.0.113.9"});
        assert_eq!(to_finding(&record).unwrap().destination_ip, Some("203.0.113.9".parse().unwrap()));
    }
}
