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
    AgentSelection, ControlRequest, ControlResponse, MovedShare, Participant, RunEvent, RunPlan,
    RunRequest,
};
use bfgg_protocol::summary::{AgentSummary, NameSummary};
use bfgg_protocol::{IntervalSnapshot, NameStats, NodeId, RunId};

use super::agent;
use super::bundle::sha256_hex;
use super::log;
use super::node::{AgentDone, Ctx, Moved, RunBook, RunResult, lock};
use super::sys;
use super::view::Liveness;
use crate::engine::schedule::Segment;
use crate::results::{ResultsWriter, RunFacts, write_summary};

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

/// A run event heard on gossip (or applied locally).
pub(crate) fn on_run_event(ctx: &Arc<Ctx>, from: NodeId, run: RunId, event: RunEvent) {
    let mut runs = lock(&ctx.runs);
    match event {
        RunEvent::Planned(plan) => {
            if plan.run == run && plan.coordinator == from {
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
            gossip_bytes,
        } => {
            if node != from {
                return;
            }
            if let Some(book) = runs.get_mut(&run) {
                book.finished.insert(
                    node,
                    AgentDone {
                        intervals,
                        started_at_ms,
                        clock_offset_us,
                        stop_reason,
                        load_ms,
                        gossip_bytes,
                    },
                );
            }
        }
        RunEvent::AgentLost {
            node,
            last_heard_ms,
        } => {
            if let Some(book) = runs.get_mut(&run)
                && book.coordinator == from
            {
                book.lost.insert(node, last_heard_ms);
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
            // Observers (clients) act on this; nodes learn it via Status,
            // and drop their gossip copies: the results are written.
            if let Some(book) = runs.get_mut(&run).filter(|b| b.coordinator == from) {
                book.gossip.discard();
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
    let end_ms = book.plan.start_at_ms + book.plan.load_ms + END_SLACK.as_millis() as u64;
    sys::now_ms() > end_ms
}

/// Where this node keeps each participant's gossip copies.
fn plan_nodes_copies(book: &RunBook) -> BTreeMap<NodeId, Option<PathBuf>> {
    book.plan
        .participants
        .iter()
        .map(|p| (p.node.clone(), book.gossip.file_of(&p.node)))
        .collect()
}

/// Fetches every agent's own intervals (gossip copies for lost agents),
/// merges them and writes the results.
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
    let bundle_dir = ctx.data_dir.join("runs").join(&run.0).join("bundle");
    let scenario_path = ctx.store.materialize(&plan.files, &bundle_dir)?;
    let scenario = agent::load_for_plan(&scenario_path, &plan, 0)?;

    let mut per_agent: BTreeMap<NodeId, Vec<IntervalSnapshot>> = BTreeMap::new();
    let mut status: BTreeMap<NodeId, &'static str> = BTreeMap::new();
    for p in &plan.participants {
        let fetched = if lost.contains_key(&p.node) {
            None
        } else if p.node == ctx.me {
            match agent::own_page(ctx, run, 0, u32::MAX) {
                ControlResponse::Intervals { snapshots, .. } => Some(snapshots),
                _ => None,
            }
        } else {
            fetch_all(ctx, &p.node, run, false).await.ok()
        };
        match fetched {
            Some(snaps) => {
                per_agent.insert(p.node.clone(), snaps);
                status.insert(p.node.clone(), "complete");
            }
            None => {
                let copies = log::read_copies(gossip.get(&p.node).and_then(Option::as_deref));
                per_agent.insert(p.node.clone(), copies);
                status.insert(p.node.clone(), "lost");
            }
        }
    }

    // Exact merge, interval by interval.
    let mut merged: BTreeMap<u32, IntervalSnapshot> = BTreeMap::new();
    for snaps in per_agent.values() {
        for s in snaps {
            match merged.get_mut(&s.index) {
                Some(m) => *m += s,
                None => {
                    merged.insert(s.index, s.clone());
                }
            }
        }
    }
    let last_index = merged.keys().next_back().copied().unwrap_or(0);
    let started_at = SystemTime::UNIX_EPOCH + Duration::from_millis(plan.start_at_ms);
    let dir = ctx.data_dir.join("runs").join(&run.0).join("results");
    let mut writer = ResultsWriter::create(&dir, &scenario, started_at)?;
    for snap in merged.values() {
        writer.add_interval(snap)?;
    }
    let load_ms = finished.values().map(|d| d.load_ms).max().unwrap_or(0);
    let stop_reason = stopping.or_else(|| finished.values().find_map(|d| d.stop_reason.clone()));
    let facts = RunFacts {
        started_at,
        duration_s: if load_ms > 0 {
            load_ms as f64 / 1000.0
        } else {
            f64::from(last_index + 1)
        },
        stop_reason,
    };
    let (mut summary, dir) = writer.finish(&scenario, &facts)?;
    tracing::info!(%run, dir = %dir.display(), "results written");
    summary.agents = plan
        .participants
        .iter()
        .map(|p| {
            let snaps = &per_agent[&p.node];
            let mut total = NameStats::default();
            for s in snaps {
                total += &s.total();
            }
            let n = NameSummary::from_stats(&total, facts.duration_s);
            let done = finished.get(&p.node);
            let have: std::collections::BTreeSet<u32> = snaps.iter().map(|s| s.index).collect();
            let expected = done.map_or(last_index + 1, |d| d.intervals);
            AgentSummary {
                node: p.node.0.clone(),
                name: p.name.clone(),
                index: p.index,
                requests: n.requests,
                errors: n.errors,
                clock_offset_ms: done.map_or(0.0, |d| d.clock_offset_us as f64 / 1000.0),
                started_at_ms: done.map_or(plan.start_at_ms, |d| d.started_at_ms),
                status: status[&p.node].to_string(),
                last_heard_ms: lost.get(&p.node).copied(),
                missing_intervals: (0..expected).filter(|i| !have.contains(i)).collect(),
                rebalanced_at_ms: rebalanced.get(&p.node).copied(),
                gossip_bytes_per_s: done
                    .filter(|d| d.load_ms > 0)
                    .map_or(0.0, |d| d.gossip_bytes as f64 * 1000.0 / d.load_ms as f64),
            }
        })
        .collect();
    summary.partial = summary.agents.iter().any(|a| a.status != "complete");
    summary.thresholds = scenario
        .thresholds
        .iter()
        .map(|t| t.evaluate(&summary))
        .collect();
    write_summary(&dir, &summary)?;
    let result = Arc::new(RunResult {
        summary: summary.clone(),
        merged: merged.into_values().collect(),
    });
    if let Some(book) = lock(&ctx.runs).get_mut(run) {
        book.result = Some(result);
        book.gossip.discard();
    }
    tracing::info!(%run, requests = summary.total.requests, "results written");
    ctx.publish_run(
        run,
        RunEvent::Finished {
            summary: Box::new(summary),
        },
    )
    .await;
    for p in &plan.participants {
        if status.get(&p.node) == Some(&"complete") {
            if p.node == ctx.me {
                agent::confirmed(ctx, run);
            } else {
                let _ = ctx
                    .net
                    .request(&p.node, ControlRequest::ConfirmResults { run: run.clone() })
                    .await;
            }
        }
    }
    Ok(())
}

/// Every page of a node's intervals of `run`.
pub(crate) async fn fetch_all(
    ctx: &Ctx,
    node: &NodeId,
    run: &RunId,
    merged: bool,
) -> anyhow::Result<Vec<IntervalSnapshot>> {
    fetch_pages(&ctx.net, node, run, merged).await
}

/// Pages through `FetchIntervals` until the source says it is complete.
pub(super) async fn fetch_pages(
    net: &crate::net::NetHandle,
    node: &NodeId,
    run: &RunId,
    merged: bool,
) -> anyhow::Result<Vec<IntervalSnapshot>> {
    let mut out: Vec<IntervalSnapshot> = Vec::new();
    loop {
        let from = out.last().map_or(0, |s| s.index + 1);
        let resp = net
            .request(
                node,
                ControlRequest::FetchIntervals {
                    run: run.clone(),
                    from,
                    max: 100,
                    merged,
                },
            )
            .await?;
        match resp {
            ControlResponse::Intervals {
                snapshots,
                complete,
            } => {
                let got = snapshots.len();
                out.extend(snapshots);
                if complete {
                    return Ok(out);
                }
                if got == 0 {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            ControlResponse::Rejected { reason } => anyhow::bail!("{reason}"),
            other => anyhow::bail!("unexpected answer {other:?}"),
        }
    }
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

/// `FetchIntervals { merged: true }`: pages of a finished run's merged
/// intervals.
pub(crate) fn merged_page(ctx: &Ctx, run: &RunId, from: u32, max: u32) -> ControlResponse {
    let result = lock(&ctx.runs).get(run).and_then(|b| b.result.clone());
    match result {
        Some(r) => agent::page(r.merged.clone(), from, max, true),
        None => ControlResponse::Rejected {
            reason: format!("run {run} has no results here (yet)"),
        },
    }
}

/// `Status`.
pub(crate) fn status(ctx: &Ctx, run: &RunId) -> ControlResponse {
    match lock(&ctx.runs).get(run) {
        Some(book) => ControlResponse::Status {
            finished: book.result.as_ref().map(|r| Box::new(r.summary.clone())),
            coordinator: book.coordinator.clone(),
        },
        None => ControlResponse::Rejected {
            reason: format!("no run {run} here"),
        },
    }
}
