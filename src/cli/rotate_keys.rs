//! `vxmesh rotate-keys`: new WireGuard keys made on the hosts named; every other host learns them.

use clap::Args;
use vxmesh::commands;
use vxmesh::error::Error;
use vxmesh::model::inventory::Encryption;

use super::Ctx;
use super::args::BuildArgs;
use super::context::runtime;
use super::output::{finish, summary_printer};

#[derive(Args)]
pub struct RotateKeysArgs {
    /// The nodes whose keys to replace; all when none is named.
    nodes: Vec<String>,
    #[command(flatten)]
    build: BuildArgs,
}

impl RotateKeysArgs {
    pub fn exec(&self, ctx: &Ctx) -> Result<i32, Error> {
        let _guard = ctx.guard()?;
        self.build.hosts.whole_cluster("rotate-keys")?;
        let (inv, plan) = ctx.load()?;
        if inv.cluster.encryption != Encryption::Wireguard {
            return Err(Error::NotEncrypted { command: "rotate-keys" });
        }
        if let Some(unknown) = self.nodes.iter().find(|n| inv.node(n).is_none()) {
            return Err(inv.unknown_node(unknown));
        }
        let targets: Vec<String> =
            if self.nodes.is_empty() { inv.nodes.iter().map(|n| n.name.clone()).collect() } else { self.nodes.clone() };
        let verify = self.build.verify_options(&inv);
        let opts = self.build.hosts.changing_options(ctx, &inv, "rotate-keys")?;
        let outcome = runtime().block_on(commands::rotate_keys::run(
            &inv,
            &plan,
            &targets,
            &opts,
            verify,
            &summary_printer(ctx, "changed"),
        ));
        Ok(finish(ctx, &outcome, &plan, &opts))
    }
}
