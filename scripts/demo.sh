#!/usr/bin/env bash
# The demo: a 3-host lab on this machine (real sshd, Open vSwitch and docker in namespaces), the mesh built on it
# from vxmesh's own scripts, and containers on different hosts talking without NAT. Needs root on Debian.
# Destroy it afterwards with: ./target/release/vxmesh lab destroy
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "the demo builds a lab of network namespaces: run it as root" >&2; exit 1; }
scripts/install-deps.sh
cargo build --release --locked --quiet
vx=./target/release/vxmesh

$vx lab destroy >/dev/null 2>&1 || true
$vx lab create --nodes 3
inv=/var/lib/vxmesh-lab/lab/vxmesh.yaml
lab=/var/lib/vxmesh-lab/lab
ssh_node() {
  ssh -i "$lab/id_ed25519" -o UserKnownHostsFile="$lab/known_hosts" -o StrictHostKeyChecking=yes \
      -o BatchMode=yes -o LogLevel=ERROR "root@$1" "${@:2}"
}

echo
echo "== The plan (vxmesh plan --offline), first lines:"
$vx plan --offline -i "$inv" | head -8
echo
echo "== Building each host with its own script (vxmesh render NODE | ssh NODE sh) ..."
for i in 1 2 3; do
  $vx render "node$i" -i "$inv" | ssh_node "192.168.77.1$i" sh 2>/dev/null
  echo "   node$i done"
done

echo
echo "== A listener container on node2, a client container on node1:"
ssh_node 192.168.77.12 'docker rm -f demo-listener >/dev/null 2>&1; docker run -d --name demo-listener --network vxmesh busybox \
  nc -ll -p 5000 -e echo "hello from a container on node2"' >/dev/null
target=$(ssh_node 192.168.77.12 "docker inspect -f '{{.NetworkSettings.Networks.vxmesh.IPAddress}}' demo-listener")
echo "   listener at $target"
ssh_node 192.168.77.11 "docker run --rm --network vxmesh busybox sh -c 'echo \"   client at \$(hostname -i)\"; nc -w 3 $target 5000; ping -c 2 -W 2 $target | tail -2'"
echo
echo "The lab is still up. Try: ssh -i $lab/id_ed25519 -o UserKnownHostsFile=$lab/known_hosts root@192.168.77.11"
echo "Destroy it with: $vx lab destroy"
