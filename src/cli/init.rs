//! `vxmesh init`: a new inventory from `--host` arguments, written only when the project's own validator accepts it,
//! and never over an existing file unless `--force`.

use std::path::Path;

use serde_json::json;
use vxmesh::error::Error;
use vxmesh::model::inventory::{self, escaped, init::NewHost};
use vxmesh::model::ipam;
use vxmesh::report::json as print_json;

use super::Cli;

pub fn run(
    cli: &Cli,
    path: &Path,
    hosts: &[String],
    name: Option<&str>,
    cidr: &str,
    force: bool,
) -> Result<i32, Error> {
    let new: Vec<NewHost> = hosts.iter().map(|h| NewHost::parse(h)).collect();
    let text = inventory::init::render(path, name, cidr, &new)?;
    let inv = inventory::parse(path, &text)?;
    write(path, &text, force, cli.no_wait)?;
    // The path is the user's argument: shown escaped, as every message shows input.
    let shown = escaped(&path.to_string_lossy(), usize::MAX);
    if cli.json {
        print_json(&json!({"written": path, "nodes": inv.nodes}));
    } else if cli.quiet {
        println!("wrote {shown}");
    } else {
        let nodes: Vec<String> = inv.nodes.iter().map(|n| format!("{} {}", n.name, n.host)).collect();
        println!("wrote {shown}: cluster `{}`, {} nodes ({})", inv.cluster.name, nodes.len(), nodes.join(", "));
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
        return Err(Error::Usage(format!(
            "{} already exists; nothing was written (--force replaces it)",
            escaped(&path.to_string_lossy(), usize::MAX)
        )));
    }
    if exists {
        let _guard = ipam::Guard::acquire(path, no_wait, |waiting| eprintln!("{waiting}"))?;
        return inventory::edit::save(path, text);
    }
    inventory::edit::create(path, text)
}
