//! `vxmesh init`: a new inventory from `--host` arguments, written only when the project's own validator accepts it,
//! and never over an existing file unless `--force`.

use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::json;
use vxmesh::error::Error;
use vxmesh::model::inventory::{self, escaped, init::NewHost};
use vxmesh::model::ipam;

use super::Ctx;
use super::context::Form;

#[derive(Args)]
pub struct InitArgs {
    /// A host of the mesh: its address (nodes are then named node1, node2, ... in order), or NAME=ADDRESS.
    /// Repeat it for each host.
    #[arg(long = "host", value_name = "[NAME=]ADDRESS", required = true)]
    hosts: Vec<String>,
    /// The cluster's name (default: vxmesh).
    #[arg(long)]
    name: Option<String>,
    /// The cluster CIDR: every container subnet and switch address lies inside.
    #[arg(long, default_value = inventory::init::DEFAULT_CIDR)]
    cidr: String,
    /// Where to write it (default: the inventory, as -i or VXMESH_INVENTORY name it, else vxmesh.yaml).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Replace the file if it exists.
    #[arg(long)]
    force: bool,
}

impl InitArgs {
    pub fn exec(&self, ctx: &Ctx) -> Result<i32, Error> {
        let path = self.output.as_ref().unwrap_or(&ctx.inventory);
        run(ctx, path, &self.hosts, self.name.as_deref(), &self.cidr, self.force)
    }
}

fn run(ctx: &Ctx, path: &Path, hosts: &[String], name: Option<&str>, cidr: &str, force: bool) -> Result<i32, Error> {
    let new: Vec<NewHost> = hosts.iter().map(|h| NewHost::parse(h)).collect();
    let text = inventory::init::render(path, name, cidr, &new)?;
    let inv = inventory::parse(path, &text)?;
    write(path, &text, force, ctx.no_wait)?;
    // The path is the user's argument: shown escaped, as every message shows input.
    let shown = escaped(&path.to_string_lossy(), usize::MAX);
    if ctx.form == Form::Json {
        super::output::json(ctx, &json!({"written": path, "nodes": inv.nodes}));
    } else if ctx.form == Form::Quiet {
        println!("wrote {shown}");
    } else {
        let nodes: Vec<String> = inv.nodes.iter().map(|n| format!("{} {}", n.name, n.host)).collect();
        let count = vxmesh::report::counted(nodes.len(), "node", "nodes");
        println!("wrote {shown}: cluster `{}`, {count} ({})", inv.cluster.name, nodes.join(", "));
        let dns = &inv.cluster.dns;
        if dns.enabled {
            println!(
                "names across hosts: on (NAME.NODE.{0}, NAME.{0}); the hosts need dnsmasq-base and curl",
                dns.domain
            );
        } else {
            println!("names across hosts: off (the file says why)");
        }
        let lock = ipam::lock_path(path);
        if lock.exists() {
            let lock = escaped(&lock.to_string_lossy(), usize::MAX);
            println!("note: {lock} beside it keeps an earlier address plan; it is used as it is");
        }
        println!("next: vxmesh plan --offline -i {shown}, then vxmesh up -i {shown}");
    }
    Ok(0)
}

/// A new file is created whole and exclusively (a file that appeared meanwhile is never replaced); with `force` an
/// existing one is replaced atomically, once no other vxmesh command is working on it. Both through the one safe
/// save routine: nothing planted beside the file is followed.
fn write(path: &Path, text: &str, force: bool, no_wait: bool) -> Result<(), Error> {
    let exists = path.symlink_metadata().is_ok();
    if exists && !force {
        return Err(Error::Exists { path: path.to_path_buf() });
    }
    if exists {
        let _guard = ipam::Guard::acquire(path, no_wait, |waiting| eprintln!("{waiting}"))?;
        return inventory::edit::save(path, text);
    }
    inventory::edit::create(path, text)
}
