//! `report.html`: one self-contained page per results directory, for people.
//!
//! Written after `summary.json` from the finished directory alone: the
//! [`RunSummary`] (header, thresholds, tables, agents, generator health),
//! `intervals.log` read front to back with [`LogReader`] (the per-second
//! curves and the whole run's latency distribution) and `scenario.toml`.
//! Memory stays flat however long the run: [`Series`] keeps a few scalars
//! per second and merges the run's histogram in place.
//!
//! The page fetches nothing: CSS is inline, the charts are inline SVG drawn
//! here ([`svg`]), there is no script, and a Content-Security-Policy of
//! `default-src 'none'` tells the browser so. Everything that came from a
//! scenario or a target (request names, error messages, the scenario text)
//! is HTML-escaped. [`render`] is a pure function of its inputs;
//! [`write_report`] does the I/O.

mod svg;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use bfgg_protocol::summary::{AgentSummary, NameSummary, RunSummary};
use bfgg_protocol::{IntervalSnapshot, LatencyHistogram};

use crate::interval_log::{LOG_FILE, LogReader};

/// The report's file name in a results directory.
pub const REPORT_FILE: &str = "report.html";

/// Writes `dir/report.html` for the finished run `summary`, reading
/// `dir/intervals.log` (if there) and `dir/scenario.toml` (if there).
pub fn write_report(dir: &Path, summary: &RunSummary) -> anyhow::Result<()> {
    let log = dir.join(LOG_FILE);
    let series = if log.exists() {
        let mut series = Series::read(&log)?;
        let agents = dir.join(super::AGENTS_FILE);
        if agents.exists() {
            series.read_agents(&agents);
        }
        Some(series)
    } else {
        None
    };
    let scenario = std::fs::read(dir.join("scenario.toml"))
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let html = render(summary, series.as_ref(), scenario.as_deref());
    write_file(&dir.join(REPORT_FILE), html.as_bytes())
}

/// Writes `path` through a temporary dot-file renamed into place, so a
/// reader never sees half a file (and the upload skips the temporary).
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("renaming into {}", path.display()));
    }
    Ok(())
}

/// Writes every file derived from a finished results directory
/// (`report.html`, `junit.xml`). A failure is logged as a warning and
/// returned as text, never as an error: `summary.json` and the measured
/// files are already on disk and stay there.
pub fn write_derived(dir: &Path, summary: &RunSummary) -> Vec<String> {
    type Writer = fn(&Path, &RunSummary) -> anyhow::Result<()>;
    let mut failures = Vec::new();
    let writers: [(&str, Writer); 2] = [
        (REPORT_FILE, write_report),
        (super::junit::JUNIT_FILE, super::junit::write_junit),
    ];
    for (file, write) in writers {
        if let Err(e) = write(dir, summary) {
            let line = format!(
                "could not write {file} in {}: {e:#} (summary.json and the other results are kept)",
                dir.display()
            );
            tracing::warn!("{line}");
            failures.push(line);
        }
    }
    failures
}

/// The per-second curves of a run and its merged latency distribution, as
/// read from `intervals.log`: a few scalars per second, one histogram.
#[derive(Default)]
pub(crate) struct Series {
    /// Interval indices (seconds since the start), increasing.
    pub(crate) seconds: Vec<u32>,
    /// Completed requests in each second.
    pub(crate) requests: Vec<u64>,
    /// Errors in each second.
    pub(crate) errors: Vec<u64>,
    /// Open model: arrivals scheduled in each second.
    pub(crate) scheduled: Vec<u64>,
    /// Users (closed) or requests in flight (open) at the end of each second.
    pub(crate) active: Vec<u64>,
    /// Response-time percentiles of each second, ms (`None`: no samples).
    pub(crate) p50: Vec<Option<f64>>,
    pub(crate) p90: Vec<Option<f64>>,
    pub(crate) p99: Vec<Option<f64>>,
    /// The whole run's response times, all names merged.
    pub(crate) latency: LatencyHistogram,
    /// Why the log could not be read to its end, if it could not.
    pub(crate) read_error: Option<String>,
    /// A cluster run's requests per second of each agent (from its
    /// coordinator's `agents.csv`), aligned with `seconds`; a second an
    /// agent has no interval for is a gap.
    pub(crate) agents: Vec<(String, Vec<Option<f64>>)>,
}

impl Series {
    /// Reads `path` one interval at a time. A corrupt frame ends the series
    /// there (noted in [`Series::read_error`]); only opening the file fails.
    pub(crate) fn read(path: &Path) -> anyhow::Result<Series> {
        let mut reader = LogReader::open(path)?;
        let mut series = Series::default();
        loop {
            match reader.next_snapshot() {
                Ok(Some(snap)) => series.add(&snap),
                Ok(None) => break,
                Err(e) => {
                    series.read_error = Some(format!("{e:#}"));
                    break;
                }
            }
        }
        Ok(series)
    }

    /// Adds the next interval (in interval order).
    pub(crate) fn add(&mut self, snap: &IntervalSnapshot) {
        let mut merged = LatencyHistogram::new();
        let (mut requests, mut errors) = (0u64, 0u64);
        for stats in snap.by_name.values() {
            merged.add(&stats.response_time);
            requests = requests.saturating_add(stats.requests);
            errors = errors.saturating_add(stats.error_count());
        }
        let q = |q: f64| (!merged.is_empty()).then(|| merged.quantile_us(q) as f64 / 1000.0);
        self.seconds.push(snap.index);
        self.requests.push(requests);
        self.errors.push(errors);
        self.scheduled.push(snap.generator.scheduled);
        self.active.push(snap.generator.active);
        self.p50.push(q(0.50));
        self.p90.push(q(0.90));
        self.p99.push(q(0.99));
        self.latency.add(&merged);
    }

    /// Reads `agents.csv` (`second,agent,requests,...`) into
    /// [`Series::agents`], in the order agents first appear. Unreadable
    /// lines are skipped: the per-agent chart is an addition, never a reason
    /// for no report.
    pub(crate) fn read_agents(&mut self, path: &Path) {
        let Ok(text) = std::fs::read_to_string(path) else {
            return;
        };
        let position: std::collections::HashMap<u32, usize> = self
            .seconds
            .iter()
            .enumerate()
            .map(|(i, &s)| (s, i))
            .collect();
        for line in text.lines().skip(1) {
            let mut fields = csv_fields(line).into_iter();
            let (Some(second), Some(agent), Some(requests)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let (Ok(second), Ok(requests)) = (second.parse::<u32>(), requests.parse::<u64>())
            else {
                continue;
            };
            let Some(&at) = position.get(&second) else {
                continue;
            };
            let slot = match self.agents.iter().position(|(name, _)| *name == agent) {
                Some(i) => i,
                None => {
                    self.agents.push((agent, vec![None; self.seconds.len()]));
                    self.agents.len() - 1
                }
            };
            self.agents[slot].1[at] = Some(requests as f64);
        }
    }

    /// Number of seconds read.
    pub(crate) fn len(&self) -> usize {
        self.seconds.len()
    }
}

/// HTML/XML escaping for text and attribute values: `& < > " '`, and
/// control characters (other than tab and newlines) replaced by U+FFFD,
/// since XML 1.0 does not allow them at all.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// `YYYY-MM-DDTHH:MM:SS` in UTC for Unix milliseconds.
pub(crate) fn utc_iso(ms: u64) -> String {
    let stamp = super::utc_stamp(SystemTime::UNIX_EPOCH + Duration::from_millis(ms));
    // `yyyymmdd-hhmmss`
    match (stamp.get(0..4), stamp.get(4..6), stamp.get(6..8)) {
        (Some(y), Some(mo), Some(d)) if stamp.len() == 15 => format!(
            "{y}-{mo}-{d}T{}:{}:{}",
            &stamp[9..11],
            &stamp[11..13],
            &stamp[13..15]
        ),
        _ => stamp,
    }
}

/// A threshold's measured value in its metric's unit (`312.5 ms`,
/// `1.25%`, `980.2 req/s`, `42`).
pub(crate) fn threshold_actual(expression: &str, actual: f64) -> String {
    let metric = expression
        .split(['[', '<', '>', '=', '!', ' '])
        .next()
        .unwrap_or("")
        .trim();
    let latency = metric.strip_prefix("service_").unwrap_or(metric);
    let is_latency = matches!(latency, "min" | "max" | "mean" | "avg" | "median")
        || (latency.starts_with('p') && latency[1..].starts_with(|c: char| c.is_ascii_digit()));
    match metric {
        "error_rate" => format!("{}%", trim_number(actual * 100.0, 3)),
        "rps" => format!("{} req/s", trim_number(actual, 1)),
        _ if is_latency => format!("{} ms", trim_number(actual, 3)),
        _ => trim_number(actual, 3),
    }
}

/// `v` with at most `decimals` decimals and no trailing zeros.
fn trim_number(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return "none".into();
    }
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Milliseconds for a table cell (`0.412`, `12.3`, `1.20 s`).
fn ms(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.2} s", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// A count with thousands separators (`1,234,567`).
fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A duration for people: `42.0 s`, `12 min 03 s`, `1 h 02 min 03 s`.
fn duration(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return "unknown".into();
    }
    if s < 60.0 {
        return format!("{s:.1} s");
    }
    let total = s.round() as u64;
    let (h, m, sec) = (total / 3600, (total / 60) % 60, total % 60);
    if h > 0 {
        format!("{h} h {m:02} min {sec:02} s")
    } else {
        format!("{m} min {sec:02} s")
    }
}

/// Bytes per second for people.
fn rate_bytes(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} MB/s", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} kB/s", v / 1e3)
    } else {
        format!("{v:.0} B/s")
    }
}

/// Interval numbers as ranges: `3–7, 12`.
fn ranges(ids: &[u32]) -> String {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && end.checked_add(1) == Some(sorted[i + 1]) {
            i += 1;
            end = sorted[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}–{end}")
        });
        i += 1;
    }
    parts.join(", ")
}

const CSS: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;max-width:1100px;padding:16px 24px;color:#111827;background:#fff;line-height:1.4}
h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.2em;margin:1.6em 0 .4em;border-bottom:1px solid #e5e7eb;padding-bottom:.2em}
dl.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:4px 24px;margin:8px 0}
dl.facts div{display:flex;gap:8px}dt{color:#6b7280;min-width:110px}dd{margin:0;font-weight:600;overflow-wrap:anywhere}
table{border-collapse:collapse;width:100%;font-size:.92em}th,td{border:1px solid #e5e7eb;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f9fafb}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}tr.total td{font-weight:600;background:#f9fafb}
.pass{color:#15803d;font-weight:700}.fail{color:#b91c1c;font-weight:700}
.banner{padding:8px 12px;border-radius:4px;margin:8px 0;background:#fef3c7;border:1px solid #f59e0b}
.banner.bad{background:#fee2e2;border-color:#ef4444}
.verdict{display:inline-block;padding:2px 10px;border-radius:4px;color:#fff;font-weight:700}
.verdict.pass{background:#15803d;color:#fff}.verdict.fail{background:#b91c1c;color:#fff}.verdict.none{background:#6b7280}
svg.chart{width:100%;height:auto;display:block;margin:4px 0}
.empty,.note{color:#6b7280;font-style:italic}
pre{background:#f9fafb;border:1px solid #e5e7eb;padding:8px;overflow-x:auto;font-size:.9em}
footer{margin-top:2em;color:#6b7280;font-size:.85em}
";

/// The whole page. Pure: `summary`, the per-second `series` (absent when
/// the directory has no `intervals.log`) and the scenario's text in, HTML
/// out.
pub(crate) fn render(
    summary: &RunSummary,
    series: Option<&Series>,
    scenario: Option<&str>,
) -> String {
    let s = summary;
    let mut out = String::with_capacity(64 * 1024);
    let title = format!("bfgg report: {}", s.scenario);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{}</title><style>{CSS}</style></head><body>\n",
        escape(&title)
    );
    header(&mut out, s);
    thresholds(&mut out, s);
    charts(&mut out, s, series);
    names(&mut out, s);
    errors(&mut out, s);
    if !s.agents.is_empty() {
        agents(&mut out, s);
    }
    generator(&mut out, s);
    out.push_str("<h2 id=\"scenario\">Scenario</h2>\n");
    match scenario {
        Some(text) => {
            let _ = writeln!(out, "<pre>{}</pre>", escape(text));
        }
        None => out.push_str("<p class=\"empty\">No scenario.toml in the results directory.</p>\n"),
    }
    out.push_str(
        "<footer>Written by bfgg from summary.json and intervals.log. Latencies are response times \
in ms (in the open model from each request's intended start: corrected for coordinated omission).</footer>\n\
</body></html>\n",
    );
    out
}

fn header(out: &mut String, s: &RunSummary) {
    let verdict = if s.thresholds.is_empty() {
        r#"<span class="verdict none">no thresholds</span>"#
    } else if s.thresholds_passed() {
        r#"<span class="verdict pass">thresholds passed</span>"#
    } else {
        r#"<span class="verdict fail">thresholds failed</span>"#
    };
    let _ = writeln!(out, "<h1>{} {verdict}</h1>", escape(&s.scenario));
    if let Some(reason) = &s.stop_reason {
        let _ = writeln!(
            out,
            "<div class=\"banner\">Stopped early: {}</div>",
            escape(reason)
        );
    } else if s.stopped_early {
        out.push_str("<div class=\"banner\">Stopped early.</div>\n");
    }
    if s.partial {
        let lost: Vec<String> = s
            .agents
            .iter()
            .filter(|a| a.status != "complete")
            .map(|a| format!("{} ({})", a.name, a.status))
            .collect();
        let _ = writeln!(
            out,
            "<div class=\"banner bad\">Partial results: {}. Counts of a lost agent come from its live intervals; its latencies are at live precision.</div>",
            escape(&lost.join(", "))
        );
    }
    let t = &s.total;
    let facts: [(&str, String); 12] = [
        ("engine", s.engine.clone()),
        ("model", s.model.clone()),
        ("target", s.target.clone()),
        (
            "started",
            format!("{} UTC", utc_iso(s.started_at_ms).replace('T', " ")),
        ),
        ("duration", duration(s.duration_s)),
        ("requests", count(t.requests)),
        ("throughput", format!("{:.1} req/s", t.rps)),
        (
            "errors",
            format!(
                "{} ({}%)",
                count(t.errors),
                trim_number(t.error_rate * 100.0, 2)
            ),
        ),
        ("p50", format!("{} ms", ms(t.latency_ms.p50))),
        ("p99", format!("{} ms", ms(t.latency_ms.p99))),
        (
            "stopped early",
            if s.stopped_early { "yes" } else { "no" }.to_string(),
        ),
        ("partial", if s.partial { "yes" } else { "no" }.to_string()),
    ];
    out.push_str("<dl class=\"facts\">");
    for (k, v) in facts {
        let _ = write!(out, "<div><dt>{k}</dt><dd>{}</dd></div>", escape(&v));
    }
    out.push_str("</dl>\n");
}

fn thresholds(out: &mut String, s: &RunSummary) {
    out.push_str("<h2 id=\"thresholds\">Thresholds</h2>\n");
    if s.thresholds.is_empty() {
        out.push_str("<p class=\"empty\">The scenario has no thresholds.</p>\n");
        return;
    }
    out.push_str("<table><tr><th>result</th><th>threshold</th><th>actual</th></tr>\n");
    for t in &s.thresholds {
        let (class, word) = if t.passed {
            ("pass", "pass")
        } else {
            ("fail", "FAIL")
        };
        let _ = writeln!(
            out,
            "<tr><td class=\"{class}\">{word}</td><td>{}</td><td class=\"n\">{}</td></tr>",
            escape(&t.expression),
            escape(&threshold_actual(&t.expression, t.actual))
        );
    }
    out.push_str("</table>\n");
}

fn charts(out: &mut String, s: &RunSummary, series: Option<&Series>) {
    out.push_str("<h2 id=\"load\">Load</h2>\n");
    let Some(series) = series else {
        out.push_str("<p class=\"empty\">No per-second data: the results directory has no intervals.log.</p>\n");
        return;
    };
    if let Some(e) = &series.read_error {
        let _ = writeln!(
            out,
            "<p class=\"note\">intervals.log could not be read to its end (after {} seconds): {}</p>",
            series.len(),
            escape(e)
        );
    }
    if series.len() == 0 {
        out.push_str("<p class=\"empty\">No intervals were recorded.</p>\n");
        return;
    }
    let some = |v: &[u64]| v.iter().map(|&n| Some(n as f64)).collect::<Vec<_>>();
    let open = s.model == "open";
    let mut lines = vec![svg::Line {
        name: "requests/s",
        color: "#2563eb",
        dashed: false,
        axis: svg::Axis::Left,
        ys: some(&series.requests),
    }];
    if open {
        lines.push(svg::Line {
            name: "scheduled arrivals/s (target)",
            color: "#6b7280",
            dashed: true,
            axis: svg::Axis::Left,
            ys: some(&series.scheduled),
        });
    }
    lines.push(svg::Line {
        name: "errors/s",
        color: "#dc2626",
        dashed: false,
        axis: svg::Axis::Left,
        ys: some(&series.errors),
    });
    if !open {
        lines.push(svg::Line {
            name: "active users (right axis)",
            color: "#7c3aed",
            dashed: false,
            axis: svg::Axis::Right,
            ys: some(&series.active),
        });
    }
    out.push_str(&svg::line_chart(&svg::LineChart {
        title: "requests per second over time",
        xs: &series.seconds,
        left_label: "per second",
        right_label: (!open).then_some("users"),
        lines,
    }));
    out.push('\n');
    out.push_str(
        "<p class=\"note\">Requests are counted in the second they ended; the last second may cover only part of a second.</p>\n",
    );
    if series.len() > svg::PLOT_COLUMNS {
        let _ = writeln!(
            out,
            "<p class=\"note\">{} seconds drawn in {} columns: each shows the highest value of the seconds it covers (timeseries.csv has every second).</p>",
            series.len(),
            svg::PLOT_COLUMNS
        );
    }
    if !series.agents.is_empty() {
        agent_curves(out, series);
    }
    out.push_str("<h2 id=\"latency\">Latency over time</h2>\n");
    out.push_str(&svg::line_chart(&svg::LineChart {
        title: "response time percentiles per second",
        xs: &series.seconds,
        left_label: "ms",
        right_label: None,
        lines: vec![
            svg::Line {
                name: "p50",
                color: "#16a34a",
                dashed: false,
                axis: svg::Axis::Left,
                ys: series.p50.clone(),
            },
            svg::Line {
                name: "p90",
                color: "#ea580c",
                dashed: false,
                axis: svg::Axis::Left,
                ys: series.p90.clone(),
            },
            svg::Line {
                name: "p99",
                color: "#dc2626",
                dashed: false,
                axis: svg::Axis::Left,
                ys: series.p99.clone(),
            },
        ],
    }));
    out.push('\n');
    out.push_str("<h2 id=\"distribution\">Latency distribution</h2>\n");
    let bars = log_buckets(&series.latency);
    if bars.is_empty() {
        out.push_str("<p class=\"empty\">No responses were timed.</p>\n");
    } else {
        let p = &s.total.latency_ms;
        out.push_str(&svg::histogram_chart(
            "response time distribution of the whole run",
            &bars,
            &[
                ("p50", p.p50),
                ("p90", p.p90),
                ("p99", p.p99),
                ("max", p.max),
            ],
        ));
        out.push('\n');
    }
}

/// Agents drawn one line each in the per-agent chart (the busiest ones).
const MAX_AGENT_LINES: usize = 12;
const AGENT_COLORS: [&str; MAX_AGENT_LINES] = [
    "#2563eb", "#16a34a", "#ea580c", "#7c3aed", "#dc2626", "#0891b2", "#ca8a04", "#db2777",
    "#4b5563", "#65a30d", "#9333ea", "#0d9488",
];

/// Requests per second of each agent of a cluster run, the busiest
/// [`MAX_AGENT_LINES`] drawn.
fn agent_curves(out: &mut String, series: &Series) {
    let mut order: Vec<usize> = (0..series.agents.len()).collect();
    let total = |i: usize| -> f64 { series.agents[i].1.iter().flatten().sum() };
    order.sort_by(|&a, &b| total(b).total_cmp(&total(a)));
    let lines: Vec<svg::Line<'_>> = order
        .iter()
        .take(MAX_AGENT_LINES)
        .enumerate()
        .map(|(k, &i)| svg::Line {
            name: &series.agents[i].0,
            color: AGENT_COLORS[k],
            dashed: false,
            axis: svg::Axis::Left,
            ys: series.agents[i].1.clone(),
        })
        .collect();
    out.push_str("<h3>By agent</h3>\n");
    out.push_str(&svg::line_chart(&svg::LineChart {
        title: "requests per second of each agent",
        xs: &series.seconds,
        left_label: "per second",
        right_label: None,
        lines,
    }));
    out.push('\n');
    if series.agents.len() > MAX_AGENT_LINES {
        let _ = writeln!(
            out,
            "<p class=\"note\">The {MAX_AGENT_LINES} busiest of {} agents are drawn; agents.csv has every agent's curve.</p>",
            series.agents.len()
        );
    }
}

/// The fields of one CSV line (quoted fields with `""` inside allowed).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// Buckets per decade of the distribution chart.
const BUCKETS_PER_DECADE: f64 = 10.0;

/// The histogram's samples in log-spaced buckets (ten per decade of µs),
/// as bars in ms.
pub(crate) fn log_buckets(h: &LatencyHistogram) -> Vec<svg::Bar> {
    let mut buckets: BTreeMap<i32, u64> = BTreeMap::new();
    for (lo, hi, n) in h.counts() {
        let mid = ((lo + hi) as f64 / 2.0).max(1.0);
        let k = (mid.log10() * BUCKETS_PER_DECADE).floor() as i32;
        *buckets.entry(k).or_default() += n;
    }
    buckets
        .into_iter()
        .map(|(k, n)| svg::Bar {
            lo_ms: 10f64.powf(f64::from(k) / BUCKETS_PER_DECADE) / 1000.0,
            hi_ms: 10f64.powf(f64::from(k + 1) / BUCKETS_PER_DECADE) / 1000.0,
            count: n,
        })
        .collect()
}

fn name_row(out: &mut String, name: &str, n: &NameSummary, class: &str) {
    let l = &n.latency_ms;
    let _ = writeln!(
        out,
        "<tr{class}><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}%</td><td class=\"n\">{:.1}</td>\
<td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
        escape(name),
        count(n.requests),
        count(n.errors),
        trim_number(n.error_rate * 100.0, 2),
        n.rps,
        ms(l.p50),
        ms(l.p90),
        ms(l.p95),
        ms(l.p99),
        ms(l.max),
    );
}

fn names(out: &mut String, s: &RunSummary) {
    out.push_str("<h2 id=\"names\">Requests by name</h2>\n");
    out.push_str(
        "<table><tr><th>name</th><th>requests</th><th>errors</th><th>error rate</th><th>req/s</th>\
<th>p50 ms</th><th>p90 ms</th><th>p95 ms</th><th>p99 ms</th><th>max ms</th></tr>\n",
    );
    for (name, n) in &s.by_name {
        name_row(out, name, n, "");
    }
    name_row(out, "all requests", &s.total, " class=\"total\"");
    out.push_str("</table>\n");
}

fn errors(out: &mut String, s: &RunSummary) {
    out.push_str("<h2 id=\"errors\">Errors</h2>\n");
    let mut rows: Vec<(&str, &str, &str, u64)> = s
        .by_name
        .iter()
        .flat_map(|(name, n)| {
            n.error_groups
                .iter()
                .map(move |e| (name.as_str(), e.class.as_str(), e.message.as_str(), e.count))
        })
        .collect();
    if rows.is_empty() {
        out.push_str("<p class=\"empty\">No errors.</p>\n");
        return;
    }
    rows.sort_by(|a, b| b.3.cmp(&a.3).then_with(|| (a.0, a.2).cmp(&(b.0, b.2))));
    out.push_str("<table><tr><th>name</th><th>kind</th><th>message</th><th>count</th></tr>\n");
    for (name, class, message, n) in rows {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td></tr>",
            escape(name),
            escape(class),
            escape(message),
            count(n)
        );
    }
    out.push_str("</table>\n");
}

fn agent_status(a: &AgentSummary) -> String {
    let mut text = a.status.clone();
    if let Some(ms) = a.last_heard_ms {
        let _ = write!(text, ", last heard {} UTC", utc_iso(ms).replace('T', " "));
    }
    if let Some(ms) = a.rebalanced_at_ms {
        let _ = write!(text, ", share moved {} UTC", utc_iso(ms).replace('T', " "));
    }
    text
}

fn agents(out: &mut String, s: &RunSummary) {
    out.push_str("<h2 id=\"agents\">Agents</h2>\n");
    out.push_str(
        "<table><tr><th>agent</th><th>status</th><th>requests</th><th>errors</th>\
<th>clock offset ms</th><th>missing intervals</th><th>mesh bytes/s</th></tr>\n",
    );
    let mut agents: Vec<&AgentSummary> = s.agents.iter().collect();
    agents.sort_by_key(|a| a.index);
    for a in agents {
        let class = if a.status == "complete" {
            ""
        } else {
            " class=\"fail\""
        };
        let missing = if a.missing_intervals.is_empty() {
            "none".to_string()
        } else {
            format!(
                "{}: {}",
                a.missing_intervals.len(),
                ranges(&a.missing_intervals)
            )
        };
        let _ = writeln!(
            out,
            "<tr><td title=\"{}\">{}</td><td{class}>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
<td class=\"n\">{:.1}</td><td>{}</td><td class=\"n\">{}</td></tr>",
            escape(&a.node),
            escape(&a.name),
            escape(&agent_status(a)),
            count(a.requests),
            count(a.errors),
            a.clock_offset_ms,
            escape(&missing),
            if a.mesh_bytes_per_s > 0.0 {
                rate_bytes(a.mesh_bytes_per_s)
            } else {
                "unknown".into()
            }
        );
    }
    out.push_str("</table>\n");
}

fn generator(out: &mut String, s: &RunSummary) {
    let g = &s.generator;
    out.push_str("<h2 id=\"generator\">Generator health</h2>\n<table>\n");
    let mut row = |k: &str, v: String| {
        let _ = writeln!(
            out,
            "<tr><th>{k}</th><td class=\"n\">{}</td></tr>",
            escape(&v)
        );
    };
    if s.model == "open" {
        row("arrivals scheduled", count(g.scheduled));
        row("late starts (&gt; 2 ms)", count(g.late_starts));
        row("missed arrivals", count(g.missed));
        row(
            "schedule lag p99 / max",
            format!(
                "{} / {} ms",
                ms(g.schedule_lag_ms.p99),
                ms(g.schedule_lag_ms.max)
            ),
        );
        row("peak requests in flight", count(g.peak_active));
    } else {
        row("peak active users", count(g.peak_active));
    }
    row(
        "busiest generator core",
        format!("{}% of a core", trim_number(g.max_cpu_busy_pct, 1)),
    );
    out.push_str("</table>\n");
    if g.warnings.is_empty() {
        out.push_str("<p class=\"note\">No generator warnings.</p>\n");
    } else {
        out.push_str("<ul>\n");
        for w in &g.warnings {
            let _ = writeln!(out, "<li class=\"fail\">{}</li>", escape(w));
        }
        out.push_str("</ul>\n");
    }
}

#[cfg(test)]
mod tests;
