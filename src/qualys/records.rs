//! Splits a findings document into records: the API envelope
//! `{"content": [...]}`, a bare JSON array, or one JSON object per line.
//!
//! A record that is not valid JSON is kept as a [`Record`] with an error, so
//! that it is reported with its position instead of failing the whole file.
//! [`stream`] reads a document in one pass and hands over each record as it
//! is parsed, with its original text, so a large file is never held as one
//! tree of values; [`split`] collects the same records.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// One record of a findings document.
#[derive(Debug)]
pub struct Record {
    /// Where it was: `record 3` (1-based, in an array) or `line 7`.
    pub position: String,
    /// The parsed JSON, or why it did not parse.
    pub value: Result<Value, String>,
    /// The record's text as the document has it, when the reader kept it
    /// (the finding's `raw` is then this text, not the value written again).
    pub text: Option<String>,
}

impl Record {
    /// A record parsed from a value, without its original text.
    pub fn from_value(position: String, value: Value) -> Record {
        Record { position, value: Ok(value), text: None }
    }

    /// A record parsed from `text`.
    fn parse(position: String, text: &str) -> Record {
        match serde_json::from_str(text) {
            Ok(value) => Record { position, value: Ok(value), text: Some(text.to_string()) },
            Err(e) => Record { position, value: Err(format!("not valid JSON: {e}")), text: None },
        }
    }
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
    let mut records = Vec::new();
    stream(text, |record| records.push(record))?;
    Ok(records)
}

/// Reads `text` in one pass and calls `each` with every record, in order;
/// returns how many there were. A document that is one JSON value (an
/// array, an envelope or a single finding) is read as such; otherwise it is
/// one JSON value per line (numbered by line) when its first line is a whole
/// value, and concatenated values (numbered as records) when not. On an
/// error, the records already handed over stay handed over: the caller
/// decides whether a partial document counts.
pub fn stream(text: &str, mut each: impl FnMut(Record)) -> Result<usize, DocumentError> {
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Ok(0);
    }
    if !trimmed.starts_with('[') && !trimmed.starts_with('{') {
        return Err(DocumentError::Shape);
    }
    let mut count = 0;
    let mut deserializer = serde_json::Deserializer::from_str(trimmed);
    let document = Document {
        each: &mut |record| {
            count += 1;
            each(record)
        },
    };
    let read = deserializer.deserialize_any(document);
    let single = deserializer.end().is_ok();
    match read {
        Ok(Read::Streamed) if single => Ok(count),
        Ok(Read::Streamed) => Err(DocumentError::Shape),
        Ok(Read::ContentNotArray) if single => Err(DocumentError::ContentNotArray),
        Ok(Read::Object(object)) if single => {
            each(Record::from_value("record 1".into(), Value::Object(object)));
            Ok(1)
        }
        Ok(_) if trimmed.starts_with('{') => Ok(values(text, &mut each)),
        Ok(_) => Err(DocumentError::Shape),
        // A broken array, or an envelope cut short after some of its records.
        Err(e) if trimmed.starts_with('[') || count > 0 => Err(DocumentError::Json(e)),
        // Not one document: one value per line, or concatenated values.
        Err(_) => Ok(values(text, &mut each)),
    }
}

/// A document of several JSON values: one per line (numbered by line) when
/// the first line is a whole value, else concatenated (numbered as records).
fn values(text: &str, each: &mut impl FnMut(Record)) -> usize {
    let mut lines = text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty()).peekable();
    let per_line = lines.peek().is_some_and(|(_, first)| serde_json::from_str::<IgnoredAny>(first).is_ok());
    if per_line {
        return lines.map(|(i, line)| each(Record::parse(format!("line {}", i + 1), line))).count();
    }
    let mut count = 0;
    for (i, raw) in serde_json::Deserializer::from_str(text).into_iter::<&RawValue>().enumerate() {
        let position = format!("record {}", i + 1);
        count += 1;
        match raw {
            Ok(raw) => each(Record::parse(position, raw.get())),
            Err(e) => {
                each(Record { position, value: Err(format!("not valid JSON: {e}")), text: None });
                break;
            }
        }
    }
    count
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
            None => Ok(vec![Record::from_value("record 1".into(), Value::Object(object))]),
        },
        _ => Err(DocumentError::Shape),
    }
}

fn numbered(items: Vec<Value>) -> Vec<Record> {
    items.into_iter().enumerate().map(|(i, value)| Record::from_value(format!("record {}", i + 1), value)).collect()
}

/// What the top-level value of a document turned out to be.
enum Read {
    /// An array or an envelope, whose records were handed over.
    Streamed,
    /// An envelope whose `content` is not an array (nor null).
    ContentNotArray,
    /// An object without `content`: a single finding.
    Object(Map<String, Value>),
    /// Anything else.
    Other,
}

/// A visitor's answer to every scalar (booleans, numbers, strings).
macro_rules! scalars_are {
    ($read:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Read, E> {
            Ok($read)
        }

        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Read, E> {
            Ok($read)
        }

        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Read, E> {
            Ok($read)
        }

        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Read, E> {
            Ok($read)
        }

        fn visit_str<E: de::Error>(self, _: &str) -> Result<Read, E> {
            Ok($read)
        }
    };
}

/// The top-level value: an array of records, or an object that is an
/// envelope (whose `content` is streamed) or a finding (kept whole).
struct Document<'f> {
    each: &'f mut dyn FnMut(Record),
}

impl<'de> Visitor<'de> for Document<'_> {
    type Value = Read;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array or object")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Read, A::Error> {
        Records { each: self.each }.visit_seq(seq)?;
        Ok(Read::Streamed)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Read, A::Error> {
        let mut object = Map::new();
        let mut read = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "content" && read.is_none() {
                read = Some(map.next_value_seed(Content { each: &mut *self.each })?);
            } else if read.is_some() {
                map.next_value::<IgnoredAny>()?;
            } else {
                object.insert(key, map.next_value()?);
            }
        }
        Ok(read.unwrap_or(Read::Object(object)))
    }

    scalars_are!(Read::Other);

    fn visit_unit<E: de::Error>(self) -> Result<Read, E> {
        Ok(Read::Other)
    }
}

/// An envelope's `content`: an array of records, null (none), or a mistake.
struct Content<'f> {
    each: &'f mut dyn FnMut(Record),
}

impl<'de> DeserializeSeed<'de> for Content<'_> {
    type Value = Read;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Read, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Content<'_> {
    type Value = Read;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of findings")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Read, A::Error> {
        Records { each: self.each }.visit_seq(seq)?;
        Ok(Read::Streamed)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Read, E> {
        Ok(Read::Streamed)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Read, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Read::ContentNotArray)
    }

    scalars_are!(Read::ContentNotArray);
}

/// The elements of an array of records, each handed over as it is read,
/// with its text.
struct Records<'f> {
    each: &'f mut dyn FnMut(Record),
}

impl Records<'_> {
    fn visit_seq<'de, A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        while let Some(raw) = seq.next_element::<&RawValue>()? {
            i += 1;
            (self.each)(Record::parse(format!("record {i}"), raw.get()));
        }
        Ok(())
    }
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
    fn records_keep_their_text_and_envelope_fields_around_content_are_read_past() {
        let text = r#"{"totalElements": 2, "content": [ {"uuid": "a"} , {"uuid":"b"}], "pageable": {"x": [1]}}"#;
        let records = split(text).unwrap();
        let texts: Vec<_> = records.iter().map(|r| r.text.as_deref()).collect();
        assert_eq!(texts, [Some(r#"{"uuid": "a"}"#), Some(r#"{"uuid":"b"}"#)]);
        assert_eq!(records[1].value.as_ref().unwrap()["uuid"], "b");
        assert!(split(r#"{"content": null}"#).unwrap().is_empty());
        let mut seen = Vec::new();
        assert_eq!(stream("[{\"a\":1},{\"b\":2}]", |r| seen.push(r.position)).unwrap(), 2);
        assert_eq!(seen, ["record 1", "record 2"]);
    }

    #[test]
    fn a_bad_line_is_a_record_with_an_error() {
        assert_eq!(positions("{\"a\":1}\n{oops\n"), vec![("line 1".into(), true), ("line 2".into(), false)]);
    }

    #[test]
    fn a_broken_document_is_an_error() {
        assert!(matches!(split("[{\"a\":1}"), Err(DocumentError::Json(_))));
        assert!(matches!(split(r#"{"content":3}"#), Err(DocumentError::ContentNotArray)));
        assert!(matches!(split(r#"{"content":[{"a":1},{"b""#), Err(DocumentError::Json(_))), "cut short");
        assert!(matches!(split("hello"), Err(DocumentError::Shape)));
        assert!(matches!(split(r#"{"content":{}}"#), Err(DocumentError::ContentNotArray)));
    }
}
