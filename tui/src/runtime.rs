//! The terminal runtime of `bfgg tui`, the only impure part of the cockpit:
//! it joins the mesh as a light peer, owns the terminal (raw mode, alternate
//! screen, restored on exit and on panic), turns keys, network events and
//! ticks into [`Msg`]s, performs [`Effect`]s, and redraws at most
//! [`MAX_FPS`] times a second, only when something changed.
//!
//! It keeps no state of the cockpit's: that is all in [`App`], and every
//! [`Effect`] carries its targets (nodes, paths). It never polls the nodes:
//! health and live intervals arrive on gossip; requests go out only when the
//! user acts (start, stop) or a run appears (subscribe).

use bfgg_node::results::store;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bfgg_node::cluster::client::{may_act, save_results, stop_via, submit_any};
use bfgg_node::cluster::operators::OperatorKey;
use bfgg_node::cluster::request::RunSpec;
use bfgg_node::cluster::view::Timeouts;
use bfgg_node::net::{self, NetConfig, NetEvent, NetHandle};
use bfgg_protocol::NodeId;
use bfgg_protocol::mesh::{ControlRequest, ControlResponse, Gossip, Order, RunPlan};
use bfgg_protocol::summary::RunSummary;
use crossterm::event::{Event, EventStream};
use futures::StreamExt as _;
use tokio::sync::mpsc;

use crate::app::App;
use crate::msg::{Effect, HistoryEntry, Msg, ScenarioEntry};
use crate::ui;

/// Redraws per second at most.
pub const MAX_FPS: u64 = 20;
/// How often the clock ticks (liveness, "last heard").
const TICK: Duration = Duration::from_millis(250);
/// Runs listed from the local results store at most.
const HISTORY_LIMIT: usize = 200;
/// Effect outcomes waiting for the loop at most.
const OUTCOMES: usize = 64;

/// What `bfgg tui` starts with.
#[derive(Debug)]
pub struct TuiConfig {
    /// The light peer's network (key, join, mDNS).
    pub net: NetConfig,
    /// Directories whose `*.toml` files the start dialog offers.
    pub scenario_dirs: Vec<PathBuf>,
    /// The local results store (`<data dir>/runs`).
    pub results_dir: PathBuf,
    /// When a node unheard is shown as unresponsive, then dead.
    pub timeouts: Timeouts,
    /// The user's operator key: starts and stops are signed with it.
    pub operator: OperatorKey,
}

/// Runs the cockpit until the user quits. Quitting never stops a run.
pub async fn run(config: TuiConfig) -> anyhow::Result<()> {
    if !std::io::stdout().is_terminal() {
        anyhow::bail!(
            "bfgg tui needs a terminal (stdout is not one); in scripts and CI use `bfgg run FILE --cluster` or `bfgg status`"
        );
    }
    let (net, mut net_events) = net::spawn(config.net).context("joining the mesh")?;
    let mut app = App::new();
    app.unresponsive_ms = config.timeouts.unresponsive.as_millis() as u64;
    app.dead_ms = config.timeouts.dead.as_millis() as u64;
    app.results_dir = config.results_dir;
    app.scenario_dirs = config.scenario_dirs;
    app.operator = config.operator.id().0;
    app.update(Msg::Tick { now_ms: now_ms() });
    let operator = Arc::new(config.operator);

    let mut terminal = ratatui::init();
    let result = event_loop(&mut terminal, &mut app, &net, &operator, &mut net_events).await;
    ratatui::restore();
    result
}

/// The loop: one message at a time into [`App::update`], its effects
/// performed. What it keeps is the terminal's (redraw throttling); the
/// cockpit's state is all in `app`.
async fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    app: &mut App,
    net: &NetHandle,
    operator: &Arc<OperatorKey>,
    net_events: &mut mpsc::Receiver<NetEvent>,
) -> anyhow::Result<()> {
    // Effects report here; the loop holds both ends, so it never closes.
    let (done_tx, mut done_rx) = mpsc::channel::<Msg>(OUTCOMES);
    perform(app.load_store(), net, operator, &done_tx);
    let mut keys = EventStream::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let frame = Duration::from_millis(1000 / MAX_FPS);
    let mut dirty = true;
    let mut last_draw: Option<Instant> = None;
    loop {
        let due = last_draw.map_or(Instant::now(), |t| t + frame);
        if dirty && Instant::now() >= due {
            terminal.draw(|f| ui::render(app, f))?;
            dirty = false;
            last_draw = Some(Instant::now());
        }
        let msg = tokio::select! {
            ev = keys.next() => match ev {
                Some(Ok(Event::Key(key))) => Some(Msg::Key(key)),
                Some(Ok(Event::Resize(..))) => {
                    dirty = true;
                    None
                }
                Some(Ok(_)) => None,
                Some(Err(e)) => return Err(e).context("reading the terminal"),
                None => return Ok(()),
            },
            ev = net_events.recv() => match ev {
                Some(ev) => msg_of(ev),
                None => anyhow::bail!("the network task stopped"),
            },
            Some(m) = done_rx.recv() => Some(m),
            _ = tick.tick() => {
                let dropped = net.stats().events_lost;
                if dropped != app.dropped {
                    app.update(Msg::Dropped(dropped));
                }
                Some(Msg::Tick { now_ms: now_ms() })
            }
            () = tokio::time::sleep_until(due.into()), if dirty => None,
        };
        let Some(msg) = msg else { continue };
        dirty = true;
        for effect in app.update(msg) {
            match effect {
                Effect::Quit => return Ok(()),
                other => perform(other, net, operator, &done_tx),
            }
        }
    }
}

/// The cockpit's message for a network event. The only request a cockpit
/// serves is an agent's interval of a run it subscribed to.
fn msg_of(ev: NetEvent) -> Option<Msg> {
    match ev {
        NetEvent::Gossip { from, msg } => match msg {
            Gossip::Health(health) if health.node == from => Some(Msg::Health {
                health,
                at_ms: now_ms(),
            }),
            Gossip::Pulse { run, .. } => Some(Msg::Merged { run, from }),
            Gossip::Run { run, event } => Some(Msg::Run { run, from, event }),
            _ => None,
        },
        NetEvent::Incompatible { peer, protocol, .. } => Some(Msg::Incompatible {
            node: peer,
            protocol,
        }),
        NetEvent::Request { from, req, reply } => match req {
            ControlRequest::Interval { run, snapshot } => {
                reply.send(ControlResponse::Done);
                Some(Msg::Interval {
                    run,
                    node: from,
                    snapshot,
                })
            }
            _ => {
                reply.send(ControlResponse::Rejected {
                    reason: "a cockpit serves no requests".into(),
                });
                None
            }
        },
        _ => None,
    }
}

/// Starts `effect` with what it carries; its outcome comes back as a
/// [`Msg`] on `done`. Never waits on the network: that work is spawned.
fn perform(effect: Effect, net: &NetHandle, operator: &Arc<OperatorKey>, done: &mpsc::Sender<Msg>) {
    let (net, done, operator) = (net.clone(), done.clone(), operator.clone());
    match effect {
        Effect::Quit => {}
        Effect::AskRights { node } => {
            tokio::spawn(async move {
                if let Some(may_act) = may_act(&net, &node, &operator.id()).await {
                    let _ = done.send(Msg::Rights { node, may_act }).await;
                }
            });
        }
        Effect::Start {
            scenario,
            spec,
            nodes,
        } => {
            tokio::spawn(async move {
                let msg = match start(&net, &nodes, &operator, &scenario, &spec).await {
                    Ok(plan) => Msg::Started {
                        plan: Box::new(plan),
                        scenario,
                    },
                    Err(e) => Msg::Notice(format!("cannot start {}: {e:#}", scenario.display())),
                };
                let _ = done.send(msg).await;
            });
        }
        Effect::Subscribe { run, nodes } => {
            for node in nodes {
                let (net, done, run) = (net.clone(), done.clone(), run.clone());
                tokio::spawn(async move {
                    let ask = ControlRequest::Subscribe { run: run.clone() };
                    match net.request(&node, ask).await {
                        Ok(ControlResponse::Plan(plan)) => {
                            let _ = done.send(Msg::Plan(Box::new(plan))).await;
                        }
                        Ok(ControlResponse::Done) => {}
                        Ok(other) => {
                            tracing::debug!(%node, "subscribing to {run}: {other:?}");
                        }
                        Err(e) => tracing::debug!(%node, "subscribing to {run}: {e}"),
                    }
                });
            }
        }
        Effect::Stop { run, nodes } => {
            tokio::spawn(async move {
                let mandate = operator.mandate(Order::Stop { run: run.clone() }, now_ms());
                let msg = match stop_via(&net, &nodes, &run, Some(mandate)).await {
                    Ok(()) => Msg::Notice(format!("stop of {run} sent")),
                    Err(e) => Msg::Notice(format!("{e:#}")),
                };
                let _ = done.send(msg).await;
            });
        }
        Effect::SaveResults {
            run,
            coordinator,
            scenario,
            summary,
            results_dir,
        } => {
            tokio::spawn(async move {
                let saved =
                    save_results(&net, &coordinator, &run, &scenario, &summary, &results_dir).await;
                let _ = done
                    .send(Msg::StoreChanged(match saved {
                        Ok(dir) => format!("run {run} finished; results in {}", dir.display()),
                        Err(e) => format!("run {run} finished, results not saved here: {e:#}"),
                    }))
                    .await;
            });
        }
        Effect::LoadSummary { dir } => {
            let msg = match read_summary(&dir) {
                Ok(summary) => Msg::Summary {
                    path: dir,
                    summary: Box::new(summary),
                },
                Err(e) => Msg::Notice(format!("{e:#}")),
            };
            let _ = done.try_send(msg);
        }
        Effect::DeleteRun { dir, results_dir } => {
            let _ = done.try_send(Msg::StoreChanged(match delete_run(&results_dir, &dir) {
                Ok(()) => format!("deleted {}", dir.display()),
                Err(e) => format!("{e:#}"),
            }));
        }
        Effect::LoadStore {
            results_dir,
            scenario_dirs,
        } => {
            let history = load_history(&results_dir);
            let scenarios = list_scenarios(&scenario_dirs, &history);
            let _ = done.try_send(Msg::History(history));
            let _ = done.try_send(Msg::Scenarios(scenarios));
        }
    }
}

/// Loads `scenario`, builds the request for `spec` and hands it to the
/// first of `nodes` that takes it.
async fn start(
    net: &NetHandle,
    nodes: &[NodeId],
    operator: &OperatorKey,
    scenario: &Path,
    spec: &RunSpec,
) -> anyhow::Result<RunPlan> {
    let loaded = bfgg_node::scenario::load(scenario).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut req = spec.request(&loaded)?;
    bfgg_node::cluster::operators::sign(operator, &mut req, now_ms());
    submit_any(net, nodes, req).await
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn read_summary(dir: &Path) -> anyhow::Result<RunSummary> {
    store::read_summary(dir)
}

/// Deletes a results directory, only if it is inside the results store.
fn delete_run(results_dir: &Path, dir: &Path) -> anyhow::Result<()> {
    store::delete(results_dir, dir)
}

/// The runs of the local results store, newest first (the same listing as
/// `bfgg runs list`).
pub fn load_history(results_dir: &Path) -> Vec<HistoryEntry> {
    store::list(results_dir, HISTORY_LIMIT)
        .into_iter()
        .map(|run| HistoryEntry {
            requests: run.summary.as_ref().map(|s| s.total.requests),
            errors: run.summary.as_ref().map(|s| s.total.errors),
            p99_ms: run.summary.as_ref().map(|s| s.total.latency_ms.p99),
            scenario: run.scenario,
            name: run.name,
            dir: run.dir,
        })
        .collect()
}

/// Scenario files of `dirs` (sorted), then re-runs of the five newest runs.
pub fn list_scenarios(dirs: &[PathBuf], history: &[HistoryEntry]) -> Vec<ScenarioEntry> {
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        files.sort();
        out.extend(files.into_iter().map(|path| {
            ScenarioEntry {
                label: path
                    .file_stem()
                    .map(|s| s.to_string_lossy().to_string())
                    .unwrap_or_default(),
                path,
            }
        }));
    }
    out.extend(history.iter().take(5).filter_map(|h| {
        h.scenario.clone().map(|path| ScenarioEntry {
            label: format!("rerun: {}", h.name),
            path,
        })
    }));
    out
}
