//! The one interval merger: snapshots of one interval from several sources
//! (worker threads, agents) merged with `+=` and released in interval order
//! once complete. Local runs merge their workers with it, a coordinator
//! both the agents' live intervals (gossiped merged, for observers) and
//! their logs (the results), and the cockpit the intervals the agents send
//! it (the client shows the coordinator's merged intervals as they come).
//!
//! Merging *across sources* (one interval, several sources) is
//! `IntervalSnapshot += ` and happens here; merging *across time* (several
//! intervals into run totals) is [`RunTotals`]. Neither drops a field.

use std::collections::{BTreeMap, BTreeSet};

use bfgg_protocol::{GeneratorStats, IntervalSnapshot, NameStats};

/// Merges per-source snapshots into complete intervals, released in order.
///
/// Interval `k` is complete once every source that has not finished has sent
/// `k` or an interval after it; or, with a deadline, once an interval
/// `deadline` newer than `k` has arrived from anyone (live views must not
/// wait forever for a silent agent). Without a deadline (exact merges) a
/// snapshot for an interval already released (a straggler) is folded into
/// the oldest open interval rather than lost; with one (live views) it is
/// dropped. A second snapshot of one interval from one source is a
/// duplicate (gossip may deliver twice) and is ignored.
#[derive(Debug, Clone)]
pub struct IntervalMerger<S: Ord + Clone> {
    sources: BTreeMap<S, Source>,
    /// False until the sources are known ([`IntervalMerger::unknown_sources`]):
    /// then only the deadline completes an interval.
    known: bool,
    open: BTreeMap<u32, Open<S>>,
    next: u32,
    newest: Option<u32>,
    deadline: Option<u32>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Source {
    /// The newest interval it sent.
    seen: Option<u32>,
    /// It will send nothing more.
    done: bool,
}

/// A complete interval, merged.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// The merge.
    pub snapshot: IntervalSnapshot,
    /// How many sources' snapshots of the interval it holds (stragglers
    /// folded in not counted).
    pub sources: u32,
}

/// An interval still waiting for sources.
#[derive(Debug, Clone)]
struct Open<S> {
    merged: IntervalSnapshot,
    from: BTreeSet<S>,
}

impl<S> Open<S> {
    fn done(self) -> Merged {
        Merged {
            sources: self.from.len() as u32,
            snapshot: self.merged,
        }
    }
}

impl<S: Ord + Clone> IntervalMerger<S> {
    /// A merger of `sources`; snapshots from anyone else are ignored.
    pub fn new(sources: impl IntoIterator<Item = S>) -> Self {
        Self {
            sources: sources
                .into_iter()
                .map(|s| (s, Source::default()))
                .collect(),
            known: true,
            open: BTreeMap::new(),
            next: 0,
            newest: None,
            deadline: None,
        }
    }

    /// A merger whose sources are not known yet (a live view that hears
    /// intervals before the run's plan): it takes snapshots from anyone and
    /// completes intervals by the deadline only, until
    /// [`IntervalMerger::set_sources`].
    pub fn unknown_sources() -> Self {
        Self {
            known: false,
            ..Self::new(std::iter::empty())
        }
    }

    /// The sources are now known: from here on, snapshots from anyone else
    /// are ignored and an interval completes once each of them sent it.
    /// Returns the intervals that completes.
    pub fn set_sources(&mut self, sources: impl IntoIterator<Item = S>) -> Vec<Merged> {
        let mut known = BTreeMap::new();
        for s in sources {
            let state = self.sources.get(&s).copied().unwrap_or_default();
            known.insert(s, state);
        }
        self.sources = known;
        self.known = true;
        self.release()
    }

    /// Also release interval `k` once interval `k + intervals` has arrived.
    pub fn with_deadline(mut self, intervals: u32) -> Self {
        self.deadline = Some(intervals);
        self
    }

    /// Adds `snap` from `source`; returns the intervals it completed.
    pub fn add(&mut self, source: &S, mut snap: IntervalSnapshot) -> Vec<Merged> {
        if !self.known {
            self.sources.entry(source.clone()).or_default();
        }
        let Some(state) = self.sources.get_mut(source) else {
            return Vec::new();
        };
        let index = snap.index;
        state.seen = Some(state.seen.map_or(index, |s| s.max(index)));
        self.newest = Some(self.newest.map_or(index, |n| n.max(index)));
        if index < self.next {
            if self.deadline.is_some() {
                // A live view: released intervals are shown already, and a
                // late gossip copy may be a duplicate. Exact results come
                // from the logs.
                tracing::debug!(index, "late live snapshot dropped");
                return Vec::new();
            }
            tracing::debug!(index, "late snapshot folded into the next interval");
            snap.index = self.next;
        }
        let open = self.open.entry(snap.index).or_insert_with(|| Open {
            merged: IntervalSnapshot::new(snap.index),
            from: BTreeSet::new(),
        });
        // A straggler adds its counts without claiming the interval it lands
        // in: its source's own snapshot of that interval is still awaited.
        if index != snap.index || open.from.insert(source.clone()) {
            open.merged += &snap;
        } else {
            tracing::debug!(index, "duplicate snapshot ignored");
        }
        self.release()
    }

    /// `source` will send nothing more; returns the intervals that completes.
    pub fn finish(&mut self, source: &S) -> Vec<Merged> {
        if let Some(state) = self.sources.get_mut(source) {
            state.done = true;
        }
        self.release()
    }

    /// Releases everything still open (the run is over), in order.
    pub fn drain(&mut self) -> Vec<Merged> {
        let out: Vec<Merged> = std::mem::take(&mut self.open)
            .into_values()
            .map(Open::done)
            .collect();
        if let Some(last) = out.last() {
            self.next = last.snapshot.index + 1;
        }
        out
    }

    /// Intervals not yet complete, oldest first, with the sources merged in
    /// so far (for a live view of what is arriving).
    pub fn open(&self) -> impl Iterator<Item = (&IntervalSnapshot, &BTreeSet<S>)> {
        self.open.values().map(|o| (&o.merged, &o.from))
    }

    /// The next interval to be released.
    pub fn next_index(&self) -> u32 {
        self.next
    }

    fn complete(&self, k: u32, from: &BTreeSet<S>) -> bool {
        let everyone = self.known
            && self
                .sources
                .iter()
                .all(|(id, s)| s.done || from.contains(id) || s.seen.is_some_and(|seen| seen > k));
        let overdue = match (self.deadline, self.newest) {
            (Some(d), Some(newest)) => newest >= k.saturating_add(d),
            _ => false,
        };
        everyone || overdue
    }

    fn release(&mut self) -> Vec<Merged> {
        let mut out = Vec::new();
        while let Some((&k, open)) = self.open.first_key_value() {
            if !self.complete(k, &open.from) {
                break;
            }
            if let Some((_, open)) = self.open.pop_first() {
                self.next = k + 1;
                out.push(open.done());
            }
        }
        out
    }
}

/// Merged intervals accumulated across time: the run's totals per request
/// name and its generator stats (see [`GeneratorStats::then`]).
#[derive(Debug, Default, Clone)]
pub struct RunTotals {
    /// Per request name.
    pub by_name: BTreeMap<String, NameStats>,
    /// The generator, across time.
    pub generator: GeneratorStats,
    /// Intervals added.
    pub intervals: u32,
}

impl RunTotals {
    /// Adds the next interval.
    pub fn add(&mut self, snap: &IntervalSnapshot) {
        for (name, stats) in &snap.by_name {
            match self.by_name.get_mut(name) {
                Some(mine) => *mine += stats,
                None => {
                    self.by_name.insert(name.clone(), stats.clone());
                }
            }
        }
        self.generator.then(&snap.generator);
        self.intervals += 1;
    }

    /// Every name together.
    pub fn total(&self) -> NameStats {
        let mut total = NameStats::default();
        for s in self.by_name.values() {
            total += s;
        }
        total
    }
}

#[cfg(test)]
mod tests;
