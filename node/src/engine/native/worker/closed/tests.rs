//! The closed model: a share's users follow the global user schedule (each
//! missing user started once, surplus users left to end, an adopted share
//! only from its take-over, the shares of a split summing to the schedule),
//! user and iteration numbering, and users against a loopback target.

use super::super::fixtures::{self, TIMEOUT};
use super::*;
use crate::scenario::{LoadModel, Profile, Stage};

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// The users `follow` starts.
fn follow(users: &Users, global: u64, elapsed: Duration) -> Vec<usize> {
    let mut started = Vec::new();
    users.follow(global, elapsed, |idx| started.push(idx));
    started
}

/// User `idx`'s task ended.
fn ended(users: &Users, idx: usize) {
    users.alive.borrow_mut()[idx] = false;
}

#[test]
fn a_share_starts_each_missing_user_once() {
    // Users 1, 4, 7, ... of the whole run.
    let users = Users::new(Segment::WHOLE.split(1, 3), Duration::ZERO);
    assert_eq!(follow(&users, 0, secs(0.0)), Vec::<usize>::new());
    assert_eq!(follow(&users, 1, secs(0.05)), Vec::<usize>::new());
    assert_eq!(follow(&users, 2, secs(0.1)), [0]);
    assert_eq!(users.target.get(), 1);
    assert_eq!(
        follow(&users, 2, secs(0.15)),
        Vec::<usize>::new(),
        "running"
    );
    assert_eq!(follow(&users, 10, secs(0.2)), [1, 2]);
    assert_eq!(users.target.get(), 3);
    assert_eq!(global_user(users.segment, 2), 7);
}

#[test]
fn a_surplus_user_still_running_is_not_started_again() {
    let users = Users::new(Segment::WHOLE, Duration::ZERO);
    assert_eq!(follow(&users, 3, secs(0.0)), [0, 1, 2]);
    // The target drops: users 1 and 2 see it and end after their iteration.
    assert_eq!(follow(&users, 1, secs(0.1)), Vec::<usize>::new());
    assert_eq!(users.target.get(), 1);
    ended(&users, 2);
    // Back up before user 1 has ended: only user 2 starts again.
    assert_eq!(follow(&users, 3, secs(0.2)), [2]);
    ended(&users, 1);
    assert_eq!(follow(&users, 3, secs(0.25)), [1]);
}

#[test]
fn a_share_taken_over_mid_run_starts_users_only_from_then() {
    let users = Users::new(Segment::WHOLE.split(0, 2), secs(5.0));
    assert_eq!(users.target_for(10, secs(4.99)), 0);
    assert_eq!(follow(&users, 10, secs(4.99)), Vec::<usize>::new());
    assert_eq!(users.target_for(10, secs(5.0)), 5);
    assert_eq!(follow(&users, 10, secs(5.0)), [0, 1, 2, 3, 4]);
}

#[test]
fn the_shares_of_a_split_sum_to_the_user_schedule() {
    // 0 -> 10 users over 2 s, then 3, at 4 users/s at most.
    let profile = Profile {
        start: 0.0,
        stages: vec![
            Stage {
                duration: secs(2.0),
                target: 10.0,
            },
            Stage {
                duration: secs(0.5),
                target: 3.0,
            },
        ],
        step: false,
    };
    let mut schedule = UserSchedule::new(&profile, 4.0);
    let shares: Vec<Users> = (0..3)
        .map(|i| Users::new(Segment::WHOLE.split(i, 3), Duration::ZERO))
        .collect();
    let (mut peak, mut last) = (0, 0);
    for tick in 0..80 {
        let elapsed = Duration::from_millis(50 * tick);
        let global = schedule.users_at(elapsed);
        (peak, last) = (peak.max(global), global);
        let mut local = 0;
        for share in &shares {
            follow(share, global, elapsed);
            local += share.target.get();
        }
        assert_eq!(local, global, "at {elapsed:?}");
    }
    // Up at the spawn rate (about 8 by 2 s), then down to 3 at once.
    assert!(peak >= 7, "the ramp was followed: {peak}");
    assert_eq!(last, 3);
}

#[test]
fn users_and_their_iterations_are_numbered_apart() {
    let segment = Segment::WHOLE.split(1, 4);
    let ids: Vec<u64> = (0..3)
        .flat_map(|idx| {
            let user = global_user(segment, idx);
            (0..1000).map(move |it| iteration_id(user, it))
        })
        .collect();
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len());
    assert_eq!(iteration_id(5, 3), (5 << 24) | 3);
}

#[tokio::test]
async fn users_run_iterations_until_the_schedule_ends_then_finish_theirs() {
    let target = fixtures::target().await;
    let scenario = fixtures::scenario(
        target.local_addr(),
        "[load]\nmodel = \"closed\"\nusers = 3\nspawn_rate = 1000\nduration = \"10s\"\n\
         [[request]]\nname = \"pause\"\npath = \"/delay/20\"\nthink_time = \"30ms\"\n",
    );
    let LoadModel::Closed { users, spawn_rate } = &scenario.load.model else {
        panic!("a closed-model scenario");
    };
    let schedule = UserSchedule::new(users, *spawn_rate);
    let tw = fixtures::worker(scenario.clone(), Segment::WHOLE);
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let users = run(&tw.w, schedule, None);
            tokio::pin!(users);
            // The end of the schedule comes once the users have been at it
            // for a while (not at a fixed time: a busy machine may start
            // them late).
            let give_up = tokio::time::sleep(TIMEOUT);
            tokio::pin!(give_up);
            while target.stats().total < 9 {
                tokio::select! {
                    () = &mut users => panic!("the users ended while running"),
                    () = tokio::time::sleep(Duration::from_millis(10)) => {}
                    () = &mut give_up => panic!("fewer than 9 requests in {TIMEOUT:?}"),
                }
            }
            assert_eq!(tw.w.live.get(), 3, "one task per user");
            let _ = tw.phase.send(Phase::Draining {
                load_end: tw.w.t0.elapsed(),
                end_of_schedule: true,
            });
            tokio::time::timeout(TIMEOUT, users)
                .await
                .expect("the closed model ends");
        })
        .await;
    assert_eq!(tw.w.live.get(), 0, "every user ended");
    let recorded = tw.w.recorder.borrow_mut().take(0, 0);
    assert_eq!(recorded.generator.active, 0, "the gauge is back to 0");
    let requests = recorded.by_name["pause"].requests;
    assert!(requests >= 9, "{requests}");
    assert_eq!(target.stats().total, requests, "every iteration finished");
}
