//! `vxmesh remove-node`: the node leaves every other host, is torn down, and its subnet is freed.

use clap::Args;
use vxmesh::commands::{self, files::Withdrawal};
use vxmesh::error::Error;

use super::Ctx;
use super::args::HostArgs;
use super::context::runtime;
use super::output::{finish, summary_printer};

#[derive(Args)]
pub struct RemoveNodeArgs {
    name: String,
    /// Remove it even when it cannot be reached (its host keeps its mesh until cleaned by hand).
    #[arg(long)]
    force: bool,
    /// Do not ask for confirmation (needed when stdin is not a terminal).
    #[arg(short, long)]
    yes: bool,
    #[command(flatten)]
    hosts: HostArgs,
}

impl RemoveNodeArgs {
    pub fn exec(&self, ctx: &Ctx) -> Result<i32, Error> {
        // A `--limit` it cannot honour is refused before the question (asking about every host first misleads);
        // then the question comes before anything else: a refusal touches nothing, not even the guard or the lock.
        self.hosts.whole_cluster("remove-node")?;
        if !self.yes {
            super::confirm::remove_node(ctx, &self.name)?;
        }
        let _guard = ctx.guard()?;
        let w = Withdrawal::prepare(&ctx.inventory, &self.name)?;
        let opts = self.hosts.changing_options(ctx, &w.old, "remove-node")?;
        let outcome = runtime().block_on(commands::remove_node::run(
            (&w.old, &w.old_plan),
            &w.plan,
            &self.name,
            self.force,
            &opts,
            || w.commit(),
            &summary_printer(ctx, "changed"),
        ))?;
        Ok(finish(ctx, &outcome, &w.plan, &opts))
    }
}
