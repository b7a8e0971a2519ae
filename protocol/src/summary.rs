//! What a finished (or stopped) run reports: the types of `summary.json`.
//!
//! Field names here are the documented, stable names of `summary.json` (see
//! README.md, "Results"). Latencies are in milliseconds as `f64`; counts are
//! integers. Built from merged [`NameStats`] by [`NameSummary::from_stats`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::stats::{LatencyHistogram, NameStats};

/// Latency percentiles in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Fastest sample.
    pub min: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 75th percentile.
    pub p75: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p99_9: f64,
    /// Slowest sample.
    pub max: f64,
}

fn ms(us: u64) -> f64 {
    (us as f64 / 1000.0 * 1000.0).round() / 1000.0
}

impl Percentiles {
    /// Percentiles of a histogram in µs, converted to ms (rounded to 1 µs).
    pub fn from_histogram(h: &LatencyHistogram) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let inner = h.dense();
        Self {
            min: ms(inner.min()),
            mean: (inner.mean()).round() / 1000.0,
            p50: ms(h.quantile_us(0.50)),
            p75: ms(h.quantile_us(0.75)),
            p90: ms(h.quantile_us(0.90)),
            p95: ms(h.quantile_us(0.95)),
            p99: ms(h.quantile_us(0.99)),
            p99_9: ms(h.quantile_us(0.999)),
            max: ms(inner.max()),
        }
    }

    /// Looks a percentile up by its threshold name (`p50`, `p99.9`, `max`, ...).
    pub fn get(&self, name: &str) -> Option<f64> {
        Some(match name {
            "min" => self.min,
            "mean" | "avg" => self.mean,
            "p50" | "median" => self.p50,
            "p75" => self.p75,
            "p90" => self.p90,
            "p95" => self.p95,
            "p99" => self.p99,
            "p99.9" | "p999" | "p99_9" => self.p99_9,
            "max" => self.max,
            _ => return None,
        })
    }
}

/// One error group: how often it happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorCount {
    /// The group ("http 5xx", "check failed", "connect refused", ...).
    pub class: String,
    /// The full message ("check failed: status 503 expected 200").
    pub message: String,
    /// Occurrences.
    pub count: u64,
}

/// Totals and latencies of one request name, or of all of them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NameSummary {
    /// Completed attempts.
    pub requests: u64,
    /// Failed attempts.
    pub errors: u64,
    /// `errors / requests`, 0 when there were no requests.
    pub error_rate: f64,
    /// Requests per second over the measured duration.
    pub rps: f64,
    /// Response bytes received.
    pub bytes_in: u64,
    /// Request bytes sent.
    pub bytes_out: u64,
    /// Response time (from the intended start in the open model: corrected for
    /// coordinated omission). The default latency everywhere.
    pub latency_ms: Percentiles,
    /// Service time (from the actual send).
    pub service_time_ms: Percentiles,
    /// Errors grouped by kind, most frequent first.
    pub error_groups: Vec<ErrorCount>,
}

impl NameSummary {
    /// Summarizes merged stats measured over `duration_s` seconds.
    pub fn from_stats(stats: &NameStats, duration_s: f64) -> Self {
        let errors = stats.error_count();
        let mut error_groups: Vec<ErrorCount> = stats
            .errors
            .iter()
            .map(|(kind, count)| ErrorCount {
                class: kind.class().to_string(),
                message: kind.to_string(),
                count: *count,
            })
            .collect();
        error_groups.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.message.cmp(&b.message))
        });
        Self {
            requests: stats.requests,
            errors,
            error_rate: if stats.requests == 0 {
                0.0
            } else {
                errors as f64 / stats.requests as f64
            },
            rps: if duration_s > 0.0 {
                stats.requests as f64 / duration_s
            } else {
                0.0
            },
            bytes_in: stats.bytes_in,
            bytes_out: stats.bytes_out,
            latency_ms: Percentiles::from_histogram(&stats.response_time),
            service_time_ms: Percentiles::from_histogram(&stats.service_time),
            error_groups,
        }
    }
}

/// One threshold and its verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThresholdResult {
    /// The expression as written in the scenario (`"p99 < 250ms"`).
    pub expression: String,
    /// Whether it held.
    pub passed: bool,
    /// The measured value, in the expression's unit (ms, fraction or req/s).
    pub actual: f64,
}

/// How the generator kept its schedule over the whole run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GeneratorSummary {
    /// Open model: arrivals scheduled.
    pub scheduled: u64,
    /// Open model: arrivals started later than the late threshold (2 ms).
    pub late_starts: u64,
    /// Open model: arrivals never started.
    pub missed: u64,
    /// Open model: send-schedule lag percentiles.
    pub schedule_lag_ms: Percentiles,
    /// The busiest generator core's busiest second, percent of a core.
    pub max_cpu_busy_pct: f64,
    /// The most virtual users (closed model) or requests in flight (open
    /// model) at the end of any interval, all agents together.
    #[serde(default)]
    pub peak_active: u64,
    /// Human-readable warnings ("generator core over 80% busy for 12 s").
    pub warnings: Vec<String>,
}

/// The whole `summary.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Scenario name.
    pub scenario: String,
    /// Engine that ran it (`native`, `locust`, `gatling`).
    pub engine: String,
    /// Load model (`open` or `closed`).
    pub model: String,
    /// Target base URL.
    pub target: String,
    /// Unix time of the run start, ms.
    pub started_at_ms: u64,
    /// Measured duration, seconds.
    pub duration_s: f64,
    /// Whether the run was stopped early (signal, stop request, fatal error).
    pub stopped_early: bool,
    /// Why it stopped early, if it did.
    pub stop_reason: Option<String>,
    /// All request names merged.
    pub total: NameSummary,
    /// Per request name.
    pub by_name: BTreeMap<String, NameSummary>,
    /// Thresholds in scenario order.
    pub thresholds: Vec<ThresholdResult>,
    /// Generator health.
    pub generator: GeneratorSummary,
    /// Cluster runs: one entry per agent (empty for local runs).
    #[serde(default)]
    pub agents: Vec<AgentSummary>,
    /// Cluster runs: true when an agent was lost and its share is incomplete.
    #[serde(default)]
    pub partial: bool,
}

/// One agent of a cluster run, as the coordinator saw it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentSummary {
    /// Its node id.
    pub node: String,
    /// Its name.
    pub name: String,
    /// Its share index (of `agents.len()`).
    pub index: u32,
    /// Requests it completed (its own count; the totals are the sum of these).
    pub requests: u64,
    /// Its errors.
    pub errors: u64,
    /// Its clock offset to the coordinator, ms (coordinator − agent).
    pub clock_offset_ms: f64,
    /// When it started, Unix ms on the coordinator's clock.
    pub started_at_ms: u64,
    /// `complete`, or `lost` (went silent; its gossiped intervals were used:
    /// counts exact, latencies at live precision, within 0.8 %).
    pub status: String,
    /// When it was last heard, Unix ms, if it was lost.
    pub last_heard_ms: Option<u64>,
    /// Intervals of the run it has no measurements for (gaps).
    pub missing_intervals: Vec<u32>,
    /// What it sent on the mesh per second of load (health and events on
    /// gossip, live intervals to its coordinator and subscribers), payload
    /// bytes; 0 when unknown (lost agents).
    pub mesh_bytes_per_s: f64,
    /// For a lost agent with `--rebalance`: when its share moved to the live
    /// agents, Unix ms on the coordinator's clock.
    pub rebalanced_at_ms: Option<u64>,
}

impl RunSummary {
    /// True when every threshold passed (or there were none).
    pub fn thresholds_passed(&self) -> bool {
        self.thresholds.iter().all(|t| t.passed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::ErrorKind;

    #[test]
    fn summary_converts_to_milliseconds_and_rates() {
        let mut s = NameStats::default();
        for v in 1..=1000u64 {
            s.requests += 1;
            s.response_time.record(v * 1000); // 1..1000 ms
            s.service_time.record(v * 100);
        }
        s.errors.insert(ErrorKind::Status(503), 10);
        s.errors.insert(ErrorKind::ConnectRefused, 30);
        let sum = NameSummary::from_stats(&s, 10.0);
        assert_eq!(sum.requests, 1000);
        assert_eq!(sum.errors, 40);
        assert!((sum.error_rate - 0.04).abs() < 1e-12);
        assert!((sum.rps - 100.0).abs() < 1e-12);
        assert!(
            (sum.latency_ms.p50 - 500.0).abs() <= 0.5,
            "{}",
            sum.latency_ms.p50
        );
        assert!(
            (sum.latency_ms.p99 - 990.0).abs() <= 1.0,
            "{}",
            sum.latency_ms.p99
        );
        assert!((sum.service_time_ms.max - 100.0).abs() <= 0.1);
        assert_eq!(sum.error_groups[0].message, "connect refused");
        assert_eq!(sum.error_groups[0].count, 30);
        assert_eq!(sum.error_groups[1].class, "http 5xx");
    }

    #[test]
    fn summary_json_field_names_are_stable() {
        let summary = RunSummary::default();
        let v: serde_json::Value = serde_json::to_value(&summary).expect("serializes");
        for path in [
            "/total/requests",
            "/total/errors",
            "/total/rps",
            "/total/latency_ms/p50",
            "/total/latency_ms/p90",
            "/total/latency_ms/p99",
            "/total/latency_ms/p99_9",
            "/total/latency_ms/max",
            "/by_name",
            "/thresholds",
        ] {
            assert!(v.pointer(path).is_some(), "missing {path}");
        }
    }
}
