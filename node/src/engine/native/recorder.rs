//! Per-worker measurements. Owned by exactly one worker thread: no locks and no
//! channel message per request. The worker hands one [`IntervalSnapshot`] per
//! interval to the run's aggregator via [`Recorder::take`].

use std::time::Duration;

use bfgg_protocol::{ErrorKind, GeneratorStats, IntervalSnapshot, NameStats};

/// Measurements of one worker for the current interval.
#[derive(Debug)]
pub(crate) struct Recorder {
    /// Request names, indexed by name id (see `Plan::name_ids`).
    names: Vec<String>,
    stats: Vec<NameStats>,
    generator: GeneratorStats,
    /// Iterations in flight (open) or running users (closed): a gauge, not reset.
    active: u64,
    /// Set once a worker must stop because a data pool ran out.
    pub(crate) exhausted: Option<String>,
}

/// The outcome of one request, as recorded.
#[derive(Debug)]
pub(crate) struct Sample {
    /// Name id of the request.
    pub(crate) name: usize,
    /// From the intended start to the end (corrected), when a response arrived.
    pub(crate) response_time: Option<Duration>,
    /// From the actual send to the end, when a response arrived.
    pub(crate) service_time: Option<Duration>,
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
    pub(crate) error: Option<ErrorKind>,
}

impl Recorder {
    pub(crate) fn new(names: Vec<String>) -> Self {
        let stats = names.iter().map(|_| NameStats::default()).collect();
        Self {
            names,
            stats,
            generator: GeneratorStats::default(),
            active: 0,
            exhausted: None,
        }
    }

    /// Hot path: one request. No allocation unless the request failed with a
    /// new error kind.
    #[inline]
    pub(crate) fn record(&mut self, s: Sample) {
        let stats = &mut self.stats[s.name];
        stats.requests += 1;
        stats.bytes_in += s.bytes_in;
        stats.bytes_out += s.bytes_out;
        if let Some(rt) = s.response_time {
            stats.response_time.record(rt.as_micros() as u64);
        }
        if let Some(st) = s.service_time {
            stats.service_time.record(st.as_micros() as u64);
        }
        if let Some(kind) = s.error {
            match stats.errors.get_mut(&kind) {
                Some(n) => *n += 1,
                None => {
                    stats.errors.insert(kind, 1);
                }
            }
        }
    }

    /// Open model: an arrival was started `lag` after its intended time.
    #[inline]
    pub(crate) fn record_start(&mut self, lag: Duration) {
        let lag_us = lag.as_micros() as u64;
        self.generator.scheduled += 1;
        self.generator.schedule_lag.record(lag_us);
        if lag_us > GeneratorStats::LATE_THRESHOLD_US {
            self.generator.late_starts += 1;
        }
    }

    pub(crate) fn inc_active(&mut self) {
        self.active += 1;
    }

    pub(crate) fn dec_active(&mut self) {
        self.active = self.active.saturating_sub(1);
    }

    /// Everything recorded since the previous call, as interval `index`, with
    /// the worker's CPU use; starts the next interval afresh (keeping the
    /// allocations of names that saw no traffic).
    pub(crate) fn take(&mut self, index: u32, cpu_busy_permille: u32) -> IntervalSnapshot {
        let mut snap = IntervalSnapshot::new(index);
        for (name, stats) in self.names.iter().zip(self.stats.iter_mut()) {
            if stats.requests > 0 {
                snap.by_name.insert(name.clone(), std::mem::take(stats));
            }
        }
        snap.generator = std::mem::take(&mut self.generator);
        snap.generator.active = self.active;
        snap.generator.cpu_busy_permille = cpu_busy_permille;
        snap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: usize, ms: u64, error: Option<ErrorKind>) -> Sample {
        Sample {
            name,
            response_time: Some(Duration::from_millis(ms + 1)),
            service_time: Some(Duration::from_millis(ms)),
            bytes_in: 100,
            bytes_out: 10,
            error,
        }
    }

    #[test]
    fn take_returns_the_interval_and_starts_afresh() {
        let mut r = Recorder::new(vec!["a".into(), "b".into(), "idle".into()]);
        r.record(sample(0, 5, None));
        r.record(sample(0, 7, Some(ErrorKind::Status(503))));
        r.record(sample(1, 9, Some(ErrorKind::Status(503))));
        r.record_start(Duration::from_micros(10));
        r.record_start(Duration::from_millis(5));
        r.inc_active();
        let snap = r.take(4, 250);
        assert_eq!(snap.index, 4);
        assert_eq!(snap.by_name.len(), 2, "names without traffic are left out");
        let a = &snap.by_name["a"];
        assert_eq!(a.requests, 2);
        assert_eq!(a.errors[&ErrorKind::Status(503)], 1);
        assert_eq!(a.bytes_in, 200);
        assert_eq!(a.service_time.len(), 2);
        assert!(a.response_time.quantile_us(1.0) >= 7_900);
        assert_eq!(snap.generator.scheduled, 2);
        assert_eq!(snap.generator.late_starts, 1);
        assert_eq!(snap.generator.active, 1);
        assert_eq!(snap.generator.cpu_busy_permille, 250);
        let next = r.take(5, 0);
        assert!(next.by_name.is_empty());
        assert_eq!(next.generator.scheduled, 0);
        assert_eq!(next.generator.active, 1, "the gauge carries over");
    }
}
