//! What a person asks the mesh to run ([`RunSpec`]) and the one way it
//! becomes a [`RunRequest`]: the scenario's bundle attached, the overrides
//! and the choice of agents carried as they are. `bfgg run --cluster` and
//! the cockpit both build their requests here; nothing here talks to the
//! network.

use std::time::Duration;

use bfgg_protocol::mesh::{AgentSelection, RunRequest};

use super::bundle;
use crate::scenario::Scenario;

/// A cluster run as chosen on the command line or in the cockpit's start
/// dialog, apart from the scenario itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    /// Which idle agents take a share.
    pub selection: AgentSelection,
    /// Replaces the scenario's target base URL on every agent (`--target`).
    pub target: Option<String>,
    /// Replaces the scenario's duration on every agent (`--duration`).
    pub duration: Option<Duration>,
    /// Move a lost agent's share to the live agents (`--rebalance`).
    pub rebalance: bool,
}

impl Default for RunSpec {
    /// Every idle agent, the scenario as written, no rebalancing.
    fn default() -> Self {
        Self {
            selection: AgentSelection::All,
            target: None,
            duration: None,
            rebalance: false,
        }
    }
}

impl RunSpec {
    /// The request to run `scenario` this way: its bundle (the scenario file
    /// and every file it references, read now) and this spec. The coordinator
    /// and every agent apply the overrides to the scenario they load from the
    /// bundle, so `scenario` may already carry them or not. Fails when a file
    /// cannot be read or lies outside the scenario's directory.
    pub fn request(&self, scenario: &Scenario) -> anyhow::Result<RunRequest> {
        let (files, contents) = bundle::build(scenario)?;
        Ok(RunRequest {
            files,
            contents,
            target: self.target.clone(),
            duration_ms: self.duration.map(|d| d.as_millis() as u64),
            selection: self.selection.clone(),
            rebalance: self.rebalance,
            // Signed by the client that sends it (`Client::submit`).
            mandate: None,
        })
    }
}

#[cfg(test)]
mod tests;
