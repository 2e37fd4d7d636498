//! Just enough JSON writing for the rules: string lists and a fixed action.

/// The enforcing action every rule writes (the host sets the mode).
pub const SIGKILL: &str = r#"[{"action":"Sigkill"}]"#;

/// A JSON array of strings.
pub fn list<I, S>(items: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out = String::from("[");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        quote_into(&mut out, item.as_ref());
    }
    out.push(']');
    out
}

fn quote_into(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::list;

    #[test]
    fn lists_are_valid_json() {
        let text = list(["a", "quote\"back\\slash", "tab\t"]);
        let parsed: Vec<String> = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed, ["a", "quote\"back\\slash", "tab\t"]);
        assert_eq!(list(Vec::<String>::new()), "[]");
    }
}
