#!/usr/bin/env bash
# Encrypted data plane (`cluster.encryption: wireguard`) on a fresh 3-node kernel-backend lab: iperf3 TCP node1 ->
# node2, 1 stream and 8 streams (-P 8), RUNS runs of SECS seconds each, min / median / max, over five paths:
#   underlay      host to host over the underlay addresses;
#   wg            host to host over the WireGuard addresses (198.19.0.1 -> 198.19.0.2): wireguard-go alone;
#   wg+vxlan      host to host over the sw0 addresses (VXLAN inside WireGuard);
#   container enc container to container over the encrypted mesh (busybox on the `vxmesh` network, iperf3 in its
#                 network namespace with nsenter);
#   container     the same over the plain mesh: `down`, then `up` of the inventory without encryption.
# Every run prints the load average and iperf3's retransmits. During the 1-stream encrypted container runs it also
# counts UDP receive buffer errors on the receiving node (/proc/net/snmp Udp RcvbufErrors, in the node), the CPU of
# wireguard-go on sender and receiver (/proc/PID/stat utime+stime, PID from pgrep in the node) and the machine's
# user/system/softirq (/proc/stat), in cores. Prints markdown for docs/benchmarks.md. Root; ~4 minutes.
# Usage: bench/wireguard.sh [RUNS] [SECS]        (default: 3 5)
# Env: VXMESH=path  use that binary instead of `cargo build --release --locked`;
#      LAB=NAME     the lab's name (default bkwg).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
secs=${2:-5}
usage() { echo "usage: $0 [RUNS] [SECS]" >&2 && exit 1; }
[[ $runs =~ ^[1-9][0-9]*$ ]] && [[ $secs =~ ^[1-9][0-9]*$ ]] || usage
command -v iperf3 >/dev/null || { echo "iperf3 is not installed" >&2; exit 1; }
if [ -n "${VXMESH:-}" ]; then
  vx=$(realpath "$VXMESH")
else
  cargo build --release --locked --quiet
  vx=$PWD/target/release/vxmesh
fi
lab=${LAB:-bkwg}
labdir=/var/lib/vxmesh-lab/$lab
work=$(mktemp -d)
cleanup() {
  # iperf3 servers started in a container's netns belong to neither the node nor docker: kill them first.
  [ -z "${h2:-}" ] || on "$h2" 'for f in /tmp/vxm-wgbench-*.pid; do [ -e "$f" ] && kill "$(cat "$f")"; rm -f "$f"; done' \
    >/dev/null 2>&1 || true
  $vx lab destroy --name "$lab" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

$vx lab destroy --name "$lab" >/dev/null 2>&1 || true
$vx lab create --nodes 3 --name "$lab" --backend linux >"$work/log" 2>&1 || { cat "$work/log" >&2; exit 1; }
mkdir -p "$work/enc" "$work/plain"
# The lab's inventory, plus encryption and a firewall under `cluster:` (after `datapath:`), as tests/it do.
awk '{ print } /^  datapath:/ { print "  encryption: wireguard"; print "  firewall: iptables" }' \
  "$labdir/vxmesh.yaml" >"$work/enc/vxmesh.yaml"
grep -q '^  encryption: wireguard' "$work/enc/vxmesh.yaml" || { echo "could not add encryption" >&2; exit 1; }
cp "$labdir/vxmesh.yaml" "$work/plain/vxmesh.yaml"
host() { sed -n "s/.*name: $1, host: \([0-9.]*\).*/\1/p" "$labdir/vxmesh.yaml"; }
h1=$(host node1)
h2=$(host node2)
on() { # on ADDR COMMAND...: run on the node over SSH (host keys checked)
  local a=$1
  shift
  ssh -i "$labdir/id_ed25519" -o UserKnownHostsFile="$labdir/known_hosts" -o BatchMode=yes "root@$a" "$@"
}
load() { echo "loadavg $(cut -d' ' -f1-3 /proc/loadavg)"; }
rcvbuf='awk '\''/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "RcvbufErrors") c = i; h = 1 } else print $c }'\'' /proc/net/snmp'
# uptime, then utime+stime of every wireguard-go on the node (jiffies)
wgcpu='cut -d" " -f1 /proc/uptime; for p in $(pgrep -x wireguard-go); do cat /proc/$p/stat; done | awk "{ s += \$14 + \$15 } END { print s + 0 }"'
cpustat() { awk '/^cpu / { print $2 + $3, $4, $7 + $8 }' /proc/stat; } # user+nice, system, irq+softirq (jiffies)

# measure CASE TARGET SERVER-PREFIX CLIENT-PREFIX BIND: runs RUNS x {1, 8} streams, JSON into $work/CASE-P-R.json.
measure() {
  local case=$1 to=$2 spre=$3 cpre=$4 bind=$5 p r
  on "$h2" "$spre iperf3 -s -D -p 5301 --pidfile /tmp/vxm-wgbench-$case.pid"
  sleep 0.5
  for p in 1 8; do
    for r in $(seq "$runs"); do
      local cpu=$([ "$case" = enc ] && [ "$p" = 1 ] && echo 1 || echo 0) pre
      load >"$work/$case-$p-$r.load"
      if [ "$cpu" = 1 ]; then
        pre="$(on "$h2" "$rcvbuf") $(on "$h1" "$wgcpu" | paste -sd' ') $(on "$h2" "$wgcpu" | paste -sd' ') $(cpustat) $(date +%s.%N)"
      fi
      on "$h1" "$cpre iperf3 -c $to -p 5301 -t $secs -P $p -J $bind" >"$work/$case-$p-$r.json" || true
      if [ "$cpu" = 1 ]; then
        echo "$pre $(on "$h2" "$rcvbuf") $(on "$h1" "$wgcpu" | paste -sd' ') $(on "$h2" "$wgcpu" | paste -sd' ') $(cpustat) $(date +%s.%N)" \
          >"$work/$case-$p-$r.cpu"
      fi
      sleep 1
    done
  done
  on "$h2" "kill \$(cat /tmp/vxm-wgbench-$case.pid); rm -f /tmp/vxm-wgbench-$case.pid"
}
containers() { # a busybox on node1 and node2 on the vxmesh network; sets c1pid, c2pid, c2ip
  on "$h1" "docker run -d --name vxm-wgbench --network vxmesh busybox sleep 3600" >/dev/null
  on "$h2" "docker run -d --name vxm-wgbench --network vxmesh busybox sleep 3600" >/dev/null
  c1pid=$(on "$h1" "docker inspect -f '{{.State.Pid}}' vxm-wgbench")
  c2pid=$(on "$h2" "docker inspect -f '{{.State.Pid}}' vxm-wgbench")
  c2ip=$(on "$h2" "docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' vxm-wgbench")
}
rmcontainers() { on "$h1" "docker rm -f vxm-wgbench" >/dev/null; on "$h2" "docker rm -f vxm-wgbench" >/dev/null; }

$vx up -i "$work/enc/vxmesh.yaml" >"$work/log" 2>&1 || { cat "$work/log" >&2; exit 1; }
sw1=$(on "$h1" "ip -4 -o addr show sw0" | awk '{ split($4, a, "/"); print a[1] }')
sw2=$(on "$h2" "ip -4 -o addr show sw0" | awk '{ split($4, a, "/"); print a[1] }')
mtu=$(on "$h1" "cat /sys/class/net/sw0/mtu /sys/class/net/vxm-wg/mtu" | paste -sd/)
measure underlay "$h2" "" "" "-B $h1"
measure wg 198.19.0.2 "" "" "-B 198.19.0.1"
measure wgvx "$sw2" "" "" "-B $sw1"
containers
measure enc "$c2ip" "nsenter -t $c2pid -n" "nsenter -t $c1pid -n" ""
csum=$(on "$h2" "nsenter -t $c2pid -n nstat -az" | grep -i csum | awk '{ printf "%s %s, ", $1, $2 }')
rmcontainers
$vx down --yes -i "$work/enc/vxmesh.yaml" >"$work/log" 2>&1 || { cat "$work/log" >&2; exit 1; }
$vx up -i "$work/plain/vxmesh.yaml" >"$work/log" 2>&1 || { cat "$work/log" >&2; exit 1; }
containers
measure plain "$c2ip" "nsenter -t $c2pid -n" "nsenter -t $c1pid -n" ""
rmcontainers

python3 - "$work" "$runs" "$secs" "$mtu" "$csum" <<'EOF'
import json, statistics, sys
work, runs, secs, mtu, csum = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
names = [("underlay", "underlay, host to host"), ("wg", "WireGuard alone, host to host (198.19.0.1 -> .2)"),
         ("wgvx", "VXLAN over WireGuard, host to host (sw0 -> sw0)"),
         ("enc", "encrypted mesh, container to container"), ("plain", "plain mesh, container to container")]
def mmm(v, fmt):
    return " / ".join(fmt.format(x) for x in (min(v), statistics.median(v), max(v))) if v else "-"
res = {}
for case, _ in names:
    for p in (1, 8):
        for r in range(1, runs + 1):
            f = f"{work}/{case}-{p}-{r}"
            load = open(f + ".load").read().strip()
            try:
                j = json.load(open(f + ".json"))
                s = j["end"]["sum_received"]["bits_per_second"] / 1e6
                rt = j["end"]["sum_sent"].get("retransmits")
            except (ValueError, KeyError):
                s, rt = None, None
            print(f"{case} P{p} run {r}: {load}, " + (f"{s:.0f} Mbit/s, {rt} retransmits" if s else "no result"))
            res.setdefault((case, p), []).append((s, rt))
print()
print(f"iperf3 TCP node1 -> node2, {runs} runs of {secs} s per cell; min / median / max Mbit/s (sw0/vxm-wg MTU {mtu})")
print()
print("| path | 1 stream, Mbit/s | 8 streams, Mbit/s | 1 stream / WG alone (median) | retransmits, 1 stream (median) |")
print("|---|---:|---:|---:|---:|")
wg1 = statistics.median([s for s, _ in res[("wg", 1)] if s] or [0])
for case, name in names:
    one = [s for s, _ in res[(case, 1)] if s]
    eight = [s for s, _ in res[(case, 8)] if s]
    rts = [rt for _, rt in res[(case, 1)] if rt is not None]
    ratio = f"{statistics.median(one) / wg1:.2f}" if one and wg1 else "-"
    print(f"| {name} | {mmm(one, '{:.0f}')} | {mmm(eight, '{:.0f}')} | {ratio} | {statistics.median(rts) if rts else '-'} |")
print()
print("encrypted container, 1 stream, per run: UDP RcvbufErrors at node2 | wireguard-go CPU node1 / node2 | machine user / system / softirq (cores)")
for r in range(1, runs + 1):
    try:
        v = open(f"{work}/enc-1-{r}.cpu").read().split()
    except OSError:
        continue
    # pre: rcv, up1, wg1, up2, wg2, user, sys, soft, t ; post: same
    a, b = [float(x) for x in v[:9]], [float(x) for x in v[9:]]
    dt = b[8] - a[8]
    print(f"run {r}: {b[0] - a[0]:.0f} | {(b[2] - a[2]) / 100 / (b[1] - a[1]):.2f} / {(b[4] - a[4]) / 100 / (b[3] - a[3]):.2f} | "
          f"{(b[5] - a[5]) / 100 / dt:.2f} / {(b[6] - a[6]) / 100 / dt:.2f} / {(b[7] - a[7]) / 100 / dt:.2f}")
print(f"receiving container netns, nstat csum counters after the runs: {csum or 'none'}")
EOF
