//! The merger's completion, ordering, straggler and duplicate rules, and
//! totals across time.

use super::*;

fn snap(index: u32, requests: u64) -> IntervalSnapshot {
    let mut s = IntervalSnapshot::new(index);
    s.by_name.entry("r".into()).or_default().requests = requests;
    s
}

fn requests(out: &[Merged]) -> Vec<(u32, u64)> {
    out.iter()
        .map(|m| {
            let s = &m.snapshot;
            (s.index, s.by_name.get("r").map_or(0, |n| n.requests))
        })
        .collect()
}

#[test]
fn an_interval_is_released_once_every_source_sent_it_or_moved_past_it() {
    let mut m = IntervalMerger::new([0, 1]);
    assert!(m.add(&0, snap(0, 1)).is_empty());
    assert!(m.add(&0, snap(1, 2)).is_empty(), "source 1 has not sent 0");
    let first = m.add(&1, snap(0, 10));
    assert_eq!(requests(&first), [(0, 11)]);
    assert_eq!(first[0].sources, 2);
    assert_eq!(requests(&m.add(&1, snap(1, 20))), [(1, 22)]);
    // A source that skips an interval (it sent nothing then) does not hold
    // it back once it moves past it.
    assert!(m.add(&0, snap(2, 3)).is_empty());
    assert_eq!(requests(&m.add(&1, snap(3, 4))), [(2, 3)]);
    assert!(
        m.finish(&1).is_empty(),
        "interval 3 still waits for source 0"
    );
    assert_eq!(requests(&m.finish(&0)), [(3, 4)]);
}

#[test]
fn exact_merges_fold_stragglers_in_rather_than_lose_them() {
    let mut m = IntervalMerger::new([0, 1]);
    assert!(m.add(&0, snap(0, 1)).is_empty());
    assert_eq!(requests(&m.add(&1, snap(0, 2))), [(0, 3)]);
    // Late, after 0 was released: counted in the oldest open interval,
    // which still waits for source 0's own snapshot of it.
    assert!(m.add(&0, snap(0, 5)).is_empty());
    assert!(m.add(&1, snap(1, 1)).is_empty());
    assert_eq!(requests(&m.add(&0, snap(1, 1))), [(1, 7)]);
    assert!(m.finish(&0).is_empty());
    assert!(m.finish(&1).is_empty());
    assert!(m.drain().is_empty());
}

#[test]
fn live_merges_release_on_the_deadline_and_ignore_duplicates_and_late_copies() {
    let mut m = IntervalMerger::new(["a", "b"]).with_deadline(2);
    assert!(m.add(&"a", snap(0, 1)).is_empty());
    assert!(m.add(&"a", snap(0, 1)).is_empty(), "a duplicate");
    assert!(m.add(&"a", snap(1, 1)).is_empty());
    assert_eq!(m.open().count(), 2);
    // "b" is silent: interval 0 goes once interval 2 arrived.
    let late = m.add(&"a", snap(2, 1));
    assert_eq!(requests(&late), [(0, 1)]);
    assert_eq!(late[0].sources, 1, "one of two agents in it");
    assert!(
        m.add(&"b", snap(0, 7)).is_empty(),
        "too late for a live view"
    );
    assert_eq!(requests(&m.add(&"b", snap(1, 7))), [(1, 8)]);
    assert_eq!(m.next_index(), 2);
    assert!(m.add(&"stranger", snap(2, 100)).is_empty(), "not a source");
    assert_eq!(requests(&m.drain()), [(2, 1)]);
}

#[test]
fn totals_across_time_keep_names_and_the_generator_peak() {
    let mut totals = RunTotals::default();
    for (i, active) in [(0, 5), (1, 9), (2, 2)] {
        let mut s = snap(i, 10);
        s.by_name.entry("other".into()).or_default().requests = 1;
        s.generator.active = active;
        s.generator.scheduled = 10;
        totals.add(&s);
    }
    assert_eq!(totals.intervals, 3);
    assert_eq!(totals.by_name["r"].requests, 30);
    assert_eq!(totals.total().requests, 33);
    assert_eq!(totals.generator.scheduled, 30);
    assert_eq!(totals.generator.active, 9);
}

#[test]
fn before_its_sources_are_known_a_live_merger_waits_for_the_deadline_only() {
    let mut m = IntervalMerger::unknown_sources().with_deadline(2);
    assert!(m.add(&"a", snap(0, 1)).is_empty());
    assert!(
        m.add(&"b", snap(0, 2)).is_empty(),
        "nobody knows if c comes"
    );
    assert!(m.add(&"a", snap(1, 1)).is_empty());
    assert_eq!(requests(&m.add(&"a", snap(2, 1))), [(0, 3)]);
    // The plan names a and b: interval 1 waits for b only, and strangers
    // are ignored from now on.
    assert!(m.set_sources(["a", "b"]).is_empty());
    assert!(m.add(&"c", snap(1, 100)).is_empty());
    let done = m.add(&"b", snap(1, 5));
    assert_eq!(requests(&done), [(1, 6)]);
    assert_eq!(done[0].sources, 2);
}
