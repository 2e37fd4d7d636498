//! Threat feeds on disk: one address or CIDR a line with `#` or `;`
//! comments (FireHOL netsets, Emerging Threats, abuse.ch's `ipblocklist.txt`,
//! Spamhaus DROP's legacy text), Spamhaus DROP's JSON lines, and abuse.ch
//! Feodo Tracker's CSV. Ranges that must never be blocked (private, CGNAT,
//! loopback, link-local, multicast, reserved: FireHOL's level 1 lists the
//! bogons) and ranges broader than /8 (IPv4) or /16 (IPv6) are dropped with
//! a warning.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;

use crate::ioc::is_public;

/// The ranges of one feed, merged and sorted for lookups.
#[derive(Debug, Clone, Default)]
pub struct Feed {
    nets: Vec<IpNet>,
    /// What was dropped, for the log.
    pub warnings: Vec<String>,
}

impl Feed {
    /// Parses a feed; `blockable` drops what must never be blocked.
    pub fn parse(text: &str, blockable: bool) -> Feed {
        let mut nets = Vec::new();
        let mut warnings = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let Some(entry) = entry(line) else { continue };
            let net = match entry.parse::<IpNet>().or_else(|_| entry.parse::<IpAddr>().map(IpNet::from)) {
                Ok(net) => net.trunc(),
                Err(_) => {
                    warnings.push(format!("line {}: {entry:?} is not an address or CIDR", number + 1));
                    continue;
                }
            };
            if blockable && let Some(why) = unblockable(&net) {
                warnings.push(format!("line {}: {net} dropped: {why}", number + 1));
                continue;
            }
            nets.push(net);
        }
        Feed { nets: IpNet::aggregate(&nets), warnings }
    }

    /// True when `ip` is in the feed.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let at = self.nets.partition_point(|net| net.network() <= ip);
        at > 0 && self.nets[at - 1].contains(&ip)
    }

    /// How many merged ranges it holds.
    pub fn len(&self) -> usize {
        self.nets.len()
    }

    /// True when it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }
}

/// The address or CIDR a line names, if any.
fn entry(line: &str) -> Option<String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
        return None;
    }
    if line.starts_with('{') {
        // Spamhaus DROP JSON lines; the last one is metadata.
        let value: Value = serde_json::from_str(line).ok()?;
        return value.get("cidr").and_then(Value::as_str).map(str::to_string);
    }
    if line.starts_with('"') {
        // Feodo Tracker CSV: "first_seen_utc","dst_ip","dst_port",…
        let ip = line.split(',').nth(1)?.trim().trim_matches('"');
        return (ip.parse::<IpAddr>().is_ok()).then(|| ip.to_string());
    }
    let cut = line.split(['#', ';']).next().unwrap_or_default();
    cut.split_whitespace().next().map(str::to_string)
}

/// Why a feed's range must not become a block.
fn unblockable(net: &IpNet) -> Option<&'static str> {
    let broad = match net {
        IpNet::V4(n) => n.prefix_len() < 8,
        IpNet::V6(n) => n.prefix_len() < 16,
    };
    if broad {
        return Some("broader than a /8 (IPv4) or /16 (IPv6)");
    }
    (!is_public(net.network()) || !is_public(net.broadcast()))
        .then_some("not a public range (private, CGNAT, loopback, link-local, multicast or reserved)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn reads_every_format_and_drops_the_bogons() {
        let firehol = "# firehol_level1\n0.0.0.0/8\n10.0.0.0/8\n1.10.16.0/20\n100.64.0.0/10\n5.8.0.0/16 # comment\n224.0.0.0/3\n2.0.0.0/7\n";
        let feed = Feed::parse(firehol, true);
        assert!(feed.contains(ip("1.10.17.3")) && feed.contains(ip("5.8.255.1")));
        assert!(!feed.contains(ip("10.1.1.1")) && !feed.contains(ip("100.64.0.1")) && !feed.contains(ip("2.1.1.1")));
        assert_eq!(feed.warnings.len(), 5, "{:?}", feed.warnings);
        let spamhaus = "{\"cidr\":\"1.10.16.0/20\",\"sblid\":\"SBL256894\",\"rir\":\"apnic\"}\n{\"type\":\"metadata\",\"timestamp\":1}\n";
        assert!(Feed::parse(spamhaus, true).contains(ip("1.10.16.1")));
        let legacy = "; Spamhaus DROP\n1.10.16.0/20 ; SBL256894\n";
        assert!(Feed::parse(legacy, true).contains(ip("1.10.31.255")));
        let feodo = "# abuse.ch\n\"first_seen_utc\",\"dst_ip\",\"dst_port\",\"c2_status\",\"last_online\",\"malware\"\n\"2021-01-17 07:44:46\",\"67.213.75.205\",\"443\",\"online\",\"2024-01-01\",\"Dridex\"\n";
        let feed = Feed::parse(feodo, true);
        assert!(feed.contains(ip("67.213.75.205")) && !feed.contains(ip("67.213.75.206")));
        assert!(feed.warnings.is_empty(), "{:?}", feed.warnings);
        let v6 = Feed::parse("2001:db8:1::/48\n::/0\nfe80::/10\n", true);
        assert!(v6.contains(ip("2001:db8:1::9")) && v6.len() == 1);
    }

    #[test]
    fn an_allowlist_keeps_private_ranges() {
        let allow = Feed::parse("10.0.0.0/8\n203.0.113.7\n", false);
        assert!(allow.contains(ip("10.9.9.9")) && allow.contains(ip("203.0.113.7")));
        assert!(Feed::parse("garbage\n", false).warnings[0].contains("not an address"));
    }
}
