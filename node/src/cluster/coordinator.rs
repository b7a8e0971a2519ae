//! This node as a coordinator: the effects the node's task starts for runs
//! it coordinates, each on a task of its own, reporting back as [`Input`]s:
//! planning a submitted run (validate it, choose agents, split the load
//! exactly: agent `i` of `n` takes global arrivals and users with
//! `index % n == i`, unique data rows likewise), preparing and starting the
//! agents on a common time, stopping them, and finalizing (every agent's log
//! merged exactly into the results). Every participant goes through
//! [`Ctx::ask`], this node included. The run's state and its decisions
//! (takeover, lost agents, rebalance, when to finalize) are in
//! [`super::lifecycle`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use bfgg_protocol::mesh::{
    AgentSelection, ControlRequest, ControlResponse, LogKind, Participant, RunEvent, RunPlan,
    RunRequest,
};
use bfgg_protocol::summary::{AgentSummary, NameSummary, RunSummary};
use bfgg_protocol::{IntervalSnapshot, NameStats, NodeId, RunId};

use super::agent;
use super::bundle::sha256_hex;
use super::lifecycle::AgentDone;
use super::logs;
use super::node::{Ctx, Input};
use super::sys;
use super::view::ClusterView;
use crate::interval_log::{self, LogReader};
use crate::merge::IntervalMerger;
use crate::net::Reply;
use crate::results::{ResultsWriter, RunFacts};

/// Start time lead after every agent prepared.
pub(crate) const START_LEAD_MS: u64 = 1_500;

/// The planning effect of `Submit`: store the bundle, validate the scenario
/// (a broken one is refused before any agent is touched), choose idle agents
/// from `view` (never the submitter) and make the plan. Reports
/// [`Input::Planned`], or answers the submitter's refusal itself. Where
/// this node has an operators list, a request without an operator's mandate
/// is refused before anything is stored.
pub(crate) async fn plan(
    ctx: Arc<Ctx>,
    from: NodeId,
    req: RunRequest,
    view: ClusterView,
    reply: Reply,
) {
    if let Err(refusal) = ctx.operators.check_request(&req, sys::now_ms()) {
        reply.send(ControlResponse::Rejected {
            reason: format!("{}: {refusal}", ctx.name),
        });
        return;
    }
    let planned = async {
        let (mut plan, git) = plan_inner(&ctx, &from, req, &view)?;
        // The scenario's code from git: its revision resolved once, here,
        // so every agent checks out the same commit.
        if let Some(source) = git {
            let commit = crate::source::resolve(&source, &ctx.data_dir.join("cache"))
                .await
                .map_err(|e| anyhow::anyhow!("[source] on {}: {e}", ctx.name))?;
            tracing::info!(run = %plan.run, url = %source.url, rev = %source.rev, %commit, "source resolved");
            plan.source_commit = Some(commit);
        }
        anyhow::Ok(plan)
    };
    match planned.await {
        Ok(plan) => ctx.report(Input::Planned { plan, reply }).await,
        Err(e) => reply.send(ControlResponse::Rejected {
            reason: format!("{e:#}"),
        }),
    }
}

/// The plan, and the scenario's `[source]` (its commit not resolved yet).
fn plan_inner(
    ctx: &Ctx,
    from: &NodeId,
    req: RunRequest,
    view: &ClusterView,
) -> anyhow::Result<(RunPlan, Option<crate::scenario::GitSource>)> {
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
        source_commit: None,
        mandate: req.mandate.clone().map(Box::new),
    };
    let dir = ctx.data_dir.join("runs").join(&run.0).join("bundle");
    let path = ctx.store.materialize(&req.files, &dir)?;
    let scenario = agent::load_for_plan(&path, &probe_plan, 0, None)?;
    let probe_plan = RunPlan {
        load_ms: (scenario.load.duration + scenario.load.graceful_stop).as_millis() as u64,
        ..probe_plan
    };

    // Nodes the selection takes (the submitter aside), engine apart.
    let selected = |p: &&crate::cluster::view::PeerView| {
        &p.health.node != from
            && match &req.selection {
                AgentSelection::Labels(want) => {
                    want.iter().all(|(k, v)| p.health.labels.get(k) == Some(v))
                }
                _ => true,
            }
    };
    let mut agents: Vec<(NodeId, String)> = view
        .idle_agents(scenario.engine.as_str(), Instant::now(), &ctx.timeouts)
        .into_iter()
        .filter(selected)
        .map(|p| (p.health.node.clone(), p.health.name.clone()))
        .collect();
    agents.sort();
    // Idle nodes the selection would take but for the engine, named in a
    // refusal: a run never silently lacks agents it asked for.
    let engine = scenario.engine.as_str();
    let mut lacking: Vec<&str> = view
        .idle_without(engine, Instant::now(), &ctx.timeouts)
        .into_iter()
        .filter(selected)
        .map(|p| p.health.name.as_str())
        .collect();
    lacking.sort();
    let without = if lacking.is_empty() {
        String::new()
    } else {
        let hint = match engine {
            "locust" => "install it there, or point the node's --python at a Python that has it",
            "gatling" => {
                "gatling needs a JDK (11 or later) and Maven there: java, javac and mvn on the node's PATH, or JAVA_HOME"
            }
            "jmeter" => {
                "jmeter needs Java 17 or later and Maven there (bfgg assembles JMeter from Maven Central once per node): java and mvn on the node's PATH, or JAVA_HOME"
            }
            _ => "install it there",
        };
        format!("; idle without {engine}: {} ({hint})", lacking.join(", "))
    };
    if let AgentSelection::Count(n) = req.selection {
        anyhow::ensure!(
            agents.len() >= n as usize,
            "{n} agents wanted but only {} idle with {engine}: {}{without}",
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
        "no idle agent with {engine} matches (selection {:?}){without}; see `bfgg status`",
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
    Ok((plan, scenario.git))
}

fn name_of(plan: &RunPlan, node: &NodeId) -> String {
    plan.participants
        .iter()
        .find(|p| &p.node == node)
        .map_or_else(|| node.short().to_string(), |p| p.name.clone())
}

/// Asks every node of `nodes` at once; the answers in order (a failed ask
/// as `Rejected`).
async fn ask_all(ctx: &Arc<Ctx>, nodes: &[NodeId], req: &ControlRequest) -> Vec<ControlResponse> {
    let handles: Vec<_> = nodes
        .iter()
        .map(|node| {
            let (ctx, node, req) = (ctx.clone(), node.clone(), req.clone());
            tokio::spawn(async move {
                ctx.ask(&node, req)
                    .await
                    .unwrap_or_else(|e| ControlResponse::Rejected {
                        reason: e.to_string(),
                    })
            })
        })
        .collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap_or_else(|e| ControlResponse::Rejected {
            reason: format!("task failed: {e}"),
        }));
    }
    out
}

/// The preparing effect: every participant asked to prepare at once.
/// Reports [`Input::AgentsPrepared`] with the failures (none: all ready),
/// having released the agents that did prepare if any failed.
pub(crate) async fn prepare_agents(ctx: Arc<Ctx>, plan: RunPlan, reply: Reply) {
    let nodes: Vec<NodeId> = plan.participants.iter().map(|p| p.node.clone()).collect();
    let answers = ask_all(&ctx, &nodes, &ControlRequest::Prepare(plan.clone())).await;
    let failures: Vec<String> = nodes
        .iter()
        .zip(&answers)
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
    ctx.report(Input::AgentsPrepared {
        run: plan.run,
        failures,
        reply,
    })
    .await;
}

/// Tells the agents of a run that will not start to forget it.
pub(crate) async fn release(ctx: Arc<Ctx>, plan: RunPlan) {
    let nodes: Vec<NodeId> = plan.participants.iter().map(|p| p.node.clone()).collect();
    let _ = ask_all(
        &ctx,
        &nodes,
        &ControlRequest::Stop {
            run: plan.run,
            mandate: None,
        },
    )
    .await;
}

/// The starting effect: every participant told the start time, then the plan
/// announced and the submitter answered.
pub(crate) async fn start_agents(ctx: Arc<Ctx>, plan: RunPlan, reply: Reply) {
    let nodes: Vec<NodeId> = plan.participants.iter().map(|p| p.node.clone()).collect();
    let req = ControlRequest::Start {
        run: plan.run.clone(),
        start_at_ms: plan.start_at_ms,
    };
    for (node, resp) in nodes.iter().zip(ask_all(&ctx, &nodes, &req).await) {
        if !matches!(resp, ControlResponse::Done) {
            tracing::warn!(agent = %name_of(&plan, node), "start not acknowledged: {resp:?}");
        }
    }
    ctx.publish_run(&plan.run, RunEvent::Planned(plan.clone()))
        .await;
    reply.send(ControlResponse::Accepted {
        run: plan.run.clone(),
        coordinator: ctx.me.clone(),
        plan,
    });
}

/// The stopping fan-out: every other participant asked to stop; then `reply`
/// (the stop request's) is answered.
pub(crate) async fn stop_agents(ctx: Arc<Ctx>, plan: RunPlan, reply: Option<Reply>) {
    let nodes: Vec<NodeId> = plan
        .participants
        .iter()
        .map(|p| p.node.clone())
        .filter(|n| n != &ctx.me)
        .collect();
    let _ = ask_all(
        &ctx,
        &nodes,
        &ControlRequest::Stop {
            run: plan.run,
            mandate: None,
        },
    )
    .await;
    if let Some(reply) = reply {
        reply.send(ControlResponse::Done);
    }
}

/// What finalizing needs of the run's state.
pub(crate) struct FinalizeInput {
    pub(crate) plan: RunPlan,
    pub(crate) finished: BTreeMap<NodeId, AgentDone>,
    pub(crate) lost: BTreeMap<NodeId, u64>,
    pub(crate) stopping: Option<String>,
    pub(crate) rebalanced: BTreeMap<NodeId, u64>,
    /// Where this node keeps each agent's live copies.
    pub(crate) copies: BTreeMap<NodeId, Option<PathBuf>>,
}

/// The finalizing effect; reports [`Input::Finalized`].
pub(crate) async fn finalize(ctx: Arc<Ctx>, input: FinalizeInput) {
    let run = input.plan.run.clone();
    let ok = match finalize_inner(&ctx, input).await {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(%run, "writing results: {e:#}");
            false
        }
    };
    ctx.report(Input::Finalized {
        run: run.clone(),
        ok,
    })
    .await;
    // With --s3, the merged results go to <prefix>/<run>/ (the outcome in
    // their summary.json; on failure they stay here for `bfgg runs upload`).
    if ok && let Some(config) = ctx.s3.clone() {
        let dir = logs::results_dir(&ctx.data_dir, &run);
        match crate::results::upload::upload_results(&config, &dir, &run.0, |_| {}).await {
            Ok(url) => tracing::info!(%run, %url, "results uploaded"),
            Err(e) => tracing::warn!(%run, "uploading results: {e} (kept in {})", dir.display()),
        }
    }
}

/// How long finalizing waits for an agent's log to be complete.
const FETCH_LIMIT: Duration = Duration::from_secs(60);

/// One agent's intervals as finalize reads them, in order.
struct Source {
    node: NodeId,
    /// The agent's name (its row of `agents.csv`).
    name: String,
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
/// by page into `runs/<run>/fetched/`; live copies for agents lost or
/// unreachable), merges them interval by interval with the
/// [`IntervalMerger`] and writes the results through the results pipeline,
/// then announces them and confirms to the agents. Memory holds one
/// interval per agent, however long the run.
async fn finalize_inner(ctx: &Arc<Ctx>, input: FinalizeInput) -> anyhow::Result<()> {
    let FinalizeInput {
        plan,
        finished,
        lost,
        stopping,
        rebalanced,
        copies: gossip,
    } = input;
    let run = &plan.run;
    let run_dir = ctx.data_dir.join("runs").join(&run.0);
    let scenario_path = ctx
        .store
        .materialize(&plan.files, &run_dir.join("bundle"))?;
    let scenario = agent::load_for_plan(&scenario_path, &plan, 0, None)?;

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
            name: p.name.clone(),
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
        writer.add_agent_interval(&source.name, &snap)?;
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
            // What it said it recorded; without its report, the end of its
            // own log when it was read whole, else the run's last interval.
            let expected = match (done, source.status) {
                (Some(d), _) => d.intervals,
                (None, "complete") => source.next,
                (None, _) => intervals,
            };
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
    // Before the results are announced: a scrape after them matches them.
    if let Some(m) = &ctx.metrics {
        m.reconcile(run, &writer.totals().by_name);
    }
    let (summary, dir) = writer.finish(&scenario, &facts, agents)?;
    tracing::info!(%run, dir = %dir.display(), requests = summary.total.requests, "results written");
    let complete: Vec<NodeId> = summary
        .agents
        .iter()
        .filter(|a| a.status == "complete")
        .map(|a| NodeId(a.node.clone()))
        .collect();
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
    let _ = ask_all(
        ctx,
        &complete,
        &ControlRequest::ConfirmResults { run: run.clone() },
    )
    .await;
    Ok(())
}

/// `Status` of a run this node no longer holds: from the results it wrote.
pub(crate) fn status_from_disk(ctx: &Ctx, run: &RunId) -> ControlResponse {
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
