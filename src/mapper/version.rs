//! Which versions of the `qualys:respond` WIT package this host runs, by the
//! rule the package promises: within a series (the same major, and within
//! 0.x the same minor) a host runs every component built against its own
//! version or an earlier one.

use semver::Version;

/// The WIT package version this host implements.
pub const WIT_VERSION: &str = "0.1.2";

/// The first version with the `selective-mapper` world (the `reads` export).
pub(crate) const SELECTIVE_SINCE: Version = Version::new(0, 1, 1);

/// The first version with the `category-selective-mapper` world (the
/// `reads-by-category` export).
pub(crate) const BY_CATEGORY_SINCE: Version = Version::new(0, 1, 2);

/// True when a host of version `host` runs a component built against
/// `component`. Pre-release and build tags are not part of the contract.
pub(crate) fn accepts(host: &str, component: &str) -> bool {
    match (core(host), core(component)) {
        (Some(h), Some(c)) => {
            let same_series = h.major == c.major && (h.major != 0 || h.minor == c.minor);
            same_series && (c.minor, c.patch) <= (h.minor, h.patch)
        }
        _ => false,
    }
}

/// `major.minor.patch` of `text`, without pre-release or build tags.
pub(crate) fn core(text: &str) -> Option<Version> {
    Version::parse(text.trim()).ok().map(|v| Version::new(v.major, v.minor, v.patch))
}

/// The versions a host of version `host` accepts, in words.
pub(crate) fn accepted_range(host: &str) -> String {
    match core(host) {
        Some(v) if v.major == 0 => format!("0.{}.0 up to {host}", v.minor),
        Some(v) => format!("{}.0.0 up to {host}", v.major),
        None => host.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::{accepted_range, accepts, core};

    #[test]
    fn older_compatible_versions_are_accepted_and_others_refused() {
        assert!(accepts("0.1.0", "0.1.0"));
        assert!(accepts("0.1.3", "0.1.0"), "older patch of the same minor");
        assert!(!accepts("0.1.0", "0.1.1"), "newer than the host");
        assert!(!accepts("0.1.0", "0.2.0"));
        assert!(!accepts("0.2.0", "0.1.0"), "a 0.x minor is a breaking change");
        assert!(accepts("1.4.0", "1.2.7"));
        assert!(!accepts("1.4.0", "2.0.0") && !accepts("2.0.0", "1.4.0"));
        assert!(!accepts("0.1.0", "bogus"));
        assert!(accepts("0.1.1", "0.1.1-rc.1+build"), "tags are not part of the contract");
        assert_eq!(accepted_range("0.1.0"), "0.1.0 up to 0.1.0");
        assert_eq!(accepted_range("0.1.1"), "0.1.0 up to 0.1.1");
        assert_eq!(core("0.1.1-rc.1"), Some(semver::Version::new(0, 1, 1)));
    }
}
