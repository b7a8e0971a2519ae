//! Tests of `report.html`: escaping, thresholds, empty and long runs,
//! cluster rows, and the chart helpers.

use bfgg_protocol::summary::{AgentSummary, ErrorCount, NameSummary, RunSummary, ThresholdResult};
use bfgg_protocol::{ErrorKind, IntervalSnapshot, NameStats};

use super::*;
use crate::interval_log::IntervalLog;

fn summary() -> RunSummary {
    RunSummary {
        scenario: "checkout".into(),
        engine: "native".into(),
        model: "closed".into(),
        target: "http://127.0.0.1:8080".into(),
        started_at_ms: 1_795_444_895_000,
        duration_s: 10.0,
        ..RunSummary::default()
    }
}

/// A second with `n` requests of `name` at `base_us`..`base_us + n`.
fn snap(index: u32, name: &str, n: u64, base_us: u64) -> IntervalSnapshot {
    let mut stats = NameStats::default();
    for i in 0..n {
        stats.requests += 1;
        stats.response_time.record(base_us + i);
        stats.service_time.record(base_us + i);
    }
    if n > 0 {
        stats.errors.insert(ErrorKind::Status(503), 1);
    }
    let mut s = IntervalSnapshot::new(index);
    s.by_name.insert(name.to_string(), stats);
    s.generator.active = 8;
    s.generator.scheduled = n;
    s
}

/// The `points` of every `<polyline>` in `html`, as point counts.
fn polylines(html: &str) -> Vec<usize> {
    html.split("<polyline")
        .skip(1)
        .map(|tail| {
            let points = tail
                .split("points=\"")
                .nth(1)
                .and_then(|p| p.split('"').next())
                .unwrap_or("");
            points.split(' ').filter(|p| !p.is_empty()).count()
        })
        .collect()
}

#[test]
fn user_controlled_text_is_escaped() {
    let evil = "<script>alert(1)</script>";
    let mut s = summary();
    s.scenario = format!("x{evil}");
    s.target = format!("http://h/{evil}");
    s.stop_reason = Some(evil.into());
    s.stopped_early = true;
    s.by_name.insert(
        evil.into(),
        NameSummary {
            requests: 3,
            errors: 1,
            error_groups: vec![ErrorCount {
                class: "check failed".into(),
                message: format!("check failed: body \"{evil}\" & more"),
                count: 1,
            }],
            ..NameSummary::default()
        },
    );
    s.thresholds.push(ThresholdResult {
        expression: format!("p99[{evil}] < 1ms"),
        passed: false,
        actual: 2.0,
    });
    s.generator.warnings.push(evil.into());
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = IntervalLog::create(dir.path()).expect("log");
    log.append(&snap(0, evil, 3, 1000)).expect("append");
    drop(log);
    let series = Series::read(&dir.path().join(LOG_FILE)).expect("read");
    let html = render(&s, Some(&series), Some(&format!("name = \"{evil}\"")));
    assert!(!html.contains("<script"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("&quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot; &amp; more"));
    assert!(html.contains("name = &quot;&lt;script&gt;"));
    // Control characters never reach the page.
    assert_eq!(escape("a\u{1}b\nc"), "a\u{FFFD}b\nc");
}

#[test]
fn thresholds_show_pass_fail_and_actual_values() {
    let mut s = summary();
    s.thresholds = vec![
        ThresholdResult {
            expression: "p99 < 250ms".into(),
            passed: true,
            actual: 120.5,
        },
        ThresholdResult {
            expression: "error_rate < 1%".into(),
            passed: false,
            actual: 0.0425,
        },
        ThresholdResult {
            expression: "rps > 1000".into(),
            passed: false,
            actual: 980.24,
        },
    ];
    let html = render(&s, None, None);
    assert!(html.contains("thresholds failed"), "{html}");
    assert!(html.contains(
        "<td class=\"pass\">pass</td><td>p99 &lt; 250ms</td><td class=\"n\">120.5 ms</td>"
    ));
    assert!(html.contains(
        "<td class=\"fail\">FAIL</td><td>error_rate &lt; 1%</td><td class=\"n\">4.25%</td>"
    ));
    assert!(html.contains("<td class=\"n\">980.2 req/s</td>"));
    s.thresholds.retain(|t| t.passed);
    assert!(render(&s, None, None).contains("thresholds passed"));
}

#[test]
fn threshold_values_carry_their_unit() {
    assert_eq!(threshold_actual("p99.9 < 1s", 1234.5), "1234.5 ms");
    assert_eq!(threshold_actual("service_p95[home]<=5ms", 4.0), "4 ms");
    assert_eq!(threshold_actual("max < 2s", 3.0), "3 ms");
    assert_eq!(threshold_actual("error_rate<0.01", 0.5), "50%");
    assert_eq!(threshold_actual("requests > 10", 0.0), "0");
    assert_eq!(threshold_actual("errors == 0", 12.0), "12");
}

#[test]
fn an_empty_run_renders() {
    let s = summary();
    let html = render(&s, None, None);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.ends_with("</html>\n"));
    assert!(html.contains("no intervals.log"));
    assert!(html.contains("No errors."));
    // A log with only empty seconds: lines at zero, no distribution.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = IntervalLog::create(dir.path()).expect("log");
    for i in 0..3 {
        log.append(&IntervalSnapshot::new(i)).expect("append");
    }
    drop(log);
    write_report(dir.path(), &s).expect("report");
    let html = std::fs::read_to_string(dir.path().join(REPORT_FILE)).expect("read");
    assert!(html.contains("No responses were timed."), "{html}");
    assert!(html.contains("<polyline"), "{html}");
    assert!(!html.contains("NaN") && !html.contains("inf"), "{html}");
}

#[test]
fn an_hour_long_run_renders_within_bounds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = IntervalLog::create(dir.path()).expect("log");
    for i in 0..3600u32 {
        // A spike at one second must survive downsampling.
        let n = if i == 1234 { 40 } else { 4 };
        log.append(&snap(i, "home", n, 2_000 + u64::from(i % 100) * 10))
            .expect("append");
    }
    drop(log);
    std::fs::write(
        dir.path().join("scenario.toml"),
        "[scenario]\nname = \"soak\"\n",
    )
    .expect("scenario");
    let series = Series::read(&dir.path().join(LOG_FILE)).expect("read");
    assert_eq!(series.len(), 3600);
    assert_eq!(series.requests.len(), 3600);
    assert_eq!(series.p99.len(), 3600);
    assert!(series.read_error.is_none());
    assert_eq!(series.latency.len(), 3599 * 4 + 40);
    let mut s = summary();
    s.duration_s = 3600.0;
    s.model = "open".into();
    write_report(dir.path(), &s).expect("report");
    let html = std::fs::read_to_string(dir.path().join(REPORT_FILE)).expect("read");
    assert!(html.len() < 2 * 1024 * 1024, "{} bytes", html.len());
    let lines = polylines(&html);
    assert!(lines.len() >= 6, "{lines:?}");
    assert!(
        lines.iter().all(|&n| n <= svg::PLOT_COLUMNS),
        "downsampled to the pixel columns: {lines:?}"
    );
    assert!(lines[0] > 700, "{lines:?}");
    // The spike (40 requests/s) is the top of the load curve.
    assert!(html.contains(">40</text>"), "axis tops at 40");
    assert!(html.contains("3600 seconds drawn in"));
    assert!(html.contains(">50:00</text>"), "minute ticks");
    assert!(html.contains("name = &quot;soak&quot;"));
}

#[test]
fn a_cluster_run_has_agent_rows() {
    let mut s = summary();
    s.partial = true;
    s.agents = vec![
        AgentSummary {
            node: "12D3KooWabc".into(),
            name: "agent-b".into(),
            index: 1,
            requests: 500,
            errors: 2,
            clock_offset_ms: -1.25,
            status: "lost".into(),
            last_heard_ms: Some(1_795_444_900_000),
            missing_intervals: vec![7, 3, 4, 5, 9],
            mesh_bytes_per_s: 0.0,
            ..AgentSummary::default()
        },
        AgentSummary {
            node: "12D3KooWdef".into(),
            name: "agent-a".into(),
            index: 0,
            requests: 1_234_567,
            status: "complete".into(),
            mesh_bytes_per_s: 2500.0,
            ..AgentSummary::default()
        },
    ];
    let html = render(&s, None, None);
    let a = html
        .find("<td title=\"12D3KooWdef\">agent-a</td>")
        .expect("agent-a row");
    let b = html
        .find("<td title=\"12D3KooWabc\">agent-b</td>")
        .expect("agent-b row");
    assert!(a < b, "rows in share order");
    assert!(html.contains("1,234,567"));
    assert!(html.contains("2.5 kB/s"));
    assert!(
        html.contains("<td class=\"n\">-1.2</td>") || html.contains("<td class=\"n\">-1.3</td>")
    );
    assert!(html.contains("5: 3–5, 7, 9"), "{html}");
    assert!(
        html.contains("lost, last heard 2026-11-23 14:41:40 UTC"),
        "{html}"
    );
    assert!(html.contains("Partial results: agent-b (lost)"));
    // A local run has no agents table.
    assert!(!render(&summary(), None, None).contains("id=\"agents\""));
}

#[test]
fn the_header_has_the_run_facts() {
    let mut s = summary();
    s.stopped_early = true;
    s.stop_reason = Some("stopped by the user".into());
    s.duration_s = 754.2;
    let html = render(&s, None, None);
    assert!(html.contains("2026-11-23 14:41:35 UTC"), "{html}");
    assert!(html.contains("12 min 34 s"));
    assert!(html.contains("Stopped early: stopped by the user"));
    assert!(html.contains("<dt>engine</dt><dd>native</dd>"));
    assert!(html.contains("default-src 'none'"), "no fetch allowed");
    assert!(!html.contains("http-equiv=\"refresh\""));
}

#[test]
fn latency_buckets_are_log_spaced_and_keep_every_sample() {
    let mut h = LatencyHistogram::new();
    for v in [100u64, 150, 1_000, 1_050, 10_000, 2_000_000] {
        h.record(v);
    }
    let bars = log_buckets(&h);
    assert_eq!(bars.iter().map(|b| b.count).sum::<u64>(), 6);
    for pair in bars.windows(2) {
        assert!(pair[0].hi_ms <= pair[1].lo_ms + 1e-12);
    }
    for b in &bars {
        let ratio = b.hi_ms / b.lo_ms;
        assert!((ratio - 10f64.powf(0.1)).abs() < 1e-9, "{ratio}");
    }
    assert!(log_buckets(&LatencyHistogram::new()).is_empty());
}

#[test]
fn downsampling_keeps_the_maximum_of_each_column() {
    let xs: Vec<u32> = (0..3600).collect();
    let groups = svg::pixel_groups(&xs, 800);
    assert_eq!(groups.len(), 800);
    assert_eq!(groups.iter().map(|g| g.len()).sum::<usize>(), 3600);
    let mut ys: Vec<Option<f64>> = vec![Some(1.0); 3600];
    ys[1799] = Some(99.0);
    ys[10] = None;
    let drawn = svg::downsample(&ys, &groups);
    assert_eq!(
        drawn.iter().flatten().fold(0.0, |a: f64, b| a.max(*b)),
        99.0
    );
    // Short series are not touched.
    let few: Vec<u32> = (0..10).collect();
    assert_eq!(svg::pixel_groups(&few, 800).len(), 10);
}

#[test]
fn scales_are_nice() {
    assert_eq!(svg::nice_scale(40.0, 5), (10.0, 40.0));
    assert_eq!(svg::nice_scale(0.0, 5), (0.2, 1.0));
    assert_eq!(svg::nice_scale(973.0, 5), (200.0, 1000.0));
    assert_eq!(svg::tick_label(25_000.0), "25k");
    assert_eq!(svg::tick_label(0.25), "0.25");
    assert_eq!(svg::tick_label(1_500_000.0), "1.5M");
}

#[test]
fn a_report_that_cannot_be_written_is_a_warning_not_a_lost_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A directory where the report would go: the rename into place fails.
    std::fs::create_dir(dir.path().join(REPORT_FILE)).expect("mkdir");
    std::fs::write(dir.path().join("summary.json"), "{}").expect("summary");
    let failures = write_derived(dir.path(), &summary());
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].contains("could not write report.html"),
        "{failures:?}"
    );
    assert!(failures[0].contains("summary.json and the other results are kept"));
    // The other derived file is still written, and nothing else is touched.
    assert!(dir.path().join(super::super::junit::JUNIT_FILE).is_file());
    assert!(dir.path().join("summary.json").is_file());
    assert!(
        !dir.path().join(".report.html.tmp").exists(),
        "no temporary left"
    );
    assert!(write_derived(tempfile::tempdir().expect("tempdir").path(), &summary()).is_empty());
}

#[test]
fn agents_csv_becomes_one_curve_per_agent_with_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("agents.csv");
    std::fs::write(
        &csv,
        "second,agent,requests,errors,active\n0,a,10,0,1\n0,\"b,2\",20,0,1\n1,a,11,0,1\n2,\"b,2\",22,0,1\nnot,a,line\n",
    )
    .unwrap();
    let mut series = Series {
        seconds: vec![0, 1, 2],
        ..Series::default()
    };
    series.read_agents(&csv);
    assert_eq!(
        series.agents,
        vec![
            ("a".to_string(), vec![Some(10.0), Some(11.0), None]),
            ("b,2".to_string(), vec![Some(20.0), None, Some(22.0)]),
        ]
    );
    let mut html = String::new();
    agent_curves(&mut html, &series);
    assert!(html.contains("By agent") && html.contains("b,2"), "{html}");
}
