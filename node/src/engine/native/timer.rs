//! A worker's precise timer: sleeps that end within microseconds of their
//! deadline, for the open model's arrivals. tokio's timer is a 1 ms wheel
//! (a sleep ends on the first tick at or after its deadline, and the runtime
//! parks with a millisecond `epoll_wait` timeout), so on a fast service the
//! corrected latency would mostly measure bfgg's own clock.
//!
//! On Linux each worker owns one `timerfd` (an hrtimer, no timer slack),
//! armed at absolute `CLOCK_MONOTONIC` time for the earliest pending deadline
//! and registered with the worker's runtime like a socket. A driver task
//! wakes every sleep that is due when the fd fires and re-arms it for the
//! next; re-arming resets the fd's expiry count, so no `read` is needed. A
//! busy worker also ends due sleeps itself between requests
//! ([`PreciseTimer::wake_due`]), without waiting for the fd's wake-up to get
//! through. Nothing spins: an idle worker sleeps in `epoll_wait` until the
//! fd fires. The price is one wake-up per arrival where tokio batched a
//! millisecond's worth: measured in docs/BENCHMARKS.md. Elsewhere (no
//! timerfd) it falls back to tokio's timer, aimed half a tick early so sends
//! centre on their intended time (±0.5 ms).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Half of tokio's timer resolution (1 ms), for the fallback.
const HALF_TIMER_TICK: Duration = Duration::from_micros(500);

/// One worker's timer (single-threaded: the worker's tasks share it by `Rc`).
/// Started on first use, inside the worker's runtime and `LocalSet` (the fd
/// registers with the runtime; the driver is a local task).
#[derive(Default)]
pub(super) struct PreciseTimer {
    inner: std::cell::OnceCell<Inner>,
}

enum Inner {
    /// A timerfd and the task that wakes due sleeps when it fires (aborted
    /// with the timer).
    Precise {
        shared: Rc<Shared>,
        driver: tokio::task::JoinHandle<()>,
    },
    /// tokio's timer: no timerfd here.
    Tokio,
}

/// The pending sleeps and the fd, shared by the timer, its driver and its
/// sleeps.
pub(super) struct Shared {
    /// Pending sleeps by (deadline, id): the waker to call when due.
    pending: RefCell<BTreeMap<(Instant, u64), Waker>>,
    next_id: Cell<u64>,
    /// When the fd is armed to fire, if it is.
    armed: Cell<Option<Instant>>,
    /// How long after the earliest deadline the fd fires (see [`next_slack`]).
    slack: Cell<Duration>,
    #[cfg(target_os = "linux")]
    fd: linux::Fd,
}

impl Inner {
    /// A timerfd and its driver, or tokio's timer (with a warning) where no
    /// timerfd can be made.
    fn start() -> Inner {
        #[cfg(target_os = "linux")]
        match linux::Fd::new() {
            Ok(fd) => {
                let shared = Rc::new(Shared {
                    pending: RefCell::new(BTreeMap::new()),
                    next_id: Cell::new(0),
                    armed: Cell::new(None),
                    slack: Cell::new(Duration::ZERO),
                    fd,
                });
                let driver = tokio::task::spawn_local(drive(shared.clone()));
                return Inner::Precise { shared, driver };
            }
            Err(e) => tracing::warn!(
                "no timerfd ({e}): arrivals are timed by tokio's 1 ms timer (±0.5 ms)"
            ),
        }
        Inner::Tokio
    }
}

impl PreciseTimer {
    fn inner(&self) -> &Inner {
        self.inner.get_or_init(Inner::start)
    }

    /// Whether sleeps end within microseconds (a timerfd), not on tokio's
    /// 1 ms ticks.
    #[cfg(test)]
    pub(super) fn is_precise(&self) -> bool {
        matches!(self.inner(), Inner::Precise { .. })
    }

    /// Sleeps until `deadline`.
    pub(super) fn sleep_until(&self, deadline: Instant) -> Sleep {
        match self.inner() {
            Inner::Precise { shared, .. } => Sleep::Precise {
                shared: shared.clone(),
                deadline,
                key: None,
            },
            Inner::Tokio => {
                let wake = deadline.checked_sub(HALF_TIMER_TICK).unwrap_or(deadline);
                Sleep::Tokio(Box::pin(tokio::time::sleep_until(wake.into())))
            }
        }
    }

    /// Ends every sleep that is due now, without waiting for the fd: called
    /// by a busy worker between requests, so due arrivals start at once.
    pub(super) fn wake_due(&self) {
        if let Some(Inner::Precise { shared, .. }) = self.inner.get() {
            shared.wake_due(Instant::now());
        }
    }

    /// Adapts the slack to how busy the worker's core was over the last
    /// interval (per mille of one core); see [`next_slack`].
    pub(super) fn adapt(&self, busy_permille: u32) {
        if let Some(Inner::Precise { shared, .. }) = self.inner.get() {
            shared
                .slack
                .set(next_slack(shared.slack.get(), busy_permille));
        }
    }

    #[cfg(test)]
    fn shared(&self) -> &Shared {
        match self.inner() {
            Inner::Precise { shared, .. } => shared,
            Inner::Tokio => panic!("no timerfd"),
        }
    }
}

impl Drop for PreciseTimer {
    fn drop(&mut self) {
        if let Some(Inner::Precise { driver, .. }) = self.inner.get() {
            driver.abort();
        }
    }
}

/// Above this share of its core (per mille) a worker's timer batches its
/// wake-ups: on a VM each wake-up of an idle core costs tens of
/// microseconds, so one per arrival at tens of thousands of arrivals a second
/// would make the generator its own bottleneck.
const BUSY_HIGH: u32 = 600;
/// Below this share of its core the timer gets precise again.
const BUSY_LOW: u32 = 300;
/// The most the fd fires after a deadline: tokio's own tick.
const MAX_SLACK: Duration = Duration::from_millis(1);
/// The first step up from precise.
const MIN_SLACK: Duration = Duration::from_micros(50);

/// The slack after an interval in which the worker's core was
/// `busy_permille` busy. Zero (every arrival its own wake-up, within
/// microseconds of its time) while the core has room; above [`BUSY_HIGH`]
/// it doubles (from [`MIN_SLACK`], at most [`MAX_SLACK`]), so one wake-up
/// starts the arrivals due within the slack (late by at most that, and
/// measured as schedule lag like any lag); below [`BUSY_LOW`] it halves back
/// toward zero. An arrival never starts early whatever the slack. A busy
/// worker also starts due arrivals between requests (`wake_due`), which no
/// slack delays.
pub(super) fn next_slack(slack: Duration, busy_permille: u32) -> Duration {
    if busy_permille > BUSY_HIGH {
        (slack * 2).clamp(MIN_SLACK, MAX_SLACK)
    } else if busy_permille < BUSY_LOW {
        let half = slack / 2;
        if half < MIN_SLACK {
            Duration::ZERO
        } else {
            half
        }
    } else {
        slack
    }
}

/// A sleep of a [`PreciseTimer`]; dropping it cancels it.
pub(super) enum Sleep {
    Precise {
        shared: Rc<Shared>,
        deadline: Instant,
        /// Its entry in `pending`, once registered.
        key: Option<(Instant, u64)>,
    },
    Tokio(Pin<Box<tokio::time::Sleep>>),
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.get_mut() {
            Sleep::Tokio(s) => s.as_mut().poll(cx),
            Sleep::Precise {
                shared,
                deadline,
                key,
            } => {
                if Instant::now() >= *deadline {
                    if let Some(k) = key.take() {
                        shared.pending.borrow_mut().remove(&k);
                    }
                    return Poll::Ready(());
                }
                let k = *key.get_or_insert_with(|| {
                    let id = shared.next_id.get();
                    shared.next_id.set(id + 1);
                    (*deadline, id)
                });
                shared.pending.borrow_mut().insert(k, cx.waker().clone());
                shared.arm(*deadline);
                Poll::Pending
            }
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Sleep::Precise {
            shared,
            key: Some(k),
            ..
        } = self
        {
            shared.pending.borrow_mut().remove(k);
        }
    }
}

impl Shared {
    /// Makes sure the fd fires no later than `deadline` plus the slack.
    fn arm(&self, deadline: Instant) {
        let at = deadline + self.slack.get();
        if self.armed.get().is_some_and(|a| a <= at) {
            return;
        }
        #[cfg(target_os = "linux")]
        match self.fd.arm(at) {
            Ok(()) => self.armed.set(Some(at)),
            Err(e) => tracing::warn!("arming the timerfd: {e}"),
        }
    }

    /// Wakes every sleep due by `now` (each ends when next polled).
    fn wake_due(&self, now: Instant) {
        loop {
            let mut pending = self.pending.borrow_mut();
            match pending.first_entry() {
                Some(e) if e.key().0 <= now => {
                    let waker = e.remove();
                    drop(pending);
                    waker.wake();
                }
                _ => return,
            }
        }
    }

    /// The fd fired: wakes every sleep due by now and arms the fd for the
    /// next one.
    fn fire(&self) {
        self.armed.set(None);
        self.wake_due(Instant::now());
        let next = self.pending.borrow().keys().next().map(|k| k.0);
        if let Some(next) = next {
            self.arm(next);
        }
    }
}

/// The driver: each time the fd fires, wake what is due and re-arm.
#[cfg(target_os = "linux")]
async fn drive(shared: Rc<Shared>) {
    loop {
        match shared.fd.fired().await {
            Ok(()) => shared.fire(),
            Err(e) => {
                tracing::error!("waiting on the timerfd: {e}");
                return;
            }
        }
    }
}

#[cfg(target_os = "linux")]
mod linux {
    //! The timerfd, registered with the worker's runtime.

    use std::os::fd::{AsFd, AsRawFd, RawFd};
    use std::time::{Duration, Instant};

    use nix::sys::time::TimeSpec;
    use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
    use tokio::io::unix::AsyncFd;

    /// `AsyncFd` wants `AsRawFd`; nix's `TimerFd` offers `AsFd`.
    struct Raw(TimerFd);

    impl AsRawFd for Raw {
        fn as_raw_fd(&self) -> RawFd {
            self.0.as_fd().as_raw_fd()
        }
    }

    pub(super) struct Fd {
        fd: AsyncFd<Raw>,
        /// One instant and the same moment on `CLOCK_MONOTONIC` (which
        /// `Instant` reads on Linux), to turn deadlines into absolute times.
        base: (Instant, Duration),
    }

    impl Fd {
        pub(super) fn new() -> std::io::Result<Fd> {
            let timer = TimerFd::new(
                ClockId::CLOCK_MONOTONIC,
                TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
            )?;
            let mono = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)?;
            let base = (Instant::now(), Duration::from(mono));
            // The safe constructor is deprecated for types that might
            // change or close their fd; `Raw` owns its fd and always returns
            // it, which is what the unsafe `register_with_interest` asks
            // (unsafe code is forbidden in this crate).
            #[allow(deprecated)]
            let fd = AsyncFd::with_interest(Raw(timer), tokio::io::Interest::READABLE)?;
            Ok(Fd { fd, base })
        }

        /// Fires once at `deadline` (at once if it has passed); replaces any
        /// earlier setting and clears a pending expiry.
        pub(super) fn arm(&self, deadline: Instant) -> nix::Result<()> {
            let (at, mono) = self.base;
            // Never zero: a zero expiry would disarm the timer.
            let abs = (mono + deadline.saturating_duration_since(at)).max(Duration::from_nanos(1));
            self.fd.get_ref().0.set(
                Expiration::OneShot(TimeSpec::from_duration(abs)),
                TimerSetTimeFlags::TFD_TIMER_ABSTIME,
            )
        }

        /// Waits until the fd fires (after the last wait).
        pub(super) async fn fired(&self) -> std::io::Result<()> {
            let mut guard = self.fd.readable().await?;
            // Re-arming resets the expiry count, so the fd is not read: the
            // readiness is cleared by hand and the next expiry raises it.
            guard.clear_ready();
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
