//! The mesh side of a node: `bfgg node` ([`run_node`]), and the light peer
//! that `bfgg run --cluster`, `bfgg status` and `bfgg stop` use ([`client`]).
//!
//! A node is at once an agent (it runs its share of at most one run at a
//! time: [`agent`]), a coordinator of any run submitted to it
//! ([`coordinator`]), and a keeper of the replicated plans of runs it takes
//! part in, so it can take a run over when its coordinator dies. All network
//! I/O goes through `crate::net` (the swarm actor); this module never touches
//! libp2p.

mod agent;
mod beats;
pub mod bundle;
pub mod client;
mod coordinator;
pub mod demo;
mod lifecycle;
mod logs;
mod node;
pub mod operators;
pub mod request;
mod sys;
pub mod view;

pub use logs::DEFAULT_PAGE_INTERVALS;
pub use node::{NodeConfig, run_node};
