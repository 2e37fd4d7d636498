//! Just enough JSON writing for the rules: string and port lists, appended
//! to the spec being written, and a fixed action.

/// The enforcing action every rule writes (the host sets the mode).
pub const SIGKILL: &str = r#"[{"action":"Sigkill"}]"#;

/// Appends a JSON array of strings to `out`, each item after `prefix` (a
/// constant that needs no escaping, such as `/`).
pub fn push_list<I, S>(out: &mut String, prefix: &str, items: I)
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    out.push('[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(prefix);
        escape_into(out, item.as_ref());
        out.push('"');
    }
    out.push(']');
}

/// Appends a JSON array of numbers written as strings (`["3333","4444"]`),
/// as Tetragon takes port values.
pub fn push_port_list(out: &mut String, ports: &[u16]) {
    out.push('[');
    for (i, port) in ports.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        push_u16(out, *port);
        out.push('"');
    }
    out.push(']');
}

/// Appends `n` in decimal (without `core::fmt`, which costs far more).
pub fn push_u16(out: &mut String, n: u16) {
    let mut digits = [0u8; 5];
    let mut at = digits.len();
    let mut rest = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    digits[at..].iter().for_each(|d| out.push(char::from(*d)));
}

/// `tag` followed by `value`, in one allocation.
pub fn tagged(tag: &str, value: &str) -> String {
    let mut out = String::with_capacity(tag.len() + value.len());
    out.push_str(tag);
    out.push_str(value);
    out
}

fn escape_into(out: &mut String, text: &str) {
    if !text.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{push_list, push_port_list, push_u16};

    fn list(items: &[&str], prefix: &str) -> String {
        let mut out = String::new();
        push_list(&mut out, prefix, items);
        out
    }

    #[test]
    fn lists_are_valid_json() {
        let text = list(&["a", "quote\"back\\slash", "tab\t"], "");
        let parsed: Vec<String> = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed, ["a", "quote\"back\\slash", "tab\t"]);
        assert_eq!(list(&[], ""), "[]");
        assert_eq!(list(&["nmap", "a\"b"], "/"), r#"["/nmap","/a\"b"]"#);
    }

    #[test]
    fn numbers_are_written_in_decimal() {
        for n in [0, 7, 10, 443, 9999, 10000, 65535] {
            let mut out = String::new();
            push_u16(&mut out, n);
            assert_eq!(out, n.to_string());
        }
        let mut out = String::new();
        push_port_list(&mut out, &[80, 3333]);
        assert_eq!(out, r#"["80","3333"]"#);
    }
}
