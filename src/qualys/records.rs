//! Splits a findings document into records: the API envelope
//! `{"content": [...]}`, a bare JSON array, or one JSON object per line.
//!
//! A record that is not valid JSON is kept as a [`Record`] with an error, so
//! that it is reported with its position instead of failing the whole file.

use serde_json::Value;

/// One record of a findings document.
#[derive(Debug)]
pub struct Record {
    /// Where it was: `record 3` (1-based, in an array) or `line 7`.
    pub position: String,
    /// The parsed JSON, or why it did not parse.
    pub value: Result<Value, String>,
}

/// Why a document could not be split at all.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// Starts like a JSON array or object but does not parse.
    #[error("not valid JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// A JSON object that is neither an envelope nor a finding.
    #[error("the envelope's `content` is not an array")]
    ContentNotArray,
    /// A JSON value that cannot hold findings.
    #[error("expected a JSON array, an object with `content`, or one JSON object per line")]
    Shape,
}

/// Splits `text` into records.
pub fn split(text: &str) -> Result<Vec<Record>, DocumentError> {
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    if trimmed.starts_with('[') {
        return match serde_json::from_str(trimmed).map_err(DocumentError::Json)? {
            Value::Array(items) => Ok(numbered(items)),
            _ => Err(DocumentError::Shape),
        };
    }
    if !trimmed.starts_with('{') {
        return Err(DocumentError::Shape);
    }
    // One document, or one object per line?
    let mut stream = serde_json::Deserializer::from_str(trimmed).into_iter::<Value>();
    let first = stream.next();
    let single = stream.next().is_none() && matches!(first, Some(Ok(_)));
    if single && let Some(Ok(value @ Value::Object(_))) = first {
        return from_value(value);
    }
    // One object per line gives line numbers; objects that span lines
    // (concatenated, pretty-printed JSON) are numbered as records instead.
    let lines: Vec<Record> = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| Record {
            position: format!("line {}", i + 1),
            value: serde_json::from_str(line).map_err(|e| format!("not valid JSON: {e}")),
        })
        .collect();
    if lines.iter().all(|r| r.value.is_ok()) {
        return Ok(lines);
    }
    match serde_json::Deserializer::from_str(trimmed).into_iter::<Value>().collect::<Result<Vec<_>, _>>() {
        Ok(values) => Ok(numbered(values)),
        Err(_) => Ok(lines),
    }
}

/// The records of one JSON document: the envelope `{"content": [...]}`, an
/// array, or a single finding.
pub fn from_value(value: Value) -> Result<Vec<Record>, DocumentError> {
    match value {
        Value::Array(items) => Ok(numbered(items)),
        Value::Object(mut object) => match object.remove("content") {
            Some(Value::Array(items)) => Ok(numbered(items)),
            Some(Value::Null) => Ok(Vec::new()),
            Some(_) => Err(DocumentError::ContentNotArray),
            None => Ok(vec![Record { position: "record 1".into(), value: Ok(Value::Object(object)) }]),
        },
        _ => Err(DocumentError::Shape),
    }
}

fn numbered(items: Vec<Value>) -> Vec<Record> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, value)| Record { position: format!("record {}", i + 1), value: Ok(value) })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn positions(text: &str) -> Vec<(String, bool)> {
        split(text).unwrap().into_iter().map(|r| (r.position, r.value.is_ok())).collect()
    }

    #[test]
    fn reads_every_form() {
        assert_eq!(positions(r#"{"content":[{"a":1},{"b":2}],"totalElements":2}"#).len(), 2);
        assert_eq!(positions(r#"[{"a":1}]"#), vec![("record 1".into(), true)]);
        assert_eq!(positions("{\"a\":1}\n\n{\"b\":2}\n"), vec![("line 1".into(), true), ("line 3".into(), true)]);
        assert_eq!(positions(r#"{"uuid":"x"}"#), vec![("record 1".into(), true)]);
        let pretty = "{\n  \"a\": 1\n}\n{\n  \"b\": 2\n}\n";
        assert_eq!(positions(pretty), vec![("record 1".into(), true), ("record 2".into(), true)]);
        assert!(positions("  ").is_empty());
    }

    #[test]
    fn a_bad_line_is_a_record_with_an_error() {
        assert_eq!(positions("{\"a\":1}\n{oops\n"), vec![("line 1".into(), true), ("line 2".into(), false)]);
    }

    #[test]
    fn a_broken_document_is_an_error() {
        assert!(matches!(split("[{\"a\":1}"), Err(DocumentError::Json(_))));
        assert!(matches!(split("hello"), Err(DocumentError::Shape)));
        assert!(matches!(split(r#"{"content":{}}"#), Err(DocumentError::ContentNotArray)));
    }
}
