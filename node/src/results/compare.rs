//! Two runs side by side (`bfgg runs compare A B`): throughput, error rate
//! and latency percentiles of the whole run and of every request name, the
//! change from A to B in %, regressions marked; and `--fail-if` rules such
//! as `p99 > +10%` or `error_rate[login] > +0.5` that set the exit code in
//! CI. Pure: summaries in, rows and verdicts out.

use std::fmt::Write as _;

use bfgg_protocol::summary::{NameSummary, RunSummary};

/// A metric compared between runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Requests per second.
    Rps,
    /// Errors / requests.
    ErrorRate,
    /// Response-time percentiles and extremes (ms).
    P50,
    /// p90.
    P90,
    /// p95.
    P95,
    /// p99.
    P99,
    /// p99.9.
    P999,
    /// max.
    Max,
    /// mean.
    Mean,
}

impl Metric {
    /// Every metric, in table order.
    pub const ALL: [Metric; 9] = [
        Metric::Rps,
        Metric::ErrorRate,
        Metric::Mean,
        Metric::P50,
        Metric::P90,
        Metric::P95,
        Metric::P99,
        Metric::P999,
        Metric::Max,
    ];

    /// Its name in tables and rules.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Rps => "rps",
            Metric::ErrorRate => "error_rate",
            Metric::Mean => "mean",
            Metric::P50 => "p50",
            Metric::P90 => "p90",
            Metric::P95 => "p95",
            Metric::P99 => "p99",
            Metric::P999 => "p99.9",
            Metric::Max => "max",
        }
    }

    fn parse(s: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == s)
    }

    /// The value in `n`.
    pub fn of(self, n: &NameSummary) -> f64 {
        match self {
            Metric::Rps => n.rps,
            Metric::ErrorRate => n.error_rate,
            Metric::Mean => n.latency_ms.mean,
            Metric::P50 => n.latency_ms.p50,
            Metric::P90 => n.latency_ms.p90,
            Metric::P95 => n.latency_ms.p95,
            Metric::P99 => n.latency_ms.p99,
            Metric::P999 => n.latency_ms.p99_9,
            Metric::Max => n.latency_ms.max,
        }
    }

    /// Whether a higher value is worse.
    pub fn higher_is_worse(self) -> bool {
        self != Metric::Rps
    }
}

/// Above this relative change (in the bad direction) a row is marked as a
/// regression in the table.
pub const REGRESSION: f64 = 0.05;

/// One metric of one request name (or `*`, the whole run) in both runs.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Row {
    /// Request name, or `*`.
    pub name: String,
    /// The metric's name.
    pub metric: &'static str,
    /// A's value.
    pub a: f64,
    /// B's value.
    pub b: f64,
    /// (b - a) / a; `None` when a is 0.
    pub change: Option<f64>,
    /// Worse by more than [`REGRESSION`].
    pub regression: bool,
}

/// The comparison of `a` and `b`: the whole run, then each name both have.
pub fn compare(a: &RunSummary, b: &RunSummary) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut add = |name: &str, na: &NameSummary, nb: &NameSummary| {
        for m in Metric::ALL {
            let (va, vb) = (m.of(na), m.of(nb));
            let change = (va != 0.0).then(|| (vb - va) / va);
            let worse = if m.higher_is_worse() {
                vb > va
            } else {
                vb < va
            };
            let regression = worse
                && match change {
                    Some(c) => c.abs() > REGRESSION,
                    // From zero: any error rate is a regression.
                    None => m == Metric::ErrorRate && vb > 0.0,
                };
            rows.push(Row {
                name: name.to_owned(),
                metric: m.name(),
                a: va,
                b: vb,
                change,
                regression,
            });
        }
    };
    add("*", &a.total, &b.total);
    for (name, na) in &a.by_name {
        if let Some(nb) = b.by_name.get(name) {
            add(name, na, nb);
        }
    }
    rows
}

/// A `--fail-if` rule: `metric[name] > +10%` (relative change of B from A)
/// or `metric[name] > +0.5` (absolute change, in the metric's unit).
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// The rule as written.
    pub text: String,
    metric: Metric,
    name: Option<String>,
    limit: f64,
    relative: bool,
    /// `>`: fail when the change exceeds the limit; `<`: when it is below.
    above: bool,
}

impl std::str::FromStr for Rule {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let usage = || {
            format!(
                "`{text}` is not a rule: write e.g. 'p99 > +10%', 'error_rate[login] > +0.01' or 'rps < -5%' \
                 (metrics: {})",
                Metric::ALL.map(Metric::name).join(", ")
            )
        };
        let (lhs, op, rhs) = if let Some((l, r)) = text.split_once('>') {
            (l, true, r)
        } else if let Some((l, r)) = text.split_once('<') {
            (l, false, r)
        } else {
            return Err(usage());
        };
        let lhs = lhs.trim();
        let (metric, name) = match lhs.split_once('[') {
            Some((m, rest)) => (
                m.trim(),
                Some(rest.strip_suffix(']').ok_or_else(usage)?.trim().to_owned()),
            ),
            None => (lhs, None),
        };
        let metric = Metric::parse(metric).ok_or_else(usage)?;
        let rhs = rhs.trim();
        let (number, relative) = match rhs.strip_suffix('%') {
            Some(n) => (n, true),
            None => (rhs, false),
        };
        let mut limit: f64 = number.trim().parse().map_err(|_| usage())?;
        if relative {
            limit /= 100.0;
        }
        Ok(Rule {
            text: text.to_owned(),
            metric,
            name,
            limit,
            relative,
            above: op,
        })
    }
}

/// A rule judged on two runs.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Verdict {
    /// The rule as written.
    pub rule: String,
    /// Whether B broke it.
    pub failed: bool,
    /// The change it looked at (relative or absolute, as the rule says);
    /// `None` when it could not be computed (a name missing, A at 0).
    pub change: Option<f64>,
}

impl Rule {
    /// Judges B against A. A rule on a name one run lacks fails.
    pub fn judge(&self, a: &RunSummary, b: &RunSummary) -> Verdict {
        let pick = |s: &RunSummary| match &self.name {
            Some(n) => s.by_name.get(n).map(|x| self.metric.of(x)),
            None => Some(self.metric.of(&s.total)),
        };
        let change = match (pick(a), pick(b)) {
            (Some(va), Some(vb)) if self.relative => (va != 0.0).then(|| (vb - va) / va),
            (Some(va), Some(vb)) => Some(vb - va),
            _ => None,
        };
        let failed = match change {
            Some(c) if self.above => c > self.limit,
            Some(c) => c < self.limit,
            None => true,
        };
        Verdict {
            rule: self.text.clone(),
            failed,
            change,
        }
    }
}

/// The comparison as a table for people.
pub fn render(a_name: &str, b_name: &str, rows: &[Row], verdicts: &[Verdict]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "A: {a_name}\nB: {b_name}\n");
    let width = rows
        .iter()
        .map(|r| r.name.chars().count())
        .max()
        .unwrap_or(1)
        .clamp(4, 30);
    let _ = writeln!(
        out,
        "  {:<width$} {:<10} {:>12} {:>12} {:>9}",
        "name", "metric", "A", "B", "change"
    );
    for r in rows {
        let unit = |v: f64| match r.metric {
            "rps" => format!("{v:.1}/s"),
            "error_rate" => format!("{:.2}%", v * 100.0),
            _ => format!("{v:.2} ms"),
        };
        let change = r
            .change
            .map_or("-".to_owned(), |c| format!("{:+.1}%", c * 100.0));
        let name: String = r.name.chars().take(width).collect();
        let _ = writeln!(
            out,
            "  {:<width$} {:<10} {:>12} {:>12} {:>9}{}",
            name,
            r.metric,
            unit(r.a),
            unit(r.b),
            change,
            if r.regression { "  worse" } else { "" }
        );
    }
    if !verdicts.is_empty() {
        out.push('\n');
        for v in verdicts {
            let change = v.change.map_or("n/a".to_owned(), |c| format!("{c:+.4}"));
            let _ = writeln!(
                out,
                "  {} {} (change {change})",
                if v.failed { "FAIL" } else { "ok  " },
                v.rule
            );
        }
    }
    out
}

#[cfg(test)]
mod tests;
