//! The open model: arrival cursors (each due arrival of a share handed out
//! once, in order, across slots; splits and take-overs covering the schedule
//! exactly; missed arrivals), the slot cap, and slots against a loopback
//! target (late arrivals catch up at the end of the schedule, a stop starts
//! nothing more, an adopted share gets slots of its own).

use std::sync::Arc;

use bfgg_protocol::IntervalSnapshot;

use super::super::fixtures::{self, TIMEOUT};
use super::*;
use crate::scenario::{LoadModel, Profile, Scenario, Stage};

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn constant(rate: f64, duration: f64) -> ArrivalSchedule {
    ArrivalSchedule::new(&Profile::constant(rate), secs(duration))
}

/// 10/s rising to 100/s over 1 s, then held for 1 s: 155 arrivals.
fn ramp() -> ArrivalSchedule {
    let profile = Profile {
        start: 10.0,
        stages: vec![
            Stage {
                duration: secs(1.0),
                target: 100.0,
            },
            Stage {
                duration: secs(1.0),
                target: 100.0,
            },
        ],
        step: false,
    };
    ArrivalSchedule::new(&profile, secs(2.0))
}

fn share(segment: Segment, first: u64, cap: usize) -> Share {
    Share {
        segment,
        first,
        id_base: 0,
        cap,
    }
}

/// Every arrival `arrivals` hands out, with slots taking turns on it.
fn claim_all(arrivals: &Rc<Arrivals>, slots: usize) -> Vec<(u64, Duration)> {
    let slots: Vec<Rc<Arrivals>> = (0..slots).map(|_| arrivals.clone()).collect();
    let mut out = Vec::new();
    loop {
        for slot in &slots {
            match slot.claim() {
                Some(c) => out.push(c),
                None => return out,
            }
        }
    }
}

#[test]
fn a_cursor_hands_out_each_due_arrival_of_its_share_once_in_order_across_slots() {
    let mut schedule = constant(100.0, 1.0);
    let segment = Segment::WHOLE.split(1, 3);
    let arrivals = Rc::new(Arrivals::new(&schedule, share(segment, 0, 8)));
    let claimed = claim_all(&arrivals, 3);
    let expected: Vec<(u64, Duration)> = (0..schedule.total())
        .filter(|i| i % 3 == 1)
        .map(|i| (i, schedule.time_of(i).expect("due before the end")))
        .collect();
    assert_eq!(expected.len(), 33);
    assert_eq!(claimed, expected);
    // Past the end every slot gets nothing, and the cursor stays put.
    for _ in 0..3 {
        assert_eq!(arrivals.claim(), None);
    }
    assert_eq!(arrivals.cursor.borrow().next, 33);
    assert_eq!(arrivals.missed(schedule.total()), 33, "none started");
}

#[test]
fn the_cursors_of_a_split_cover_the_schedule_exactly_once() {
    let mut schedule = ramp();
    assert_eq!(schedule.total(), 155);
    let mut all = Vec::new();
    for index in 0..4 {
        let segment = Segment::WHOLE.split(1, 2).split(index, 4);
        let arrivals = Rc::new(Arrivals::new(&schedule, share(segment, 0, 1)));
        let claimed = claim_all(&arrivals, 2);
        assert!(
            claimed.windows(2).all(|w| w[0].1 <= w[1].1),
            "share {index}: due times in order"
        );
        all.extend(claimed);
    }
    // The four shares of the odd half: every odd arrival once, on time.
    all.sort_by_key(|&(global, _)| global);
    let odd: Vec<(u64, Duration)> = (0..155)
        .filter(|i| i % 2 == 1)
        .map(|i| (i, schedule.time_of(i).expect("due")))
        .collect();
    assert_eq!(all, odd);
}

#[test]
fn a_share_taken_over_mid_run_starts_at_its_first_arrival_due_from_then() {
    for mut schedule in [constant(100.0, 2.0), ramp()] {
        let segment = Segment::WHOLE.split(2, 4);
        for from in [0.0, 0.5, 0.503, 1.2345, 1.987, 2.0, 5.0] {
            let from = secs(from);
            let first = first_from(&schedule, segment, from);
            let arrivals = Rc::new(Arrivals::new(&schedule, share(segment, first, 1)));
            match arrivals.claim() {
                Some((global, at)) => {
                    assert_eq!(global, segment.offset + first * segment.stride);
                    assert!(at >= from, "{at:?} is before {from:?}");
                }
                None => assert!(from >= secs(1.9), "nothing left from {from:?}"),
            }
            if first > 0 {
                let previous = segment.offset + (first - 1) * segment.stride;
                let at = schedule.time_of(previous).expect("due");
                assert!(
                    at < from,
                    "arrival {previous} at {at:?} was due from {from:?}"
                );
            }
            // Missed counts only the share's arrivals from its first on.
            let all = segment.count_below(schedule.total());
            assert_eq!(arrivals.missed(schedule.total()), all.saturating_sub(first));
        }
    }
}

#[test]
fn missed_counts_the_arrivals_due_before_the_end_that_never_started() {
    let schedule = constant(100.0, 2.0);
    let two = secs(2.0);
    assert_eq!(due_before_end(&schedule, None, two), 200, "no stop");
    assert_eq!(
        due_before_end(&schedule, Some(two), two),
        200,
        "end of load"
    );
    assert_eq!(due_before_end(&schedule, Some(secs(5.0)), two), 200);
    assert_eq!(due_before_end(&schedule, Some(secs(0.5)), two), 50);
    assert_eq!(
        due_before_end(&schedule, Some(secs(0.505)), two),
        51,
        "arrival 50 is due at 0.5 s, before a stop at 0.505 s"
    );
    assert_eq!(due_before_end(&schedule, Some(Duration::ZERO), two), 0);

    let segment = Segment::WHOLE.split(0, 2);
    let arrivals = Arrivals::new(&schedule, share(segment, 0, 4));
    for _ in 0..10 {
        arrivals.claim();
    }
    for _ in 0..7 {
        arrivals.started();
    }
    assert_eq!(
        arrivals.missed(50),
        25 - 7,
        "claimed but not started is missed"
    );
    assert_eq!(arrivals.missed(0), 0, "never below zero");
    let adopted = Arrivals::new(&schedule, share(segment, 5, 4));
    adopted.started();
    assert_eq!(adopted.missed(50), 25 - 5 - 1, "not before its first");
}

#[test]
fn a_slot_spawns_another_only_when_none_waits_and_below_the_cap() {
    let schedule = constant(10.0, 1.0);
    let arrivals = Arrivals::new(&schedule, share(Segment::WHOLE, 0, 2));
    assert!(arrivals.wants_another_slot());
    assert_eq!(
        arrivals.add_slot(),
        1,
        "ids count from the share's base + 1"
    );
    assert!(arrivals.wants_another_slot());
    arrivals.wait_begins();
    assert!(!arrivals.wants_another_slot(), "one slot already waits");
    arrivals.wait_ends();
    assert!(arrivals.wants_another_slot());
    assert_eq!(arrivals.add_slot(), 2);
    assert!(!arrivals.wants_another_slot(), "at the cap");
}

#[test]
fn slots_of_different_shares_never_share_an_id() {
    let schedule = constant(10.0, 1.0);
    let ids = |index: u64| {
        let arrivals = Arrivals::new(
            &schedule,
            Share {
                segment: Segment::WHOLE,
                first: 0,
                id_base: index << 32,
                cap: 1000,
            },
        );
        // Taken one after the other, as slots spawned before any of them
        // runs: every id distinct.
        (0..1000).map(|_| arrivals.add_slot()).collect::<Vec<u64>>()
    };
    let (own, adopted) = (ids(0), ids(1));
    assert_eq!(own.first(), Some(&1));
    assert_eq!(adopted.first(), Some(&((1 << 32) + 1)));
    assert!(own.iter().all(|id| !adopted.contains(id)));
    let distinct: std::collections::BTreeSet<&u64> = own.iter().collect();
    assert_eq!(distinct.len(), own.len(), "no two slots share an id");
}

/// What [`drive`] saw.
struct Driven {
    missed: u64,
    recorded: IntervalSnapshot,
    elapsed: Duration,
}

/// Runs the open model of `scenario` on a test worker running `segment`
/// with at most `cap` slots, adopting `extra` shares as they come, and moves
/// the phase to `then` at the end of load.
async fn drive(
    scenario: Arc<Scenario>,
    segment: Segment,
    cap: usize,
    then: Phase,
    moved: Option<watch::Receiver<Vec<MovedShare>>>,
) -> Driven {
    let LoadModel::Open { rate, .. } = &scenario.load.model else {
        panic!("an open-model scenario");
    };
    let schedule = ArrivalSchedule::new(rate, scenario.load.duration);
    let load_end = scenario.load.duration;
    let tw = fixtures::worker(scenario.clone(), segment);
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async move {
            let t0 = tw.w.t0;
            let phase = tw.phase;
            let controller = tokio::task::spawn_local(async move {
                tokio::time::sleep_until((t0 + load_end).into()).await;
                let _ = phase.send(then);
                // Keep the sender until the run is over: dropping it would
                // read as a change of phase.
                std::future::pending::<()>().await;
            });
            let missed = tokio::time::timeout(TIMEOUT, run(&tw.w, schedule, cap, moved))
                .await
                .expect("the open model ends");
            controller.abort();
            let recorded = tw.w.recorder.borrow_mut().take(0, 0);
            Driven {
                missed,
                recorded,
                elapsed: t0.elapsed(),
            }
        })
        .await
}

fn requests(s: &IntervalSnapshot) -> u64 {
    s.by_name.values().map(|n| n.requests).sum()
}

fn open_scenario(
    addr: std::net::SocketAddr,
    rate: u32,
    duration: &str,
    path: &str,
) -> Arc<Scenario> {
    fixtures::scenario(
        addr,
        &format!(
            "[load]\nmodel = \"open\"\nrate = {rate}\nduration = \"{duration}\"\n\
             [[request]]\npath = \"{path}\"\n"
        ),
    )
}

#[tokio::test]
async fn late_arrivals_still_start_at_the_end_of_the_schedule_within_the_cap() {
    let target = fixtures::target().await;
    // 40 arrivals in 1 s, 2 slots of 100 ms requests: 20 a second at most.
    let scenario = open_scenario(target.local_addr(), 40, "1s", "/delay/100");
    let end = Phase::Draining {
        load_end: secs(1.0),
        end_of_schedule: true,
    };
    let d = drive(scenario, Segment::WHOLE, 2, end, None).await;
    assert_eq!(d.missed, 0);
    assert_eq!(d.recorded.generator.scheduled, 40);
    assert_eq!(requests(&d.recorded), 40);
    assert!(d.recorded.generator.late_starts > 0, "behind, and counted");
    assert!(
        d.elapsed >= secs(1.95),
        "two slots at most: 20 requests of 100 ms each, took {:?}",
        d.elapsed
    );
    assert_eq!(target.stats().total, 40);
}

#[tokio::test]
async fn a_stop_starts_nothing_more_and_counts_the_rest_as_missed() {
    let target = fixtures::target().await;
    // 40 arrivals a second, one slot of 100 ms requests: far behind at 1 s.
    let scenario = open_scenario(target.local_addr(), 40, "1s", "/delay/100");
    let stop = Phase::Draining {
        load_end: secs(1.0),
        end_of_schedule: false,
    };
    let d = drive(scenario, Segment::WHOLE, 1, stop, None).await;
    let started = d.recorded.generator.scheduled;
    assert!(started < 40 && d.missed > 0, "{started} started");
    assert_eq!(started + d.missed, 40, "every arrival due before the stop");
    assert_eq!(requests(&d.recorded), started, "those started finish");
}

#[tokio::test]
async fn a_share_taken_over_mid_run_gets_slots_of_its_own() {
    let target = fixtures::target().await;
    let scenario = open_scenario(target.local_addr(), 40, "1s", "/");
    // This worker runs the even arrivals; at 0.5 s it takes over the odd
    // ones from then on: 20 + 10 of the 40.
    let (moved_tx, moved) = watch::channel(Vec::new());
    let t0 = Instant::now();
    let take_over = tokio::spawn(async move {
        tokio::time::sleep_until((t0 + secs(0.5)).into()).await;
        moved_tx.send_modify(|shares| {
            shares.push(MovedShare {
                segment: Segment::WHOLE.split(1, 2),
                from: secs(0.5),
            })
        });
        moved_tx
    });
    let end = Phase::Draining {
        load_end: secs(1.0),
        end_of_schedule: true,
    };
    let even = Segment::WHOLE.split(0, 2);
    let d = drive(scenario, even, 4, end, Some(moved)).await;
    drop(take_over.await);
    assert_eq!(d.missed, 0);
    assert_eq!(d.recorded.generator.scheduled, 30);
    assert_eq!(requests(&d.recorded), 30);
    assert_eq!(target.stats().total, 30);
}
