//! `vxmesh init`: a new inventory from `--host` arguments, written only when the project's own validator accepts it,
//! and never over an existing file unless `--force`.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::json;
use vxmesh::error::Error;
use vxmesh::model::inventory::{self, init::NewHost};
use vxmesh::model::ipam;

use super::Ctx;
use super::context::{Form, guard};

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
    let shown = path.display();
    if ctx.form == Form::Json {
        super::output::json(ctx, &json!({"written": path, "nodes": inv.nodes}));
    } else if ctx.form == Form::Quiet {
        println!("wrote {shown}");
    } else {
        let nodes: Vec<String> = inv.nodes.iter().map(|n| format!("{} {}", n.name, n.host)).collect();
        println!("wrote {shown}: cluster `{}`, {} nodes ({})", inv.cluster.name, nodes.len(), nodes.join(", "));
        let lock = ipam::lock_path(path);
        if lock.exists() {
            println!("note: {} beside it keeps an earlier address plan; it is used as it is", lock.display());
        }
        println!("next: vxmesh plan --offline -i {shown}, then vxmesh up -i {shown}");
    }
    Ok(0)
}

/// A new file is created exclusively (a file that appeared meanwhile is never replaced); with `force` an existing
/// one is replaced atomically, once no other vxmesh command is working on it.
fn write(path: &Path, text: &str, force: bool, no_wait: bool) -> Result<(), Error> {
    let exists = path.symlink_metadata().is_ok();
    if exists && !force {
        return Err(Error::Exists { path: path.to_path_buf() });
    }
    if exists {
        let _guard = guard(path, no_wait)?;
        return inventory::edit::save(path, text);
    }
    let io = |action, source| Error::Io { action, path: path.to_path_buf(), source };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| io("create the inventory", e))?;
    file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(|e| io("write the inventory", e))
}
