//! One sync run, from a source of findings to written policies, and the
//! checkpoint that lets the next run pick up where this one stopped.
//!
//! Findings are mapped page by page as they arrive ([`Pipeline`]), so memory
//! stays bounded whatever the window. Nothing is written unless every page
//! was fetched, and the checkpoint only advances after the output was
//! written: a run that fails or is killed half-way leaves the next run to do
//! the same findings again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::checkpoint::{Checkpoint, CheckpointError, OtherCluster};
use crate::cluster::{Cluster, ClusterError};
use crate::finding::{ClusterScope, Finding};
use crate::mapper::Registry;
use crate::pipeline::{Options, Outcome, Pipeline};
use crate::qualys::client::{Client, ClientError, FindingsQuery};
use crate::qualys::records::{self, DocumentError};
use crate::report::Skip;
use crate::reputation::{Assessment, Judge};

/// Where findings come from.
pub enum Source {
    /// A file or stdin, already read.
    Text {
        /// For messages.
        name: String,
        /// The document.
        text: String,
    },
    /// The CDR API.
    Api {
        /// A client with credentials.
        client: Box<Client>,
        /// The query; its start may move back to the checkpoint.
        query: FindingsQuery,
        /// True when the user gave `--start`, which then wins over the checkpoint.
        start_is_explicit: bool,
        /// Findings per page.
        page_size: u64,
        /// Pages after which the gateway is taken to be looping.
        max_pages: u64,
    },
}

/// Why a run stopped without writing anything.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The input document could not be split into records.
    #[error("cannot read findings from {name}: {source}")]
    Document {
        /// Which input.
        name: String,
        /// Why.
        #[source]
        source: DocumentError,
    },
    /// The gateway failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The gateway kept sending pages.
    #[error("the gateway sent more than {0} pages; stopping (raise --max-pages if the window really holds that many)")]
    EndlessPaging(u64),
    /// The checkpoint could not be read or written.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// What the run covered, for the summary.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// First detection time asked for.
    pub start: DateTime<Utc>,
    /// Last detection time asked for.
    pub end: DateTime<Utc>,
}

/// The window asked for, when the user gave none.
pub const DEFAULT_SPAN: Duration = Duration::from_secs(24 * 3600);

/// Why the window asked for holds no time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// The span reaches before the earliest time there is.
    #[error("--since reaches before the start of time")]
    BeforeTime,
    /// The start is not before the end.
    #[error("the window is empty: start {start} is not before end {end}")]
    Empty {
        /// The start.
        start: DateTime<Utc>,
        /// The end.
        end: DateTime<Utc>,
    },
}

impl Window {
    /// The window of `--start`/`--end`/`--since`/`--hours`: it ends at
    /// `end` (else `now`) and starts at `start`, else `since` (else `hours`,
    /// else [`DEFAULT_SPAN`]) before its end.
    pub fn resolve(
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
        since: Option<Duration>,
        hours: Option<u64>,
        now: DateTime<Utc>,
    ) -> Result<Window, WindowError> {
        let end = end.unwrap_or(now);
        let since = since.or(hours.map(|h| Duration::from_secs(h.saturating_mul(3600)))).unwrap_or(DEFAULT_SPAN);
        let start = match start {
            Some(start) => start,
            None => chrono::Duration::from_std(since)
                .ok()
                .and_then(|since| end.checked_sub_signed(since))
                .ok_or(WindowError::BeforeTime)?,
        };
        if start >= end {
            return Err(WindowError::Empty { start, end });
        }
        Ok(Window { start, end })
    }
}

/// Where a run keeps its checkpoint.
pub enum Store<'a> {
    /// A state file (`--state-file`).
    File(PathBuf),
    /// A ConfigMap in the cluster the run applies to.
    ConfigMap {
        /// The cluster.
        cluster: &'a Cluster,
        /// Its namespace.
        namespace: String,
    },
}

/// Why the checkpoint could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The state file could not be read or written.
    #[error(transparent)]
    File(#[from] CheckpointError),
    /// The ConfigMap could not be read or written.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The checkpoint belongs to another cluster.
    #[error(transparent)]
    OtherCluster(#[from] OtherCluster),
}

impl Store<'_> {
    /// Where a run keeps its checkpoint: `state_file` when given; else, for
    /// a run that applies windows of the API, a ConfigMap in `namespace`
    /// (else the cluster's default); else nowhere (a findings file is an
    /// explicit input and needs no mark).
    pub fn choose<'a>(
        state_file: Option<&Path>,
        applying_to: Option<&'a Cluster>,
        from_api: bool,
        namespace: Option<&str>,
    ) -> Option<Store<'a>> {
        if let Some(path) = state_file {
            return Some(Store::File(path.to_path_buf()));
        }
        let cluster = applying_to.filter(|_| from_api)?;
        let namespace = namespace.unwrap_or_else(|| cluster.default_namespace()).to_string();
        Some(Store::ConfigMap { cluster, namespace })
    }

    /// The checkpoint, when there is one, checked to belong to `scope`'s cluster.
    pub async fn load(&self, scope: &ClusterScope) -> Result<Option<Checkpoint>, StoreError> {
        let checkpoint = match self {
            Store::File(path) => Checkpoint::load(path)?,
            Store::ConfigMap { cluster, namespace } => cluster.load_checkpoint(namespace).await?,
        };
        if let Some(checkpoint) = &checkpoint {
            checkpoint.admits(scope.name())?;
        }
        Ok(checkpoint)
    }

    /// Writes `checkpoint`.
    pub async fn save(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        match self {
            Store::File(path) => checkpoint.store(path)?,
            Store::ConfigMap { cluster, namespace } => cluster.store_checkpoint(namespace, checkpoint).await?,
        }
        Ok(())
    }
}

/// A finished fetch-and-map, not yet written.
pub struct Fetched {
    /// The policies and the report.
    pub outcome: Outcome,
    /// The API window, when the source was the API.
    pub window: Option<Window>,
}

/// Records per batch from the file reader to the pipeline.
const BATCH: usize = 256;
/// Batches parsed ahead of the pipeline (bounds the memory of a fast reader).
const BATCHES_IN_FLIGHT: usize = 8;

/// Reports fetch progress: (findings so far, total when known).
pub type Progress<'a> = &'a mut dyn FnMut(u64, Option<u64>);

/// Judges a finding's addresses (with a judge) and hands it to the pipeline.
async fn push(pipeline: &mut Pipeline<'_>, parsed: Result<Finding, Skip>, judge: Option<&Judge>) {
    match parsed {
        Ok(finding) => {
            let assessment = match judge {
                Some(judge) => judge.assess(&finding).await,
                None => Assessment::default(),
            };
            pipeline.push_finding(finding, &assessment);
        }
        Err(skip) => pipeline.push_skip(skip),
    }
}

/// Fetches every finding of `source` and maps it, skipping what `checkpoint`
/// says an earlier run handled; `judge` decides which addresses may be blocked.
pub async fn fetch(
    source: Source,
    registry: &mut Registry,
    options: &Options,
    checkpoint: Option<&Checkpoint>,
    judge: Option<&Judge>,
    progress: Progress<'_>,
) -> Result<Fetched, SyncError> {
    let mut pipeline = Pipeline::new(registry, options.clone()).with_checkpoint(checkpoint.cloned());
    match source {
        Source::Text { name, text } => {
            // The document is read and its records turned into findings on a
            // thread of its own; they arrive in batches: mapping starts at
            // once, runs beside the parsing, and no tree of the whole file is
            // built.
            let (sender, mut batches) = tokio::sync::mpsc::channel::<Vec<Result<Finding, Skip>>>(BATCHES_IN_FLIGHT);
            let reader = std::thread::spawn(move || {
                let mut batch = Vec::with_capacity(BATCH);
                let read = records::stream(&text, |record| {
                    batch.push(crate::pipeline::parse(record));
                    if batch.len() == BATCH {
                        // A closed channel means the run is over; the rest is not wanted.
                        let _ = sender.blocking_send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)));
                    }
                });
                if !batch.is_empty() {
                    let _ = sender.blocking_send(batch);
                }
                read
            });
            let mut done = 0;
            while let Some(batch) = batches.recv().await {
                for parsed in batch {
                    push(&mut pipeline, parsed, judge).await;
                    done += 1;
                }
                progress(done, None);
            }
            let read = reader.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            read.map_err(|source| SyncError::Document { name, source })?;
            Ok(Fetched { outcome: pipeline.finish(), window: None })
        }
        Source::Api { mut client, mut query, start_is_explicit, page_size, max_pages } => {
            if let Some(checkpoint) = checkpoint.filter(|_| !start_is_explicit) {
                query.start = checkpoint.window_start();
            }
            let mut offset = 0;
            for page_number in 0.. {
                if page_number >= max_pages {
                    return Err(SyncError::EndlessPaging(max_pages));
                }
                let page = client.page(&query, offset, page_size).await?;
                let received = page.records.len() as u64;
                tracing::debug!(offset, received, total = ?page.total, "findings page");
                for record in page.records {
                    push(&mut pipeline, crate::pipeline::parse(record), judge).await;
                }
                offset += received;
                progress(offset, page.total);
                if received == 0 || page.total.is_some_and(|total| offset >= total) {
                    break;
                }
            }
            Ok(Fetched { outcome: pipeline.finish(), window: Some(Window { start: query.start, end: query.end }) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_window_ends_now_and_spans_a_day_unless_told() {
        let now = at("2026-12-02T12:00:00Z");
        let day = Window::resolve(None, None, None, None, now).unwrap();
        assert_eq!((day.start, day.end), (at("2026-12-01T12:00:00Z"), now));
        let hours = Window::resolve(None, None, None, Some(2), now).unwrap();
        assert_eq!(hours.start, at("2026-12-02T10:00:00Z"));
        let since = Window::resolve(None, None, Some(Duration::from_secs(60)), Some(2), now).unwrap();
        assert_eq!(since.start, at("2026-12-02T11:59:00Z"), "--since wins over --hours");
        let explicit =
            Window::resolve(Some(at("2026-11-01T00:00:00Z")), Some(at("2026-11-02T00:00:00Z")), None, None, now)
                .unwrap();
        assert_eq!((explicit.start, explicit.end), (at("2026-11-01T00:00:00Z"), at("2026-11-02T00:00:00Z")));
    }

    #[test]
    fn empty_and_impossible_windows_are_refused() {
        let now = at("2026-12-02T12:00:00Z");
        let later = at("2026-12-03T00:00:00Z");
        assert!(matches!(Window::resolve(Some(later), None, None, None, now), Err(WindowError::Empty { .. })));
        assert_eq!(Window::resolve(None, None, None, Some(u64::MAX), now).unwrap_err(), WindowError::BeforeTime);
    }
}
