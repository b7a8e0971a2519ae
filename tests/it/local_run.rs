//! `bfgg run` end to end against `bfgg target` on 127.0.0.1: measured values,
//! the open model's rate, error grouping, thresholds and exit codes, and the
//! files of the results directory (including the hlog read by PyPI's
//! `hdrhistogram`).

use std::time::Duration;

use crate::harness::{Target, Workspace, bfgg, python_venv, run_with_timeout};

fn f(v: &serde_json::Value, path: &str) -> f64 {
    v.pointer(path)
        .and_then(serde_json::Value::as_f64)
        .unwrap_or_else(|| panic!("missing number at {path} in {v:#}"))
}

fn u(v: &serde_json::Value, path: &str) -> u64 {
    v.pointer(path)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or_else(|| panic!("missing integer at {path} in {v:#}"))
}

#[test]
fn a_known_latency_distribution_is_reported_faithfully() {
    let target = Target::start(&[]);
    let ws = Workspace::new();
    let file = ws.write(
        "known.toml",
        &format!(
            r#"
[scenario]
name = "known-latency"
[target]
base_url = "{}"
[load]
model = "closed"
users = 8
duration = "4s"
[[request]]
name = "fast"
path = "/delay/5"
weight = 9
[[request]]
name = "slow"
path = "/delay/80"
weight = 1
"#,
            target.url
        ),
    );
    let (code, summary, stderr) = ws.run(&file, &[]);
    assert_eq!(code, 0, "{stderr}");
    let s = summary.expect("summary json");
    // The server waits exactly 5 ms / 80 ms: a reported latency can never be
    // lower (HDR keeps 3 significant digits: at most 0.1% below), and loopback
    // adds little on top (a generous bound: this machine is noisy).
    for (name, delay) in [("fast", 5.0), ("slow", 80.0)] {
        for p in ["p50", "p90", "min"] {
            let v = f(&s, &format!("/by_name/{name}/latency_ms/{p}"));
            assert!(
                v >= delay * 0.999,
                "{name} {p} = {v} below the server's {delay} ms"
            );
            assert!(
                v <= delay + 15.0,
                "{name} {p} = {v} far above the server's {delay} ms"
            );
        }
    }
    // 9:1 weights: the overall median is a fast request, the p99 a slow one.
    assert!(f(&s, "/total/latency_ms/p50") < 40.0);
    assert!(f(&s, "/total/latency_ms/p99") >= 80.0 * 0.999);
    let fast = u(&s, "/by_name/fast/requests") as f64;
    let slow = u(&s, "/by_name/slow/requests") as f64;
    let share = slow / (fast + slow);
    assert!((0.05..0.16).contains(&share), "slow share {share}");
    // Everything we counted, the server served (closed model: no request is
    // left in flight after the graceful stop).
    assert_eq!(
        u(&s, "/total/requests"),
        target.stats()["total"].as_u64().expect("served")
    );
    assert_eq!(u(&s, "/total/errors"), 0);
}

#[test]
fn the_open_model_holds_its_rate_exactly() {
    let target = Target::start(&["--latency", "1ms"]);
    let ws = Workspace::new();
    let file = ws.write(
        "open.toml",
        &format!(
            r#"
[scenario]
name = "open"
[target]
base_url = "{}"
[load]
model = "open"
rate = 200
duration = "3s"
max_in_flight = 100
[[request]]
path = "/"
"#,
            target.url
        ),
    );
    let (code, summary, stderr) = ws.run(&file, &[]);
    assert_eq!(code, 0, "{stderr}");
    let s = summary.expect("summary json");
    // 200/s for 3 s is exactly 600 arrivals; all of them must have been sent.
    assert_eq!(u(&s, "/generator/scheduled"), 600, "{s:#}");
    assert_eq!(u(&s, "/generator/missed"), 0);
    assert_eq!(u(&s, "/total/requests"), 600);
    let rps = f(&s, "/total/rps");
    assert!((rps - 200.0).abs() / 200.0 < 0.01, "rps {rps}");
    assert_eq!(target.stats()["total"].as_u64(), Some(600));
    // Service time never exceeds the corrected response time.
    assert!(f(&s, "/total/service_time_ms/p50") <= f(&s, "/total/latency_ms/p50"));
    assert!(f(&s, "/total/latency_ms/min") >= 1.0 * 0.999);
}

#[test]
fn failed_checks_are_counted_with_their_reasons() {
    let target = Target::start(&[]);
    let ws = Workspace::new();
    let file = ws.write(
        "checks.toml",
        &format!(
            r#"
[scenario]
name = "checks"
[target]
base_url = "{}"
[load]
model = "closed"
users = 2
duration = "2s"
[[request]]
name = "unavailable"
path = "/status/503"
check = {{ status = 200 }}
[[request]]
name = "missing"
path = "/status/404"
"#,
            target.url
        ),
    );
    let (code, summary, stderr) = ws.run(&file, &[]);
    assert_eq!(
        code, 0,
        "no thresholds, so errors alone do not fail the run: {stderr}"
    );
    let s = summary.expect("summary json");
    let n = u(&s, "/by_name/unavailable/requests");
    assert!(n > 0);
    assert_eq!(u(&s, "/by_name/unavailable/errors"), n);
    assert_eq!(
        s.pointer("/by_name/unavailable/error_groups/0/message")
            .and_then(|m| m.as_str()),
        Some("check failed: status 503 expected 200")
    );
    assert_eq!(u(&s, "/by_name/unavailable/error_groups/0/count"), n);
    let m = u(&s, "/by_name/missing/requests");
    assert_eq!(
        u(&s, "/by_name/missing/errors"),
        m,
        "a 404 without a check is an error"
    );
    assert_eq!(
        s.pointer("/by_name/missing/error_groups/0/class")
            .and_then(|m| m.as_str()),
        Some("http 4xx")
    );
    assert!((f(&s, "/total/error_rate") - 1.0).abs() < 1e-9);
}

#[test]
fn connection_failures_are_measured_not_fatal() {
    // A port nothing listens on: bind, note the port, close.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let ws = Workspace::new();
    let file = ws.write(
        "refused.toml",
        &format!(
            r#"
[scenario]
name = "refused"
[target]
base_url = "http://127.0.0.1:{port}"
[load]
model = "open"
rate = 50
duration = "2s"
[[request]]
path = "/"
"#
        ),
    );
    let (code, summary, stderr) = ws.run(&file, &[]);
    assert_eq!(code, 0, "{stderr}");
    let s = summary.expect("summary json");
    assert_eq!(u(&s, "/total/requests"), 100);
    assert_eq!(u(&s, "/total/errors"), 100);
    assert_eq!(
        s.pointer("/total/error_groups/0/message")
            .and_then(|m| m.as_str()),
        Some("connect refused")
    );
}

const THRESHOLDS: &str = r#"
[scenario]
name = "thresholds"
thresholds = [THRESHOLD]
[target]
base_url = "URL"
[load]
model = "open"
rate = 50
duration = "1s"
[[request]]
name = "home"
path = "/"
"#;

#[test]
fn thresholds_set_the_exit_code() {
    let target = Target::start(&[]);
    let ws = Workspace::new();
    let passing = ws.write(
        "pass.toml",
        &THRESHOLDS.replace("URL", &target.url).replace(
            "THRESHOLD",
            r#""p99 < 5s", "error_rate < 1%", "p95[home] < 5s""#,
        ),
    );
    let (code, summary, stderr) = ws.run(&passing, &[]);
    assert_eq!(code, 0, "{stderr}");
    let s = summary.expect("summary");
    assert_eq!(s["thresholds"].as_array().map(Vec::len), Some(3));
    assert!(
        s["thresholds"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|t| t["passed"] == true)
    );

    let failing = ws.write(
        "fail.toml",
        &THRESHOLDS
            .replace("URL", &target.url)
            .replace("THRESHOLD", r#""p99 < 5s", "p50 < 1us""#),
    );
    let (code, summary, stderr) = ws.run(&failing, &[]);
    assert_eq!(code, 1, "a failed threshold exits 1: {stderr}");
    let s = summary.expect("summary is still written");
    assert_eq!(s["thresholds"][0]["passed"], true);
    assert_eq!(s["thresholds"][1]["passed"], false);
    assert_eq!(s["thresholds"][1]["expression"], "p50 < 1us");
    assert!(f(&s, "/total/requests") > 0.0, "what was measured is kept");
}

#[test]
fn the_results_directory_holds_summary_timeseries_hlog_and_scenario() {
    let target = Target::start(&["--latency", "1ms..3ms"]);
    let ws = Workspace::new();
    let file = ws.write(
        "files.toml",
        &format!(
            r#"
[scenario]
name = "files"
[target]
base_url = "{}"
[load]
model = "open"
rate = 100
duration = "3s"
[[request]]
name = "a"
path = "/"
weight = 3
[[request]]
name = "b"
path = "/json"
"#,
            target.url
        ),
    );
    let (code, summary, stderr) = ws.run(&file, &[]);
    assert_eq!(code, 0, "{stderr}");
    let s = summary.expect("summary");
    let out = ws.out_dir();
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).expect("summary.json"))
            .expect("json");
    assert_eq!(on_disk, s, "--json prints exactly summary.json");
    assert_eq!(
        std::fs::read_to_string(out.join("scenario.toml")).expect("scenario copy"),
        std::fs::read_to_string(&file).expect("scenario")
    );

    // timeseries.csv: the `*` rows add up to the total, per-name rows to each name.
    let csv = std::fs::read_to_string(out.join("timeseries.csv")).expect("timeseries.csv");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    assert_eq!(&header[..4], &["second", "name", "requests", "errors"]);
    let mut star = 0;
    let mut a = 0;
    let mut seconds = std::collections::BTreeSet::new();
    for line in lines {
        let cols: Vec<&str> = line.split(',').collect();
        let n: u64 = cols[2].parse().expect("requests");
        seconds.insert(cols[0].to_string());
        match cols[1] {
            "*" => star += n,
            "a" => a += n,
            _ => {}
        }
    }
    assert_eq!(star, u(&s, "/total/requests"));
    assert_eq!(a, u(&s, "/by_name/a/requests"));
    assert!(seconds.len() >= 3, "one row per second: {seconds:?}");

    // latency.hlog: decoded by HdrHistogram's own Python package.
    let Some(python) = python_venv(&["hdrhistogram==0.10.3"]) else {
        return;
    };
    let script = r#"
import sys, json
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader
total = HdrHistogram(1, 3600000000, 3)
by_tag = {}
reader = HistogramLogReader(sys.argv[1], total)
while True:
    h = reader.get_next_interval_histogram()
    if h is None:
        break
    tag = h.get_tag()
    if tag is None:
        total.add(h)
    else:
        by_tag.setdefault(tag, HdrHistogram(1, 3600000000, 3)).add(h)
print(json.dumps({
    "count": total.get_total_count(),
    "p50": total.get_value_at_percentile(50),
    "p99": total.get_value_at_percentile(99),
    "max": total.get_max_value(),
    "tags": {t: h.get_total_count() for t, h in by_tag.items()},
}))
"#;
    let out_py = run_with_timeout(
        {
            let mut c = std::process::Command::new(&python);
            c.arg("-c").arg(script).arg(out.join("latency.hlog"));
            c
        },
        Duration::from_secs(60),
    );
    assert!(
        out_py.status.success(),
        "{}",
        String::from_utf8_lossy(&out_py.stderr)
    );
    let py: serde_json::Value = serde_json::from_slice(&out_py.stdout).expect("python json");
    assert_eq!(py["count"].as_u64(), Some(u(&s, "/total/requests")), "{py}");
    assert_eq!(py["tags"]["a"].as_u64(), Some(u(&s, "/by_name/a/requests")));
    assert_eq!(py["tags"]["b"].as_u64(), Some(u(&s, "/by_name/b/requests")));
    // The same samples give the same percentiles (µs in the log, ms in the summary).
    for (key, path) in [
        ("p50", "/total/latency_ms/p50"),
        ("p99", "/total/latency_ms/p99"),
        ("max", "/total/latency_ms/max"),
    ] {
        let from_log = py[key].as_f64().expect("number") / 1000.0;
        let reported = f(&s, path);
        assert!(
            (from_log - reported).abs() <= reported * 0.001 + 0.001,
            "{key}: hlog {from_log} vs summary {reported}"
        );
    }
}

#[test]
fn an_exhausted_unique_pool_stops_the_run_and_says_so() {
    let target = Target::start(&[]);
    let ws = Workspace::new();
    ws.write("data/codes.csv", "code\nA\nB\nC\nD\nE\n");
    let file = ws.write(
        "unique.toml",
        &format!(
            r#"
[scenario]
name = "unique"
[target]
base_url = "{}"
[load]
model = "open"
rate = 20
duration = "5s"
[data.codes]
file = "data/codes.csv"
strategy = "unique"
on_exhausted = "stop"
[[request]]
name = "redeem"
path = "/status/200?code={{{{codes.code}}}}"
"#,
            target.url
        ),
    );
    let (code, summary, stderr) = ws.run(&file, &[]);
    assert_eq!(code, 0, "{stderr}");
    let s = summary.expect("summary");
    assert_eq!(
        u(&s, "/total/requests"),
        5,
        "each row used exactly once: {s:#}"
    );
    assert_eq!(s["stopped_early"], true);
    assert_eq!(s["stop_reason"], "data pool codes exhausted");
    assert!(
        f(&s, "/duration_s") < 4.0,
        "stopped before the 5 s duration"
    );
}

#[test]
fn demo_completes_with_no_setup() {
    let ws = Workspace::new();
    let mut cmd = bfgg(ws.path());
    cmd.args(["demo", "--duration", "3s", "--out"])
        .arg(ws.out_dir());
    let out = run_with_timeout(cmd, Duration::from_secs(120));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let context = format!(
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("demo"), "{context}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ws.out_dir().join("summary.json")).expect("summary"))
            .expect("json");
    assert!(u(&summary, "/total/requests") > 0, "{context}");
    // The demo's latency thresholds hold on an idle machine; on a loaded one
    // (a debug build beside other tests) they may fail. Either way the run
    // completed, and the exit code is exactly what its thresholds say.
    let thresholds = summary["thresholds"].as_array().expect("thresholds");
    assert!(!thresholds.is_empty(), "the demo has thresholds");
    let all_passed = thresholds.iter().all(|t| t["passed"] == true);
    assert_eq!(
        out.status.code(),
        Some(if all_passed { 0 } else { 1 }),
        "{context}"
    );
}

#[test]
fn http2_prior_knowledge_runs_against_the_target() {
    let target = Target::start(&[]);
    let ws = Workspace::new();
    let file = ws.write(
        "h2.toml",
        &format!(
            r#"
[scenario]
name = "h2"
[target]
base_url = "{}"
http2 = true
[load]
model = "closed"
users = 4
duration = "2s"
[[request]]
name = "json"
path = "/json"
check = {{ status = 200, json = {{ "/status" = "ok" }} }}
"#,
            target.url
        ),
    );
    let (code, summary, stderr) = ws.run(&file, &[]);
    assert_eq!(code, 0, "{stderr}");
    let s = summary.expect("summary");
    let n = u(&s, "/total/requests");
    assert!(n > 10, "{s:#}");
    assert_eq!(u(&s, "/total/errors"), 0, "{s:#}");
    assert_eq!(target.stats()["total"].as_u64(), Some(n));
}

/// Two users looping one journey: `first`, `think` of think time, `second`.
fn two_step_scenario(
    ws: &Workspace,
    target: &Target,
    name: &str,
    duration: &str,
    graceful_stop: &str,
    think: &str,
) -> std::path::PathBuf {
    ws.write(
        &format!("{name}.toml"),
        &format!(
            r#"
[scenario]
name = "{name}"
[target]
base_url = "{}"
[load]
model = "closed"
users = 2
spawn_rate = 100
duration = "{duration}"
graceful_stop = "{graceful_stop}"
[[journey]]
name = "two-steps"
  [[journey.step]]
  name = "first"
  path = "/"
  think_time = "{think}"
  [[journey.step]]
  name = "second"
  path = "/"
"#,
            target.url
        ),
    )
}

#[test]
fn at_the_end_of_the_schedule_iterations_finish_within_the_graceful_stop() {
    // Two users, each: first, 1.5 s of think time, second. The schedule ends
    // at 1 s, mid-think: both iterations still finish (second runs once per
    // user, after the end), as the graceful stop promises.
    let target = Target::start(&[]);
    let ws = Workspace::new();
    let file = two_step_scenario(&ws, &target, "finish", "1s", "5s", "1500ms");
    let (code, summary, stderr) = ws.run(&file, &["--workers", "1"]);
    let s = summary.unwrap_or_else(|| panic!("no summary: {stderr}"));
    assert_eq!(code, 0, "{s:#}");
    assert_eq!(u(&s, "/by_name/first/requests"), 2, "{s:#}");
    assert_eq!(u(&s, "/by_name/second/requests"), 2, "{s:#}");
    assert_eq!(s["stopped_early"], false, "{s:#}");
}

#[test]
fn journeys_carry_extracted_values_and_pool_rows_between_steps() {
    let target = Target::start(&[]);
    let ws = Workspace::new();
    ws.write(
        "data/users.csv",
        "user,password,tenant\nada,pw1,t-1\ngrace,pw2,t-2\n",
    );
    let file = ws.write(
        "journey.toml",
        &format!(
            r#"
[scenario]
name = "journey"
thresholds = ["errors < 1"]
[target]
base_url = "{}"
[load]
model = "closed"
users = 3
duration = "2s"
[data.users]
file = "data/users.csv"
strategy = "circular"
[[journey]]
name = "flow"
  [[journey.step]]
  name = "login"
  method = "POST"
  path = "/login"
  json = {{ user = "{{{{users.user}}}}", password = "{{{{users.password}}}}" }}
  extract = {{ token = {{ json = "/token" }} }}
  check = {{ status = 200 }}
  [[journey.step]]
  name = "me"
  path = "/me"
  headers = {{ authorization = "Bearer {{{{token}}}}" }}
  check = {{ status = 200, body_contains = "\"user\":" }}
  [[journey.step]]
  name = "echo"
  method = "POST"
  path = "/echo"
  headers = {{ x-tenant = "{{{{users.tenant}}}}" }}
  body = "hello {{{{users.user}}}}"
  check = {{ status = 200, body_contains = "hello ", headers_present = ["x-echo-x-tenant"] }}
"#,
            target.url
        ),
    );
    let (code, summary, stderr) = ws.run(&file, &[]);
    let s = summary.unwrap_or_else(|| panic!("no summary: {stderr}"));
    assert_eq!(code, 0, "{s:#}");
    for name in ["login", "me", "echo"] {
        assert!(
            u(&s, &format!("/by_name/{name}/requests")) > 5,
            "{name}: {s:#}"
        );
        assert_eq!(
            u(&s, &format!("/by_name/{name}/errors")),
            0,
            "{name}: {s:#}"
        );
    }
}

#[test]
fn the_closed_model_ramps_users_at_the_spawn_rate() {
    let target = Target::start(&["--latency", "20ms"]);
    let ws = Workspace::new();
    let file = ws.write(
        "ramp.toml",
        &format!(
            r#"
[scenario]
name = "ramp"
[target]
base_url = "{}"
[load]
model = "closed"
users = 20
spawn_rate = 5
duration = "5s"
[[request]]
path = "/"
"#,
            target.url
        ),
    );
    let (code, _, stderr) = ws.run(&file, &["--workers", "2"]);
    assert_eq!(code, 0, "{stderr}");
    // `active` in the `*` rows: users running at the end of each second.
    let csv = std::fs::read_to_string(ws.out_dir().join("timeseries.csv")).expect("timeseries");
    let header: Vec<&str> = csv.lines().next().expect("header").split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == "active")
        .expect("active column");
    let active: Vec<u64> = csv
        .lines()
        .skip(1)
        .filter(|l| l.split(',').nth(1) == Some("*"))
        .map(|l| l.split(',').nth(col).expect("col").parse().expect("number"))
        .collect();
    // 5 users/s: about 5, 10, 15, 20 at the ends of seconds 1-4 (±1 for timing).
    for (i, want) in [5u64, 10, 15, 20].iter().enumerate() {
        let got = active[i];
        assert!(
            got.abs_diff(*want) <= 1,
            "second {i}: {got} users, expected ~{want}: {active:?}"
        );
    }
}

/// 100 arrivals/s through at most 2 requests in flight: against a target
/// that takes 50 ms, only about 40 can start per second, so the generator
/// falls behind.
fn behind_scenario(
    ws: &Workspace,
    target: &Target,
    name: &str,
    duration: &str,
    graceful_stop: &str,
) -> std::path::PathBuf {
    ws.write(
        &format!("{name}.toml"),
        &format!(
            r#"
[scenario]
name = "{name}"
[target]
base_url = "{}"
[load]
model = "open"
rate = 100
duration = "{duration}"
max_in_flight = 2
graceful_stop = "{graceful_stop}"
[[request]]
path = "/"
"#,
            target.url
        ),
    )
}

#[test]
fn a_generator_that_cannot_keep_its_schedule_says_so() {
    // Two slots at most, 50 ms per request: about 40 requests/s can start on
    // time, but 100/s are asked for. The rate must not quietly drop: the
    // shortfall shows up as late starts, missed arrivals and a warning.
    let target = Target::start(&["--latency", "50ms"]);
    let ws = Workspace::new();
    let file = behind_scenario(&ws, &target, "overload", "2s", "1s");
    let (code, summary, stderr) = ws.run(&file, &["--workers", "1"]);
    assert_eq!(code, 0, "{stderr}");
    let s = summary.expect("summary");
    let scheduled = u(&s, "/generator/scheduled");
    let late = u(&s, "/generator/late_starts");
    let missed = u(&s, "/generator/missed");
    assert_eq!(
        scheduled + missed,
        200,
        "every arrival is accounted for: {s:#}"
    );
    assert!(late > scheduled / 2, "most starts were late: {s:#}");
    assert!(
        missed > 50,
        "the backlog left at the end is reported: {s:#}"
    );
    assert!(f(&s, "/generator/schedule_lag_ms/max") > 500.0, "{s:#}");
    let warnings = s["generator"]["warnings"].as_array().expect("warnings");
    assert!(
        warnings.iter().any(|w| w
            .as_str()
            .is_some_and(|w| w.contains("could not keep its schedule"))),
        "{warnings:?}"
    );
    // The corrected latency carries the queueing; the service time does not.
    assert!(f(&s, "/total/latency_ms/p50") > 200.0, "{s:#}");
    assert!(f(&s, "/total/service_time_ms/p50") < 100.0, "{s:#}");
}

#[test]
fn arrivals_due_before_the_end_start_late_rather_than_never() {
    // 100 arrivals in 1 s, but two slots at 50 ms per request start only
    // about 40/s: at the end of load some 60 are still waiting. They were part
    // of the run, so they start late during the graceful stop (5 s is plenty)
    // and the run sends exactly what it scheduled, nothing missed.
    let target = Target::start(&["--latency", "50ms"]);
    let ws = Workspace::new();
    let file = behind_scenario(&ws, &target, "behind", "1s", "5s");
    let (code, summary, stderr) = ws.run(&file, &["--workers", "1"]);
    assert_eq!(code, 0, "{stderr}");
    let s = summary.expect("summary");
    assert_eq!(u(&s, "/generator/scheduled"), 100, "{s:#}");
    assert_eq!(u(&s, "/generator/missed"), 0, "{s:#}");
    assert_eq!(u(&s, "/total/requests"), 100, "{s:#}");
    // The last ones started long after they were due, and say so.
    assert!(f(&s, "/generator/schedule_lag_ms/max") > 800.0, "{s:#}");
}

/// `bfgg run FILE --workers 1 --json` in the background.
fn spawn_run(ws: &Workspace, file: &std::path::Path) -> std::process::Child {
    let mut cmd = bfgg(ws.path());
    cmd.arg("run")
        .arg(file)
        .args(["--workers", "1", "--json", "--out"])
        .arg(ws.out_dir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    cmd.spawn().expect("spawn bfgg run")
}

/// Sends SIGTERM to a `bfgg run`; it must exit 0 with its summary.
fn sigterm_and_wait(child: std::process::Child) -> serde_json::Value {
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    serde_json::from_slice(&out.stdout).expect("summary JSON")
}

#[test]
fn sigterm_stops_a_behind_generator_at_once_and_keeps_what_it_measured() {
    // The same overloaded generator (about 40 starts/s for 100 asked), for
    // 20 s, stopped by SIGTERM after about 2.5 s. A stop starts nothing more:
    // the backlog due before it is reported missed, not sent during the
    // graceful stop (that would go on at ~40/s for up to 5 s).
    let target = Target::start(&["--latency", "50ms"]);
    let ws = Workspace::new();
    let file = behind_scenario(&ws, &target, "stop", "20s", "5s");
    let spawned = std::time::Instant::now();
    let child = spawn_run(&ws, &file);
    std::thread::sleep(Duration::from_millis(2500));
    let signalled = spawned.elapsed();
    let s = sigterm_and_wait(child);
    assert_eq!(s["stopped_early"], true, "{s:#}");
    assert!(f(&s, "/duration_s") < 10.0, "{s:#}");
    let requests = u(&s, "/total/requests");
    // At most ~40 starts/s until the signal, and the two in flight.
    let bound = (45.0 * (signalled.as_secs_f64() + 1.0)) as u64;
    assert!(
        requests > 0 && requests <= bound,
        "{requests} requests, at most {bound} could start before the stop: {s:#}"
    );
    assert_eq!(u(&s, "/generator/scheduled"), requests, "{s:#}");
    assert!(
        u(&s, "/generator/missed") > 50,
        "the backlog at the stop is reported: {s:#}"
    );
    assert_eq!(target.stats()["total"].as_u64(), Some(requests));
}

#[test]
fn sigterm_ends_iterations_at_their_think_time() {
    // Two users, each: first, 3 s of think time, second. SIGTERM during the
    // think time ends the iterations there: second never runs.
    let target = Target::start(&[]);
    let ws = Workspace::new();
    let file = two_step_scenario(&ws, &target, "think", "20s", "10s", "3s");
    let child = spawn_run(&ws, &file);
    // Both users are in their think time once the target has served two.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while target.stats()["total"].as_u64() < Some(2) {
        assert!(std::time::Instant::now() < deadline, "no requests served");
        std::thread::sleep(Duration::from_millis(20));
    }
    let s = sigterm_and_wait(child);
    assert_eq!(s["stopped_early"], true, "{s:#}");
    assert_eq!(u(&s, "/by_name/first/requests"), 2, "{s:#}");
    // Had the iterations gone on, `second` would have run after the think.
    assert!(s["by_name"].get("second").is_none(), "{s:#}");
}

#[test]
fn a_server_stall_is_seen_in_the_corrected_latency_as_the_analysis_predicts() {
    // 100 arrivals/s for 3 s; the server holds every response for 500 ms from
    // t = 1 s. With at most 2 requests in flight, the 50 arrivals due during
    // the stall queue behind it: one sixth of all requests, with corrected
    // latencies spread evenly over (0, 500 ms]. So P(L > x) = (1/6)(1 - x/500):
    // p90 = 200 ms, p99 = 470 ms. Service times hide the stall (only the two
    // requests in flight saw it), which is coordinated omission.
    let target = Target::start(&["--stall", "500ms@1100ms"]);
    let ws = Workspace::new();
    let file = ws.write(
        "stall.toml",
        &format!(
            r#"
[scenario]
name = "stall"
[target]
base_url = "{}"
[load]
model = "open"
rate = 100
duration = "3s"
max_in_flight = 2
[[request]]
path = "/"
"#,
            target.url
        ),
    );
    let (code, summary, stderr) = ws.run(&file, &["--workers", "1"]);
    assert_eq!(code, 0, "{stderr}");
    let s = summary.expect("summary");
    assert_eq!(u(&s, "/total/requests"), 300, "{s:#}");
    let p90 = f(&s, "/total/latency_ms/p90");
    let p99 = f(&s, "/total/latency_ms/p99");
    assert!(
        (150.0..=260.0).contains(&p90),
        "corrected p90 {p90} vs analytic 200 ms: {s:#}"
    );
    assert!(
        (420.0..=530.0).contains(&p99),
        "corrected p99 {p99} vs analytic 470 ms: {s:#}"
    );
    assert!(
        f(&s, "/total/service_time_ms/p90") < 50.0,
        "service time hides the stall: {s:#}"
    );
}
