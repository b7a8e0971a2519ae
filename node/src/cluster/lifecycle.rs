//! The life of one run on one node, as a pure state machine: [`RunState`]
//! (what this node knows of the run) and [`RunState::apply`], which takes an
//! [`Event`] (a run event heard or made here, an agent's interval, a stop, the
//! monitor's tick, the end of finalizing) and returns the [`Action`]s the
//! node must take (publish, stop, take a share, finalize, retire ...). No
//! I/O, no clock, no locks: time and liveness arrive in [`Facts`], so every
//! transition is tested without a network (`lifecycle/tests.rs`).
//!
//! ```text
//!  (coordinator)  Starting ──agents prepared──► Running ──every agent finished or lost,
//!       │                                         ▲  │     or the plan's end + slack──► Finalizing
//!       └─prepare failed or stopped─► retire      │  │                                   │ │
//!                                                 │  │                     written ──────┘ └── failed: Running
//!  (participant)  Running (from Prepare/Planned)  │  │                     (Finished, then retire)
//!       ├─ coordinator dead, this node the lowest-id live participant: takes over ──┘
//!       └─ Finished heard (or the coordinator says so when asked): retire
//! ```
//!
//! This node's own part in a run (preparing, generating, keeping its log) is
//! the agent slot (`agent.rs`); the two meet through actions
//! ([`Action::StopAgent`], [`Action::TakeMovedShare`]) and events
//! ([`RunEvent::AgentFinished`] applied here like anyone's).

use std::collections::BTreeMap;
use std::time::Duration;

use bfgg_protocol::mesh::{MovedShare, RunEvent, RunPlan};
use bfgg_protocol::{IntervalSnapshot, NodeId};

use super::view::Liveness;
use crate::engine::schedule::Segment;
use crate::merge::{IntervalMerger, Merged};

/// How long after the plan's end (start + duration + graceful stop) the
/// coordinator waits for agents' reports before it finalizes without them.
pub(crate) const END_SLACK: Duration = Duration::from_secs(10);
/// How far ahead of "now" the live agents take a lost agent's share over
/// (time for the event to reach them).
pub(crate) const REBALANCE_LEAD: Duration = Duration::from_secs(1);
/// A participant that heard no `Finished` this long after a run's end asks
/// its coordinator, every [`ASK_EVERY`], and retires the run once it has.
pub(crate) const ASK_AFTER: Duration = Duration::from_secs(30);
pub(crate) const ASK_EVERY: Duration = Duration::from_secs(10);

/// Where a run is, as this node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The coordinator is preparing the agents; no start time yet.
    Starting,
    /// Started (or about to, at the plan's start time).
    Running,
    /// The coordinator is merging and writing the results.
    Finalizing,
}

/// An agent's report at the end of its load.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AgentDone {
    pub(crate) intervals: u32,
    pub(crate) started_at_ms: u64,
    pub(crate) clock_offset_us: i64,
    pub(crate) stop_reason: Option<String>,
    pub(crate) load_ms: u64,
    pub(crate) mesh_bytes: u64,
}

/// The schedule segment of a moved share.
fn segment_of(s: &MovedShare) -> Segment {
    Segment {
        offset: s.offset,
        stride: s.stride.max(1),
    }
}

/// What this node knows of one run.
#[derive(Debug)]
pub(crate) struct RunState {
    pub(crate) plan: RunPlan,
    /// The coordinator now (the plan's, or whoever took over).
    pub(crate) coordinator: NodeId,
    pub(crate) phase: Phase,
    /// Agents whose load ended, with what they reported.
    pub(crate) finished: BTreeMap<NodeId, AgentDone>,
    /// Agents declared lost, with when they were last heard (Unix ms).
    pub(crate) lost: BTreeMap<NodeId, u64>,
    /// Shares moved from lost agents to live ones, with when they moved
    /// (Unix ms, coordinator clock).
    pub(crate) moved: Vec<(MovedShare, u64)>,
    /// Lost agents whose shares moved, and when (Unix ms, coordinator clock).
    pub(crate) rebalanced: BTreeMap<NodeId, u64>,
    /// Set once a stop was asked for.
    pub(crate) stopping: Option<String>,
    /// As the coordinator: the agents' live intervals merged.
    pub(crate) merger: IntervalMerger<NodeId>,
    /// When this node last asked the coordinator whether the run finished.
    pub(crate) asked_ms: Option<u64>,
}

/// What the node knows besides the run: who it is, the time, who is alive.
pub(crate) struct Facts<'a> {
    pub(crate) me: &'a NodeId,
    /// Wall clock, Unix ms.
    pub(crate) now_ms: u64,
    /// Liveness of a node (this node is always alive to itself).
    pub(crate) liveness: &'a dyn Fn(&NodeId) -> Liveness,
    /// When a node was last heard (Unix ms, its own clock), 0 if never.
    pub(crate) last_heard_ms: &'a dyn Fn(&NodeId) -> u64,
}

/// Something that happened to the run.
#[derive(Debug, Clone)]
pub(crate) enum Event {
    /// The run starts at `start_at_ms` (coordinator clock): every agent
    /// prepared (the coordinator), or `Start` arrived (an agent).
    Started { start_at_ms: u64 },
    /// Preparing failed (coordinator): the run will not start.
    PrepareFailed,
    /// A run event from `from` (heard on gossip, or made by this node).
    Run { from: NodeId, event: RunEvent },
    /// An agent's live interval, sent to this node.
    Interval {
        from: NodeId,
        snapshot: IntervalSnapshot,
    },
    /// Someone asked this node to stop the run.
    Stop { reason: String },
    /// The monitor's tick (every 500 ms).
    Tick,
    /// Finalizing ended: the results are written (and announced), or not.
    Finalized { ok: bool },
    /// The coordinator, asked, says the run finished.
    FinishedElsewhere,
}

/// What the node must do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    /// Gossip this run event (already applied here).
    Publish(RunEvent),
    /// Gossip these merged live intervals, in order.
    PublishMerged(Vec<Merged>),
    /// Stop this node's own part in the run, if it has one.
    StopAgent { reason: String },
    /// Ask every other participant to stop (the coordinator's fan-out).
    StopAgents,
    /// Generate `segment` of the schedule from `from_ms` on, if this node
    /// runs the run.
    TakeMovedShare { segment: Segment, from_ms: u64 },
    /// Merge the agents' logs and write the results (then report
    /// [`Event::Finalized`]).
    Finalize,
    /// Ask the coordinator whether the run finished.
    AskCoordinator(NodeId),
    /// Forget the run: its results are written.
    Retire,
}

impl RunState {
    /// This node's state of `plan`, as the plan says it starts: running if
    /// it has a start time, else starting.
    pub(crate) fn new(plan: RunPlan) -> Self {
        let merger =
            IntervalMerger::new(plan.participants.iter().map(|p| p.node.clone())).with_deadline(2);
        Self {
            coordinator: plan.coordinator.clone(),
            phase: if plan.start_at_ms > 0 {
                Phase::Running
            } else {
                Phase::Starting
            },
            plan,
            finished: BTreeMap::new(),
            lost: BTreeMap::new(),
            moved: Vec::new(),
            rebalanced: BTreeMap::new(),
            stopping: None,
            merger,
            asked_ms: None,
        }
    }

    pub(crate) fn is_participant(&self, id: &NodeId) -> bool {
        self.plan.participants.iter().any(|p| &p.node == id)
    }

    fn coordinates(&self, facts: &Facts<'_>) -> bool {
        &self.coordinator == facts.me
    }

    /// The shares moved to `node` so far, with when (coordinator clock).
    pub(crate) fn moved_shares_of<'a>(
        &'a self,
        node: &'a NodeId,
    ) -> impl Iterator<Item = (Segment, u64)> + 'a {
        self.moved
            .iter()
            .filter(move |(s, _)| &s.node == node)
            .map(|(s, from_ms)| (segment_of(s), *from_ms))
    }

    /// Applies `event`; returns what the node must do.
    pub(crate) fn apply(&mut self, event: Event, facts: &Facts<'_>) -> Vec<Action> {
        match event {
            Event::Started { start_at_ms } => {
                if self.phase != Phase::Starting {
                    return Vec::new();
                }
                self.plan.start_at_ms = start_at_ms;
                self.phase = Phase::Running;
                Vec::new()
            }
            Event::PrepareFailed => {
                if self.phase == Phase::Starting {
                    vec![Action::Retire]
                } else {
                    Vec::new()
                }
            }
            Event::Run { from, event } => self.on_run_event(from, event, facts),
            Event::Interval { from, snapshot } => {
                if !self.coordinates(facts) || !self.is_participant(&from) {
                    return Vec::new();
                }
                merged(self.merger.add(&from, snapshot))
            }
            Event::Stop { reason } => {
                let first = self.stopping.is_none();
                let reason = self.stopping.get_or_insert(reason).clone();
                let mut out = vec![Action::StopAgent {
                    reason: reason.clone(),
                }];
                if self.coordinates(facts) {
                    // Asked again, the fan-out is repeated (an agent may have
                    // missed it); the event is published once.
                    out.push(Action::StopAgents);
                    if first {
                        out.push(Action::Publish(RunEvent::Stopping { reason }));
                    }
                }
                out
            }
            Event::Tick => self.on_tick(facts),
            Event::Finalized { ok } => {
                if self.phase != Phase::Finalizing {
                    return Vec::new();
                }
                if ok {
                    vec![Action::Retire]
                } else {
                    // Tried again at the next tick.
                    self.phase = Phase::Running;
                    Vec::new()
                }
            }
            Event::FinishedElsewhere => {
                if self.coordinates(facts) {
                    Vec::new()
                } else {
                    vec![Action::Retire]
                }
            }
        }
    }

    fn on_run_event(&mut self, from: NodeId, event: RunEvent, facts: &Facts<'_>) -> Vec<Action> {
        match event {
            RunEvent::Planned(plan) => {
                if plan.run == self.plan.run && plan.coordinator == from {
                    if self.plan.start_at_ms == 0 {
                        self.plan.start_at_ms = plan.start_at_ms;
                    }
                    if self.phase == Phase::Starting && plan.start_at_ms > 0 {
                        self.phase = Phase::Running;
                    }
                }
                Vec::new()
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
                if node != from || !self.is_participant(&node) || self.finished.contains_key(&node)
                {
                    return Vec::new();
                }
                self.finished.insert(
                    node.clone(),
                    AgentDone {
                        intervals,
                        started_at_ms,
                        clock_offset_us,
                        stop_reason,
                        load_ms,
                        mesh_bytes,
                    },
                );
                // Its last interval reached us before this (an agent sends
                // them to its coordinator before announcing its end).
                merged(self.merger.finish(&node))
            }
            RunEvent::AgentLost {
                node,
                last_heard_ms,
            } => {
                if from != self.coordinator || self.lost.contains_key(&node) {
                    return Vec::new();
                }
                self.lost.insert(node.clone(), last_heard_ms);
                merged(self.merger.finish(&node))
            }
            RunEvent::CoordinatorChanged { node } => {
                if node == from && self.is_participant(&node) {
                    self.coordinator = node;
                }
                Vec::new()
            }
            RunEvent::Stopping { reason } => {
                if from != self.coordinator {
                    return Vec::new();
                }
                self.stopping.get_or_insert(reason.clone());
                vec![Action::StopAgent { reason }]
            }
            RunEvent::Finished { .. } => {
                if from == self.coordinator && !self.coordinates(facts) {
                    vec![Action::Retire]
                } else {
                    Vec::new()
                }
            }
            RunEvent::Rebalanced {
                lost,
                from_ms,
                shares,
            } => {
                if from != self.coordinator {
                    return Vec::new();
                }
                self.rebalanced_apply(lost, from_ms, &shares, facts)
            }
        }
    }

    /// Records a rebalance (once per lost agent); this node's new shares.
    fn rebalanced_apply(
        &mut self,
        lost: NodeId,
        from_ms: u64,
        shares: &[MovedShare],
        facts: &Facts<'_>,
    ) -> Vec<Action> {
        if self.rebalanced.contains_key(&lost) {
            return Vec::new();
        }
        self.rebalanced.insert(lost, from_ms);
        let mut out = Vec::new();
        for s in shares {
            self.moved.push((s.clone(), from_ms));
            if &s.node == facts.me {
                out.push(Action::TakeMovedShare {
                    segment: segment_of(s),
                    from_ms,
                });
            }
        }
        out
    }

    fn overdue_by(&self, extra: Duration, facts: &Facts<'_>) -> bool {
        let end_ms =
            self.plan.start_at_ms + self.plan.load_ms + (END_SLACK + extra).as_millis() as u64;
        self.plan.start_at_ms > 0 && facts.now_ms > end_ms
    }

    fn on_tick(&mut self, facts: &Facts<'_>) -> Vec<Action> {
        let mut out = Vec::new();
        if self.phase == Phase::Starting
            && !self.coordinates(facts)
            && (facts.liveness)(&self.coordinator) == Liveness::Dead
        {
            // Prepared for a run whose coordinator died before the start:
            // nothing was measured; free this node for other runs.
            return vec![
                Action::StopAgent {
                    reason: "the coordinator died before the start".into(),
                },
                Action::Retire,
            ];
        }
        if self.phase != Phase::Running {
            return out;
        }
        let alive = |id: &NodeId| (facts.liveness)(id) == Liveness::Alive;
        if !self.coordinates(facts) {
            // A participant whose coordinator died takes over if it is the
            // live participant with the lowest id.
            if self.is_participant(facts.me)
                && (facts.liveness)(&self.coordinator) == Liveness::Dead
            {
                let lowest = self
                    .plan
                    .participants
                    .iter()
                    .map(|p| &p.node)
                    .filter(|id| alive(id))
                    .min();
                if lowest == Some(facts.me) {
                    self.coordinator = facts.me.clone();
                    out.push(Action::Publish(RunEvent::CoordinatorChanged {
                        node: facts.me.clone(),
                    }));
                }
            }
            if !self.coordinates(facts) {
                let ask = ASK_EVERY.as_millis() as u64;
                if self.overdue_by(ASK_AFTER, facts)
                    && self.asked_ms.is_none_or(|at| facts.now_ms >= at + ask)
                {
                    self.asked_ms = Some(facts.now_ms);
                    out.push(Action::AskCoordinator(self.coordinator.clone()));
                }
                return out;
            }
        }
        let silent: Vec<NodeId> = self
            .plan
            .participants
            .iter()
            .map(|p| p.node.clone())
            .filter(|id| !self.finished.contains_key(id) && !self.lost.contains_key(id))
            .filter(|id| (facts.liveness)(id) == Liveness::Dead)
            .collect();
        for node in silent {
            let last_heard_ms = (facts.last_heard_ms)(&node);
            self.lost.insert(node.clone(), last_heard_ms);
            out.extend(merged(self.merger.finish(&node)));
            out.push(Action::Publish(RunEvent::AgentLost {
                node: node.clone(),
                last_heard_ms,
            }));
            if self.plan.rebalance
                && self.stopping.is_none()
                && let Some(RunEvent::Rebalanced {
                    lost,
                    from_ms,
                    shares,
                }) = self.rebalance(&node, facts)
            {
                out.extend(self.rebalanced_apply(lost.clone(), from_ms, &shares, facts));
                out.push(Action::Publish(RunEvent::Rebalanced {
                    lost,
                    from_ms,
                    shares,
                }));
            }
        }
        let all_reported = self
            .plan
            .participants
            .iter()
            .all(|p| self.finished.contains_key(&p.node) || self.lost.contains_key(&p.node));
        if all_reported || self.overdue_by(Duration::ZERO, facts) {
            self.phase = Phase::Finalizing;
            out.push(Action::Finalize);
        }
        out
    }

    /// Splits everything `lost` was running (its own share and any it had
    /// taken over) among the live agents still generating load, in
    /// participant order. `None` when nobody is left to take it.
    fn rebalance(&self, lost: &NodeId, facts: &Facts<'_>) -> Option<RunEvent> {
        let n = self.plan.participants.len() as u64;
        let own = self.plan.participants.iter().find(|p| &p.node == lost)?;
        let mut segments = vec![Segment::WHOLE.split(u64::from(own.index), n)];
        segments.extend(self.moved_shares_of(lost).map(|(segment, _)| segment));
        let live: Vec<&NodeId> = self
            .plan
            .participants
            .iter()
            .map(|p| &p.node)
            .filter(|id| *id != lost && !self.lost.contains_key(*id))
            .filter(|id| !self.finished.contains_key(*id))
            .filter(|id| (facts.liveness)(id) == Liveness::Alive)
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
            from_ms: facts.now_ms + REBALANCE_LEAD.as_millis() as u64,
            shares,
        })
    }
}

/// The merged intervals to gossip, if any.
fn merged(released: Vec<Merged>) -> Vec<Action> {
    if released.is_empty() {
        Vec::new()
    } else {
        vec![Action::PublishMerged(released)]
    }
}

#[cfg(test)]
mod tests;
