//! The swarm actor: the only module in bfgg that imports libp2p.
//!
//! [`spawn`] starts one task that owns the libp2p `Swarm` and returns a
//! cloneable [`NetHandle`] (commands in) and a bounded receiver of
//! [`NetEvent`]s (facts out), both in protocol types only (`NodeId`, `Gossip`,
//! `ControlRequest`), so no other module depends on libp2p. Nothing else holds
//! the swarm, so nothing locks it. Pattern: rust-libp2p
//! `examples/file-sharing/src/network.rs`; transport as in
//! `examples/ipfs-private` (see ../shared/NOTES.md, "libp2p").
//!
//! * `key`: the cluster's pre-shared key ([`ClusterKey`]).
//! * `identity`: the node's persisted ed25519 identity.
//! * `behaviour`: the transport and the composed behaviour.
//! * `codec`: length-prefixed control frames.
//! * `handle`: [`NetHandle`], [`Reply`], the counters.
//! * `event_loop`: the task that owns the swarm.

mod behaviour;
mod codec;
mod event_loop;
mod handle;
mod health_book;
mod identity;
mod key;
mod operator;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bfgg_protocol::mesh::{ControlRequest, Gossip, HEALTH_TOPIC, RUN_TOPIC};
use bfgg_protocol::{NodeId, PROTOCOL_VERSION};
use libp2p::Multiaddr;
use libp2p::gossipsub::IdentTopic;
use tokio::sync::mpsc;

pub use handle::{NetHandle, NetStatsSnapshot, Reply};
pub use key::{CLUSTER_KEY_FILE, ClusterKey, KeyError, KeySource};
pub use operator::{OperatorKey, parse_peer_id, verify_mandate};

use event_loop::{EventLoop, Join};
use handle::NetStats;

/// Capacity of the command channel shared by all handles.
const COMMAND_CAPACITY: usize = 64;
/// Capacity of the event channel. Gossip beyond it is dropped and counted.
const EVENT_CAPACITY: usize = 1024;
/// Extra time a [`NetHandle::request`] waits beyond the request timeout
/// (dialing a disconnected peer comes first).
const DIAL_ALLOWANCE: Duration = Duration::from_secs(30);

/// How long a request that waits for agents to prepare a run may take
/// (libp2p's own timeout is this long for every request; the handle holds
/// the others to `request_timeout`).
pub const PREPARE_TIMEOUT: Duration = Duration::from_secs(900);

/// How to run the network side of a node.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// The ed25519 keypair (libp2p protobuf encoding); created (mode 0600) if
    /// missing, so the node id is stable across restarts.
    pub identity_file: PathBuf,
    /// The cluster's pre-shared key: peers with another key never connect.
    pub cluster_key: ClusterKey,
    /// Multiaddrs to listen on, e.g. `/ip4/0.0.0.0/tcp/0` (nodes) or
    /// `/ip4/127.0.0.1/tcp/0` (tests).
    pub listen: Vec<String>,
    /// Multiaddrs (`/ip4`, `/ip6`, `/dns4`, `/dns6`, with or without
    /// `/p2p/<id>`) dialed at start and re-dialed with backoff (1 s doubling
    /// to 30 s) whenever their peer is not connected.
    pub join: Vec<String>,
    /// Discovery on the LAN by mDNS (which skips loopback interfaces).
    pub mdns: bool,
    /// How often mDNS queries (libp2p's 5 min default is far too slow).
    pub mdns_query_interval: Duration,
    /// How long a connection with no open stream is kept.
    pub idle_connection_timeout: Duration,
    /// How long a control request may take to be answered; requests that
    /// wait for agents to prepare a run (`Submit`, `Prepare`: a Gatling
    /// project's first Maven build, a repository's first fetch) get
    /// [`PREPARE_TIMEOUT`] instead.
    pub request_timeout: Duration,
    /// The protocol version announced by libp2p identify; peers announcing
    /// another are reported as [`NetEvent::Incompatible`]. Always
    /// [`identify_protocol`] outside tests, which set another to start a peer
    /// of another version.
    pub(crate) identify_protocol: String,
}

/// The protocol version a node announces by libp2p identify:
/// `/bfgg/{PROTOCOL_VERSION}`.
pub(crate) fn identify_protocol() -> String {
    format!("/bfgg/{PROTOCOL_VERSION}")
}

impl NetConfig {
    /// The defaults of a node: listen on `/ip4/0.0.0.0/tcp/0`, no `join`,
    /// mDNS on with a 2 s query interval, 120 s idle connection timeout,
    /// 30 s request timeout.
    pub fn new(identity_file: PathBuf, cluster_key: ClusterKey) -> NetConfig {
        NetConfig {
            identity_file,
            cluster_key,
            listen: vec!["/ip4/0.0.0.0/tcp/0".into()],
            join: Vec::new(),
            mdns: true,
            mdns_query_interval: Duration::from_secs(2),
            idle_connection_timeout: Duration::from_secs(120),
            request_timeout: Duration::from_secs(30),
            identify_protocol: identify_protocol(),
        }
    }
}

/// Facts about the network, in protocol types only.
#[derive(Debug)]
pub enum NetEvent {
    /// A listen address is up: the full multiaddr with `/p2p/<local id>`.
    Listening {
        /// E.g. `/ip4/127.0.0.1/tcp/40123/p2p/12D3KooW…`.
        addr: String,
    },
    /// The first connection to a peer is up.
    PeerConnected(NodeId),
    /// The last connection to a peer closed.
    PeerDisconnected(NodeId),
    /// A valid gossip message. `from` is its signed author (not the peer that
    /// relayed it). Dropped and counted in `events_lost` if the consumer is
    /// behind.
    Gossip {
        /// The author.
        from: NodeId,
        /// The message.
        msg: Gossip,
    },
    /// A peer asks something. Answer exactly once through `reply`; the
    /// request times out on the asker's side after its request timeout.
    Request {
        /// The asker.
        from: NodeId,
        /// The request.
        req: ControlRequest,
        /// Where the answer goes.
        reply: Reply,
    },
    /// A peer announces another protocol version (libp2p identify): it cannot
    /// understand our messages nor we its, so it must be shown as such and
    /// never given work. Its addresses are not remembered, and requests to it
    /// fail. Sent on each identification (every new connection).
    Incompatible {
        /// The peer.
        peer: NodeId,
        /// The protocol version it announces, e.g. `/bfgg/2`.
        protocol: String,
        /// Its agent version, e.g. `bfgg/0.3.0`.
        agent: String,
    },
    /// A malformed, oversized or wrong-version message was dropped (and
    /// counted in [`NetStatsSnapshot::dropped`]).
    Dropped {
        /// The sender, when known.
        from: Option<NodeId>,
        /// What was wrong, for logs.
        reason: String,
    },
}

/// Why a network operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The event loop has stopped.
    #[error("the network event loop has stopped")]
    Closed,
    /// No answer in time.
    #[error("request timed out")]
    Timeout,
    /// No peer subscribes to the topic yet (normal for a few seconds after
    /// connecting): retry later.
    #[error("no peer subscribed to the topic yet")]
    NoPeers,
    /// Not a peer id, or a peer that is neither connected nor has a known
    /// address.
    #[error("unknown peer {0}")]
    UnknownPeer(NodeId),
    /// The peer announced another protocol version: nothing is sent to it.
    #[error("{0} speaks another protocol version")]
    Incompatible(NodeId),
    /// A dial failed (unreachable, wrong peer id, another cluster key, …).
    #[error("dial failed: {0}")]
    Dial(String),
    /// A request failed after it was sent, or the peer did not answer.
    #[error("request failed: {0}")]
    Request(String),
    /// The message could not be encoded or is too large.
    #[error("cannot encode message: {0}")]
    Encode(String),
}

/// Starts the network: loads (or creates) the identity, builds the swarm,
/// subscribes to `HEALTH_TOPIC` and `RUN_TOPIC`, binds the listen addresses
/// (so a busy port fails here) and spawns the event loop, which dials the
/// `join` addresses at once.
///
/// Must be called inside a tokio runtime. The loop runs until every
/// [`NetHandle`] is dropped. Read the receiver promptly: connection and
/// request events wait for room in it (gossip is dropped instead), so do not
/// await a [`NetHandle`] call in the same task that should drain it.
pub fn spawn(config: NetConfig) -> anyhow::Result<(NetHandle, mpsc::Receiver<NetEvent>)> {
    let runtime = tokio::runtime::Handle::try_current()
        .context("the network must be started inside a tokio runtime")?;
    let _guard = runtime.enter();

    let keypair = identity::load_or_create(&config.identity_file)?;
    let local_id = NodeId(keypair.public().to_peer_id().to_base58());
    let mut swarm = behaviour::build_swarm(keypair, &config)?;

    for topic in [HEALTH_TOPIC, RUN_TOPIC] {
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(&IdentTopic::new(topic))
            .map_err(|e| anyhow::anyhow!("cannot subscribe to {topic}: {e:?}"))?;
    }
    for addr in &config.listen {
        let ma: Multiaddr = addr
            .parse()
            .with_context(|| format!("{addr:?} is not a multiaddr"))?;
        swarm
            .listen_on(ma)
            .with_context(|| format!("cannot listen on {addr}"))?;
    }
    let mut joins = Vec::with_capacity(config.join.len());
    for addr in &config.join {
        let ma: Multiaddr = addr
            .parse()
            .with_context(|| format!("--join {addr:?} is not a multiaddr"))?;
        joins.push(Join::new(ma));
    }

    let (commands, command_rx) = mpsc::channel(COMMAND_CAPACITY);
    let (event_tx, events) = mpsc::channel(EVENT_CAPACITY);
    let stats = Arc::new(NetStats::default());
    let event_loop = EventLoop::new(
        swarm,
        command_rx,
        event_tx,
        stats.clone(),
        joins,
        config.identify_protocol.clone(),
    );
    runtime.spawn(event_loop.run());

    let handle = NetHandle {
        commands,
        stats,
        local_id,
        request_deadline: config.request_timeout + DIAL_ALLOWANCE,
        prepare_deadline: config.request_timeout.max(PREPARE_TIMEOUT) + DIAL_ALLOWANCE,
    };
    Ok((handle, events))
}

#[cfg(test)]
mod tests;
