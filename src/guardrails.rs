//! What no policy may cut off, whoever made it (a manual block, a mapper,
//! the server's API): every address and every port, loopback, DNS, the
//! nodes, the API server and the kubelet, the cluster DNS, and, unless a
//! block is forced, the pod and service ranges; and the namespaces where
//! policies stay in audit mode. Addresses are parsed, never compared as
//! strings. This module is a leaf: policy, block, reconcile and serve use it.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// A range that must not be blocked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedRange {
    /// The range.
    pub net: IpNet,
    /// What it is, for the refusal.
    pub what: String,
    /// True when `--force` may override the refusal.
    pub forceable: bool,
}

/// A port that must not be blocked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedPort {
    /// The port.
    pub port: u16,
    /// What it is, for the refusal.
    pub what: String,
    /// True when `--force` may override the refusal.
    pub forceable: bool,
}

/// Everything protected in one cluster.
#[derive(Debug, Clone, Default)]
pub struct Protected {
    /// Ranges.
    pub ranges: Vec<ProtectedRange>,
    /// Ports.
    pub ports: Vec<ProtectedPort>,
}

/// Ports the kubelet and the API server listen on, protected even when the
/// cluster does not name them (a block may force them, a policy may not).
pub const WELL_KNOWN_PORTS: &[(u16, &str)] = &[(10250, "the kubelet's port"), (6443, "the API server's usual port")];

/// Namespaces where policies stay in audit mode unless allowed: the
/// cluster's own, and where Tetragon and the Qualys sensor usually run.
pub const SYSTEM_NAMESPACES: &[&str] = &["kube-system", "kube-public", "kube-node-lease", "tetragon", "qualys"];

/// Everything a policy is checked against before it is written.
#[derive(Debug, Clone)]
pub struct Guardrails {
    /// Ranges and ports no enforcing policy may target.
    pub protected: Protected,
    /// Where policies stay in audit mode, and which cluster-wide policies
    /// leave out (their pods' namespace label).
    pub system_namespaces: BTreeSet<String>,
}

impl Default for Guardrails {
    fn default() -> Self {
        Guardrails::new(&[], &[])
    }
}

impl Guardrails {
    /// The defaults, with more system namespaces and some allowed to enforce.
    pub fn new(system: &[String], allow_enforce_in: &[String]) -> Guardrails {
        let mut system_namespaces: BTreeSet<String> = SYSTEM_NAMESPACES.iter().map(|s| s.to_string()).collect();
        system_namespaces.extend(system.iter().cloned());
        for allowed in allow_enforce_in {
            system_namespaces.remove(allowed);
        }
        Guardrails { protected: Protected::baseline(), system_namespaces }
    }

    /// These guardrails with the cluster's own ranges and ports.
    pub fn with_cluster(mut self, protected: Protected) -> Guardrails {
        self.protected = protected;
        self
    }

    /// True when policies in `namespace` stay in audit mode.
    pub fn is_system(&self, namespace: &str) -> bool {
        self.system_namespaces.contains(namespace)
    }
}

/// How many addresses `nets` cover together, per family, as a fraction of
/// the family's space (`0.5` for `0.0.0.0/1`); overlapping ranges count once.
pub fn coverage(nets: &[IpNet]) -> (f64, f64) {
    let mut v4 = 0.0;
    let mut v6 = 0.0;
    for net in IpNet::aggregate(&nets.to_vec()) {
        match net {
            IpNet::V4(n) => v4 += 2f64.powi(-i32::from(n.prefix_len())),
            IpNet::V6(n) => v6 += 2f64.powi(-i32::from(n.prefix_len())),
        }
    }
    (v4, v6)
}

/// The broadest share of a family one policy may target: a /8 of IPv4, a /16 of IPv6.
pub fn too_broad(nets: &[IpNet]) -> bool {
    let (v4, v6) = coverage(nets);
    v4 > 2f64.powi(-8) || v6 > 2f64.powi(-16)
}

impl Protected {
    /// What every cluster protects: loopback and the unspecified addresses,
    /// DNS's port, and (forceable for blocks) the kubelet's and the API
    /// server's usual ports.
    pub fn baseline() -> Protected {
        let mut protected = Protected::default();
        let v4 = |a, b, c, d, prefix| IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix));
        let v6 = |ip: Ipv6Addr| IpNet::V6(Ipv6Net::new_assert(ip, 128));
        protected.range(v4(127, 0, 0, 0, 8), "loopback", false);
        protected.range(v6(Ipv6Addr::LOCALHOST), "loopback", false);
        protected.range(v4(0, 0, 0, 0, 32), "the unspecified address", false);
        protected.range(v6(Ipv6Addr::UNSPECIFIED), "the unspecified address", false);
        protected.port(53, "DNS", false);
        for (port, what) in WELL_KNOWN_PORTS {
            protected.port(*port, *what, true);
        }
        protected
    }

    /// These protections without the ones `--force` overrides.
    pub fn without_forceable(&self) -> Protected {
        Protected {
            ranges: self.ranges.iter().filter(|r| !r.forceable).cloned().collect(),
            ports: self.ports.iter().filter(|p| !p.forceable).cloned().collect(),
        }
    }

    /// Protects `net`.
    pub fn range(&mut self, net: IpNet, what: impl Into<String>, forceable: bool) {
        self.ranges.push(ProtectedRange { net: net.trunc(), what: what.into(), forceable });
    }

    /// Protects one address.
    pub fn address(&mut self, ip: IpAddr, what: impl Into<String>) {
        self.range(IpNet::from(ip), what, false);
    }

    /// Protects `port`.
    pub fn port(&mut self, port: u16, what: impl Into<String>, forceable: bool) {
        if !self.ports.iter().any(|p| p.port == port && !p.forceable) {
            self.ports.push(ProtectedPort { port, what: what.into(), forceable });
        }
    }
}

/// Why a value is not an address, a range or a port.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// Neither an address nor a CIDR.
    #[error("{0:?} is not an IP address or CIDR (e.g. 203.0.113.7 or 198.51.100.0/24)")]
    NotAnAddress(String),
    /// A CIDR with bits set after its prefix.
    #[error("{text} has bits set after its prefix; did you mean {network}?")]
    HostBits {
        /// The value as given.
        text: String,
        /// The network it probably means.
        network: IpNet,
    },
    /// Not a number from 1 to 65535.
    #[error("{0:?} is not a port (1-65535)")]
    NotAPort(String),
}

/// Why a range or a port may not be blocked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `0.0.0.0/0` or `::/0`.
    #[error("{0} is every address; blocking it would cut every connection")]
    EveryAddress(IpNet),
    /// Broader than a /8 (IPv4) or a /16 (IPv6).
    #[error("{0} is broader than a /8 (IPv4) or /16 (IPv6); block narrower ranges")]
    TooBroad(IpNet),
    /// The range overlaps a protected one.
    #[error("{net} overlaps {} ({}){}", .range.what, .range.net, force_hint(.range.forceable))]
    ProtectedRange {
        /// The range asked for.
        net: IpNet,
        /// The protected range it overlaps.
        range: ProtectedRange,
    },
    /// The port is protected.
    #[error("port {} is {}{}", .0.port, .0.what, force_hint(.0.forceable))]
    ProtectedPort(ProtectedPort),
}

impl Refusal {
    /// True when `--force` would have let the value through.
    pub fn forceable(&self) -> bool {
        match self {
            Refusal::EveryAddress(_) | Refusal::TooBroad(_) => false,
            Refusal::ProtectedRange { range, .. } => range.forceable,
            Refusal::ProtectedPort(port) => port.forceable,
        }
    }
}

fn force_hint(forceable: bool) -> &'static str {
    if forceable { " (--force overrides this)" } else { "" }
}

/// Parses an address or CIDR into its canonical network; host bits set
/// after the prefix are refused (`10.0.0.1/8` is a typo, not `10.0.0.0/8`).
pub fn parse_ip(text: &str) -> Result<IpNet, ValueError> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    let net: IpNet = text.parse().map_err(|_| ValueError::NotAnAddress(text.to_string()))?;
    if net.trunc() != net {
        return Err(ValueError::HostBits { text: text.to_string(), network: net.trunc() });
    }
    Ok(net)
}

/// Parses a port (1-65535).
pub fn parse_port(text: &str) -> Result<u16, ValueError> {
    match text.trim().parse::<u16>() {
        Ok(0) | Err(_) => Err(ValueError::NotAPort(text.trim().to_string())),
        Ok(port) => Ok(port),
    }
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Why `net` may not be blocked, if it may not; forced refusals are dropped with `force`.
pub fn check_ip(net: &IpNet, protected: &Protected, force: bool) -> Option<Refusal> {
    if net.prefix_len() == 0 {
        return Some(Refusal::EveryAddress(*net));
    }
    let broad = match net {
        IpNet::V4(n) => n.prefix_len() < 8,
        IpNet::V6(n) => n.prefix_len() < 16,
    };
    if broad {
        return Some(Refusal::TooBroad(*net));
    }
    // A refusal that cannot be forced is named before one that can.
    let mut hits: Vec<&ProtectedRange> =
        protected.ranges.iter().filter(|r| !(force && r.forceable) && overlaps(net, &r.net)).collect();
    hits.sort_by_key(|r| r.forceable);
    hits.first().map(|range| Refusal::ProtectedRange { net: *net, range: ProtectedRange::clone(range) })
}

/// Why `port` may not be blocked, if it may not.
pub fn check_port(port: u16, protected: &Protected, force: bool) -> Option<Refusal> {
    protected
        .ports
        .iter()
        .filter(|p| !(force && p.forceable))
        .find(|p| p.port == port)
        .map(|p| Refusal::ProtectedPort(p.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> Protected {
        let mut p = Protected::baseline();
        p.range("10.244.0.0/16".parse().unwrap(), "the pod range of node-1", true);
        p.address("192.168.49.2".parse().unwrap(), "node node-1");
        p.address("10.96.0.10".parse().unwrap(), "the cluster DNS service");
        p.port(6443, "the API server's port", true);
        p
    }

    #[test]
    fn addresses_are_parsed_not_compared_as_text() {
        assert_eq!(parse_ip("203.0.113.7").unwrap().to_string(), "203.0.113.7/32");
        assert_eq!(parse_ip("2001:db8::1").unwrap().to_string(), "2001:db8::1/128");
        let typo = parse_ip("10.0.0.1/8").unwrap_err();
        assert!(matches!(&typo, ValueError::HostBits { network, .. } if network.to_string() == "10.0.0.0/8"));
        assert!(typo.to_string().contains("did you mean 10.0.0.0/8"));
        assert!(matches!(parse_ip("172.2"), Err(ValueError::NotAnAddress(_))));
        assert!(["0", "65536", "x"].iter().all(|p| matches!(parse_port(p), Err(ValueError::NotAPort(_)))));
        let p = cluster();
        assert_eq!(check_ip(&parse_ip("172.200.0.1").unwrap(), &p, false), None, "172.2 prefix is not 172.200");
    }

    #[test]
    fn every_guardrail_refuses() {
        let p = cluster();
        let refusal = |text: &str, force: bool| check_ip(&parse_ip(text).unwrap(), &p, force);
        let refuse = |text: &str, force: bool| refusal(text, force).map(|r| r.to_string());
        assert!(matches!(refusal("0.0.0.0/0", true), Some(Refusal::EveryAddress(_))));
        assert!(refuse("0.0.0.0/0", true).unwrap().contains("every address"));
        assert!(refuse("::/0", true).unwrap().contains("every address"));
        assert!(matches!(refusal("12.0.0.0/6", true), Some(Refusal::TooBroad(_))));
        assert!(refuse("12.0.0.0/6", true).unwrap().contains("broader"));
        assert!(refuse("127.0.0.53", true).unwrap().contains("loopback"));
        assert!(refuse("::1", true).unwrap().contains("loopback"));
        assert!(refuse("192.168.0.0/16", true).unwrap().contains("node node-1"));
        assert!(refuse("10.96.0.10", true).unwrap().contains("DNS"));
        assert!(refusal("10.244.3.7", false).is_some_and(|r| r.forceable()));
        assert!(refuse("10.244.3.7", false).unwrap().contains("--force"));
        assert_eq!(refuse("10.244.3.7", true), None);
        assert_eq!(refuse("169.254.169.254", false), None, "the metadata endpoint may be blocked");
        assert!(!check_port(53, &p, true).unwrap().forceable());
        assert!(check_port(53, &p, true).unwrap().to_string().contains("DNS"));
        assert!(check_port(6443, &p, false).unwrap().to_string().contains("--force"));
        assert_eq!(check_port(6443, &p, true), None);
        assert_eq!(check_port(4444, &p, false), None);
    }
}
