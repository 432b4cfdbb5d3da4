#!/usr/bin/env bash
# Planning at scale, as the admin runs it: `plan --offline -q` (the whole plan made and checked, one line out),
# `plan --offline` and `plan --offline --json` (every node's full script: N(N-1) tunnel lines, so only up to
# FULL_MAX nodes, default 1,000), and `render NODE` (one node's script) of the release binary on generated
# inventories: wall time and peak RSS (min / median / max of RUNS runs).
# Usage: bench/plan-scale.sh [RUNS] [SIZES...]   (defaults: 3 runs; 100 1000 3000 7000 10000 nodes)
# Two inventories per size: plain OVS, and encrypted mixed (kernel backend, every third node OVS, WireGuard).
# Output: markdown rows for docs/benchmarks.md. Nothing contacts a host.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
shift || true
SIZES=("${@:-100 1000 3000 7000 10000}")
FULL_MAX=${FULL_MAX:-1000}
# shellcheck disable=SC2206
SIZES=(${SIZES[*]})
BIN=${VXMESH_BIN:-target/release/vxmesh}
[ -x "$BIN" ] || cargo build --release --locked
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# inventory KIND N: one line per node, addresses from 100.64.0.0/10 (shared address space: nothing real routes it
# from here, and nothing is contacted).
inventory() {
    local kind=$1 n=$2 f=$WORK/$1-$2.yaml
    {
        echo "cluster:"
        echo "  name: bench"
        echo "  cidr: 10.0.0.0/8"
        echo "  node_prefix: 24"
        echo "  switch_cidr: 10.255.0.0/16"
        if [ "$kind" = encrypted ]; then
            echo "  backend: linux"
            echo "  encryption: wireguard"
            echo "  wireguard: {cidr: 100.96.0.0/16}"
        fi
        echo "nodes:"
        for ((i = 0; i < n; i++)); do
            local extra=""
            [ "$kind" = encrypted ] && [ $((i % 3)) -eq 0 ] && extra=", backend: ovs"
            echo "  - {name: n$i, host: 100.64.$((i / 250)).$((i % 250 + 1))$extra}"
        done
    } > "$f"
    echo "$f"
}

# measure LABEL CMD...: RUNS runs of CMD (stdout to /dev/null); prints `min / median / max` of seconds and MiB.
measure() {
    local label=$1; shift
    local times=() rss=()
    for ((r = 0; r < RUNS; r++)); do
        /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" > /dev/null 2> "$WORK/err" || {
            echo "FAILED: $label: $*" >&2; cat "$WORK/err" >&2; exit 1; }
        read -r t m < "$WORK/time"
        times+=("$t"); rss+=("$((m / 1024))")
    done
    printf '| %s | %s | %s |\n' "$label" "$(stats "${times[@]}")" "$(stats "${rss[@]}")"
}

stats() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {printf "%s / %s / %s", v[1], v[int((NR+1)/2)], v[NR]}'; }

echo "| command | seconds (min / median / max) | peak RSS MiB (min / median / max) |"
echo "|---|---:|---:|"
for n in "${SIZES[@]}"; do
    for kind in ovs encrypted; do
        inv=$(inventory "$kind" "$n")
        last=n$((n - 1))
        measure "$kind, $n nodes: plan --offline -q" "$BIN" -i "$inv" -q plan --offline
        if [ "$n" -le "$FULL_MAX" ]; then
            measure "$kind, $n nodes: plan --offline" "$BIN" -i "$inv" plan --offline
            measure "$kind, $n nodes: plan --offline --json" "$BIN" -i "$inv" --json plan --offline
        fi
        measure "$kind, $n nodes: render $last" "$BIN" -i "$inv" render "$last"
    done
done
