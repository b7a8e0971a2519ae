//! The measurement model: interval snapshots of HDR histograms, merged exactly.
//!
//! Every engine (native, Locust, Gatling) reports into [`IntervalSnapshot`]s:
//! one per source per one-second interval. Merging is `+=` and lossless: the
//! merged histogram is the one a single recorder fed every sample would hold,
//! so percentiles of a merge across workers, agents or intervals are exact
//! (within HDR's 3 significant digits). Nothing here knows about time sources
//! or I/O; engines own their clocks.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::AddAssign;

use serde::{Deserialize, Serialize};

mod histogram;
pub use histogram::LatencyHistogram;

/// Why a request counted as an error. Grouped and counted, never a Rust `Err`.
///
/// To add a kind: 1. add the variant here (at the end: the order is part of the
/// wire format); 2. give it a [`fmt::Display`] line and a [`ErrorKind::class`];
/// 3. produce it in the engine that observes it; 4. extend the round-trip test.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The target refused the TCP connection.
    ConnectRefused,
    /// The TCP (or TLS) connection did not complete within the connect timeout.
    ConnectTimeout,
    /// Any other connect failure (DNS, unreachable network), with its message.
    Connect(String),
    /// No complete response within the request timeout.
    RequestTimeout,
    /// TLS handshake or certificate failure, with its message.
    Tls(String),
    /// The connection failed mid-request (reset, closed, protocol error).
    Io(String),
    /// An HTTP error status (>= 400) on a request without a status check.
    Status(u16),
    /// A check failed; the reason reads like "status 503 expected 200".
    Check(String),
    /// A value could not be extracted from a response, or a template had no value.
    Extract(String),
    /// A data pool ran out of rows.
    DataExhausted(String),
    /// A failure reported by an external engine (Locust, Gatling), verbatim.
    Engine(String),
}

impl ErrorKind {
    /// The group a report files this error under.
    pub fn class(&self) -> &'static str {
        match self {
            ErrorKind::ConnectRefused => "connect refused",
            ErrorKind::ConnectTimeout => "connect timeout",
            ErrorKind::Connect(_) => "connect error",
            ErrorKind::RequestTimeout => "request timeout",
            ErrorKind::Tls(_) => "tls",
            ErrorKind::Io(_) => "i/o",
            ErrorKind::Status(code) if *code >= 500 => "http 5xx",
            ErrorKind::Status(_) => "http 4xx",
            ErrorKind::Check(_) => "check failed",
            ErrorKind::Extract(_) => "extract failed",
            ErrorKind::DataExhausted(_) => "data exhausted",
            ErrorKind::Engine(_) => "engine error",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::ConnectRefused => f.write_str("connect refused"),
            ErrorKind::ConnectTimeout => f.write_str("connect timeout"),
            ErrorKind::Connect(m) => write!(f, "connect error: {m}"),
            ErrorKind::RequestTimeout => f.write_str("request timeout"),
            ErrorKind::Tls(m) => write!(f, "tls: {m}"),
            ErrorKind::Io(m) => write!(f, "i/o: {m}"),
            ErrorKind::Status(code) => write!(f, "http status {code}"),
            ErrorKind::Check(reason) => write!(f, "check failed: {reason}"),
            ErrorKind::Extract(reason) => write!(f, "extract failed: {reason}"),
            ErrorKind::DataExhausted(pool) => write!(f, "data pool {pool} exhausted"),
            ErrorKind::Engine(m) => write!(f, "{m}"),
        }
    }
}

/// Everything measured for one request name in one interval (or a merge of them).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NameStats {
    /// Completed attempts, successful or not.
    pub requests: u64,
    /// Failed attempts by kind. `errors.values().sum() <= requests`.
    pub errors: BTreeMap<ErrorKind, u64>,
    /// Response bytes received (body and headers as far as the engine sees them).
    pub bytes_in: u64,
    /// Request bytes sent.
    pub bytes_out: u64,
    /// Response time from the *intended* start, µs: coordinated omission
    /// corrected in the open model; equal to `service_time` in the closed model.
    /// Recorded for every attempt that got a response.
    pub response_time: LatencyHistogram,
    /// Service time from the actual send, µs.
    pub service_time: LatencyHistogram,
}

impl NameStats {
    /// Total error count.
    pub fn error_count(&self) -> u64 {
        self.errors.values().fold(0u64, |a, n| a.saturating_add(*n))
    }
}

impl AddAssign<&NameStats> for NameStats {
    fn add_assign(&mut self, rhs: &NameStats) {
        // Counters saturate: a hostile peer's u64::MAX must not panic a node.
        self.requests = self.requests.saturating_add(rhs.requests);
        for (kind, n) in &rhs.errors {
            let mine = self.errors.entry(kind.clone()).or_default();
            *mine = mine.saturating_add(*n);
        }
        self.bytes_in = self.bytes_in.saturating_add(rhs.bytes_in);
        self.bytes_out = self.bytes_out.saturating_add(rhs.bytes_out);
        self.response_time.add(&rhs.response_time);
        self.service_time.add(&rhs.service_time);
    }
}

/// How well the generator itself kept up during an interval.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GeneratorStats {
    /// Open model: arrivals whose intended start fell in this interval.
    pub scheduled: u64,
    /// Open model: arrivals sent more than [`GeneratorStats::LATE_THRESHOLD_US`]
    /// after their intended start.
    pub late_starts: u64,
    /// Open model: arrivals never started (run ended or in-flight cap held them).
    pub missed: u64,
    /// Open model: the send-schedule lag (actual send − intended start), µs.
    pub schedule_lag: LatencyHistogram,
    /// Virtual users (closed model) or requests in flight (open model) at the
    /// end of the interval, summed over sources.
    pub active: u64,
    /// Busiest generator core in this interval, per mille (1000 = a full core).
    pub cpu_busy_permille: u32,
}

impl GeneratorStats {
    /// A start later than this (µs) counts as late: beyond timer resolution.
    pub const LATE_THRESHOLD_US: u64 = 2_000;
}

impl GeneratorStats {
    /// Merges a later interval of the same sources into this one (across
    /// time, where `+=` merges across sources): counts add, the lag
    /// histograms merge, and the gauges keep their peak (`active`: the most
    /// users or requests in flight at once; `cpu_busy_permille`: the busiest
    /// core's busiest interval). No field is dropped.
    pub fn then(&mut self, later: &GeneratorStats) {
        self.scheduled = self.scheduled.saturating_add(later.scheduled);
        self.late_starts = self.late_starts.saturating_add(later.late_starts);
        self.missed = self.missed.saturating_add(later.missed);
        self.schedule_lag.add(&later.schedule_lag);
        self.active = self.active.max(later.active);
        self.cpu_busy_permille = self.cpu_busy_permille.max(later.cpu_busy_permille);
    }
}

impl AddAssign<&GeneratorStats> for GeneratorStats {
    /// Merges two sources of the *same* interval: counters add, gauges of
    /// different sources add, and the busiest core wins.
    fn add_assign(&mut self, rhs: &GeneratorStats) {
        self.scheduled = self.scheduled.saturating_add(rhs.scheduled);
        self.late_starts = self.late_starts.saturating_add(rhs.late_starts);
        self.missed = self.missed.saturating_add(rhs.missed);
        self.schedule_lag.add(&rhs.schedule_lag);
        self.active = self.active.saturating_add(rhs.active);
        self.cpu_busy_permille = self.cpu_busy_permille.max(rhs.cpu_busy_permille);
    }
}

/// One source's (or a merge of sources') measurements for one interval.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IntervalSnapshot {
    /// Interval number: covers `[index, index + 1)` seconds after the run start.
    pub index: u32,
    /// Measurements per request name.
    pub by_name: BTreeMap<String, NameStats>,
    /// Generator health for this interval.
    pub generator: GeneratorStats,
}

impl IntervalSnapshot {
    /// An empty snapshot for interval `index`.
    pub fn new(index: u32) -> Self {
        Self {
            index,
            ..Self::default()
        }
    }

    /// This snapshot at live precision, for gossip: counts, errors and bytes
    /// exact, histograms [`LatencyHistogram::coarsened`]. The exact snapshot
    /// stays on the agent's disk and is fetched at the end of a run.
    pub fn live(&self) -> IntervalSnapshot {
        let coarsen = |s: &NameStats| NameStats {
            requests: s.requests,
            errors: s.errors.clone(),
            bytes_in: s.bytes_in,
            bytes_out: s.bytes_out,
            response_time: s.response_time.coarsened(),
            service_time: s.service_time.coarsened(),
        };
        IntervalSnapshot {
            index: self.index,
            by_name: self
                .by_name
                .iter()
                .map(|(name, s)| (name.clone(), coarsen(s)))
                .collect(),
            generator: GeneratorStats {
                schedule_lag: self.generator.schedule_lag.coarsened(),
                ..self.generator.clone()
            },
        }
    }

    /// All names merged into one.
    pub fn total(&self) -> NameStats {
        let mut total = NameStats::default();
        for stats in self.by_name.values() {
            total += stats;
        }
        total
    }

    /// True when no request completed and nothing was scheduled.
    pub fn is_empty(&self) -> bool {
        self.by_name.values().all(|s| s.requests == 0) && self.generator.scheduled == 0
    }
}

impl AddAssign<&IntervalSnapshot> for IntervalSnapshot {
    /// Merges another source's snapshot of the same interval. Merging snapshots of
    /// different intervals is a caller bug; the index of `self` is kept.
    fn add_assign(&mut self, rhs: &IntervalSnapshot) {
        debug_assert_eq!(self.index, rhs.index, "merging different intervals");
        for (name, stats) in &rhs.by_name {
            match self.by_name.get_mut(name) {
                Some(mine) => *mine += stats,
                None => {
                    self.by_name.insert(name.clone(), stats.clone());
                }
            }
        }
        self.generator += &rhs.generator;
    }
}

/// One interval summed up in a few numbers: what a progress line shows and
/// what the coordinator gossips to the whole mesh once a second (~60 bytes,
/// where the snapshot with its histograms is ~1 KB). Observers that want the
/// histograms subscribe to the agents' snapshots instead (docs/MESH.md).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Pulse {
    /// Interval number, as [`IntervalSnapshot::index`].
    pub index: u32,
    /// Requests completed, all names.
    pub requests: u64,
    /// Of which failed.
    pub errors: u64,
    /// Median response time, µs (at the snapshot's precision).
    pub p50_us: u64,
    /// 99th percentile response time, µs.
    pub p99_us: u64,
    /// Open model: arrivals sent late ([`GeneratorStats::late_starts`]).
    pub late_starts: u64,
    /// Busiest generator core, per mille ([`GeneratorStats::cpu_busy_permille`]).
    pub cpu_busy_permille: u32,
}

impl Pulse {
    /// The pulse of `snapshot`.
    pub fn of(snapshot: &IntervalSnapshot) -> Pulse {
        let total = snapshot.total();
        Pulse {
            index: snapshot.index,
            requests: total.requests,
            errors: total.error_count(),
            p50_us: total.response_time.quantile_us(0.5),
            p99_us: total.response_time.quantile_us(0.99),
            late_starts: snapshot.generator.late_starts,
            cpu_busy_permille: snapshot.generator.cpu_busy_permille,
        }
    }
}

#[cfg(test)]
mod tests;
