//! `vxmesh render NODE`: one node's build script, from the inventory alone.

use clap::Args;
use vxmesh::converge;
use vxmesh::error::Error;
use vxmesh::facts::HostFacts;
use vxmesh::report;

use super::Ctx;
use super::context::Form;

#[derive(Args)]
pub struct RenderArgs {
    /// The node's name in the inventory.
    node: String,
}

impl RenderArgs {
    pub fn exec(&self, ctx: &Ctx) -> Result<i32, Error> {
        let (inv, plan) = ctx.load_readonly()?;
        let n = plan.node(&self.node).ok_or_else(|| inv.unknown_node(&self.node))?;
        let steps = converge::diff(n, &HostFacts::default());
        // The script is what was asked for: it is printed with -q too.
        if ctx.form == Form::Json {
            let doc = serde_json::to_value(report::plan_json(&plan, &[(n, steps)])).expect("plans serialize");
            super::output::json(ctx, &doc);
        } else {
            print!("{}", converge::script(n, &steps));
        }
        Ok(0)
    }
}
