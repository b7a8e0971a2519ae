//! A JMeter run: [`prepare`] (Java, JMeter's home, the plan loaded by
//! JMeter's own classes, CSV rows partitioned) and [`start`] (at time zero
//! `java -jar ApacheJMeter.jar -n`, its results CSV followed by
//! [`external::follow`] into [`Intervals`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::{mpsc, watch};

use super::results::{self, Decoder, Record};
use super::{DEFAULT_VERSION, JmeterError, JmeterHome, install, java_version, partition};
use crate::engine::external::{
    self, Followed, Growing, Intervals, Limits, Request, Supervised, follow, last_lines,
    send_intervals, unix_us,
};
use crate::engine::jvm;
use crate::engine::{EngineConfig, EngineEnv, EngineEvent, EngineHandle, Phase};
use crate::scenario::{JmeterSpec, Scenario, split_share};

/// After SIGTERM, how long the JVM may take before it is killed (its
/// shutdown hooks end the test; with autoflush every row is already in the
/// file).
const TERM_SLACK: Duration = Duration::from_millis(800);
/// Longest JMeter's load check of the plan may take.
const CHECK_LIMIT: Duration = Duration::from_secs(120);
/// The JVM options JMeter's `bin/jmeter` script passes by default; the
/// scenario's `java_opts` come after them, so its `-Xmx` wins.
const JVM_OPTS: &[&str] = &["-Xms1g", "-Xmx1g", "-XX:MaxMetaspaceSize=256m"];
/// The load check, run by Groovy from JMeter's own `lib/`.
const CHECK_SCRIPT: &str = include_str!("check-plan.groovy");
/// Lines of JMeter's log kept for error reports.
const LOG_TAIL_LINES: usize = 20;
/// The results file, in the engine's work directory.
const RESULTS_FILE: &str = "results.csv";

/// A JMeter run ready to start: Java there, JMeter installed, the plan
/// loaded once by JMeter.
#[derive(Debug)]
pub struct Prepared {
    scenario: Arc<Scenario>,
    spec: JmeterSpec,
    java: String,
    home: JmeterHome,
    /// The plan JMeter runs: the scenario's, or a copy naming this agent's
    /// slices of partitioned CSV files.
    plan: PathBuf,
    work_dir: PathBuf,
    /// `jmeter 5.6.3, java 17.0.15`.
    versions: String,
}

impl Prepared {
    /// JMeter's and Java's versions.
    pub fn versions(&self) -> &str {
        &self.versions
    }

    /// JMeter's home.
    pub fn home(&self) -> &JmeterHome {
        &self.home
    }
}

/// Checks Java, installs JMeter into the node's cache (once per version)
/// and has JMeter load the plan, so that a plan it cannot load fails here,
/// before the start instant, with JMeter's message.
pub async fn prepare(scenario: Arc<Scenario>, env: &EngineEnv) -> Result<Prepared, JmeterError> {
    let mut spec = scenario
        .jmeter
        .clone()
        .context("a JMeter scenario without [jmeter]")?;
    // JMeter runs in the work directory: every path made absolute.
    spec.plan = absolute(&spec.plan);
    spec.files = spec.files.iter().map(absolute).collect();
    spec.partition = spec.partition.iter().map(absolute).collect();
    let (java, _) = jvm::tools();
    let java_v = java_version(&java).await?;
    let home = install(&env.cache_dir, DEFAULT_VERSION).await?;
    let work_dir = env.work_dir.clone();
    std::fs::create_dir_all(&work_dir)
        .with_context(|| format!("creating {}", work_dir.display()))?;
    check_plan(&java, &home, &spec.plan, &work_dir).await?;
    Ok(Prepared {
        plan: spec.plan.clone(),
        versions: format!("jmeter {}, java {java_v}", home.version()),
        scenario,
        spec,
        java,
        home,
        work_dir,
    })
}

/// `p` made absolute against the current directory (as it is, if that fails).
fn absolute(p: &PathBuf) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.clone())
}

/// JMeter's classes load `plan` (see `check-plan.groovy`): its message when
/// they cannot.
async fn check_plan(
    java: &str,
    home: &JmeterHome,
    plan: &Path,
    work_dir: &Path,
) -> Result<(), JmeterError> {
    let script = work_dir.join("check-plan.groovy");
    std::fs::write(&script, CHECK_SCRIPT)
        .with_context(|| format!("writing {}", script.display()))?;
    let lib = home.dir().join("lib");
    let mut cmd = tokio::process::Command::new(java);
    cmd.current_dir(work_dir)
        .arg("-cp")
        .arg(format!("{}/*:{}/ext/*", lib.display(), lib.display()))
        .arg("groovy.ui.GroovyMain")
        .arg(&script)
        .arg(home.dir())
        .arg(plan)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(CHECK_LIMIT, cmd.output())
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "JMeter's load check of the plan took over {} s",
                CHECK_LIMIT.as_secs()
            )
        })?
        .with_context(|| format!("running {java}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.success() && stdout.contains("bfgg: the plan loads") {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let detail: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(12)
        .collect();
    Err(JmeterError::Plan {
        plan: plan.to_path_buf(),
        detail: if detail.is_empty() {
            format!("{} ({})", stdout.trim(), out.status)
        } else {
            detail.join("\n")
        },
    })
}

/// Starts JMeter at `config.t0` and measures what it writes (this agent's
/// slices of partitioned CSV files are written first).
pub fn start(mut prepared: Prepared, config: EngineConfig) -> anyhow::Result<EngineHandle> {
    prepared.plan = partition::apply(&prepared.spec, config.segment, &prepared.work_dir)?;
    let (events_tx, events) = mpsc::channel(64);
    let (phase, phase_rx) = watch::channel(Phase::Running);
    tokio::spawn(supervise(prepared, config, phase_rx, events_tx));
    Ok(EngineHandle {
        events,
        sources: 1,
        phase,
        threads: Vec::new(),
    })
}

/// The JMeter properties of agent `index` of `count`, in the order they are
/// passed: the scenario's, the shares of `split`, bfgg's own
/// (`bfgg.agent.index`, `bfgg.agent.count`, `bfgg.duration` in seconds, the
/// target as `bfgg.target.{url,scheme,host,port,path}`), JMeter's UDP
/// shutdown listener off (two JMeters on one host would fight over its
/// port; bfgg stops JMeter with SIGTERM), autoflush (each row reaches the
/// file when its sample ends), then [`results::FORCED_PROPERTIES`] last.
pub fn properties(
    scenario: &Scenario,
    spec: &JmeterSpec,
    index: u64,
    count: u64,
) -> Vec<(String, String)> {
    let mut props = spec.properties.clone();
    for (name, total) in &spec.split {
        props.push((name.clone(), split_share(*total, index, count)));
    }
    let t = &scenario.target;
    let scheme = match t.scheme {
        crate::scenario::Scheme::Http => "http",
        crate::scenario::Scheme::Https => "https",
    };
    for (k, v) in [
        ("bfgg.agent.index", index.to_string()),
        ("bfgg.agent.count", count.to_string()),
        (
            "bfgg.duration",
            scenario.load.duration.as_secs().max(1).to_string(),
        ),
        ("bfgg.target.url", format!("{}{}", t.origin, t.base_path)),
        ("bfgg.target.scheme", scheme.to_owned()),
        ("bfgg.target.host", t.host.clone()),
        ("bfgg.target.port", t.port.to_string()),
        ("bfgg.target.path", t.base_path.clone()),
        ("jmeterengine.nongui.port", "0".to_owned()),
        ("jmeter.save.saveservice.autoflush", "true".to_owned()),
    ] {
        props.push((k.to_owned(), v));
    }
    props.extend(
        results::FORCED_PROPERTIES
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    props
}

/// The JVM command line of this agent's share.
fn command(p: &Prepared, config: &EngineConfig) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(&p.java);
    cmd.current_dir(&p.work_dir)
        .args(JVM_OPTS)
        .args(&p.spec.java_opts)
        .arg("-jar")
        .arg(p.home.launcher())
        .arg("-n")
        .arg("-t")
        .arg(&p.plan)
        .arg("-l")
        .arg(p.work_dir.join(RESULTS_FILE))
        .arg("-j")
        .arg(p.work_dir.join("jmeter.log"));
    let (index, count) = (config.segment.offset, config.segment.stride);
    for (k, v) in properties(&p.scenario, &p.spec, index, count) {
        cmd.arg(format!("-J{k}={v}"));
    }
    cmd
}

/// The results file as it grows, decoded into [`Intervals`].
struct Tail {
    path: PathBuf,
    file: Growing,
    decoder: Decoder,
    records: Vec<Record>,
    /// The latest end any row carries, Unix µs.
    watermark_us: u64,
}

impl Tail {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            file: Growing::new(RESULTS_FILE),
            decoder: Decoder::new(),
            records: Vec::new(),
            watermark_us: 0,
        }
    }
}

impl external::Tail for Tail {
    fn started(&self) -> bool {
        self.file.opened()
    }

    fn watermark_us(&self) -> u64 {
        self.watermark_us
    }

    async fn read(&mut self, intervals: &mut Intervals) {
        let Self {
            path,
            file,
            decoder,
            records,
            watermark_us,
        } = self;
        file.read(
            || Some(path.clone()),
            |bytes| {
                let fed = decoder.feed(bytes, records);
                for r in records.drain(..) {
                    let end_us = r.end_ms().saturating_mul(1000);
                    intervals.record_as(
                        &Request {
                            name: &r.label,
                            end_us,
                            response_time_us: Some(r.elapsed_ms.saturating_mul(1000)),
                            bytes_in: r.bytes,
                            error: None,
                        },
                        r.error(),
                    );
                    intervals.gauge(end_us, r.all_threads);
                    *watermark_us = (*watermark_us).max(end_us);
                }
                fed.map_err(|e| e.to_string())
            },
        )
        .await;
    }
}

async fn supervise(
    p: Prepared,
    config: EngineConfig,
    mut phase: watch::Receiver<Phase>,
    events: mpsc::Sender<EngineEvent>,
) {
    use external::Tail as _;
    let mut intervals = Intervals::new(unix_us(config.t0));
    let failed = |reason: String| EngineEvent::Failed { reason };
    tokio::time::sleep_until(config.t0.into()).await;
    // A stop before time zero: nothing starts.
    if phase.borrow().rank() > Phase::Running.rank() {
        let _ = events.send(EngineEvent::Finished { source: 0 }).await;
        return;
    }
    let results = p.work_dir.join(RESULTS_FILE);
    let _ = std::fs::remove_file(&results);
    let mut child = match Supervised::spawn(command(&p, &config), &p.work_dir) {
        Ok(c) => c,
        Err(e) => {
            let reason = format!("cannot start JMeter's JVM ({}): {e:#}", p.java);
            let _ = events.send(failed(reason)).await;
            let _ = events.send(EngineEvent::Finished { source: 0 }).await;
            return;
        }
    };
    let mut tail = Tail::new(results);
    // Rows reach the file as samples end (autoflush): an interval is
    // settled once it is over (plus SETTLE_US), whatever the newest row.
    let limits = Limits {
        max_hold: Duration::ZERO,
        term_slack: TERM_SLACK,
        graceful: p.scenario.load.graceful_stop,
    };
    let Some(Followed {
        mut exit,
        stopping,
        cpu_permille,
    }) = follow(
        &mut child,
        &mut tail,
        &mut intervals,
        &mut phase,
        &events,
        limits,
    )
    .await
    else {
        return;
    };
    tracing::debug!(
        rows = tail.decoder.records(),
        broken = tail.decoder.broken(),
        "JMeter's results read"
    );
    if tail.decoder.broken() > 0 {
        tracing::warn!(
            rows = tail.decoder.broken(),
            "JMeter's results file had rows that did not decode (skipped)"
        );
    }
    if exit.stderr_tail.is_empty() {
        exit.stderr_tail = last_lines(&p.work_dir.join("jmeter.log"), LOG_TAIL_LINES);
    }
    let clean = exit.status.is_some_and(|s| s.success());
    if !stopping && !clean {
        let reason = format!("JMeter ended during the run: {}", exit.describe());
        tracing::warn!("{reason}");
        let _ = events.send(failed(reason)).await;
    } else if !stopping && !tail.started() {
        let reason = format!(
            "JMeter ended without writing its results file: {}",
            exit.describe()
        );
        let _ = events.send(failed(reason)).await;
    }
    if !send_intervals(
        &events,
        intervals.drain(unix_us(Instant::now()), cpu_permille),
    )
    .await
    {
        return;
    }
    let _ = events.send(EngineEvent::Finished { source: 0 }).await;
}
