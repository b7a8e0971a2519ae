//! One worker thread: its set-up (a current-thread tokio runtime with a
//! `LocalSet`), the state its tasks share ([`Worker`]: share, plan,
//! connector, recorder, pools, phase, live tasks) and the interval ticker that
//! ships one snapshot per second. The load itself is in the submodules: `open`
//! (arrival cursors and slots), `closed` (users), `iteration` (one iteration:
//! steps, the exchange, checks) and `dry_run`. Everything here is
//! single-threaded: `Rc`/`RefCell`, no locks, no channel message per request.

mod closed;
mod dry_run;
mod iteration;
mod open;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::client::Connector;
use super::cpu::thread_cpu_ns;
use super::plan::Plan;
use super::recorder::Recorder;
use super::timer::PreciseTimer;
use crate::engine::schedule::{ArrivalSchedule, Segment, UserSchedule};
use crate::engine::{EngineEvent, MovedShare, Phase};
use crate::scenario::context::Pools;
use crate::scenario::{LoadModel, Scenario};

pub use dry_run::{DryRunStep, dry_run};

/// Everything a worker thread starts with.
pub(super) struct Setup {
    pub(super) index: usize,
    pub(super) workers: usize,
    pub(super) segment: Segment,
    pub(super) plan: Arc<Plan>,
    pub(super) connector: Connector,
    pub(super) t0: Instant,
    pub(super) seed: u64,
    /// To the run controller; it outlives the workers.
    pub(super) events: mpsc::Sender<EngineEvent>,
    /// From the run controller.
    pub(super) phase: watch::Receiver<Phase>,
    /// Shares taken over mid-run (see [`MovedShare`]).
    pub(super) moved: Option<watch::Receiver<Vec<MovedShare>>>,
}

/// State shared by the tasks of one worker thread.
struct Worker {
    index: usize,
    workers: usize,
    segment: Segment,
    plan: Arc<Plan>,
    connector: Connector,
    t0: Instant,
    seed: u64,
    recorder: RefCell<Recorder>,
    pools: RefCell<Pools>,
    phase: watch::Receiver<Phase>,
    events: mpsc::Sender<EngineEvent>,
    /// Tasks (slots or users) still running; `idle` is notified when it hits 0.
    live: Cell<usize>,
    idle: tokio::sync::Notify,
    /// When the open model's arrivals are due (microseconds, not tokio's 1 ms).
    timer: PreciseTimer,
}

impl Worker {
    /// The shared state of a worker starting with `setup`; the shares taken
    /// over mid-run come back apart, for the load model to adopt.
    fn new(setup: Setup) -> (Rc<Worker>, Option<watch::Receiver<Vec<MovedShare>>>) {
        let Setup {
            index,
            workers,
            segment,
            plan,
            connector,
            t0,
            seed,
            events,
            phase,
            moved,
        } = setup;
        let pools = Pools::new(&plan.scenario.pools, index, workers);
        let w = Rc::new(Worker {
            index,
            workers,
            segment,
            recorder: RefCell::new(Recorder::new(plan.names.clone())),
            plan,
            connector,
            t0,
            seed,
            pools: RefCell::new(pools),
            phase,
            events,
            live: Cell::new(0),
            idle: tokio::sync::Notify::new(),
            timer: PreciseTimer::default(),
        });
        (w, moved)
    }

    fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    fn scenario(&self) -> &Scenario {
        &self.plan.scenario
    }
}

/// Thread entry point.
pub(super) fn run(setup: Setup) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("worker {}: cannot build runtime: {e}", setup.index);
            let _ = setup.events.blocking_send(EngineEvent::Finished {
                source: setup.index,
            });
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, run_worker(setup));
}

async fn run_worker(setup: Setup) {
    let (w, moved) = Worker::new(setup);
    tokio::time::sleep_until(w.t0.into()).await;
    let next_interval = Rc::new(Cell::new(0u32));
    let cpu_mark = Rc::new(Cell::new(thread_cpu_ns()));
    let ticker = tokio::task::spawn_local(tick_intervals(
        w.clone(),
        next_interval.clone(),
        cpu_mark.clone(),
    ));

    let missed = match w.scenario().load.model.clone() {
        LoadModel::Open {
            rate,
            max_in_flight,
        } => {
            let schedule = ArrivalSchedule::new(&rate, w.scenario().load.duration);
            let cap = max_in_flight.div_ceil(w.workers).max(1);
            open::run(&w, schedule, cap, moved).await
        }
        LoadModel::Closed { users, spawn_rate } => {
            closed::run(&w, UserSchedule::new(&users, spawn_rate), moved).await;
            0
        }
        // Only Gatling scenarios have a scripted load (validation), and
        // they never reach this engine.
        LoadModel::Scripted => 0,
    };
    ticker.abort();

    // The last, partial interval: the one the ticker would have shipped
    // next. A starved ticker (or one that had not yet woken at the last
    // boundary) leaves that interval unshipped; labelling the rest with "now"
    // would leave a gap that reads as a missing interval, so what was
    // recorded since the last tick goes under the next index, contiguous.
    let index_now = next_interval.get();
    let busy = busy_permille(&cpu_mark, interval_started(w.t0, index_now));
    let mut snapshot = w.recorder.borrow_mut().take(index_now, busy);
    snapshot.generator.missed += missed;
    super::emit(
        &w.events,
        EngineEvent::Interval {
            source: w.index,
            snapshot,
        },
    )
    .await;
    super::emit(&w.events, EngineEvent::Finished { source: w.index }).await;
}

/// When interval `index` starts.
fn interval_started(t0: Instant, index: u32) -> Instant {
    t0 + Duration::from_secs(u64::from(index))
}

/// Per-mille of one core this thread used since the last mark; moves the mark
/// to now. 0 where the thread's CPU time cannot be read.
fn busy_permille(mark: &Cell<Option<u64>>, since: Instant) -> u32 {
    let now_ns = thread_cpu_ns();
    let used = match (mark.get(), now_ns) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => return 0,
    };
    mark.set(now_ns);
    permille(used, since.elapsed())
}

/// `used_ns` of CPU time over `wall` of wall-clock time, in per-mille of one
/// core, at most 1000 (a thread cannot use more than its core).
fn permille(used_ns: u64, wall: Duration) -> u32 {
    let wall = wall.as_nanos().max(1) as u64;
    ((used_ns.saturating_mul(1000)) / wall).min(1000) as u32
}

/// Ships one snapshot per interval, at each whole second after t0.
async fn tick_intervals(w: Rc<Worker>, next: Rc<Cell<u32>>, cpu_mark: Rc<Cell<Option<u64>>>) {
    loop {
        let index = next.get();
        let boundary = interval_started(w.t0, index + 1);
        tokio::time::sleep_until(boundary.into()).await;
        let busy = busy_permille(&cpu_mark, interval_started(w.t0, index));
        w.timer.adapt(busy);
        let snapshot = w.recorder.borrow_mut().take(index, busy);
        next.set(index + 1);
        super::emit(
            &w.events,
            EngineEvent::Interval {
                source: w.index,
                snapshot,
            },
        )
        .await;
    }
}

/// [`Phase::rank`] of draining and of aborting.
const RANK_DRAINING: u8 = 1;
const RANK_ABORT: u8 = 2;

/// Waits until the phase's [`Phase::rank`] is at least `rank`.
async fn phase_reaches(mut rx: watch::Receiver<Phase>, rank: u8) {
    let _ = rx.wait_for(|p| p.rank() >= rank).await;
}

/// A slot or user task has ended: one fewer live task.
fn task_done(w: &Worker) {
    let live = w.live.get().saturating_sub(1);
    w.live.set(live);
    if live == 0 {
        w.idle.notify_one();
    }
}

/// Waits until every slot or user task has ended, or the run aborts.
async fn wait_for_tasks(w: &Rc<Worker>) {
    let abort = phase_reaches(w.phase.clone(), RANK_ABORT);
    tokio::pin!(abort);
    while w.live.get() > 0 {
        tokio::select! {
            _ = w.idle.notified() => {}
            _ = &mut abort => return,
        }
    }
}
