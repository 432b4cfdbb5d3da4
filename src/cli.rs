//! Command line: the only place that prints or picks exit codes (0 ok, 1 bad usage or input, 2 a host failed).

use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use serde_json::json;
use vxmesh::commands::{self, ChangeOutcome, HostResult};
use vxmesh::components::Step;
use vxmesh::converge;
use vxmesh::error::Error;
use vxmesh::facts::HostFacts;
use vxmesh::model::inventory::{self, Inventory};
use vxmesh::model::ipam::{self, Lock};
use vxmesh::plan::{self, ClusterPlan, NodePlan};
use vxmesh::remote::executor::{Options, Transcript};
use vxmesh::remote::interrupt::Stop;
use vxmesh::report;

mod confirm;
mod init;

/// Exit code when any host failed.
const HOSTS_FAILED: i32 = 2;
/// Exit code when `status` found drift or `verify` a failed check: the hosts answered, the mesh is not right.
const CHECK_FAILED: i32 = 3;
/// Exit code after Ctrl-C, as shells expect.
const INTERRUPTED: i32 = 130;

#[derive(Parser)]
#[command(
    name = "vxmesh",
    version,
    about = "Connect docker hosts with a full mesh of VXLAN tunnels over Open vSwitch",
    long_about = "vxmesh reads an inventory of docker hosts, computes every container subnet and every tunnel centrally, \
and builds on each host: an OVS bridge `sw0`, one VXLAN tunnel port per peer (split horizon, BFD on), a docker \
bridge network on the host's own subnet joined to sw0 by a veth pair, NAT only towards the outside world, and \
VXLAN allowed only from the peers.\n\nStart with `vxmesh plan --offline` to read exactly what would be done.",
    after_help = "Exit codes: 0 success, 1 bad usage or bad inventory (nothing touched), 2 some host failed, \
3 drift found (status) or a check failed (verify), 130 interrupted.\nNo colour with NO_COLOR set or when the output is \
not a terminal.\nDocs: README.md, docs/inventory.md, docs/architecture.md"
)]
struct Cli {
    /// The inventory file (YAML). Its address plan is kept beside it, in the same name with `.lock`.
    /// Without -i: the file named by VXMESH_INVENTORY, else vxmesh.yaml in the current directory.
    #[arg(
        short,
        long,
        global = true,
        env = "VXMESH_INVENTORY",
        default_value = inventory::DEFAULT_PATH,
        value_name = "FILE"
    )]
    inventory: PathBuf,

    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,

    /// When another vxmesh command is working on the same inventory, stop at once instead of waiting for it.
    #[arg(long, global = true)]
    no_wait: bool,

    /// Print only errors (on stderr) and a one-line result: no tables, no progress bars.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,

    /// Show every script sent to a host and what it printed, on stderr as each ends (no progress bars then);
    /// `plan --offline` adds each node's read-only facts script.
    #[arg(short, long, global = true)]
    verbose: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show what would be built: per node, the commands that make it match the plan.
    ///
    /// With --offline nothing is contacted: every node is shown as if empty, i.e. the full build script.
    Plan {
        /// Do not connect to hosts; show the from-scratch build of every node.
        #[arg(long)]
        offline: bool,
        #[command(flatten)]
        hosts: HostArgs,
    },
    /// Print one node's build script: POSIX sh, safe to run again, runnable by hand on an air-gapped host.
    Render {
        /// The node's name in the inventory.
        node: String,
    },
    /// Build the mesh on every host (only what is missing), then verify it.
    Up(BuildArgs),
    /// Prove the mesh works: containers on every pair of hosts talk over the tunnels, without NAT.
    Verify {
        #[command(flatten)]
        hosts: HostArgs,
        #[command(flatten)]
        verify: VerifyArgs,
    },
    /// Per host: reachable, sw0 and tunnels present, tunnel liveness (BFD), drift from the plan.
    Status(HostArgs),
    /// Every container on the mesh network across all hosts: host, name, image, mesh address, state.
    Ps(HostArgs),
    /// Remove everything vxmesh created on every host; docker and OVS keep running. Every host is looked at
    /// first: if containers are still on the mesh network anywhere, no host is touched (unless --force).
    /// Asks first on a terminal; without one, refuses unless --yes.
    Down {
        /// Disconnect containers still attached to the mesh's docker network instead of refusing.
        #[arg(long)]
        force: bool,
        /// Do not ask for confirmation (needed when stdin is not a terminal).
        #[arg(short, long)]
        yes: bool,
        #[command(flatten)]
        hosts: HostArgs,
    },
    /// Add a node to the inventory and the mesh: build it, and on every other node add its tunnel
    /// and let it through the firewall, touching nothing else there. Then verify its pairs.
    AddNode {
        /// The new node's name.
        name: String,
        /// SSH address or ~/.ssh/config alias.
        #[arg(long)]
        host: String,
        /// Tunnel endpoint, when it differs from --host (required when --host is not an address).
        #[arg(long)]
        underlay_ip: Option<String>,
        /// Pin its subnet; otherwise the lowest free one.
        #[arg(long)]
        subnet: Option<String>,
        /// Its data plane when it differs from cluster.backend: `ovs` or `linux` (no Open vSwitch needed).
        #[arg(long, value_name = "ovs|linux")]
        backend: Option<String>,
        #[command(flatten)]
        build: BuildArgs,
    },
    /// Remove a node: its tunnel and firewall entry leave every other node, the node itself is torn down,
    /// and its subnet is freed in the lock file. Asks first on a terminal; without one, refuses unless --yes.
    RemoveNode {
        name: String,
        /// Remove it even when it cannot be reached (its host keeps its mesh until cleaned by hand).
        #[arg(long)]
        force: bool,
        /// Do not ask for confirmation (needed when stdin is not a terminal).
        #[arg(short, long)]
        yes: bool,
        #[command(flatten)]
        hosts: HostArgs,
    },
    /// New WireGuard key pairs, made on the hosts (all, or the nodes named); every other host learns the new
    /// public keys in the same round trip. Needs `encryption: wireguard`. Then verify.
    RotateKeys {
        /// The nodes whose keys to replace; all when none is named.
        nodes: Vec<String>,
        #[command(flatten)]
        build: BuildArgs,
    },
    /// Write a new inventory for the hosts given: every optional field shown commented out with its default.
    /// It is checked as every command checks an inventory; an existing file is kept unless --force.
    Init {
        /// A host of the mesh: its address (nodes are then named node1, node2, ... in order), or NAME=ADDRESS.
        /// Repeat it for each host.
        #[arg(long = "host", value_name = "[NAME=]ADDRESS", required = true)]
        hosts: Vec<String>,
        /// The cluster's name (default: vxmesh).
        #[arg(long)]
        name: Option<String>,
        /// The cluster CIDR: every container subnet and switch address lies inside.
        #[arg(long, default_value = inventory::init::DEFAULT_CIDR)]
        cidr: String,
        /// Where to write it (default: the inventory, as -i or VXMESH_INVENTORY name it, else vxmesh.yaml).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Replace the file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// A local lab of real hosts (network namespaces running sshd, Open vSwitch and docker). Linux, root.
    #[command(subcommand)]
    Lab(LabCommand),
    /// Print a completion script for a shell, e.g.
    /// `vxmesh completions bash > ~/.local/share/bash-completion/completions/vxmesh`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `vxmesh man > vxmesh.1 && man ./vxmesh.1`.
    Man,
    /// Print the read-only script that gathers a node's facts (used to record test fixtures).
    #[command(hide = true)]
    FactsScript { node: String },
}

#[derive(Subcommand)]
enum LabCommand {
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
        /// The hosts' data plane: `ovs` (Open vSwitch, userspace datapath), `linux` (no Open vSwitch at all:
        /// the kernel backend), or `mixed` (odd hosts OVS, even hosts the kernel).
        #[arg(long, value_enum, default_value = "ovs")]
        backend: LabBackendArg,
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
enum LabBackendArg {
    Ovs,
    Linux,
    Mixed,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum NodeAction {
    Stop,
    Start,
    Reboot,
}

#[derive(Args, Clone)]
struct HostArgs {
    /// Work on at most this many hosts at once.
    #[arg(long, default_value_t = 50)]
    forks: usize,
    /// Learn the host key of hosts not yet in known_hosts (like OpenSSH's accept-new). Changed keys are always refused.
    #[arg(long)]
    accept_new_host_keys: bool,
    /// Seconds to wait for a host to answer and authenticate.
    #[arg(long, default_value_t = 10)]
    connect_timeout: u64,
    /// Seconds a single script may run on a host.
    #[arg(long, default_value_t = 300)]
    command_timeout: u64,
    /// Reach only these nodes (names or globs with `*` and `?`; repeatable). Every node is still planned with
    /// all its peers; the others are not contacted.
    #[arg(long, value_name = "PATTERN")]
    limit: Vec<String>,
}

/// What the commands that build hosts take: how to reach them, and how to verify afterwards.
#[derive(Args, Clone)]
struct BuildArgs {
    #[command(flatten)]
    hosts: HostArgs,
    /// Skip the verification after building.
    #[arg(long)]
    no_verify: bool,
    #[command(flatten)]
    verify: VerifyArgs,
}

#[derive(Args, Clone)]
struct VerifyArgs {
    /// Test only K ordered pairs, spread over the cluster (for big clusters).
    #[arg(long, value_name = "K")]
    sample: Option<usize>,
    /// An address outside the cluster to reach through NAT (default: cluster.outside from the inventory).
    #[arg(long, value_name = "ADDR")]
    outside: Option<std::net::Ipv4Addr>,
    /// Also measure TCP throughput and latency with iperf3 (on the hosts), container to container over the mesh
    /// next to host to host on the underlay, around a ring of hosts.
    #[arg(long)]
    bandwidth: bool,
    /// The image for the temporary containers (needs sh, ping, wget, httpd: busybox has them).
    #[arg(long, default_value = "busybox")]
    image: String,
}

pub fn run() -> i32 {
    // clap colours help and errors on a terminal; NO_COLOR (https://no-color.org) turns that off, whatever else is
    // set. Nothing else vxmesh prints has colour.
    let color = if no_color() { clap::ColorChoice::Never } else { clap::ColorChoice::Auto };
    let parsed = Cli::command().color(color).try_get_matches().and_then(|m| Cli::from_arg_matches(&m).map(|c| (c, m)));
    let (cli, matches) = match parsed {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 1 } else { 0 };
        }
    };
    // `lab create`, `up`, ...: what every JSON envelope names.
    let mut name = vec![];
    let mut m = &matches;
    while let Some((sub, next)) = m.subcommand() {
        name.push(sub.to_string());
        m = next;
    }
    let _ = COMMAND.set(name.join(" "));
    match execute(&cli) {
        Ok(code) => code,
        Err(e) if cli.json => {
            print_json(&json!({"ok": false, "error": {"message": e.to_string(), "exit_code": e.code()}}));
            e.code()
        }
        Err(e) => {
            eprintln!("error: {e}");
            e.code()
        }
    }
}

/// The command line's command, for the JSON envelope.
static COMMAND: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Every JSON output in one envelope: `{"schema": 1, "command": ..., "ok": ..., ...}` (a list goes under `items`).
fn print_json<T: serde::Serialize>(v: &T) {
    let command = COMMAND.get().map_or("", String::as_str);
    report::json(&report::envelope(command, serde_json::to_value(v).expect("outputs serialize")));
}

/// NO_COLOR set and not empty, as https://no-color.org says.
fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// The inventory, validated, with the address plan kept in step with it (the lock is written when it changed).
fn load(path: &Path) -> Result<(Inventory, ClusterPlan), Error> {
    load_with(path, true)
}

/// As [`load`], but the address plan stays in memory: for commands that only show (`render`, `plan --offline`).
fn load_readonly(path: &Path) -> Result<(Inventory, ClusterPlan), Error> {
    load_with(path, false)
}

fn load_with(path: &Path, save: bool) -> Result<(Inventory, ClusterPlan), Error> {
    let inv = inventory::load(path)?;
    let lock_file = ipam::lock_path(path);
    let previous = Lock::load(&lock_file)?;
    let lock = ipam::allocate(&inv, previous.as_ref(), &lock_file)?;
    if save && previous.as_ref() != Some(&lock) {
        lock.save(&lock_file)?;
    }
    let plan = plan::plan(&inv, &lock);
    Ok((inv, plan))
}

/// 130 after Ctrl-C, 2 when a host failed, 3 when a check failed, else 0.
fn exit_code(opts: &Options, hosts_failed: bool, check_failed: bool) -> i32 {
    if opts.stopped() {
        INTERRUPTED
    } else if hosts_failed {
        HOSTS_FAILED
    } else if check_failed {
        CHECK_FAILED
    } else {
        0
    }
}

/// Prints a change command's outcome (the summary was printed before verification) and picks its exit code.
/// With -q, the one line: how the hosts ended, and the verification's result.
fn finish(outcome: &ChangeOutcome, plan: &ClusterPlan, opts: &Options, cli: &Cli, verb: &str) -> i32 {
    let skipped = outcome.verify_skipped && !outcome.interrupted;
    name_record(opts, !outcome.ok, cli);
    if cli.json {
        print_json(&json!({"ok": outcome.ok, "hosts": outcome.hosts, "verify": outcome.verify, "record": opts.record}));
    } else if cli.quiet {
        let mut line = report::summary_line(&outcome.hosts, verb);
        if let Some(r) = &outcome.verify {
            report::verify_errors(r);
            line = format!("{line}; {}", report::verify_line(r));
        } else if skipped {
            line += "; verify skipped: not every host was built";
        }
        println!("{line}");
    } else if let Some(r) = &outcome.verify {
        report::verify(r, plan);
    } else if skipped {
        println!("verify skipped: not every host was built");
    }
    let hosts_failed = outcome.hosts.iter().any(HostResult::failed);
    exit_code(opts, hosts_failed, outcome.verify.as_ref().is_some_and(|r| !r.ok))
}

/// What change commands print before verification starts: the per-host table (not with --json; with -q only the
/// hosts that failed, on stderr: the summary joins the result line at the end).
fn summary_printer(cli: &Cli, verb: &'static str) -> impl Fn(&[HostResult]) {
    let (json, quiet) = (cli.json, cli.quiet);
    move |rows: &[HostResult]| {
        if json {
            return;
        }
        if quiet { report::host_errors(rows) } else { report::summary(rows, verb) }
    }
}

/// Held for the whole command: two vxmesh commands on one inventory never interleave. It locks a file beside
/// the lock file (which is replaced by rename on every save, so it cannot carry the lock itself).
struct InventoryGuard(#[allow(dead_code)] std::fs::File);

fn guard(inventory: &Path, no_wait: bool) -> Result<InventoryGuard, Error> {
    let path = ipam::lock_path(inventory).with_extension("lock.guard");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| Error::Io { action: "open the inventory's guard file", path: path.clone(), source })?;
    match file.try_lock() {
        Ok(()) => return Ok(InventoryGuard(file)),
        Err(std::fs::TryLockError::WouldBlock) => {}
        Err(std::fs::TryLockError::Error(source)) => {
            return Err(Error::Io { action: "lock the inventory's guard file", path, source });
        }
    }
    let busy = format!("another vxmesh command is working on {} (it holds {})", inventory.display(), path.display());
    if no_wait {
        return Err(Error::Busy(format!("{busy}; nothing was done (without --no-wait, vxmesh waits for it)")));
    }
    eprintln!("{busy}; waiting for it to finish (Ctrl-C to give up)");
    file.lock().map_err(|source| Error::Io { action: "lock the inventory's guard file", path, source })?;
    Ok(InventoryGuard(file))
}

/// Whether the command reads or writes hosts or the lock, and so must not interleave with another. (`init` takes
/// the guard itself when it replaces a file.)
fn needs_guard(c: &Command) -> bool {
    !matches!(
        c,
        Command::Plan { offline: true, .. }
            | Command::Render { .. }
            | Command::FactsScript { .. }
            | Command::Lab(_)
            | Command::Init { .. }
            | Command::Completions { .. }
            | Command::Man
    )
}

fn execute(cli: &Cli) -> Result<i32, Error> {
    // The question comes before anything else: a refusal touches nothing, not even the guard file or the lock.
    confirm::removal(cli)?;
    let _guard = if needs_guard(&cli.command) && cli.inventory.exists() {
        Some(guard(&cli.inventory, cli.no_wait)?)
    } else {
        None
    };
    match &cli.command {
        Command::Plan { offline: true, .. } => {
            let (_, plan) = load_readonly(&cli.inventory)?;
            if cli.json {
                let nodes: Vec<(&NodePlan, Vec<Step>)> =
                    plan.nodes.iter().map(|n| (n, converge::diff(n, &HostFacts::default()))).collect();
                print_json(&report::plan_json(&plan, &nodes));
            } else if cli.quiet {
                println!("{}", report::offline_plan_line(&plan));
            } else {
                report::offline_plan(&plan, cli.verbose);
            }
            Ok(0)
        }
        Command::Render { node } => {
            let (inv, plan) = load_readonly(&cli.inventory)?;
            let n =
                plan.node(node).ok_or_else(|| Error::UnknownNode { name: node.clone(), known: inv.node_names() })?;
            let steps = converge::diff(n, &HostFacts::default());
            if cli.json {
                print_json(&report::plan_json(&plan, &[(n, steps)]));
            } else {
                print!("{}", converge::script(n, &steps));
            }
            Ok(0)
        }
        Command::FactsScript { node } => {
            let (inv, plan) = load_readonly(&cli.inventory)?;
            let n =
                plan.node(node).ok_or_else(|| Error::UnknownNode { name: node.clone(), known: inv.node_names() })?;
            print!("{}", converge::gather_script(n, &converge::up_components(n)));
            Ok(0)
        }
        Command::Plan { offline: false, hosts } => {
            let (inv, plan) = load(&cli.inventory)?;
            let opts = host_options(hosts, cli, &inv)?;
            let rows = runtime().block_on(commands::plan::run(&inv, &plan, &opts));
            if cli.json {
                // Per node the same shape as `plan --offline --json` (`desired` and `steps`), for the hosts that
                // answered; `hosts` says how each ended.
                let nodes: Vec<report::NodeJson> = rows
                    .iter()
                    .filter(|r| !r.failed())
                    .filter_map(|r| Some(report::NodeJson { desired: plan.node(&r.node)?, steps: r.detail.clone() }))
                    .collect();
                print_json(&json!({
                    "ok": !rows.iter().any(HostResult::failed),
                    "hosts": rows,
                    "cluster": plan.cluster,
                    "cidr": plan.cidr,
                    "tunnel_pairs": plan.tunnel_pairs,
                    "nodes": nodes,
                }));
            } else if cli.quiet {
                report::host_errors(&rows);
                println!("{}", report::plan_line(&rows));
            } else {
                report::plan(&rows);
            }
            Ok(exit_code(&opts, rows.iter().any(HostResult::failed), false))
        }
        Command::Up(BuildArgs { hosts, no_verify, verify }) => {
            let (inv, plan) = load(&cli.inventory)?;
            let v = (!no_verify).then(|| verify_options(&inv, verify));
            let opts = changing_options(hosts, cli, &inv, "up")?;
            let outcome =
                runtime().block_on(commands::up::run(&inv, &plan, &opts, v, &summary_printer(cli, "changed")));
            Ok(finish(&outcome, &plan, &opts, cli, "changed"))
        }
        Command::Verify { hosts, verify } => {
            let (inv, plan) = load(&cli.inventory)?;
            let v = verify_options(&inv, verify);
            let opts = host_options(hosts, cli, &inv)?;
            let done = runtime().block_on(commands::verify::run(&inv, &plan, &opts, &v));
            let r = &done.report;
            if cli.json {
                print_json(r);
            } else if cli.quiet {
                report::verify_errors(r);
                println!("{}", report::verify_line(r));
            } else {
                report::verify(r, &plan);
            }
            Ok(exit_code(&opts, !done.unreachable.is_empty(), !r.ok))
        }
        Command::Status(hosts) => {
            let (inv, plan) = load(&cli.inventory)?;
            let opts = host_options(hosts, cli, &inv)?;
            let rows = runtime().block_on(commands::status::run(&inv, &plan, &opts));
            let clean = rows.iter().all(|r| r.clean());
            if cli.json {
                print_json(&json!({"ok": clean, "hosts": rows}));
            } else if cli.quiet {
                report::status_quiet(&rows, clean);
            } else {
                report::status(&rows, clean);
            }
            Ok(exit_code(&opts, rows.iter().any(|r| !r.reachable), !clean))
        }
        Command::Ps(hosts) => {
            let (inv, plan) = load(&cli.inventory)?;
            let opts = host_options(hosts, cli, &inv)?;
            let listing = runtime().block_on(commands::ps::run(&inv, &plan, &opts));
            if cli.json {
                print_json(
                    &json!({"ok": listing.failed.is_empty(), "containers": listing.containers, "failed": listing.failed}),
                );
            } else {
                report::ps(&listing);
            }
            Ok(exit_code(&opts, !listing.failed.is_empty(), false))
        }
        Command::Down { force, hosts, yes: _ } => {
            whole_cluster(hosts, "down")?;
            let (inv, plan) = load(&cli.inventory)?;
            let opts = changing_options(hosts, cli, &inv, "down")?;
            let rows = runtime().block_on(commands::down::run(&inv, &plan, &opts, *force));
            let failed = rows.iter().any(HostResult::failed);
            name_record(&opts, failed, cli);
            if cli.json {
                print_json(&json!({"ok": !failed, "hosts": rows, "record": opts.record}));
            } else if cli.quiet {
                report::host_errors(&rows);
                println!("{}", report::summary_line(&rows, "removed"));
            } else {
                report::summary(&rows, "removed");
            }
            Ok(exit_code(&opts, failed, false))
        }
        Command::AddNode {
            name,
            host,
            underlay_ip,
            subnet,
            backend,
            build: BuildArgs { hosts, no_verify, verify },
        } => {
            whole_cluster(hosts, "add-node")?;
            let text = read_inventory(&cli.inventory)?;
            let old = inventory::parse(&cli.inventory, &text)?;
            if old.node(name).is_some() {
                return Err(Error::Usage(format!("node `{name}` is already in the inventory")));
            }
            let entry = inventory::edit::NewNode {
                name,
                host,
                underlay_ip: underlay_ip.as_deref(),
                subnet: subnet.as_deref(),
                backend: backend.as_deref(),
            };
            let new_text = inventory::edit::add_node(&cli.inventory, &text, &entry)?;
            let inv = inventory::parse(&cli.inventory, &new_text)?;
            if inv.node(name).is_none() || inv.nodes.len() != old.nodes.len() + 1 {
                return Err(Error::Usage(format!("could not add `{name}` to the inventory safely; add it by hand")));
            }
            let (lock_file, previous) = lock_of(&cli.inventory)?;
            let lock = ipam::allocate(&inv, previous.as_ref(), &lock_file)?;
            // The files record the node before any host is touched: a later `up` finishes what fails now.
            inventory::edit::save(&cli.inventory, &new_text)?;
            lock.save(&lock_file)?;
            let plan = plan::plan(&inv, &lock);
            let v = (!no_verify).then(|| verify_options(&inv, verify));
            let opts = changing_options(hosts, cli, &inv, "add-node")?;
            let outcome = runtime().block_on(commands::add_node::run(
                &inv,
                &plan,
                name,
                &opts,
                v,
                &summary_printer(cli, "changed"),
            ));
            Ok(finish(&outcome, &plan, &opts, cli, "changed"))
        }
        Command::RemoveNode { name, force, hosts, yes: _ } => {
            whole_cluster(hosts, "remove-node")?;
            let text = read_inventory(&cli.inventory)?;
            let (old, old_plan) = load(&cli.inventory)?;
            if old.node(name).is_none() {
                return Err(Error::UnknownNode { name: name.clone(), known: old.node_names() });
            }
            let new_text = inventory::edit::remove_node(&cli.inventory, &text, name)?;
            let inv = inventory::parse(&cli.inventory, &new_text)?;
            if inv.node(name).is_some() || inv.nodes.len() + 1 != old.nodes.len() {
                return Err(Error::Usage(format!(
                    "could not remove `{name}` from the inventory safely; remove it by hand"
                )));
            }
            let (lock_file, previous) = lock_of(&cli.inventory)?;
            let lock = ipam::allocate(&inv, previous.as_ref(), &lock_file)?;
            let plan = plan::plan(&inv, &lock);
            let path = cli.inventory.clone();
            let commit = move || -> Result<(), Error> {
                inventory::edit::save(&path, &new_text)?;
                lock.save(&lock_file)
            };
            let opts = changing_options(hosts, cli, &old, "remove-node")?;
            let outcome = runtime().block_on(commands::remove_node::run(
                (&old, &old_plan),
                &plan,
                name,
                *force,
                &opts,
                commit,
                &summary_printer(cli, "changed"),
            ))?;
            Ok(finish(&outcome, &plan, &opts, cli, "changed"))
        }
        Command::RotateKeys { nodes, build: BuildArgs { hosts, no_verify, verify } } => {
            whole_cluster(hosts, "rotate-keys")?;
            let (inv, plan) = load(&cli.inventory)?;
            if inv.cluster.encryption != inventory::Encryption::Wireguard {
                return Err(Error::Usage(
                    "rotate-keys: cluster.encryption is `none`; there are no WireGuard keys to rotate".into(),
                ));
            }
            if let Some(unknown) = nodes.iter().find(|n| inv.node(n).is_none()) {
                return Err(Error::UnknownNode { name: unknown.clone(), known: inv.node_names() });
            }
            let targets: Vec<String> =
                if nodes.is_empty() { inv.nodes.iter().map(|n| n.name.clone()).collect() } else { nodes.clone() };
            let v = (!no_verify).then(|| verify_options(&inv, verify));
            let opts = changing_options(hosts, cli, &inv, "rotate-keys")?;
            let outcome = runtime().block_on(commands::rotate_keys::run(
                &inv,
                &plan,
                &targets,
                &opts,
                v,
                &summary_printer(cli, "changed"),
            ));
            Ok(finish(&outcome, &plan, &opts, cli, "changed"))
        }
        Command::Init { hosts, name, cidr, output, force } => {
            let path = output.as_ref().unwrap_or(&cli.inventory);
            init::run(cli, path, hosts, name.as_deref(), cidr, *force)
        }
        Command::Lab(cmd) => lab_command(cmd, cli.json, cli.quiet),
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "vxmesh", &mut std::io::stdout());
            Ok(0)
        }
        Command::Man => {
            let io = |source| Error::Io { action: "write the man page to", path: "stdout".into(), source };
            let mut page = vec![];
            clap_mangen::Man::new(Cli::command()).render(&mut page).map_err(io)?;
            let page = title_first(&String::from_utf8_lossy(&page));
            std::io::Write::write_all(&mut std::io::stdout(), page.as_bytes()).map_err(io)?;
            Ok(0)
        }
    }
}

/// The man page with its `.TH` title as the first line, as man(7) pages begin; clap_mangen puts the definition of
/// the apostrophe string first, which may as well come right after it.
fn title_first(page: &str) -> String {
    let mut lines: Vec<&str> = page.lines().collect();
    if let Some(at) = lines.iter().position(|l| l.starts_with(".TH ")) {
        let title = lines.remove(at);
        lines.insert(0, title);
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

fn lab_command(cmd: &LabCommand, json: bool, quiet: bool) -> Result<i32, Error> {
    use vxmesh::lab;
    match cmd {
        LabCommand::Create { nodes, name, light, backend } => {
            let started = std::time::Instant::now();
            let backend = match backend {
                LabBackendArg::Ovs => lab::LabBackend::Ovs,
                LabBackendArg::Linux => lab::LabBackend::Linux,
                LabBackendArg::Mixed => lab::LabBackend::Mixed,
            };
            let opts = lab::CreateOptions { name: name.clone(), nodes: *nodes, light: *light, backend };
            let state = lab::create(&opts, &mut |line| {
                if !quiet {
                    eprintln!("lab: {line}");
                }
            })?;
            let secs = started.elapsed().as_secs_f64();
            if json {
                print_json(&serde_json::json!({"lab": state, "seconds": secs}));
            } else if quiet {
                println!("lab `{}` created in {secs:.1} s, inventory {}", state.name, state.inventory_path().display());
            } else {
                print_lab(&state);
                println!("\ncreated in {secs:.1} s. Next:");
                println!("  vxmesh plan --offline -i {}", state.inventory_path().display());
                println!(
                    "  ssh -i {d}/id_ed25519 -o UserKnownHostsFile={d}/known_hosts root@{}",
                    state.nodes[0].ip,
                    d = state.dir.display()
                );
                println!("  vxmesh lab destroy --name {}", state.name);
            }
            Ok(0)
        }
        LabCommand::Destroy { name } => {
            let removed = lab::destroy(name)?;
            if json {
                print_json(&serde_json::json!({"destroyed": name, "namespaces": removed}));
            } else {
                println!("lab `{name}` destroyed ({} namespaces removed, nothing left behind)", removed.len());
            }
            Ok(0)
        }
        LabCommand::List => {
            let labs = lab::list();
            if json {
                print_json(&labs);
            } else if labs.is_empty() {
                println!("no labs; create one with `vxmesh lab create`");
            } else {
                for l in &labs {
                    print_lab(l);
                }
            }
            Ok(0)
        }
        LabCommand::Node { action, node, name } => {
            let state = lab::load(name)?;
            match action {
                NodeAction::Stop => lab::node_stop(&state, node)?,
                NodeAction::Start => lab::node_start(&state, node)?,
                NodeAction::Reboot => lab::node_reboot(&state, node)?,
            }
            let verb = match action {
                NodeAction::Stop => "stopped",
                NodeAction::Start => "started",
                NodeAction::Reboot => "rebooted",
            };
            if json {
                print_json(&serde_json::json!({"lab": name, "node": node, "done": verb}));
            } else {
                println!("{node} {verb}");
            }
            Ok(0)
        }
    }
}

fn print_lab(l: &vxmesh::lab::LabState) {
    println!(
        "lab `{}`: underlay {} (gateway {}), inventory {}",
        l.name,
        l.subnet,
        l.gateway,
        l.inventory_path().display()
    );
    for n in &l.nodes {
        let up = if vxmesh::lab::node_running(l, n) { "running" } else { "stopped" };
        println!("  {:<8} {:<16} {up}{}", n.name, n.ip.to_string(), if l.light { " (light)" } else { "" });
    }
    println!("  {:<8} {:<16} outside world (ping, TCP echo on port 7)", "outside", l.outside.ip.to_string());
}

fn read_inventory(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        action: "read the inventory",
        path: path.to_path_buf(),
        source,
    })
}

fn lock_of(inventory: &Path) -> Result<(PathBuf, Option<Lock>), Error> {
    let file = ipam::lock_path(inventory);
    let previous = Lock::load(&file)?;
    Ok((file, previous))
}

/// The program's one Ctrl-C handler, installed the first time a command needs it.
fn stop() -> Stop {
    static STOP: std::sync::OnceLock<Stop> = std::sync::OnceLock::new();
    STOP.get_or_init(Stop::install).clone()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime")
}

/// How to reach the hosts. Every `--limit` pattern must match a node: a typo must not quietly reach none.
fn host_options(a: &HostArgs, cli: &Cli, inv: &Inventory) -> Result<Options, Error> {
    use std::io::IsTerminal;
    if let Some(p) =
        a.limit.iter().find(|p| !inv.nodes.iter().any(|n| vxmesh::remote::executor::glob_match(p, &n.name)))
    {
        return Err(Error::Usage(format!("--limit `{p}` matches no node; the nodes are {}", inv.node_names())));
    }
    let transcript: Option<Transcript> = cli.verbose.then(|| std::sync::Arc::new(report::transcript) as Transcript);
    Ok(Options {
        forks: a.forks,
        policy: vxmesh::remote::ssh::HostKeyPolicy {
            known_hosts: inv.ssh.known_hosts.clone().unwrap_or_else(|| "~/.ssh/known_hosts".into()),
            accept_new: a.accept_new_host_keys,
        },
        timeouts: vxmesh::remote::ssh::Timeouts {
            connect: std::time::Duration::from_secs(a.connect_timeout),
            command: std::time::Duration::from_secs(a.command_timeout),
        },
        progress: !cli.json && !cli.quiet && !cli.verbose && std::io::stderr().is_terminal(),
        stop: stop(),
        limit: a.limit.clone(),
        record: None,
        transcript,
    })
}

/// Options for a command that changes hosts: the same, and a record of every script sent and every answer.
fn changing_options(a: &HostArgs, cli: &Cli, inv: &Inventory, command: &str) -> Result<Options, Error> {
    let mut opts = host_options(a, cli, inv)?;
    opts.record = vxmesh::remote::record::run_dir(command);
    Ok(opts)
}

/// Names the run's record when something failed: where to read what each host was sent and answered.
/// (`-q` keeps to one line per failed host and the result: the record is in `--json`, and on disk.)
fn name_record(opts: &Options, failed: bool, cli: &Cli) {
    if let (true, false, Some(dir)) = (failed, cli.quiet, &opts.record) {
        eprintln!("what each host was sent and answered: {}", dir.display());
    }
}

/// The commands that change the mesh's membership or take it down work on every host: `--limit` is refused.
fn whole_cluster(a: &HostArgs, command: &str) -> Result<(), Error> {
    if a.limit.is_empty() {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "{command} works on every host (each one's peers change); --limit is for plan, up, status, verify and ps"
    )))
}

fn verify_options(inv: &Inventory, a: &VerifyArgs) -> vxmesh::verify::VerifyOptions {
    vxmesh::verify::VerifyOptions {
        sample: a.sample,
        outside: a.outside.or(inv.cluster.outside),
        image: a.image.clone(),
        only: None,
        bandwidth: a.bandwidth,
    }
}
