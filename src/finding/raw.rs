//! A finding's original record, kept as it arrived: the text a reader kept,
//! or the parsed value, which is written out as text only when something
//! asks (a mapper that reads `raw`). Records from the Qualys API arrive as
//! values; writing each out again cost a quarter of the offline pipeline
//! while nothing read it.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::Value;

/// The original record of a finding, as JSON.
#[derive(Debug, Clone)]
pub enum Raw {
    /// Its text, as the document had it.
    Text(String),
    /// Its parsed value (shared: clones of a finding do not copy it).
    Value(Arc<Value>),
}

impl Raw {
    /// The record as JSON text: the kept text, or the value written out.
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            Raw::Text(text) => Cow::Borrowed(text),
            Raw::Value(value) => Cow::Owned(value.to_string()),
        }
    }

    /// The record as a value, or `None` when its text is not JSON.
    pub fn value(&self) -> Option<Cow<'_, Value>> {
        match self {
            Raw::Text(text) => serde_json::from_str(text).ok().map(Cow::Owned),
            Raw::Value(value) => Some(Cow::Borrowed(value)),
        }
    }
}

impl Default for Raw {
    fn default() -> Raw {
        Raw::Text(String::new())
    }
}

impl From<String> for Raw {
    fn from(text: String) -> Raw {
        Raw::Text(text)
    }
}

impl From<Value> for Raw {
    fn from(value: Value) -> Raw {
        Raw::Value(Arc::new(value))
    }
}

/// Two records are equal when they say the same: the same JSON value, or,
/// where either is not JSON, the same text.
impl PartialEq for Raw {
    fn eq(&self, other: &Raw) -> bool {
        match (self, other) {
            (Raw::Text(a), Raw::Text(b)) if a == b => true,
            (Raw::Value(a), Raw::Value(b)) => a == b,
            _ => match (self.value(), other.value()) {
                (Some(a), Some(b)) => a == b,
                _ => self.text() == other.text(),
            },
        }
    }
}

impl Eq for Raw {}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::Raw;

    #[test]
    fn a_record_says_the_same_as_a_value_or_as_text() {
        let value = json!({"uuid": "a", "threatCategory": "Crypto_Mining"});
        let from_value = Raw::from(value.clone());
        let from_text = Raw::from(r#"{"uuid": "a",  "threatCategory": "Crypto_Mining"}"#.to_string());
        assert_eq!(from_value.text(), value.to_string());
        assert_eq!(from_value.value().as_deref(), Some(&value));
        assert_eq!(from_text.value().as_deref(), Some(&value));
        assert_eq!(from_value, from_text, "the same record, spaced differently");
        assert_ne!(from_value, Raw::from(json!({"uuid": "b"})));
        assert_eq!(from_text, Raw::from(r#"{"threatCategory":"Crypto_Mining","uuid":"a"}"#.to_string()));
        assert_ne!(Raw::from("not json".to_string()), Raw::from("not json either".to_string()));
        assert_eq!(Raw::default().text(), "");
    }
}
