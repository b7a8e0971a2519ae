//! Test code from git (`[source]` of a scenario): resolving a revision to a
//! commit once, and checking a commit out on each node, cached by commit.
//!
//! A node keeps a bare mirror per repository URL under
//! `<cache>/git/<url hash>.git` (fetched with the node's own credentials:
//! its ssh agent, its git credential helper; nothing is shipped) and one
//! checkout per commit under `<cache>/git/checkouts/<commit>/`, made with
//! `git archive` (no `.git` inside, never modified after; the
//! [`KEEP_CHECKOUTS`] used last are kept). A checkout is
//! made in a temporary directory and renamed into place, so a reader never
//! sees half of one. Git runs without a terminal (`GIT_TERMINAL_PROMPT=0`):
//! a repository that needs a password the node lacks fails, it never hangs.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use tokio::process::Command;

use crate::scenario::GitSource;

/// Longest a fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(600);

/// Marks a finished checkout.
const DONE: &str = ".bfgg-checkout";
/// Checkouts kept per node, by last use (see `crate::cache`).
pub const KEEP_CHECKOUTS: usize = 20;

/// Why the code could not be had; the message names the repository.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// No `git` here.
    #[error("cannot run git: {0} (install git, e.g. apt-get install git)")]
    NoGit(String),
    /// The repository could not be fetched.
    #[error("cannot fetch {url}: {detail}")]
    Fetch {
        /// The repository.
        url: String,
        /// Git's words.
        detail: String,
    },
    /// The revision names nothing in the repository.
    #[error("revision `{rev}` not found in {url}{}", known_list(.known))]
    NoRevision {
        /// The repository.
        url: String,
        /// What the scenario asked for.
        rev: String,
        /// Some branches and tags it has.
        known: Vec<String>,
    },
    /// The commit of the plan is not in the repository this node fetched.
    #[error("commit {commit} is not in {url} as this node fetched it")]
    NoCommit {
        /// The repository.
        url: String,
        /// The commit asked for.
        commit: String,
    },
    /// Anything else.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        " (it has no branches or tags)".to_owned()
    } else {
        format!(" (it has: {})", known.join(", "))
    }
}

/// One lock per process around mirror updates: two runs fetching the same
/// repository at once would trip over git's ref locks.
static MIRRORS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The commit `source.rev` names in `source.url` now (fetched into this
/// node's mirror): a branch or tag, `HEAD`, or a commit id (full or
/// abbreviated).
pub async fn resolve(source: &GitSource, cache: &Path) -> Result<String, SourceError> {
    let _held = MIRRORS.lock().await;
    let mirror = mirror(source, cache).await?;
    fetch(&mirror, &source.url).await?;
    let candidates: Vec<String> = if source.rev == "HEAD" {
        vec!["refs/bfgg/HEAD".to_owned()]
    } else {
        vec![
            format!("refs/heads/{}", source.rev),
            format!("refs/tags/{}", source.rev),
            source.rev.clone(),
        ]
    };
    for candidate in candidates {
        if let Some(commit) = commit_of(&mirror, &candidate).await? {
            return Ok(commit);
        }
    }
    Err(SourceError::NoRevision {
        url: source.url.clone(),
        rev: source.rev.clone(),
        known: known_refs(&mirror).await,
    })
}

/// The directory holding `commit` of `source.url` checked out on this node
/// (fetched and made if not cached): relative paths of the scenario start
/// from its `source.path`.
pub async fn checkout(
    source: &GitSource,
    commit: &str,
    cache: &Path,
) -> Result<PathBuf, SourceError> {
    checkout_keeping(source, commit, cache, KEEP_CHECKOUTS).await
}

/// [`checkout`], keeping at most `keep` checkouts (the least recently used
/// go when a new one is made).
pub(crate) async fn checkout_keeping(
    source: &GitSource,
    commit: &str,
    cache: &Path,
    keep: usize,
) -> Result<PathBuf, SourceError> {
    if commit.len() != 40 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(anyhow::anyhow!("`{commit}` is not a commit id").into());
    }
    let root = cache.join("git").join("checkouts");
    let dir = root.join(commit);
    if dir.join(DONE).is_file() {
        crate::cache::touch(&dir.join(DONE));
        return Ok(dir);
    }
    let _held = MIRRORS.lock().await;
    if dir.join(DONE).is_file() {
        crate::cache::touch(&dir.join(DONE));
        return Ok(dir);
    }
    let mirror = mirror(source, cache).await?;
    if commit_of(&mirror, commit).await?.is_none() {
        fetch(&mirror, &source.url).await?;
        if commit_of(&mirror, commit).await?.is_none() {
            // Not on any branch or tag: ask for it by id (servers that allow it).
            let _ = git(&mirror, &["fetch", "--quiet", &source.url, commit]).await;
            if commit_of(&mirror, commit).await?.is_none() {
                return Err(SourceError::NoCommit {
                    url: source.url.clone(),
                    commit: commit.to_owned(),
                });
            }
        }
    }
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let tmp = root.join(format!("{commit}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let made = extract(&mirror, commit, &tmp).await;
    if let Err(e) = made {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e.into());
    }
    std::fs::write(tmp.join(DONE), commit).context("marking the checkout done")?;
    if std::fs::rename(&tmp, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
        if !dir.join(DONE).is_file() {
            return Err(anyhow::anyhow!("could not keep the checkout in {}", dir.display()).into());
        }
    }
    crate::cache::prune(&root, DONE, keep.max(1));
    Ok(dir)
}

/// `commit`'s files into `to`: `git archive | tar -x`.
async fn extract(mirror: &Path, commit: &str, to: &Path) -> anyhow::Result<()> {
    let mut archive = std::process::Command::new("git");
    archive
        .arg("--git-dir")
        .arg(mirror)
        .args(["archive", "--format=tar", commit])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut archive = archive.spawn().context("running git archive")?;
    let tar_in = archive.stdout.take().context("git archive's output")?;
    let tar = std::process::Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(to)
        .stdin(Stdio::from(tar_in))
        .stderr(Stdio::piped())
        .output();
    let archived = archive.wait_with_output().context("running git archive")?;
    let tar = tar.context("running tar")?;
    anyhow::ensure!(
        archived.status.success(),
        "git archive {commit}: {}",
        String::from_utf8_lossy(&archived.stderr).trim()
    );
    anyhow::ensure!(
        tar.status.success(),
        "extracting {commit}: {}",
        String::from_utf8_lossy(&tar.stderr).trim()
    );
    Ok(())
}

/// The bare mirror of `source.url` (made empty if new).
async fn mirror(source: &GitSource, cache: &Path) -> Result<PathBuf, SourceError> {
    let hash = crate::cluster::bundle::sha256_hex(source.url.as_bytes());
    let dir = cache.join("git").join(format!("{}.git", &hash[..16]));
    if !dir.join("HEAD").is_file() {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        git(&dir, &["init", "--quiet", "--bare"])
            .await?
            .map_err(|detail| anyhow::anyhow!("git init {}: {detail}", dir.display()))?;
    }
    Ok(dir)
}

/// Fetches every branch and tag and the default branch (as `refs/bfgg/HEAD`).
async fn fetch(mirror: &Path, url: &str) -> Result<(), SourceError> {
    let args = [
        "fetch",
        "--quiet",
        "--prune",
        "--force",
        "--no-tags",
        url,
        "+refs/heads/*:refs/heads/*",
        "+refs/tags/*:refs/tags/*",
        "+HEAD:refs/bfgg/HEAD",
    ];
    let out = tokio::time::timeout(FETCH_TIMEOUT, git(mirror, &args))
        .await
        .map_err(|_| SourceError::Fetch {
            url: url.to_owned(),
            detail: format!("no answer within {} s", FETCH_TIMEOUT.as_secs()),
        })??;
    out.map(drop).map_err(|detail| SourceError::Fetch {
        url: url.to_owned(),
        detail,
    })
}

/// The commit `rev` names in `mirror`, if any.
async fn commit_of(mirror: &Path, rev: &str) -> Result<Option<String>, SourceError> {
    let spec = format!("{rev}^{{commit}}");
    Ok(git(
        mirror,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            &spec,
        ],
    )
    .await?
    .ok()
    .map(|s| s.trim().to_owned())
    .filter(|s| s.len() == 40))
}

/// Up to 10 branch and tag names of `mirror`, for an error message.
async fn known_refs(mirror: &Path) -> Vec<String> {
    let out = git(
        mirror,
        &[
            "for-each-ref",
            "--count=10",
            "--format=%(refname:short)",
            "refs/heads",
            "refs/tags",
        ],
    )
    .await;
    match out {
        Ok(Ok(text)) => text.lines().map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

/// `git --git-dir <mirror> <args>`: its stdout, or its stderr when it
/// fails; `Err` when git cannot run at all.
async fn git(mirror: &Path, args: &[&str]) -> Result<Result<String, String>, SourceError> {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(mirror)
        // `ext::` runs commands: never from a scenario.
        .args(["-c", "protocol.ext.allow=never"])
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| SourceError::NoGit(e.to_string()))?;
    if out.status.success() {
        Ok(Ok(String::from_utf8_lossy(&out.stdout).into_owned()))
    } else {
        let text = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        Ok(Err(if text.is_empty() {
            out.status.to_string()
        } else {
            text
        }))
    }
}

#[cfg(test)]
mod tests;
