//! The swarm actor: one task owns the `Swarm` and `select!`s over swarm
//! events, [`Command`]s from handles, replies to inbound requests and the
//! re-dial timer of `--join` peers. It never panics and never blocks on a slow
//! consumer for droppable traffic: gossip goes out with `try_send` (and is
//! counted when lost); connection and request events use `send().await`.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bfgg_protocol::NodeId;
use bfgg_protocol::mesh::{ControlRequest, ControlResponse, Gossip, MAX_CONTROL_BYTES, NodeHealth};
use libp2p::futures::StreamExt;
use libp2p::futures::future::BoxFuture;
use libp2p::futures::stream::FuturesUnordered;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, PublishError};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundFailure, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, DialError, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, identify, mdns};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, info, trace, warn};

use super::NetError;
use super::NetEvent;
use super::behaviour::{Behaviour, BehaviourEvent};
use super::codec::ControlMsg;
use super::handle::{Command, NetStats, Reply};
use super::health_book::{HealthBook, OnBeat};

/// First re-dial delay of a lost `--join` peer; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_secs(1);
/// Longest re-dial delay of a `--join` peer.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Least time between two dials of a peer learned from its health gossip.
const GOSSIP_DIAL_INTERVAL: Duration = Duration::from_secs(10);
/// Peers a node dials on its own (from health gossip or mDNS) until it has
/// this many connections: enough for gossipsub's mesh (2-4 peers per topic)
/// with spares, few enough that a node of a large cluster does not keep a
/// connection (pings, gossipsub control) to every other node. Requests
/// dial their peer when needed, whatever the count (docs/MESH.md).
pub(super) const WANTED_PEERS: usize = 8;
/// Addresses remembered per peer (newest kept).
const MAX_ADDRS_PER_PEER: usize = 8;
/// Peers whose addresses are remembered; beyond this, new peers are not.
const MAX_KNOWN_PEERS: usize = 4096;

type ControlChannel = ResponseChannel<ControlMsg<ControlResponse>>;
type RequestReply = oneshot::Sender<Result<ControlResponse, NetError>>;
type PendingReply = BoxFuture<'static, (PeerId, ControlChannel, Option<ControlResponse>)>;
/// A relay's answer about an author's full health: (author, answer).
type HealthAnswer = BoxFuture<'static, (PeerId, Option<ControlResponse>)>;

/// A `--join` address: dialed at start and re-dialed with backoff whenever
/// its peer is not connected.
#[derive(Debug)]
pub(crate) struct Join {
    /// The address, without `/p2p/…`.
    addr: Multiaddr,
    /// Its peer, from `/p2p/…` or learned on the first connection.
    peer: Option<PeerId>,
    /// The dial in flight, if any.
    dialing: Option<ConnectionId>,
    /// When to dial next; `None` while connected or dialing.
    next_attempt: Option<Instant>,
    /// Delay before the attempt after next.
    backoff: Duration,
}

impl Join {
    /// Splits `addr` into the address and an optional `/p2p/<id>` suffix.
    pub(crate) fn new(mut addr: Multiaddr) -> Join {
        let peer = match addr.iter().last() {
            Some(Protocol::P2p(peer)) => {
                addr.pop();
                Some(peer)
            }
            _ => None,
        };
        Join {
            addr,
            peer,
            dialing: None,
            next_attempt: Some(Instant::now()),
            backoff: MIN_BACKOFF,
        }
    }

    fn schedule_retry(&mut self) {
        self.dialing = None;
        self.next_attempt = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }
}

pub(crate) struct EventLoop {
    swarm: Swarm<Behaviour>,
    local_peer: PeerId,
    /// Written by every `NetHandle`; when the last handle is dropped it
    /// closes and the loop ends.
    commands: mpsc::Receiver<Command>,
    /// Read by whoever called `spawn`; if they dropped it, events are
    /// discarded (and the loop goes on serving handles).
    events: mpsc::Sender<NetEvent>,
    stats: Arc<NetStats>,
    /// Answers owed to `NetHandle::request` callers.
    pending_requests: HashMap<OutboundRequestId, RequestReply>,
    /// Requests to disconnected peers, handed to request-response once we
    /// have dialed them with the addresses in `known_addrs` and a connection
    /// is up (its own dial would only use addresses other behaviours report),
    /// or failed when that dial fails.
    awaiting_connection: HashMap<PeerId, Vec<(Vec<u8>, RequestReply)>>,
    /// Answers owed to `NetHandle::dial` callers.
    pending_dials: HashMap<ConnectionId, oneshot::Sender<Result<(), NetError>>>,
    /// Inbound requests waiting for their `Reply`: each resolves when the
    /// consumer answers (`Some`) or drops the `Reply` (`None`).
    replies: FuturesUnordered<PendingReply>,
    joins: Vec<Join>,
    /// Dialable addresses of peers, for requests to disconnected peers.
    known_addrs: HashMap<PeerId, Vec<Multiaddr>>,
    /// When a peer was last dialed because of its health gossip.
    gossip_dials: HashMap<PeerId, Instant>,
    /// The protocol version we announce by identify (`/bfgg/<version>`).
    protocol: String,
    /// Peers whose identify announced another protocol version: their
    /// addresses are neither remembered nor dialed, requests to them fail.
    incompatible: HashSet<PeerId>,
    /// Full health per author, to turn beats back into health.
    healths: HealthBook<PeerId>,
    /// Asks for full health in flight.
    health_answers: FuturesUnordered<HealthAnswer>,
}

impl EventLoop {
    pub(crate) fn new(
        swarm: Swarm<Behaviour>,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<NetEvent>,
        stats: Arc<NetStats>,
        joins: Vec<Join>,
        protocol: String,
    ) -> EventLoop {
        let local_peer = *swarm.local_peer_id();
        EventLoop {
            swarm,
            local_peer,
            commands,
            events,
            stats,
            pending_requests: HashMap::new(),
            awaiting_connection: HashMap::new(),
            pending_dials: HashMap::new(),
            replies: FuturesUnordered::new(),
            joins,
            known_addrs: HashMap::new(),
            gossip_dials: HashMap::new(),
            protocol,
            incompatible: HashSet::new(),
            healths: HealthBook::new(),
            health_answers: FuturesUnordered::new(),
        }
    }

    /// Runs until every `NetHandle` is dropped.
    pub(crate) async fn run(mut self) {
        loop {
            let next_redial = self.joins.iter().filter_map(|j| j.next_attempt).min();
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event).await,
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    // Every NetHandle is gone: nobody can ask anything any more.
                    None => break,
                },
                Some((peer, channel, resp)) = self.replies.next(), if !self.replies.is_empty() => {
                    self.on_reply(peer, channel, resp);
                }
                Some((author, answer)) = self.health_answers.next(), if !self.health_answers.is_empty() => {
                    self.on_health_answer(author, answer);
                }
                () = sleep_until(next_redial), if next_redial.is_some() => self.redial_due(),
            }
        }
        debug!("every network handle dropped; the event loop stops");
    }

    async fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(ev)) => self.on_gossipsub(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Control(ev)) => self.on_control(ev).await,
            SwarmEvent::Behaviour(BehaviourEvent::Identify(ev)) => self.on_identify(ev).await,
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(ev)) => self.on_mdns(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ev)) => trace!(?ev, "ping"),
            SwarmEvent::NewListenAddr { address, .. } => {
                let addr = address.with(Protocol::P2p(self.local_peer)).to_string();
                info!(%addr, "listening");
                self.emit(NetEvent::Listening { addr }).await;
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                debug!(peer = %peer_id, addr = %endpoint.get_remote_address(), "connection established");
                if let Some(reply) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Ok(()));
                }
                for join in &mut self.joins {
                    if join.dialing == Some(connection_id) || join.peer == Some(peer_id) {
                        join.peer = Some(peer_id);
                        join.dialing = None;
                        join.next_attempt = None;
                        join.backoff = MIN_BACKOFF;
                    }
                }
                if endpoint.is_dialer() {
                    let addr = endpoint.get_remote_address().clone();
                    self.remember(peer_id, [addr]);
                }
                for (bytes, reply) in self
                    .awaiting_connection
                    .remove(&peer_id)
                    .unwrap_or_default()
                {
                    self.send_request(peer_id, bytes, reply);
                }
                if num_established.get() == 1 {
                    self.emit(NetEvent::PeerConnected(node_id(&peer_id))).await;
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                cause,
                ..
            } => {
                debug!(peer = %peer_id, ?cause, "connection closed");
                if num_established == 0 {
                    for join in &mut self.joins {
                        if join.peer == Some(peer_id)
                            && join.next_attempt.is_none()
                            && join.dialing.is_none()
                        {
                            info!(peer = %peer_id, addr = %join.addr, "joined peer lost; re-dialing");
                            join.schedule_retry();
                        }
                    }
                    self.emit(NetEvent::PeerDisconnected(node_id(&peer_id)))
                        .await;
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                // Strangers (mDNS neighbours with another cluster key) fail
                // here on every discovery: debug, never louder.
                debug!(peer = ?peer_id, %error, "outgoing connection failed");
                if let Some(reply) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Err(NetError::Dial(error.to_string())));
                }
                for join in &mut self.joins {
                    if join.dialing == Some(connection_id) {
                        info!(addr = %join.addr, retry_in = ?join.backoff, %error, "cannot reach joined peer");
                        join.schedule_retry();
                    }
                }
                if let Some(peer) = peer_id.filter(|p| !self.swarm.is_connected(p)) {
                    self.fail_awaiting(peer, &error.to_string());
                }
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                ..
            } => debug!(from = %send_back_addr, %error, "incoming connection failed"),
            other => trace!(?other, "ignored swarm event"),
        }
    }

    fn on_gossipsub(&mut self, event: gossipsub::Event) {
        let (propagation_source, message_id, message) = match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => (propagation_source, message_id, message),
            other => {
                trace!(event = ?other, "gossipsub");
                return;
            }
        };
        let author = message.source.unwrap_or(propagation_source);
        let from = node_id(&author);
        let len = message.data.len();
        let decoded = bfgg_protocol::decode::<Gossip>(&message.data);
        // Gossipsub relays only what we accept: malformed messages stop here.
        let verdict = if decoded.is_ok() {
            MessageAcceptance::Accept
        } else {
            MessageAcceptance::Reject
        };
        let _ = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&message_id, &propagation_source, verdict);
        match decoded {
            Ok(msg) => {
                NetStats::add(&self.stats.gossip_in, 1);
                NetStats::add(&self.stats.gossip_in_bytes, len as u64);
                let msg = match msg {
                    Gossip::Health(health) if health.node == from => {
                        self.healths.full(author, &health);
                        self.dial_from_health(author, &health.listen_addrs);
                        Gossip::Health(health)
                    }
                    Gossip::Beat(beat) => {
                        match self.healths.beat(author, beat.clone(), Instant::now()) {
                            OnBeat::Health(health) => Gossip::Health(*health),
                            OnBeat::Ask => {
                                self.ask_health(author, propagation_source);
                                Gossip::Beat(beat)
                            }
                            OnBeat::Wait => Gossip::Beat(beat),
                        }
                    }
                    other => other,
                };
                self.emit_lossy(NetEvent::Gossip { from, msg });
            }
            Err(e) => {
                NetStats::add(&self.stats.dropped, 1);
                debug!(%from, topic = %message.topic, len, error = %e, "dropped malformed gossip");
                self.emit_lossy(NetEvent::Dropped {
                    from: Some(from),
                    reason: format!("gossip on {}: {e}", message.topic),
                });
            }
        }
    }

    async fn on_control(
        &mut self,
        event: request_response::Event<
            ControlMsg<bfgg_protocol::mesh::ControlRequest>,
            ControlMsg<ControlResponse>,
        >,
    ) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    let req = match request {
                        ControlMsg::Decoded(req) => req,
                        ControlMsg::Malformed(reason) => {
                            // Dropping `channel` closes the stream: the asker
                            // gets an error.
                            debug!(%peer, %reason, "dropped malformed control request");
                            self.count_dropped(Some(peer), format!("control request: {reason}"));
                            return;
                        }
                        // The codec never reads undecoded messages.
                        ControlMsg::Encoded(_) => return,
                    };
                    let (tx, rx) = oneshot::channel();
                    self.replies.push(Box::pin(async move {
                        let resp = rx.await.ok();
                        (peer, channel, resp)
                    }));
                    let from = node_id(&peer);
                    self.emit(NetEvent::Request {
                        from,
                        req,
                        reply: Reply { tx },
                    })
                    .await;
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    let result = match response {
                        ControlMsg::Decoded(resp) => Ok(resp),
                        ControlMsg::Malformed(reason) => {
                            debug!(%peer, %reason, "dropped malformed control response");
                            self.count_dropped(Some(peer), format!("control response: {reason}"));
                            Err(NetError::Request(format!("malformed response: {reason}")))
                        }
                        ControlMsg::Encoded(bytes) => bfgg_protocol::decode(&bytes)
                            .map_err(|e| NetError::Request(format!("malformed response: {e}"))),
                    };
                    if let Some(reply) = self.pending_requests.remove(&request_id) {
                        let _ = reply.send(result);
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                debug!(%peer, %error, "control request failed");
                let err = match &error {
                    OutboundFailure::Timeout => NetError::Timeout,
                    OutboundFailure::DialFailure => NetError::Dial(format!("cannot reach {peer}")),
                    other => NetError::Request(other.to_string()),
                };
                if let Some(reply) = self.pending_requests.remove(&request_id) {
                    let _ = reply.send(Err(err));
                }
            }
            // Malformed requests arrive as `ControlMsg::Malformed` (libp2p
            // reports no event when `read_request` fails); these are
            // timeouts, closed connections and requests dropped unanswered.
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(%peer, %error, "inbound control request failed");
            }
            request_response::Event::ResponseSent { peer, .. } => {
                trace!(%peer, "control response sent");
            }
        }
    }

    fn on_reply(&mut self, peer: PeerId, channel: ControlChannel, resp: Option<ControlResponse>) {
        let Some(resp) = resp else {
            debug!(%peer, "control request dropped without an answer");
            return;
        };
        let bytes = match bfgg_protocol::encode(&resp) {
            Ok(bytes) if bytes.len() <= MAX_CONTROL_BYTES => bytes,
            Ok(bytes) => {
                warn!(%peer, len = bytes.len(), "control response exceeds the size limit; not sent");
                return;
            }
            Err(e) => {
                warn!(%peer, error = %e, "cannot encode control response");
                return;
            }
        };
        if self
            .swarm
            .behaviour_mut()
            .control
            .send_response(channel, ControlMsg::Encoded(bytes))
            .is_err()
        {
            debug!(%peer, "control response not sent: the request timed out or its connection closed");
        }
    }

    async fn on_identify(&mut self, event: identify::Event) {
        let identify::Event::Received { peer_id, info, .. } = event else {
            trace!(?event, "identify");
            return;
        };
        if info.protocol_version == self.protocol {
            trace!(peer = %peer_id, agent = %info.agent_version, "identified");
            // It may have been upgraded since it was last identified.
            self.incompatible.remove(&peer_id);
            self.remember(peer_id, info.listen_addrs);
            return;
        }
        let new = !self.incompatible.contains(&peer_id);
        if new {
            info!(
                peer = %peer_id,
                protocol = %info.protocol_version,
                agent = %info.agent_version,
                ours = %self.protocol,
                "a peer speaks another protocol version; it gets no work"
            );
            if self.incompatible.len() >= MAX_KNOWN_PEERS {
                // Bounded like `known_addrs`; forgetting one only means its
                // addresses may be remembered again until its next identify.
                self.incompatible.clear();
            }
            self.incompatible.insert(peer_id);
        } else {
            debug!(peer = %peer_id, protocol = %info.protocol_version, "incompatible peer identified again");
        }
        self.known_addrs.remove(&peer_id);
        self.gossip_dials.remove(&peer_id);
        self.healths.forget(&peer_id);
        self.emit(NetEvent::Incompatible {
            peer: node_id(&peer_id),
            protocol: info.protocol_version,
            agent: info.agent_version,
        })
        .await;
    }

    fn on_mdns(&mut self, event: mdns::Event) {
        match event {
            mdns::Event::Discovered(found) => {
                let mut by_peer: HashMap<PeerId, Vec<Multiaddr>> = HashMap::new();
                for (peer, addr) in found {
                    if peer != self.local_peer {
                        by_peer.entry(peer).or_default().push(addr);
                    }
                }
                for (peer, addrs) in by_peer {
                    if self.incompatible.contains(&peer) {
                        trace!(%peer, "discovered by mDNS, but speaks another protocol version");
                        continue;
                    }
                    debug!(%peer, ?addrs, "discovered by mDNS");
                    self.remember(peer, addrs.iter().cloned());
                    if !self.swarm.is_connected(&peer) && !self.enough_peers() {
                        let _ = self.dial_quietly(peer, addrs);
                    }
                }
            }
            mdns::Event::Expired(gone) => trace!(?gone, "mDNS records expired"),
        }
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Publish {
                topic,
                bytes,
                reply,
            } => {
                let len = bytes.len() as u64;
                let result = match self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(IdentTopic::new(topic), bytes)
                {
                    Ok(_) => {
                        NetStats::add(&self.stats.gossip_out, 1);
                        NetStats::add(&self.stats.gossip_out_bytes, len);
                        Ok(())
                    }
                    Err(PublishError::NoPeersSubscribedToTopic) => Err(NetError::NoPeers),
                    Err(PublishError::MessageTooLarge) => {
                        Err(NetError::Encode("gossip message too large".into()))
                    }
                    Err(e) => Err(NetError::Request(format!("publish failed: {e}"))),
                };
                let _ = reply.send(result);
            }
            Command::Request {
                to,
                node,
                bytes,
                reply,
            } => {
                if self.incompatible.contains(&to) {
                    let _ = reply.send(Err(NetError::Incompatible(node)));
                    return;
                }
                if self.swarm.is_connected(&to) {
                    self.send_request(to, bytes, reply);
                    return;
                }
                let Some(addrs) = self.known_addrs.get(&to).cloned() else {
                    let _ = reply.send(Err(NetError::UnknownPeer(node)));
                    return;
                };
                let queue = self.awaiting_connection.entry(to).or_default();
                queue.retain(|(_, reply)| !reply.is_closed());
                queue.push((bytes, reply));
                match self.dial_quietly(to, addrs) {
                    // Dialing, or a dial is already in flight: its outcome
                    // sends or fails the queue.
                    Ok(()) | Err(DialError::DialPeerConditionFalse(_)) => {}
                    Err(e) => self.fail_awaiting(to, &e.to_string()),
                }
            }
            Command::ConnectedPeers { reply } => {
                let _ = reply.send(self.swarm.connected_peers().map(node_id).collect());
            }
            Command::Dial { addr, reply } => self.dial_command(addr, reply),
        }
    }

    fn send_request(&mut self, to: PeerId, bytes: Vec<u8>, reply: RequestReply) {
        NetStats::add(&self.stats.requests_out, 1);
        NetStats::add(&self.stats.requests_out_bytes, bytes.len() as u64);
        let id = self
            .swarm
            .behaviour_mut()
            .control
            .send_request(&to, ControlMsg::Encoded(bytes));
        self.pending_requests.insert(id, reply);
    }

    fn fail_awaiting(&mut self, peer: PeerId, error: &str) {
        for (_, reply) in self.awaiting_connection.remove(&peer).unwrap_or_default() {
            let _ = reply.send(Err(NetError::Dial(error.to_string())));
        }
    }

    fn dial_command(&mut self, addr: Multiaddr, reply: oneshot::Sender<Result<(), NetError>>) {
        let join = Join::new(addr);
        let opts = match join.peer {
            Some(peer) => {
                self.remember(peer, [join.addr.clone()]);
                DialOpts::peer_id(peer)
                    .addresses(vec![join.addr])
                    .condition(PeerCondition::Disconnected)
                    .build()
            }
            None => DialOpts::unknown_peer_id().address(join.addr).build(),
        };
        let id = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.pending_dials.insert(id, reply);
            }
            Err(DialError::DialPeerConditionFalse(_)) => {
                let _ = reply.send(Ok(()));
            }
            Err(e) => {
                let _ = reply.send(Err(NetError::Dial(e.to_string())));
            }
        }
    }

    /// Dials every `--join` address whose time has come.
    fn redial_due(&mut self) {
        let now = Instant::now();
        for join in &mut self.joins {
            if join.next_attempt.is_none_or(|t| t > now) {
                continue;
            }
            join.next_attempt = None;
            if let Some(peer) = join.peer
                && self.swarm.is_connected(&peer)
            {
                join.backoff = MIN_BACKOFF;
                continue;
            }
            let opts = match join.peer {
                Some(peer) => DialOpts::peer_id(peer)
                    .addresses(vec![join.addr.clone()])
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .build(),
                None => DialOpts::unknown_peer_id()
                    .address(join.addr.clone())
                    .build(),
            };
            let id = opts.connection_id();
            debug!(addr = %join.addr, "dialing joined peer");
            match self.swarm.dial(opts) {
                Ok(()) => join.dialing = Some(id),
                // Already connected or being dialed by someone else: the
                // connection events will tell.
                Err(DialError::DialPeerConditionFalse(_)) => {}
                Err(e) => {
                    info!(addr = %join.addr, retry_in = ?join.backoff, error = %e, "cannot dial joined peer");
                    join.schedule_retry();
                }
            }
        }
    }

    /// Dials a peer met in health gossip (so a cluster joined through one
    /// seed becomes a full mesh), at most once per [`GOSSIP_DIAL_INTERVAL`].
    /// Its addresses are remembered even while connected, so a request after
    /// that connection closed can dial it again.
    /// Asks `relay` (connected: it just relayed the beat) for `author`'s
    /// full health; the answer arrives in `on_health_answer`.
    fn ask_health(&mut self, author: PeerId, relay: PeerId) {
        if !self.swarm.is_connected(&relay) {
            return;
        }
        let req = ControlRequest::Health {
            node: node_id(&author),
        };
        let Ok(bytes) = bfgg_protocol::encode(&req) else {
            return;
        };
        let (tx, rx) = oneshot::channel();
        self.send_request(relay, bytes, tx);
        self.health_answers.push(Box::pin(async move {
            (author, rx.await.ok().and_then(Result::ok))
        }));
    }

    fn on_health_answer(&mut self, author: PeerId, answer: Option<ControlResponse>) {
        let Some(ControlResponse::Health(health)) = answer else {
            trace!(%author, ?answer, "no full health for a beat");
            return;
        };
        let health: NodeHealth = *health;
        let from = node_id(&author);
        if health.node != from || self.incompatible.contains(&author) {
            return;
        }
        self.dial_from_health(author, &health.listen_addrs);
        if let Some(current) = self.healths.answer(author, health) {
            self.emit_lossy(NetEvent::Gossip {
                from,
                msg: Gossip::Health(current),
            });
        }
    }

    fn dial_from_health(&mut self, peer: PeerId, listen_addrs: &[String]) {
        if peer == self.local_peer || self.incompatible.contains(&peer) {
            return;
        }
        let addrs: Vec<Multiaddr> = listen_addrs
            .iter()
            .filter_map(|a| a.parse::<Multiaddr>().ok())
            .map(Join::new)
            .filter(|j| j.peer.is_none() || j.peer == Some(peer))
            .map(|j| j.addr)
            .collect();
        if addrs.is_empty() {
            return;
        }
        self.remember(peer, addrs.iter().cloned());
        if self.swarm.is_connected(&peer) || self.enough_peers() {
            return;
        }
        let now = Instant::now();
        let full = self.gossip_dials.len() >= MAX_KNOWN_PEERS;
        match self.gossip_dials.entry(peer) {
            Entry::Occupied(mut last) => {
                if now.duration_since(*last.get()) < GOSSIP_DIAL_INTERVAL {
                    return;
                }
                last.insert(now);
            }
            Entry::Vacant(_) if full => return,
            Entry::Vacant(slot) => {
                slot.insert(now);
            }
        }
        debug!(%peer, ?addrs, "dialing a peer known from its health gossip");
        let _ = self.dial_quietly(peer, addrs);
    }

    /// Whether this node has the connections it wants without dialing
    /// strangers ([`WANTED_PEERS`]).
    fn enough_peers(&self) -> bool {
        self.swarm.connected_peers().nth(WANTED_PEERS - 1).is_some()
    }

    /// Dials `peer` unless it is connected or being dialed; failures are
    /// logged at debug (they are expected for strangers and stale addresses).
    fn dial_quietly(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) -> Result<(), DialError> {
        let opts = DialOpts::peer_id(peer)
            .addresses(addrs)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        self.swarm
            .dial(opts)
            .inspect_err(|e| debug!(%peer, error = %e, "not dialing"))
    }

    /// Remembers dialable addresses of a peer (newest last, bounded); never
    /// those of an incompatible peer.
    fn remember(&mut self, peer: PeerId, addrs: impl IntoIterator<Item = Multiaddr>) {
        if peer == self.local_peer || self.incompatible.contains(&peer) {
            return;
        }
        if !self.known_addrs.contains_key(&peer) && self.known_addrs.len() >= MAX_KNOWN_PEERS {
            return;
        }
        let known = self.known_addrs.entry(peer).or_default();
        for addr in addrs {
            let addr = Join::new(addr).addr;
            known.retain(|a| *a != addr);
            known.push(addr);
        }
        if known.len() > MAX_ADDRS_PER_PEER {
            let excess = known.len() - MAX_ADDRS_PER_PEER;
            known.drain(..excess);
        }
    }

    fn count_dropped(&mut self, from: Option<PeerId>, reason: String) {
        NetStats::add(&self.stats.dropped, 1);
        self.emit_lossy(NetEvent::Dropped {
            from: from.as_ref().map(node_id),
            reason,
        });
    }

    /// Must-deliver events: waits for room in the channel.
    async fn emit(&mut self, event: NetEvent) {
        if self.events.send(event).await.is_err() {
            trace!("event receiver dropped; event discarded");
        }
    }

    /// Droppable events: counted in `events_lost` when the consumer is behind.
    fn emit_lossy(&mut self, event: NetEvent) {
        match self.events.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => NetStats::add(&self.stats.events_lost, 1),
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

fn node_id(peer: &PeerId) -> NodeId {
    NodeId(peer.to_base58())
}

/// Sleeps until `deadline`, or forever if there is none (the `select!` branch
/// is disabled then anyway).
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
