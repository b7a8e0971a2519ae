//! The Locust engine end to end, with real Locust from PyPI (installed into
//! the cached venv under `target/` on first use) against `bfgg target` on
//! 127.0.0.1: bfgg's counts equal Locust's own, failures keep their
//! messages, a stop keeps what was measured and leaves no Locust process,
//! step load is followed, and a broken locustfile or a Python without
//! Locust is refused before the start with the reason; across two `bfgg
//! node` processes, the merged totals equal both Locusts' own, and an agent
//! without Locust is named in the refusal.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cluster::{Cluster, Node, agents_sum, wait_for_run_id, wait_output};
use crate::harness::{
    Target, Workspace, bfgg, processes_mentioning, python_venv, run_with_timeout,
};

const LOCUST: &str = "locust==2.47.0";

fn python() -> Option<PathBuf> {
    python_venv(&[LOCUST])
}

/// A scenario for `locustfile.py` in the same workspace.
fn scenario(ws: &Workspace, url: &str, load: &str, locust_extra: &str) -> PathBuf {
    ws.write(
        "locust.toml",
        &format!(
            r#"
[scenario]
name = "locust-it"
engine = "locust"
[target]
base_url = "{url}"
[locust]
file = "locustfile.py"
{locust_extra}
[load]
model = "closed"
{load}
graceful_stop = "2s"
"#
        ),
    )
}

/// Locust's own final statistics (`--json-file`) by request name:
/// (requests, failures).
fn locust_counts(out: &Path) -> Vec<(String, u64, u64)> {
    let text = std::fs::read_to_string(out.join("locust/locust-stats.json"))
        .expect("Locust's locust-stats.json in the results");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    let mut rows: Vec<(String, u64, u64)> = v
        .as_array()
        .expect("a list of stats")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().expect("name").to_owned(),
                s["num_requests"].as_u64().expect("num_requests"),
                s["num_failures"].as_u64().expect("num_failures"),
            )
        })
        .collect();
    rows.sort();
    rows
}

/// The `active` column (users running) of the `*` rows of a results
/// directory's `timeseries.csv`, second by second.
fn active_per_second(dir: &Path) -> Vec<u64> {
    let ts = std::fs::read_to_string(dir.join("timeseries.csv")).expect("timeseries");
    ts.lines()
        .skip(1)
        .filter(|l| l.split(',').nth(1) == Some("*"))
        .map(|l| {
            l.split(',')
                .nth(11)
                .expect("active")
                .parse()
                .expect("number")
        })
        .collect()
}

/// bfgg's summary by request name: (requests, errors).
fn bfgg_counts(s: &serde_json::Value) -> Vec<(String, u64, u64)> {
    let mut rows: Vec<(String, u64, u64)> = s["by_name"]
        .as_object()
        .expect("by_name")
        .iter()
        .map(|(name, v)| {
            (
                name.clone(),
                v["requests"].as_u64().expect("requests"),
                v["errors"].as_u64().expect("errors"),
            )
        })
        .collect();
    rows.sort();
    rows
}

const MIXED: &str = r#"
from locust import HttpUser, constant, task

class Mixed(HttpUser):
    wait_time = constant(0.05)

    @task(3)
    def home(self):
        # bfgg target answers some requests 503: Locust fails those itself.
        self.client.get("/", name="home")

    @task
    def checked(self):
        with self.client.get("/json", name="checked", catch_response=True) as r:
            if r.status_code == 200 and int(r.json()["id"]) % 2 == 0:
                r.failure("odd one out")
            elif r.status_code == 200:
                r.success()
"#;

#[test]
fn a_locust_run_counts_exactly_what_locust_counted_with_its_failures() {
    let Some(py) = python() else { return };
    let target = Target::start(&["--error-rate", "0.2"]);
    let ws = Workspace::new();
    ws.write("locustfile.py", MIXED);
    let file = scenario(
        &ws,
        &target.url,
        "users = 4\nspawn_rate = 100\nduration = \"5s\"",
        "processes = 2",
    );
    let (code, summary, stderr) = ws.run(&file, &["--python", py.to_str().expect("utf-8")]);
    let s = summary.unwrap_or_else(|| panic!("no summary (exit {code}): {stderr}"));
    assert_eq!(s["engine"], "locust", "{s:#}");
    let ours = bfgg_counts(&s);
    let theirs = locust_counts(&ws.out_dir());
    assert_eq!(ours, theirs, "bfgg vs Locust's own totals");
    let total: u64 = ours.iter().map(|r| r.1).sum();
    assert!(total > 50, "too little load to compare: {ours:?}");
    // Failures carry Locust's message: its own for the 503s, ours for checks.
    let groups = |name: &str| -> Vec<String> {
        s["by_name"][name]["error_groups"]
            .as_array()
            .expect("error_groups")
            .iter()
            .map(|g| g["message"].as_str().expect("message").to_owned())
            .collect()
    };
    assert!(
        groups("home").iter().any(|m| m.contains("503")),
        "{:?}",
        groups("home")
    );
    assert!(
        groups("checked").iter().any(|m| m == "odd one out"),
        "{:?}",
        groups("checked")
    );
    // Four users in the two worker processes from the first second (both
    // workers are connected before time zero).
    let active = active_per_second(&ws.out_dir());
    assert!(
        active[1..4].iter().all(|&a| a == 4),
        "active users: {active:?}"
    );
}

#[test]
fn step_load_is_followed_user_for_user() {
    let Some(py) = python() else { return };
    let target = Target::start(&[]);
    let ws = Workspace::new();
    ws.write(
        "locustfile.py",
        r#"
from locust import HttpUser, constant, task

class Steady(HttpUser):
    wait_time = constant(0.1)

    @task
    def home(self):
        self.client.get("/", name="home")
"#,
    );
    let file = scenario(
        &ws,
        &target.url,
        "users = 5\nstep_users = 2\nstep_duration = \"3s\"\nspawn_rate = 1000\nduration = \"9s\"",
        "processes = 1",
    );
    let (code, summary, stderr) = ws.run(&file, &["--python", py.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{stderr}");
    let s = summary.expect("summary");
    let active = active_per_second(&ws.out_dir());
    // Steps of 2 users every 3 s up to 5: 2, 4, 5 (Locust takes each at its
    // shape tick, once a second, on the step's second).
    assert_eq!(
        &active[0..9],
        &[2, 2, 2, 4, 4, 4, 5, 5, 5],
        "{active:?} {s:#}"
    );
}

#[test]
fn a_broken_locustfile_is_refused_before_the_start_with_the_python_error() {
    let Some(py) = python() else { return };
    let target = Target::start(&[]);
    let ws = Workspace::new();
    ws.write(
        "locustfile.py",
        "from locust import HttpUser, task\nimport no_such_module_anywhere\n",
    );
    let file = scenario(&ws, &target.url, "users = 1\nduration = \"2s\"", "");
    let started = Instant::now();
    let (code, summary, stderr) = ws.run(&file, &["--python", py.to_str().expect("utf-8")]);
    assert_ne!(code, 0, "{stderr}");
    assert!(summary.is_none());
    assert!(
        stderr.contains("locustfile.py does not load in Locust"),
        "{stderr}"
    );
    assert!(
        stderr.contains("No module named 'no_such_module_anywhere'"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(target.stats()["total"], 0, "nothing was sent");
}

#[test]
fn a_python_without_locust_is_refused_naming_what_is_missing() {
    let Some(_) = python() else { return };
    let target = Target::start(&[]);
    let ws = Workspace::new();
    ws.write("locustfile.py", MIXED);
    let file = scenario(&ws, &target.url, "users = 1\nduration = \"2s\"", "");
    // A bare venv: Python, no Locust.
    let bare = ws.path().join("bare");
    let ok = Command::new("python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(&bare)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "python3 -m venv --without-pip");
    let bare_python = bare.join("bin/python");
    let (code, _, stderr) = ws.run(&file, &["--python", bare_python.to_str().expect("utf-8")]);
    assert_ne!(code, 0);
    assert!(stderr.contains("Locust is not installed for"), "{stderr}");
    assert!(stderr.contains("pip install locust"), "{stderr}");
    let (code, _, stderr) = ws.run(&file, &["--python", "/nonexistent/python3"]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("cannot run /nonexistent/python3"),
        "{stderr}"
    );
}

#[test]
fn a_stopped_locust_run_keeps_its_measurements_and_leaves_no_locust_behind() {
    let Some(py) = python() else { return };
    let target = Target::start(&[]);
    let ws = Workspace::new();
    ws.write("locustfile.py", MIXED);
    let file = scenario(
        &ws,
        &target.url,
        "users = 3\nspawn_rate = 100\nduration = \"60s\"",
        "processes = 2",
    );
    let mut child = bfgg(ws.path())
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(ws.out_dir())
        .arg("--json")
        .arg("--python")
        .arg(&py)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bfgg run");
    let needle = format!("bfgg-locust-{}-", child.id());
    // Wait for load, then Ctrl-C.
    let deadline = Instant::now() + Duration::from_secs(60);
    while target.stats()["total"].as_u64().unwrap_or(0) < 20 {
        if child.try_wait().expect("wait").is_some() {
            let out = child.wait_with_output().expect("output");
            panic!(
                "bfgg run ended early: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(Instant::now() < deadline, "no load within 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !processes_mentioning(&needle).is_empty(),
        "Locust runs with the plugin at {needle}"
    );
    let stop_sent = Instant::now();
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok);
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("bfgg run did not end within 30 s of Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    let stopped_in = stop_sent.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let s: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("no summary ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(s["stopped_early"], true, "{s:#}");
    assert_eq!(
        bfgg_counts(&s),
        locust_counts(&ws.out_dir()),
        "nothing lost"
    );
    assert!(
        stopped_in < Duration::from_secs(10),
        "graceful stop 2 s, took {stopped_in:?}"
    );
    assert!(
        processes_mentioning(&needle).is_empty(),
        "Locust processes left: {:?}",
        processes_mentioning(&needle)
    );
}

#[test]
fn the_example_locust_scenario_runs_against_the_target() {
    let Some(py) = python() else { return };
    let target = Target::start(&[]);
    let ws = Workspace::new();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/locust/scenario.toml");
    let mut cmd = bfgg(ws.path());
    cmd.arg("run")
        .arg(&example)
        .args([
            "--target",
            &target.url,
            "--duration",
            "4s",
            "--json",
            "--out",
        ])
        .arg(ws.out_dir())
        .arg("--python")
        .arg(&py);
    let out = run_with_timeout(cmd, Duration::from_secs(120));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(
        s["by_name"]["login"]["requests"].as_u64().unwrap_or(0) >= 1,
        "{s:#}"
    );
    assert_eq!(s["total"]["errors"], 0, "{s:#}");
    assert_eq!(bfgg_counts(&s), locust_counts(&ws.out_dir()));
}

#[test]
fn names_and_failure_messages_past_their_caps_are_counted_not_lost() {
    let Some(py) = python() else { return };
    let target = Target::start(&[]);
    let ws = Workspace::new();
    ws.write(
        "locustfile.py",
        r#"
import itertools
from locust import HttpUser, constant, task

_n = itertools.count()

class Unnamed(HttpUser):
    wait_time = constant(0.02)

    @task
    def item(self):
        # A distinct name and a distinct failure message per request: what a
        # locustfile without name= on URLs with ids produces.
        i = next(_n)
        with self.client.get(f"/echo?id={i}", name=f"/item/{i}", catch_response=True) as r:
            r.failure(f"item {i} is broken")
"#,
    );
    let file = scenario(
        &ws,
        &target.url,
        "users = 2\nspawn_rate = 100\nduration = \"3s\"",
        "processes = 1",
    );
    let mut cmd = bfgg(ws.path());
    cmd.arg("run")
        .arg(&file)
        .arg("--out")
        .arg(ws.out_dir())
        .arg("--json")
        .arg("--python")
        .arg(&py)
        .env("BFGG_MAX_NAMES", "5")
        .env("BFGG_MAX_ERRORS", "3");
    let out = run_with_timeout(cmd, Duration::from_secs(120));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let ours = bfgg_counts(&s);
    assert_eq!(ours.len(), 6, "5 names and the rest: {ours:?}");
    let other = ours
        .iter()
        .find(|r| r.0 == "(other names: more than 5 distinct)")
        .expect("the overflow name");
    let theirs = locust_counts(&ws.out_dir());
    let total = |rows: &[(String, u64, u64)]| rows.iter().map(|r| r.1).sum::<u64>();
    assert!(theirs.len() > 20, "Locust saw many names: {}", theirs.len());
    assert_eq!(total(&ours), total(&theirs), "every request counted");
    assert_eq!(other.1, total(&theirs) - 5);
    let messages: Vec<String> = s["by_name"]
        .as_object()
        .expect("by_name")
        .values()
        .flat_map(|v| v["error_groups"].as_array().cloned().unwrap_or_default())
        .map(|g| g["message"].as_str().expect("message").to_owned())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m == "(other failures: more than 3 distinct messages)"),
        "{messages:?}"
    );
    assert_eq!(s["total"]["errors"], s["total"]["requests"]);
}

/// Locust's own totals on node `name` of `cluster` for its only run.
fn node_locust_counts(cluster: &Cluster, name: &str) -> Vec<(String, u64, u64)> {
    let runs = cluster.ws.path().join(format!("node-{name}/runs"));
    let run = std::fs::read_dir(&runs)
        .unwrap_or_else(|e| panic!("{}: {e}", runs.display()))
        .flatten()
        .find(|e| e.path().join("locust").is_dir())
        .unwrap_or_else(|| panic!("no Locust run under {}", runs.display()));
    locust_counts(&run.path())
}

fn sum_by_name(a: &[(String, u64, u64)], b: &[(String, u64, u64)]) -> Vec<(String, u64, u64)> {
    let mut all: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for (name, r, e) in a.iter().chain(b) {
        let slot = all.entry(name.clone()).or_default();
        slot.0 += r;
        slot.1 += e;
    }
    all.into_iter().map(|(n, (r, e))| (n, r, e)).collect()
}

#[test]
fn a_two_agent_locust_run_merges_exactly_what_each_locust_counted() {
    let Some(py) = python() else { return };
    let target = Target::start(&["--error-rate", "0.1"]);
    let py = py.to_str().expect("utf-8").to_owned();
    let cluster = Cluster::start_with(2, &[], &["--python", &py]);
    cluster.ws.write("locustfile.py", MIXED);
    let file = scenario(
        &cluster.ws,
        &target.url,
        "users = 4\nspawn_rate = 100\nduration = \"5s\"",
        "processes = 1",
    );
    // Node health lists Locust with its version (once each node's probe,
    // which imports Locust, has answered: seconds on a loaded machine).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let status = cluster.status();
        let listed = status.iter().all(|node| {
            let engines = node["engines"].to_string();
            engines.contains("locust") && engines.contains("2.47.0")
        });
        if listed && status.len() == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Locust not in every node's health: {status:#?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let s = cluster.finished_run(&file, &[], Duration::from_secs(120));
    let agents = s["agents"].as_array().expect("agents");
    assert_eq!(agents.len(), 2, "{s:#}");
    assert_eq!(
        s["total"]["requests"].as_u64(),
        Some(agents_sum(&s)),
        "{s:#}"
    );
    let n0 = node_locust_counts(&cluster, "n0");
    let n1 = node_locust_counts(&cluster, "n1");
    assert_eq!(
        bfgg_counts(&s),
        sum_by_name(&n0, &n1),
        "merged = both Locusts' own totals"
    );
    for a in agents {
        let name = a["name"].as_str().expect("name");
        let own = if name == "n0" { &n0 } else { &n1 };
        let locust_total: u64 = own.iter().map(|r| r.1).sum();
        assert_eq!(a["requests"].as_u64(), Some(locust_total), "{a}");
        assert!(locust_total > 20, "each agent ran its 2 users: {a}");
    }
    assert_eq!(s["partial"], false, "{s:#}");
}

#[test]
fn a_cluster_run_on_an_agent_without_locust_is_refused_naming_it() {
    let Some(py) = python() else { return };
    let target = Target::start(&[]);
    let py = py.to_str().expect("utf-8").to_owned();
    let mut cluster = Cluster::start_with(1, &[], &["--python", &py]);
    let bare = cluster.ws.path().join("bare");
    let ok = Command::new("python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(&bare)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "python3 -m venv --without-pip");
    let bare_python = bare.join("bin/python");
    let join = cluster.nodes[0].addr.clone();
    let node = Node::start(
        cluster.ws.path(),
        "bare",
        Some(&cluster.key),
        &[&join],
        &["--python", bare_python.to_str().expect("utf-8")],
    );
    cluster.nodes.push(node);
    cluster.wait_for_nodes(2);
    cluster.ws.write("locustfile.py", MIXED);
    let file = scenario(&cluster.ws, &target.url, "users = 2\nduration = \"3s\"", "");
    // Health says which node has Locust: asked for both, the run is refused
    // before anything starts, naming the one without it.
    let (code, summary, stderr) = wait_output(
        cluster.run_cluster(&file, &["--agents", "2"]),
        Duration::from_secs(120),
    );
    assert_ne!(code, 0, "{summary:?}");
    assert!(
        stderr
            .contains("2 agents wanted but only 1 idle with locust: n0; idle without locust: bare"),
        "{stderr}"
    );
    assert!(stderr.contains("--python"), "{stderr}");
    assert_eq!(target.stats()["total"], 0, "nothing was sent");
    // Not asked for a count, the run goes to the nodes that have Locust.
    let (code, summary, stderr) =
        wait_output(cluster.run_cluster(&file, &[]), Duration::from_secs(120));
    assert_eq!(code, 0, "{stderr}");
    let s = summary.expect("summary");
    let names: Vec<&str> = s["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .map(|a| a["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["n0"], "{s:#}");
}

/// Spawns `bfgg run` of `file` with Locust, returning the child and the
/// marker of its Locust processes' command lines.
fn spawn_run(ws: &Workspace, file: &Path, py: &Path) -> (std::process::Child, String) {
    let child = bfgg(ws.path())
        .arg("run")
        .arg(file)
        .arg("--out")
        .arg(ws.out_dir())
        .arg("--json")
        .arg("--python")
        .arg(py)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bfgg run");
    let needle = format!("bfgg-locust-{}-", child.id());
    (child, needle)
}

#[test]
fn locust_goes_when_the_process_driving_it_is_killed() {
    let Some(py) = python() else { return };
    let target = Target::start(&[]);
    let ws = Workspace::new();
    ws.write("locustfile.py", MIXED);
    let file = scenario(
        &ws,
        &target.url,
        "users = 2\nspawn_rate = 100\nduration = \"60s\"",
        "processes = 2",
    );
    let (mut child, needle) = spawn_run(&ws, &file, &py);
    let deadline = Instant::now() + Duration::from_secs(60);
    while target.stats()["total"].as_u64().unwrap_or(0) < 10 {
        assert!(
            child.try_wait().expect("wait").is_none(),
            "bfgg run ended early"
        );
        assert!(Instant::now() < deadline, "no load within 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        processes_mentioning(&needle).len(),
        3,
        "a master and 2 workers"
    );
    // SIGKILL: bfgg cannot clean up; Locust notices its connection close.
    child.kill().expect("kill");
    let _ = child.wait();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !processes_mentioning(&needle).is_empty() {
        assert!(
            Instant::now() < deadline,
            "Locust processes outlived bfgg by 20 s: {:?}",
            processes_mentioning(&needle)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_locust_that_dies_mid_run_is_reported_and_its_measurements_kept() {
    let Some(py) = python() else { return };
    let target = Target::start(&[]);
    let ws = Workspace::new();
    ws.write(
        "locustfile.py",
        r#"
import os, signal, sys, time
from locust import HttpUser, constant, events, task

_started = time.time()

class Doomed(HttpUser):
    wait_time = constant(0.05)

    @task
    def home(self):
        self.client.get("/", name="home")
        if time.time() - _started > 4:
            sys.stderr.write("about to crash on purpose\n")
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)
"#,
    );
    let file = scenario(
        &ws,
        &target.url,
        "users = 2\nspawn_rate = 100\nduration = \"30s\"",
        "processes = 1",
    );
    let started = Instant::now();
    let (code, summary, stderr) = ws.run(&file, &["--python", py.to_str().expect("utf-8")]);
    let s = summary.unwrap_or_else(|| panic!("no summary (exit {code}): {stderr}"));
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "ended with Locust"
    );
    let reason = s["stop_reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("Locust ended during the run: killed by signal 9"),
        "{s:#}"
    );
    assert!(reason.contains("about to crash on purpose"), "{reason}");
    assert_eq!(s["stopped_early"], true);
    let requests = s["total"]["requests"].as_u64().unwrap_or(0);
    assert!(requests > 20, "what it measured is kept: {s:#}");
    // Everything the target served before the crash was counted but what
    // was in flight or not yet flushed (at most the plugin's 100 ms).
    let served = target.stats()["total"].as_u64().expect("total");
    assert!(
        served >= requests && served - requests <= 10,
        "{served} vs {requests}"
    );
}

#[test]
fn check_imports_the_locustfile_names_its_shape_and_dry_runs_one_user() {
    let Some(py) = python() else { return };
    let target = Target::start(&["--error-rate", "1", "--error-status", "418"]);
    let ws = Workspace::new();
    ws.write(
        "locustfile.py",
        r#"
from locust import HttpUser, LoadTestShape, constant, task

class Teapot(HttpUser):
    wait_time = constant(0.5)

    @task
    def brew(self):
        self.client.get("/", name="brew")

class Waves(LoadTestShape):
    def tick(self):
        return (50, 10) if self.get_run_time() < 60 else None
"#,
    );
    let file = scenario(&ws, &target.url, "users = 3\nduration = \"30s\"", "");
    let py = py.to_str().expect("utf-8");
    let check = |extra: &[&str]| {
        let mut cmd = bfgg(ws.path());
        cmd.arg("check")
            .arg(&file)
            .args(["--python", py])
            .args(extra);
        run_with_timeout(cmd, Duration::from_secs(120))
    };
    let out = check(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("engine locust"), "{stdout}");
    assert!(stdout.contains("User classes Teapot"), "{stdout}");
    assert!(
        stdout.contains("own LoadTestShape Waves runs on every agent"),
        "{stdout}"
    );
    assert_eq!(target.stats()["total"], 0, "check alone sends nothing");
    // The dry run: one user (not the shape's 50), each request printed; the
    // 418s are failures, so the check fails.
    let out = check(&["--dry-run"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with("Teapot")).collect();
    assert!((3..=20).contains(&lines.len()), "{stdout}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains("brew") && l.contains(" 418 ")),
        "{stdout}"
    );
    assert!(stdout.contains("error: 418 Client Error"), "{stdout}");
    let served = target.stats()["total"].as_u64().expect("total");
    assert_eq!(
        served as usize,
        lines.len(),
        "one user, every request printed"
    );
    // A locustfile that does not import fails the check with Python's error.
    ws.write("locustfile.py", "def broken(:\n");
    let out = check(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("SyntaxError"), "{stderr}");
}

#[test]
fn a_locustfile_with_its_own_shape_runs_it_from_time_zero_until_it_ends() {
    let Some(py) = python() else { return };
    let target = Target::start(&[]);
    let ws = Workspace::new();
    ws.write(
        "locustfile.py",
        r#"
from locust import HttpUser, LoadTestShape, constant, task

class Steady(HttpUser):
    wait_time = constant(0.1)

    @task
    def home(self):
        self.client.get("/", name="home")

class TwoThenThree(LoadTestShape):
    def tick(self):
        t = self.get_run_time()
        if t < 2:
            return (2, 100)
        if t < 4:
            return (3, 100)
        return None
"#,
    );
    let file = scenario(
        &ws,
        &target.url,
        "users = 10\nduration = \"30s\"",
        "processes = 1",
    );
    let started = Instant::now();
    let (code, summary, stderr) = ws.run(&file, &["--python", py.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{stderr}");
    let s = summary.expect("summary");
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "the shape ended the run"
    );
    assert_eq!(s["stop_reason"], serde_json::Value::Null, "{s:#}");
    let active = active_per_second(&ws.out_dir());
    // The shape's users, not [load]'s 10, counted from time zero.
    assert_eq!(&active[0..4], &[2, 2, 3, 3], "{active:?}");
    assert_eq!(bfgg_counts(&s), locust_counts(&ws.out_dir()));
}

#[test]
fn bfgg_stop_ends_a_two_agent_locust_run_keeping_every_request() {
    let Some(py) = python() else { return };
    let target = Target::start(&[]);
    let py = py.to_str().expect("utf-8").to_owned();
    let cluster = Cluster::start_with(2, &[], &["--python", &py]);
    cluster.ws.write("locustfile.py", MIXED);
    let file = scenario(
        &cluster.ws,
        &target.url,
        "users = 4\nspawn_rate = 100\nduration = \"60s\"",
        "processes = 2",
    );
    let child = cluster.run_cluster(&file, &[]);
    let run_id = wait_for_run_id(&cluster, Duration::from_secs(60));
    target.wait_for_requests(50, Duration::from_secs(60));
    // Each node's Locust runs from its own runtime directory.
    let needles: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| format!("bfgg-locust-{}-", n.pid()))
        .collect();
    let plugin_processes =
        || -> usize { needles.iter().map(|n| processes_mentioning(n).len()).sum() };
    // The first agent's requests can reach the target before the second's
    // Locust is up on a loaded machine: wait (bounded) for all six.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while plugin_processes() < 6 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        plugin_processes(),
        6,
        "a master and 2 workers on each agent"
    );
    cluster.stop_run(&run_id);
    let (code, summary, stderr) = wait_output(child, Duration::from_secs(60));
    assert_eq!(code, 0, "{stderr}");
    let s = summary.expect("summary");
    assert_eq!(s["stopped_early"], true, "{s:#}");
    assert!(s["duration_s"].as_f64().expect("duration") < 40.0, "{s:#}");
    let n0 = node_locust_counts(&cluster, "n0");
    let n1 = node_locust_counts(&cluster, "n1");
    assert_eq!(
        bfgg_counts(&s),
        sum_by_name(&n0, &n1),
        "nothing lost in the stop"
    );
    assert_eq!(plugin_processes(), 0, "no Locust left on either agent");
}

#[test]
fn thresholds_judge_a_locust_run_like_any_other() {
    let Some(py) = python() else { return };
    let target = Target::start(&["--error-rate", "0.3"]);
    let ws = Workspace::new();
    ws.write("locustfile.py", MIXED);
    let file = ws.write(
        "locust.toml",
        &format!(
            r#"
[scenario]
name = "locust-thresholds"
engine = "locust"
thresholds = ["error_rate < 1%", "p99 < 5s", "requests[home] > 10"]
[target]
base_url = "{}"
[locust]
file = "locustfile.py"
processes = 1
[load]
model = "closed"
users = 2
spawn_rate = 100
duration = "3s"
"#,
            target.url
        ),
    );
    let (code, summary, stderr) = ws.run(&file, &["--python", py.to_str().expect("utf-8")]);
    assert_eq!(code, 1, "a failed threshold fails the run: {stderr}");
    let s = summary.expect("summary");
    let passed: Vec<bool> = s["thresholds"]
        .as_array()
        .expect("thresholds")
        .iter()
        .map(|t| t["passed"].as_bool().expect("passed"))
        .collect();
    assert_eq!(passed, [false, true, true], "{s:#}");
}
