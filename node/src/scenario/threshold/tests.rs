//! Threshold parsing (every metric, unit and error) and evaluation.

use std::collections::BTreeMap;

use bfgg_protocol::summary::{NameSummary, Percentiles, RunSummary};

use super::*;

fn parse(text: &str) -> Threshold {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn error(text: &str) -> String {
    match text.parse::<Threshold>() {
        Ok(t) => panic!("{text} parsed as {t:?}"),
        Err(e) => e,
    }
}

fn names(requests: u64, errors: u64, p99: f64) -> NameSummary {
    NameSummary {
        requests,
        errors,
        error_rate: if requests == 0 {
            0.0
        } else {
            errors as f64 / requests as f64
        },
        rps: requests as f64 / 10.0,
        latency_ms: Percentiles {
            min: 1.0,
            mean: 20.0,
            p50: 15.0,
            p75: 30.0,
            p90: 50.0,
            p95: 80.0,
            p99,
            p99_9: p99 * 2.0,
            max: 900.0,
        },
        service_time_ms: Percentiles {
            p99: p99 / 2.0,
            ..Percentiles::default()
        },
        ..NameSummary::default()
    }
}

fn summary() -> RunSummary {
    let mut by_name = BTreeMap::new();
    by_name.insert("home".to_owned(), names(800, 0, 120.0));
    by_name.insert("GET /search?q=x".to_owned(), names(200, 20, 400.0));
    by_name.insert("idle".to_owned(), names(0, 0, 0.0));
    RunSummary {
        total: names(1000, 20, 200.0),
        by_name,
        ..RunSummary::default()
    }
}

#[test]
fn parses_metrics_ops_scopes_and_units() {
    let t = parse("  p99 < 250ms ");
    assert_eq!(
        t,
        Threshold {
            expression: "p99 < 250ms".to_owned(),
            scope: None,
            metric: Metric::Latency(Percentile::P99),
            op: Op::Lt,
            value: 250.0,
        }
    );
    assert_eq!(t.to_string(), "p99 < 250ms");

    let cases: &[(&str, Option<&str>, Metric, Op, f64)] = &[
        (
            "p50<=1s",
            None,
            Metric::Latency(Percentile::P50),
            Op::Le,
            1000.0,
        ),
        (
            "p99.9 > 500us",
            None,
            Metric::Latency(Percentile::P99_9),
            Op::Gt,
            0.5,
        ),
        (
            "max >= 2µs",
            None,
            Metric::Latency(Percentile::Max),
            Op::Ge,
            0.002,
        ),
        (
            "mean < 1.5s",
            None,
            Metric::Latency(Percentile::Mean),
            Op::Lt,
            1500.0,
        ),
        (
            "min < 3ms",
            None,
            Metric::Latency(Percentile::Min),
            Op::Lt,
            3.0,
        ),
        (
            "p75 < 3ms",
            None,
            Metric::Latency(Percentile::P75),
            Op::Lt,
            3.0,
        ),
        (
            "p90 < 3ms",
            None,
            Metric::Latency(Percentile::P90),
            Op::Lt,
            3.0,
        ),
        (
            "service_p99 < 200ms",
            None,
            Metric::ServiceTime(Percentile::P99),
            Op::Lt,
            200.0,
        ),
        ("error_rate < 1%", None, Metric::ErrorRate, Op::Lt, 0.01),
        ("error_rate <= 0.05", None, Metric::ErrorRate, Op::Le, 0.05),
        ("rps > 50", None, Metric::Rps, Op::Gt, 50.0),
        ("rps > 50/s", None, Metric::Rps, Op::Gt, 50.0),
        ("requests >= 1000", None, Metric::Requests, Op::Ge, 1000.0),
        ("errors < 5", None, Metric::Errors, Op::Lt, 5.0),
        (
            "p95[home] < 100ms",
            Some("home"),
            Metric::Latency(Percentile::P95),
            Op::Lt,
            100.0,
        ),
        (
            "p95 [ GET /search?q=x ] < 100ms",
            Some("GET /search?q=x"),
            Metric::Latency(Percentile::P95),
            Op::Lt,
            100.0,
        ),
    ];
    for (text, scope, metric, op, value) in cases {
        let t = parse(text);
        assert_eq!(t.scope.as_deref(), *scope, "{text}");
        assert_eq!(t.metric, *metric, "{text}");
        assert_eq!(t.op, *op, "{text}");
        assert!((t.value - value).abs() < 1e-12, "{text}: {}", t.value);
    }
}

#[test]
fn rejects_malformed_expressions_with_reasons() {
    for (text, message) in [
        (
            "p98 < 10ms",
            "unknown metric `p98`: expected one of p50, p75, p90, p95, p99, p99.9, max, min, mean, service_<p..>, error_rate, rps, requests, errors",
        ),
        (
            "p99 250ms",
            "missing comparison: expected `metric < value` (or <=, >, >=)",
        ),
        (
            "p99 == 250ms",
            "unsupported comparison `==`: expected <, <=, > or >=",
        ),
        ("p99 < 250", "`p99` needs a unit: write e.g. 250ms or 250s"),
        (
            "p99 < 250 sec",
            "unknown unit `sec` for `p99`: expected us, ms or s",
        ),
        ("p99 <", "missing value after the comparison of `p99`"),
        ("< 5", "missing metric before the comparison"),
        (
            "error_rate < 5",
            "error_rate `5` is a fraction between 0 and 1: write 5% or 0.05",
        ),
        ("error_rate < 150%", "error_rate `150%` is above 100%"),
        ("rps > 50ms", "`rps` takes a plain number, found unit `ms`"),
        ("requests > lots", "invalid number `lots` for `requests`"),
        (
            "p95[home < 1ms",
            "unclosed scope in `p95[home`: expected `metric[request name]`",
        ),
        (
            "p95[] < 1ms",
            "empty scope in `p95[]`: put a request name between the brackets, or drop them",
        ),
        (
            "errors < -1",
            "invalid value `-1` for `errors`: it must not be negative",
        ),
    ] {
        assert_eq!(error(text), message, "{text}");
    }
}

#[test]
fn evaluates_each_op_both_ways() {
    let s = summary();
    for (text, passed, actual) in [
        ("p99 < 250ms", true, 200.0),
        ("p99 < 200ms", false, 200.0),
        ("p99 <= 200ms", true, 200.0),
        ("p99 <= 199ms", false, 200.0),
        ("p99 > 199ms", true, 200.0),
        ("p99 > 200ms", false, 200.0),
        ("p99 >= 200ms", true, 200.0),
        ("p99 >= 0.3s", false, 200.0),
        ("p99.9 < 0.5s", true, 400.0),
        ("service_p99 < 101ms", true, 100.0),
        ("service_p99 < 100000us", false, 100.0),
        ("error_rate < 3%", true, 0.02),
        ("error_rate < 0.01", false, 0.02),
        ("rps > 50", true, 100.0),
        ("requests >= 1001", false, 1000.0),
        ("errors <= 20", true, 20.0),
    ] {
        let r = parse(text).evaluate(&s);
        assert_eq!(r.expression, text);
        assert_eq!(r.passed, passed, "{text}");
        assert!((r.actual - actual).abs() < 1e-9, "{text}: {}", r.actual);
    }
}

#[test]
fn evaluates_scoped_thresholds_per_name() {
    let s = summary();
    let r = parse("p99[home] < 150ms").evaluate(&s);
    assert!(r.passed);
    assert_eq!(r.actual, 120.0);
    let r = parse("error_rate[GET /search?q=x] < 5%").evaluate(&s);
    assert!(!r.passed);
    assert!((r.actual - 0.1).abs() < 1e-12);
}

#[test]
fn thresholds_on_names_without_requests_fail() {
    let s = summary();
    for text in [
        "errors[idle] < 1",
        "p99[idle] < 1s",
        "errors[never-sent] < 1",
        "error_rate[never-sent] < 100%",
    ] {
        let r = parse(text).evaluate(&s);
        assert!(!r.passed, "{text}");
        assert_eq!(r.actual, 0.0, "{text}");
    }
    let empty = RunSummary::default();
    assert!(!parse("errors < 1").evaluate(&empty).passed);
}
