//! bfgg-node: everything a load host does.
//!
//! * [`scenario`]: TOML scenarios parsed and validated into [`scenario::Scenario`],
//!   plus the runtime pieces engines use (templates, data pools, checks,
//!   extraction, thresholds).
//! * [`engine`]: load engines; [`engine::native`] is bfgg's own HTTP engine.
//! * [`run`]: a local run from start to results.
//! * [`results`]: the results directory (summary, time series, hlog, the
//!   merged interval log) and the one pipeline that writes it.
//! * [`merge`]: the one interval merger (across sources) and run totals
//!   (across time).
//! * `metrics`: what `bfgg node --metrics-addr` exports to Prometheus (node
//!   health, each run's requests, errors and response-time histogram) and
//!   the `/metrics` endpoint.
//! * [`interval_log`]: interval snapshots on disk (agents' logs, merged logs,
//!   gossip copies), read by offset.
//! * [`source`]: test code from git (`[source]`): a revision resolved once,
//!   commits checked out per node, cached.
//! * [`target`]: the built-in HTTP test server (`bfgg target`).
//! * [`net`]: the libp2p swarm actor of the mesh (the only module importing libp2p).
//! * [`cluster`]: `bfgg node` (agent, coordinator, takeover) and the light
//!   peer client behind `bfgg run --cluster`, `status` and `stop`.

pub(crate) mod cache;
pub mod cluster;
pub mod engine;
#[cfg(test)]
mod fixtures;
pub mod interval_log;
pub mod merge;
pub(crate) mod metrics;
pub mod net;
pub mod results;
pub mod run;
pub mod scenario;
pub mod source;
pub mod target;
