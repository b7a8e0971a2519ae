//! What the target server has answered: lock-free per-status counters on the
//! hot path and the [`TargetStats`] snapshot that `stats()` and `GET /stats`
//! return.

use std::collections::BTreeMap;
use std::ops::AddAssign;
use std::sync::atomic::{AtomicU64, Ordering};

use http::StatusCode;
use serde::{Deserialize, Serialize};

/// Responses the target server has sent, as counted when each response is
/// handed to hyper. `GET /stats` requests are not counted, so reading the
/// stats doesn't change them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetStats {
    /// All counted responses.
    pub total: u64,
    /// Responses with a status of 400 or more (injected errors, `/status/5xx`,
    /// `401` from `/me`, ...).
    pub errors: u64,
    /// Responses by status code; codes never sent are absent.
    pub by_status: BTreeMap<u16, u64>,
}

impl AddAssign<&TargetStats> for TargetStats {
    fn add_assign(&mut self, other: &TargetStats) {
        self.total += other.total;
        self.errors += other.errors;
        for (&status, &n) in &other.by_status {
            *self.by_status.entry(status).or_default() += n;
        }
    }
}

/// One counter per possible status code (`StatusCode` is always below 1000).
/// A response costs one relaxed `fetch_add`; totals are summed on read.
pub(super) struct Counters {
    by_status: Box<[AtomicU64]>,
}

impl Counters {
    pub(super) fn new() -> Self {
        Counters {
            by_status: (0..1000).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub(super) fn record(&self, status: StatusCode) {
        if let Some(counter) = self.by_status.get(usize::from(status.as_u16())) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A snapshot; counters updated while it is taken may or may not be in it.
    pub(super) fn snapshot(&self) -> TargetStats {
        let mut stats = TargetStats::default();
        for (status, counter) in self.by_status.iter().enumerate() {
            let n = counter.load(Ordering::Relaxed);
            if n == 0 {
                continue;
            }
            let Ok(status) = u16::try_from(status) else {
                continue;
            };
            stats.total += n;
            if status >= 400 {
                stats.errors += n;
            }
            stats.by_status.insert(status, n);
        }
        stats
    }
}
