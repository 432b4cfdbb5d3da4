//! The inventory and its lock as commands read and change them: loading both with the plan they make, and the
//! transactions of `add-node` and `remove-node` (inventory text edited, checked, lock reallocated, both saved).

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::model::inventory::{self, Inventory};
use crate::model::ipam::{self, Lock};
use crate::plan::{self, ClusterPlan};

/// The inventory, validated, and its plan; with `save_lock` the lock file is written when the plan changed it
/// (`render` and `plan --offline` keep it in memory).
pub fn load(path: &Path, save_lock: bool) -> Result<(Inventory, ClusterPlan), Error> {
    let inv = inventory::load(path)?;
    let plan = planned(path, &inv, save_lock)?;
    Ok((inv, plan))
}

/// The plan of `inv`, the inventory at `path`, from the lock beside it (written when changed, with `save_lock`).
fn planned(path: &Path, inv: &Inventory, save_lock: bool) -> Result<ClusterPlan, Error> {
    let (lock_file, previous) = lock_of(path)?;
    let lock = ipam::assign(inv, previous.as_ref())?;
    if save_lock && previous.as_ref() != Some(&lock) {
        lock.save(&lock_file)?;
    }
    Ok(plan::plan(inv, &lock))
}

fn lock_of(inventory: &Path) -> Result<(PathBuf, Option<Lock>), Error> {
    let file = ipam::lock_path(inventory);
    let previous = Lock::load(&file)?;
    Ok((file, previous))
}

/// Adds the node to the inventory file (comments, order and style kept) and to the lock, and saves both before
/// any host is touched: a later `up` finishes what fails now. Returns the new inventory and plan.
pub fn enroll(
    path: &Path,
    entry: &inventory::edit::NewNode,
    placement: &inventory::edit::Placement,
) -> Result<(Inventory, ClusterPlan), Error> {
    let text = inventory::read_text(path)?;
    let old = inventory::parse(path, &text)?;
    if old.node(entry.name).is_some() {
        return Err(Error::NodeExists { name: entry.name.to_string() });
    }
    let new_text = inventory::edit::add_node_placed(path, &text, entry, placement)?;
    let inv = inventory::parse(path, &new_text)?;
    let added = inv.node(entry.name);
    if added.is_none_or(|n| n.host != entry.host) || inv.nodes.len() != old.nodes.len() + 1 {
        return Err(Error::EditUnsafe { name: entry.name.to_string(), edit: "add" });
    }
    let (lock_file, previous) = lock_of(path)?;
    let lock = ipam::assign(&inv, previous.as_ref())?;
    inventory::edit::save(path, &new_text)?;
    lock.save(&lock_file)?;
    let plan = plan::plan(&inv, &lock);
    Ok((inv, plan))
}

/// A node's removal, prepared: the cluster as it is and as it will be. Nothing is written until [`commit`], which
/// `remove-node` calls only once every host passed its checks.
///
/// [`commit`]: Withdrawal::commit
pub struct Withdrawal {
    pub old: Inventory,
    pub old_plan: ClusterPlan,
    pub plan: ClusterPlan,
    path: PathBuf,
    text: String,
    lock_file: PathBuf,
    lock: Lock,
}

impl Withdrawal {
    pub fn prepare(path: &Path, name: &str) -> Result<Withdrawal, Error> {
        // Read once: the plan as it is and the text edited come from the same file contents.
        let text = inventory::read_text(path)?;
        let old = inventory::parse(path, &text)?;
        let old_plan = planned(path, &old, true)?;
        old.node(name).ok_or_else(|| old.unknown_node(name))?;
        let new_text = inventory::edit::remove_node(path, &text, name)?;
        let inv = inventory::parse(path, &new_text)?;
        if inv.node(name).is_some() || inv.nodes.len() + 1 != old.nodes.len() {
            return Err(Error::EditUnsafe { name: name.to_string(), edit: "remove" });
        }
        let (lock_file, previous) = lock_of(path)?;
        let lock = ipam::assign(&inv, previous.as_ref())?;
        let plan = plan::plan(&inv, &lock);
        Ok(Withdrawal { old, old_plan, plan, path: path.to_path_buf(), text: new_text, lock_file, lock })
    }

    /// Records the node's removal: the inventory without it, the lock with its subnet freed.
    pub fn commit(&self) -> Result<(), Error> {
        inventory::edit::save(&self.path, &self.text)?;
        self.lock.save(&self.lock_file)
    }
}
