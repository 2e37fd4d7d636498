//! Which of a finding's remote addresses may become a block.
//!
//! Every public address of a finding ([`crate::ioc`]) is judged: the
//! allowlist (`--allow`, `--allow-file`) always wins, then the cluster's own
//! ranges (nodes, pods, services, the API server) are never blocked, then
//! the configured sources speak: local feed files ([`feed`]) and AbuseIPDB
//! ([`abuseipdb`]). With a source configured, an address becomes a peer the
//! mappers see (and so an IP block) only when a source calls it malicious;
//! with none, the finding's own peer is handed over as before and the other
//! addresses are only recorded. Each decision (verdict, source, score) goes
//! into the annotations of the policies the finding produces.

pub mod abuseipdb;
pub mod feed;
mod verdict;

pub use verdict::{Decision, Verdict};

use crate::finding::Finding;
use crate::guardrails::Protected;
use crate::ioc::{self, is_public};
use crate::watch::{Parse, WatchError, Watched};
use abuseipdb::AbuseIpDb;
use feed::Feed;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

/// AbuseIPDB lookups for one finding, at most (its peer first): quotas are small.
pub const MAX_LOOKUPS: usize = 4;

/// What the pipeline records about a finding beyond its policies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    /// The decisions on its addresses.
    pub decisions: BTreeMap<IpAddr, Decision>,
    /// The domains it names.
    pub domains: BTreeSet<String>,
}

impl Evidence {
    /// True when there is nothing to record.
    pub fn is_empty(&self) -> bool {
        self.decisions.is_empty() && self.domains.is_empty()
    }
}

/// The judgement on one finding.
#[derive(Debug, Clone, Default)]
pub struct Assessment {
    /// What to record.
    pub evidence: Arc<Evidence>,
    /// The public peers mappers may see, one mapping each; `None` leaves
    /// the finding as it came.
    pub peers: Option<Vec<IpAddr>>,
}

impl Assessment {
    /// The versions of `finding` to hand the mappers: itself, or one per
    /// peer (a public peer nobody called bad is hidden; a private one, such
    /// as the metadata endpoint, always stays).
    pub fn views<'a>(&self, finding: &'a Finding) -> Vec<std::borrow::Cow<'a, Finding>> {
        use std::borrow::Cow;
        let Some(peers) = &self.peers else { return vec![Cow::Borrowed(finding)] };
        let with = |peer: Option<IpAddr>| {
            let mut view = finding.clone();
            view.destination_ip = peer;
            Cow::Owned(view)
        };
        let private_peer = finding.destination_ip.filter(|ip| !is_public(*ip));
        let mut views: Vec<Cow<'a, Finding>> = Vec::new();
        if private_peer.is_some() || peers.is_empty() {
            views.push(if finding.destination_ip == private_peer {
                Cow::Borrowed(finding)
            } else {
                with(private_peer)
            });
        }
        views.extend(peers.iter().map(|peer| with(Some(*peer))));
        views
    }
}

/// The configured sources and the allowlist.
pub struct Judge {
    allow: Feed,
    allow_file: Option<Watched<Feed>>,
    feeds: Vec<(String, Watched<Feed>)>,
    abuseipdb: Option<AbuseIpDb>,
    protected: Arc<RwLock<Protected>>,
}

fn feed_parse(blockable: bool, name: String) -> Parse<Feed> {
    Box::new(move |texts| {
        let feed = Feed::parse(&texts[0], blockable);
        for warning in &feed.warnings {
            tracing::warn!(feed = %name, "{warning}");
        }
        Ok(feed)
    })
}

impl Judge {
    /// A judge with the given sources; `protected` is kept current by the caller.
    pub fn new(
        allow: &[ipnet::IpNet],
        allow_file: Option<PathBuf>,
        feeds: &[PathBuf],
        abuseipdb: Option<AbuseIpDb>,
        protected: Arc<RwLock<Protected>>,
    ) -> Result<Judge, WatchError> {
        let allow_file = allow_file
            .map(|path| {
                let name = path.display().to_string();
                Watched::load(vec![path], feed_parse(false, name))
            })
            .transpose()?;
        let feeds = feeds
            .iter()
            .map(|path| {
                let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into());
                let watched = Watched::load(vec![path.clone()], feed_parse(true, name.clone()))?;
                tracing::info!(feed = %name, ranges = watched.get().len(), "threat feed loaded");
                Ok((name, watched))
            })
            .collect::<Result<_, WatchError>>()?;
        let text: Vec<String> = allow.iter().map(ToString::to_string).collect();
        Ok(Judge { allow: Feed::parse(&text.join("\n"), false), allow_file, feeds, abuseipdb, protected })
    }

    /// True when a source of reputation is configured.
    pub fn has_sources(&self) -> bool {
        !self.feeds.is_empty() || self.abuseipdb.is_some()
    }

    fn allowed(&self, ip: IpAddr) -> Option<Decision> {
        let listed = self.allow.contains(ip) || self.allow_file.as_ref().is_some_and(|f| f.get().contains(ip));
        if listed {
            return Some(Decision { verdict: Verdict::Allowed, source: "allowlist".into(), score: None, note: None });
        }
        let protected = self.protected.read().unwrap_or_else(|e| e.into_inner());
        protected.ranges.iter().find(|r| r.net.contains(&ip)).map(|range| Decision {
            verdict: Verdict::Allowed,
            source: "cluster".into(),
            score: None,
            note: Some(range.what.clone()),
        })
    }

    /// Judges the addresses of `finding`.
    pub async fn assess(&self, finding: &Finding) -> Assessment {
        let iocs = ioc::extract(finding);
        let sources = self.has_sources();
        let peer = finding.destination_ip;
        let mut decisions = BTreeMap::new();
        let mut lookups = 0;
        for ip in iocs.addresses {
            if !sources && Some(ip) != peer {
                continue;
            }
            let decision = if let Some(allowed) = self.allowed(ip) {
                allowed
            } else if !sources {
                continue;
            } else if let Some((name, _)) = self.feeds.iter().find(|(_, feed)| feed.get().contains(ip)) {
                Decision { verdict: Verdict::Malicious, source: format!("feed:{name}"), score: None, note: None }
            } else if let Some(client) = &self.abuseipdb {
                lookups += 1;
                if lookups > MAX_LOOKUPS {
                    Decision {
                        verdict: Verdict::Unknown,
                        source: "abuseipdb".into(),
                        score: None,
                        note: Some(format!("not looked up: over {MAX_LOOKUPS} lookups for one finding")),
                    }
                } else {
                    client.check(ip).await
                }
            } else {
                Decision {
                    verdict: Verdict::Clean,
                    source: "feeds".into(),
                    score: None,
                    note: Some("in no feed".into()),
                }
            };
            decisions.insert(ip, decision);
        }
        let peers = if sources {
            Some(decisions.iter().filter(|(_, d)| d.verdict == Verdict::Malicious).map(|(ip, _)| *ip).collect())
        } else {
            let hidden = peer.and_then(|ip| decisions.get(&ip)).is_some_and(|d| d.verdict == Verdict::Allowed);
            hidden.then(Vec::new)
        };
        Assessment { evidence: Arc::new(Evidence { decisions, domains: iocs.domains }), peers }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qualys::wire::to_finding;
    use serde_json::json;

    fn finding(peer: &str, message: &str) -> Finding {
        to_finding(&json!({"uuid": "f", "threatCategory": "Reverse_Shell", "destinationIp": peer,
            "eventMessage": message}))
        .unwrap()
    }

    fn judge(feeds: &[PathBuf], allow: &[&str]) -> Judge {
        let mut protected = Protected::baseline();
        protected.address("198.51.100.1".parse().unwrap(), "node node-1 (ExternalIP)");
        let allow: Vec<ipnet::IpNet> = allow.iter().map(|a| crate::guardrails::parse_ip(a).unwrap()).collect();
        Judge::new(&allow, None, feeds, None, Arc::new(RwLock::new(protected))).unwrap()
    }

    #[test]
    fn without_sources_the_peer_stays_unless_allowed_or_the_clusters() {
        let judge = judge(&[], &["203.0.113.0/24"]);
        let today = block_on(judge.assess(&finding("192.0.2.9", "also 8.8.8.8")));
        assert_eq!(today.peers, None);
        assert!(today.evidence.decisions.is_empty());
        let allowed = block_on(judge.assess(&finding("203.0.113.9", "")));
        assert_eq!(allowed.peers, Some(vec![]));
        assert_eq!(allowed.evidence.decisions.values().next().unwrap().source, "allowlist");
        let node = block_on(judge.assess(&finding("198.51.100.1", "")));
        assert_eq!(node.peers, Some(vec![]));
        assert_eq!(node.evidence.decisions.values().next().unwrap().note.as_deref(), Some("node node-1 (ExternalIP)"));
    }

    #[test]
    fn with_a_feed_only_listed_addresses_become_peers_and_the_allowlist_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("drop.txt");
        std::fs::write(&path, "192.0.2.0/24\n203.0.113.9\n").unwrap();
        let judge = judge(std::slice::from_ref(&path), &["203.0.113.9"]);
        let assessed = block_on(judge.assess(&finding("8.8.8.8", "c2 at 192.0.2.50:4444 and 203.0.113.9")));
        assert_eq!(assessed.peers, Some(vec!["192.0.2.50".parse().unwrap()]));
        let decisions = &assessed.evidence.decisions;
        assert_eq!(decisions[&"192.0.2.50".parse().unwrap()].source, "feed:drop.txt");
        assert_eq!(decisions[&"8.8.8.8".parse().unwrap()].verdict, Verdict::Clean);
        assert_eq!(decisions[&"203.0.113.9".parse().unwrap()].verdict, Verdict::Allowed);
        let f = finding("8.8.8.8", "");
        let views = assessed.views(&f);
        assert_eq!(views.len(), 1);
        assert_eq!(views[0].destination_ip, Some("192.0.2.50".parse().unwrap()));
        let imds = finding("169.254.169.254", "");
        let views = Assessment { peers: Some(vec![]), ..Assessment::default() }.views(&imds);
        assert_eq!(views[0].destination_ip, imds.destination_ip, "a private peer always stays");
    }

    /// Runs a future that does no I/O to completion.
    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(future)
    }
}
