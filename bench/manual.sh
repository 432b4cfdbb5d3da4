#!/usr/bin/env bash
# The classic recipe the way it is done by hand: the page of commands, host after host, one `ssh` per command.
# Builds the same mesh as `vxmesh up` on a lab (userspace datapath), for the side-by-side in bench/run.sh.
# Usage: bench/manual.sh LAB [--no-docker]
set -euo pipefail
lab=/var/lib/vxmesh-lab/$1
docker=1
[ "${2:-}" = --no-docker ] && docker=0
mapfile -t ips < <(python3 -c "import json; [print(n['ip']) for n in json.load(open('$lab/state.json'))['nodes']]")
run() { ssh -i "$lab/id_ed25519" -o UserKnownHostsFile="$lab/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes "root@$1" "$2"; }
n=${#ips[@]}
for i in $(seq 0 $((n - 1))); do
  h=${ips[$i]} id=$((i + 1))
  sub="172.$((16 + i + (i >= 1 ? 1 : 0))).0.0/16"   # skips docker0's 172.17.0.0/16, as vxmesh does
  gw="${sub%.0.0/16}.0.1"
  run "$h" "sysctl -qw net.ipv4.ip_forward=1"
  run "$h" "ovs-vsctl add-br sw0 -- set bridge sw0 datapath_type=netdev -- set interface sw0 mtu_request=1450"
  for j in $(seq 0 $((n - 1))); do
    [ "$j" = "$i" ] && continue
    run "$h" "ovs-vsctl add-port sw0 vx-node$((j + 1)) -- set interface vx-node$((j + 1)) type=vxlan options:remote_ip=${ips[$j]} options:key=42 -- set port vx-node$((j + 1)) protected=true"
  done
  run "$h" "ip addr add 172.30.0.$id/12 dev sw0"
  run "$h" "ip link set sw0 up"
  if [ "$docker" = 1 ]; then
    run "$h" "docker network create --subnet $sub --gateway $gw -o com.docker.network.bridge.name=br-vxmesh -o com.docker.network.bridge.enable_ip_masquerade=false -o com.docker.network.driver.mtu=1450 vxmesh >/dev/null"
    run "$h" "ip link add vxm-sw0 mtu 1450 type veth peer name vxm-dkr mtu 1450"
    run "$h" "ethtool -K vxm-sw0 tx off >/dev/null"
    run "$h" "ethtool -K vxm-dkr tx off >/dev/null"
    run "$h" "ip link set vxm-sw0 up"
    run "$h" "ip link set vxm-dkr up"
    run "$h" "ovs-vsctl add-port sw0 vxm-sw0"
    run "$h" "ip link set vxm-dkr master br-vxmesh"
    run "$h" "iptables -t nat -I POSTROUTING -s $sub ! -d 172.16.0.0/12 -j MASQUERADE"
  fi
  run "$h" "iptables -I FORWARD -s 172.16.0.0/12 -d 172.16.0.0/12 -j ACCEPT"
done
