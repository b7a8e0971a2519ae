//! [`App`]: everything the cockpit shows and the state of its dialogs, and
//! [`App::update`], which turns a [`Msg`] into [`Effect`]s. Pure: no clock
//! (time arrives in `Msg::Tick`), no I/O, no terminal.
//!
//! Memory is bounded whatever the run's length or the cluster's size: time
//! series are ring buffers of [`HISTORY_POINTS`] small points, histograms are
//! kept per request name for the whole run (merged, not appended), agents
//! beyond [`MAX_AGENTS`] are not tracked.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;

use bfgg_node::cluster::request::RunSpec;
use bfgg_node::merge::{IntervalMerger, Merged};
use bfgg_protocol::mesh::{AgentSelection, NodeHealth, NodeState, RunEvent, RunPlan};
use bfgg_protocol::summary::RunSummary;
use bfgg_protocol::{ErrorKind, IntervalSnapshot, LatencyHistogram, NameStats, NodeId, RunId};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::msg::{Effect, HistoryEntry, Msg, ScenarioEntry};

/// Points kept per time series: one hour of one-second intervals.
pub const HISTORY_POINTS: usize = 3600;
/// Request names whose percentiles are kept over time (the rest count in
/// the run's, and in their whole-run rows).
pub const MAX_NAME_SERIES: usize = 64;
/// The sliding window of [`TimeWindow::Recent`], seconds.
pub const RECENT_SECONDS: u32 = 120;
/// Agents tracked at most (the rest are counted, not shown).
pub const MAX_AGENTS: usize = 1024;
/// An interval is drawn once every participant sent it, or once a snapshot
/// this many intervals newer arrived.
const SETTLE_AFTER: u32 = 2;
/// While the watched run's plan, or an agent's intervals, have not come,
/// `Subscribe` is asked again this long after the last time (a request can
/// fail: the coordinator's address not known yet when its first merged
/// interval arrives through another node).
pub const RESUBSCRIBE_MS: u64 = 5_000;

/// The panels, in `Tab` order (number keys 1-6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Panel {
    /// Agents, load and latency at once (the default).
    Overview,
    /// Every node: health, load, offsets.
    Agents,
    /// Achieved req/s against the schedule, active users.
    Load,
    /// Percentiles per request name and the merged histogram.
    Latency,
    /// Errors grouped by kind, with the agents they come from.
    Errors,
    /// The local results store.
    Runs,
}

impl Panel {
    /// All panels in order.
    pub const ALL: [Panel; 6] = [
        Panel::Overview,
        Panel::Agents,
        Panel::Load,
        Panel::Latency,
        Panel::Errors,
        Panel::Runs,
    ];

    /// Its tab title.
    pub fn title(self) -> &'static str {
        match self {
            Panel::Overview => "Overview",
            Panel::Agents => "Agents",
            Panel::Load => "Load",
            Panel::Latency => "Latency",
            Panel::Errors => "Errors",
            Panel::Runs => "Runs",
        }
    }

    /// Its position in [`Panel::ALL`] (its number key minus one).
    pub fn index(self) -> usize {
        Panel::ALL.iter().position(|p| *p == self).unwrap_or(0)
    }
}

/// How much of the run the time charts show. Either way the x axis is in
/// run seconds and does not rescale with every interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeWindow {
    /// From 0 to the run's planned end (its duration and graceful stop),
    /// or to a round bound past the newest interval when the plan is not
    /// known or the run went past it.
    WholeRun,
    /// The last [`RECENT_SECONDS`] (`0..RECENT_SECONDS` until then).
    Recent,
}

/// What has the keyboard.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// The panels.
    Normal,
    /// The help overlay.
    Help,
    /// The start dialog.
    Start(StartDialog),
    /// "Stop this run?"
    ConfirmStop(RunId),
    /// "Delete this run's results?"
    ConfirmDelete(PathBuf),
    /// One agent's own curves and histogram.
    Agent(NodeId),
    /// A stored run's summary.
    Summary(Box<RunSummary>),
}

/// The start dialog: a scenario, then agents, then confirm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartDialog {
    /// Which step has the keyboard.
    pub step: StartStep,
    /// Index into [`App::scenarios`].
    pub scenario: usize,
    /// How agents are chosen.
    pub choice: AgentChoice,
    /// For [`AgentChoice::Count`].
    pub count: u32,
    /// For [`AgentChoice::Label`]: index into [`App::labels`].
    pub label: usize,
    /// Move a lost agent's share to the live agents (`r`; `--rebalance`).
    pub rebalance: bool,
}

/// Steps of the start dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartStep {
    /// Pick the scenario.
    Scenario,
    /// Pick the agents.
    Agents,
    /// Enter starts, Esc goes back.
    Confirm,
}

/// How the start dialog chooses agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentChoice {
    /// Every idle agent.
    All,
    /// This many idle agents.
    Count,
    /// Idle agents with one label.
    Label,
}

/// One node as the cockpit knows it.
#[derive(Debug, Clone)]
pub struct AgentRow {
    /// Its last health message.
    pub health: NodeHealth,
    /// When that arrived (observer clock, Unix ms).
    pub heard_ms: u64,
    /// Observer clock minus its clock when it sent, ms.
    pub offset_ms: i64,
    /// Requests per second in its last interval of the watched run.
    pub rps: f64,
    /// Errors in its last interval of the watched run.
    pub errors: u64,
}

/// How a node looks from here: the mesh's own notion, judged by the
/// cockpit's thresholds ([`App::liveness`]).
pub use bfgg_node::cluster::view::Liveness;

/// One merged interval of the watched run, as the charts draw it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Point {
    /// Interval index (seconds after the run's start).
    pub index: u32,
    /// Requests completed.
    pub requests: u64,
    /// Errors.
    pub errors: u64,
    /// Median corrected response time, µs.
    pub p50_us: u64,
    /// p90 corrected response time, µs.
    pub p90_us: u64,
    /// p99 corrected response time, µs.
    pub p99_us: u64,
    /// Users running (closed model) or iterations in flight (open model).
    pub active: u64,
    /// Arrivals due (open model): the target rate.
    pub scheduled: u64,
}

impl Point {
    /// Its percentiles, as a request name's are kept.
    pub fn percentiles(&self) -> NamePoint {
        NamePoint {
            index: self.index,
            requests: self.requests,
            p50_us: self.p50_us,
            p90_us: self.p90_us,
            p99_us: self.p99_us,
        }
    }
}

/// One merged interval of one request name: its percentiles over time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NamePoint {
    /// Interval index (seconds after the run's start).
    pub index: u32,
    /// Requests of this name completed.
    pub requests: u64,
    /// Median corrected response time, µs.
    pub p50_us: u64,
    /// p90, µs.
    pub p90_us: u64,
    /// p99, µs.
    pub p99_us: u64,
}

/// One agent's share of the watched run.
#[derive(Debug, Clone, Default)]
pub struct AgentRun {
    /// Its intervals (bounded).
    pub points: VecDeque<Point>,
    /// Its whole-run totals.
    pub total: NameStats,
}

/// Where the watched run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Planned, not started.
    Starting,
    /// Load is on.
    Running,
    /// A stop was asked for.
    Stopping,
    /// Results are written.
    Finished,
}

/// The run the cockpit watches: the newest one it heard of.
#[derive(Debug, Clone)]
pub struct RunView {
    /// Its id.
    pub id: RunId,
    /// Its plan, once heard.
    pub plan: Option<RunPlan>,
    /// Where it is.
    pub state: RunState,
    /// Why it is stopping, if it is.
    pub stop_reason: Option<String>,
    /// Merged intervals, oldest first (bounded).
    pub points: VecDeque<Point>,
    /// The agents' snapshots merged: intervals still receiving them, with
    /// who sent them; one is settled once every agent of the plan sent it or
    /// two newer ones arrived.
    pub merger: IntervalMerger<NodeId>,
    /// The newest settled interval, merged (its percentiles are "last").
    pub last: Option<IntervalSnapshot>,
    /// Whole-run merge per request name.
    pub total: BTreeMap<String, NameStats>,
    /// Settled intervals per request name (at most [`MAX_NAME_SERIES`]
    /// names, each bounded like [`RunView::points`]).
    pub by_name: BTreeMap<String, VecDeque<NamePoint>>,
    /// Errors by kind: count and the agents (names) they came from.
    pub errors: BTreeMap<ErrorKind, (u64, BTreeSet<String>)>,
    /// Per agent.
    pub agents: BTreeMap<NodeId, AgentRun>,
    /// The merged summary, once finished.
    pub summary: Option<RunSummary>,
    /// Agents reported lost.
    pub lost: BTreeSet<NodeId>,
    /// When `Subscribe` was last asked for this run (observer clock, ms).
    pub subscribed_ms: u64,
}

impl RunView {
    fn new(id: RunId) -> Self {
        Self {
            id,
            plan: None,
            state: RunState::Starting,
            stop_reason: None,
            points: VecDeque::new(),
            merger: IntervalMerger::unknown_sources().with_deadline(SETTLE_AFTER),
            last: None,
            total: BTreeMap::new(),
            by_name: BTreeMap::new(),
            errors: BTreeMap::new(),
            agents: BTreeMap::new(),
            summary: None,
            lost: BTreeSet::new(),
            subscribed_ms: 0,
        }
    }

    /// Whole-run totals over all names.
    pub fn totals(&self) -> NameStats {
        let mut t = NameStats::default();
        for s in self.total.values() {
            t += s;
        }
        t
    }

    /// The error groups, most frequent first (then by kind).
    pub fn error_groups(&self) -> Vec<(&ErrorKind, &(u64, BTreeSet<String>))> {
        let mut groups: Vec<_> = self.errors.iter().collect();
        groups.sort_by(|a, b| b.1.0.cmp(&a.1.0).then_with(|| a.0.cmp(b.0)));
        groups
    }

    /// Errors of the whole run, every kind.
    pub fn error_count(&self) -> u64 {
        self.errors
            .values()
            .fold(0u64, |a, e| a.saturating_add(e.0))
    }

    /// The newest point, if any.
    pub fn latest(&self) -> Option<&Point> {
        self.points.back()
    }

    /// Its plan: from now on an interval settles once every agent of it
    /// sent its snapshot.
    fn planned(&mut self, plan: RunPlan) {
        let released = self
            .merger
            .set_sources(plan.participants.iter().map(|p| p.node.clone()));
        self.plan = Some(plan);
        self.settled(released);
    }

    /// Adds one agent's snapshot (`total`: its names merged).
    fn add(&mut self, node: &NodeId, name: &str, snapshot: &IntervalSnapshot, total: &NameStats) {
        for (n, stats) in &snapshot.by_name {
            *self.total.entry(n.clone()).or_default() += stats;
            for (kind, count) in &stats.errors {
                let e = self.errors.entry(kind.clone()).or_default();
                e.0 = e.0.saturating_add(*count);
                e.1.insert(name.to_string());
            }
        }
        let agent = self.agents.entry(node.clone()).or_default();
        agent.total += total;
        push_bounded(&mut agent.points, point_of(snapshot.index, total, snapshot));
        let index = snapshot.index;
        if index < self.merger.next_index() {
            // A late snapshot of a settled interval: counts only (the
            // merger would drop it).
            if let Some(p) = self.points.iter_mut().find(|p| p.index == index) {
                p.requests = p.requests.saturating_add(total.requests);
                p.errors = p.errors.saturating_add(total.error_count());
            }
            return;
        }
        let released = self.merger.add(node, snapshot.clone());
        self.settled(released);
    }

    /// Moves settled intervals into the series.
    fn settled(&mut self, merged: Vec<Merged>) {
        for m in merged {
            let snap = m.snapshot;
            push_bounded(&mut self.points, point_of(snap.index, &snap.total(), &snap));
            for (name, stats) in &snap.by_name {
                if !self.by_name.contains_key(name) && self.by_name.len() >= MAX_NAME_SERIES {
                    continue;
                }
                let h = &stats.response_time;
                push_bounded(
                    self.by_name.entry(name.clone()).or_default(),
                    NamePoint {
                        index: snap.index,
                        requests: stats.requests,
                        p50_us: h.quantile_us(0.5),
                        p90_us: h.quantile_us(0.9),
                        p99_us: h.quantile_us(0.99),
                    },
                );
            }
            self.last = Some(snap);
        }
    }

    /// The seconds the time charts show, `(first, last)`: see
    /// [`TimeWindow`]. Stable: it moves only when the run passes a bound
    /// (or, for [`TimeWindow::Recent`], one second at a time).
    pub fn window(&self, window: TimeWindow) -> (u32, u32) {
        let newest = self.points.back().map_or(0, |p| p.index + 1);
        match window {
            TimeWindow::Recent => {
                let end = newest.max(RECENT_SECONDS);
                (end - RECENT_SECONDS, end)
            }
            TimeWindow::WholeRun => {
                let planned = self
                    .plan
                    .as_ref()
                    .map_or(0, |p| p.load_ms.div_ceil(1000))
                    .min(u64::from(u32::MAX)) as u32;
                if planned >= newest && planned > 0 {
                    (0, planned)
                } else {
                    (0, round_up(newest))
                }
            }
        }
    }

    fn settle_all(&mut self) {
        let rest = self.merger.drain();
        self.settled(rest);
    }
}

/// The first of 10 s, 20 s, 30 s, 1, 2, 5, 10, 15, 20, 30 min, 1, 2, 3, 6,
/// 12, 24 h and so on (in days) that is at least `secs`.
pub fn round_up(secs: u32) -> u32 {
    const STEPS: [u32; 16] = [
        10, 20, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
    ];
    STEPS
        .iter()
        .copied()
        .find(|s| *s >= secs)
        .unwrap_or_else(|| secs.div_ceil(86_400).saturating_mul(86_400))
}

fn point_of(index: u32, total: &NameStats, snap: &IntervalSnapshot) -> Point {
    Point {
        index,
        requests: total.requests,
        errors: total.error_count(),
        p50_us: total.response_time.quantile_us(0.5),
        p90_us: total.response_time.quantile_us(0.9),
        p99_us: total.response_time.quantile_us(0.99),
        active: snap.generator.active,
        scheduled: snap.generator.scheduled,
    }
}

fn push_bounded<T>(q: &mut VecDeque<T>, v: T) {
    if q.len() == HISTORY_POINTS {
        q.pop_front();
    }
    q.push_back(v);
}

/// Log-scaled buckets of a latency histogram for the chart: 1-2-5 steps
/// from 100 µs to 1 h, as `(upper bound µs, count)`, empty ones at both ends
/// trimmed.
pub fn log_buckets(h: &LatencyHistogram) -> Vec<(u64, u64)> {
    let mut bounds = Vec::new();
    let mut decade = 100u64;
    while decade <= 3_600_000_000 {
        for m in [1, 2, 5] {
            bounds.push(decade * m);
        }
        decade *= 10;
    }
    let mut counts = vec![0u64; bounds.len() + 1];
    for (low, _high, count) in h.counts() {
        let i = bounds.partition_point(|b| *b <= low);
        counts[i] = counts[i].saturating_add(count);
    }
    bounds.push(u64::MAX);
    let first = counts.iter().position(|c| *c > 0);
    let last = counts.iter().rposition(|c| *c > 0);
    match (first, last) {
        (Some(a), Some(b)) => (a..=b).map(|i| (bounds[i], counts[i])).collect(),
        _ => Vec::new(),
    }
}

/// The cockpit's whole state.
#[derive(Debug, Clone)]
pub struct App {
    /// Nodes by id (compatible ones).
    pub agents: BTreeMap<NodeId, AgentRow>,
    /// Nodes of another protocol version, with what they announced.
    pub incompatible: BTreeMap<NodeId, String>,
    /// The watched run.
    pub run: Option<RunView>,
    /// Scenarios the start dialog offers.
    pub scenarios: Vec<ScenarioEntry>,
    /// The local results store, newest first.
    pub history: Vec<HistoryEntry>,
    /// The visible panel.
    pub panel: Panel,
    /// Selected row per panel. In the Latency panel row 0 is the whole
    /// run ("(all)"), then the request names in order.
    pub selected: [usize; 6],
    /// How much of the run the time charts show (`w` switches).
    pub window: TimeWindow,
    /// What has the keyboard.
    pub mode: Mode,
    /// Observer clock (Unix ms), from the last tick.
    pub now_ms: u64,
    /// The status line's message.
    pub notice: Option<String>,
    /// Network events dropped because the cockpit was behind.
    pub dropped: u64,
    /// Unheard this long: unresponsive (ms).
    pub unresponsive_ms: u64,
    /// Unheard this long: dead (ms).
    pub dead_ms: u64,
    /// Set by `q`: the runtime leaves.
    pub quitting: bool,
    /// The local results store (`<data dir>/runs`): the history, and where
    /// the results of runs started here are written.
    pub results_dir: PathBuf,
    /// Directories whose scenario files the start dialog offers.
    pub scenario_dirs: Vec<PathBuf>,
    /// This cockpit's operator id (`bfgg id`): what its starts and stops
    /// are signed with.
    pub operator: String,
    /// Whether a node's answer was asked for ([`Effect::AskRights`]).
    pub rights_asked: bool,
    /// Set when a node said this operator may not act there: the start,
    /// stop, re-run and delete keys only say so.
    pub read_only: bool,
    /// Runs this cockpit started and that have not finished, with their
    /// scenario files: their results are saved into [`App::results_dir`]
    /// when they finish.
    pub started: BTreeMap<RunId, PathBuf>,
}

impl Default for App {
    fn default() -> Self {
        Self::new()
    }
}

impl App {
    /// An empty cockpit with the default liveness thresholds (5 s, 15 s).
    pub fn new() -> Self {
        Self {
            agents: BTreeMap::new(),
            incompatible: BTreeMap::new(),
            run: None,
            scenarios: Vec::new(),
            history: Vec::new(),
            panel: Panel::Overview,
            selected: [0; 6],
            window: TimeWindow::WholeRun,
            mode: Mode::Normal,
            now_ms: 0,
            notice: None,
            dropped: 0,
            unresponsive_ms: 5_000,
            dead_ms: 15_000,
            quitting: false,
            results_dir: PathBuf::new(),
            scenario_dirs: Vec::new(),
            operator: String::new(),
            rights_asked: false,
            read_only: false,
            started: BTreeMap::new(),
        }
    }

    /// The effect that (re)reads the local results store and the scenario
    /// directories: the runtime performs it at start, `update` asks for it
    /// whenever the store changed.
    pub fn load_store(&self) -> Effect {
        Effect::LoadStore {
            results_dir: self.results_dir.clone(),
            scenario_dirs: self.scenario_dirs.clone(),
        }
    }

    /// Alive nodes' ids, idle ones first, then by id: who may coordinate a
    /// run, in the order to ask.
    fn coordinators(&self) -> Vec<NodeId> {
        let mut nodes: Vec<(bool, &NodeId)> = self
            .agents
            .values()
            .filter(|a| self.liveness(a) == Liveness::Alive)
            .map(|a| (a.health.state != NodeState::Idle, &a.health.node))
            .collect();
        nodes.sort();
        nodes.into_iter().map(|(_, n)| n.clone()).collect()
    }

    /// Whom to ask to stop `run`: its coordinator, if the plan is known,
    /// then the other alive nodes (any node forwards a stop to the
    /// coordinator).
    fn stoppers(&self, run: &RunId) -> Vec<NodeId> {
        let coordinator = self
            .run
            .as_ref()
            .filter(|r| &r.id == run)
            .and_then(|r| r.plan.as_ref())
            .map(|p| p.coordinator.clone());
        let others = self
            .agent_rows()
            .into_iter()
            .filter(|a| self.liveness(a) == Liveness::Alive)
            .map(|a| a.health.node.clone())
            .filter(|n| coordinator.as_ref() != Some(n));
        coordinator.clone().into_iter().chain(others).collect()
    }

    /// How `row` looks now.
    pub fn liveness(&self, row: &AgentRow) -> Liveness {
        let silent = self.now_ms.saturating_sub(row.heard_ms);
        // A node of a large cluster announces a longer health period.
        let period = u64::from(row.health.period_ms);
        if silent >= self.dead_ms.max(3 * period) {
            Liveness::Dead
        } else if silent >= self.unresponsive_ms.max(2 * period) {
            Liveness::Unresponsive
        } else {
            Liveness::Alive
        }
    }

    /// Agents sorted for display: by name, then id.
    pub fn agent_rows(&self) -> Vec<&AgentRow> {
        let mut rows: Vec<&AgentRow> = self.agents.values().collect();
        rows.sort_by(|a, b| {
            a.health
                .name
                .cmp(&b.health.name)
                .then(a.health.node.cmp(&b.health.node))
        });
        rows
    }

    /// Every label `key=value` some node has, sorted (the start dialog's
    /// label choices).
    pub fn labels(&self) -> Vec<String> {
        let set: BTreeSet<String> = self
            .agents
            .values()
            .flat_map(|a| a.health.labels.iter().map(|(k, v)| format!("{k}={v}")))
            .collect();
        set.into_iter().collect()
    }

    /// Alive, idle nodes: what a run could use now.
    pub fn idle_agents(&self) -> usize {
        self.agents
            .values()
            .filter(|a| self.liveness(a) == Liveness::Alive && a.health.state == NodeState::Idle)
            .count()
    }

    /// True while the watched run has load on (or is about to).
    pub fn run_active(&self) -> bool {
        self.run.as_ref().is_some_and(|r| {
            matches!(
                r.state,
                RunState::Starting | RunState::Running | RunState::Stopping
            )
        })
    }

    /// Applies one message; returns what the outside world must do.
    pub fn update(&mut self, msg: Msg) -> Vec<Effect> {
        match msg {
            Msg::Key(key) => return self.on_key(key),
            Msg::Health { health, at_ms } => {
                let node = health.node.clone();
                self.on_health(health, at_ms);
                // The first node heard says whether this operator may act.
                if !self.rights_asked {
                    self.rights_asked = true;
                    return vec![Effect::AskRights { node }];
                }
            }
            Msg::Rights { may_act, .. } => {
                self.read_only = !may_act;
                if !may_act {
                    self.notice = Some(self.read_only_notice());
                }
            }
            Msg::Incompatible { node, protocol } => {
                if self.incompatible.len() < MAX_AGENTS || self.incompatible.contains_key(&node) {
                    self.incompatible.insert(node, protocol);
                }
            }
            Msg::Interval {
                run,
                node,
                snapshot,
            } => self.on_interval(run, node, snapshot),
            Msg::Run { run, from, event } => return self.on_run_event(run, from, event),
            Msg::Merged { run, from } => return self.on_merged(run, from),
            Msg::Plan(plan) => return self.on_plan(*plan),
            Msg::Tick { now_ms } => self.now_ms = now_ms,
            Msg::Scenarios(list) => self.scenarios = list,
            Msg::History(list) => {
                self.history = list;
                let last = self.history.len().saturating_sub(1);
                let sel = &mut self.selected[Panel::Runs.index()];
                *sel = (*sel).min(last);
            }
            Msg::Summary { summary, .. } => self.mode = Mode::Summary(summary),
            Msg::Started { plan, scenario } => {
                self.notice = Some(format!(
                    "run {} started on {} agents",
                    plan.run,
                    plan.participants.len()
                ));
                self.started.insert(plan.run.clone(), scenario);
                return self.on_plan(*plan);
            }
            Msg::StoreChanged(text) => {
                self.notice = Some(text);
                return vec![self.load_store()];
            }
            Msg::Notice(text) => self.notice = Some(text),
            Msg::Dropped(n) => self.dropped = n,
        }
        Vec::new()
    }

    fn on_health(&mut self, health: NodeHealth, at_ms: u64) {
        if !self.agents.contains_key(&health.node) && self.agents.len() >= MAX_AGENTS {
            return;
        }
        let offset_ms = at_ms as i64 - health.sent_at_ms as i64;
        let (rps, errors) = self
            .agents
            .get(&health.node)
            .map_or((0.0, 0), |a| (a.rps, a.errors));
        self.incompatible.remove(&health.node);
        self.agents.insert(
            health.node.clone(),
            AgentRow {
                health,
                heard_ms: at_ms,
                offset_ms,
                rps,
                errors,
            },
        );
    }

    /// Makes `run` the watched run unless another one still has load on.
    fn watch(&mut self, run: &RunId) -> bool {
        match &self.run {
            Some(r) if &r.id == run => true,
            Some(_) if self.run_active() => false,
            _ => {
                self.run = Some(RunView::new(run.clone()));
                true
            }
        }
    }

    fn on_interval(&mut self, run: RunId, node: NodeId, snapshot: IntervalSnapshot) {
        if !self.watch(&run) {
            return;
        }
        let name = self
            .agents
            .get(&node)
            .map_or_else(|| node.short().to_string(), |a| a.health.name.clone());
        let total = snapshot.total();
        if let Some(a) = self.agents.get_mut(&node) {
            a.rps = total.requests as f64;
            a.errors = total.error_count();
        }
        if let Some(r) = self.run.as_mut() {
            if r.state == RunState::Starting {
                r.state = RunState::Running;
            }
            r.add(&node, &name, &snapshot, &total);
        }
    }

    /// A coordinator's merged interval (once a second while a run is on):
    /// a run not watched yet is watched (its plan asked of the coordinator);
    /// for the watched one, what has not come after [`RESUBSCRIBE_MS`] is
    /// asked again: the plan of the coordinator, the intervals of agents
    /// not heard from.
    fn on_merged(&mut self, run: RunId, from: NodeId) -> Vec<Effect> {
        let known = self.run.as_ref().is_some_and(|r| r.id == run);
        if !known && !self.watch(&run) {
            return Vec::new();
        }
        let now_ms = self.now_ms;
        let Some(r) = self.run.as_mut().filter(|r| r.id == run) else {
            return Vec::new();
        };
        if known && now_ms < r.subscribed_ms.saturating_add(RESUBSCRIBE_MS) {
            return Vec::new();
        }
        let nodes: Vec<NodeId> = match &r.plan {
            None => vec![from],
            Some(plan) => plan
                .participants
                .iter()
                .map(|p| &p.node)
                .filter(|n| !r.agents.contains_key(*n) && !r.lost.contains(*n))
                .cloned()
                .collect(),
        };
        if nodes.is_empty() || r.state == RunState::Finished {
            return Vec::new();
        }
        r.subscribed_ms = now_ms;
        vec![Effect::Subscribe { run, nodes }]
    }

    /// The watched run's plan (heard, or asked for): the first time, ask its
    /// agents for their intervals.
    fn on_plan(&mut self, plan: RunPlan) -> Vec<Effect> {
        if !self.watch(&plan.run) {
            return Vec::new();
        }
        let Some(r) = self.run.as_mut() else {
            return Vec::new();
        };
        let first = r.plan.is_none();
        let nodes = plan.participants.iter().map(|p| p.node.clone()).collect();
        let run = plan.run.clone();
        if first {
            r.planned(plan);
            r.subscribed_ms = self.now_ms;
            vec![Effect::Subscribe { run, nodes }]
        } else {
            r.plan = Some(plan);
            Vec::new()
        }
    }

    fn on_run_event(&mut self, run: RunId, from: NodeId, event: RunEvent) -> Vec<Effect> {
        let mut effects = Vec::new();
        // A run started here keeps its results here, watched or not.
        if let RunEvent::Finished { summary } = &event
            && let Some(scenario) = self.started.remove(&run)
        {
            effects.push(Effect::SaveResults {
                run: run.clone(),
                coordinator: from.clone(),
                scenario,
                summary: summary.clone(),
                results_dir: self.results_dir.clone(),
            });
        }
        if let RunEvent::Planned(plan) = event {
            if plan.coordinator == from && plan.run == run {
                return self.on_plan(plan);
            }
            return Vec::new();
        }
        let Some(r) = self.run.as_mut().filter(|r| r.id == run) else {
            return effects;
        };
        match event {
            RunEvent::Planned(_) => {}
            RunEvent::Stopping { reason } => {
                r.state = RunState::Stopping;
                r.stop_reason = Some(reason);
            }
            RunEvent::AgentLost { node, .. } => {
                r.lost.insert(node);
            }
            RunEvent::Finished { summary } => {
                r.settle_all();
                r.state = RunState::Finished;
                self.notice = Some(format!(
                    "run {} finished: {} requests, {} errors",
                    r.id, summary.total.requests, summary.total.errors
                ));
                r.summary = Some(*summary);
            }
            RunEvent::CoordinatorChanged { .. }
            | RunEvent::AgentFinished { .. }
            | RunEvent::Rebalanced { .. } => {}
        }
        effects
    }

    fn on_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        if key.kind == KeyEventKind::Release {
            return Vec::new();
        }
        if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
            self.quitting = true;
            return vec![Effect::Quit];
        }
        match std::mem::replace(&mut self.mode, Mode::Normal) {
            Mode::Normal => self.on_normal_key(key),
            overlay @ (Mode::Help | Mode::Agent(_) | Mode::Summary(_)) => {
                // Closed by Esc, Enter, q or ?; other keys leave it open.
                if !matches!(
                    key.code,
                    KeyCode::Esc | KeyCode::Enter | KeyCode::Char('q' | '?')
                ) {
                    self.mode = overlay;
                }
                Vec::new()
            }
            Mode::ConfirmStop(run) => match key.code {
                KeyCode::Char('y') | KeyCode::Enter => {
                    if let Some(r) = self.run.as_mut().filter(|r| r.id == run) {
                        r.state = RunState::Stopping;
                    }
                    self.notice = Some(format!("stopping {run}"));
                    let nodes = self.stoppers(&run);
                    vec![Effect::Stop { run, nodes }]
                }
                _ => Vec::new(),
            },
            Mode::ConfirmDelete(dir) => match key.code {
                KeyCode::Char('y') | KeyCode::Enter => vec![Effect::DeleteRun {
                    dir,
                    results_dir: self.results_dir.clone(),
                }],
                _ => Vec::new(),
            },
            Mode::Start(dialog) => self.on_start_key(dialog, key),
        }
    }

    fn on_normal_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let rows = self.rows_in(self.panel);
        let at = self.panel.index();
        let sel = self.selected[at];
        let acts = match key.code {
            KeyCode::Char('s' | 'x') => true,
            KeyCode::Char('r' | 'd') => self.panel == Panel::Runs,
            _ => false,
        };
        if acts && self.read_only {
            self.notice = Some(self.read_only_notice());
            return Vec::new();
        }
        match key.code {
            KeyCode::Char('q') => {
                self.quitting = true;
                return vec![Effect::Quit];
            }
            KeyCode::Char('?') => self.mode = Mode::Help,
            KeyCode::Tab => self.panel = Panel::ALL[(self.panel.index() + 1) % Panel::ALL.len()],
            KeyCode::BackTab => {
                let n = Panel::ALL.len();
                self.panel = Panel::ALL[(self.panel.index() + n - 1) % n];
            }
            KeyCode::Char(c @ '1'..='6') => {
                self.panel = Panel::ALL[(c as usize) - ('1' as usize)];
            }
            KeyCode::Char('w') => {
                self.window = match self.window {
                    TimeWindow::WholeRun => TimeWindow::Recent,
                    TimeWindow::Recent => TimeWindow::WholeRun,
                };
            }
            KeyCode::Down | KeyCode::Char('j') => {
                self.selected[at] = (sel + 1).min(rows.saturating_sub(1));
            }
            KeyCode::Up | KeyCode::Char('k') => self.selected[at] = sel.saturating_sub(1),
            KeyCode::Char('s') => {
                if self.run_active() {
                    self.notice = Some("a run is on: stop it (x) before starting another".into());
                } else if self.scenarios.is_empty() {
                    self.notice = Some("no scenarios found (scenarios/ or recent runs)".into());
                } else {
                    self.mode = Mode::Start(self.start_dialog(StartStep::Scenario));
                }
            }
            KeyCode::Char('x') => match self.run.as_ref() {
                Some(r) if self.run_active() => self.mode = Mode::ConfirmStop(r.id.clone()),
                _ => self.notice = Some("no run to stop".into()),
            },
            KeyCode::Enter => match self.panel {
                Panel::Agents | Panel::Overview => {
                    if let Some(row) = self.agent_rows().get(sel) {
                        self.mode = Mode::Agent(row.health.node.clone());
                    }
                }
                Panel::Runs => {
                    if let Some(h) = self.history.get(sel) {
                        return vec![Effect::LoadSummary { dir: h.dir.clone() }];
                    }
                }
                _ => {}
            },
            KeyCode::Char('r') if self.panel == Panel::Runs => {
                let scenario = self.history.get(sel).and_then(|h| h.scenario.clone());
                match scenario {
                    Some(path) if !self.run_active() => {
                        let label = format!("rerun: {}", self.history[sel].name);
                        self.scenarios.retain(|s| s.path != path);
                        self.scenarios.insert(0, ScenarioEntry { label, path });
                        self.mode = Mode::Start(self.start_dialog(StartStep::Agents));
                    }
                    Some(_) => self.notice = Some("a run is on: stop it (x) first".into()),
                    None => self.notice = Some("that run kept no scenario copy".into()),
                }
            }
            KeyCode::Char('d') if self.panel == Panel::Runs => {
                if let Some(h) = self.history.get(sel) {
                    self.mode = Mode::ConfirmDelete(h.dir.clone());
                }
            }
            _ => {}
        }
        Vec::new()
    }

    fn on_start_key(&mut self, mut d: StartDialog, key: KeyEvent) -> Vec<Effect> {
        let labels = self.labels();
        match (d.step, key.code) {
            (_, KeyCode::Esc) => {
                d.step = match d.step {
                    StartStep::Scenario => return Vec::new(),
                    StartStep::Agents => StartStep::Scenario,
                    StartStep::Confirm => StartStep::Agents,
                };
            }
            (StartStep::Scenario, KeyCode::Down | KeyCode::Char('j')) => {
                d.scenario = (d.scenario + 1).min(self.scenarios.len().saturating_sub(1));
            }
            (StartStep::Scenario, KeyCode::Up | KeyCode::Char('k')) => {
                d.scenario = d.scenario.saturating_sub(1);
            }
            (StartStep::Scenario, KeyCode::Enter) => d.step = StartStep::Agents,
            (StartStep::Agents, KeyCode::Tab | KeyCode::Char('a')) => {
                d.choice = match d.choice {
                    AgentChoice::All => AgentChoice::Count,
                    AgentChoice::Count if !labels.is_empty() => AgentChoice::Label,
                    _ => AgentChoice::All,
                };
            }
            (StartStep::Agents, KeyCode::Up | KeyCode::Right | KeyCode::Char('+' | 'k')) => {
                match d.choice {
                    AgentChoice::Count => d.count = d.count.saturating_add(1),
                    AgentChoice::Label => d.label = (d.label + 1) % labels.len().max(1),
                    AgentChoice::All => {}
                }
            }
            (StartStep::Agents, KeyCode::Down | KeyCode::Left | KeyCode::Char('-' | 'j')) => {
                match d.choice {
                    AgentChoice::Count => d.count = d.count.saturating_sub(1).max(1),
                    AgentChoice::Label => {
                        d.label = (d.label + labels.len().max(1) - 1) % labels.len().max(1);
                    }
                    AgentChoice::All => {}
                }
            }
            (StartStep::Agents | StartStep::Confirm, KeyCode::Char('r')) => {
                d.rebalance = !d.rebalance;
            }
            (StartStep::Agents, KeyCode::Enter) => d.step = StartStep::Confirm,
            (StartStep::Confirm, KeyCode::Enter | KeyCode::Char('y')) => {
                let Some(scenario) = self.scenarios.get(d.scenario) else {
                    return Vec::new();
                };
                let selection = match d.choice {
                    AgentChoice::All => AgentSelection::All,
                    AgentChoice::Count => AgentSelection::Count(d.count.max(1)),
                    AgentChoice::Label => {
                        let label = labels.get(d.label).cloned().unwrap_or_default();
                        let (k, v) = label.split_once('=').unwrap_or((&label, ""));
                        AgentSelection::Labels([(k.to_string(), v.to_string())].into())
                    }
                };
                let nodes = self.coordinators();
                if nodes.is_empty() {
                    self.notice = Some(format!(
                        "cannot start {}: no alive node to coordinate the run (see the Agents panel)",
                        scenario.path.display()
                    ));
                    return Vec::new();
                }
                self.notice = Some(format!("starting {}", scenario.label));
                return vec![Effect::Start {
                    scenario: scenario.path.clone(),
                    spec: RunSpec {
                        selection,
                        rebalance: d.rebalance,
                        ..RunSpec::default()
                    },
                    nodes,
                }];
            }
            _ => {}
        }
        self.mode = Mode::Start(d);
        Vec::new()
    }

    /// A fresh start dialog at `step`: the first scenario, all agents, no
    /// rebalancing.
    fn start_dialog(&self, step: StartStep) -> StartDialog {
        StartDialog {
            step,
            scenario: 0,
            choice: AgentChoice::All,
            count: self.idle_agents().max(1) as u32,
            label: 0,
            rebalance: false,
        }
    }

    /// What a read-only cockpit says when asked to act.
    fn read_only_notice(&self) -> String {
        format!("read-only: ask an operator to add {}", self.operator)
    }

    /// The request name the latency charts follow: `None` for the whole
    /// run (row 0 of the Latency panel), else the selected name.
    pub fn latency_focus(&self) -> Option<&str> {
        let run = self.run.as_ref()?;
        let row = self.selected[Panel::Latency.index()];
        row.checked_sub(1)
            .and_then(|i| run.total.keys().nth(i))
            .map(String::as_str)
    }

    /// Rows of a list panel (for selection bounds).
    fn rows_in(&self, panel: Panel) -> usize {
        match panel {
            Panel::Agents | Panel::Overview => self.agents.len(),
            Panel::Latency => self.run.as_ref().map_or(0, |r| r.total.len() + 1),
            Panel::Errors => self.run.as_ref().map_or(0, |r| r.errors.len()),
            Panel::Runs => self.history.len(),
            Panel::Load => 0,
        }
    }
}

#[cfg(test)]
mod tests;
