//! Pass/fail criteria: `"p99 < 250ms"`, `"error_rate < 1%"`, `"p95[home] < 100ms"`.
//!
//! Parsing happens at scenario load time ([`Threshold`]'s `FromStr`); judging
//! happens once, on the finished run's [`RunSummary`]. Nothing here measures.
//!
//! Grammar: `metric[scope] op value`, where `[scope]` (a request name) is
//! optional and whitespace is free around the operator.
//!
//! * Latency metrics `p50 p75 p90 p95 p99 p99.9 max min mean` (response time,
//!   corrected for coordinated omission in the open model) and
//!   `service_<same>` (service time, from the actual send) take a unit:
//!   `us`/`µs`, `ms`, `s`. They are compared in milliseconds.
//! * `error_rate` takes a percentage (`1%`) or a fraction (`0.01`); it is
//!   compared as a fraction.
//! * `rps`, `requests` and `errors` take plain numbers.
//!
//! A threshold whose scope saw no requests (an unknown name at run time, or a
//! run that sent nothing) **fails**, whatever its metric, with `actual = 0`:
//! a criterion about traffic that never happened must not pass silently.

use std::fmt;
use std::str::FromStr;

use bfgg_protocol::summary::{NameSummary, Percentiles, RunSummary, ThresholdResult};

/// One parsed threshold expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The expression as written (trimmed), reported back in results.
    pub expression: String,
    /// The request name it is scoped to (`p95[home]`), or `None` for all requests.
    pub scope: Option<String>,
    /// What is measured.
    pub metric: Metric,
    /// How the measurement compares to `value`.
    pub op: Op,
    /// The bound, normalized: milliseconds for latencies, a fraction for
    /// `error_rate`, plain numbers otherwise.
    pub value: f64,
}

/// A measurable quantity of a run (or of one request name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Response time percentile, ms.
    Latency(Percentile),
    /// Service time percentile (`service_p99`), ms.
    ServiceTime(Percentile),
    /// Failed / completed requests, a fraction.
    ErrorRate,
    /// Completed requests per second.
    Rps,
    /// Completed requests.
    Requests,
    /// Failed requests.
    Errors,
}

/// A point of a latency distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Percentile {
    /// Median.
    P50,
    /// 75th percentile.
    P75,
    /// 90th percentile.
    P90,
    /// 95th percentile.
    P95,
    /// 99th percentile.
    P99,
    /// 99.9th percentile.
    P99_9,
    /// Slowest sample.
    Max,
    /// Fastest sample.
    Min,
    /// Arithmetic mean.
    Mean,
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// The metric names, for error messages.
const METRICS_HELP: &str = "p50, p75, p90, p95, p99, p99.9, max, min, mean, service_<p..>, error_rate, rps, requests, errors";

impl Percentile {
    /// Every percentile, in the order they are documented.
    pub const ALL: [Percentile; 9] = [
        Percentile::P50,
        Percentile::P75,
        Percentile::P90,
        Percentile::P95,
        Percentile::P99,
        Percentile::P99_9,
        Percentile::Max,
        Percentile::Min,
        Percentile::Mean,
    ];

    /// The name used in expressions: `p50`, `p99.9`, `max`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Percentile::P50 => "p50",
            Percentile::P75 => "p75",
            Percentile::P90 => "p90",
            Percentile::P95 => "p95",
            Percentile::P99 => "p99",
            Percentile::P99_9 => "p99.9",
            Percentile::Max => "max",
            Percentile::Min => "min",
            Percentile::Mean => "mean",
        }
    }

    /// Parses a name as written in expressions (also `median`, `avg`, `p999`).
    fn parse(name: &str) -> Option<Percentile> {
        Some(match name {
            "p50" | "median" => Percentile::P50,
            "p75" => Percentile::P75,
            "p90" => Percentile::P90,
            "p95" => Percentile::P95,
            "p99" => Percentile::P99,
            "p99.9" | "p999" => Percentile::P99_9,
            "max" => Percentile::Max,
            "min" => Percentile::Min,
            "mean" | "avg" => Percentile::Mean,
            _ => return None,
        })
    }

    /// This percentile of `p`, in ms.
    pub fn of(self, p: &Percentiles) -> f64 {
        match self {
            Percentile::P50 => p.p50,
            Percentile::P75 => p.p75,
            Percentile::P90 => p.p90,
            Percentile::P95 => p.p95,
            Percentile::P99 => p.p99,
            Percentile::P99_9 => p.p99_9,
            Percentile::Max => p.max,
            Percentile::Min => p.min,
            Percentile::Mean => p.mean,
        }
    }
}

impl Metric {
    /// Parses a metric name (`p99`, `service_p95`, `error_rate`, ...).
    fn parse(name: &str) -> Result<Metric, String> {
        let metric = match name {
            "error_rate" => Metric::ErrorRate,
            "rps" => Metric::Rps,
            "requests" => Metric::Requests,
            "errors" => Metric::Errors,
            _ => match name.strip_prefix("service_") {
                Some(p) => Percentile::parse(p).map(Metric::ServiceTime),
                None => Percentile::parse(name).map(Metric::Latency),
            }
            .ok_or_else(|| format!("unknown metric `{name}`: expected one of {METRICS_HELP}"))?,
        };
        Ok(metric)
    }

    /// This metric of `s`, in the unit thresholds compare in.
    fn of(self, s: &NameSummary) -> f64 {
        match self {
            Metric::Latency(p) => p.of(&s.latency_ms),
            Metric::ServiceTime(p) => p.of(&s.service_time_ms),
            Metric::ErrorRate => s.error_rate,
            Metric::Rps => s.rps,
            Metric::Requests => s.requests as f64,
            Metric::Errors => s.errors as f64,
        }
    }
}

impl fmt::Display for Metric {
    /// The metric as written in expressions.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::Latency(p) => f.write_str(p.as_str()),
            Metric::ServiceTime(p) => write!(f, "service_{}", p.as_str()),
            Metric::ErrorRate => f.write_str("error_rate"),
            Metric::Rps => f.write_str("rps"),
            Metric::Requests => f.write_str("requests"),
            Metric::Errors => f.write_str("errors"),
        }
    }
}

impl Op {
    /// Whether `actual op bound` holds (false when either is NaN).
    pub fn holds(self, actual: f64, bound: f64) -> bool {
        match self {
            Op::Lt => actual < bound,
            Op::Le => actual <= bound,
            Op::Gt => actual > bound,
            Op::Ge => actual >= bound,
        }
    }

    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

impl FromStr for Threshold {
    type Err = String;

    /// Parses `metric[scope] op value`; the error says what was expected.
    fn from_str(text: &str) -> Result<Threshold, String> {
        let expression = text.trim();
        // A scope (a request name) may itself contain `=` or `<`, so look for
        // the operator after its closing bracket.
        let search_from = match (expression.find('['), expression.rfind(']')) {
            (Some(_), Some(close)) => close + 1,
            _ => 0,
        };
        let op_at = expression[search_from..]
            .find(['<', '>', '=', '!'])
            .map(|at| at + search_from)
            .ok_or_else(|| {
                "missing comparison: expected `metric < value` (or <=, >, >=)".to_owned()
            })?;
        let (lhs, rest) = expression.split_at(op_at);
        let (op, value_text) = if let Some(v) = rest.strip_prefix("<=") {
            (Op::Le, v)
        } else if let Some(v) = rest.strip_prefix(">=") {
            (Op::Ge, v)
        } else if let Some(v) = rest.strip_prefix('<') {
            (Op::Lt, v)
        } else if let Some(v) = rest.strip_prefix('>') {
            (Op::Gt, v)
        } else {
            let written: String = rest.chars().take_while(|c| "<>=!".contains(*c)).collect();
            return Err(format!(
                "unsupported comparison `{written}`: expected <, <=, > or >="
            ));
        };
        let (metric_text, scope) = split_scope(lhs.trim())?;
        if metric_text.is_empty() {
            return Err("missing metric before the comparison".to_owned());
        }
        let metric = Metric::parse(metric_text)?;
        let value = parse_value(metric, value_text.trim())?;
        Ok(Threshold {
            expression: expression.to_owned(),
            scope,
            metric,
            op,
            value,
        })
    }
}

/// Splits `p95[home]` into `("p95", Some("home"))`.
fn split_scope(lhs: &str) -> Result<(&str, Option<String>), String> {
    let Some(open) = lhs.find('[') else {
        if lhs.contains(']') {
            return Err(format!("unbalanced `]` in `{lhs}`"));
        }
        return Ok((lhs, None));
    };
    let Some(inner) = lhs[open + 1..].strip_suffix(']') else {
        return Err(format!(
            "unclosed scope in `{lhs}`: expected `metric[request name]`"
        ));
    };
    let scope = inner.trim();
    if scope.is_empty() {
        return Err(format!(
            "empty scope in `{lhs}`: put a request name between the brackets, or drop them"
        ));
    }
    Ok((lhs[..open].trim_end(), Some(scope.to_owned())))
}

/// Parses the bound and normalizes it to the metric's comparison unit.
fn parse_value(metric: Metric, text: &str) -> Result<f64, String> {
    if text.is_empty() {
        return Err(format!("missing value after the comparison of `{metric}`"));
    }
    let number_len = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(number_len);
    let unit = unit.trim();
    let number: f64 = number
        .parse()
        .map_err(|_| format!("invalid number `{text}` for `{metric}`"))?;
    if !number.is_finite() || number < 0.0 {
        return Err(format!(
            "invalid value `{text}` for `{metric}`: it must not be negative"
        ));
    }
    match metric {
        Metric::Latency(_) | Metric::ServiceTime(_) => {
            let scale = match unit {
                "ms" => 1.0,
                "s" => 1000.0,
                "us" | "µs" => 0.001,
                "" => {
                    return Err(format!(
                        "`{metric}` needs a unit: write e.g. {number}ms or {number}s"
                    ));
                }
                other => {
                    return Err(format!(
                        "unknown unit `{other}` for `{metric}`: expected us, ms or s"
                    ));
                }
            };
            Ok(number * scale)
        }
        Metric::ErrorRate => match unit {
            "%" if number <= 100.0 => Ok(number / 100.0),
            "%" => Err(format!("error_rate `{text}` is above 100%")),
            "" if number <= 1.0 => Ok(number),
            "" => Err(format!(
                "error_rate `{text}` is a fraction between 0 and 1: write {number}% or {}",
                number / 100.0
            )),
            other => Err(format!(
                "unknown unit `{other}` for `error_rate`: write e.g. 1% or 0.01"
            )),
        },
        Metric::Rps | Metric::Requests | Metric::Errors => {
            if unit.is_empty() || (metric == Metric::Rps && unit == "/s") {
                Ok(number)
            } else {
                Err(format!(
                    "`{metric}` takes a plain number, found unit `{unit}`"
                ))
            }
        }
    }
}

impl Threshold {
    /// Judges the threshold against a finished run.
    ///
    /// `actual` is the measured value in the comparison unit (ms, fraction,
    /// req/s or a count). When the scope has no requests, the threshold fails
    /// with `actual = 0` (see the module docs).
    pub fn evaluate(&self, summary: &RunSummary) -> ThresholdResult {
        let scoped = match &self.scope {
            None => Some(&summary.total),
            Some(name) => summary.by_name.get(name),
        };
        let (passed, actual) = match scoped {
            Some(s) if s.requests > 0 => {
                let actual = self.metric.of(s);
                (self.op.holds(actual, self.value), actual)
            }
            _ => (false, 0.0),
        };
        ThresholdResult {
            expression: self.expression.clone(),
            passed,
            actual,
        }
    }
}

impl fmt::Display for Threshold {
    /// The expression as written.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expression)
    }
}

#[cfg(test)]
mod tests;
