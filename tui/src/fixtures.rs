//! Deterministic `App` states for tests.
//!
//! Everything is built by hand and fed through [`App::update`], the way the
//! runtime feeds it: health messages, an incompatible node, scenarios,
//! history, a plan, interval snapshots (latencies recorded into
//! [`LatencyHistogram`]s by formula, not at random) and a fixed clock.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bfgg_protocol::mesh::{EngineInfo, NodeHealth, NodeState, Participant, RunEvent, RunPlan};
use bfgg_protocol::summary::{AgentSummary, NameSummary, RunSummary, ThresholdResult};
use bfgg_protocol::{ErrorKind, IntervalSnapshot, NameStats, NodeId, RunId};

use crate::app::App;
use crate::msg::{HistoryEntry, Msg, ScenarioEntry};

/// The observer clock of every fixture (Unix ms, 2026-11-15 10:40 UTC).
pub(crate) const NOW: u64 = 1_794_739_200_000;

/// The run of [`mid_run`] and [`finished_run`].
pub(crate) fn run_id() -> RunId {
    RunId("20261115-103930-open-model-a1b2".into())
}

/// Node ids: `12D3KooW...` base58-looking, distinct in their last 8
/// characters.
pub(crate) fn node(i: usize) -> NodeId {
    const TAILS: [&str; 5] = ["k3Xq9Pzd", "Hm4tR7wa", "Qe2Lc8Nv", "Ub5Jy6Gs", "Zz9Yy8Xx"];
    NodeId(format!(
        "12D3KooWGx7aQv3pL9mZrT2uYbE8cN1dK5fH4jS6wXyA{}",
        TAILS[i % TAILS.len()]
    ))
}

/// The agents' names, by [`node`] index.
pub(crate) const NAMES: [&str; 4] = ["agent-a", "agent-b", "agent-c", "agent-d"];

/// A health message of node `i` in `state`.
pub(crate) fn health(i: usize, state: NodeState) -> NodeHealth {
    let mut labels = BTreeMap::new();
    let mut engines = vec![EngineInfo {
        name: "native".into(),
        version: "0.4.0".into(),
    }];
    match i {
        1 => {
            labels.insert("zone".into(), "eu-west".into());
            labels.insert("tier".into(), "large".into());
            engines.push(EngineInfo {
                name: "locust".into(),
                version: "2.32.1".into(),
            });
        }
        2 => engines.push(EngineInfo {
            name: "gatling".into(),
            version: "3.13.1".into(),
        }),
        _ => {}
    }
    let busy = !matches!(state, NodeState::Idle);
    NodeHealth {
        node: node(i),
        name: NAMES[i % NAMES.len()].into(),
        labels,
        state,
        engines,
        cpu_pct: if busy {
            [41.5, 63.0, 97.2, 5.0][i % 4]
        } else {
            2.5
        },
        mem_bytes: [48_200_000, 51_900_000, 63_300_000, 40_100_000][i % 4],
        keeping_schedule: !(busy && i == 2),
        sent_at_ms: 0,
        bfgg_version: "0.4.0".into(),
        protocol_version: 1,
        dropped_messages: if i == 1 { 3 } else { 0 },
        listen_addrs: vec![format!("/ip4/10.0.0.{}/tcp/7400/p2p/{}", 11 + i, node(i))],
        period_ms: 1_000,
        revision: 1,
    }
}

/// Node `i`'s health heard `ago_ms` before [`NOW`] from a clock
/// `offset_ms` behind ours.
pub(crate) fn heard(i: usize, state: NodeState, ago_ms: u64, offset_ms: i64) -> Msg {
    let at_ms = NOW - ago_ms;
    let mut h = health(i, state);
    h.sent_at_ms = (at_ms as i64 - offset_ms) as u64;
    Msg::Health { health: h, at_ms }
}

/// Node `i`'s clock offset, ms.
fn offset(i: usize) -> i64 {
    [3, -12, 148, 0][i % 4]
}

/// Three alive idle agents (one with labels), one unresponsive, one node of
/// another protocol version, two scenarios, two stored runs.
pub(crate) fn idle_cluster() -> App {
    let mut app = App::new();
    for i in 0..3 {
        app.update(heard(i, NodeState::Idle, 300 + 100 * i as u64, offset(i)));
    }
    app.update(heard(3, NodeState::Idle, 7_200, offset(3)));
    app.update(Msg::Incompatible {
        node: node(4),
        protocol: "/bfgg/control/2".into(),
    });
    app.update(Msg::Scenarios(vec![
        ScenarioEntry {
            label: "open-model".into(),
            path: "scenarios/open-model.toml".into(),
        },
        ScenarioEntry {
            label: "closed-model".into(),
            path: "scenarios/closed-model.toml".into(),
        },
    ]));
    let store = PathBuf::from("/home/op/.local/share/bfgg/results");
    app.update(Msg::History(vec![
        HistoryEntry {
            dir: store.join("20261114-093000-open-model-7f3e"),
            name: "20261114-093000-open-model-7f3e".into(),
            requests: Some(120_034),
            errors: Some(12),
            p99_ms: Some(43.21),
            scenario: Some(store.join("20261114-093000-open-model-7f3e/scenario/open-model.toml")),
        },
        HistoryEntry {
            dir: store.join("20261113-171205-closed-model-0c9d"),
            name: "20261113-171205-closed-model-0c9d".into(),
            requests: None,
            errors: None,
            p99_ms: None,
            scenario: None,
        },
    ]));
    app.update(Msg::Tick { now_ms: NOW });
    app
}

/// The plan of [`run_id`]: agents 0-2, coordinated by agent 0.
pub(crate) fn plan() -> RunPlan {
    RunPlan {
        run: run_id(),
        coordinator: node(0),
        participants: (0..3)
            .map(|i| Participant {
                node: node(i),
                name: NAMES[i].into(),
                index: i as u32,
            })
            .collect(),
        start_at_ms: NOW - 31_000,
        files: Vec::new(),
        target: None,
        duration_ms: Some(60_000),
        rebalance: false,
        load_ms: 65_000,
        source_commit: None,
        mandate: None,
    }
}

/// Request names of the fixture run, with their base latency (µs) and share
/// of the requests (percent).
const REQUESTS: [(&str, u64, u64); 2] =
    [("GET /products", 8_000, 70), ("POST /checkout", 25_000, 30)];

/// Agent `agent`'s snapshot of interval `index`: a ramp of scheduled
/// arrivals, agent 2 falling behind after interval 20, latencies spread by
/// formula with a slow tail, 503s on agent 1's checkouts, timeouts on agent
/// 2's product pages from interval 15.
pub(crate) fn snapshot(agent: usize, index: u32) -> IntervalSnapshot {
    let mut snap = IntervalSnapshot::new(index);
    let scheduled = 20 + 4 * u64::from(index);
    let achieved = if agent == 2 && index > 20 {
        scheduled * 8 / 10
    } else {
        scheduled
    };
    for (name, base, share) in REQUESTS {
        let mut stats = NameStats::default();
        let n = achieved * share / 100;
        for j in 0..n {
            let spread = base + base * ((j * 7 + u64::from(index) * 3 + agent as u64) % 10) / 10;
            let latency = if j % 50 == 49 { spread * 12 } else { spread };
            stats.requests += 1;
            stats.bytes_in += 2_048;
            stats.bytes_out += 256;
            stats.response_time.record(latency);
            stats.service_time.record(latency * 9 / 10);
        }
        if agent == 1 && name.starts_with("POST") {
            let e = n / 20;
            if e > 0 {
                stats.errors.insert(ErrorKind::Status(503), e);
            }
        }
        if agent == 2 && name.starts_with("GET") && index >= 15 {
            stats
                .errors
                .insert(ErrorKind::RequestTimeout, 1 + u64::from(index % 3));
        }
        snap.by_name.insert(name.into(), stats);
    }
    snap.generator.scheduled = scheduled;
    snap.generator.active = achieved / 8 + agent as u64;
    snap.generator.cpu_busy_permille = if agent == 2 { 990 } else { 400 };
    snap
}

/// [`idle_cluster`] with a run on agents 0-2: planned, 30 intervals of
/// snapshots from each, the agents' health saying they run it.
pub(crate) fn mid_run() -> App {
    let mut app = idle_cluster();
    for i in 0..3 {
        app.update(heard(
            i,
            NodeState::Running(run_id()),
            200 + 150 * i as u64,
            offset(i),
        ));
    }
    app.update(Msg::Run {
        run: run_id(),
        from: node(0),
        event: RunEvent::Planned(plan()),
    });
    for index in 0..30 {
        for agent in 0..3 {
            app.update(Msg::Interval {
                run: run_id(),
                node: node(agent),
                snapshot: snapshot(agent, index),
            });
        }
    }
    app.update(Msg::Tick { now_ms: NOW });
    app
}

/// The summary the coordinator of [`mid_run`]'s run publishes at its end.
pub(crate) fn summary(app: &App) -> RunSummary {
    let run = app.run.as_ref().expect("a run");
    let duration_s = run.points.len() as f64;
    let total = NameSummary::from_stats(&run.totals(), duration_s);
    let by_name = run
        .total
        .iter()
        .map(|(n, s)| (n.clone(), NameSummary::from_stats(s, duration_s)))
        .collect();
    let p99 = total.latency_ms.p99;
    let error_rate = total.error_rate;
    RunSummary {
        scenario: "open-model".into(),
        engine: "native".into(),
        model: "open".into(),
        target: "http://shop.test:8080".into(),
        started_at_ms: NOW - 31_000,
        duration_s,
        stopped_early: false,
        stop_reason: None,
        total,
        by_name,
        thresholds: vec![
            ThresholdResult {
                expression: "p99 < 250ms".into(),
                passed: p99 < 250.0,
                actual: p99,
            },
            ThresholdResult {
                expression: "error_rate < 0.5%".into(),
                passed: error_rate < 0.005,
                actual: error_rate,
            },
        ],
        generator: Default::default(),
        agents: (0..3)
            .map(|i| {
                let a = &run.agents[&node(i)];
                AgentSummary {
                    node: node(i).0,
                    name: NAMES[i].into(),
                    index: i as u32,
                    requests: a.total.requests,
                    errors: a.total.error_count(),
                    clock_offset_ms: offset(i) as f64,
                    started_at_ms: NOW - 31_000,
                    status: "complete".into(),
                    last_heard_ms: None,
                    missing_intervals: Vec::new(),
                    mesh_bytes_per_s: 1_800.0,
                    rebalanced_at_ms: None,
                }
            })
            .collect(),
        partial: false,
    }
}

/// [`mid_run`] after the run finished: summary in, agents idle again.
pub(crate) fn finished_run() -> App {
    let mut app = mid_run();
    let summary = summary(&app);
    app.update(Msg::Run {
        run: run_id(),
        from: node(0),
        event: RunEvent::Finished {
            summary: Box::new(summary),
        },
    });
    for i in 0..3 {
        app.update(heard(i, NodeState::Idle, 100, offset(i)));
    }
    app.update(Msg::Tick { now_ms: NOW });
    app
}
