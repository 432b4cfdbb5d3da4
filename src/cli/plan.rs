//! `vxmesh plan`: per host, the script `up` would run; `--offline`, every node's from-scratch build.

use clap::Args;
use serde_json::json;
use vxmesh::commands::{self, HostResult};
use vxmesh::error::Error;
use vxmesh::plan::ClusterPlan;
use vxmesh::report;

use super::Ctx;
use super::args::HostArgs;
use super::context::runtime;
use super::output::{Show, exit_code};

#[derive(Args)]
pub struct PlanArgs {
    /// Do not connect to hosts; show the from-scratch build of every node.
    #[arg(long)]
    offline: bool,
    #[command(flatten)]
    hosts: HostArgs,
}

impl PlanArgs {
    pub fn exec(&self, ctx: &Ctx) -> Result<i32, Error> {
        if self.offline {
            let (inv, mut plan) = ctx.load_readonly()?;
            // `--limit` shows those nodes' scripts, each still planned with all its peers.
            self.hosts.check_limit(&inv)?;
            plan.nodes.retain(|n| self.hosts.takes(&n.name));
            ctx.show(&Offline { plan: &plan, verbose: ctx.verbose });
            return Ok(0);
        }
        let _guard = ctx.guard()?;
        let (inv, plan) = ctx.load()?;
        let opts = self.hosts.options(ctx, &inv)?;
        let rows = runtime().block_on(commands::plan::run(&inv, &plan, &opts));
        ctx.show(&Online { plan: &plan, rows: &rows });
        Ok(exit_code(&opts, rows.iter().any(HostResult::failed), false))
    }
}

/// Every node built from nothing, no host contacted.
struct Offline<'a> {
    plan: &'a ClusterPlan,
    verbose: bool,
}

impl Show for Offline<'_> {
    /// The streamed document read back (never used to print: see `write_json`).
    fn json(&self) -> serde_json::Value {
        let mut out = vec![];
        report::offline_plan_json(&mut out, self.plan, "plan");
        serde_json::from_slice(&out).expect("the streamed plan is JSON")
    }

    /// Streamed: the whole document of a large cluster would not fit in memory as one value.
    fn write_json(&self, ctx: &Ctx) {
        report::offline_plan_json(&mut std::io::stdout(), self.plan, &ctx.command);
    }

    fn quiet(&self) {
        println!("{}", report::offline_plan_line(self.plan));
    }

    fn text(&self) {
        report::offline_plan(&mut std::io::stdout(), self.plan, self.verbose);
    }
}

/// What each host that answered still needs.
struct Online<'a> {
    plan: &'a ClusterPlan,
    rows: &'a [HostResult],
}

impl Show for Online<'_> {
    fn json(&self) -> serde_json::Value {
        // Per node the same shape as `plan --offline --json` (`desired` and `steps`), for the hosts that
        // answered; `hosts` says how each ended.
        let nodes: Vec<report::NodeJson> = self
            .rows
            .iter()
            .filter(|r| !r.failed())
            .filter_map(|r| Some(report::NodeJson { desired: self.plan.node(&r.node)?, steps: r.detail.clone() }))
            .collect();
        let mut v = json!({
            "ok": !self.rows.iter().any(HostResult::failed),
            "hosts": self.rows,
            "cluster": self.plan.cluster,
            "cidr": self.plan.cidr,
            "tunnel_pairs": self.plan.tunnel_pairs,
            "nodes": nodes,
        });
        // The path of each ordered pair, only where hosts are in more than one site (as `plan --offline`).
        if let Some(c) = report::cidr6(self.plan) {
            v["cidr6"] = serde_json::to_value(c).expect("a range serializes");
        }
        let paths = self.plan.paths();
        if !paths.is_empty() {
            v["paths"] = serde_json::to_value(paths).expect("paths serialize");
        }
        v
    }

    fn quiet(&self) {
        report::host_errors(&mut std::io::stderr(), self.rows);
        println!("{}", report::plan_line(self.rows));
    }

    fn text(&self) {
        report::plan(&mut std::io::stdout(), self.rows);
        report::paths(&mut std::io::stdout(), &self.plan.paths());
    }
}
