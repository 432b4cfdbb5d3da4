# vxmesh tasks. `just` is optional: every recipe is a plain script or cargo command.

# Plan the example three-host mesh offline
demo:
    scripts/demo.sh

# Install test dependencies (root, Debian) and run every test
test *ARGS:
    scripts/test.sh {{ARGS}}

# Formatting and lints, as CI runs them
lint:
    cargo fmt --all -- --check
    cargo clippy --all-targets -- -D warnings

# The planning benchmark (docs/benchmarks.md)
bench:
    cargo bench --bench plan

# Re-record the facts fixtures from a real OVS + docker host (root)
record-fixtures:
    cargo build
    tests/fixtures/record.sh
