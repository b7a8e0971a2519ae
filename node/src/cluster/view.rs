//! What this node knows of the cluster: every node heard on the health topic,
//! when it was last heard, and its clock offset estimate; and, apart, every
//! peer that announced another protocol version (shown, never given work).
//! Pure state updated by the node's event loop; liveness is a function of
//! "now", passed in.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bfgg_protocol::NodeId;
use bfgg_protocol::mesh::{NodeHealth, NodeState};

/// How a peer looks from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Liveness {
    /// Heard within the unresponsive threshold.
    Alive,
    /// Not heard for a while (default 5 s).
    Unresponsive,
    /// Not heard for long (default 15 s): its share of a run is lost.
    Dead,
}

impl Liveness {
    /// Lowercase name for tables and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Liveness::Alive => "alive",
            Liveness::Unresponsive => "unresponsive",
            Liveness::Dead => "dead",
        }
    }
}

/// Thresholds of [`Liveness`].
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Unheard this long: unresponsive.
    pub unresponsive: Duration,
    /// Unheard this long: dead.
    pub dead: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            unresponsive: Duration::from_secs(5),
            dead: Duration::from_secs(15),
        }
    }
}

/// One peer as last heard.
#[derive(Debug, Clone)]
pub struct PeerView {
    /// Its last health message.
    pub health: NodeHealth,
    /// When we received it.
    pub last_heard: Instant,
    /// Our wall clock minus its wall clock when it sent, ms (includes the
    /// one-way delay: a rough estimate; runs measure offsets properly).
    pub clock_offset_ms: i64,
}

/// A peer that announced another protocol version (libp2p identify). Its
/// health gossip cannot reach us (other topic, other envelope), so this is
/// all we know of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncompatiblePeer {
    /// Its id.
    pub node: NodeId,
    /// The protocol version it announces, e.g. `/bfgg/2`.
    pub protocol: String,
    /// Its agent version, e.g. `bfgg/0.3.0`.
    pub agent: String,
    /// When it was last identified.
    pub last_heard: Instant,
}

/// Every node heard so far, by id, and apart the incompatible ones.
#[derive(Debug, Default, Clone)]
pub struct ClusterView {
    peers: BTreeMap<NodeId, PeerView>,
    incompatible: BTreeMap<NodeId, IncompatiblePeer>,
}

impl ClusterView {
    /// Records a health message received at `now` (wall clock `now_ms`),
    /// unless its node is known to be incompatible (until it reconnects:
    /// see [`ClusterView::reconnected`]).
    pub fn heard(&mut self, health: NodeHealth, now: Instant, now_ms: u64) {
        if self.incompatible.contains_key(&health.node) {
            return;
        }
        let clock_offset_ms = now_ms as i64 - health.sent_at_ms as i64;
        self.peers.insert(
            health.node.clone(),
            PeerView {
                health,
                last_heard: now,
                clock_offset_ms,
            },
        );
    }

    /// Records that `node` announced another protocol version at `now`: it
    /// leaves the compatible peers (so it is never an agent) and is listed by
    /// [`ClusterView::incompatible`].
    pub fn heard_incompatible(
        &mut self,
        node: NodeId,
        protocol: String,
        agent: String,
        now: Instant,
    ) {
        self.peers.remove(&node);
        self.incompatible.insert(
            node.clone(),
            IncompatiblePeer {
                node,
                protocol,
                agent,
                last_heard: now,
            },
        );
    }

    /// A new connection to `node` is up: forget that it was incompatible (it
    /// may have been upgraded); its identification on that connection tells
    /// again if it still is.
    pub fn reconnected(&mut self, node: &NodeId) {
        self.incompatible.remove(node);
    }

    /// Every peer that announced another protocol version, by id.
    pub fn incompatible(&self) -> impl Iterator<Item = &IncompatiblePeer> {
        self.incompatible.values()
    }

    /// A peer by id.
    pub fn get(&self, id: &NodeId) -> Option<&PeerView> {
        self.peers.get(id)
    }

    /// Every peer, by id.
    pub fn peers(&self) -> impl Iterator<Item = &PeerView> {
        self.peers.values()
    }

    /// Records what another node knows of a node, `silent` ago, unless this
    /// view heard from it more recently.
    pub fn heard_via(&mut self, health: NodeHealth, silent: Duration, now: Instant, now_ms: u64) {
        if self.incompatible.contains_key(&health.node) {
            return;
        }
        let at = now.checked_sub(silent).unwrap_or(now);
        if self
            .peers
            .get(&health.node)
            .is_some_and(|p| p.last_heard >= at)
        {
            return;
        }
        let heard_ms = now_ms.saturating_sub(silent.as_millis() as u64);
        let clock_offset_ms = heard_ms as i64 - health.sent_at_ms as i64;
        self.peers.insert(
            health.node.clone(),
            PeerView {
                health,
                last_heard: at,
                clock_offset_ms,
            },
        );
    }

    /// `node` was heard from otherwise than by its health (a run's traffic:
    /// an agent's interval, a coordinator's merged interval or event).
    pub fn touch(&mut self, node: &NodeId, now: Instant) {
        if let Some(p) = self.peers.get_mut(node) {
            p.last_heard = p.last_heard.max(now);
        }
    }

    /// How many nodes this view knows (itself included once it heard its
    /// own health).
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether it knows none.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// How `id` looks at `now`; unknown peers are dead. A node that
    /// announces a health period longer than 1 s (a large cluster) gets
    /// thresholds of at least 2 (unresponsive) and 3 (dead) periods.
    pub fn liveness(&self, id: &NodeId, now: Instant, t: &Timeouts) -> Liveness {
        match self.peers.get(id) {
            None => Liveness::Dead,
            Some(p) => {
                let silent = now.saturating_duration_since(p.last_heard);
                let period = Duration::from_millis(u64::from(p.health.period_ms));
                if silent >= t.dead.max(period * 3) {
                    Liveness::Dead
                } else if silent >= t.unresponsive.max(period * 2) {
                    Liveness::Unresponsive
                } else {
                    Liveness::Alive
                }
            }
        }
    }

    /// Alive, idle nodes that speak our protocol and have `engine`, by id.
    /// Never an incompatible peer.
    pub fn idle_agents(&self, engine: &str, now: Instant, t: &Timeouts) -> Vec<&PeerView> {
        self.idle_nodes(now, t)
            .filter(|p| p.health.engines.iter().any(|e| e.name == engine))
            .collect()
    }

    /// Alive, idle nodes that speak our protocol but lack `engine` (to name
    /// them when a run cannot get the agents it wants).
    pub fn idle_without(&self, engine: &str, now: Instant, t: &Timeouts) -> Vec<&PeerView> {
        self.idle_nodes(now, t)
            .filter(|p| !p.health.engines.iter().any(|e| e.name == engine))
            .collect()
    }

    fn idle_nodes(&self, now: Instant, t: &Timeouts) -> impl Iterator<Item = &PeerView> {
        self.peers
            .values()
            .filter(|p| !self.incompatible.contains_key(&p.health.node))
            .filter(move |p| self.liveness(&p.health.node, now, t) == Liveness::Alive)
            .filter(|p| p.health.state == NodeState::Idle)
            .filter(|p| p.health.protocol_version == bfgg_protocol::PROTOCOL_VERSION)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(id: &str, state: NodeState, version: u16) -> NodeHealth {
        NodeHealth {
            state,
            protocol_version: version,
            listen_addrs: vec![],
            ..crate::fixtures::health(id)
        }
    }

    #[test]
    fn liveness_follows_silence() {
        let t0 = Instant::now();
        let mut v = ClusterView::default();
        v.heard(
            health("a", NodeState::Idle, bfgg_protocol::PROTOCOL_VERSION),
            t0,
            1_250,
        );
        let id = NodeId("a".into());
        let t = Timeouts::default();
        assert_eq!(v.get(&id).map(|p| p.clock_offset_ms), Some(250));
        assert_eq!(
            v.liveness(&id, t0 + Duration::from_secs(4), &t),
            Liveness::Alive
        );
        assert_eq!(
            v.liveness(&id, t0 + Duration::from_secs(5), &t),
            Liveness::Unresponsive
        );
        assert_eq!(
            v.liveness(&id, t0 + Duration::from_secs(15), &t),
            Liveness::Dead
        );
        assert_eq!(v.liveness(&NodeId("zz".into()), t0, &t), Liveness::Dead);
    }

    #[test]
    fn a_slower_announced_health_period_stretches_the_thresholds_and_run_traffic_counts() {
        let t0 = Instant::now();
        let mut v = ClusterView::default();
        let mut h = health("a", NodeState::Idle, bfgg_protocol::PROTOCOL_VERSION);
        h.period_ms = 10_000; // a node of a 100-node cluster
        v.heard(h, t0, 1_000);
        let id = NodeId("a".into());
        let t = Timeouts::default();
        let at = |s| t0 + Duration::from_secs(s);
        assert_eq!(v.liveness(&id, at(19), &t), Liveness::Alive);
        assert_eq!(v.liveness(&id, at(20), &t), Liveness::Unresponsive);
        assert_eq!(v.liveness(&id, at(29), &t), Liveness::Unresponsive);
        assert_eq!(v.liveness(&id, at(30), &t), Liveness::Dead);
        // Its interval to its coordinator is news of it too.
        v.touch(&id, at(25));
        assert_eq!(v.liveness(&id, at(44), &t), Liveness::Alive);
        v.touch(&NodeId("unknown".into()), at(25));
        assert_eq!(v.len(), 1, "a touch adds nobody");
    }

    #[test]
    fn what_another_node_knows_fills_the_view_unless_it_is_older() {
        let t0 = Instant::now() + Duration::from_secs(60);
        let mut v = ClusterView::default();
        let id = NodeId("a".into());
        let h = health("a", NodeState::Idle, bfgg_protocol::PROTOCOL_VERSION);
        v.heard_via(h.clone(), Duration::from_secs(4), t0, 10_000);
        let p = v.get(&id).expect("known");
        assert_eq!(p.last_heard, t0 - Duration::from_secs(4));
        assert_eq!(p.clock_offset_ms, 6_000 - 1_000);
        let t = Timeouts::default();
        assert_eq!(v.liveness(&id, t0, &t), Liveness::Alive);
        assert_eq!(
            v.liveness(&id, t0 + Duration::from_secs(1), &t),
            Liveness::Unresponsive,
            "silent 5 s by then"
        );
        // Heard directly since: an older report does not replace it.
        v.heard(h.clone(), t0, 10_000);
        v.heard_via(h, Duration::from_secs(9), t0, 10_000);
        assert_eq!(v.get(&id).map(|p| p.last_heard), Some(t0));
    }

    #[test]
    fn only_alive_idle_compatible_nodes_are_agents() {
        let t0 = Instant::now();
        let mut v = ClusterView::default();
        let p = bfgg_protocol::PROTOCOL_VERSION;
        v.heard(health("idle", NodeState::Idle, p), t0, 0);
        v.heard(
            health(
                "busy",
                NodeState::Running(bfgg_protocol::RunId("r".into())),
                p,
            ),
            t0,
            0,
        );
        v.heard(health("old", NodeState::Idle, p + 1), t0, 0);
        v.heard(
            health("silent", NodeState::Idle, p),
            t0 - Duration::from_secs(30),
            0,
        );
        let agents: Vec<&str> = v
            .idle_agents("native", t0, &Timeouts::default())
            .iter()
            .map(|p| p.health.node.0.as_str())
            .collect();
        assert_eq!(agents, vec!["idle"]);
        assert!(
            v.idle_agents("gatling", t0, &Timeouts::default())
                .is_empty()
        );
    }

    #[test]
    fn incompatible_peers_are_listed_and_never_agents() {
        let t0 = Instant::now();
        let mut v = ClusterView::default();
        let p = bfgg_protocol::PROTOCOL_VERSION;
        v.heard(health("a", NodeState::Idle, p), t0, 0);
        v.heard(health("b", NodeState::Idle, p), t0, 0);
        // B identifies with another protocol version: it leaves the
        // compatible peers, and its health (had it reached us) is ignored.
        v.heard_incompatible(
            NodeId("b".into()),
            "/bfgg/999".into(),
            "bfgg/9.9.9".into(),
            t0,
        );
        v.heard_incompatible(
            NodeId("c".into()),
            "/bfgg/999".into(),
            "bfgg/9.9.9".into(),
            t0,
        );
        v.heard(health("b", NodeState::Idle, p), t0, 0);
        v.heard(health("c", NodeState::Idle, p), t0, 0);

        let listed: Vec<(&str, &str, &str)> = v
            .incompatible()
            .map(|i| (i.node.0.as_str(), i.protocol.as_str(), i.agent.as_str()))
            .collect();
        assert_eq!(
            listed,
            vec![
                ("b", "/bfgg/999", "bfgg/9.9.9"),
                ("c", "/bfgg/999", "bfgg/9.9.9")
            ]
        );
        let compatible: Vec<&str> = v.peers().map(|p| p.health.node.0.as_str()).collect();
        assert_eq!(compatible, vec!["a"]);
        let agents: Vec<&str> = v
            .idle_agents("native", t0, &Timeouts::default())
            .iter()
            .map(|p| p.health.node.0.as_str())
            .collect();
        assert_eq!(agents, vec!["a"]);

        // Reconnected (say, upgraded): its health counts again.
        v.reconnected(&NodeId("b".into()));
        v.heard(health("b", NodeState::Idle, p), t0, 0);
        assert_eq!(v.incompatible().count(), 1);
        assert_eq!(v.idle_agents("native", t0, &Timeouts::default()).len(), 2);
    }
}
