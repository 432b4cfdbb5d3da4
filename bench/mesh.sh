#!/usr/bin/env bash
# Times vxmesh against a fresh lab: cold up without and with verify, a no-op re-run, verify alone, status.
# Usage (root): bench/mesh.sh [NODES...]   default: 3 10. Prints a markdown table for docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
vx=$PWD/target/release/vxmesh
sizes=("${@:-3 10}")
[ $# -gt 0 ] || sizes=(3 10)
t() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1 || echo "  (exit $? from: $*)" >&2; e=$(date +%s.%N); echo "$e - $s" | bc; }
echo "| nodes | lab create | cold up, no verify | no-op up | verify (pairs) | down | cold up with verify | status |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
for n in "${sizes[@]}"; do
  $vx lab destroy --name bench >/dev/null 2>&1 || true
  create=$(t $vx lab create --nodes "$n" --name bench)
  inv=/var/lib/vxmesh-lab/bench/vxmesh.yaml
  cold=$(t $vx up -i "$inv" --no-verify)
  noop=$(t $vx up -i "$inv" --no-verify)
  verify=$(t $vx verify -i "$inv")
  down=$(t $vx down -i "$inv")
  full=$(t $vx up -i "$inv")
  status=$(t $vx status -i "$inv")
  printf '| %s | %.1f s | %.2f s | %.2f s | %.1f s (%s) | %.2f s | %.1f s | %.2f s |\n' "$n" "$create" "$cold" "$noop" "$verify" "$((n * (n - 1)))" "$down" "$full" "$status"
  $vx lab destroy --name bench >/dev/null
done
