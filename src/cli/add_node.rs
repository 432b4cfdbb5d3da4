//! `vxmesh add-node`: the node joins the inventory, the lock and the mesh; its pairs are verified.

use clap::Args;
use vxmesh::commands;
use vxmesh::error::Error;
use vxmesh::model::inventory::edit::{NewNode, Placement};

use super::Ctx;
use super::args::{Backend, BuildArgs};
use super::context::runtime;
use super::output::{finish, summary_printer};

#[derive(Args)]
pub struct AddNodeArgs {
    /// The new node's name.
    name: String,
    /// SSH address or ~/.ssh/config alias.
    #[arg(long)]
    host: String,
    /// Tunnel endpoint, when it differs from --host (required when --host is not an address). Twice for a
    /// dual-stack host, once per family: the tunnels use the family every node has (cluster.underlay_family).
    #[arg(long)]
    underlay_ip: Vec<String>,
    /// Pin its subnet; otherwise the lowest free one.
    #[arg(long)]
    subnet: Option<String>,
    /// Pin its IPv6 block (needs cluster.cidr6); otherwise the lowest free one.
    #[arg(long)]
    subnet6: Option<String>,
    /// Its data plane when it differs from cluster.backend: `ovs` (Open vSwitch) or `linux` (no Open vSwitch
    /// needed).
    #[arg(long, value_enum)]
    backend: Option<Backend>,
    /// The site it is in (nodes[].site): hosts of one site reach each other on their underlay addresses, others
    /// on their public ones. Without it: `default`.
    #[arg(long)]
    site: Option<String>,
    /// Where hosts of other sites reach it (nodes[].public_ip), e.g. its cloud's 1:1 NAT address. Without it, a
    /// host alone in its site is behind NAT (docs/inventory.md, "Sites").
    #[arg(long)]
    public_ip: Option<String>,
    #[command(flatten)]
    build: BuildArgs,
}

impl AddNodeArgs {
    pub fn exec(&self, ctx: &Ctx) -> Result<i32, Error> {
        let _guard = ctx.guard()?;
        self.build.hosts.whole_cluster("add-node")?;
        let underlay: Vec<&str> = self.underlay_ip.iter().map(String::as_str).collect();
        let entry = NewNode {
            name: &self.name,
            host: &self.host,
            underlay_ip: &underlay,
            subnet: self.subnet.as_deref(),
            subnet6: self.subnet6.as_deref(),
            backend: self.backend.map(Backend::keyword),
        };
        let placement = Placement { site: self.site.as_deref(), public_ip: self.public_ip.as_deref() };
        let (inv, plan) = commands::files::enroll(&ctx.inventory, &entry, &placement)?;
        let verify = self.build.verify_options(&inv);
        let opts = self.build.hosts.changing_options(ctx, &inv, "add-node")?;
        let outcome = runtime().block_on(commands::add_node::run(
            &inv,
            &plan,
            &self.name,
            &opts,
            verify,
            &summary_printer(ctx, "changed"),
        ));
        Ok(finish(ctx, &outcome, &plan, &opts))
    }
}
