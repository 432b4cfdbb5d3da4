//! Command line: the one place that prints results and picks exit codes (0 ok, 1 bad usage or input, 2 a host
//! failed, 3 a check failed or drift found, 4 the local lab failed, 130 interrupted). Each command is a module of its
//! own, its arguments beside its `exec`; adding a command is one module and one line in the list below.

mod args;
mod confirm;
mod context;
mod init;
mod output;

mod add_node;
mod down;
mod facts_script;
mod lab;
mod man;
mod plan;
mod ps;
mod remove_node;
mod render;
mod rotate_keys;
mod status;
mod up;
mod verify;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use vxmesh::error::Error;

pub use context::Ctx;

/// The list of commands: each line is a command's help text and its module's argument type, whose `exec` runs it.
macro_rules! commands {
    ($($(#[$doc:meta])* $variant:ident($args:ty),)*) => {
        #[derive(Subcommand)]
        enum Command {
            $($(#[$doc])* $variant($args),)*
        }

        impl Command {
            fn exec(&self, ctx: &Ctx) -> Result<i32, Error> {
                match self {
                    $(Command::$variant(a) => a.exec(ctx),)*
                }
            }
        }
    };
}

commands! {
    /// Show what would be built: per node, the commands that make it match the plan.
    ///
    /// With --offline nothing is contacted: every node is shown as if empty, i.e. the full build script.
    Plan(plan::PlanArgs),
    /// Print one node's build script: POSIX sh, safe to run again, runnable by hand on an air-gapped host.
    Render(render::RenderArgs),
    /// Build the mesh on every host (only what is missing), then verify it.
    Up(up::UpArgs),
    /// Prove the mesh works: containers on every pair of hosts talk over the tunnels, without NAT.
    Verify(verify::VerifyCommand),
    /// Per host: reachable, sw0 and tunnels present, tunnel liveness (BFD), drift from the plan.
    Status(status::StatusArgs),
    /// Every container on the mesh network across all hosts: host, name, image, mesh address, state.
    Ps(ps::PsArgs),
    /// Remove everything vxmesh created on every host; docker and OVS keep running. Every host is looked at
    /// first: if containers are still on the mesh network anywhere, no host is touched (unless --force).
    /// Asks first on a terminal; without one, refuses unless --yes.
    Down(down::DownArgs),
    /// Add a node to the inventory and the mesh: build it, and on every other node add its tunnel
    /// and let it through the firewall, touching nothing else there. Then verify its pairs.
    AddNode(add_node::AddNodeArgs),
    /// Remove a node: its tunnel and firewall entry leave every other node, the node itself is torn down,
    /// and its subnet is freed in the lock file. Asks first on a terminal; without one, refuses unless --yes.
    RemoveNode(remove_node::RemoveNodeArgs),
    /// New WireGuard key pairs, made on the hosts (all, or the nodes named); every other host learns the new
    /// public keys in the same round trip. Needs `encryption: wireguard`. Then verify.
    RotateKeys(rotate_keys::RotateKeysArgs),
    /// Write a new inventory for the hosts given: every optional field shown commented out with its default.
    /// It is checked as every command checks an inventory; an existing file is kept unless --force.
    Init(init::InitArgs),
    /// A local lab of real hosts (network namespaces running sshd, Open vSwitch and docker). Linux, root.
    #[command(subcommand)]
    Lab(lab::LabCommand),
    /// Print a completion script for a shell, e.g.
    /// `vxmesh completions bash > ~/.local/share/bash-completion/completions/vxmesh`.
    Completions(man::CompletionsArgs),
    /// Print the manual page (roff), e.g. `vxmesh man > vxmesh.1 && man ./vxmesh.1`.
    Man(man::ManArgs),
    /// Print the read-only script that gathers a node's facts (used to record test fixtures).
    #[command(hide = true)]
    FactsScript(facts_script::FactsScriptArgs),
}

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
3 drift found (status) or a check failed (verify), 4 the local lab failed, 130 interrupted.\nNo colour with NO_COLOR \
set or when the output is not a terminal.\nDocs: README.md, docs/inventory.md, docs/architecture.md"
)]
struct Cli {
    #[command(flatten)]
    global: context::GlobalArgs,

    #[command(subcommand)]
    command: Command,
}

pub fn run() -> i32 {
    // clap colours help and errors on a terminal; NO_COLOR (https://no-color.org) turns that off, whatever else is
    // set. Nothing else vxmesh prints has colour.
    let color = if no_color() { clap::ColorChoice::Never } else { clap::ColorChoice::Auto };
    let parsed = Cli::command().color(color).try_get_matches().and_then(|m| Cli::from_arg_matches(&m).map(|c| (c, m)));
    let (cli, matches) = match parsed {
        Ok(c) => c,
        Err(e) if e.use_stderr() && asks_for_json() => {
            // A script that asked for JSON gets JSON even when the command line itself is wrong.
            let message = e.render().to_string();
            let message = message.trim().trim_start_matches("error: ");
            let error = serde_json::json!({"ok": false, "error": {"message": message, "exit_code": 1}});
            vxmesh::report::json(&mut std::io::stdout(), &vxmesh::report::envelope(&typed_command(), error));
            return 1;
        }
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 1 } else { 0 };
        }
    };
    let ctx = Ctx::new(&cli.global, command_name(&matches));
    match cli.command.exec(&ctx) {
        Ok(code) => code,
        Err(e) => ctx.error(&e),
    }
}

/// `lab create`, `up`, ...: what every JSON envelope names.
fn command_name(matches: &clap::ArgMatches) -> String {
    let mut name = vec![];
    let mut m = matches;
    while let Some((sub, next)) = m.subcommand() {
        name.push(sub.to_string());
        m = next;
    }
    name.join(" ")
}

/// `--json` among the arguments (before any `--`), for a command line clap could not take.
fn asks_for_json() -> bool {
    std::env::args().skip(1).take_while(|a| a != "--").any(|a| a == "--json")
}

/// The subcommands named at the start of a command line clap could not take (`lab create`, `up`, or none).
fn typed_command() -> String {
    let mut name = vec![];
    let mut cmd = Cli::command();
    for arg in std::env::args().skip(1) {
        let Some(sub) = cmd.find_subcommand(&arg).cloned() else { break };
        name.push(sub.get_name().to_string());
        cmd = sub;
    }
    name.join(" ")
}

/// NO_COLOR set and not empty, as https://no-color.org says.
fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// The whole command line, for the completion script and the man page.
fn definition() -> clap::Command {
    Cli::command()
}
