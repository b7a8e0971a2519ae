//! `junit.xml`: a run's thresholds as JUnit test results, the format CI
//! systems (Jenkins, GitLab, GitHub Actions reporters, Azure, ...) read.
//!
//! One `<testsuite name="bfgg: <scenario>">` with one `<testcase>` per
//! threshold (classname `bfgg.thresholds`, name = the expression as
//! written, time = the run's duration); a failed one carries a
//! `<failure>` with the measured value. A run without thresholds gets one
//! test case, `run completed`, which fails only when the results are
//! partial (an agent was lost). The suite's `<properties>` carry the run's
//! facts. Everything is XML-escaped (names and messages come from scenarios
//! and targets). [`render_junit`] is pure; [`write_junit`] does the I/O.
//! Checked against `tests/it/data/junit.xsd` (the Ant/Jenkins JUnit schema)
//! by the integration tests.

use std::fmt::Write as _;
use std::path::Path;

use bfgg_protocol::summary::RunSummary;

use super::report::{escape, threshold_actual, utc_iso, write_file};

/// The file's name in a results directory.
pub const JUNIT_FILE: &str = "junit.xml";

/// Writes `dir/junit.xml` for the finished run `summary`.
pub fn write_junit(dir: &Path, summary: &RunSummary) -> anyhow::Result<()> {
    write_file(&dir.join(JUNIT_FILE), render_junit(summary).as_bytes())
}

/// One `<testcase>`.
struct Case {
    name: String,
    failure: Option<Failure>,
}

/// A `<failure>`: its `type`, `message` attribute and text.
struct Failure {
    kind: &'static str,
    message: String,
    body: String,
}

/// Why a run's results are partial (the agents lost, and the stop reason).
fn partial_reason(s: &RunSummary) -> String {
    let lost: Vec<String> = s
        .agents
        .iter()
        .filter(|a| a.status != "complete")
        .map(|a| format!("{} {}", a.name, a.status))
        .collect();
    let mut reason = if lost.is_empty() {
        "partial results".to_string()
    } else {
        format!("partial results: agent {}", lost.join(", agent "))
    };
    if let Some(stop) = &s.stop_reason {
        let _ = write!(reason, "; stopped early: {stop}");
    }
    reason
}

/// The document. Pure: summary in, XML out.
pub fn render_junit(s: &RunSummary) -> String {
    let time = if s.duration_s.is_finite() && s.duration_s > 0.0 {
        format!("{:.3}", s.duration_s)
    } else {
        "0.000".to_string()
    };
    let mut cases: Vec<Case> = s
        .thresholds
        .iter()
        .map(|t| {
            let actual = threshold_actual(&t.expression, t.actual);
            Case {
                name: t.expression.clone(),
                failure: (!t.passed).then(|| Failure {
                    kind: "threshold",
                    message: format!("{} failed: actual {actual}", t.expression),
                    body: format!("actual value {actual} (threshold: {})", t.expression),
                }),
            }
        })
        .collect();
    if cases.is_empty() {
        cases.push(Case {
            name: "run completed".to_string(),
            failure: s.partial.then(|| Failure {
                kind: "partial",
                message: partial_reason(s),
                body: partial_reason(s),
            }),
        });
    }
    let failures = cases.iter().filter(|c| c.failure.is_some()).count();
    let mut out = String::new();
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"{time}\" timestamp=\"{}\">",
        escape(&format!("bfgg: {}", s.scenario)),
        cases.len(),
        utc_iso(s.started_at_ms)
    );
    out.push_str("  <properties>\n");
    let props: [(&str, String); 10] = [
        ("engine", s.engine.clone()),
        ("model", s.model.clone()),
        ("target", s.target.clone()),
        ("requests", s.total.requests.to_string()),
        ("errors", s.total.errors.to_string()),
        ("rps", format!("{:.3}", s.total.rps)),
        ("p99_ms", format!("{:.3}", s.total.latency_ms.p99)),
        ("stopped_early", s.stopped_early.to_string()),
        ("stop_reason", s.stop_reason.clone().unwrap_or_default()),
        ("partial", s.partial.to_string()),
    ];
    for (name, value) in props {
        let _ = writeln!(
            out,
            "    <property name=\"{name}\" value=\"{}\"/>",
            escape(&value)
        );
    }
    out.push_str("  </properties>\n");
    for case in &cases {
        let _ = write!(
            out,
            "  <testcase classname=\"bfgg.thresholds\" name=\"{}\" time=\"{time}\"",
            escape(&case.name)
        );
        match &case.failure {
            None => out.push_str("/>\n"),
            Some(f) => {
                let _ = writeln!(
                    out,
                    ">\n    <failure message=\"{}\" type=\"{}\">{}</failure>\n  </testcase>",
                    escape(&f.message),
                    f.kind,
                    escape(&f.body)
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "  <system-out>{}</system-out>",
        escape(&format!(
            "{} requests, {} errors, {:.1} req/s, p99 {:.3} ms over {:.1} s against {}{}",
            s.total.requests,
            s.total.errors,
            s.total.rps,
            s.total.latency_ms.p99,
            s.duration_s,
            s.target,
            if s.partial {
                format!("; {}", partial_reason(s))
            } else {
                String::new()
            }
        ))
    );
    out.push_str("</testsuite>\n");
    out
}

#[cfg(test)]
mod tests;
