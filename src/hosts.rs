//! The commands that talk to hosts (`plan`, `up`, `verify`, `status`, `down`): run them and print the results.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use vxmesh::error::Error;
use vxmesh::executor::{self, Applied, Connected, Options};
use vxmesh::inventory::Inventory;
use vxmesh::plan::ClusterPlan;
use vxmesh::verify::{self, VerifyOptions};

/// Exit code when any host failed.
const HOSTS_FAILED: i32 = 2;
/// Exit code after Ctrl-C, as shells expect.
const INTERRUPTED: i32 = 130;

fn exit_code(opts: &Options, failed: bool) -> i32 {
    if opts.stopped() {
        INTERRUPTED
    } else if failed {
        HOSTS_FAILED
    } else {
        0
    }
}

#[derive(Serialize)]
struct HostResult {
    node: String,
    host: String,
    /// `ok` (nothing to do), `changed`, or `failed`.
    status: &'static str,
    changed: Vec<String>,
    /// Drift the command was not allowed to repair (`add-node` and `remove-node` touch only their node).
    left_alone: Vec<String>,
    error: Option<String>,
    seconds: f64,
}

fn results(raw: Vec<(std::sync::Arc<vxmesh::plan::NodePlan>, Result<Applied, String>, Duration)>) -> Vec<HostResult> {
    raw.into_iter()
        .map(|(n, r, d)| {
            let (status, changed, left_alone, error) = match r {
                Ok(a) if a.steps.is_empty() => ("ok", vec![], a.left_alone, None),
                Ok(a) => ("changed", a.steps, a.left_alone, None),
                Err(e) => ("failed", vec![], vec![], Some(e)),
            };
            HostResult {
                node: n.name.clone(),
                host: n.host.clone(),
                status,
                changed,
                left_alone,
                error,
                seconds: d.as_secs_f64(),
            }
        })
        .collect()
}

fn print_summary(rows: &[HostResult], verb: &str) {
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
        "{} hosts: {} {verb}, {} ok, {} failed",
        rows.len(),
        count("changed"),
        count("ok"),
        count("failed")
    );
}

async fn connect(inv: &Inventory, plan: &ClusterPlan, opts: &Options) -> Vec<Connected> {
    executor::connect_all(inv, plan, opts).await
}

/// `plan`: what `up` would change on each host, exactly.
pub async fn plan(inv: &Inventory, plan: &ClusterPlan, opts: &Options, json: bool) -> Result<i32, Error> {
    let hosts = connect(inv, plan, opts).await;
    let raw = executor::on_each(&hosts, opts, "facts", move |node, s, bar| async move {
        executor::converge(&s, &node, true, None, &bar).await
    })
    .await;
    executor::close_all(&hosts).await;
    let scripts: BTreeMap<String, String> =
        raw.iter().filter_map(|(n, r, _)| r.as_ref().ok().map(|a| (n.name.clone(), a.script.clone()))).collect();
    let rows = results(raw);
    let failed = rows.iter().any(|r| r.status == "failed");
    if json {
        print_json(&json!({"hosts": rows}));
    } else {
        for r in &rows {
            match (&r.error, r.changed.is_empty()) {
                (Some(e), _) => println!("=== {} ({}): cannot plan: {e}", r.node, r.host),
                (None, true) => println!("=== {} ({}): up to date", r.node, r.host),
                (None, false) => {
                    println!("=== {} ({}): {} steps\n{}", r.node, r.host, r.changed.len(), scripts[&r.node])
                }
            }
        }
    }
    Ok(if failed { HOSTS_FAILED } else { 0 })
}

/// `up`: converge every host, then verify (unless told not to).
pub async fn up(
    inv: &Inventory,
    plan: &ClusterPlan,
    opts: &Options,
    verify: Option<VerifyOptions>,
    json: bool,
) -> Result<i32, Error> {
    let hosts = connect(inv, plan, opts).await;
    let raw = executor::on_each(&hosts, opts, "up", move |node, s, bar| async move {
        executor::converge(&s, &node, false, None, &bar).await
    })
    .await;
    finish_change(&hosts, plan, opts, verify, json, raw, "changed").await
}

/// Runs verification, and always removes its containers (also on Ctrl-C).
async fn run_verify(hosts: &[Connected], plan: &ClusterPlan, opts: &Options, v: &VerifyOptions) -> verify::Report {
    let run = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() % 1_000_000)
    );
    let outcome = tokio::select! {
        r = verify::verify(hosts, plan, opts, v, &run) => Some(r),
        _ = tokio::signal::ctrl_c() => None,
    };
    verify::cleanup(hosts, opts, &run).await;
    match outcome {
        Some(r) => r,
        None => {
            eprintln!("interrupted: temporary containers removed");
            std::process::exit(130);
        }
    }
}

pub async fn verify(
    inv: &Inventory,
    plan: &ClusterPlan,
    opts: &Options,
    v: &VerifyOptions,
    json: bool,
) -> Result<i32, Error> {
    let hosts = connect(inv, plan, opts).await;
    let report = run_verify(&hosts, plan, opts, v).await;
    executor::close_all(&hosts).await;
    if json {
        print_json(&report);
    } else {
        print_verify(&report, plan);
    }
    Ok(if report.ok { 0 } else { HOSTS_FAILED })
}

fn print_verify(r: &verify::Report, plan: &ClusterPlan) {
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
    let what = if plan.nodes.first().is_some_and(|n| n.docker.mode == vxmesh::inventory::DockerMode::None) {
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
    print!("{}", verify::matrix(r, &names));
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

#[derive(Serialize)]
struct Tunnel {
    peer: String,
    present: bool,
    /// BFD's view of the tunnel: `up`, `down`, `init`, `admin_down`, or none yet.
    bfd: Option<String>,
}

#[derive(Serialize)]
struct HostStatus {
    node: String,
    host: String,
    reachable: bool,
    error: Option<String>,
    switch: bool,
    subnet: String,
    docker_network: bool,
    tunnels: Vec<Tunnel>,
    drift: Vec<String>,
}

/// `status`: per host reachability, sw0, tunnels with BFD liveness, subnet, docker network, drift from the plan.
pub async fn status(inv: &Inventory, plan: &ClusterPlan, opts: &Options, json: bool) -> Result<i32, Error> {
    let hosts = connect(inv, plan, opts).await;
    let raw = executor::on_each(&hosts, opts, "status", move |node, s, bar| async move {
        bar.set_message("gathering facts");
        let out = s.run(&vxmesh::facts::gather_script(&node)).await?;
        vxmesh::facts::HostFacts::parse(&out.stdout).map_err(|e| e.to_string())
    })
    .await;
    executor::close_all(&hosts).await;
    let rows: Vec<HostStatus> = raw
        .into_iter()
        .map(|(n, r, _)| match r {
            Err(e) => HostStatus {
                node: n.name.clone(),
                host: n.host.clone(),
                reachable: false,
                error: Some(e),
                switch: false,
                subnet: n.subnet.to_string(),
                docker_network: false,
                tunnels: vec![],
                drift: vec![],
            },
            Ok(f) => {
                let tunnels = n
                    .tunnels
                    .iter()
                    .map(|t| {
                        let iface = f.ovs.interfaces.get(&*t.port);
                        Tunnel {
                            peer: t.peer.to_string(),
                            present: f
                                .ovs
                                .bridges
                                .get(&n.switch.bridge)
                                .is_some_and(|b| b.ports.iter().any(|p| *p == *t.port)),
                            bfd: iface.and_then(|i| i.bfd_status.get("state").cloned()),
                        }
                    })
                    .collect();
                let preflight = executor::preflight(&n, &f).err();
                HostStatus {
                    node: n.name.clone(),
                    host: n.host.clone(),
                    reachable: true,
                    error: preflight,
                    switch: f.ovs.bridges.contains_key(&n.switch.bridge),
                    subnet: n.subnet.to_string(),
                    docker_network: f.docker_network.is_some(),
                    tunnels,
                    drift: vxmesh::diff::diff(&n, &f).into_iter().map(|s| s.description).collect(),
                }
            }
        })
        .collect();
    let clean = rows.iter().all(|r| {
        r.reachable
            && r.error.is_none()
            && r.drift.is_empty()
            && r.tunnels.iter().all(|t| t.present && t.bfd.as_deref() == Some("up"))
    });
    if json {
        print_json(&json!({"ok": clean, "hosts": rows}));
    } else {
        let w = rows.iter().map(|r| r.node.len()).max().unwrap_or(4).max(4);
        println!(
            "{:<w$}  {:<9} {:<5} {:<18} {:<7} {:<10} DRIFT",
            "HOST", "REACHABLE", "SW0", "SUBNET", "DOCKER", "TUNNELS"
        );
        for r in &rows {
            let up = r.tunnels.iter().filter(|t| t.bfd.as_deref() == Some("up")).count();
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
            for t in r.tunnels.iter().filter(|t| !t.present || t.bfd.as_deref() != Some("up")) {
                println!(
                    "{:w$}    tunnel to {}: {}",
                    "",
                    t.peer,
                    if t.present {
                        format!("BFD {}", t.bfd.as_deref().unwrap_or("no state yet"))
                    } else {
                        "missing".into()
                    }
                );
            }
        }
        println!("{}", if clean { "all hosts match the plan, every tunnel up" } else { "not clean: see above" });
    }
    let unreachable = rows.iter().any(|r| !r.reachable);
    Ok(if unreachable {
        HOSTS_FAILED
    } else if clean {
        0
    } else {
        1
    })
}

/// `down`: remove the mesh from every host.
pub async fn down(inv: &Inventory, plan: &ClusterPlan, opts: &Options, json: bool) -> Result<i32, Error> {
    let hosts = connect(inv, plan, opts).await;
    let raw = executor::on_each(&hosts, opts, "down", move |node, s, bar| async move {
        bar.set_message("removing the mesh");
        let out = s.run(&vxmesh::render::teardown_script(&node)).await?;
        if out.code != 0 {
            return Err(format!("teardown failed (exit {}): {}", out.code, out.stderr.trim()));
        }
        Ok(Applied::done("removed bridge, tunnels, veth, docker network and rules"))
    })
    .await;
    executor::close_all(&hosts).await;
    let rows = results(raw);
    let failed = rows.iter().any(|r| r.status == "failed");
    if json {
        print_json(&json!({"ok": !failed, "hosts": rows}));
    } else {
        print_summary(&rows, "removed");
    }
    Ok(exit_code(opts, failed))
}

pub fn print_json<T: Serialize>(v: &T) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer_pretty(&mut out, v);
    let _ = writeln!(out);
}

/// `add-node`: build the new node; on every other node add its tunnel and let it through the firewall, nothing else.
pub async fn add_node(
    inv: &Inventory,
    plan: &ClusterPlan,
    name: &str,
    opts: &Options,
    verify: Option<VerifyOptions>,
    json: bool,
) -> Result<i32, Error> {
    let hosts = connect(inv, plan, opts).await;
    let scope = executor::peer_scope(name);
    let new = name.to_string();
    let raw = executor::on_each(&hosts, opts, "add", move |node, s, bar| {
        let scope = scope.clone();
        let whole = node.name == new;
        async move { executor::converge(&s, &node, false, (!whole).then_some(&scope), &bar).await }
    })
    .await;
    finish_change(
        &hosts,
        plan,
        opts,
        verify.map(|v| VerifyOptions { only: Some(name.to_string()), ..v }),
        json,
        raw,
        "changed",
    )
    .await
}

async fn finish_change(
    hosts: &[Connected],
    plan: &ClusterPlan,
    opts: &Options,
    verify: Option<VerifyOptions>,
    json: bool,
    raw: Vec<(std::sync::Arc<vxmesh::plan::NodePlan>, Result<Applied, String>, Duration)>,
    verb: &str,
) -> Result<i32, Error> {
    let rows = results(raw);
    let failed = rows.iter().any(|r| r.status == "failed");
    if !json {
        print_summary(&rows, verb);
    }
    let report = match &verify {
        Some(v) if !failed && !opts.stopped() => Some(run_verify(hosts, plan, opts, v).await),
        _ => None,
    };
    executor::close_all(hosts).await;
    if json {
        print_json(&json!({"ok": !failed && report.as_ref().is_none_or(|r| r.ok), "hosts": rows, "verify": report}));
    } else if let Some(r) = &report {
        print_verify(r, plan);
    } else if failed && verify.is_some() {
        println!("verify skipped: not every host was built");
    }
    let bad = failed || report.as_ref().is_some_and(|r| !r.ok);
    Ok(exit_code(opts, bad))
}

/// `remove-node`: withdraw its tunnel and firewall entry from every other node, tear the node down if it answers.
/// `commit` records the new inventory and lock; it runs only once the node is known reachable (or `force`).
pub async fn remove_node(
    old: (&Inventory, &ClusterPlan),
    new_plan: &ClusterPlan,
    name: &str,
    force: bool,
    opts: &Options,
    json: bool,
    commit: impl FnOnce() -> Result<(), Error>,
) -> Result<i32, Error> {
    let (inv, plan) = old;
    let mut hosts = connect(inv, plan, opts).await;
    let gone_at = hosts.iter().position(|h| h.node.name == name).expect("the node is in the old plan");
    let gone = hosts.remove(gone_at);
    if let (Err(e), false) = (&gone.session, force) {
        executor::close_all(&hosts).await;
        return Err(Error::Hosts(format!(
            "{name} cannot be reached ({e}); nothing was changed. `vxmesh remove-node {name} --force` removes it from the mesh anyway (its own host then keeps its mesh until cleaned by hand)"
        )));
    }
    commit()?;
    // The remaining nodes, seen through the new plan.
    let remaining: Vec<Connected> = hosts
        .into_iter()
        .map(|h| Connected {
            node: std::sync::Arc::new(new_plan.node(&h.node.name).expect("kept").clone()),
            session: h.session,
        })
        .collect();
    let scope = executor::peer_scope(name);
    let mut raw = executor::on_each(&remaining, opts, "remove", move |node, s, bar| {
        let scope = scope.clone();
        async move { executor::converge(&s, &node, false, Some(&scope), &bar).await }
    })
    .await;
    let started = std::time::Instant::now();
    let teardown = match &gone.session {
        Ok(s) => match s.run(&vxmesh::render::teardown_script(&gone.node)).await {
            Ok(out) if out.code == 0 => Ok(Applied::done("removed its mesh (left the cluster)")),
            Ok(out) => Err(format!("teardown failed (exit {}): {}", out.code, out.stderr.trim())),
            Err(e) => Err(e),
        },
        Err(e) => Ok(Applied::done(format!("forced: unreachable ({e}), dropped from the mesh without cleaning it"))),
    };
    if let Ok(s) = &gone.session {
        s.close().await;
    }
    raw.push((gone.node.clone(), teardown, started.elapsed()));
    finish_change(&remaining, new_plan, opts, None, json, raw, "changed").await
}
