#!/usr/bin/env bash
# Scale on light labs (sshd per host, no docker, `docker: {mode: none}`): for each size a fresh lab, then cold
# `up --no-verify` (wall time and vxmesh's peak RSS), a no-op `up`, `status`, and the idle CPU the mesh costs the
# hosts: machine-wide busy CPU from /proc/stat over 20 s with the mesh up, minus the same over 20 s right after
# `lab create` (before `up`), in cores; and the same for the lab hosts' own processes alone. Each lab is destroyed
# right after it is measured. Prints markdown for docs/benchmarks.md. Root.
# Usage: bench/scale.sh ovs|linux SIZE...        e.g. bench/scale.sh linux 30 50 100
# Env: VXMESH=path  use that binary instead of `cargo build --release --locked`;
#      QUIET_WAIT=S at most S seconds in all (default 1200) waiting for a running `cargo mutants` to finish before
#                   a measurement; the load average and whether it was still running are printed with every size;
#      LAB=NAME     the lab's name (default bksc);
#      WINDOW=S     seconds of each CPU window (default 20); SETTLE=S seconds between `status` and the window with
#                   the mesh up (default 5).
set -euo pipefail
cd "$(dirname "$0")/.."
usage() { echo "usage: $0 ovs|linux SIZE..." >&2 && exit 1; }
[ $# -ge 2 ] || usage
backend=$1
shift
case $backend in ovs | linux) ;; *) usage ;; esac
for n in "$@"; do [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 2 ] || usage; done
if [ -n "${VXMESH:-}" ]; then
  vx=$(realpath "$VXMESH")
else
  cargo build --release --locked --quiet
  vx=$PWD/target/release/vxmesh
fi
lab=${LAB:-bksc}
window=${WINDOW:-20}
settle=${SETTLE:-5}
work=$(mktemp -d)
# shellcheck source=bench/neigh.sh
. bench/neigh.sh
raise_neigh
trap '$vx lab destroy --name $lab >/dev/null 2>&1 || true; restore_neigh; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

budget=${QUIET_WAIT:-1200}
quiet() {
  while pgrep -f 'cargo-[m]utants' >/dev/null && [ "$budget" -gt 0 ]; do
    echo "  cargo mutants is running; waiting (${budget} s of waiting left)" >&2
    sleep 30
    budget=$((budget - 30))
  done
}
load() { echo "$(cut -d' ' -f1-3 /proc/loadavg)$(pgrep -f 'cargo-[m]utants' >/dev/null && echo ', cargo mutants running')"; }
# Seconds and peak RSS (KiB) of one command; its output in $work/out, its exit code in $work/rc and, unless 0,
# on stderr.
timed() {
  local rc=0
  /usr/bin/time -f "%e %M" -o "$work/t" "$@" >"$work/out" 2>&1 || rc=$?
  echo "$rc" >"$work/rc"
  [ "$rc" -eq 0 ] || echo "  (exit $rc: ${*#"$vx "})" >&2
  tail -1 "$work/t"
}
secs() { echo "$1" | cut -d' ' -f1; }
rss() { echo "$1" | cut -d' ' -f2; }
# Jiffies of CPU (user + system, all threads) used so far by the processes in the lab's hosts' network namespaces.
labjiffies() {
  local inodes pid
  inodes=" $(python3 -c "import json; print(' '.join(n['netns'] for n in json.load(open('/var/lib/vxmesh-lab/$lab/state.json'))['nodes']))" |
    tr ' ' '\n' | while read -r ns; do stat -L -c %i "/run/netns/$ns"; done | tr '\n' ' ')"
  for pid in /proc/[0-9]*; do
    case "$inodes" in *" $(readlink "$pid/ns/net" 2>/dev/null | tr -dc 0-9) "*) cat "$pid/stat" 2>/dev/null ;; esac
  done | awk '{ sub(/^.*\) /, ""); s += $12 + $13 } END { print s + 0 }'
}
# Over $window seconds, in cores: machine-wide busy CPU (user+nice+system+irq+softirq+steal of all CPUs, from
# /proc/stat), then the CPU of the lab hosts' own processes (sshd; ovsdb-server and ovs-vswitchd on OVS hosts),
# which other load on the machine does not add to (kernel work in softirq, such as forwarding, is not in it).
cores() {
  local a b la lb
  a=$(head -1 /proc/stat)
  la=$(labjiffies)
  sleep "$window"
  b=$(head -1 /proc/stat)
  lb=$(labjiffies)
  echo "$a" "$b" | awk -v n="$(nproc)" -v l=$((lb - la)) -v hz="$(getconf CLK_TCK)" -v w="$window" '{
    for (i = 2; i <= 11; i++) x[i] = $(i + 11) - $i
    busy = x[2] + x[3] + x[4] + x[7] + x[8] + x[9]; total = busy + x[5] + x[6]
    printf "%.2f %.3f", busy / total * n, l / hz / w }'
}
sub() { awk -v a="$1" -v b="$2" -v f="$3" 'BEGIN { printf f, a - b }'; }

echo "| backend | hosts | $([ "$backend" = linux ] && echo "FDB entries per host" || echo "tunnel ports per host") | lab create | cold up | peak RSS | no-op up | status | peers up in status | machine busy CPU: before up / mesh up / difference | lab processes' CPU: before up / mesh up / difference | load average at cold up |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
for n in "$@"; do
  $vx lab destroy --name $lab >/dev/null 2>&1 || true
  quiet
  create=$(timed $vx lab create --nodes "$n" --name $lab --light --backend "$backend")
  sed "s/^  datapath: netdev.*/&\n  docker: {mode: none}/" "/var/lib/vxmesh-lab/$lab/vxmesh.yaml" >"$work/vxmesh.yaml"
  grep -q '^  docker: {mode: none}' "$work/vxmesh.yaml" || { echo "could not set docker.mode none" >&2 && exit 1; }
  inv=$work/vxmesh.yaml
  rm -f "$work/vxmesh.lock"
  l0=$(load)
  read -r mb lb <<<"$(cores)"
  quiet
  l1=$(load)
  cold=$(timed $vx up -i "$inv" --no-verify)
  noop=$(timed $vx up -i "$inv" --no-verify)
  status=$(timed $vx status -i "$inv" --json)
  # Peers seen up (BFD on OVS hosts, one ping through the mesh on kernel hosts), over all hosts.
  peers=$(python3 -c "import json, sys
h = json.load(open(sys.argv[1]))['hosts']
t = [x for n in h for x in n.get('tunnels') or []]
print(sum(x.get('state') == 'up' for x in t), '/', len(t), '(exit', open(sys.argv[2]).read().strip() + ')')" "$work/out" "$work/rc" 2>/dev/null || echo "?")
  # All the lab's hosts share this machine's IPv4 neighbour table (gc_thresh3 bounds it, across namespaces).
  neigh="neighbour entries on the machine after status: $((16#$(awk 'NR == 2 { print $1 }' /proc/net/stat/arp_cache))) (gc_thresh3 $(sysctl -n net.ipv4.neigh.default.gc_thresh3))"
  sleep "$settle"
  quiet
  l2=$(load)
  read -r ma la <<<"$(cores)"
  $vx lab destroy --name $lab >/dev/null
  echo "  $n hosts, load average: window before up $l0; cold up $l1; window with the mesh up $l2; $neigh" >&2
  printf '| %s | %d | %d | %.1f s | %.2f s | %d MiB | %.2f s | %.2f s | %s | %s / %s / %s cores | %s / %s / %s cores | %s |\n' \
    "$backend" "$n" "$((n - 1))" "$(secs "$create")" "$(secs "$cold")" "$(($(rss "$cold") / 1024))" "$(secs "$noop")" \
    "$(secs "$status")" "$peers" "$mb" "$ma" "$(sub "$ma" "$mb" %+.2f)" "$lb" "$la" "$(sub "$la" "$lb" %+.3f)" "$l1"
done
