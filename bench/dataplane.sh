#!/usr/bin/env bash
# Data plane on a fresh 3-node lab: `vxmesh verify --bandwidth` (iperf3 over the mesh, container to container,
# next to host to host on the underlay; ping latency; TCP MSS; IP fragments created). Root.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
vx=$PWD/target/release/vxmesh
trap '$vx lab destroy --name dp >/dev/null 2>&1 || true' EXIT
$vx lab destroy --name dp >/dev/null 2>&1 || true
$vx lab create --nodes 3 --name dp >/dev/null
$vx up -i /var/lib/vxmesh-lab/dp/vxmesh.yaml --no-verify >/dev/null
$vx verify -i /var/lib/vxmesh-lab/dp/vxmesh.yaml --bandwidth
