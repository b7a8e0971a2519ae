//! The closed model on one worker: one task per virtual user, started and
//! stopped to follow the global [`UserSchedule`]. Each share (the worker's
//! own, and any taken over mid-run) keeps its [`Users`]: how many of its
//! users should run now and which are running. A user above the target ends
//! after its iteration; it is never started twice.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use tokio::sync::watch;

use super::iteration::run_iteration;
use super::{RANK_DRAINING, Worker, phase_reaches, task_done, wait_for_tasks};
use crate::engine::native::client::Conn;
use crate::engine::native::plan::Scratch;
use crate::engine::schedule::{Segment, UserSchedule};
use crate::engine::{MovedShare, Phase};
use crate::scenario::context::IterationContext;

/// The closed model: follow the user schedule, one task per user, for the
/// worker's share and any share taken over mid-run.
pub(super) async fn run(
    w: &Rc<Worker>,
    mut schedule: UserSchedule,
    mut moved: Option<watch::Receiver<Vec<MovedShare>>>,
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
        if let Some(rx) = moved.as_mut()
            && rx.has_changed().unwrap_or(false)
        {
            let added: Vec<MovedShare> = rx.borrow_and_update().clone();
            for share in added.iter().skip(shares.len() - 1) {
                let segment = share.segment.split(w.index as u64, w.workers as u64);
                shares.push(Users::new(segment, share.from));
            }
        }
        let elapsed = w.t0.elapsed();
        let global = schedule.users_at(elapsed);
        for share in &shares {
            share.follow(global, elapsed, |idx| spawn_user(w, share, idx));
        }
    }
    wait_for_tasks(w).await;
}

/// The users of one share in the closed model: how many should run now, and
/// which are running.
struct Users {
    segment: Segment,
    /// Started only from this time after t0 (zero for the worker's own share).
    from: Duration,
    /// Users of the share that should run now; a user whose index reaches it
    /// ends after its iteration.
    target: Rc<Cell<u64>>,
    /// By index within the share: whether that user's task is running.
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

    /// Users of this share that should run when `global` users of the whole
    /// run should, `elapsed` after t0.
    fn target_for(&self, global: u64, elapsed: Duration) -> u64 {
        if elapsed >= self.from {
            self.segment.count_below(global)
        } else {
            0
        }
    }

    /// Follows `global` users: sets the share's target and calls `start` with
    /// the index of each missing user of the share, marking it running (the
    /// surplus ones see the lower target and end after their iteration).
    fn follow(&self, global: u64, elapsed: Duration, mut start: impl FnMut(usize)) {
        let local = self.target_for(global, elapsed);
        self.target.set(local);
        let mut alive_now = self.alive.borrow_mut();
        if alive_now.len() < local as usize {
            alive_now.resize(local as usize, false);
        }
        for idx in 0..local as usize {
            if !alive_now[idx] {
                alive_now[idx] = true;
                start(idx);
            }
        }
    }
}

/// Starts user `idx` of `users` as a task of its own; the user is marked as
/// no longer running when the task ends.
fn spawn_user(w: &Rc<Worker>, users: &Users, idx: usize) {
    w.live.set(w.live.get() + 1);
    let (w, target, alive, segment) = (
        w.clone(),
        users.target.clone(),
        users.alive.clone(),
        users.segment,
    );
    tokio::task::spawn_local(async move {
        user(&w, segment, idx as u64, &target).await;
        alive.borrow_mut()[idx] = false;
        task_done(&w);
    });
}

/// The global number of user `idx` of `segment`.
fn global_user(segment: Segment, idx: u64) -> u64 {
    segment.offset + idx * segment.stride
}

/// The iteration number a user's `iteration` runs as: the global user shifted
/// 24 bits up, or-ed with the iteration (distinct per user for its first 2^24
/// iterations).
fn iteration_id(global_user: u64, iteration: u64) -> u64 {
    global_user.wrapping_shl(24) | iteration
}

/// One virtual user: iterations back to back while the run is running and
/// the share's target includes it.
async fn user(w: &Rc<Worker>, segment: Segment, idx: u64, target: &Cell<u64>) {
    let global_user = global_user(segment, idx);
    let mut conn: Option<Conn> = None;
    let mut ctx = IterationContext::new(global_user, w.seed.wrapping_add(global_user));
    let mut scratch = Scratch::default();
    let mut iteration = 0u64;
    w.recorder.borrow_mut().inc_active();
    while w.phase() == Phase::Running && idx < target.get() {
        let it = iteration_id(global_user, iteration);
        run_iteration(w, &mut conn, &mut ctx, &mut scratch, it, None).await;
        iteration += 1;
        // Yield so a user whose requests all fail at once cannot starve the thread.
        tokio::task::yield_now().await;
    }
    w.recorder.borrow_mut().dec_active();
}

#[cfg(test)]
mod tests;
