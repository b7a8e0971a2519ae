# bfgg developer commands. `just ci` is the same gate as CI (.ci/run).

# The demo: built-in target, demo scenario, summary.
demo:
    cargo run --release -- demo

# Every test (installs what tests need on first use, e.g. target/py-venv).
test:
    cargo test --workspace

lint:
    cargo clippy --workspace --all-targets -- -D warnings

fmt:
    cargo fmt --all

fmt-check:
    cargo fmt --all --check

# Architecture invariants that the type system cannot see.
invariants:
    ! cargo tree -p bfgg-protocol -e normal --prefix none | grep -E '^(tokio|libp2p|hyper|ratatui|crossterm|aws-)'

# Everything CI runs.
ci:
    bash .ci/run
# Comparative generator benchmark: wrk, h2load, oha, k6 and bfgg against a local
# nginx; headline = generator CPU per request as a paired ratio to wrk.
# First use installs nginx/wrk/nghttp2-client/strace (apt, as root) and builds
# oha and k6 into target/tools/ (several minutes each, cached).
# Also: the snapshot micro-benchmark, the bytes each agent sends on the mesh (docs/MESH.md)
# and Locust, Gatling and JMeter with and without bfgg (bench-locust, bench-gatling, bench-jmeter, default arguments).
# e.g. `just bench --rounds 5`, `just bench --only wrk,bfgg`, `just bench --write`
bench *ARGS:
    cargo bench -p bfgg-protocol
    cargo bench -p bfgg-tui
    cargo build --release --bin bfgg
    python3 tests/bench/agent_bytes.py
    python3 tests/bench/compare.py {{ARGS}}
    python3 tests/bench/locust_overhead.py
    python3 tests/bench/gatling_overhead.py
    python3 tests/bench/jmeter_overhead.py

# Smoke check of the harness itself: 1 round, 3 s per tool, no strace, no open model.
bench-quick *ARGS:
    cargo build --release --bin bfgg
    python3 tests/bench/compare.py --quick {{ARGS}}

# Plain Locust against Locust under bfgg: same locustfile, same nginx, interleaved
# rounds; Locust's CPU per request and req/s as paired ratios (target: at most 5 % loss),
# and bfgg's p50/p99 against Locust's own for the same runs. Creates target/py-venv
# with locust==2.47.0 on first use. e.g. `just bench-locust --rounds 5 --write`
bench-locust *ARGS:
    cargo build --release --bin bfgg
    python3 tests/bench/locust_overhead.py {{ARGS}}

# Plain Gatling (the JVM launched directly) against Gatling under bfgg: same simulation,
# class path and JVM options, same nginx, interleaved rounds; the JVM's CPU per request
# and req/s as paired ratios (target: tailing simulation.log costs at most 5 %). Needs a
# JDK and Maven (Gatling 3.15.1 from ~/.m2 or Maven Central, once).
# e.g. `just bench-gatling --rounds 5 --write`
bench-gatling *ARGS:
    cargo build --release --bin bfgg
    python3 tests/bench/gatling_overhead.py {{ARGS}}

# What bfgg costs JMeter: the same plan and command line alone (with and without
# autoflush) and under bfgg, interleaved; figures in docs/BENCHMARKS.md.
# e.g. `just bench-jmeter --rounds 5 --write`
bench-jmeter *ARGS:
    cargo build --release --bin bfgg
    python3 tests/bench/jmeter_overhead.py {{ARGS}}

# Soak: 3 nodes, one 1,000 req/s cluster run (default 30 min); RSS curve to soak.csv,
# fails if a node's RSS grows > 10 % after warm-up. e.g. `just soak --minutes 1`
soak *ARGS:
    cargo build --release --bin bfgg
    python3 tests/bench/soak.py {{ARGS}}

# Mesh scale: N nodes on this box, one low-rate cluster run; per-node CPU and
# network, submit-to-start, finalize. e.g. `just bench-scale --nodes 50,100`
bench-scale *ARGS:
    cargo build --release --bin bfgg
    python3 tests/bench/scale.py {{ARGS}}

# One long-lived node serving many short runs (default 500): coordinator RSS growth.
# e.g. `just bench-runs-memory --runs 12`
bench-runs-memory *ARGS:
    cargo build --release --bin bfgg
    python3 tests/bench/runs_memory.py {{ARGS}}
