//! Resolving and checking out with real git against local repositories
//! (`file://`): branches that move, tags, `HEAD`, abbreviated ids, missing
//! revisions and commits.

use super::*;

/// A work repository with `f.txt` = "v1" committed on `main` and tagged
/// `v1`; returns it and its `file://` URL.
fn repo() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir.path())
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .output()
            .expect("git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["init", "--quiet", "--initial-branch=main"]);
    std::fs::create_dir_all(dir.path().join("sub")).expect("mkdir");
    std::fs::write(dir.path().join("sub/f.txt"), "v1").expect("write");
    run(&["add", "."]);
    run(&["commit", "--quiet", "-m", "one"]);
    run(&["tag", "v1"]);
    let url = format!("file://{}", dir.path().display());
    (dir, url)
}

fn commit(dir: &Path, text: &str) {
    std::fs::write(dir.join("sub/f.txt"), text).expect("write");
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "--quiet",
            "-am",
            text,
        ])
        .output()
        .expect("git");
    assert!(out.status.success());
}

fn source(url: &str, rev: &str) -> GitSource {
    GitSource {
        url: url.to_owned(),
        rev: rev.to_owned(),
        path: "sub".to_owned(),
    }
}

#[tokio::test]
async fn a_resolved_commit_stays_what_it_was_when_the_branch_moves() {
    let (work, url) = repo();
    let cache = tempfile::tempdir().expect("cache");
    let first = resolve(&source(&url, "main"), cache.path())
        .await
        .expect("main");
    assert_eq!(first.len(), 40);
    // The branch moves after the coordinator resolved it...
    commit(work.path(), "v2");
    // ...an agent checking out the resolved commit gets the code as it was.
    let agent_cache = tempfile::tempdir().expect("cache");
    let dir = checkout(&source(&url, "main"), &first, agent_cache.path())
        .await
        .expect("checkout");
    assert_eq!(
        std::fs::read_to_string(dir.join("sub/f.txt")).expect("f"),
        "v1"
    );
    assert!(!dir.join(".git").exists(), "a plain tree");
    // A new resolution follows the branch.
    let second = resolve(&source(&url, "main"), cache.path())
        .await
        .expect("main");
    assert_ne!(first, second);
    let dir2 = checkout(&source(&url, "main"), &second, agent_cache.path())
        .await
        .expect("checkout");
    assert_eq!(
        std::fs::read_to_string(dir2.join("sub/f.txt")).expect("f"),
        "v2"
    );
    // Cached by commit: the first checkout is untouched.
    assert_eq!(
        std::fs::read_to_string(dir.join("sub/f.txt")).expect("f"),
        "v1"
    );
    // Tags, HEAD and abbreviated ids resolve too.
    assert_eq!(
        resolve(&source(&url, "v1"), cache.path())
            .await
            .expect("tag"),
        first
    );
    assert_eq!(
        resolve(&source(&url, "HEAD"), cache.path())
            .await
            .expect("HEAD"),
        second
    );
    assert_eq!(
        resolve(&source(&url, &first[..10]), cache.path())
            .await
            .expect("short id"),
        first
    );
}

#[tokio::test]
async fn a_missing_revision_or_commit_or_repository_is_an_error_naming_it() {
    let (_work, url) = repo();
    let cache = tempfile::tempdir().expect("cache");
    let err = resolve(&source(&url, "no-such-branch"), cache.path())
        .await
        .expect_err("missing");
    let text = err.to_string();
    assert!(matches!(err, SourceError::NoRevision { .. }), "{text}");
    assert!(
        text.contains("revision `no-such-branch` not found in file://")
            && text.contains("main, v1"),
        "{text}"
    );
    let err = checkout(&source(&url, "main"), &"ab".repeat(20), cache.path())
        .await
        .expect_err("no such commit");
    assert!(matches!(err, SourceError::NoCommit { .. }), "{err}");
    let missing = format!("file://{}/nowhere", cache.path().display());
    let err = resolve(&source(&missing, "main"), cache.path())
        .await
        .expect_err("no repository");
    assert!(
        matches!(err, SourceError::Fetch { .. }) && err.to_string().contains("nowhere"),
        "{err}"
    );
}

#[tokio::test]
async fn past_the_checkout_limit_the_least_recently_used_go_and_come_back() {
    let (work, url) = repo();
    let cache = tempfile::tempdir().expect("cache");
    let src = source(&url, "main");
    let mut commits = vec![resolve(&src, cache.path()).await.expect("main")];
    for v in ["v2", "v3"] {
        commit(work.path(), v);
        commits.push(resolve(&src, cache.path()).await.expect("main"));
    }
    let checkouts = cache.path().join("git/checkouts");
    for c in &commits {
        checkout_keeping(&src, c, cache.path(), 2)
            .await
            .expect("checkout");
    }
    // Three commits, two kept: the first went.
    assert!(!checkouts.join(&commits[0]).exists());
    assert!(checkouts.join(&commits[1]).exists() && checkouts.join(&commits[2]).exists());
    // Asked again, it comes back from the mirror (and the next oldest goes).
    let dir = checkout_keeping(&src, &commits[0], cache.path(), 2)
        .await
        .expect("again");
    assert_eq!(
        std::fs::read_to_string(dir.join("sub/f.txt")).expect("f"),
        "v1"
    );
    assert!(!checkouts.join(&commits[1]).exists());
}
