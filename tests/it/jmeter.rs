//! The JMeter engine end to end, with real Apache JMeter 5.6.3 (assembled
//! from Maven Central into each node's cache on first use, from `~/.m2`
//! after) running the example plan `scenarios/jmeter/checkout.jmx` against
//! `bfgg target` on 127.0.0.1: bfgg's counts equal the rows of JMeter's
//! results files locally and across two agents, each agent runs its share
//! of `threads`, a plan JMeter cannot load is refused before the start on
//! every agent, a stop ends the run within a second keeping what was
//! written and leaving no JVM, an agent without Java is refused naming it,
//! a partitioned CSV's rows are each used by one agent, a JVM killed
//! mid-run is reported with the tail of jmeter.log and its rows kept, and
//! `bfgg check` loads the plan and warns of a split the plan never reads.
//!
//! Java and Maven must be installed (`.ci/run` installs them); outside CI
//! their absence skips with a printed reason.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bfgg_node::engine::jmeter::results::count_file;

use crate::cluster::{Cluster, Node, agents_sum, wait_for_run_id, wait_output};
use crate::harness::{Target, Workspace, processes_mentioning, run_with_timeout, skip};

/// Whether `java` and `mvn` run here; skips (or fails in CI) otherwise.
fn jmeter_tools() -> Option<()> {
    for (tool, arg) in [("java", "-version"), ("mvn", "-v")] {
        let ok = Command::new(tool)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            return skip(&format!(
                "{tool} is not installed (apt-get install openjdk-17-jre-headless maven)"
            ));
        }
    }
    Some(())
}

/// A scenario running a copy of the example plan (and its users.csv) in
/// `dir`: `jmeter` is added to its [jmeter] table, `duration` is [load]'s.
fn scenario(dir: &Path, url: &str, jmeter: &str, duration: &str) -> PathBuf {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/jmeter");
    for f in ["checkout.jmx", "users.csv"] {
        std::fs::copy(example.join(f), dir.join(f)).expect("copy the example");
    }
    let file = dir.join("jmeter.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[scenario]
name = "jmeter-it"
engine = "jmeter"
[target]
base_url = "{url}"
[jmeter]
plan = "checkout.jmx"
java_opts = ["-Xms128m", "-Xmx256m"]
{jmeter}
[load]
duration = "{duration}"
graceful_stop = "5s"
"#
        ),
    )
    .expect("write the scenario");
    file
}

/// The JMeter work directories (`<run>/jmeter`) of node `name`'s runs.
fn node_jmeter_dir(cluster: &Cluster, name: &str) -> PathBuf {
    let runs = cluster.ws.path().join(format!("node-{name}/runs"));
    std::fs::read_dir(&runs)
        .unwrap_or_else(|e| panic!("{}: {e}", runs.display()))
        .flatten()
        .map(|e| e.path().join("jmeter"))
        .find(|p| p.is_dir())
        .unwrap_or_else(|| panic!("no JMeter run under {}", runs.display()))
}

/// The threads JMeter started for the plan's thread groups, from its log
/// (`StandardJMeterEngine: Starting 2 threads for group users.`).
fn threads_started(jmeter_log: &Path) -> u64 {
    let text = std::fs::read_to_string(jmeter_log)
        .unwrap_or_else(|e| panic!("{}: {e}", jmeter_log.display()));
    text.lines()
        .filter_map(|l| {
            l.split_once("Starting ")?
                .1
                .split_once(" threads for group")?
                .0
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// bfgg's summary: requests of one name.
fn requests_of(s: &serde_json::Value, name: &str) -> u64 {
    s["by_name"][name]["requests"].as_u64().unwrap_or(0)
}

#[test]
fn a_local_jmeter_run_counts_every_row_of_its_results_file() {
    let Some(()) = jmeter_tools() else { return };
    let target = Target::start(&[]);
    let ws = Workspace::new();
    let file = scenario(
        ws.path(),
        &target.url,
        "split = { threads = 2, throughput = 2400 }",
        "3s",
    );
    // A user without a password: its login is a 400, its /me a 401 and a
    // failed assertion.
    let users = ws.path().join("users.csv");
    let mut text = std::fs::read_to_string(&users).expect("users.csv");
    text.push_str("mallory,\n");
    std::fs::write(&users, text).expect("users.csv");
    let mut cmd = crate::harness::bfgg(ws.path());
    cmd.arg("run")
        .arg(&file)
        .arg("--out")
        .arg(ws.out_dir())
        .arg("--json");
    let out = run_with_timeout(cmd, Duration::from_secs(300));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let s: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    let total = s["total"]["requests"].as_u64().expect("requests");
    let errors = s["total"]["errors"].as_u64().expect("errors");
    let rows = count_file(&ws.out_dir().join("jmeter/results.csv")).expect("results.csv");
    assert_eq!((total, errors), (rows.records, rows.failed), "{s:#}");
    assert_eq!(rows.broken, 0);
    assert!(total > 40, "too little load to compare: {s:#}");
    assert!(
        requests_of(&s, "login") > 0 && requests_of(&s, "me") > 0,
        "{s:#}"
    );
    // JMeter's failures, grouped by kind: the status, the assertion.
    assert!(errors > 0, "{s:#}");
    assert!(
        s["total"]["error_groups"].to_string().contains("400"),
        "{s:#}"
    );
    served_is_what_jmeter_wrote(&target, total, 2);
    assert_eq!(threads_started(&ws.out_dir().join("jmeter/jmeter.log")), 2);
}

#[test]
fn a_two_agent_jmeter_run_merges_exactly_what_each_agent_wrote() {
    let Some(()) = jmeter_tools() else { return };
    let target = Target::start(&[]);
    let cluster = Cluster::start(2, &[]);
    let file = scenario(
        cluster.ws.path(),
        &target.url,
        "split = { threads = 3, throughput = 1800 }",
        "4s",
    );
    // Node health lists JMeter with the Maven and Java it runs on.
    for node in cluster.status() {
        let engines = node["engines"].to_string();
        assert!(engines.contains("jmeter"), "{node:#}");
    }
    let (code, summary, stderr) =
        wait_output(cluster.run_cluster(&file, &[]), Duration::from_secs(300));
    assert_eq!(code, 0, "{stderr}");
    let s = summary.unwrap_or_else(|| panic!("no summary: {stderr}"));
    assert!(stderr.contains("split threads = 3: n"), "{stderr}");
    let agents = s["agents"].as_array().expect("agents");
    assert_eq!(agents.len(), 2, "{s:#}");
    let total = s["total"]["requests"].as_u64().expect("requests");
    assert_eq!(total, agents_sum(&s), "{s:#}");
    let mut rows = 0;
    let mut threads = Vec::new();
    for a in agents {
        let name = a["name"].as_str().expect("agent name");
        let dir = node_jmeter_dir(&cluster, name);
        let counts = count_file(&dir.join("results.csv")).expect("results.csv");
        assert_eq!(
            a["requests"].as_u64(),
            Some(counts.records),
            "{name}: {a:#}"
        );
        rows += counts.records;
        threads.push(threads_started(&dir.join("jmeter.log")));
    }
    assert_eq!(total, rows);
    threads.sort();
    assert_eq!(threads, [1, 2], "each agent its share of threads = 3");
    // The JVMs take 1-3 s of the 4 s to start sending.
    assert!(total > 20, "{s:#}");
    served_is_what_jmeter_wrote(&target, total, 3);
}

/// Every request bfgg counted reached the target; the target served at most
/// one more per thread: a sample still under way when the run's end stopped
/// the JVM reached the target but was never completed, so JMeter wrote no
/// row for it and there is nothing to count.
fn served_is_what_jmeter_wrote(target: &Target, counted: u64, threads: u64) {
    let served = target.stats()["total"].as_u64().expect("served");
    assert!(
        (counted..=counted + threads).contains(&served),
        "bfgg counted {counted}, the target served {served} ({threads} threads)"
    );
}

#[test]
fn a_plan_jmeter_cannot_load_is_refused_before_the_start_on_every_agent() {
    let Some(()) = jmeter_tools() else { return };
    let target = Target::start(&[]);
    let cluster = Cluster::start(2, &[]);
    let file = scenario(cluster.ws.path(), &target.url, "", "30s");
    // A sampler class JMeter does not have.
    let plan = cluster.ws.path().join("checkout.jmx");
    let text = std::fs::read_to_string(&plan).expect("plan");
    std::fs::write(&plan, text.replace("HTTPSamplerProxy", "NoSuchSampler")).expect("write");
    let (code, summary, stderr) =
        wait_output(cluster.run_cluster(&file, &[]), Duration::from_secs(300));
    assert_ne!(code, 0, "{summary:?}");
    assert!(
        stderr.contains("JMeter cannot load the test plan") && stderr.contains("NoSuchSampler"),
        "JMeter's message: {stderr}"
    );
    assert!(
        stderr.matches("JMeter cannot load").count() >= 2
            || stderr.contains("n0") && stderr.contains("n1"),
        "every agent refused: {stderr}"
    );
    assert_eq!(target.stats()["total"].as_u64(), Some(0));
}

#[test]
fn an_agent_without_java_is_refused_naming_it() {
    let Some(()) = jmeter_tools() else { return };
    let target = Target::start(&[]);
    let mut cluster = Cluster::start(1, &[]);
    let empty = cluster.ws.path().join("empty-path");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let join = cluster.nodes[0].addr.clone();
    let node = Node::start_env(
        cluster.ws.path(),
        "bare",
        Some(&cluster.key),
        &[&join],
        &[],
        &[("PATH", empty.to_str().expect("utf-8")), ("JAVA_HOME", "")],
    );
    cluster.nodes.push(node);
    cluster.wait_for_nodes(2);
    let file = scenario(cluster.ws.path(), &target.url, "", "30s");
    let (code, summary, stderr) = wait_output(
        cluster.run_cluster(&file, &["--agents", "2"]),
        Duration::from_secs(120),
    );
    assert_ne!(code, 0, "{summary:?}");
    assert!(
        stderr.contains("idle without jmeter: bare (jmeter needs Java 17"),
        "names the agent and what it lacks: {stderr}"
    );
    assert_eq!(target.stats()["total"].as_u64(), Some(0));
}

#[test]
fn bfgg_stop_ends_a_two_agent_jmeter_run_within_a_second_keeping_what_was_written() {
    let Some(()) = jmeter_tools() else { return };
    let target = Target::start(&[]);
    let cluster = Cluster::start(2, &[]);
    let file = scenario(
        cluster.ws.path(),
        &target.url,
        "split = { threads = 2, throughput = 1200 }",
        "120s",
    );
    let child = cluster.run_cluster(&file, &[]);
    let run_id = wait_for_run_id(&cluster, Duration::from_secs(120));
    target.wait_for_requests(60, Duration::from_secs(120));
    let jvms = || processes_mentioning(&format!("/runs/{run_id}/jmeter")).len();
    // On a loaded machine one agent's JVM may start a little later.
    let up_by = Instant::now() + Duration::from_secs(60);
    while jvms() < 2 && Instant::now() < up_by {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(jvms(), 2, "one JVM on each agent");
    let stop_at = Instant::now();
    cluster.stop_run(&run_id);
    // Both JVMs gone within a second of the stop reaching the agents.
    while jvms() > 0 && stop_at.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let gone_after = stop_at.elapsed();
    let (code, summary, stderr) = wait_output(child, Duration::from_secs(60));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        gone_after < Duration::from_millis(1500),
        "JVMs gone after {gone_after:?}"
    );
    assert_eq!(jvms(), 0, "no JVM left on either agent");
    let s = summary.expect("summary");
    assert_eq!(s["stopped_early"], true, "{s:#}");
    let total = s["total"]["requests"].as_u64().expect("requests");
    let mut rows = 0;
    for a in s["agents"].as_array().expect("agents") {
        let dir = node_jmeter_dir(&cluster, a["name"].as_str().expect("name"));
        rows += count_file(&dir.join("results.csv"))
            .expect("results.csv")
            .records;
    }
    assert_eq!(total, rows, "what JMeter wrote is kept: {s:#}");
    assert!(total >= 60, "{s:#}");
}

#[test]
fn a_partitioned_csv_gives_each_row_to_one_agent() {
    let Some(()) = jmeter_tools() else { return };
    let target = Target::start(&[]);
    let cluster = Cluster::start(2, &[]);
    // One thread per agent reads its rows once and stops at their end.
    let file = scenario(
        cluster.ws.path(),
        &target.url,
        "partition = [\"users.csv\"]\nsplit = { threads = 2, throughput = 6000 }\n\
         properties = { recycle = false, stop_at_end = true }",
        "20s",
    );
    let (code, summary, stderr) =
        wait_output(cluster.run_cluster(&file, &[]), Duration::from_secs(300));
    assert_eq!(code, 0, "{stderr}");
    let s = summary.unwrap_or_else(|| panic!("no summary: {stderr}"));
    let rows: Vec<String> = std::fs::read_to_string(cluster.ws.path().join("users.csv"))
        .expect("users.csv")
        .lines()
        .skip(1)
        .map(str::to_owned)
        .collect();
    // Every row logged in exactly once, across both agents...
    assert_eq!(requests_of(&s, "login") as usize, rows.len(), "{s:#}");
    assert_eq!(s["total"]["errors"].as_u64(), Some(0), "{s:#}");
    // ...each agent from its own slice, the slices disjoint and complete.
    let mut seen = Vec::new();
    for a in s["agents"].as_array().expect("agents") {
        let dir = node_jmeter_dir(&cluster, a["name"].as_str().expect("name"));
        let slice = std::fs::read_to_string(dir.join("partition/1-users.csv")).expect("slice");
        let mine: Vec<String> = slice.lines().skip(1).map(str::to_owned).collect();
        assert!(!mine.is_empty());
        seen.extend(mine);
    }
    seen.sort();
    let mut all = rows.clone();
    all.sort();
    assert_eq!(seen, all);
}

#[test]
fn check_loads_the_plan_and_warns_of_a_split_the_plan_never_reads() {
    let Some(()) = jmeter_tools() else { return };
    let ws = Workspace::new();
    let file = scenario(
        ws.path(),
        "http://127.0.0.1:9",
        "split = { threads = 3, rps = 5 }",
        "5s",
    );
    let mut cmd = crate::harness::bfgg(ws.path());
    cmd.arg("check").arg(&file);
    let out = run_with_timeout(cmd, Duration::from_secs(300));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for wanted in [
        "engine jmeter, plan ",
        "split threads = 3: agent 1 2, agent 2 1",
        "warning: the plan never reads the property `rps`",
        "ships ",
        "jmeter 5.6.3, java ",
    ] {
        assert!(stdout.contains(wanted), "{wanted}: {stdout}");
    }
    assert!(!stdout.contains("property `threads`"), "{stdout}");
}

#[test]
fn a_jvm_that_dies_mid_run_is_reported_with_its_log_and_what_it_wrote_is_kept() {
    let Some(()) = jmeter_tools() else { return };
    let target = Target::start(&[]);
    let ws = Workspace::new();
    let file = scenario(
        ws.path(),
        &target.url,
        "split = { threads = 2, throughput = 1200 }",
        "60s",
    );
    let mut cmd = crate::harness::bfgg(ws.path());
    cmd.arg("run")
        .arg(&file)
        .arg("--out")
        .arg(ws.out_dir())
        .arg("--json")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().expect("bfgg run");
    target.wait_for_requests(40, Duration::from_secs(120));
    let results = ws.out_dir().join("jmeter/results.csv");
    let jvm = processes_mentioning(&results.display().to_string());
    assert_eq!(jvm.len(), 1, "{jvm:?}");
    let killed_at = Instant::now();
    let ok = Command::new("kill")
        .args(["-9", &jvm[0].to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -9 {}", jvm[0]);
    let (_, summary, stderr) = wait_output(child, Duration::from_secs(60));
    assert!(
        killed_at.elapsed() < Duration::from_secs(10),
        "the run ended with the JVM"
    );
    let s = summary.unwrap_or_else(|| panic!("no summary: {stderr}"));
    let reason = s["stop_reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("JMeter ended during the run: killed by signal 9"),
        "{s:#}"
    );
    assert!(
        reason.contains("o.a.j."),
        "the tail of jmeter.log: {reason}"
    );
    assert_eq!(s["stopped_early"], true, "{s:#}");
    // Every row JMeter wrote (autoflush: every finished sample) is kept.
    let rows = count_file(&results).expect("results.csv");
    assert_eq!(s["total"]["requests"].as_u64(), Some(rows.records), "{s:#}");
    assert!(rows.records >= 40);
}
