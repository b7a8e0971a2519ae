//! `bfgg node --metrics-addr`: two real nodes scraped during and after a
//! distributed run, each page parsed by PyPI's `prometheus-client`; the
//! coordinator's merged counters, each agent's own share and the histogram
//! counts equal the run's `summary.json`. A taken or foreign address stops
//! the node with an error naming it; without the flag nothing more listens;
//! the option comes from a flag, a variable or config.toml like every other.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cluster::{Cluster, Node, key_text, wait_for_run_id, wait_output};
use crate::harness::{Target, Workspace, bfgg, http_body, python_venv, run_with_timeout};

/// The PyPI package whose parser reads the pages (see ../shared/NOTES.md).
const PARSER: &str = "prometheus-client==0.26.0";

/// Every sample of a page as `prometheus_client.parser` reads it.
const PARSE_PY: &str = r#"
import json, math, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        v = s.value if math.isfinite(s.value) else str(s.value)
        out.append({"family": family.name, "type": family.type,
                    "name": s.name, "labels": s.labels, "value": v})
print(json.dumps(out))
"#;

/// A loopback address nothing listens on (the port was free a moment ago).
fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").to_string()
}

/// `GET path` from `addr`: (status code, content type, body).
fn get(addr: &str, path: &str) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect to /metrics");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    let content_type = text
        .lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    (status, content_type, http_body(&text))
}

/// A page's samples, as the Python parser read it.
struct Page(Vec<serde_json::Value>);

impl Page {
    fn parse(python: &Path, text: &str) -> Page {
        let mut child = Command::new(python)
            .args(["-c", PARSE_PY])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("page to the parser");
        let out = child.wait_with_output().expect("parser output");
        assert!(
            out.status.success(),
            "prometheus_client could not parse the page: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        Page(serde_json::from_slice(&out.stdout).expect("parser JSON"))
    }

    /// Samples named `name` whose labels include `labels`.
    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a serde_json::Value> + 'a {
        self.0
            .iter()
            .filter(move |s| s["name"] == name && labels.iter().all(|(k, v)| s["labels"][*k] == *v))
    }

    /// The sum of the samples `matching`.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels)
            .map(|s| s["value"].as_f64().expect("a finite value"))
            .sum()
    }

    /// The one sample `matching`.
    fn one(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<_> = self.matching(name, labels).collect();
        assert_eq!(found.len(), 1, "{name} {labels:?}: {found:#?}");
        found[0]["value"].as_f64().expect("a finite value")
    }

    /// The values of label `key` among samples named `name`.
    fn label_values(&self, name: &str, key: &str) -> BTreeSet<String> {
        self.matching(name, &[])
            .filter_map(|s| s["labels"][key].as_str().map(str::to_owned))
            .collect()
    }

    /// The type the parser gave family `family`.
    fn type_of(&self, family: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|s| s["family"] == family)
            .and_then(|s| s["type"].as_str())
    }
}

/// Scrapes `addr` and parses the page.
fn scrape(python: &Path, addr: &str) -> Page {
    let (status, content_type, body) = get(addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    Page::parse(python, &body)
}

fn scenario(ws: &Workspace, target: &Target) -> std::path::PathBuf {
    ws.write(
        "metrics.toml",
        &format!(
            r#"
[scenario]
name = "metrics"
[target]
base_url = "{}"
[load]
model = "open"
rate = 200
duration = "6s"
graceful_stop = "1s"
[[request]]
name = "home"
path = "/"
weight = 2
[[request]]
name = "search"
path = "/search"
weight = 1
"#,
            target.url
        ),
    )
}

/// TCP ports process `pid` listens on (its sockets in /proc/net/tcp*).
fn listening_ports(pid: u32) -> BTreeSet<u16> {
    let inodes: BTreeSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fds")
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let mut ports = BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 9 && f[3] == "0A" && inodes.contains(f[9]) {
                let port = f[1].rsplit(':').next().expect("port");
                ports.insert(u16::from_str_radix(port, 16).expect("hex port"));
            }
        }
    }
    ports
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port")
}

/// The TCP port of a node's mesh multiaddr (`/ip4/127.0.0.1/tcp/PORT/p2p/ID`).
fn mesh_port(node: &Node) -> u16 {
    node.addr
        .split("/tcp/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("a tcp port")
}

#[test]
fn two_nodes_export_live_counters_that_end_equal_to_the_summary() {
    let Some(python) = python_venv(&[PARSER]) else {
        return;
    };
    let target = Target::start(&["--latency", "1ms..8ms", "--error-rate", "0.1"]);
    let ws = Workspace::new();
    let key = ws.write("cluster.key", &key_text(0x42));
    let (addr0, addr1) = (free_addr(), free_addr());
    let n0 = Node::start(
        ws.path(),
        "n0",
        Some(&key),
        &[],
        &["--metrics-addr", &addr0],
    );
    // The other through its variable, as config layering gives every option one.
    let n1 = Node::start_env(
        ws.path(),
        "n1",
        Some(&key),
        &[&n0.addr],
        &[],
        &[("BFGG_METRICS_ADDR", &addr1)],
    );
    // The node listens on the mesh and on the metrics address, nothing else.
    for (node, addr) in [(&n0, &addr0), (&n1, &addr1)] {
        let expected: BTreeSet<u16> = [mesh_port(node), port_of(addr)].into();
        assert_eq!(listening_ports(node.pid()), expected);
    }
    assert_eq!(get(&addr0, "/").0, 404);
    let cluster = Cluster {
        ws,
        key,
        nodes: vec![n0, n1],
    };
    cluster.wait_for_nodes(2);
    let file = scenario(&cluster.ws, &target);
    let client = cluster.run_cluster(&file, &[]);

    // While it runs: the coordinator's merged view and the other node's own
    // share grow, and the nodes say they are running.
    let deadline = Instant::now() + Duration::from_secs(40);
    let seen_live = loop {
        let (p0, p1) = (scrape(&python, &addr0), scrape(&python, &addr1));
        let merged = p0.sum("bfgg_requests_total", &[("scope", "run")]);
        let own1 = p1.sum(
            "bfgg_requests_total",
            &[("scope", "agent"), ("agent", "n1")],
        );
        let running = p1.one("bfgg_node_state", &[("state", "running")]);
        if merged > 0.0 && own1 > 0.0 && running == 1.0 {
            break (merged, own1);
        }
        assert!(
            Instant::now() < deadline,
            "no live run metrics within 40 s: merged {merged}, n1 {own1}, n1 running {running}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let (code, summary, stderr) = wait_output(client, Duration::from_secs(90));
    assert_eq!(code, 0, "{stderr}");
    let s = summary.unwrap_or_else(|| panic!("no summary: {stderr}"));
    let run = wait_for_run_id(&cluster, Duration::from_secs(5));

    // Right after the end: the coordinator's merged view is the summary.
    let p0 = scrape(&python, &addr0);
    let p1 = scrape(&python, &addr1);
    assert_eq!(p0.type_of("bfgg_requests"), Some("counter"));
    assert_eq!(p0.type_of("bfgg_errors"), Some("counter"));
    assert_eq!(p0.type_of("bfgg_response_time_seconds"), Some("histogram"));
    assert_eq!(
        p0.label_values("bfgg_requests_total", "run"),
        [run.clone()].into(),
        "one run, labelled with its id"
    );
    let total = s["total"]["requests"].as_f64().expect("total requests");
    assert!(total >= 1000.0, "{s:#}");
    assert!(
        seen_live.0 < total,
        "seen live before the end: {seen_live:?}"
    );
    let merged = [("run", run.as_str()), ("scope", "run")];
    assert_eq!(p0.sum("bfgg_requests_total", &merged), total);
    assert_eq!(
        p0.sum("bfgg_errors_total", &merged),
        s["total"]["errors"].as_f64().expect("errors")
    );
    assert!(s["total"]["errors"].as_u64() > Some(0), "{s:#}");
    let by_name = s["by_name"].as_object().expect("by_name");
    assert_eq!(
        p0.label_values("bfgg_requests_total", "name"),
        by_name.keys().cloned().collect::<BTreeSet<_>>()
    );
    for (name, n) in by_name {
        let labels = [("run", run.as_str()), ("scope", "run"), ("name", name)];
        let requests = n["requests"].as_f64().expect("requests");
        assert_eq!(p0.one("bfgg_requests_total", &labels), requests, "{name}");
        // Errors by kind, as the summary groups them.
        let mut kinds: BTreeMap<String, f64> = BTreeMap::new();
        for g in n["error_groups"].as_array().expect("groups") {
            *kinds
                .entry(g["class"].as_str().expect("class").to_owned())
                .or_default() += g["count"].as_f64().expect("count");
        }
        for (kind, count) in &kinds {
            let labels = [
                ("run", run.as_str()),
                ("scope", "run"),
                ("name", name),
                ("kind", kind),
            ];
            assert_eq!(
                p0.one("bfgg_errors_total", &labels),
                *count,
                "{name} {kind}"
            );
        }
        assert_eq!(
            p0.sum("bfgg_errors_total", &labels),
            n["errors"].as_f64().expect("errors")
        );
        // Every request got a response: the histogram counts them all, its
        // buckets only grow, +Inf is the count, and the latencies (1-8 ms
        // and the generator's own share) are where they should be.
        assert_eq!(
            p0.one("bfgg_response_time_seconds_count", &labels),
            requests
        );
        let mut buckets: Vec<(f64, f64)> = p0
            .matching("bfgg_response_time_seconds_bucket", &labels)
            .map(|b| {
                let le = b["labels"]["le"].as_str().expect("le");
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().expect("le")
                };
                (le, b["value"].as_f64().expect("count"))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert_eq!(buckets.len(), 19, "{buckets:?}");
        assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
        assert_eq!(buckets.last().map(|b| b.1), Some(requests));
        // The buckets cross half and 99 % of the requests where the
        // summary's exact p50 and p99 say, whatever the machine's load made
        // the latencies (2 % either side: the merged view's live precision
        // is 0.8 %).
        for (q, key) in [(0.5, "p50"), (0.99, "p99")] {
            let v = n["latency_ms"][key].as_f64().expect(key) / 1000.0;
            for &(le, count) in &buckets {
                if le >= v * 1.02 {
                    assert!(count >= requests * q, "{key} {v} s, le {le}: {buckets:?}");
                }
                if le <= v * 0.98 {
                    assert!(count < requests * q, "{key} {v} s, le {le}: {buckets:?}");
                }
            }
        }
        let sum = p0.one("bfgg_response_time_seconds_sum", &labels);
        let mean = sum / requests;
        let exact = n["latency_ms"]["mean"].as_f64().expect("mean") / 1000.0;
        assert!(
            (mean - exact).abs() <= exact * 0.1,
            "mean {mean} s, summary {exact} s"
        );
    }

    // Each agent's own share, on its own page, is its row of agents[].
    let agents = s["agents"].as_array().expect("agents");
    assert_eq!(agents.len(), 2, "{s:#}");
    for a in agents {
        let name = a["name"].as_str().expect("name");
        let page = if name == "n0" { &p0 } else { &p1 };
        let own = [("run", run.as_str()), ("scope", "agent"), ("agent", name)];
        assert_eq!(
            page.sum("bfgg_requests_total", &own),
            a["requests"].as_f64().expect("requests"),
            "{name}"
        );
        assert_eq!(
            page.sum("bfgg_errors_total", &own),
            a["errors"].as_f64().expect("errors"),
            "{name}"
        );
        assert_eq!(
            page.sum("bfgg_response_time_seconds_count", &own),
            a["requests"].as_f64().expect("requests"),
            "{name}"
        );
    }
    // Only the coordinator has the merged view; no agent exports another's.
    assert_eq!(p1.sum("bfgg_requests_total", &[("scope", "run")]), 0.0);
    assert_eq!(
        p1.label_values("bfgg_requests_total", "agent"),
        ["n1".to_owned()].into()
    );

    // Health, on both.
    for (page, name) in [(&p0, "n0"), (&p1, "n1")] {
        let of_name = [("name", name)];
        let info: Vec<_> = page.matching("bfgg_node_info", &of_name).collect();
        assert_eq!(info.len(), 1, "{name}");
        assert_eq!(info[0]["value"], 1.0);
        assert!(
            info[0]["labels"]["version"]
                .as_str()
                .is_some_and(|v| !v.is_empty())
        );
        assert!(
            info[0]["labels"]["protocol"]
                .as_str()
                .is_some_and(|v| !v.is_empty())
        );
        let cpu = page.one("bfgg_node_cpu_percent", &[]);
        assert!((0.0..=100.0).contains(&cpu), "{name}: cpu {cpu}");
        let rss = page.one("bfgg_node_resident_memory_bytes", &[]);
        assert!((1e6..4e9).contains(&rss), "{name}: rss {rss}");
        assert_eq!(
            page.one("bfgg_node_peers", &[("liveness", "alive")]),
            1.0,
            "{name}"
        );
        assert_eq!(page.sum("bfgg_node_state", &[]), 1.0, "one state at a time");
        assert!(page.one("bfgg_node_dropped_messages_total", &[]) >= 0.0);
        assert_eq!(page.type_of("bfgg_node_dropped_messages"), Some("counter"));
    }
}

#[test]
fn a_taken_or_foreign_metrics_address_stops_the_node_naming_it() {
    let ws = Workspace::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let mut cases = vec![(addr, "Address already in use")];
    // An address of no interface here (TEST-NET-1), unless the host lets
    // anything bind anywhere.
    let nonlocal = std::fs::read_to_string("/proc/sys/net/ipv4/ip_nonlocal_bind")
        .is_ok_and(|v| v.trim() == "1");
    if !nonlocal {
        cases.push((
            "192.0.2.1:9464".to_owned(),
            "Cannot assign requested address",
        ));
    }
    for (addr, reason) in cases {
        let mut cmd = bfgg(ws.path());
        cmd.args(["node", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns"])
            .arg("--data-dir")
            .arg(ws.path().join("node"))
            .args(["--metrics-addr", &addr]);
        let out = run_with_timeout(cmd, Duration::from_secs(30));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{stderr}");
        assert!(
            stderr.contains(&format!("cannot serve metrics on {addr} (--metrics-addr)"))
                && stderr.contains(reason),
            "{stderr}"
        );
        assert!(out.stdout.is_empty(), "it never joined the mesh");
    }
    // Not an address at all: refused by the flag itself.
    let mut cmd = bfgg(ws.path());
    cmd.args(["node", "--metrics-addr", "localhost"]);
    let out = run_with_timeout(cmd, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--metrics-addr"), "{stderr}");
}

#[test]
fn without_the_flag_a_node_listens_only_on_the_mesh() {
    let ws = Workspace::new();
    let key = ws.write("cluster.key", &key_text(0x42));
    let node = Node::start(ws.path(), "quiet", Some(&key), &[], &[]);
    let mesh = mesh_port(&node);
    // Health ticks have passed (where a metrics task would have started).
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(listening_ports(node.pid()), [mesh].into());
}

#[test]
fn the_metrics_address_comes_from_a_flag_a_variable_or_the_file() {
    let ws = Workspace::new();
    let dir = ws.path().join("config/bfgg");
    std::fs::create_dir_all(&dir).expect("config dir");
    std::fs::write(
        dir.join("config.toml"),
        "[node]\nmetrics-addr = \"127.0.0.1:9464\"\n",
    )
    .expect("config.toml");
    let show = |env: &[(&str, &str)]| {
        let mut cmd = bfgg(ws.path());
        cmd.args(["config", "show"]).envs(env.iter().copied());
        let out = run_with_timeout(cmd, Duration::from_secs(30));
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .find(|l| l.split_whitespace().next() == Some("metrics-addr"))
            .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|| panic!("no metrics-addr row:\n{text}"))
    };
    let from_file = show(&[]);
    assert!(
        from_file.starts_with("127.0.0.1:9464 ") && from_file.ends_with("config.toml:2"),
        "{from_file}"
    );
    assert_eq!(
        show(&[("BFGG_METRICS_ADDR", "127.0.0.1:9999")]),
        "127.0.0.1:9999 env BFGG_METRICS_ADDR"
    );
    // A value the flag refuses stops every command, naming file, line and key.
    std::fs::write(
        dir.join("config.toml"),
        "[node]\n\nmetrics-addr = \"nope\"\n",
    )
    .expect("config.toml");
    let mut cmd = bfgg(ws.path());
    cmd.args(["config", "show"]);
    let out = run_with_timeout(cmd, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("config.toml:3: [node] metrics-addr: invalid value 'nope'"),
        "{stderr}"
    );
}
