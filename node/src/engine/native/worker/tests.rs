//! The worker thread as a whole: interval numbering, CPU busy per-mille, and
//! whole engines against a loopback target (the exact schedule sent, one
//! snapshot per interval per worker and `Finished` last, an abort that does
//! not wait for slow responses).

use super::fixtures;
use super::*;

#[test]
fn intervals_are_whole_seconds_after_t0() {
    let t0 = Instant::now();
    for k in [0, 1, 7, 3600] {
        let start = interval_started(t0, k);
        assert_eq!(start - t0, Duration::from_secs(u64::from(k)));
    }
}

#[test]
fn busy_is_the_share_of_one_core_capped_at_a_thousand() {
    let ms = Duration::from_millis;
    assert_eq!(permille(0, ms(1000)), 0);
    assert_eq!(permille(250_000_000, ms(1000)), 250);
    assert_eq!(permille(1_000_000_000, ms(1000)), 1000);
    assert_eq!(permille(3_000_000_000, ms(1000)), 1000, "capped");
    assert_eq!(permille(1, Duration::ZERO), 1000, "no division by zero");
    assert_eq!(permille(u64::MAX, ms(1)), 1000, "no overflow");
}

#[test]
fn busy_moves_the_mark_and_is_zero_without_a_cpu_clock() {
    let none = Cell::new(None);
    assert_eq!(busy_permille(&none, Instant::now()), 0);
    assert_eq!(none.get(), None, "no clock, no mark");
    if thread_cpu_ns().is_none() {
        eprintln!("skipped: /proc/thread-self/schedstat is not available on this system");
        return;
    }
    // Everything this thread has used since it started, over a moment.
    let mark = Cell::new(Some(0));
    let mut x = 0u64;
    for i in 0..2_000_000u64 {
        x = x.wrapping_mul(31).wrapping_add(i);
    }
    std::hint::black_box(x);
    assert_eq!(busy_permille(&mark, Instant::now()), 1000);
    let moved = mark.get().expect("a mark");
    assert!(moved > 0, "the mark moves to now");
    // Sleeping uses next to no CPU.
    let since = Instant::now();
    std::thread::sleep(Duration::from_millis(100));
    let busy = busy_permille(&mark, since);
    assert!(busy < 500, "{busy}");
    assert!(mark.get().expect("a mark") >= moved);
}

/// 50 arrivals a second for 2 s; `rest` follows the load.
fn open_load(rest: &str) -> String {
    format!(
        "[load]\nmodel = \"open\"\nrate = 50\nduration = \"2s\"\ngraceful_stop = \"5s\"\n{rest}"
    )
}

#[tokio::test]
async fn an_open_run_sends_its_schedule_exactly_one_snapshot_per_interval_per_worker() {
    let target = fixtures::target().await;
    let scenario = fixtures::scenario(
        target.local_addr(),
        &open_load("[[request]]\nname = \"root\"\npath = \"/\"\n"),
    );
    let sources = fixtures::run_engine(scenario, 2).await;
    assert_eq!(sources.len(), 2);
    let (mut requests, mut scheduled, mut missed) = (0, 0, 0);
    for (i, s) in sources.iter().enumerate() {
        assert!(s.finished, "worker {i} finished");
        assert_eq!(s.after_finished, 0, "worker {i}: nothing after Finished");
        let indices: Vec<u32> = s.intervals.iter().map(|x| x.index).collect();
        assert_eq!(indices.first(), Some(&0), "worker {i}: {indices:?}");
        assert!(
            indices.windows(2).all(|w| w[0] < w[1]),
            "worker {i}: one snapshot per interval, in order: {indices:?}"
        );
        assert!(
            indices.last() >= Some(&1),
            "worker {i}: the ticker shipped the first second apart: {indices:?}"
        );
        let mine: u64 = s
            .intervals
            .iter()
            .filter_map(|x| x.by_name.get("root"))
            .map(|n| n.requests)
            .sum();
        // The stride split: each worker runs every other arrival.
        assert_eq!(mine, 50, "worker {i}");
        requests += mine;
        scheduled += s
            .intervals
            .iter()
            .map(|x| x.generator.scheduled)
            .sum::<u64>();
        missed += s.intervals.iter().map(|x| x.generator.missed).sum::<u64>();
    }
    assert_eq!((requests, scheduled, missed), (100, 100, 0));
    assert_eq!(
        target.stats().total,
        100,
        "the target saw each request once"
    );
}

#[tokio::test]
async fn an_abort_does_not_wait_for_responses_in_flight() {
    let target = fixtures::target().await;
    let scenario = fixtures::scenario(
        target.local_addr(),
        "[load]\nmodel = \"closed\"\nusers = 2\nspawn_rate = 1000\nduration = \"1s\"\n\
         graceful_stop = \"200ms\"\n\
         [[request]]\npath = \"/delay/30000\"\n",
    );
    let started = Instant::now();
    let sources = fixtures::run_engine(scenario, 1).await;
    assert!(sources[0].finished);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "aborted once the graceful stop ran out, not after the 30 s response: {:?}",
        started.elapsed()
    );
    let requests: u64 = sources[0]
        .intervals
        .iter()
        .flat_map(|x| x.by_name.values())
        .map(|n| n.requests)
        .sum();
    assert_eq!(requests, 0, "abandoned requests are not recorded");
    let last = sources[0].intervals.last().expect("a last interval");
    assert_eq!(last.generator.active, 2, "both users were in flight");
}
