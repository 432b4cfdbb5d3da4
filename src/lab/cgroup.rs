//! The lab nodes' cgroups: each node lives under `vxmesh-lab/LAB/NODE` in every hierarchy of the machine, the
//! root of the node's cgroup namespace, so its systemd and docker make their cgroups there and nowhere else.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const CGROUP_FS: &str = "/sys/fs/cgroup";
const ROOT: &str = "vxmesh-lab";

/// A node's cgroup, relative to each hierarchy's root (node-boot.sh makes it and moves the node into it).
pub fn node_path(lab: &str, node: &str) -> String {
    format!("{ROOT}/{lab}/{node}")
}

fn lab_path(lab: &str) -> String {
    format!("{ROOT}/{lab}")
}

/// Every cgroup hierarchy mounted on the machine (the v1 ones, the v2 one), by a directory holding cgroup.procs.
fn hierarchies() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(CGROUP_FS)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .chain(std::iter::once(PathBuf::from(CGROUP_FS)))
        .filter(|h| h.join("cgroup.procs").exists())
        .collect();
    out.sort();
    out
}

/// Makes the node's cgroup in every hierarchy, level by level (node-boot.sh moves the node into it).
pub fn create_node(lab: &str, node: &str) -> std::io::Result<()> {
    for h in hierarchies() {
        let mut dir = h.clone();
        for part in node_path(lab, node).split('/') {
            let parent = dir.clone();
            dir.push(part);
            match std::fs::create_dir(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
            // A new cpuset has no CPUs or memory nodes until given its parent's, and takes no process before.
            for f in ["cpuset.cpus", "cpuset.mems"] {
                if std::fs::read_to_string(dir.join(f)).is_ok_and(|v| v.trim().is_empty()) {
                    std::fs::write(dir.join(f), std::fs::read_to_string(parent.join(f))?)?;
                }
            }
        }
    }
    Ok(())
}

/// Removes a node's cgroups once its processes are gone; what stays (a process still exiting) is returned.
pub fn remove_node(lab: &str, node: &str) -> Vec<String> {
    remove(&node_path(lab, node))
}

/// Removes every cgroup of a lab, and the lab root when no other lab uses it.
pub fn remove_lab(lab: &str) -> Vec<String> {
    remove(&lab_path(lab))
}

fn remove(rel: &str) -> Vec<String> {
    let mut left = vec![];
    for h in hierarchies() {
        let dir = h.join(rel);
        if !dir.exists() {
            continue;
        }
        // Killed processes leave their cgroups a moment later (containers' too): rmdir says EBUSY until then.
        let start = Instant::now();
        while remove_tree(&dir).is_err() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(100));
        }
        if dir.exists() {
            left.push(dir.display().to_string());
        }
        // The lab's and the labs' parents go too once empty; another lab's cgroups keep them.
        let mut parent = dir.parent();
        while let Some(p) = parent.filter(|p| p.starts_with(h.join(ROOT))) {
            if std::fs::remove_dir(p).is_err() {
                break;
            }
            parent = p.parent();
        }
    }
    left
}

/// rmdir, deepest first: a cgroup directory holds only the kernel's files, which go with it.
fn remove_tree(dir: &Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)?.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&e.path())?;
        }
    }
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// The lab's cgroups still on the machine, one per hierarchy.
pub fn leftovers(lab: &str) -> Vec<String> {
    hierarchies()
        .into_iter()
        .map(|h| h.join(lab_path(lab)))
        .filter(|d| d.exists())
        .map(|d| format!("cgroup {}", d.display()))
        .collect()
}
