//! Merge exactness and serialization of the measurement model.

use super::*;

fn lcg(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *seed >> 33
}

#[test]
fn merged_histograms_equal_one_fed_every_sample() {
    let mut seed = 42;
    let mut parts: Vec<LatencyHistogram> = (0..7).map(|_| LatencyHistogram::new()).collect();
    let mut whole = LatencyHistogram::new();
    for i in 0..100_000u64 {
        // A long-tailed mix: mostly ~1 ms, some ~100 ms, a few seconds.
        let r = lcg(&mut seed);
        let v = match r % 100 {
            0 => 1_000_000 + r % 3_000_000,
            1..=9 => 100_000 + r % 50_000,
            _ => 500 + r % 1_500,
        };
        parts[(i % 7) as usize].record(v);
        whole.record(v);
    }
    let mut merged = LatencyHistogram::new();
    for p in &parts {
        merged.add(p);
    }
    assert_eq!(merged.len(), 100_000);
    for q in [0.0, 0.5, 0.9, 0.99, 0.999, 0.9999, 1.0] {
        assert_eq!(merged.quantile_us(q), whole.quantile_us(q), "quantile {q}");
    }
    assert_eq!(merged, whole);
}

#[test]
fn values_beyond_an_hour_are_clamped_not_lost() {
    let mut h = LatencyHistogram::new();
    h.record(u64::MAX);
    h.record(0);
    assert_eq!(h.len(), 2);
    assert!(h.max_us() >= LatencyHistogram::HIGHEST_US);
    assert!(h.max_us() <= LatencyHistogram::HIGHEST_US + LatencyHistogram::HIGHEST_US / 1000);
}

#[test]
fn histogram_precision_is_three_significant_digits() {
    let mut h = LatencyHistogram::new();
    h.record(123_456);
    let got = h.quantile_us(0.5) as f64;
    assert!((got - 123_456.0).abs() / 123_456.0 < 0.001, "{got}");
}

fn snapshot(
    index: u32,
    name: &str,
    latencies: &[u64],
    errors: &[(ErrorKind, u64)],
) -> IntervalSnapshot {
    let mut s = IntervalSnapshot::new(index);
    let stats = s.by_name.entry(name.to_string()).or_default();
    for &l in latencies {
        stats.requests += 1;
        stats.response_time.record(l);
        stats.service_time.record(l / 2);
        stats.bytes_in += 10;
    }
    for (kind, n) in errors {
        stats.requests += n;
        *stats.errors.entry(kind.clone()).or_default() += n;
    }
    s.generator.scheduled = latencies.len() as u64;
    s.generator.cpu_busy_permille = latencies.len() as u32;
    s
}

#[test]
fn snapshot_merge_adds_counts_errors_and_names() {
    let mut a = snapshot(3, "home", &[100, 200, 300], &[(ErrorKind::Status(503), 2)]);
    let b = snapshot(
        3,
        "home",
        &[400],
        &[(ErrorKind::Status(503), 1), (ErrorKind::ConnectRefused, 4)],
    );
    let c = snapshot(3, "login", &[50, 60], &[]);
    a += &b;
    a += &c;
    let home = &a.by_name["home"];
    assert_eq!(home.requests, 3 + 2 + 1 + 1 + 4);
    assert_eq!(home.errors[&ErrorKind::Status(503)], 3);
    assert_eq!(home.errors[&ErrorKind::ConnectRefused], 4);
    assert_eq!(home.error_count(), 7);
    assert_eq!(home.response_time.len(), 4);
    assert_eq!(home.bytes_in, 40);
    assert_eq!(a.by_name["login"].requests, 2);
    assert_eq!(a.generator.scheduled, 6);
    assert_eq!(a.generator.cpu_busy_permille, 3, "busiest core wins");
    let total = a.total();
    assert_eq!(total.requests, 13);
    assert_eq!(total.response_time.len(), 6);
}

#[test]
fn histogram_round_trips_through_v2_deflate() {
    let mut h = LatencyHistogram::new();
    for v in [1, 10, 100, 1_000, 10_000, 3_000_000] {
        h.record(v);
    }
    let bytes = h.to_v2_deflate();
    assert_eq!(LatencyHistogram::from_v2(&bytes).expect("decodes"), h);
    assert!(LatencyHistogram::from_v2(&bytes[..bytes.len() / 2]).is_err());
    assert!(LatencyHistogram::from_v2(b"not a histogram").is_err());
}

#[test]
fn error_kinds_read_like_a_report() {
    assert_eq!(
        ErrorKind::Check("status 503 expected 200".into()).to_string(),
        "check failed: status 503 expected 200"
    );
    assert_eq!(ErrorKind::Status(503).class(), "http 5xx");
    assert_eq!(ErrorKind::Status(404).class(), "http 4xx");
}

fn long_tailed(seed: &mut u64, n: usize) -> LatencyHistogram {
    let mut h = LatencyHistogram::new();
    for _ in 0..n {
        let r = lcg(seed);
        h.record(match r % 100 {
            0 => 1_000_000 + r % 3_000_000,
            1..=9 => 20_000 + r % 50_000,
            _ => 50 + r % 5_000,
        });
    }
    h
}

#[test]
fn live_precision_keeps_counts_and_stays_within_half_a_percent() {
    let mut seed = 7;
    let exact = long_tailed(&mut seed, 50_000);
    let live = exact.coarsened();
    assert_eq!(live.len(), exact.len());
    for q in [0.0, 0.5, 0.9, 0.99, 0.999, 1.0] {
        let (e, l) = (exact.quantile_us(q) as f64, live.quantile_us(q) as f64);
        // 0.78 % from the 7-bit bin, plus the 3-digit bins on both sides.
        assert!(
            (l - e).abs() / e <= 0.0078 + 0.002,
            "q{q}: exact {e} live {l}"
        );
    }
    assert!(
        live.to_v2_deflate().len() * 2 < exact.to_v2_deflate().len(),
        "live {} bytes vs exact {}",
        live.to_v2_deflate().len(),
        exact.to_v2_deflate().len()
    );
}

#[test]
fn live_copies_merge_exactly_like_the_exact_ones() {
    let mut seed = 11;
    let parts: Vec<LatencyHistogram> = (0..5).map(|_| long_tailed(&mut seed, 5_000)).collect();
    let mut exact = LatencyHistogram::new();
    let mut live = LatencyHistogram::new();
    for p in &parts {
        exact.add(p);
        live.add(&p.coarsened());
    }
    assert_eq!(live, exact.coarsened(), "live(a) + live(b) == live(a + b)");
}

#[test]
fn a_live_snapshot_keeps_every_count() {
    let s = snapshot(
        3,
        "home",
        &[120, 5_000, 70_000, 1_234_567],
        &[(ErrorKind::Status(503), 2)],
    );
    let live = s.live();
    assert_eq!(live.index, 3);
    assert_eq!(live.total().requests, s.total().requests);
    assert_eq!(live.total().errors, s.total().errors);
    assert_eq!(live.total().bytes_in, s.total().bytes_in);
    assert_eq!(live.generator.scheduled, s.generator.scheduled);
    assert_eq!(
        live.by_name["home"].response_time.len(),
        s.by_name["home"].response_time.len()
    );
    assert_ne!(live, s, "histograms above 256 µs are coarsened");
}

/// A histogram as it arrives from the wire: the sparse form.
fn sparse_copy(h: &LatencyHistogram) -> LatencyHistogram {
    LatencyHistogram::from_v2(&h.to_v2()).expect("round-trips")
}

#[test]
fn sparse_and_dense_forms_answer_alike() {
    let mut seed = 5;
    for n in [1, 10, 1_000, 30_000] {
        let dense = long_tailed(&mut seed, n);
        let sparse = sparse_copy(&dense);
        assert_eq!(sparse, dense);
        assert_eq!(sparse.len(), dense.len());
        assert_eq!(sparse.max_us(), dense.max_us());
        assert_eq!(sparse.to_v2(), dense.to_v2(), "same bytes on the wire");
        for q in [0.0, 0.001, 0.25, 0.5, 0.9, 0.99, 0.999, 0.99999, 1.0, 1.5] {
            assert_eq!(sparse.quantile_us(q), dense.quantile_us(q), "n={n} q={q}");
        }
        assert_eq!(&*sparse.dense(), &*dense.dense());
    }
    let empty = sparse_copy(&LatencyHistogram::new());
    assert_eq!(
        (empty.len(), empty.quantile_us(0.99), empty.max_us()),
        (0, 0, 0)
    );
}

#[test]
fn merges_give_one_answer_whatever_the_forms() {
    let mut seed = 9;
    let parts: Vec<LatencyHistogram> = (0..40).map(|_| long_tailed(&mut seed, 700)).collect();
    let mut dense = LatencyHistogram::new();
    let mut sparse = LatencyHistogram::new();
    let mut mixed = LatencyHistogram::new();
    for (i, p) in parts.iter().enumerate() {
        dense.add(p);
        sparse.add(&sparse_copy(p));
        if i % 2 == 0 {
            mixed.add(p);
        } else {
            mixed.add(&sparse_copy(p));
        }
    }
    assert_eq!(sparse, dense);
    assert_eq!(mixed, dense);
    assert_eq!(sparse.len(), 40 * 700);
    for q in [0.5, 0.99, 0.999] {
        assert_eq!(sparse.quantile_us(q), dense.quantile_us(q));
    }
    // Recording into a sparse histogram works (it turns dense).
    let mut s = sparse_copy(&parts[0]);
    s.record(1_234);
    let mut d = parts[0].clone();
    d.record(1_234);
    assert_eq!(s, d);
}

#[test]
fn generator_stats_merge_across_time_keeps_every_field() {
    let at = |scheduled, lag_us, active, cpu| {
        let mut g = GeneratorStats {
            scheduled,
            late_starts: scheduled / 10,
            missed: 1,
            active,
            cpu_busy_permille: cpu,
            ..GeneratorStats::default()
        };
        g.schedule_lag.record(lag_us);
        g
    };
    let mut run = at(100, 50, 7, 300);
    run.then(&at(200, 5_000, 3, 900));
    assert_eq!(run.scheduled, 300);
    assert_eq!(run.late_starts, 30);
    assert_eq!(run.missed, 2);
    assert_eq!(run.schedule_lag.len(), 2);
    assert_eq!(run.active, 7, "the peak, not a sum over time");
    assert_eq!(run.cpu_busy_permille, 900);
    // Across sources the gauge adds: two agents with 7 and 3 users have 10.
    let mut both = at(100, 50, 7, 300);
    both += &at(200, 5_000, 3, 900);
    assert_eq!(both.active, 10);
}

#[test]
fn a_pulse_sums_every_name_up() {
    let mut s = snapshot(4, "home", &[100, 200, 300], &[(ErrorKind::Status(503), 2)]);
    s += &snapshot(4, "login", &[10_000; 97], &[(ErrorKind::ConnectRefused, 1)]);
    s.generator.late_starts = 7;
    s.generator.cpu_busy_permille = 640;
    let pulse = Pulse::of(&s);
    let total = s.total();
    assert_eq!(pulse.index, 4);
    assert_eq!(pulse.requests, 103, "errors are requests too");
    assert_eq!(pulse.errors, 3);
    assert_eq!(pulse.p50_us, total.response_time.quantile_us(0.5));
    assert_eq!(pulse.p99_us, total.response_time.quantile_us(0.99));
    assert!((9_990..=10_010).contains(&pulse.p50_us), "{}", pulse.p50_us);
    assert_eq!((pulse.late_starts, pulse.cpu_busy_permille), (7, 640));
    assert_eq!(
        Pulse::of(&IntervalSnapshot::new(9)),
        Pulse {
            index: 9,
            ..Pulse::default()
        }
    );
}
