//! `bfgg node`: the event loop that turns network events into agent and
//! coordinator actions, the health publisher, and the shared node context.
//!
//! Control requests are answered on spawned tasks (a slow bundle fetch never
//! stalls the loop); gossip is applied in the loop; a monitor tick (500 ms)
//! watches runs for lost agents, finished runs and dead coordinators.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bfgg_protocol::mesh::{
    ControlRequest, ControlResponse, EngineInfo, Gossip, HEALTH_TOPIC, NodeHealth, RUN_TOPIC,
    RunEvent, RunPlan,
};
use bfgg_protocol::{NodeId, RunId, summary::RunSummary};

use super::agent::AgentSlot;
use super::bundle::Store;
use super::sys;
use super::view::{ClusterView, Liveness, Timeouts};
use crate::interval_log::LiveCopies;
use crate::merge::IntervalMerger;
use crate::net::{self, NetConfig, NetEvent, NetHandle};

/// Everything `bfgg node` is started with.
#[derive(Debug)]
pub struct NodeConfig {
    /// `--name` (default: the host name).
    pub name: String,
    /// `--labels`.
    pub labels: BTreeMap<String, String>,
    /// `--data-dir`: identity, content store, agent logs, results.
    pub data_dir: PathBuf,
    /// The network (identity file, key, listen, join, mDNS).
    pub net: NetConfig,
    /// Liveness thresholds.
    pub timeouts: Timeouts,
    /// Worker threads for load (default: one per core).
    pub workers: Option<usize>,
    /// Most intervals in one page of a log this node serves
    /// ([`super::logs::DEFAULT_PAGE_INTERVALS`]).
    pub page_intervals: u32,
}

/// What a node knows about one run: the replicated plan, who finished or
/// was lost, and (as its coordinator) every agent's live intervals: merged
/// for the mesh and copied to disk for agents lost mid-run.
#[derive(Debug)]
pub(crate) struct RunBook {
    pub(crate) plan: RunPlan,
    /// The coordinator now (the plan's, or whoever took over).
    pub(crate) coordinator: NodeId,
    /// Each agent's live intervals as this node received them as the
    /// coordinator, on disk.
    pub(crate) live: LiveCopies,
    /// The agents' live intervals merged, released once every agent sent one
    /// (or two newer ones arrived) and gossiped.
    pub(crate) merger: IntervalMerger<NodeId>,
    /// Agents whose load ended, with what they reported.
    pub(crate) finished: BTreeMap<NodeId, AgentDone>,
    /// Agents declared lost, with when they were last heard (Unix ms).
    pub(crate) lost: BTreeMap<NodeId, u64>,
    /// Shares moved from lost agents to live ones (`--rebalance`).
    pub(crate) moved: Vec<Moved>,
    /// Lost agents whose shares moved, and when (Unix ms, coordinator clock).
    pub(crate) rebalanced: BTreeMap<NodeId, u64>,
    /// Set once a stop was asked for.
    pub(crate) stopping: Option<String>,
    /// Set when results are being written (only once).
    pub(crate) finalizing: bool,
    /// The merged result, once written (coordinator only).
    pub(crate) result: Option<Arc<RunResult>>,
    /// When this node learnt of the run.
    pub(crate) since: Instant,
    /// When this node last asked the coordinator whether the run finished
    /// (a participant that missed the `Finished` gossip).
    pub(crate) checked: Option<Instant>,
}

/// A share moved to `node` from `from_ms` on (coordinator clock).
#[derive(Debug, Clone)]
pub(crate) struct Moved {
    pub(crate) node: NodeId,
    pub(crate) segment: crate::engine::schedule::Segment,
    pub(crate) from_ms: u64,
}

/// An agent's report at the end of its load.
#[derive(Debug, Clone)]
pub(crate) struct AgentDone {
    pub(crate) intervals: u32,
    pub(crate) started_at_ms: u64,
    pub(crate) clock_offset_us: i64,
    pub(crate) stop_reason: Option<String>,
    pub(crate) load_ms: u64,
    pub(crate) mesh_bytes: u64,
}

/// A finished run, as the coordinator wrote it (its merged intervals are in
/// the results directory).
#[derive(Debug)]
pub(crate) struct RunResult {
    pub(crate) summary: RunSummary,
}

/// Runs this node has seen finish, newest last, so that late gossip about
/// them opens no new book. Bounded: the oldest are forgotten.
#[derive(Debug, Default)]
pub(crate) struct FinishedRuns {
    order: std::collections::VecDeque<RunId>,
}

impl FinishedRuns {
    /// How many finished runs are remembered.
    pub(crate) const CAPACITY: usize = 1024;

    pub(crate) fn insert(&mut self, run: RunId) {
        if !self.order.contains(&run) {
            if self.order.len() == Self::CAPACITY {
                self.order.pop_front();
            }
            self.order.push_back(run);
        }
    }

    pub(crate) fn contains(&self, run: &RunId) -> bool {
        self.order.contains(run)
    }
}

impl RunBook {
    /// The book of `plan`, its gossip copies under `data_dir`.
    pub(crate) fn new(plan: RunPlan, data_dir: &Path) -> Self {
        let live = LiveCopies::new(data_dir.join("runs").join(&plan.run.0).join("live"));
        let merger =
            IntervalMerger::new(plan.participants.iter().map(|p| p.node.clone())).with_deadline(2);
        Self {
            coordinator: plan.coordinator.clone(),
            plan,
            live,
            merger,
            finished: BTreeMap::new(),
            lost: BTreeMap::new(),
            moved: Vec::new(),
            rebalanced: BTreeMap::new(),
            stopping: None,
            finalizing: false,
            result: None,
            since: Instant::now(),
            checked: None,
        }
    }

    pub(crate) fn is_participant(&self, id: &NodeId) -> bool {
        self.plan.participants.iter().any(|p| &p.node == id)
    }
}

/// Shared by every task of a node.
pub(crate) struct Ctx {
    pub(crate) me: NodeId,
    pub(crate) name: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) net: NetHandle,
    pub(crate) data_dir: PathBuf,
    pub(crate) store: Store,
    pub(crate) timeouts: Timeouts,
    pub(crate) workers: Option<usize>,
    pub(crate) page_intervals: u32,
    pub(crate) view: Mutex<ClusterView>,
    pub(crate) agent: Mutex<AgentSlot>,
    /// Books of runs under way; a run's book leaves once its results are
    /// written (they are on disk).
    pub(crate) runs: Mutex<HashMap<RunId, RunBook>>,
    /// Runs whose book left.
    pub(crate) finished: Mutex<FinishedRuns>,
    pub(crate) listen_addrs: Mutex<Vec<String>>,
}

/// Locks a mutex, recovering the data if a panicking task poisoned it (the
/// state is plain data: the worst case is a stale entry).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Ctx {
    /// Publishes, retrying briefly while gossipsub has no subscribed peer yet
    /// (every node's first publishes fail that way; see NOTES.md).
    pub(crate) async fn publish(&self, topic: &str, msg: &Gossip) {
        for attempt in 0..3 {
            match self.net.publish(topic, msg).await {
                Ok(()) => return,
                Err(net::NetError::NoPeers) if attempt < 2 => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    tracing::debug!("publish on {topic}: {e}");
                    return;
                }
            }
        }
    }

    pub(crate) async fn publish_run(&self, run: &RunId, event: RunEvent) {
        self.publish(
            RUN_TOPIC,
            &Gossip::Run {
                run: run.clone(),
                event,
            },
        )
        .await;
    }

    /// How `id` looks now; this node is always alive to itself.
    pub(crate) fn liveness(&self, id: &NodeId) -> Liveness {
        if id == &self.me {
            return Liveness::Alive;
        }
        lock(&self.view).liveness(id, Instant::now(), &self.timeouts)
    }

    fn health(&self, cpu: &mut sys::CpuSampler) -> NodeHealth {
        let (state, keeping) = {
            let slot = lock(&self.agent);
            (slot.state(), slot.keeping_schedule)
        };
        NodeHealth {
            node: self.me.clone(),
            name: self.name.clone(),
            labels: self.labels.clone(),
            state,
            engines: vec![EngineInfo {
                name: "native".into(),
                version: env!("CARGO_PKG_VERSION").into(),
            }],
            cpu_pct: cpu.sample(),
            mem_bytes: sys::rss_bytes(),
            keeping_schedule: keeping,
            sent_at_ms: sys::now_ms(),
            bfgg_version: env!("CARGO_PKG_VERSION").into(),
            protocol_version: bfgg_protocol::PROTOCOL_VERSION,
            dropped_messages: self.net.stats().dropped,
            listen_addrs: lock(&self.listen_addrs).clone(),
        }
    }
}

/// Runs `bfgg node` until `shutdown` resolves. `on_listening` is called with
/// each listen address (the CLI prints a machine-readable line for it).
pub async fn run_node(
    config: NodeConfig,
    shutdown: impl std::future::Future<Output = ()>,
    mut on_listening: impl FnMut(&NodeId, &str),
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)?;
    let (net, mut events) = net::spawn(config.net)?;
    let ctx = Arc::new(Ctx {
        me: net.local_id().clone(),
        name: config.name,
        labels: config.labels,
        store: Store::new(&config.data_dir),
        data_dir: config.data_dir,
        timeouts: config.timeouts,
        workers: config.workers,
        page_intervals: config.page_intervals.max(1),
        net,
        view: Mutex::new(ClusterView::default()),
        agent: Mutex::new(AgentSlot::default()),
        runs: Mutex::new(HashMap::new()),
        finished: Mutex::new(FinishedRuns::default()),
        listen_addrs: Mutex::new(Vec::new()),
    });
    let health = tokio::spawn(publish_health(ctx.clone()));
    let mut monitor = tokio::time::interval(Duration::from_millis(500));
    monitor.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                None => break,
                Some(ev) => on_event(&ctx, ev, &mut on_listening),
            },
            _ = monitor.tick() => super::coordinator::monitor(&ctx),
            () = &mut shutdown => break,
        }
    }
    health.abort();
    super::agent::shutdown(&ctx);
    Ok(())
}

/// Publishes this node's health every second, on its own task: load
/// generation runs on other threads, so a busy node is never taken for dead.
async fn publish_health(ctx: Arc<Ctx>) {
    let mut cpu = sys::CpuSampler::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let health = ctx.health(&mut cpu);
        // Our own entry too, so selection and status treat us like any node.
        lock(&ctx.view).heard(health.clone(), Instant::now(), health.sent_at_ms);
        ctx.publish(HEALTH_TOPIC, &Gossip::Health(health)).await;
    }
}

fn on_event(ctx: &Arc<Ctx>, ev: NetEvent, on_listening: &mut impl FnMut(&NodeId, &str)) {
    match ev {
        NetEvent::Listening { addr } => {
            on_listening(&ctx.me, &addr);
            lock(&ctx.listen_addrs).push(addr);
        }
        NetEvent::PeerConnected(id) => {
            tracing::debug!(peer = %id, "connected");
            lock(&ctx.view).reconnected(&id);
        }
        NetEvent::Incompatible {
            peer,
            protocol,
            agent,
        } => {
            // The network logs it; here it only leaves the candidate agents.
            lock(&ctx.view).heard_incompatible(peer, protocol, agent, Instant::now());
        }
        NetEvent::PeerDisconnected(id) => tracing::debug!(peer = %id, "disconnected"),
        NetEvent::Dropped { from, reason } => {
            tracing::debug!(?from, "dropped a malformed message: {reason}");
        }
        NetEvent::Gossip { from, msg } => on_gossip(ctx, from, msg),
        NetEvent::Request { from, req, reply } => {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let resp = on_request(&ctx, from, req).await;
                reply.send(resp);
            });
        }
    }
}

fn on_gossip(ctx: &Arc<Ctx>, from: NodeId, msg: Gossip) {
    match msg {
        Gossip::Health(h) => {
            if h.node != from {
                tracing::debug!(%from, claimed = %h.node, "health for another node: ignored");
                return;
            }
            lock(&ctx.view).heard(h, Instant::now(), sys::now_ms());
        }
        // What observers follow; a node has the agents' own intervals when
        // it coordinates.
        Gossip::Merged { .. } => {}
        Gossip::Run { run, event } => super::coordinator::on_run_event(ctx, from, run, event),
    }
}

/// `Subscribe`: an observer wants this node's intervals of `run` (if it is
/// an agent of it) and the plan (if it coordinates it).
fn subscribe(ctx: &Ctx, from: NodeId, run: &RunId) -> ControlResponse {
    let agent = lock(&ctx.agent).subscribe(run, from);
    let plan = lock(&ctx.runs)
        .get(run)
        .filter(|b| b.coordinator == ctx.me)
        .map(|b| b.plan.clone());
    match (plan, agent) {
        (Some(plan), _) => ControlResponse::Plan(plan),
        (None, Ok(())) => ControlResponse::Done,
        (None, Err(reason)) => ControlResponse::Rejected { reason },
    }
}

async fn on_request(ctx: &Arc<Ctx>, from: NodeId, req: ControlRequest) -> ControlResponse {
    use super::{agent, coordinator};
    match req {
        ControlRequest::Submit(r) => coordinator::submit(ctx, from, r).await,
        ControlRequest::Prepare(plan) => agent::prepare(ctx, plan).await,
        ControlRequest::Start { run, start_at_ms } => agent::start(ctx, run, start_at_ms),
        ControlRequest::FetchFile { sha256 } => match ctx.store.get(&sha256) {
            Some(contents) => ControlResponse::File { contents },
            None => ControlResponse::Rejected {
                reason: format!("no file {sha256} here"),
            },
        },
        ControlRequest::Stop { run } => coordinator::stop(ctx, from, run).await,
        ControlRequest::FetchLog {
            run,
            log,
            offset,
            max,
        } => super::logs::serve(ctx, &run, log, offset, max),
        ControlRequest::ConfirmResults { run } => agent::confirmed(ctx, &run),
        ControlRequest::Clock { sent_us } => ControlResponse::Clock {
            sent_us,
            now_us: sys::now_us(),
        },
        ControlRequest::Status { run } => coordinator::status(ctx, &run),
        ControlRequest::Interval { run, snapshot } => {
            coordinator::on_interval(ctx, &from, &run, snapshot);
            ControlResponse::Done
        }
        ControlRequest::Subscribe { run } => subscribe(ctx, from, &run),
    }
}
