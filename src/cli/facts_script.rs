//! `vxmesh facts-script NODE` (hidden): the read-only gather script, to record test fixtures.

use clap::Args;
use vxmesh::converge;
use vxmesh::error::Error;

use super::Ctx;

#[derive(Args)]
pub struct FactsScriptArgs {
    node: String,
}

impl FactsScriptArgs {
    pub fn exec(&self, ctx: &Ctx) -> Result<i32, Error> {
        let (inv, plan) = ctx.load_readonly()?;
        let n = plan.node(&self.node).ok_or_else(|| inv.unknown_node(&self.node))?;
        print!("{}", converge::gather_script(n, &converge::up_components(n)));
        Ok(0)
    }
}
