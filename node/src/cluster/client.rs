//! A light peer: joins the mesh with the cluster key, publishes nothing and
//! takes no load, and asks nodes to act. [`Client`] is `bfgg run --cluster`,
//! `bfgg status` and `bfgg stop`; the cockpit, which owns its own network
//! handle, uses the free functions ([`submit_any`], [`stop_via`],
//! [`save_results`]). Requests are built by [`super::request`].

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bfgg_protocol::mesh::{
    ControlRequest, ControlResponse, Gossip, LogKind, Mandate, Order, RunEvent, RunPlan, RunRequest,
};
use bfgg_protocol::summary::RunSummary;
use bfgg_protocol::{NodeId, Pulse, RunId};
use tokio::sync::mpsc;

use super::logs::copy_log;
use super::operators::OperatorKey;
use super::sys;
use super::view::{ClusterView, IncompatiblePeer, Liveness, PeerView, Timeouts};
use crate::interval_log::LogReader;
use crate::net::{self, NetConfig, NetError, NetEvent, NetHandle};

/// A connected light peer.
pub struct Client {
    net: NetHandle,
    events: mpsc::Receiver<NetEvent>,
    view: ClusterView,
    timeouts: Timeouts,
    joined: Vec<String>,
    /// Signs what this client orders (`bfgg id`'s key), if set.
    operator: Option<OperatorKey>,
}

/// A finished cluster run, as the client received it.
#[derive(Debug)]
pub struct Finished {
    /// The run.
    pub run: RunId,
    /// The coordinator's summary (totals, per name, per agent, thresholds).
    pub summary: RunSummary,
    /// Who wrote the results (the coordinator at the end); its merged
    /// intervals are fetched by [`Client::save_results`].
    pub coordinator: NodeId,
}

/// Live progress of a followed run.
#[derive(Debug)]
pub enum Follow<'a> {
    /// One interval merged over the agents by the coordinator, summed up.
    Interval(&'a Pulse),
    /// Something happened to the run.
    Event(&'a RunEvent),
}

impl Client {
    /// Joins the mesh and waits (up to `wait`) until at least one node's
    /// health has been heard. If none is, but nodes of another protocol
    /// version answered, the client is returned anyway (so `bfgg status` can
    /// show them; nothing can be asked of them).
    pub async fn connect(config: NetConfig, wait: Duration) -> anyhow::Result<Client> {
        let joined = config.join.clone();
        let (net, events) = net::spawn(config)?;
        let mut client = Client {
            net,
            events,
            view: ClusterView::default(),
            timeouts: Timeouts::default(),
            joined,
            operator: None,
        };
        let deadline = Instant::now() + wait;
        // The joined node's view at once (in a large cluster a node's next
        // health message may be 10 s away); else wait for health gossip.
        if let Some(node) = client.joined_node() {
            client
                .ask_view(&node, wait.min(Duration::from_secs(5)))
                .await;
        }
        while client.view.peers().next().is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                if client.view.incompatible().next().is_some() {
                    break;
                }
                anyhow::bail!(
                    "no bfgg node answered within {} s (joined: {}). Is `bfgg node` running there, with the same cluster key?",
                    wait.as_secs(),
                    if client.joined.is_empty() {
                        "none: pass --join ADDR, or run on a LAN where mDNS works".to_string()
                    } else {
                        client.joined.join(", ")
                    }
                );
            }
            client.next_event(left).await;
        }
        Ok(client)
    }

    /// Handles one network event (or times out); returns gossip for callers
    /// that follow runs.
    async fn next_event(&mut self, wait: Duration) -> Option<(NodeId, Gossip)> {
        let ev = tokio::time::timeout(wait, self.events.recv())
            .await
            .ok()??;
        match ev {
            NetEvent::PeerConnected(id) => {
                self.view.reconnected(&id);
                None
            }
            NetEvent::Incompatible {
                peer,
                protocol,
                agent,
            } => {
                self.view
                    .heard_incompatible(peer, protocol, agent, Instant::now());
                None
            }
            NetEvent::Gossip { from, msg } => {
                if let Gossip::Health(h) = &msg
                    && h.node == from
                {
                    self.view.heard(h.clone(), Instant::now(), sys::now_ms());
                }
                Some((from, msg))
            }
            NetEvent::Request { reply, .. } => {
                reply.send(ControlResponse::Rejected {
                    reason: "a light peer serves no requests".into(),
                });
                None
            }
            _ => None,
        }
    }

    /// Asks `node` for every node it knows and adds them to this view
    /// (bounded by `limit`; a failure leaves the view as it was).
    async fn ask_view(&mut self, node: &NodeId, limit: Duration) {
        let ask = self.net.request(node, ControlRequest::Nodes);
        match tokio::time::timeout(limit, ask).await {
            Ok(Ok(ControlResponse::Nodes { nodes })) => {
                let (now, now_ms) = (Instant::now(), sys::now_ms());
                for n in nodes {
                    let silent = Duration::from_millis(n.silent_ms);
                    self.view.heard_via(n.health, silent, now, now_ms);
                }
            }
            Ok(Ok(other)) => tracing::debug!(%node, "asked for its view: {other:?}"),
            Ok(Err(e)) => tracing::debug!(%node, "asked for its view: {e}"),
            Err(_) => tracing::debug!(%node, "asked for its view: no answer in time"),
        }
    }

    /// Listens for `wait`, asks an alive node for the nodes it knows (so a
    /// large cluster, whose nodes publish their health every few seconds, is
    /// seen whole), and returns every node, with its liveness.
    pub async fn nodes(&mut self, wait: Duration) -> Vec<(PeerView, Liveness)> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            self.next_event(left).await;
        }
        let ask = self
            .joined_node()
            .filter(|n| self.view.get(n).is_some())
            .or_else(|| self.alive_nodes().into_iter().next());
        if let Some(node) = ask {
            self.ask_view(&node, Duration::from_secs(5)).await;
        }
        let now = Instant::now();
        let mut out: Vec<(PeerView, Liveness)> = self
            .view
            .peers()
            .map(|p| {
                (
                    p.clone(),
                    self.view.liveness(&p.health.node, now, &self.timeouts),
                )
            })
            .collect();
        out.sort_by(|a, b| {
            a.0.health
                .name
                .cmp(&b.0.health.name)
                .then(a.0.health.node.cmp(&b.0.health.node))
        });
        out
    }

    /// Every peer heard so far that speaks another protocol version, by id
    /// (after [`Client::nodes`] has listened).
    pub fn incompatible(&self) -> Vec<IncompatiblePeer> {
        self.view.incompatible().cloned().collect()
    }

    fn alive_nodes(&self) -> Vec<NodeId> {
        let now = Instant::now();
        let mut ids: Vec<NodeId> = self
            .view
            .peers()
            .filter(|p| self.view.liveness(&p.health.node, now, &self.timeouts) == Liveness::Alive)
            .map(|p| p.health.node.clone())
            .collect();
        ids.sort();
        ids
    }

    /// The node of the first `--join` address that names one (`/p2p/<id>`).
    fn joined_node(&self) -> Option<NodeId> {
        self.joined
            .iter()
            .find_map(|a| a.rsplit_once("/p2p/").map(|(_, id)| NodeId(id.to_string())))
    }

    /// Signs what this client orders from now on with `key` (runs and
    /// stops): nodes with an operators list act only on an operator's
    /// mandate.
    pub fn with_operator(mut self, key: OperatorKey) -> Self {
        self.operator = Some(key);
        self
    }

    /// Hands the run to a node: the first joined one unless the view knows it
    /// is not alive (its health may not have been heard yet on a loaded box:
    /// the user named it, so it is asked first), else the first alive one by
    /// id (the next if one cannot be reached). That node coordinates the run.
    pub async fn submit(&mut self, mut req: RunRequest) -> anyhow::Result<RunPlan> {
        if let Some(key) = &self.operator {
            super::operators::sign(key, &mut req, sys::now_ms());
        }
        let nodes = joined_first(self.alive_nodes(), self.joined_node(), |n| {
            self.view.peers().any(|p| p.health.node == *n)
        });
        if nodes.is_empty() {
            let other: Vec<String> = self
                .view
                .incompatible()
                .map(|p| format!("{} ({} {})", p.node.short(), p.protocol, p.agent))
                .collect();
            if other.is_empty() {
                anyhow::bail!("no alive node to coordinate the run");
            }
            anyhow::bail!(
                "no alive node to coordinate the run; these speak another protocol version: {}",
                other.join(", ")
            );
        }
        submit_any(&self.net, &nodes, req).await
    }

    /// Asks `run`'s coordinator (found through any node that knows it) to stop it.
    pub async fn stop(&mut self, run: &RunId) -> anyhow::Result<()> {
        let mandate = self
            .operator
            .as_ref()
            .map(|k| k.mandate(Order::Stop { run: run.clone() }, sys::now_ms()));
        stop_via(&self.net, &self.alive_nodes(), run, mandate).await
    }

    /// Follows `plan` until its results are written, reporting live intervals
    /// and events; `stop` (once) asks the coordinator to stop the run.
    pub async fn follow(
        &mut self,
        plan: &RunPlan,
        stop: impl std::future::Future<Output = ()>,
        mut on_progress: impl FnMut(Follow<'_>),
    ) -> anyhow::Result<Finished> {
        let run = plan.run.clone();
        let mut coordinator = plan.coordinator.clone();
        let participants: BTreeSet<NodeId> =
            plan.participants.iter().map(|p| p.node.clone()).collect();
        let give_up = Instant::now()
            + Duration::from_millis(plan.start_at_ms.saturating_sub(sys::now_ms()) + plan.load_ms)
            + Duration::from_secs(90);
        // The coordinator gossips each interval merged over the agents.
        let mut shown: Option<u32> = None;
        let mut last_poll = Instant::now();
        let mut stop_sent = false;
        // Connect to every participant, so the run can be followed (and its
        // results fetched) whichever node ends up coordinating it.
        for p in &plan.participants {
            if let Some(view) = self.view.get(&p.node) {
                for addr in view.health.listen_addrs.clone() {
                    if let Err(e) = self.net.dial(&addr).await {
                        tracing::debug!("dialing {addr}: {e}");
                    }
                }
            }
        }
        tokio::pin!(stop);
        loop {
            if Instant::now() > give_up {
                anyhow::bail!("run {run} did not finish in time (coordinator {coordinator})");
            }
            let mut finished_by: Option<NodeId> = None;
            tokio::select! {
                got = self.next_event(Duration::from_millis(500)) => {
                    if let Some((from, msg)) = got {
                        match msg {
                            Gossip::Pulse { run: r, pulse, .. }
                                if r == run
                                    && from == coordinator
                                    && shown.is_none_or(|s| pulse.index > s) =>
                            {
                                shown = Some(pulse.index);
                                on_progress(Follow::Interval(&pulse));
                            }
                            Gossip::Run { run: r, event } if r == run => {
                                match &event {
                                    RunEvent::CoordinatorChanged { node } if node == &from => coordinator = node.clone(),
                                    RunEvent::Finished { .. } => finished_by = Some(from.clone()),
                                    _ => {}
                                }
                                on_progress(Follow::Event(&event));
                            }
                            _ => {}
                        }
                    }
                }
                () = &mut stop, if !stop_sent => {
                    stop_sent = true;
                    if let Err(e) = self.stop(&run).await {
                        tracing::warn!("stopping {run}: {e:#}");
                    }
                }
            }
            // Gossip can be missed: ask the coordinator now and then.
            if finished_by.is_none() && last_poll.elapsed() > Duration::from_secs(3) {
                last_poll = Instant::now();
                match self.status(&run, &coordinator, &participants).await {
                    Some((c, true)) => finished_by = Some(c),
                    Some((c, false)) => coordinator = c,
                    None => {}
                }
            }
            if let Some(by) = finished_by {
                let summary = match self
                    .net
                    .request(&by, ControlRequest::Status { run: run.clone() })
                    .await?
                {
                    ControlResponse::Status {
                        finished: Some(summary),
                        ..
                    } => *summary,
                    other => anyhow::bail!("unexpected status of a finished run: {other:?}"),
                };
                return Ok(Finished {
                    run,
                    summary,
                    coordinator: by,
                });
            }
        }
    }

    /// Stores `finished` in `dir` as a local run's results: the
    /// coordinator's merged intervals, fetched to the end, and its summary
    /// as it is.
    pub async fn save_results(
        &self,
        finished: &Finished,
        scenario: &crate::scenario::Scenario,
        dir: &std::path::Path,
    ) -> anyhow::Result<()> {
        store(
            &self.net,
            &finished.coordinator,
            &finished.run,
            scenario,
            &finished.summary,
            dir,
        )
        .await
    }

    /// Asks the coordinator, then the participants, where the run is:
    /// `(coordinator, finished)`.
    async fn status(
        &self,
        run: &RunId,
        coordinator: &NodeId,
        participants: &BTreeSet<NodeId>,
    ) -> Option<(NodeId, bool)> {
        for node in std::iter::once(coordinator).chain(participants.iter()) {
            let ask = self
                .net
                .request(node, ControlRequest::Status { run: run.clone() });
            if let Ok(Ok(ControlResponse::Status {
                finished,
                coordinator,
            })) = tokio::time::timeout(Duration::from_secs(2), ask).await
            {
                if finished.is_some() {
                    return Some((node.clone(), true));
                }
                return Some((coordinator, false));
            }
        }
        None
    }
}

/// `alive` (by id) with `joined` moved or added to the front, unless it is
/// `known` to the view and not alive.
fn joined_first(
    mut alive: Vec<NodeId>,
    joined: Option<NodeId>,
    known: impl Fn(&NodeId) -> bool,
) -> Vec<NodeId> {
    let Some(j) = joined else { return alive };
    if let Some(at) = alive.iter().position(|n| *n == j) {
        alive.remove(at);
    } else if known(&j) {
        return alive;
    }
    alive.insert(0, j);
    alive
}

/// Asks `nodes` in turn to coordinate `req` until one answers: the plan it
/// made, or the cluster's refusal. A node the request never reached (no
/// address known, the dial failed, another protocol version) passes it on
/// to the next one; any other failure ends the attempt, since that node may
/// have taken the run (a second submission would start it twice).
pub async fn submit_any(
    net: &NetHandle,
    nodes: &[NodeId],
    req: RunRequest,
) -> anyhow::Result<RunPlan> {
    let mut unreachable = Vec::new();
    for node in nodes {
        match net.request(node, ControlRequest::Submit(req.clone())).await {
            Ok(resp) => return plan_from(resp),
            Err(e @ (NetError::UnknownPeer(_) | NetError::Dial(_) | NetError::Incompatible(_))) => {
                tracing::debug!(%node, error = %e, "cannot hand the run to this node");
                unreachable.push(format!("{}: {e}", node.short()));
            }
            Err(e) => {
                return Err(e).with_context(|| format!("handing the run to node {}", node.short()));
            }
        }
    }
    if unreachable.is_empty() {
        anyhow::bail!("no alive node to coordinate the run");
    }
    anyhow::bail!("no node could take the run ({})", unreachable.join("; "))
}

/// The plan a node made, or its refusal.
fn plan_from(resp: ControlResponse) -> anyhow::Result<RunPlan> {
    match resp {
        ControlResponse::Accepted { plan, .. } => Ok(plan),
        ControlResponse::Rejected { reason } => {
            anyhow::bail!("the cluster refused the run: {reason}")
        }
        other => anyhow::bail!("unexpected answer to the run request: {other:?}"),
    }
}

/// Whether `node` lets `operator` start and stop runs: `Some(true)` when it
/// has no operators list or the operator is on it, `Some(false)` when it
/// would refuse, `None` when it did not answer.
pub async fn may_act(net: &NetHandle, node: &NodeId, operator: &NodeId) -> Option<bool> {
    let ask = ControlRequest::Rights {
        operator: operator.clone(),
    };
    match net.request(node, ask).await {
        Ok(ControlResponse::Rights { enforced, operator }) => Some(!enforced || operator),
        _ => None,
    }
}

/// Asks `nodes` in turn to stop `run` (any node forwards to its
/// coordinator) until one says it is done, with the operator's `mandate`
/// (nodes with an operators list need it). A node that refuses for want of
/// the operator right ends the attempt: the others would say the same.
pub async fn stop_via(
    net: &NetHandle,
    nodes: &[NodeId],
    run: &RunId,
    mandate: Option<Mandate>,
) -> anyhow::Result<()> {
    let mut last = None;
    for node in nodes {
        let req = ControlRequest::Stop {
            run: run.clone(),
            mandate: mandate.clone(),
        };
        match net.request(node, req).await {
            Ok(ControlResponse::Done) => return Ok(()),
            Ok(ControlResponse::Rejected { reason }) if reason.contains("read-only:") => {
                anyhow::bail!("the cluster refused to stop run {run}: {reason}")
            }
            Ok(ControlResponse::Rejected { reason }) => last = Some(reason),
            Ok(other) => last = Some(format!("{other:?}")),
            Err(e) => last = Some(e.to_string()),
        }
    }
    anyhow::bail!(
        "no node could stop run {run}: {}",
        last.unwrap_or_else(|| "no alive node".into())
    )
}

/// Fetches `run`'s merged intervals from `coordinator` and writes its results
/// into `<results_root>/<stamp>-<scenario>` as a local run would (the client
/// that started a run keeps its results where the user is). Returns the
/// directory.
pub async fn save_results(
    net: &NetHandle,
    coordinator: &NodeId,
    run: &RunId,
    scenario_path: &std::path::Path,
    summary: &RunSummary,
    results_root: &std::path::Path,
) -> anyhow::Result<std::path::PathBuf> {
    let scenario = crate::scenario::load(scenario_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let started_at =
        std::time::SystemTime::UNIX_EPOCH + Duration::from_millis(summary.started_at_ms);
    let dir = results_root.join(crate::results::dir_name(&scenario.name, started_at));
    store(net, coordinator, run, &scenario, summary, &dir).await?;
    Ok(dir)
}

/// Copies the coordinator's merged log of `run` next to `dir`, then writes
/// the results directory from it with the coordinator's `summary`.
async fn store(
    net: &NetHandle,
    coordinator: &NodeId,
    run: &RunId,
    scenario: &crate::scenario::Scenario,
    summary: &RunSummary,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let fetched = dir.join(".intervals.fetching");
    let give_up = Instant::now() + Duration::from_secs(60);
    copy_log(net, coordinator, run, LogKind::Merged, &fetched, give_up)
        .await
        .with_context(|| format!("fetching the results of {run} from {}", coordinator.short()))?;
    // Each agent's curve, for the report (a coordinator without one, e.g.
    // an older node, just leaves it out).
    if summary.agents.len() > 1
        && let Err(e) = copy_log(
            net,
            coordinator,
            run,
            LogKind::Agents,
            &dir.join(crate::results::AGENTS_FILE),
            give_up,
        )
        .await
    {
        tracing::debug!("no per-agent curves of {run}: {e:#}");
        let _ = std::fs::remove_file(dir.join(crate::results::AGENTS_FILE));
    }
    let started_at =
        std::time::SystemTime::UNIX_EPOCH + Duration::from_millis(summary.started_at_ms);
    let stored = LogReader::open(&fetched).and_then(|reader| {
        crate::results::store_cluster_results(dir, scenario, started_at, reader, summary)
    });
    let _ = std::fs::remove_file(&fetched);
    stored
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use bfgg_protocol::mesh::AgentSelection;
    use tempfile::TempDir;

    use super::*;
    use crate::cluster::{NodeConfig, run_node};
    use crate::net::ClusterKey;

    #[test]
    fn the_joined_node_is_asked_first_unless_known_not_alive() {
        let id = |s: &str| NodeId(s.to_string());
        let alive = vec![id("a"), id("b"), id("c")];
        let none = |_: &NodeId| false;
        // Alive and joined: moved to the front.
        assert_eq!(
            joined_first(alive.clone(), Some(id("c")), none),
            [id("c"), id("a"), id("b")]
        );
        // Joined but not heard yet (a loaded box): still asked first.
        assert_eq!(
            joined_first(alive.clone(), Some(id("z")), none),
            [id("z"), id("a"), id("b"), id("c")]
        );
        // Joined, heard, and no longer alive: left out.
        assert_eq!(
            joined_first(alive.clone(), Some(id("z")), |n| *n == id("z")),
            alive
        );
        assert_eq!(joined_first(alive.clone(), None, none), alive);
    }

    fn net_config(dir: &Path, name: &str, key: &ClusterKey, join: Vec<String>) -> NetConfig {
        let mut net = NetConfig::new(dir.join(name).join("identity.key"), key.clone());
        net.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
        net.join = join;
        net.mdns = false;
        net
    }

    /// One in-process node on 127.0.0.1: its id and its address.
    async fn node(dir: &Path, key: &ClusterKey) -> (NodeId, String) {
        let config = NodeConfig {
            name: "n".into(),
            labels: Default::default(),
            data_dir: dir.join("n"),
            net: net_config(dir, "n", key, Vec::new()),
            timeouts: Timeouts::default(),
            workers: Some(1),
            python: crate::run::DEFAULT_PYTHON.to_owned(),
            s3: None,
            page_intervals: crate::cluster::DEFAULT_PAGE_INTERVALS,
            operators: crate::cluster::operators::Operators::open("n"),
            metrics_addr: None,
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut tx = Some(tx);
        tokio::spawn(run_node(config, std::future::pending(), move |id, addr| {
            if let Some(tx) = tx.take() {
                let _ = tx.send((id.clone(), format!("{addr}/p2p/{id}")));
            }
        }));
        rx.await.expect("the node listens")
    }

    /// Asks for agents no node has, so the coordinator refuses: an answer
    /// that proves the request reached it.
    fn unservable() -> RunRequest {
        RunRequest {
            files: Vec::new(),
            contents: Vec::new(),
            target: None,
            duration_ms: None,
            selection: AgentSelection::Labels([("zone".into(), "nowhere".into())].into()),
            rebalance: false,
            mandate: None,
        }
    }

    #[tokio::test]
    async fn a_run_goes_to_the_next_node_when_one_cannot_be_reached() {
        let dir = TempDir::new().unwrap();
        let key = ClusterKey::generate();
        let (id, addr) = node(dir.path(), &key).await;
        let client = Client::connect(
            net_config(dir.path(), "light", &key, vec![addr]),
            Duration::from_secs(20),
        )
        .await
        .expect("the light peer hears the node");
        // A well-formed peer id nobody here has an address for.
        let gone = NodeId("12D3KooWANdc8Meou56YjaMKb1suT7ZwbB2PAmN8YrbTVBwUsGWZ".into());

        let err = submit_any(&client.net, &[gone.clone(), id], unservable())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("the cluster refused the run"), "{err}");

        let err = submit_any(&client.net, &[gone], unservable())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("no node could take the run"), "{err}");
        assert!(err.contains("unknown peer"), "{err}");
    }
}
