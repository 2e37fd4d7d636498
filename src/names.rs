//! Kubernetes names, checked the way the API server checks them: a leaf
//! module for the wire parser, the mapper boundary and the validator.

/// True for a DNS-1123 label (a namespace): at most 63 lowercase letters,
/// digits and '-', alphanumeric at both ends.
pub fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// True for a DNS-1123 subdomain (an object name, a pod): labels joined by
/// '.', at most 253 characters.
pub fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty() && name.len() <= 253 && name.split('.').all(|part| !part.is_empty() && is_dns_label(part))
}

/// A label value: at most 63 letters, digits, `-`, `_` and `.`, beginning
/// and ending with a letter or digit (here also not empty).
pub fn is_label_value(text: &str) -> bool {
    (1..=63).contains(&text.len())
        && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && text.starts_with(|c: char| c.is_ascii_alphanumeric())
        && text.ends_with(|c: char| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_as_the_api_server_does() {
        assert!(is_dns_label("payments-2") && is_dns_subdomain("web-7d9f.x"));
        for bad in ["", "-a", "a-", "Payments", "a_b", "a.b", &"a".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad}");
        }
        assert!(!is_dns_subdomain("a..b") && !is_dns_subdomain("../etc"));
        assert!(is_dns_subdomain("cdr-a.b") && !is_dns_subdomain("Cdr") && !is_dns_subdomain("a_b"));
    }
}
