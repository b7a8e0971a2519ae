//! What nodes say to each other: gossip (facts everyone needs: health, one
//! merged interval per run per second summed up, run events) and control
//! requests (point-to-point asks with exactly one answer: submit, prepare,
//! stop, fetch, and each agent's intervals to its coordinator and to
//! subscribed observers).
//!
//! The version is in every protocol id and topic name, so nodes of another
//! protocol version simply don't hear each other; the codec envelope checks
//! it again on every message.
//!
//! To add a message: 1. add the variant at the END of its enum (variant order
//! is the wire format); 2. handle it in `bfgg_node::node` (and the cockpit if
//! it shows it); 3. add it to the round-trip test in `mesh/tests.rs`;
//! 4. bump [`crate::PROTOCOL_VERSION`] if an existing variant changed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{NodeId, RunId};
use crate::stats::{IntervalSnapshot, Pulse};
use crate::summary::RunSummary;

/// libp2p request-response protocol id of control requests.
pub const CONTROL_PROTOCOL: &str = "/bfgg/control/5";
/// Gossipsub topic of node health (one message per node per period: a
/// [`Gossip::Beat`], or the full [`Gossip::Health`]).
pub const HEALTH_TOPIC: &str = "bfgg/5/health";
/// A node gossips its full health at least once every this many periods
/// (between them, beats), for receivers that missed it and could not ask.
pub const FULL_HEALTH_EVERY: u32 = 30;
/// Gossipsub topic of runs: interval snapshots and run events.
pub const RUN_TOPIC: &str = "bfgg/5/runs";
/// Largest gossip message (gossipsub's default transmit limit, 64 KiB).
pub const MAX_GOSSIP_BYTES: usize = 64 * 1024;
/// Largest control request or response.
pub const MAX_CONTROL_BYTES: usize = 16 * 1024 * 1024;

/// Where a node is in its life.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeState {
    /// Ready for a run.
    Idle,
    /// Fetching the bundle and waiting for the start time of a run.
    Preparing(RunId),
    /// Generating load for a run.
    Running(RunId),
    /// Load ended; results not yet confirmed by a coordinator.
    Finishing(RunId),
}

/// An engine a node can run, with its version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineInfo {
    /// `native`, `locust`, `gatling`.
    pub name: String,
    /// Its version, as the engine reports it.
    pub version: String,
}

/// One node's health, published every second by a task separate from load
/// generation (so a busy node is never taken for a dead one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeHealth {
    /// Who.
    pub node: NodeId,
    /// `--name`, default the host name.
    pub name: String,
    /// `--labels key=value,...`.
    pub labels: BTreeMap<String, String>,
    /// Where it is.
    pub state: NodeState,
    /// Engines available.
    pub engines: Vec<EngineInfo>,
    /// Host CPU use, percent of all cores.
    pub cpu_pct: f32,
    /// Resident memory of the node process, bytes.
    pub mem_bytes: u64,
    /// False when the generator is behind its schedule or a core is saturated.
    pub keeping_schedule: bool,
    /// The node's wall clock when it sent this, Unix ms (for clock offsets).
    pub sent_at_ms: u64,
    /// bfgg version.
    pub bfgg_version: String,
    /// [`crate::PROTOCOL_VERSION`] of the sender.
    pub protocol_version: u16,
    /// Malformed or oversized messages this node dropped so far.
    pub dropped_messages: u64,
    /// Addresses it listens on (multiaddrs with `/p2p/<id>`).
    pub listen_addrs: Vec<String>,
    /// The next health message comes within about this long, ms: 1 s in
    /// small clusters, longer in large ones (the cluster's health traffic
    /// stays bounded); observers scale their liveness thresholds by it.
    pub period_ms: u32,
    /// Which version of the node's slow-changing facts (name, labels,
    /// engines, versions, addresses) this is: it changes when they do.
    /// [`NodeBeat`]s name the revision they complete.
    pub revision: u32,
}

impl NodeHealth {
    /// What changes every period, for a [`Gossip::Beat`].
    pub fn beat(&self) -> NodeBeat {
        NodeBeat {
            revision: self.revision,
            state: self.state.clone(),
            cpu_pct: self.cpu_pct,
            mem_bytes: self.mem_bytes,
            keeping_schedule: self.keeping_schedule,
            sent_at_ms: self.sent_at_ms,
            dropped_messages: self.dropped_messages,
            period_ms: self.period_ms,
        }
    }

    /// This health brought up to date by `beat`, if the beat completes this
    /// revision (`None`: the receiver needs the node's full health first).
    pub fn with_beat(&self, beat: &NodeBeat) -> Option<NodeHealth> {
        (beat.revision == self.revision).then(|| NodeHealth {
            state: beat.state.clone(),
            cpu_pct: beat.cpu_pct,
            mem_bytes: beat.mem_bytes,
            keeping_schedule: beat.keeping_schedule,
            sent_at_ms: beat.sent_at_ms,
            dropped_messages: beat.dropped_messages,
            period_ms: beat.period_ms,
            ..self.clone()
        })
    }

    /// Whether the slow-changing facts (everything a beat does not carry)
    /// are the same, revision aside.
    pub fn same_facts(&self, other: &NodeHealth) -> bool {
        self.node == other.node
            && self.name == other.name
            && self.labels == other.labels
            && self.engines == other.engines
            && self.bfgg_version == other.bfgg_version
            && self.protocol_version == other.protocol_version
            && self.listen_addrs == other.listen_addrs
    }
}

/// The part of a node's health that changes every period: what a node
/// gossips between full [`NodeHealth`] messages (~40 bytes of payload where
/// the full health is ~250; docs/MESH.md). Its author is the gossip
/// message's signed source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeBeat {
    /// The [`NodeHealth::revision`] this beat completes.
    pub revision: u32,
    /// As [`NodeHealth::state`].
    pub state: NodeState,
    /// As [`NodeHealth::cpu_pct`].
    pub cpu_pct: f32,
    /// As [`NodeHealth::mem_bytes`].
    pub mem_bytes: u64,
    /// As [`NodeHealth::keeping_schedule`].
    pub keeping_schedule: bool,
    /// As [`NodeHealth::sent_at_ms`].
    pub sent_at_ms: u64,
    /// As [`NodeHealth::dropped_messages`].
    pub dropped_messages: u64,
    /// As [`NodeHealth::period_ms`].
    pub period_ms: u32,
}

/// Facts published on gossip.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Gossip {
    /// On [`HEALTH_TOPIC`]: a node's full health, when its slow-changing
    /// facts change and every [`FULL_HEALTH_EVERY`] periods.
    Health(NodeHealth),
    /// On [`RUN_TOPIC`], from the run's coordinator: one interval of a run
    /// merged over the agents that sent it, summed up ([`Pulse`]), once per
    /// interval. Agents send their own snapshots point-to-point
    /// ([`ControlRequest::Interval`]) to the coordinator and to observers
    /// that subscribed; this is what everyone else hears (a progress line,
    /// and that the coordinator is alive).
    Pulse {
        /// The run.
        run: RunId,
        /// The merged interval, summed up.
        pulse: Pulse,
        /// How many agents' snapshots it holds.
        agents: u32,
    },
    /// On [`RUN_TOPIC`]: something happened to a run.
    Run {
        /// The run.
        run: RunId,
        /// What.
        event: RunEvent,
    },
    /// On [`HEALTH_TOPIC`], every other period: what changes (state, load,
    /// clock). A receiver that lacks the beat's revision asks the peer that
    /// relayed it for the full health ([`ControlRequest::Health`]).
    Beat(NodeBeat),
}

/// Run events, published by the coordinator (or the node taking over).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RunEvent {
    /// Every participant accepted the plan; load starts at its start time.
    Planned(RunPlan),
    /// The coordinator stopped the run early (`reason`).
    Stopping {
        /// Why.
        reason: String,
    },
    /// An agent went silent; the run goes on without it.
    AgentLost {
        /// The agent.
        node: NodeId,
        /// When it was last heard, Unix ms.
        last_heard_ms: u64,
    },
    /// Another node took over coordination.
    CoordinatorChanged {
        /// The new coordinator.
        node: NodeId,
    },
    /// Results are written; `summary` is the merged summary.
    Finished {
        /// The merged summary.
        summary: Box<RunSummary>,
    },
    /// An agent's load ended; its results are ready to fetch.
    AgentFinished {
        /// The agent.
        node: NodeId,
        /// Interval snapshots it recorded (indices `0..intervals`).
        intervals: u32,
        /// When it actually started, Unix ms on the coordinator's clock.
        started_at_ms: u64,
        /// Its clock offset to the coordinator, µs (coordinator − agent).
        clock_offset_us: i64,
        /// Why it stopped early, if it did.
        stop_reason: Option<String>,
        /// How long it generated load, ms.
        load_ms: u64,
        /// Bytes it sent on the mesh (gossip published: health, events;
        /// requests: its live intervals, its part of the run's set-up) from
        /// its start to its end: the mesh's cost of one agent.
        mesh_bytes: u64,
    },
    /// A lost agent's share (and any it had taken over) moved to the live
    /// agents (`--rebalance`).
    Rebalanced {
        /// The lost agent.
        lost: NodeId,
        /// When the live agents take the shares over, Unix ms on the
        /// coordinator's clock.
        from_ms: u64,
        /// Who takes what.
        shares: Vec<MovedShare>,
    },
}

/// A share of the global schedule (`offset, offset + stride, ...`) moved to
/// `node` by a [`RunEvent::Rebalanced`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovedShare {
    /// The agent taking it.
    pub node: NodeId,
    /// First global index of the share.
    pub offset: u64,
    /// Distance between its indices.
    pub stride: u64,
}

/// A file of a scenario bundle, content-addressed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleFile {
    /// Path relative to the scenario file's directory (`data/users.csv`);
    /// the scenario file itself is the first entry.
    pub path: String,
    /// SHA-256 of the contents, lowercase hex.
    pub sha256: String,
    /// Size, bytes.
    pub size: u64,
}

/// Which agents a run wants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentSelection {
    /// Every idle node.
    All,
    /// This many idle nodes.
    Count(u32),
    /// Idle nodes carrying every one of these labels.
    Labels(BTreeMap<String, String>),
}

/// A request to run a scenario across the cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    /// The bundle's files (the scenario first).
    pub files: Vec<BundleFile>,
    /// Their contents, in the same order (verified against `files`).
    pub contents: Vec<Vec<u8>>,
    /// `--target` override.
    pub target: Option<String>,
    /// `--duration` override, ms.
    pub duration_ms: Option<u64>,
    /// Which agents.
    pub selection: AgentSelection,
    /// Move a lost agent's share to the live agents.
    pub rebalance: bool,
    /// The operator's signed order to run exactly this ([`Order::Run`]);
    /// nodes with an operators list refuse a request without one.
    pub mandate: Option<Mandate>,
}

/// What an operator orders.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Order {
    /// Run the request whose digest this is (SHA-256, hex, of its files and
    /// overrides: what every agent can recompute from the plan).
    Run {
        /// The digest.
        digest: String,
    },
    /// Stop this run.
    Stop {
        /// The run.
        run: RunId,
    },
}

/// An operator's signed order: who (a peer id, whose ed25519 public key is
/// inside it), what, and when. Nodes with an operators list act on a run
/// or a stop only with a mandate of one of their operators, checked where
/// the work happens (the coordinator and every agent), so a peer that only
/// holds the cluster key can watch but not act, even through a node of its
/// own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mandate {
    /// The operator's peer id (`bfgg id`).
    pub operator: NodeId,
    /// What it orders.
    pub order: Order,
    /// When it signed, Unix ms on its clock (old mandates are refused).
    pub signed_at_ms: u64,
    /// Ed25519 signature of [`Mandate::signed_bytes`].
    pub signature: Vec<u8>,
}

impl Mandate {
    /// The bytes an operator signs: a domain tag, the order and the time, so
    /// that a signature cannot be taken for another order or another use of
    /// the key.
    pub fn signed_bytes(order: &Order, signed_at_ms: u64) -> Vec<u8> {
        let mut out = b"bfgg mandate v1\0".to_vec();
        match order {
            Order::Run { digest } => {
                out.extend_from_slice(b"run\0");
                out.extend_from_slice(digest.as_bytes());
            }
            Order::Stop { run } => {
                out.extend_from_slice(b"stop\0");
                out.extend_from_slice(run.0.as_bytes());
            }
        }
        out.push(0);
        out.extend_from_slice(&signed_at_ms.to_be_bytes());
        out
    }
}

/// One agent of a plan and its share of the load.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// The agent.
    pub node: NodeId,
    /// Its name, for reports.
    pub name: String,
    /// Its share: global arrival/user indices `i` with `i % stride == index`.
    pub index: u32,
}

/// The replicated plan of a run: every participant holds a copy, so any of
/// them can take over coordination.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunPlan {
    /// The run.
    pub run: RunId,
    /// Who coordinates it (at planning time).
    pub coordinator: NodeId,
    /// The agents, in share order; `stride` = their number.
    pub participants: Vec<Participant>,
    /// When load starts, Unix ms on the coordinator's clock.
    pub start_at_ms: u64,
    /// The bundle (content-addressed; agents fetch files they lack).
    pub files: Vec<BundleFile>,
    /// `--target` override.
    pub target: Option<String>,
    /// `--duration` override, ms.
    pub duration_ms: Option<u64>,
    /// Whether lost agents' shares move to live ones.
    pub rebalance: bool,
    /// The scenario's duration plus its graceful stop, ms: every agent is
    /// done by `start_at_ms + load_ms` unless it is lost.
    pub load_ms: u64,
    /// The commit the coordinator resolved the scenario's `[source] rev`
    /// to: every agent checks out this one.
    pub source_commit: Option<String>,
    /// The operator's order to run this, as submitted: agents with an
    /// operators list check it themselves before they prepare. (Boxed: a
    /// plan travels inside run events, kept small.)
    pub mandate: Option<Box<Mandate>>,
}

/// Which interval log of a run a [`ControlRequest::FetchLog`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogKind {
    /// An agent's own measurements, exact, kept until the results are
    /// confirmed.
    Own,
    /// The coordinator's merged intervals of a finished run (part of its
    /// results).
    Merged,
    /// The coordinator's `agents.csv` of a finished run (each agent's
    /// per-second curve); its pages hold whole lines, not frames.
    Agents,
}

/// Point-to-point asks. Each gets exactly one [`ControlResponse`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ControlRequest {
    /// Client → any node: coordinate this run.
    Submit(RunRequest),
    /// Coordinator → agent: take part in this run.
    Prepare(RunPlan),
    /// Agent → coordinator: a bundle file by hash.
    FetchFile {
        /// SHA-256, hex.
        sha256: String,
    },
    /// Anyone → coordinator or agent: stop the run now.
    Stop {
        /// The run.
        run: RunId,
        /// The operator's order ([`Order::Stop`]), passed on with the stop;
        /// needed where a node has an operators list, unless the stop comes
        /// from the run's coordinator.
        mandate: Option<Mandate>,
    },
    /// Coordinator → agent (its own log) or client → coordinator (the merged
    /// log): a page of an interval log, from byte `offset` on. A page costs
    /// its own size to serve; follow `next_offset` until `complete`.
    FetchLog {
        /// The run.
        run: RunId,
        /// Which log.
        log: LogKind,
        /// Where the page starts: 0, then the previous page's `next_offset`.
        offset: u64,
        /// At most this many intervals (the node may send fewer: its page
        /// size, a byte limit).
        max: u32,
    },
    /// Coordinator → agent: results are safely written; the agent may delete
    /// its copy.
    ConfirmResults {
        /// The run.
        run: RunId,
    },
    /// Clock sync: the asker's wall clock, Unix µs.
    Clock {
        /// When the asker sent it.
        sent_us: u64,
    },
    /// Anyone → coordinator: where is this run?
    Status {
        /// The run.
        run: RunId,
    },
    /// Coordinator → agent (after every agent prepared): start at this time,
    /// Unix ms on the coordinator's clock.
    Start {
        /// The run.
        run: RunId,
        /// Start time.
        start_at_ms: u64,
    },
    /// Agent → coordinator and subscribed observers: the sender's own
    /// snapshot of one interval of a run (live precision; the exact one is
    /// in its log). Answered `Done`.
    Interval {
        /// The run.
        run: RunId,
        /// The sender's measurements.
        snapshot: IntervalSnapshot,
    },
    /// Observer → coordinator: the run's plan, please (answered `Plan`);
    /// observer → agent: send me your intervals of the run too (answered
    /// `Done`, or `Rejected` when the agent has enough subscribers).
    Subscribe {
        /// The run.
        run: RunId,
    },
    /// Agent → coordinator: a run event that must arrive (its
    /// `AgentFinished`; gossip may drop it under load). Answered `Done`.
    Report {
        /// The run.
        run: RunId,
        /// What happened.
        event: RunEvent,
    },
    /// Anyone → a node: every node you know, with its last health (a light
    /// peer's view of a large cluster at once, without waiting for every
    /// node's next health message). Answered `Nodes`.
    Nodes,
    /// Anyone → a node: may this operator act here? Answered `Rights`.
    Rights {
        /// The asker's operator id (`bfgg id`).
        operator: NodeId,
    },
    /// Anyone → a node: the full health of `node` as you know it (the asker
    /// heard a [`Gossip::Beat`] of a revision it lacks, relayed by the
    /// asked node). Answered `Health`, or `Rejected` when it knows none.
    Health {
        /// Whose (the asked node's own included).
        node: NodeId,
    },
}

/// Answers to [`ControlRequest`]s.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ControlResponse {
    /// `Submit`: accepted; `coordinator` runs it.
    Accepted {
        /// The run.
        run: RunId,
        /// Its coordinator.
        coordinator: NodeId,
        /// The plan.
        plan: RunPlan,
    },
    /// The request cannot be served (reason for people).
    Rejected {
        /// Why.
        reason: String,
    },
    /// `Prepare`: this node already takes part in another run.
    Busy {
        /// That run.
        run: RunId,
    },
    /// `Prepare`: ready; will start at the plan's start time.
    Prepared {
        /// Measured clock offset to the coordinator, µs (theirs − ours).
        clock_offset_us: i64,
    },
    /// `FetchFile`.
    File {
        /// The contents.
        contents: Vec<u8>,
    },
    /// `Stop`, `ConfirmResults`: done.
    Done,
    /// `FetchLog`: a page of whole frames of the log, as stored:
    /// `u32 big-endian length ++ encode(IntervalSnapshot)` each, in interval
    /// order. The receiver decodes them like any network input.
    LogPage {
        /// Whole frames (whole lines for [`LogKind::Agents`]).
        frames: Vec<u8>,
        /// Offset of the next page.
        next_offset: u64,
        /// True when this page reaches the end of the log and the source has
        /// finished writing it: nothing follows.
        complete: bool,
    },
    /// `Clock`: the answerer's wall clock when it received the ask, Unix µs.
    Clock {
        /// Echo of the ask's `sent_us`.
        sent_us: u64,
        /// The answerer's clock.
        now_us: u64,
    },
    /// `Status`.
    Status {
        /// Still running, or finished with a summary.
        finished: Option<Box<RunSummary>>,
        /// The coordinator now.
        coordinator: NodeId,
    },
    /// `Subscribe` to a coordinator: the run's plan as it stands.
    Plan(RunPlan),
    /// `Nodes`: the answering node's view of the cluster.
    Nodes {
        /// Every node it knows (itself included).
        nodes: Vec<KnownNode>,
    },
    /// `Rights`.
    Rights {
        /// False when the node has no operators list (anyone holding the
        /// cluster key may act).
        enforced: bool,
        /// True when the asked operator may start and stop runs here.
        operator: bool,
    },
    /// `Health`: the node's full health as the answering node last heard it.
    Health(Box<NodeHealth>),
}

/// A node as another node knows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KnownNode {
    /// Its last health message.
    pub health: NodeHealth,
    /// How long ago the answering node last heard from it, ms.
    pub silent_ms: u64,
}

#[cfg(test)]
mod tests;
