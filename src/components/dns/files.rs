//! The files a host gets for names across hosts, rendered from its [`Spec`]: dnsmasq's configuration, the watcher
//! script and the two systemd units. Each carries its fingerprint, so the facts tell whether it is current.

use std::fmt::Write as _;

use super::Spec;
use crate::components::boot::stamped;
use crate::model::names;
use crate::shell::{self, Stmt, Word};

/// The line that carries each file's fingerprint (after the shebang in the script, first elsewhere).
pub const HASH: &str = "# vxmesh-dns-hash: ";

/// `body` with its fingerprint line first (second, after a shebang).
fn with_hash(body: String) -> String {
    stamped(body, HASH)
}

/// The fingerprint written into a rendered file.
pub fn hash_of(content: &str) -> Option<&str> {
    content.lines().find_map(|l| l.strip_prefix(HASH))
}

/// The label-encoded form of `domain` as it ends every query for a name in it (`\x06vxmesh\x00`), as iptables'
/// string match prints it: one hex run between bars.
pub fn qname_suffix_hex(domain: &str) -> String {
    let mut hex = String::from("|");
    for label in domain.split('.') {
        let _ = write!(hex, "{:02x}", label.len());
        for b in label.bytes() {
            let _ = write!(hex, "{b:02x}");
        }
    }
    hex.push_str("00|");
    hex
}

/// dnsmasq: answers the cluster's domain and the mesh's reverse zones from the hosts files in the runtime
/// directory (re-read by inotify, no reload), on the switch address only, refuses everything else (no upstream: it
/// forwards nothing), and serves the file peers fetch over TFTP on the same address. The domain's `local=` line
/// comes first: verify reads the host's domain from it.
pub fn dnsmasq_conf(spec: &Spec) -> String {
    let run = names::DNS_RUN_DIR;
    let body = format!(
        "# Written by vxmesh: this host's name server for the mesh's containers. Changes are overwritten.\n\
         listen-address={listen}\n\
         bind-dynamic\n\
         port=53\n\
         no-resolv\n\
         no-hosts\n\
         no-poll\n\
         local=/{domain}/\n\
         {reverse}\
         hostsdir={run}/hosts\n\
         enable-tftp\n\
         tftp-root={run}/publish\n\
         tftp-single-port\n\
         pid-file=\n\
         log-facility=-\n",
        listen = spec.listen,
        domain = spec.domain,
        reverse = spec.reverse.iter().map(|z| format!("local=/{z}/\n")).collect::<String>(),
    );
    with_hash(body)
}

pub fn server_unit() -> String {
    let body = format!(
        "[Unit]\nDescription=vxmesh: names of the mesh's containers (dnsmasq on this host's switch address)\n\
         After=network-online.target vxmesh.service docker.service\nWants=network-online.target\n\n\
         [Service]\nExecStartPre=/bin/mkdir -p {run}/hosts {run}/publish\n\
         ExecStart=/usr/sbin/dnsmasq --keep-in-foreground --conf-file={conf}\nRestart=always\nRestartSec=1\n\n\
         [Install]\nWantedBy=multi-user.target\n",
        run = names::DNS_RUN_DIR,
        conf = names::DNS_CONFIG,
    );
    with_hash(body)
}

pub fn watch_unit() -> String {
    let body = format!(
        "[Unit]\nDescription=vxmesh: publish this host's container names to the mesh and fetch its peers'\n\
         After=docker.service {server}\n\n\
         [Service]\nExecStart=/bin/sh {script}\nRestart=always\nRestartSec=1\n\n\
         [Install]\nWantedBy=multi-user.target\n",
        server = names::DNS_UNIT,
        script = names::DNS_WATCHER,
    );
    with_hash(body)
}

/// The Go template `docker inspect` prints each container with: its short id and address on the mesh's network
/// (docker's own values, first, so no name can shift them), then its aliases there and its name. Names and
/// aliases go through `%q`: whatever docker holds arrives quoted, and a newline in it cannot start a line.
fn inspect_format(network: &str) -> String {
    let quoted = serde_json::to_string(network).expect("a string serializes");
    String::from(r#"{{printf "%.12s" .Id}} {{with index .NetworkSettings.Networks "#)
        + &quoted
        + r#"}}{{.IPAddress}}{{range .Aliases}} {{printf "%q" .}}{{end}}{{end}} {{printf "%q" .Name}}"#
}

/// The watcher: one sh script (docker's events in, hosts files out), with its values set first as quoted words.
pub fn watcher(spec: &Spec) -> String {
    let peers: String = spec.peers.iter().map(|p| format!("{} {} {}\n", p.label, p.switch, p.subnet)).collect();
    let set = |var: &'static str, value: String| Stmt::Set { var, value: Word::Data(value) };
    let head = [
        set("domain", spec.domain.clone()),
        set("node", spec.node.clone()),
        set("network", spec.network.clone()),
        set("subnet", spec.subnet.to_string()),
        set("peers", peers),
        set("run", names::DNS_RUN_DIR.to_string()),
        set("format", inspect_format(&spec.network)),
    ];
    let body = format!("#!/bin/sh\n{}{WATCHER_BODY}", shell::render(&head, 0));
    with_hash(body)
}

/// Fixed text: everything from outside reaches it through the variables set above it, always double-quoted.
const WATCHER_BODY: &str = r##"# Written by vxmesh (docs/architecture.md, "Names"): follows docker's events, publishes this host's container
# names and fetches its peers' every half second. Every name read from docker or a peer is checked before use.
set -u
set -f
export LC_ALL=C
umask 022
HOSTS="$run/hosts"
PUB="$run/publish"
TMP="$run/tmp"
mkdir -p "$HOSTS" "$PUB" "$TMP"

log() { printf 'vxmesh-dns: %s\n' "$*" >&2; }

# One DNS label as vxmesh accepts it (model::inventory::is_label): 1 to 63 of a-z 0-9 -, no - at either end.
is_label() {
  case $1 in ''|-*|*-|*[!a-z0-9-]*) return 1 ;; esac
  [ ${#1} -le 63 ]
}

# A dotted quad as a number; anything else fails (leading zeros too: sh would read them as octal).
ip_num() {
  case $1 in ''|*[!0-9.]*|.*|*.|*..*) return 1 ;; esac
  IFS=.
  set -- $1
  unset IFS
  [ $# -eq 4 ] || return 1
  for _x; do
    case $_x in 0?*) return 1 ;; esac
    [ ${#_x} -le 3 ] && [ "$_x" -le 255 ] || return 1
  done
  echo $(( ($1 << 24) + ($2 << 16) + ($3 << 8) + $4 ))
}

# Whether address $1 lies in network $2 (a.b.c.d/len).
in_net() {
  _ia=$(ip_num "$1") && _in=$(ip_num "${2%/*}") || return 1
  _il=${2#*/}
  _im=$(( _il == 0 ? 0 : (4294967295 << (32 - _il)) & 4294967295 ))
  [ $(( _ia & _im )) -eq $(( _in & _im )) ]
}

# Replaces $2 by $1 when they differ: one rename, so dnsmasq (inotify) reads only whole files.
install_file() {
  if cmp -s "$1" "$2"; then rm -f "$1"; else mv -f "$1" "$2"; fi
}

# "ADDR LABEL" lines in, dnsmasq hosts lines out: LABEL.$1.DOMAIN first (the reverse name), then LABEL.DOMAIN.
hosts_of() {
  while read -r _a _l; do
    printf '%s %s.%s.%s %s.%s\n' "$_a" "$_l" "$1" "$domain" "$_l" "$domain"
  done
}

# This host's running containers on the mesh's network: "ADDR LABEL" per name and alias that is a label.
own() {
  _ids=$(docker ps -q --filter "network=$network") || return 1
  : > "$TMP/own"
  [ -n "$_ids" ] || return 0
  docker inspect --format "$format" $_ids > "$TMP/own.raw" 2>/dev/null || true
  while read -r _id _addr _names; do
    if ! in_net "${_addr:-}" "$subnet"; then
      continue
    fi
    for _w in ${_names:-}; do
      case $_w in
        \"*\") _l=${_w#\"}; _l=${_l%\"}; _l=${_l#/} ;;
        *) log "skipped $_w: not one name"; continue ;;
      esac
      _l=$(printf '%s' "$_l" | tr 'A-Z' 'a-z')
      [ "$_l" = "$_id" ] && continue
      if is_label "$_l"; then
        printf '%s %s\n' "$_addr" "$_l" >> "$TMP/own"
      else
        log "skipped $_w ($_addr): not a DNS label"
      fi
    done
  done < "$TMP/own.raw"
}

# The file peers fetch starts with a comment line: curl's TFTP client times out on an empty file.
publish() {
  own || return 0
  sort -u "$TMP/own" > "$TMP/sorted"
  hosts_of "$node" < "$TMP/sorted" > "$TMP/self"
  { echo "# vxmesh: container names of $node"; cat "$TMP/sorted"; } > "$TMP/records"
  install_file "$TMP/self" "$HOSTS/self"
  install_file "$TMP/records" "$PUB/records"
}

# Fetches peer $1's records from its switch address $2; keeps only addresses of its subnet $3 and labels.
pull_one() {
  if curl -sf --max-time 0.5 --max-filesize 4000000 -o "$TMP/pull.$1" "tftp://$2/records"; then
    rm -f "$TMP/fail.$1"
    : > "$TMP/peer.$1"
    while read -r _a _l _x; do
      case $_a in '#'*) continue ;; esac
      if [ -z "${_x:-}" ] && in_net "$_a" "$3" && is_label "${_l:-}"; then
        printf '%s %s\n' "$_a" "$_l" >> "$TMP/peer.$1"
      else
        log "skipped a record from $1: not an address of $3 and a label"
      fi
    done < "$TMP/pull.$1"
    hosts_of "$1" < "$TMP/peer.$1" > "$TMP/hosts.$1"
    install_file "$TMP/hosts.$1" "$HOSTS/peer-$1"
  else
    _n=$(cat "$TMP/fail.$1" 2>/dev/null || echo 0)
    _n=$(( _n + 1 ))
    echo "$_n" > "$TMP/fail.$1"
    if [ "$_n" -ge 3 ] && [ -e "$HOSTS/peer-$1" ]; then
      log "$1 does not answer: its names are withdrawn until it does"
      rm -f "$HOSTS/peer-$1"
    fi
  fi
}

pull_loop() {
  while :; do
    printf '%s' "$peers" | {
      while read -r _p _s _n; do
        [ -n "$_p" ] && pull_one "$_p" "$_s" "$_n" &
      done
      wait
    }
    sleep 0.5
  done
}

# main
# Names of peers no longer in the mesh go with the files of an earlier run.
rm -f "$HOSTS"/peer-* "$TMP"/fail.*
publish
pull_loop &
PULLER=$!
trap 'kill "$PULLER" 2>/dev/null' EXIT
trap 'exit 0' INT TERM
docker events --filter type=container --filter type=network --format '{{.Action}}' | while read -r _action; do
  case $_action in
    start|die|destroy|rename|connect|disconnect|unpause) publish ;;
  esac
done
log "docker's events ended; systemd starts the watcher again"
exit 1
"##;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qname_suffix_is_label_encoded() {
        assert_eq!(qname_suffix_hex("vxmesh"), "|0676786d65736800|");
        assert_eq!(qname_suffix_hex("a.bc"), "|0161026263 00|".replace(' ', ""));
    }

    #[test]
    fn the_inspect_template_quotes_every_name() {
        let f = inspect_format("vxmesh");
        assert_eq!(
            f,
            r#"{{printf "%.12s" .Id}} {{with index .NetworkSettings.Networks "vxmesh"}}{{.IPAddress}}{{range .Aliases}} {{printf "%q" .}}{{end}}{{end}} {{printf "%q" .Name}}"#
        );
    }

    #[test]
    fn fingerprints_follow_the_content() {
        let a = with_hash("#!/bin/sh\necho a\n".into());
        assert!(a.starts_with("#!/bin/sh\n# vxmesh-dns-hash: "), "{a}");
        assert_ne!(hash_of(&a), hash_of(&with_hash("#!/bin/sh\necho b\n".into())));
        assert_eq!(hash_of(&with_hash("x\n".into())).map(str::len), Some(16));
    }
}
