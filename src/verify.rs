//! Proves the mesh with containers: a listener on every host, a client on every host talking to every peer's
//! listener (no NAT: the listener reports the source it saw), full-size packets with don't-fragment, the
//! switches, and the outside world. Temporary containers are always removed.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use serde::Serialize;

use crate::executor::{self, Connected, Options};
use crate::plan::{ClusterPlan, NodePlan};
use crate::render::shell_quote;

/// Peers by name with the address to probe.
type Named = Vec<(String, Ipv4Addr)>;

/// TCP port the listeners serve on, inside the mesh network only.
pub const LISTEN_PORT: u16 = 7777;

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Test only this many ordered pairs, spread over the cluster.
    pub sample: Option<usize>,
    /// Test only the pairs that involve this node (after `add-node`).
    pub only: Option<String>,
    /// Also measure TCP throughput with iperf3, container to container and host to host, around a ring of hosts.
    pub bandwidth: bool,
    pub outside: Option<Ipv4Addr>,
    pub image: String,
}

impl VerifyOptions {
    /// The ordered pairs this verification tests: all, a spread sample, or those involving `only`.
    pub fn pairs(&self, names: &[String]) -> Vec<(String, String)> {
        let mut wanted = pairs(names, self.sample);
        if let Some(n) = &self.only {
            wanted.retain(|(a, b)| a == n || b == n);
        }
        wanted
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Pair {
    pub from: String,
    pub to: String,
    pub ok: bool,
    pub rtt_ms: Option<f64>,
    /// The client container's own address, and the source address the listener saw: equal means no NAT.
    pub client: Option<String>,
    pub seen_source: Option<String>,
    /// A packet of exactly the overlay MTU with don't-fragment set got through (None: not checked).
    pub full_size: Option<bool>,
    /// One byte more was refused at the sender, not silently lost (None: not checked).
    pub oversize_refused: Option<bool>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostCheck {
    pub node: String,
    pub ok: bool,
    pub mtu: Option<u32>,
    /// Peers whose switch (sw0) address this host's container could not reach.
    pub unreachable_switches: Vec<String>,
    pub outside: Option<bool>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ok: bool,
    pub pairs: Vec<Pair>,
    pub hosts: Vec<HostCheck>,
    pub outside: Option<Ipv4Addr>,
    pub seconds: f64,
    /// With `--bandwidth`: one row per ring pair.
    pub bandwidth: Vec<Bandwidth>,
}

/// Throughput and latency over the mesh next to the same between the hosts themselves.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Bandwidth {
    pub from: String,
    pub to: String,
    pub overlay_mbps: Option<f64>,
    pub underlay_mbps: Option<f64>,
    pub overlay_rtt_ms: Option<f64>,
    pub underlay_rtt_ms: Option<f64>,
    /// TCP's maximum segment size on the overlay: MTU - 40 - 12 (timestamps) means full-size segments.
    pub mss: Option<u32>,
    /// IP fragments created on the sending host (its containers' and its own namespace) during the run.
    pub fragments: Option<u64>,
    pub error: Option<String>,
}

/// Seconds each iperf3 run lasts.
const IPERF_SECONDS: u32 = 3;

fn bandwidth_server(run: &str, underlay: Ipv4Addr) -> String {
    let (l, _) = names(run);
    format!(
        "command -v iperf3 >/dev/null || {{ echo 'iperf3 is not installed on this host' >&2; exit 1; }}\n\
         pid=$(docker inspect -f '{{{{.State.Pid}}}}' {l})\n\
         nsenter -t \"$pid\" -n iperf3 -s -1 -D -p 5201\niperf3 -s -1 -D -p 5202 -B {underlay}\nsleep 0.3\n"
    )
}

fn bandwidth_client(run: &str, overlay_to: Ipv4Addr, underlay_from: Ipv4Addr, underlay_to: Ipv4Addr) -> String {
    let (l, _) = names(run);
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

/// Parses what [`bandwidth_client`] printed.
pub fn parse_bandwidth(text: &str, from: &str, to: &str) -> Bandwidth {
    let mut b = Bandwidth { from: from.into(), to: to.into(), ..Default::default() };
    let section = |name: &str| -> Option<serde_json::Value> {
        let start = text.find(&format!("### {name}\n"))? + name.len() + 5;
        let end = text[start..].find("### ")? + start;
        serde_json::from_str(&text[start..end]).ok()
    };
    let mbps = |v: &serde_json::Value| v["end"]["sum_received"]["bits_per_second"].as_f64().map(|b| b / 1e6);
    if let Some(o) = section("overlay") {
        b.overlay_mbps = mbps(&o);
        b.mss = o["start"]["tcp_mss_default"].as_u64().map(|m| m as u32);
        if let Some(e) = o["error"].as_str() {
            b.error = Some(format!("overlay: {e}"));
        }
    }
    if let Some(u) = section("underlay") {
        b.underlay_mbps = mbps(&u);
    }
    for line in text.lines() {
        let mut f = line.split_whitespace();
        match (f.next(), f.next()) {
            (Some("fragments"), Some(n)) => b.fragments = n.parse().ok(),
            (Some("underlay-rtt"), Some(r)) => b.underlay_rtt_ms = r.parse().ok(),
            (Some("overlay-rtt"), Some(r)) => b.overlay_rtt_ms = r.parse().ok(),
            _ => {}
        }
    }
    if b.overlay_mbps.is_none() && b.error.is_none() {
        b.error = Some("iperf3 gave no result over the mesh".into());
    }
    b
}

/// Runs iperf3 around a ring of hosts, one pair at a time so they do not compete; listeners must be running.
async fn measure_bandwidth(hosts: &[Connected], run: &str) -> Vec<Bandwidth> {
    let n = hosts.len();
    let mut out = vec![];
    for i in 0..n {
        let (a, b) = (&hosts[i], &hosts[(i + 1) % n]);
        if n < 2 || (n == 2 && i == 1) {
            break;
        }
        let (Ok(sa), Ok(sb)) = (&a.session, &b.session) else { continue };
        let server = sb.run(&bandwidth_server(run, b.node.underlay_ip)).await;
        let mut row = match server {
            Ok(o) if o.code == 0 => {
                let ip = sb
                    .run(&format!(
                        "docker inspect -f '{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}' {}",
                        b.node.docker.network,
                        names(run).0
                    ))
                    .await
                    .ok()
                    .and_then(|o| o.stdout.trim().parse::<Ipv4Addr>().ok());
                match ip {
                    Some(ip) => {
                        match sa.run(&bandwidth_client(run, ip, a.node.underlay_ip, b.node.underlay_ip)).await {
                            Ok(o) => parse_bandwidth(&o.stdout, &a.node.name, &b.node.name),
                            Err(e) => Bandwidth { error: Some(e), ..Default::default() },
                        }
                    }
                    None => Bandwidth { error: Some("no listener address".into()), ..Default::default() },
                }
            }
            Ok(o) => Bandwidth { error: Some(o.stderr.trim().to_string()), ..Default::default() },
            Err(e) => Bandwidth { error: Some(e), ..Default::default() },
        };
        row.from = a.node.name.clone();
        row.to = b.node.name.clone();
        out.push(row);
    }
    out
}

/// The ordered pairs to test: all of them, or `k` spread evenly.
pub fn pairs(names: &[String], sample: Option<usize>) -> Vec<(String, String)> {
    let all: Vec<(String, String)> =
        names.iter().flat_map(|a| names.iter().filter(move |b| *b != a).map(move |b| (a.clone(), b.clone()))).collect();
    match sample {
        Some(k) if k < all.len() => {
            let step = all.len() as f64 / k as f64;
            (0..k).map(|i| all[(i as f64 * step) as usize].clone()).collect()
        }
        _ => all,
    }
}

fn names(run: &str) -> (String, String) {
    (format!("vxmesh-verify-l-{run}"), format!("vxmesh-verify-c-{run}"))
}

fn listener_script(node: &NodePlan, run: &str, image: &str) -> String {
    let (l, _) = names(run);
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
fn client_script(
    node: &NodePlan,
    run: &str,
    image: &str,
    targets: &[(String, Ipv4Addr)],
    switches: &[(String, Ipv4Addr)],
    outside: Option<Ipv4Addr>,
) -> String {
    let (_, c) = names(run);
    let net = &node.docker.network;
    let mut inner = String::new();
    // Every probe runs in the background, all at once: a dead peer costs its timeout once, not per line.
    // Latency pings try three times and the first answer counts: the first may wait for ARP on a busy host.
    for (name, ip) in targets {
        inner.push_str(&format!(
            "( rtt=$(ping -c3 -i 0.3 -W3 {ip} 2>/dev/null | sed -n 's/.*time=\\([0-9.]*\\) ms.*/\\1/p' | head -n1); seen=$(timeout 3 wget -qO- http://{ip}:{LISTEN_PORT}/cgi-bin/ip 2>/dev/null); echo \"pair {name} ${{rtt:--}} ${{seen:--}}\" ) &\n"
        ));
    }
    for (name, ip) in switches {
        inner.push_str(&format!(
            "( ping -c1 -W2 {ip} >/dev/null 2>&1 && echo 'switch {name} ok' || echo 'switch {name} fail' ) &\n"
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
        "set -u\ndocker rm -f {c} >/dev/null 2>&1 || true\n\
         docker run -d --rm --name {c} --label vxmesh.verify={run} --network {net} {image} sleep 300 >/dev/null || exit 1\n\
         pid=$(docker inspect -f '{{{{.State.Pid}}}}' {c})\n\
         me=$(docker inspect -f '{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}' {c})\n\
         mtu=$(docker exec {c} cat /sys/class/net/eth0/mtu)\n\
         echo \"me $me $mtu\"\n\
         docker exec {c} sh -c {inner}\n\
         has_ping=0; ping -V 2>/dev/null | grep -q iputils && has_ping=1\n\
         {probes}\
         docker rm -f {c} >/dev/null 2>&1 || true\n",
        inner = shell_quote(&inner),
        image = shell_quote(image),
    )
}

/// Without docker (`docker.mode: none`) the probes run on the host itself, switch to switch over the tunnels.
fn switch_script(node: &NodePlan, targets: &[(String, Ipv4Addr)]) -> String {
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

fn cleanup_script(run: &str) -> String {
    format!(
        "ids=$(docker ps -aq --filter label=vxmesh.verify={run}); [ -z \"$ids\" ] || docker rm -f $ids >/dev/null 2>&1; true\n"
    )
}

/// Removes every temporary container of run `run` on every host; used on success, failure and Ctrl-C.
pub async fn cleanup(hosts: &[Connected], opts: &Options, run: &str) {
    let script = Arc::new(cleanup_script(run));
    let quiet = Options { progress: false, ..opts.clone() };
    executor::on_each(hosts, &quiet, "cleanup", move |_, s, _| {
        let script = script.clone();
        async move { s.run(&script).await.map(|_| ()) }
    })
    .await;
}

/// Runs the whole verification; the caller calls [`cleanup`] afterwards whatever happens.
pub async fn verify(hosts: &[Connected], plan: &ClusterPlan, opts: &Options, v: &VerifyOptions, run: &str) -> Report {
    if plan.nodes.first().is_some_and(|n| n.docker.mode == crate::inventory::DockerMode::None) {
        return verify_switches(hosts, plan, opts, v).await;
    }
    let started = std::time::Instant::now();
    let image = Arc::new(v.image.clone());
    let run_id = Arc::new(run.to_string());
    // Phase 1: a listener on every host.
    let listeners = executor::on_each(hosts, opts, "listen", {
        let (image, run_id) = (image.clone(), run_id.clone());
        move |node, s, bar| {
            let script = listener_script(&node, &run_id, &image);
            async move {
                bar.set_message("starting listener container");
                let out = s.run(&script).await?;
                if out.code != 0 {
                    return Err(format!("listener container did not start: {}", out.stderr.trim()));
                }
                out.stdout
                    .trim()
                    .parse::<Ipv4Addr>()
                    .map_err(|_| format!("listener has no address: {}", out.stdout.trim()))
            }
        }
    })
    .await;
    let listener_ip: BTreeMap<String, Result<Ipv4Addr, String>> =
        listeners.into_iter().map(|(n, r, _)| (n.name.clone(), r)).collect();
    let names: Vec<String> = plan.nodes.iter().map(|n| n.name.clone()).collect();
    let wanted = v.pairs(&names);
    let switch_of: BTreeMap<&str, Ipv4Addr> =
        plan.nodes.iter().map(|n| (n.name.as_str(), n.switch.address.addr())).collect();

    // Phase 2: every host's client probes its peers.
    let per_host: BTreeMap<String, (Named, Named)> = plan
        .nodes
        .iter()
        .map(|n| {
            let targets: Vec<(String, Ipv4Addr)> = wanted
                .iter()
                .filter(|(a, _)| *a == n.name)
                .filter_map(|(_, b)| listener_ip.get(b).and_then(|r| r.as_ref().ok()).map(|ip| (b.clone(), *ip)))
                .collect();
            let switches = names.iter().filter(|b| **b != n.name).map(|b| (b.clone(), switch_of[b.as_str()])).collect();
            (n.name.clone(), (targets, switches))
        })
        .collect();
    let per_host = Arc::new(per_host);
    let clients = executor::on_each(hosts, opts, "probe", {
        let (image, run_id, per_host, outside) = (image.clone(), run_id.clone(), per_host.clone(), v.outside);
        move |node, s, bar| {
            let (targets, switches) = per_host[&node.name].clone();
            let script = client_script(&node, &run_id, &image, &targets, &switches, outside);
            async move {
                bar.set_message(format!("probing {} peers", targets.len()));
                let out = s.run(&script).await?;
                if !out.stdout.starts_with("me ") {
                    return Err(format!("client container did not start: {}", out.stderr.trim()));
                }
                Ok(out.stdout)
            }
        }
    })
    .await;
    let client_out: BTreeMap<String, Result<String, String>> =
        clients.into_iter().map(|(n, r, _)| (n.name.clone(), r)).collect();
    let report = assemble(&wanted, &listener_ip, &client_out, plan, v.outside, true);
    let bandwidth = if v.bandwidth { measure_bandwidth(hosts, run).await } else { vec![] };
    Report { seconds: started.elapsed().as_secs_f64(), bandwidth, ..report }
}

/// Hosts without docker: every switch pings every peer's switch through the tunnels, DF probes included.
async fn verify_switches(hosts: &[Connected], plan: &ClusterPlan, opts: &Options, v: &VerifyOptions) -> Report {
    let started = std::time::Instant::now();
    let names: Vec<String> = plan.nodes.iter().map(|n| n.name.clone()).collect();
    let wanted = v.pairs(&names);
    let switch_of: BTreeMap<String, Ipv4Addr> =
        plan.nodes.iter().map(|n| (n.name.clone(), n.switch.address.addr())).collect();
    let targets_of: Arc<BTreeMap<String, Named>> = Arc::new(
        plan.nodes
            .iter()
            .map(|n| {
                (
                    n.name.clone(),
                    wanted.iter().filter(|(a, _)| *a == n.name).map(|(_, b)| (b.clone(), switch_of[b])).collect(),
                )
            })
            .collect(),
    );
    let out = executor::on_each(hosts, opts, "probe", move |node, s, _| {
        let script = switch_script(&node, &targets_of[&node.name]);
        async move { s.run(&script).await.map(|o| o.stdout) }
    })
    .await;
    let client_out: BTreeMap<String, Result<String, String>> =
        out.into_iter().map(|(n, r, _)| (n.name.clone(), r)).collect();
    let listeners = switch_of.into_iter().map(|(k, v)| (k, Ok(v))).collect();
    let report = assemble(&wanted, &listeners, &client_out, plan, None, false);
    Report { seconds: started.elapsed().as_secs_f64(), ..report }
}

/// Turns what the hosts printed into pairs and host checks. Pure, so it is tested on recorded output.
pub fn assemble(
    wanted: &[(String, String)],
    listener_ip: &BTreeMap<String, Result<Ipv4Addr, String>>,
    client_out: &BTreeMap<String, Result<String, String>>,
    plan: &ClusterPlan,
    outside: Option<Ipv4Addr>,
    containers: bool,
) -> Report {
    let mut parsed: BTreeMap<String, Parsed> = BTreeMap::new();
    for (node, out) in client_out {
        if let Ok(text) = out {
            parsed.insert(node.clone(), parse_client(text));
        }
    }
    let pairs = wanted
        .iter()
        .map(|(a, b)| {
            let mut p = Pair {
                from: a.clone(),
                to: b.clone(),
                ok: false,
                rtt_ms: None,
                client: None,
                seen_source: None,
                full_size: None,
                oversize_refused: None,
                error: None,
            };
            if let Some(Err(e)) = listener_ip.get(b) {
                p.error = Some(format!("no listener on {b}: {e}"));
                return p;
            }
            let c = match client_out.get(a) {
                Some(Ok(_)) => &parsed[a],
                Some(Err(e)) => {
                    p.error = Some(format!("no client on {a}: {e}"));
                    return p;
                }
                None => {
                    p.error = Some(format!("{a} was not probed"));
                    return p;
                }
            };
            p.client = c.me.clone();
            if let Some((rtt, seen)) = c.pairs.get(b) {
                p.rtt_ms = *rtt;
                p.seen_source = seen.clone();
            }
            if let Some((full, over)) = c.mtu.get(b) {
                p.full_size = Some(*full);
                p.oversize_refused = Some(*over);
            }
            let no_nat = p.seen_source.is_some() && p.seen_source == p.client;
            p.error = if !containers && p.rtt_ms.is_none() {
                Some("no answer from its switch".into())
            } else if !containers && p.full_size == Some(false) {
                Some("a full-size packet with don't-fragment was lost".into())
            } else if !containers && p.oversize_refused == Some(false) {
                Some("an oversize packet with don't-fragment was not refused".into())
            } else if !containers {
                None
            } else if p.seen_source.is_none() {
                Some("no answer from the listener".into())
            } else if !no_nat {
                Some(format!(
                    "NAT: the listener saw {} instead of {}",
                    p.seen_source.as_deref().unwrap_or("?"),
                    p.client.as_deref().unwrap_or("?")
                ))
            } else if p.full_size == Some(false) {
                Some("a full-size packet with don't-fragment was lost".into())
            } else if p.oversize_refused == Some(false) {
                Some("an oversize packet with don't-fragment was not refused".into())
            } else {
                None
            };
            p.ok = p.error.is_none();
            p
        })
        .collect::<Vec<_>>();
    let hosts = plan
        .nodes
        .iter()
        .map(|n| {
            let mut h = HostCheck {
                node: n.name.clone(),
                ok: false,
                mtu: None,
                unreachable_switches: vec![],
                outside: None,
                error: None,
            };
            match client_out.get(&n.name) {
                Some(Ok(_)) => {
                    let c = &parsed[&n.name];
                    h.mtu = c.mtu_value;
                    h.unreachable_switches =
                        c.switches.iter().filter(|(_, ok)| !**ok).map(|(s, _)| s.clone()).collect();
                    h.outside = outside.and(c.outside);
                    h.ok = h.unreachable_switches.is_empty() && h.outside != Some(false);
                }
                Some(Err(e)) => h.error = Some(e.clone()),
                None => h.error = Some("not probed".into()),
            }
            h
        })
        .collect::<Vec<_>>();
    let ok = pairs.iter().all(|p| p.ok) && hosts.iter().all(|h| h.ok);
    Report { ok, pairs, hosts, outside, seconds: 0.0, bandwidth: vec![] }
}

#[derive(Default)]
struct Parsed {
    me: Option<String>,
    mtu_value: Option<u32>,
    pairs: BTreeMap<String, (Option<f64>, Option<String>)>,
    mtu: BTreeMap<String, (bool, bool)>,
    switches: BTreeMap<String, bool>,
    outside: Option<bool>,
}

fn parse_client(text: &str) -> Parsed {
    let mut p = Parsed::default();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let dash = |s: &str| (s != "-").then(|| s.to_string());
        match f.as_slice() {
            ["me", ip, mtu] => {
                p.me = Some(ip.to_string());
                p.mtu_value = mtu.parse().ok();
            }
            ["pair", name, rtt, seen] => {
                p.pairs.insert(name.to_string(), (rtt.parse().ok(), dash(seen).map(|s| plain_ipv4(&s))));
            }
            ["mtu", name, full, over] => {
                p.mtu.insert(name.to_string(), (*full == "ok", *over == "refused"));
            }
            ["switch", name, r] => {
                p.switches.insert(name.to_string(), *r == "ok");
            }
            ["outside", r] => p.outside = Some(*r == "ok"),
            _ => {}
        }
    }
    p
}

/// busybox httpd listens dual-stack and reports `[::ffff:172.16.0.2]`; the address is what matters.
fn plain_ipv4(s: &str) -> String {
    s.trim_start_matches('[').trim_end_matches(']').trim_start_matches("::ffff:").to_string()
}

/// The N x N matrix a person reads at a glance.
pub fn matrix(report: &Report, names: &[String]) -> String {
    let cell = |a: &str, b: &str| -> String {
        if a == b {
            return "·".into();
        }
        match report.pairs.iter().find(|p| p.from == a && p.to == b) {
            None => "".into(),
            Some(p) if p.ok => p.rtt_ms.map_or("ok".into(), |r| format!("ok {r:.1}ms")),
            Some(p) => match p.error.as_deref() {
                Some(e) if e.starts_with("NAT") => "FAIL nat".into(),
                Some(e) if e.contains("don't-fragment") => "FAIL mtu".into(),
                _ => "FAIL".into(),
            },
        }
    };
    let w = names.iter().map(|n| n.len()).max().unwrap_or(4).max(11);
    let mut out = format!("{:<w$}", "from \\ to");
    for n in names {
        out.push_str(&format!("  {n:<w$}"));
    }
    out.push('\n');
    for a in names {
        out.push_str(&format!("{a:<w$}"));
        for b in names {
            out.push_str(&format!("  {:<w$}", cell(a, b)));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_spreads_over_all_pairs() {
        let names: Vec<String> = (1..=10).map(|i| format!("n{i}")).collect();
        assert_eq!(pairs(&names, None).len(), 90);
        let s = pairs(&names, Some(9));
        assert_eq!(s.len(), 9);
        let froms: std::collections::BTreeSet<_> = s.iter().map(|p| &p.0).collect();
        assert!(froms.len() >= 5, "a sample touches many hosts: {s:?}");
    }

    #[test]
    fn client_output_parses() {
        let p = parse_client(
            "me 172.16.0.2 1450\npair node2 0.812 [::ffff:172.16.0.2]\npair node3 - -\nmtu node2 ok refused\nswitch node2 ok\nswitch node3 fail\noutside ok\n",
        );
        assert_eq!(p.me.as_deref(), Some("172.16.0.2"));
        assert_eq!(p.mtu_value, Some(1450));
        assert_eq!(p.pairs["node2"], (Some(0.812), Some("172.16.0.2".into())));
        assert_eq!(p.pairs["node3"], (None, None));
        assert_eq!(p.mtu["node2"], (true, true));
        assert!(!p.switches["node3"]);
        assert_eq!(p.outside, Some(true));
    }
}

#[cfg(test)]
mod bandwidth_tests {
    use super::*;

    #[test]
    fn iperf_json_and_counters_parse() {
        let text = "### overlay\n{\"start\": {\"tcp_mss_default\": 1398}, \"end\": {\"sum_received\": {\"bits_per_second\": 812000000.0}}}\n\
                    ### underlay\n{\"start\": {}, \"end\": {\"sum_received\": {\"bits_per_second\": 1020000000.0}}}\n### end\n\
                    fragments 0\nunderlay-rtt 0.180\noverlay-rtt 0.412\n";
        let b = parse_bandwidth(text, "a", "b");
        assert_eq!(b.overlay_mbps, Some(812.0));
        assert_eq!(b.underlay_mbps, Some(1020.0));
        assert_eq!(b.mss, Some(1398));
        assert_eq!(b.fragments, Some(0));
        assert_eq!((b.overlay_rtt_ms, b.underlay_rtt_ms), (Some(0.412), Some(0.18)));
        assert!(b.error.is_none());
    }

    #[test]
    fn missing_iperf_result_is_an_error() {
        let b = parse_bandwidth("### overlay\n{\"error\": \"unable to connect\"}\n### underlay\n### end\n", "a", "b");
        assert!(b.error.as_deref().unwrap().contains("unable to connect"), "{b:?}");
    }
}
