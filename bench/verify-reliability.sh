#!/usr/bin/env bash
# How often `verify` fails on a mesh that is right: RUNS fresh labs of NODES hosts, each `up --no-verify` then
# `verify --json` at once; prints one line per run and the failing pairs with their errors. Root.
# Usage: bench/verify-reliability.sh [RUNS] [NODES]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20} nodes=${2:-10}
cargo build --release --locked --quiet
vx=$PWD/target/release/vxmesh
trap '$vx lab destroy --name rel >/dev/null 2>&1 || true' EXIT
fails=0
for i in $(seq "$runs"); do
  $vx lab destroy --name rel >/dev/null 2>&1 || true
  $vx lab create --nodes "$nodes" --name rel >/dev/null 2>&1
  inv=/var/lib/vxmesh-lab/rel/vxmesh.yaml
  $vx up -i "$inv" --no-verify >/dev/null
  code=0
  out=$($vx verify -i "$inv" --json) || code=$?
  if [ "$code" = 0 ]; then
    # A pass that needed a second try says so: retries are counted, never hidden.
    echo "run $i: ok ($(echo "$out" | python3 -c '
import json, sys
r = json.load(sys.stdin)
fetches = sum(1 for p in r["pairs"] if (p.get("tries") or 1) > 1)
switches = sum(len(h.get("switches_on_second_try", [])) for h in r["hosts"])
secs = r["seconds"]
print(f"{secs:.1f} s; {fetches} fetches and {switches} switch pings on a second try")'))"
  else
    fails=$((fails + 1))
    echo "run $i: FAILED (exit $code)"
    echo "$out" | python3 -c '
import json, sys
r = json.load(sys.stdin)
for p in r["pairs"]:
    if not p["ok"]:
        print("   ", p["from"], "->", p["to"], ":", p["error"])
for h in r["hosts"]:
    if not h["ok"]:
        print("   ", h["node"], ":", h.get("error"), h.get("unreachable_switches"), "outside", h.get("outside"))'
  fi
done
echo "$fails of $runs runs failed"
