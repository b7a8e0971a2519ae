//! Loading scenarios end to end: the shipped examples, the model built from
//! each TOML form, and every validation error with its position and message.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::scenario::check::Check;
use crate::scenario::data::{OnExhausted, Strategy};
use crate::scenario::threshold::{Metric, Op, Percentile};

mod jmeter;
mod locust;
mod source;

/// `node/src/scenario/testdata`, where fixture files live.
fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/scenario/testdata")
}

fn parse_str(text: &str) -> Result<Scenario, ScenarioError> {
    parse(text, Path::new("t.toml"), &testdata())
}

fn ok(text: &str) -> Scenario {
    parse_str(text).unwrap_or_else(|e| panic!("{e}"))
}

fn diagnostics(text: &str) -> Vec<Diagnostic> {
    match parse_str(text) {
        Ok(_) => panic!("parsed without errors:\n{text}"),
        Err(ScenarioError::Invalid { diagnostics }) => diagnostics,
        Err(e) => panic!("unexpected error {e}"),
    }
}

/// Each diagnostic as `line:column field: message`.
fn errors(text: &str) -> Vec<String> {
    diagnostics(text).iter().map(summary).collect()
}

fn summary(d: &Diagnostic) -> String {
    format!(
        "{}:{} {}: {}",
        d.line,
        d.column,
        d.field.as_deref().unwrap_or(""),
        d.message
    )
}

/// The only diagnostic's summary and help.
fn single(text: &str) -> (String, Option<String>) {
    let all = diagnostics(text);
    assert_eq!(all.len(), 1, "{all:#?}");
    (summary(&all[0]), all[0].help.clone())
}

/// Lines 1-6: a valid target and open load; append requests from line 7.
const HEAD: &str = r#"[target]
base_url = "http://127.0.0.1:8080"
[load]
model = "open"
rate = 10
duration = "10s"
"#;

/// Lines 1-2: a valid target; append a [load] and requests from line 3.
const TARGET: &str = r#"[target]
base_url = "http://127.0.0.1:8080"
"#;

/// A request to append after a [load] table.
const REQUEST: &str = "[[request]]\npath = \"/\"\n";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ---- the shipped examples ------------------------------------------------

#[test]
fn every_example_scenario_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut names = Vec::new();
    // Examples with files of their own (a locustfile) have a directory.
    for dir in [
        dir.clone(),
        dir.join("locust"),
        dir.join("gatling"),
        dir.join("jmeter"),
    ] {
        for entry in std::fs::read_dir(&dir).expect("scenarios/ exists") {
            let path = entry.expect("readable").path();
            if path.extension().is_some_and(|e| e == "toml") {
                let scenario = load(&path).unwrap_or_else(|e| panic!("{}:\n{e}", path.display()));
                match scenario.engine {
                    EngineKind::Native => assert!(!scenario.journeys.is_empty()),
                    EngineKind::Locust => assert!(scenario.locust.is_some()),
                    EngineKind::Gatling => assert!(scenario.gatling.is_some()),
                    EngineKind::Jmeter => assert!(scenario.jmeter.is_some()),
                }
                assert!(
                    scenario.load.duration <= Duration::from_secs(40),
                    "{}",
                    path.display()
                );
                assert!(peak(&scenario.load.model) <= 500.0, "{}", path.display());
                names.push(scenario.name);
            }
        }
    }
    names.sort();
    assert_eq!(
        names,
        [
            "closed-model",
            "demo",
            "gatling",
            "jmeter",
            "locust",
            "open-model",
            "step-load"
        ]
    );
}

#[test]
fn locust_example_builds_the_expected_model() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/locust");
    let s = load(&dir.join("scenario.toml")).expect("loads");
    assert_eq!(s.engine, EngineKind::Locust);
    assert_eq!(s.target.origin, "http://127.0.0.1:8080");
    let spec = s.locust.as_ref().expect("[locust]");
    assert_eq!(spec.file, dir.join("locustfile.py"));
    assert!(spec.include.is_empty() && spec.processes.is_none());
    let LoadModel::Closed { users, spawn_rate } = &s.load.model else {
        panic!("closed");
    };
    assert_eq!(users.peak(), 10.0);
    assert_eq!(*spawn_rate, 5.0);
    assert_eq!(s.load.duration, Duration::from_secs(35));
    assert_eq!(s.thresholds.len(), 2);
}

fn peak(model: &LoadModel) -> f64 {
    match model {
        LoadModel::Open { rate, .. } => rate.peak(),
        LoadModel::Closed { users, .. } => users.peak(),
        LoadModel::Scripted => 0.0,
    }
}

#[test]
fn demo_scenario_builds_the_expected_model() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/demo.toml");
    let s = load(&path).expect("loads");
    assert_eq!(s.name, "demo");
    assert_eq!(s.engine, EngineKind::Native);
    assert_eq!(s.source, path);
    assert_eq!(s.target.origin, "http://127.0.0.1:8080");
    assert_eq!(s.target.connect_timeout, Duration::from_secs(2));
    assert_eq!(s.load.duration, Duration::from_secs(15));
    assert_eq!(s.load.graceful_stop, Duration::from_secs(3));
    assert_eq!(s.pools.len(), 1);
    assert_eq!(s.pools[0].columns, ["user", "password", "tenant"]);
    let names: Vec<&str> = s.journeys.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["home", "api", "login-and-browse"]);
    let login = &s.journeys[2];
    assert_eq!(login.weight, 2);
    assert_eq!(login.steps.len(), 3);
    assert_eq!(login.steps[0].extract.len(), 2);
    assert_eq!(login.steps[0].extract[0].0, "token");
    assert!(matches!(
        login.steps[0].think_time,
        Some(ThinkTime::Uniform(lo, hi)) if lo == ms(100) && hi == ms(300)
    ));
    assert_eq!(s.thresholds.len(), 4);
    assert_eq!(s.thresholds[3].scope.as_deref(), Some("login"));
}

#[test]
fn load_reports_unreadable_files_as_io() {
    let missing = testdata().join("no-such-scenario.toml");
    match load(&missing) {
        Err(ScenarioError::Io { path, .. }) => assert_eq!(path, missing),
        other => panic!("{other:?}"),
    }
}

// ---- the model built from each form ---------------------------------------

#[test]
fn defaults_fill_in_a_minimal_scenario() {
    let s = parse(
        &format!("{HEAD}{REQUEST}"),
        Path::new("dir/checkout.toml"),
        &testdata(),
    )
    .expect("valid");
    assert_eq!(s.name, "checkout");
    assert_eq!(s.engine, EngineKind::Native);
    assert_eq!(s.target.connect_timeout, Duration::from_secs(5));
    assert_eq!(s.target.request_timeout, Duration::from_secs(30));
    assert!(!s.target.insecure_tls && !s.target.http2);
    assert_eq!(s.load.graceful_stop, Duration::from_secs(5));
    let LoadModel::Open {
        rate,
        max_in_flight,
    } = &s.load.model
    else {
        panic!("open");
    };
    assert_eq!(*rate, Profile::constant(10.0));
    assert_eq!(*max_in_flight, 10_000);
    let step = &s.journeys[0].steps[0];
    assert_eq!(s.journeys[0].name, "GET /");
    assert_eq!(s.journeys[0].weight, 1);
    assert_eq!(step.name, "GET /");
    assert_eq!(step.method, http::Method::GET);
    assert!(step.checks.is_empty() && step.extract.is_empty() && step.headers.is_empty());
    assert!(step.body.is_none() && step.think_time.is_none());
}

#[test]
fn target_parts_and_headers() {
    let s = ok(&format!(
        r#"[target]
base_url = "https://[::1]:8443/api/v1/"
headers = {{ User-Agent = "bfgg", x-tenant = "{{{{users.tenant}}}}" }}
insecure_tls = true
http2 = true
request_timeout = "1m30s"
[data.users]
file = "users.csv"
[load]
model = "open"
rate = 1
duration = "1s"
{REQUEST}"#
    ));
    let t = &s.target;
    assert_eq!(t.scheme, Scheme::Https);
    assert_eq!((t.host.as_str(), t.port), ("::1", 8443));
    assert_eq!(t.base_path, "/api/v1");
    assert_eq!(t.origin, "https://[::1]:8443");
    assert!(t.insecure_tls && t.http2);
    assert_eq!(t.request_timeout, Duration::from_secs(90));
    let headers: Vec<(&str, &str)> = t
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.source()))
        .collect();
    assert_eq!(
        headers,
        [("user-agent", "bfgg"), ("x-tenant", "{{users.tenant}}")]
    );
}

#[test]
fn open_stages_ramp_from_start_rate() {
    let s = ok(&format!(
        r#"{TARGET}[load]
model = "open"
start_rate = 5
stages = [{{ duration = "10s", target = 200 }}, {{ duration = "20s", target = 200 }}]
max_in_flight = 50
{REQUEST}"#
    ));
    assert_eq!(s.load.duration, Duration::from_secs(30));
    let LoadModel::Open {
        rate,
        max_in_flight,
    } = &s.load.model
    else {
        panic!("open");
    };
    assert_eq!(*max_in_flight, 50);
    assert_eq!(rate.start, 5.0);
    assert!(!rate.step);
    assert_eq!(
        rate.stages,
        [
            Stage {
                duration: Duration::from_secs(10),
                target: 200.0
            },
            Stage {
                duration: Duration::from_secs(20),
                target: 200.0
            }
        ]
    );
}

#[test]
fn explicit_duration_wins_over_stages() {
    let s = ok(&format!(
        "{TARGET}[load]\nmodel = \"open\"\nduration = \"5s\"\nstages = [{{ duration = \"10s\", target = 20 }}]\n{REQUEST}"
    ));
    assert_eq!(s.load.duration, Duration::from_secs(5));
}

#[test]
fn closed_constant_users_spawn_all_at_once_by_default() {
    let s = ok(&format!(
        "{TARGET}[load]\nmodel = \"closed\"\nusers = 50\nduration = \"30s\"\n{REQUEST}"
    ));
    let LoadModel::Closed { users, spawn_rate } = &s.load.model else {
        panic!("closed");
    };
    assert_eq!(*users, Profile::constant(50.0));
    assert_eq!(*spawn_rate, 50.0);
}

#[test]
fn closed_stages_default_spawn_rate_to_the_peak() {
    let s = ok(&format!(
        "{TARGET}[load]\nmodel = \"closed\"\nstages = [{{ duration = \"5s\", target = 8 }}, {{ duration = \"5s\", target = 0 }}]\n{REQUEST}"
    ));
    let LoadModel::Closed { users, spawn_rate } = &s.load.model else {
        panic!("closed");
    };
    assert_eq!(users.start, 0.0);
    assert_eq!(users.stages.len(), 2);
    assert_eq!(*spawn_rate, 8.0);
    assert_eq!(s.load.duration, Duration::from_secs(10));
}

#[test]
fn step_load_builds_held_levels() {
    let s = ok(&format!(
        "{TARGET}[load]\nmodel = \"closed\"\nusers = 25\nstep_users = 10\nstep_duration = \"10s\"\n{REQUEST}"
    ));
    let LoadModel::Closed { users, spawn_rate } = &s.load.model else {
        panic!("closed");
    };
    assert!(users.step);
    let targets: Vec<f64> = users.stages.iter().map(|s| s.target).collect();
    assert_eq!(targets, [10.0, 20.0, 25.0]);
    assert_eq!(users.at(Duration::ZERO), 10.0);
    assert_eq!(users.at(Duration::from_secs(15)), 20.0);
    assert_eq!(users.at(Duration::from_secs(99)), 25.0);
    assert_eq!(*spawn_rate, 10.0);
    assert_eq!(s.load.duration, Duration::from_secs(30));
}

#[test]
fn json_bodies_become_templated_json_text_with_a_content_type() {
    let s = ok(&format!(
        r#"{HEAD}[data.users]
file = "users.csv"
[[request]]
method = "post"
path = "/login"
json = {{ user = "{{{{users.user}}}}", n = 1, f = 1.5, ok = true, tags = ["a", "b\"c"], nested = {{ z = 1, a = 2 }} }}
"#
    ));
    let step = &s.journeys[0].steps[0];
    assert_eq!(step.method, http::Method::POST);
    assert_eq!(step.name, "POST /login");
    let Some(Body::Json(t)) = &step.body else {
        panic!("{:?}", step.body);
    };
    assert_eq!(
        t.source(),
        r#"{"user":"{{users.user}}","n":1,"f":1.5,"ok":true,"tags":["a","b\"c"],"nested":{"z":1,"a":2}}"#
    );
    assert_eq!(t.refs().count(), 1);
    assert_eq!(step.headers[0].0, "content-type");
    assert_eq!(step.headers[0].1.source(), "application/json");
}

#[test]
fn content_type_defaults_per_body_kind_unless_given() {
    let s = ok(&format!(
        r#"{HEAD}[[request]]
path = "/a"
body = "hi {{{{$uuid}}}}"
[[request]]
path = "/b"
body_file = "payload.bin"
[[request]]
path = "/c"
body = "x"
headers = {{ Content-Type = "application/xml" }}
"#
    ));
    let header = |j: usize| -> Vec<(String, String)> {
        s.journeys[j].steps[0]
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), v.source().to_owned()))
            .collect()
    };
    assert_eq!(header(0), [("content-type".into(), "text/plain".into())]);
    assert_eq!(
        header(1),
        [("content-type".into(), "application/octet-stream".into())]
    );
    assert_eq!(
        header(2),
        [("content-type".into(), "application/xml".into())]
    );
    let Some(Body::File { path, bytes }) = &s.journeys[1].steps[0].body else {
        panic!("file body");
    };
    assert_eq!(path, &testdata().join("payload.bin"));
    assert_eq!(bytes.as_ref(), b"\x00\x01binary payload\xff");
}

#[test]
fn checks_and_extractors_are_built_in_order() {
    let s = ok(&format!(
        r#"{HEAD}[[journey]]
name = "j"
  [[journey.step]]
  path = "/login"
  check = {{ status = [200, 201], body_contains = "ok", json = {{ "/status" = "ok", "/n" = 2 }}, headers_present = ["X-Id", "etag"] }}
  extract = {{ token = {{ json = "/token" }}, sid = {{ header = "Set-Cookie" }}, id = {{ regex = "id=(\\d+)" }} }}
  [[journey.step]]
  path = "/me/{{{{id}}}}"
  headers = {{ authorization = "Bearer {{{{token}}}}", cookie = "{{{{sid}}}}" }}
  check = {{ headers_present = "x-one" }}
"#
    ));
    let steps = &s.journeys[0].steps;
    assert_eq!(
        steps[0].checks,
        [
            Check::Status(vec![200, 201]),
            Check::BodyContains("ok".into()),
            Check::JsonEquals {
                pointer: "/status".into(),
                expected: serde_json::json!("ok")
            },
            Check::JsonEquals {
                pointer: "/n".into(),
                expected: serde_json::json!(2)
            },
            Check::HeaderPresent("x-id".into()),
            Check::HeaderPresent("etag".into()),
        ]
    );
    let names: Vec<&str> = steps[0].extract.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["token", "sid", "id"]);
    assert_eq!(steps[0].extract[1].1.describe(), "header set-cookie");
    assert_eq!(steps[0].extract[2].1.describe(), r"regex id=(\d+)");
    assert_eq!(steps[1].checks, [Check::HeaderPresent("x-one".into())]);
}

#[test]
fn pools_keep_their_strategy() {
    let s = ok(&format!(
        "{HEAD}[data.a]\nfile = \"users.csv\"\nstrategy = \"unique\"\non_exhausted = \"skip\"\n[data.b]\nfile = \"users.csv\"\nstrategy = \"random\"\n{REQUEST}"
    ));
    let pools: Vec<(&str, Strategy, OnExhausted)> = s
        .pools
        .iter()
        .map(|p| (p.name.as_str(), p.strategy, p.on_exhausted))
        .collect();
    assert_eq!(
        pools,
        [
            ("a", Strategy::Unique, OnExhausted::Skip),
            ("b", Strategy::Random, OnExhausted::Stop)
        ]
    );
}

#[test]
fn duplicate_request_names_are_allowed() {
    let s = ok(&format!(
        "{HEAD}[[request]]\nname = \"x\"\npath = \"/a\"\n[[request]]\nname = \"x\"\npath = \"/b\"\n"
    ));
    assert_eq!(s.journeys.len(), 2);
}

#[test]
fn thresholds_go_in_scenario_or_at_the_top() {
    let s = ok(&format!(
        "[scenario]\nthresholds = [\"p99 < 250ms\", \"rps > 5\"]\n{HEAD}{REQUEST}"
    ));
    assert_eq!(s.thresholds.len(), 2);
    assert_eq!(s.thresholds[0].metric, Metric::Latency(Percentile::P99));
    let s = ok(&format!(
        "thresholds = [\"p95[GET /] <= 1s\"]\n{HEAD}{REQUEST}"
    ));
    assert_eq!(s.thresholds[0].op, Op::Le);
    assert_eq!(s.thresholds[0].value, 1000.0);
}

// ---- errors: syntax and shape ---------------------------------------------

#[test]
fn toml_syntax_errors_are_all_reported() {
    assert_eq!(
        errors("[load\nrate = 5\n"),
        ["1:6 : invalid TOML: unclosed table, expected `]`"]
    );
    let (summary, help) = single("[load]\nrate = 5\nrate = 6\n");
    assert_eq!(summary, "3:1 : invalid TOML: duplicate key `rate`");
    assert!(help.is_some());
    let (summary, help) = single("[load]\nmodel = open\n");
    assert_eq!(
        summary,
        "2:9 : invalid TOML: string values must be quoted, expected literal string"
    );
    assert_eq!(
        help.as_deref(),
        Some("quote text values, e.g. method = \"GET\"")
    );
}

#[test]
fn wrong_brackets_are_explained() {
    let (summary, help) = single("[[load]]\nmodel = 'open'\n");
    assert_eq!(summary, "1:3 load: expected a table, found an array");
    assert_eq!(
        help.as_deref(),
        Some("write [load] (one table), not [[load]] (an array of tables)")
    );
    let (summary, help) = single("[request]\npath = '/'\n");
    assert_eq!(
        summary,
        "1:2 request: expected [[request]] tables, found a table"
    );
    assert_eq!(
        help.as_deref(),
        Some("write [[request]] with double brackets: each one adds an entry")
    );
    let (summary, _) = single("[[journey]]\nname = 'j'\n[journey.step]\npath = '/'\n");
    assert_eq!(
        summary,
        "3:10 journey[0].step: expected [[journey.step]] tables, found a table"
    );
}

#[test]
fn unknown_keys_suggest_the_closest_key() {
    let (summary, help) = single(&format!("{TARGET}[load]\nmodel = 'open'\nrat = 5\n"));
    assert_eq!(summary, "5:1 load.rat: unknown key");
    assert_eq!(help.as_deref(), Some("did you mean `rate`?"));
    let (summary, help) = single(&format!(
        "{HEAD}[[journey]]\n[[journey.step]]\npath = '/'\nheader = {{ a = 'b' }}\n"
    ));
    assert_eq!(summary, "10:1 journey[0].step[0].header: unknown key");
    assert_eq!(help.as_deref(), Some("did you mean `headers`?"));
    let (_, help) = single("[target]\nbase-url = 'http://x'\n");
    assert_eq!(help.as_deref(), Some("did you mean `base_url`?"));
    let (_, help) = single("[load]\nbogus = 1\n");
    assert_eq!(
        help.as_deref(),
        Some(
            "expected one of: model, duration, graceful_stop, stages, rate, start_rate, max_in_flight, users, spawn_rate, step_users, step_duration"
        )
    );
}

#[test]
fn keys_under_the_wrong_header_name_their_table() {
    let (summary, help) = single("[target]\nbase_url = 'http://x'\nrate = 5\n");
    assert_eq!(summary, "3:1 target.rate: unknown key");
    assert_eq!(
        help.as_deref(),
        Some(
            "`rate` belongs in [load]; TOML puts every key after a [header] into that table, so this one landed in [target]"
        )
    );
    let (summary, help) = single(&format!("{HEAD}{REQUEST}thresholds = [\"p99 < 1s\"]\n"));
    assert_eq!(summary, "9:1 request[0].thresholds: unknown key");
    assert_eq!(
        help.as_deref(),
        Some(
            "`thresholds` belongs in [scenario] (or the top of the file, above the first [table] header); TOML puts every key after a [header] into that table, so this one landed in [[request]]"
        )
    );
}

#[test]
fn wrong_types_say_what_was_expected() {
    let (summary, help) = single(&format!(
        "{TARGET}[load]\nmodel = \"open\"\nrate = \"fast\"\n"
    ));
    assert_eq!(
        summary,
        "5:8 load.rate: expected a number of arrivals per second, found a string"
    );
    assert_eq!(help.as_deref(), Some("write e.g. rate = 100"));
    let (summary, help) = single(&format!("{TARGET}[load]\nduration = 30\n"));
    assert_eq!(
        summary,
        "4:12 load.duration: expected a duration such as \"30s\", found an integer"
    );
    assert_eq!(
        help.as_deref(),
        Some("durations are strings with a unit: write e.g. duration = \"30s\"")
    );
    let (summary, _) = single("[target]\nbase_url = 'http://x'\nhttp2 = 'yes'\n");
    assert_eq!(
        summary,
        "3:9 target.http2: expected true or false, found a string"
    );
    let (summary, _) = single("[target]\nbase_url = 'http://x'\nheaders = { a = 5 }\n");
    assert_eq!(
        summary,
        "3:17 target.headers.a: expected a string, found an integer"
    );
    let (summary, _) = single(&format!(
        "{HEAD}[[request]]\npath = '/'\njson = {{ when = 1979-05-27 }}\n"
    ));
    assert_eq!(
        summary,
        "9:17 request[0].json.when: TOML dates and times are not supported here"
    );
}

// ---- errors: semantics -----------------------------------------------------

#[test]
fn broken_fixture_reports_every_problem_in_file_order() {
    let path = testdata().join("broken.toml");
    let Err(ScenarioError::Invalid { diagnostics }) = load(&path) else {
        panic!("broken.toml loaded");
    };
    let got: Vec<String> = diagnostics.iter().map(summary).collect();
    assert_eq!(
        got,
        [
            "4:10 scenario.engine: unknown engine `gatlinq`",
            "7:12 target.base_url: unsupported scheme `ftp`: expected http or https",
            "11:8 load.rate: the rate must be above 0, found -5",
            "12:9 load.users: `users` only applies to the closed model, but this load has model = \"open\"",
            "13:12 load.duration: invalid duration `10 sec`: unknown unit `sec` (expected us, ms, s, m or h)",
            "18:16 data.users.on_exhausted: `on_exhausted` only applies to strategy = \"unique\"",
            "22:10 request[0].method: unknown HTTP method `GTE`",
            "23:8 request[0].path: the path must start with `/`",
            "24:10 request[0].weight: the weight is 0",
            "25:20 request[0].check.status: status 700 is not an HTTP status code",
            "26:14 request[0].think_time: invalid think time `500ms..100ms`: the minimum 500ms is above the maximum 100ms",
            "31:17 journey[0].step[0].path: `{{cart_id}}` is not set before this request",
            "32:25 journey[0].step[0].headers.x-user: data pool `users` has no column `emial`",
            "36:10 journey[0].step[1].json: the body is given twice: `body` and `json`",
            "39:1 journey[1]: the journey has no steps",
            "40:8 journey[1].name: duplicate journey name `shop`",
        ]
    );
    let help = |i: usize| diagnostics[i].help.as_deref().unwrap_or("");
    assert_eq!(
        help(0),
        "the engines that exist are: native, locust, gatling, jmeter"
    );
    assert_eq!(help(4), "write e.g. 500ms, 10s, 2m, 1h");
    assert_eq!(help(6), "did you mean \"GET\"?");
    assert_eq!(help(7), "write path = \"/home\"");
    assert_eq!(help(9), "status codes are between 100 and 599");
    assert_eq!(
        help(11),
        "`cart_id` is extracted by step `/pay`, which does not run before this one"
    );
    assert_eq!(help(12), "its columns are: `user`, `password`, `tenant`");
    assert_eq!(
        help(15),
        "journey[0] already uses it; journey names must be unique (request names may repeat)"
    );
    let rendered = ScenarioError::Invalid {
        diagnostics: diagnostics.clone(),
    }
    .to_string();
    assert!(
        rendered.ends_with("\n\nerror: the scenario has 16 errors"),
        "{rendered}"
    );
}

#[test]
fn a_diagnostic_renders_exactly() {
    let text = format!("{TARGET}[load]\nmodel = \"open\"\nrate = \"fast\"\n");
    let Err(e) = parse(&text, Path::new("scenarios/broken.toml"), &testdata()) else {
        panic!("parsed");
    };
    assert_eq!(
        e.to_string(),
        r#"error: load.rate: expected a number of arrivals per second, found a string
 --> scenarios/broken.toml:5:8
  |
5 | rate = "fast"
  |        ^^^^^^
  = help: write e.g. rate = 100"#
    );
}

#[test]
fn load_numbers_must_be_positive_and_whole() {
    let load = |body: &str| errors(&format!("{TARGET}[load]\n{body}\n{REQUEST}"));
    assert_eq!(
        load("model = \"open\"\nrate = 0\nduration = \"1s\""),
        ["5:8 load.rate: the rate must be above 0, found 0"]
    );
    assert_eq!(
        load("model = \"closed\"\nusers = 0\nduration = \"1s\""),
        ["5:9 load.users: `users` must be at least 1, found 0"]
    );
    assert_eq!(
        load("model = \"closed\"\nusers = -3\nduration = \"1s\""),
        ["5:9 load.users: `users` must be at least 1, found -3"]
    );
    assert_eq!(
        load("model = \"closed\"\nusers = 2.5\nduration = \"1s\""),
        ["5:9 load.users: `users` must be a whole number, found 2.5"]
    );
    assert_eq!(
        load("model = \"closed\"\nusers = 5\nspawn_rate = -1\nduration = \"1s\""),
        ["6:14 load.spawn_rate: the spawn rate must be above 0, found -1"]
    );
    assert_eq!(
        load("model = \"open\"\nrate = 1\nmax_in_flight = 0\nduration = \"1s\""),
        ["6:17 load.max_in_flight: `max_in_flight` must be at least 1, found 0"]
    );
    assert_eq!(
        load("model = \"open\"\nstages = [{ duration = \"5s\", target = -1 }]"),
        ["5:39 load.stages[0].target: the target must be 0 or more, found -1"]
    );
    assert_eq!(
        load("model = \"open\"\nstages = [{ duration = \"5s\", target = 0 }]"),
        ["5:10 load.stages: the rate never rises above 0"]
    );
    assert_eq!(
        load("model = \"closed\"\nstages = [{ duration = \"5s\", target = 1.5 }]"),
        ["5:39 load.stages[0].target: users must be a whole number, found 1.5"]
    );
}

#[test]
fn stages_need_a_duration_above_zero() {
    let text = format!(
        "{TARGET}[load]\nmodel = \"open\"\nstages = [{{ duration = \"0s\", target = 5 }}, {{ target = 5 }}]\n{REQUEST}"
    );
    assert_eq!(
        errors(&text),
        [
            "5:24 load.stages[0].duration: the duration must be longer than 0",
            "5:44 load.stages[1]: missing `duration`",
        ]
    );
}

#[test]
fn each_model_rejects_the_other_models_keys() {
    let (summary, help) = single(&format!(
        "{TARGET}[load]\nmodel = \"closed\"\nusers = 5\nrate = 10\nduration = \"1s\"\n{REQUEST}"
    ));
    assert_eq!(
        summary,
        "6:8 load.rate: `rate` only applies to the open model, but this load has model = \"closed\""
    );
    assert!(help.is_some_and(|h| h.contains("model = \"open\"")));
    let (summary, _) = single(&format!(
        "{TARGET}[load]\nmodel = \"open\"\nrate = 5\nstep_duration = \"5s\"\nduration = \"1s\"\n{REQUEST}"
    ));
    assert_eq!(
        summary,
        "6:17 load.step_duration: `step_duration` only applies to the closed model, but this load has model = \"open\""
    );
}

#[test]
fn load_shapes_that_contradict_themselves() {
    let load = |body: &str| single(&format!("{TARGET}[load]\n{body}\n{REQUEST}"));
    let (summary, help) =
        load("model = \"open\"\nrate = 5\nstages = [{ duration = \"5s\", target = 5 }]");
    assert_eq!(
        summary,
        "6:10 load.stages: both `rate` and `stages` are set"
    );
    assert_eq!(
        help.as_deref(),
        Some("use `rate` for a constant arrival rate, or `stages` for a ramp, not both")
    );
    let (summary, _) = load("model = \"open\"\nduration = \"5s\"");
    assert_eq!(summary, "4:9 load: the open model needs `rate` or `stages`");
    let (summary, _) = load("model = \"closed\"\nduration = \"5s\"");
    assert_eq!(
        summary,
        "3:1 load: the closed model needs `users` or `stages`"
    );
    let (summary, _) =
        load("model = \"closed\"\nusers = 5\nstages = [{ duration = \"5s\", target = 5 }]");
    assert_eq!(
        summary,
        "6:10 load.stages: both `users` and `stages` are set"
    );
    let (summary, _) =
        load("model = \"closed\"\nusers = 5\nstep_users = 10\nstep_duration = \"1s\"");
    assert_eq!(
        summary,
        "6:14 load.step_users: step_users (10) is above users (5)"
    );
    let (summary, _) = load("model = \"closed\"\nusers = 5\nstep_users = 1");
    assert_eq!(
        summary,
        "6:14 load.step_users: `step_users` needs `step_duration`"
    );
    let (summary, _) = load("model = \"open\"\nrate = 5\nstart_rate = 1\nduration = \"1s\"");
    assert_eq!(
        summary,
        "6:14 load.start_rate: `start_rate` only applies with `stages`"
    );
    let (summary, help) = load("model = \"opne\"\nrate = 5\nduration = \"1s\"");
    assert_eq!(summary, "4:9 load.model: unknown load model `opne`");
    assert_eq!(help.as_deref(), Some("did you mean \"open\"?"));
    let (summary, _) = load("rate = 5\nduration = \"1s\"");
    assert_eq!(summary, "3:1 load: missing `model`");
}

#[test]
fn missing_duration_and_sections() {
    let (summary, help) = single(&format!(
        "{TARGET}[load]\nmodel = \"closed\"\nusers = 5\n{REQUEST}"
    ));
    assert_eq!(summary, "3:1 load: missing `duration`");
    assert_eq!(
        help.as_deref(),
        Some("add e.g. duration = \"30s\" (with `stages`, it defaults to their total)")
    );
    assert_eq!(
        errors(REQUEST),
        ["1:1 : missing [target] table", "1:1 : missing [load] table"]
    );
    assert_eq!(
        errors(
            "[target]\n[load]\nmodel = 'open'\nrate = 1\nduration = '1s'\n[[request]]\npath = '/'\n"
        ),
        ["1:1 target: missing `base_url`"]
    );
}

#[test]
fn a_scenario_without_requests_is_rejected() {
    let (summary, help) = single(HEAD);
    assert_eq!(summary, "1:1 : the scenario sends no requests");
    assert_eq!(
        help.as_deref(),
        Some("add a [[request]] (one request) or a [[journey]] with [[journey.step]] tables")
    );
    assert_eq!(diagnostics(HEAD)[0].source_line, None);
}

#[test]
fn steps_reject_bad_methods_paths_and_weights() {
    let (summary, help) = single(&format!(
        "{HEAD}[[request]]\nmethod = \"FETCH\"\npath = \"/\"\n"
    ));
    assert_eq!(
        summary,
        "8:10 request[0].method: unknown HTTP method `FETCH`"
    );
    assert_eq!(
        help.as_deref(),
        Some("expected one of: GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS, TRACE")
    );
    let (summary, help) = single(&format!("{HEAD}[[request]]\npath = \"http://x/y\"\n"));
    assert_eq!(summary, "8:8 request[0].path: the path must start with `/`");
    assert_eq!(
        help.as_deref(),
        Some(
            "paths are relative to [target] base_url: write only the path, e.g. \"/items?page=1\""
        )
    );
    let (summary, _) = single(&format!("{HEAD}[[request]]\nname = \"a\"\n"));
    assert_eq!(summary, "7:1 request[0]: missing `path`");
    let (summary, _) = single(&format!("{HEAD}[[request]]\npath = \"/\"\nweight = 1.5\n"));
    assert_eq!(
        summary,
        "9:10 request[0].weight: `weight` must be a whole number, found 1.5"
    );
    let (summary, help) = single(&format!(
        "{HEAD}[[journey]]\nweight = 0\n[[journey.step]]\npath = \"/\"\n"
    ));
    assert_eq!(summary, "8:10 journey[0].weight: the weight is 0");
    assert_eq!(
        help.as_deref(),
        Some("weights are 1 or more; to stop sending it, comment it out")
    );
    let (summary, _) = single(&format!(
        "{HEAD}[[journey]]\n[[journey.step]]\npath = \"/\"\nweight = 2\n"
    ));
    assert_eq!(
        summary,
        "10:10 journey[0].step[0].weight: steps have no weight"
    );
}

#[test]
fn template_errors_point_at_the_bad_placeholder() {
    let (summary, _) = single(&format!("{HEAD}[[request]]\npath = \"/a/{{{{b\"\n"));
    assert_eq!(
        summary,
        "8:12 request[0].path: invalid template: unclosed \"{{\""
    );
    // Escapes before the placeholder shift the source column.
    let text = format!("{HEAD}[[request]]\npath = \"/\"\nbody = \"\\u00e9\\t{{{{ $nope }}}}\"\n");
    assert_eq!(diagnostics(&text)[0].width, 11);
    let (summary, _) = single(&text);
    assert_eq!(
        summary,
        "9:17 request[0].body: invalid template: unknown builtin \"$nope\" (expected $uuid, $rand(lo, hi), $iteration, $timestamp_ms or $user)"
    );
    let (summary, _) = single(&format!(
        "{HEAD}[[request]]\npath = \"/\"\nheaders = {{ x = '''{{{{}}}}''' }}\n"
    ));
    assert_eq!(
        summary,
        "9:20 request[0].headers.x: invalid template: empty \"{{}}\""
    );
}

#[test]
fn templates_must_name_declared_pools_and_columns() {
    let (summary, help) = single(&format!(
        "{HEAD}[[request]]\npath = \"/u/{{{{ users.user }}}}\"\n"
    ));
    assert_eq!(
        summary,
        "8:12 request[0].path: unknown data pool `users` in {{users.user}}"
    );
    assert_eq!(
        help.as_deref(),
        Some("declare it: [data.users] with file = \"users.csv\"")
    );
    let pool = "[data.users]\nfile = \"users.csv\"\n";
    let (summary, help) = single(&format!(
        "{HEAD}{pool}[[request]]\npath = \"/u/{{{{usrs.user}}}}\"\n"
    ));
    assert_eq!(
        summary,
        "10:12 request[0].path: unknown data pool `usrs` in {{usrs.user}}"
    );
    assert_eq!(help.as_deref(), Some("did you mean `users`?"));
    let (summary, help) = single(&format!(
        "{HEAD}{pool}[[request]]\npath = \"/u/{{{{users.tenat}}}}\"\n"
    ));
    assert_eq!(
        summary,
        "10:12 request[0].path: data pool `users` has no column `tenat`"
    );
    assert!(help.is_some_and(|h| h.starts_with("did you mean `tenant`?")));
}

#[test]
fn variables_must_be_extracted_by_an_earlier_step() {
    let (summary, help) = single(&format!(
        "{HEAD}[[request]]\npath = \"/\"\nheaders = {{ authorization = \"Bearer {{{{token}}}}\" }}\n"
    ));
    assert_eq!(
        summary,
        "9:37 request[0].headers.authorization: `{{token}}` is not set before this request"
    );
    assert!(help.is_some_and(|h| h.starts_with("a [[request]] has no earlier step")));
    let (summary, help) = single(&format!(
        "{HEAD}[[journey]]\n[[journey.step]]\nname = \"a\"\npath = \"/{{{{id}}}}\"\nextract = {{ id = {{ json = \"/id\" }} }}\n"
    ));
    assert_eq!(
        summary,
        "10:10 journey[0].step[0].path: `{{id}}` is not set before this request"
    );
    assert_eq!(
        help.as_deref(),
        Some("`id` is extracted by step `a`, which does not run before this one")
    );
    let (summary, help) = single(&format!(
        "{HEAD}[[journey]]\n[[journey.step]]\npath = \"/{{{{nope}}}}\"\n"
    ));
    assert_eq!(
        summary,
        "9:10 journey[0].step[0].path: `{{nope}}` is not set before this request"
    );
    assert_eq!(
        help.as_deref(),
        Some("extract it in an earlier step, e.g. extract = { nope = { json = \"/nope\" } }")
    );
    let (summary, _) = single(&format!(
        "[target]\nbase_url = \"http://x\"\nheaders = {{ a = \"{{{{t}}}}\" }}\n[load]\nmodel = 'open'\nrate = 1\nduration = '1s'\n{REQUEST}"
    ));
    assert_eq!(
        summary,
        "3:18 target.headers.a: `{{t}}` is not set when target headers are sent"
    );
}

#[test]
fn extractors_need_exactly_one_valid_source() {
    let step = |extract: &str| {
        single(&format!(
            "{HEAD}[[journey]]\n[[journey.step]]\npath = \"/\"\nextract = {extract}\n"
        ))
    };
    let (summary, _) = step("{ t = {} }");
    assert_eq!(
        summary,
        "10:17 journey[0].step[0].extract.t: the extractor is empty: expected `json`, `header` or `regex`"
    );
    let (summary, _) = step("{ t = { json = \"/a\", regex = \"b\" } }");
    assert_eq!(
        summary,
        "10:40 journey[0].step[0].extract.t.regex: an extractor takes one source, found `json` and `regex`"
    );
    let (summary, _) = step("{ t = { json = \"token\" } }");
    assert_eq!(
        summary,
        "10:26 journey[0].step[0].extract.t.json: invalid json pointer \"token\": it must be empty or start with \"/\" (try \"/token\")"
    );
    let (summary, _) = step("{ t = { regex = \"(\" } }");
    assert!(
        summary.starts_with("10:27 journey[0].step[0].extract.t.regex: invalid regex:"),
        "{summary}"
    );
    let (summary, _) = step("{ \"a b\" = { json = \"/x\" } }");
    assert_eq!(
        summary,
        "10:13 journey[0].step[0].extract.\"a b\": invalid variable name `a b`"
    );
}

#[test]
fn checks_reject_bad_status_codes_and_pointers() {
    let check = |check: &str| {
        errors(&format!(
            "{HEAD}[[request]]\npath = \"/\"\ncheck = {check}\n"
        ))
    };
    assert_eq!(
        check("{ status = [200, 99, \"x\"] }"),
        [
            "9:26 request[0].check.status: status 99 is not an HTTP status code",
            "9:30 request[0].check.status: expected a status code, found a string",
        ]
    );
    assert_eq!(
        check("{ status = [] }"),
        ["9:20 request[0].check.status: the list of status codes is empty"]
    );
    assert_eq!(
        check("{ json = { \"status\" = 1 } }"),
        [
            "9:20 request[0].check.json.status: invalid json pointer \"status\": it must be empty or start with \"/\" (try \"/status\")"
        ]
    );
    assert_eq!(
        check("{ headers_present = [\"bad header\"] }"),
        ["9:30 request[0].check.headers_present: invalid header name `bad header`"]
    );
}

#[test]
fn bodies_are_one_of_three_and_files_must_exist() {
    let (summary, help) = single(&format!(
        "{HEAD}[[request]]\npath = \"/\"\nbody_file = \"nope.bin\"\n"
    ));
    assert_eq!(
        summary,
        format!(
            "9:13 request[0].body_file: body file not found: {}",
            testdata().join("nope.bin").display()
        )
    );
    assert_eq!(
        help.as_deref(),
        Some("paths are relative to the scenario file's directory")
    );
    let (summary, help) = single(&format!(
        "{HEAD}[[request]]\npath = \"/\"\njson = {{}}\nbody_file = \"payload.bin\"\n"
    ));
    assert_eq!(
        summary,
        "10:13 request[0].body_file: the body is given twice: `json` and `body_file`"
    );
    assert_eq!(
        help.as_deref(),
        Some("a request has one body: keep one of `json`, `body` or `body_file`")
    );
}

#[test]
fn data_pools_need_an_existing_non_empty_file() {
    let (summary, _) = single(&format!(
        "{HEAD}[data.users]\nfile = \"missing.csv\"\n{REQUEST}"
    ));
    assert_eq!(
        summary,
        format!(
            "8:8 data.users.file: data file not found: {}",
            testdata().join("missing.csv").display()
        )
    );
    let (summary, _) = single(&format!(
        "{HEAD}[data.users]\nfile = \"header-only.csv\"\n{REQUEST}"
    ));
    assert_eq!(
        summary,
        format!(
            "8:8 data.users.file: data file {} has a header but no rows",
            testdata().join("header-only.csv").display()
        )
    );
    let (summary, _) = single(&format!(
        "{HEAD}[data.users]\nstrategy = \"unique\"\n{REQUEST}"
    ));
    assert_eq!(summary, "7:1 data.users: missing `file`");
    let (summary, help) = single(&format!(
        "{HEAD}[data.users]\nfile = \"users.csv\"\nstrategy = \"uniq\"\n{REQUEST}"
    ));
    assert_eq!(summary, "9:12 data.users.strategy: unknown strategy `uniq`");
    assert_eq!(help.as_deref(), Some("did you mean \"unique\"?"));
}

#[test]
fn think_times_and_timeouts_are_checked() {
    let (summary, help) = single(&format!(
        "{HEAD}[[request]]\npath = \"/\"\nthink_time = \"1 sec\"\n"
    ));
    assert_eq!(
        summary,
        "9:14 request[0].think_time: invalid duration `1 sec`: unknown unit `sec` (expected us, ms, s, m or h)"
    );
    assert_eq!(help.as_deref(), Some("write e.g. 500ms, 10s, 2m, 1h"));
    let (_, help) = single(&format!(
        "{HEAD}[[request]]\npath = \"/\"\nthink_time = \"2s..1s\"\n"
    ));
    assert_eq!(
        help.as_deref(),
        Some("write e.g. think_time = \"100ms..500ms\" (a uniform range, minimum first)")
    );
    let (summary, _) = single(&format!(
        "[target]\nbase_url = \"http://x\"\nconnect_timeout = \"0s\"\n[load]\nmodel = 'open'\nrate = 1\nduration = '1s'\n{REQUEST}"
    ));
    assert_eq!(
        summary,
        "3:19 target.connect_timeout: the duration must be longer than 0"
    );
}

#[test]
fn bad_base_urls_are_reported_at_the_value() {
    let target = |url: &str| {
        single(&format!(
            "[target]\nbase_url = \"{url}\"\n[load]\nmodel = 'open'\nrate = 1\nduration = '1s'\n{REQUEST}"
        ))
    };
    let (summary, _) = target("localhost:8080");
    assert_eq!(
        summary,
        "2:12 target.base_url: `localhost:8080` has no scheme: write e.g. http://localhost:8080"
    );
    let (summary, _) = target("http://h:99999");
    assert_eq!(
        summary,
        "2:12 target.base_url: invalid port `99999`: expected a number from 1 to 65535"
    );
}

#[test]
fn thresholds_are_parsed_and_scoped_to_known_requests() {
    let (summary, help) = single(&format!(
        "[scenario]\nthresholds = [\"p99 < 1s\", \"p98 < 10ms\"]\n{HEAD}{REQUEST}"
    ));
    assert_eq!(
        summary,
        "2:27 scenario.thresholds[1]: unknown metric `p98`: expected one of p50, p75, p90, p95, p99, p99.9, max, min, mean, service_<p..>, error_rate, rps, requests, errors"
    );
    assert!(help.is_some_and(|h| h.starts_with("write e.g. \"p99 < 250ms\"")));
    let requests = "[[request]]\nname = \"home\"\npath = \"/\"\n[[request]]\npath = \"/x\"\n";
    let (summary, help) = single(&format!(
        "thresholds = [\"p95[hom] < 1s\"]\n{HEAD}{requests}"
    ));
    assert_eq!(summary, "1:15 thresholds[0]: no request is named `hom`");
    assert_eq!(help.as_deref(), Some("did you mean `home`?"));
    let (_, help) = single(&format!(
        "thresholds = [\"p95[checkout] < 1s\"]\n{HEAD}{requests}"
    ));
    assert_eq!(help.as_deref(), Some("request names are: `home`, `GET /x`"));
    let (summary, _) = single(&format!(
        "thresholds = [\"rps > 1\"]\n[scenario]\nthresholds = [\"rps > 2\"]\n{HEAD}{REQUEST}"
    ));
    assert_eq!(
        summary,
        "1:14 thresholds: thresholds are given twice: here and in [scenario]"
    );
}

#[test]
fn several_semantic_errors_are_collected() {
    let all = errors(&format!(
        "{TARGET}[load]\nmodel = \"open\"\nrate = -1\nduration = \"forever\"\n[[request]]\npath = \"x\"\nweight = 0\n"
    ));
    assert_eq!(
        all,
        [
            "5:8 load.rate: the rate must be above 0, found -1",
            "6:12 load.duration: invalid duration `forever`: expected a number followed by a unit",
            "8:8 request[0].path: the path must start with `/`",
            "9:10 request[0].weight: the weight is 0",
        ]
    );
}
