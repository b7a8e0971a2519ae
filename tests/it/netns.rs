//! Real mDNS across network namespaces: three `bfgg node`s, each alone in a
//! network namespace on a private bridge (one "host" each), find each other
//! with no `--join`, run a cluster run (its client finds them by mDNS too)
//! against a `bfgg target` in namespace 1, and survive a 10 s partition of
//! one of them.
//!
//! Needs root and iproute2 (skipped otherwise; a failure under
//! `BFGG_REQUIRE_EXTERNAL=1`). Every test builds its own namespaces and bridge
//! (names from the PID and a counter, so tests run in parallel) and [`Net`]'s
//! `Drop` deletes them on every path, after the children are killed. No
//! address is put in the test's own namespace: all traffic stays on the bridge.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Once, mpsc};
use std::time::{Duration, Instant};

use crate::harness::{Workspace, bfgg_bin, run_with_timeout, skip};

/// Nodes (and namespaces) per test.
const HOSTS: usize = 3;

/// Runs `ip ARGS`, returning stderr on failure.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Root and iproute2, or `None` after a skip (a failure in CI).
fn lab_available() -> Option<()> {
    let uid = Command::new("id").arg("-u").output();
    if !uid.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0") {
        return skip("network namespaces need root");
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return skip("`ip` (iproute2) is not installed");
    }
    Some(())
}

/// Names this process gives its namespaces and links: `bf<pid>x<n>...`.
fn is_ours_and_stale(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("bf") else {
        return false;
    };
    let Some((pid, tail)) = rest.split_once('x') else {
        return false;
    };
    !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && tail.starts_with(|c: char| c.is_ascii_digit())
        && !Path::new(&format!("/proc/{pid}")).exists()
}

/// Deletes namespaces and bridges left by test processes that were killed
/// before their `Drop` ran (their PID is gone).
fn reap_stale() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Ok(out) = Command::new("ip").args(["netns", "list"]).output() {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let name = line.split_whitespace().next().unwrap_or("");
                if is_ours_and_stale(name) {
                    let _ = ip(&["netns", "del", name]);
                }
            }
        }
        if let Ok(out) = Command::new("ip")
            .args(["-o", "link", "show", "type", "bridge"])
            .output()
        {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                // "12: bf123x0br: <BROADCAST,...> ..."
                let name = line.split(':').nth(1).unwrap_or("").trim();
                if is_ours_and_stale(name) {
                    let _ = ip(&["link", "del", name]);
                }
            }
        }
    });
}

/// One namespace on the bridge.
struct Host {
    /// Namespace name.
    ns: String,
    /// The veth inside the namespace (≤ 15 characters).
    veth: String,
    /// Its peer on the bridge.
    peer: String,
    /// Its address, 10.77.0.<i+1>.
    ip: String,
}

/// Namespaces joined by a bridge; deleted on drop.
struct Net {
    bridge: String,
    hosts: Vec<Host>,
}

impl Net {
    /// `n` namespaces, each with `lo` up and a veth on a fresh bridge,
    /// addressed 10.77.0.1/24, 10.77.0.2/24, ... Only the test's own bridge
    /// joins them, so every test can use the same subnet.
    fn create(n: usize) -> Result<Net, String> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        reap_stale();
        let prefix = format!(
            "bf{}x{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut net = Net {
            bridge: format!("{prefix}br"),
            hosts: Vec::new(),
        };
        ip(&["link", "add", &net.bridge, "type", "bridge"])?;
        ip(&["link", "set", &net.bridge, "up"])?;
        for i in 1..=n {
            let host = Host {
                ns: format!("{prefix}-{i}"),
                veth: format!("{prefix}v{i}"),
                peer: format!("{prefix}b{i}"),
                ip: format!("10.77.0.{i}"),
            };
            assert!(host.veth.len() <= 15 && host.peer.len() <= 15);
            ip(&["netns", "add", &host.ns])?;
            // Pushed now so that Drop cleans up whatever the next steps made.
            net.hosts.push(host);
            let h = net.hosts.last().expect("just pushed");
            ip(&[
                "link", "add", &h.veth, "type", "veth", "peer", "name", &h.peer,
            ])?;
            ip(&["link", "set", &h.veth, "netns", &h.ns])?;
            ip(&["link", "set", &h.peer, "master", &net.bridge])?;
            ip(&["link", "set", &h.peer, "up"])?;
            ip(&[
                "-n",
                &h.ns,
                "addr",
                "add",
                &format!("{}/24", h.ip),
                "dev",
                &h.veth,
            ])?;
            ip(&["-n", &h.ns, "link", "set", &h.veth, "up"])?;
            ip(&["-n", &h.ns, "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    /// Cuts host `i` (0-based) off the bridge, or reconnects it.
    fn set_link(&self, i: usize, up: bool) {
        let h = &self.hosts[i];
        ip(&[
            "-n",
            &h.ns,
            "link",
            "set",
            &h.veth,
            if up { "up" } else { "down" },
        ])
        .expect("set link");
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for h in &self.hosts {
            // Deleting the namespace deletes its veth and with it the peer.
            let _ = ip(&["netns", "del", &h.ns]);
            let _ = ip(&["link", "del", &h.peer]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}

/// `ip netns exec NS bfgg ARGS...` with a private HOME. `ip netns exec` execs
/// the command in place, so the child's PID is bfgg's and killing it works.
fn bfgg_in(ns: &str, home: &Path) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, bfgg_bin()])
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("BFGG_LOG", "warn")
        .stdin(Stdio::null());
    cmd
}

/// A child process killed on drop, whose stdout lines arrive on a channel.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn spawn(mut cmd: Command, what: &str) -> Proc {
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc { child, lines }
    }

    /// The first stdout line as JSON (the readiness line), within 30 s.
    fn ready_line(&mut self, what: &str) -> serde_json::Value {
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("{what} did not report its address within 30 s"));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{what}: {e}: {line}"))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `bfgg node` in its namespace.
struct Node {
    /// Killed on drop.
    _proc: Proc,
    /// `/ip4/10.77.0.<i>/tcp/7700/p2p/<id>`
    addr: String,
    /// Its peer id.
    id: String,
}

/// Three namespaces, a node in each, and whatever else a test starts there.
/// Fields drop in order: children first, then the namespaces.
struct Lab {
    nodes: Vec<Node>,
    targets: Vec<Proc>,
    ws: Workspace,
    key: PathBuf,
    net: Net,
}

impl Lab {
    /// Creates the namespaces and starts one node in each: mDNS on, no
    /// `--join`, listening on the namespace's address, port 7700,
    /// `--unresponsive-after 3s --dead-after 30s --workers 1`. `None` after a
    /// skip. (Health goes out every second: at 1s a node flickers to
    /// "unresponsive" whenever a message is a little late, and a run planned
    /// in that instant leaves it out.)
    fn start() -> Option<Lab> {
        lab_available()?;
        let net = match Net::create(HOSTS) {
            Ok(net) => net,
            Err(e) => return skip(&format!("cannot build network namespaces: {e}")),
        };
        let ws = Workspace::new();
        let key = ws.write(
            "cluster.key",
            &format!("/key/swarm/psk/1.0.0/\n/base16/\n{}\n", "5a".repeat(32)),
        );
        let mut lab = Lab {
            nodes: Vec::new(),
            targets: Vec::new(),
            ws,
            key,
            net,
        };
        for i in 0..HOSTS {
            let h = &lab.net.hosts[i];
            let name = format!("n{}", i + 1);
            let mut cmd = bfgg_in(&h.ns, lab.ws.path());
            cmd.arg("node")
                .args(["--listen", &format!("/ip4/{}/tcp/7700", h.ip)])
                .args(["--name", &name])
                .arg("--data-dir")
                .arg(lab.ws.path().join(format!("node-{name}")))
                .arg("--cluster-key-file")
                .arg(&lab.key)
                .args(["--unresponsive-after", "3s", "--dead-after", "30s"])
                .args(["--workers", "1"])
                .env("BFGG_LOG", "bfgg_node=info")
                .stderr(Stdio::from(
                    std::fs::File::create(lab.ws.path().join(format!("node-{name}.log")))
                        .expect("log file"),
                ));
            let mut proc = Proc::spawn(cmd, &format!("node {name}"));
            let v = proc.ready_line(&format!("node {name}"));
            let id = v["node"].as_str().expect("node id").to_string();
            let addr = v["listening"].as_str().expect("listening").to_string();
            assert!(
                addr.starts_with(&format!("/ip4/{}/tcp/7700", h.ip)),
                "{addr}"
            );
            let addr = if addr.contains("/p2p/") {
                addr
            } else {
                format!("{addr}/p2p/{id}")
            };
            lab.nodes.push(Node {
                _proc: proc,
                addr,
                id,
            });
        }
        Some(lab)
    }

    /// `bfgg status --json --wait 3s` run inside namespace `host`: with mDNS
    /// only (no `--join`), or with `--join join --no-mdns`, where it hears
    /// other nodes only through that one (so it sees what that node sees).
    fn status(&self, host: usize, join: Option<&str>) -> Vec<serde_json::Value> {
        let mut cmd = bfgg_in(&self.net.hosts[host].ns, self.ws.path());
        cmd.args(["status", "--json", "--wait", "3s"])
            .arg("--cluster-key-file")
            .arg(&self.key);
        if let Some(j) = join {
            cmd.args(["--join", j, "--no-mdns"]);
        }
        let out = run_with_timeout(cmd, Duration::from_secs(60));
        assert!(
            out.status.success(),
            "status: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("status JSON")
    }

    /// Waits (at most `limit`) until a status from namespace 1 (see
    /// [`Lab::status`]) sees every node alive; returns the last status.
    fn wait_all_alive(&self, join: Option<&str>, limit: Duration) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + limit;
        loop {
            let nodes = self.status(0, join);
            let alive: Vec<&str> = nodes
                .iter()
                .filter(|v| v["liveness"] == "alive")
                .filter_map(|v| v["node"].as_str())
                .collect();
            if self.nodes.iter().all(|n| alive.contains(&n.id.as_str())) {
                return nodes;
            }
            assert!(
                Instant::now() < deadline,
                "after {limit:?} namespace 1 sees {} of {HOSTS} nodes alive: {nodes:#?}\n{}",
                alive.len(),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Starts `bfgg target --listen ADDR --latency 1ms` in namespace `host`.
    fn start_target(&mut self, host: usize, listen: &str) {
        let mut cmd = bfgg_in(&self.net.hosts[host].ns, self.ws.path());
        cmd.args(["target", "--listen", listen, "--latency", "1ms"]);
        let mut proc = Proc::spawn(cmd, "bfgg target");
        let v = proc.ready_line("bfgg target");
        assert_eq!(v["listening"], listen);
        self.targets.push(proc);
    }

    /// Requests served by the target on `addr` in namespace `host`
    /// (`/stats` fetched from inside the namespace).
    fn target_total(&self, host: usize, addr: &str) -> u64 {
        let body = ns_http_get(&self.net.hosts[host].ns, addr, "/stats");
        let v: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("stats JSON: {e}: {body}"));
        v["total"].as_u64().expect("total")
    }

    /// `bfgg run FILE --cluster --json` from namespace 1: joined to node 1
    /// (which then coordinates) with `join`, else finding the nodes by mDNS
    /// alone; not waited for.
    fn run_cluster(&self, scenario: &Path, join: bool) -> Running {
        let mut cmd = bfgg_in(&self.net.hosts[0].ns, self.ws.path());
        cmd.arg("run").arg(scenario).args(["--cluster", "--json"]);
        if join {
            cmd.args(["--no-mdns", "--join", &self.nodes[0].addr]);
        }
        cmd.arg("--cluster-key-file")
            .arg(&self.key)
            .arg("--out")
            .arg(self.ws.out_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Running(Some(cmd.spawn().expect("spawn bfgg run --cluster")))
    }

    /// Waits for a run directory in a node's data dir.
    fn wait_for_run(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            for i in 1..=HOSTS {
                let runs = self.ws.path().join(format!("node-n{i}/runs"));
                if std::fs::read_dir(&runs).is_ok_and(|mut d| d.next().is_some()) {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "no run started\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The nodes' logs, for failure messages.
    fn logs(&self) -> String {
        (1..=HOSTS)
            .map(|i| {
                let path = self.ws.path().join(format!("node-n{i}.log"));
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(30).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                format!("--- node n{i} (last 30 lines)\n{}", tail.join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// GET `path` from `addr` (host:port) inside namespace `ns`, returning the
/// body. bash's /dev/tcp does the connecting, so no HTTP client is needed
/// there (the test process itself has no route into the namespaces).
fn ns_http_get(ns: &str, addr: &str, path: &str) -> String {
    let (host, port) = addr.split_once(':').expect("host:port");
    let script = format!(
        "exec 3<>/dev/tcp/{host}/{port} && \
         printf 'GET {path} HTTP/1.1\\r\\nHost: {addr}\\r\\nConnection: close\\r\\n\\r\\n' >&3 && \
         cat <&3"
    );
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, "bash", "-c", &script]);
    let out: Output = run_with_timeout(cmd, Duration::from_secs(20));
    assert!(
        out.status.success(),
        "GET {addr}{path} in {ns}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    crate::harness::http_body(&text)
}

/// A `bfgg run --cluster` child, killed on drop unless waited for.
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits for `bfgg run --cluster` to exit: (exit code, summary, stderr).
fn wait_output(mut run: Running, limit: Duration) -> (i32, Option<serde_json::Value>, String) {
    let child = run.0.take().expect("not yet waited for");
    let (tx, rx) = mpsc::channel();
    let pid = child.id();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let Ok(out) = rx.recv_timeout(limit) else {
        // Don't leave it running (the namespaces are about to go).
        let _ = Command::new("kill").arg(pid.to_string()).status();
        panic!("bfgg run --cluster did not finish within {limit:?}");
    };
    let out = out.expect("output");
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_slice(&out.stdout).ok(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// An open-model scenario at `rate`/s for `duration` against `base_url`.
fn scenario(ws: &Workspace, base_url: &str, rate: u32, duration: &str) -> PathBuf {
    ws.write(
        "netns.toml",
        &format!(
            r#"
[scenario]
name = "netns"
[target]
base_url = "{base_url}"
[load]
model = "open"
rate = {rate}
duration = "{duration}"
graceful_stop = "2s"
[[request]]
name = "home"
path = "/"
"#
        ),
    )
}

fn requests(v: &serde_json::Value) -> u64 {
    v["requests"]
        .as_u64()
        .unwrap_or_else(|| panic!("no requests in {v}"))
}

#[test]
fn three_nodes_in_namespaces_find_each_other_by_mdns() {
    let Some(lab) = Lab::start() else { return };
    let started = Instant::now();
    // The status peer itself finds the nodes by mDNS: no --join anywhere.
    let nodes = lab.wait_all_alive(None, Duration::from_secs(30));
    eprintln!(
        "mDNS: 3 nodes alive in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(nodes.len(), HOSTS, "{nodes:#?}");
    for (i, node) in lab.nodes.iter().enumerate() {
        let seen = nodes
            .iter()
            .find(|v| v["node"] == node.id.as_str())
            .expect("listed");
        assert_eq!(seen["name"], format!("n{}", i + 1));
        // Each advertises the address in its own namespace, never loopback.
        let addrs: Vec<&str> = seen["listen_addrs"]
            .as_array()
            .expect("listen_addrs")
            .iter()
            .filter_map(|a| a.as_str())
            .collect();
        assert!(
            addrs
                .iter()
                .any(|a| a.starts_with(&format!("/ip4/10.77.0.{}/tcp/7700", i + 1))),
            "{addrs:?}"
        );
        assert!(!addrs.iter().any(|a| a.contains("127.0.0.1")), "{addrs:?}");
    }
    // Every node sees the other two, from its own namespace too.
    for host in 1..HOSTS {
        let nodes = lab.status(host, Some(&lab.nodes[host].addr));
        let alive = nodes.iter().filter(|v| v["liveness"] == "alive").count();
        assert_eq!(alive, HOSTS, "from namespace {}: {nodes:#?}", host + 1);
    }
}

#[test]
fn a_cluster_run_across_namespaces_counts_what_the_target_served() {
    let Some(mut lab) = Lab::start() else { return };
    // The client finds the nodes by mDNS too (no --join anywhere) and may
    // hand the run to any of them: wait until each has heard of every node.
    for node in &lab.nodes {
        lab.wait_all_alive(Some(&node.addr), Duration::from_secs(30));
    }
    // Namespace 1 serves; the agents in 2 and 3 send across the bridge.
    let target = "10.77.0.1:8080";
    lab.start_target(0, target);
    let file = scenario(&lab.ws, &format!("http://{target}"), 300, "4s");
    let (code, summary, stderr) =
        wait_output(lab.run_cluster(&file, false), Duration::from_secs(120));
    assert_eq!(code, 0, "{stderr}\n{}", lab.logs());
    let s = summary.unwrap_or_else(|| panic!("no summary: {stderr}"));
    let agents = s["agents"].as_array().expect("agents");
    assert_eq!(agents.len(), HOSTS, "{s:#}");
    for a in agents {
        assert_eq!(a["status"], "complete", "{a}");
        assert!(requests(a) > 0, "every agent took a share: {a}");
    }
    let sum: u64 = agents.iter().map(requests).sum();
    assert_eq!(requests(&s["total"]), sum, "{s:#}");
    assert_eq!(lab.target_total(0, target), sum, "the target served it all");
    // 300/s for 4 s, split exactly across the agents.
    assert_eq!(sum, 1200, "{s:#}");
    assert_eq!(s["partial"], false);
}

#[test]
fn a_partitioned_node_keeps_its_share_and_rejoins() {
    let Some(mut lab) = Lab::start() else { return };
    let join = lab.nodes[0].addr.clone();
    lab.wait_all_alive(Some(&join), Duration::from_secs(30));
    // A target in every namespace on its own loopback: each agent's load
    // stays on its host, so cutting host 3 off the bridge cuts the mesh
    // only, and the targets' sum must equal the merged total exactly.
    for host in 0..HOSTS {
        lab.start_target(host, "127.0.0.1:8080");
    }
    let file = scenario(&lab.ws, "http://127.0.0.1:8080", 120, "25s");
    let run = lab.run_cluster(&file, true);
    lab.wait_for_run(Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(5));

    let cut = Instant::now();
    lab.net.set_link(2, false);
    std::thread::sleep(Duration::from_secs(3));
    let during = lab.status(0, Some(&lab.nodes[0].addr));
    assert!(
        !during
            .iter()
            .any(|v| v["node"] == lab.nodes[2].id.as_str() && v["liveness"] == "alive"),
        "node 3 is cut off, yet seen alive: {during:#?}"
    );
    std::thread::sleep(Duration::from_secs(10).saturating_sub(cut.elapsed()));
    lab.net.set_link(2, true);
    eprintln!(
        "partition: node 3 cut off for {:.1} s",
        cut.elapsed().as_secs_f64()
    );

    let (code, summary, stderr) = wait_output(run, Duration::from_secs(150));
    assert_eq!(code, 0, "{stderr}\n{}", lab.logs());
    let s = summary.unwrap_or_else(|| panic!("no summary: {stderr}"));
    let agents = s["agents"].as_array().expect("agents");
    assert_eq!(agents.len(), HOSTS, "{s:#}");
    for a in agents {
        assert_eq!(a["status"], "complete", "{a}\n{}", lab.logs());
    }
    assert_eq!(s["partial"], false, "{s:#}");
    let sum: u64 = agents.iter().map(requests).sum();
    assert_eq!(requests(&s["total"]), sum, "{s:#}");
    let served: u64 = (0..HOSTS)
        .map(|h| lab.target_total(h, "127.0.0.1:8080"))
        .sum();
    assert_eq!(served, sum, "the targets served exactly what was merged");
    // 120/s for 25 s: every arrival sent once, the cut-off node's third
    // included (it kept generating while alone).
    assert_eq!(sum, 3000, "{s:#}");
    let cut_off = agents
        .iter()
        .find(|a| a["node"] == lab.nodes[2].id.as_str())
        .expect("node 3 is an agent");
    assert!(
        (900..=1100).contains(&requests(cut_off)),
        "node 3 ran its whole share: {cut_off}"
    );
    // And it is back in the mesh.
    lab.wait_all_alive(Some(&join), Duration::from_secs(30));
}
