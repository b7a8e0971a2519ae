//! The libp2p stack of a node: the transport (TCP → DNS → pnet with the
//! cluster key → noise → yamux) and the composed behaviour (gossipsub,
//! control request-response, identify, ping, optional mDNS), built into a
//! `Swarm`. Only the event loop drives what this module builds.

use std::error::Error;
use std::time::Duration;

use anyhow::Context;
use bfgg_protocol::mesh::{CONTROL_PROTOCOL, MAX_GOSSIP_BYTES};
use libp2p::core::upgrade;
use libp2p::identity::Keypair;
use libp2p::pnet::PnetConfig;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{StreamProtocol, Swarm, Transport};
use libp2p::{gossipsub, identify, mdns, noise, ping, tcp, yamux};

use super::NetConfig;
use super::codec::ControlCodec;

/// How long a connection may take from TCP connect to a negotiated muxer.
/// This is also how long a dial to (or from) a peer with another cluster key
/// takes to fail: pnet has no key check, so both sides usually wait on each
/// other's garbled multistream-select messages until this timeout (libp2p's
/// stack has no upgrade timeout of its own, so without it they wait forever).
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a node speaks. The derive generates `BehaviourEvent`, with one
/// variant per field (`Gossipsub`, `Control`, `Identify`, `Ping`, `Mdns`).
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    /// Health, interval snapshots and run events.
    pub(crate) gossipsub: gossipsub::Behaviour,
    /// Control requests (`CONTROL_PROTOCOL`).
    pub(crate) control: request_response::Behaviour<ControlCodec>,
    /// Exchanges listen addresses, the protocol version (`/bfgg/<version>`)
    /// and the agent version (`bfgg/<crate version>`).
    pub(crate) identify: identify::Behaviour,
    /// Liveness and round-trip times.
    pub(crate) ping: ping::Behaviour,
    /// LAN discovery, when enabled.
    pub(crate) mdns: Toggle<mdns::tokio::Behaviour>,
}

/// Builds the swarm. Needs a tokio runtime (mDNS opens its sockets here).
pub(crate) fn build_swarm(
    keypair: Keypair,
    config: &NetConfig,
) -> anyhow::Result<Swarm<Behaviour>> {
    let psk = config.cluster_key.psk();
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_other_transport(|key| -> Result<_, Box<dyn Error + Send + Sync>> {
            let noise = noise::Config::new(key)?;
            // As upstream `examples/ipfs-private`: the pnet handshake runs on
            // the raw socket, so a peer with another key fails before noise.
            Ok(
                tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
                    .and_then(move |socket, _| PnetConfig::new(psk).handshake(socket))
                    .upgrade(upgrade::Version::V1Lazy)
                    .authenticate(noise)
                    .multiplex(yamux::Config::default())
                    .timeout(UPGRADE_TIMEOUT),
            )
        })
        .context("building the transport")?
        .with_dns()
        .context("reading the system DNS configuration")?
        .with_behaviour(|key| new_behaviour(key, config))
        .context("building the network behaviour")?
        .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_connection_timeout))
        .build();
    Ok(swarm)
}

fn new_behaviour(
    key: &Keypair,
    config: &NetConfig,
) -> Result<Behaviour, Box<dyn Error + Send + Sync>> {
    // A mesh of 2 (1..4) forms with 2 peers, and flood_publish sends our own
    // messages to every subscribed peer anyway. Gossip about recent message
    // ids (IHAVE, the repair path) goes to 2 peers per heartbeat, for the
    // last 2 heartbeats, instead of a quarter of all peers for 3: with the
    // defaults, at 50 nodes, IHAVE lists were most of an idle node's
    // traffic (docs/MESH.md).
    let gossip_config = gossipsub::ConfigBuilder::default()
        .message_id_fn(short_message_id)
        .heartbeat_interval(Duration::from_secs(1))
        .gossip_lazy(2)
        .gossip_factor(0.0)
        .history_gossip(2)
        .validation_mode(gossipsub::ValidationMode::Strict)
        .validate_messages()
        .max_transmit_size(MAX_GOSSIP_BYTES)
        .flood_publish(true)
        .mesh_outbound_min(1)
        .mesh_n_low(1)
        .mesh_n(2)
        .mesh_n_high(4)
        .build()?;
    let gossipsub = gossipsub::Behaviour::new(
        gossipsub::MessageAuthenticity::Signed(key.clone()),
        gossip_config,
    )?;

    let control = request_response::Behaviour::with_codec(
        ControlCodec,
        [(StreamProtocol::new(CONTROL_PROTOCOL), ProtocolSupport::Full)],
        // The longest any request may take: the handle holds each to its own.
        request_response::Config::default()
            .with_request_timeout(config.request_timeout.max(super::PREPARE_TIMEOUT)),
    );

    let identify = identify::Behaviour::new(
        identify::Config::new(config.identify_protocol.clone(), key.public())
            .with_agent_version(format!("bfgg/{}", env!("CARGO_PKG_VERSION"))),
    );

    let mdns = if config.mdns {
        let mdns_config = mdns::Config {
            query_interval: config.mdns_query_interval,
            ..Default::default()
        };
        Some(mdns::tokio::Behaviour::new(
            mdns_config,
            key.public().to_peer_id(),
        )?)
    } else {
        None
    };

    Ok(Behaviour {
        gossipsub,
        control,
        identify,
        ping: ping::Behaviour::new(ping::Config::new()),
        mdns: Toggle::from(mdns),
    })
}

/// A message's id: the first 8 bytes of SHA-256 over its author, sequence
/// number and data. Gossipsub's default (the author's base58 id and the
/// sequence number in decimal, ~70 bytes) fills every IHAVE and IWANT list;
/// 8 bytes name a message among the few hundred a node remembers just as
/// well (docs/MESH.md).
pub(super) fn short_message_id(message: &gossipsub::Message) -> gossipsub::MessageId {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    if let Some(source) = &message.source {
        hasher.update(source.to_bytes());
    }
    hasher.update(message.sequence_number.unwrap_or(0).to_be_bytes());
    hasher.update(&message.data);
    gossipsub::MessageId::new(&hasher.finalize()[..8])
}
