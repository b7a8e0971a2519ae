//! Comparing runs and judging `--fail-if` rules.

use super::*;

fn summary(rps: f64, p99: f64, error_rate: f64) -> RunSummary {
    let mut s = RunSummary::default();
    s.total.rps = rps;
    s.total.latency_ms.p99 = p99;
    s.total.error_rate = error_rate;
    let mut login = s.total.clone();
    login.latency_ms.p99 = p99 * 2.0;
    s.by_name.insert("login".into(), login);
    s
}

#[test]
fn a_slower_run_is_marked_worse_and_a_faster_one_is_not() {
    let a = summary(100.0, 10.0, 0.0);
    let b = summary(90.0, 12.0, 0.01);
    let rows = compare(&a, &b);
    let row = |name: &str, metric: &str| {
        rows.iter()
            .find(|r| r.name == name && r.metric == metric)
            .cloned()
            .unwrap()
    };
    let p99 = row("*", "p99");
    assert_eq!((p99.a, p99.b), (10.0, 12.0));
    assert!((p99.change.unwrap() - 0.2).abs() < 1e-9);
    assert!(p99.regression);
    assert!(row("*", "rps").regression, "throughput down 10 %");
    assert!(row("*", "error_rate").regression, "errors from none");
    assert_eq!(row("*", "error_rate").change, None);
    assert!(row("login", "p99").regression);
    let back = compare(&b, &a);
    assert!(back.iter().all(|r| !r.regression), "{back:?}");
    let text = render("a", "b", &rows, &[]);
    assert!(text.contains("+20.0%  worse"), "{text}");
}

#[test]
fn rules_parse_and_judge_relative_and_absolute_changes() {
    let a = summary(100.0, 10.0, 0.0);
    let b = summary(90.0, 12.0, 0.01);
    let judge = |rule: &str| rule.parse::<Rule>().unwrap().judge(&a, &b).failed;
    assert!(judge("p99 > +10%"));
    assert!(!judge("p99 > +25%"));
    assert!(judge("p99[login] > +10%"));
    assert!(judge("rps < -5%"));
    assert!(!judge("rps < -15%"));
    assert!(judge("error_rate > +0.005"), "absolute change");
    assert!(!judge("error_rate > +0.02"));
    assert!(
        judge("p99[nope] > +10%"),
        "a name a run lacks fails the rule"
    );
    for bad in [
        "p99 >> 1",
        "p42 > 1%",
        "p99 = 1",
        "p99[x > 1%",
        "p99 > lots",
    ] {
        assert!(bad.parse::<Rule>().is_err(), "{bad}");
    }
}
