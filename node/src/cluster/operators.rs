//! Who may act on a cluster. The cluster key lets a peer join and watch;
//! starting and stopping runs needs an operator's [`Mandate`]: an order
//! (run this request, stop that run) signed with the operator's own key
//! ([`OperatorKey`], `<data dir>/operator.key`, its peer id printed by
//! `bfgg id`). A node with an operators list ([`Operators`]: `--operators`
//! or `<config dir>/operators`) checks the mandate where the work happens:
//! the coordinator on `Submit`, every agent on `Prepare` (the plan carries
//! the submitted mandate), every node on `Stop` (unless the run's own
//! coordinator sends it). So a peer that holds only the cluster key cannot
//! act even through a node of its own: the agents do not take its word.
//! A node without a list acts for anyone holding the key, as before.
//! The signing and the signature checks are `crate::net::operator`'s.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use bfgg_protocol::mesh::{BundleFile, Mandate, Order, RunPlan, RunRequest};
use bfgg_protocol::{NodeId, RunId};
use sha2::{Digest, Sha256};

pub use crate::net::OperatorKey;
use crate::net::{parse_peer_id, verify_mandate};

/// How old a mandate may be when a node checks it, ms: a run is planned
/// and prepared seconds after its operator signs; a stop is sent at once.
pub const MANDATE_TTL_MS: u64 = 10 * 60 * 1000;
/// How far in the future a mandate's time may be, ms (operators' clocks
/// run ahead of nodes' by this much at most).
pub const MANDATE_SKEW_MS: u64 = 2 * 60 * 1000;
/// Run mandates a node remembers (for [`MANDATE_TTL_MS`]) so that one
/// cannot be used for a second run; when full, new runs are refused until
/// the oldest expire.
pub const MAX_REMEMBERED: usize = 4096;

/// Why a node refuses to act. Each names the right that is missing and what
/// would grant it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No mandate came with the order.
    #[error(
        "read-only: {what} needs an operator's mandate and none came with it (this node {node} has an operators list; `bfgg id` prints your id for an operator to add)"
    )]
    Missing {
        /// "starting a run", "stopping run X".
        what: String,
        /// The refusing node's name.
        node: String,
    },
    /// The signer is not on this node's list.
    #[error(
        "read-only: {operator} is not an operator of node {node}: {what} needs the operator right (add the id to its --operators or {file})"
    )]
    NotOperator {
        /// "starting a run", "stopping run X".
        what: String,
        /// The signer.
        operator: NodeId,
        /// The refusing node's name.
        node: String,
        /// Where the node's list is.
        file: String,
    },
    /// The mandate orders something else, is too old or too new, or its
    /// signature does not verify.
    #[error("refused: the operator's mandate for {what} is not valid here: {why}")]
    Invalid {
        /// "starting a run", "stopping run X".
        what: String,
        /// What is wrong with it.
        why: String,
    },
}

/// A node's operators list, or none.
#[derive(Debug)]
pub struct Operators {
    /// `None`: anyone holding the cluster key may act.
    list: Option<BTreeSet<NodeId>>,
    /// The node's name, for refusals.
    node: String,
    /// Where the list comes from, for refusals and the start message.
    source: String,
}

/// The run mandates a node has used: signature -> (its run, when it
/// expires, ms). Owned by the node's task; at most [`MAX_REMEMBERED`].
#[derive(Debug, Default)]
pub struct UsedMandates(BTreeMap<Vec<u8>, (RunId, u64)>);

impl Operators {
    /// No list: every peer holding the key may act.
    pub fn open(node: &str) -> Self {
        Self {
            list: None,
            node: node.to_string(),
            source: String::new(),
        }
    }

    /// These operators only.
    pub fn only(node: &str, ids: impl IntoIterator<Item = NodeId>, source: &str) -> Self {
        Self {
            list: Some(ids.into_iter().collect()),
            ..Self::open(node)
        }
        .with_source(source)
    }

    fn with_source(mut self, source: &str) -> Self {
        self.source = source.to_string();
        self
    }

    /// The list of `bfgg node`: `--operators ID,...` if given, else the file
    /// (one peer id per line, `#` comments) if it exists, else none. A
    /// malformed id is an error naming where it is.
    pub fn load(node: &str, flag: Option<&str>, file: &Path) -> anyhow::Result<Self> {
        if let Some(text) = flag {
            let ids = text
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| parse_peer_id(s).map_err(|e| anyhow::anyhow!("--operators: {e}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            return Ok(Self::only(node, ids, "--operators"));
        }
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::open(node)),
            Err(e) => anyhow::bail!("reading the operators list {}: {e}", file.display()),
        };
        let mut ids = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            ids.push(
                parse_peer_id(line)
                    .map_err(|e| anyhow::anyhow!("{}:{}: {e}", file.display(), n + 1))?,
            );
        }
        Ok(Self::only(node, ids, &file.display().to_string()))
    }

    /// True when this node checks mandates.
    pub fn enforced(&self) -> bool {
        self.list.is_some()
    }

    /// True when `id` may act here (always, without a list).
    pub fn allows(&self, id: &NodeId) -> bool {
        self.list.as_ref().is_none_or(|l| l.contains(id))
    }

    /// What `bfgg node` says about the list once at start.
    pub fn describe(&self) -> String {
        match &self.list {
            None => "no operators list (--operators or <config dir>/operators): any peer holding the cluster key can start and stop runs".into(),
            Some(l) => format!(
                "{} operators from {}: other peers holding the cluster key can watch, not act",
                l.len(),
                self.source
            ),
        }
    }

    /// Checks the mandate of a `Submit`.
    pub fn check_request(&self, req: &RunRequest, now_ms: u64) -> Result<(), Refusal> {
        let digest = run_digest(&req.files, &req.target, req.duration_ms, req.rebalance);
        self.check(
            req.mandate.as_ref(),
            &Order::Run { digest },
            "starting a run",
            now_ms,
        )
    }

    /// Checks the mandate a plan carries (`Prepare`); a valid one is then
    /// bound to this run in `used`: the same mandate for another run is
    /// refused.
    pub fn check_plan(
        &self,
        plan: &RunPlan,
        now_ms: u64,
        used: &mut UsedMandates,
    ) -> Result<(), Refusal> {
        let what = format!("starting run {}", plan.run);
        let digest = run_digest(&plan.files, &plan.target, plan.duration_ms, plan.rebalance);
        self.check(
            plan.mandate.as_deref(),
            &Order::Run { digest },
            &what,
            now_ms,
        )?;
        let Some(mandate) = plan.mandate.as_deref().filter(|_| self.enforced()) else {
            return Ok(());
        };
        let used = &mut used.0;
        used.retain(|_, (_, expires)| *expires > now_ms);
        match used.get(&mandate.signature) {
            Some((run, _)) if run != &plan.run => Err(Refusal::Invalid {
                what,
                why: format!("it was already used for run {run}"),
            }),
            Some(_) => Ok(()),
            None if used.len() >= MAX_REMEMBERED => Err(Refusal::Invalid {
                what,
                why: format!(
                    "{MAX_REMEMBERED} runs were ordered here in the last {} minutes; try again later",
                    MANDATE_TTL_MS / 60_000
                ),
            }),
            None => {
                used.insert(
                    mandate.signature.clone(),
                    (plan.run.clone(), mandate.signed_at_ms + MANDATE_TTL_MS),
                );
                Ok(())
            }
        }
    }

    /// Checks the mandate of a `Stop` of `run`.
    pub fn check_stop(
        &self,
        run: &RunId,
        mandate: Option<&Mandate>,
        now_ms: u64,
    ) -> Result<(), Refusal> {
        self.check(
            mandate,
            &Order::Stop { run: run.clone() },
            &format!("stopping run {run}"),
            now_ms,
        )
    }

    fn check(
        &self,
        mandate: Option<&Mandate>,
        order: &Order,
        what: &str,
        now_ms: u64,
    ) -> Result<(), Refusal> {
        let Some(list) = &self.list else {
            return Ok(());
        };
        let what = what.to_string();
        let Some(m) = mandate else {
            return Err(Refusal::Missing {
                what,
                node: self.node.clone(),
            });
        };
        if !list.contains(&m.operator) {
            return Err(Refusal::NotOperator {
                what,
                operator: m.operator.clone(),
                node: self.node.clone(),
                file: self.source.clone(),
            });
        }
        let invalid = |why: String| Refusal::Invalid {
            what: what.clone(),
            why,
        };
        if &m.order != order {
            return Err(invalid(format!(
                "it orders {:?}, not this {:?}",
                m.order, order
            )));
        }
        if m.signed_at_ms + MANDATE_TTL_MS < now_ms {
            return Err(invalid(format!(
                "it was signed {} s ago (at most {} s)",
                (now_ms - m.signed_at_ms) / 1000,
                MANDATE_TTL_MS / 1000
            )));
        }
        if m.signed_at_ms > now_ms + MANDATE_SKEW_MS {
            return Err(invalid(format!(
                "it was signed {} s in this node's future (clocks apart?)",
                (m.signed_at_ms - now_ms) / 1000
            )));
        }
        verify_mandate(m).map_err(invalid)
    }
}

/// The digest an operator signs to run a request: SHA-256 (hex) of its
/// files (path, content hash, size), target and duration overrides and
/// rebalancing, which the coordinator copies into the plan, so that every
/// agent recomputes it.
pub fn run_digest(
    files: &[BundleFile],
    target: &Option<String>,
    duration_ms: Option<u64>,
    rebalance: bool,
) -> String {
    let mut h = Sha256::new();
    for f in files {
        h.update(f.path.as_bytes());
        h.update([0]);
        h.update(f.sha256.as_bytes());
        h.update(f.size.to_be_bytes());
    }
    h.update([0xff]);
    match target {
        Some(t) => {
            h.update([1]);
            h.update(t.as_bytes());
        }
        None => h.update([0]),
    }
    match duration_ms {
        Some(d) => {
            h.update([1]);
            h.update(d.to_be_bytes());
        }
        None => h.update([0]),
    }
    h.update([u8::from(rebalance)]);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Signs the order to run `req` now with `key`, into it.
pub fn sign(key: &OperatorKey, req: &mut RunRequest, now_ms: u64) {
    let digest = run_digest(&req.files, &req.target, req.duration_ms, req.rebalance);
    req.mandate = Some(key.mandate(Order::Run { digest }, now_ms));
}

#[cfg(test)]
mod tests;
