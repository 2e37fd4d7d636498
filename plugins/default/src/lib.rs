//! The default Qualys CDR category mappings.
//!
//! This crate is built twice: as a WASM component (`wasm32-wasip2`, see
//! `component.rs`) that `kubectl qualys-respond` embeds and runs sandboxed like
//! any other mapper, and as a plain Rust library that the benchmarks call
//! natively as the reference. Both go through [`map_finding`], so they produce
//! the same policies byte for byte.
//!
//! Every policy is written for Tetragon's loader, not just its schema: port
//! and address matches sit on a `sock` argument of `tcp_connect`, numbers are
//! numbers, every `matchArgs` index is declared, and `syscall` is always
//! explicit. Enforcing actions are written as `Sigkill`; the host turns them
//! into `Post` in audit mode, scopes each policy to containers or to the
//! affected namespace, and excludes the protected host binaries.

mod json;
mod net;
mod rules;

#[cfg(any(target_arch = "wasm32", test))]
mod arena;
#[cfg(target_arch = "wasm32")]
mod component;

pub use rules::CATEGORIES;

/// What a rule reads of a finding (a subset of the WIT `finding` record).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Finding {
    /// The category as Qualys names it.
    pub category: String,
    /// The affected namespace, if known.
    pub namespace: Option<String>,
    /// The executable of the process that triggered the finding.
    pub binary: Option<String>,
    /// The remote address, canonical form.
    pub destination_ip: Option<String>,
    /// The remote port.
    pub destination_port: Option<u16>,
}

/// Where a policy applies (mirrors the WIT `scope` variant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every container of the cluster.
    Cluster,
    /// The pods of one namespace.
    Namespace(String),
}

/// One policy the mapping asks for (mirrors the WIT `policy` record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Stable slug naming what the policy does.
    pub template: &'static str,
    /// MITRE ATT&CK technique id.
    pub technique: &'static str,
    /// Where the policy applies.
    pub scope: Scope,
    /// What the policy blocks, for people.
    pub indicators: Vec<String>,
    /// The TracingPolicy spec, as JSON.
    pub spec: String,
}

/// The mapper's name, as `info` reports it.
pub const NAME: &str = "default";
/// The mapper's version, as `info` reports it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Maps one finding to its policies; an error for a category this mapper
/// does not handle.
pub fn map_finding(finding: &Finding) -> Result<Vec<Policy>, String> {
    let rule = CATEGORIES
        .iter()
        .find(|c| same_category(c.name, &finding.category))
        .ok_or_else(|| format!("category {:?} is not handled by the default mapper", finding.category))?;
    let scope = match &finding.namespace {
        Some(ns) if !ns.is_empty() => Scope::Namespace(ns.clone()),
        _ => Scope::Cluster,
    };
    Ok((rule.build)(finding)
        .into_iter()
        .map(|p| Policy {
            template: p.template,
            technique: rule.technique,
            scope: scope.clone(),
            indicators: p.indicators,
            spec: p.spec,
        })
        .collect())
}

/// True when `a` and `b` name one category: they compare case-insensitively,
/// with `-` and spaces taken as `_` (without allocating: this runs for every
/// finding).
fn same_category(a: &str, b: &str) -> bool {
    let fold = |c: char| match c {
        '-' | ' ' => '_',
        c => c.to_ascii_lowercase(),
    };
    a.trim().chars().map(fold).eq(b.trim().chars().map(fold))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_match_case_insensitively_and_unknown_ones_are_refused() {
        let finding = |category: &str| Finding { category: category.into(), ..Finding::default() };
        let policies = map_finding(&finding("cloud_credentials_ACCESSED_by_network_utility")).unwrap();
        assert_eq!(policies[0].technique, "T1552.005");
        assert_eq!(policies[0].scope, Scope::Cluster);
        assert!(map_finding(&finding("Unknown_Thing")).unwrap_err().contains("not handled"));
    }

    #[test]
    fn category_names_fold_case_dashes_and_spaces() {
        assert!(same_category("Crypto_Mining", "crypto-mining"));
        assert!(same_category(" Reverse Shell ", "REVERSE_SHELL"));
        assert!(!same_category("a", "ab") && !same_category("x_y", "x"));
    }

    #[test]
    fn a_rule_depends_on_nothing_but_what_its_category_reads() {
        let full = |category: &str| Finding {
            category: category.into(),
            namespace: Some("shop".into()),
            binary: Some("/opt/tools/zgrab9".into()),
            destination_ip: Some("169.254.170.2".into()),
            destination_port: Some(31337),
        };
        for full_public in [false, true] {
            for category in CATEGORIES {
                let mut finding = full(category.name);
                if full_public {
                    finding.destination_ip = Some("198.51.100.7".into());
                }
                let read = |field: &str| category.reads.contains(&field);
                let mut blanked = finding.clone();
                if !read("namespace") {
                    blanked.namespace = None;
                }
                if !read("process") {
                    blanked.binary = None;
                }
                if !read("destination-ip") {
                    blanked.destination_ip = None;
                }
                if !read("destination-port") {
                    blanked.destination_port = None;
                }
                assert_eq!(map_finding(&finding), map_finding(&blanked), "{}", category.name);
            }
        }
    }

    #[test]
    fn every_category_has_policies() {
        for category in CATEGORIES {
            let finding =
                Finding { category: category.name.into(), namespace: Some("ns".into()), ..Finding::default() };
            let policies = map_finding(&finding).unwrap();
            assert!(!policies.is_empty(), "{}", category.name);
            assert!(policies.iter().all(|p| p.scope == Scope::Namespace("ns".into())));
        }
    }
}
