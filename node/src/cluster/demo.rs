//! `bfgg demo`'s cluster, all in this process: the built-in target on a free
//! loopback port, the demo scenario unpacked next to its data and pointed at
//! that target, and three nodes (`demo-1`..`demo-3`, zones a, a, b) joined
//! on 127.0.0.1 under a fresh cluster key. It prints nothing: the binary
//! says what it started and drives the cockpit or a cluster run against it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::view::Timeouts;
use super::{DEFAULT_PAGE_INTERVALS, NodeConfig, run_node};
use crate::net::{ClusterKey, NetConfig};
use crate::target::{TargetConfig, TargetServer};

/// How long a node may take to start listening.
const LISTEN_WITHIN: Duration = Duration::from_secs(20);

/// How long [`Demo::shutdown`] waits for the nodes to end.
const SHUTDOWN_WITHIN: Duration = Duration::from_secs(2);

/// The base URL the embedded scenario names; replaced by the demo target's.
const SCENARIO_TARGET: &str = "http://127.0.0.1:8080";

/// The demo's files, embedded in the binary so `bfgg demo` needs no
/// checkout.
#[derive(Debug, Clone, Copy)]
pub struct DemoFiles<'a> {
    /// `scenarios/demo.toml`; its base URL (`http://127.0.0.1:8080`) is
    /// replaced by the target's.
    pub scenario: &'a str,
    /// `scenarios/data/users.csv`, the scenario's data pool.
    pub users: &'a str,
}

/// A running demo cluster. Dropping it stops the nodes and the target but
/// leaves its directory; [`Demo::shutdown`] removes it too.
pub struct Demo {
    /// The directory everything lives in: `scenarios/`, `cluster.key`, a
    /// data directory per node.
    pub dir: PathBuf,
    /// The target's base URL (`http://127.0.0.1:<port>`).
    pub target_url: String,
    /// The demo scenario, pointed at the target.
    pub scenario: PathBuf,
    /// The directory of [`Demo::scenario`], for a cockpit to offer.
    pub scenarios_dir: PathBuf,
    /// The nodes' cluster key, for light peers to join with.
    pub key_file: PathBuf,
    /// The first node's address (`/ip4/127.0.0.1/tcp/<port>/p2p/<id>`).
    pub join: String,
    server: TargetServer,
    /// Set to `true` (or dropped) to stop the nodes: each node's shutdown
    /// future waits on a receiver.
    stop: watch::Sender<bool>,
    nodes: Vec<JoinHandle<()>>,
}

impl Demo {
    /// How many nodes the demo starts.
    pub const NODES: usize = 3;

    /// How long the nodes need to hear each other's health (sent once a
    /// second) before a run handed to one of them can choose all three.
    pub const SETTLE: Duration = Duration::from_secs(3);

    /// Creates `dir`, starts the target, writes `files` into `dir` and
    /// starts the nodes on spawned tasks of the current runtime, each
    /// joining the first. Returns once every node listens; the nodes may not
    /// have heard each other yet (see [`Demo::SETTLE`]). On failure whatever
    /// was started is stopped and `dir` removed. Cancelling it stops what it
    /// started but leaves `dir`.
    pub async fn start(dir: PathBuf, files: DemoFiles<'_>) -> anyhow::Result<Demo> {
        let scenarios_dir = dir.join("scenarios");
        std::fs::create_dir_all(scenarios_dir.join("data"))
            .with_context(|| format!("creating {}", dir.display()))?;
        let server = match TargetServer::start(target_config()?).await {
            Ok(server) => server,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e).context("starting the demo target");
            }
        };
        let target_url = format!("http://{}", server.local_addr());
        let (stop, _) = watch::channel(false);
        let mut demo = Demo {
            scenario: scenarios_dir.join("demo.toml"),
            scenarios_dir,
            key_file: dir.join("cluster.key"),
            dir,
            target_url,
            join: String::new(),
            server,
            stop,
            nodes: Vec::new(),
        };
        match demo.populate(files).await {
            Ok(()) => Ok(demo),
            Err(e) => {
                demo.shutdown().await;
                Err(e)
            }
        }
    }

    /// Writes the files and the key, then starts the nodes one by one.
    async fn populate(&mut self, files: DemoFiles<'_>) -> anyhow::Result<()> {
        write(
            &self.scenario,
            &files.scenario.replace(SCENARIO_TARGET, &self.target_url),
        )?;
        write(&self.scenarios_dir.join("data/users.csv"), files.users)?;
        let key = ClusterKey::generate();
        write(&self.key_file, &key.to_file_text())?;
        self.join = self.start_node(1, &key, Vec::new()).await?;
        for i in 2..=Demo::NODES {
            self.start_node(i, &key, vec![self.join.clone()]).await?;
        }
        Ok(())
    }

    /// Starts node `i`, dialing `join`, and returns its address.
    async fn start_node(
        &mut self,
        i: usize,
        key: &ClusterKey,
        join: Vec<String>,
    ) -> anyhow::Result<String> {
        let data_dir = self.dir.join(format!("node-{i}"));
        let mut net = NetConfig::new(data_dir.join("identity.key"), key.clone());
        net.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
        net.join = join;
        net.mdns = false;
        let config = NodeConfig {
            name: format!("demo-{i}"),
            labels: [("zone".to_string(), zone(i).to_string())].into(),
            data_dir,
            net,
            timeouts: Timeouts::default(),
            workers: Some(1),
            python: crate::run::DEFAULT_PYTHON.to_owned(),
            s3: None,
            // The demo's nodes are the user's own: no operators list.
            operators: super::operators::Operators::open(&format!("demo-{i}")),
            page_intervals: DEFAULT_PAGE_INTERVALS,
            metrics_addr: None,
        };
        let (addr_tx, addr_rx) = oneshot::channel();
        let mut addr_tx = Some(addr_tx);
        let mut stop = self.stop.subscribe();
        self.nodes.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            let result = run_node(config, shutdown, |id, addr| {
                if let Some(tx) = addr_tx.take() {
                    let _ = tx.send(if addr.contains("/p2p/") {
                        addr.to_string()
                    } else {
                        format!("{addr}/p2p/{id}")
                    });
                }
            })
            .await;
            if let Err(e) = result {
                tracing::error!("demo node {i}: {e:#}");
            }
        }));
        match tokio::time::timeout(LISTEN_WITHIN, addr_rx).await {
            Ok(Ok(addr)) => Ok(addr),
            _ => anyhow::bail!("a demo node did not start listening"),
        }
    }

    /// Stops the nodes and the target, waits (up to 2 s) for the nodes to
    /// end, and removes the demo's directory. Cancelling it leaves the
    /// directory.
    pub async fn shutdown(self) {
        let Demo {
            dir,
            server,
            stop,
            nodes,
            ..
        } = self;
        stop.send_replace(true);
        server.shutdown().await;
        let deadline = Instant::now() + SHUTDOWN_WITHIN;
        for node in nodes {
            let left = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, node).await.is_err() {
                tracing::debug!("a demo node is still shutting down");
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The demo target: quick answers, with a slow mode 5% of the time so the
/// latency panel has two humps.
fn target_config() -> anyhow::Result<TargetConfig> {
    Ok(TargetConfig {
        listen: "127.0.0.1:0".parse()?,
        latency: "2ms|40ms@5%"
            .parse()
            .map_err(|e| anyhow::anyhow!("the demo latency: {e}"))?,
        ..TargetConfig::default()
    })
}

/// Node `i`'s zone: the last node stands apart, so label selection has
/// something to choose.
fn zone(i: usize) -> &'static str {
    if i == Demo::NODES { "b" } else { "a" }
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests;
