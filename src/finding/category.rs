//! How category names compare: Qualys spells them inconsistently
//! (`Cloud_Credentials_accessed_by_network_utility`), so we match them
//! case-insensitively, with `-` and spaces taken as `_`.

/// The lookup key of a category name: trimmed, lower-cased, `-` and spaces as `_`.
pub fn category_key(name: &str) -> String {
    let mut key = name.trim().to_ascii_lowercase();
    if key.contains(['-', ' ']) {
        key = key.replace(['-', ' '], "_");
    }
    key
}

/// Tells, for a [`category_key`], whether it is the key of `name`, without
/// allocating: this runs for every finding, against every key a component
/// names, so `name` is trimmed once here rather than at every comparison.
/// It folds `name` as [`category_key`] does (the two are tested together), a
/// byte at a time: only ASCII bytes fold, and no byte of a multi-byte UTF-8
/// character is ASCII, so comparing bytes is comparing characters. Folding
/// keeps a name's length in bytes, so most other names are told apart by
/// their length alone.
pub fn key_matcher(name: &str) -> impl Fn(&str) -> bool + '_ {
    let fold = |b: u8| match b {
        b'-' | b' ' => b'_',
        b => b.to_ascii_lowercase(),
    };
    let name = name.trim();
    move |key: &str| key.len() == name.len() && key.bytes().zip(name.bytes()).all(|(k, n)| k == fold(n))
}

#[cfg(test)]
mod tests {
    use super::{category_key, key_matcher};

    #[test]
    fn spelling_variants_share_a_key() {
        let canonical = category_key("Cloud_Credentials_Accessed_By_Network_Utility");
        assert_eq!(canonical, "cloud_credentials_accessed_by_network_utility");
        assert_eq!(category_key("Cloud_Credentials_accessed_by_network_utility"), canonical);
        assert_eq!(category_key(" cloud-credentials-accessed-by-network-utility "), canonical);
        assert_ne!(category_key("Crypto_Mining"), category_key("Crypto_Minin"));
    }

    #[test]
    fn a_key_is_recognised_in_every_spelling_without_allocating() {
        let key = category_key("Reverse_Shell");
        for name in ["Reverse_Shell", " reverse-shell ", "REVERSE SHELL"] {
            assert!(key_matcher(name)(&key), "{name}");
            assert_eq!(category_key(name), key);
        }
        assert!(!key_matcher("Reverse_Shel")(&key) && !key_matcher("Reverse_Shells")(&key));
        assert!(!key_matcher("Reverse_Sheé")(&key), "same length in bytes, another name");
        assert_eq!(category_key(" Évasion-Totale "), "Évasion_totale", "only ASCII letters fold");
        assert!(key_matcher("Évasion totale")(&category_key("Évasion-Totale")));
    }
}
