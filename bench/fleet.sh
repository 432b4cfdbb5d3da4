#!/usr/bin/env bash
# The laptop's own cost of `up` and `status` at 100, 1,000 and 3,000 simulated hosts (docs/benchmarks.md, "The
# laptop at scale, simulated"), then one real russh handshake + exec on loopback (bench/handshake.sh, root only).
# Prints markdown; fails if any run's second `up` changes something or its `status` is not clean.
#   bench/fleet.sh [SIZES...] [--runs N] [--kinds ovs,wg] [--forks N] [--rtt-ms MS] [--no-record] [--no-breakdown]
# Defaults: 100 1000 3000, 3 runs, both kinds, --forks 200, 20 ms per round trip, the run record on (as `up`
# writes it). The converged hosts' facts are written to a temporary directory first ($FLEET_TMP, else $TMPDIR):
# about 2.5 GB at 3,000 OVS hosts; it is removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -q --bench fleet -- "$@"
if [ "$(id -u)" = 0 ] && [ -x /usr/sbin/sshd ]; then
  echo
  bench/handshake.sh 20
fi
