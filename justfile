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
# Also: the snapshot micro-benchmark and the mesh's gossip bytes per agent (docs/MESH.md).
# e.g. `just bench --rounds 5`, `just bench --only wrk,bfgg`, `just bench --write`
bench *ARGS:
    cargo bench -p bfgg-protocol
    cargo bench -p bfgg-tui
    cargo build --release --bin bfgg
    python3 tests/bench/gossip.py
    python3 tests/bench/compare.py {{ARGS}}

# Smoke check of the harness itself: 1 round, 3 s per tool, no strace, no open model.
bench-quick *ARGS:
    cargo build --release --bin bfgg
    python3 tests/bench/compare.py --quick {{ARGS}}
