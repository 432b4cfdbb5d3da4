//! `vxmesh verify`: containers on every pair of hosts prove the mesh; the matrix shows the result.

use clap::Args;
use vxmesh::commands;
use vxmesh::error::Error;
use vxmesh::plan::ClusterPlan;
use vxmesh::report;
use vxmesh::verify::Report;

use super::Ctx;
use super::args::{HostArgs, VerifyArgs};
use super::context::runtime;
use super::output::{INTERRUPTED, INTERRUPTED_VERIFY, Show, exit_code};

#[derive(Args)]
pub struct VerifyCommand {
    #[command(flatten)]
    hosts: HostArgs,
    #[command(flatten)]
    verify: VerifyArgs,
}

impl VerifyCommand {
    pub fn exec(&self, ctx: &Ctx) -> Result<i32, Error> {
        let _guard = ctx.guard()?;
        let (inv, plan) = ctx.load()?;
        let v = self.verify.options(&inv);
        let opts = self.hosts.options(ctx, &inv)?;
        let done = runtime().block_on(commands::verify::run(&inv, &plan, &opts, &v));
        let Some(report) = &done.report else {
            eprintln!("{INTERRUPTED_VERIFY}");
            return Ok(INTERRUPTED);
        };
        ctx.show(&Verified { report, plan: &plan });
        Ok(exit_code(&opts, !done.unreachable.is_empty(), !report.ok))
    }
}

struct Verified<'a> {
    report: &'a Report,
    plan: &'a ClusterPlan,
}

impl Show for Verified<'_> {
    fn json(&self) -> serde_json::Value {
        serde_json::to_value(self.report).expect("reports serialize")
    }

    fn quiet(&self) {
        report::verify_errors(&mut std::io::stderr(), self.report);
        println!("{}", report::verify_line(self.report));
    }

    fn text(&self) {
        report::verify(&mut std::io::stdout(), self.report, self.plan);
    }
}
