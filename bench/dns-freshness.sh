#!/usr/bin/env bash
# Name freshness across hosts (docs/benchmarks.md, "Name freshness"): on a 3-host lab with cluster.dns on, a
# container is started, then removed, on each host in turn while another host resolves its NAME.NODE.DOMAIN in a
# loop from a container (through docker's embedded DNS, as any container asks); prints min/median/max of the time
# from `docker run` (or `docker rm -f`) returning to the other host seeing it, both ways. Root (a lab).
# Usage: bench/dns-freshness.sh [SAMPLES]
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "needs root: the lab is made of network namespaces" >&2; exit 1; }
samples=${1:-30}
VXMESH_DNS_SAMPLES=$samples cargo test --locked --test it dns::names_across_hosts_on_a_real_lab -- --exact \
  --nocapture --test-threads=1 2>&1 | grep -E '^freshness|withdrawn after|^test result'
