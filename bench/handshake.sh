#!/usr/bin/env bash
# The real cost of one SSH connection as vxmesh makes it: a russh handshake (TCP, key exchange, the host key checked
# against known_hosts, public key authentication) and `true` run over it, COUNT times (default 20), against an
# OpenSSH sshd started here on a high port of 127.0.0.1 with a throwaway host key and user key in a temporary
# directory; sshd is stopped and the directory removed afterwards, also on failure. Root (sshd's privilege
# separation). Prints min / median / max; docs/scaling.md extrapolates it to 1,000 hosts.
#   bench/handshake.sh [COUNT]          (FLEET_BIN=path: that build of benches/fleet.rs instead of cargo bench's)
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-20}
port=${PORT:-42022}
work=$(mktemp -d)
made_run=
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
  [ -n "$made_run" ] && rmdir /run/sshd 2>/dev/null
  true
}
trap cleanup EXIT
[ -d /run/sshd ] || { mkdir -p /run/sshd && made_run=1; }
ssh-keygen -q -t ed25519 -N '' -f "$work/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$work/user_key"
cp "$work/user_key.pub" "$work/authorized_keys"
chmod 600 "$work/authorized_keys"
echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$work/host_key.pub")" >"$work/known_hosts"
cat >"$work/sshd_config" <<CONF
Port $port
ListenAddress 127.0.0.1
HostKey $work/host_key
AuthorizedKeysFile $work/authorized_keys
PidFile $work/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxStartups 100
CONF
/usr/sbin/sshd -D -e -f "$work/sshd_config" 2>"$work/sshd.log" &
pid=$!
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
args=(--handshake "127.0.0.1:$port" "$(id -un)" "$work/user_key" "$work/known_hosts" "$count")
# For scale: OpenSSH's client doing the same (a new connection and `true` each time), wall time in ms.
times=()
for _ in $(seq "$count"); do
  t0=$(date +%s%N)
  ssh -q -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$work/known_hosts" \
    -o IdentitiesOnly=yes -i "$work/user_key" -p "$port" "$(id -un)@127.0.0.1" true
  times+=($((($(date +%s%N) - t0) / 1000)))
done
printf '%s\n' "${times[@]}" | sort -n | awk '{ v[NR] = $1 } END { printf "OpenSSH ssh ... true, %d times: %.2f / %.2f / %.2f ms (min / median / max)\n\n", NR, v[1] / 1000, v[int((NR + 1) / 2)] / 1000, v[NR] / 1000 }'
if [ -n "${FLEET_BIN:-}" ]; then
  "$FLEET_BIN" "${args[@]}"
else
  cargo bench -q --bench fleet -- "${args[@]}"
fi
