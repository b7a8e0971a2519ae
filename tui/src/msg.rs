//! What the cockpit reacts to ([`Msg`]) and what it asks the outside world
//! to do ([`Effect`]). `App::update` turns one into the other; the runtime
//! produces messages (keys, network events, ticks, effect outcomes) and
//! performs effects. An effect carries everything performing it needs (the
//! nodes to ask, the paths to touch), so the runtime keeps no state of its
//! own.

use std::path::PathBuf;

use bfgg_node::cluster::request::RunSpec;
use bfgg_protocol::mesh::{NodeHealth, RunEvent, RunPlan};
use bfgg_protocol::summary::RunSummary;
use bfgg_protocol::{IntervalSnapshot, NodeId, RunId};
use crossterm::event::KeyEvent;

/// Everything the cockpit reacts to.
#[derive(Debug, Clone)]
pub enum Msg {
    /// A key press.
    Key(KeyEvent),
    /// A node's health, received at `at_ms` (observer clock, Unix ms).
    Health {
        /// The health message.
        health: NodeHealth,
        /// When it arrived here.
        at_ms: u64,
    },
    /// A node of another protocol version was seen.
    Incompatible {
        /// Its id.
        node: NodeId,
        /// The protocol it announced.
        protocol: String,
    },
    /// An agent's live interval snapshot (sent to this cockpit because it
    /// subscribed to the run).
    Interval {
        /// The run.
        run: RunId,
        /// The agent.
        node: NodeId,
        /// Its measurements (live precision).
        snapshot: IntervalSnapshot,
    },
    /// A run event, from its author.
    Run {
        /// The run.
        run: RunId,
        /// Who published it.
        from: NodeId,
        /// What happened.
        event: RunEvent,
    },
    /// A run's coordinator gossiped a merged interval (how a cockpit learns
    /// of a run already under way).
    Merged {
        /// The run.
        run: RunId,
        /// Its coordinator.
        from: NodeId,
    },
    /// A run's plan, from its coordinator (after [`Effect::Subscribe`]).
    Plan(Box<RunPlan>),
    /// The clock moved (observer clock, Unix ms); about 10 times a second.
    Tick {
        /// Now.
        now_ms: u64,
    },
    /// Scenarios that can be started (from `scenarios/` and recent runs).
    Scenarios(Vec<ScenarioEntry>),
    /// Runs kept in the local results store, newest first.
    History(Vec<HistoryEntry>),
    /// A run summary loaded for display.
    Summary {
        /// Where it was read from.
        path: PathBuf,
        /// The summary.
        summary: Box<RunSummary>,
    },
    /// A run was accepted by a node (after [`Effect::Start`]).
    Started {
        /// Its plan.
        plan: Box<RunPlan>,
        /// The scenario file it runs (the cockpit keeps the results of runs
        /// it started, as `bfgg run --cluster` does: [`Effect::SaveResults`]).
        scenario: PathBuf,
    },
    /// The local results store changed (a run's results were written or
    /// deleted), or an attempt to change it failed: the notice says which
    /// (after [`Effect::SaveResults`] and [`Effect::DeleteRun`]).
    StoreChanged(String),
    /// Something the user should read in the status line (an effect failed,
    /// a run was deleted, ...).
    Notice(String),
    /// Network events the runtime dropped because the cockpit was behind.
    Dropped(u64),
    /// A node said whether this cockpit's operator may start and stop runs
    /// there (after [`Effect::AskRights`]).
    Rights {
        /// The node asked.
        node: NodeId,
        /// False: it has an operators list without this operator.
        may_act: bool,
    },
}

/// Everything the cockpit asks the outside world to do, with its targets.
///
/// To add a variant: 1. add it here, carrying everything performing it
/// needs (nodes, paths); 2. return it from `App::update`; 3. perform it in
/// `runtime::perform`, reporting the outcome back as a [`Msg`]; 4. add a test
/// in `app/tests.rs`.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Leave (runs go on: they belong to the nodes).
    Quit,
    /// Ask `node` whether this cockpit's operator may act there (answered
    /// by [`Msg::Rights`]).
    AskRights {
        /// The node.
        node: NodeId,
    },
    /// Hand a run of `scenario` to one of `nodes` (answered by
    /// [`Msg::Started`], or a notice).
    Start {
        /// The scenario file.
        scenario: PathBuf,
        /// Which agents, and how.
        spec: RunSpec,
        /// Who may coordinate it, in the order to ask: alive nodes, idle
        /// ones first.
        nodes: Vec<NodeId>,
    },
    /// Ask `nodes` for their intervals of `run` (agents) and its plan (its
    /// coordinator answers with it: [`Msg::Plan`]).
    Subscribe {
        /// The run.
        run: RunId,
        /// Whom to ask.
        nodes: Vec<NodeId>,
    },
    /// Stop a run wherever it runs (answered by a notice).
    Stop {
        /// The run.
        run: RunId,
        /// Whom to ask, in order, until one says it is done (any node
        /// forwards to the coordinator): its coordinator first, if known,
        /// then the alive nodes.
        nodes: Vec<NodeId>,
    },
    /// Fetch a finished run's merged intervals from its coordinator and write
    /// its results into the local store, as `bfgg run --cluster` does
    /// (answered by [`Msg::StoreChanged`]).
    SaveResults {
        /// The run.
        run: RunId,
        /// The node that wrote its results.
        coordinator: NodeId,
        /// The scenario file it ran.
        scenario: PathBuf,
        /// The coordinator's summary.
        summary: Box<RunSummary>,
        /// The local results store.
        results_dir: PathBuf,
    },
    /// Read a results directory's `summary.json` (answered by [`Msg::Summary`]).
    LoadSummary {
        /// The results directory.
        dir: PathBuf,
    },
    /// Delete a results directory from the local store (answered by
    /// [`Msg::StoreChanged`]).
    DeleteRun {
        /// The results directory.
        dir: PathBuf,
        /// The local results store: only its runs are deleted.
        results_dir: PathBuf,
    },
    /// Read the local results store and the scenario directories (answered
    /// by [`Msg::History`], then [`Msg::Scenarios`]).
    LoadStore {
        /// The local results store.
        results_dir: PathBuf,
        /// Directories whose `*.toml` files the start dialog offers.
        scenario_dirs: Vec<PathBuf>,
    },
}

/// A scenario the start dialog offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioEntry {
    /// What to call it (file stem, or "rerun: <run dir>").
    pub label: String,
    /// The file.
    pub path: PathBuf,
}

/// A run in the local results store.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    /// The results directory.
    pub dir: PathBuf,
    /// Its name (`<stamp>-<scenario>`).
    pub name: String,
    /// Requests, errors and p99 (ms) from its summary, when readable.
    pub requests: Option<u64>,
    /// Errors.
    pub errors: Option<u64>,
    /// p99 of the corrected response time, ms.
    pub p99_ms: Option<f64>,
    /// The scenario copy inside it, for re-runs.
    pub scenario: Option<PathBuf>,
}
