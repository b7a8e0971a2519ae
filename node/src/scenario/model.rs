//! The validated scenario: what an engine executes.
//!
//! Built only by `scenario::load` / `scenario::parse` from TOML; every value
//! here has already been checked, so engines never re-validate. Runtime pieces
//! (templates, pools, checks, extraction) live in their own modules and are
//! referenced from here.

use std::path::PathBuf;
use std::time::Duration;

use crate::scenario::check::Check;
use crate::scenario::data::PoolSpec;
use crate::scenario::extract::Extractor;
use crate::scenario::template::Template;
use crate::scenario::threshold::Threshold;

/// A whole validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// `[scenario] name`, or the file stem.
    pub name: String,
    /// The file it was read from (empty for in-memory scenarios).
    pub source: PathBuf,
    /// Directory relative paths (data files, body files) resolve against.
    pub base_dir: PathBuf,
    /// Which engine runs it.
    pub engine: EngineKind,
    /// Where requests go.
    pub target: Target,
    /// How much load, for how long.
    pub load: Load,
    /// What each iteration does, chosen by weight (empty for Locust: its
    /// locustfile defines what users do).
    pub journeys: Vec<Journey>,
    /// Data pools by name, in declaration order.
    pub pools: Vec<PoolSpec>,
    /// Pass/fail criteria, in declaration order.
    pub thresholds: Vec<Threshold>,
    /// What Locust runs: `Some` exactly when `engine` is
    /// [`EngineKind::Locust`].
    pub locust: Option<LocustSpec>,
    /// What Gatling runs: `Some` exactly when `engine` is
    /// [`EngineKind::Gatling`].
    pub gatling: Option<GatlingSpec>,
    /// What JMeter runs: `Some` exactly when `engine` is
    /// [`EngineKind::Jmeter`].
    pub jmeter: Option<JmeterSpec>,
    /// `[source]`: the repository the scenario's files come from.
    pub git: Option<GitSource>,
    /// The files the scenario references were not read: it has a
    /// `[source]` and was loaded without a checkout (a client handing the
    /// run to agents, which check the commit out). Such a scenario cannot
    /// run; its paths point nowhere.
    pub files_deferred: bool,
}

/// `[source]`: where a scenario's files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSource {
    /// What `git clone` takes: a URL (`https://`, `ssh://`, `file://`) or
    /// `user@host:path`.
    pub url: String,
    /// A branch, tag or commit (`HEAD` when not given).
    pub rev: String,
    /// The repository directory relative paths start from (`""`: its root).
    pub path: String,
}

/// The engines a scenario can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    /// bfgg's own HTTP engine.
    Native,
    /// Locust, running the scenario's locustfile ([`Scenario::locust`]).
    Locust,
    /// Gatling, running a simulation of a Maven project
    /// ([`Scenario::gatling`]).
    Gatling,
    /// Apache JMeter, running a test plan ([`Scenario::jmeter`]).
    Jmeter,
}

impl EngineKind {
    /// The name used in scenario files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Native => "native",
            EngineKind::Locust => "locust",
            EngineKind::Gatling => "gatling",
            EngineKind::Jmeter => "jmeter",
        }
    }
}

/// `[locust]`: what Locust runs (engine = "locust").
#[derive(Debug, Clone, PartialEq)]
pub struct LocustSpec {
    /// The locustfile, resolved against the scenario's directory (exists).
    pub file: PathBuf,
    /// Other files and directories it needs, resolved (each exists).
    pub include: Vec<PathBuf>,
    /// `User` classes to run; empty: all of them.
    pub user_classes: Vec<String>,
    /// Locust `--tags`; empty: no filter.
    pub tags: Vec<String>,
    /// Locust `--exclude-tags`.
    pub exclude_tags: Vec<String>,
    /// Locust processes on each agent; `None`: one per core.
    pub processes: Option<usize>,
}

/// `[gatling]`: what Gatling runs (engine = "gatling").
#[derive(Debug, Clone, PartialEq)]
pub struct GatlingSpec {
    /// The Maven project's directory (holds `pom.xml`), resolved against the
    /// scenario's directory.
    pub project: PathBuf,
    /// The simulation class, fully qualified (`example.DemoSimulation`).
    pub simulation: String,
    /// Options for the JVM, after bfgg's defaults (a later `-Xmx` wins).
    pub java_opts: Vec<String>,
    /// System properties (`-Dkey=value`), in file order.
    pub properties: Vec<(String, String)>,
    /// Numbers each agent gets its share of, as system properties, in file
    /// order (see [`GatlingSpec::share`]).
    pub split: Vec<(String, f64)>,
    /// Also generate Gatling's own HTML report on each agent.
    pub keep_native_report: bool,
}

/// `[jmeter]`: what JMeter runs (engine = "jmeter").
#[derive(Debug, Clone, PartialEq)]
pub struct JmeterSpec {
    /// The test plan (`.jmx`), resolved against the scenario's directory.
    pub plan: PathBuf,
    /// Every other file the plan reads, resolved: the CSV Data Set Configs'
    /// files found in the plan, then `files` (each exists, unless the
    /// scenario's files are deferred to its `[source]` checkout).
    pub files: Vec<PathBuf>,
    /// CSV files whose rows are divided across agents (each row used by
    /// one agent only), resolved; each is among `files`.
    pub partition: Vec<PathBuf>,
    /// Options for the JVM (a later `-Xmx` wins over bfgg's).
    pub java_opts: Vec<String>,
    /// JMeter properties (`-Jkey=value`), in file order.
    pub properties: Vec<(String, String)>,
    /// Numbers each agent gets its share of, as JMeter properties, in file
    /// order (see [`split_share`]).
    pub split: Vec<(String, f64)>,
}

impl GatlingSpec {
    /// Agent `index`'s share of `total` among `count` agents (see
    /// [`split_share`]).
    pub fn share(total: f64, index: u64, count: u64) -> String {
        split_share(total, index, count)
    }
}

/// Agent `index`'s share of `total` among `count` agents, written as a
/// property value: whole numbers split as whole numbers (`10` over 3
/// agents: 4, 3, 3, the k6 execution-segment rule), others in equal parts;
/// either way the shares add up to `total`. Gatling's and JMeter's `split`.
pub fn split_share(total: f64, index: u64, count: u64) -> String {
    {
        let count = count.max(1);
        if total.fract() == 0.0 && (0.0..9.0e15).contains(&total) {
            let n = total as u64;
            let segment =
                crate::engine::schedule::Segment::WHOLE.split(index.min(count - 1), count);
            segment.count_below(n).to_string()
        } else {
            format_number(total / count as f64)
        }
    }
}

/// A number as Java's `Double.parseDouble` and a person read it: no
/// exponent for everyday values, no trailing zeros.
fn format_number(v: f64) -> String {
    let text = format!("{v:.9}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() || text == "-" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

/// The system under test. Locust uses only the base URL (its `--host`); the
/// validator rejects the other `[target]` keys for it, so they hold defaults.
#[derive(Debug, Clone)]
pub struct Target {
    /// Scheme, host and port, without a trailing slash: `http://127.0.0.1:8080`.
    pub origin: String,
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Host name or address, as written (IPv6 without brackets).
    pub host: String,
    /// Port (explicit or the scheme's default).
    pub port: u16,
    /// Path prefix of the base URL, without a trailing slash (often empty).
    pub base_path: String,
    /// Headers sent with every request (step headers override by name).
    pub headers: Vec<(String, Template)>,
    /// Limit on establishing a connection (TCP + TLS).
    pub connect_timeout: Duration,
    /// Limit on one request, from send to the last body byte.
    pub request_timeout: Duration,
    /// Accept any certificate (self-signed test servers). Off by default.
    pub insecure_tls: bool,
    /// Speak HTTP/2 (ALPN over TLS, prior knowledge over plain TCP).
    pub http2: bool,
}

/// URL scheme of the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain TCP.
    Http,
    /// TLS via rustls.
    Https,
}

/// The load model and its time line.
#[derive(Debug, Clone)]
pub struct Load {
    /// Open or closed, with its profile.
    pub model: LoadModel,
    /// Total run time (after which no new iteration starts).
    pub duration: Duration,
    /// How long in-flight iterations may finish after `duration`.
    pub graceful_stop: Duration,
}

/// Open model (arrivals per second) or closed model (virtual users).
#[derive(Debug, Clone)]
pub enum LoadModel {
    /// Iterations start on a schedule regardless of responses.
    Open {
        /// Arrival rate over time, iterations per second.
        rate: Profile,
        /// Most iterations in flight at once on one host; arrivals beyond wait
        /// (and count as late starts).
        max_in_flight: usize,
    },
    /// Each virtual user runs iterations back to back (with think time).
    Closed {
        /// Target number of users over time.
        users: Profile,
        /// Users started per second at most when the target rises.
        spawn_rate: f64,
    },
    /// The engine's own code sets the load (a Gatling simulation's injection
    /// profile); `[load]` gives only the longest the run may last.
    Scripted,
}

impl LoadModel {
    /// `open`, `closed` or `scripted`, as reports name it.
    pub fn as_str(&self) -> &'static str {
        match self {
            LoadModel::Open { .. } => "open",
            LoadModel::Closed { .. } => "closed",
            LoadModel::Scripted => "scripted",
        }
    }
}

/// A piecewise-linear function of time: `start` at t = 0, then each stage moves
/// linearly to its `target` over its `duration`; after the last stage the last
/// target holds. A step profile holds each value for the whole stage.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Value at t = 0.
    pub start: f64,
    /// Consecutive stages.
    pub stages: Vec<Stage>,
    /// Hold each stage's target for its whole duration instead of ramping.
    pub step: bool,
}

/// One stage of a [`Profile`].
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// How long the stage lasts.
    pub duration: Duration,
    /// Value reached at its end (ramped) or held during it (step).
    pub target: f64,
}

impl Profile {
    /// A value held for ever.
    pub fn constant(value: f64) -> Self {
        Self {
            start: value,
            stages: Vec::new(),
            step: false,
        }
    }

    /// The value at `t`.
    pub fn at(&self, t: Duration) -> f64 {
        let mut from = self.start;
        let mut elapsed = Duration::ZERO;
        for stage in &self.stages {
            let end = elapsed + stage.duration;
            if t < end {
                if self.step {
                    return stage.target;
                }
                let span = stage.duration.as_secs_f64();
                let frac = if span == 0.0 {
                    1.0
                } else {
                    (t - elapsed).as_secs_f64() / span
                };
                return from + (stage.target - from) * frac;
            }
            from = stage.target;
            elapsed = end;
        }
        from
    }

    /// Sum of stage durations.
    pub fn stages_duration(&self) -> Duration {
        self.stages.iter().map(|s| s.duration).sum()
    }

    /// Largest value the profile takes.
    pub fn peak(&self) -> f64 {
        self.stages
            .iter()
            .map(|s| s.target)
            .fold(self.start, f64::max)
    }
}

/// A weighted sequence of steps; one run of it is an iteration.
#[derive(Debug, Clone)]
pub struct Journey {
    /// Name (the request name when it has a single unnamed step).
    pub name: String,
    /// Relative frequency among journeys (>= 1).
    pub weight: u32,
    /// Steps in order.
    pub steps: Vec<Step>,
}

/// One HTTP request of a journey.
#[derive(Debug, Clone)]
pub struct Step {
    /// Request name: the key of its measurements.
    pub name: String,
    /// HTTP method.
    pub method: http::Method,
    /// Path and query, appended to the target's base path; may be templated.
    pub path: Template,
    /// Extra headers (override the target's by name, case-insensitively).
    pub headers: Vec<(String, Template)>,
    /// Request body, if any.
    pub body: Option<Body>,
    /// Checks on the response; a failure counts as an error with its reason.
    /// Empty means "status < 400".
    pub checks: Vec<Check>,
    /// Values taken from the response into variables for later steps.
    pub extract: Vec<(String, Extractor)>,
    /// Pause after this step (before the next step or iteration).
    pub think_time: Option<ThinkTime>,
}

/// A request body.
#[derive(Debug, Clone)]
pub enum Body {
    /// Text, templated; `Content-Type` defaults to `text/plain`.
    Text(Template),
    /// JSON text, templated; `Content-Type` defaults to `application/json`.
    Json(Template),
    /// Raw bytes read from a file at load time (not templated).
    File {
        /// The file, as resolved.
        path: PathBuf,
        /// Its contents.
        bytes: bytes::Bytes,
    },
}

/// A pause between steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ThinkTime {
    /// Always this long.
    Fixed(Duration),
    /// Uniformly distributed in `[min, max]`.
    Uniform(Duration, Duration),
}

impl ThinkTime {
    /// Draws one pause using `unit`, a uniform sample in `[0, 1)`.
    pub fn sample(&self, unit: f64) -> Duration {
        match *self {
            ThinkTime::Fixed(d) => d,
            ThinkTime::Uniform(lo, hi) => lo + (hi - lo).mul_f64(unit.clamp(0.0, 1.0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn ramped_profile_interpolates_and_holds() {
        let p = Profile {
            start: 0.0,
            stages: vec![
                Stage {
                    duration: secs(10),
                    target: 100.0,
                },
                Stage {
                    duration: secs(10),
                    target: 100.0,
                },
                Stage {
                    duration: secs(5),
                    target: 50.0,
                },
            ],
            step: false,
        };
        assert_eq!(p.at(secs(0)), 0.0);
        assert_eq!(p.at(secs(5)), 50.0);
        assert_eq!(p.at(secs(15)), 100.0);
        assert_eq!(p.at(Duration::from_millis(22_500)), 75.0);
        assert_eq!(p.at(secs(60)), 50.0);
        assert_eq!(p.peak(), 100.0);
        assert_eq!(p.stages_duration(), secs(25));
    }

    #[test]
    fn step_profile_holds_each_target() {
        let p = Profile {
            start: 10.0,
            stages: vec![
                Stage {
                    duration: secs(5),
                    target: 10.0,
                },
                Stage {
                    duration: secs(5),
                    target: 20.0,
                },
            ],
            step: true,
        };
        assert_eq!(p.at(secs(4)), 10.0);
        assert_eq!(p.at(secs(5)), 20.0);
        assert_eq!(p.at(secs(9)), 20.0);
        assert_eq!(p.at(secs(100)), 20.0);
    }

    #[test]
    fn gatling_shares_add_up_to_the_whole() {
        let shares = |total: f64, count: u64| -> Vec<String> {
            (0..count)
                .map(|i| GatlingSpec::share(total, i, count))
                .collect()
        };
        assert_eq!(shares(10.0, 3), ["4", "3", "3"]);
        assert_eq!(shares(2.0, 3), ["1", "1", "0"]);
        assert_eq!(shares(300.0, 1), ["300"]);
        assert_eq!(shares(0.0, 2), ["0", "0"]);
        assert_eq!(shares(2.5, 2), ["1.25", "1.25"]);
        assert_eq!(shares(1.0 / 3.0, 1), ["0.333333333"]);
        for count in 1..=7u64 {
            for total in [0u64, 1, 5, 90, 299, 300, 1001] {
                let sum: u64 = shares(total as f64, count)
                    .iter()
                    .map(|s| s.parse::<u64>().expect("whole"))
                    .sum();
                assert_eq!(sum, total, "{total} over {count}");
            }
        }
    }

    #[test]
    fn uniform_think_time_stays_in_range() {
        let t = ThinkTime::Uniform(Duration::from_millis(100), Duration::from_millis(300));
        assert_eq!(t.sample(0.0), Duration::from_millis(100));
        assert_eq!(t.sample(0.5), Duration::from_millis(200));
        assert_eq!(t.sample(2.0), Duration::from_millis(300));
    }
}
