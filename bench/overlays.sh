#!/usr/bin/env bash
# Data plane against Docker Swarm's overlay, in one run on this machine: on the same two kernel-backend lab hosts
# (plain eth0 underlay), Swarm's overlay (`docker swarm init/join`, `docker network create -d overlay --attachable`,
# and `--opt encrypted`), vxmesh's kernel backend, and vxmesh's kernel backend over WireGuard; then on two OVS lab
# hosts (OVS's userspace datapath, underlay through br-phy, the only OVS this kernel can run) vxmesh's OVS backend.
# Each: iperf3 container to container, 1 and 4 TCP streams, RUNS runs of SECS seconds; the machine's CPU seconds
# (both hosts share its cores; so run it on an otherwise quiet machine) per GB received. Prints markdown rows
# (min / median / max). Root; about 5 minutes.
# Usage: bench/overlays.sh [RUNS] [SECS]           (default: 3 5)
# Env: VXMESH=path  use that binary instead of `cargo build --release --locked`.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
secs=${2:-5}
[[ $runs =~ ^[1-9][0-9]*$ && $secs =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [RUNS] [SECS]" >&2 && exit 1; }
if [ -n "${VXMESH:-}" ]; then
  vx=$(realpath "$VXMESH")
else
  cargo build --release --locked --quiet
  vx=$PWD/target/release/vxmesh
fi
work=$(mktemp -d)
labs=(bkovk bkovo)
cleanup() {
  for l in "${labs[@]}"; do $vx lab destroy --name "$l" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

lab=""
on() { # on NODE SCRIPT: runs SCRIPT as root on a node of the current lab, over SSH with its key and known_hosts
  local d=/var/lib/vxmesh-lab/$lab ip
  ip=$(python3 -c "import json,sys; s=json.load(open('$d/state.json')); print([n['ip'] for n in s['nodes'] if n['name']=='$1'][0])")
  timeout 120 ssh -i "$d/id_ed25519" -o UserKnownHostsFile="$d/known_hosts" -o BatchMode=yes -o LogLevel=ERROR \
    "root@$ip" "$2"
}
busy_jiffies() { awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat; }

# measure LABEL NETWORK: iperf3 between a container on node2 (client) and one on node1 (server).
measure() {
  local label=$1 net=$2 sip spid cpid
  on node1 "docker rm -f ipf-s >/dev/null 2>&1; docker run -d --name ipf-s --network $net busybox sleep 3600 >/dev/null"
  on node2 "docker rm -f ipf-c >/dev/null 2>&1; docker run -d --name ipf-c --network $net busybox sleep 3600 >/dev/null"
  sip=$(on node1 "docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' ipf-s")
  spid=$(on node1 "docker inspect -f '{{.State.Pid}}' ipf-s")
  cpid=$(on node2 "docker inspect -f '{{.State.Pid}}' ipf-c")
  on node1 "nsenter -t $spid -n iperf3 -s -D --pidfile /run/ipf-s.pid"
  sleep 0.5
  for streams in 1 4; do
    for r in $(seq "$runs"); do
      local j0 j1 out=$work/$label-$streams-$r.json
      j0=$(busy_jiffies)
      on node2 "nsenter -t $cpid -n iperf3 -c $sip -P $streams -t $secs -J" >"$out" || echo '{}' >"$out"
      j1=$(busy_jiffies)
      echo "$label $streams $r $((j1 - j0)) $(cut -d' ' -f1 /proc/loadavg)" >>"$work/cpu"
    done
  done
  on node1 'kill $(cat /run/ipf-s.pid) 2>/dev/null; docker rm -f ipf-s >/dev/null'
  on node2 'docker rm -f ipf-c >/dev/null'
}

# A ping from a container on node2 to one on node1: whether a network carries traffic at all.
carries() {
  local net=$1 ip
  on node1 "docker run -d --name png-s --network $net busybox sleep 600 >/dev/null"
  ip=$(on node1 "docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' png-s")
  local rc=0
  on node2 "docker run --rm --network $net busybox ping -c 3 -W 2 $ip >/dev/null" || rc=$?
  on node1 'docker rm -f png-s >/dev/null'
  return $rc
}

inventory() { # inventory EXTRA-CLUSTER-LINES: the lab's inventory with lines added under cluster:
  sed "s|^cluster:|cluster:\n$1|" "/var/lib/vxmesh-lab/$lab/vxmesh.yaml" >"$work/$lab.yaml"
  echo "$work/$lab.yaml"
}

mesh() { # mesh LABEL EXTRA-CLUSTER-LINES
  local inv
  inv=$(inventory "$2")
  $vx up -i "$inv" --no-verify -q >"$work/up.log" 2>&1 || { cat "$work/up.log" >&2; exit 1; }
  measure "$1" vxmesh
  $vx down -i "$inv" -y --force -q >"$work/down.log" 2>&1 || { cat "$work/down.log" >&2; exit 1; }
}

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
lab=bkovk
$vx lab destroy --name $lab >/dev/null 2>&1 || true
$vx lab create --name $lab --nodes 2 --backend linux -q >/dev/null
ip1=$(python3 -c "import json; print(json.load(open('/var/lib/vxmesh-lab/$lab/state.json'))['nodes'][0]['ip'])")
on node1 "docker swarm init --advertise-addr $ip1 >/dev/null"
token=$(on node1 'docker swarm join-token -q worker')
on node2 "docker swarm join --token $token $ip1:2377 >/dev/null"
on node1 'docker network create -d overlay --attachable swarm-plain >/dev/null'
measure swarm swarm-plain
on node1 'docker network create -d overlay --attachable --opt encrypted swarm-enc >/dev/null'
if carries swarm-enc; then
  measure swarm-encrypted swarm-enc
else
  echo "swarm-encrypted: no traffic between containers; dockerd says:" \
    "$(on node2 'grep -m1 "Failed Adding" /var/log/dockerd.log | cut -c1-60; grep -m1 -o "function not implemented" /var/log/dockerd.log')"
fi
# Leaving a swarm keeps docker_gwbridge (172.18.0.0/16), which vxmesh's preflight rightly refuses to overlap.
for n in node2 node1; do on $n 'docker swarm leave --force >/dev/null; docker network rm docker_gwbridge >/dev/null'; done
mesh vxmesh-kernel ""
mesh vxmesh-kernel-wireguard "  encryption: wireguard"
$vx lab destroy --name $lab >/dev/null

lab=bkovo
$vx lab destroy --name $lab >/dev/null 2>&1 || true
$vx lab create --name $lab --nodes 2 --backend ovs -q >/dev/null
mesh vxmesh-ovs-netdev ""
$vx lab destroy --name $lab >/dev/null

python3 - "$work" <<'PY'
import json, statistics, sys, collections
work = sys.argv[1]
hz = 100  # USER_HZ
rows = collections.OrderedDict()
for line in open(f"{work}/cpu"):
    label, streams, run, jiffies, load = line.split()
    try:
        end = json.load(open(f"{work}/{label}-{streams}-{run}.json"))["end"]
        bps, nbytes = end["sum_received"]["bits_per_second"], end["sum_received"]["bytes"]
    except (KeyError, ValueError):
        print(f"{label} {streams} streams run {run}: iperf3 gave no result")
        continue
    rows.setdefault((label, int(streams)), []).append((bps / 1e9, int(jiffies) / hz / (nbytes / 1e9), float(load)))
def mmm(v, fmt):
    return " / ".join(fmt.format(x) for x in (min(v), statistics.median(v), max(v)))
print("| network | streams | Gbit/s (min / median / max) | CPU s per GB received | load avg |")
print("|---|---:|---:|---:|---:|")
for (label, streams), v in rows.items():
    print(f"| {label} | {streams} | {mmm([x[0] for x in v], '{:.2f}')} | {mmm([x[1] for x in v], '{:.2f}')} | "
          f"{mmm([x[2] for x in v], '{:.1f}')} |")
PY
