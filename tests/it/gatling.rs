//! The Gatling engine end to end, with real Gatling from Maven Central (the
//! example project `scenarios/gatling`, resolved into the user's Maven
//! repository `~/.m2` on first use and offline after) against `bfgg target`
//! on 127.0.0.1: bfgg's counts equal Gatling's own console and the records
//! of its `simulation.log`, KO messages keep their text, a simulation's
//! share of `split` reaches each agent, a stop keeps what was logged and
//! leaves no JVM, and a compile error, a missing class or an agent without
//! Java and Maven are refused before the start with the reason.
//!
//! Java and Maven must be installed (`.ci/run` installs them); outside CI
//! their absence skips with a printed reason.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bfgg_node::engine::gatling::log::{LogCounts, count_file};

use crate::cluster::{Cluster, Node, agents_sum, wait_for_run_id, wait_output};
use crate::harness::{Target, Workspace, processes_mentioning, run_with_timeout, skip};

/// Whether `java` and `mvn` run here; skips (or fails in CI) otherwise.
fn gatling_tools() -> Option<()> {
    for (tool, arg) in [("java", "-version"), ("mvn", "-v")] {
        let ok = Command::new(tool)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            return skip(&format!(
                "{tool} is not installed (apt-get install default-jdk-headless maven)"
            ));
        }
    }
    Some(())
}

/// Copies the example Maven project into `<dir>/sim` (sources only: agents
/// build it themselves).
fn copy_project(dir: &Path) -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/gatling");
    let to = dir.join("sim");
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("read_dir").flatten() {
            let name = entry.file_name();
            let (src, dst) = (entry.path(), to.join(&name));
            if src.is_dir() {
                copy(&src, &dst);
            } else {
                std::fs::copy(&src, &dst).expect("copy");
            }
        }
    }
    std::fs::copy(from.join("pom.xml"), {
        std::fs::create_dir_all(&to).expect("mkdir");
        to.join("pom.xml")
    })
    .expect("pom.xml");
    copy(&from.join("src"), &to.join("src"));
    to
}

/// A scenario running the example simulation of `<ws>/sim`: `gatling` is
/// added to its [gatling] table, `duration` is [load]'s.
fn scenario(ws: &Workspace, url: &str, gatling: &str, duration: &str) -> PathBuf {
    copy_project(ws.path());
    ws.write(
        "gatling.toml",
        &format!(
            r#"
[scenario]
name = "gatling-it"
engine = "gatling"
[target]
base_url = "{url}"
[gatling]
project = "sim"
simulation = "example.DemoSimulation"
java_opts = ["-Xmx256m"]
{gatling}
[load]
duration = "{duration}"
graceful_stop = "5s"
"#
        ),
    )
}

/// Gatling's own final console table (`> name | total | OK | KO`), by
/// request name, from an agent's `stdout.log`; "Global" included.
fn console_counts(stdout_log: &Path) -> BTreeMap<String, (u64, u64)> {
    let text = std::fs::read_to_string(stdout_log)
        .unwrap_or_else(|e| panic!("{}: {e}", stdout_log.display()));
    let last = text
        .rfind("---- Requests ----")
        .unwrap_or_else(|| panic!("no request table in {text}"));
    let mut rows = BTreeMap::new();
    for line in text[last..].lines().skip(1) {
        let Some(row) = line.strip_prefix("> ") else {
            break;
        };
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let n = |i: usize| cells[i].parse::<u64>().expect("count");
        rows.insert(cells[0].to_owned(), (n(1), n(3)));
    }
    rows
}

/// The number of requests Gatling could not build, from the errors table of
/// its final console output (`> <name>: No attribute ...   3 (50%)`).
fn console_build_errors(stdout_log: &Path) -> u64 {
    let text = std::fs::read_to_string(stdout_log).expect("stdout.log");
    let Some(errors) = text.rfind("---- Errors ----") else {
        return 0;
    };
    text[errors..]
        .lines()
        .skip(1)
        .map_while(|l| l.strip_prefix("> "))
        .filter(|l| l.contains("No attribute named"))
        .map(|l| {
            let before_pct = l.rsplit_once('(').map_or(l, |(a, _)| a).trim_end();
            let n = before_pct.rsplit(' ').next().expect("count");
            n.parse::<u64>().expect("count")
        })
        .sum()
}

/// The Gatling work directory (`<run>/gatling`) of node `name`'s only run.
fn node_gatling_dir(cluster: &Cluster, name: &str) -> PathBuf {
    let runs = cluster.ws.path().join(format!("node-{name}/runs"));
    std::fs::read_dir(&runs)
        .unwrap_or_else(|e| panic!("{}: {e}", runs.display()))
        .flatten()
        .map(|e| e.path().join("gatling"))
        .find(|p| p.is_dir())
        .unwrap_or_else(|| panic!("no Gatling run under {}", runs.display()))
}

/// The `simulation.log` under a Gatling work directory.
fn simulation_log(gatling_dir: &Path) -> PathBuf {
    let results = gatling_dir.join("results");
    std::fs::read_dir(&results)
        .unwrap_or_else(|e| panic!("{}: {e}", results.display()))
        .flatten()
        .map(|e| e.path().join("simulation.log"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("no simulation.log under {}", results.display()))
}

/// bfgg's summary by request name: (requests, errors).
fn bfgg_counts(s: &serde_json::Value) -> BTreeMap<String, (u64, u64)> {
    s["by_name"]
        .as_object()
        .expect("by_name")
        .iter()
        .map(|(name, v)| {
            (
                name.clone(),
                (
                    v["requests"].as_u64().expect("requests"),
                    v["errors"].as_u64().expect("errors"),
                ),
            )
        })
        .collect()
}

/// Every message of the run's grouped errors.
fn error_messages(s: &serde_json::Value) -> Vec<String> {
    s["total"]["error_groups"]
        .as_array()
        .expect("error_groups")
        .iter()
        .map(|g| g["message"].as_str().expect("message").to_owned())
        .collect()
}

#[test]
fn a_local_gatling_run_counts_what_gatling_counted_and_keeps_its_report() {
    let Some(()) = gatling_tools() else { return };
    let target = Target::start(&["--error-rate", "0.3"]);
    let ws = Workspace::new();
    scenario(
        &ws,
        &target.url,
        "properties = { duration = 3, anonymousPercent = 40 }\n\
         split = { users = 4, rate = 10 }\nkeep_native_report = true",
        "60s",
    );
    // 34 users (4 at once, 10 a second for 3 s), 40 % of them anonymous, 30 %
    // of responses 503: both kinds of KO and the unbuildable request are
    // all but certain (the chance of missing one is below 1e-5).
    // Thresholds judge Gatling's requests like any others.
    let toml = ws.path().join("gatling.toml");
    let text = std::fs::read_to_string(&toml).expect("toml");
    std::fs::write(
        &toml,
        text.replace(
            "engine = \"gatling\"",
            "engine = \"gatling\"\nthresholds = [\"requests[home] > 5\", \"error_rate < 1%\", \"p99[auth / login] < 60s\"]",
        ),
    )
    .expect("write");
    // From the workspace with a relative --out: the JVM runs elsewhere (in
    // the build's directory) and must still write where bfgg reads.
    let mut cmd = crate::harness::bfgg(ws.path());
    cmd.current_dir(ws.path())
        .args(["run", "gatling.toml", "--out", "out", "--json"]);
    let out = run_with_timeout(cmd, Duration::from_secs(300));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "a failed threshold: {stderr}");
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).expect("summary");
    let passed: Vec<bool> = s["thresholds"]
        .as_array()
        .expect("thresholds")
        .iter()
        .map(|t| t["passed"].as_bool().expect("passed"))
        .collect();
    assert_eq!(passed, [true, false, true], "{s:#}");
    let gatling = ws.out_dir().join("gatling");
    let console = console_counts(&gatling.join("stdout.log"));
    let build_errors = console_build_errors(&gatling.join("stdout.log"));
    let ours = bfgg_counts(&s);
    // Every request name as Gatling counted it, KO as errors...
    for (name, counts) in &console {
        if name != "Global" {
            assert_eq!(
                ours.get(name),
                Some(counts),
                "{name}: {ours:?} vs {console:?}"
            );
        }
    }
    // ...and the requests it could not build as failed ones.
    assert!(build_errors > 0, "anonymous users hit the stale token");
    assert_eq!(ours["me stale token"], (build_errors, build_errors));
    let total = s["total"]["requests"].as_u64().expect("requests");
    assert_eq!(total, console["Global"].0 + build_errors, "{s:#}");
    let log = count_file(&simulation_log(&gatling)).expect("simulation.log");
    assert_eq!(
        (log.requests, log.errors),
        (console["Global"].0, build_errors)
    );
    assert!(total > 20, "too little load to compare: {s:#}");
    // KO messages are Gatling's own.
    let messages = error_messages(&s);
    for wanted in [
        "status.find.is(200), found 503",
        "status.find.is(200), found 401",
    ] {
        assert!(
            messages.iter().any(|m| m == wanted),
            "{wanted}: {messages:?}"
        );
    }
    // The simulation ended by itself, long before [load]'s 60 s.
    assert_eq!(s["stop_reason"], serde_json::Value::Null, "{s:#}");
    assert_eq!(s["partial"], false, "{s:#}");
    // Gatling's own HTML report, beside its log.
    let report = simulation_log(&gatling).with_file_name("index.html");
    assert!(report.is_file(), "no {}", report.display());
    // bfgg's own results as for any run.
    assert!(ws.out_dir().join("report.html").is_file());
}

#[test]
fn a_two_agent_gatling_run_merges_exactly_what_each_gatling_logged() {
    let Some(()) = gatling_tools() else { return };
    let target = Target::start(&["--error-rate", "0.1"]);
    let cluster = Cluster::start(2, &[]);
    let file = scenario(
        &cluster.ws,
        &target.url,
        "properties = { duration = 3, anonymousPercent = 50 }\nsplit = { users = 4, rate = 7 }",
        "60s",
    );
    // Node health lists Gatling with the Maven and Java it runs on.
    for node in cluster.status() {
        let engines = node["engines"].to_string();
        assert!(
            engines.contains("gatling via maven") && engines.contains("java"),
            "{node:#}"
        );
    }
    let (code, summary, stderr) =
        wait_output(cluster.run_cluster(&file, &[]), Duration::from_secs(300));
    assert_eq!(code, 0, "{stderr}");
    let s = summary.unwrap_or_else(|| panic!("no summary: {stderr}"));
    // The plan said who gets what.
    assert!(stderr.contains("split users = 4: n"), "{stderr}");
    let agents = s["agents"].as_array().expect("agents");
    assert_eq!(agents.len(), 2, "{s:#}");
    let total = s["total"]["requests"].as_u64().expect("requests");
    assert_eq!(total, agents_sum(&s), "{s:#}");
    let mut logged = LogCounts::default();
    let mut shares = Vec::new();
    for a in agents {
        let name = a["name"].as_str().expect("name");
        let dir = node_gatling_dir(&cluster, name);
        let log = count_file(&simulation_log(&dir)).expect("simulation.log");
        // Each agent's count is exactly its own log's records.
        assert_eq!(
            a["requests"].as_u64(),
            Some(log.requests + log.errors),
            "{name}: {a} vs {log:?}"
        );
        logged.requests += log.requests;
        logged.ko += log.ko;
        logged.errors += log.errors;
        logged.users += log.users;
        let console = std::fs::read_to_string(dir.join("stdout.log")).expect("stdout.log");
        let line = console
            .lines()
            .find(|l| l.starts_with("bfgg agent "))
            .unwrap_or_else(|| panic!("{console}"))
            .to_owned();
        shares.push(line);
    }
    assert_eq!(total, logged.requests + logged.errors, "{s:#}");
    assert_eq!(
        s["total"]["errors"].as_u64(),
        Some(logged.ko + logged.errors),
        "{s:#}"
    );
    // users = 4 and rate = 7 split 2 + 2 and 4 + 3: whole numbers stay whole
    // (the simulation prints what it read).
    shares.sort();
    assert!(
        shares[0].starts_with("bfgg agent 0 of 2: users=2 rate=4.0/s"),
        "{shares:?}"
    );
    assert!(
        shares[1].starts_with("bfgg agent 1 of 2: users=2 rate=3.0/s"),
        "{shares:?}"
    );
    // Every user the two agents started: 4 at once, 7 a second for 3 s.
    assert_eq!(logged.users, 4 + 21, "{logged:?}");
    let messages = error_messages(&s);
    assert!(
        messages
            .iter()
            .any(|m| m == "status.find.is(200), found 401"),
        "{messages:?}"
    );
    assert_eq!(s["partial"], false, "{s:#}");
}

#[test]
fn a_compile_error_is_refused_before_the_start_naming_the_agent_and_the_line() {
    let Some(()) = gatling_tools() else { return };
    let target = Target::start(&[]);
    let cluster = Cluster::start(2, &[]);
    let file = scenario(&cluster.ws, &target.url, "", "30s");
    let java = cluster
        .ws
        .path()
        .join("sim/src/test/java/example/DemoSimulation.java");
    let code = std::fs::read_to_string(&java).expect("java");
    std::fs::write(&java, code.replace("setUp(", "setUpp(")).expect("break it");
    let (code, summary, stderr) =
        wait_output(cluster.run_cluster(&file, &[]), Duration::from_secs(300));
    assert_ne!(code, 0, "{summary:?}");
    assert!(summary.is_none(), "no run: {summary:?}");
    for wanted in [
        "cannot find symbol",
        "src/test/java/example/DemoSimulation.java:[",
        "setUpp",
    ] {
        assert!(stderr.contains(wanted), "{wanted}: {stderr}");
    }
    assert!(
        stderr.contains("n0") || stderr.contains("n1"),
        "the agent is named: {stderr}"
    );
    assert_eq!(
        target.stats()["total"].as_u64(),
        Some(0),
        "nothing was sent"
    );
}

#[test]
fn a_missing_simulation_class_is_refused_naming_the_ones_there() {
    let Some(()) = gatling_tools() else { return };
    let target = Target::start(&[]);
    let ws = Workspace::new();
    let file = scenario(&ws, &target.url, "", "30s");
    let text = std::fs::read_to_string(&file).expect("toml");
    std::fs::write(
        &file,
        text.replace("example.DemoSimulation", "example.Missing"),
    )
    .expect("write");
    let mut cmd = crate::harness::bfgg(ws.path());
    cmd.arg("run").arg(&file).arg("--out").arg(ws.out_dir());
    let out = run_with_timeout(cmd, Duration::from_secs(300));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(
            "the project has no class example.Missing (its simulations: example.DemoSimulation)"
        ),
        "{stderr}"
    );
    assert_eq!(target.stats()["total"].as_u64(), Some(0));
}

#[test]
fn an_agent_without_java_and_maven_is_refused_naming_it() {
    let Some(()) = gatling_tools() else { return };
    let target = Target::start(&[]);
    let mut cluster = Cluster::start(1, &[]);
    // A node whose PATH has neither java nor mvn (and no JAVA_HOME).
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
    let file = scenario(&cluster.ws, &target.url, "", "30s");
    let (code, summary, stderr) = wait_output(
        cluster.run_cluster(&file, &["--agents", "2"]),
        Duration::from_secs(120),
    );
    assert_ne!(code, 0, "{summary:?}");
    assert!(
        stderr.contains("idle without gatling: bare (gatling needs a JDK")
            && stderr.contains("Maven"),
        "names the agent and what it lacks: {stderr}"
    );
    assert_eq!(target.stats()["total"].as_u64(), Some(0));
}

#[test]
fn bfgg_stop_ends_a_two_agent_gatling_run_keeping_every_logged_request() {
    let Some(()) = gatling_tools() else { return };
    let target = Target::start(&[]);
    let cluster = Cluster::start(2, &[]);
    let file = scenario(
        &cluster.ws,
        &target.url,
        "properties = { duration = 120 }\nsplit = { users = 2, rate = 10 }",
        "150s",
    );
    let child = cluster.run_cluster(&file, &[]);
    let run_id = wait_for_run_id(&cluster, Duration::from_secs(120));
    target.wait_for_requests(100, Duration::from_secs(120));
    let jvms = || processes_mentioning(&format!("/runs/{run_id}/gatling")).len();
    assert_eq!(jvms(), 2, "one JVM on each agent");
    let stop_at = Instant::now();
    cluster.stop_run(&run_id);
    let (code, summary, stderr) = wait_output(child, Duration::from_secs(60));
    assert_eq!(code, 0, "{stderr}");
    let s = summary.expect("summary");
    assert_eq!(s["stopped_early"], true, "{s:#}");
    assert!(
        stop_at.elapsed() < Duration::from_secs(30),
        "the stop ended the run"
    );
    assert_eq!(jvms(), 0, "no JVM left on either agent");
    let mut logged = 0;
    for name in ["n0", "n1"] {
        let log = count_file(&simulation_log(&node_gatling_dir(&cluster, name)))
            .expect("a whole simulation.log: the JVM flushed it on SIGTERM");
        logged += log.requests + log.errors;
    }
    assert_eq!(
        s["total"]["requests"].as_u64(),
        Some(logged),
        "every logged request kept: {s:#}"
    );
    assert!(logged >= 100, "{logged}");
    // The target served what was logged, give or take requests in flight
    // when the JVMs stopped.
    let served = target.stats()["total"].as_u64().expect("served");
    assert!(
        served >= logged && served <= logged + 20,
        "{served} vs {logged}"
    );
}

#[test]
fn check_builds_the_project_and_says_how_the_split_divides() {
    let Some(()) = gatling_tools() else { return };
    let ws = Workspace::new();
    let file = scenario(
        &ws,
        "http://127.0.0.1:9",
        "split = { users = 5, vusers = 2 }",
        "30s",
    );
    let check = |extra: &[&str]| {
        let mut cmd = crate::harness::bfgg(ws.path());
        cmd.arg("check").arg(&file).args(extra);
        let out = run_with_timeout(cmd, Duration::from_secs(300));
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = check(&[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    for wanted in [
        "engine gatling, simulation example.DemoSimulation",
        "split users = 5: agent 1 3, agent 2 2",
        // The demo never reads "vusers": said, not silently run in full.
        "warning: the simulation's sources never mention \"vusers\"",
        "compiles and has example.DemoSimulation",
    ] {
        assert!(stdout.contains(wanted), "{wanted}: {stdout}");
    }
    // No split: every agent runs it all, and check says so.
    let text = std::fs::read_to_string(&file).expect("toml");
    std::fs::write(&file, text.replace("split = { users = 5, vusers = 2 }", "")).expect("write");
    let (code, stdout, _) = check(&[]);
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("no split: every agent runs the whole simulation"),
        "{stdout}"
    );
    // --dry-run is the native engine's: refused, with why.
    let (code, _, stderr) = check(&["--dry-run"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--dry-run"), "{stderr}");
    // A compile error fails the check with the compiler's words.
    let java = ws
        .path()
        .join("sim/src/test/java/example/DemoSimulation.java");
    let code_text = std::fs::read_to_string(&java).expect("java");
    std::fs::write(&java, code_text.replace("setUp(", "setUpp(")).expect("break it");
    let (code, _, stderr) = check(&[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("cannot find symbol"), "{stderr}");
}

#[test]
fn a_jvm_that_dies_mid_run_is_reported_and_what_it_logged_is_kept() {
    let Some(()) = gatling_tools() else { return };
    let target = Target::start(&[]);
    let ws = Workspace::new();
    let file = scenario(
        &ws,
        &target.url,
        "properties = { duration = 60 }\nsplit = { users = 2, rate = 20 }",
        "90s",
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
    // Past a few of Gatling's 8 KiB log buffers (~250 requests each).
    target.wait_for_requests(1000, Duration::from_secs(120));
    // This run's JVM: its preferences live in this run's results.
    let jvm = processes_mentioning(&format!("{}/gatling/prefs", ws.out_dir().display()));
    assert_eq!(jvm.len(), 1, "{jvm:?}");
    let killed_at = Instant::now();
    let ok = Command::new("kill")
        .args(["-9", &jvm[0].to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -9 {}", jvm[0]);
    let (_, summary, stderr) = wait_output(child, Duration::from_secs(60));
    assert!(
        killed_at.elapsed() < Duration::from_secs(20),
        "the run ended with the JVM"
    );
    let s = summary.unwrap_or_else(|| panic!("no summary: {stderr}"));
    let reason = s["stop_reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("Gatling ended during the run: killed by signal 9"),
        "{s:#}"
    );
    assert!(
        reason.contains("---- Requests ----") && reason.contains("> Global"),
        "the tail of its output: {reason}"
    );
    assert_eq!(s["stopped_early"], true, "{s:#}");
    // What reached the log is kept; the JVM's unflushed buffer died with it.
    let requests = s["total"]["requests"].as_u64().expect("requests");
    let served = target.stats()["total"].as_u64().expect("served");
    assert!(
        requests >= 500 && served >= requests,
        "{requests} of {served}"
    );
    let logged = count_file(&simulation_log(&ws.out_dir().join("gatling")));
    // The log may end mid-record (killed mid-write): what decodes is counted.
    if let Ok(log) = logged {
        assert_eq!(requests, log.requests + log.errors);
    }
}
