//! The receiving side of health beats: the last full [`NodeHealth`] of each
//! author, so that a [`NodeBeat`] (state, load, clock, ~40 bytes) becomes a
//! full health again before anything above the network layer sees it. A
//! beat whose revision is not held yet is kept, and the peer that relayed it
//! is asked for the full health (at most once per [`ASK_EVERY`] per author);
//! the answer plus the kept beat make the full health. Pure: the event loop
//! sends the asks.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use bfgg_protocol::mesh::{NodeBeat, NodeHealth};
use tokio::time::Instant;

/// Least time between two asks for one author's full health.
pub(super) const ASK_EVERY: Duration = Duration::from_secs(5);

/// Authors whose full health is held; past this, new authors are not (their
/// beats are asked about, answered, and not remembered until one leaves).
const MAX_AUTHORS: usize = 4096;

/// Last full health per author, and the beats waiting for one.
#[derive(Debug)]
pub(super) struct HealthBook<K> {
    full: HashMap<K, NodeHealth>,
    waiting: HashMap<K, Waiting>,
}

#[derive(Debug)]
struct Waiting {
    asked_at: Instant,
    beat: NodeBeat,
}

/// What to do with a beat.
#[derive(Debug, PartialEq)]
pub(super) enum OnBeat {
    /// Its author's full health, brought up to date.
    Health(Box<NodeHealth>),
    /// Unknown revision: ask the relay for the author's full health.
    Ask,
    /// Unknown revision, asked recently: the beat waits for the answer.
    Wait,
}

impl<K: Hash + Eq + Clone> HealthBook<K> {
    pub(super) fn new() -> HealthBook<K> {
        HealthBook {
            full: HashMap::new(),
            waiting: HashMap::new(),
        }
    }

    /// `author` gossiped its full health.
    pub(super) fn full(&mut self, author: K, health: &NodeHealth) {
        self.waiting.remove(&author);
        self.hold(author, health.clone());
    }

    /// `author` gossiped a beat.
    pub(super) fn beat(&mut self, author: K, beat: NodeBeat, now: Instant) -> OnBeat {
        if let Some(full) = self.full.get_mut(&author)
            && let Some(health) = full.with_beat(&beat)
        {
            *full = health.clone();
            return OnBeat::Health(Box::new(health));
        }
        match self.waiting.get_mut(&author) {
            Some(w) if now.duration_since(w.asked_at) < ASK_EVERY => {
                w.beat = beat;
                OnBeat::Wait
            }
            _ => {
                if self.waiting.len() >= MAX_AUTHORS {
                    self.waiting
                        .retain(|_, w| now.duration_since(w.asked_at) < ASK_EVERY);
                    if self.waiting.len() >= MAX_AUTHORS {
                        return OnBeat::Wait;
                    }
                }
                self.waiting.insert(
                    author,
                    Waiting {
                        asked_at: now,
                        beat,
                    },
                );
                OnBeat::Ask
            }
        }
    }

    /// A relay answered with `author`'s full health: held, and returned
    /// brought up to date by the waiting beat when it completes that
    /// revision (`None`: the relay's copy is of another revision; the next
    /// beat asks again, or the author's next full health settles it).
    pub(super) fn answer(&mut self, author: K, health: NodeHealth) -> Option<NodeHealth> {
        let waiting = self.waiting.remove(&author);
        let current = waiting.and_then(|w| health.with_beat(&w.beat));
        self.hold(author, current.clone().unwrap_or(health));
        current
    }

    /// Forgets `author` (it speaks another protocol, or left).
    pub(super) fn forget(&mut self, author: &K) {
        self.full.remove(author);
        self.waiting.remove(author);
    }

    fn hold(&mut self, author: K, health: NodeHealth) {
        if self.full.len() >= MAX_AUTHORS && !self.full.contains_key(&author) {
            return;
        }
        self.full.insert(author, health);
    }
}

#[cfg(test)]
mod tests {
    use bfgg_protocol::RunId;
    use bfgg_protocol::mesh::NodeState;

    use super::*;

    fn health(revision: u32) -> NodeHealth {
        NodeHealth {
            cpu_pct: 1.0,
            mem_bytes: 2,
            revision,
            ..crate::fixtures::health("a")
        }
    }

    fn later(h: &NodeHealth, sent_at_ms: u64) -> NodeHealth {
        NodeHealth {
            state: NodeState::Running(RunId("r".into())),
            cpu_pct: 50.0,
            sent_at_ms,
            ..h.clone()
        }
    }

    #[test]
    fn beats_of_a_held_revision_become_full_health() {
        let mut book = HealthBook::new();
        let t = Instant::now();
        let h = health(3);
        book.full(1, &h);
        let next = later(&h, 2_000);
        assert_eq!(
            book.beat(1, next.beat(), t),
            OnBeat::Health(Box::new(next.clone()))
        );
        let again = later(&next, 3_000);
        assert_eq!(
            book.beat(1, again.beat(), t),
            OnBeat::Health(Box::new(again))
        );
    }

    #[test]
    fn an_unknown_revision_is_asked_once_per_interval_and_the_answer_completes_the_latest_beat() {
        let mut book = HealthBook::new();
        let t = Instant::now();
        let h = health(4);
        let first = later(&h, 2_000);
        let second = later(&h, 3_000);
        assert_eq!(book.beat(7, first.beat(), t), OnBeat::Ask);
        assert_eq!(
            book.beat(7, second.beat(), t + Duration::from_secs(1)),
            OnBeat::Wait
        );
        assert_eq!(
            book.answer(7, h.clone()),
            Some(second.clone()),
            "latest beat wins"
        );
        let third = later(&h, 4_000);
        assert_eq!(
            book.beat(7, third.beat(), t),
            OnBeat::Health(Box::new(third))
        );
        // No answer: asked again after ASK_EVERY.
        let other = health(9);
        assert_eq!(book.beat(8, other.beat(), t), OnBeat::Ask);
        assert_eq!(book.beat(8, other.beat(), t + ASK_EVERY / 2), OnBeat::Wait);
        assert_eq!(book.beat(8, other.beat(), t + ASK_EVERY), OnBeat::Ask);
    }

    #[test]
    fn an_answer_of_another_revision_is_held_but_completes_nothing() {
        let mut book = HealthBook::new();
        let t = Instant::now();
        let newer = later(&health(6), 2_000);
        assert_eq!(book.beat(1, newer.beat(), t), OnBeat::Ask);
        assert_eq!(book.answer(1, health(5)), None);
        // Still unknown: the next beat (after the interval) asks again; the
        // author's full health settles it.
        assert_eq!(book.beat(1, newer.beat(), t + ASK_EVERY), OnBeat::Ask);
        book.full(1, &health(6));
        let next = later(&health(6), 3_000);
        assert_eq!(book.beat(1, next.beat(), t), OnBeat::Health(Box::new(next)));
        book.forget(&1);
        assert_eq!(
            book.beat(1, health(6).beat(), t + ASK_EVERY * 3),
            OnBeat::Ask
        );
    }
}
