//! This node's own part in a run: the [`AgentSlot`] (at most one run at a
//! time: preparing, prepared, running, finishing), owned by the node's task,
//! and the effects it starts on tasks of their own, which report back as
//! [`Input`]s: preparing (fetch and verify the bundle, load the scenario,
//! measure the clock offset to the coordinator) and the engine (start on the
//! coordinated time, log every interval to disk, then send it to the
//! coordinator and subscribed observers, report the end).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bfgg_protocol::mesh::{ControlRequest, ControlResponse, NodeState, RunEvent, RunPlan};
use bfgg_protocol::{IntervalSnapshot, NodeId, RunId};
use tokio::sync::{oneshot, watch};

use super::node::{Ctx, Input};
use super::sys;
use crate::engine::schedule::Segment;
use crate::engine::{EngineConfig, EngineEnv, MovedShare, Prepared};
use crate::interval_log::{self as log, IntervalLog};
use crate::run::{StopRequest, drive};
use crate::scenario::{self, Scenario, data::Strategy};

/// Most observers an agent sends its intervals to, besides its coordinator.
pub(crate) const MAX_SUBSCRIBERS: usize = 8;

/// How long sending one interval to one receiver may take before it is given
/// up (the agent's log has it anyway).
const SEND_LIMIT: Duration = Duration::from_secs(2);

/// How long a slot stays `Finishing` (results on disk, not yet confirmed)
/// before it takes new runs anyway; the log stays until confirmed.
pub(crate) const FINISHING_HOLD: Duration = Duration::from_secs(30);

/// Where this node sends its intervals of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Targets {
    pub(crate) coordinator: NodeId,
    pub(crate) subscribers: Vec<NodeId>,
}

/// This node's part in a run, if any.
#[derive(Debug, Default)]
pub(crate) struct AgentSlot {
    run: Option<SlotRun>,
}

#[derive(Debug)]
struct SlotRun {
    plan: RunPlan,
    stage: Stage,
    targets: watch::Sender<Targets>,
}

#[derive(Debug)]
enum Stage {
    Preparing,
    Prepared(Ready),
    Running {
        /// Resolves the engine's stop future (once).
        stop: Option<oneshot::Sender<StopRequest>>,
        /// Shares taken over from lost agents, watched by the engine.
        moved: watch::Sender<Vec<MovedShare>>,
    },
    /// Load over; the log is on disk until confirmed.
    Finishing,
}

/// What preparing made: the scenario, the clock offset to the coordinator,
/// and the engine, ready (an external engine's process started and
/// waiting) for the start instant.
#[derive(Debug)]
pub(crate) struct Ready {
    pub(crate) scenario: Arc<Scenario>,
    pub(crate) offset_us: i64,
    pub(crate) engine: Prepared,
}

/// What the engine task needs to run this node's share.
pub(crate) struct Launch {
    pub(crate) plan: RunPlan,
    pub(crate) scenario: Arc<Scenario>,
    pub(crate) offset_us: i64,
    pub(crate) engine: Prepared,
    pub(crate) stop: oneshot::Receiver<StopRequest>,
    pub(crate) moved: watch::Receiver<Vec<MovedShare>>,
    pub(crate) targets: watch::Receiver<Targets>,
}

impl AgentSlot {
    fn of(&self, run: &RunId) -> Option<&SlotRun> {
        self.run.as_ref().filter(|r| &r.plan.run == run)
    }

    fn of_mut(&mut self, run: &RunId) -> Option<&mut SlotRun> {
        self.run.as_mut().filter(|r| &r.plan.run == run)
    }

    /// The node state for health.
    pub(crate) fn state(&self) -> NodeState {
        match &self.run {
            None => NodeState::Idle,
            Some(r) => {
                let run = r.plan.run.clone();
                match r.stage {
                    Stage::Preparing | Stage::Prepared(_) => NodeState::Preparing(run),
                    Stage::Running { .. } => NodeState::Running(run),
                    Stage::Finishing => NodeState::Finishing(run),
                }
            }
        }
    }

    /// `Prepare`: claims the slot for `plan`, or names the run it is busy
    /// with. A slot that is finishing another run is free.
    pub(crate) fn claim(&mut self, plan: &RunPlan) -> Result<(), RunId> {
        if let Some(r) = &self.run
            && r.plan.run != plan.run
            && !matches!(r.stage, Stage::Finishing)
        {
            return Err(r.plan.run.clone());
        }
        let (targets, _) = watch::channel(Targets {
            coordinator: plan.coordinator.clone(),
            subscribers: Vec::new(),
        });
        self.run = Some(SlotRun {
            plan: plan.clone(),
            stage: Stage::Preparing,
            targets,
        });
        Ok(())
    }

    /// The prepare effect ended: keep what it made, if the slot still holds
    /// the run (a stop may have released it). False if it does not.
    pub(crate) fn prepared(
        &mut self,
        run: &RunId,
        result: Result<Ready, String>,
    ) -> Result<i64, String> {
        let Some(r) = self
            .of_mut(run)
            .filter(|r| matches!(r.stage, Stage::Preparing))
        else {
            return Err(format!("run {run} was cancelled while preparing"));
        };
        match result {
            Ok(ready) => {
                let offset_us = ready.offset_us;
                r.stage = Stage::Prepared(ready);
                Ok(offset_us)
            }
            Err(e) => {
                self.run = None;
                Err(e)
            }
        }
    }

    /// `Start`: the engine's launch, `None` for a repeated start (already
    /// running), or why it cannot start.
    pub(crate) fn start(
        &mut self,
        run: &RunId,
        start_at_ms: u64,
    ) -> Result<Option<Launch>, String> {
        let Some(r) = self.of_mut(run) else {
            return Err(format!("not prepared for run {run}"));
        };
        match &r.stage {
            Stage::Prepared(_) => {}
            Stage::Preparing => return Err("still preparing".into()),
            Stage::Running { .. } | Stage::Finishing => return Ok(None),
        }
        let (stop_tx, stop) = oneshot::channel();
        let (moved_tx, moved) = watch::channel(Vec::new());
        let Stage::Prepared(Ready {
            scenario,
            offset_us,
            engine,
        }) = std::mem::replace(
            &mut r.stage,
            Stage::Running {
                stop: Some(stop_tx),
                moved: moved_tx,
            },
        )
        else {
            unreachable!("checked above");
        };
        r.plan.start_at_ms = start_at_ms;
        Ok(Some(Launch {
            plan: r.plan.clone(),
            scenario,
            offset_us,
            engine,
            stop,
            moved,
            targets: r.targets.subscribe(),
        }))
    }

    /// Whether this node may still append to its log of `run`.
    pub(crate) fn is_writing(&self, run: &RunId) -> bool {
        self.of(run)
            .is_some_and(|r| !matches!(r.stage, Stage::Finishing))
    }

    /// The engine ended: the log is complete.
    pub(crate) fn finishing(&mut self, run: &RunId) {
        if let Some(r) = self.of_mut(run) {
            r.stage = Stage::Finishing;
        }
    }

    /// Frees the slot of `run` if it is finishing (confirmed, or held long
    /// enough).
    pub(crate) fn release_finished(&mut self, run: &RunId) {
        if self
            .of(run)
            .is_some_and(|r| matches!(r.stage, Stage::Finishing))
        {
            self.run = None;
        }
    }

    /// Stops this node's part in `run`: a preparing or prepared slot is
    /// released, a running engine told to stop. False if it has none.
    pub(crate) fn stop(&mut self, run: &RunId, reason: &str) -> bool {
        let Some(r) = self.of_mut(run) else {
            return false;
        };
        match &mut r.stage {
            Stage::Preparing | Stage::Prepared(_) => self.run = None,
            Stage::Running { stop, .. } => {
                if let Some(tx) = stop.take() {
                    let _ = tx.send(StopRequest {
                        reason: reason.to_string(),
                        grace: Some(Duration::from_millis(500)),
                    });
                }
            }
            Stage::Finishing => {}
        }
        true
    }

    /// The run this node takes part in, if any.
    pub(crate) fn run_id(&self) -> Option<&RunId> {
        self.run.as_ref().map(|r| &r.plan.run)
    }

    /// Takes over `segment` of `run` from `from_ms` (coordinator clock) on,
    /// if this node is generating it and has not taken that share yet.
    pub(crate) fn take_moved_share(&self, run: &RunId, segment: Segment, from_ms: u64) {
        let Some(r) = self.of(run) else {
            return;
        };
        let Stage::Running { moved, .. } = &r.stage else {
            return;
        };
        let from = Duration::from_millis(from_ms.saturating_sub(r.plan.start_at_ms));
        moved.send_if_modified(|shares| {
            if shares.iter().any(|s| s.segment == segment) {
                return false;
            }
            tracing::info!(%run, ?segment, after = ?from, "taking over a lost agent's share");
            shares.push(MovedShare { segment, from });
            true
        });
    }

    /// Adds `observer` to the receivers of this node's intervals of `run`.
    pub(crate) fn subscribe(&mut self, run: &RunId, observer: NodeId) -> Result<(), String> {
        let Some(r) = self.of_mut(run) else {
            return Err(format!("not an agent of run {run}"));
        };
        let mut result = Ok(());
        r.targets.send_if_modified(|t| {
            if t.subscribers.contains(&observer) {
                return false;
            }
            if t.subscribers.len() >= MAX_SUBSCRIBERS {
                result = Err(format!(
                    "{MAX_SUBSCRIBERS} observers already follow this agent"
                ));
                return false;
            }
            t.subscribers.push(observer);
            true
        });
        result
    }

    /// The run's coordinator changed: send the intervals there.
    pub(crate) fn coordinator_changed(&self, run: &RunId, coordinator: &NodeId) {
        if let Some(r) = self.of(run) {
            r.targets.send_if_modified(|t| {
                let changed = &t.coordinator != coordinator;
                t.coordinator = coordinator.clone();
                changed
            });
        }
    }
}

/// The prepare effect: fetch the bundle files this node lacks from the
/// coordinator, load the scenario, measure the clock offset. Reports
/// [`Input::Prepared`].
pub(crate) async fn prepare(ctx: Arc<Ctx>, plan: RunPlan, reply: crate::net::Reply) {
    let result = prepare_inner(&ctx, &plan)
        .await
        .map_err(|e| format!("{e:#}"));
    ctx.report(Input::Prepared {
        run: plan.run,
        result,
        reply,
    })
    .await;
}

async fn prepare_inner(ctx: &Ctx, plan: &RunPlan) -> anyhow::Result<Ready> {
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
            .ask(
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
    let mut scenario = load_for_plan(&path, plan, me.index, None)?;
    // Code from git: the plan's commit, checked out here (cached).
    if let (Some(source), Some(commit)) = (scenario.git.clone(), &plan.source_commit) {
        let checkout = crate::source::checkout(&source, commit, &ctx.data_dir.join("cache"))
            .await
            .map_err(|e| anyhow::anyhow!("[source]: {e}"))?;
        scenario = load_for_plan(&path, plan, me.index, Some(&checkout))?;
    }
    let offset_us = if plan.coordinator == ctx.me {
        0
    } else {
        measure_offset(ctx, &plan.coordinator).await?
    };
    let scenario = Arc::new(scenario);
    let env = EngineEnv {
        python: ctx.python.clone(),
        work_dir: ctx
            .data_dir
            .join("runs")
            .join(&plan.run.0)
            .join(scenario.engine.as_str()),
        workers: ctx.workers.unwrap_or_else(crate::run::default_workers),
        cache_dir: ctx.data_dir.join("cache"),
    };
    let engine = crate::engine::prepare(scenario.clone(), &env).await?;
    Ok(Ready {
        scenario,
        offset_us,
        engine,
    })
}

/// Loads the bundle's scenario with the plan's overrides, unique data pools
/// partitioned to this agent's share; its files from `checkout` (the
/// `[source]` commit checked out) when given.
pub(crate) fn load_for_plan(
    path: &std::path::Path,
    plan: &RunPlan,
    index: u32,
    checkout: Option<&std::path::Path>,
) -> anyhow::Result<Scenario> {
    let mut s = match checkout {
        Some(dir) => scenario::load_in(path, dir),
        None => scenario::load(path),
    }
    .map_err(|e| anyhow::anyhow!("{e}"))?;
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
            .ask(peer, ControlRequest::Clock { sent_us: t1 })
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

/// The engine effect: generates this node's share from the plan's start
/// time (coordinator clock, corrected by the offset), appends every interval
/// to the log on disk and then sends it to the coordinator (waited for, so
/// the last one arrives before the end is announced) and to subscribers.
/// Reports [`Input::EngineDone`] with this node's `AgentFinished`.
pub(crate) async fn execute(ctx: Arc<Ctx>, launch: Launch) {
    let run = launch.plan.run.clone();
    let event = match execute_inner(&ctx, launch).await {
        Ok(event) => event,
        Err((event, e)) => {
            tracing::error!(%run, "the engine failed: {e:#}");
            event
        }
    };
    ctx.report(Input::EngineDone { run, event }).await;
}

async fn execute_inner(
    ctx: &Arc<Ctx>,
    launch: Launch,
) -> Result<RunEvent, (RunEvent, anyhow::Error)> {
    let Launch {
        plan,
        scenario,
        offset_us,
        engine,
        stop,
        moved,
        targets,
    } = launch;
    let index = plan
        .participants
        .iter()
        .position(|p| p.node == ctx.me)
        .unwrap_or(0) as u64;
    let agents = plan.participants.len() as u64;
    // The coordinator's start time on our clock.
    let local_start_ms = plan.start_at_ms as i64 - offset_us / 1000;
    let wait_ms = local_start_ms - sys::now_ms() as i64;
    let t0 = Instant::now() + Duration::from_millis(wait_ms.max(0) as u64);
    let finished = |intervals: u32, load_ms: u64, stop_reason: Option<String>, sent: u64| {
        RunEvent::AgentFinished {
            node: ctx.me.clone(),
            intervals,
            started_at_ms: (local_start_ms + offset_us / 1000).max(0) as u64,
            clock_offset_us: offset_us,
            stop_reason,
            load_ms,
            mesh_bytes: sent,
        }
    };
    let mut log = match IntervalLog::create(&log::dir_of(&ctx.data_dir, &plan.run.0)) {
        Ok(log) => log,
        Err(e) => {
            let reason = format!("cannot keep measurements: {e:#}");
            return Err((finished(0, 0, Some(reason), 0), e));
        }
    };
    // What it sends from the load's start on (the prepare wait excluded).
    let sent_at_start = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(t0.into()).await;
            ctx.net.stats().bytes_out()
        })
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<IntervalSnapshot>(64);
    let sender = {
        let ctx = ctx.clone();
        let run = plan.run.clone();
        tokio::spawn(async move {
            while let Some(snapshot) = rx.recv().await {
                // Live precision on the wire; the exact snapshot is on disk.
                let to = targets.borrow().clone();
                send_interval(&ctx, &run, &to, snapshot.live()).await;
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
        moved: Some(moved),
    };
    let metrics = ctx.metrics.clone();
    let run = plan.run.clone();
    let driven = drive(engine, scenario, config, stop, |snap| {
        log.append(&snap)?;
        if let Some(m) = &metrics {
            m.own_interval(&run, &snap);
        }
        intervals = intervals.max(snap.index + 1);
        let keeping = snap.generator.late_starts * 100 <= snap.generator.scheduled.max(1)
            && snap.generator.cpu_busy_permille <= crate::results::BUSY_PERMILLE;
        ctx.keeping_schedule.store(keeping, Ordering::Relaxed);
        if tx.try_send(snap).is_err() {
            tracing::debug!("interval sender behind: interval not sent (kept on disk)");
        }
        Ok(())
    })
    .await;
    drop(tx);
    let _ = sender.await;
    let sent = match sent_at_start.await {
        Ok(before) => ctx.net.stats().bytes_out().saturating_sub(before),
        Err(_) => 0,
    };
    match driven {
        Ok(d) => {
            let load_ms = d.load_ended.saturating_duration_since(t0).as_millis() as u64;
            Ok(finished(intervals, load_ms, d.stop_reason, sent))
        }
        Err(e) => {
            let reason = Some(format!("engine failed: {e:#}"));
            Err((finished(intervals, 0, reason, sent), e))
        }
    }
}

/// Sends this node's live `snapshot` of `run` to its subscribers (each on a
/// task of its own) and its coordinator (waited for), each send bounded by
/// [`SEND_LIMIT`]. This node being the coordinator is the same path.
async fn send_interval(ctx: &Arc<Ctx>, run: &RunId, to: &Targets, snapshot: IntervalSnapshot) {
    for s in &to.subscribers {
        tokio::spawn(deliver(
            ctx.clone(),
            s.clone(),
            run.clone(),
            snapshot.clone(),
        ));
    }
    deliver(ctx.clone(), to.coordinator.clone(), run.clone(), snapshot).await;
}

async fn deliver(ctx: Arc<Ctx>, to: NodeId, run: RunId, snapshot: IntervalSnapshot) {
    let req = ControlRequest::Interval { run, snapshot };
    match tokio::time::timeout(SEND_LIMIT, ctx.ask(&to, req)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::debug!(%to, "interval not delivered: {e}"),
        Err(_) => tracing::debug!(%to, "interval not delivered in time"),
    }
}

/// `ConfirmResults`: the coordinator has this node's intervals of `run`;
/// delete the log, unless this node uploads to S3 and its upload of the log
/// has not succeeded yet: then the upload deletes it once done (nothing is
/// deleted before S3 confirms it). Each side writes its marker before
/// looking for the other's, so one of them always sees both.
pub(crate) fn delete_log(ctx: &Ctx, run: &RunId) {
    let dir = log::dir_of(&ctx.data_dir, &run.0);
    if ctx.s3.is_some() {
        if let Err(e) = std::fs::write(dir.join(CONFIRMED), b"")
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("marking {} confirmed: {e}", dir.display());
        }
        if !dir.join(UPLOADED).exists() {
            tracing::info!(%run, "log kept until its upload to S3 succeeds");
            return;
        }
    }
    remove_log_dir(&dir);
}

/// Marks a log confirmed by its coordinator.
const CONFIRMED: &str = ".confirmed";
/// Marks a log uploaded to S3.
const UPLOADED: &str = ".uploaded";

fn remove_log_dir(dir: &std::path::Path) {
    if let Err(e) = std::fs::remove_dir_all(dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!("removing {}: {e}", dir.display());
    }
}

/// With `--s3`: this node's raw interval log of `run` (and its engine's own
/// output, e.g. Locust's) to `<prefix>/<run>/agents/<name>/`, so a lost
/// coordinator loses nothing S3 would have had. Deletes the log afterwards
/// if the coordinator already confirmed it.
pub(crate) async fn upload_own_log(ctx: Arc<Ctx>, run: RunId) {
    let Some(config) = ctx.s3.clone() else {
        return;
    };
    let dir = log::dir_of(&ctx.data_dir, &run.0);
    let name = crate::results::safe_name(&ctx.name);
    let key = format!("{}/agents/{name}", run.0);
    match crate::results::upload::upload_results(&config, &dir, &key, |_| {}).await {
        Ok(url) => {
            tracing::info!(%run, %url, "own interval log uploaded");
            let engine_dir = ctx.data_dir.join("runs").join(&run.0);
            for engine in ["locust"] {
                let out = engine_dir.join(engine);
                if out.is_dir() {
                    let key = format!("{key}/{engine}");
                    if let Err(e) =
                        crate::results::upload::upload_results(&config, &out, &key, |_| {}).await
                    {
                        tracing::warn!(%run, "uploading the engine's output: {e}");
                    }
                }
            }
            let _ = std::fs::write(dir.join(UPLOADED), b"");
            if dir.join(CONFIRMED).exists() {
                remove_log_dir(&dir);
            }
        }
        Err(e) => {
            tracing::warn!(%run, "uploading own interval log: {e} (kept in {})", dir.display())
        }
    }
}

#[cfg(test)]
mod tests;
