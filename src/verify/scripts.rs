//! The scripts verification runs on the hosts: listener, client probes, switch probes, iperf3, cleanup.
//! Every string from the inventory or the command line is quoted where it meets the shell.

use std::net::Ipv4Addr;

use super::LISTEN_PORT;
use crate::plan::NodePlan;
use crate::shell::quote as shell_quote;

/// Seconds each iperf3 run lasts.
const IPERF_SECONDS: u32 = 3;

pub fn bandwidth_server(run: &str, underlay: Ipv4Addr) -> String {
    let l = container(run);
    format!(
        "command -v iperf3 >/dev/null || {{ echo 'iperf3 is not installed on this host' >&2; exit 1; }}\n\
         pid=$(docker inspect -f '{{{{.State.Pid}}}}' {l})\n\
         nsenter -t \"$pid\" -n iperf3 -s -1 -D -p 5201\niperf3 -s -1 -D -p 5202 -B {underlay}\nsleep 0.3\n"
    )
}

pub fn bandwidth_client(run: &str, overlay_to: Ipv4Addr, underlay_from: Ipv4Addr, underlay_to: Ipv4Addr) -> String {
    let l = container(run);
    // FragCreates, found by its header name (the kernel keeps adding columns to /proc/net/snmp).
    let frags = "awk '/^Ip:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == \"FragCreates\") c = i; h = 1 } else print $c }' /proc/net/snmp";
    format!(
        "pid=$(docker inspect -f '{{{{.State.Pid}}}}' {l})\n\
         f0=$(( $(nsenter -t \"$pid\" -n {frags}) + $({frags}) ))\n\
         echo '### overlay'\nnsenter -t \"$pid\" -n iperf3 -c {overlay_to} -p 5201 -t {IPERF_SECONDS} -J\n\
         echo '### underlay'\niperf3 -c {underlay_to} -p 5202 -t {IPERF_SECONDS} -J -B {underlay_from}\n\
         echo '### end'\n\
         f1=$(( $(nsenter -t \"$pid\" -n {frags}) + $({frags}) ))\necho \"fragments $((f1 - f0))\"\n\
         echo \"underlay-rtt $(ping -c3 -i 0.2 -q {underlay_to} | sed -n 's|.* = [0-9.]*/\\([0-9.]*\\)/.*|\\1|p')\"\n\
         echo \"overlay-rtt $(nsenter -t \"$pid\" -n ping -c3 -i 0.2 -q {overlay_to} | sed -n 's|.* = [0-9.]*/\\([0-9.]*\\)/.*|\\1|p')\"\n"
    )
}

/// How long a refused oversize probe lingers for replies (`$linger`): a tenth of a second where ping takes
/// fractions (iputils since 2019), else a whole one. The refusal itself is immediate.
const LINGER: &str = "linger=1; [ \"$has_ping\" = 0 ] || ! ping -c1 -W0.1 127.0.0.1 >/dev/null 2>&1 || linger=0.1\n";

/// The don't-fragment probes towards `ip` (peer `name`), where iputils' ping is there: a packet of exactly the MTU
/// must get through, and one byte more must be refused by the sender at once. `via` runs each ping where it
/// belongs (empty on the host, `nsenter ...` into a container's network). Prints `mtu NAME ok|fail refused|lost`.
fn df_probes(name: &str, ip: Ipv4Addr, via: &str) -> String {
    format!(
        "if [ \"$has_ping\" = 1 ]; then\n    \
         {via}ping -c1 -W2 -w2 -M do -s $((mtu - 28)) {ip} >/dev/null 2>&1 && full=ok || full=fail\n    \
         over=$({via}ping -c1 -W$linger -M do -s $((mtu - 27)) {ip} 2>&1)\n    \
         case $over in *'too long'*) over=refused ;; *) over=lost ;; esac\n    \
         echo \"mtu {name} $full $over\"\n  \
         fi"
    )
}

/// The one container verification starts on each host: listener for its peers, client towards them.
pub fn container(run: &str) -> String {
    format!("vxmesh-verify-{run}")
}

/// Starts the host's one verify container and prints its address once its listener listens. Readiness is read
/// from the container's socket table on the host (no `docker exec`): every `docker` call costs a round trip to
/// the daemon, and on a busy host that is most of verify's time.
pub fn listener_script(node: &NodePlan, run: &str, image: &str) -> String {
    let l = container(run);
    let net = &node.docker.network;
    let cgi = r#"mkdir -p /www/cgi-bin && printf '#!/bin/sh\necho Content-Type: text/plain\necho\necho $REMOTE_ADDR\n' > /www/cgi-bin/ip && chmod +x /www/cgi-bin/ip && exec httpd -f -p PORT -h /www"#
        .replace("PORT", &LISTEN_PORT.to_string());
    format!(
        "set -e\n\
         docker run -d --rm --name {l} --label vxmesh.verify={run} --network {net} {image} sh -c {cgi} >/dev/null\n\
         set -- $(docker inspect -f '{{{{.State.Pid}}}} {{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}' {l})\n\
         i=0\n\
         until grep -Eq ':{port:04X} [0-9A-F]+:0000 0A' /proc/$1/net/tcp /proc/$1/net/tcp6 2>/dev/null; do\n  \
         i=$((i + 1)); [ $i -le 100 ] || {{ echo 'the listener did not listen within 5 s' >&2; exit 1; }}; sleep 0.05\n\
         done\n\
         echo \"$2\"\n",
        cgi = shell_quote(&cgi),
        image = shell_quote(image),
        port = LISTEN_PORT,
    )
}

/// The client's probes, run on the host inside the verify container's namespaces: its own network and its own
/// files (busybox's wget and ping: exactly what a container sends, without a `docker exec` per host); the
/// don't-fragment probes use the host's iputils ping in the container's network (busybox's ping cannot set DF).
/// Every target's probes run at once; a dead peer costs its timeouts once, not per line.
pub fn client_script(
    node: &NodePlan,
    run: &str,
    targets: &[(String, Ipv4Addr)],
    switches: &[(String, Ipv4Addr)],
    outside: Option<Ipv4Addr>,
) -> String {
    let l = container(run);
    let net = &node.docker.network;
    let mut probes = String::new();
    // The fetch goes first and resolves the peer's address (ARP); the last of two pings then measures the path.
    // A fetch that gets nothing is tried once more (a busy host may drop a first SYN); the count is reported.
    for (name, ip) in targets {
        probes.push_str(&format!(
            "( url=http://{ip}:{LISTEN_PORT}/cgi-bin/ip; tries=1; seen=$(inside timeout 3 wget -qO- $url 2>/dev/null)\n  \
             [ -n \"$seen\" ] || {{ tries=2; seen=$(inside timeout 3 wget -qO- $url 2>/dev/null); }}\n  \
             rtt=$(inside ping -c2 -i 0.1 -W2 {ip} 2>/dev/null | sed -n 's/.*time=\\([0-9.]*\\) ms.*/\\1/p' | tail -n1)\n  \
             echo \"pair {name} ${{rtt:--}} ${{seen:--}} $tries\"\n  \
             {df} ) &\n",
            df = df_probes(name, *ip, "nsenter -t \"$pid\" -n ")
        ));
    }
    for (name, ip) in switches {
        probes.push_str(&format!(
            "( if inside ping -c1 -W2 {ip} >/dev/null 2>&1; then echo 'switch {name} ok'; \
             elif inside ping -c1 -W2 {ip} >/dev/null 2>&1; then echo 'switch {name} retried'; else echo 'switch {name} fail'; fi ) &\n"
        ));
    }
    if let Some(o) = outside {
        probes.push_str(&format!(
            "( inside ping -c1 -W2 {o} >/dev/null 2>&1 && echo 'outside ok' || echo 'outside fail' ) &\n"
        ));
    }
    format!(
        // The host's one verify container (started as the listener) is the client too: no second `docker run`.
        "set -u\n\
         set -- $(docker inspect -f '{{{{.State.Pid}}}} {{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}' {l} 2>/dev/null)\n\
         [ $# = 2 ] || {{ echo 'the verify container is gone' >&2; exit 1; }}\n\
         pid=$1 me=$2\n\
         inside() {{ nsenter -t \"$pid\" -m -n -- \"$@\"; }}\n\
         mtu=$(cat /proc/$pid/root/sys/class/net/eth0/mtu 2>/dev/null || inside cat /sys/class/net/eth0/mtu)\n\
         echo \"me $me $mtu\"\n\
         has_ping=0; ping -V 2>/dev/null | grep -q iputils && has_ping=1\n\
         {LINGER}\
         {probes}wait\n"
    )
}

/// Without docker (`docker.mode: none`) the probes run on the host itself, switch to switch over the tunnels.
pub fn switch_script(node: &NodePlan, targets: &[(String, Ipv4Addr)]) -> String {
    let mut s = format!(
        "mtu=$(cat /sys/class/net/{br}/mtu)\necho \"me {me} $mtu\"\nhas_ping=0; ping -V 2>/dev/null | grep -q iputils && has_ping=1\n{LINGER}",
        br = node.switch.bridge,
        me = node.switch.address.addr()
    );
    for (name, ip) in targets {
        s.push_str(&format!(
            "( rtt=$(ping -c3 -i 0.3 -W3 {ip} 2>/dev/null | sed -n 's/.*time=\\([0-9.]*\\) ms.*/\\1/p' | head -n1); echo \"pair {name} ${{rtt:--}} -\"\n  \
             {df} ) &\n",
            df = df_probes(name, *ip, "")
        ));
    }
    s.push_str("wait\n");
    s
}

/// Removes the host's verify container by name (one `docker` call; absent is fine).
pub fn cleanup_script(run: &str) -> String {
    format!("docker rm -f {} >/dev/null 2>&1; true\n", container(run))
}
