//! Micro-benchmark of the measurement model's hot operations, run by
//! `cargo bench -p bfgg-protocol` (and `just bench`): recording a sample,
//! merging one agent's interval snapshot, and encoding/decoding it for the
//! wire, with the encoded size. Plain `Instant` timing, best of several
//! batches (this machine is noisy); prints one line per measurement.

/// The allocator the `bfgg` binary uses (see src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::time::{Duration, Instant};

use bfgg_protocol::{ErrorKind, IntervalSnapshot, LatencyHistogram, decode, encode};

/// A realistic one-second snapshot of one agent: `names` request names at
/// `rps` requests per second in all, long-tailed latencies, a few errors.
fn snapshot(names: usize, rps: u64, seed: u64) -> IntervalSnapshot {
    let mut s = IntervalSnapshot::new(7);
    let mut x = seed;
    for n in 0..names {
        let stats = s.by_name.entry(format!("request-{n}")).or_default();
        for _ in 0..rps / names as u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = x >> 33;
            let us = match r % 100 {
                0 => 200_000 + r % 800_000,
                1..=9 => 20_000 + r % 30_000,
                _ => 800 + r % 4_000,
            };
            stats.requests += 1;
            stats.response_time.record(us + r % 500);
            stats.service_time.record(us);
            stats.bytes_in += 512;
        }
        stats.errors.insert(ErrorKind::Status(503), 3);
        stats
            .errors
            .insert(ErrorKind::Check("status 503 expected 200".into()), 2);
    }
    s.generator.scheduled = rps;
    s.generator.schedule_lag.record(40);
    s
}

/// Best per-iteration time over `batches` batches of `iters` iterations.
fn best(batches: usize, iters: usize, mut f: impl FnMut()) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..batches {
        let t = Instant::now();
        for _ in 0..iters {
            f();
        }
        best = best.min(t.elapsed() / iters as u32);
    }
    best
}

fn main() {
    let mut h = LatencyHistogram::new();
    let mut v = 1u64;
    let record = best(5, 1_000_000, || {
        v = v.wrapping_mul(3).wrapping_add(7) % 1_000_000 + 1;
        h.record(black_box(v));
    });
    println!("record one sample: {:.1} ns", record.as_nanos() as f64);

    for (names, rps) in [(1, 1_000), (5, 1_000), (5, 20_000), (20, 20_000)] {
        let snap = snapshot(names, rps, 42);
        for (what, s) in [("exact", snap.clone()), ("live ", snap.live())] {
            let bytes = encode(&s).expect("encodes");
            // What a coordinator does per agent per second: decode the
            // message and add it into the running merge of the interval
            // (itself built from decoded messages, as on the wire).
            let decoded: IntervalSnapshot = decode(&bytes).expect("decodes");
            let mut acc: IntervalSnapshot =
                decode(&encode(&snapshot(names, rps, 7)).expect("encodes")).expect("decodes");
            let merge = best(5, 200, || {
                acc += black_box(&decoded);
            });
            let enc = best(5, 100, || {
                black_box(encode(black_box(&s)).expect("encodes"));
            });
            let dec = best(5, 100, || {
                black_box(decode::<IntervalSnapshot>(black_box(&bytes)).expect("decodes"));
            });
            println!(
                "{what} snapshot {names:>2} names {rps:>6} req/s: {:>6} bytes encoded; merge {:>6.1} µs, encode {:>6.1} µs, decode {:>6.1} µs, decode+merge {:>6.1} µs",
                bytes.len(),
                merge.as_secs_f64() * 1e6,
                enc.as_secs_f64() * 1e6,
                dec.as_secs_f64() * 1e6,
                (dec + merge).as_secs_f64() * 1e6,
            );
        }
        let live = best(5, 100, || {
            black_box(black_box(&snap).live());
        });
        println!(
            "      making the live copy: {:.1} µs",
            live.as_secs_f64() * 1e6
        );
        if std::env::var_os("BFGG_BENCH_SWEEP").is_some() {
            for bits in 4..=8 {
                let mut s = snap.clone();
                for n in s.by_name.values_mut() {
                    n.response_time = n.response_time.coarsened_to(bits);
                    n.service_time = n.service_time.coarsened_to(bits);
                }
                println!(
                    "      {bits} bits: {} bytes",
                    encode(&s).expect("encodes").len()
                );
            }
        }
    }
}
