//! The Gatling engine: real Gatling from Maven Central, run unchanged, its
//! requests read back from the `simulation.log` it writes. Follows the steps
//! of [`super::external`]:
//!
//! 1. [`prepare`] (before the start instant): Java and Maven are checked,
//!    then the project is built once per content ([`build`]: Maven,
//!    offline when it can), and the simulation class is looked for.
//! 2. [`start`]: at time zero the JVM starts directly on the built class
//!    path (`io.gatling.app.Gatling -s <simulation> -rf <dir> -nr`), with
//!    the scenario's JVM options and system properties, this agent's share
//!    of each `split` number, `bfgg.agent.index`, `bfgg.agent.count`,
//!    `bfgg.duration` (seconds) and `baseUrl`. Gatling's usage analytics and
//!    its check for a newer release are turned off, so the JVM talks to the
//!    target only (the simulation's own warm-up aside).
//! 3. Every 100 ms the new bytes of `simulation.log` go through the
//!    [`log`] decoder into [`Intervals`]: requests by their end time (ms,
//!    Gatling's precision), users started and ended into `active`, errors
//!    (a request Gatling could not build) as failed requests without a time.
//!    Gatling writes the log through an 8 KiB buffer, so records arrive in
//!    bursts: an interval is shipped once the log has reached past its end
//!    (plus [`SETTLE_US`](super::external::SETTLE_US)), or [`MAX_HOLD`]
//!    after its end at the latest; a record later than that counts in the
//!    next interval not shipped.
//! 4. Stop: the end of `[load] duration` gives the simulation the graceful
//!    stop to end by itself; a stop asked for sends SIGTERM at once. The JVM
//!    exits within a second of SIGTERM; what reached the log is kept, the
//!    records still in Gatling's buffer are lost (Gatling flushes only when
//!    the buffer fills or the simulation ends). `Abort`, or a JVM that
//!    outlives [`TERM_SLACK`], is killed.
//! 5. A JVM that exits with a failure is reported with the tail of its
//!    output (exit status 2 is Gatling's failed assertions, not a failure:
//!    bfgg's thresholds judge the run). With `keep_native_report`, Gatling's
//!    own HTML report is generated from the log afterwards.

pub(crate) mod build;
pub mod log;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::{mpsc, watch};

use super::external::{
    self, Followed, Growing, Intervals, Limits, Request, Supervised, follow, last_lines,
    send_intervals, unix_us,
};
use super::jvm::{self, jdk_tool, tools};
use super::{EngineConfig, EngineEnv, EngineEvent, EngineHandle, Phase};
use crate::scenario::{GatlingSpec, Scenario};
use build::Build;
use log::{Decoder, Record};

/// Longest an interval waits for records still in Gatling's write buffer.
pub(crate) const MAX_HOLD: Duration = Duration::from_secs(60);
/// After SIGTERM, how long the JVM may take before it is killed.
const TERM_SLACK: Duration = Duration::from_secs(3);
/// Longest a report-only Gatling run (`keep_native_report`) may take.
const REPORT_LIMIT: Duration = Duration::from_secs(300);
/// Gatling's main class.
const MAIN_CLASS: &str = "io.gatling.app.Gatling";
/// The JVM options gatling-maven-plugin 4.x passes (Gatling 3.13 and later
/// fail at start without the first `--add-opens`); the scenario's
/// `java_opts` come after them, so its `-Xmx` wins.
const JVM_OPTS: &[&str] = &[
    "-XX:MaxInlineLevel=20",
    "-XX:MaxTrivialSize=12",
    "-Xmx1G",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.misc=ALL-UNNAMED",
];
/// What bfgg's launcher needs to walk from the threads to Gatling's log
/// writer on a stop (thread pools, queues and selectors of the JDK).
const LAUNCHER_OPTS: &[&str] = &[
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.ref=ALL-UNNAMED",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
];

/// Why Gatling cannot run here; the message names the fix.
#[derive(Debug, thiserror::Error)]
pub enum GatlingError {
    /// No Java.
    #[error(
        "cannot run {java}: {error} (install a JDK, 11 or later, e.g. apt-get install default-jdk-headless, or set JAVA_HOME)"
    )]
    NoJava {
        /// The executable tried.
        java: String,
        /// The OS error or its output.
        error: String,
    },
    /// No Maven.
    #[error(
        "cannot run {maven}: {error} (install Maven 3.6 or later, e.g. apt-get install maven: bfgg builds Gatling projects with it)"
    )]
    NoMaven {
        /// The executable tried.
        maven: String,
        /// The OS error or its output.
        error: String,
    },
    /// The project does not build.
    #[error("the Gatling project does not build with Maven (paths are in the project):\n{detail}")]
    Build {
        /// Maven's errors (the compiler's among them).
        detail: String,
    },
    /// The project builds, without the simulation class.
    #[error("the project has no class {simulation}{}", found_list(.found))]
    NoSimulation {
        /// The class asked for.
        simulation: String,
        /// Classes ending in `Simulation` it has.
        found: Vec<String>,
    },
    /// Anything else.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

fn found_list(found: &[String]) -> String {
    if found.is_empty() {
        " (it has no class whose name ends in Simulation)".to_owned()
    } else {
        format!(" (its simulations: {})", found.join(", "))
    }
}

/// The versions of Java and Maven here, for node health
/// (`via maven 3.8.7, java 17.0.15`); `None` if either is missing.
pub async fn probe() -> Option<String> {
    jvm::versions().await.map(|v| v.to_string())
}

/// Java's version (`17.0.15`), or why Java does not run.
async fn java_version(java: &str) -> Result<String, GatlingError> {
    jvm::java_version(java)
        .await
        .map_err(|error| GatlingError::NoJava {
            java: java.to_owned(),
            error,
        })
}

/// Maven's version (`3.8.7`), or why Maven does not run.
async fn maven_version(maven: &str) -> Result<String, GatlingError> {
    jvm::maven_version(maven)
        .await
        .map_err(|error| GatlingError::NoMaven {
            maven: maven.to_owned(),
            error,
        })
}

/// The `split` names the project's sources never mention as a string
/// (`"users"`): a simulation that does not read a number runs it in full on
/// every agent. A heuristic for `bfgg check` and the agents' log.
pub fn unread_split(spec: &GatlingSpec) -> Vec<String> {
    let mut sources = String::new();
    // Not here (a cluster client of a [source] scenario): nothing to say.
    let Ok(files) = build::project_files(&spec.project) else {
        return Vec::new();
    };
    for f in files {
        let code = f
            .extension()
            .is_some_and(|e| e == "java" || e == "kt" || e == "scala");
        if code && let Ok(text) = std::fs::read_to_string(&f) {
            sources.push_str(&text);
        }
    }
    spec.split
        .iter()
        .map(|(name, _)| name)
        .filter(|name| !sources.contains(&format!("\"{name}\"")))
        .cloned()
        .collect()
}

/// What each of `agents` (their names, in plan order) gets of the split,
/// one line per number, for `bfgg check` and the run plan: `users = 10:
/// a 5, b 5`, or that without a split every agent runs the whole
/// simulation; then a warning per split name the sources never mention.
pub fn split_plan(spec: &GatlingSpec, agents: &[&str]) -> Vec<String> {
    let count = agents.len().max(1) as u64;
    let mut lines = Vec::new();
    if spec.split.is_empty() {
        lines.push(
            "no split: every agent runs the whole simulation as written (its setUp's numbers are not \
             divided; name them in [gatling] split and read them as system properties)"
                .to_owned(),
        );
    }
    for (name, total) in &spec.split {
        let shares: Vec<String> = agents
            .iter()
            .enumerate()
            .map(|(i, agent)| format!("{agent} {}", GatlingSpec::share(*total, i as u64, count)))
            .collect();
        lines.push(format!(
            "split {name} = {}: {}",
            GatlingSpec::share(*total, 0, 1),
            shares.join(", ")
        ));
    }
    for name in unread_split(spec) {
        lines.push(format!(
            "warning: the simulation's sources never mention \"{name}\": if it does not read \
             System.getProperty(\"{name}\"), every agent runs the whole of it"
        ));
    }
    lines
}

/// A Gatling run ready to start: the project built, Java there.
#[derive(Debug)]
pub struct Prepared {
    scenario: Arc<Scenario>,
    spec: GatlingSpec,
    java: String,
    build: Build,
    /// The class directory of bfgg's launcher.
    launcher: PathBuf,
    work_dir: PathBuf,
    /// `via maven …, java …`.
    versions: String,
}

impl Prepared {
    /// The Maven and Java versions used.
    pub fn versions(&self) -> &str {
        &self.versions
    }

    /// Whether the project was compiled now (false: the cached build).
    pub fn fresh(&self) -> bool {
        self.build.fresh
    }
}

/// Checks Java and builds the project (cached per content; Maven is
/// asked for its version only when it has to build: a cached build names
/// the Maven that made it, which saves a Maven start, ~0.35 CPU-s, per run).
pub async fn prepare(scenario: Arc<Scenario>, env: &EngineEnv) -> Result<Prepared, GatlingError> {
    let spec = scenario
        .gatling
        .clone()
        .context("a Gatling scenario without [gatling]")?;
    let (java, maven) = tools();
    let java_v = java_version(&java).await?;
    let hash = build::project_hash(&spec.project)?;
    let maven_v = match build::built_with(&env.cache_dir, &hash) {
        Some(v) => v,
        None => maven_version(&maven).await?,
    };
    let versions = format!("via maven {maven_v}, java {java_v}");
    let launcher = build::launcher(&env.cache_dir, &jdk_tool("javac"), &java_v).await?;
    let build = build::build(
        &spec.project,
        &hash,
        &spec.simulation,
        &env.cache_dir,
        &maven,
        &maven_v,
    )
    .await?;
    // The JVM runs in the build's directory: its paths must not be relative.
    let work_dir = std::path::absolute(&env.work_dir)
        .with_context(|| format!("resolving {}", env.work_dir.display()))?;
    std::fs::create_dir_all(&work_dir)
        .with_context(|| format!("creating {}", work_dir.display()))?;
    for name in unread_split(&spec) {
        tracing::warn!(
            "the simulation's sources never mention \"{name}\": if it does not read it, every agent runs the whole of it"
        );
    }
    Ok(Prepared {
        scenario,
        spec,
        java,
        build,
        launcher,
        work_dir,
        versions,
    })
}

/// Starts the JVM at `config.t0` and measures what it logs.
pub fn start(prepared: Prepared, config: EngineConfig) -> anyhow::Result<EngineHandle> {
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

/// The system properties of agent `index` of `count`: the scenario's, the
/// shares of `split`, bfgg's own, and `baseUrl`.
pub fn system_properties(
    scenario: &Scenario,
    spec: &GatlingSpec,
    index: u64,
    count: u64,
) -> Vec<(String, String)> {
    let mut props = spec.properties.clone();
    for (name, total) in &spec.split {
        props.push((name.clone(), GatlingSpec::share(*total, index, count)));
    }
    props.push(("bfgg.agent.index".into(), index.to_string()));
    props.push(("bfgg.agent.count".into(), count.to_string()));
    props.push((
        "bfgg.duration".into(),
        scenario.load.duration.as_secs().max(1).to_string(),
    ));
    if !spec.properties.iter().any(|(k, _)| k == "baseUrl") {
        props.push((
            "baseUrl".into(),
            format!("{}{}", scenario.target.origin, scenario.target.base_path),
        ));
    }
    props
}

/// The JVM command line of this agent's share.
fn command(p: &Prepared, config: &EngineConfig, results: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(&p.java);
    cmd.current_dir(&p.build.dir)
        .args(JVM_OPTS)
        .args(LAUNCHER_OPTS)
        .args(&p.spec.java_opts)
        .arg("-cp")
        .arg(format!("{}:{}", p.launcher.display(), p.build.classpath))
        // Gatling asks repo1.maven.org for its latest release at each start
        // unless its preferences say it asked recently: they live here, and
        // say so (see `write_prefs`).
        .arg(format!(
            "-Djava.util.prefs.userRoot={}",
            p.work_dir.join("prefs").display()
        ))
        .arg("-Dgatling.data.enableAnalytics=false");
    let (index, count) = (config.segment.offset, config.segment.stride);
    for (k, v) in system_properties(&p.scenario, &p.spec, index, count) {
        cmd.arg(format!("-D{k}={v}"));
    }
    cmd.arg(build::LAUNCHER_CLASS)
        .args(["-s", &p.spec.simulation, "-rf"])
        .arg(results)
        .arg("-nr")
        .args(["-rd", "bfgg"]);
    cmd
}

/// Java preferences under `root` telling Gatling its last release check was
/// just now (Gatling keeps it in `/io/gatling/latestVersion`, and asks
/// Maven Central again when it is older than a few seconds): the timestamp
/// lies in the far future, so it never asks.
fn write_prefs(root: &Path) -> anyhow::Result<()> {
    let dir = root.join(".java/.userPrefs/io/gatling/latestVersion");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n\
        <!DOCTYPE map SYSTEM \"http://java.sun.com/dtd/preferences.dtd\">\n\
        <map MAP_XML_VERSION=\"1.0\">\n\
        \x20 <entry key=\"lastCheckTimestamp\" value=\"4102444800000\"/>\n\
        \x20 <entry key=\"lastCheckSuccess\" value=\"false\"/>\n\
        </map>\n";
    std::fs::write(dir.join("prefs.xml"), xml)
        .with_context(|| format!("writing {}", dir.join("prefs.xml").display()))
}

/// `simulation.log` under Gatling's results folder, once it exists.
fn find_log(results: &Path) -> Option<PathBuf> {
    std::fs::read_dir(results)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("simulation.log"))
        .find(|p| p.is_file())
}

/// The log as it grows, decoded into [`Intervals`].
struct Tail {
    results: PathBuf,
    file: Growing,
    decoder: Decoder,
    records: Vec<Record>,
    /// Users running (started minus ended).
    active: u64,
    /// The latest time any record carries, Unix µs.
    watermark_us: u64,
}

impl Tail {
    fn new(results: PathBuf) -> Self {
        Self {
            results,
            file: Growing::new("simulation.log"),
            decoder: Decoder::new(),
            records: Vec::new(),
            active: 0,
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

    /// Reads what the log gained since the last call, up to its end now.
    async fn read(&mut self, intervals: &mut Intervals) {
        let Self {
            results,
            file,
            decoder,
            records,
            active,
            watermark_us,
        } = self;
        file.read(
            || find_log(results),
            |bytes| {
                let fed = decoder.feed(bytes, records);
                for record in records.drain(..) {
                    apply(record, intervals, active, watermark_us);
                }
                fed.map_err(|e| e.to_string())
            },
        )
        .await;
    }
}

/// One record into the intervals.
fn apply(record: Record, intervals: &mut Intervals, active: &mut u64, watermark_us: &mut u64) {
    let us = |ms: i64| (ms.max(0) as u64).saturating_mul(1000);
    match record {
        Record::Run(_) | Record::Group(_) => {}
        Record::User { start, at_ms, .. } => {
            *active = if start {
                *active + 1
            } else {
                active.saturating_sub(1)
            };
            intervals.gauge(us(at_ms), *active);
            *watermark_us = (*watermark_us).max(us(at_ms));
        }
        Record::Request(r) => {
            let name = request_name(&r.groups, &r.name);
            let error = (!r.ok).then(|| r.message.as_deref().unwrap_or("KO").to_owned());
            intervals.record(&Request {
                name: &name,
                end_us: us(r.end_ms),
                response_time_us: Some(us(r.end_ms - r.start_ms)),
                bytes_in: 0,
                error: error.as_deref(),
            });
            *watermark_us = (*watermark_us).max(us(r.end_ms));
        }
        Record::Error { message, at_ms } => {
            // "<request name>: <what went wrong>"; a request that was never
            // sent counts as failed without a time, as the native engine
            // counts one it could not send.
            let (name, _) = message.split_once(": ").unwrap_or(("(gatling)", ""));
            intervals.record(&Request {
                name,
                end_us: us(at_ms),
                response_time_us: None,
                bytes_in: 0,
                error: Some(&message),
            });
            *watermark_us = (*watermark_us).max(us(at_ms));
        }
    }
}

/// A request's key: its groups and name, as Gatling's report shows them
/// (`auth / login`).
fn request_name(groups: &[Arc<str>], name: &str) -> String {
    if groups.is_empty() {
        return name.to_owned();
    }
    let mut out = String::new();
    for g in groups {
        out.push_str(g);
        out.push_str(" / ");
    }
    out.push_str(name);
    out
}

async fn supervise(
    p: Prepared,
    config: EngineConfig,
    mut phase: watch::Receiver<Phase>,
    events: mpsc::Sender<EngineEvent>,
) {
    let t0_us = unix_us(config.t0);
    let mut intervals = Intervals::new(t0_us);
    let results = p.work_dir.join("results");
    let graceful = p.scenario.load.graceful_stop;
    let failed = |reason: String| EngineEvent::Failed { reason };
    tokio::time::sleep_until(config.t0.into()).await;
    // A stop before time zero: nothing starts.
    if phase.borrow().rank() > Phase::Running.rank() {
        let _ = events.send(EngineEvent::Finished { source: 0 }).await;
        return;
    }
    let spawned = write_prefs(&p.work_dir.join("prefs"))
        .and_then(|()| Supervised::spawn(command(&p, &config, &results), &p.work_dir));
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let _ = events
                .send(failed(format!(
                    "cannot start Gatling's JVM ({}): {e:#}",
                    p.java
                )))
                .await;
            let _ = events.send(EngineEvent::Finished { source: 0 }).await;
            return;
        }
    };
    let mut tail = Tail::new(results.clone());
    let limits = Limits {
        max_hold: MAX_HOLD,
        term_slack: TERM_SLACK,
        graceful,
    };
    let Some(Followed {
        exit,
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
        format = %tail.decoder.format().map_or("none".to_owned(), |f| f.to_string()),
        records = tail.decoder.records(),
        bytes = tail.decoder.consumed(),
        "simulation.log read"
    );
    if tail.decoder.pending() > 0 {
        tracing::warn!(
            bytes = tail.decoder.pending(),
            "simulation.log ends in the middle of a record (Gatling was stopped before it flushed)"
        );
    }
    let clean = exit
        .status
        .is_some_and(|s| s.success() || s.code() == Some(2));
    // Gatling logs to stdout: without anything on stderr, its tail is there.
    let mut exit = exit;
    if exit.stderr_tail.is_empty() {
        exit.stderr_tail = last_lines(&p.work_dir.join("stdout.log"), STDOUT_TAIL_LINES);
    }
    if !stopping && !clean {
        let reason = format!("Gatling ended during the run: {}", exit.describe());
        tracing::warn!("{reason}");
        let _ = events.send(failed(reason)).await;
    } else if !stopping && find_log(&results).is_none() {
        let reason = format!(
            "Gatling ended without writing simulation.log: {}",
            exit.describe()
        );
        let _ = events.send(failed(reason)).await;
    }
    if intervals.late > 0 {
        tracing::info!(
            late = intervals.late,
            "Gatling records counted in a later interval (they reached the log more than {} s after theirs ended)",
            MAX_HOLD.as_secs()
        );
    }
    if !send_intervals(
        &events,
        intervals.drain(unix_us(Instant::now()), cpu_permille),
    )
    .await
    {
        return;
    }
    if p.spec.keep_native_report
        && let Err(e) = native_report(&p, &results).await
    {
        tracing::warn!("Gatling's own report: {e:#}");
    }
    let _ = events.send(EngineEvent::Finished { source: 0 }).await;
}

/// Lines of Gatling's stdout kept for error reports.
const STDOUT_TAIL_LINES: usize = 20;

/// Gatling's own HTML report from the log, in the run's folder beside it
/// (`gatling -ro`).
async fn native_report(p: &Prepared, results: &Path) -> anyhow::Result<()> {
    let log = find_log(results).context("no simulation.log to report on")?;
    let run = log
        .parent()
        .and_then(|d| d.file_name())
        .context("the log's folder")?
        .to_string_lossy()
        .into_owned();
    let mut cmd = tokio::process::Command::new(&p.java);
    cmd.current_dir(&p.build.dir)
        .args(JVM_OPTS)
        .arg("-cp")
        .arg(&p.build.classpath)
        .arg(format!(
            "-Djava.util.prefs.userRoot={}",
            p.work_dir.join("prefs").display()
        ))
        .arg("-Dgatling.data.enableAnalytics=false")
        .arg(MAIN_CLASS)
        .arg("-ro")
        .arg(&run)
        .arg("-rf")
        .arg(results)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(REPORT_LIMIT, cmd.output())
        .await
        .context("the report took too long")?
        .context("running Gatling")?;
    anyhow::ensure!(
        log.with_file_name("index.html").is_file(),
        "Gatling wrote no index.html ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .rev()
            .take(10)
            .collect::<Vec<_>>()
            .join(" | ")
    );
    Ok(())
}

#[cfg(test)]
mod tests;
