//! This node as a coordinator: accept a submitted run, choose agents, split
//! the load exactly (agent `i` of `n` takes global arrivals and users with
//! `index % n == i`; unique data rows likewise), prepare and start them on a
//! common time, watch them, and at the end fetch every agent's own intervals,
//! merge them exactly and write the results. Every participant holds the
//! plan: when the coordinator dies, the live participant with the lowest node
//! id takes over and finishes the job.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use bfgg_protocol::mesh::{
    AgentSelection, ControlRequest, ControlResponse, Gossip, LogKind, MovedShare, Participant,
    RUN_TOPIC, RunEvent, RunPlan, RunRequest,
};
use bfgg_protocol::summary::{AgentSummary, NameSummary, RunSummary};
use bfgg_protocol::{IntervalSnapshot, NameStats, NodeId, RunId};

use super::agent;
use super::bundle::sha256_hex;
use super::logs;
use super::node::{AgentDone, Ctx, Moved, RunBook, RunResult, lock};
use super::sys;
use super::view::Liveness;
use crate::engine::schedule::Segment;
use crate::interval_log::{self, LogReader};
use crate::merge::{IntervalMerger, Merged};
use crate::results::{ResultsWriter, RunFacts};

/// How long after the start every agent gets before the run is considered
/// over even without their reports (duration + graceful stop + this).
const END_SLACK: Duration = Duration::from_secs(10);
/// Start time lead after every agent prepared.
const START_LEAD_MS: u64 = 1_500;

/// `Submit`: validate, plan, prepare, start.
pub(crate) async fn submit(ctx: &Arc<Ctx>, from: NodeId, req: RunRequest) -> ControlResponse {
    match submit_inner(ctx, &from, req).await {
        Ok(plan) => ControlResponse::Accepted {
            run: plan.run.clone(),
            coordinator: ctx.me.clone(),
            plan,
        },
        Err(e) => ControlResponse::Rejected {
            reason: format!("{e:#}"),
        },
    }
}

async fn submit_inner(ctx: &Arc<Ctx>, from: &NodeId, req: RunRequest) -> anyhow::Result<RunPlan> {
    anyhow::ensure!(
        !req.files.is_empty() && req.files.len() == req.contents.len(),
        "the bundle is empty or inconsistent"
    );
    for (f, c) in req.files.iter().zip(&req.contents) {
        anyhow::ensure!(
            super::bundle::safe_path(&f.path),
            "unsafe path in bundle: {:?}",
            f.path
        );
        ctx.store
            .put(&f.sha256, c)
            .with_context(|| format!("bundle file {}", f.path))?;
    }
    let stamp = crate::results::utc_stamp(SystemTime::now());
    let tag = &sha256_hex(format!("{stamp}{}{}", ctx.me, sys::now_us()).as_bytes())[..4];
    let scenario_name = std::path::Path::new(&req.files[0].path)
        .file_stem()
        .map_or("run".into(), |s| s.to_string_lossy().to_string());
    let run = RunId(format!("{stamp}-{scenario_name}-{tag}"));

    // Validate the scenario here first, so a broken one is refused before any
    // agent is touched.
    let probe_plan = RunPlan {
        run: run.clone(),
        coordinator: ctx.me.clone(),
        participants: vec![Participant {
            node: ctx.me.clone(),
            name: ctx.name.clone(),
            index: 0,
        }],
        start_at_ms: 0,
        files: req.files.clone(),
        target: req.target.clone(),
        duration_ms: req.duration_ms,
        rebalance: req.rebalance,
        load_ms: 0,
    };
    let dir = ctx.data_dir.join("runs").join(&run.0).join("bundle");
    let path = ctx.store.materialize(&req.files, &dir)?;
    let scenario = agent::load_for_plan(&path, &probe_plan, 0)?;
    let probe_plan = RunPlan {
        load_ms: (scenario.load.duration + scenario.load.graceful_stop).as_millis() as u64,
        ..probe_plan
    };

    let mut agents: Vec<(NodeId, String)> = {
        let view = lock(&ctx.view);
        view.idle_agents(scenario.engine.as_str(), Instant::now(), &ctx.timeouts)
            .into_iter()
            .filter(|p| &p.health.node != from)
            .filter(|p| match &req.selection {
                AgentSelection::Labels(want) => {
                    want.iter().all(|(k, v)| p.health.labels.get(k) == Some(v))
                }
                _ => true,
            })
            .map(|p| (p.health.node.clone(), p.health.name.clone()))
            .collect()
    };
    agents.sort();
    if let AgentSelection::Count(n) = req.selection {
        anyhow::ensure!(
            agents.len() >= n as usize,
            "{n} agents wanted but only {} idle: {}",
            agents.len(),
            agents
                .iter()
                .map(|a| a.1.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        agents.truncate(n as usize);
    }
    anyhow::ensure!(
        !agents.is_empty(),
        "no idle agent matches (selection {:?}); see `bfgg status`",
        req.selection
    );
    let plan = RunPlan {
        participants: agents
            .iter()
            .enumerate()
            .map(|(i, (node, name))| Participant {
                node: node.clone(),
                name: name.clone(),
                index: i as u32,
            })
            .collect(),
        ..probe_plan
    };
    lock(&ctx.runs).insert(run.clone(), RunBook::new(plan.clone(), &ctx.data_dir));

    // Prepare every agent at once.
    let prepared = futures_join(plan.participants.iter().map(|p| {
        let ctx = ctx.clone();
        let plan = plan.clone();
        let node = p.node.clone();
        async move {
            let resp = if node == ctx.me {
                agent::prepare(&ctx, plan).await
            } else {
                match ctx.net.request(&node, ControlRequest::Prepare(plan)).await {
                    Ok(r) => r,
                    Err(e) => ControlResponse::Rejected {
                        reason: e.to_string(),
                    },
                }
            };
            (node, resp)
        }
    }))
    .await;
    let failures: Vec<String> = prepared
        .iter()
        .filter_map(|(node, resp)| match resp {
            ControlResponse::Prepared { .. } => None,
            ControlResponse::Busy { run } => {
                Some(format!("{}: busy with run {run}", name_of(&plan, node)))
            }
            ControlResponse::Rejected { reason } => {
                Some(format!("{}: {reason}", name_of(&plan, node)))
            }
            other => Some(format!(
                "{}: unexpected answer {other:?}",
                name_of(&plan, node)
            )),
        })
        .collect();
    if !failures.is_empty() {
        for (node, resp) in &prepared {
            if matches!(resp, ControlResponse::Prepared { .. }) {
                release(ctx, node, &run).await;
            }
        }
        lock(&ctx.runs).remove(&run);
        anyhow::bail!("agents could not prepare: {}", failures.join("; "));
    }

    let start_at_ms = sys::now_ms() + START_LEAD_MS;
    let mut plan = plan;
    plan.start_at_ms = start_at_ms;
    if let Some(book) = lock(&ctx.runs).get_mut(&run) {
        book.plan.start_at_ms = start_at_ms;
        book.since = Instant::now();
    }
    let started = futures_join(plan.participants.iter().map(|p| {
        let ctx = ctx.clone();
        let node = p.node.clone();
        let run = run.clone();
        async move {
            if node == ctx.me {
                agent::start(&ctx, run, start_at_ms)
            } else {
                ctx.net
                    .request(&node, ControlRequest::Start { run, start_at_ms })
                    .await
                    .unwrap_or_else(|e| ControlResponse::Rejected {
                        reason: e.to_string(),
                    })
            }
        }
    }))
    .await;
    for (p, resp) in plan.participants.iter().zip(&started) {
        if !matches!(resp, ControlResponse::Done) {
            tracing::warn!(agent = %p.name, "start not acknowledged: {resp:?}");
        }
    }
    ctx.publish_run(&run, RunEvent::Planned(plan.clone())).await;
    Ok(plan)
}

fn name_of(plan: &RunPlan, node: &NodeId) -> String {
    plan.participants
        .iter()
        .find(|p| &p.node == node)
        .map_or_else(|| node.short().to_string(), |p| p.name.clone())
}

/// Tells an agent to forget a run it prepared for.
async fn release(ctx: &Arc<Ctx>, node: &NodeId, run: &RunId) {
    if node == &ctx.me {
        agent::stop_local(ctx, run, "run cancelled");
    } else {
        let _ = ctx
            .net
            .request(node, ControlRequest::Stop { run: run.clone() })
            .await;
    }
}

/// Runs futures concurrently and collects their outputs in order.
async fn futures_join<F: std::future::Future + Send + 'static>(
    futs: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        match h.await {
            Ok(v) => out.push(v),
            Err(e) => {
                // A panicking task is a bug; surface it as a failed future.
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }
    out
}

/// An agent's live interval of `run`: as the run's coordinator, copy it to
/// disk (for an agent lost later), merge it, and gossip every interval that
/// completes. Anyone else ignores it.
pub(crate) fn on_interval(ctx: &Arc<Ctx>, from: &NodeId, run: &RunId, snapshot: IntervalSnapshot) {
    let released = {
        let mut runs = lock(&ctx.runs);
        let Some(book) = runs
            .get_mut(run)
            .filter(|b| b.coordinator == ctx.me && b.is_participant(from))
        else {
            return;
        };
        book.live.keep(from, &snapshot);
        book.merger.add(from, snapshot)
    };
    publish_merged(ctx, run, released);
}

/// Gossips merged live intervals (one message each, in order).
fn publish_merged(ctx: &Arc<Ctx>, run: &RunId, merged: Vec<Merged>) {
    if merged.is_empty() {
        return;
    }
    let ctx = ctx.clone();
    let run = run.clone();
    tokio::spawn(async move {
        for m in merged {
            let msg = Gossip::Merged {
                run: run.clone(),
                snapshot: m.snapshot,
                agents: m.sources,
            };
            ctx.publish(RUN_TOPIC, &msg).await;
        }
    });
}

/// A run event heard on gossip (or applied locally).
pub(crate) fn on_run_event(ctx: &Arc<Ctx>, from: NodeId, run: RunId, event: RunEvent) {
    let mut runs = lock(&ctx.runs);
    match event {
        RunEvent::Planned(plan) => {
            if plan.run == run && plan.coordinator == from && !lock(&ctx.finished).contains(&run) {
                let book = runs
                    .entry(run)
                    .or_insert_with(|| RunBook::new(plan.clone(), &ctx.data_dir));
                book.plan.start_at_ms = plan.start_at_ms;
            }
        }
        RunEvent::AgentFinished {
            node,
            intervals,
            started_at_ms,
            clock_offset_us,
            stop_reason,
            load_ms,
            mesh_bytes,
        } => {
            if node != from {
                return;
            }
            if let Some(book) = runs.get_mut(&run) {
                // Its last interval reached us before this (it sends them
                // to its coordinator before announcing its end).
                let released = book.merger.finish(&node);
                book.finished.insert(
                    node,
                    AgentDone {
                        intervals,
                        started_at_ms,
                        clock_offset_us,
                        stop_reason,
                        load_ms,
                        mesh_bytes,
                    },
                );
                drop(runs);
                publish_merged(ctx, &run, released);
            }
        }
        RunEvent::AgentLost {
            node,
            last_heard_ms,
        } => {
            if let Some(book) = runs.get_mut(&run)
                && book.coordinator == from
            {
                let released = book.merger.finish(&node);
                book.lost.insert(node, last_heard_ms);
                drop(runs);
                publish_merged(ctx, &run, released);
            }
        }
        RunEvent::CoordinatorChanged { node } => {
            if node == from
                && let Some(book) = runs.get_mut(&run)
            {
                book.coordinator = node;
            }
        }
        RunEvent::Stopping { reason } => {
            let known = runs.get_mut(&run).map(|book| {
                book.stopping = Some(reason.clone());
            });
            drop(runs);
            if known.is_some() {
                agent::stop_local(ctx, &run, &reason);
            }
        }
        RunEvent::Finished { .. } => {
            // Observers (clients) act on this; nodes retire the run's book
            // (and its gossip copies): the results are written.
            if runs.get(&run).is_some_and(|b| b.coordinator == from) {
                drop(runs);
                retire(ctx, &run);
            }
        }
        RunEvent::Rebalanced {
            lost,
            from_ms,
            shares,
        } => {
            let Some(book) = runs.get_mut(&run).filter(|b| b.coordinator == from) else {
                return;
            };
            if book.rebalanced.insert(lost, from_ms).is_none() {
                book.moved.extend(shares.iter().map(|s| Moved {
                    node: s.node.clone(),
                    segment: Segment {
                        offset: s.offset,
                        stride: s.stride.max(1),
                    },
                    from_ms,
                }));
            }
            drop(runs);
            for s in shares.iter().filter(|s| s.node == ctx.me) {
                let segment = Segment {
                    offset: s.offset,
                    stride: s.stride.max(1),
                };
                agent::take_share(ctx, &run, segment, from_ms);
            }
        }
    }
}

/// How far ahead of "now" the live agents take a lost agent's share over
/// (time for the event to reach them).
const REBALANCE_LEAD: Duration = Duration::from_secs(1);

/// Splits everything `lost` was running (its own share and any it had taken
/// over) among the live agents that are still generating load, in
/// participant order. `None` when nobody is left to take it.
fn rebalance(ctx: &Ctx, book: &RunBook, lost: &NodeId) -> Option<RunEvent> {
    let n = book.plan.participants.len() as u64;
    let own = book.plan.participants.iter().find(|p| &p.node == lost)?;
    let mut segments = vec![Segment::WHOLE.split(u64::from(own.index), n)];
    segments.extend(
        book.moved
            .iter()
            .filter(|m| &m.node == lost)
            .map(|m| m.segment),
    );
    let live: Vec<&NodeId> = book
        .plan
        .participants
        .iter()
        .map(|p| &p.node)
        .filter(|id| *id != lost && !book.lost.contains_key(*id))
        .filter(|id| !book.finished.contains_key(*id))
        .filter(|id| ctx.liveness(id) == Liveness::Alive)
        .collect();
    if live.is_empty() {
        return None;
    }
    let m = live.len() as u64;
    let shares = segments
        .iter()
        .flat_map(|s| {
            live.iter().enumerate().map(move |(r, node)| {
                let sub = s.split(r as u64, m);
                MovedShare {
                    node: (*node).clone(),
                    offset: sub.offset,
                    stride: sub.stride,
                }
            })
        })
        .collect();
    Some(RunEvent::Rebalanced {
        lost: lost.clone(),
        from_ms: sys::now_ms() + REBALANCE_LEAD.as_millis() as u64,
        shares,
    })
}

/// Every 500 ms: lost agents, finished runs, dead coordinators.
pub(crate) fn monitor(ctx: &Arc<Ctx>) {
    let mut to_finalize = Vec::new();
    let mut to_announce = Vec::new();
    let mut to_apply = Vec::new();
    let mut to_ask = Vec::new();
    let mut to_merge = Vec::new();
    {
        let mut runs = lock(&ctx.runs);
        for (run, book) in runs.iter_mut() {
            if book.result.is_some() || book.finalizing {
                continue;
            }
            // A participant whose coordinator died takes over if it is the
            // live participant with the lowest id.
            if book.coordinator != ctx.me
                && book.plan.start_at_ms > 0
                && book.is_participant(&ctx.me)
                && ctx.liveness(&book.coordinator) == Liveness::Dead
            {
                let lowest = book
                    .plan
                    .participants
                    .iter()
                    .filter(|p| ctx.liveness(&p.node) == Liveness::Alive)
                    .map(|p| p.node.clone())
                    .min();
                if lowest.as_ref() == Some(&ctx.me) {
                    tracing::warn!(%run, old = %book.coordinator, "coordinator is dead: taking over");
                    book.coordinator = ctx.me.clone();
                    to_announce.push((
                        run.clone(),
                        RunEvent::CoordinatorChanged {
                            node: ctx.me.clone(),
                        },
                    ));
                }
            }
            if book.coordinator != ctx.me
                && overdue_by(book, ASK_AFTER)
                && book.checked.is_none_or(|at| at.elapsed() > ASK_EVERY)
            {
                book.checked = Some(Instant::now());
                to_ask.push((run.clone(), book.coordinator.clone()));
            }
            if book.coordinator != ctx.me || book.plan.start_at_ms == 0 {
                continue;
            }
            for p in &book.plan.participants {
                if book.finished.contains_key(&p.node) || book.lost.contains_key(&p.node) {
                    continue;
                }
                if ctx.liveness(&p.node) == Liveness::Dead {
                    let last_heard_ms = lock(&ctx.view)
                        .get(&p.node)
                        .map_or(0, |v| v.health.sent_at_ms);
                    book.lost.insert(p.node.clone(), last_heard_ms);
                    to_merge.push((run.clone(), book.merger.finish(&p.node)));
                    to_announce.push((
                        run.clone(),
                        RunEvent::AgentLost {
                            node: p.node.clone(),
                            last_heard_ms,
                        },
                    ));
                    if book.plan.rebalance
                        && book.stopping.is_none()
                        && let Some(event) = rebalance(ctx, book, &p.node)
                    {
                        to_apply.push((run.clone(), event));
                    }
                }
            }
            let all_reported =
                book.plan.participants.iter().all(|p| {
                    book.finished.contains_key(&p.node) || book.lost.contains_key(&p.node)
                });
            if all_reported || overdue(book) {
                book.finalizing = true;
                to_finalize.push(run.clone());
            }
        }
    }
    for (run, event) in to_apply {
        // Applied here first (this node may be an agent of the run), then
        // announced to every participant.
        on_run_event(ctx, ctx.me.clone(), run.clone(), event.clone());
        to_announce.push((run, event));
    }
    for (run, event) in to_announce {
        let ctx = ctx.clone();
        tokio::spawn(async move { ctx.publish_run(&run, event).await });
    }
    for (run, merged) in to_merge {
        publish_merged(ctx, &run, merged);
    }
    for (run, coordinator) in to_ask {
        // We missed the `Finished` gossip, or the run is still finishing.
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let ask = ControlRequest::Status { run: run.clone() };
            if let Ok(ControlResponse::Status {
                finished: Some(_), ..
            }) = ctx.net.request(&coordinator, ask).await
            {
                retire(&ctx, &run);
            }
        });
    }
    for run in to_finalize {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            if let Err(e) = finalize(&ctx, &run).await {
                tracing::error!(%run, "writing results: {e:#}");
                if let Some(book) = lock(&ctx.runs).get_mut(&run) {
                    book.finalizing = false;
                }
            }
        });
    }
}

/// Past the plan's end plus slack: agents that have not reported by then are
/// treated as lost (their gossiped intervals are used).
fn overdue(book: &RunBook) -> bool {
    overdue_by(book, Duration::ZERO)
}

/// Past the plan's end plus slack plus `extra`.
fn overdue_by(book: &RunBook, extra: Duration) -> bool {
    let end_ms = book.plan.start_at_ms + book.plan.load_ms + (END_SLACK + extra).as_millis() as u64;
    book.plan.start_at_ms > 0 && sys::now_ms() > end_ms
}

/// A participant that heard no `Finished` this long after a run's end asks
/// its coordinator, every [`ASK_EVERY`], and retires the book once it has.
const ASK_AFTER: Duration = Duration::from_secs(30);
const ASK_EVERY: Duration = Duration::from_secs(10);

/// Where this node keeps each participant's gossip copies.
fn plan_nodes_copies(book: &RunBook) -> BTreeMap<NodeId, Option<PathBuf>> {
    book.plan
        .participants
        .iter()
        .map(|p| (p.node.clone(), book.live.file_of(&p.node)))
        .collect()
}

/// How long finalizing waits for an agent's log to be complete.
const FETCH_LIMIT: Duration = Duration::from_secs(60);

/// One agent's intervals as finalize reads them, in order.
struct Source {
    node: NodeId,
    snapshots: Box<dyn Iterator<Item = anyhow::Result<IntervalSnapshot>> + Send>,
    head: Option<IntervalSnapshot>,
    status: &'static str,
    total: NameStats,
    /// Interval indices it lacks so far, and the next one expected.
    missing: Vec<u32>,
    next: u32,
}

impl Source {
    fn advance(&mut self) -> anyhow::Result<()> {
        self.head = self
            .snapshots
            .next()
            .transpose()
            .with_context(|| format!("the intervals of agent {}", self.node.short()))?;
        if let Some(s) = &self.head {
            self.missing.extend(self.next..s.index);
            self.next = self.next.max(s.index + 1);
            self.total += &s.total();
        }
        Ok(())
    }
}

/// Gets every agent's own log (this node's from its disk, the others' page
/// by page into `runs/<run>/fetched/`; gossip copies for agents lost or
/// unreachable), merges them interval by interval with the
/// [`IntervalMerger`] and writes the results through the results pipeline.
/// Memory holds one interval per agent, however long the run.
async fn finalize(ctx: &Arc<Ctx>, run: &RunId) -> anyhow::Result<()> {
    let (plan, finished, lost, gossip, stopping, rebalanced) = {
        let runs = lock(&ctx.runs);
        let book = runs.get(run).context("unknown run")?;
        (
            book.plan.clone(),
            book.finished.clone(),
            book.lost.clone(),
            plan_nodes_copies(book),
            book.stopping.clone(),
            book.rebalanced.clone(),
        )
    };
    let run_dir = ctx.data_dir.join("runs").join(&run.0);
    let scenario_path = ctx
        .store
        .materialize(&plan.files, &run_dir.join("bundle"))?;
    let scenario = agent::load_for_plan(&scenario_path, &plan, 0)?;

    let give_up = Instant::now() + FETCH_LIMIT;
    let mut sources = Vec::with_capacity(plan.participants.len());
    for p in &plan.participants {
        let own: anyhow::Result<PathBuf> = if lost.contains_key(&p.node) {
            Err(anyhow::anyhow!("lost"))
        } else if p.node == ctx.me {
            Ok(logs::own_log(&ctx.data_dir, run))
        } else {
            let dest = run_dir.join("fetched").join(format!("{}.log", p.node.0));
            logs::copy_log(&ctx.net, &p.node, run, LogKind::Own, &dest, give_up)
                .await
                .map(|_| dest)
        };
        let opened = own.and_then(|path| LogReader::open(&path));
        let (snapshots, status): (Box<dyn Iterator<Item = _> + Send>, _) = match opened {
            Ok(reader) => (Box::new(reader), "complete"),
            Err(e) => {
                if !lost.contains_key(&p.node) {
                    tracing::warn!(%run, agent = %p.name, "its own intervals are out of reach, using the gossiped copies: {e:#}");
                }
                let copies =
                    interval_log::read_copies(gossip.get(&p.node).and_then(Option::as_deref));
                (Box::new(copies.into_iter().map(Ok)), "lost")
            }
        };
        let mut source = Source {
            node: p.node.clone(),
            snapshots,
            head: None,
            status,
            total: NameStats::default(),
            missing: Vec::new(),
            next: 0,
        };
        source.advance()?;
        sources.push(source);
    }

    let started_at = SystemTime::UNIX_EPOCH + Duration::from_millis(plan.start_at_ms);
    let mut writer = ResultsWriter::create(
        &logs::results_dir(&ctx.data_dir, run),
        &scenario,
        started_at,
    )?;
    let mut merger = IntervalMerger::new(plan.participants.iter().map(|p| p.node.clone()));
    let mut last_index: Option<u32> = None;
    // Every source is in interval order: always take the lowest head.
    while let Some(i) = (0..sources.len())
        .filter(|&i| sources[i].head.is_some())
        .min_by_key(|&i| sources[i].head.as_ref().map(|s| s.index))
    {
        let source = &mut sources[i];
        let Some(snap) = source.head.take() else {
            break;
        };
        let mut released = merger.add(&source.node, snap);
        source.advance()?;
        if source.head.is_none() {
            released.extend(merger.finish(&source.node));
        }
        for m in released {
            last_index = Some(m.snapshot.index);
            writer.add_interval(&m.snapshot)?;
        }
    }
    for m in merger.drain() {
        last_index = Some(m.snapshot.index);
        writer.add_interval(&m.snapshot)?;
    }

    let load_ms = finished.values().map(|d| d.load_ms).max().unwrap_or(0);
    let stop_reason = stopping.or_else(|| finished.values().find_map(|d| d.stop_reason.clone()));
    let intervals = last_index.map_or(0, |i| i + 1);
    let facts = RunFacts {
        started_at,
        duration_s: if load_ms > 0 {
            load_ms as f64 / 1000.0
        } else {
            f64::from(intervals)
        },
        stop_reason,
    };
    let agents = plan
        .participants
        .iter()
        .zip(sources)
        .map(|(p, mut source)| {
            let n = NameSummary::from_stats(&source.total, facts.duration_s);
            let done = finished.get(&p.node);
            let expected = done.map_or(intervals, |d| d.intervals);
            source.missing.extend(source.next..expected);
            AgentSummary {
                node: p.node.0.clone(),
                name: p.name.clone(),
                index: p.index,
                requests: n.requests,
                errors: n.errors,
                clock_offset_ms: done.map_or(0.0, |d| d.clock_offset_us as f64 / 1000.0),
                started_at_ms: done.map_or(plan.start_at_ms, |d| d.started_at_ms),
                status: source.status.to_string(),
                last_heard_ms: lost.get(&p.node).copied(),
                missing_intervals: source.missing,
                rebalanced_at_ms: rebalanced.get(&p.node).copied(),
                mesh_bytes_per_s: done
                    .filter(|d| d.load_ms > 0)
                    .map_or(0.0, |d| d.mesh_bytes as f64 * 1000.0 / d.load_ms as f64),
            }
        })
        .collect();
    let (summary, dir) = writer.finish(&scenario, &facts, agents)?;
    tracing::info!(%run, dir = %dir.display(), requests = summary.total.requests, "results written");
    let complete: Vec<NodeId> = summary
        .agents
        .iter()
        .filter(|a| a.status == "complete")
        .map(|a| NodeId(a.node.clone()))
        .collect();
    if let Some(book) = lock(&ctx.runs).get_mut(run) {
        book.result = Some(Arc::new(RunResult {
            summary: summary.clone(),
        }));
        book.live.discard();
    }
    let fetched = run_dir.join("fetched");
    if fetched.exists()
        && let Err(e) = std::fs::remove_dir_all(&fetched)
    {
        tracing::debug!("removing {}: {e}", fetched.display());
    }
    ctx.publish_run(
        run,
        RunEvent::Finished {
            summary: Box::new(summary),
        },
    )
    .await;
    for node in complete {
        if node == ctx.me {
            agent::confirmed(ctx, run);
        } else {
            let _ = ctx
                .net
                .request(&node, ControlRequest::ConfirmResults { run: run.clone() })
                .await;
        }
    }
    retire(ctx, run);
    Ok(())
}

/// The run's results are written: its book leaves memory (what `Status`
/// needs is on disk), and late news of it opens no new one.
pub(crate) fn retire(ctx: &Ctx, run: &RunId) {
    if let Some(mut book) = lock(&ctx.runs).remove(run) {
        book.live.discard();
    }
    lock(&ctx.finished).insert(run.clone());
}

/// `Stop`: fan out to the agents (coordinator), stop our own part, or
/// forward to the coordinator.
pub(crate) async fn stop(ctx: &Arc<Ctx>, from: NodeId, run: RunId) -> ControlResponse {
    let (coordinator, participants) = {
        let mut runs = lock(&ctx.runs);
        match runs.get_mut(&run) {
            Some(book) => {
                if book.coordinator == ctx.me {
                    book.stopping
                        .get_or_insert_with(|| "stopped by request".into());
                }
                (book.coordinator.clone(), book.plan.participants.clone())
            }
            None => {
                // An agent may know the run only from its slot.
                let stopped = agent::stop_local(ctx, &run, "stopped by request");
                return if stopped {
                    ControlResponse::Done
                } else {
                    ControlResponse::Rejected {
                        reason: format!("no run {run} here"),
                    }
                };
            }
        }
    };
    if coordinator == ctx.me {
        let reason = "stopped by request".to_string();
        agent::stop_local(ctx, &run, &reason);
        let asks = participants.iter().filter(|p| p.node != ctx.me).map(|p| {
            let ctx = ctx.clone();
            let node = p.node.clone();
            let run = run.clone();
            async move { ctx.net.request(&node, ControlRequest::Stop { run }).await }
        });
        let _ = futures_join(asks).await;
        ctx.publish_run(&run, RunEvent::Stopping { reason }).await;
        return ControlResponse::Done;
    }
    agent::stop_local(ctx, &run, "stopped by request");
    if from == coordinator {
        return ControlResponse::Done;
    }
    ctx.net
        .request(&coordinator, ControlRequest::Stop { run })
        .await
        .unwrap_or_else(|e| ControlResponse::Rejected {
            reason: format!("the coordinator did not answer: {e}"),
        })
}

/// `Status`: from the book of a run under way, else from the results this
/// node wrote.
pub(crate) fn status(ctx: &Ctx, run: &RunId) -> ControlResponse {
    if let Some(book) = lock(&ctx.runs).get(run) {
        return ControlResponse::Status {
            finished: book.result.as_ref().map(|r| Box::new(r.summary.clone())),
            coordinator: book.coordinator.clone(),
        };
    }
    let path = logs::results_dir(&ctx.data_dir, run).join("summary.json");
    match std::fs::read(&path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<RunSummary>(&bytes).ok())
    {
        Some(summary) => ControlResponse::Status {
            finished: Some(Box::new(summary)),
            coordinator: ctx.me.clone(),
        },
        None => ControlResponse::Rejected {
            reason: format!("no run {run} here"),
        },
    }
}
