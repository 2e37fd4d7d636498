//! Files that are read again when they change: secrets and tokens mounted
//! from Kubernetes Secrets (which swap a symlink), TLS certificates that
//! cert-manager renews, threat feeds a sidecar refreshes.
//!
//! A [`Watched`] value checks its files' identity (inode, size, mtime) at
//! most once per interval, on use; when they changed it parses them again.
//! A change that does not parse keeps the previous value and says why in
//! the log (never the content: these files hold secrets).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// How often files are checked for a change, at most.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// What identifies one version of a file.
type Stamp = Option<(u64, u64, SystemTime)>;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.ino(), metadata.len(), metadata.modified().ok()?))
}

/// Parses the texts of the watched files, in order.
pub type Parse<T> = Box<dyn Fn(&[String]) -> Result<T, String> + Send + Sync>;

/// A value made from files, kept current.
pub struct Watched<T> {
    paths: Vec<PathBuf>,
    parse: Parse<T>,
    state: Mutex<State<T>>,
}

struct State<T> {
    stamps: Vec<Stamp>,
    checked: Instant,
    value: Arc<T>,
}

/// Why the files could not be used at start.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct WatchError {
    /// The first file named.
    pub path: String,
    /// Why.
    pub reason: String,
}

fn read(paths: &[PathBuf]) -> Result<Vec<String>, WatchError> {
    paths
        .iter()
        .map(|path| {
            std::fs::read_to_string(path)
                .map_err(|e| WatchError { path: path.display().to_string(), reason: format!("cannot read it: {e}") })
        })
        .collect()
}

impl<T> Watched<T> {
    /// Reads and parses `paths`; they must be usable now.
    pub fn load(paths: Vec<PathBuf>, parse: Parse<T>) -> Result<Watched<T>, WatchError> {
        let stamps = paths.iter().map(|p| stamp(p)).collect();
        let texts = read(&paths)?;
        let value = parse(&texts).map_err(|reason| WatchError { path: describe(&paths), reason })?;
        Ok(Watched {
            paths,
            parse,
            state: Mutex::new(State { stamps, checked: Instant::now(), value: Arc::new(value) }),
        })
    }

    /// The current value, parsed again first if a file changed.
    pub fn get(&self) -> Arc<T> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.checked.elapsed() >= CHECK_INTERVAL {
            state.checked = Instant::now();
            let stamps: Vec<Stamp> = self.paths.iter().map(|p| stamp(p)).collect();
            if stamps != state.stamps {
                state.stamps = stamps;
                match read(&self.paths).map_err(|e| e.to_string()).and_then(|texts| (self.parse)(&texts)) {
                    Ok(value) => {
                        tracing::info!(file = %describe(&self.paths), "reloaded");
                        state.value = Arc::new(value);
                    }
                    Err(reason) => {
                        tracing::error!(file = %describe(&self.paths), %reason, "changed but cannot be used; keeping the previous version");
                    }
                }
            }
        }
        Arc::clone(&state.value)
    }
}

fn describe(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_file_is_read_again_and_a_broken_one_is_not_taken() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n");
        std::fs::write(&path, "1").unwrap();
        let parse: Parse<u32> = Box::new(|texts| texts[0].trim().parse().map_err(|_| "not a number".to_string()));
        let watched = Watched::load(vec![path.clone()], parse).unwrap();
        assert_eq!(*watched.get(), 1);
        std::fs::write(&path, "22").unwrap();
        watched.state.lock().unwrap().checked -= CHECK_INTERVAL;
        assert_eq!(*watched.get(), 22);
        std::fs::write(&path, "x").unwrap();
        watched.state.lock().unwrap().checked -= CHECK_INTERVAL;
        assert_eq!(*watched.get(), 22);
        let missing = Watched::<u32>::load(vec![dir.path().join("none")], Box::new(|_| Ok(0)));
        assert!(missing.err().unwrap().reason.contains("cannot read"));
    }
}
