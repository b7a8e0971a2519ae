//! The human-readable run summary printed at the end of `bfgg run`: a table
//! per request name, grouped errors, generator warnings and thresholds.
//! Pure: summary in, text out.

use std::fmt::Write as _;

use bfgg_protocol::summary::{NameSummary, RunSummary};

/// Renders the end-of-run report.
pub fn render_summary(s: &RunSummary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} ({} engine, {} model) against {}: {:.1} s{}",
        s.scenario,
        s.engine,
        s.model,
        s.target,
        s.duration_s,
        match &s.stop_reason {
            Some(r) => format!(", stopped early: {r}"),
            None => String::new(),
        }
    );
    out.push('\n');
    let open = s.model == "open";
    let name_width = s
        .by_name
        .keys()
        .map(|n| n.chars().count())
        .chain([5])
        .max()
        .unwrap_or(5)
        .min(40);
    let _ = write!(
        out,
        "  {:<name_width$} {:>10} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "name", "requests", "req/s", "errors", "p50", "p90", "p99", "p99.9", "max"
    );
    if open {
        let _ = write!(out, " {:>10}", "svc p99");
    }
    out.push('\n');
    let row = |out: &mut String, name: &str, n: &NameSummary| {
        let name: String = name.chars().take(name_width).collect();
        let _ = write!(
            out,
            "  {:<name_width$} {:>10} {:>9.1} {:>6.2}% {:>9} {:>9} {:>9} {:>9} {:>9}",
            name,
            n.requests,
            n.rps,
            n.error_rate * 100.0,
            ms(n.latency_ms.p50),
            ms(n.latency_ms.p90),
            ms(n.latency_ms.p99),
            ms(n.latency_ms.p99_9),
            ms(n.latency_ms.max),
        );
        if open {
            let _ = write!(out, " {:>10}", ms(n.service_time_ms.p99));
        }
        out.push('\n');
    };
    for (name, n) in &s.by_name {
        row(&mut out, name, n);
    }
    if s.by_name.len() > 1 {
        row(&mut out, "total", &s.total);
    }
    if open {
        out.push_str("  (latencies from the intended start: coordinated omission corrected; svc = service time)\n");
    }
    let mut errors: Vec<(u64, &str, &str)> = Vec::new();
    for (name, n) in &s.by_name {
        for e in &n.error_groups {
            errors.push((e.count, e.message.as_str(), name.as_str()));
        }
    }
    if !errors.is_empty() {
        errors.sort_by_key(|e| std::cmp::Reverse(e.0));
        out.push_str("\nerrors:\n");
        for (count, message, name) in errors.iter().take(20) {
            let _ = writeln!(out, "  {count:>8} × {message}  [{name}]");
        }
        if errors.len() > 20 {
            let _ = writeln!(
                out,
                "  ... {} more groups in summary.json",
                errors.len() - 20
            );
        }
    }
    let g = &s.generator;
    if g.scheduled > 0 {
        let _ = writeln!(
            out,
            "\nschedule: {} arrivals, {} late (> 2 ms), {} missed; lag p99 {} max {}",
            g.scheduled,
            g.late_starts,
            g.missed,
            ms(g.schedule_lag_ms.p99),
            ms(g.schedule_lag_ms.max)
        );
    }
    for w in &g.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    if !s.thresholds.is_empty() {
        out.push_str("\nthresholds:\n");
        for t in &s.thresholds {
            let _ = writeln!(
                out,
                "  {} {}  (actual {})",
                if t.passed { "pass" } else { "FAIL" },
                t.expression,
                trim_float(t.actual)
            );
        }
    }
    out
}

fn ms(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.2}s", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0}ms")
    } else if v >= 10.0 {
        format!("{v:.1}ms")
    } else {
        format!("{v:.2}ms")
    }
}

fn trim_float(v: f64) -> String {
    if v.is_nan() {
        "none".into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bfgg_protocol::summary::{ErrorCount, ThresholdResult};

    #[test]
    fn report_shows_names_errors_and_thresholds() {
        let mut s = RunSummary {
            scenario: "demo".into(),
            engine: "native".into(),
            model: "closed".into(),
            target: "http://127.0.0.1:1".into(),
            duration_s: 10.0,
            ..RunSummary::default()
        };
        let mut home = NameSummary {
            requests: 1000,
            errors: 412,
            error_rate: 0.412,
            rps: 100.0,
            ..NameSummary::default()
        };
        home.latency_ms.p99 = 250.5;
        home.error_groups.push(ErrorCount {
            class: "check failed".into(),
            message: "check failed: status 503 expected 200".into(),
            count: 412,
        });
        s.by_name.insert("home".into(), home);
        s.thresholds.push(ThresholdResult {
            expression: "p99 < 250ms".into(),
            passed: false,
            actual: 250.5,
        });
        let text = render_summary(&s);
        assert!(
            text.contains("demo (native engine, closed model)"),
            "{text}"
        );
        assert!(
            text.contains("  home        1000     100.0  41.20%"),
            "{text}"
        );
        assert!(text.contains("250ms"), "{text}");
        assert!(
            text.contains("412 × check failed: status 503 expected 200  [home]"),
            "{text}"
        );
        assert!(
            text.contains("FAIL p99 < 250ms  (actual 250.500)"),
            "{text}"
        );
    }
}
