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

/// The one container verification starts on each host: listener for its peers, client towards them.
pub fn container(run: &str) -> String {
    format!("vxmesh-verify-{run}")
}

pub fn listener_script(node: &NodePlan, run: &str, image: &str) -> String {
    let l = container(run);
    let net = &node.docker.network;
    let cgi = r#"mkdir -p /www/cgi-bin && printf '#!/bin/sh\necho Content-Type: text/plain\necho\necho $REMOTE_ADDR\n' > /www/cgi-bin/ip && chmod +x /www/cgi-bin/ip && exec httpd -f -p PORT -h /www"#
        .replace("PORT", &LISTEN_PORT.to_string());
    format!(
        "set -e\ndocker rm -f {l} >/dev/null 2>&1 || true\n\
         docker run -d --rm --name {l} --label vxmesh.verify={run} --network {net} {image} sh -c {cgi} >/dev/null\n\
         docker exec {l} sh -c 'for i in $(seq 50); do timeout 1 wget -qO- http://127.0.0.1:{LISTEN_PORT}/cgi-bin/ip >/dev/null 2>&1 && exit 0; sleep 0.1; done; exit 1'\n\
         docker inspect -f '{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}' {l}\n",
        cgi = shell_quote(&cgi),
        image = shell_quote(image),
    )
}

/// The client's probes, run on the host: inside the container for ping/wget, from the host into the container's
/// network namespace for the don't-fragment probes (busybox's ping cannot set DF; iputils' can).
pub fn client_script(
    node: &NodePlan,
    run: &str,
    targets: &[(String, Ipv4Addr)],
    switches: &[(String, Ipv4Addr)],
    outside: Option<Ipv4Addr>,
) -> String {
    let l = container(run);
    let net = &node.docker.network;
    let mut inner = String::new();
    // Every probe runs in the background, all at once: a dead peer costs its timeout once, not per line.
    // The fetch goes first and resolves the peer's address (ARP); the last of two pings then measures the path.
    // A fetch that gets nothing is tried once more (a busy host may drop a first SYN); the count is reported.
    for (name, ip) in targets {
        inner.push_str(&format!(
            "( url=http://{ip}:{LISTEN_PORT}/cgi-bin/ip; tries=1; seen=$(timeout 3 wget -qO- $url 2>/dev/null); \
             [ -n \"$seen\" ] || {{ tries=2; seen=$(timeout 3 wget -qO- $url 2>/dev/null); }}; \
             rtt=$(ping -c2 -i 0.2 -W2 {ip} 2>/dev/null | sed -n 's/.*time=\\([0-9.]*\\) ms.*/\\1/p' | tail -n1); \
             echo \"pair {name} ${{rtt:--}} ${{seen:--}} $tries\" ) &\n"
        ));
    }
    for (name, ip) in switches {
        inner.push_str(&format!(
            "( if ping -c1 -W2 {ip} >/dev/null 2>&1; then echo 'switch {name} ok'; \
             elif ping -c1 -W2 {ip} >/dev/null 2>&1; then echo 'switch {name} retried'; else echo 'switch {name} fail'; fi ) &\n"
        ));
    }
    if let Some(o) = outside {
        inner
            .push_str(&format!("( ping -c1 -W2 {o} >/dev/null 2>&1 && echo 'outside ok' || echo 'outside fail' ) &\n"));
    }
    inner.push_str("wait\n");
    let mut probes = String::new();
    for (name, ip) in targets {
        // -w 2 bounds the whole probe: an oversize ping is refused at once but would otherwise wait for replies.
        probes.push_str(&format!(
            "( nsenter -t \"$pid\" -n ping -c1 -W2 -w2 -M do -s $((mtu - 28)) {ip} >/dev/null 2>&1 && full=ok || full=fail\n  \
             over=$(nsenter -t \"$pid\" -n ping -c1 -W1 -w1 -M do -s $((mtu - 27)) {ip} 2>&1); case $over in *'too long'*) over=refused ;; *) over=lost ;; esac\n  \
             echo \"mtu {name} $full $over\" ) &\n"
        ));
    }
    let probes =
        if targets.is_empty() { String::new() } else { format!("if [ \"$has_ping\" = 1 ]; then\n{probes}wait\nfi\n") };
    format!(
        // The host's one verify container (started as the listener) is the client too: no second `docker run`.
        "set -u\n\
         set -- $(docker inspect -f '{{{{.State.Pid}}}} {{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}' {l} 2>/dev/null)\n\
         [ $# = 2 ] || {{ echo 'the verify container is gone' >&2; exit 1; }}\n\
         pid=$1 me=$2\n\
         mtu=$(cat /proc/$pid/root/sys/class/net/eth0/mtu 2>/dev/null || docker exec {l} cat /sys/class/net/eth0/mtu)\n\
         echo \"me $me $mtu\"\n\
         docker exec {l} sh -c {inner}\n\
         has_ping=0; ping -V 2>/dev/null | grep -q iputils && has_ping=1\n\
         {probes}",
        inner = shell_quote(&inner),
    )
}

/// Without docker (`docker.mode: none`) the probes run on the host itself, switch to switch over the tunnels.
pub fn switch_script(node: &NodePlan, targets: &[(String, Ipv4Addr)]) -> String {
    let mut s = format!(
        "mtu=$(cat /sys/class/net/{br}/mtu)\necho \"me {me} $mtu\"\nhas_ping=0; ping -V 2>/dev/null | grep -q iputils && has_ping=1\n",
        br = node.switch.bridge,
        me = node.switch.address.addr()
    );
    for (name, ip) in targets {
        s.push_str(&format!(
            "( rtt=$(ping -c3 -i 0.3 -W3 {ip} 2>/dev/null | sed -n 's/.*time=\\([0-9.]*\\) ms.*/\\1/p' | head -n1); echo \"pair {name} ${{rtt:--}} -\"\n  \
             if [ \"$has_ping\" = 1 ]; then ping -c1 -W2 -w2 -M do -s $((mtu - 28)) {ip} >/dev/null 2>&1 && full=ok || full=fail\n  \
             over=$(ping -c1 -W1 -w1 -M do -s $((mtu - 27)) {ip} 2>&1); case $over in *'too long'*) over=refused ;; *) over=lost ;; esac\n  \
             echo \"mtu {name} $full $over\"; fi ) &\n"
        ));
    }
    s.push_str("wait\n");
    s
}

pub fn cleanup_script(run: &str) -> String {
    format!(
        "ids=$(docker ps -aq --filter label=vxmesh.verify={run}); [ -z \"$ids\" ] || docker rm -f $ids >/dev/null 2>&1; true\n"
    )
}
