//! Which of a node's health messages go out whole and which as beats: the
//! full [`NodeHealth`] (~250 bytes: ids, addresses, engines) when its
//! slow-changing facts change and every [`FULL_HEALTH_EVERY`] periods, a
//! [`NodeBeat`] (~40 bytes: state, load, clock) the rest of the time. The
//! network layer of every receiver expands beats back into full health
//! (`net::event_loop`), so nothing above it sees the difference.

use bfgg_protocol::mesh::{FULL_HEALTH_EVERY, Gossip, NodeHealth};

/// The publishing side's memory of what it last sent whole.
#[derive(Debug)]
pub(crate) struct HealthRevisions {
    /// The facts of the last full health sent.
    last_full: Option<NodeHealth>,
    /// Health messages sent since (beats).
    since_full: u32,
    /// The current revision. It starts from the process's start time, so a
    /// restarted node (whose addresses may have changed) never reuses the
    /// revision a receiver may still hold from its last life.
    revision: u32,
}

impl HealthRevisions {
    /// Revisions counting from `start` (e.g. the start time in ms).
    pub(crate) fn new(start: u32) -> HealthRevisions {
        HealthRevisions {
            last_full: None,
            since_full: 0,
            revision: start,
        }
    }

    /// Stamps `health` with its revision and says what to gossip: the full
    /// health or a beat.
    pub(crate) fn next(&mut self, mut health: NodeHealth) -> (NodeHealth, Gossip) {
        let changed = self
            .last_full
            .as_ref()
            .is_none_or(|last| !last.same_facts(&health));
        if changed && self.last_full.is_some() {
            self.revision = self.revision.wrapping_add(1);
        }
        health.revision = self.revision;
        if changed || self.since_full + 1 >= FULL_HEALTH_EVERY {
            self.since_full = 0;
            self.last_full = Some(health.clone());
            let msg = Gossip::Health(health.clone());
            (health, msg)
        } else {
            self.since_full += 1;
            let msg = Gossip::Beat(health.beat());
            (health, msg)
        }
    }
}

#[cfg(test)]
mod tests {
    use bfgg_protocol::RunId;
    use bfgg_protocol::mesh::NodeState;

    use super::*;

    fn sample(id: &str) -> NodeHealth {
        NodeHealth {
            revision: 0,
            ..crate::fixtures::health(id)
        }
    }

    fn kinds(revisions: &mut HealthRevisions, healths: &[NodeHealth]) -> Vec<(char, u32)> {
        healths
            .iter()
            .map(|h| {
                let (stamped, msg) = revisions.next(h.clone());
                let kind = match msg {
                    Gossip::Health(full) => {
                        assert_eq!(full, stamped);
                        'H'
                    }
                    Gossip::Beat(beat) => {
                        assert_eq!(beat, stamped.beat());
                        'b'
                    }
                    _ => unreachable!(),
                };
                (kind, stamped.revision)
            })
            .collect()
    }

    #[test]
    fn full_health_first_on_change_and_every_n_periods_beats_between() {
        let mut r = HealthRevisions::new(7);
        let h = sample("a");
        let mut busy = h.clone();
        busy.state = NodeState::Running(RunId("r".into()));
        busy.cpu_pct = 90.0;
        let mut moved = busy.clone();
        moved.listen_addrs = vec!["/ip4/127.0.0.1/tcp/9".into()];
        let got = kinds(&mut r, &[h.clone(), h.clone(), busy.clone(), moved, busy]);
        assert_eq!(
            got,
            vec![('H', 7), ('b', 7), ('b', 7), ('H', 8), ('H', 9)],
            "state and load ride on beats; an address change is a new revision"
        );
        let mut r = HealthRevisions::new(1);
        let all = kinds(&mut r, &vec![h; 2 * FULL_HEALTH_EVERY as usize + 1]);
        let fulls: Vec<usize> = (0..all.len()).filter(|&i| all[i].0 == 'H').collect();
        let n = FULL_HEALTH_EVERY as usize;
        assert_eq!(fulls, vec![0, n, 2 * n]);
        assert!(
            all.iter().all(|&(_, rev)| rev == 1),
            "same facts, same revision"
        );
    }

    #[test]
    fn a_receiver_with_the_full_health_rebuilds_every_beat() {
        let mut r = HealthRevisions::new(1);
        let mut held: Option<NodeHealth> = None;
        for i in 0..(3 * FULL_HEALTH_EVERY) {
            let mut h = sample("a");
            h.cpu_pct = i as f32;
            h.sent_at_ms = u64::from(i);
            let (sent, msg) = r.next(h);
            let rebuilt = match msg {
                Gossip::Health(full) => full,
                Gossip::Beat(beat) => held
                    .as_ref()
                    .and_then(|f| f.with_beat(&beat))
                    .expect("revision held"),
                _ => unreachable!(),
            };
            assert_eq!(rebuilt, sent);
            held = Some(rebuilt);
        }
    }
}
