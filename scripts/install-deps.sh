#!/usr/bin/env bash
# Installs what vxmesh's tests and lab need on Debian 12, idempotently: nothing is fetched when all is present.
set -euo pipefail
packages=(openvswitch-switch docker.io containerd openssh-server openssh-client busybox-static iputils-ping iproute2 ethtool iperf3 wireguard-go wireguard-tools tcpdump nftables iptables procps psmisc python3 bc systemd sudo dnsmasq-base curl)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# The packages' own services are not started on this machine: each lab node boots its own systemd, which starts them.
