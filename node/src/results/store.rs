//! The local results store: the directory where `bfgg run` keeps each
//! run's results (`<data dir>/runs/<UTC stamp>-<scenario>/`). Listing it
//! (newest first), reading a run's summary, resolving a run given by path
//! or by name, and deleting a run (only inside the store). Used by
//! `bfgg runs` and by the cockpit's Runs panel.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use bfgg_protocol::summary::RunSummary;

use super::upload::{self, UploadStatus};

/// The store's directory: where [`super::default_dir`] puts runs.
pub fn default_store() -> anyhow::Result<PathBuf> {
    let dirs = directories::ProjectDirs::from("", "", "bfgg")
        .context("cannot find a home directory for the results store")?;
    Ok(dirs.data_dir().join("runs"))
}

/// One run of the store.
#[derive(Debug, Clone)]
pub struct StoredRun {
    /// Its directory.
    pub dir: PathBuf,
    /// Its name (`<stamp>-<scenario>`).
    pub name: String,
    /// Its summary, when readable (a run killed before the end has none).
    pub summary: Option<RunSummary>,
    /// How its upload went, if it was uploaded.
    pub upload: Option<UploadStatus>,
    /// The scenario copy inside it, for re-runs.
    pub scenario: Option<PathBuf>,
}

/// The runs of `store`, newest first (names start with a UTC stamp), at
/// most `limit`. A missing store is empty.
pub fn list(store: &Path, limit: usize) -> Vec<StoredRun> {
    let Ok(entries) = std::fs::read_dir(store) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.reverse();
    dirs.truncate(limit);
    dirs.into_iter().map(|dir| stored(&dir)).collect()
}

fn stored(dir: &Path) -> StoredRun {
    StoredRun {
        name: dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        summary: read_summary(dir).ok(),
        upload: upload::status_of(dir),
        scenario: Some(dir.join("scenario.toml")).filter(|p| p.is_file()),
        dir: dir.to_path_buf(),
    }
}

/// A run's `summary.json`.
pub fn read_summary(dir: &Path) -> anyhow::Result<RunSummary> {
    let path = dir.join("summary.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a run summary", path.display()))
}

/// A run given as a results directory (any path holding a `summary.json`)
/// or by its name in `store`.
pub fn resolve(store: &Path, run: &str) -> anyhow::Result<StoredRun> {
    let path = PathBuf::from(run);
    if path.join("summary.json").is_file() {
        return Ok(stored(&path));
    }
    let named = store.join(run);
    if !run.contains('/') && named.join("summary.json").is_file() {
        return Ok(stored(&named));
    }
    anyhow::bail!(
        "{run} is neither a results directory nor a run in {} (see `bfgg runs list`)",
        store.display()
    )
}

/// Deletes a run's directory, only if it is directly inside `store`.
pub fn delete(store: &Path, dir: &Path) -> anyhow::Result<()> {
    let store = store
        .canonicalize()
        .with_context(|| format!("no results store at {}", store.display()))?;
    let target = dir
        .canonicalize()
        .with_context(|| format!("no run at {}", dir.display()))?;
    if target.parent() != Some(store.as_path()) {
        anyhow::bail!(
            "{} is not a run of the results store {}",
            dir.display(),
            store.display()
        );
    }
    std::fs::remove_dir_all(&target).with_context(|| format!("deleting {}", target.display()))
}

#[cfg(test)]
mod tests;
