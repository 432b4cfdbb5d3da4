//! `vxmesh status`: per host, what is there, whether the tunnels are up, and drift from the plan.

use clap::Args;
use serde_json::json;
use vxmesh::commands::{self, status::HostStatus};
use vxmesh::error::Error;
use vxmesh::plan::ClusterPlan;
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
        ctx.show(&Statuses { rows: &rows, plan: &plan, clean });
        Ok(exit_code(&opts, rows.iter().any(|r| !r.reachable), !clean))
    }
}

struct Statuses<'a> {
    rows: &'a [HostStatus],
    plan: &'a ClusterPlan,
    clean: bool,
}

impl Show for Statuses<'_> {
    fn json(&self) -> serde_json::Value {
        // With dual-stack containers each host also carries its IPv6 block and sw0's IPv6 address (the plan's,
        // as `subnet` is); without, the hosts read as before.
        let hosts: Vec<serde_json::Value> = self
            .rows
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(r).expect("statuses serialize");
                if let Some(six) = self.plan.node(&r.node).and_then(|n| n.ipv6.as_ref()) {
                    v["subnet6"] = json!(six.subnet);
                    v["switch6"] = json!(six.switch);
                }
                v
            })
            .collect();
        json!({"ok": self.clean, "hosts": hosts})
    }

    fn quiet(&self) {
        report::status_quiet(&mut std::io::stdout(), &mut std::io::stderr(), self.rows, self.clean);
    }

    fn text(&self) {
        report::status_with_plan(&mut std::io::stdout(), self.rows, self.plan, self.clean);
    }
}
