//! YAML text that every Kubernetes client reads back as the JSON it was
//! written from.
//!
//! `serde_yaml` writes YAML 1.2, where `yes`, `on`, `n` or `1_000` are
//! strings and need no quotes. `kubectl`, the API server and Tetragon read
//! YAML with `sigs.k8s.io/yaml`, a YAML 1.1 parser, where they are booleans
//! and numbers: `values: [on]` would reach the API server as `[true]` and be
//! refused (`must be of type string`), and a label `no` would not decode at
//! all. Policy text comes from mappers and findings, so such strings are
//! input, not a corner case. This writer lays objects out as `serde_yaml`
//! (libyaml) does, byte for byte where the text means the same to both
//! parsers, and quotes every string either parser would read as something
//! else (`goyaml.v2/resolve.go` in `sigs.k8s.io/yaml`).

use std::fmt::Write as _;

use serde_json::{Map, Value};

/// Longest key libyaml writes as a simple `key: value`; a longer one is
/// written as an explicit `? key` (YAML bounds implicit keys at 1024).
const MAX_SIMPLE_KEY: usize = 128;

/// `value` as a YAML document, without the `---` marker.
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => mapping(&mut out, map, 0, false),
        Value::Array(items) if !items.is_empty() => sequence(&mut out, items, 0, false),
        other => {
            scalar(&mut out, other, 2);
            out.push('\n');
        }
    }
    out
}

/// A mapping whose keys start at column `indent`; with `inline`, the first
/// key goes where the cursor is (after `- ` or `? `/`: `).
fn mapping(out: &mut String, map: &Map<String, Value>, indent: usize, inline: bool) {
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 || !inline {
            pad(out, indent);
        }
        if key.len() <= MAX_SIMPLE_KEY && !key.contains(is_break) {
            string(out, key, indent);
            out.push(':');
            after_key(out, value, indent);
        } else {
            out.push_str("? ");
            string(out, key, indent + 2);
            out.push('\n');
            pad(out, indent);
            out.push_str(": ");
            item(out, value, indent + 2);
        }
    }
}

/// The value after `key:`; a sequence under a key is not indented.
fn after_key(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            mapping(out, map, indent + 2, false);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            sequence(out, items, indent, false);
        }
        other => {
            out.push(' ');
            scalar(out, other, indent + 2);
            out.push('\n');
        }
    }
}

/// A sequence whose dashes stand at column `indent`.
fn sequence(out: &mut String, items: &[Value], indent: usize, inline: bool) {
    for (i, value) in items.iter().enumerate() {
        if i > 0 || !inline {
            pad(out, indent);
        }
        out.push_str("- ");
        item(out, value, indent + 2);
    }
}

/// A node written where the cursor is, its own lines at column `indent`.
fn item(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => mapping(out, map, indent, true),
        Value::Array(items) if !items.is_empty() => sequence(out, items, indent, true),
        other => {
            scalar(out, other, indent);
            out.push('\n');
        }
    }
}

/// A scalar or an empty collection; a multi-line string's lines at column `indent`.
fn scalar(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => string(out, s, indent),
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
    }
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// How libyaml may write a string (`yaml_emitter_analyze_scalar`).
#[derive(Debug, PartialEq, Eq)]
struct Allowed {
    plain: bool,
    single_quoted: bool,
    literal: bool,
}

fn analyze(s: &str) -> Allowed {
    if s.is_empty() {
        return Allowed { plain: false, single_quoted: true, literal: false };
    }
    let chars: Vec<char> = s.chars().collect();
    let blank_or_end = |i: usize| chars.get(i).is_none_or(|c| is_blank(*c) || is_break(*c));
    let mut indicators = s.starts_with("---") || s.starts_with("...");
    let (mut line_breaks, mut special) = (false, false);
    let (mut leading_space, mut leading_break, mut trailing_space, mut trailing_break) = (false, false, false, false);
    let (mut break_space, mut space_break, mut previous_space, mut previous_break) = (false, false, false, false);
    let mut preceded_by_whitespace = true;
    let last = chars.len() - 1;
    for (i, &c) in chars.iter().enumerate() {
        let followed_by_whitespace = blank_or_end(i + 1);
        if i == 0 {
            indicators |= matches!(c, '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"')
                || matches!(c, '%' | '@' | '`')
                || (matches!(c, '?' | ':' | '-') && followed_by_whitespace);
        } else {
            indicators |= (c == ':' && followed_by_whitespace) || (c == '#' && preceded_by_whitespace);
        }
        special |= !is_printable(c);
        if c == ' ' {
            leading_space |= i == 0;
            trailing_space |= i == last;
            break_space |= previous_break;
            (previous_space, previous_break) = (true, false);
        } else if is_break(c) {
            line_breaks = true;
            leading_break |= i == 0;
            trailing_break |= i == last;
            space_break |= previous_space;
            (previous_space, previous_break) = (false, true);
        } else {
            (previous_space, previous_break) = (false, false);
        }
        preceded_by_whitespace = is_blank(c) || is_break(c);
    }
    let edges = leading_space || leading_break || trailing_space || trailing_break;
    let broken = space_break || special;
    Allowed {
        plain: !(edges || break_space || broken || line_breaks || indicators),
        single_quoted: !(break_space || broken),
        literal: !(trailing_space || broken),
    }
}

/// Writes `s` as libyaml would for `serde_yaml`, quoting what a YAML 1.1 or
/// 1.2 parser would not read back as this string. YAML 1.1 also breaks
/// lines at U+2028 and U+2029, so a string holding them is escaped.
fn string(out: &mut String, s: &str, indent: usize) {
    let allowed = analyze(s);
    if s.contains(['\u{2028}', '\u{2029}']) {
        double_quoted(out, s);
    } else if s.contains('\n') {
        if allowed.literal {
            literal(out, s, indent);
        } else {
            double_quoted(out, s);
        }
    } else if allowed.plain && !resolves_to_other_than_string(s) {
        out.push_str(s);
    } else if allowed.single_quoted {
        out.push('\'');
        out.push_str(&s.replace('\'', "''"));
        out.push('\'');
    } else {
        double_quoted(out, s);
    }
}

/// A literal block (`|`), its lines at column `indent`
/// (`yaml_emitter_write_literal_scalar`).
fn literal(out: &mut String, s: &str, indent: usize) {
    out.push('|');
    if s.starts_with([' ', '\n']) {
        out.push('2');
    }
    if !s.ends_with('\n') {
        out.push('-');
    } else if s == "\n" || s.ends_with("\n\n") {
        out.push('+');
    }
    out.push('\n');
    let body = s.strip_suffix('\n').unwrap_or(s);
    for line in body.split('\n') {
        if !line.is_empty() {
            pad(out, indent);
            out.push_str(line);
        }
        out.push('\n');
    }
    // The line just written ends the scalar; the caller writes its own.
    out.pop();
}

/// A double-quoted string with libyaml's escapes (`yaml_emitter_write_double_quoted`).
fn double_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        let escaped = match c {
            '\0' => "\\0",
            '\u{7}' => "\\a",
            '\u{8}' => "\\b",
            '\t' => "\\t",
            '\n' => "\\n",
            '\u{b}' => "\\v",
            '\u{c}' => "\\f",
            '\r' => "\\r",
            '\u{1b}' => "\\e",
            '"' => "\\\"",
            '\\' => "\\\\",
            '\u{85}' => "\\N",
            '\u{2028}' => "\\L",
            '\u{2029}' => "\\P",
            c if !is_printable(c) || c == '\u{feff}' => {
                let _ = match u32::from(c) {
                    n @ 0..=0xff => write!(out, "\\x{n:02X}"),
                    n @ 0x100..=0xffff => write!(out, "\\u{n:04X}"),
                    n => write!(out, "\\U{n:08X}"),
                };
                continue;
            }
            c => {
                out.push(c);
                continue;
            }
        };
        out.push_str(escaped);
    }
    out.push('"');
}

/// libyaml's `IS_PRINTABLE` (as `unsafe-libyaml` has it): it leaves out
/// tabs, other controls, the byte order mark, surrogates, U+FFFE and U+FFFF.
fn is_printable(c: char) -> bool {
    matches!(c, '\n' | ' '..='~' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..) && c != '\u{feff}'
}

fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t')
}

/// Whether a plain `s` means a null, a boolean or a number to YAML 1.2
/// (`serde_yaml`) or to YAML 1.1 (`sigs.k8s.io/yaml`, whose `resolve` also
/// takes `yes`/`no`/`on`/`off`/`y`/`n`, digits with `_`, `0b` and leading-zero
/// octal, and `<<`). Timestamps are left plain: both read them as strings.
fn resolves_to_other_than_string(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "", "~", "null", "Null", "NULL", "true", "True", "TRUE", "false", "False", "FALSE", "y", "Y", "yes", "Yes",
        "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF", ".nan", ".NaN", ".NAN", "<<",
    ];
    if WORDS.contains(&s) {
        return true;
    }
    let plain: String = s.chars().filter(|c| *c != '_').collect();
    let unsigned = plain.strip_prefix(['+', '-']).unwrap_or(&plain);
    if matches!(unsigned, ".inf" | ".Inf" | ".INF") {
        return true;
    }
    let digits = |text: &str, radix: u32| !text.is_empty() && text.chars().all(|c| c.is_digit(radix));
    for (prefix, radix) in [("0x", 16), ("0X", 16), ("0o", 8), ("0O", 8), ("0b", 2), ("0B", 2)] {
        if unsigned.strip_prefix(prefix).is_some_and(|rest| digits(rest, radix)) {
            return true;
        }
    }
    is_decimal_number(unsigned) || s.parse::<f64>().is_ok_and(f64::is_finite)
}

/// `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`, the float and integer
/// forms both parsers share.
fn is_decimal_number(s: &str) -> bool {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(at) => (&s[..at], Some(&s[at + 1..])),
        None => (s, None),
    };
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", fraction)) => !fraction.is_empty() && all_digits(fraction),
        Some((whole, fraction)) => all_digits(whole) && all_digits(fraction),
        None => !mantissa.is_empty() && all_digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && all_digits(e)
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Strings whose plain form YAML 1.1 reads as something else.
    const YAML_1_1: &[&str] =
        &["yes", "No", "ON", "off", "y", "N", "1_000", "0b101", "-0b1", "017", "08", "<<", "+.inf", "1e3", "0X1F"];

    /// Strings to write exactly as serde_yaml does.
    const ORDINARY: &[&str] = &[
        "cilium.io/v1alpha1",
        "/usr/bin/curl",
        "169.254.169.254/32",
        "2026-12-04T10:00:00Z",
        "a: b",
        "a:b",
        "# not a comment",
        "x #y",
        "- item",
        "-x",
        "?",
        ":x",
        "[a]",
        "a,b",
        "it's",
        " leading",
        "trailing ",
        "",
        "true",
        "null",
        "~",
        "12",
        "012",
        "0x1f",
        "1.5",
        ".5",
        "-",
        "---",
        "...x",
        "tab\there",
        "bell\u{7}",
        "bom\u{feff}",
        "emoji 🦀",
        "é ü ß",
        "line\nbreak",
        "ends\n",
        "two\n\n",
        "\n",
        " first\nsecond",
        "space \nbreak",
        "crlf\r\n",
        "inf",
        "nan",
    ];

    #[test]
    fn ordinary_objects_are_written_as_serde_yaml_writes_them() {
        let object = json!({
            "apiVersion": "cilium.io/v1alpha1", "kind": "TracingPolicy",
            "metadata": {"name": "x", "labels": {"a": "b"}, "annotations": {"j": "{\"k\":[1]}", "count": "2"}},
            "spec": {"podSelector": {}, "kprobes": [{"call": "tcp_connect", "syscall": false,
                "args": [{"index": 0, "type": "sock"}], "empty": [],
                "selectors": [{"matchArgs": [{"index": 0, "operator": "DAddr", "values": ["10.0.0.1", "0"]}],
                    "nested": [[1, 2], [], [{"a": null}]], "f": 1.5, "t": true}]}]},
            "strings": ORDINARY,
            "keys": ORDINARY.iter().map(|s| (s.to_string(), json!(s))).collect::<Map<_, _>>(),
            "long": {"k".repeat(129): {"a": 1}, "m".repeat(128): [1]},
        });
        assert_eq!(to_string(&object), serde_yaml::to_string(&object).unwrap());
        for top in [json!([]), json!({}), json!("x"), json!([1, [2]]), json!(null)] {
            assert_eq!(to_string(&top), serde_yaml::to_string(&top).unwrap(), "{top}");
        }
    }

    #[test]
    fn strings_yaml_1_1_reads_otherwise_are_quoted_and_read_back() {
        for s in YAML_1_1 {
            let object = Value::Object(Map::from_iter([("values".to_string(), json!([s])), (s.to_string(), json!(s))]));
            let text = to_string(&object);
            assert!(text.contains(&format!("- '{s}'")) && text.contains(&format!("'{s}': '{s}'")), "{text}");
            assert_eq!(serde_yaml::from_str::<Value>(&text).unwrap(), object, "{text}");
        }
    }

    #[test]
    fn every_string_reads_back_as_itself() {
        let strings: Vec<String> = ORDINARY
            .iter()
            .chain(YAML_1_1)
            .map(|s| s.to_string())
            .chain((0u32..0x80).filter_map(char::from_u32).map(|c| format!("{c}a{c}")))
            .chain(["\u{85}", "\u{2028}", "\u{2029}x\ny", "a\u{10ffff}", "\n\n\n", "x\n \n", "1e999"].map(String::from))
            .collect();
        for s in &strings {
            let object = json!({"k": s, "l": [s, {s.clone(): s}], "m": {"n": s}});
            let text = to_string(&object);
            assert_eq!(serde_yaml::from_str::<Value>(&text).ok(), Some(object), "{s:?} as\n{text}");
        }
    }
}
