//! The fixed buckets of `bfgg_response_time_seconds` and their counts,
//! derived from a [`LatencyHistogram`]'s own slot counts (never from
//! quantiles): a sample is in bucket `le = B` exactly when HdrHistogram's
//! `count_between(0, B)` counts it, i.e. when its slot starts at or below
//! `B`. Counts merge with `+=` like every other stats type and only grow.

use bfgg_protocol::LatencyHistogram;

/// The buckets' upper bounds, µs: a 1-2.5-5 ladder from 100 µs to 60 s
/// (`+Inf` is implicit).
pub(crate) const BOUNDS_US: [u64; 18] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000, 25_000_000, 60_000_000,
];

/// Buckets including the one above every bound.
const SLOTS: usize = BOUNDS_US.len() + 1;

/// Samples per bucket (not cumulative) and their sum.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Counts {
    /// `[i]`: samples in `(BOUNDS_US[i-1], BOUNDS_US[i]]` (as HDR counts
    /// them); the last: above every bound.
    per_bucket: [u64; SLOTS],
    /// The samples' sum, each at the middle of its HDR slot, µs.
    sum_us: u64,
}

impl Counts {
    /// The counts of every sample of `h`.
    pub(crate) fn of(h: &LatencyHistogram) -> Self {
        let mut out = Self::default();
        for (lowest, highest, n) in h.counts() {
            let i = BOUNDS_US.partition_point(|&b| b < lowest);
            out.per_bucket[i] = out.per_bucket[i].saturating_add(n);
            let middle = lowest + (highest - lowest) / 2;
            out.sum_us = out.sum_us.saturating_add(middle.saturating_mul(n));
        }
        out
    }

    /// Samples in all.
    pub(crate) fn count(&self) -> u64 {
        self.per_bucket
            .iter()
            .fold(0u64, |a, n| a.saturating_add(*n))
    }

    /// The sum, seconds.
    pub(crate) fn sum_seconds(&self) -> f64 {
        self.sum_us as f64 / 1e6
    }

    /// Cumulative counts: `[i]` samples at or below `BOUNDS_US[i]`, the last
    /// every sample.
    pub(crate) fn cumulative(&self) -> [u64; SLOTS] {
        let mut out = [0u64; SLOTS];
        let mut seen = 0u64;
        for (o, n) in out.iter_mut().zip(self.per_bucket) {
            seen = seen.saturating_add(n);
            *o = seen;
        }
        out
    }

    /// Raises every cumulative bucket, and the sum, to at least `other`'s:
    /// no exported value ever goes down, and a histogram that lacked
    /// samples `other` has ends up with exactly `other`'s counts.
    pub(crate) fn raise_to(&mut self, other: &Counts) {
        let (mine, theirs) = (self.cumulative(), other.cumulative());
        let mut below = 0u64;
        for i in 0..SLOTS {
            let at = mine[i].max(theirs[i]);
            self.per_bucket[i] = at - below;
            below = at;
        }
        self.sum_us = self.sum_us.max(other.sum_us);
    }

    /// `(upper bound in seconds, samples in that bucket)` for every finite
    /// bound, as `MetricEncoder::encode_histogram` takes them (it adds the
    /// `+Inf` bucket from the count).
    pub(crate) fn encoded(&self) -> Vec<(f64, u64)> {
        BOUNDS_US
            .iter()
            .zip(self.per_bucket)
            .map(|(&b, n)| (b as f64 / 1e6, n))
            .collect()
    }
}

impl std::ops::AddAssign<&Counts> for Counts {
    fn add_assign(&mut self, rhs: &Counts) {
        for (mine, theirs) in self.per_bucket.iter_mut().zip(rhs.per_bucket) {
            *mine = mine.saturating_add(theirs);
        }
        self.sum_us = self.sum_us.saturating_add(rhs.sum_us);
    }
}
