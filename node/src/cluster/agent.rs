//! This node as an agent: prepare for a plan (fetch and verify the bundle,
//! load the scenario, measure the clock offset to the coordinator), start on
//! the coordinated time, generate its share, record every interval to disk
//! and gossip, report when done, and keep its results until a coordinator
//! confirms it has them. One run at a time: asked for another, it says Busy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bfgg_protocol::mesh::{ControlRequest, ControlResponse, NodeState, RunEvent, RunPlan};
use bfgg_protocol::{IntervalSnapshot, NodeId, RunId};
use tokio::sync::oneshot;

use super::node::{Ctx, lock};
use super::sys;
use crate::engine::schedule::Segment;
use crate::engine::{EngineConfig, ExtraShare};
use crate::interval_log::{self as log, IntervalLog};
use crate::run::{StopRequest, drive};
use crate::scenario::{self, Scenario, data::Strategy};

/// This node's part in a run, if any.
#[derive(Debug, Default)]
pub(crate) struct AgentSlot {
    pub(crate) run: Option<AgentRun>,
    /// False when the last interval showed the generator behind schedule.
    pub(crate) keeping_schedule: bool,
}

#[derive(Debug)]
pub(crate) struct AgentRun {
    pub(crate) plan: RunPlan,
    pub(crate) phase: AgentPhase,
    /// Set while preparing: the scenario and the measured offset.
    prepared: Option<(Arc<Scenario>, i64)>,
    /// Resolves the running drive's stop future.
    stop: Option<oneshot::Sender<StopRequest>>,
    /// Shares taken over from lost agents (`--rebalance`), watched by the
    /// running engine.
    extra: Option<tokio::sync::watch::Sender<Vec<ExtraShare>>>,
    /// Observers that asked for this agent's intervals (at most
    /// [`MAX_SUBSCRIBERS`]).
    subscribers: Vec<NodeId>,
}

/// Most observers an agent sends its intervals to, besides its coordinator.
pub(crate) const MAX_SUBSCRIBERS: usize = 8;

/// How long sending one interval to one receiver may take before it is given
/// up (the agent's log has it anyway).
const SEND_LIMIT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AgentPhase {
    Preparing,
    Running,
    /// Load over; results on disk until confirmed.
    Finishing,
}

impl AgentSlot {
    /// Adds `observer` to the receivers of this node's intervals of `run`.
    pub(crate) fn subscribe(&mut self, run: &RunId, observer: NodeId) -> Result<(), String> {
        let Some(r) = self.run.as_mut().filter(|r| &r.plan.run == run) else {
            return Err(format!("not an agent of run {run}"));
        };
        if !r.subscribers.contains(&observer) {
            if r.subscribers.len() >= MAX_SUBSCRIBERS {
                return Err(format!(
                    "{MAX_SUBSCRIBERS} observers already follow this agent"
                ));
            }
            r.subscribers.push(observer);
        }
        Ok(())
    }

    /// Whether this node may still append to its log of `run`.
    pub(crate) fn is_writing(&self, run: &RunId) -> bool {
        self.run
            .as_ref()
            .is_some_and(|r| &r.plan.run == run && r.phase != AgentPhase::Finishing)
    }

    pub(crate) fn state(&self) -> NodeState {
        match &self.run {
            None => NodeState::Idle,
            Some(r) => match r.phase {
                AgentPhase::Preparing => NodeState::Preparing(r.plan.run.clone()),
                AgentPhase::Running => NodeState::Running(r.plan.run.clone()),
                AgentPhase::Finishing => NodeState::Finishing(r.plan.run.clone()),
            },
        }
    }
}

/// `Prepare`: claim this node for the plan, or say Busy.
pub(crate) async fn prepare(ctx: &Arc<Ctx>, plan: RunPlan) -> ControlResponse {
    {
        let mut slot = lock(&ctx.agent);
        if let Some(r) = &slot.run
            && r.plan.run != plan.run
            && r.phase != AgentPhase::Finishing
        {
            return ControlResponse::Busy {
                run: r.plan.run.clone(),
            };
        }
        slot.run = Some(AgentRun {
            plan: plan.clone(),
            phase: AgentPhase::Preparing,
            prepared: None,
            stop: None,
            extra: None,
            subscribers: Vec::new(),
        });
    }
    lock(&ctx.runs)
        .entry(plan.run.clone())
        .or_insert_with(|| super::node::RunBook::new(plan.clone(), &ctx.data_dir));
    match prepare_inner(ctx, &plan).await {
        Ok((scenario, offset_us)) => {
            let mut slot = lock(&ctx.agent);
            if let Some(r) = slot.run.as_mut().filter(|r| r.plan.run == plan.run) {
                r.prepared = Some((scenario, offset_us));
            }
            ControlResponse::Prepared {
                clock_offset_us: offset_us,
            }
        }
        Err(e) => {
            let mut slot = lock(&ctx.agent);
            if slot.run.as_ref().is_some_and(|r| r.plan.run == plan.run) {
                slot.run = None;
            }
            ControlResponse::Rejected {
                reason: format!("{e:#}"),
            }
        }
    }
}

async fn prepare_inner(ctx: &Arc<Ctx>, plan: &RunPlan) -> anyhow::Result<(Arc<Scenario>, i64)> {
    let me = plan
        .participants
        .iter()
        .find(|p| p.node == ctx.me)
        .context("this node is not a participant of the plan")?;
    for f in &plan.files {
        if ctx.store.has(&f.sha256) {
            continue;
        }
        let resp = ctx
            .net
            .request(
                &plan.coordinator,
                ControlRequest::FetchFile {
                    sha256: f.sha256.clone(),
                },
            )
            .await
            .with_context(|| format!("fetching bundle file {} from the coordinator", f.path))?;
        match resp {
            ControlResponse::File { contents } => ctx
                .store
                .put(&f.sha256, &contents)
                .with_context(|| format!("bundle file {}", f.path))?,
            other => anyhow::bail!(
                "fetching bundle file {}: unexpected answer {other:?}",
                f.path
            ),
        }
    }
    let dir = ctx.data_dir.join("runs").join(&plan.run.0).join("bundle");
    let path = ctx.store.materialize(&plan.files, &dir)?;
    let scenario = load_for_plan(&path, plan, me.index)?;
    let offset_us = if plan.coordinator == ctx.me {
        0
    } else {
        measure_offset(ctx, &plan.coordinator).await?
    };
    Ok((Arc::new(scenario), offset_us))
}

/// Loads the bundle's scenario with the plan's overrides, unique data pools
/// partitioned to this agent's share.
pub(crate) fn load_for_plan(
    path: &std::path::Path,
    plan: &RunPlan,
    index: u32,
) -> anyhow::Result<Scenario> {
    let mut s = scenario::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(url) = &plan.target {
        s = s
            .with_target(url)
            .map_err(|e| anyhow::anyhow!("--target {url}: {e}"))?;
    }
    if let Some(ms) = plan.duration_ms {
        s.load.duration = Duration::from_millis(ms);
    }
    let count = plan.participants.len().max(1);
    for pool in &mut s.pools {
        if pool.strategy == Strategy::Unique {
            *pool = pool.partition(index as usize, count);
        }
    }
    Ok(s)
}

/// Clock offset to `peer` (its clock − ours), µs: the sample with the
/// shortest round trip of five, assuming a symmetric path.
async fn measure_offset(ctx: &Ctx, peer: &NodeId) -> anyhow::Result<i64> {
    let mut best: Option<(u64, i64)> = None;
    for _ in 0..5 {
        let t1 = sys::now_us();
        let resp = ctx
            .net
            .request(peer, ControlRequest::Clock { sent_us: t1 })
            .await
            .context("measuring the clock offset to the coordinator")?;
        let t2 = sys::now_us();
        if let ControlResponse::Clock { now_us, .. } = resp {
            let rtt = t2.saturating_sub(t1);
            let offset = now_us as i64 - (t1 as i64 + rtt as i64 / 2);
            if best.is_none_or(|(r, _)| rtt < r) {
                best = Some((rtt, offset));
            }
        }
    }
    best.map(|(_, o)| o)
        .context("no clock answer from the coordinator")
}

/// `Start`: begin at `start_at_ms` (coordinator clock).
pub(crate) fn start(ctx: &Arc<Ctx>, run: RunId, start_at_ms: u64) -> ControlResponse {
    let (plan, scenario, offset_us, stop_rx, extra_rx) = {
        let mut slot = lock(&ctx.agent);
        let Some(r) = slot.run.as_mut().filter(|r| r.plan.run == run) else {
            return ControlResponse::Rejected {
                reason: format!("not prepared for run {run}"),
            };
        };
        if r.phase != AgentPhase::Preparing {
            return ControlResponse::Done; // a repeated Start
        }
        let Some((scenario, offset_us)) = r.prepared.clone() else {
            return ControlResponse::Rejected {
                reason: "still preparing".into(),
            };
        };
        let (tx, rx) = oneshot::channel();
        r.stop = Some(tx);
        let (extra_tx, extra_rx) = tokio::sync::watch::channel(Vec::new());
        r.extra = Some(extra_tx);
        r.phase = AgentPhase::Running;
        r.plan.start_at_ms = start_at_ms;
        (r.plan.clone(), scenario, offset_us, rx, extra_rx)
    };
    // Shares moved here before the start (a fast loss) are in the book.
    for (segment, from_ms) in moved_to(ctx, &run, &ctx.me) {
        take_share(ctx, &run, segment, from_ms);
    }
    let ctx = ctx.clone();
    tokio::spawn(async move {
        if let Err(e) = execute(&ctx, plan, scenario, offset_us, stop_rx, extra_rx).await {
            tracing::error!("run {run}: {e:#}");
        }
    });
    ControlResponse::Done
}

async fn execute(
    ctx: &Arc<Ctx>,
    plan: RunPlan,
    scenario: Arc<Scenario>,
    offset_us: i64,
    stop: oneshot::Receiver<StopRequest>,
    extra: tokio::sync::watch::Receiver<Vec<ExtraShare>>,
) -> anyhow::Result<()> {
    let index = plan
        .participants
        .iter()
        .position(|p| p.node == ctx.me)
        .context("not a participant")? as u64;
    let agents = plan.participants.len() as u64;
    // The coordinator's start time on our clock.
    let local_start_ms = plan.start_at_ms as i64 - offset_us / 1000;
    let wait_ms = local_start_ms - sys::now_ms() as i64;
    let t0 = Instant::now() + Duration::from_millis(wait_ms.max(0) as u64);
    let mut log = IntervalLog::create(&log::dir_of(&ctx.data_dir, &plan.run.0))?;
    // What it sends from the load's start on (the prepare wait excluded).
    let sent_at_start = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(t0.into()).await;
            ctx.net.stats().bytes_out()
        })
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<IntervalSnapshot>(64);
    let publisher = {
        let ctx = ctx.clone();
        let run = plan.run.clone();
        tokio::spawn(async move {
            while let Some(snapshot) = rx.recv().await {
                // Live precision on the wire; the exact snapshot is on disk.
                send_interval(&ctx, &run, snapshot.live()).await;
            }
        })
    };
    let mut intervals = 0u32;
    let stop = async move {
        match stop.await {
            Ok(request) => request,
            // The slot was dropped (node shutting down): stop now.
            Err(_) => StopRequest {
                reason: "node shutting down".into(),
                grace: Some(Duration::from_millis(500)),
            },
        }
    };
    let config = EngineConfig {
        segment: Segment::WHOLE.split(index, agents),
        workers: ctx.workers.unwrap_or_else(crate::run::default_workers),
        t0,
        seed: crate::run::seed_from(std::time::SystemTime::now()) ^ index,
        extra: Some(extra),
    };
    let ctx_for_intervals = ctx.clone();
    let driven = drive(scenario, config, stop, |snap| {
        log.append(&snap)?;
        intervals = intervals.max(snap.index + 1);
        let keeping = snap.generator.late_starts * 100 <= snap.generator.scheduled.max(1)
            && snap.generator.cpu_busy_permille <= crate::results::BUSY_PERMILLE;
        lock(&ctx_for_intervals.agent).keeping_schedule = keeping;
        if tx.try_send(snap).is_err() {
            tracing::debug!("interval sender behind: interval not sent (kept on disk)");
        }
        Ok(())
    })
    .await;
    drop(tx);
    let _ = publisher.await;
    let (load_ms, stop_reason) = match &driven {
        Ok(d) => (
            d.load_ended.saturating_duration_since(t0).as_millis() as u64,
            d.stop_reason.clone(),
        ),
        Err(e) => (0, Some(format!("engine failed: {e:#}"))),
    };
    {
        let mut slot = lock(&ctx.agent);
        if let Some(r) = slot.run.as_mut().filter(|r| r.plan.run == plan.run) {
            r.phase = AgentPhase::Finishing;
            r.stop = None;
        }
    }
    let event = RunEvent::AgentFinished {
        node: ctx.me.clone(),
        intervals,
        started_at_ms: (local_start_ms + offset_us / 1000).max(0) as u64,
        clock_offset_us: offset_us,
        stop_reason,
        load_ms,
        mesh_bytes: match sent_at_start.await {
            Ok(before) => ctx.net.stats().bytes_out().saturating_sub(before),
            Err(_) => 0,
        },
    };
    // Apply locally too: this node may be the coordinator.
    super::coordinator::on_run_event(ctx, ctx.me.clone(), plan.run.clone(), event.clone());
    ctx.publish_run(&plan.run, event).await;
    // Finishing until confirmed, but free for new runs after a while: the
    // results stay on disk either way.
    let ctx2 = ctx.clone();
    let run = plan.run.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        let mut slot = lock(&ctx2.agent);
        if slot
            .run
            .as_ref()
            .is_some_and(|r| r.plan.run == run && r.phase == AgentPhase::Finishing)
        {
            slot.run = None;
        }
    });
    driven.map(|_| ())
}

/// Sends this node's live `snapshot` of `run` to the run's coordinator (now:
/// it changes on a takeover), waiting for it (so that the last interval
/// reaches it before `AgentFinished` does), and to the subscribed observers
/// on tasks of their own; each send is bounded by [`SEND_LIMIT`]. The
/// coordinator being this node is the same path without the network.
async fn send_interval(ctx: &Arc<Ctx>, run: &RunId, snapshot: IntervalSnapshot) {
    let coordinator = lock(&ctx.runs).get(run).map(|b| b.coordinator.clone());
    let subscribers = lock(&ctx.agent)
        .run
        .as_ref()
        .filter(|r| &r.plan.run == run)
        .map(|r| r.subscribers.clone())
        .unwrap_or_default();
    for to in subscribers {
        if to != ctx.me {
            tokio::spawn(deliver(ctx.clone(), to, run.clone(), snapshot.clone()));
        }
    }
    match coordinator {
        Some(to) if to == ctx.me => super::coordinator::on_interval(ctx, &to, run, snapshot),
        Some(to) => deliver(ctx.clone(), to, run.clone(), snapshot).await,
        None => {}
    }
}

async fn deliver(ctx: Arc<Ctx>, to: NodeId, run: RunId, snapshot: IntervalSnapshot) {
    let req = ControlRequest::Interval { run, snapshot };
    match tokio::time::timeout(SEND_LIMIT, ctx.net.request(&to, req)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::debug!(%to, "interval not delivered: {e}"),
        Err(_) => tracing::debug!(%to, "interval not delivered in time"),
    }
}

/// The shares of `run` moved to `node` so far, from the node's book.
pub(crate) fn moved_to(ctx: &Ctx, run: &RunId, node: &NodeId) -> Vec<(Segment, u64)> {
    lock(&ctx.runs).get(run).map_or_else(Vec::new, |book| {
        book.moved
            .iter()
            .filter(|m| &m.node == node)
            .map(|m| (m.segment, m.from_ms))
            .collect()
    })
}

/// Takes over `segment` of `run` from `from_ms` (coordinator clock) on, if
/// this node is running it and has not taken that share yet.
pub(crate) fn take_share(ctx: &Ctx, run: &RunId, segment: Segment, from_ms: u64) {
    let slot = lock(&ctx.agent);
    let Some(r) = slot.run.as_ref().filter(|r| &r.plan.run == run) else {
        return;
    };
    let (Some(tx), AgentPhase::Running) = (&r.extra, r.phase) else {
        return;
    };
    let from = Duration::from_millis(from_ms.saturating_sub(r.plan.start_at_ms));
    tx.send_if_modified(|shares| {
        if shares.iter().any(|s| s.segment == segment) {
            return false;
        }
        tracing::info!(%run, ?segment, after = ?from, "taking over a lost agent's share");
        shares.push(ExtraShare { segment, from });
        true
    });
}

/// Stops this node's part in `run`, if it has one. True when it did.
pub(crate) fn stop_local(ctx: &Ctx, run: &RunId, reason: &str) -> bool {
    let mut slot = lock(&ctx.agent);
    let Some(r) = slot.run.as_mut().filter(|r| &r.plan.run == run) else {
        return false;
    };
    match r.phase {
        AgentPhase::Preparing => {
            slot.run = None;
            true
        }
        AgentPhase::Running => {
            if let Some(tx) = r.stop.take() {
                let _ = tx.send(StopRequest {
                    reason: reason.to_string(),
                    grace: Some(Duration::from_millis(500)),
                });
            }
            true
        }
        AgentPhase::Finishing => true,
    }
}

/// `ConfirmResults`: the coordinator has our intervals; drop the copy.
pub(crate) fn confirmed(ctx: &Ctx, run: &RunId) -> ControlResponse {
    let dir = log::dir_of(&ctx.data_dir, &run.0);
    if let Err(e) = std::fs::remove_dir_all(&dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!("removing {}: {e}", dir.display());
    }
    let mut slot = lock(&ctx.agent);
    if slot
        .run
        .as_ref()
        .is_some_and(|r| &r.plan.run == run && r.phase == AgentPhase::Finishing)
    {
        slot.run = None;
    }
    ControlResponse::Done
}

/// The node is shutting down: stop any load now.
pub(crate) fn shutdown(ctx: &Ctx) {
    let run = lock(&ctx.agent).run.as_ref().map(|r| r.plan.run.clone());
    if let Some(run) = run {
        stop_local(ctx, &run, "node shutting down");
    }
}
