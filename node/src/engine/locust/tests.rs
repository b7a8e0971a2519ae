//! This agent's share of the schedule as the Locust shape gets it.

use super::*;
use crate::scenario::{Profile, Stage};
use std::time::{SystemTime, UNIX_EPOCH};

fn share(users: Profile, spawn_rate: f64, own: Segment) -> Share {
    Share {
        schedule: UserSchedule::new(&users, spawn_rate),
        spawn_rate,
        shares: vec![MovedShare {
            segment: own,
            from: Duration::ZERO,
        }],
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[test]
fn two_agents_split_a_step_load_exactly() {
    let steps = Profile {
        start: 0.0,
        stages: vec![
            Stage {
                duration: secs(5.0),
                target: 3.0,
            },
            Stage {
                duration: secs(5.0),
                target: 8.0,
            },
        ],
        step: true,
    };
    let mut a = share(steps.clone(), f64::INFINITY, Segment::WHOLE.split(0, 2));
    let mut b = share(steps, f64::INFINITY, Segment::WHOLE.split(1, 2));
    for (t, total) in [(1.0, 3), (4.9, 3), (5.1, 8), (9.0, 8)] {
        let (ua, _) = a.at(secs(t));
        let (ub, _) = b.at(secs(t));
        assert_eq!(ua + ub, total, "at {t} s");
        assert!(ua.abs_diff(ub) <= 1, "at {t} s: {ua} and {ub}");
    }
}

#[test]
fn the_spawn_rate_is_the_shares_and_grows_with_a_moved_share() {
    let mut a = share(Profile::constant(10.0), 4.0, Segment::WHOLE.split(0, 2));
    let (_, rate) = a.at(secs(0.5));
    assert_eq!(rate, 2.0);
    a.shares.push(MovedShare {
        segment: Segment::WHOLE.split(1, 2),
        from: secs(10.0),
    });
    let (users, rate) = a.at(secs(9.0));
    assert_eq!(
        (users, rate),
        (5, 2.0),
        "the moved share counts from its time"
    );
    let (users, rate) = a.at(secs(11.0));
    assert_eq!((users, rate), (10, 4.0));
}

#[test]
fn unix_time_of_an_instant_is_consistent_with_the_clock() {
    let now_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let later = unix_us(Instant::now() + Duration::from_secs(2));
    let earlier = unix_us(Instant::now() - Duration::from_secs(2));
    assert!(
        later.abs_diff(now_us + 2_000_000) < 50_000,
        "{later} vs {now_us}"
    );
    assert!(earlier.abs_diff(now_us - 2_000_000) < 50_000);
}

#[test]
fn while_spawning_the_share_is_where_the_schedule_will_be_a_second_later() {
    // 50 users at 50/s: plain `locust -u 50 -r 50` has them all after 1 s;
    // so does the share Locust is given at its first tick.
    let mut a = share(Profile::constant(50.0), 50.0, Segment::WHOLE);
    assert_eq!(a.at(secs(0.1)), (50, 50.0));
    assert_eq!(a.at(secs(2.0)), (50, 50.0));
    // A slow ramp (1 user/s): one second ahead, at the share's rate. Users
    // 0-4 of the whole run start at 0, 1, 2, 3 and 4 s.
    let mut b = share(Profile::constant(10.0), 1.0, Segment::WHOLE.split(0, 2));
    let (users, rate) = b.at(secs(3.0));
    assert_eq!(rate, 0.5);
    assert_eq!(users, Segment::WHOLE.split(0, 2).count_below(5));
}
