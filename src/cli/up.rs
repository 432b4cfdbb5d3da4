//! `vxmesh up`: build the mesh on every host (only what is missing), then verify.

use clap::Args;
use vxmesh::commands;
use vxmesh::error::Error;

use super::Ctx;
use super::args::BuildArgs;
use super::context::runtime;
use super::output::{finish, summary_printer};

#[derive(Args)]
pub struct UpArgs {
    #[command(flatten)]
    build: BuildArgs,
}

impl UpArgs {
    pub fn exec(&self, ctx: &Ctx) -> Result<i32, Error> {
        let _guard = ctx.guard()?;
        let (inv, plan) = ctx.load()?;
        let verify = self.build.verify_options(&inv);
        let opts = self.build.hosts.changing_options(ctx, &inv, "up")?;
        let outcome =
            runtime().block_on(commands::up::run(&inv, &plan, &opts, verify, &summary_printer(ctx, "changed")));
        Ok(finish(ctx, &outcome, &plan, &opts))
    }
}
