//! One worker thread: a current-thread tokio runtime with a `LocalSet`, the
//! worker's share of the schedule, its connections and its recorder.
//!
//! Open model: "slots" pull the next intended start from the shared arrival
//! cursor, sleep until it, run the iteration, and repeat; a slot that finds
//! its arrival already due spawns another slot (up to the in-flight cap), so
//! the generator keeps the schedule instead of silently lowering the rate.
//! Closed model: one task per virtual user, started and stopped to follow the
//! user schedule. Everything here is single-threaded: `Rc`/`RefCell`, no locks.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bfgg_protocol::ErrorKind;
use rand::Rng;
use tokio::sync::{mpsc, watch};

use super::client::{Conn, Connector, Response};
use super::cpu::thread_cpu_ns;
use super::h1::{H1Error, Want};
use super::plan::{Plan, PlannedStep, Scratch};
use super::recorder::{Recorder, Sample};
use crate::engine::schedule::{ArrivalSchedule, Segment, UserSchedule};
use crate::engine::{EngineEvent, ExtraShare, Phase};
use crate::scenario::check::{ResponseView, run_checks};
use crate::scenario::context::{IterationContext, Pools};
use crate::scenario::{LoadModel, Scenario};

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
    /// Shares taken over mid-run (see [`ExtraShare`]).
    pub(super) extra: Option<watch::Receiver<Vec<ExtraShare>>>,
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
}

impl Worker {
    fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    fn scenario(&self) -> &Scenario {
        &self.plan.scenario
    }
}

/// Half of tokio's timer resolution (1 ms).
const HALF_TIMER_TICK: Duration = Duration::from_micros(500);

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
        extra,
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
    });
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
            let cap = max_in_flight.div_ceil(workers).max(1);
            run_open(&w, schedule, cap, extra).await
        }
        LoadModel::Closed { users, spawn_rate } => {
            run_closed(&w, UserSchedule::new(&users, spawn_rate), extra).await;
            0
        }
    };
    ticker.abort();

    // The last, partial interval.
    let index_now = next_interval.get().max(interval_of(w.t0, Instant::now()));
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

fn interval_of(t0: Instant, at: Instant) -> u32 {
    at.saturating_duration_since(t0).as_secs() as u32
}

fn interval_started(t0: Instant, index: u32) -> Instant {
    t0 + Duration::from_secs(u64::from(index))
}

/// Per-mille of one core this thread used since the last mark.
fn busy_permille(mark: &Cell<Option<u64>>, since: Instant) -> u32 {
    let now_ns = thread_cpu_ns();
    let used = match (mark.get(), now_ns) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => return 0,
    };
    mark.set(now_ns);
    let wall = since.elapsed().as_nanos().max(1) as u64;
    ((used.saturating_mul(1000)) / wall).min(1000) as u32
}

/// Ships one snapshot per interval, at each whole second after t0.
async fn tick_intervals(w: Rc<Worker>, next: Rc<Cell<u32>>, cpu_mark: Rc<Cell<Option<u64>>>) {
    loop {
        let index = next.get();
        let boundary = interval_started(w.t0, index + 1);
        tokio::time::sleep_until(boundary.into()).await;
        let busy = busy_permille(&cpu_mark, interval_started(w.t0, index));
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

/// The open model. Returns the arrivals of this worker's share that were due
/// before the end but never started.
async fn run_open(
    w: &Rc<Worker>,
    schedule: ArrivalSchedule,
    cap: usize,
    extra: Option<watch::Receiver<Vec<ExtraShare>>>,
) -> u64 {
    let cursors: Rc<RefCell<Vec<Rc<Arrivals>>>> = Rc::new(RefCell::new(Vec::new()));
    let main = Rc::new(Arrivals::new(schedule.clone(), w.segment, 0, 0, cap));
    cursors.borrow_mut().push(main.clone());
    spawn_slot(w, &main);
    // Shares taken over mid-run get cursors of their own, starting at the
    // first of their arrivals due at or after the take-over.
    let adopter = extra.map(|mut rx| {
        let (w, cursors, schedule) = (w.clone(), cursors.clone(), schedule.clone());
        tokio::task::spawn_local(async move {
            let mut adopted = 0;
            loop {
                let shares: Vec<ExtraShare> = rx.borrow_and_update().clone();
                for share in &shares[adopted.min(shares.len())..] {
                    let segment = share.segment.split(w.index as u64, w.workers as u64);
                    let before = schedule.cumulative(share.from.as_secs_f64()).ceil() as u64;
                    let id_base = (cursors.borrow().len() as u64) << 32;
                    let cursor = Rc::new(Arrivals::new(
                        schedule.clone(),
                        segment,
                        segment.count_below(before),
                        id_base,
                        cap,
                    ));
                    cursors.borrow_mut().push(cursor.clone());
                    if w.phase() == Phase::Running {
                        spawn_slot(&w, &cursor);
                    }
                }
                adopted = shares.len();
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
    });
    wait_for_tasks(w).await;
    if let Some(a) = adopter {
        a.abort();
    }
    // Missed: arrivals that were part of the run (due before the end of
    // load, or before a stop) but never started.
    let due = match w.phase().load_end() {
        Some(t) if t < w.scenario().load.duration => {
            (schedule.cumulative(t.as_secs_f64()).ceil() as u64).min(schedule.total())
        }
        _ => schedule.total(),
    };
    cursors
        .borrow()
        .iter()
        .map(|c| {
            c.segment
                .count_below(due)
                .saturating_sub(c.first)
                .saturating_sub(c.started.get())
        })
        .sum()
}

/// This worker's cursor into the global arrival schedule (one per share).
struct Arrivals {
    schedule: RefCell<ArrivalSchedule>,
    /// The first arrival of the share this cursor runs (0 unless the share
    /// was taken over mid-run).
    first: u64,
    /// Added to slot numbers, so slots of different cursors never share an
    /// id (and a random stream).
    id_base: u64,
    /// Arrivals of this share claimed so far.
    next: Cell<u64>,
    /// Claimed arrivals that were actually started.
    started: Cell<u64>,
    /// Slots sleeping until their claimed arrival is due.
    waiting: Cell<usize>,
    segment: Segment,
    slots: Cell<usize>,
    cap: usize,
}

impl Arrivals {
    fn new(
        schedule: ArrivalSchedule,
        segment: Segment,
        first: u64,
        id_base: u64,
        cap: usize,
    ) -> Self {
        Self {
            schedule: RefCell::new(schedule),
            first,
            id_base,
            next: Cell::new(first),
            started: Cell::new(0),
            waiting: Cell::new(0),
            segment,
            slots: Cell::new(0),
            cap,
        }
    }

    /// Claims the next arrival: its global number and its due time.
    fn claim(&self, t0: Instant) -> Option<(u64, Instant)> {
        let k = self.next.get();
        let global = self.segment.offset + k * self.segment.stride;
        let at = self.schedule.borrow_mut().time_of(global)?;
        self.next.set(k + 1);
        Some((global, t0 + at))
    }
}

fn spawn_slot(w: &Rc<Worker>, arrivals: &Rc<Arrivals>) {
    arrivals.slots.set(arrivals.slots.get() + 1);
    w.live.set(w.live.get() + 1);
    let (w, arrivals) = (w.clone(), arrivals.clone());
    tokio::task::spawn_local(async move {
        let slot = arrivals.id_base + arrivals.slots.get() as u64;
        open_slot(&w, &arrivals, slot).await;
        task_done(&w);
    });
}

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

async fn open_slot(w: &Rc<Worker>, arrivals: &Rc<Arrivals>, slot: u64) {
    let mut conn: Option<Conn> = None;
    let mut ctx = IterationContext::new(slot, w.seed.wrapping_add(slot));
    let mut scratch = Scratch::default();
    let mut stopping = std::pin::pin!(phase_reaches(w.phase.clone(), RANK_DRAINING));
    loop {
        let Some((iteration, due)) = arrivals.claim(w.t0) else {
            return;
        };
        // Once load has ended, only arrivals due before the end of the
        // schedule start (late, and measured so); after a stop none do.
        if !w.phase().may_start(due - w.t0) {
            return;
        }
        // tokio's timer fires on the first 1 ms tick at or after a deadline;
        // aiming half a tick early centres the send on the intended time
        // (within ±0.5 ms) instead of always up to 1 ms late.
        let wake = due.checked_sub(HALF_TIMER_TICK).unwrap_or(due);
        if wake > Instant::now() {
            arrivals.waiting.set(arrivals.waiting.get() + 1);
            if w.phase() == Phase::Running {
                tokio::select! {
                    _ = tokio::time::sleep_until(wake.into()) => {}
                    // A stop while waiting: start only if still due before it.
                    _ = &mut stopping => {
                        if w.phase().may_start(due - w.t0) {
                            tokio::time::sleep_until(wake.into()).await;
                        }
                    }
                }
            } else {
                // Already draining (so `stopping` has resolved, or will
                // never be polled again), and this arrival is due before it.
                tokio::time::sleep_until(wake.into()).await;
            }
            arrivals.waiting.set(arrivals.waiting.get() - 1);
            if !w.phase().may_start(due - w.t0) {
                return;
            }
        }
        // Keep one slot waiting for the next arrival while this one works, so
        // a long iteration (think time, a slow response) never delays the
        // schedule; the in-flight cap bounds the number of slots.
        if arrivals.waiting.get() == 0 && arrivals.slots.get() < arrivals.cap {
            spawn_slot(w, arrivals);
        }
        let lag = Instant::now().saturating_duration_since(due);
        arrivals.started.set(arrivals.started.get() + 1);
        {
            let mut rec = w.recorder.borrow_mut();
            rec.record_start(lag);
            rec.inc_active();
        }
        run_iteration(w, &mut conn, &mut ctx, &mut scratch, iteration, Some(lag)).await;
        w.recorder.borrow_mut().dec_active();
    }
}

/// The users of one share in the closed model: how many should run now, and
/// which are running.
struct Users {
    segment: Segment,
    /// Started only from this time after t0 (zero for the worker's own share).
    from: Duration,
    target: Rc<Cell<u64>>,
    alive: Rc<RefCell<Vec<bool>>>,
}

impl Users {
    fn new(segment: Segment, from: Duration) -> Self {
        Self {
            segment,
            from,
            target: Rc::new(Cell::new(0)),
            alive: Rc::new(RefCell::new(Vec::new())),
        }
    }

    /// Follows `global` users: starts the missing ones of this share (the
    /// surplus ones see the lower target and end after their iteration).
    fn follow(&self, w: &Rc<Worker>, global: u64, elapsed: Duration) {
        let local = if elapsed >= self.from {
            self.segment.count_below(global)
        } else {
            0
        };
        self.target.set(local);
        let mut alive_now = self.alive.borrow_mut();
        if alive_now.len() < local as usize {
            alive_now.resize(local as usize, false);
        }
        for idx in 0..local as usize {
            if !alive_now[idx] {
                alive_now[idx] = true;
                w.live.set(w.live.get() + 1);
                let (w, target, alive, segment) = (
                    w.clone(),
                    self.target.clone(),
                    self.alive.clone(),
                    self.segment,
                );
                tokio::task::spawn_local(async move {
                    user(&w, segment, idx as u64, &target).await;
                    alive.borrow_mut()[idx] = false;
                    task_done(&w);
                });
            }
        }
    }
}

/// The closed model: follow the user schedule, one task per user, for the
/// worker's share and any share taken over mid-run.
async fn run_closed(
    w: &Rc<Worker>,
    mut schedule: UserSchedule,
    mut extra: Option<watch::Receiver<Vec<ExtraShare>>>,
) {
    let mut shares = vec![Users::new(w.segment, Duration::ZERO)];
    let mut draining = std::pin::pin!(phase_reaches(w.phase.clone(), RANK_DRAINING));
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut draining => break,
        }
        if let Some(rx) = extra.as_mut()
            && rx.has_changed().unwrap_or(false)
        {
            let added: Vec<ExtraShare> = rx.borrow_and_update().clone();
            for share in added.iter().skip(shares.len() - 1) {
                let segment = share.segment.split(w.index as u64, w.workers as u64);
                shares.push(Users::new(segment, share.from));
            }
        }
        let elapsed = w.t0.elapsed();
        let global = schedule.users_at(elapsed);
        for share in &shares {
            share.follow(w, global, elapsed);
        }
    }
    wait_for_tasks(w).await;
}

async fn user(w: &Rc<Worker>, segment: Segment, idx: u64, target: &Cell<u64>) {
    let global_user = segment.offset + idx * segment.stride;
    let mut conn: Option<Conn> = None;
    let mut ctx = IterationContext::new(global_user, w.seed.wrapping_add(global_user));
    let mut scratch = Scratch::default();
    let mut iteration = 0u64;
    w.recorder.borrow_mut().inc_active();
    while w.phase() == Phase::Running && idx < target.get() {
        let it = global_user.wrapping_shl(24) | iteration;
        run_iteration(w, &mut conn, &mut ctx, &mut scratch, it, None).await;
        iteration += 1;
        // Yield so a user whose requests all fail at once cannot starve the thread.
        tokio::task::yield_now().await;
    }
    w.recorder.borrow_mut().dec_active();
}

/// Runs one iteration: a weighted journey, step by step. Requests are recorded
/// as they complete; a transport failure or a failed extraction ends the
/// iteration early, a failed check does not.
async fn run_iteration(
    w: &Rc<Worker>,
    conn: &mut Option<Conn>,
    ctx: &mut IterationContext,
    scratch: &mut Scratch,
    iteration: u64,
    lag: Option<Duration>,
) {
    ctx.begin(iteration);
    let unit: f64 = ctx.rng().random();
    let j = w.plan.pick_journey(unit);
    let journey = w.plan.journey(j);
    for (si, step) in journey.steps.iter().enumerate() {
        let outcome = execute_step(w, conn, ctx, scratch, j, si, lag).await;
        let keep_going = match outcome {
            StepOutcome::Done { sample, keep_going } => {
                w.recorder.borrow_mut().record(sample);
                keep_going
            }
            StepOutcome::Exhausted(pool) => {
                if let Some(pool) = pool {
                    let first = w
                        .recorder
                        .borrow_mut()
                        .exhausted
                        .replace(pool.clone())
                        .is_none();
                    if first {
                        super::emit(&w.events, EngineEvent::Exhausted { pool }).await;
                    }
                }
                false
            }
        };
        if !keep_going {
            return;
        }
        if let Some(think) = step.think_time {
            let unit: f64 = ctx.rng().random();
            let pause = think.sample(unit);
            // A stop interrupts think time and ends the iteration; at the
            // end of the schedule the iteration finishes (until the graceful
            // stop runs out and the worker aborts).
            let until = tokio::time::Instant::now() + pause;
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                _ = phase_reaches(w.phase.clone(), RANK_DRAINING) => {
                    if !w.phase().iterations_finish() {
                        return;
                    }
                    tokio::time::sleep_until(until).await;
                }
            }
        }
    }
}

enum StepOutcome {
    Done {
        sample: Sample,
        keep_going: bool,
    },
    /// A unique pool ran out: `Some(pool)` when it is set to stop the run.
    Exhausted(Option<String>),
}

/// What one request came to, before checks.
enum Exchange {
    /// Nothing was sent: rendering or connecting failed.
    NotSent(ErrorKind),
    /// Sent, but no complete response.
    Failed { error: ErrorKind, bytes_out: u64 },
    /// A complete response.
    Done {
        resp: Response,
        bytes_out: u64,
        service: Duration,
        request: String,
    },
}

/// Renders the request, connects if needed, sends it and reads the response
/// within the request timeout. A reused HTTP/1.1 connection that the server
/// closed before answering is retried once on a fresh connection (the
/// service time then includes the reconnect).
#[allow(clippy::too_many_arguments)]
async fn exchange(
    plan: &Plan,
    connector: &Connector,
    conn: &mut Option<Conn>,
    planned: &PlannedStep,
    ctx: &mut IterationContext,
    pools: &RefCell<Pools>,
    scratch: &mut Scratch,
    want: Want,
    describe: bool,
) -> Exchange {
    let timeout = plan.scenario.target.request_timeout;
    let mut hyper_request = if plan.serialized {
        if let Err(e) = plan.serialize(planned, ctx, &mut pools.borrow_mut(), scratch) {
            return Exchange::NotSent(e);
        }
        None
    } else {
        match plan.build_request(planned, ctx, &mut pools.borrow_mut(), scratch) {
            Ok(r) => Some(r),
            Err(e) => return Exchange::NotSent(e),
        }
    };
    let request = if describe {
        match &hyper_request {
            Some((req, _)) => format!("{} {}", req.method(), req.uri()),
            None => String::from_utf8_lossy(
                scratch
                    .wire
                    .split(|b| *b == b'\r')
                    .next()
                    .unwrap_or_default(),
            )
            .trim_end_matches(" HTTP/1.1")
            .to_string(),
        }
    } else {
        String::new()
    };
    let mut retried = false;
    let sent = Instant::now();
    loop {
        if !conn.as_ref().is_some_and(Conn::is_usable) {
            *conn = None;
            match connector.connect().await {
                Ok(c) => *conn = Some(c),
                Err(e) => return Exchange::NotSent(e),
            }
        }
        let Some(c) = conn.as_mut() else {
            return Exchange::NotSent(ErrorKind::Io("no connection".into()));
        };
        let (result, bytes_out) = match hyper_request.take() {
            None => {
                let bytes_out = scratch.wire.len() as u64;
                let r = tokio::time::timeout(timeout, c.send_bytes(&scratch.wire, want)).await;
                let r = match r {
                    Err(_) => Err(ErrorKind::RequestTimeout),
                    Ok(Ok(resp)) => Ok(resp),
                    Ok(Err(H1Error::ClosedBeforeResponse)) if !retried => {
                        retried = true;
                        *conn = None;
                        continue;
                    }
                    Ok(Err(H1Error::ClosedBeforeResponse)) => Err(ErrorKind::Io(
                        "connection closed before the response".into(),
                    )),
                    Ok(Err(H1Error::Failed(e))) => Err(e),
                };
                (r, bytes_out)
            }
            Some((req, bytes_out)) => {
                let r = tokio::time::timeout(timeout, c.send(req, want.body)).await;
                (r.unwrap_or(Err(ErrorKind::RequestTimeout)), bytes_out)
            }
        };
        return match result {
            Ok(resp) => Exchange::Done {
                resp,
                bytes_out,
                service: sent.elapsed(),
                request,
            },
            Err(error) => {
                *conn = None;
                Exchange::Failed { error, bytes_out }
            }
        };
    }
}

/// One request, from rendering to checks and extraction.
async fn execute_step(
    w: &Rc<Worker>,
    conn: &mut Option<Conn>,
    ctx: &mut IterationContext,
    scratch: &mut Scratch,
    j: usize,
    si: usize,
    lag: Option<Duration>,
) -> StepOutcome {
    let planned = &w.plan.steps[j][si];
    let step = &w.plan.journey(j).steps[si];
    let failed = |error: ErrorKind, bytes_out: u64| StepOutcome::Done {
        sample: Sample {
            name: planned.name_id,
            response_time: None,
            service_time: None,
            bytes_in: 0,
            bytes_out,
            error: Some(error),
        },
        keep_going: false,
    };
    let (resp, bytes_out, service) = match exchange(
        &w.plan,
        &w.connector,
        conn,
        planned,
        ctx,
        &w.pools,
        scratch,
        planned.want,
        false,
    )
    .await
    {
        Exchange::NotSent(ErrorKind::DataExhausted(pool)) => {
            return match w.pools.borrow().exhausted() {
                Some(stop) => StepOutcome::Exhausted(Some(stop.to_string())),
                None => failed(ErrorKind::DataExhausted(pool), 0),
            };
        }
        Exchange::NotSent(e) => return failed(e, 0),
        Exchange::Failed { error, bytes_out } => return failed(error, bytes_out),
        Exchange::Done {
            resp,
            bytes_out,
            service,
            ..
        } => (resp, bytes_out, service),
    };
    let view = ResponseView::new(resp.status, &resp.headers, &resp.body);
    let mut error = run_checks(&step.checks, &view).err();
    let mut keep_going = true;
    for (var, extractor) in &step.extract {
        match extractor.extract(&view) {
            Some(value) => ctx.set_var(var, value),
            None => {
                keep_going = false;
                if error.is_none() {
                    error = Some(ErrorKind::Extract(format!(
                        "{var} from {}",
                        extractor.describe()
                    )));
                }
            }
        }
    }
    StepOutcome::Done {
        sample: Sample {
            name: planned.name_id,
            response_time: Some(service + lag.unwrap_or_default()),
            service_time: Some(service),
            bytes_in: resp.bytes_in,
            bytes_out,
            error,
        },
        keep_going,
    }
}

/// One request of a dry run, as `bfgg check --dry-run` prints it.
#[derive(Debug, Clone)]
pub struct DryRunStep {
    /// Journey name.
    pub journey: String,
    /// Request name.
    pub name: String,
    /// Method and request target as sent (or as written, if never sent).
    pub request: String,
    /// Response status, if a response arrived.
    pub status: Option<u16>,
    /// Time from send to the last byte.
    pub elapsed: Duration,
    /// The error this request counted as, if any.
    pub error: Option<String>,
    /// Variables extracted by this step.
    pub extracted: Vec<(String, String)>,
}

/// Runs every journey once, in order, with one user, and reports each request
/// through the same code path as a run. A journey stops at its first transport
/// or extraction failure, as in a run.
pub async fn dry_run(scenario: Arc<Scenario>) -> anyhow::Result<Vec<DryRunStep>> {
    let plan = Plan::new(scenario)?;
    let connector = Connector::new(&plan.scenario.target)?;
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async move {
            let pools = RefCell::new(Pools::new(&plan.scenario.pools, 0, 1));
            let mut out = Vec::new();
            let mut conn: Option<Conn> = None;
            let mut ctx = IterationContext::new(0, 1);
            let mut scratch = Scratch::default();
            for (j, journey) in plan.scenario.journeys.iter().enumerate() {
                ctx.begin(j as u64);
                for (si, step) in journey.steps.iter().enumerate() {
                    let planned = &plan.steps[j][si];
                    let mut line = DryRunStep {
                        journey: journey.name.clone(),
                        name: step.name.clone(),
                        request: format!("{} {}", step.method, step.path.source()),
                        status: None,
                        elapsed: Duration::ZERO,
                        error: None,
                        extracted: Vec::new(),
                    };
                    let want = Want {
                        body: true,
                        headers: true,
                        ..planned.want
                    };
                    match exchange(
                        &plan,
                        &connector,
                        &mut conn,
                        planned,
                        &mut ctx,
                        &pools,
                        &mut scratch,
                        want,
                        true,
                    )
                    .await
                    {
                        Exchange::NotSent(e) | Exchange::Failed { error: e, .. } => {
                            line.error = Some(e.to_string());
                            out.push(line);
                            break;
                        }
                        Exchange::Done {
                            resp,
                            service,
                            request,
                            ..
                        } => {
                            line.request = request;
                            line.elapsed = service;
                            line.status = Some(resp.status);
                            let view = ResponseView::new(resp.status, &resp.headers, &resp.body);
                            line.error =
                                run_checks(&step.checks, &view).err().map(|e| e.to_string());
                            let mut stop = false;
                            for (var, extractor) in &step.extract {
                                match extractor.extract(&view) {
                                    Some(v) => {
                                        line.extracted.push((var.clone(), v.clone()));
                                        ctx.set_var(var, v);
                                    }
                                    None => {
                                        stop = true;
                                        line.error.get_or_insert_with(|| {
                                            ErrorKind::Extract(format!(
                                                "{var} from {}",
                                                extractor.describe()
                                            ))
                                            .to_string()
                                        });
                                    }
                                }
                            }
                            out.push(line);
                            if stop {
                                break;
                            }
                        }
                    }
                }
            }
            Ok(out)
        })
        .await
}
