//! bfgg-protocol: the types that cross a process boundary, and nothing else.
//!
//! * [`stats`]: the measurement model every engine reports into: per request
//!   name, per one-second interval, counts, grouped errors and HDR latency
//!   histograms, merged exactly with `+=`.
//! * [`summary`]: the result types written to `summary.json`.
//! * [`codec`]: the bincode envelope (version + size limit) used on the wire.
//! * [`ids`], [`mesh`]: node and run ids, gossip and control messages of the
//!   mesh (`bfgg node`).
//!
//! Architecture invariant: this crate does no I/O and depends on none of tokio,
//! libp2p, hyper, ratatui, crossterm or the AWS SDK (`just invariants` checks).

pub mod codec;
mod hdr_v2;
pub mod ids;
pub mod mesh;
pub mod stats;
pub mod summary;

pub use codec::{DecodeError, EncodeError, decode, encode};
pub use ids::{NodeId, RunId};
pub use stats::{ErrorKind, GeneratorStats, IntervalSnapshot, LatencyHistogram, NameStats, Pulse};

/// Version of the wire format. Bumped on every incompatible change of a type in
/// this crate; carried in every encoded envelope and, later, in protocol ids.
pub const PROTOCOL_VERSION: u16 = 5;
