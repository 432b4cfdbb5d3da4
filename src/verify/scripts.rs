//! The scripts verification runs on the hosts: listener, client probes, switch probes, iperf3, cleanup.
//! Built with [`crate::shell`]'s statements like every other script: a value from the inventory, the command line
//! or the plan reaches the host only as a quoted word (an argument, or a variable the fixed text uses in double
//! quotes); the fixed text ([`Stmt::Static`]) holds nothing from outside.

use std::net::{IpAddr, Ipv4Addr};

use super::{LISTEN_PORT, Named6, Probes6};
use crate::cmd;
use crate::plan::NodePlan;
use crate::shell::{Stmt, Word, data, join, render};

/// Seconds each iperf3 run lasts.
const IPERF_SECONDS: u32 = 3;

/// The one container verification starts on each host: listener for its peers, client towards them.
pub fn container(run: &str) -> String {
    format!("vxmesh-verify-{run}")
}

/// `container=NAME`: the verify container, for the fixed text that inspects it.
fn set_container(run: &str) -> Stmt {
    Stmt::Set { var: "container", value: Word::Data(container(run)) }
}

/// `inspect_format=...`: docker's template for the container's PID and its address on the mesh's network; with
/// `six` (dual-stack containers), its IPv6 address too, `-` when docker gave it none (so the word count holds).
fn set_inspect_format(network: &str, six: bool) -> Stmt {
    let mut words = vec![
        Word::Lit("{{.State.Pid}} {{(index .NetworkSettings.Networks \""),
        Word::Data(network.to_string()),
        Word::Lit("\").IPAddress}}"),
    ];
    if six {
        words.extend([
            Word::Lit(" {{with (index .NetworkSettings.Networks \""),
            Word::Data(network.to_string()),
            Word::Lit("\").GlobalIPv6Address}}{{.}}{{else}}-{{end}}"),
        ]);
    }
    Stmt::Set { var: "inspect_format", value: join(words) }
}

/// The verify container's address on `network` (one `docker inspect`).
pub fn address_script(network: &str, run: &str) -> String {
    let format = join([
        Word::Lit("{{(index .NetworkSettings.Networks \""),
        Word::Data(network.to_string()),
        Word::Lit("\").IPAddress}}"),
    ]);
    render(&[cmd!["docker", "inspect", "-f", format, Word::Data(container(run))].into()], 0)
}

/// The container's PID, in `$pid`.
const PID: &str = "pid=$(docker inspect -f '{{.State.Pid}}' \"$container\")";

pub fn bandwidth_server(run: &str, underlay: impl Into<IpAddr>) -> String {
    let underlay = underlay.into();
    render(
        &[
            Stmt::Static(
                "command -v iperf3 >/dev/null || { echo 'iperf3 is not installed on this host' >&2; exit 1; }",
            ),
            set_container(run),
            Stmt::Static(PID),
            Stmt::Static("nsenter -t \"$pid\" -n iperf3 -s -1 -D -p 5201"),
            cmd!["iperf3", "-s", "-1", "-D", "-p", "5202", "-B", data(underlay)].into(),
            Stmt::Static("sleep 0.3"),
        ],
        0,
    )
}

/// FragCreates, found by its header name (the kernel keeps adding columns to /proc/net/snmp).
macro_rules! frags {
    () => {
        "awk '/^Ip:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == \"FragCreates\") c = i; h = 1 } else print $c }' /proc/net/snmp"
    };
}

/// IP fragments made in the container's network and on the host together, in `$VAR`.
macro_rules! count_frags {
    ($var:literal) => {
        concat!($var, "=$(( $(nsenter -t \"$pid\" -n ", frags!(), ") + $(", frags!(), ") ))")
    };
}

/// The average of ping's summary line (`rtt min/avg/max/mdev = a/b/c/d ms`).
macro_rules! average {
    () => {
        "sed -n 's|.* = [0-9.]*/\\([0-9.]*\\)/.*|\\1|p'"
    };
}

pub fn bandwidth_client(
    run: &str,
    overlay_to: Ipv4Addr,
    underlay_from: impl Into<IpAddr>,
    underlay_to: impl Into<IpAddr>,
) -> String {
    let (underlay_from, underlay_to) = (underlay_from.into(), underlay_to.into());
    let secs = data(IPERF_SECONDS);
    render(
        &[
            set_container(run),
            Stmt::Set { var: "seconds", value: secs.clone() },
            Stmt::Set { var: "overlay_to", value: data(overlay_to) },
            Stmt::Set { var: "underlay_to", value: data(underlay_to) },
            Stmt::Static(PID),
            Stmt::Static(count_frags!("f0")),
            Stmt::Static("echo '### overlay'"),
            Stmt::Static("nsenter -t \"$pid\" -n iperf3 -c \"$overlay_to\" -p 5201 -t \"$seconds\" -J"),
            Stmt::Static("echo '### underlay'"),
            cmd!["iperf3", "-c", data(underlay_to), "-p", "5202", "-t", secs, "-J", "-B", data(underlay_from)].into(),
            Stmt::Static("echo '### end'"),
            Stmt::Static(count_frags!("f1")),
            Stmt::Static("echo \"fragments $((f1 - f0))\""),
            Stmt::Static(concat!("echo \"underlay-rtt $(ping -c3 -i 0.2 -q \"$underlay_to\" | ", average!(), ")\"")),
            Stmt::Static(concat!(
                "echo \"overlay-rtt $(nsenter -t \"$pid\" -n ping -c3 -i 0.2 -q \"$overlay_to\" | ",
                average!(),
                ")\""
            )),
        ],
        0,
    )
}

/// Whether ping is iputils' (only it sets don't-fragment) in `$has_ping`, and how long a refused oversize probe
/// lingers for replies in `$linger`: a tenth of a second where ping takes fractions (iputils since 2019), else a
/// whole one. The refusal itself is immediate.
const PING_KIND: &str = "has_ping=0; ping -V 2>/dev/null | grep -q iputils && has_ping=1\n\
linger=1; [ \"$has_ping\" = 0 ] || ! ping -c1 -W0.1 127.0.0.1 >/dev/null 2>&1 || linger=0.1";

/// `df_probes NAME IP`: the don't-fragment probes towards peer NAME at IP, where iputils' ping is there: a packet
/// of exactly the MTU (`$mtu`) must get through, and one byte more must be refused by the sender at once. Each
/// ping runs through `df_ping`, which each script defines where its pings belong (on the host, or in a container's
/// network). Prints `mtu NAME ok|fail refused|lost`.
const DF_PROBES: &str = "df_probes() {
  if [ \"$has_ping\" = 1 ]; then
    df_ping -c1 -W2 -w2 -M do -s $((mtu - 28)) \"$2\" >/dev/null 2>&1 && full=ok || full=fail
    over=$(df_ping -c1 -W$linger -M do -s $((mtu - 27)) \"$2\" 2>&1)
    case $over in *'too long'*) over=refused ;; *) over=lost ;; esac
    echo \"mtu $1 $full $over\"
  fi
}";

/// `df_probes6 NAME IP`: the same over IPv6, where the headers take 48 bytes (40 IPv6 + 8 ICMPv6) and no router
/// fragments: a packet of exactly the MTU must get through, one byte more be refused by the sender. Prints
/// `mtu6 NAME ok|fail refused|lost`.
const DF_PROBES6: &str = "df_probes6() {
  if [ \"$has_ping\" = 1 ]; then
    df_ping -6 -c1 -W2 -w2 -M do -s $((mtu - 48)) \"$2\" >/dev/null 2>&1 && full=ok || full=fail
    over=$(df_ping -6 -c1 -W$linger -M do -s $((mtu - 47)) \"$2\" 2>&1)
    case $over in *'too long'*) over=refused ;; *) over=lost ;; esac
    echo \"mtu6 $1 $full $over\"
  fi
}";

/// The IPv6 probes of a dual-stack client: the listener fetched at the peer container's IPv6 address (busybox's
/// wget takes it in brackets), a ping, the DF probes; the peers' switches at their IPv6 addresses. Prints the
/// IPv4 probes' lines with a `6`: `pair6 NAME RTT SEEN TRIES`, `switch6 NAME ok|retried|fail`.
const PROBES6: &str = "probe_pair6() {
  url=\"http://[$2]:$port/cgi-bin/ip\"; tries=1; seen=$(inside timeout 3 wget -qO- \"$url\" 2>/dev/null)
  [ -n \"$seen\" ] || { tries=2; seen=$(inside timeout 3 wget -qO- \"$url\" 2>/dev/null); }
  rtt=$(inside ping -6 -c2 -i 0.1 -W2 \"$2\" 2>/dev/null | sed -n 's/.*time=\\([0-9.]*\\) ms.*/\\1/p' | tail -n1)
  echo \"pair6 $1 ${rtt:--} ${seen:--} $tries\"
  df_probes6 \"$1\" \"$2\"
}
probe_switch6() {
  if inside ping -6 -c1 -W2 \"$2\" >/dev/null 2>&1; then echo \"switch6 $1 ok\";
  elif inside ping -6 -c1 -W2 \"$2\" >/dev/null 2>&1; then echo \"switch6 $1 retried\"; else echo \"switch6 $1 fail\"; fi
}";

/// Starts the host's one verify container and prints its address once its listener listens. Readiness is read
/// from the container's socket table on the host (no `docker exec`): every `docker` call costs a round trip to
/// the daemon, and on a busy host that is most of verify's time.
pub fn listener_script(node: &NodePlan, run: &str, image: &str) -> String {
    let net = &node.docker.network;
    let six = node.ipv6.is_some();
    let cgi = r#"mkdir -p /www/cgi-bin && printf '#!/bin/sh\necho Content-Type: text/plain\necho\necho $REMOTE_ADDR\n' > /www/cgi-bin/ip && chmod +x /www/cgi-bin/ip && exec httpd -f -p PORT -h /www"#
        .replace("PORT", &LISTEN_PORT.to_string());
    let start = cmd![
        "docker",
        "run",
        "-d",
        "--rm",
        "--name",
        Word::Data(container(run)),
        "--label",
        join([Word::Lit("vxmesh.verify="), Word::Data(run.to_string())]),
        "--network",
        Word::Data(net.clone()),
        Word::Data(image.to_string()),
        "sh",
        "-c",
        Word::Data(cgi)
    ]
    .no_stdout();
    render(
        &[
            Stmt::Static("set -e"),
            set_container(run),
            set_inspect_format(net, six),
            // The listening socket's line in /proc/PID/net/tcp: local port in hex, any address, state LISTEN (0A).
            Stmt::Set { var: "listening", value: Word::Data(format!(":{LISTEN_PORT:04X} [0-9A-F]+:0000 0A")) },
            start.into(),
            Stmt::Static(
                "set -- $(docker inspect -f \"$inspect_format\" \"$container\")
i=0
until grep -Eq \"$listening\" /proc/$1/net/tcp /proc/$1/net/tcp6 2>/dev/null; do
  i=$((i + 1)); [ $i -le 100 ] || { echo 'the listener did not listen within 5 s' >&2; exit 1; }; sleep 0.05
done",
            ),
            // Its IPv4 address, then (dual-stack) its IPv6 address or `-`.
            Stmt::Static(if six { "echo \"$2 $3\"" } else { "echo \"$2\"" }),
        ],
        0,
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
    dual_client_script(node, run, targets, switches, outside, None)
}

/// [`client_script`], and with `six` (dual-stack containers) every probe over IPv6 too: the container's own IPv6
/// address first (`me6 ADDR`, `-` when docker gave it none), then `pair6`, `mtu6` and `switch6` lines.
pub fn dual_client_script(
    node: &NodePlan,
    run: &str,
    targets: &[(String, Ipv4Addr)],
    switches: &[(String, Ipv4Addr)],
    outside: Option<Ipv4Addr>,
    six: Option<&Probes6>,
) -> String {
    let mut stmts = vec![
        Stmt::Static("set -u"),
        set_container(run),
        set_inspect_format(&node.docker.network, six.is_some()),
        Stmt::Set { var: "port", value: data(LISTEN_PORT) },
        // The host's one verify container (started as the listener) is the client too: no second `docker run`.
        Stmt::Static(if six.is_some() {
            "set -- $(docker inspect -f \"$inspect_format\" \"$container\" 2>/dev/null)
[ $# = 3 ] || { echo 'the verify container is gone' >&2; exit 1; }
pid=$1 me=$2 me6=$3"
        } else {
            "set -- $(docker inspect -f \"$inspect_format\" \"$container\" 2>/dev/null)
[ $# = 2 ] || { echo 'the verify container is gone' >&2; exit 1; }
pid=$1 me=$2"
        }),
        Stmt::Static(
            "inside() { nsenter -t \"$pid\" -m -n -- \"$@\"; }
mtu=$(cat /proc/$pid/root/sys/class/net/eth0/mtu 2>/dev/null || inside cat /sys/class/net/eth0/mtu)
echo \"me $me $mtu\"",
        ),
        Stmt::Static(PING_KIND),
        Stmt::Static("df_ping() { nsenter -t \"$pid\" -n ping \"$@\"; }"),
        Stmt::Static(DF_PROBES),
        // The fetch goes first and resolves the peer's address (ARP); the last of two pings then measures the
        // path. A fetch that gets nothing is tried once more (a busy host may drop a first SYN); the count is
        // reported.
        Stmt::Static(
            "probe_pair() {
  url=\"http://$2:$port/cgi-bin/ip\"; tries=1; seen=$(inside timeout 3 wget -qO- \"$url\" 2>/dev/null)
  [ -n \"$seen\" ] || { tries=2; seen=$(inside timeout 3 wget -qO- \"$url\" 2>/dev/null); }
  rtt=$(inside ping -c2 -i 0.1 -W2 \"$2\" 2>/dev/null | sed -n 's/.*time=\\([0-9.]*\\) ms.*/\\1/p' | tail -n1)
  echo \"pair $1 ${rtt:--} ${seen:--} $tries\"
  df_probes \"$1\" \"$2\"
}
probe_switch() {
  if inside ping -c1 -W2 \"$2\" >/dev/null 2>&1; then echo \"switch $1 ok\";
  elif inside ping -c1 -W2 \"$2\" >/dev/null 2>&1; then echo \"switch $1 retried\"; else echo \"switch $1 fail\"; fi
}
probe_outside() {
  inside ping -c1 -W2 \"$1\" >/dev/null 2>&1 && echo 'outside ok' || echo 'outside fail'
}",
        ),
    ];
    if six.is_some() {
        stmts.extend([Stmt::Static("echo \"me6 $me6\""), Stmt::Static(DF_PROBES6), Stmt::Static(PROBES6)]);
    }
    let mut probes: Vec<Stmt> = vec![];
    probes.extend(targets.iter().map(|(name, ip)| Stmt::from(cmd!["probe_pair", data(name), data(ip)])));
    probes.extend(switches.iter().map(|(name, ip)| Stmt::from(cmd!["probe_switch", data(name), data(ip)])));
    probes.extend(outside.map(|o| Stmt::from(cmd!["probe_outside", data(o)])));
    if let Some(six) = six {
        probes.extend(six.targets.iter().map(|(name, ip)| Stmt::from(cmd!["probe_pair6", data(name), data(ip)])));
        probes.extend(six.switches.iter().map(|(name, ip)| Stmt::from(cmd!["probe_switch6", data(name), data(ip)])));
    }
    stmts.push(Stmt::Background(probes));
    stmts.push(Stmt::Static("wait"));
    render(&stmts, 0)
}

/// Without docker (`docker.mode: none`) the probes run on the host itself, switch to switch over the tunnels.
pub fn switch_script(node: &NodePlan, targets: &[(String, Ipv4Addr)]) -> String {
    dual_switch_script(node, targets, None)
}

/// [`switch_script`], and with `six` (a cluster with `cidr6`: sw0 has an IPv6 address) the same over IPv6 towards
/// the peers' switch IPv6 addresses: `me6 ADDR`, `pair6 NAME RTT -`, `mtu6 ...`.
pub fn dual_switch_script(node: &NodePlan, targets: &[(String, Ipv4Addr)], six: Option<&Named6>) -> String {
    let mut stmts = vec![
        Stmt::Set { var: "bridge", value: (&node.switch.bridge).into() },
        Stmt::Set { var: "me", value: data(node.switch.address.addr()) },
        Stmt::Static("mtu=$(cat \"/sys/class/net/$bridge/mtu\")\necho \"me $me $mtu\""),
        Stmt::Static(PING_KIND),
        Stmt::Static("df_ping() { ping \"$@\"; }"),
        Stmt::Static(DF_PROBES),
        Stmt::Static(
            "probe_pair() {
  rtt=$(ping -c3 -i 0.3 -W3 \"$2\" 2>/dev/null | sed -n 's/.*time=\\([0-9.]*\\) ms.*/\\1/p' | head -n1); echo \"pair $1 ${rtt:--} -\"
  df_probes \"$1\" \"$2\"
}",
        ),
    ];
    let mut probes: Vec<Stmt> =
        targets.iter().map(|(name, ip)| Stmt::from(cmd!["probe_pair", data(name), data(ip)])).collect();
    if let (Some(six), Some(me6)) = (six, &node.ipv6) {
        stmts.extend([
            Stmt::Set { var: "me6", value: data(me6.switch.addr()) },
            Stmt::Static("echo \"me6 $me6\""),
            Stmt::Static(DF_PROBES6),
            Stmt::Static(
                "probe_pair6() {
  rtt=$(ping -6 -c3 -i 0.3 -W3 \"$2\" 2>/dev/null | sed -n 's/.*time=\\([0-9.]*\\) ms.*/\\1/p' | head -n1); echo \"pair6 $1 ${rtt:--} -\"
  df_probes6 \"$1\" \"$2\"
}",
            ),
        ]);
        probes.extend(six.iter().map(|(name, ip)| Stmt::from(cmd!["probe_pair6", data(name), data(ip)])));
    }
    stmts.push(Stmt::Background(probes));
    stmts.push(Stmt::Static("wait"));
    render(&stmts, 0)
}

/// Removes the host's verify container by name (one `docker` call; absent is fine).
pub fn cleanup_script(run: &str) -> String {
    render(&[cmd!["docker", "rm", "-f", Word::Data(container(run))].silent().may_fail().into()], 0)
}
