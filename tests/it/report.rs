//! `report.html` and `junit.xml` of real `bfgg run`s against `bfgg target`:
//! the report loaded by Debian's headless Chromium with networking off (no
//! console message, the charts drawn, a screenshot kept in
//! `target/test-artifacts/report.png`), and `junit.xml` validated against
//! the JUnit schema (`data/junit.xsd`) by PyPI's `xmlschema`, with a failed
//! threshold's actual value in its `<failure>`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::harness::{Target, Workspace, python_venv, run_with_timeout, skip};

/// A scenario against `url` with three names (one of them HTML, all of its
/// requests failing) and `thresholds`.
fn scenario(url: &str, load: &str, thresholds: &[&str]) -> String {
    let thresholds: Vec<String> = thresholds.iter().map(|t| format!("{t:?}")).collect();
    format!(
        r#"
[scenario]
name = "report"
thresholds = [{}]
[target]
base_url = "{url}"
[load]
{load}
[[request]]
name = "home"
path = "/"
weight = 8
[[request]]
name = "search"
path = "/delay/45"
weight = 2
[[request]]
name = "<script>alert(1)</script>"
path = "/status/503"
weight = 1
"#,
        thresholds.join(", ")
    )
}

/// The Chromium binary, or a skip.
fn chromium() -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser"] {
        if Command::new(name)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return Some(PathBuf::from(name));
        }
    }
    skip("chromium is not installed (apt-get install chromium)")
}

/// Headless Chromium on `page` with every network request sent nowhere
/// (a dead proxy, loopback included, and no name resolution), logging to
/// stderr; returns (stdout, stderr).
fn headless(chrome: &Path, profile: &Path, page: &Path, extra: &[&str]) -> (String, String) {
    let mut cmd = Command::new(chrome);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--proxy-server=127.0.0.1:9",
        "--proxy-bypass-list=<-loopback>",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--enable-logging=stderr",
        "--v=0",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(extra)
    .arg(format!("file://{}", page.display()));
    let out = run_with_timeout(cmd, Duration::from_secs(90));
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Chromium's log lines for console messages (errors, CSP violations,
/// blocked loads): `[...:INFO:CONSOLE:1] "message", source: ...`.
fn console_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains(":CONSOLE")).collect()
}

#[test]
fn the_report_renders_in_chromium_with_networking_off() {
    let target = Target::start(&["--latency", "2ms..12ms"]);
    let ws = Workspace::new();
    let file = ws.write(
        "report.toml",
        &scenario(
            &target.url,
            r#"model = "open"
start_rate = 50
stages = [{ duration = "4s", target = 300 }, { duration = "6s", target = 300 }]
max_in_flight = 1000"#,
            &["p99 < 5s", "error_rate < 50%", "p95[home] < 1ms"],
        ),
    );
    let (code, summary, stderr) = ws.run(&file, &[]);
    assert_eq!(code, 1, "p95[home] < 1ms fails: {stderr}");
    let summary = summary.expect("summary json");
    assert!(summary["total"]["requests"].as_u64().unwrap_or(0) > 1000);
    let report = ws.out_dir().join("report.html");
    let html = std::fs::read_to_string(&report).expect("report.html written");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(
        !html.contains("<script"),
        "no script, and the name is escaped"
    );
    assert!(
        !stderr.contains("could not write"),
        "no report warning: {stderr}"
    );
    let Some(chrome) = chromium() else { return };
    // The check sees a console message when a page has one: the same CSP
    // as the report, and a page that tries to fetch.
    let control = ws.write(
        "control.html",
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
</head><body><img src=\"http://example.com/x.png\" alt=\"x\"></body></html>",
    );
    let (_, control_err) = headless(
        &chrome,
        &ws.path().join("profile-control"),
        &control,
        &["--dump-dom"],
    );
    assert!(
        !console_lines(&control_err).is_empty(),
        "a blocked fetch shows as a console line:\n{control_err}"
    );
    let profile = ws.path().join("profile");
    let (dom, log) = headless(&chrome, &profile, &report, &["--dump-dom"]);
    let console = console_lines(&log);
    assert!(
        console.is_empty(),
        "console messages loading report.html:\n{}",
        console.join("\n")
    );
    assert!(dom.contains("<h1>report"), "the DOM was dumped:\n{dom}");
    assert!(
        dom.matches("<svg class=\"chart\"").count() >= 3,
        "three charts"
    );
    let drawn = dom
        .split("<polyline")
        .skip(1)
        .filter_map(|p| p.split("points=\"").nth(1))
        .filter_map(|p| p.split('"').next())
        .filter(|points| points.split(' ').count() >= 2 && points.contains(','))
        .count();
    assert!(drawn >= 6, "load and latency lines drawn: {drawn}");
    assert!(dom.contains("<rect x="), "histogram bars");
    assert!(!dom.contains("<script"), "no script in the DOM");
    // A screenshot, kept as a test artifact.
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");
    let png = artifacts.join("report.png");
    let _ = std::fs::remove_file(&png);
    let (_, log) = headless(
        &chrome,
        &profile,
        &report,
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1280,2000",
            "--hide-scrollbars",
        ],
    );
    assert!(console_lines(&log).is_empty(), "{log}");
    let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("no screenshot: {e}\n{log}"));
    assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
    assert!(
        bytes.len() > 20_000,
        "a screenshot with content: {} bytes",
        bytes.len()
    );
}

/// Validates `files` against `data/junit.xsd` with PyPI's `xmlschema`.
fn validate_junit(python: &Path, files: &[PathBuf]) {
    let xsd = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/data/junit.xsd");
    let out = Command::new(python)
        .arg("-c")
        .arg(
            "import sys, xmlschema\n\
schema = xmlschema.XMLSchema(sys.argv[1])\n\
for f in sys.argv[2:]:\n    schema.validate(f)\n\
print('valid', len(sys.argv) - 2)\n",
        )
        .arg(&xsd)
        .args(files)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "junit.xml does not validate:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn junit_xml_validates_and_a_failed_threshold_carries_its_actual_value() {
    let target = Target::start(&["--latency", "2ms"]);
    let closed = "model = \"closed\"\nusers = 4\nduration = \"2s\"";
    let failing = Workspace::new();
    let file = failing.write(
        "failing.toml",
        &scenario(&target.url, closed, &["p99 < 1ms", "error_rate < 50%"]),
    );
    let (code, summary, stderr) = failing.run(&file, &[]);
    assert_eq!(code, 1, "a failed threshold exits 1: {stderr}");
    let summary = summary.expect("summary json");
    let actual = summary["thresholds"][0]["actual"]
        .as_f64()
        .expect("actual p99");
    assert!(actual >= 2.0, "p99 {actual} ms");
    let junit = failing.out_dir().join("junit.xml");
    let xml = std::fs::read_to_string(&junit).expect("junit.xml written");
    assert!(
        xml.contains("<testsuite name=\"bfgg: report\" tests=\"2\" failures=\"1\" errors=\"0\""),
        "{xml}"
    );
    let shown = format!("{actual:.3}");
    let shown = shown.trim_end_matches('0').trim_end_matches('.');
    assert!(
        xml.contains(&format!(
            "<failure message=\"p99 &lt; 1ms failed: actual {shown} ms\" type=\"threshold\">actual value {shown} ms"
        )),
        "the failure carries the actual value {shown}:\n{xml}"
    );
    assert!(xml.contains("<testcase classname=\"bfgg.thresholds\" name=\"error_rate &lt; 50%\""));
    // No thresholds: one "run completed" case that passed.
    let plain = Workspace::new();
    let file = plain.write("plain.toml", &scenario(&target.url, closed, &[]));
    let (code, _, stderr) = plain.run(&file, &[]);
    assert_eq!(code, 0, "{stderr}");
    let plain_junit = plain.out_dir().join("junit.xml");
    let xml = std::fs::read_to_string(&plain_junit).expect("junit.xml written");
    assert!(xml.contains("tests=\"1\" failures=\"0\""), "{xml}");
    assert!(xml.contains("name=\"run completed\""), "{xml}");
    let Some(python) = python_venv(&["xmlschema==4.3.2"]) else {
        return;
    };
    validate_junit(&python, &[junit, plain_junit]);
}
