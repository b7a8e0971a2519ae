//! Bounded caches on a node's disk: builds of Gatling projects
//! (`<cache>/gatling/<hash>/`) and checkouts of commits
//! (`<cache>/git/checkouts/<commit>/`) are kept by last use, at most a
//! given number of each, so a long-lived node's disk does not grow with
//! every project version and commit it has run. An entry is a directory
//! holding its marker file (written when the entry is complete); the
//! marker's modification time is its last use ([`touch`]). Entries without
//! a marker are never touched, but for the leftovers of an interrupted
//! build (`*.tmp-*`) older than an hour.

use std::path::Path;
use std::time::{Duration, SystemTime};

/// How old a leftover temporary directory must be to be removed.
const STALE_TMP: Duration = Duration::from_secs(3600);

/// Marks the entry whose marker is `marker` as used now.
pub(crate) fn touch(marker: &Path) {
    if let Ok(file) = std::fs::File::options().append(true).open(marker) {
        let _ = file.set_modified(SystemTime::now());
    }
}

/// Removes the entries of `root` (directories holding `marker`) but the
/// `keep` used last, and stale temporary directories; returns how many
/// entries went. Errors are skipped: a cache that cannot shrink still
/// works.
pub(crate) fn prune(root: &Path, marker: &str, keep: usize) -> usize {
    let Ok(dir) = std::fs::read_dir(root) else {
        return 0;
    };
    let mut entries = Vec::new();
    for entry in dir.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.contains(".tmp-") {
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE_TMP);
            if stale {
                let _ = std::fs::remove_dir_all(&path);
            }
            continue;
        }
        if let Ok(used) = std::fs::metadata(path.join(marker)).and_then(|m| m.modified()) {
            entries.push((used, path));
        }
    }
    entries.sort_by_key(|e| std::cmp::Reverse(e.0));
    let mut removed = 0;
    for (_, path) in entries.into_iter().skip(keep) {
        if std::fs::remove_dir_all(&path).is_ok() {
            tracing::info!(path = %path.display(), "cache: removed the least recently used entry");
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests;
