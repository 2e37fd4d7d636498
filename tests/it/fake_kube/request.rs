//! The parts of a request the server looks at: query parameters, content
//! type, field manager, `fieldValidation` and the body as an object.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method};
use serde_json::Value;

use super::status::{Failure, bad_request};

pub(super) const APPLY: &str = "application/apply-patch+yaml";
pub(super) const MERGE: &str = "application/merge-patch+json";
pub(super) const STRATEGIC: &str = "application/strategic-merge-patch+json";

/// The parts of a request the server looks at.
pub(super) struct Request {
    pub(super) method: Method,
    pub(super) path: String,
    pub(super) query: Vec<(String, String)>,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
}

/// What a write does with fields the schema does not declare (`fieldValidation`).
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Unknown {
    Strict,
    Warn,
    Ignore,
}

impl Request {
    pub(super) fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    pub(super) fn dry_run(&self) -> bool {
        self.param("dryRun") == Some("All")
    }

    pub(super) fn content_type(&self) -> &str {
        let header = self.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
        header.split(';').next().unwrap_or_default().trim()
    }

    /// The field manager of a write other than apply: the parameter, else the
    /// client's name from its user agent.
    pub(super) fn manager(&self) -> String {
        let agent = self.headers.get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or("unknown");
        self.param("fieldManager").unwrap_or(agent.split('/').next().unwrap_or_default()).to_string()
    }

    pub(super) fn unknown_fields(&self) -> Unknown {
        match self.param("fieldValidation") {
            Some("Strict") => Unknown::Strict,
            Some("Ignore") => Unknown::Ignore,
            _ => Unknown::Warn,
        }
    }

    /// The body as a JSON object (YAML for apply patches).
    pub(super) fn object(&self, kind: &str) -> Result<Value, Failure> {
        let parsed = if self.content_type() == APPLY {
            serde_yaml::from_slice(&self.body).map_err(|e| e.to_string())
        } else {
            serde_json::from_slice(&self.body).map_err(|e| e.to_string())
        };
        match parsed {
            Ok(object @ Value::Object(_)) if object["metadata"].is_object() || object["metadata"].is_null() => {
                Ok(object)
            }
            Ok(other) => {
                Err(bad_request(&format!("the object provided is unrecognized (must be of type {kind}): {other}")))
            }
            Err(e) => Err(bad_request(&format!(
                "the object provided is unrecognized (must be of type {kind}): couldn't get version/kind; json parse error: {e}"
            ))),
        }
    }
}
