//! `bfgg node --metrics-addr`: what a node exports to Prometheus, as one
//! [`Metrics`] registry (prometheus-client families, encoded in the text
//! format 0.0.4 by [`serve`]).
//!
//! Who writes what: the node's task sets the health gauges at each health
//! tick ([`Metrics::health`]) and adds each agent's live interval as a
//! coordinator receives it ([`Metrics::agent_interval`]: the run's merged
//! view, `scope="run"`); the agent's task adds this node's own exact
//! snapshots ([`Metrics::own_interval`]: `scope="agent"`); finalizing raises
//! the merged view to the exact results ([`Metrics::reconcile`]) before they
//! are announced; retiring a run ends it ([`Metrics::finish`]). Each takes
//! one mutex for a few µs and never across an `.await`; a scrape encodes
//! under the same mutex, so a page never shows half an interval. Nothing is
//! sent per request: one update per interval per run.
//!
//! Counters only grow: an interval counts once per source (by its index),
//! and the final top-up only raises. Memory is bounded by [`Limits`]: the
//! finished runs kept, the runs alive at once, the request names per run
//! (later names are exported as [`OTHER_NAME`]).
//!
//! It lives outside `cluster/` on purpose: the node's state has one owner
//! and no lock (`tests/it/tidy.rs`); this is a sink beside it, written once
//! per interval or tick and read only by scrapes.

mod buckets;
pub(crate) mod serve;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use bfgg_protocol::mesh::{NodeHealth, NodeState};
use bfgg_protocol::{IntervalSnapshot, NameStats, NodeId, RunId};
use prometheus_client::encoding::{
    EncodeLabel, EncodeLabelSet, EncodeMetric, LabelSetEncoder, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use buckets::Counts;

/// The request name that stands for every name past [`Limits::names_per_run`].
pub(crate) const OTHER_NAME: &str = "(other)";

/// How much the registry keeps, at most.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Finished runs whose final values stay exported; the one that finished
    /// first goes first.
    pub(crate) finished_runs: usize,
    /// Runs not finished yet (a bound for runs that never end here); past
    /// it the oldest is dropped.
    pub(crate) live_runs: usize,
    /// Distinct request names exported per run; later ones are counted as
    /// [`OTHER_NAME`].
    pub(crate) names_per_run: usize,
}

impl Limits {
    /// What `bfgg node` uses.
    pub(crate) const NODE: Limits = Limits {
        finished_runs: 8,
        live_runs: 32,
        names_per_run: 50,
    };
}

/// How many runs that finished (and went) are remembered, so that late news
/// of them opens no new series.
const CLOSED_REMEMBERED: usize = 1024;

/// Peers of this node by liveness, as its health tick sees them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PeerCounts {
    pub(crate) alive: u64,
    pub(crate) unresponsive: u64,
    pub(crate) dead: u64,
}

/// Whose numbers a run series carries.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
enum View {
    /// One agent's own share (`scope="agent"`, `agent=<node name>`).
    Agent(String),
    /// The coordinator's merge of every agent (`scope="run"`, no `agent`).
    Run,
}

/// The labels of a run series: `run`, `name`, `scope` and, for an agent's
/// share, `agent`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
struct Series {
    run: String,
    name: String,
    view: View,
}

fn label(encoder: &mut LabelSetEncoder, key: &str, value: &str) -> fmt::Result {
    EncodeLabel::encode(&(key, value), encoder.encode_label())
}

impl EncodeLabelSet for Series {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        label(encoder, "run", &self.run)?;
        label(encoder, "name", &self.name)?;
        match &self.view {
            View::Agent(agent) => {
                label(encoder, "scope", "agent")?;
                label(encoder, "agent", agent)
            }
            View::Run => label(encoder, "scope", "run"),
        }
    }
}

/// A run series and an error kind (`ErrorKind::class`: a bounded set).
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
struct ErrorSeries {
    series: Series,
    kind: &'static str,
}

impl EncodeLabelSet for ErrorSeries {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        EncodeLabelSet::encode(&self.series, encoder)?;
        label(encoder, "kind", self.kind)
    }
}

/// One labelled value (`state`, `liveness`, the info labels).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Labels(Vec<(&'static str, String)>);

impl EncodeLabelSet for Labels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        for (k, v) in &self.0 {
            label(encoder, k, v)?;
        }
        Ok(())
    }
}

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    Labels(pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect())
}

/// A response-time histogram with [`buckets::BOUNDS_US`] buckets whose counts come
/// from HDR histograms ([`buckets`]); prometheus-client's own `Histogram`
/// only observes single values.
#[derive(Debug, Default)]
struct Latency(Mutex<Counts>);

impl TypedMetric for Latency {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Latency {
    fn encode(&self, mut encoder: MetricEncoder) -> fmt::Result {
        let counts = lock(&self.0);
        encoder.encode_histogram::<NoLabelSet>(
            counts.sum_seconds(),
            counts.count(),
            &counts.encoded(),
            None,
        )
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Interval indices seen from one source: every index below `below`, and
/// the ones in `above` (out of order arrivals).
#[derive(Debug, Default)]
struct Seen {
    below: u32,
    above: BTreeSet<u32>,
}

impl Seen {
    /// Whether `index` is new (and remembers it).
    fn insert(&mut self, index: u32) -> bool {
        if index < self.below || !self.above.insert(index) {
            return false;
        }
        while self.below < u32::MAX && self.above.remove(&self.below) {
            self.below += 1;
        }
        true
    }
}

/// What the registry knows of one run.
#[derive(Debug)]
struct Entry {
    run: RunId,
    /// When it finished (an order among finished runs), if it did.
    finished: Option<u64>,
    /// The names exported on their own, in the order first seen.
    names: Vec<String>,
    /// This node's own intervals.
    own: Seen,
    /// The agents' intervals, as a coordinator received them.
    agents: BTreeMap<NodeId, Seen>,
    /// Every series made for it (to remove them with it).
    series: BTreeSet<Series>,
    errors: BTreeSet<ErrorSeries>,
}

impl Entry {
    fn new(run: &RunId) -> Self {
        Self {
            run: run.clone(),
            finished: None,
            names: Vec::new(),
            own: Seen::default(),
            agents: BTreeMap::new(),
            series: BTreeSet::new(),
            errors: BTreeSet::new(),
        }
    }

    /// `tallies` by their `name` label (names past the cap together).
    fn by_label(&mut self, tallies: Vec<(&str, Tally)>, cap: usize) -> BTreeMap<String, Tally> {
        let mut out: BTreeMap<String, Tally> = BTreeMap::new();
        for (name, tally) in tallies {
            *out.entry(self.name_label(name, cap)).or_default() += tally;
        }
        out
    }

    /// The `name` label of request name `name`.
    fn name_label(&mut self, name: &str, cap: usize) -> String {
        if self.names.iter().any(|n| n == name) {
            return name.to_owned();
        }
        if self.names.len() < cap {
            self.names.push(name.to_owned());
            return name.to_owned();
        }
        OTHER_NAME.to_owned()
    }
}

/// The run families.
#[derive(Debug, Default)]
struct RunFamilies {
    requests: Family<Series, Counter>,
    errors: Family<ErrorSeries, Counter>,
    latency: Family<Series, Latency>,
}

/// The health families.
#[derive(Debug, Default)]
struct NodeFamilies {
    cpu: Gauge<f64, AtomicU64>,
    memory: Gauge,
    state: Family<Labels, Gauge>,
    peers: Family<Labels, Gauge>,
    dropped: Counter,
}

/// Per exported name, what a run's intervals add up to.
#[derive(Debug, Default)]
struct Tally {
    requests: u64,
    errors: BTreeMap<&'static str, u64>,
    latency: Counts,
}

impl Tally {
    fn of(stats: &NameStats) -> Self {
        let mut errors: BTreeMap<&'static str, u64> = BTreeMap::new();
        for (kind, n) in &stats.errors {
            let e = errors.entry(kind.class()).or_default();
            *e = e.saturating_add(*n);
        }
        Self {
            requests: stats.requests,
            errors,
            latency: Counts::of(&stats.response_time),
        }
    }

    /// Each name's tally, computed before the registry's lock is taken
    /// (reading a dense HDR histogram's slots is the costly part).
    fn per_name(by_name: &BTreeMap<String, NameStats>) -> Vec<(&str, Tally)> {
        by_name
            .iter()
            .map(|(name, stats)| (name.as_str(), Tally::of(stats)))
            .collect()
    }
}

impl std::ops::AddAssign<Tally> for Tally {
    fn add_assign(&mut self, rhs: Tally) {
        self.requests = self.requests.saturating_add(rhs.requests);
        for (kind, n) in rhs.errors {
            let e = self.errors.entry(kind).or_default();
            *e = e.saturating_add(n);
        }
        self.latency += &rhs.latency;
    }
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    runs: RunFamilies,
    node: NodeFamilies,
    limits: Limits,
    /// Oldest first.
    entries: VecDeque<Entry>,
    /// Runs that finished, newest last: their updates are ignored.
    closed: VecDeque<RunId>,
    finishes: u64,
}

/// A node's metrics (see the module docs). Shared as `Arc<Metrics>`.
#[derive(Debug)]
pub(crate) struct Metrics {
    /// This node's name: the `agent` label of its own share.
    name: String,
    inner: Mutex<Inner>,
}

impl Metrics {
    /// The registry of node `id` called `name`.
    pub(crate) fn new(id: &NodeId, name: &str, limits: Limits) -> Self {
        let mut registry = Registry::with_prefix("bfgg");
        let runs = RunFamilies::default();
        let node = NodeFamilies::default();
        let info: Family<Labels, Gauge> = Family::default();
        let protocol = bfgg_protocol::PROTOCOL_VERSION.to_string();
        info.get_or_create(&labels(&[
            ("name", name),
            ("id", &id.0),
            ("version", env!("CARGO_PKG_VERSION")),
            ("protocol", &protocol),
        ]))
        .set(1);
        registry.register(
            "node_info",
            "This node: its name, peer id, bfgg version and protocol version (always 1)",
            info,
        );
        registry.register(
            "node_cpu_percent",
            "Host CPU busy, percent of all cores, at the node's last health tick",
            node.cpu.clone(),
        );
        registry.register(
            "node_resident_memory_bytes",
            "Resident memory of the bfgg node process",
            node.memory.clone(),
        );
        registry.register(
            "node_state",
            "The node's state as an agent: 1 for the current one, 0 for the others",
            node.state.clone(),
        );
        registry.register(
            "node_peers",
            "Other nodes this node knows, by liveness",
            node.peers.clone(),
        );
        registry.register(
            "node_dropped_messages",
            "Malformed or oversized messages this node dropped",
            node.dropped.clone(),
        );
        registry.register(
            "requests",
            "Requests completed (successful or not), per run, request name and \
             scope (agent: this node's own share; run: the coordinator's merge)",
            runs.requests.clone(),
        );
        registry.register(
            "errors",
            "Failed requests by error kind, per run, request name and scope",
            runs.errors.clone(),
        );
        registry.register(
            "response_time_seconds",
            "Response time from the intended start (coordinated omission \
             corrected in the open model) of requests that got a response",
            runs.latency.clone(),
        );
        Self {
            name: name.to_owned(),
            inner: Mutex::new(Inner {
                registry,
                runs,
                node,
                limits,
                entries: VecDeque::new(),
                closed: VecDeque::new(),
                finishes: 0,
            }),
        }
    }

    /// The health gauges from this node's health message and its view of
    /// its peers.
    pub(crate) fn health(&self, health: &NodeHealth, peers: PeerCounts) {
        let inner = lock(&self.inner);
        let node = &inner.node;
        node.cpu.set(f64::from(health.cpu_pct));
        node.memory
            .set(i64::try_from(health.mem_bytes).unwrap_or(i64::MAX));
        let current = match health.state {
            NodeState::Idle => "idle",
            NodeState::Preparing(_) => "preparing",
            NodeState::Running(_) => "running",
            NodeState::Finishing(_) => "finishing",
        };
        for state in ["idle", "preparing", "running", "finishing"] {
            node.state
                .get_or_create(&labels(&[("state", state)]))
                .set(i64::from(state == current));
        }
        for (liveness, n) in [
            ("alive", peers.alive),
            ("unresponsive", peers.unresponsive),
            ("dead", peers.dead),
        ] {
            node.peers
                .get_or_create(&labels(&[("liveness", liveness)]))
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let before = node.dropped.get();
        if health.dropped_messages > before {
            node.dropped.inc_by(health.dropped_messages - before);
        }
    }

    /// This node's own exact snapshot of `run` (its share as an agent).
    pub(crate) fn own_interval(&self, run: &RunId, snap: &IntervalSnapshot) {
        let tallies = Tally::per_name(&snap.by_name);
        let view = View::Agent(self.name.clone());
        let mut inner = lock(&self.inner);
        inner.add(run, view, snap.index, tallies, |e| e.own.insert(snap.index));
    }

    /// `agent`'s live snapshot of `run`, which this node coordinates: the
    /// run's merged view.
    pub(crate) fn agent_interval(&self, run: &RunId, agent: &NodeId, snap: &IntervalSnapshot) {
        let tallies = Tally::per_name(&snap.by_name);
        let mut inner = lock(&self.inner);
        inner.add(run, View::Run, snap.index, tallies, |e| {
            e.agents
                .entry(agent.clone())
                .or_default()
                .insert(snap.index)
        });
    }

    /// The exact totals of `run` (per request name), as its results hold
    /// them: the merged view is raised to them (what live intervals missed:
    /// one never delivered, or sent before this node took the run over).
    pub(crate) fn reconcile(&self, run: &RunId, by_name: &BTreeMap<String, NameStats>) {
        let tallies = Tally::per_name(by_name);
        let mut inner = lock(&self.inner);
        inner.reconcile(run, tallies);
    }

    /// `run` is over here: its final values stay exported until
    /// [`Limits::finished_runs`] runs finished after it; later updates of it
    /// are ignored.
    pub(crate) fn finish(&self, run: &RunId) {
        let mut inner = lock(&self.inner);
        inner.finish(run);
    }

    /// The page: every metric in the Prometheus text format 0.0.4.
    pub(crate) fn encode(&self) -> Result<String, fmt::Error> {
        let inner = lock(&self.inner);
        let mut page = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut page, &inner.registry)?;
        Ok(page)
    }
}

impl Inner {
    /// The entry of `run`, made if needed; `None` once it finished.
    fn entry(&mut self, run: &RunId) -> Option<usize> {
        if self.closed.contains(run) {
            return None;
        }
        if let Some(i) = self.entries.iter().position(|e| &e.run == run) {
            return Some(i);
        }
        let live = self.entries.iter().filter(|e| e.finished.is_none()).count();
        if live >= self.limits.live_runs
            && let Some(oldest) = self.entries.iter().position(|e| e.finished.is_none())
        {
            let dropped = self.entries[oldest].run.clone();
            tracing::warn!(run = %dropped, "metrics: too many runs at once, the oldest is no longer exported");
            self.remove(oldest);
            // For good: its next interval must not push out another.
            self.close(&dropped);
        }
        self.entries.push_back(Entry::new(run));
        Some(self.entries.len() - 1)
    }

    /// Adds interval `index`'s `tallies` to `view` of `run` if `first` says
    /// the index is new.
    fn add(
        &mut self,
        run: &RunId,
        view: View,
        index: u32,
        tallies: Vec<(&str, Tally)>,
        first: impl FnOnce(&mut Entry) -> bool,
    ) {
        let Some(i) = self.entry(run) else {
            return;
        };
        let cap = self.limits.names_per_run;
        let entry = &mut self.entries[i];
        if !first(entry) {
            tracing::debug!(%run, index, "metrics: interval already counted");
            return;
        }
        for (name, tally) in entry.by_label(tallies, cap) {
            let series = Series {
                run: run.0.clone(),
                name,
                view: view.clone(),
            };
            self.runs
                .requests
                .get_or_create(&series)
                .inc_by(tally.requests);
            *lock(&self.runs.latency.get_or_create(&series).0) += &tally.latency;
            for (kind, n) in tally.errors {
                let errors = ErrorSeries {
                    series: series.clone(),
                    kind,
                };
                self.runs.errors.get_or_create(&errors).inc_by(n);
                entry.errors.insert(errors);
            }
            entry.series.insert(series);
        }
    }

    fn reconcile(&mut self, run: &RunId, tallies: Vec<(&str, Tally)>) {
        let Some(i) = self.entry(run) else {
            return;
        };
        let cap = self.limits.names_per_run;
        let entry = &mut self.entries[i];
        for (name, tally) in entry.by_label(tallies, cap) {
            let series = Series {
                run: run.0.clone(),
                name,
                view: View::Run,
            };
            let requests = self.runs.requests.get_or_create(&series);
            if tally.requests > requests.get() {
                requests.inc_by(tally.requests - requests.get());
            }
            drop(requests);
            lock(&self.runs.latency.get_or_create(&series).0).raise_to(&tally.latency);
            for (kind, n) in tally.errors {
                let errors = ErrorSeries {
                    series: series.clone(),
                    kind,
                };
                let counter = self.runs.errors.get_or_create(&errors);
                if n > counter.get() {
                    counter.inc_by(n - counter.get());
                }
                drop(counter);
                entry.errors.insert(errors);
            }
            entry.series.insert(series);
        }
    }

    /// Ignores `run` from now on (bounded: the oldest are forgotten).
    fn close(&mut self, run: &RunId) {
        if self.closed.len() == CLOSED_REMEMBERED {
            self.closed.pop_front();
        }
        self.closed.push_back(run.clone());
    }

    fn finish(&mut self, run: &RunId) {
        if self.closed.contains(run) {
            return;
        }
        self.close(run);
        let Some(i) = self.entries.iter().position(|e| &e.run == run) else {
            return;
        };
        self.finishes += 1;
        self.entries[i].finished = Some(self.finishes);
        while self.entries.iter().filter(|e| e.finished.is_some()).count()
            > self.limits.finished_runs
        {
            let Some(first) = self
                .entries
                .iter()
                .enumerate()
                .filter_map(|(i, e)| e.finished.map(|f| (f, i)))
                .min()
                .map(|(_, i)| i)
            else {
                break;
            };
            self.remove(first);
        }
    }

    /// Removes entry `i` and every series of it.
    fn remove(&mut self, i: usize) {
        let Some(entry) = self.entries.remove(i) else {
            return;
        };
        for s in &entry.series {
            self.runs.requests.remove(s);
            self.runs.latency.remove(s);
        }
        for e in &entry.errors {
            self.runs.errors.remove(e);
        }
    }
}

#[cfg(test)]
mod tests;
