//! `bfgg node` processes on 127.0.0.1 joined with `--join` (mDNS does not
//! cross loopback): distributed runs whose merged totals equal the sum of
//! the agents' own counts, stop from another process, agent and coordinator
//! loss, a node with another key, malformed messages.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::harness::{Target, Workspace, bfgg_bin, run_with_timeout};

/// A cluster key in go-ipfs swarm.key format.
pub(crate) fn key_text(byte: u8) -> String {
    format!(
        "/key/swarm/psk/1.0.0/\n/base16/\n{}\n",
        format!("{byte:02x}").repeat(32)
    )
}

/// A `bfgg node` child, killed on drop.
pub(crate) struct Node {
    child: Child,
    /// Its listen multiaddr with `/p2p/<id>`.
    pub(crate) addr: String,
    /// Its peer id.
    pub(crate) id: String,
    /// Stdout lines after the first (for debugging).
    _lines: mpsc::Receiver<String>,
}

impl Node {
    /// `key`: `--cluster-key-file`, or `None` for the host's default key.
    pub(crate) fn start(
        ws: &Path,
        name: &str,
        key: Option<&Path>,
        join: &[&str],
        extra: &[&str],
    ) -> Node {
        Self::start_env(ws, name, key, join, extra, &[])
    }

    /// The same, with environment variables `env` set for the node.
    pub(crate) fn start_env(
        ws: &Path,
        name: &str,
        key: Option<&Path>,
        join: &[&str],
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Node {
        let data = ws.join(format!("node-{name}"));
        let mut cmd = Command::new(bfgg_bin());
        cmd.args([
            "node",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--no-mdns",
            "--name",
            name,
        ])
        .arg("--data-dir")
        .arg(&data)
        .args([
            "--unresponsive-after",
            "3s",
            "--dead-after",
            "5s",
            "--workers",
            "1",
        ])
        .args(extra)
        .env("HOME", ws)
        .env("XDG_CONFIG_HOME", ws.join("config"))
        .env("XDG_DATA_HOME", ws.join("data"))
        .env("BFGG_LOG", "bfgg_node=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(
            std::fs::File::create(ws.join(format!("node-{name}.log"))).expect("log file"),
        ));
        for j in join {
            cmd.args(["--join", j]);
        }
        cmd.envs(env.iter().copied());
        if let Some(key) = key {
            cmd.arg("--cluster-key-file").arg(key);
        }
        let mut child = cmd.spawn().expect("spawn bfgg node");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("node {name} did not report its address within 30 s"));
        let v: serde_json::Value = serde_json::from_str(&line).expect("listening line is JSON");
        let addr = v["listening"].as_str().expect("listening").to_string();
        let id = v["node"].as_str().expect("node id").to_string();
        assert!(addr.starts_with("/ip4/127.0.0.1/"), "{addr}");
        let addr = if addr.contains("/p2p/") {
            addr
        } else {
            format!("{addr}/p2p/{id}")
        };
        Node {
            child,
            addr,
            id,
            _lines: rx,
        }
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, as a crash.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

pub(crate) struct Cluster {
    pub(crate) ws: Workspace,
    pub(crate) key: PathBuf,
    pub(crate) nodes: Vec<Node>,
}

impl Cluster {
    /// `n` nodes; every node after the first joins the first. `labels[i]`
    /// are passed to node i.
    pub(crate) fn start(n: usize, labels: &[&str]) -> Cluster {
        Self::start_with(n, labels, &[])
    }

    /// The same, every node started with the `bfgg node` flags `flags`.
    pub(crate) fn start_with(n: usize, labels: &[&str], flags: &[&str]) -> Cluster {
        let ws = Workspace::new();
        let key = ws.write("cluster.key", &key_text(0x42));
        let mut nodes: Vec<Node> = Vec::new();
        for i in 0..n {
            let mut extra = flags.to_vec();
            if let Some(l) = labels.get(i).filter(|l| !l.is_empty()) {
                extra.extend(["--labels", l]);
            }
            let join: Vec<String> = nodes.first().map(|f| f.addr.clone()).into_iter().collect();
            let join: Vec<&str> = join.iter().map(String::as_str).collect();
            nodes.push(Node::start(
                ws.path(),
                &format!("n{i}"),
                Some(&key),
                &join,
                &extra,
            ));
        }
        let c = Cluster { ws, key, nodes };
        c.wait_for_nodes(n);
        c
    }

    pub(crate) fn bfgg(&self) -> Command {
        let mut cmd = crate::harness::bfgg(self.ws.path());
        cmd.env("BFGG_LOG", "warn");
        cmd
    }

    pub(crate) fn status(&self) -> Vec<serde_json::Value> {
        status_json(self.ws.path(), &self.nodes[0].addr, Some(&self.key))
    }

    /// Waits until `bfgg status` sees `n` alive idle nodes.
    pub(crate) fn wait_for_nodes(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            let nodes = self.status();
            let alive = nodes.iter().filter(|v| v["liveness"] == "alive").count();
            if alive >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "only {alive} of {n} nodes alive: {nodes:#?}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// `bfgg stop RUN` through the second node; asserts it succeeded.
    pub(crate) fn stop_run(&self, run_id: &str) {
        let mut cmd = self.bfgg();
        cmd.args(["stop", run_id, "--no-mdns", "--join", &self.nodes[1].addr])
            .arg("--cluster-key-file")
            .arg(&self.key);
        let out = run_with_timeout(cmd, Duration::from_secs(60));
        assert!(
            out.status.success(),
            "stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `bfgg run --cluster` as a child (not waited for).
    pub(crate) fn run_cluster(&self, scenario: &Path, extra: &[&str]) -> Child {
        self.run_cluster_to(scenario, &self.ws.out_dir(), extra)
    }

    /// `bfgg run --cluster` to its end within `limit`: exit 0, its summary.
    pub(crate) fn finished_run(
        &self,
        scenario: &Path,
        extra: &[&str],
        limit: Duration,
    ) -> serde_json::Value {
        let (code, summary, stderr) = wait_output(self.run_cluster(scenario, extra), limit);
        assert_eq!(code, 0, "{stderr}");
        summary.unwrap_or_else(|| panic!("no summary: {stderr}"))
    }

    /// The same, writing its results to `out`.
    fn run_cluster_to(&self, scenario: &Path, out: &Path, extra: &[&str]) -> Child {
        let mut cmd = self.bfgg();
        cmd.arg("run")
            .arg(scenario)
            .args([
                "--cluster",
                "--no-mdns",
                "--json",
                "--join",
                &self.nodes[0].addr,
            ])
            .arg("--cluster-key-file")
            .arg(&self.key)
            .arg("--out")
            .arg(out)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn().expect("spawn bfgg run --cluster")
    }
}

pub(crate) fn wait_output(
    child: Child,
    limit: Duration,
) -> (i32, Option<serde_json::Value>, String) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx
        .recv_timeout(limit)
        .unwrap_or_else(|_| panic!("bfgg run --cluster did not finish within {limit:?}"))
        .expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_slice(&out.stdout).ok(),
        stderr,
    )
}

pub(crate) fn scenario(ws: &Workspace, target: &Target, model: &str, duration: &str) -> PathBuf {
    let load = match model {
        "open" => "model = \"open\"\nrate = 300",
        _ => "model = \"closed\"\nusers = 6",
    };
    ws.write(
        "cluster.toml",
        &format!(
            r#"
[scenario]
name = "cluster"
[target]
base_url = "{}"
[load]
{load}
duration = "{duration}"
graceful_stop = "1s"
[[request]]
name = "home"
path = "/"
"#,
            target.url
        ),
    )
}

/// The sum of the agents' own request counts in a cluster summary.
pub(crate) fn agents_sum(s: &serde_json::Value) -> u64 {
    s["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .map(|a| a["requests"].as_u64().expect("requests"))
        .sum()
}

fn u(v: &serde_json::Value, path: &str) -> u64 {
    v.pointer(path)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or_else(|| panic!("missing {path} in {v:#}"))
}

#[test]
fn a_three_node_run_merges_exactly_what_the_agents_measured() {
    let target = Target::start(&["--latency", "1ms"]);
    let cluster = Cluster::start(3, &[]);
    let file = scenario(&cluster.ws, &target, "open", "4s");
    let (code, summary, stderr) =
        wait_output(cluster.run_cluster(&file, &[]), Duration::from_secs(90));
    assert_eq!(code, 0, "{stderr}");
    let s = summary.unwrap_or_else(|| panic!("no summary: {stderr}"));
    let agents = s["agents"].as_array().expect("agents");
    assert_eq!(agents.len(), 3, "{s:#}");
    let sum = agents_sum(&s);
    assert_eq!(
        u(&s, "/total/requests"),
        sum,
        "totals are the sum of the agents' counts"
    );
    // 300/s for 4 s, split exactly: every arrival sent once.
    assert_eq!(sum, 1200, "{s:#}");
    assert_eq!(target.stats()["total"].as_u64(), Some(sum));
    assert_eq!(s["partial"], false);
    for a in agents {
        assert_eq!(a["status"], "complete", "{a}");
        let n = a["requests"].as_u64().expect("requests");
        assert!((350..=450).contains(&n), "an even share: {a}");
        assert!(a["clock_offset_ms"].as_f64().expect("offset").abs() < 100.0);
        // Every agent gossiped (health and live intervals) and says how much.
        assert!(a["mesh_bytes_per_s"].as_f64().expect("gossip") > 0.0, "{a}");
    }
    // The local results directory looks like a local run's.
    let out = cluster.ws.out_dir();
    for f in [
        "summary.json",
        "timeseries.csv",
        "latency.hlog",
        "scenario.toml",
        "report.html",
        "junit.xml",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // The report has a row per agent.
    let html = std::fs::read_to_string(out.join("report.html")).expect("report.html");
    assert!(html.contains("id=\"agents\""), "agents table");
    for a in agents {
        let name = a["name"].as_str().expect("name");
        assert!(html.contains(&format!(">{name}</td>")), "row for {name}");
    }
    // The coordinator's results have each agent's curve: agents.csv, whose
    // rows add up to each agent's count and, per second, to the merged one.
    let run = wait_for_run_id(&cluster, Duration::from_secs(5));
    let results = cluster
        .ws
        .path()
        .join(format!("node-n0/runs/{run}/results"));
    let csv = std::fs::read_to_string(results.join("agents.csv")).expect("agents.csv");
    let mut per_agent: std::collections::BTreeMap<String, u64> = Default::default();
    let mut per_second: std::collections::BTreeMap<u64, u64> = Default::default();
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let n: u64 = f[2].parse().expect("requests");
        *per_agent.entry(f[1].to_owned()).or_default() += n;
        *per_second.entry(f[0].parse().expect("second")).or_default() += n;
    }
    for a in agents {
        assert_eq!(
            per_agent.get(a["name"].as_str().expect("name")).copied(),
            a["requests"].as_u64(),
            "{csv}"
        );
    }
    let merged = std::fs::read_to_string(results.join("timeseries.csv")).expect("timeseries");
    for line in merged
        .lines()
        .skip(1)
        .filter(|l| l.split(',').nth(1) == Some("*"))
    {
        let f: Vec<&str> = line.split(',').collect();
        let second: u64 = f[0].parse().expect("second");
        assert_eq!(
            per_second.get(&second).copied().unwrap_or(0),
            f[2].parse::<u64>().expect("requests"),
            "second {second}"
        );
    }
    let report = std::fs::read_to_string(results.join("report.html")).expect("report");
    assert!(report.contains("By agent"), "per-agent curves");
    // The client fetched the same curves with the results.
    assert_eq!(
        std::fs::read_to_string(out.join("agents.csv")).expect("client's agents.csv"),
        csv
    );
    assert!(
        html.contains("By agent"),
        "the client's report has them too"
    );
}

/// A 12 s open-model run at 40/s on nodes serving at most 3 intervals per
/// page of their logs, so every log crosses several pages. Two agents, the
/// coordinator (node 0, joined by the client) among them or not.
fn run_across_log_pages(coordinator_is_agent: bool) -> (serde_json::Value, Cluster) {
    let target = Target::start(&[]);
    let labels: &[&str] = if coordinator_is_agent {
        &["role=agent", "role=agent"]
    } else {
        &["", "role=agent", "role=agent"]
    };
    let cluster = Cluster::start_with(labels.len(), labels, &["--page-intervals", "3"]);
    let file = cluster.ws.write(
        "pages.toml",
        &format!(
            r#"
[scenario]
name = "pages"
[target]
base_url = "{}"
[load]
model = "open"
rate = 40
duration = "12s"
graceful_stop = "2s"
[[request]]
name = "home"
path = "/"
"#,
            target.url
        ),
    );
    let s = cluster.finished_run(&file, &["--labels", "role=agent"], Duration::from_secs(120));
    // Exactly the schedule: 40/s for 12 s, measured and merged.
    assert_eq!(u(&s, "/generator/scheduled"), 480, "{s:#}");
    assert_eq!(u(&s, "/total/requests"), 480, "{s:#}");
    assert_eq!(agents_sum(&s), 480, "{s:#}");
    assert_eq!(target.stats()["total"].as_u64(), Some(480));
    assert_eq!(s["partial"], false, "{s:#}");
    let agents = s["agents"].as_array().expect("agents");
    assert_eq!(agents.len(), 2, "{s:#}");
    let coordinator_took_part = agents
        .iter()
        .any(|a| a["node"] == cluster.nodes[0].id.as_str());
    assert_eq!(coordinator_took_part, coordinator_is_agent, "{s:#}");
    for a in agents {
        assert_eq!(a["status"], "complete", "{a}");
        assert_eq!(a["missing_intervals"], serde_json::json!([]), "{a}");
    }
    // The client stored every interval the coordinator merged (13 pages of
    // 3 and more), whose sums are the summary's.
    let out = cluster.ws.out_dir();
    let csv = std::fs::read_to_string(out.join("timeseries.csv")).expect("timeseries.csv");
    let header: Vec<&str> = csv.lines().next().expect("header").split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == "requests")
        .expect("requests column");
    let rows: Vec<u64> = csv
        .lines()
        .skip(1)
        .filter(|l| l.split(',').nth(1) == Some("*"))
        .map(|l| {
            l.split(',')
                .nth(col)
                .and_then(|v| v.parse().ok())
                .expect("count")
        })
        .collect();
    assert!(rows.len() >= 12, "{csv}");
    assert_eq!(rows.iter().sum::<u64>(), 480, "{csv}");
    assert!(out.join("intervals.log").is_file());
    (s, cluster)
}

#[test]
fn a_run_longer_than_a_log_page_loses_nothing_with_the_coordinator_as_an_agent() {
    let (_, cluster) = run_across_log_pages(true);
    // The agents' logs are deleted once the results are written, and the
    // coordinator's book of the run left its memory: status comes from disk.
    for i in 0..2 {
        let agent = cluster.ws.path().join(format!("node-n{i}/agent"));
        let left: Vec<_> = std::fs::read_dir(&agent)
            .into_iter()
            .flatten()
            .flatten()
            .collect();
        assert!(
            left.is_empty(),
            "logs left in {}: {left:?}",
            agent.display()
        );
    }
}

#[test]
fn a_run_longer_than_a_log_page_loses_nothing_without_the_coordinator_as_an_agent() {
    run_across_log_pages(false);
}

#[test]
fn a_run_is_stopped_from_a_fourth_process() {
    let target = Target::start(&[]);
    let cluster = Cluster::start(3, &[]);
    let file = scenario(&cluster.ws, &target, "closed", "60s");
    let child = cluster.run_cluster(&file, &[]);
    // Wait for the run id on stderr ("run <id> on 3 agents ...").
    let run_id = wait_for_run_id(&cluster, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    let started = Instant::now();
    cluster.stop_run(&run_id);
    let stopped_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let (code, summary, stderr) = wait_output(child, Duration::from_secs(60));
    assert_eq!(code, 0, "{stderr}");
    let s = summary.expect("summary");
    assert_eq!(s["stopped_early"], true, "{s:#}");
    assert!(s["duration_s"].as_f64().expect("duration") < 30.0);
    // Every agent's load ended within a second of `bfgg stop` returning (the
    // coordinator answers once it has told every agent). Same host, same
    // clock; duration_s is the longest agent's load time.
    let load_end_ms =
        u(&s, "/started_at_ms") as f64 + s["duration_s"].as_f64().expect("d") * 1000.0;
    assert!(
        load_end_ms <= stopped_ms as f64 + 1000.0,
        "load ended {} ms after the stop returned: {s:#}",
        load_end_ms - stopped_ms as f64
    );
    assert!(started.elapsed() < Duration::from_secs(40));
    let sum = agents_sum(&s);
    assert!(sum > 0);
    assert_eq!(u(&s, "/total/requests"), sum);
}

/// `bfgg status --json` joined to `join`, with `key` or the host's default.
fn status_json(home: &Path, join: &str, key: Option<&Path>) -> Vec<serde_json::Value> {
    let tmp = home.join("status-tmp");
    std::fs::create_dir_all(&tmp).expect("tmp dir");
    let mut cmd = crate::harness::bfgg(home);
    cmd.env("TMPDIR", &tmp).env("BFGG_LOG", "warn").args([
        "status",
        "--json",
        "--no-mdns",
        "--wait",
        "2s",
        "--join",
        join,
    ]);
    if let Some(key) = key {
        cmd.arg("--cluster-key-file").arg(key);
    }
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The light peer's throwaway identity leaves nothing behind.
    let left: Vec<_> = std::fs::read_dir(&tmp).expect("tmp").flatten().collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");
    serde_json::from_slice(&out.stdout).expect("status json")
}

/// Waits until each of `nodes` has a run in its data dir (runs/<id>/): it
/// has accepted a share of one.
fn wait_until_agents_hold_a_run(cluster: &Cluster, nodes: &[usize], limit: Duration) {
    let deadline = Instant::now() + limit;
    for i in nodes {
        let runs = cluster.ws.path().join(format!("node-n{i}/runs"));
        while !std::fs::read_dir(&runs).is_ok_and(|mut d| d.next().is_some()) {
            assert!(Instant::now() < deadline, "node n{i} never took a run");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Reads the run id from the coordinator's data dir (runs/<id>/).
pub(crate) fn wait_for_run_id(cluster: &Cluster, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        for i in 0..cluster.nodes.len() {
            let runs = cluster.ws.path().join(format!("node-n{i}/runs"));
            if let Some(e) = std::fs::read_dir(&runs)
                .ok()
                .and_then(|mut entries| entries.find_map(Result::ok))
            {
                return e.file_name().to_string_lossy().to_string();
            }
        }
        assert!(Instant::now() < deadline, "no run appeared");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the coordinator (node 0) keeps a live copy of node `agent`'s
/// intervals of `run` (it appears with the agent's first interval) and
/// returns its path; after 30 s fails the test with the nodes' logs.
fn wait_for_live_copy(cluster: &Cluster, run: &str, agent: usize) -> PathBuf {
    let path = cluster.ws.path().join(format!(
        "node-n0/runs/{run}/live/{}.log",
        cluster.nodes[agent].id
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.is_file() {
        if Instant::now() > deadline {
            let logs: String = (0..cluster.nodes.len())
                .map(|i| {
                    let log = cluster.ws.path().join(format!("node-n{i}.log"));
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    let lines: Vec<&str> = text.lines().collect();
                    let tail = lines[lines.len().saturating_sub(40)..].join("\n");
                    format!("--- node {i}:\n{tail}\n")
                })
                .collect();
            panic!("{} missing after 30 s\n{logs}", path.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    path
}

#[test]
fn losing_an_agent_mid_run_completes_the_run_marked_partial() {
    let (s, cluster) = run_losing_an_agent("open", "10s", &[]);
    let lost = lost_agent(&s);
    assert!(
        !lost["missing_intervals"]
            .as_array()
            .expect("gaps")
            .is_empty(),
        "gaps named: {s:#}"
    );
    assert!(lost["rebalanced_at_ms"].is_null(), "no --rebalance: {s:#}");
    // No thresholds: junit.xml's one case fails, naming the lost agent.
    let junit = std::fs::read_to_string(cluster.ws.out_dir().join("junit.xml")).expect("junit.xml");
    assert!(
        junit.contains("failures=\"1\"") && junit.contains("type=\"partial\""),
        "{junit}"
    );
}

#[test]
fn losing_the_coordinator_mid_run_another_node_finishes_it() {
    let target = Target::start(&[]);
    let mut cluster = Cluster::start(3, &["", "role=agent", "role=agent"]);
    let file = scenario(&cluster.ws, &target, "open", "10s");
    let child = cluster.run_cluster(&file, &["--labels", "role=agent"]);
    let run = wait_for_run_id(&cluster, Duration::from_secs(30));
    // Mid-run: once the coordinator holds an agent's first interval (not a
    // fixed time, which a loaded box may spend preparing), plus two more.
    wait_for_live_copy(&cluster, &run, 1);
    std::thread::sleep(Duration::from_secs(2));
    // Node 0 coordinates (the client joined it) and takes no share.
    cluster.nodes[0].kill();
    let (code, summary, stderr) = wait_output(child, Duration::from_secs(120));
    assert_eq!(code, 0, "{stderr}");
    let s = summary.expect("summary");
    assert_eq!(s["partial"], false, "both agents finished: {s:#}");
    let sum = agents_sum(&s);
    assert_eq!(u(&s, "/total/requests"), sum);
    // 300/s for 10 s: nothing the agents measured was lost with the coordinator.
    assert_eq!(sum, 3000, "{s:#}");
    assert_eq!(target.stats()["total"].as_u64(), Some(sum));
}

#[test]
fn a_node_with_another_key_never_joins() {
    let cluster = Cluster::start(2, &[]);
    let other_key = cluster.ws.write("other.key", &key_text(0x77));
    let stranger = Node::start(
        cluster.ws.path(),
        "stranger",
        Some(&other_key),
        &[&cluster.nodes[0].addr],
        &[],
    );
    std::thread::sleep(Duration::from_secs(4));
    let nodes = cluster.status();
    assert_eq!(nodes.len(), 2, "{nodes:#?}");
    assert!(nodes.iter().all(|n| n["node"] != stranger.id.as_str()));
}

#[test]
fn concurrent_runs_use_disjoint_agents_and_a_busy_group_refuses_a_third() {
    let target = Target::start(&[]);
    let cluster = Cluster::start(3, &["", "group=a", "group=b"]);
    let file = scenario(&cluster.ws, &target, "open", "5s");
    let out_a = cluster.ws.path().join("out-a");
    let out_b = cluster.ws.path().join("out-b");
    let a = cluster.run_cluster_to(&file, &out_a, &["--labels", "group=a"]);
    let b = cluster.run_cluster_to(&file, &out_b, &["--labels", "group=b"]);
    // Both agents hold their run (its bundle is in their data dir).
    wait_until_agents_hold_a_run(&cluster, &[1, 2], Duration::from_secs(30));
    // Group a's only agent is busy: a third run for it finds no idle agent.
    let third = cluster.run_cluster_to(
        &file,
        &cluster.ws.path().join("out-c"),
        &["--labels", "group=a"],
    );
    let (code, summary, stderr) = wait_output(third, Duration::from_secs(60));
    assert_eq!(code, 2, "a third run on a busy group is refused: {stderr}");
    assert!(summary.is_none());
    assert!(stderr.contains("agent"), "the refusal says why: {stderr}");
    let mut seen = Vec::new();
    for (child, node) in [(a, &cluster.nodes[1]), (b, &cluster.nodes[2])] {
        let (code, summary, stderr) = wait_output(child, Duration::from_secs(90));
        assert_eq!(code, 0, "{stderr}");
        let s = summary.expect("summary");
        let agents = s["agents"].as_array().expect("agents");
        assert_eq!(agents.len(), 1, "{s:#}");
        assert_eq!(agents[0]["node"], node.id.as_str(), "{s:#}");
        assert_eq!(u(&s, "/total/requests"), 1500, "300/s for 5 s: {s:#}");
        seen.push(u(&s, "/total/requests"));
    }
    assert_eq!(
        target.stats()["total"].as_u64(),
        Some(seen.iter().sum::<u64>()),
        "the target served both runs and nothing else"
    );
}

/// A run of `duration` on two agents (with `flags`); the second agent is
/// SIGKILLed a few seconds in. Checks what every such run must show (exit 0,
/// partial, the agent named lost with when it was last heard, totals equal
/// to the agents' sum) and returns the summary and the cluster.
fn run_losing_an_agent(
    model: &str,
    duration: &str,
    flags: &[&str],
) -> (serde_json::Value, Cluster) {
    let target = Target::start(&[]);
    let mut cluster = Cluster::start(3, &["", "role=agent", "role=agent"]);
    let file = scenario(&cluster.ws, &target, model, duration);
    let mut args = vec!["--labels", "role=agent"];
    args.extend(flags);
    let child = cluster.run_cluster(&file, &args);
    let run = wait_for_run_id(&cluster, Duration::from_secs(30));
    // The coordinator (node 0, joined by the client) keeps the agents'
    // gossiped intervals on disk, not in memory: the copy appears with the
    // agent's first interval. Kill the agent a couple of intervals later
    // (waiting for the copy, not a fixed time: a loaded CI box may take
    // seconds to prepare and start).
    let copies = wait_for_live_copy(&cluster, &run, 2);
    std::thread::sleep(Duration::from_secs(2));
    cluster.nodes[2].kill();
    assert!(copies.is_file(), "{} removed mid-run", copies.display());
    let (code, summary, stderr) = wait_output(child, Duration::from_secs(120));
    assert_eq!(code, 0, "{stderr}");
    let s = summary.expect("summary");
    assert_eq!(s["partial"], true, "{s:#}");
    let agents = s["agents"].as_array().expect("agents");
    let lost: Vec<&serde_json::Value> = agents.iter().filter(|a| a["status"] == "lost").collect();
    assert_eq!(lost.len(), 1, "{s:#}");
    assert_eq!(lost[0]["node"], cluster.nodes[2].id.as_str());
    assert!(lost[0]["last_heard_ms"].as_u64().is_some(), "{s:#}");
    // What it measured before it died is kept: the coordinator's copies of
    // its gossiped intervals (on disk while the run lasts, removed once the
    // results are written).
    assert!(lost[0]["requests"].as_u64().is_some_and(|n| n > 0), "{s:#}");
    let runs = cluster.ws.path().join("node-n0/runs");
    for run in std::fs::read_dir(&runs).into_iter().flatten().flatten() {
        assert!(
            !run.path().join("live").exists(),
            "live copies left in {}",
            run.path().display()
        );
    }
    let sum = agents_sum(&s);
    assert_eq!(u(&s, "/total/requests"), sum);
    (s, cluster)
}

/// The one agent of `s` reported lost.
fn lost_agent(s: &serde_json::Value) -> &serde_json::Value {
    s["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .find(|a| a["status"] == "lost")
        .expect("a lost agent")
}

/// A 20 s `--rebalance` run losing an agent: its share moved after it was
/// last heard.
fn rebalanced_run(model: &str) -> (serde_json::Value, Cluster) {
    let (s, cluster) = run_losing_an_agent(model, "20s", &["--rebalance"]);
    let lost = lost_agent(&s);
    let moved_at = lost["rebalanced_at_ms"].as_u64().expect("rebalanced");
    assert!(moved_at > lost["last_heard_ms"].as_u64().expect("last heard"));
    (s, cluster)
}

#[test]
fn with_rebalance_a_lost_agents_arrivals_move_to_the_live_one() {
    let (s, cluster) = rebalanced_run("open");
    let agents = s["agents"].as_array().expect("agents");
    let moved_at = agents
        .iter()
        .find_map(|a| a["rebalanced_at_ms"].as_u64())
        .expect("rebalanced");
    let live = agents
        .iter()
        .find(|a| a["node"] == cluster.nodes[1].id.as_str())
        .expect("the live agent is reported");
    // Its own half is 150/s for 20 s = 3,000; from the take-over on it runs
    // the lost half too (about 150/s for the rest of the run).
    let n = live["requests"].as_u64().expect("requests");
    let run_end_ms = u(&s, "/started_at_ms") + 20_000;
    let expected_extra = 150 * run_end_ms.saturating_sub(moved_at) / 1000;
    assert!(
        expected_extra >= 600,
        "the loss was noticed too late to test: {s:#}"
    );
    assert!(
        n >= 3_000 + expected_extra * 8 / 10,
        "live agent ran {n}, expected about {expected_extra} more than 3,000: {s:#}"
    );
}

#[test]
fn with_rebalance_a_lost_agents_users_move_to_the_live_one() {
    let (_, cluster) = rebalanced_run("closed");
    // 6 users: 3 per agent, then all 6 on the live agent. The last full
    // seconds of the merged time series show them.
    let csv = std::fs::read_to_string(cluster.ws.out_dir().join("timeseries.csv"))
        .expect("timeseries.csv");
    let header: Vec<&str> = csv.lines().next().expect("header").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).expect("column");
    let (second, name, active) = (col("second"), col("name"), col("active"));
    let active_at = |t: u64| -> u64 {
        csv.lines()
            .skip(1)
            .map(|l| l.split(',').collect::<Vec<_>>())
            .find(|f| f[name] == "*" && f[second] == t.to_string())
            .map(|f| f[active].parse().expect("active"))
            .unwrap_or_else(|| panic!("no row for second {t}: {csv}"))
    };
    let series: Vec<u64> = (0..19).map(active_at).collect();
    let lost_at = series
        .iter()
        .position(|&a| a == 3)
        .unwrap_or_else(|| panic!("the loss shows as 3 users: {csv}"));
    assert!(
        series[..lost_at].contains(&6),
        "3 users on each agent at first: {csv}"
    );
    assert_eq!(series[18], 6, "all 6 on the live agent at the end: {csv}");
}

#[test]
fn malformed_messages_from_a_raw_peer_are_dropped_counted_and_survived() {
    use bfgg_node::net::{self, ClusterKey, NetConfig, NetError, NetEvent};
    use bfgg_protocol::NodeId;
    use bfgg_protocol::mesh::{ControlRequest, ControlResponse, HEALTH_TOPIC, RUN_TOPIC};

    let cluster = Cluster::start(1, &[]);
    let node = &cluster.nodes[0];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // A libp2p peer with the key that speaks garbage.
        let mut config = NetConfig::new(
            cluster.ws.path().join("raw-peer.key"),
            ClusterKey::parse(&key_text(0x42)).expect("key"),
        );
        config.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
        config.join = vec![node.addr.clone()];
        config.mdns = false;
        let (raw, mut events) = net::spawn(config).expect("raw peer");
        let target = NodeId(node.id.clone());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(Instant::now() < deadline, "the raw peer never connected");
            if let Ok(Some(NetEvent::PeerConnected(id))) =
                tokio::time::timeout(Duration::from_millis(500), events.recv()).await
                && id == target
            {
                break;
            }
        }
        // Gossip that does not decode, on both topics, until the node has
        // subscribed peers to relay to (gossipsub needs a heartbeat or two).
        let mut published = 0;
        while published < 5 && Instant::now() < deadline {
            for topic in [HEALTH_TOPIC, RUN_TOPIC] {
                match raw
                    .publish_raw(topic, vec![0xde, 0xad, 0xbe, 0xef, published])
                    .await
                {
                    Ok(()) => published += 1,
                    Err(NetError::NoPeers) => {}
                    Err(e) => panic!("publish: {e}"),
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        assert!(published >= 5, "gossip never reached the node");
        // A control request that does not decode: refused, not answered.
        let err = raw
            .request_raw(&target, vec![0xff; 64])
            .await
            .expect_err("garbage is not answered");
        assert!(matches!(err, NetError::Request(_)), "{err:?}");
        // The node still answers a well-formed request.
        let resp = raw
            .request(&target, ControlRequest::Clock { sent_us: 7 })
            .await
            .expect("the node still answers");
        assert!(matches!(resp, ControlResponse::Clock { sent_us: 7, .. }));
    });
    drop(rt);
    // It counted them, says so in its health, and is alive.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let nodes = cluster.status();
        let me = nodes
            .iter()
            .find(|v| v["node"] == node.id.as_str())
            .expect("the node is listed");
        let dropped = me["dropped_messages"].as_u64().expect("dropped");
        if me["liveness"] == "alive" && dropped >= 6 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "expected >= 6 dropped messages on a live node: {me:#}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn unique_rows_stay_unique_across_agents_and_agents_n_picks_n() {
    let target = Target::start(&[]);
    let cluster = Cluster::start(3, &[]);
    let rows: String = (0..30).map(|i| format!("user-{i}\n")).collect();
    cluster.ws.write("users.csv", &format!("user\n{rows}"));
    let file = cluster.ws.write(
        "unique.toml",
        &format!(
            r#"
[scenario]
name = "unique"
[target]
base_url = "{}"
[load]
model = "open"
rate = 200
duration = "10s"
graceful_stop = "1s"
[data.users]
file = "users.csv"
strategy = "unique"
on_exhausted = "stop"
[[request]]
name = "login"
path = "/echo?u={{{{users.user}}}}"
"#,
            target.url
        ),
    );
    let s = cluster.finished_run(&file, &["--agents", "2"], Duration::from_secs(90));
    let agents = s["agents"].as_array().expect("agents");
    assert_eq!(agents.len(), 2, "--agents 2: {s:#}");
    // 30 rows split 15 + 15: every row sent exactly once in the cluster,
    // then each agent ran out and stopped.
    assert_eq!(target.stats()["total"].as_u64(), Some(30), "{s:#}");
    for a in agents {
        assert_eq!(a["requests"].as_u64(), Some(15), "{a}");
    }
}

#[test]
fn nodes_of_one_host_share_the_key_the_first_one_created() {
    let ws = Workspace::new();
    let a = Node::start(ws.path(), "a", None, &[], &[]);
    let key = ws.path().join("config/bfgg/cluster.key");
    assert!(key.is_file(), "the first node created {}", key.display());
    let log = std::fs::read_to_string(ws.path().join("node-a.log")).expect("log");
    assert!(
        log.contains("created a new cluster key") && log.contains("fingerprint"),
        "{log}"
    );
    let b = Node::start(ws.path(), "b", None, &[&a.addr], &[]);
    // A client of the same host needs no key flag either.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let nodes = status_json(ws.path(), &a.addr, None);
        let alive = |id: &str| {
            nodes
                .iter()
                .any(|n| n["node"] == id && n["liveness"] == "alive")
        };
        if alive(&a.id) && alive(&b.id) {
            break;
        }
        assert!(Instant::now() < deadline, "{nodes:#?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn a_cluster_run_with_no_node_reachable_fails_clearly() {
    let ws = Workspace::new();
    let target = Target::start(&[]);
    let file = scenario(&ws, &target, "open", "2s");
    let mut cmd = crate::harness::bfgg(ws.path());
    cmd.arg("run")
        .arg(&file)
        .args(["--cluster", "--no-mdns", "--join", "/ip4/127.0.0.1/tcp/9"]);
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no bfgg node answered") && stderr.contains("/ip4/127.0.0.1/tcp/9"),
        "{stderr}"
    );
    assert_eq!(target.stats()["total"].as_u64(), Some(0));
}
