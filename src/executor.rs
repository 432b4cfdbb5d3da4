//! Runs work on every host in parallel (bounded by `--forks`), one SSH connection per host, with progress bars;
//! one host's failure never stops the others.

use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::diff::{self, Step};
use crate::facts::HostFacts;
use crate::inventory::{FirewallKind, Inventory};
use crate::plan::{ClusterPlan, NodePlan};
use crate::render;
use crate::ssh::{self, HostKeyPolicy, Session, Timeouts};

#[derive(Debug, Clone)]
pub struct Options {
    pub forks: usize,
    pub policy: HostKeyPolicy,
    pub timeouts: Timeouts,
    /// Draw progress bars on stderr (off for --json and when stderr is not a terminal).
    pub progress: bool,
    /// Set on Ctrl-C: hosts already working finish their step and report; no new host is started.
    pub stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Options {
    pub fn stopped(&self) -> bool {
        self.stop.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// What a host that never started reports after Ctrl-C.
pub const INTERRUPTED: &str = "interrupted (Ctrl-C) before this host was started";

/// A host's connection, or why there is none.
pub struct Connected {
    pub node: Arc<NodePlan>,
    pub session: Result<Arc<Session>, String>,
}

/// Progress: an overall bar and one line per host in flight.
#[derive(Clone)]
pub struct Progress {
    multi: MultiProgress,
    overall: ProgressBar,
}

impl Progress {
    pub fn new(enabled: bool, total: usize, what: &str) -> Progress {
        let target = if enabled { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        let multi = MultiProgress::with_draw_target(target);
        let overall = multi.add(ProgressBar::new(total as u64));
        overall.set_style(
            ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} hosts {elapsed}")
                .expect("template")
                .progress_chars("=> "),
        );
        overall.set_prefix(what.to_string());
        Progress { multi, overall }
    }

    pub fn host(&self, name: &str) -> ProgressBar {
        let bar = self.multi.insert_before(&self.overall, ProgressBar::new_spinner());
        bar.set_style(ProgressStyle::with_template("  {spinner} {prefix:<14} {msg}").expect("template"));
        bar.set_prefix(name.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }

    pub fn done(&self, bar: ProgressBar) {
        bar.finish_and_clear();
        self.overall.inc(1);
    }

    pub fn finish(&self) {
        self.overall.finish_and_clear();
    }
}

/// Closes every connection politely.
pub async fn close_all(hosts: &[Connected]) {
    for h in hosts {
        if let Ok(s) = &h.session {
            s.close().await;
        }
    }
}

/// Opens one connection per host, all in parallel (bounded), host keys checked.
pub async fn connect_all(inv: &Inventory, plan: &ClusterPlan, opts: &Options) -> Vec<Connected> {
    let config = Arc::new(ssh::load_ssh_config());
    let gate = Arc::new(Semaphore::new(opts.forks.max(1)));
    let tasks: Vec<_> = plan
        .nodes
        .iter()
        .map(|n| {
            let node = Arc::new(n.clone());
            let target = ssh::resolve(&n.host, &inv.ssh, config.as_ref().as_ref());
            let (gate, opts) = (gate.clone(), opts.clone());
            tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.expect("semaphore open");
                if opts.stopped() {
                    return Connected { node, session: Err(INTERRUPTED.to_string()) };
                }
                let session = ssh::connect(&target, &opts.policy, &opts.timeouts).await.map(Arc::new);
                Connected { node, session }
            })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.expect("connect task"));
    }
    out
}

/// Runs `op` on every connected host in parallel (bounded); hosts without a connection report why.
pub async fn on_each<T, F, Fut>(
    hosts: &[Connected],
    opts: &Options,
    what: &str,
    op: F,
) -> Vec<(Arc<NodePlan>, Result<T, String>, Duration)>
where
    T: Send + 'static,
    F: Fn(Arc<NodePlan>, Arc<Session>, ProgressBar) -> Fut,
    Fut: std::future::Future<Output = Result<T, String>> + Send + 'static,
{
    let progress = Progress::new(opts.progress, hosts.len(), what);
    let gate = Arc::new(Semaphore::new(opts.forks.max(1)));
    let mut tasks = Vec::with_capacity(hosts.len());
    for h in hosts {
        let node = h.node.clone();
        match &h.session {
            Err(e) => {
                let e = e.clone();
                tasks.push(tokio::spawn(async move { (node, Err(e), Duration::ZERO) }));
            }
            Ok(session) => {
                let bar = progress.host(&node.name);
                let (gate, progress, fut) =
                    (gate.clone(), progress.clone(), op(node.clone(), session.clone(), bar.clone()));
                let stop = opts.stop.clone();
                tasks.push(tokio::spawn(async move {
                    let _permit = gate.acquire_owned().await.expect("semaphore open");
                    let started = Instant::now();
                    let r = if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        Err(INTERRUPTED.to_string())
                    } else {
                        fut.await
                    };
                    progress.done(bar);
                    (node, r, started.elapsed())
                }));
            }
        }
    }
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.expect("host task"));
    }
    progress.finish();
    out
}

/// Which changes a command may make on a host; `add-node` and `remove-node` touch only what concerns the node.
pub type Scope = Arc<dyn Fn(&crate::diff::Change) -> bool + Send + Sync>;

/// Changes that concern `peer` on another host: its tunnel, and the firewall's list of peers.
pub fn peer_scope(peer: &str) -> Scope {
    let port = crate::names::tunnel_port(peer);
    Arc::new(move |c: &crate::diff::Change| {
        use crate::diff::Change;
        match c {
            Change::Tunnel { tunnel, .. } => *tunnel.port == *port,
            Change::RemoveTunnel { port: p, .. } => *p == port,
            Change::IptablesChain(chain) => chain.chain == crate::names::VXLAN_CHAIN,
            Change::NftTable { .. } | Change::Firewalld { .. } => true,
            _ => false,
        }
    })
}

/// What `up` (or `plan`) found and did on one host.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    /// Descriptions of the steps applied (or, for `plan`, that would be).
    pub steps: Vec<String>,
    /// Steps the host needed but the command's scope left alone (drift to repair with `up`).
    pub left_alone: Vec<String>,
    /// The script that was (or would be) sent.
    #[serde(skip)]
    pub script: String,
}

impl Applied {
    /// One step done outside the diff (a teardown), with no script to show.
    pub fn done(step: impl Into<String>) -> Applied {
        Applied { steps: vec![step.into()], left_alone: vec![], script: String::new() }
    }
}

/// Gathers facts in one round trip and checks the host can take the mesh, before anything is changed.
pub async fn facts(session: &Session, node: &NodePlan) -> Result<HostFacts, String> {
    let out = session.run(&crate::facts::gather_script(node)).await?;
    if out.code != 0 {
        return Err(format!("gathering facts failed (exit {}): {}", out.code, tail(&out.stderr, 5)));
    }
    let facts = HostFacts::parse(&out.stdout).map_err(|e| e.to_string())?;
    preflight(node, &facts)?;
    Ok(facts)
}

/// Facts, diff and (unless `dry_run`) the missing steps within `scope`, applied in one round trip.
pub async fn converge(
    session: &Session,
    node: &NodePlan,
    dry_run: bool,
    scope: Option<&Scope>,
    bar: &ProgressBar,
) -> Result<Applied, String> {
    bar.set_message("gathering facts");
    let facts = facts(session, node).await?;
    let (steps, left): (Vec<Step>, Vec<Step>) =
        diff::diff(node, &facts).into_iter().partition(|s| scope.is_none_or(|f| f(&s.change)));
    let script = render::script(node, &steps);
    let applied = Applied {
        steps: steps.iter().map(|s| s.description.clone()).collect(),
        left_alone: left.into_iter().map(|s| s.description).collect(),
        script,
    };
    if steps.is_empty() || dry_run {
        return Ok(applied);
    }
    bar.set_message(format!("applying {} steps", steps.len()));
    let out = session.run(&applied.script).await?;
    if out.code != 0 {
        return Err(failed_step(&out.stderr, out.code));
    }
    Ok(applied)
}

/// Names the step a script stopped in, from its `### vxmesh-step` markers, with what it printed.
pub fn failed_step(stderr: &str, code: u32) -> String {
    let last = stderr.lines().rev().find_map(|l| l.strip_prefix("### vxmesh-step "));
    let printed: String = stderr.lines().filter(|l| !l.starts_with("### vxmesh-step ")).collect::<Vec<_>>().join("\n");
    match last {
        Some(step) => {
            let (n, desc) = step.split_once(' ').unwrap_or((step, ""));
            format!("step {n} ({desc}) failed with exit {code}: {}", tail(&printed, 8))
        }
        None => format!("the script failed before its first step (exit {code}): {}", tail(&printed, 8)),
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    let t = lines[lines.len().saturating_sub(n)..].join("\n");
    if t.is_empty() { "(nothing on stderr)".into() } else { t }
}

/// The host must have the tools, running daemons and underlay address the mesh needs; say what to install.
pub fn preflight(node: &NodePlan, facts: &HostFacts) -> Result<(), String> {
    let os = facts.os.get("ID").cloned().unwrap_or_default();
    let like = facts.os.get("ID_LIKE").cloned().unwrap_or_default();
    let rpm = ["rhel", "centos", "fedora", "rocky", "almalinux", "ol"]
        .iter()
        .any(|d| os == *d || like.split(' ').any(|l| l == *d));
    let firewall = diff::resolve_firewall(node.firewall.kind, facts);
    let mut need: Vec<(&str, &str, &str)> = vec![
        ("ovs-vsctl", "openvswitch-switch", "openvswitch (from the NFV SIG or RDO repository)"),
        ("ip", "iproute2", "iproute"),
        ("iptables", "iptables", "iptables-nft"),
        ("iptables-save", "iptables", "iptables-nft"),
        ("iptables-restore", "iptables", "iptables-nft"),
        ("sysctl", "procps", "procps-ng"),
    ];
    if node.docker.mode != crate::inventory::DockerMode::None {
        need.push(("docker", "docker.io", "docker-ce (from docker's repository) or moby-engine"));
    }
    if !node.tx_offload_off.is_empty() {
        need.push(("ethtool", "ethtool", "ethtool"));
    }
    if firewall == FirewallKind::Nftables {
        need.push(("nft", "nftables", "nftables"));
    }
    if firewall == FirewallKind::Firewalld {
        need.push(("firewall-cmd", "firewalld", "firewalld"));
    }
    let missing: Vec<&(&str, &str, &str)> =
        need.iter().filter(|(tool, _, _)| !facts.tools.contains_key(*tool)).collect();
    if !missing.is_empty() {
        let tools: Vec<&str> = missing.iter().map(|m| m.0).collect();
        let mut pkgs: Vec<&str> = missing.iter().map(|m| if rpm { m.2 } else { m.1 }).collect();
        pkgs.dedup();
        let how = if rpm { "dnf install" } else { "apt-get install" };
        let name = facts.os.get("PRETTY_NAME").cloned().unwrap_or_else(|| "this host".into());
        return Err(format!("missing {} on {name}; install with: {how} {}", tools.join(", "), pkgs.join(" ")));
    }
    if !facts.ovs.reachable {
        return Err(
            "Open vSwitch is installed but ovsdb-server does not answer: start it (systemctl start openvswitch-switch)"
                .into(),
        );
    }
    if node.docker.mode != crate::inventory::DockerMode::None
        && facts.tools.get("docker").is_some_and(|t| t.version.is_empty())
    {
        return Err("docker is installed but its daemon does not answer: start it (systemctl start docker)".into());
    }
    if facts.mtu_of_device_with(node.underlay_ip).is_none() {
        return Err(format!(
            "no interface on this host has the underlay address {} (underlay_ip of {})",
            node.underlay_ip, node.name
        ));
    }
    let ours = [node.switch.bridge.as_str(), node.docker.bridge.as_str()];
    if let Some(r) = facts.routes.iter().find(|r| {
        r.dst.parse::<ipnet::Ipv4Net>().is_ok_and(|d| crate::inventory::overlaps(&d, &node.subnet))
            && !r.dev.as_deref().is_some_and(|d| ours.contains(&d))
    }) {
        return Err(format!(
            "subnet {} of {} collides with route {} via {} already on the host; pin another subnet for this node",
            node.subnet,
            node.name,
            r.dst,
            r.dev.as_deref().unwrap_or("?")
        ));
    }
    Ok(())
}
