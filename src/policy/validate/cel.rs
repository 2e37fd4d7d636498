//! The part of CEL that Tetragon's CRD rules use: `has(self.a.b)`, boolean
//! fields `self.a`, `!`, `&&`, `||` and parentheses. A rule outside this
//! subset is an error, never silently accepted; a test evaluates every rule
//! in the embedded CRDs.

use serde_json::Value;

/// Evaluates `rule` with `self` bound to `value`.
pub fn evaluate(rule: &str, value: &Value) -> Result<bool, String> {
    let tokens = tokenize(rule)?;
    let mut parser = Parser { tokens: &tokens, at: 0, value };
    let result = parser.or()?;
    match parser.tokens.get(parser.at) {
        None => Ok(result),
        Some(extra) => Err(format!("unexpected {extra:?}")),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Not,
    And,
    Or,
    Open,
    Close,
    Has(Vec<String>),
    Field(Vec<String>),
}

fn tokenize(rule: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut rest = rule.trim_start();
    while !rest.is_empty() {
        let (token, len) = if let Some(after) = rest.strip_prefix("has(") {
            let end = after.find(')').ok_or("unclosed has(")?;
            (Token::Has(path(&after[..end])?), 4 + end + 1)
        } else if rest.starts_with("&&") {
            (Token::And, 2)
        } else if rest.starts_with("||") {
            (Token::Or, 2)
        } else if rest.starts_with('!') {
            (Token::Not, 1)
        } else if rest.starts_with('(') {
            (Token::Open, 1)
        } else if rest.starts_with(')') {
            (Token::Close, 1)
        } else if rest.starts_with("self") {
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_')).unwrap_or(rest.len());
            (Token::Field(path(&rest[..end])?), end)
        } else {
            return Err(format!("unsupported expression at {rest:?}"));
        };
        tokens.push(token);
        rest = rest[len..].trim_start();
    }
    Ok(tokens)
}

/// `self.a.b` → `["a", "b"]`.
fn path(expression: &str) -> Result<Vec<String>, String> {
    let mut parts = expression.trim().split('.');
    if parts.next() != Some("self") {
        return Err(format!("expected self.…, got {expression:?}"));
    }
    Ok(parts.map(str::to_string).collect())
}

struct Parser<'a> {
    tokens: &'a [Token],
    at: usize,
    value: &'a Value,
}

impl Parser<'_> {
    fn or(&mut self) -> Result<bool, String> {
        let mut result = self.and()?;
        while self.eat(&Token::Or) {
            result |= self.and()?;
        }
        Ok(result)
    }

    fn and(&mut self) -> Result<bool, String> {
        let mut result = self.unary()?;
        while self.eat(&Token::And) {
            result &= self.unary()?;
        }
        Ok(result)
    }

    fn unary(&mut self) -> Result<bool, String> {
        if self.eat(&Token::Not) {
            return Ok(!self.unary()?);
        }
        let token = self.tokens.get(self.at).cloned().ok_or("unexpected end of rule")?;
        self.at += 1;
        match token {
            Token::Open => {
                let inner = self.or()?;
                if self.eat(&Token::Close) { Ok(inner) } else { Err("missing )".into()) }
            }
            Token::Has(path) => Ok(lookup(self.value, &path).is_some_and(|v| !v.is_null())),
            Token::Field(path) => match lookup(self.value, &path) {
                Some(Value::Bool(b)) => Ok(*b),
                None | Some(Value::Null) => Ok(false),
                Some(other) => Err(format!("self.{} is {other}, not a boolean", path.join("."))),
            },
            other => Err(format!("unexpected {other:?}")),
        }
    }

    fn eat(&mut self, token: &Token) -> bool {
        let hit = self.tokens.get(self.at) == Some(token);
        self.at += usize::from(hit);
        hit
    }
}

fn lookup<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Kind;
    use crate::policy::validate::crd::{TetragonVersion, schema};
    use serde_json::json;

    #[test]
    fn evaluates_the_rule_forms() {
        let rule = "!has(self.return) || (!self.return || has(self.returnArg))";
        assert!(evaluate(rule, &json!({})).unwrap());
        assert!(evaluate(rule, &json!({"return": false})).unwrap());
        assert!(!evaluate(rule, &json!({"return": true})).unwrap());
        assert!(evaluate(rule, &json!({"return": true, "returnArg": {}})).unwrap());
        assert!(!evaluate("!has(self.spec.hostSelector)", &json!({"spec": {"hostSelector": {}}})).unwrap());
        assert!(evaluate("self.size() > 1", &json!({})).is_err());
    }

    #[test]
    fn every_rule_in_the_embedded_crds_is_understood() {
        let mut count = 0;
        for (version, kind) in
            TetragonVersion::ALL.iter().flat_map(|v| [(*v, Kind::TracingPolicy), (*v, Kind::TracingPolicyNamespaced)])
        {
            visit_rules(schema(version, kind), &mut |rule| {
                evaluate(rule, &json!({})).unwrap_or_else(|e| panic!("{rule}: {e}"));
                count += 1;
            });
        }
        assert!(count >= 5, "expected the CEL rules of the main CRDs, found {count}");
    }

    fn visit_rules(value: &Value, f: &mut impl FnMut(&str)) {
        match value {
            Value::Object(map) => {
                if let Some(Value::Array(rules)) = map.get("x-kubernetes-validations") {
                    rules.iter().filter_map(|r| r["rule"].as_str()).for_each(&mut *f);
                }
                map.values().for_each(|v| visit_rules(v, f));
            }
            Value::Array(items) => items.iter().for_each(|v| visit_rules(v, f)),
            _ => {}
        }
    }
}
