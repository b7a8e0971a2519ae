//! The precise timer on a worker-like runtime (current thread, `LocalSet`):
//! sleeps never end early (with or without slack), an earlier sleep re-arms
//! the fd, a dropped sleep leaves nothing behind, a busy worker ends due
//! sleeps itself, the slack follows the core's load; and the fallback on
//! tokio's timer ends at most half a tick early.

use std::rc::Rc;
use std::time::{Duration, Instant};

use super::PreciseTimer;

/// Runs `f` as a worker does: a current-thread runtime and a `LocalSet`.
fn on_worker<F: std::future::Future<Output = ()>>(f: impl FnOnce() -> F) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    tokio::task::LocalSet::new().block_on(&rt, async move { f().await });
}

#[test]
fn sleeps_never_end_before_their_deadline_and_all_end() {
    on_worker(|| async {
        let timer = Rc::new(PreciseTimer::default());
        assert!(timer.is_precise(), "a timerfd is available on Linux");
        let t0 = Instant::now();
        // 300 deadlines spread over 150 ms, out of order, some equal.
        let deadlines: Vec<Instant> = (0..300u64)
            .map(|i| t0 + Duration::from_micros((i * 7919) % 150_000))
            .collect();
        let tasks: Vec<_> = deadlines
            .iter()
            .map(|&d| {
                let timer = timer.clone();
                tokio::task::spawn_local(async move {
                    timer.sleep_until(d).await;
                    Instant::now()
                })
            })
            .collect();
        for (task, d) in tasks.into_iter().zip(&deadlines) {
            let ended = task.await.expect("sleep task");
            assert!(
                ended >= *d,
                "ended {:?} before its deadline",
                d.duration_since(ended)
            );
        }
        assert!(timer.shared().pending.borrow().is_empty());
    });
}

#[test]
fn an_earlier_sleep_re_arms_the_timer() {
    on_worker(|| async {
        let timer = Rc::new(PreciseTimer::default());
        let t0 = Instant::now();
        let late = t0 + Duration::from_millis(800);
        // The late sleep is polled once, so it arms the fd first.
        let mut waiting = std::pin::pin!(timer.sleep_until(late));
        tokio::select! {
            biased;
            _ = &mut waiting => panic!("ended 800 ms early"),
            _ = std::future::ready(()) => {}
        }
        assert_eq!(timer.shared().armed.get(), Some(late));
        timer.sleep_until(t0 + Duration::from_millis(5)).await;
        assert!(
            Instant::now() < late,
            "the early sleep waited for the late one"
        );
        // The driver re-arms the fd for the late one when it runs (the
        // early sleep may be polled, and end, before the driver is).
        waiting.await;
        assert!(Instant::now() >= late);
    });
}

#[test]
fn a_dropped_sleep_leaves_nothing_pending() {
    on_worker(|| async {
        let timer = PreciseTimer::default();
        let far = Instant::now() + Duration::from_secs(3600);
        let near = Instant::now() + Duration::from_millis(2);
        tokio::select! {
            _ = timer.sleep_until(far) => panic!("an hour passed"),
            _ = timer.sleep_until(near) => {}
        }
        assert!(timer.shared().pending.borrow().is_empty());
        // A deadline already past ends at once, without registering.
        timer.sleep_until(Instant::now()).await;
        assert!(timer.shared().pending.borrow().is_empty());
    });
}

#[test]
fn a_busy_worker_ends_due_sleeps_itself() {
    on_worker(|| async {
        let timer = Rc::new(PreciseTimer::default());
        let due = Instant::now() + Duration::from_millis(1);
        let mut sleep = std::pin::pin!(timer.sleep_until(due));
        tokio::select! {
            biased;
            _ = &mut sleep => panic!("ended 1 ms early"),
            _ = std::future::ready(()) => {}
        }
        assert_eq!(timer.shared().pending.borrow().len(), 1);
        // The worker is busy (blocked here) past the deadline: the fd's
        // driver cannot run, so the worker wakes the due sleep itself.
        std::thread::sleep(Duration::from_millis(3));
        timer.wake_due();
        assert!(timer.shared().pending.borrow().is_empty());
        sleep.await;
        assert!(Instant::now() >= due);
    });
}

#[test]
fn the_slack_grows_only_while_the_core_is_busy_and_returns_to_precise() {
    use super::{MAX_SLACK, MIN_SLACK, next_slack};
    let us = Duration::from_micros;
    // Room on the core: precise, and it stays so.
    assert_eq!(next_slack(Duration::ZERO, 100), Duration::ZERO);
    assert_eq!(next_slack(Duration::ZERO, 450), Duration::ZERO);
    // Busy: doubles from the minimum up to the cap.
    let mut s = Duration::ZERO;
    let mut seen = Vec::new();
    for _ in 0..8 {
        s = next_slack(s, 950);
        seen.push(s);
    }
    assert_eq!(seen[..3], [MIN_SLACK, us(100), us(200)]);
    assert_eq!(*seen.last().expect("steps"), MAX_SLACK);
    // In between: held.
    assert_eq!(next_slack(us(400), 450), us(400));
    // Quiet again: halves back to precise.
    let mut s = MAX_SLACK;
    let mut steps = 0;
    while s > Duration::ZERO {
        s = next_slack(s, 100);
        steps += 1;
        assert!(steps < 10, "never got back to precise");
    }
}

#[test]
fn with_slack_a_sleep_still_never_ends_early() {
    on_worker(|| async {
        let timer = Rc::new(PreciseTimer::default());
        timer.sleep_until(Instant::now()).await; // starts the timer
        for _ in 0..10 {
            timer.adapt(1000);
        }
        assert_eq!(timer.shared().slack.get(), super::MAX_SLACK);
        let t0 = Instant::now();
        let tasks: Vec<_> = (0..100u64)
            .map(|i| {
                let d = t0 + Duration::from_micros(i * 300);
                let timer = timer.clone();
                tokio::task::spawn_local(async move {
                    timer.sleep_until(d).await;
                    (d, Instant::now())
                })
            })
            .collect();
        for t in tasks {
            let (d, ended) = t.await.expect("sleep task");
            assert!(ended >= d);
        }
    });
}

#[test]
fn the_fallback_on_tokio_ends_at_most_half_a_tick_early() {
    on_worker(|| async {
        let timer = PreciseTimer {
            inner: std::cell::OnceCell::from(super::Inner::Tokio),
        };
        let t0 = Instant::now();
        for i in 1..=20u64 {
            let due = t0 + Duration::from_micros(i * 1_700);
            timer.sleep_until(due).await;
            let now = Instant::now();
            assert!(
                now + super::HALF_TIMER_TICK >= due,
                "ended {:?} before {due:?}",
                due - now
            );
        }
    });
}
