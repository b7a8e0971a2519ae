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
