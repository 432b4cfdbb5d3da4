#!/usr/bin/env bash
# Data plane on a fresh 3-node lab: `vxmesh verify --bandwidth --json` RUNS times (iperf3 over the mesh, container
# to container, next to host to host on the underlay; ping latency; TCP MSS; IP fragments created), then min /
# median / max per ring pair and over all pairs. Prints markdown for docs/benchmarks.md. Root; ~1 minute.
# Usage: bench/dataplane.sh [ovs|linux|mixed] [RUNS]        (default: ovs 3)
# Env: VXMESH=path  use that binary instead of `cargo build --release --locked`;
#      QUIET_WAIT=S at most S seconds in all (default 1200) waiting for a running `cargo mutants` to finish before
#                   a measurement; the load average and whether it was still running are printed with every run.
set -euo pipefail
cd "$(dirname "$0")/.."
backend=${1:-ovs}
runs=${2:-3}
case $backend in ovs | linux | mixed) ;; *) echo "usage: $0 [ovs|linux|mixed] [RUNS]" >&2 && exit 1 ;; esac
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [ovs|linux|mixed] [RUNS]" >&2 && exit 1; }
if [ -n "${VXMESH:-}" ]; then
  vx=$(realpath "$VXMESH")
else
  cargo build --release --locked --quiet
  vx=$PWD/target/release/vxmesh
fi
lab=bkdp
inv=/var/lib/vxmesh-lab/$lab/vxmesh.yaml
work=$(mktemp -d)
trap '$vx lab destroy --name $lab >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

# Waits while another CPU-heavy job (cargo mutants) runs, polling every 30 s, QUIET_WAIT seconds in all.
budget=${QUIET_WAIT:-1200}
quiet() {
  while pgrep -f 'cargo-[m]utants' >/dev/null && [ "$budget" -gt 0 ]; do
    echo "  cargo mutants is running; waiting (${budget} s of waiting left)" >&2
    sleep 30
    budget=$((budget - 30))
  done
}
busy() { pgrep -f 'cargo-[m]utants' >/dev/null && echo "cargo mutants running" || echo "quiet"; }

$vx lab destroy --name $lab >/dev/null 2>&1 || true
$vx lab create --nodes 3 --name $lab --backend "$backend" >"$work/log" 2>&1 || { cat "$work/log" >&2; exit 1; }
$vx up -i "$inv" --no-verify >"$work/log" 2>&1 || { cat "$work/log" >&2; exit 1; }
for r in $(seq "$runs"); do
  quiet
  echo "$(date -u +%FT%TZ) loadavg $(cut -d' ' -f1-3 /proc/loadavg), $(busy)" >"$work/load$r"
  rc=0
  $vx verify -i "$inv" --bandwidth --json >"$work/run$r.json" 2>"$work/err$r" || rc=$?
  [ "$rc" -eq 0 ] || echo "  run $r: verify exited $rc (the report below still counts its bandwidth rows)" >&2
done

python3 - "$work" "$runs" "$backend" <<'EOF'
import json, statistics, sys
work, runs, backend = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = {}  # (from, to) -> list of bandwidth rows, one per run
for r in range(1, runs + 1):
    print(f"run {r}: {open(f'{work}/load{r}').read().strip()}")
    try:
        report = json.load(open(f"{work}/run{r}.json"))
    except ValueError:
        print(f"run {r}: no JSON report: {open(f'{work}/err{r}').read().strip()[-300:]}")
        continue
    for b in report.get("bandwidth", []):
        if b.get("error"):
            print(f"run {r}: {b['from']} -> {b['to']}: {b['error']}")
        rows.setdefault((b["from"], b["to"]), []).append(b)

def col(bs, f):
    return [f(b) for b in bs if f(b) is not None]

def ratio(b):
    o, u = b.get("overlay_mbps"), b.get("underlay_mbps")
    return o / u if o is not None and u else None

def mmm(v, fmt):
    if not v:
        return "-"
    return " / ".join(fmt.format(x) for x in (min(v), statistics.median(v), max(v)))

def med(v, fmt):
    return fmt.format(statistics.median(v)) if v else "-"

def line(name, bs):
    return "| {} | {} | {} | {} | {} | {} | {} / {} ms |".format(
        name,
        mmm(col(bs, lambda b: b.get("overlay_mbps")), "{:.0f}"),
        mmm(col(bs, lambda b: b.get("underlay_mbps")), "{:.0f}"),
        mmm(col(bs, ratio), "{:.2f}"),
        mmm(col(bs, lambda b: b.get("mss")), "{}"),
        mmm(col(bs, lambda b: b.get("fragments")), "{}"),
        med(col(bs, lambda b: b.get("overlay_rtt_ms")), "{:.2f}"),
        med(col(bs, lambda b: b.get("underlay_rtt_ms")), "{:.2f}"),
    )

print()
print(f"backend `{backend}`, {runs} run(s) of `verify --bandwidth` (iperf3, one TCP stream, 3 s per pair); min / median / max")
print()
print("| pair | over the mesh, Mbit/s | underlay, Mbit/s | ratio | MSS | fragments | RTT mesh / underlay (median) |")
print("|---|---:|---:|---:|---:|---:|---:|")
for (a, b), bs in rows.items():
    print(line(f"{a} -> {b}", bs))
every = [b for bs in rows.values() for b in bs]
print(line(f"all pairs ({len(every)} samples)", every))
EOF
