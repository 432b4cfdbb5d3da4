#!/usr/bin/env bash
# The demo: a 3-host lab on this machine (real sshd, Open vSwitch and docker in namespaces), the mesh built on it
# by `vxmesh up` over SSH, and the verification matrix. Needs root on Debian.
# Destroy the lab afterwards with: ./target/release/vxmesh lab destroy
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "the demo builds a lab of network namespaces: run it as root" >&2; exit 1; }
scripts/install-deps.sh
cargo build --release --locked --quiet
vx=./target/release/vxmesh

$vx lab destroy >/dev/null 2>&1 || true
$vx lab create --nodes 3
inv=/var/lib/vxmesh-lab/lab/vxmesh.yaml

echo
echo "== vxmesh up -i $inv"
$vx up -i "$inv"
echo
echo "== vxmesh up again: nothing left to do"
$vx up -i "$inv" --no-verify
echo
echo "== vxmesh status"
# BFD sessions at 1 s intervals take a few seconds to come up after a cold build: wait for them (exit 3 until then).
for _ in 1 2 3 4 5 6 7 8 9 10; do $vx status -i "$inv" >/dev/null && break; sleep 1; done
$vx status -i "$inv"
echo
echo "The lab is still up: vxmesh plan|verify|status|down -i $inv"
echo "Destroy it with: $vx lab destroy"
