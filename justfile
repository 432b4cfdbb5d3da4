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

# All benchmarks (docs/benchmarks.md): planning, then labs of 3, 10 and 30 light nodes side by side with ssh (root)
bench:
    cargo bench --bench plan
    bench/run.sh 3 10 30L

# Data plane on a 3-node lab: iperf3 and ping over the mesh vs the underlay (root)
bench-dataplane:
    bench/dataplane.sh

# Re-record the facts fixtures from a real OVS + docker host (root)
record-fixtures:
    cargo build
    tests/fixtures/record.sh
