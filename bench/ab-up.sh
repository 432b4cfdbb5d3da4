#!/usr/bin/env bash
# Two vxmesh binaries on the same fresh lab, in turn: cold `up --no-verify` (after `down`) and no-op `up`, RUNS
# times each, A B A B ..., so both meet the same hosts and the same machine load. The lab is made by binary B.
# Prints min / median / max seconds per binary and the ratio B/A of the medians. Root.
# Usage: bench/ab-up.sh BINARY_A BINARY_B [NODES] [RUNS]      (default: 10 nodes, 3 runs)
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: $0 BINARY_A BINARY_B [NODES] [RUNS]" >&2 && exit 1; }
a=$(realpath "$1")
b=$(realpath "$2")
nodes=${3:-10}
runs=${4:-3}
lab=benab
work=$(mktemp -d)
# shellcheck source=bench/neigh.sh
. bench/neigh.sh
raise_neigh
trap '$b lab destroy --name $lab >/dev/null 2>&1 || true; rm -rf "$work"; restore_neigh' EXIT
trap 'exit 130' INT TERM
$b lab destroy --name $lab >/dev/null 2>&1 || true
$b lab create --nodes "$nodes" --name $lab -q >/dev/null
cp "/var/lib/vxmesh-lab/$lab/vxmesh.yaml" "$work/vxmesh.yaml"
inv=$work/vxmesh.yaml
$b up -i "$inv" --no-verify -q >/dev/null
secs() { /usr/bin/time -f "%e" -o "$work/t" "$@" >"$work/out" 2>&1 || { cat "$work/out" >&2; exit 1; }; tail -1 "$work/t"; }
for r in $(seq "$runs"); do
  for who in a b; do
    bin=${!who}
    $bin down -i "$inv" --yes -q >/dev/null
    echo "$who cold $(secs "$bin" up -i "$inv" --no-verify -q)" >>"$work/times"
    echo "$who noop $(secs "$bin" up -i "$inv" --no-verify -q)" >>"$work/times"
  done
done
python3 - "$work/times" "$a" "$b" "$nodes" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
print(f"{sys.argv[4]} nodes; A = {sys.argv[2]}, B = {sys.argv[3]}; load average at the end {open('/proc/loadavg').read().split()[0]}")
for what in ("cold", "noop"):
    med = {}
    for who in ("a", "b"):
        v = [float(r[2]) for r in rows if r[0] == who and r[1] == what]
        med[who] = statistics.median(v)
        print(f"  {what} up, {who.upper()}: {min(v):.2f} / {med[who]:.2f} / {max(v):.2f} s (min / median / max)")
    print(f"  {what} up, B/A of the medians: {med['b'] / med['a']:.2f}")
PY
