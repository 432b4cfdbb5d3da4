#!/usr/bin/env bash
# The demo: plans the classic three-host mesh of inventory.example.yaml and prints what vxmesh would build.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
./target/release/vxmesh plan --offline -i inventory.example.yaml
echo
echo "That was the offline plan: every command vxmesh would run on each host. One host's script alone:"
echo "  ./target/release/vxmesh render vm1 -i inventory.example.yaml"
