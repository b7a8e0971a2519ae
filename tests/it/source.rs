//! Test code from git (`[source]`) end to end, with real git and a local
//! bare repository (`file://`): a native scenario whose data pool lives in
//! the repository, run locally and on two `bfgg node`s. The pool's one row
//! is the status code the requests ask `bfgg target` for, so the target's
//! counts by status say which commit each agent ran. A branch moved between
//! runs is followed (each run resolved once), and a missing revision is
//! refused before the start.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::cluster::{Cluster, wait_output};
use crate::harness::{Target, Workspace, run_with_timeout, skip};

/// `git` in `dir` with a fixed identity; asserts success.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=bfgg", "-c", "user.email=bfgg@127.0.0.1"])
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A bare repository `<ws>/repo.git` and a clone `<ws>/work` whose `main`
/// holds `load/data/codes.csv` with the one row `code`; returns the clone,
/// the bare repository's `file://` URL and the commit.
fn repository(ws: &Workspace, code: u16) -> Option<(PathBuf, String, String)> {
    if Command::new("git").arg("--version").output().is_err() {
        return skip("git is not installed (apt-get install git)");
    }
    let bare = ws.path().join("repo.git");
    let work = ws.path().join("work");
    std::fs::create_dir_all(&bare).expect("mkdir");
    git(
        &bare,
        &["init", "--quiet", "--bare", "--initial-branch=main"],
    );
    std::fs::create_dir_all(&work).expect("mkdir");
    git(&work, &["init", "--quiet", "--initial-branch=main"]);
    let commit = commit_code(&work, code);
    git(
        &work,
        &["remote", "add", "origin", bare.to_str().expect("utf-8")],
    );
    git(&work, &["push", "--quiet", "origin", "main"]);
    Some((work, format!("file://{}", bare.display()), commit))
}

/// Commits `code` as the pool's row in `work`; returns the commit.
fn commit_code(work: &Path, code: u16) -> String {
    let data = work.join("load/data");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::write(data.join("codes.csv"), format!("code\n{code}\n")).expect("csv");
    git(work, &["add", "."]);
    git(work, &["commit", "--quiet", "-m", &format!("code {code}")]);
    git(work, &["rev-parse", "HEAD"])
}

/// The scenario, outside the repository, reading its pool from `load/`.
fn scenario(ws: &Workspace, url: &str, rev: &str, target: &Target) -> PathBuf {
    ws.write(
        "from-git.toml",
        &format!(
            r#"
[scenario]
name = "from-git"
[source]
git = "{url}"
rev = "{rev}"
path = "load"
[target]
base_url = "{}"
[load]
model = "closed"
users = 2
duration = "2s"
[data.codes]
file = "data/codes.csv"
[[request]]
name = "status"
path = "/status/{{{{codes.code}}}}"
check = {{ status = [201, 202] }}
"#,
            target.url
        ),
    )
}

/// The target's response counts by status code, as (code, count).
fn by_status(target: &Target) -> Vec<(String, u64)> {
    target.stats()["by_status"]
        .as_object()
        .expect("by_status")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().expect("count")))
        .collect()
}

#[test]
fn a_local_run_and_check_read_the_scenarios_files_from_the_resolved_commit() {
    let ws = Workspace::new();
    let Some((_work, url, commit)) = repository(&ws, 201) else {
        return;
    };
    let target = Target::start(&[]);
    let file = scenario(&ws, &url, "main", &target);
    // The pool is not beside the scenario: without [source] it would not load.
    assert!(!ws.path().join("data/codes.csv").exists());
    let mut cmd = crate::harness::bfgg(ws.path());
    cmd.arg("check").arg(&file);
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("source: {url} main at {commit}")),
        "{stderr}"
    );
    let (code, summary, stderr) = ws.run(&file, &[]);
    assert_eq!(code, 0, "{stderr}");
    let s = summary.expect("summary");
    let requests = s["total"]["requests"].as_u64().expect("requests");
    assert!(requests > 0, "{s:#}");
    assert_eq!(s["total"]["errors"], 0, "{s:#}");
    assert_eq!(by_status(&target), [("201".to_owned(), requests)]);
}

#[test]
fn two_agents_run_the_commit_resolved_once_and_a_moved_branch_on_the_next_run() {
    let cluster = Cluster::start(2, &[]);
    let Some((work, url, first)) = repository(&cluster.ws, 201) else {
        return;
    };
    let target = Target::start(&[]);
    let file = scenario(&cluster.ws, &url, "main", &target);
    let (code, summary, stderr) =
        wait_output(cluster.run_cluster(&file, &[]), Duration::from_secs(120));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!("source: {url} main at {first}")),
        "{stderr}"
    );
    let s = summary.expect("summary");
    assert_eq!(s["agents"].as_array().expect("agents").len(), 2, "{s:#}");
    let requests = s["total"]["requests"].as_u64().expect("requests");
    // Both agents read the row of the first commit.
    assert_eq!(by_status(&target), [("201".to_owned(), requests)], "{s:#}");
    for node in ["n0", "n1"] {
        let checkout = cluster
            .ws
            .path()
            .join(format!("node-{node}/cache/git/checkouts/{first}"));
        assert!(
            checkout.join("load/data/codes.csv").is_file(),
            "{node} checked out {first}"
        );
    }
    // The branch moves: the next run resolves it again, for every agent.
    let second = commit_code(&work, 202);
    git(&work, &["push", "--quiet", "origin", "main"]);
    let (code, summary, stderr) =
        wait_output(cluster.run_cluster(&file, &[]), Duration::from_secs(120));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!("source: {url} main at {second}")),
        "{stderr}"
    );
    let s = summary.expect("summary");
    let more = s["total"]["requests"].as_u64().expect("requests");
    assert_eq!(
        by_status(&target),
        [("201".to_owned(), requests), ("202".to_owned(), more)],
        "{s:#}"
    );
}

#[test]
fn a_missing_revision_is_refused_before_the_start_naming_it() {
    let cluster = Cluster::start(2, &[]);
    let Some((_work, url, _)) = repository(&cluster.ws, 201) else {
        return;
    };
    let target = Target::start(&[]);
    let file = scenario(&cluster.ws, &url, "no-such-branch", &target);
    let (code, summary, stderr) =
        wait_output(cluster.run_cluster(&file, &[]), Duration::from_secs(120));
    assert_ne!(code, 0, "{summary:?}");
    assert!(
        stderr.contains(&format!("revision `no-such-branch` not found in {url}"))
            && stderr.contains("(it has: main)"),
        "{stderr}"
    );
    assert_eq!(target.stats()["total"], 0, "nothing was sent");
    // Locally too, with a non-zero exit and nothing run.
    let (code, _, stderr) = cluster.ws.run(&file, &[]);
    assert_ne!(code, 0, "{stderr}");
    assert!(
        stderr.contains("revision `no-such-branch` not found"),
        "{stderr}"
    );
    assert_eq!(target.stats()["total"], 0);
}
