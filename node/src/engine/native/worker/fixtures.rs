//! Test fixtures shared by the worker's tests: a `bfgg target` on
//! 127.0.0.1 port 0, scenarios written against it, a [`Worker`] built on the
//! test's own runtime (no thread) with the other ends of its channels, and a
//! whole engine driven to the end of its schedule as the run controller does.

use std::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bfgg_protocol::IntervalSnapshot;
use tokio::sync::{mpsc, watch};

use super::{Setup, Worker};
use crate::engine::native::client::Connector;
use crate::engine::native::plan::Plan;
use crate::engine::schedule::Segment;
use crate::engine::{EngineConfig, EngineEvent, Phase};
use crate::scenario::Scenario;
use crate::target::{TargetConfig, TargetServer};

/// Every wait in these tests gives up after this long.
pub(super) const TIMEOUT: Duration = Duration::from_secs(20);

/// The built-in target server with its defaults, on 127.0.0.1 port 0, served
/// by the calling runtime.
pub(super) async fn target() -> TargetServer {
    TargetServer::start(TargetConfig {
        listen: "127.0.0.1:0".parse().expect("an address"),
        ..TargetConfig::default()
    })
    .await
    .expect("the target starts")
}

/// A scenario against `addr`: `rest` is the TOML after the `[target]` table
/// (whose `base_url` this sets); data files resolve against the current
/// directory.
pub(super) fn scenario(addr: SocketAddr, rest: &str) -> Arc<Scenario> {
    scenario_in(addr, rest, Path::new("."))
}

/// As [`scenario`], with data files resolved against `dir`.
pub(super) fn scenario_in(addr: SocketAddr, rest: &str, dir: &Path) -> Arc<Scenario> {
    let text = format!("[target]\nbase_url = \"http://{addr}\"\n{rest}");
    match crate::scenario::parse(&text, Path::new("t.toml"), dir) {
        Ok(s) => Arc::new(s),
        Err(e) => panic!("invalid test scenario: {e}\n{text}"),
    }
}

/// A worker of its own (index 0 of 1, seed 7, t0 now) running `segment` of
/// the schedule, and the other ends of its channels: the phase it follows and
/// the events it sends. Its tasks need a `LocalSet`.
pub(super) struct TestWorker {
    pub(super) w: Rc<Worker>,
    pub(super) phase: watch::Sender<Phase>,
    pub(super) events: mpsc::Receiver<EngineEvent>,
}

pub(super) fn worker(scenario: Arc<Scenario>, segment: Segment) -> TestWorker {
    let plan = Arc::new(Plan::new(scenario).expect("a plan"));
    let connector = Connector::new(&plan.scenario.target).expect("a connector");
    let (events_tx, events) = mpsc::channel(64);
    let (phase, phase_rx) = watch::channel(Phase::Running);
    let (w, _) = Worker::new(Setup {
        index: 0,
        workers: 1,
        segment,
        plan,
        connector,
        t0: Instant::now(),
        seed: 7,
        events: events_tx,
        phase: phase_rx,
        moved: None,
    });
    TestWorker { w, phase, events }
}

/// What a whole engine sent, per source, in order.
#[derive(Debug, Default)]
pub(super) struct SourceEvents {
    pub(super) intervals: Vec<IntervalSnapshot>,
    /// Events after `Finished` (there should be none).
    pub(super) after_finished: usize,
    pub(super) finished: bool,
}

/// Runs `scenario` on `workers` engine threads from now to the end of its
/// schedule as the run controller does (`Draining` with catch-up at the end
/// of load, `Abort` once the graceful stop runs out) and returns what each
/// source sent.
pub(super) async fn run_engine(scenario: Arc<Scenario>, workers: usize) -> Vec<SourceEvents> {
    let load = scenario.load.clone();
    let t0 = Instant::now();
    let mut handle = crate::engine::native::start(
        scenario,
        EngineConfig {
            segment: Segment::WHOLE,
            workers,
            t0,
            seed: 7,
            moved: None,
        },
    )
    .expect("the engine starts");
    let mut out: Vec<SourceEvents> = (0..handle.sources).map(|_| Default::default()).collect();
    let end_of_load = tokio::time::sleep_until((t0 + load.duration).into());
    tokio::pin!(end_of_load);
    let abort_at = tokio::time::sleep_until((t0 + load.duration + load.graceful_stop).into());
    tokio::pin!(abort_at);
    let give_up = tokio::time::sleep(TIMEOUT);
    tokio::pin!(give_up);
    let (mut draining, mut aborted) = (false, false);
    while out.iter().any(|s| !s.finished) {
        tokio::select! {
            event = handle.events.recv() => match event {
                Some(EngineEvent::Interval { source, snapshot }) => {
                    let s = &mut out[source];
                    if s.finished {
                        s.after_finished += 1;
                    }
                    s.intervals.push(snapshot);
                }
                Some(EngineEvent::Finished { source }) => out[source].finished = true,
                Some(EngineEvent::Exhausted { .. }) => {}
                Some(EngineEvent::Failed { reason }) => panic!("the native engine failed: {reason}"),
                None => break,
            },
            () = &mut end_of_load, if !draining => {
                draining = true;
                let _ = handle.phase.send(Phase::Draining {
                    load_end: load.duration,
                    end_of_schedule: true,
                });
            }
            () = &mut abort_at, if !aborted => {
                aborted = true;
                let _ = handle.phase.send(Phase::Abort { load_end: load.duration });
            }
            () = &mut give_up => panic!("the engine did not finish within {TIMEOUT:?}"),
        }
    }
    for t in handle.threads.drain(..) {
        t.join().expect("a worker thread ends without panicking");
    }
    out
}
