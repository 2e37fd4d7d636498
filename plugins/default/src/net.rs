//! Address and binary helpers for the rules: which addresses may be blocked,
//! and which binaries a finding may name without widening a policy to every
//! shell of a namespace.

use std::net::IpAddr;

/// True for an address that is reachable on the public internet, and so may
/// be blocked as a remote peer: not private, loopback, link-local, shared
/// (CGNAT), multicast, unspecified or broadcast.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || v6.to_ipv4_mapped().is_some())
        }
    }
}

/// True for a link-local address, where cloud metadata services live.
pub fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80 || v6.segments()[..4] == [0xfd00, 0x0ec2, 0, 0],
    }
}

/// The address as a single-host CIDR (`/32` or `/128`).
pub fn host_cidr(ip: IpAddr) -> String {
    let mut cidr = ip.to_string();
    cidr.push_str(if ip.is_ipv4() { "/32" } else { "/128" });
    cidr
}

/// Interpreters and shells: a finding that names one of them must not turn
/// into a rule against every use of it.
const TOO_COMMON: &[&str] =
    &["sh", "bash", "dash", "zsh", "ash", "ksh", "busybox", "env", "python", "python3", "perl", "ruby", "node", "java"];

/// The executable's base name, when it is specific enough to block by name.
pub fn specific_basename(binary: &str) -> Option<&str> {
    let base = binary.rsplit('/').next()?.trim();
    let valid = !base.is_empty()
        && base.len() < 100
        && base.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+'));
    (valid && !TOO_COMMON.contains(&base)).then_some(base)
}

/// Absolute paths for a binary: the path itself when Qualys gave one, the
/// usual install locations when it gave only a name.
pub fn binary_paths(binary: &str) -> Vec<String> {
    if binary.starts_with('/') {
        if binary.len() <= 255 && !binary.contains(char::is_whitespace) {
            return vec![binary.to_string()];
        }
        return Vec::new();
    }
    match specific_basename(binary) {
        Some(name) => ["/bin", "/usr/bin", "/usr/local/bin"].iter().map(|dir| format!("{dir}/{name}")).collect(),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_peers() {
        for public in ["198.51.100.7", "8.8.8.8", "2001:4860::8888"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
        for private in [
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        assert!(is_public("172.200.0.1".parse().unwrap()), "172.200/16 is not 172.16/12");
    }

    #[test]
    fn binaries_become_paths_only_when_specific() {
        assert_eq!(binary_paths("/usr/bin/curl"), ["/usr/bin/curl"]);
        assert_eq!(binary_paths("wget"), ["/bin/wget", "/usr/bin/wget", "/usr/local/bin/wget"]);
        assert!(binary_paths("bash").is_empty());
        assert!(binary_paths("/tmp/a b").is_empty());
        assert_eq!(specific_basename("/opt/x/nmap"), Some("nmap"));
        assert_eq!(specific_basename("/bin/sh"), None);
    }

    #[test]
    fn metadata_addresses_are_link_local() {
        assert!(is_link_local("169.254.170.2".parse().unwrap()));
        assert!(is_link_local("fd00:ec2::254".parse().unwrap()));
        assert!(!is_link_local("203.0.113.1".parse().unwrap()));
    }
}
