//! The caller's side of the swarm actor: [`NetHandle`] turns method calls into
//! [`Command`]s on a bounded channel and waits for their oneshot replies;
//! [`Reply`] answers an inbound control request; [`NetStats`] are the
//! lock-free counters the event loop bumps and anyone may read.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bfgg_protocol::NodeId;
use bfgg_protocol::mesh::{
    ControlRequest, ControlResponse, Gossip, MAX_CONTROL_BYTES, MAX_GOSSIP_BYTES,
};
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};

use super::NetError;

/// What a [`NetHandle`] asks of the event loop. Every command carries the
/// oneshot its answer goes back on; if the caller gave up (dropped the
/// receiver), the loop discards the answer.
#[derive(Debug)]
pub(crate) enum Command {
    /// Publish already-encoded bytes on a gossipsub topic.
    Publish {
        topic: String,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    /// Send a control request frame body to a peer and wait for its answer.
    Request {
        to: PeerId,
        node: NodeId,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<ControlResponse, NetError>>,
    },
    /// The peers with at least one connection.
    ConnectedPeers { reply: oneshot::Sender<Vec<NodeId>> },
    /// Dial an address; answered when the connection is up or has failed.
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
}

/// Counters kept by the event loop (relaxed atomics: they are statistics).
#[derive(Debug, Default)]
pub(crate) struct NetStats {
    pub(crate) dropped: AtomicU64,
    pub(crate) events_lost: AtomicU64,
    pub(crate) gossip_in: AtomicU64,
    pub(crate) gossip_in_bytes: AtomicU64,
    pub(crate) gossip_out: AtomicU64,
    pub(crate) gossip_out_bytes: AtomicU64,
    pub(crate) requests_out: AtomicU64,
    pub(crate) requests_out_bytes: AtomicU64,
}

impl NetStats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn snapshot(&self) -> NetStatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        NetStatsSnapshot {
            dropped: get(&self.dropped),
            events_lost: get(&self.events_lost),
            gossip_in: get(&self.gossip_in),
            gossip_in_bytes: get(&self.gossip_in_bytes),
            gossip_out: get(&self.gossip_out),
            gossip_out_bytes: get(&self.gossip_out_bytes),
            requests_out: get(&self.requests_out),
            requests_out_bytes: get(&self.requests_out_bytes),
        }
    }
}

/// A copy of the network counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStatsSnapshot {
    /// Malformed, oversized or wrong-version messages dropped (gossip
    /// rejected by validation, control frames that did not decode). This is
    /// `NodeHealth::dropped_messages`.
    pub dropped: u64,
    /// Gossip (and `Dropped`) events not delivered because the consumer of
    /// the event channel was behind.
    pub events_lost: u64,
    /// Valid gossip messages received.
    pub gossip_in: u64,
    /// Their payload bytes.
    pub gossip_in_bytes: u64,
    /// Gossip messages published.
    pub gossip_out: u64,
    /// Their payload bytes.
    pub gossip_out_bytes: u64,
    /// Control requests sent.
    pub requests_out: u64,
    /// Their encoded bytes.
    pub requests_out_bytes: u64,
}

impl NetStatsSnapshot {
    /// Everything this node sent on the mesh (gossip published and requests),
    /// payload bytes.
    pub fn bytes_out(&self) -> u64 {
        self.gossip_out_bytes + self.requests_out_bytes
    }
}

/// The answer owed to one inbound control request ([`NetEvent::Request`]).
///
/// Answer exactly once with [`Reply::send`]. Dropping it without sending
/// closes the request's stream, and the asker gets an error.
///
/// [`NetEvent::Request`]: super::NetEvent::Request
pub struct Reply {
    /// Read by the event loop, which writes the response to the asker's
    /// stream; if the request already timed out, the response is discarded.
    pub(crate) tx: oneshot::Sender<ControlResponse>,
}

impl Reply {
    /// A reply to a request a node makes of itself (the same path as a
    /// peer's), and where its answer arrives.
    pub(crate) fn local() -> (Reply, oneshot::Receiver<ControlResponse>) {
        let (tx, rx) = oneshot::channel();
        (Reply { tx }, rx)
    }

    /// Sends the response. Never blocks; if the event loop has stopped or the
    /// asker is gone, the response is silently discarded.
    pub fn send(self, resp: ControlResponse) {
        let _ = self.tx.send(resp);
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Reply")
    }
}

/// A cloneable handle on the swarm actor. When every handle is dropped, the
/// command channel closes and the event loop (and its connections) stop.
#[derive(Clone)]
pub struct NetHandle {
    /// Read by the event loop; bounded, so callers wait when it is busy.
    pub(crate) commands: mpsc::Sender<Command>,
    /// Bumped by the event loop.
    pub(crate) stats: Arc<NetStats>,
    pub(crate) local_id: NodeId,
    /// How long [`NetHandle::request`] waits for an answer: the request
    /// timeout plus time to dial.
    pub(crate) request_deadline: Duration,
    /// The same for requests that wait for agents to prepare a run.
    pub(crate) prepare_deadline: Duration,
}

impl fmt::Debug for NetHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetHandle")
            .field("local_id", &self.local_id)
            .finish_non_exhaustive()
    }
}

impl NetHandle {
    /// This node's id (the text of its libp2p peer id).
    pub fn local_id(&self) -> &NodeId {
        &self.local_id
    }

    /// Publishes `msg` on `topic` (encoded with `bfgg_protocol::encode`).
    ///
    /// Returns [`NetError::NoPeers`] while no peer is known to subscribe to
    /// the topic, which is normal for a few seconds after connecting: callers
    /// treat it as retryable. [`NetError::Encode`] if the message cannot be
    /// encoded or is larger than `MAX_GOSSIP_BYTES`.
    ///
    /// Cancel-safe: if the future is dropped after the command was queued,
    /// the message is still published and the outcome discarded.
    pub async fn publish(&self, topic: &str, msg: &Gossip) -> Result<(), NetError> {
        let bytes = bfgg_protocol::encode(msg).map_err(|e| NetError::Encode(e.to_string()))?;
        if bytes.len() > MAX_GOSSIP_BYTES {
            return Err(NetError::Encode(format!(
                "gossip message of {} bytes exceeds the {MAX_GOSSIP_BYTES}-byte limit",
                bytes.len()
            )));
        }
        self.publish_bytes(topic, bytes).await
    }

    /// Sends `req` to `to` and waits for its response, up to the configured
    /// request timeout (plus time to dial). If `to` is not connected but its
    /// addresses are known (from mDNS, identify, health gossip or an earlier
    /// connection), it is dialed first.
    ///
    /// Errors: [`NetError::UnknownPeer`] (not a peer id, or no address known),
    /// [`NetError::Dial`], [`NetError::Timeout`], [`NetError::Request`] (the
    /// stream failed or the peer dropped the request without answering),
    /// [`NetError::Encode`], [`NetError::Closed`].
    ///
    /// Cancel-safe: dropping the future abandons the response; the request may
    /// still reach the peer, and the event loop discards its answer.
    pub async fn request(
        &self,
        to: &NodeId,
        req: ControlRequest,
    ) -> Result<ControlResponse, NetError> {
        let bytes = bfgg_protocol::encode(&req).map_err(|e| NetError::Encode(e.to_string()))?;
        if bytes.len() > MAX_CONTROL_BYTES {
            return Err(NetError::Encode(format!(
                "control request of {} bytes exceeds the {MAX_CONTROL_BYTES}-byte limit",
                bytes.len()
            )));
        }
        let deadline = match req {
            ControlRequest::Submit(_) | ControlRequest::Prepare(_) => self.prepare_deadline,
            _ => self.request_deadline,
        };
        self.request_bytes(to, bytes, deadline).await
    }

    /// The peers this node has at least one connection to.
    ///
    /// Cancel-safe.
    pub async fn connected_peers(&self) -> Result<Vec<NodeId>, NetError> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::ConnectedPeers { reply }).await?;
        rx.await.map_err(|_| NetError::Closed)
    }

    /// Dials a multiaddr (`/ip4/…/tcp/…`, `/dns4/…`, with or without
    /// `/p2p/<id>`) and waits until the connection is established (`Ok`, also
    /// when that peer was already connected) or has failed
    /// ([`NetError::Dial`]; a peer with another cluster key fails here).
    /// Unlike `NetConfig::join`, a failed dial is not retried.
    ///
    /// Cancel-safe: dropping the future doesn't stop the dial.
    pub async fn dial(&self, addr: &str) -> Result<(), NetError> {
        let addr: Multiaddr = addr
            .parse()
            .map_err(|e| NetError::Dial(format!("{addr:?} is not a multiaddr: {e}")))?;
        let (reply, rx) = oneshot::channel();
        self.command(Command::Dial { addr, reply }).await?;
        rx.await.map_err(|_| NetError::Closed)?
    }

    /// The network counters now. Lock-free; never blocks.
    pub fn stats(&self) -> NetStatsSnapshot {
        self.stats.snapshot()
    }

    /// Test hook: publishes arbitrary bytes (such as a malformed message).
    ///
    /// Cancel-safe, like [`NetHandle::publish`].
    #[doc(hidden)]
    pub async fn publish_raw(&self, topic: &str, bytes: Vec<u8>) -> Result<(), NetError> {
        self.publish_bytes(topic, bytes).await
    }

    /// Test hook: sends arbitrary bytes as the body of a control request
    /// frame. A valid answer comes back re-encoded with
    /// `bfgg_protocol::encode`.
    ///
    /// Cancel-safe, like [`NetHandle::request`].
    #[doc(hidden)]
    pub async fn request_raw(&self, to: &NodeId, bytes: Vec<u8>) -> Result<Vec<u8>, NetError> {
        let resp = self.request_bytes(to, bytes, self.request_deadline).await?;
        bfgg_protocol::encode(&resp).map_err(|e| NetError::Encode(e.to_string()))
    }

    async fn publish_bytes(&self, topic: &str, bytes: Vec<u8>) -> Result<(), NetError> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::Publish {
            topic: topic.to_string(),
            bytes,
            reply,
        })
        .await?;
        rx.await.map_err(|_| NetError::Closed)?
    }

    async fn request_bytes(
        &self,
        to: &NodeId,
        bytes: Vec<u8>,
        deadline: Duration,
    ) -> Result<ControlResponse, NetError> {
        let peer = PeerId::from_str(&to.0).map_err(|_| NetError::UnknownPeer(to.clone()))?;
        let (reply, rx) = oneshot::channel();
        self.command(Command::Request {
            to: peer,
            node: to.clone(),
            bytes,
            reply,
        })
        .await?;
        match tokio::time::timeout(deadline, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(NetError::Closed),
            Err(_) => Err(NetError::Timeout),
        }
    }

    async fn command(&self, cmd: Command) -> Result<(), NetError> {
        self.commands.send(cmd).await.map_err(|_| NetError::Closed)
    }
}
