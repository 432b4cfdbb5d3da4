//! `vxmesh ps`: every container on the mesh network, across all hosts.

use clap::Args;
use serde_json::json;
use vxmesh::commands::{self, ps::Listing};
use vxmesh::error::Error;
use vxmesh::report;

use super::Ctx;
use super::args::HostArgs;
use super::context::runtime;
use super::output::{Show, exit_code};

#[derive(Args)]
pub struct PsArgs {
    #[command(flatten)]
    hosts: HostArgs,
}

impl PsArgs {
    pub fn exec(&self, ctx: &Ctx) -> Result<i32, Error> {
        let _guard = ctx.guard()?;
        let (inv, plan) = ctx.load()?;
        let opts = self.hosts.options(ctx, &inv)?;
        let listing = runtime().block_on(commands::ps::run(&inv, &plan, &opts));
        ctx.show(&Containers(&listing));
        Ok(exit_code(&opts, !listing.failed.is_empty(), false))
    }
}

struct Containers<'a>(&'a Listing);

impl Show for Containers<'_> {
    fn json(&self) -> serde_json::Value {
        json!({"ok": self.0.failed.is_empty(), "containers": self.0.containers, "failed": self.0.failed})
    }

    /// A listing is what was asked for: `-q` prints it as text too.
    fn quiet(&self) {
        report::ps(&mut std::io::stdout(), self.0);
    }

    fn text(&self) {
        report::ps(&mut std::io::stdout(), self.0);
    }
}
