//! `bfgg node`: the one task that owns a node's state — the runs it knows
//! ([`RunState`], the lifecycle), its own part in a run ([`AgentSlot`]), the
//! cluster view, the coordinator's live copies — and turns everything that
//! happens (network events, the monitor's and health's ticks, effects
//! reporting back as [`Input`]s) into state changes and effects. Nothing here
//! waits on the network or the disk for long: slow work (preparing, the
//! engine, fan-outs, finalizing, log pages) runs on tasks of its own that
//! report back over a bounded channel. A request this node makes of itself
//! ([`Ctx::ask`]) takes the same path as a peer's.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use bfgg_protocol::mesh::{
    ControlRequest, ControlResponse, EngineInfo, Gossip, HEALTH_TOPIC, KnownNode, Mandate,
    NodeHealth, RUN_TOPIC, RunEvent, RunPlan,
};
use bfgg_protocol::{NodeId, RunId};
use tokio::sync::mpsc;

use super::agent::{self, AgentSlot, FINISHING_HOLD};
use super::bundle::Store;
use super::coordinator::{self, FinalizeInput, START_LEAD_MS};
use super::lifecycle::{Action, Event, Facts, Phase, RunState};
use super::sys;
use super::view::{ClusterView, Liveness, Timeouts};
use crate::interval_log::LiveCopies;
use crate::merge::Merged;
use crate::metrics::{self, Metrics, PeerCounts};
use crate::net::{self, NetConfig, NetError, NetEvent, NetHandle, Reply};

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
    /// `--python`: the Python that runs Locust.
    pub python: String,
    /// `--s3`: where this node uploads the results of the runs it
    /// coordinates and its own interval log of every run it takes part in.
    pub s3: Option<crate::results::upload::S3Config>,
    /// Most intervals in one page of a log this node serves
    /// ([`super::logs::DEFAULT_PAGE_INTERVALS`]).
    pub page_intervals: u32,
    /// Who may start and stop runs here (`--operators`,
    /// `<config dir>/operators`).
    pub operators: super::operators::Operators,
    /// `--metrics-addr`: serve Prometheus metrics on `http://ADDR/metrics`
    /// (off when `None`).
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// How many inputs from effects may wait for the node's task.
const INPUTS: usize = 1024;

/// Health messages (mostly beats) per second the whole cluster may publish:
/// each node's period grows with the number of nodes (1 s up to 5 nodes,
/// 20 s at 100), so what every node hears stays bounded (docs/MESH.md: at 100
/// nodes, 10 a second were ~3 KiB/s of a node's 4 KiB/s budget).
const HEALTH_PER_S: u32 = 5;

/// The longest health period: past 150 nodes the cluster's health traffic
/// grows again rather than an idle node's death taking longer than 3 of
/// these to notice.
const MAX_HEALTH_PERIOD_MS: u64 = 30_000;

/// How often a node of a cluster of `nodes` publishes its health. A node
/// that coordinates a run does so every second whatever the cluster's size
/// (one more beat a second per run): its participants judge it by its
/// announced period, and a dead coordinator must be taken over within
/// `--dead-after`, not 3 long periods.
pub(crate) fn health_period(nodes: usize, coordinating: bool) -> Duration {
    if coordinating {
        return Duration::from_secs(1);
    }
    let ms = (nodes as u64).saturating_mul(1_000) / u64::from(HEALTH_PER_S);
    Duration::from_millis(ms.clamp(1_000, MAX_HEALTH_PERIOD_MS))
}

/// What effects report to the node's task.
pub(crate) enum Input {
    /// A request this node makes of itself.
    Local { req: ControlRequest, reply: Reply },
    /// This node's preparing ended.
    Prepared {
        run: RunId,
        result: Result<super::agent::Ready, String>,
        reply: Reply,
    },
    /// A submitted run was planned (this node coordinates it).
    Planned { plan: RunPlan, reply: Reply },
    /// The agents of a run this node coordinates prepared (no failures) or
    /// not.
    AgentsPrepared {
        run: RunId,
        failures: Vec<String>,
        reply: Reply,
    },
    /// This node's engine ended; its `AgentFinished`.
    EngineDone { run: RunId, event: RunEvent },
    /// Finalizing ended.
    Finalized { run: RunId, ok: bool },
    /// Asked, the coordinator says the run finished.
    FinishedElsewhere { run: RunId },
    /// The slot has been finishing `run` for [`FINISHING_HOLD`].
    FinishingHeld { run: RunId },
    /// The engines found on this host (probed once at start).
    Engines(Vec<EngineInfo>),
}

/// Shared, read-only (but for counters) by the node's task and its effects.
pub(crate) struct Ctx {
    pub(crate) me: NodeId,
    pub(crate) name: String,
    pub(crate) net: NetHandle,
    pub(crate) data_dir: PathBuf,
    pub(crate) store: Store,
    pub(crate) timeouts: Timeouts,
    pub(crate) workers: Option<usize>,
    pub(crate) python: String,
    pub(crate) s3: Option<crate::results::upload::S3Config>,
    pub(crate) page_intervals: u32,
    /// Who may start and stop runs here.
    pub(crate) operators: super::operators::Operators,
    /// False when the last interval showed the generator behind schedule.
    pub(crate) keeping_schedule: AtomicBool,
    /// With `--metrics-addr`: what the metrics endpoint serves.
    pub(crate) metrics: Option<Arc<Metrics>>,
    inputs: mpsc::Sender<Input>,
}

impl Ctx {
    /// Asks `node`; this node's own requests take the same path as a peer's
    /// (answered by its task), without the network.
    pub(crate) async fn ask(
        &self,
        node: &NodeId,
        req: ControlRequest,
    ) -> Result<ControlResponse, NetError> {
        if node != &self.me {
            return self.net.request(node, req).await;
        }
        let (reply, answer) = Reply::local();
        self.inputs
            .send(Input::Local { req, reply })
            .await
            .map_err(|_| NetError::Closed)?;
        answer
            .await
            .map_err(|_| NetError::Request("no answer".into()))
    }

    /// Hands `input` to the node's task (waits while it is behind).
    pub(crate) async fn report(&self, input: Input) {
        if self.inputs.send(input).await.is_err() {
            tracing::debug!("the node is shutting down: a report is dropped");
        }
    }

    /// Publishes, retrying briefly while gossipsub has no subscribed peer yet
    /// (every node's first publishes fail that way; see NOTES.md).
    pub(crate) async fn publish(&self, topic: &str, msg: &Gossip) {
        for attempt in 0..3 {
            match self.net.publish(topic, msg).await {
                Ok(()) => return,
                Err(NetError::NoPeers) if attempt < 2 => {
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
}

/// Runs this node has seen finish, newest last, so that late news of them
/// opens no new state. Bounded: the oldest are forgotten.
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

/// Sends `event` to `coordinator` as a `Report`, a few times if it does not
/// answer (a coordinator that stays silent is taken over, and the new one
/// learns it from gossip or the agent's log).
async fn report_to(ctx: &Ctx, coordinator: &NodeId, run: &RunId, event: &RunEvent) {
    for attempt in 0..3 {
        let req = ControlRequest::Report {
            run: run.clone(),
            event: event.clone(),
        };
        match ctx.ask(coordinator, req).await {
            Ok(_) => return,
            Err(e) => {
                tracing::debug!(%run, attempt, "reporting to the coordinator: {e}");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

/// The node's state, owned by its task.
struct Node {
    ctx: Arc<Ctx>,
    labels: BTreeMap<String, String>,
    runs: HashMap<RunId, RunState>,
    /// As a coordinator: each agent's live intervals on disk.
    copies: HashMap<RunId, LiveCopies>,
    slot: AgentSlot,
    view: ClusterView,
    finished: FinishedRuns,
    listen_addrs: Vec<String>,
    /// What `engine::probe` found (native until it answers).
    engines: Vec<EngineInfo>,
    cpu: sys::CpuSampler,
    /// When this node last published its health.
    health_sent: Option<Instant>,
    /// Whether the next health goes out whole or as a beat.
    revisions: super::beats::HealthRevisions,
    /// Run mandates this node prepared runs for (each starts one run).
    used_mandates: super::operators::UsedMandates,
}

/// Runs `bfgg node` until `shutdown` resolves. `on_listening` is called with
/// each listen address (the CLI prints a machine-readable line for it).
pub async fn run_node(
    config: NodeConfig,
    shutdown: impl std::future::Future<Output = ()>,
    mut on_listening: impl FnMut(&NodeId, &str),
) -> anyhow::Result<()> {
    // First, so that a taken address stops the node before it joins anyone.
    let metrics_listener = match config.metrics_addr {
        Some(addr) => Some(metrics::serve::bind(addr).await?),
        None => None,
    };
    std::fs::create_dir_all(&config.data_dir)?;
    let (net, mut events) = net::spawn(config.net)?;
    let (inputs, mut reports) = mpsc::channel(INPUTS);
    let metrics = metrics_listener.as_ref().map(|_| {
        Arc::new(Metrics::new(
            net.local_id(),
            &config.name,
            metrics::Limits::NODE,
        ))
    });
    let ctx = Arc::new(Ctx {
        me: net.local_id().clone(),
        name: config.name,
        store: Store::new(&config.data_dir),
        data_dir: config.data_dir,
        timeouts: config.timeouts,
        workers: config.workers,
        python: config.python.clone(),
        s3: config.s3.clone(),
        page_intervals: config.page_intervals.max(1),
        operators: config.operators,
        keeping_schedule: AtomicBool::new(true),
        metrics: metrics.clone(),
        net,
        inputs,
    });
    let metrics_server = match (metrics_listener, metrics) {
        (Some(listener), Some(metrics)) => {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!("metrics on http://{addr}/metrics");
            }
            Some(metrics::serve::spawn(listener, metrics))
        }
        _ => None,
    };
    let mut node = Node {
        ctx,
        labels: config.labels,
        runs: HashMap::new(),
        copies: HashMap::new(),
        slot: AgentSlot::default(),
        view: ClusterView::default(),
        finished: FinishedRuns::default(),
        listen_addrs: Vec::new(),
        revisions: super::beats::HealthRevisions::new(sys::now_ms() as u32),
        engines: vec![EngineInfo {
            name: "native".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }],
        cpu: sys::CpuSampler::default(),
        health_sent: None,
        used_mandates: Default::default(),
    };
    {
        let ctx = node.ctx.clone();
        tokio::spawn(async move {
            let engines = crate::engine::probe(&ctx.python).await;
            ctx.report(Input::Engines(engines)).await;
        });
    }
    let mut monitor = tokio::time::interval(Duration::from_millis(500));
    monitor.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut health = tokio::time::interval(Duration::from_secs(1));
    health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                None => break,
                Some(NetEvent::Listening { addr }) => {
                    on_listening(&node.ctx.me, &addr);
                    node.listen_addrs.push(addr);
                }
                Some(ev) => node.on_net(ev),
            },
            Some(input) = reports.recv() => node.on_input(input),
            _ = monitor.tick() => node.on_tick(),
            _ = health.tick() => node.publish_health(),
            () = &mut shutdown => break,
        }
    }
    if let Some(run) = node.slot.run_id().cloned() {
        node.slot.stop(&run, "node shutting down");
    }
    if let Some(server) = metrics_server {
        server.abort();
    }
    Ok(())
}

impl Node {
    fn facts_now(&self) -> (u64, Instant) {
        (sys::now_ms(), Instant::now())
    }

    /// Applies `event` to `run` (if this node knows it) and performs the
    /// actions; `reply` is a stop request's answer, owed after the fan-out.
    fn apply(&mut self, run: &RunId, event: Event, reply: Option<Reply>) {
        let (now_ms, now) = self.facts_now();
        let Some(state) = self.runs.get_mut(run) else {
            if let Some(reply) = reply {
                reply.send(ControlResponse::Done);
            }
            return;
        };
        let view = &self.view;
        let me = &self.ctx.me;
        let timeouts = &self.ctx.timeouts;
        let liveness = |id: &NodeId| {
            if id == me {
                Liveness::Alive
            } else {
                view.liveness(id, now, timeouts)
            }
        };
        let last_heard = |id: &NodeId| view.get(id).map_or(0, |v| v.health.sent_at_ms);
        let facts = Facts {
            me,
            now_ms,
            liveness: &liveness,
            last_heard_ms: &last_heard,
        };
        let actions = state.apply(event, &facts);
        self.perform(run, actions, reply);
    }

    fn perform(&mut self, run: &RunId, actions: Vec<Action>, mut reply: Option<Reply>) {
        for action in actions {
            match action {
                Action::Publish(event) => {
                    if let RunEvent::CoordinatorChanged { node } = &event {
                        tracing::warn!(%run, "the coordinator is dead: taking over");
                        self.slot.coordinator_changed(run, node);
                        // Live copies from now on (the dead one's are gone).
                        let dir = self.ctx.data_dir.join("runs").join(&run.0).join("live");
                        self.copies
                            .entry(run.clone())
                            .or_insert_with(|| LiveCopies::new(dir));
                    }
                    let ctx = self.ctx.clone();
                    let run = run.clone();
                    tokio::spawn(async move { ctx.publish_run(&run, event).await });
                }
                Action::PublishMerged(merged) => self.publish_merged(run, merged),
                Action::StopAgent { reason } => {
                    self.slot.stop(run, &reason);
                }
                Action::StopAgents => {
                    if let Some(state) = self.runs.get(run) {
                        let plan = state.plan.clone();
                        tokio::spawn(coordinator::stop_agents(
                            self.ctx.clone(),
                            plan,
                            reply.take(),
                        ));
                    }
                }
                Action::TakeMovedShare { segment, from_ms } => {
                    self.slot.take_moved_share(run, segment, from_ms);
                }
                Action::Finalize => {
                    if let Some(state) = self.runs.get(run) {
                        let copies = self.copies.get(run);
                        let input = FinalizeInput {
                            plan: state.plan.clone(),
                            finished: state.finished.clone(),
                            lost: state.lost.clone(),
                            stopping: state.stopping.clone(),
                            rebalanced: state.rebalanced.clone(),
                            copies: state
                                .plan
                                .participants
                                .iter()
                                .map(|p| (p.node.clone(), copies.and_then(|c| c.file_of(&p.node))))
                                .collect(),
                        };
                        tokio::spawn(coordinator::finalize(self.ctx.clone(), input));
                    }
                }
                Action::AskCoordinator(coordinator) => {
                    let (ctx, run) = (self.ctx.clone(), run.clone());
                    tokio::spawn(async move {
                        let ask = ControlRequest::Status { run: run.clone() };
                        if let Ok(ControlResponse::Status {
                            finished: Some(_), ..
                        }) = ctx.ask(&coordinator, ask).await
                        {
                            ctx.report(Input::FinishedElsewhere { run }).await;
                        }
                    });
                }
                Action::Retire => self.retire(run),
            }
        }
        if let Some(reply) = reply {
            reply.send(ControlResponse::Done);
        }
    }

    /// The run's results are written: it leaves memory (what `Status` needs
    /// is on disk), and late news of it opens no new state.
    fn retire(&mut self, run: &RunId) {
        if let Some(m) = &self.ctx.metrics {
            m.finish(run);
        }
        self.runs.remove(run);
        if let Some(mut copies) = self.copies.remove(run) {
            copies.discard();
        }
        self.finished.insert(run.clone());
    }

    fn publish_merged(&self, run: &RunId, merged: Vec<Merged>) {
        let ctx = self.ctx.clone();
        let run = run.clone();
        tokio::spawn(async move {
            for m in merged {
                let msg = Gossip::Pulse {
                    run: run.clone(),
                    pulse: bfgg_protocol::Pulse::of(&m.snapshot),
                    agents: m.sources,
                };
                ctx.publish(RUN_TOPIC, &msg).await;
            }
        });
    }

    /// This node's state of `plan` (a participant's, from `Prepare` or the
    /// coordinator's `Planned`), unless it has one or the run is over.
    fn know(&mut self, plan: &RunPlan) {
        if self.finished.contains(&plan.run) || self.runs.contains_key(&plan.run) {
            return;
        }
        self.runs
            .insert(plan.run.clone(), RunState::new(plan.clone()));
    }

    fn on_tick(&mut self) {
        let runs: Vec<RunId> = self.runs.keys().cloned().collect();
        for run in runs {
            self.apply(&run, Event::Tick, None);
        }
    }

    fn publish_health(&mut self) {
        let coordinating = self.runs.values().any(|r| r.coordinator == self.ctx.me);
        let period = health_period(self.view.len(), coordinating);
        if self
            .health_sent
            .is_some_and(|at| at.elapsed() + Duration::from_millis(100) < period)
        {
            return;
        }
        self.health_sent = Some(Instant::now());
        let health = NodeHealth {
            node: self.ctx.me.clone(),
            name: self.ctx.name.clone(),
            labels: self.labels.clone(),
            state: self.slot.state(),
            engines: self.engines.clone(),
            cpu_pct: self.cpu.sample(),
            mem_bytes: sys::rss_bytes(),
            keeping_schedule: self
                .ctx
                .keeping_schedule
                .load(std::sync::atomic::Ordering::Relaxed),
            sent_at_ms: sys::now_ms(),
            bfgg_version: env!("CARGO_PKG_VERSION").into(),
            protocol_version: bfgg_protocol::PROTOCOL_VERSION,
            dropped_messages: self.ctx.net.stats().dropped,
            listen_addrs: self.listen_addrs.clone(),
            period_ms: period.as_millis() as u32,
            revision: 0,
        };
        let (health, msg) = self.revisions.next(health);
        if let Some(m) = &self.ctx.metrics {
            let now = Instant::now();
            let mut peers = PeerCounts::default();
            for p in self.view.peers().filter(|p| p.health.node != self.ctx.me) {
                match self.view.liveness(&p.health.node, now, &self.ctx.timeouts) {
                    Liveness::Alive => peers.alive += 1,
                    Liveness::Unresponsive => peers.unresponsive += 1,
                    Liveness::Dead => peers.dead += 1,
                }
            }
            m.health(&health, peers);
        }
        // Our own entry too, so selection and status treat us like any node.
        self.view
            .heard(health.clone(), Instant::now(), health.sent_at_ms);
        let ctx = self.ctx.clone();
        tokio::spawn(async move { ctx.publish(HEALTH_TOPIC, &msg).await });
    }

    fn on_net(&mut self, ev: NetEvent) {
        match ev {
            NetEvent::Listening { .. } => {}
            NetEvent::PeerConnected(id) => {
                tracing::debug!(peer = %id, "connected");
                self.view.reconnected(&id);
            }
            NetEvent::Incompatible {
                peer,
                protocol,
                agent,
            } => {
                // The network logs it; here it only leaves the candidate agents.
                self.view
                    .heard_incompatible(peer, protocol, agent, Instant::now());
            }
            NetEvent::PeerDisconnected(id) => tracing::debug!(peer = %id, "disconnected"),
            NetEvent::Dropped { from, reason } => {
                tracing::debug!(?from, "dropped a malformed message: {reason}");
            }
            NetEvent::Gossip { from, msg } => self.on_gossip(from, msg),
            NetEvent::Request { from, req, reply } => self.on_request(from, req, reply),
        }
    }

    fn on_gossip(&mut self, from: NodeId, msg: Gossip) {
        match msg {
            Gossip::Health(h) => {
                if h.node != from {
                    tracing::debug!(%from, claimed = %h.node, "health for another node: ignored");
                    return;
                }
                self.view.heard(h, Instant::now(), sys::now_ms());
            }
            // The network layer turns beats into full health; one it could
            // not (its revision unknown yet) only says the node is alive.
            Gossip::Beat(_) => self.view.touch(&from, Instant::now()),
            // What observers follow; a coordinator has the agents' own. It
            // says the coordinator is alive.
            Gossip::Pulse { .. } => self.view.touch(&from, Instant::now()),
            Gossip::Run { run, event } => {
                self.view.touch(&from, Instant::now());
                if let RunEvent::Planned(plan) = &event
                    && plan.run == run
                    && plan.coordinator == from
                    && plan.participants.iter().any(|p| p.node == self.ctx.me)
                {
                    self.know(plan);
                }
                self.on_run_event(&run, from, event);
            }
        }
    }

    fn on_run_event(&mut self, run: &RunId, from: NodeId, event: RunEvent) {
        if let RunEvent::CoordinatorChanged { node } = &event
            && node == &from
        {
            self.slot.coordinator_changed(run, node);
        }
        self.apply(run, Event::Run { from, event }, None);
    }

    fn on_input(&mut self, input: Input) {
        match input {
            Input::Local { req, reply } => {
                let me = self.ctx.me.clone();
                self.on_request(me, req, reply);
            }
            Input::Prepared { run, result, reply } => match self.slot.prepared(&run, result) {
                Ok(clock_offset_us) => reply.send(ControlResponse::Prepared { clock_offset_us }),
                Err(reason) => reply.send(ControlResponse::Rejected { reason }),
            },
            Input::Planned { plan, reply } => {
                let run = plan.run.clone();
                self.runs.insert(run.clone(), RunState::new(plan.clone()));
                self.copies.insert(
                    run.clone(),
                    LiveCopies::new(self.ctx.data_dir.join("runs").join(&run.0).join("live")),
                );
                tokio::spawn(coordinator::prepare_agents(self.ctx.clone(), plan, reply));
            }
            Input::AgentsPrepared {
                run,
                failures,
                reply,
            } => {
                let Some(state) = self.runs.get(&run) else {
                    reply.send(ControlResponse::Rejected {
                        reason: format!("run {run} is gone"),
                    });
                    return;
                };
                let plan = state.plan.clone();
                let refused = match &state.stopping {
                    Some(reason) => {
                        Some(format!("the run was stopped before it started ({reason})"))
                    }
                    None if !failures.is_empty() => {
                        Some(format!("agents could not prepare: {}", failures.join("; ")))
                    }
                    None => None,
                };
                if let Some(reason) = refused {
                    self.apply(&run, Event::PrepareFailed, None);
                    tokio::spawn(coordinator::release(self.ctx.clone(), plan));
                    reply.send(ControlResponse::Rejected { reason });
                    return;
                }
                let start_at_ms = sys::now_ms() + START_LEAD_MS;
                self.apply(&run, Event::Started { start_at_ms }, None);
                if let Some(state) = self.runs.get(&run) {
                    tokio::spawn(coordinator::start_agents(
                        self.ctx.clone(),
                        state.plan.clone(),
                        reply,
                    ));
                }
            }
            Input::EngineDone { run, event } => {
                self.slot.finishing(&run);
                if self.ctx.s3.is_some() {
                    tokio::spawn(agent::upload_own_log(self.ctx.clone(), run.clone()));
                }
                let me = self.ctx.me.clone();
                self.apply(
                    &run,
                    Event::Run {
                        from: me,
                        event: event.clone(),
                    },
                    None,
                );
                let ctx = self.ctx.clone();
                let coordinator = self.runs.get(&run).map(|s| s.coordinator.clone());
                tokio::spawn(async move {
                    // The coordinator must hear it: point-to-point (retried),
                    // and on gossip for everyone else.
                    if let Some(to) = coordinator.filter(|c| c != &ctx.me) {
                        report_to(&ctx, &to, &run, &event).await;
                    }
                    ctx.publish_run(&run, event).await;
                    // Finishing until confirmed, but free for new runs after a
                    // while: the log stays on disk either way.
                    tokio::time::sleep(FINISHING_HOLD).await;
                    ctx.report(Input::FinishingHeld { run }).await;
                });
            }
            Input::Finalized { run, ok } => self.apply(&run, Event::Finalized { ok }, None),
            Input::FinishedElsewhere { run } => self.apply(&run, Event::FinishedElsewhere, None),
            Input::Engines(engines) => {
                self.engines = engines;
                self.health_sent = None;
            }
            Input::FinishingHeld { run } => self.slot.release_finished(&run),
        }
    }

    fn on_request(&mut self, from: NodeId, req: ControlRequest, reply: Reply) {
        match req {
            ControlRequest::Submit(req) => {
                tokio::spawn(coordinator::plan(
                    self.ctx.clone(),
                    from,
                    req,
                    self.view.clone(),
                    reply,
                ));
            }
            ControlRequest::Prepare(plan) => {
                if let Err(refusal) =
                    self.ctx
                        .operators
                        .check_plan(&plan, sys::now_ms(), &mut self.used_mandates)
                {
                    reply.send(ControlResponse::Rejected {
                        reason: format!("{}: {refusal}", self.ctx.name),
                    });
                    return;
                }
                if let Err(run) = self.slot.claim(&plan) {
                    reply.send(ControlResponse::Busy { run });
                    return;
                }
                self.know(&plan);
                tokio::spawn(agent::prepare(self.ctx.clone(), plan, reply));
            }
            ControlRequest::Start { run, start_at_ms } => {
                match self.slot.start(&run, start_at_ms) {
                    Ok(Some(launch)) => {
                        // Shares moved here before the start (a fast loss).
                        let moved: Vec<_> = self
                            .runs
                            .get(&run)
                            .map_or_else(Vec::new, |s| s.moved_shares_of(&self.ctx.me).collect());
                        self.apply(&run, Event::Started { start_at_ms }, None);
                        tokio::spawn(agent::execute(self.ctx.clone(), launch));
                        for (segment, from_ms) in moved {
                            self.slot.take_moved_share(&run, segment, from_ms);
                        }
                        reply.send(ControlResponse::Done);
                    }
                    Ok(None) => reply.send(ControlResponse::Done),
                    Err(reason) => reply.send(ControlResponse::Rejected { reason }),
                }
            }
            ControlRequest::FetchFile { sha256 } => {
                let ctx = self.ctx.clone();
                tokio::task::spawn_blocking(move || {
                    reply.send(match ctx.store.get(&sha256) {
                        Some(contents) => ControlResponse::File { contents },
                        None => ControlResponse::Rejected {
                            reason: format!("no file {sha256} here"),
                        },
                    });
                });
            }
            ControlRequest::Stop { run, mandate } => self.on_stop(from, run, mandate, reply),
            ControlRequest::Rights { operator } => reply.send(ControlResponse::Rights {
                enforced: self.ctx.operators.enforced(),
                operator: self.ctx.operators.allows(&operator),
            }),
            ControlRequest::FetchLog {
                run,
                log,
                offset,
                max,
            } => {
                let writing = self.slot.is_writing(&run);
                let ctx = self.ctx.clone();
                tokio::task::spawn_blocking(move || {
                    reply.send(super::logs::serve(&ctx, &run, log, offset, max, writing));
                });
            }
            ControlRequest::ConfirmResults { run } => {
                agent::delete_log(&self.ctx, &run);
                self.slot.release_finished(&run);
                reply.send(ControlResponse::Done);
            }
            ControlRequest::Clock { sent_us } => reply.send(ControlResponse::Clock {
                sent_us,
                now_us: sys::now_us(),
            }),
            ControlRequest::Status { run } => {
                // The results on disk first: a run being retired has them.
                let on_disk = coordinator::status_from_disk(&self.ctx, &run);
                reply.send(match (on_disk, self.runs.get(&run)) {
                    (finished @ ControlResponse::Status { .. }, _) => finished,
                    (_, Some(state)) => ControlResponse::Status {
                        finished: None,
                        coordinator: state.coordinator.clone(),
                    },
                    (refused, None) => refused,
                });
            }
            ControlRequest::Interval { run, snapshot } => {
                self.view.touch(&from, Instant::now());
                if let Some(state) = self.runs.get(&run)
                    && state.coordinator == self.ctx.me
                    && state.is_participant(&from)
                    && let Some(copies) = self.copies.get_mut(&run)
                {
                    copies.keep(&from, &snapshot);
                    if let Some(m) = &self.ctx.metrics {
                        m.agent_interval(&run, &from, &snapshot);
                    }
                }
                self.apply(&run, Event::Interval { from, snapshot }, None);
                reply.send(ControlResponse::Done);
            }
            ControlRequest::Health { node } => match self.view.get(&node) {
                Some(p) => reply.send(ControlResponse::Health(Box::new(p.health.clone()))),
                None => reply.send(ControlResponse::Rejected {
                    reason: format!("no health of {node} here"),
                }),
            },
            ControlRequest::Nodes => {
                let now = Instant::now();
                let nodes = self
                    .view
                    .peers()
                    .map(|p| KnownNode {
                        health: p.health.clone(),
                        silent_ms: now.saturating_duration_since(p.last_heard).as_millis() as u64,
                    })
                    .collect();
                reply.send(ControlResponse::Nodes { nodes });
            }
            ControlRequest::Report { run, event } => {
                self.view.touch(&from, Instant::now());
                self.on_run_event(&run, from, event);
                reply.send(ControlResponse::Done);
            }
            ControlRequest::Subscribe { run } => {
                let agent = self.slot.subscribe(&run, from);
                let plan = self
                    .runs
                    .get(&run)
                    .filter(|s| s.coordinator == self.ctx.me)
                    .map(|s| s.plan.clone());
                reply.send(match (plan, agent) {
                    (Some(plan), _) => ControlResponse::Plan(plan),
                    (None, Ok(())) => ControlResponse::Done,
                    (None, Err(reason)) => ControlResponse::Rejected { reason },
                });
            }
        }
    }

    /// `Stop`: the coordinator fans it out (answering once every agent was
    /// told); a participant stops its own part and passes it on to the
    /// coordinator (unless it came from there); a node that only has the
    /// run in its slot stops that. Where this node has an operators list,
    /// the stop needs an operator's mandate unless it comes from the run's
    /// coordinator (or this node); the mandate is passed on with it.
    fn on_stop(&mut self, from: NodeId, run: RunId, mandate: Option<Mandate>, reply: Reply) {
        let reason = "stopped by request".to_string();
        let internal = from == self.ctx.me
            || self
                .runs
                .get(&run)
                .is_some_and(|state| state.coordinator == from);
        if !internal
            && let Err(refusal) =
                self.ctx
                    .operators
                    .check_stop(&run, mandate.as_ref(), sys::now_ms())
        {
            reply.send(ControlResponse::Rejected {
                reason: format!("{}: {refusal}", self.ctx.name),
            });
            return;
        }
        let Some(state) = self.runs.get(&run) else {
            if self.slot.stop(&run, &reason) {
                reply.send(ControlResponse::Done);
            } else {
                reply.send(ControlResponse::Rejected {
                    reason: format!("no run {run} here"),
                });
            }
            return;
        };
        let coordinator = state.coordinator.clone();
        if coordinator == self.ctx.me {
            self.apply(&run, Event::Stop { reason }, Some(reply));
            return;
        }
        self.slot.stop(&run, &reason);
        if state.phase == Phase::Starting {
            // Released before the start (the run was refused or stopped).
            self.retire(&run);
        }
        if from == coordinator {
            reply.send(ControlResponse::Done);
            return;
        }
        let ctx = self.ctx.clone();
        tokio::spawn(async move {
            reply.send(
                ctx.ask(&coordinator, ControlRequest::Stop { run, mandate })
                    .await
                    .unwrap_or_else(|e| ControlResponse::Rejected {
                        reason: format!("the coordinator did not answer: {e}"),
                    }),
            );
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_health_period_keeps_the_clusters_health_traffic_bounded() {
        let secs = |n| health_period(n, false).as_secs_f64();
        assert_eq!(secs(1), 1.0);
        assert_eq!(secs(5), 1.0);
        assert_eq!(secs(10), 2.0);
        assert_eq!(secs(50), 10.0);
        assert_eq!(secs(100), 20.0);
        assert_eq!(secs(1_000), 30.0, "capped: liveness must stay usable");
        for n in [1usize, 10, 30, 50, 100, 150] {
            let per_s = n as f64 / secs(n);
            assert!(per_s <= f64::from(HEALTH_PER_S), "{n} nodes: {per_s}/s");
            assert_eq!(
                health_period(n, true),
                Duration::from_secs(1),
                "a coordinator"
            );
        }
    }

    #[test]
    fn finished_runs_are_remembered_up_to_their_capacity() {
        let mut f = FinishedRuns::default();
        for i in 0..=FinishedRuns::CAPACITY {
            f.insert(RunId(format!("r{i}")));
        }
        assert!(!f.contains(&RunId("r0".into())), "the oldest is forgotten");
        assert!(f.contains(&RunId("r1".into())));
        assert!(f.contains(&RunId(format!("r{}", FinishedRuns::CAPACITY))));
        f.insert(RunId("r1".into()));
        assert_eq!(f.order.len(), FinishedRuns::CAPACITY);
    }
}
