//! The Locust engine: real Locust (from PyPI, unchanged) on this agent, its
//! requests measured by bfgg at full precision. Follows the steps of
//! [`super::external`]:
//!
//! 1. [`prepare`]: `inspect.py` imports Locust and the locustfile once (a
//!    missing Locust, a syntax error or a missing import fails here, with the
//!    Python error), then Locust starts with `plugin.py` loaded ahead of the
//!    locustfile and bfgg's load shape unless the locustfile brings its own.
//!    Every Locust process connects to a Unix socket of this engine; the
//!    local runner (or the master, with `--processes`) holds its users until
//!    time zero.
//! 2. [`start`]: sends time zero, then every 100 ms this agent's share of the
//!    closed-model schedule (the same [`UserSchedule`] and [`Segment`]s as
//!    the native engine, moved shares included) to the shape.
//! 3. Records arrive in batches ([`wire`]) and go into [`Intervals`]; one
//!    snapshot per second, `active` = users running in the Locust processes,
//!    `cpu_busy_permille` = the busiest Locust process.
//! 4. `Draining` tells Locust's main process to quit the test (Locust's own
//!    shutdown: its workers stop in order, users get `--stop-timeout` = the
//!    scenario's graceful stop, final statistics are written); `Abort`, or a
//!    shutdown that outlasts the graceful stop, kills the process group.
//! 5. A Locust that exits on its own with a failure is reported with the tail
//!    of its stderr; what it measured is kept. Locust's own output (its log
//!    and `locust-stats.json`, its final statistics) stays in the work
//!    directory.

pub(crate) mod wire;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, watch};

use super::external::{Exit, Intervals, Request, Supervised, cpu_ticks, send_intervals, unix_us};
use super::native::DryRunStep;
use super::schedule::{Segment, UserSchedule};
use super::{EngineConfig, EngineEnv, EngineEvent, EngineHandle, MovedShare, Phase};
use crate::scenario::{LoadModel, LocustSpec, Scenario};
use wire::{Frame, Hello, NO_USERS};

const PLUGIN: &str = include_str!("plugin.py");
const INSPECT: &str = include_str!("inspect.py");
const DRY_RUN: &str = include_str!("dry_run.py");
/// How long `bfgg check --dry-run` runs its one Locust user, at most.
pub const DRY_RUN_FOR: Duration = Duration::from_secs(5);
/// Longest wait for the locustfile's import check.
const INSPECT_LIMIT: Duration = Duration::from_secs(60);
/// Longest wait for Locust to start and connect.
const READY_LIMIT: Duration = Duration::from_secs(60);
/// How often the shape gets this agent's share, and intervals are shipped.
const TICK: Duration = Duration::from_millis(100);
/// After SIGTERM, how long beyond the graceful stop Locust may take to exit.
const EXIT_SLACK: Duration = Duration::from_secs(5);
/// After `Abort`, how long Locust's shutdown may take before the group is
/// killed.
const ABORT_SLACK: Duration = Duration::from_secs(2);
/// After Locust exited, how long its connections may take to deliver.
const CLOSE_SLACK: Duration = Duration::from_secs(2);
/// The shape reads the share the node last sent when Locust ticks it (once
/// a second, at whole seconds after t0, give or take a few ms); the node
/// sends the share this far ahead, so a step due at a whole second is taken
/// at that tick, not a second later.
const LOOKAHEAD: Duration = Duration::from_millis(200);
/// Tells the local runner or master to end the test: its load shape ends
/// and Locust shuts down its own way (see plugin.py).
const STOP_LINE: &str = "{\"stop\": true}\n";
/// Linux reports process CPU time in 1/100 s.
const CLOCK_TICKS_PER_S: u64 = 100;

/// What `inspect.py` found in the locustfile.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Inspection {
    /// Locust's version.
    pub locust: String,
    /// Python's version.
    pub python: String,
    /// The `User` classes it defines.
    pub users: Vec<String>,
    /// The `LoadTestShape` classes it defines (then its shape runs on every
    /// agent instead of bfgg's share of `[load]`).
    pub shapes: Vec<String>,
}

/// Why Locust cannot run here; the message names the fix.
#[derive(Debug, thiserror::Error)]
pub enum LocustError {
    /// The Python executable is not there.
    #[error(
        "cannot run {python}: {error} (install Python 3 and Locust, or point the node at a Python that has it with --python)"
    )]
    NoPython {
        /// The executable tried.
        python: String,
        /// The OS error.
        error: String,
    },
    /// Python is there, Locust is not.
    #[error(
        "Locust is not installed for {python} (pip install locust, or point the node at a Python that has it with --python):\n{detail}"
    )]
    NoLocust {
        /// The executable tried.
        python: String,
        /// Python's error.
        detail: String,
    },
    /// The locustfile does not import.
    #[error("{file} does not load in Locust:\n{detail}")]
    Locustfile {
        /// The locustfile.
        file: String,
        /// Python's error.
        detail: String,
    },
    /// `user_classes` names a class the locustfile does not define.
    #[error("{file} defines no User class {missing} (it defines: {found})")]
    UnknownUser {
        /// The locustfile.
        file: String,
        /// The missing classes.
        missing: String,
        /// The classes it has.
        found: String,
    },
    /// Anything else (spawning, timeouts, the socket).
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Locust's and Python's versions with `python`, as node health lists them
/// (`2.47.0, python 3.11.7`); `None` if either is missing.
pub async fn probe(python: &str) -> Option<String> {
    let mut cmd = tokio::process::Command::new(resolve(python));
    cmd.args([
        "-c",
        "import sys, locust; print('%s, python %d.%d.%d' % ((locust.__version__,) + sys.version_info[:3]))",
    ])
    .env("PYTHONDONTWRITEBYTECODE", "1")
    .kill_on_drop(true);
    let out = tokio::time::timeout(INSPECT_LIMIT, cmd.output())
        .await
        .ok()?
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (!version.is_empty()).then_some(version)
}

/// `bfgg check --dry-run`: the locustfile with one user for
/// [`DRY_RUN_FOR`] (or the scenario's duration if shorter), every request as
/// a [`DryRunStep`] (the User class in place of a journey).
pub async fn dry_run(scenario: Arc<Scenario>, python: &str) -> anyhow::Result<Vec<DryRunStep>> {
    let spec = scenario
        .locust
        .clone()
        .context("a Locust scenario without [locust]")?;
    let python = resolve(python);
    inspect(&spec, &scenario.base_dir, &python).await?;
    let dir = RuntimeDir::create()?;
    let plugin = dir.path.join("bfgg_dry_run.py");
    std::fs::write(&plugin, DRY_RUN).context("writing the dry-run plugin")?;
    let run_for = DRY_RUN_FOR.min(scenario.load.duration).as_secs().max(1);
    let mut cmd = locust_command(&python, &plugin, &spec, &scenario);
    cmd.args(["--loglevel", "WARNING", "-u", "1", "-r", "1", "-t"])
        .arg(format!("{run_for}s"));
    let limit = Duration::from_secs(run_for) + READY_LIMIT;
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .with_context(|| format!("the dry run took more than {} s", limit.as_secs()))?
        .with_context(|| format!("running {python}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        anyhow::bail!(
            "Locust's dry run failed ({}):\n{}",
            out.status,
            tail(&String::from_utf8_lossy(&out.stderr), 15)
        );
    }
    Ok(stdout
        .lines()
        .filter_map(|l| l.strip_prefix("bfgg-dry-run "))
        .filter_map(|l| serde_json::from_str::<DryLine>(l).ok())
        .map(|l| DryRunStep {
            journey: l.user,
            name: l.name,
            request: format!("{} {}", l.method, l.url),
            status: l.status,
            elapsed: Duration::from_secs_f64(l.ms.max(0.0) / 1000.0),
            error: l.error,
            extracted: Vec::new(),
        })
        .collect())
}

/// One line of `dry_run.py`.
#[derive(Debug, serde::Deserialize)]
struct DryLine {
    user: String,
    name: String,
    method: String,
    url: String,
    status: Option<u16>,
    ms: f64,
    error: Option<String>,
}

/// `python -m locust` headless with `plugin` loaded ahead of the
/// scenario's locustfile, its host, tags and User classes, in the
/// scenario's directory; each caller adds its load and output options.
fn locust_command(
    python: &str,
    plugin: &Path,
    spec: &LocustSpec,
    scenario: &Scenario,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(python);
    cmd.args(["-m", "locust", "-f"])
        .arg(format!(
            "{},{}",
            plugin.display(),
            std::path::absolute(&spec.file)
                .unwrap_or_else(|_| spec.file.clone())
                .display()
        ))
        .args(["--headless", "--only-summary", "--exit-code-on-error", "0"])
        .arg("--host")
        .arg(format!(
            "{}{}",
            scenario.target.origin, scenario.target.base_path
        ));
    if !spec.tags.is_empty() {
        cmd.arg("--tags").args(&spec.tags);
    }
    if !spec.exclude_tags.is_empty() {
        cmd.arg("--exclude-tags").args(&spec.exclude_tags);
    }
    cmd.args(&spec.user_classes)
        .current_dir(&scenario.base_dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .kill_on_drop(true);
    cmd
}

/// `python` as given, or made absolute when it is a relative path (Locust
/// runs in the scenario's directory).
fn resolve(python: &str) -> String {
    let p = Path::new(python);
    if p.is_relative()
        && python.contains('/')
        && let Ok(cwd) = std::env::current_dir()
    {
        return cwd.join(p).display().to_string();
    }
    python.to_owned()
}

/// Runs `inspect.py` on the scenario's locustfile with `python`.
pub async fn inspect(
    spec: &LocustSpec,
    base_dir: &Path,
    python: &str,
) -> Result<Inspection, LocustError> {
    let python = &resolve(python);
    let dir = RuntimeDir::create()?;
    let script = dir.path.join("bfgg_inspect.py");
    std::fs::write(&script, INSPECT).context("writing the inspect script")?;
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(&script)
        .arg(std::path::absolute(&spec.file).unwrap_or_else(|_| spec.file.clone()))
        .current_dir(base_dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .kill_on_drop(true);
    let out = match tokio::time::timeout(INSPECT_LIMIT, cmd.output()).await {
        Err(_) => {
            return Err(LocustError::Other(anyhow::anyhow!(
                "importing {} took more than {} s",
                spec.file.display(),
                INSPECT_LIMIT.as_secs()
            )));
        }
        Ok(Err(e)) => {
            return Err(LocustError::NoPython {
                python: python.to_owned(),
                error: e.to_string(),
            });
        }
        Ok(Ok(out)) => out,
    };
    let detail = || tail(&String::from_utf8_lossy(&out.stderr), 15);
    match out.status.code() {
        Some(0) => {}
        Some(3) => {
            return Err(LocustError::NoLocust {
                python: python.to_owned(),
                detail: detail(),
            });
        }
        _ => {
            return Err(LocustError::Locustfile {
                file: spec.file.display().to_string(),
                detail: detail(),
            });
        }
    }
    let found: Inspection = serde_json::from_slice(out.stdout.trim_ascii())
        .with_context(|| format!("reading what {python} said about the locustfile"))?;
    let missing: Vec<&str> = spec
        .user_classes
        .iter()
        .filter(|u| !found.users.contains(u))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(LocustError::UnknownUser {
            file: spec.file.display().to_string(),
            missing: missing.join(", "),
            found: found.users.join(", "),
        });
    }
    Ok(found)
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A private directory for the plugin and the socket (short path: Unix
/// socket paths are limited to 108 bytes), removed when dropped.
#[derive(Debug)]
struct RuntimeDir {
    path: PathBuf,
}

impl RuntimeDir {
    fn create() -> anyhow::Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("bfgg-locust-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path })
    }
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Locust started and connected, holding its users until time zero.
#[derive(Debug)]
pub struct Prepared {
    scenario: Arc<Scenario>,
    inspection: Inspection,
    child: Supervised,
    listener: UnixListener,
    token: String,
    conns: mpsc::Receiver<ConnEvent>,
    conns_tx: mpsc::Sender<ConnEvent>,
    /// Events that arrived while waiting for Locust, replayed at the start.
    early: Vec<ConnEvent>,
    next_conn: u64,
    _dir: RuntimeDir,
}

impl Prepared {
    /// What the import check found.
    pub fn inspection(&self) -> &Inspection {
        &self.inspection
    }
}

/// Checks the locustfile, starts Locust and waits until it is connected.
pub async fn prepare(scenario: Arc<Scenario>, env: &EngineEnv) -> Result<Prepared, LocustError> {
    let spec = scenario
        .locust
        .clone()
        .context("a Locust scenario without [locust]")?;
    let python = resolve(&env.python);
    let inspection = inspect(&spec, &scenario.base_dir, &python).await?;
    let dir = RuntimeDir::create()?;
    let plugin = dir.path.join("bfgg_plugin.py");
    std::fs::write(&plugin, PLUGIN).context("writing the Locust plugin")?;
    let socket = dir.path.join("s");
    let listener = UnixListener::bind(&socket)
        .with_context(|| format!("listening on {}", socket.display()))?;
    std::fs::create_dir_all(&env.work_dir)
        .with_context(|| format!("creating {}", env.work_dir.display()))?;
    let token = format!("{:032x}", rand::random::<u128>());
    let processes = spec.processes.unwrap_or(env.workers).max(1);
    let mut cmd = locust_command(&python, &plugin, &spec, &scenario);
    cmd.arg("--stop-timeout")
        .arg(format!(
            "{}",
            scenario.load.graceful_stop.as_secs_f64().ceil() as u64
        ))
        .arg("--json-file")
        .arg(env.work_dir.join("locust-stats"));
    if processes > 1 {
        // The master and its workers talk over loopback on a port of their
        // own (Locust's default, 5557 on every interface, would collide
        // with another run and be reachable from the network).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free port for Locust's master")?
            .port()
            .to_string();
        cmd.arg("--processes")
            .arg(processes.to_string())
            .args([
                "--master-bind-host",
                "127.0.0.1",
                "--master-host",
                "127.0.0.1",
            ])
            .args(["--master-bind-port", &port, "--master-port", &port]);
    }
    cmd.env("BFGG_SOCKET", &socket)
        .env("BFGG_TOKEN", &token)
        .env(
            "BFGG_SHAPE",
            if inspection.shapes.is_empty() {
                "1"
            } else {
                "0"
            },
        );
    let mut child = Supervised::spawn(cmd, &env.work_dir).map_err(|e| LocustError::NoPython {
        python: python.clone(),
        error: format!("{e:#}"),
    })?;
    let (conns_tx, mut conns) = mpsc::channel(256);
    let mut next_conn = 0;
    let mut early = Vec::new();
    let workers = if processes > 1 { processes } else { 0 };
    let (mut driver_up, mut workers_up) = (false, 0usize);
    let deadline = tokio::time::sleep(READY_LIMIT);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = accepted.context("accepting Locust's connection")?;
                tokio::spawn(read_conn(next_conn, stream, token.clone(), conns_tx.clone()));
                next_conn += 1;
            }
            Some(ev) = conns.recv() => {
                if let ConnEvent::Hello { hello, .. } = &ev {
                    if hello.role == "worker" {
                        workers_up += 1;
                    } else {
                        driver_up = true;
                    }
                }
                early.push(ev);
                // Ready when the runner that starts users and every worker
                // are connected: the load then starts at t0, not when a
                // late worker shows up.
                if driver_up && workers_up >= workers {
                    break;
                }
            }
            exit = child.exited() => {
                return Err(LocustError::Other(anyhow::anyhow!("Locust ended before the run started: {}", exit.describe())));
            }
            () = &mut deadline => {
                return Err(LocustError::Other(anyhow::anyhow!(
                    "Locust did not start within {} s (its output is in {})",
                    READY_LIMIT.as_secs(),
                    env.work_dir.display()
                )));
            }
        }
    }
    Ok(Prepared {
        scenario,
        inspection,
        child,
        listener,
        token,
        conns,
        conns_tx,
        early,
        next_conn,
        _dir: dir,
    })
}

/// Starts the load at `config.t0`.
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

/// What a connection's reader reports.
#[derive(Debug)]
enum ConnEvent {
    /// A process said who it is; `lines` reaches it.
    Hello {
        id: u64,
        hello: Hello,
        lines: mpsc::Sender<String>,
    },
    /// Frames after the hello.
    Frames { id: u64, frames: Vec<Frame> },
    /// The connection ended (with what was wrong, if anything).
    Closed { id: u64, error: Option<String> },
}

/// Reads one Locust process's connection until it ends or breaks.
async fn read_conn(id: u64, stream: UnixStream, token: String, tx: mpsc::Sender<ConnEvent>) {
    let (mut rd, wr) = stream.into_split();
    let mut wr = Some(wr);
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut hello_seen = false;
    let error = loop {
        match rd.read_buf(&mut buf).await {
            Ok(0) => break None,
            Ok(_) => {}
            Err(e) => break Some(e.to_string()),
        }
        let decoded = wire::decode(&buf);
        buf.drain(..decoded.used);
        let mut frames = decoded.frames;
        if !hello_seen && !frames.is_empty() {
            let Frame::Hello(hello) = frames.remove(0) else {
                break Some("the first frame is not a hello".to_owned());
            };
            if hello.token != token {
                break Some("a connection with the wrong token".to_owned());
            }
            hello_seen = true;
            let (lines, mut lines_rx) = mpsc::channel::<String>(16);
            let Some(mut wr) = wr.take() else {
                break Some("a second hello".to_owned());
            };
            tokio::spawn(async move {
                while let Some(line) = lines_rx.recv().await {
                    if wr.write_all(line.as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
            if tx
                .send(ConnEvent::Hello { id, hello, lines })
                .await
                .is_err()
            {
                return;
            }
        }
        if !frames.is_empty() && tx.send(ConnEvent::Frames { id, frames }).await.is_err() {
            return;
        }
        if let Some(e) = decoded.error {
            break Some(e.to_string());
        }
    };
    let _ = tx.send(ConnEvent::Closed { id, error }).await;
}

/// One Locust process, as the supervisor sees it.
#[derive(Debug)]
struct Conn {
    hello: Hello,
    lines: mpsc::Sender<String>,
    /// Request names and failure messages by id.
    names: Vec<Option<String>>,
    errors: Vec<Option<String>>,
    /// Users running in it ([`NO_USERS`] for a master).
    users: u32,
    /// CPU ticks at the last sample.
    cpu: Option<u64>,
}

impl Conn {
    fn drives(&self) -> bool {
        self.hello.role != "worker"
    }
}

/// This agent's share of the closed-model schedule: its own segment from
/// t0, and each moved share from when it moved.
struct Share {
    schedule: UserSchedule,
    spawn_rate: f64,
    shares: Vec<MovedShare>,
}

impl Share {
    fn new(scenario: &Scenario, own: Segment) -> Option<Self> {
        match &scenario.load.model {
            LoadModel::Closed { users, spawn_rate } => Some(Self {
                schedule: UserSchedule::new(users, *spawn_rate),
                spawn_rate: *spawn_rate,
                shares: vec![MovedShare {
                    segment: own,
                    from: Duration::ZERO,
                }],
            }),
            LoadModel::Open { .. } | LoadModel::Scripted => None,
        }
    }

    /// Users this agent should run `elapsed` after t0, and the spawn rate
    /// of its share.
    fn at(&mut self, elapsed: Duration) -> (u64, f64) {
        let mut global = self.schedule.users_at(elapsed);
        if global < self.schedule.want_at(elapsed) {
            // Spawning toward the target at the spawn rate: Locust takes a
            // new count once a second and spawns at the share's rate, so it
            // gets where the schedule will be a second from now and follows
            // the ramp (rather than a second behind it).
            let mut ahead = self.schedule.clone();
            global = ahead.users_at(elapsed + Duration::from_secs(1));
        }
        let mut users = 0;
        let mut fraction = 0.0;
        for s in self.shares.iter().filter(|s| elapsed >= s.from) {
            users += s.segment.count_below(global);
            fraction += 1.0 / s.segment.stride as f64;
        }
        let rate = if self.spawn_rate.is_finite() {
            (self.spawn_rate * fraction).max(0.01)
        } else {
            1e6
        };
        (users, rate)
    }
}

async fn supervise(
    mut p: Prepared,
    config: EngineConfig,
    mut phase: watch::Receiver<Phase>,
    events: mpsc::Sender<EngineEvent>,
) {
    let t0_us = unix_us(config.t0);
    let graceful = p.scenario.load.graceful_stop;
    let mut intervals = Intervals::new(t0_us);
    // bfgg's shape runs unless the locustfile brings its own.
    let mut share = if p.inspection.shapes.is_empty() {
        Share::new(&p.scenario, config.segment)
    } else {
        None
    };
    let mut moved = config.moved.clone();
    let mut conns: HashMap<u64, Conn> = HashMap::new();
    let mut sent_users: Option<(u64, f64)> = None;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut cpu_permille = 0u32;
    let mut cpu_at = Instant::now();
    let mut kill_at: Option<Instant> = None;
    let mut stopping = false;
    let mut exit: Option<Exit> = None;
    let mut close_by: Option<Instant> = None;
    let t0_line = format!("{{\"t0_ms\": {}}}\n", t0_us / 1000);
    for ev in std::mem::take(&mut p.early) {
        on_conn(ev, &mut conns, &mut intervals, &t0_line);
    }
    loop {
        tokio::select! {
            accepted = p.listener.accept(), if exit.is_none() => {
                if let Ok((stream, _)) = accepted {
                    tokio::spawn(read_conn(p.next_conn, stream, p.token.clone(), p.conns_tx.clone()));
                    p.next_conn += 1;
                }
            }
            Some(ev) = p.conns.recv() => on_conn(ev, &mut conns, &mut intervals, &t0_line),
            _ = tick.tick() => {
                let now = Instant::now();
                if let Some(rx) = moved.as_mut()
                    && rx.has_changed().unwrap_or(false)
                    && let Some(s) = share.as_mut()
                {
                    let all: Vec<MovedShare> = rx.borrow_and_update().clone();
                    s.shares.truncate(1);
                    s.shares.extend(all);
                }
                if let Some(s) = share.as_mut()
                    && !stopping
                {
                    let want = s.at((now + LOOKAHEAD).saturating_duration_since(config.t0));
                    if sent_users != Some(want) {
                        let line = format!("{{\"users\": {}, \"spawn_rate\": {}}}\n", want.0, want.1);
                        for c in conns.values().filter(|c| c.drives()) {
                            let _ = c.lines.try_send(line.clone());
                        }
                        sent_users = Some(want);
                    }
                }
                if now.duration_since(cpu_at) >= Duration::from_secs(1) {
                    cpu_permille = sample_cpu(&mut conns, now.duration_since(cpu_at));
                    cpu_at = now;
                }
                intervals.gauge(unix_us(now), active_users(&conns));
                if !send_intervals(&events, intervals.due(unix_us(now), cpu_permille)).await {
                    return;
                }
                if kill_at.is_some_and(|k| now >= k) {
                    p.child.signal(Signal::SIGKILL);
                    kill_at = None;
                }
                if exit.is_some() && (conns.is_empty() || close_by.is_some_and(|c| now >= c)) {
                    break;
                }
            }
            changed = phase.changed(), if !stopping || kill_at.is_some() => {
                if changed.is_err() {
                    p.child.signal(Signal::SIGKILL);
                    break;
                }
                let ph = *phase.borrow_and_update();
                match ph {
                    Phase::Running => {}
                    Phase::Draining { .. } | Phase::Abort { .. } => {
                        if !stopping {
                            stopping = true;
                            let mut told = false;
                            for c in conns.values().filter(|c| c.drives()) {
                                told |= c.lines.try_send(STOP_LINE.to_owned()).is_ok();
                            }
                            if !told {
                                p.child.signal_leader(Signal::SIGTERM);
                            }
                            kill_at = Some(Instant::now() + graceful + EXIT_SLACK);
                        }
                        // Abort: no more grace for users, but Locust's own
                        // shutdown (workers' last records and statistics)
                        // gets a moment before the group is killed.
                        if matches!(ph, Phase::Abort { .. }) {
                            let by = Instant::now() + ABORT_SLACK;
                            kill_at = Some(kill_at.map_or(by, |k| k.min(by)));
                        }
                    }
                }
            }
            ended = p.child.exited(), if exit.is_none() => {
                tracing::debug!(stopping, "Locust ended: {}", ended.describe());
                let clean = ended.status.is_some_and(|s| s.success());
                if !stopping && clean {
                    // The locustfile's own LoadTestShape ended the test.
                    tracing::info!("Locust ended the test itself");
                } else if !stopping {
                    let reason = format!("Locust ended during the run: {}", ended.describe());
                    tracing::warn!("{reason}");
                    let _ = events.send(EngineEvent::Failed { reason }).await;
                }
                exit = Some(ended);
                close_by = Some(Instant::now() + CLOSE_SLACK);
            }
        }
    }
    // Whatever is still queued from the connections counts.
    while let Ok(ev) = p.conns.try_recv() {
        on_conn(ev, &mut conns, &mut intervals, &t0_line);
    }
    if intervals.late > 0 {
        tracing::debug!(
            late = intervals.late,
            "Locust records counted in a later interval"
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
    let _ = events.send(EngineEvent::Finished { source: 0 }).await;
}

fn on_conn(
    ev: ConnEvent,
    conns: &mut HashMap<u64, Conn>,
    intervals: &mut Intervals,
    t0_line: &str,
) {
    match ev {
        ConnEvent::Hello { id, hello, lines } => {
            let _ = lines.try_send(t0_line.to_owned());
            conns.insert(
                id,
                Conn {
                    cpu: cpu_ticks(hello.pid),
                    hello,
                    lines,
                    names: Vec::new(),
                    errors: Vec::new(),
                    users: 0,
                },
            );
        }
        ConnEvent::Frames { id, frames } => {
            let Some(c) = conns.get_mut(&id) else { return };
            for frame in frames {
                match frame {
                    Frame::Hello(_) => {}
                    Frame::Name { id, name } => set(&mut c.names, id, name),
                    Frame::Error { id, message } => set(&mut c.errors, id, message),
                    Frame::Batch { users, records } => {
                        c.users = users;
                        for r in records {
                            let name = lookup(&c.names, r.name).unwrap_or("(unnamed)");
                            let error = match r.error {
                                0 => None,
                                e => Some(lookup(&c.errors, e).unwrap_or("(unknown failure)")),
                            };
                            intervals.record(&Request {
                                name,
                                end_us: r.end_us,
                                response_time_us: Some(r.response_time_us as u64),
                                bytes_in: r.length as u64,
                                error,
                            });
                        }
                    }
                }
            }
        }
        ConnEvent::Closed { id, error } => {
            if let Some(e) = error {
                tracing::warn!(
                    "a Locust process's connection broke: {e} (what it sent before counts)"
                );
            }
            conns.remove(&id);
        }
    }
}

fn set(table: &mut Vec<Option<String>>, id: u16, value: String) {
    let i = id as usize;
    if table.len() <= i {
        table.resize(i + 1, None);
    }
    table[i] = Some(value);
}

fn lookup(table: &[Option<String>], id: u16) -> Option<&str> {
    table.get(id as usize).and_then(|v| v.as_deref())
}

fn active_users(conns: &HashMap<u64, Conn>) -> u64 {
    conns
        .values()
        .filter(|c| c.users != NO_USERS)
        .map(|c| c.users as u64)
        .sum()
}

/// The busiest Locust process's CPU over `over`, per mille of a core.
fn sample_cpu(conns: &mut HashMap<u64, Conn>, over: Duration) -> u32 {
    let mut busiest = 0;
    for c in conns.values_mut() {
        let now = cpu_ticks(c.hello.pid);
        if let (Some(before), Some(now)) = (c.cpu, now) {
            let used_ms = now.saturating_sub(before) * 1000 / CLOCK_TICKS_PER_S;
            let permille = (used_ms * 1000 / over.as_millis().max(1) as u64).min(1000) as u32;
            busiest = busiest.max(permille);
        }
        c.cpu = now;
    }
    busiest
}

#[cfg(test)]
mod tests;
