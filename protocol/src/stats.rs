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

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

/// A latency histogram in microseconds: 1 µs to 1 hour at 3 significant digits.
///
/// All instances share these bounds, so [`LatencyHistogram::add`] never fails.
/// Values above one hour are clamped to one hour (and still counted).
#[derive(Clone, PartialEq)]
pub struct LatencyHistogram(Histogram<u64>);

impl LatencyHistogram {
    /// Smallest discernible value, µs.
    pub const LOWEST_US: u64 = 1;
    /// Largest trackable value, µs (one hour).
    pub const HIGHEST_US: u64 = 3_600_000_000;
    /// Significant decimal digits kept.
    pub const SIGFIG: u8 = 3;

    /// An empty histogram with the shared bounds.
    pub fn new() -> Self {
        Self(
            Histogram::new_with_bounds(Self::LOWEST_US, Self::HIGHEST_US, Self::SIGFIG)
                .expect("constant histogram bounds are valid"),
        )
    }

    /// Records one latency in µs; values beyond the range are clamped.
    #[inline]
    pub fn record(&mut self, micros: u64) {
        self.0.saturating_record(micros.min(Self::HIGHEST_US));
    }

    /// Adds every sample of `other` to `self` (exact merge).
    pub fn add(&mut self, other: &LatencyHistogram) {
        // Both sides have identical bounds (guaranteed by construction and by
        // `Deserialize`), so this cannot fail.
        self.0
            .add(&other.0)
            .expect("histograms with identical bounds always add");
    }

    /// The underlying HdrHistogram, for percentile queries and log writers.
    pub fn inner(&self) -> &Histogram<u64> {
        &self.0
    }

    /// Number of recorded samples.
    pub fn len(&self) -> u64 {
        self.0.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Value at quantile `q` (0.0..=1.0) in µs; 0 when empty.
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.0.is_empty() {
            0
        } else {
            self.0.value_at_quantile(q)
        }
    }

    /// Forgets every sample, keeping the allocation.
    pub fn reset(&mut self) {
        self.0.reset();
    }

    /// Serializes as HdrHistogram V2 + DEFLATE (the format of `.hlog` files).
    pub fn to_v2_deflate(&self) -> Vec<u8> {
        let mut out = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&self.0, &mut out)
            .expect("serializing into a Vec cannot fail for an in-range histogram");
        out
    }

    /// Serializes as plain HdrHistogram V2 (what travels inside messages,
    /// which the codec compresses as a whole).
    pub fn to_v2(&self) -> Vec<u8> {
        crate::hdr_v2::encode(self)
    }

    /// Parses a V2 or V2+DEFLATE histogram with the shared bounds. Bounded in
    /// memory and time whatever the bytes claim (see `hdr_v2`).
    pub fn from_v2(bytes: &[u8]) -> Result<Self, String> {
        crate::hdr_v2::decode(bytes)
    }

    /// A copy at live precision: every sample moved to the middle of its bin
    /// of [`Self::LIVE_BITS`] significant bits (within 0.8 % of the truth,
    /// about 2 significant decimal digits). Counts are unchanged, so merges of
    /// coarsened histograms stay exact; their encoding is several times
    /// smaller, which is what live gossip needs (see `IntervalSnapshot::live`).
    pub fn coarsened(&self) -> Self {
        self.coarsened_to(Self::LIVE_BITS)
    }

    #[doc(hidden)]
    pub fn coarsened_to(&self, bits: u32) -> Self {
        let mut out = Self::new();
        crate::hdr_v2::for_each_count(&self.to_v2(), |value, count| {
            out.record_n(coarse(value, bits), count);
        });
        out
    }

    /// Significant bits kept by [`Self::coarsened`].
    pub const LIVE_BITS: u32 = 7;

    /// Records `count` samples of `micros` (clamped; the count saturates).
    pub(crate) fn record_n(&mut self, micros: u64, count: u64) {
        self.0
            .saturating_record_n(micros.min(Self::HIGHEST_US), count);
    }
}

/// The middle of `v`'s bin of [`LatencyHistogram::LIVE_BITS`] significant bits.
fn coarse(v: u64, keep: u32) -> u64 {
    let bits = 64 - v.leading_zeros();
    if bits <= keep {
        return v;
    }
    let shift = bits - keep;
    ((v >> shift) << shift) + (1 << (shift - 1))
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("len", &self.0.len())
            .field("p50_us", &self.quantile_us(0.5))
            .field("max_us", &self.0.max())
            .finish()
    }
}

impl Serialize for LatencyHistogram {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.to_v2())
    }
}

impl<'de> Deserialize<'de> for LatencyHistogram {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes: serde_bytes_compat::ByteBuf = Deserialize::deserialize(d)?;
        Self::from_v2(&bytes.0).map_err(serde::de::Error::custom)
    }
}

/// A tiny owned-bytes visitor so histograms round-trip through both bincode
/// (as bytes) and self-describing formats (as a sequence of u8).
mod serde_bytes_compat {
    use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};
    use std::fmt;

    pub(super) struct ByteBuf(pub(super) Vec<u8>);

    impl<'de> Deserialize<'de> for ByteBuf {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = ByteBuf;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("histogram bytes")
                }
                fn visit_bytes<E>(self, v: &[u8]) -> Result<ByteBuf, E> {
                    Ok(ByteBuf(v.to_vec()))
                }
                fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                    Ok(ByteBuf(v))
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ByteBuf, A::Error> {
                    let mut out = Vec::new();
                    while let Some(b) = seq.next_element::<u8>()? {
                        out.push(b);
                    }
                    Ok(ByteBuf(out))
                }
            }
            d.deserialize_byte_buf(V)
        }
    }
}

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

#[cfg(test)]
mod tests;
