//! `vxmesh lab ...`: the local lab of real hosts, for trying vxmesh and for its tests.

use clap::Subcommand;
use vxmesh::error::Error;
use vxmesh::lab::{self, LabState};

use super::Ctx;
use super::context::Form;
use super::output::json;

#[derive(Subcommand)]
pub enum LabCommand {
    /// Create a lab: N hosts on one underlay, plus an outside-world host; writes an inventory for `vxmesh up -i`.
    Create {
        /// How many hosts.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// The lab's name (1 to 6 lowercase letters or digits); several labs can coexist.
        #[arg(long, default_value = "lab")]
        name: String,
        /// Hosts without docker: sshd and Open vSwitch only, for control-plane tests with 30+ hosts.
        #[arg(long)]
        light: bool,
        /// Hosts running firewalld (default zone `public`, nftables backend) beside docker, as RHEL-family
        /// hosts do; without it firewalld stays off on every host.
        #[arg(long)]
        firewalld: bool,
        /// The hosts' data plane: `ovs` (Open vSwitch, userspace datapath), `linux` (no Open vSwitch at all:
        /// the kernel backend), or `mixed` (odd hosts OVS, even hosts the kernel).
        #[arg(long, value_enum, default_value = "ovs")]
        backend: LabBackendArg,
        /// Hosts in sites behind routers instead of one flat underlay: `NAME:COUNT[@nat][@mtuN],...`, e.g.
        /// `dc1:2,dc2:1@mtu1400,home:1@nat`. Each site is a network of its own behind a router doing 1:1 NAT
        /// onto a shared WAN (`@nat`: masquerade), with the given link MTU; SSH goes over a separate management
        /// network. Every host runs the kernel backend (docs/lab.md).
        #[arg(long, conflicts_with_all = ["nodes", "backend"])]
        sites: Option<String>,
        /// Hosts reached and tunnelling over IPv6 only: a ULA on each host's underlay interface, sshd there, no
        /// IPv4 address left on it; the inventory names the hosts by their IPv6 addresses (docs/lab.md).
        #[arg(long, conflicts_with = "sites")]
        ipv6_only: bool,
        /// Hosts with an IPv4 and an IPv6 (ULA) address on the underlay, reached over IPv4; the inventory lists
        /// both per host (`underlay_ip: [IPv4, IPv6]`) and the gateway has both (docs/lab.md).
        #[arg(long, conflicts_with_all = ["sites", "ipv6_only"])]
        dual_stack: bool,
        /// With --dual-stack: this host keeps IPv4 only (repeatable), e.g. `--ipv4-only node3`.
        #[arg(long, value_name = "NODE", requires = "dual_stack")]
        ipv4_only: Vec<String>,
    },
    /// Tear a lab down completely: processes (containers included), namespaces, links, rules, mounts, files.
    Destroy {
        #[arg(long, default_value = "lab")]
        name: String,
    },
    /// List the labs on this machine.
    List,
    /// Power a lab host off, on, or reboot it (runtime state is lost, disk and boot units are kept).
    Node {
        #[arg(value_enum)]
        action: NodeAction,
        /// The host, e.g. node2.
        node: String,
        #[arg(long, default_value = "lab")]
        name: String,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum LabBackendArg {
    Ovs,
    Linux,
    Mixed,
}

impl From<LabBackendArg> for lab::LabBackend {
    fn from(b: LabBackendArg) -> Self {
        match b {
            LabBackendArg::Ovs => lab::LabBackend::Ovs,
            LabBackendArg::Linux => lab::LabBackend::Linux,
            LabBackendArg::Mixed => lab::LabBackend::Mixed,
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum NodeAction {
    Stop,
    Start,
    Reboot,
}

impl LabCommand {
    pub fn exec(&self, ctx: &Ctx) -> Result<i32, Error> {
        match self {
            LabCommand::Create { nodes, name, light, firewalld, backend, sites, ipv6_only, dual_stack, ipv4_only } => {
                let sites = sites.as_deref().map(lab::sites::parse).transpose()?.unwrap_or_default();
                let opts = lab::CreateOptions {
                    name: name.clone(),
                    nodes: *nodes,
                    light: *light,
                    firewalld: *firewalld,
                    backend: (*backend).into(),
                    sites,
                };
                let family = match (*ipv6_only, *dual_stack) {
                    (true, _) => Underlay::Ipv6Only,
                    (_, true) => Underlay::DualStack(ipv4_only),
                    _ => Underlay::Ipv4,
                };
                create(ctx, &opts, family)
            }
            LabCommand::Destroy { name } => {
                let removed = lab::destroy(name)?;
                match ctx.form {
                    Form::Json => json(ctx, &serde_json::json!({"destroyed": name, "namespaces": removed})),
                    _ => println!("lab `{name}` destroyed ({} namespaces removed, nothing left behind)", removed.len()),
                }
                Ok(0)
            }
            LabCommand::List => {
                let labs = lab::list();
                match ctx.form {
                    Form::Json => json(ctx, &serde_json::to_value(&labs).expect("labs serialize")),
                    _ if labs.is_empty() => println!("no labs; create one with `vxmesh lab create`"),
                    _ => labs.iter().for_each(print_lab),
                }
                Ok(0)
            }
            LabCommand::Node { action, node, name } => {
                let state = lab::load(name)?;
                let verb = match action {
                    NodeAction::Stop => lab::node_stop(&state, node).map(|()| "stopped"),
                    NodeAction::Start => lab::node_start(&state, node).map(|()| "started"),
                    NodeAction::Reboot => lab::node_reboot(&state, node).map(|()| "rebooted"),
                }?;
                match ctx.form {
                    Form::Json => json(ctx, &serde_json::json!({"lab": name, "node": node, "done": verb})),
                    _ => println!("{node} {verb}"),
                }
                Ok(0)
            }
        }
    }
}

/// The families on the lab hosts' underlay.
enum Underlay<'a> {
    Ipv4,
    Ipv6Only,
    /// Both, except on the hosts named.
    DualStack(&'a [String]),
}

fn create(ctx: &Ctx, opts: &lab::CreateOptions, family: Underlay) -> Result<i32, Error> {
    let started = std::time::Instant::now();
    let quiet = ctx.form == Form::Quiet;
    let mut progress = |line: &str| {
        if !quiet {
            eprintln!("lab: {line}");
        }
    };
    let state = match family {
        Underlay::Ipv4 => lab::create(opts, &mut progress)?,
        Underlay::Ipv6Only => lab::ipv6::create(opts, &mut progress)?,
        Underlay::DualStack(ipv4_only) => lab::dualstack::create(opts, ipv4_only, &mut progress)?,
    };
    let ipv6_only = matches!(family, Underlay::Ipv6Only);
    let secs = started.elapsed().as_secs_f64();
    match ctx.form {
        Form::Json => json(ctx, &serde_json::json!({"lab": state, "seconds": secs})),
        Form::Quiet => {
            println!("lab `{}` created in {secs:.1} s, inventory {}", state.name, state.inventory_path().display())
        }
        Form::Text => {
            print_lab(&state);
            println!("\ncreated in {secs:.1} s. Next:");
            println!("  vxmesh plan --offline -i {}", state.inventory_path().display());
            println!(
                "  ssh -i {d}/id_ed25519 -o UserKnownHostsFile={d}/known_hosts root@{}",
                if ipv6_only {
                    lab::ipv6::node_address(&state, &state.nodes[0]).to_string()
                } else {
                    state.nodes[0].ip.to_string()
                },
                d = state.dir.display()
            );
            println!("  vxmesh lab destroy --name {}", state.name);
        }
    }
    Ok(0)
}

fn print_lab(l: &LabState) {
    println!(
        "lab `{}`: underlay {} (gateway {}), inventory {}",
        l.name,
        l.subnet,
        l.gateway,
        l.inventory_path().display()
    );
    for s in &l.sites {
        let how = match s.spec.nat {
            lab::sites::Nat::OneToOne => "1:1 NAT",
            lab::sites::Nat::Masquerade => "masquerade",
        };
        println!(
            "  site {:<8} {:<16} router {} on the WAN ({how}), MTU {}",
            s.spec.name,
            s.subnet.to_string(),
            s.wan_ip,
            s.spec.mtu
        );
    }
    for n in &l.nodes {
        let up = if lab::node_running(l, n) { "running" } else { "stopped" };
        let site = n.site.as_ref().map_or_else(String::new, |s| {
            let public = s.public_ip.map_or_else(|| "behind NAT".to_string(), |p| format!("public {p}"));
            format!(" site {} underlay {} {public}", s.site, s.underlay)
        });
        println!("  {:<8} {:<16} {up}{}{site}", n.name, n.ip.to_string(), if l.light { " (light)" } else { "" });
    }
    println!("  {:<8} {:<16} outside world (ping, TCP echo on port 7)", "outside", l.outside.ip.to_string());
}
