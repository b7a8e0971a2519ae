//! A local run from start to results: starts the engine, owns the run's
//! clock (duration, graceful stop, early stop), merges the workers' interval
//! snapshots in order, streams them into the results directory, and judges
//! the thresholds at the end (through [`crate::results`]).
//!
//! The caller supplies the stop signal and a progress callback, so this module
//! prints nothing itself.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bfgg_protocol::summary::RunSummary;
use bfgg_protocol::{IntervalSnapshot, Pulse};

use crate::engine::schedule::Segment;
use crate::engine::{EngineConfig, EngineEnv, EngineEvent, Phase, Prepared};
use crate::merge::{IntervalMerger, Merged};
use crate::results::{self, ResultsWriter, RunFacts};
use crate::scenario::Scenario;

/// How far ahead of "now" a run's time zero is set.
const START_LEAD: Duration = Duration::from_millis(100);

/// How to run locally.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Results directory; default: [`results::default_dir`].
    pub out_dir: Option<PathBuf>,
    /// Worker threads; default: one per available core.
    pub workers: Option<usize>,
    /// Seed for random choices; default: from the clock.
    pub seed: Option<u64>,
    /// The Python that runs Locust; default `python3`.
    pub python: Option<String>,
}

/// The Python used for Locust when none is configured.
pub const DEFAULT_PYTHON: &str = "python3";

/// What the progress callback sees once per completed interval.
#[derive(Debug)]
pub struct Progress {
    /// The merged interval just completed, summed up.
    pub pulse: Pulse,
    /// Time since the start.
    pub elapsed: Duration,
    /// The configured duration.
    pub duration: Duration,
    /// Requests so far.
    pub total_requests: u64,
    /// Errors so far.
    pub total_errors: u64,
}

/// A finished run.
#[derive(Debug)]
pub struct RunOutcome {
    /// The summary (also written to `summary.json`).
    pub summary: RunSummary,
    /// The results directory.
    pub dir: PathBuf,
}

/// Why and how a run is asked to stop before its duration ends.
#[derive(Debug, Clone)]
pub struct StopRequest {
    /// Reported as the run's `stop_reason`.
    pub reason: String,
    /// How long in-flight requests may finish; `None`: the scenario's
    /// graceful stop.
    pub grace: Option<Duration>,
}

impl StopRequest {
    /// Ctrl-C or SIGTERM.
    pub fn by_user() -> Self {
        Self {
            reason: "stopped by user".into(),
            grace: None,
        }
    }
}

/// How a driven engine ended.
#[derive(Debug)]
pub struct Driven {
    /// When load stopped (duration reached, or the stop), or the end.
    pub load_ended: Instant,
    /// Set when the run ended before its duration.
    pub stop_reason: Option<String>,
}

/// Ends the engine now, keeping where its schedule ended if load had ended.
fn abort(phase: &tokio::sync::watch::Sender<Phase>, duration: Duration) {
    let load_end = phase.borrow().load_end().unwrap_or(duration);
    let _ = phase.send(Phase::Abort { load_end });
}

/// Drives a prepared engine through its phases: starts it with `config` (its
/// time zero and share), ends load at the scenario's duration, when `stop`
/// resolves or when the engine fails, bounds the drain by the graceful stop,
/// and hands every merged interval (all workers) to `on_interval` in order.
/// An error from `on_interval` ends the drive (after stopping the engine).
pub async fn drive(
    prepared: Prepared,
    scenario: Arc<Scenario>,
    config: EngineConfig,
    stop: impl Future<Output = StopRequest>,
    mut on_interval: impl FnMut(IntervalSnapshot) -> anyhow::Result<()>,
) -> anyhow::Result<Driven> {
    let t0 = config.t0;
    let mut handle = prepared.start(config)?;
    let load = &scenario.load;
    let end_of_load = tokio::time::sleep_until((t0 + load.duration).into());
    tokio::pin!(end_of_load);
    let abort_at = tokio::time::sleep(Duration::MAX / 4);
    tokio::pin!(abort_at);
    tokio::pin!(stop);
    let mut stop_reason: Option<String> = None;
    let mut load_ended: Option<Instant> = None;
    let mut merger = IntervalMerger::new(0..handle.sources);
    let mut finished = 0;
    let mut stop_seen = false;
    let mut failure: Option<anyhow::Error> = None;

    // At the end of the schedule, open-model arrivals still due start (late
    // if the generator is behind) and iterations finish; on a stop or an
    // exhausted pool nothing more starts and the schedule ends there.
    let begin_drain = |reason: Option<String>,
                       grace: Duration,
                       end_of_schedule: bool,
                       load_ended: &mut Option<Instant>,
                       stop_reason: &mut Option<String>,
                       phase: &tokio::sync::watch::Sender<Phase>|
     -> Option<Instant> {
        if load_ended.is_some() {
            return None;
        }
        *load_ended = Some(Instant::now());
        *stop_reason = reason;
        let load_end = if end_of_schedule {
            load.duration
        } else {
            t0.elapsed().min(load.duration)
        };
        let _ = phase.send(Phase::Draining {
            load_end,
            end_of_schedule,
        });
        Some(Instant::now() + grace)
    };
    let mut deliver = |merged: Vec<Merged>, failure: &mut Option<anyhow::Error>| {
        for m in merged {
            if failure.is_none()
                && let Err(e) = on_interval(m.snapshot)
            {
                *failure = Some(e);
            }
        }
    };

    while finished < handle.sources {
        tokio::select! {
            event = handle.events.recv() => match event {
                Some(EngineEvent::Interval { source, snapshot }) => {
                    deliver(merger.add(&source, snapshot), &mut failure);
                    if failure.is_some() {
                        abort(&handle.phase, load.duration);
                    }
                }
                Some(EngineEvent::Exhausted { pool }) => {
                    let reason = format!("data pool {pool} exhausted");
                    if let Some(deadline) = begin_drain(Some(reason), load.graceful_stop, false, &mut load_ended, &mut stop_reason, &handle.phase) {
                        abort_at.as_mut().reset(deadline.into());
                    }
                }
                Some(EngineEvent::Failed { reason }) => {
                    if let Some(deadline) = begin_drain(Some(reason), load.graceful_stop, false, &mut load_ended, &mut stop_reason, &handle.phase) {
                        abort_at.as_mut().reset(deadline.into());
                    }
                }
                Some(EngineEvent::Finished { source }) => {
                    finished += 1;
                    deliver(merger.finish(&source), &mut failure);
                }
                None => break,
            },
            () = &mut end_of_load, if load_ended.is_none() => {
                if let Some(deadline) = begin_drain(None, load.graceful_stop, true, &mut load_ended, &mut stop_reason, &handle.phase) {
                    abort_at.as_mut().reset(deadline.into());
                }
            }
            request = &mut stop, if !stop_seen => {
                stop_seen = true;
                let grace = request.grace.unwrap_or(load.graceful_stop).min(load.graceful_stop);
                if let Some(deadline) = begin_drain(Some(request.reason), grace, false, &mut load_ended, &mut stop_reason, &handle.phase) {
                    abort_at.as_mut().reset(deadline.into());
                }
            }
            () = &mut abort_at => {
                abort(&handle.phase, load.duration);
                abort_at.as_mut().reset((Instant::now() + Duration::from_secs(3600)).into());
            }
        }
    }
    deliver(merger.drain(), &mut failure);
    for t in handle.threads.drain(..) {
        let _ = t.join();
    }
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(Driven {
        load_ended: load_ended.unwrap_or_else(Instant::now),
        stop_reason,
    })
}

/// Runs `scenario` on this host until its duration ends or `stop` resolves.
/// Errors only for things that prevent a run (bad results directory, engine
/// start failure) or stop recording it (a results file that cannot be
/// written); everything measured until then is kept on disk.
pub async fn run_local(
    scenario: Scenario,
    options: RunOptions,
    stop: impl Future<Output = StopRequest>,
    mut on_progress: impl FnMut(&Progress),
) -> anyhow::Result<RunOutcome> {
    let started_at = SystemTime::now();
    let dir = match &options.out_dir {
        Some(d) => d.clone(),
        None => results::default_dir(&scenario.name, started_at)?,
    };
    let scenario = Arc::new(scenario);
    let workers = options.workers.unwrap_or_else(default_workers);
    let seed = options.seed.unwrap_or_else(|| seed_from(started_at));
    let env = EngineEnv {
        python: options
            .python
            .clone()
            .unwrap_or_else(|| DEFAULT_PYTHON.to_owned()),
        work_dir: dir.join(scenario.engine.as_str()),
        workers,
        cache_dir: crate::engine::default_cache_dir(),
    };
    // Everything that can fail before the start fails here, before a
    // results directory is written (an engine's own log may be there).
    let prepared = crate::engine::prepare(scenario.clone(), &env).await?;
    let mut writer = ResultsWriter::create(&dir, &scenario, started_at)?;
    // Time zero a little ahead, so worker threads are up before the first
    // arrival is due; a late start would show as schedule lag.
    let t0 = Instant::now() + START_LEAD;
    let duration = scenario.load.duration;
    let driven = drive(
        prepared,
        scenario.clone(),
        EngineConfig {
            segment: Segment::WHOLE,
            workers,
            t0,
            seed,
            moved: None,
        },
        stop,
        |merged| emit_interval(&mut writer, &merged, t0, duration, &mut on_progress),
    )
    .await?;
    let facts = RunFacts {
        started_at,
        duration_s: driven
            .load_ended
            .saturating_duration_since(t0)
            .as_secs_f64(),
        stop_reason: driven.stop_reason,
    };
    let (summary, dir) = writer.finish(&scenario, &facts, Vec::new())?;
    Ok(RunOutcome { summary, dir })
}

/// One worker per available core.
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// A seed from the clock, for runs that don't fix one.
pub fn seed_from(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}

fn emit_interval(
    writer: &mut ResultsWriter,
    merged: &IntervalSnapshot,
    t0: Instant,
    duration: Duration,
    on_progress: &mut impl FnMut(&Progress),
) -> anyhow::Result<()> {
    writer.add_interval(merged)?;
    let total = writer.total();
    on_progress(&Progress {
        pulse: Pulse::of(merged),
        elapsed: t0.elapsed(),
        duration,
        total_requests: total.requests,
        total_errors: total.error_count(),
    });
    Ok(())
}
