#!/usr/bin/env bash
# The physical floors vxmesh is measured against (docs/benchmarks.md), on a lab made by `vxmesh lab create`:
#   oneshot LAB INVENTORY  every host's from-scratch build (`vxmesh render`) sent in one SSH round trip, all hosts
#                          in parallel, no facts: the least a push tool can do. Prints its seconds.
#   verify LAB INVENTORY   the plainest container check: one listener container per host, then one client
#                          container per host fetching from every peer, each phase one SSH round trip to all hosts in
#                          parallel, then cleanup. Prints its seconds.
# Root; the hosts must be reachable with the lab's key, as the inventory's `ssh.user` (through `sudo -n` when that is
# not root, as vxmesh does). The scripts are rendered before the clock starts.
set -euo pipefail
cd "$(dirname "$0")/.."
vx=${VX:-$PWD/target/release/vxmesh}
what=$1 lab=/var/lib/vxmesh-lab/$2 inv=$3
# The lab's hosts that the inventory lists (a benchmark may hold one back for add-node).
mapfile -t names < <(python3 -c "import json,sys; t=open('$inv').read(); [print(n['name']) for n in json.load(open('$lab/state.json'))['nodes'] if 'host: '+n['ip']+'}' in t or 'host: '+n['ip']+',' in t]")
mapfile -t ips < <(python3 -c "import json,sys; t=open('$inv').read(); [print(n['ip']) for n in json.load(open('$lab/state.json'))['nodes'] if 'host: '+n['ip']+'}' in t or 'host: '+n['ip']+',' in t]")
# As the inventory reaches the hosts (the lab's non-root user and `sudo -n`): the floor pays what vxmesh pays.
user=$(sed -n 's/^  user: *\([^ #]*\).*/\1/p' "$inv" | head -n1)
user=${user:-root}
become=$([ "$user" = root ] || echo "sudo -n")
ssh_to() { ssh -i "$lab/id_ed25519" -o UserKnownHostsFile="$lab/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes "$user@$1" "$become $2"; }
now() { date +%s.%N; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

case $what in
oneshot)
  for i in "${!names[@]}"; do
    "$vx" render "${names[$i]}" -i "$inv" >"$work/${names[$i]}.sh" 2>/dev/null || rm -f "$work/${names[$i]}.sh"
  done
  t0=$(now)
  for i in "${!names[@]}"; do
    [ -e "$work/${names[$i]}.sh" ] || continue
    ssh_to "${ips[$i]}" "sh -s" <"$work/${names[$i]}.sh" >/dev/null 2>&1 &
  done
  wait
  echo "$(now) - $t0" | bc
  ;;
verify)
  run=floor$$
  # Scripts sent on stdin, so no quoting passes through ssh's command line.
  cat >"$work/listen.sh" <<'LISTEN'
docker run -d --rm --name lRUN --network vxmesh busybox sh -c 'mkdir -p /www/cgi-bin && printf "#!/bin/sh\necho Content-Type: text/plain\necho\necho \$REMOTE_ADDR\n" > /www/cgi-bin/ip && chmod +x /www/cgi-bin/ip && exec httpd -f -p 7777 -h /www' >/dev/null
docker inspect -f '{{(index .NetworkSettings.Networks "vxmesh").IPAddress}}' lRUN
LISTEN
  sed -i "s/RUN/$run/g" "$work/listen.sh"
  t0=$(now)
  for i in "${!ips[@]}"; do
    ssh_to "${ips[$i]}" "sh -s" <"$work/listen.sh" >"$work/ip.$i" &
  done
  wait
  peers=$(cat "$work"/ip.* | tr '\n' ' ')
  cat >"$work/probe.sh" <<PROBE
docker run --rm --network vxmesh busybox sh -c 'for p in $peers; do (for t in 1 2 3 4 5; do timeout 2 wget -qO- http://\$p:7777/cgi-bin/ip && break; sleep 0.2; done) & done; wait'
PROBE
  for i in "${!ips[@]}"; do
    ssh_to "${ips[$i]}" "sh -s" <"$work/probe.sh" >"$work/seen.$i" 2>/dev/null &
  done
  wait
  for i in "${!ips[@]}"; do ssh_to "${ips[$i]}" "sh -c 'docker rm -f l$run >/dev/null 2>&1; true'" & done
  wait
  echo "$(now) - $t0" | bc
  # The floor must have worked: every host saw an answer from every peer (its own included).
  for i in "${!ips[@]}"; do
    [ "$(grep -c . "$work/seen.$i")" -ge "${#ips[@]}" ] || echo "verify floor: host ${ips[$i]} got $(grep -c . "$work/seen.$i") answers" >&2
  done
  ;;
*) echo "usage: bench/floors.sh oneshot|verify LAB INVENTORY" >&2; exit 1 ;;
esac
