//! Who may talk to the server: webhook signing secrets, API bearer tokens,
//! the replay cache of `webhook-id`s, and the finding ids already handled.
//!
//! Secrets and tokens come from files (re-read when they change, so a
//! rotated Kubernetes Secret takes effect without a restart) and from the
//! environment; never from a flag, which would show in a process listing.
//! Their values never reach a log line or an error message.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::signature::Secret;
use crate::watch::{WatchError, Watched};

/// Environment variable with webhook secrets (space-separated `whsec_…`).
pub const SECRET_ENV: &str = "QUALYS_RESPOND_WEBHOOK_SECRET";
/// Environment variable with API tokens (space-separated).
pub const TOKEN_ENV: &str = "QUALYS_RESPOND_API_TOKEN";

/// Values from an optional file plus the environment.
pub struct Material<T> {
    file: Option<Watched<Vec<T>>>,
    env: Vec<T>,
}

impl<T> Material<T> {
    /// Reads `file` (if any) and the variable `env`, parsing each item with `parse`.
    pub fn load(
        file: Option<PathBuf>,
        env: &str,
        parse: fn(&str) -> Result<Vec<T>, String>,
    ) -> Result<Material<T>, WatchError>
    where
        T: Send + Sync + 'static,
    {
        let from_env = std::env::var(env).unwrap_or_default();
        let env_values = parse(&from_env).map_err(|reason| WatchError { path: format!("${env}"), reason })?;
        let file = file.map(|path| Watched::load(vec![path], Box::new(move |texts| parse(&texts[0])))).transpose()?;
        Ok(Material { file, env: env_values })
    }

    /// True when neither the file nor the environment gave a value.
    pub fn is_empty(&self) -> bool {
        self.env.is_empty() && self.file.as_ref().is_none_or(|f| f.get().is_empty())
    }

    /// Calls `f` with every current value until it returns true.
    pub fn any(&self, mut f: impl FnMut(&T) -> bool) -> bool {
        let from_file = self.file.as_ref().map(Watched::get);
        let file_values = from_file.as_deref().map(Vec::as_slice).unwrap_or_default();
        self.env.iter().chain(file_values).any(&mut f)
    }

    /// Calls `f` with every current value, the environment's first.
    pub fn with_all<R>(&self, f: impl FnOnce(&[&T]) -> R) -> R {
        let from_file = self.file.as_ref().map(Watched::get);
        let all: Vec<&T> = self.env.iter().chain(from_file.as_deref().into_iter().flatten()).collect();
        f(&all)
    }
}

/// Parses webhook secrets.
pub fn parse_secrets(text: &str) -> Result<Vec<Secret>, String> {
    Secret::parse_all(text).map_err(|e| e.to_string())
}

/// Parses bearer tokens: one per line or space-separated, `#` comments;
/// each at least 16 characters. Kept as SHA-256 digests, compared in
/// constant time.
pub fn parse_tokens(text: &str) -> Result<Vec<TokenDigest>, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .flat_map(str::split_whitespace)
        .map(|token| {
            if token.len() < 16 {
                return Err(format!("an API token must have at least 16 characters, one has {}", token.len()));
            }
            Ok(TokenDigest::of(&SecretString::from(token)))
        })
        .collect()
}

/// The digest of an API token.
pub struct TokenDigest([u8; 32]);

impl std::fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenDigest(***)")
    }
}

impl TokenDigest {
    /// The digest of `token`.
    pub fn of(token: &SecretString) -> TokenDigest {
        TokenDigest(Sha256::digest(token.expose_secret().as_bytes()).into())
    }

    /// Constant-time equality.
    pub fn matches(&self, other: &TokenDigest) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
}

/// What the cache says of a verified message id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// New: it is now remembered.
    New,
    /// The same id, timestamp and body again: a replay.
    Replay,
    /// The same id at another timestamp: the sender retrying a message we
    /// accepted before.
    Retry,
}

/// Message ids seen within the tolerance (and a while more).
pub struct ReplayCache {
    keep: Duration,
    capacity: usize,
    inner: Mutex<ReplayInner>,
}

/// 128 bits of SHA-256: what the caches keep of an id or a body (a few
/// dozen bytes an entry, whatever the id's length).
type Key = [u8; 16];

fn key(bytes: &[u8]) -> Key {
    let digest = Sha256::digest(bytes);
    let mut key = [0; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

#[derive(Default)]
struct ReplayInner {
    by_id: HashMap<Key, (i64, Key)>,
    order: VecDeque<(Instant, Key)>,
}

impl ReplayCache {
    /// A cache that keeps ids for `keep` (at least the tolerance), at most `capacity` of them.
    pub fn new(keep: Duration, capacity: usize) -> ReplayCache {
        ReplayCache { keep, capacity, inner: Mutex::new(ReplayInner::default()) }
    }

    /// Records a verified message, or says it was seen.
    pub fn check(&self, id: &str, timestamp: i64, body: &[u8]) -> Seen {
        let (id, digest) = (key(id.as_bytes()), key(body));
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        while let Some((at, _)) = inner.order.front() {
            if now.duration_since(*at) < self.keep && inner.order.len() < self.capacity {
                break;
            }
            if let Some((_, old)) = inner.order.pop_front() {
                inner.by_id.remove(&old);
            }
        }
        match inner.by_id.get(&id) {
            Some((ts, d)) if *ts == timestamp && *d == digest => Seen::Replay,
            Some(_) => Seen::Retry,
            None => {
                inner.by_id.insert(id, (timestamp, digest));
                inner.order.push_back((now, id));
                Seen::New
            }
        }
    }

    /// Forgets `id`: the message was not accepted after all, so the
    /// sender's retry must be processed.
    pub fn forget(&self, id: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.by_id.remove(&key(id.as_bytes()));
    }
}

/// Finding ids handled already (by this replica, or found on the cluster's
/// objects), oldest forgotten first.
pub struct SeenFindings {
    capacity: usize,
    inner: Mutex<(HashSet<Key>, VecDeque<Key>)>,
}

impl SeenFindings {
    /// Remembers up to `capacity` ids.
    pub fn new(capacity: usize) -> SeenFindings {
        SeenFindings { capacity, inner: Mutex::new((HashSet::new(), VecDeque::new())) }
    }

    /// Records `id`; false when it was known.
    pub fn insert(&self, id: &str) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (set, order) = &mut *inner;
        let id = key(id.as_bytes());
        if set.contains(&id) {
            return false;
        }
        if order.len() >= self.capacity
            && let Some(old) = order.pop_front()
        {
            set.remove(&old);
        }
        set.insert(id);
        order.push_back(id);
        true
    }

    /// Forgets ids whose findings were not applied after all.
    pub fn forget<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for id in ids {
            inner.0.remove(&key(id.as_bytes()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_and_retries_are_told_apart() {
        let cache = ReplayCache::new(Duration::from_secs(600), 100);
        assert_eq!(cache.check("m1", 10, b"x"), Seen::New);
        assert_eq!(cache.check("m1", 10, b"x"), Seen::Replay);
        assert_eq!(cache.check("m1", 11, b"x"), Seen::Retry);
        cache.forget("m1");
        assert_eq!(cache.check("m1", 11, b"x"), Seen::New);
        let small = ReplayCache::new(Duration::from_secs(600), 2);
        for id in ["a", "b", "c"] {
            assert_eq!(small.check(id, 1, b""), Seen::New);
        }
        assert_eq!(small.check("a", 1, b""), Seen::New, "the oldest id went at capacity");
    }

    #[test]
    fn tokens_are_compared_by_digest_and_must_be_long() {
        let tokens = parse_tokens("# ops\ntoken-0123456789abcdef\n\nsecond-token-0123456789\n").unwrap();
        assert_eq!(tokens.len(), 2);
        assert!(tokens[1].matches(&TokenDigest::of(&SecretString::from("second-token-0123456789"))));
        assert!(!tokens[0].matches(&TokenDigest::of(&SecretString::from("token-0123456789abcdeX"))));
        assert!(parse_tokens("short").unwrap_err().contains("at least 16"));
    }

    #[test]
    fn seen_findings_forget_the_oldest() {
        let seen = SeenFindings::new(2);
        assert!(seen.insert("a") && seen.insert("b") && !seen.insert("a"));
        assert!(seen.insert("c"));
        assert!(seen.insert("a"));
        seen.forget(["a"]);
        assert!(seen.insert("a"));
    }
}
