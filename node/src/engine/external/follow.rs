//! The supervision loop of engines whose records bfgg reads from a file the
//! child writes (Gatling's `simulation.log`, JMeter's results CSV): every
//! [`TICK`] the file's new bytes go into [`Intervals`], the child's CPU is
//! noted, settled intervals are shipped, and [`Phase`] changes become
//! SIGTERM (to the group leader, the JVM) then SIGKILL after a slack.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, watch};

use super::{Exit, Intervals, Supervised, cpu_ticks, send_intervals, unix_us};
use crate::engine::{EngineEvent, Phase};

/// How often the file is read and intervals are shipped.
pub(crate) const TICK: Duration = Duration::from_millis(100);
/// Linux reports process CPU time in 1/100 s.
const CLOCK_TICKS_PER_S: u64 = 100;

/// A file an engine appends its records to, read as it grows.
pub(crate) trait Tail {
    /// Reads what the file gained since the last call, up to its end now,
    /// into `intervals`.
    async fn read(&mut self, intervals: &mut Intervals);
    /// Whether the file exists yet (before, the child is starting: its CPU
    /// is not load).
    fn started(&self) -> bool;
    /// The latest time any record carried, Unix µs.
    fn watermark_us(&self) -> u64;
}

/// A file the child appends to, read from where the last read ended.
#[derive(Debug)]
pub(crate) struct Growing {
    /// The file's name in messages (`simulation.log`).
    name: &'static str,
    file: Option<tokio::fs::File>,
    buf: Vec<u8>,
    /// The first read or decoding error (what came before it counts; the
    /// file is read on, and not decoded, after it).
    pub(crate) error: Option<String>,
}

impl Growing {
    /// A file called `name` in messages, not opened yet.
    pub(crate) fn new(name: &'static str) -> Self {
        Self {
            name,
            file: None,
            buf: vec![0; 64 * 1024],
            error: None,
        }
    }

    /// Whether the file has been opened (it exists).
    pub(crate) fn opened(&self) -> bool {
        self.file.is_some()
    }

    /// Hands what the file gained since the last call, up to its end now,
    /// to `feed` chunk by chunk; the file is opened first at the path
    /// `locate` gives, if it has one yet. A chunk `feed` fails on ends the
    /// decoding (its error kept and logged).
    pub(crate) async fn read(
        &mut self,
        locate: impl FnOnce() -> Option<PathBuf>,
        mut feed: impl FnMut(&[u8]) -> Result<(), String>,
    ) {
        if self.file.is_none() {
            let Some(path) = locate() else {
                return;
            };
            match tokio::fs::File::open(&path).await {
                Ok(f) => self.file = Some(f),
                Err(e) => {
                    tracing::debug!("cannot open {} yet: {e}", path.display());
                    return;
                }
            }
        }
        let Some(file) = self.file.as_mut() else {
            return;
        };
        loop {
            let n = match file.read(&mut self.buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    self.error
                        .get_or_insert(format!("reading {}: {e}", self.name));
                    break;
                }
            };
            if self.error.is_some() {
                continue;
            }
            if let Err(e) = feed(&self.buf[..n]) {
                tracing::warn!("{}: {e} (what came before counts)", self.name);
                self.error = Some(e);
            }
        }
    }
}

/// How a followed child is stopped and its intervals held.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Longest an interval waits for records the child still buffers
    /// (zero: the file is written as requests end, so `now` settles).
    pub(crate) max_hold: Duration,
    /// After SIGTERM, how long the child may take before it is killed.
    pub(crate) term_slack: Duration,
    /// At the end of the duration, how long the child may go on by itself.
    pub(crate) graceful: Duration,
}

/// How a followed child ended.
#[derive(Debug)]
pub(crate) struct Followed {
    /// Its exit.
    pub(crate) exit: Exit,
    /// Whether bfgg stopped it (a stop, the end of the duration, abort).
    pub(crate) stopping: bool,
    /// Its CPU use last measured, per mille of the machine.
    pub(crate) cpu_permille: u32,
}

/// Follows `child` and its file until it exits, then reads the file to its
/// end; `None` when the run no longer listens (the caller ends; `child` is
/// killed when dropped).
pub(crate) async fn follow<T: Tail>(
    child: &mut Supervised,
    tail: &mut T,
    intervals: &mut Intervals,
    phase: &mut watch::Receiver<Phase>,
    events: &mpsc::Sender<EngineEvent>,
    limits: Limits,
) -> Option<Followed> {
    let pid = child.pid();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut cpu = cpu_ticks(pid);
    let mut cpu_at = Instant::now();
    let mut cpu_permille = 0u32;
    let mut term_at: Option<Instant> = None;
    let mut kill_at: Option<Instant> = None;
    let mut stopping = false;
    let exit: Exit = loop {
        tokio::select! {
            _ = tick.tick() => {
                tail.read(intervals).await;
                let now = Instant::now();
                if now.duration_since(cpu_at) >= Duration::from_secs(1) {
                    let ticks = cpu_ticks(pid);
                    if let (Some(before), Some(after)) = (cpu, ticks) {
                        // The JVM's threads spread over the cores: its share
                        // of the machine, per mille.
                        let used_ms = after.saturating_sub(before) * 1000 / CLOCK_TICKS_PER_S;
                        let over_ms = now.duration_since(cpu_at).as_millis().max(1) as u64;
                        cpu_permille = (used_ms * 1000 / over_ms / cores).min(1000) as u32;
                        // Measured over the second before now; the JVM's
                        // start (before its file exists) is not load.
                        if tail.started() {
                            intervals.note_cpu(unix_us(now).saturating_sub(500_000), cpu_permille);
                        } else {
                            cpu_permille = 0;
                        }
                    }
                    cpu = ticks;
                    cpu_at = now;
                }
                let now_us = unix_us(now);
                let hold_us = limits.max_hold.as_micros() as u64;
                let settled = now_us.min(tail.watermark_us().max(now_us.saturating_sub(hold_us)));
                if !send_intervals(events, intervals.due(settled, cpu_permille)).await {
                    return None;
                }
                if term_at.is_some_and(|t| now >= t) {
                    term_at = None;
                    child.signal_leader(Signal::SIGTERM);
                    kill_at = Some(now + limits.term_slack);
                }
                if kill_at.is_some_and(|k| now >= k) {
                    kill_at = None;
                    child.signal(Signal::SIGKILL);
                }
            }
            changed = phase.changed(), if !stopping || kill_at.is_none() => {
                if changed.is_err() {
                    child.signal(Signal::SIGKILL);
                    break child.exited().await;
                }
                let ph = *phase.borrow_and_update();
                match ph {
                    Phase::Running => {}
                    Phase::Draining { end_of_schedule, .. } if !stopping => {
                        stopping = true;
                        // At the end of the duration the child gets the
                        // graceful stop to end by itself (its file flushed);
                        // a stop asked for reaches it now.
                        let by = if end_of_schedule { limits.graceful } else { Duration::ZERO };
                        term_at = Some(Instant::now() + by);
                    }
                    Phase::Draining { .. } => {}
                    Phase::Abort { .. } => {
                        stopping = true;
                        term_at = None;
                        kill_at = None;
                        child.signal(Signal::SIGKILL);
                    }
                }
            }
            ended = child.exited() => break ended,
        }
    };
    // Everything the child wrote counts.
    tail.read(intervals).await;
    Some(Followed {
        exit,
        stopping,
        cpu_permille,
    })
}

/// The last `n` non-empty lines of the file at `path` (its last 64 KiB
/// read): a child's output for error reports.
pub(crate) fn last_lines(path: &std::path::Path, n: usize) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| (*l).to_owned())
        .collect()
}
