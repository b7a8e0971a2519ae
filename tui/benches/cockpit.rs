//! The cockpit's cost, run by `cargo bench -p bfgg-tui` (and `just bench`):
//! 50 simulated agents each publishing a health message (gossip) and sending
//! a live interval snapshot (to the subscribed cockpit) every second, for two
//! hours of run time. Per simulated second the cockpit decodes the 100
//! messages (real encoded bytes, as from the network), applies them with `App::update`, and renders 20 frames at 120x40 (its
//! redraw ceiling), cycling through the panels; then, apart, 20 frames of
//! the Overview alone at 160x48. Prints the CPU time per simulated second
//! as a share of one core, and the process's resident memory after 10 minutes, 1 hour and
//! 2 hours of intervals: bounded state stops growing once its ring buffers
//! (one hour of points) are full.
//!
//! Not included: libp2p receiving the messages (the swarm task) and the
//! terminal's own output; see docs/COCKPIT.md.

use std::time::{Duration, Instant};

use bfgg_protocol::mesh::{
    ControlRequest, EngineInfo, Gossip, NodeHealth, NodeState, Participant, RunEvent, RunPlan,
};
use bfgg_protocol::{ErrorKind, IntervalSnapshot, NodeId, RunId, decode, encode};
use bfgg_tui::app::{App, Panel};
use bfgg_tui::msg::Msg;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

/// Resident memory of this process, bytes (Linux `/proc/self/statm`).
fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

const AGENTS: usize = 50;

fn node(i: usize) -> NodeId {
    NodeId(format!("12D3KooWsimulatedAgent{i:04}"))
}

fn health(i: usize, now_ms: u64, run: &RunId) -> NodeHealth {
    NodeHealth {
        node: node(i),
        name: format!("agent-{i:02}"),
        labels: [("zone".to_string(), format!("z{}", i % 3))].into(),
        state: NodeState::Running(run.clone()),
        engines: vec![EngineInfo {
            name: "native".into(),
            version: "0.1.0".into(),
        }],
        cpu_pct: 40.0 + (i % 10) as f32,
        mem_bytes: 60 << 20,
        keeping_schedule: true,
        sent_at_ms: now_ms,
        bfgg_version: "0.1.0".into(),
        protocol_version: bfgg_protocol::PROTOCOL_VERSION,
        dropped_messages: 0,
        listen_addrs: vec![format!("/ip4/10.0.0.{i}/tcp/7700/p2p/{}", node(i).0)],
        period_ms: 1_000,
        revision: 1,
    }
}

/// One agent's second: 2 request names at ~1,000 req/s, long-tailed.
fn snapshot(i: usize, index: u32, seed: &mut u64) -> IntervalSnapshot {
    let mut s = IntervalSnapshot::new(index);
    for name in ["GET /products", "POST /checkout"] {
        let stats = s.by_name.entry(name.to_string()).or_default();
        for _ in 0..500 {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = *seed >> 33;
            let us = match r % 100 {
                0 => 200_000 + r % 800_000,
                1..=9 => 20_000 + r % 30_000,
                _ => 800 + r % 4_000,
            };
            stats.requests += 1;
            stats.response_time.record(us + r % 300);
            stats.service_time.record(us);
        }
        if i.is_multiple_of(7) {
            stats.errors.insert(ErrorKind::Status(503), 2);
        }
    }
    s.generator.scheduled = 1000;
    s.generator.active = 20;
    s.live()
}

fn main() {
    let run = RunId("20261130-120000-bench-cafe".into());
    let start_ms = 1_795_000_000_000u64;
    let mut app = App::new();
    app.panel = Panel::Load;
    let plan = RunPlan {
        run: run.clone(),
        coordinator: node(0),
        participants: (0..AGENTS)
            .map(|i| Participant {
                node: node(i),
                name: format!("agent-{i:02}"),
                index: i as u32,
            })
            .collect(),
        start_at_ms: start_ms,
        files: vec![],
        target: None,
        duration_ms: Some(3_600_000),
        rebalance: false,
        load_ms: 3_600_000,
        source_commit: None,
        mandate: None,
    };
    app.update(Msg::Run {
        run: run.clone(),
        from: node(0),
        event: RunEvent::Planned(plan),
    });
    // Pre-encode a pool of distinct snapshots per agent (encoding is the
    // agents' cost, not the cockpit's).
    let mut seed = 42u64;
    let pool: Vec<Vec<IntervalSnapshot>> = (0..AGENTS)
        .map(|i| (0..4).map(|k| snapshot(i, k, &mut seed)).collect())
        .collect();
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).expect("backend");
    let mut large = Terminal::new(TestBackend::new(160, 48)).expect("backend");
    let mut cpu = Duration::ZERO;
    let mut overview = Duration::ZERO;
    let mut measured_seconds = 0u32;
    let mut heap_10min = 0usize;
    let mut heap_1h = 0usize;
    for second in 0..7200u32 {
        let now_ms = start_ms + u64::from(second) * 1000;
        // Per agent: its health (gossip) and its interval (the request an
        // agent sends to a subscribed cockpit).
        let mut msgs: Vec<(usize, Vec<u8>, Vec<u8>)> = Vec::with_capacity(AGENTS);
        for (i, snaps) in pool.iter().enumerate() {
            let health = encode(&Gossip::Health(health(i, now_ms, &run))).expect("enc");
            let mut snap = snaps[(second % 4) as usize].clone();
            snap.index = second;
            let interval = encode(&ControlRequest::Interval {
                run: run.clone(),
                snapshot: snap,
            })
            .expect("enc");
            msgs.push((i, health, interval));
        }
        // Measure every 60th second fully (decode + update + 20 frames);
        // the others only advance the state (an hour of frames is slow).
        let measure = second % 60 == 59;
        let t = Instant::now();
        for (i, health, interval) in &msgs {
            if let Gossip::Health(health) = decode::<Gossip>(health).expect("dec") {
                app.update(Msg::Health {
                    health,
                    at_ms: now_ms,
                });
            }
            if let ControlRequest::Interval { run, snapshot } =
                decode::<ControlRequest>(interval).expect("dec")
            {
                app.update(Msg::Interval {
                    run,
                    node: node(*i),
                    snapshot,
                });
            }
        }
        app.update(Msg::Tick { now_ms });
        if measure {
            for frame in 0..20 {
                app.panel = Panel::ALL[frame % Panel::ALL.len()];
                terminal
                    .draw(|f| bfgg_tui::ui::render(&app, f))
                    .expect("draw");
            }
            cpu += t.elapsed();
            measured_seconds += 1;
            // The default view on a large terminal, drawn alone.
            app.panel = Panel::Overview;
            let t = Instant::now();
            for _ in 0..20 {
                large.draw(|f| bfgg_tui::ui::render(&app, f)).expect("draw");
            }
            overview += t.elapsed();
        }
        if second == 599 {
            heap_10min = rss_bytes();
        }
        if second == 3599 {
            heap_1h = rss_bytes();
        }
    }
    let heap_2h = rss_bytes();
    let per_second = cpu / measured_seconds.max(1);
    println!(
        "cockpit, {AGENTS} agents x (health + interval) per second, 20 frames/s at 120x40: {:.2} ms CPU per second = {:.1} % of one core (wall time on a busy machine: an upper bound)",
        per_second.as_secs_f64() * 1e3,
        per_second.as_secs_f64() * 100.0
    );
    let overview = overview / measured_seconds.max(1);
    println!(
        "the Overview alone, 20 frames/s at 160x48: {:.2} ms CPU per second = {:.1} % of one core",
        overview.as_secs_f64() * 1e3,
        overview.as_secs_f64() * 100.0
    );
    println!(
        "cockpit process RSS: {:.1} MiB after 10 min of intervals, {:.1} MiB after 1 h, {:.1} MiB after 2 h ({} points kept per series)",
        heap_10min as f64 / (1 << 20) as f64,
        heap_1h as f64 / (1 << 20) as f64,
        heap_2h as f64 / (1 << 20) as f64,
        bfgg_tui::app::HISTORY_POINTS
    );
}
