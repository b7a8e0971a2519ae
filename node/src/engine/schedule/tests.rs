//! Schedule maths: exact shares, arrival times along ramps, spawn-rate limits.

use super::*;
use crate::scenario::Stage;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn all_times(s: &mut ArrivalSchedule) -> Vec<Duration> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(t) = s.time_of(i) {
        out.push(t);
        i += 1;
        assert!(i < 10_000_000, "runaway schedule");
    }
    out
}

#[test]
fn constant_rate_is_evenly_spaced() {
    let mut s = ArrivalSchedule::new(&Profile::constant(100.0), secs(2.0));
    let times = all_times(&mut s);
    assert_eq!(times.len(), 200);
    assert_eq!(s.total(), 200);
    assert_eq!(times[0], Duration::ZERO);
    assert!((times[1].as_secs_f64() - 0.01).abs() < 1e-9);
    assert!((times[199].as_secs_f64() - 1.99).abs() < 1e-9);
}

#[test]
fn linear_ramp_follows_the_integral() {
    // 0 -> 100/s over 10 s: N(t) = 5 t^2, 500 arrivals in all.
    let p = Profile {
        start: 0.0,
        stages: vec![Stage {
            duration: secs(10.0),
            target: 100.0,
        }],
        step: false,
    };
    let mut s = ArrivalSchedule::new(&p, secs(10.0));
    let times = all_times(&mut s);
    assert_eq!(times.len(), 500);
    // Arrival 125 is due when 5 t^2 = 125: t = 5 s.
    assert!(
        (times[125].as_secs_f64() - 5.0).abs() < 1e-6,
        "{:?}",
        times[125]
    );
    // Counts per second follow the ramp: second k holds 5(2k+1) arrivals.
    for k in 0..10 {
        let n = times
            .iter()
            .filter(|t| t.as_secs_f64() >= k as f64 && t.as_secs_f64() < k as f64 + 1.0)
            .count();
        assert_eq!(n, 5 * (2 * k + 1), "second {k}");
    }
    assert!(times.windows(2).all(|w| w[0] < w[1]), "monotone");
}

#[test]
fn stages_then_hold_until_the_end() {
    let p = Profile {
        start: 10.0,
        stages: vec![
            Stage {
                duration: secs(1.0),
                target: 10.0,
            },
            Stage {
                duration: secs(1.0),
                target: 30.0,
            },
        ],
        step: false,
    };
    // 10 in the first second, 20 while ramping 10 -> 30, then 30/s for 2 s.
    let mut s = ArrivalSchedule::new(&p, secs(4.0));
    assert_eq!(all_times(&mut s).len(), 10 + 20 + 60);
}

#[test]
fn ramp_down_to_zero_ends_the_arrivals() {
    let p = Profile {
        start: 100.0,
        stages: vec![Stage {
            duration: secs(2.0),
            target: 0.0,
        }],
        step: false,
    };
    let mut s = ArrivalSchedule::new(&p, secs(5.0));
    assert_eq!(all_times(&mut s).len(), 100);
}

#[test]
fn step_profile_holds_rates() {
    let p = Profile {
        start: 0.0,
        stages: vec![
            Stage {
                duration: secs(1.0),
                target: 10.0,
            },
            Stage {
                duration: secs(1.0),
                target: 50.0,
            },
        ],
        step: true,
    };
    let mut s = ArrivalSchedule::new(&p, secs(2.0));
    assert_eq!(all_times(&mut s).len(), 60);
}

#[test]
fn segments_split_exactly() {
    let whole = ArrivalSchedule::new(&Profile::constant(997.0), secs(3.0)).total();
    for nodes in 1..5u64 {
        for workers in 1..4u64 {
            let mut sum = 0;
            let mut seen = std::collections::HashSet::new();
            for n in 0..nodes {
                for w in 0..workers {
                    let seg = Segment::WHOLE.split(n, nodes).split(w, workers);
                    sum += seg.count_below(whole);
                    let mut i = seg.offset;
                    while i < whole {
                        assert!(seen.insert(i), "index {i} taken twice");
                        i += seg.stride;
                    }
                }
            }
            assert_eq!(sum, whole, "{nodes} nodes x {workers} workers");
            assert_eq!(seen.len() as u64, whole);
        }
    }
}

#[test]
fn users_ramp_at_the_spawn_rate() {
    let mut s = UserSchedule::new(&Profile::constant(50.0), 10.0);
    assert_eq!(s.users_at(secs(0.0)), 1);
    assert_eq!(s.users_at(secs(1.0)), 11);
    assert_eq!(s.users_at(secs(2.5)), 26);
    assert_eq!(s.users_at(secs(10.0)), 50);
    assert_eq!(s.users_at(secs(100.0)), 50);
}

/// User `i` starts at `i / spawn_rate`, `i` from 0: the first at once (one
/// user at 1/s once started a second late, leaving second 0 empty).
#[test]
fn user_i_starts_at_i_over_the_spawn_rate() {
    for (users, rate) in [(1.0, 1.0), (5.0, 1.0), (30.0, 4.0), (100.0, 50.0)] {
        let mut s = UserSchedule::new(&Profile::constant(users), rate);
        let mut started_at = Vec::new();
        let mut running = 0;
        // Every millisecond for twice the ramp.
        for ms in 0..=(2_000.0 * users / rate) as u64 {
            let t = Duration::from_millis(ms);
            let now = s.users_at(t);
            assert!(now >= running, "users never drop on a constant profile");
            started_at.extend((running..now).map(|_| t));
            running = now;
        }
        assert_eq!(started_at.len() as f64, users, "{users} users at {rate}/s");
        for (i, at) in started_at.iter().enumerate() {
            let due = i as f64 / rate;
            // The schedule moves in 10 ms steps.
            assert!(
                (at.as_secs_f64() - due).abs() <= 0.010 + 1e-9,
                "user {i} of {users} at {rate}/s started at {at:?}, due at {due} s"
            );
        }
    }
}

#[test]
fn a_step_up_starts_its_first_new_user_at_once() {
    let p = Profile {
        start: 10.0,
        stages: vec![Stage {
            duration: secs(5.0),
            target: 20.0,
        }],
        step: true,
    };
    let mut s = UserSchedule::new(&p, 2.0);
    assert_eq!(s.users_at(secs(0.0)), 1);
    assert_eq!(s.users_at(secs(4.5)), 10);
}

#[test]
fn users_follow_stages_up_and_down() {
    let p = Profile {
        start: 0.0,
        stages: vec![
            Stage {
                duration: secs(10.0),
                target: 20.0,
            },
            Stage {
                duration: secs(10.0),
                target: 0.0,
            },
        ],
        step: false,
    };
    let mut s = UserSchedule::new(&p, 1000.0);
    assert_eq!(s.users_at(secs(5.0)), 10);
    assert_eq!(s.users_at(secs(10.0)), 20);
    assert_eq!(s.users_at(secs(15.0)), 10);
    assert_eq!(s.users_at(secs(20.0)), 0);
}

#[test]
fn step_load_adds_users_in_steps() {
    // Locust profile.yml style: 10 users every 5 s up to 30.
    let p = Profile {
        start: 10.0,
        stages: vec![
            Stage {
                duration: secs(5.0),
                target: 10.0,
            },
            Stage {
                duration: secs(5.0),
                target: 20.0,
            },
            Stage {
                duration: secs(5.0),
                target: 30.0,
            },
        ],
        step: true,
    };
    let mut s = UserSchedule::new(&p, 1000.0);
    assert_eq!(s.users_at(secs(4.9)), 10);
    assert_eq!(s.users_at(secs(5.5)), 20);
    assert_eq!(s.users_at(secs(12.0)), 30);
    assert_eq!(s.users_at(secs(60.0)), 30);
}

#[tokio::test(start_paused = true)]
async fn a_ramp_played_on_paused_tokio_time_delivers_the_profile() {
    // 0 -> 100 arrivals/s over 10 s, played with tokio's (paused) timer the
    // way a worker sleeps until each due time: second k holds 5(2k+1).
    let p = Profile {
        start: 0.0,
        stages: vec![Stage {
            duration: secs(10.0),
            target: 100.0,
        }],
        step: false,
    };
    let mut s = ArrivalSchedule::new(&p, secs(10.0));
    let start = tokio::time::Instant::now();
    let mut per_second = [0u32; 10];
    let mut i = 0;
    while let Some(t) = s.time_of(i) {
        tokio::time::sleep_until(start + t).await;
        per_second[start.elapsed().as_secs() as usize] += 1;
        i += 1;
    }
    let expected: Vec<u32> = (0..10).map(|k| 5 * (2 * k + 1)).collect();
    assert_eq!(per_second.to_vec(), expected);
    assert!(start.elapsed() < secs(10.0));
}

#[tokio::test(start_paused = true)]
async fn users_follow_stages_on_paused_tokio_time() {
    // 0 -> 20 users over 4 s, hold, sampled every 100 ms like the closed-model
    // controller: never above the target, never faster than the spawn rate.
    let p = Profile {
        start: 0.0,
        stages: vec![
            Stage {
                duration: secs(4.0),
                target: 20.0,
            },
            Stage {
                duration: secs(2.0),
                target: 20.0,
            },
        ],
        step: false,
    };
    let mut s = UserSchedule::new(&p, 4.0);
    let start = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut last = 0;
    let mut samples = Vec::new();
    while start.elapsed() < secs(6.0) {
        tick.tick().await;
        let users = s.users_at(start.elapsed());
        assert!(users >= last, "monotone while ramping up");
        assert!(
            users as f64 <= 4.0 * start.elapsed().as_secs_f64() + 1.0,
            "spawn rate respected"
        );
        last = users;
        samples.push(users);
    }
    assert_eq!(s.users_at(secs(6.0)), 20);
    assert!(samples.contains(&10), "{samples:?}");
}
