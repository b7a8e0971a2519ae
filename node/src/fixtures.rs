//! Values the unit tests of several modules share (test builds only).

use bfgg_protocol::NodeId;
use bfgg_protocol::mesh::{EngineInfo, NodeHealth, NodeState};

/// An idle node `id`'s health: the native engine, one listen address,
/// period 1 s, revision 1.
pub(crate) fn health(id: &str) -> NodeHealth {
    NodeHealth {
        node: NodeId(id.into()),
        name: id.into(),
        labels: Default::default(),
        state: NodeState::Idle,
        engines: vec![EngineInfo {
            name: "native".into(),
            version: "0".into(),
        }],
        cpu_pct: 0.0,
        mem_bytes: 0,
        keeping_schedule: true,
        sent_at_ms: 1_000,
        bfgg_version: "0".into(),
        protocol_version: bfgg_protocol::PROTOCOL_VERSION,
        dropped_messages: 0,
        listen_addrs: vec!["/ip4/127.0.0.1/tcp/1".into()],
        period_ms: 1_000,
        revision: 1,
    }
}
