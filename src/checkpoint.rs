//! Where the last run stopped, so a scheduled run neither misses findings nor
//! processes one twice.
//!
//! The mark is the latest detection time among the findings a run has
//! written, plus the ids of every finding detected within the overlap before
//! it. The next run fetches from `mark - overlap` (findings are sometimes
//! indexed late) and skips the ids it already has. The mark only advances
//! after the run's policies were written, so a run killed before that simply
//! does its findings again.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::atomic::{self, Access};

/// The high-water mark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Checkpoint {
    /// Format version of this record.
    pub version: u32,
    /// Latest detection time processed.
    pub mark: DateTime<Utc>,
    /// Ids processed whose detection time lies in `[mark - overlap, mark]`.
    pub recent_ids: BTreeSet<String>,
    /// The overlap the ids cover, in seconds.
    pub overlap_seconds: u64,
    /// The cluster whose findings the mark is for (`--cluster-name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
}

/// Why the state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing failed.
    #[error("cannot {action} the state file {path}: {source}")]
    Io {
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a checkpoint.
    #[error("the state file {path} is not a checkpoint ({reason}); move it away to start over")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// A checkpoint made for another cluster: two clusters sharing a checkpoint
/// store must not skip each other's findings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OtherCluster {
    /// It was made for `theirs`, the run is for `ours`.
    #[error(
        "the checkpoint belongs to cluster {theirs}, this run is for cluster {ours}: give each cluster its own \
         checkpoint (--namespace, --state-file); nothing was written"
    )]
    Named {
        /// The checkpoint's cluster.
        theirs: String,
        /// The run's.
        ours: String,
    },
    /// It was made for `theirs`, the run names no cluster.
    #[error(
        "the checkpoint belongs to cluster {theirs}: pass --cluster-name {theirs} (or give this run its own \
         checkpoint with --namespace or --state-file); nothing was written"
    )]
    Unnamed {
        /// The checkpoint's cluster.
        theirs: String,
    },
}

impl Checkpoint {
    /// `Ok` when a run for cluster `ours` may use this checkpoint.
    pub fn admits(&self, ours: Option<&str>) -> Result<(), OtherCluster> {
        match (self.cluster.as_deref(), ours) {
            (Some(theirs), Some(ours)) if theirs != ours => {
                Err(OtherCluster::Named { theirs: theirs.to_string(), ours: ours.to_string() })
            }
            (Some(theirs), None) => Err(OtherCluster::Unnamed { theirs: theirs.to_string() }),
            _ => Ok(()),
        }
    }

    /// Where the next window starts (the overlap is bounded when parsed).
    pub fn window_start(&self) -> DateTime<Utc> {
        earlier(self.mark, Duration::from_secs(self.overlap_seconds))
    }

    /// True when a finding was already processed.
    pub fn seen(&self, id: &str, detected: Option<DateTime<Utc>>) -> bool {
        self.recent_ids.contains(id) || detected.is_some_and(|t| t < self.window_start())
    }

    /// The checkpoint after processing `processed` (id and detection time) on
    /// top of `previous`.
    pub fn advance<'a>(
        previous: Option<&Checkpoint>,
        processed: impl IntoIterator<Item = (&'a str, DateTime<Utc>)>,
        overlap: Duration,
    ) -> Option<Checkpoint> {
        let processed: Vec<(&str, DateTime<Utc>)> = processed.into_iter().collect();
        let newest = processed.iter().map(|(_, t)| *t).max();
        let mark = match (previous.map(|p| p.mark), newest) {
            (Some(a), Some(b)) => a.max(b),
            (a, b) => a.or(b)?,
        };
        let floor = earlier(mark, overlap);
        let mut recent_ids: BTreeSet<String> =
            processed.iter().filter(|(_, t)| *t >= floor).map(|(id, _)| id.to_string()).collect();
        if let Some(previous) = previous
            && previous.mark >= floor
        {
            // Ids of the previous overlap that still fall in the new one.
            recent_ids.extend(previous.recent_ids.iter().cloned());
        }
        let cluster = previous.and_then(|p| p.cluster.clone());
        Some(Checkpoint { version: 1, mark, recent_ids, overlap_seconds: overlap.as_secs(), cluster })
    }

    /// Parses a stored checkpoint; `origin` names where it came from.
    pub fn parse(text: &str, origin: &Path) -> Result<Checkpoint, CheckpointError> {
        let corrupt = |reason: String| CheckpointError::Corrupt { path: origin.into(), reason };
        let checkpoint: Checkpoint = serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
        if checkpoint.overlap_seconds > crate::duration::MAX_SPAN.as_secs() {
            return Err(corrupt(format!("overlapSeconds {} is longer than ten years", checkpoint.overlap_seconds)));
        }
        Ok(checkpoint)
    }

    /// The checkpoint as stored.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    /// Reads a state file; a missing file is no checkpoint.
    pub fn load(path: &Path) -> Result<Option<Checkpoint>, CheckpointError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CheckpointError::Io { action: "read", path: path.into(), source }),
        };
        Checkpoint::parse(&text, path).map(Some)
    }

    /// Writes a state file atomically (temporary file, then rename).
    pub fn store(&self, path: &Path) -> Result<(), CheckpointError> {
        atomic::write(path, self.to_json().as_bytes(), Access::Shared).map_err(|source| CheckpointError::Io {
            action: "write",
            path: path.into(),
            source,
        })
    }
}

/// `at` moved back by `span`, or the earliest time there is.
fn earlier(at: DateTime<Utc>, span: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(span)
        .ok()
        .and_then(|span| at.checked_sub_signed(span))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_serves_its_own_cluster_only() {
        let mut checkpoint = Checkpoint::advance(None, [("a", Utc::now())], Duration::ZERO).unwrap();
        assert_eq!(checkpoint.admits(None), Ok(()), "no cluster recorded, any run");
        checkpoint.cluster = Some("prod".into());
        assert_eq!(checkpoint.admits(Some("prod")), Ok(()));
        assert!(matches!(checkpoint.admits(Some("staging")), Err(OtherCluster::Named { .. })));
        let unnamed = checkpoint.admits(None).unwrap_err();
        assert!(unnamed.to_string().contains("pass --cluster-name prod"), "{unnamed}");
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn the_mark_moves_forward_and_keeps_the_overlap_ids() {
        let overlap = Duration::from_secs(600);
        let first =
            Checkpoint::advance(None, [("a", at("2026-01-01T10:00:00Z")), ("b", at("2026-01-01T10:55:00Z"))], overlap)
                .unwrap();
        assert_eq!(first.mark, at("2026-01-01T10:55:00Z"));
        assert_eq!(first.recent_ids.iter().collect::<Vec<_>>(), ["b"]);
        assert!(first.seen("b", Some(at("2026-01-01T10:55:00Z"))));
        assert!(first.seen("old", Some(at("2026-01-01T10:00:00Z"))), "before the window");
        assert!(!first.seen("c", Some(at("2026-01-01T10:50:00Z"))), "late arrival inside the overlap");
        let second = Checkpoint::advance(Some(&first), [("c", at("2026-01-01T10:50:00Z"))], overlap).unwrap();
        assert_eq!(second.mark, first.mark, "an older finding does not move the mark back");
        assert_eq!(second.recent_ids.iter().collect::<Vec<_>>(), ["b", "c"]);
        assert_eq!(Checkpoint::advance(None, [], overlap), None);
    }

    #[test]
    fn state_files_round_trip_and_bad_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        assert_eq!(Checkpoint::load(&path).unwrap(), None);
        let checkpoint =
            Checkpoint::advance(None, [("a", at("2026-01-01T10:00:00Z"))], Duration::from_secs(900)).unwrap();
        checkpoint.store(&path).unwrap();
        assert_eq!(Checkpoint::load(&path).unwrap(), Some(checkpoint));
        std::fs::write(&path, "{}").unwrap();
        assert!(Checkpoint::load(&path).unwrap_err().to_string().contains("is not a checkpoint"));
    }
}
