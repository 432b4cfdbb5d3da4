//! The arguments several commands share: the global flags, how to reach hosts, how to verify.

use clap::Args;
use vxmesh::error::Error;
use vxmesh::model::inventory::Inventory;
use vxmesh::remote::executor::{Options, Transcript};
use vxmesh::remote::interrupt::{Notice, Stop};

#[derive(Args, Clone)]
pub struct HostArgs {
    /// Work on at most this many hosts at once.
    #[arg(long, default_value_t = 50)]
    pub forks: usize,
    /// Learn the host key of hosts not yet in known_hosts (like OpenSSH's accept-new). Changed keys are always refused.
    #[arg(long)]
    pub accept_new_host_keys: bool,
    /// Seconds to wait for a host to answer and authenticate.
    #[arg(long, default_value_t = 10)]
    pub connect_timeout: u64,
    /// Seconds a single script may run on a host.
    #[arg(long, default_value_t = 300)]
    pub command_timeout: u64,
    /// Reach only these nodes (names or globs with `*` and `?`; repeatable). Every node is still planned with
    /// all its peers; the others are not contacted.
    #[arg(long, value_name = "PATTERN")]
    pub limit: Vec<String>,
}

/// What the commands that build hosts take: how to reach them, and how to verify afterwards.
#[derive(Args, Clone)]
pub struct BuildArgs {
    #[command(flatten)]
    pub hosts: HostArgs,
    /// Skip the verification after building.
    #[arg(long)]
    pub no_verify: bool,
    #[command(flatten)]
    pub verify: VerifyArgs,
}

#[derive(Args, Clone)]
pub struct VerifyArgs {
    /// Test only K ordered pairs, spread over the cluster (for big clusters).
    #[arg(long, value_name = "K")]
    pub sample: Option<usize>,
    /// An address outside the cluster to reach through NAT (default: cluster.outside from the inventory).
    #[arg(long, value_name = "ADDR")]
    pub outside: Option<std::net::Ipv4Addr>,
    /// Also measure TCP throughput and latency with iperf3 (on the hosts), container to container over the mesh
    /// next to host to host on the underlay, around a ring of hosts.
    #[arg(long)]
    pub bandwidth: bool,
    /// The image for the temporary containers (needs sh, ping, wget, httpd: busybox has them).
    #[arg(long, default_value = "busybox")]
    pub image: String,
}

impl VerifyArgs {
    pub fn options(&self, inv: &Inventory) -> vxmesh::verify::VerifyOptions {
        vxmesh::verify::VerifyOptions {
            sample: self.sample,
            outside: self.outside.or(inv.cluster.outside),
            image: self.image.clone(),
            only: None,
            bandwidth: self.bandwidth,
        }
    }
}

impl BuildArgs {
    /// The verification to run after building, unless --no-verify.
    pub fn verify_options(&self, inv: &Inventory) -> Option<vxmesh::verify::VerifyOptions> {
        (!self.no_verify).then(|| self.verify.options(inv))
    }
}

impl HostArgs {
    /// Every `--limit` pattern must match a node: a typo must not quietly reach none.
    pub fn check_limit(&self, inv: &Inventory) -> Result<(), Error> {
        match self.limit.iter().find(|p| !inv.nodes.iter().any(|n| vxmesh::remote::executor::glob_match(p, &n.name))) {
            Some(p) => Err(Error::LimitMatchesNone { pattern: p.clone(), known: inv.node_names() }),
            None => Ok(()),
        }
    }

    /// Whether `--limit` (none: every node) takes node `name`.
    pub fn takes(&self, name: &str) -> bool {
        vxmesh::remote::executor::limit_takes(&self.limit, name)
    }

    /// How to reach the hosts (`--limit` checked as [`HostArgs::check_limit`] does).
    pub fn options(&self, ctx: &super::Ctx, inv: &Inventory) -> Result<Options, Error> {
        use std::io::IsTerminal;
        self.check_limit(inv)?;
        let transcript: Option<Transcript> =
            ctx.verbose.then(|| std::sync::Arc::new(vxmesh::report::transcript) as Transcript);
        Ok(Options {
            forks: self.forks,
            policy: vxmesh::remote::ssh::HostKeyPolicy {
                known_hosts: inv.ssh.known_hosts.clone().unwrap_or_else(|| "~/.ssh/known_hosts".into()),
                accept_new: self.accept_new_host_keys,
            },
            timeouts: vxmesh::remote::ssh::Timeouts {
                connect: std::time::Duration::from_secs(self.connect_timeout),
                command: std::time::Duration::from_secs(self.command_timeout),
            },
            progress: ctx.form.is_text() && !ctx.verbose && std::io::stderr().is_terminal(),
            stop: stop(),
            limit: self.limit.clone(),
            record: None,
            transcript,
        })
    }

    /// Options for a command that changes hosts: the same, and a record of every script sent and every answer.
    pub fn changing_options(&self, ctx: &super::Ctx, inv: &Inventory, command: &str) -> Result<Options, Error> {
        let mut opts = self.options(ctx, inv)?;
        opts.record = vxmesh::remote::record::run_dir(command);
        Ok(opts)
    }

    /// The commands that change the mesh's membership or take it down work on every host: `--limit` is refused.
    pub fn whole_cluster(&self, command: &'static str) -> Result<(), Error> {
        if self.limit.is_empty() { Ok(()) } else { Err(Error::WholeClusterOnly { command }) }
    }
}

/// A node's data plane on the command line; its keyword is the inventory's (`backend: ovs | linux`).
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Backend {
    Ovs,
    Linux,
}

impl Backend {
    /// The inventory keyword (`backend:`); the test below keeps it equal to clap's name and the inventory's list.
    pub fn keyword(self) -> &'static str {
        match self {
            Backend::Ovs => "ovs",
            Backend::Linux => "linux",
        }
    }
}

/// The program's one Ctrl-C handler, installed the first time a command needs it. The second Ctrl-C ends the
/// program at once: that is the binary's decision, not the library's.
fn stop() -> Stop {
    static STOP: std::sync::OnceLock<Stop> = std::sync::OnceLock::new();
    STOP.get_or_init(|| {
        Stop::install(|notice| match notice {
            Notice::First => eprintln!(
                "\ninterrupted: hosts mid-step finish and report; no new host is started (Ctrl-C again to quit now)"
            ),
            Notice::Second => std::process::exit(super::output::INTERRUPTED),
        })
    })
    .clone()
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum;

    use super::Backend;

    #[test]
    fn backend_keywords_are_clap_names_and_inventory_keywords() {
        for b in Backend::value_variants() {
            let clap_name = b.to_possible_value().unwrap().get_name().to_string();
            assert_eq!(b.keyword(), clap_name);
            assert!(vxmesh::model::inventory::BACKENDS.iter().any(|(k, _)| *k == b.keyword()), "{clap_name}");
        }
        assert_eq!(Backend::value_variants().len(), vxmesh::model::inventory::BACKENDS.len());
    }
}
