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

#[cfg(test)]
mod tests {
    use super::category_key;

    #[test]
    fn spelling_variants_share_a_key() {
        let canonical = category_key("Cloud_Credentials_Accessed_By_Network_Utility");
        assert_eq!(canonical, "cloud_credentials_accessed_by_network_utility");
        assert_eq!(category_key("Cloud_Credentials_accessed_by_network_utility"), canonical);
        assert_eq!(category_key(" cloud-credentials-accessed-by-network-utility "), canonical);
        assert_ne!(category_key("Crypto_Mining"), category_key("Crypto_Minin"));
    }
}
