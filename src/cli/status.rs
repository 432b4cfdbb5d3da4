//! `vxmesh status`: per host, what is there, whether the tunnels are up, and drift from the plan.

use clap::Args;
use serde_json::json;
use vxmesh::commands::{self, status::HostStatus};
use vxmesh::error::Error;
use vxmesh::report;

use super::Ctx;
use super::args::HostArgs;
use super::context::runtime;
use super::output::{Show, exit_code};

#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    hosts: HostArgs,
}

impl StatusArgs {
    pub fn exec(&self, ctx: &Ctx) -> Result<i32, Error> {
        let _guard = ctx.guard()?;
        let (inv, plan) = ctx.load()?;
        let opts = self.hosts.options(ctx, &inv)?;
        let rows = runtime().block_on(commands::status::run(&inv, &plan, &opts));
        let clean = rows.iter().all(|r| r.clean());
        ctx.show(&Statuses { rows: &rows, clean });
        Ok(exit_code(&opts, rows.iter().any(|r| !r.reachable), !clean))
    }
}

struct Statuses<'a> {
    rows: &'a [HostStatus],
    clean: bool,
}

impl Show for Statuses<'_> {
    fn json(&self) -> serde_json::Value {
        json!({"ok": self.clean, "hosts": self.rows})
    }

    fn quiet(&self) {
        report::status_quiet(&mut std::io::stdout(), &mut std::io::stderr(), self.rows, self.clean);
    }

    fn text(&self) {
        report::status(&mut std::io::stdout(), self.rows, self.clean);
    }
}
