//! bfgg's own HTTP engine: one worker thread per core, each a single-threaded
//! tokio runtime that owns its connections and its [`recorder::Recorder`].
//!
//! The global schedule is split exactly between workers by
//! [`Segment`](super::schedule::Segment) stride, so the sum of the workers'
//! load is the requested load. Each worker ships one snapshot per interval.

mod client;
mod cpu;
mod h1;
mod plan;
mod recorder;
mod timer;
mod worker;

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use super::{EngineConfig, EngineEvent, EngineHandle, Phase};
use crate::scenario::Scenario;

pub use worker::{DryRunStep, dry_run};

/// Starts `config.workers` worker threads on `scenario`.
pub fn start(scenario: Arc<Scenario>, config: EngineConfig) -> anyhow::Result<EngineHandle> {
    let plan = Arc::new(plan::Plan::new(scenario)?);
    let connector = client::Connector::new(&plan.scenario.target)?;
    let workers = config.workers.max(1);
    // A few intervals of slack per worker; the aggregator drains it every second.
    let (events_tx, events) = mpsc::channel(16 * workers + 16);
    let (phase, phase_rx) = watch::channel(Phase::Running);
    let mut threads = Vec::with_capacity(workers);
    for index in 0..workers {
        let setup = worker::Setup {
            index,
            workers,
            segment: config.segment.split(index as u64, workers as u64),
            plan: plan.clone(),
            connector: connector.clone(),
            t0: config.t0,
            seed: config.seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            moved: config.moved.clone(),
            events: events_tx.clone(),
            phase: phase_rx.clone(),
        };
        let handle = std::thread::Builder::new()
            .name(format!("bfgg-worker-{index}"))
            .spawn(move || worker::run(setup))?;
        threads.push(handle);
    }
    Ok(EngineHandle {
        events,
        sources: workers,
        phase,
        threads,
    })
}

/// Forwards an event to the run controller; a closed channel means the run is
/// gone and there is nobody left to tell.
async fn emit(tx: &mpsc::Sender<EngineEvent>, event: EngineEvent) {
    let _ = tx.send(event).await;
}
