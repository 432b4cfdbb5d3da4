//! Everything the commands print: tables, the verification matrix, the offline plan, and JSON.

use std::io::Write;

use serde::Serialize;

use crate::commands::HostResult;
use crate::commands::status::HostStatus;
use crate::components::Step;
use crate::converge;
use crate::facts::HostFacts;
use crate::plan::{ClusterPlan, NodePlan};
use crate::shell;
use crate::verify::{self, Report};

/// Per host: result, number of steps, time, and what was done (or why it failed).
pub fn summary(rows: &[HostResult], verb: &str) {
    let mut out = std::io::stdout().lock();
    let w = rows.iter().map(|r| r.node.len()).max().unwrap_or(4).max(4);
    let _ = writeln!(out, "{:<w$}  {:<8} {:>7} {:>7}  WHAT", "HOST", "RESULT", verb.to_uppercase(), "TIME");
    for r in rows {
        let what = match (&r.error, r.changed.len()) {
            (Some(e), _) => e.lines().collect::<Vec<_>>().join("\n    "),
            (None, 0) => String::new(),
            (None, 1) => r.changed[0].clone(),
            (None, n) => format!("{} (+{} more)", r.changed[0], n - 1),
        };
        let changed = if r.error.is_some() { "-".to_string() } else { r.changed.len().to_string() };
        let _ = writeln!(out, "{:<w$}  {:<8} {:>7} {:>6.2}s  {what}", r.node, r.status, changed, r.seconds);
    }
    for r in rows.iter().filter(|r| !r.left_alone.is_empty()) {
        let _ = writeln!(
            out,
            "  {}: left alone ({} steps of unrelated drift; `vxmesh up` repairs them): {}",
            r.node,
            r.left_alone.len(),
            r.left_alone.join("; ")
        );
    }
    let count = |s: &str| rows.iter().filter(|r| r.status == s).count();
    let _ = writeln!(
        out,
        "{} hosts: {} {verb}, {} ok, {} failed{}",
        rows.len(),
        count("changed"),
        count("ok"),
        count("failed"),
        match count("held") {
            0 => String::new(),
            n => format!(", {n} held back: no host is changed until every host passes its checks"),
        }
    );
}

/// `plan` (online): per host, the exact script `up` would send, or "up to date".
pub fn plan(rows: &[HostResult]) {
    for r in rows {
        match (&r.error, r.changed.is_empty()) {
            (Some(e), _) => println!("=== {} ({}): cannot plan: {e}", r.node, r.host),
            (None, true) => println!("=== {} ({}): up to date", r.node, r.host),
            (None, false) => println!("=== {} ({}): {} steps\n{}", r.node, r.host, r.changed.len(), r.script),
        }
    }
}

/// The verification: a summary line, the matrix, then every failure in words.
pub fn verify(r: &verify::Report, plan: &ClusterPlan) {
    let names: Vec<String> = plan.nodes.iter().map(|n| n.name.clone()).collect();
    let ok_pairs = r.pairs.iter().filter(|p| p.ok).count();
    let mtu: Vec<String> = r
        .hosts
        .iter()
        .filter_map(|h| h.mtu)
        .map(|m| m.to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mtu_checked = r.pairs.iter().any(|p| p.full_size.is_some());
    let what = if plan.nodes.first().is_some_and(|n| n.docker.mode == crate::model::inventory::DockerMode::None) {
        "switch to switch, no docker on the hosts"
    } else {
        "container to container, no NAT"
    };
    println!(
        "\nverify: {ok_pairs}/{} pairs ok in {:.1}s ({what}{}{})",
        r.pairs.len(),
        r.seconds,
        if mtu_checked {
            format!(", full-size {} byte packets with DF", mtu.join("/"))
        } else {
            ", MTU not probed: no iputils ping on the hosts".into()
        },
        r.outside.map_or(String::new(), |o| format!(", outside {o}"))
    );
    print!("{}", matrix(r, &names));
    let retried: Vec<String> = r
        .pairs
        .iter()
        .filter(|p| p.ok && p.tries.is_some_and(|t| t > 1))
        .map(|p| format!("{} -> {}", p.from, p.to))
        .collect();
    if !retried.is_empty() {
        println!("  answered only on a second try (a first fetch got nothing): {}", retried.join(", "));
    }
    for p in r.pairs.iter().filter(|p| !p.ok) {
        println!("  {} -> {}: {}", p.from, p.to, p.error.as_deref().unwrap_or("failed"));
    }
    for h in &r.hosts {
        if let Some(e) = &h.error {
            println!("  {}: {e}", h.node);
        }
        if !h.unreachable_switches.is_empty() {
            println!("  {}: cannot reach the switch of {}", h.node, h.unreachable_switches.join(", "));
        }
        if !h.switches_on_second_try.is_empty() {
            println!("  {}: the switch of {} answered only a second ping", h.node, h.switches_on_second_try.join(", "));
        }
        if h.outside == Some(false) {
            println!(
                "  {}: cannot reach the outside address {} through NAT",
                h.node,
                r.outside.map(|o| o.to_string()).unwrap_or_default()
            );
        }
    }
    if !r.bandwidth.is_empty() {
        println!("\nthroughput (iperf3 TCP, 3 s each) and latency, over the mesh vs host to host on the underlay:");
        println!(
            "{:<10} {:<10} {:>13} {:>13} {:>6} {:>5} {:>6} {:>15}",
            "FROM", "TO", "MESH", "UNDERLAY", "RATIO", "MSS", "FRAGS", "RTT MESH/UNDER"
        );
        let f = |v: Option<f64>| v.map_or("-".to_string(), |m| format!("{m:.0} Mbit/s"));
        for b in &r.bandwidth {
            let ratio = b.overlay_mbps.zip(b.underlay_mbps).map_or("-".into(), |(o, u)| format!("{:.2}", o / u));
            let rtt = format!(
                "{}/{} ms",
                b.overlay_rtt_ms.map_or("-".into(), |v| format!("{v:.2}")),
                b.underlay_rtt_ms.map_or("-".into(), |v| format!("{v:.2}"))
            );
            println!(
                "{:<10} {:<10} {:>13} {:>13} {:>6} {:>5} {:>6} {:>15}{}",
                b.from,
                b.to,
                f(b.overlay_mbps),
                f(b.underlay_mbps),
                ratio,
                b.mss.map_or("-".into(), |m| m.to_string()),
                b.fragments.map_or("-".into(), |n| n.to_string()),
                rtt,
                b.error.as_deref().map(|e| format!("  {e}")).unwrap_or_default()
            );
        }
    }
    println!("{}", if r.ok { "mesh OK" } else { "mesh BROKEN" });
}

/// `status`: one row per host, then every tunnel that is not up.
pub fn status(rows: &[HostStatus], clean: bool) {
    {
        let w = rows.iter().map(|r| r.node.len()).max().unwrap_or(4).max(4);
        println!(
            "{:<w$}  {:<9} {:<5} {:<18} {:<7} {:<10} DRIFT",
            "HOST", "REACHABLE", "SW0", "SUBNET", "DOCKER", "TUNNELS"
        );
        for r in rows {
            let up = r.tunnels.iter().filter(|t| t.state.as_deref() == Some("up")).count();
            let yn = |b: bool| if b { "yes" } else { "no" };
            let tunnels = if r.reachable { format!("{up}/{} up", r.tunnels.len()) } else { "-".into() };
            let drift = match (&r.error, r.drift.len()) {
                (Some(e), _) => e.clone(),
                (None, 0) => "none".into(),
                (None, n) => format!("{n} steps: {}", r.drift.join("; ")),
            };
            println!(
                "{:<w$}  {:<9} {:<5} {:<18} {:<7} {:<10} {drift}",
                r.node,
                yn(r.reachable),
                if r.reachable { yn(r.switch) } else { "-" },
                r.subnet,
                if r.reachable { yn(r.docker_network) } else { "-" },
                tunnels
            );
            for t in r.tunnels.iter().filter(|t| !t.present || t.state.as_deref() != Some("up")) {
                println!(
                    "{:w$}    tunnel to {}: {}",
                    "",
                    t.peer,
                    if t.present {
                        format!("BFD {}", t.state.as_deref().unwrap_or("no state yet"))
                    } else {
                        "missing".into()
                    }
                );
            }
            if let Some(l) = &r.last_applied {
                let which = if l.current { "this plan" } else { "an earlier plan: run `vxmesh up`" };
                println!("{:w$}    last changed by vxmesh {}, from {which}", "", l.time);
            }
            if !r.wireguard.is_empty() {
                let keyed = r.wireguard.iter().filter(|w| w.present).count();
                let each: Vec<String> = r
                    .wireguard
                    .iter()
                    .map(|w| {
                        let what = if w.present { w.state.as_deref().unwrap_or("?") } else { "missing or another key" };
                        format!("{} {what}", w.peer)
                    })
                    .collect();
                println!("{:w$}    wireguard: {keyed}/{} peers; {}", "", r.wireguard.len(), each.join(", "));
            }
        }
        println!("{}", if clean { "all hosts match the plan, every tunnel up" } else { "not clean: see above" });
    }
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

/// Version of the JSON envelope every command prints with `--json`.
pub const JSON_SCHEMA: u32 = 1;

/// `v` in the envelope: `schema`, `command` and `ok` first-class in every output. An object keeps its fields
/// (`ok` is true where it has none: outputs that cannot fail); anything else goes under `items`.
pub fn envelope(command: &str, v: serde_json::Value) -> serde_json::Value {
    let mut out = match v {
        serde_json::Value::Object(m) => m,
        other => {
            let mut m = serde_json::Map::new();
            m.insert("items".into(), other);
            m
        }
    };
    out.insert("schema".into(), JSON_SCHEMA.into());
    out.insert("command".into(), command.into());
    out.entry("ok").or_insert(true.into());
    serde_json::Value::Object(out)
}

pub fn json<T: Serialize>(v: &T) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer_pretty(&mut out, v);
    let _ = writeln!(out);
}

#[derive(Serialize)]
pub struct PlanJson<'a> {
    cluster: &'a str,
    cidr: ipnet::Ipv4Net,
    tunnel_pairs: usize,
    nodes: Vec<NodeJson<'a>>,
}

#[derive(Serialize)]
pub struct NodeJson<'a> {
    desired: &'a NodePlan,
    steps: Vec<StepJson<'a>>,
}

#[derive(Serialize)]
pub struct StepJson<'a> {
    description: &'a str,
    #[serde(flatten)]
    change: serde_json::Value,
    commands: Vec<String>,
}

pub fn plan_json<'a>(plan: &'a ClusterPlan, nodes: &'a [(&'a NodePlan, Vec<Step>)]) -> PlanJson<'a> {
    PlanJson {
        cluster: &plan.cluster,
        cidr: plan.cidr,
        tunnel_pairs: plan.tunnel_pairs,
        nodes: nodes
            .iter()
            .map(|(n, steps)| NodeJson {
                desired: n,
                steps: steps
                    .iter()
                    .map(|s| StepJson {
                        description: &s.description,
                        change: s.change.to_json(),
                        commands: shell::lines(&s.commands),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// Streams the offline plan: scripts are rendered a chunk of nodes at a time, on every core, and
/// printed in order, so a 1,000-node plan (a million tunnel ports) never sits in memory whole.
pub fn offline_plan(plan: &ClusterPlan) {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let _ = writeln!(
        out,
        "vxmesh plan (offline): cluster `{}`, {} nodes, {} tunnel pairs, cluster CIDR {}\n",
        plan.cluster,
        plan.nodes.len(),
        plan.tunnel_pairs,
        plan.cidr
    );
    let _ = writeln!(
        out,
        "{:<14} {:<18} {:<16} {:<18} {:<18} {:>7}",
        "NODE", "HOST", "UNDERLAY", "SUBNET", "SWITCH (sw0)", "TUNNELS"
    );
    for n in &plan.nodes {
        let _ = writeln!(
            out,
            "{:<14} {:<18} {:<16} {:<18} {:<18} {:>7}",
            n.name,
            n.host,
            n.underlay_ip.to_string(),
            n.subnet.to_string(),
            n.switch.address.to_string(),
            n.tunnels.len()
        );
    }
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    for chunk in plan.nodes.chunks(16 * workers) {
        let texts = map_in_parallel(chunk, workers, |n| {
            let steps = converge::diff(n, &HostFacts::default());
            format!("\n=== {} ({}): {} steps ===\n{}", n.name, n.host, steps.len(), converge::script(n, &steps))
        });
        for t in texts {
            let _ = out.write_all(t.as_bytes());
        }
    }
}

/// `items.map(f)` on up to `workers` threads, results in input order.
fn map_in_parallel<T: Sync, R: Send>(items: &[T], workers: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let per = items.len().div_ceil(workers.max(1)).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = items.chunks(per).map(|c| s.spawn(|| c.iter().map(&f).collect::<Vec<R>>())).collect();
        handles.into_iter().flat_map(|h| h.join().expect("a rendering thread panicked")).collect()
    })
}

/// `ps`: one line per container on the mesh, by host.
pub fn ps(listing: &crate::commands::ps::Listing) {
    let c = &listing.containers;
    let w = |f: &dyn Fn(&crate::commands::ps::MeshContainer) -> usize, min: usize| {
        c.iter().map(f).max().unwrap_or(0).max(min)
    };
    let (wn, wc, wi) = (w(&|x| x.node.len(), 4), w(&|x| x.name.len(), 9), w(&|x| x.image.len(), 5));
    println!("{:<wn$}  {:<wc$}  {:<wi$}  {:<15}  STATUS", "HOST", "CONTAINER", "IMAGE", "ADDRESS");
    for x in c {
        println!(
            "{:<wn$}  {:<wc$}  {:<wi$}  {:<15}  {}",
            x.node,
            x.name,
            x.image,
            x.address.as_deref().unwrap_or("-"),
            x.status
        );
    }
    for (node, why) in &listing.failed {
        println!("{node}: not listed: {why}");
    }
    let hosts: std::collections::BTreeSet<&str> = c.iter().map(|x| x.node.as_str()).collect();
    println!("{} containers on the mesh on {} hosts", c.len(), hosts.len());
}
