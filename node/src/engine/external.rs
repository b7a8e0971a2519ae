//! The seam every external engine (Locust; Gatling and JMeter next) plugs
//! into: a child process supervised as one process group, and the clock that
//! turns its per-request records into one [`IntervalSnapshot`] per second.
//!
//! The steps of an external engine (see `engine/locust` for the first one):
//! 1. **Prepare** (before the start instant): check the tool is there and the
//!    test code loads, then spawn the child with [`Supervised::spawn`]; it
//!    connects back and holds its load until it is told time zero.
//! 2. **Start** at the plan's instant: tell the child time zero (and, for
//!    engines bfgg drives, this agent's share of the schedule as it changes).
//! 3. **Measure**: decode the child's records (never trust them: malformed
//!    input ends that connection, what came before it counts) and record
//!    each into [`Intervals`] by the time it *ended*; an interval is shipped
//!    once [`SETTLE`] has passed after its end, and a record later than that
//!    goes into the next interval not yet shipped, so nothing is lost.
//! 4. **Stop** on [`Phase`](super::Phase) changes: `Draining` asks the child
//!    to stop (its graceful path, e.g. SIGTERM), `Abort` kills the group; a
//!    child that outlives the graceful stop is killed too, and so is one
//!    whose supervisor is dropped.
//! 5. **End**: when the child has exited and its connections closed, ship
//!    what is left and report `Finished`; a child that exits on its own with
//!    a failure is reported with the tail of its stderr.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use bfgg_protocol::{ErrorKind, IntervalSnapshot};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::task::JoinHandle;

/// How long after an interval's end its records may still arrive before it
/// is shipped (the plugin flushes every 100 ms).
pub(crate) const SETTLE_US: u64 = 400_000;
/// Lines of a child's stderr kept for error reports.
pub(crate) const STDERR_TAIL_LINES: usize = 20;

/// A child process and its process group: signalled as a whole, killed as a
/// whole when dropped. Its stdout and stderr go to `stdout.log` and
/// `stderr.log` in its work directory; the last lines of stderr are kept.
/// A task owns the child and reaps it; [`Supervised::exited`] resolves then.
#[derive(Debug)]
pub(crate) struct Supervised {
    pgid: Pid,
    done: Arc<AtomicBool>,
    waiter: Option<JoinHandle<Exit>>,
}

/// How a supervised child ended.
#[derive(Debug, Clone)]
pub(crate) struct Exit {
    /// Its exit status (`None` if it could not be waited for).
    pub(crate) status: Option<ExitStatus>,
    /// The last lines of its stderr.
    pub(crate) stderr_tail: Vec<String>,
}

impl Exit {
    /// "exit status 1" / "killed by signal 9", then the stderr tail.
    pub(crate) fn describe(&self) -> String {
        use std::os::unix::process::ExitStatusExt;
        let how = match self.status {
            Some(s) => match (s.code(), s.signal()) {
                (Some(code), _) => format!("exit status {code}"),
                (None, Some(sig)) => format!("killed by signal {sig}"),
                _ => "ended".to_owned(),
            },
            None => "could not be waited for".to_owned(),
        };
        if self.stderr_tail.is_empty() {
            how
        } else {
            format!("{how}; its last output:\n{}", self.stderr_tail.join("\n"))
        }
    }
}

impl Supervised {
    /// Spawns `cmd` as the leader of a new process group.
    pub(crate) fn spawn(mut cmd: Command, work_dir: &Path) -> anyhow::Result<Supervised> {
        let stdout_log = work_dir.join("stdout.log");
        let stdout = std::fs::File::create(&stdout_log)
            .with_context(|| format!("creating {}", stdout_log.display()))?;
        let stderr_log = work_dir.join("stderr.log");
        cmd.process_group(0)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn()?;
        let pid = child.id().context("the child exited at once")?;
        let pgid = Pid::from_raw(pid as i32);
        let stderr = child.stderr.take().map(|pipe| {
            tokio::spawn(async move {
                let mut tail = VecDeque::with_capacity(STDERR_TAIL_LINES);
                let mut file = tokio::fs::File::create(&stderr_log).await.ok();
                let mut lines = BufReader::new(pipe).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(f) = file.as_mut() {
                        let _ = f.write_all(line.as_bytes()).await;
                        let _ = f.write_all(b"\n").await;
                    }
                    if tail.len() == STDERR_TAIL_LINES {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
                if let Some(f) = file.as_mut() {
                    let _ = f.flush().await;
                }
                Vec::from(tail)
            })
        });
        let done = Arc::new(AtomicBool::new(false));
        let waiter = {
            let done = done.clone();
            tokio::spawn(async move {
                let status = child.wait().await.ok();
                // Whatever the leader left behind (forked workers) goes with it.
                let _ = killpg(pgid, Signal::SIGKILL);
                done.store(true, Ordering::Release);
                let stderr_tail = match stderr {
                    Some(task) => task.await.unwrap_or_default(),
                    None => Vec::new(),
                };
                Exit {
                    status,
                    stderr_tail,
                }
            })
        };
        Ok(Supervised {
            pgid,
            done,
            waiter: Some(waiter),
        })
    }

    /// Sends `signal` to every process of the group (not once it is reaped).
    pub(crate) fn signal(&self, signal: Signal) {
        if !self.done.load(Ordering::Acquire) {
            let _ = killpg(self.pgid, signal);
        }
    }

    /// Sends `signal` to the group leader only (its graceful path may be to
    /// stop its own children in order).
    pub(crate) fn signal_leader(&self, signal: Signal) {
        if !self.done.load(Ordering::Acquire) {
            let _ = nix::sys::signal::kill(self.pgid, signal);
        }
    }

    /// Resolves when the child has exited (and then returns at once).
    pub(crate) async fn exited(&mut self) -> Exit {
        let exit = match self.waiter.as_mut() {
            Some(task) => task.await.unwrap_or(Exit {
                status: None,
                stderr_tail: Vec::new(),
            }),
            None => return std::future::pending().await,
        };
        self.waiter = None;
        exit
    }

    /// The group leader's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.pgid.as_raw() as u32
    }

    /// Whether the child has been reaped.
    #[cfg(test)]
    pub(crate) fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.signal(Signal::SIGKILL);
    }
}

/// Records by the interval they ended in, shipped in order once settled.
#[derive(Debug)]
pub(crate) struct Intervals {
    /// Time zero, Unix µs.
    t0_us: u64,
    /// The next interval to ship: everything before it has been.
    next: u32,
    open: BTreeMap<u32, IntervalSnapshot>,
    /// The last `active` gauge noted in each interval not shipped yet, and
    /// the last one before them.
    gauges: BTreeMap<u32, u64>,
    last_gauge: u64,
    /// CPU noted while each interval lasted, for engines whose intervals
    /// ship long after they end (Gatling's buffered log).
    cpu: BTreeMap<u32, u32>,
    /// Records that arrived after their interval was shipped (counted in the
    /// next one instead).
    pub(crate) late: u64,
}

/// One request of an external engine.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Request<'a> {
    /// Its name (the key of its measurements).
    pub(crate) name: &'a str,
    /// When it ended, Unix µs.
    pub(crate) end_us: u64,
    /// Response time as the engine measured it, µs; `None` for a request
    /// that was never sent (counted, with its error, without a time).
    pub(crate) response_time_us: Option<u64>,
    /// Response bytes.
    pub(crate) bytes_in: u64,
    /// Why it failed, if it did.
    pub(crate) error: Option<&'a str>,
}

impl Intervals {
    /// Intervals of a run whose time zero is `t0_us` (Unix µs).
    pub(crate) fn new(t0_us: u64) -> Self {
        Self {
            t0_us,
            next: 0,
            open: BTreeMap::new(),
            gauges: BTreeMap::new(),
            last_gauge: 0,
            cpu: BTreeMap::new(),
            late: 0,
        }
    }

    fn index_of(&self, end_us: u64) -> u32 {
        (end_us.saturating_sub(self.t0_us) / 1_000_000).min(u32::MAX as u64) as u32
    }

    /// Records one request in the interval it ended in (or, if that one was
    /// shipped already, the next one not shipped); its error, if any,
    /// counts as the engine's message.
    pub(crate) fn record(&mut self, r: &Request<'_>) {
        let error = r.error.map(|m| ErrorKind::Engine(m.to_owned()));
        self.record_as(r, error);
    }

    /// [`Intervals::record`] with the error already grouped (`r.error` is
    /// not read): engines whose records say what kind of error they are.
    pub(crate) fn record_as(&mut self, r: &Request<'_>, error: Option<ErrorKind>) {
        let mut index = self.index_of(r.end_us);
        if index < self.next {
            self.late += 1;
            index = self.next;
        }
        let snap = self
            .open
            .entry(index)
            .or_insert_with(|| IntervalSnapshot::new(index));
        let stats = match snap.by_name.get_mut(r.name) {
            Some(s) => s,
            None => snap.by_name.entry(r.name.to_owned()).or_default(),
        };
        stats.requests += 1;
        stats.bytes_in += r.bytes_in;
        // Closed model: the time from send to end is the response time.
        if let Some(rt) = r.response_time_us {
            stats.response_time.record(rt);
            stats.service_time.record(rt);
        }
        if let Some(kind) = error {
            *stats.errors.entry(kind).or_insert(0) += 1;
        }
    }

    /// Notes the `active` gauge (users running) at `now_us`: an interval
    /// reports the last value noted while it lasted (or, with none, the one
    /// before it).
    pub(crate) fn gauge(&mut self, now_us: u64, active: u64) {
        if now_us < self.t0_us {
            self.last_gauge = active;
            return;
        }
        let index = self.index_of(now_us).max(self.next);
        self.gauges.insert(index, active);
    }

    /// Notes the CPU use (per mille) measured at `now_us`: the interval it
    /// falls in reports it instead of the value given when it ships.
    pub(crate) fn note_cpu(&mut self, now_us: u64, permille: u32) {
        if now_us >= self.t0_us {
            let index = self.index_of(now_us).max(self.next);
            self.cpu.insert(index, permille);
        }
    }

    /// The intervals that ended at least [`SETTLE_US`] before `now_us`, in
    /// order, each once (empty ones too), with the busiest process's CPU
    /// (or the one noted while the interval lasted).
    pub(crate) fn due(&mut self, now_us: u64, cpu_permille: u32) -> Vec<IntervalSnapshot> {
        let settled = now_us.saturating_sub(self.t0_us + SETTLE_US) / 1_000_000;
        self.ship_before(settled.min(u32::MAX as u64) as u32, cpu_permille)
    }

    /// Everything left, up to and including the interval `now_us` falls in
    /// (the last, partial one) and any later one holding records.
    pub(crate) fn drain(&mut self, now_us: u64, cpu_permille: u32) -> Vec<IntervalSnapshot> {
        let last_open = self.open.keys().next_back().map_or(0, |k| k + 1);
        let end = (self.index_of(now_us) + 1).max(last_open).max(self.next);
        self.ship_before(end, cpu_permille)
    }

    fn ship_before(&mut self, end: u32, cpu_permille: u32) -> Vec<IntervalSnapshot> {
        let mut out = Vec::new();
        while self.next < end {
            let mut snap = self
                .open
                .remove(&self.next)
                .unwrap_or_else(|| IntervalSnapshot::new(self.next));
            if let Some(active) = self.gauges.remove(&self.next) {
                self.last_gauge = active;
            }
            snap.generator.active = self.last_gauge;
            snap.generator.cpu_busy_permille = self.cpu.remove(&self.next).unwrap_or(cpu_permille);
            out.push(snap);
            self.next += 1;
        }
        out
    }
}

/// Interns the strings an engine's records repeat (request names, codes,
/// messages), so records share one allocation each. Bounded: past
/// [`Interner::MAX`] distinct strings, new ones are allocated per record.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    map: std::collections::HashMap<Box<str>, Arc<str>>,
}

impl Interner {
    pub(crate) const MAX: usize = 16 * 1024;

    /// `s`, shared with every earlier record that had it (below the bound).
    pub(crate) fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.map.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        if self.map.len() < Self::MAX {
            self.map.insert(s.into(), a.clone());
        }
        a
    }
}

/// CPU time (user + system) of a process so far, in clock ticks, from
/// `/proc/<pid>/stat`; `None` once it is gone.
pub(crate) fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields count from after its ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Sends `snapshots` (source 0) in order; false once the receiver is gone
/// (the run no longer listens: the supervisor may end).
pub(crate) async fn send_intervals(
    events: &tokio::sync::mpsc::Sender<super::EngineEvent>,
    snapshots: Vec<IntervalSnapshot>,
) -> bool {
    for snapshot in snapshots {
        let event = super::EngineEvent::Interval {
            source: 0,
            snapshot,
        };
        if events.send(event).await.is_err() {
            return false;
        }
    }
    true
}

/// Unix µs of the monotonic instant `t`, through the wall clock now: the
/// time base external engines' logs and the interval grid share.
pub(crate) fn unix_us(t: std::time::Instant) -> u64 {
    let now = std::time::Instant::now();
    let unix_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i128);
    let delta = if t >= now {
        (t - now).as_micros() as i128
    } else {
        -((now - t).as_micros() as i128)
    };
    (unix_now + delta).max(0) as u64
}

mod follow;
pub(crate) use follow::{Followed, Growing, Limits, Tail, follow, last_lines};

#[cfg(test)]
mod tests;
