//! Load engines. An engine turns a [`Scenario`](crate::scenario::Scenario) into
//! load and reports [`EngineEvent`]s: one interval snapshot per source per
//! second, never a message per request. The run controller (`crate::run`)
//! owns time: it moves the engine through [`Phase`]s.
//!
//! An engine's life has two steps: [`prepare`] (before the start instant:
//! check what it needs, load the test code, start any child process, which
//! then waits) and [`Prepared::start`] (at time zero). External engines (a
//! child process such as Locust) follow the steps in [`external`].
//!
//! To add an engine: 1. add its `EngineKind` variant in `scenario::model`
//! (and its table, validated there); 2. write `engine/<name>/` with a
//! `prepare` and a `start` returning an [`EngineHandle`] (external ones on
//! [`external`]'s supervision and interval clock); 3. add its [`Prepared`]
//! variant and dispatch to it in [`prepare`] and [`Prepared::start`];
//! 4. add an integration test in `tests/it/` with the real tool.

pub mod external;
pub mod gatling;
pub mod jmeter;
pub(crate) mod jvm;
pub mod locust;
pub mod native;
pub mod schedule;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bfgg_protocol::IntervalSnapshot;
use tokio::sync::{mpsc, watch};

use crate::scenario::{EngineKind, Scenario};
use schedule::Segment;

/// Where a run is in its life. Sent to every worker through a watch channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Starting iterations on schedule.
    Running,
    /// No new iterations; in-flight ones get the graceful stop.
    Draining {
        /// Where the run's schedule ended (after t0): open-model arrivals
        /// due before it were part of the run.
        load_end: Duration,
        /// The schedule ran to its end (not stopped): arrivals due before
        /// `load_end` that a busy generator has not started yet still start,
        /// late, rather than never, and iterations finish (think time
        /// included). A stop starts nothing more (those arrivals count as
        /// missed) and ends iterations at their next think time.
        end_of_schedule: bool,
    },
    /// Stop now: in-flight requests are abandoned and nothing starts.
    Abort {
        /// As in `Draining`.
        load_end: Duration,
    },
}

impl Phase {
    /// Running < Draining < Abort.
    pub fn rank(self) -> u8 {
        match self {
            Phase::Running => 0,
            Phase::Draining { .. } => 1,
            Phase::Abort { .. } => 2,
        }
    }

    /// Whether an open-model arrival due `due` after t0 may still start.
    pub fn may_start(self, due: Duration) -> bool {
        match self {
            Phase::Running => true,
            Phase::Draining {
                load_end,
                end_of_schedule,
            } => end_of_schedule && due < load_end,
            Phase::Abort { .. } => false,
        }
    }

    /// Whether an iteration under way goes on to its end (else it ends at its
    /// next think time).
    pub fn iterations_finish(self) -> bool {
        matches!(
            self,
            Phase::Running
                | Phase::Draining {
                    end_of_schedule: true,
                    ..
                }
        )
    }

    /// Where the run's schedule ended, once load has ended.
    pub fn load_end(self) -> Option<Duration> {
        match self {
            Phase::Running => None,
            Phase::Draining { load_end, .. } | Phase::Abort { load_end } => Some(load_end),
        }
    }
}

/// What an engine reports to the run controller.
#[derive(Debug)]
pub enum EngineEvent {
    /// One source's measurements for one interval.
    Interval {
        /// Which source (worker) sent it.
        source: usize,
        /// The measurements.
        snapshot: IntervalSnapshot,
    },
    /// A data pool set to `on_exhausted = "stop"` ran out: the run should stop.
    Exhausted {
        /// The pool.
        pool: String,
    },
    /// The engine failed mid-run (an external engine's process died): the
    /// run stops with this reason; what was measured still arrives.
    Failed {
        /// What happened, for the run's stop reason.
        reason: String,
    },
    /// A source finished; it sends nothing after this.
    Finished {
        /// Which source.
        source: usize,
    },
}

/// A started engine.
pub struct EngineHandle {
    /// Events from the sources. Closed once every source has finished.
    pub events: mpsc::Receiver<EngineEvent>,
    /// Number of sources that will each send `Finished`.
    pub sources: usize,
    /// Moves the engine through its phases; dropping it aborts the engine.
    pub phase: watch::Sender<Phase>,
    /// Joined after `Finished` from every source.
    pub threads: Vec<std::thread::JoinHandle<()>>,
}

/// A share taken over mid-run (a lost agent's, rebalanced): `segment` of the
/// global schedule, from `from` after t0 on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MovedShare {
    /// The share (of the whole schedule, like [`EngineConfig::segment`]).
    pub segment: Segment,
    /// When this host starts it, after t0. Arrivals and users of the share
    /// due earlier are not made up for.
    pub from: Duration,
}

/// How to run: the share of the global schedule and the local parallelism.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// This host's share of arrivals and users.
    pub segment: Segment,
    /// Worker threads (one per core by default).
    pub workers: usize,
    /// The run's time zero: intervals and the schedule count from here.
    pub t0: Instant,
    /// Seed for journey choice, think times and random data.
    pub seed: u64,
    /// Shares added during the run (the list only grows); `None` for runs
    /// that never take over others' shares.
    pub moved: Option<watch::Receiver<Vec<MovedShare>>>,
}

/// What engines need from the host, beyond the scenario.
#[derive(Debug, Clone)]
pub struct EngineEnv {
    /// The Python that runs Locust (default `python3` on PATH).
    pub python: String,
    /// Where an engine keeps its own output (logs, its statistics).
    pub work_dir: PathBuf,
    /// Cores to use (one worker or process each).
    pub workers: usize,
    /// Where builds are kept across runs (Gatling projects compiled per
    /// content).
    pub cache_dir: PathBuf,
}

/// The default [`EngineEnv::cache_dir`] of local runs: the user's cache
/// directory (`~/.cache/bfgg`), or the temporary directory without a home.
pub fn default_cache_dir() -> PathBuf {
    directories::ProjectDirs::from("", "", "bfgg").map_or_else(
        || std::env::temp_dir().join("bfgg-cache"),
        |d| d.cache_dir().to_path_buf(),
    )
}

/// `msg` cut to its first `max_chars` characters, with `…` where it was cut:
/// errors are counted by their text, so their messages are kept short.
pub(crate) fn cut_message(msg: &str, max_chars: usize) -> String {
    let mut s: String = msg.chars().take(max_chars).collect();
    if s.len() < msg.len() {
        s.push('…');
    }
    s
}

/// The engines this host can run, with their versions: the native engine
/// always, Locust when `env.python` has it, Gatling when Java and Maven are
/// here, JMeter when Java 17 or later and Maven are.
pub async fn probe(python: &str) -> Vec<bfgg_protocol::mesh::EngineInfo> {
    use bfgg_protocol::mesh::EngineInfo;
    let mut engines = vec![EngineInfo {
        name: EngineKind::Native.as_str().into(),
        version: env!("CARGO_PKG_VERSION").into(),
    }];
    let (l, g, j) = tokio::join!(locust::probe(python), gatling::probe(), jmeter::probe());
    for (kind, version) in [
        (EngineKind::Locust, l),
        (EngineKind::Gatling, g),
        (EngineKind::Jmeter, j),
    ] {
        if let Some(version) = version {
            engines.push(EngineInfo {
                name: kind.as_str().into(),
                version,
            });
        }
    }
    engines
}

/// `bfgg check --dry-run`: a few requests of the scenario with one user,
/// each reported as it went (the native engine: every journey once; Locust:
/// one user for a few seconds).
pub async fn dry_run(
    scenario: Arc<Scenario>,
    python: &str,
) -> anyhow::Result<Vec<native::DryRunStep>> {
    match scenario.engine {
        EngineKind::Native => native::dry_run(scenario).await,
        EngineKind::Locust => locust::dry_run(scenario, python).await,
        EngineKind::Gatling => anyhow::bail!(
            "--dry-run is not available for Gatling: run the simulation with small numbers instead (e.g. bfgg run with split values of 1)"
        ),
        EngineKind::Jmeter => anyhow::bail!(
            "--dry-run is not available for JMeter: run the plan with small numbers instead (e.g. bfgg run with split values of 1)"
        ),
    }
}

/// An engine ready to start.
#[derive(Debug)]
pub enum Prepared {
    /// The native engine (nothing to prepare).
    Native(Arc<Scenario>),
    /// Locust, started and waiting for time zero.
    Locust(Box<locust::Prepared>),
    /// Gatling, built; its JVM starts at time zero.
    Gatling(Box<gatling::Prepared>),
    /// JMeter, installed and its plan loaded; its JVM starts at time zero.
    Jmeter(Box<jmeter::Prepared>),
}

/// Gets the scenario's engine ready: everything that can fail before the
/// start instant fails here.
pub async fn prepare(scenario: Arc<Scenario>, env: &EngineEnv) -> anyhow::Result<Prepared> {
    anyhow::ensure!(
        !scenario.files_deferred,
        "the scenario's files are in its [source] repository, which was not checked out here"
    );
    match scenario.engine {
        EngineKind::Native => Ok(Prepared::Native(scenario)),
        EngineKind::Locust => Ok(Prepared::Locust(Box::new(
            locust::prepare(scenario, env).await?,
        ))),
        EngineKind::Gatling => Ok(Prepared::Gatling(Box::new(
            gatling::prepare(scenario, env).await?,
        ))),
        EngineKind::Jmeter => Ok(Prepared::Jmeter(Box::new(
            jmeter::prepare(scenario, env).await?,
        ))),
    }
}

impl Prepared {
    /// Starts the load at `config.t0`.
    pub fn start(self, config: EngineConfig) -> anyhow::Result<EngineHandle> {
        match self {
            Prepared::Native(scenario) => native::start(scenario, config),
            Prepared::Locust(p) => locust::start(*p, config),
            Prepared::Gatling(p) => gatling::start(*p, config),
            Prepared::Jmeter(p) => jmeter::start(*p, config),
        }
    }
}
