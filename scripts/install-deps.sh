#!/usr/bin/env bash
# Installs what vxmesh's tests and lab need on Debian 12, idempotently: nothing is fetched when all is present.
set -euo pipefail
packages=(openvswitch-switch docker.io containerd openssh-server openssh-client busybox-static iputils-ping iproute2 ethtool iperf3 wireguard-go wireguard-tools tcpdump nftables iptables procps psmisc python3 bc systemd sudo dnsmasq-base curl firewalld)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # No package's service may start on this machine (firewalld here would filter the lab's gateway): a policy-rc.d
  # refuses every start while they install, unless the machine has one of its own already.
  made=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get install -y -q --no-install-recommends "${missing[@]}"
  if [ -n "$made" ]; then
    rm -f /usr/sbin/policy-rc.d
    trap - EXIT
  fi
fi
# A firewalld in this machine's own network namespace would filter the lab's gateway: none may run here. (The
# package enables its unit in this machine's /etc; a lab node's /etc/systemd/system is an opaque layer of the lab's
# own units, src/lab/units.rs, so firewalld runs only in nodes made with `lab create --firewalld`.)
for pid in $(pgrep -x firewalld || true); do
  if [ "$(readlink "/proc/$pid/ns/net")" = "$(readlink /proc/self/ns/net)" ]; then
    echo "install-deps: firewalld runs on this machine itself (pid $pid); stop it, the lab's hosts run their own" >&2
    exit 1
  fi
done
# The packages' own services are not started on this machine: each lab node boots its own systemd, which starts them.
