//! The flags that judge a finding's addresses, shared by `serve` and `sync`.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use secrecy::SecretString;

use crate::guardrails::{Protected, parse_ip};
use crate::reputation::Judge;
use crate::reputation::abuseipdb::{AbuseIpDb, DEFAULT_URL, Settings};
use crate::watch::Watched;

/// Environment variable with the AbuseIPDB API key.
const ABUSEIPDB_ENV: &str = "ABUSEIPDB_API_KEY";

/// Where reputation comes from. With none of --feed or an AbuseIPDB key, a
/// finding's peer address is blocked as the mappers decide (the default
/// mapper blocks public peers of miners and reverse shells); with one, only
/// an address a source calls malicious is.
#[derive(Debug, Clone, Args)]
pub struct ReputationArgs {
    /// A threat feed: one IP or CIDR a line (FireHOL, Emerging Threats,
    /// abuse.ch), Spamhaus DROP JSON lines, or Feodo Tracker CSV; re-read when
    /// it changes. Repeatable.
    #[arg(long = "feed", value_name = "FILE", help_heading = "Reputation")]
    feeds: Vec<PathBuf>,

    /// An address or range that is never blocked, whatever a source says; repeatable.
    #[arg(long = "allow", value_name = "CIDR", help_heading = "Reputation")]
    allow: Vec<String>,

    /// A file of addresses or ranges that are never blocked (the feed format); re-read when it changes.
    #[arg(long, value_name = "FILE", help_heading = "Reputation")]
    allow_file: Option<PathBuf>,

    /// File holding an AbuseIPDB API key (or set ABUSEIPDB_API_KEY); turns AbuseIPDB checks on.
    #[arg(long, value_name = "FILE", help_heading = "Reputation")]
    abuseipdb_key_file: Option<PathBuf>,

    /// AbuseIPDB base URL.
    #[arg(long, value_name = "URL", default_value = DEFAULT_URL, help_heading = "Reputation")]
    abuseipdb_url: String,

    /// An AbuseIPDB confidence score at or above this is malicious.
    #[arg(long, value_name = "0-100", default_value_t = 75, value_parser = clap::value_parser!(u8).range(1..=100),
        help_heading = "Reputation")]
    abuseipdb_threshold: u8,

    /// Reports older than this many days do not count.
    #[arg(long, value_name = "DAYS", default_value_t = 30, value_parser = clap::value_parser!(u16).range(1..=365),
        help_heading = "Reputation")]
    abuseipdb_max_age: u16,

    /// Timeout of one AbuseIPDB lookup (an unanswered address is unknown, not blocked).
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::wait, default_value = "2s",
        help_heading = "Reputation")]
    abuseipdb_timeout: Duration,

    /// How long an AbuseIPDB verdict is reused.
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::span, default_value = "6h",
        help_heading = "Reputation")]
    reputation_cache: Duration,
}

impl ReputationArgs {
    /// True when any source or allowlist is given.
    pub fn configured(&self) -> bool {
        !self.feeds.is_empty()
            || !self.allow.is_empty()
            || self.allow_file.is_some()
            || self.abuseipdb_key_file.is_some()
            || std::env::var(ABUSEIPDB_ENV).is_ok_and(|k| !k.trim().is_empty())
    }

    /// The judge these flags describe; `protected` holds the cluster's ranges.
    pub fn judge(&self, protected: Arc<RwLock<Protected>>) -> anyhow::Result<Judge> {
        let allow = self.allow.iter().map(|a| parse_ip(a)).collect::<Result<Vec<_>, _>>()?;
        let key: Option<Box<dyn Fn() -> SecretString + Send + Sync>> = match &self.abuseipdb_key_file {
            Some(path) => {
                let watched = Watched::load(
                    vec![path.clone()],
                    Box::new(|texts| {
                        let key = texts[0].trim();
                        if key.is_empty() { Err("the file is empty".to_string()) } else { Ok(SecretString::from(key)) }
                    }),
                )
                .context("cannot read the AbuseIPDB key")?;
                Some(Box::new(move || (*watched.get()).clone()))
            }
            None => std::env::var(ABUSEIPDB_ENV).ok().filter(|k| !k.trim().is_empty()).map(
                |k| -> Box<dyn Fn() -> SecretString + Send + Sync> {
                    let key = SecretString::from(k.trim());
                    Box::new(move || key.clone())
                },
            ),
        };
        let abuseipdb = key
            .map(|key| {
                let settings = Settings {
                    url: self.abuseipdb_url.clone(),
                    threshold: self.abuseipdb_threshold,
                    max_age_days: self.abuseipdb_max_age,
                    cache_ttl: self.reputation_cache,
                    timeout: self.abuseipdb_timeout,
                };
                AbuseIpDb::new(settings, key).map_err(anyhow::Error::msg)
            })
            .transpose()?;
        Judge::new(&allow, self.allow_file.clone(), &self.feeds, abuseipdb, protected)
            .context("cannot load the reputation sources")
    }
}
