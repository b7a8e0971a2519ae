//! The open model on one worker: arrival cursors and the slots that run them.
//!
//! The run's [`ArrivalSchedule`] is built once and shared (`Rc`) by every
//! share this worker runs, and a share ([`Share`]: segment, first arrival,
//! slot ids, cap) is fixed once adopted; all that moves is the share's
//! [`Cursor`] (arrivals claimed and started, slots waiting and spawned). A slot
//! claims the next arrival, sleeps until it is due, runs the iteration and
//! repeats; a slot that finds nobody waiting for the next arrival spawns
//! another (up to the in-flight cap), so a long iteration never delays the
//! schedule and lag is counted rather than hidden by a lower rate.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::iteration::run_iteration;
use super::{RANK_DRAINING, Worker, phase_reaches, task_done, wait_for_tasks};
use crate::engine::native::client::Conn;
use crate::engine::native::plan::Scratch;
use crate::engine::schedule::{ArrivalSchedule, Segment};
use crate::engine::{MovedShare, Phase};
use crate::scenario::context::IterationContext;

/// The open model. Returns the arrivals of this worker's shares that were due
/// before the end but never started.
pub(super) async fn run(
    w: &Rc<Worker>,
    schedule: ArrivalSchedule,
    cap: usize,
    moved: Option<watch::Receiver<Vec<MovedShare>>>,
) -> u64 {
    let schedule = Rc::new(schedule);
    let cursors: Rc<RefCell<Vec<Rc<Arrivals>>>> = Rc::new(RefCell::new(Vec::new()));
    let main = Rc::new(Arrivals::new(
        &schedule,
        Share {
            segment: w.segment,
            first: 0,
            id_base: 0,
            cap,
        },
    ));
    cursors.borrow_mut().push(main.clone());
    spawn_slot(w, &main);
    // Shares taken over mid-run get cursors of their own, starting at the
    // first of their arrivals due at or after the take-over.
    let adopter = moved.map(|mut rx| {
        let (w, cursors, schedule) = (w.clone(), cursors.clone(), schedule.clone());
        tokio::task::spawn_local(async move {
            let mut adopted = 0;
            loop {
                let shares: Vec<MovedShare> = rx.borrow_and_update().clone();
                for share in &shares[adopted.min(shares.len())..] {
                    let segment = share.segment.split(w.index as u64, w.workers as u64);
                    let id_base = (cursors.borrow().len() as u64) << 32;
                    let cursor = Rc::new(Arrivals::new(
                        &schedule,
                        Share {
                            segment,
                            first: first_from(&schedule, segment, share.from),
                            id_base,
                            cap,
                        },
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
    let due = due_before_end(&schedule, w.phase().load_end(), w.scenario().load.duration);
    cursors.borrow().iter().map(|c| c.missed(due)).sum()
}

/// The first arrival of `segment`, counted within the segment, due at or
/// after `from` (after t0): where a share taken over at `from` starts.
fn first_from(schedule: &ArrivalSchedule, segment: Segment, from: Duration) -> u64 {
    let before = schedule.cumulative(from.as_secs_f64()).ceil() as u64;
    segment.count_below(before)
}

/// Global arrivals that were part of the run: those due before the end of
/// load when a stop came before the end of the schedule (`load_end` before
/// `duration`), else the whole schedule.
fn due_before_end(
    schedule: &ArrivalSchedule,
    load_end: Option<Duration>,
    duration: Duration,
) -> u64 {
    match load_end {
        Some(t) if t < duration => {
            (schedule.cumulative(t.as_secs_f64()).ceil() as u64).min(schedule.total())
        }
        _ => schedule.total(),
    }
}

/// One share of the schedule as this worker runs it. Fixed once the share is
/// adopted; read by every slot of the share.
#[derive(Debug, Clone, Copy)]
struct Share {
    segment: Segment,
    /// The first arrival of the share this worker runs, counted within the
    /// segment (0 unless the share was taken over mid-run).
    first: u64,
    /// Added to slot numbers, so slots of different shares never share an
    /// id (and a random stream).
    id_base: u64,
    /// Slots of this share at most (the worker's part of `max_in_flight`).
    cap: usize,
}

/// Where the slots of one share have got: the only open-model state that
/// changes while the share runs.
#[derive(Debug)]
struct Cursor {
    /// The run's schedule, used only for [`ArrivalSchedule::time_of`], which
    /// remembers the ramp segment it last looked at: each cursor keeps its
    /// own copy (made once, when the share is adopted) so that hint follows
    /// its own arrivals.
    times: ArrivalSchedule,
    /// The next arrival to claim, counted within the segment (it starts at
    /// [`Share::first`]).
    next: u64,
    /// Claimed arrivals that were actually started.
    started: u64,
    /// Slots sleeping until their claimed arrival is due.
    waiting: usize,
    /// Slots spawned so far.
    slots: usize,
}

/// A share and its cursor, held (`Rc`) by the share's slots, which take turns
/// on the cursor between awaits.
#[derive(Debug)]
struct Arrivals {
    share: Share,
    cursor: RefCell<Cursor>,
}

impl Arrivals {
    fn new(schedule: &ArrivalSchedule, share: Share) -> Self {
        Self {
            cursor: RefCell::new(Cursor {
                times: schedule.clone(),
                next: share.first,
                started: 0,
                waiting: 0,
                slots: 0,
            }),
            share,
        }
    }

    /// Claims the next arrival of the share: its global number and when it is
    /// due after t0. `None` once the share has no arrival left before the end
    /// (and every later call too).
    fn claim(&self) -> Option<(u64, Duration)> {
        let mut c = self.cursor.borrow_mut();
        let k = c.next;
        let global = self.share.segment.offset + k * self.share.segment.stride;
        let at = c.times.time_of(global)?;
        c.next = k + 1;
        Some((global, at))
    }

    /// One more slot; returns its id: the share's id base plus the slots
    /// spawned so far, distinct across the worker's shares and taken when
    /// the slot is spawned (two slots spawned before either runs get two
    /// ids, so two random streams and two user numbers).
    fn add_slot(&self) -> u64 {
        let mut c = self.cursor.borrow_mut();
        c.slots += 1;
        self.share.id_base + c.slots as u64
    }

    /// Whether a slot starting its arrival should spawn another: nobody is
    /// waiting for the next arrival and the cap allows one more.
    fn wants_another_slot(&self) -> bool {
        let c = self.cursor.borrow();
        c.waiting == 0 && c.slots < self.share.cap
    }

    fn wait_begins(&self) {
        self.cursor.borrow_mut().waiting += 1;
    }

    fn wait_ends(&self) {
        self.cursor.borrow_mut().waiting -= 1;
    }

    fn started(&self) {
        self.cursor.borrow_mut().started += 1;
    }

    /// Arrivals of this share among the first `due` global ones that this
    /// worker should have run and never started.
    fn missed(&self, due: u64) -> u64 {
        self.share
            .segment
            .count_below(due)
            .saturating_sub(self.share.first)
            .saturating_sub(self.cursor.borrow().started)
    }
}

fn spawn_slot(w: &Rc<Worker>, arrivals: &Rc<Arrivals>) {
    let slot = arrivals.add_slot();
    w.live.set(w.live.get() + 1);
    let (w, arrivals) = (w.clone(), arrivals.clone());
    tokio::task::spawn_local(async move {
        open_slot(&w, &arrivals, slot).await;
        task_done(&w);
    });
}

async fn open_slot(w: &Rc<Worker>, arrivals: &Rc<Arrivals>, slot: u64) {
    let mut conn: Option<Conn> = None;
    let mut ctx = IterationContext::new(slot, w.seed.wrapping_add(slot));
    let mut scratch = Scratch::default();
    let mut stopping = std::pin::pin!(phase_reaches(w.phase.clone(), RANK_DRAINING));
    loop {
        let Some((iteration, at)) = arrivals.claim() else {
            return;
        };
        let due = w.t0 + at;
        // Once load has ended, only arrivals due before the end of the
        // schedule start (late, and measured so); after a stop none do.
        if !w.phase().may_start(at) {
            return;
        }
        // The worker's precise timer ends the sleep within microseconds of
        // `due` (tokio's would end on a 1 ms tick).
        if due > Instant::now() {
            arrivals.wait_begins();
            if w.phase() == Phase::Running {
                tokio::select! {
                    _ = w.timer.sleep_until(due) => {}
                    // A stop while waiting: start only if still due before it.
                    _ = &mut stopping => {
                        if w.phase().may_start(at) {
                            w.timer.sleep_until(due).await;
                        }
                    }
                }
            } else {
                // Already draining (so `stopping` has resolved, or will
                // never be polled again), and this arrival is due before it.
                w.timer.sleep_until(due).await;
            }
            arrivals.wait_ends();
            if !w.phase().may_start(at) {
                return;
            }
        }
        // Keep one slot waiting for the next arrival while this one works, so
        // a long iteration (think time, a slow response) never delays the
        // schedule; the in-flight cap bounds the number of slots.
        if arrivals.wants_another_slot() {
            spawn_slot(w, arrivals);
        }
        let lag = Instant::now().saturating_duration_since(due);
        arrivals.started();
        {
            let mut rec = w.recorder.borrow_mut();
            rec.record_start(lag);
            rec.inc_active();
        }
        run_iteration(w, &mut conn, &mut ctx, &mut scratch, iteration, Some(lag)).await;
        w.recorder.borrow_mut().dec_active();
    }
}

#[cfg(test)]
mod tests;
