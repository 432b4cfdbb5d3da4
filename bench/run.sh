#!/usr/bin/env bash
# The benchmark: fresh labs of 3 and 10 nodes (docker) and 30 light nodes (no docker), vxmesh side by side with
# the classic recipe over plain ssh (bench/manual.sh). Prints markdown for docs/benchmarks.md. Root; ~5 minutes.
# Usage: bench/run.sh [SIZES...]   e.g. bench/run.sh 3 10 30L   (L = light: no docker, docker.mode none)
#        NO_MANUAL=1 skips the by-hand comparison (its columns then read 0).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
vx=$PWD/target/release/vxmesh
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(3 10 30L)
work=$(mktemp -d)
# shellcheck source=bench/neigh.sh
. bench/neigh.sh
raise_neigh
trap 'rm -rf "$work"; $vx lab destroy --name bench >/dev/null 2>&1 || true; restore_neigh' EXIT
# Seconds and peak RSS (KiB) of one command.
timed() { /usr/bin/time -f "%e %M" -o "$work/t" "$@" >"$work/out" 2>&1 || echo "  (exit $?: $*)" >&2; cat "$work/t" | tail -1; }
secs() { echo "$1" | cut -d' ' -f1; }
rss() { echo "$1" | cut -d' ' -f2; }
echo "| nodes | lab create | one-shot floor | cold up (x floor) | peak RSS | no-op up (x floor) | status (x no-op) | verify floor | verify (x floor; pairs) | add-node | by hand over ssh | by hand / vxmesh |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for size in "${sizes[@]}"; do
  n=${size%L}; light=""; mode=network
  [ "$size" != "$n" ] && light=--light && mode=none
  $vx lab destroy --name bench >/dev/null 2>&1 || true
  create=$(timed $vx lab create --nodes $((n + 1)) --name bench $light)
  lab=/var/lib/vxmesh-lab/bench
  # The inventory without the last node (added later by add-node), in its own directory.
  last=$(python3 -c "import json; print(json.load(open('$lab/state.json'))['nodes'][-1]['ip'])")
  grep -v "host: $last}" "$lab/vxmesh.yaml" | sed "s/^  datapath: netdev.*/&\n  docker: {mode: $mode}/" > "$work/vxmesh.yaml"
  inv=$work/vxmesh.yaml
  rm -f "$work/vxmesh.lock"
  # Floor 1 on the same fresh hosts: their whole build in one round trip each, all at once; then gone again.
  floor=$(VX=$vx bench/floors.sh oneshot bench "$inv")
  $vx down --yes -i "$inv" >/dev/null
  cold=$(timed $vx up -i "$inv" --no-verify)
  noop=$(timed $vx up -i "$inv" --no-verify)
  status=$(timed $vx status -i "$inv")
  verify=$(timed $vx verify -i "$inv")
  vfloor=$([ -z "$light" ] && VX=$vx bench/floors.sh verify bench "$inv" || echo -)
  add=$(timed $vx add-node "node$((n + 1))" --host "$last" -i "$inv")
  $vx remove-node "node$((n + 1))" --yes -i "$inv" >/dev/null
  $vx down --yes -i "$inv" >/dev/null
  # By hand: the same N hosts, the classic page of commands over plain ssh, host after host.
  manual=$([ -z "${NO_MANUAL:-}" ] && timed bench/manual.sh bench ${light:+--no-docker} || echo "0 0")
  ratio=$(echo "scale=1; $(secs "$manual") / $(secs "$cold")" | bc)
  echo "load average after ${size}: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  x() { echo "scale=2; $1 / $2" | bc; }
  vcell=$([ "$vfloor" = - ] && printf '%.1f s (switches; %d)' "$(secs "$verify")" "$((n * (n - 1)))" \
    || printf '%.1f s (%sx; %d)' "$(secs "$verify")" "$(x "$(secs "$verify")" "$vfloor")" "$((n * (n - 1)))")
  printf '| %s%s | %.1f s | %.2f s | %.2f s (%sx) | %d MiB | %.2f s (%sx) | %.2f s (%sx) | %s | %s | %.1f s | %.1f s | %sx |\n' \
    "$n" "${light:+ light}" "$(secs "$create")" "$floor" "$(secs "$cold")" "$(x "$(secs "$cold")" "$floor")" \
    "$(( $(rss "$cold") / 1024 ))" "$(secs "$noop")" "$(x "$(secs "$noop")" "$floor")" \
    "$(secs "$status")" "$(x "$(secs "$status")" "$(secs "$noop")")" \
    "$([ "$vfloor" = - ] && echo - || printf '%.1f s' "$vfloor")" "$vcell" "$(secs "$add")" "$(secs "$manual")" "$ratio"
  $vx lab destroy --name bench >/dev/null
done
