//! Address plan: stable subnets and switch addresses for every node, remembered in a lock file beside the inventory.
//!
//! Stability is the point: once a node has a subnet it keeps it whatever else is added, removed or reordered,
//! because renumbering a node means restarting its containers.

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::inventory::{Cluster, Inventory, Node};

pub const LOCK_VERSION: u32 = 1;

/// What one node was given. `id` numbers the switch address: `switch_cidr` network + id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    pub id: u32,
    pub subnet: Ipv4Net,
    pub switch_ip: Ipv4Addr,
}

/// The lock file's content: the cluster shape it was made for, and every node's allocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    pub version: u32,
    pub cidr: Ipv4Net,
    pub node_prefix: u8,
    pub switch_cidr: Ipv4Net,
    pub nodes: BTreeMap<String, Allocation>,
}

/// `vxmesh.yaml` -> `vxmesh.lock`, in the same directory.
pub fn lock_path(inventory: &Path) -> PathBuf {
    inventory.with_extension("lock")
}

impl Lock {
    pub fn empty(cluster: &Cluster) -> Self {
        Lock {
            version: LOCK_VERSION,
            cidr: cluster.cidr,
            node_prefix: cluster.node_prefix,
            switch_cidr: cluster.switch_cidr,
            nodes: BTreeMap::new(),
        }
    }

    /// Reads the lock at `path`; `None` when there is none yet.
    pub fn load(path: &Path) -> Result<Option<Lock>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(Error::Io { action: "read the lock file", path: path.to_path_buf(), source });
            }
        };
        let lock: Lock = serde_json::from_str(&text).map_err(|e| Error::Lock {
            file: path.to_path_buf(),
            message: format!("{}:{}: {e}; fix it or delete it to allocate afresh", e.line(), e.column()),
        })?;
        if lock.version != LOCK_VERSION {
            return Err(Error::Lock {
                file: path.to_path_buf(),
                message: format!(
                    "version {} is not supported (this vxmesh writes version {LOCK_VERSION})",
                    lock.version
                ),
            });
        }
        Ok(Some(lock))
    }

    /// Writes atomically: a temporary file in the same directory, flushed, then renamed over the old one,
    /// so a crash leaves either the old lock or the new one, never half of one.
    pub fn save(&self, path: &Path) -> Result<()> {
        use std::io::Write;
        let io = |action, source| Error::Io { action, path: path.to_path_buf(), source };
        let mut text = serde_json::to_string_pretty(self).expect("a lock serializes");
        text.push('\n');
        let tmp = path.with_extension(format!("lock.tmp{}", std::process::id()));
        let mut f = std::fs::File::create(&tmp).map_err(|e| io("create the lock file", e))?;
        f.write_all(text.as_bytes()).map_err(|e| io("write the lock file", e))?;
        f.sync_all().map_err(|e| io("flush the lock file", e))?;
        std::fs::rename(&tmp, path).map_err(|e| io("replace the lock file", e))
    }
}

/// Allocates every inventory node, keeping what `previous` already gave.
///
/// Order of precedence: a subnet pinned in the inventory, then the lock's, then the lowest free block,
/// handed out to new nodes in name order so two laptops without a lock still agree.
pub fn allocate(inv: &Inventory, previous: Option<&Lock>, lock_file: &Path) -> Result<Lock> {
    let c = &inv.cluster;
    let lock_err = |message: String| Error::Lock { file: lock_file.to_path_buf(), message };
    if let Some(prev) = previous
        && (prev.cidr != c.cidr || prev.node_prefix != c.node_prefix || prev.switch_cidr != c.switch_cidr)
    {
        return Err(lock_err(format!(
            "made for cidr `{}`, node_prefix {}, switch_cidr `{}`, but the inventory now says `{}`, {}, `{}`; \
             changing them renumbers every node: delete the lock file if that is what you want",
            prev.cidr, prev.node_prefix, prev.switch_cidr, c.cidr, c.node_prefix, c.switch_cidr
        )));
    }
    let blocks = BlockSpace::new(c);
    let mut next = Lock::empty(c);
    let mut taken_blocks: HashSet<u32> = HashSet::new();
    let mut taken_ids: HashSet<u32> = HashSet::new();
    let mut owner_of_block: BTreeMap<u32, &str> = BTreeMap::new();

    // Pinned subnets first: validation already proved they fit and do not overlap each other.
    for n in inv.nodes.iter().filter(|n| n.subnet.is_some()) {
        let b = blocks.index_of(n.subnet.expect("filtered")).expect("validated inside the cluster");
        taken_blocks.insert(b);
        owner_of_block.insert(b, &n.name);
    }
    let locked = |n: &Node| previous.and_then(|p| p.nodes.get(&n.name));
    // Then what the lock remembers, checked against the pins and the cluster shape.
    for n in &inv.nodes {
        let Some(a) = locked(n) else { continue };
        if n.subnet.is_none() {
            let b = blocks.index_of(a.subnet).filter(|b| blocks.usable(*b)).ok_or_else(|| {
                lock_err(format!(
                    "node `{}` has subnet `{}`, which is not a usable /{} block of the cluster",
                    n.name, a.subnet, c.node_prefix
                ))
            })?;
            if let Some(other) = owner_of_block.get(&b) {
                return Err(lock_err(format!(
                    "node `{}` holds subnet `{}`, but the inventory pins it to node `{other}`; pin `{other}` elsewhere or remove `{}` first",
                    n.name, a.subnet, n.name
                )));
            }
            taken_blocks.insert(b);
            owner_of_block.insert(b, &n.name);
        }
        if a.id == 0
            || u64::from(a.id) > crate::model::inventory::switch_capacity(c.switch_cidr)
            || !taken_ids.insert(a.id)
        {
            return Err(lock_err(format!(
                "node `{}` has switch id {}, which is out of range or used twice",
                n.name, a.id
            )));
        }
    }
    // New nodes, in name order.
    let mut fresh: Vec<&Node> = inv.nodes.iter().filter(|n| locked(n).is_none()).collect();
    fresh.sort_by(|a, b| a.name.cmp(&b.name));
    let mut block_cursor = 0u32;
    let mut id_cursor = 1u32;
    let mut fresh_alloc: BTreeMap<&str, (u32, Ipv4Net)> = BTreeMap::new();
    for n in fresh {
        let subnet = match n.subnet {
            Some(s) => s,
            None => {
                while block_cursor < blocks.count
                    && (taken_blocks.contains(&block_cursor) || !blocks.usable(block_cursor))
                {
                    block_cursor += 1;
                }
                if block_cursor >= blocks.count {
                    return Err(Error::Exhausted(format!(
                        "cluster.cidr `{}` has no free /{} subnet left for node `{}`",
                        c.cidr, c.node_prefix, n.name
                    )));
                }
                taken_blocks.insert(block_cursor);
                blocks.subnet(block_cursor)
            }
        };
        while taken_ids.contains(&id_cursor) {
            id_cursor += 1;
        }
        if u64::from(id_cursor) > crate::model::inventory::switch_capacity(c.switch_cidr) {
            return Err(Error::Exhausted(format!(
                "cluster.switch_cidr `{}` has no free switch address left for node `{}`",
                c.switch_cidr, n.name
            )));
        }
        taken_ids.insert(id_cursor);
        fresh_alloc.insert(&n.name, (id_cursor, subnet));
    }
    for n in &inv.nodes {
        let (id, subnet) = match (locked(n), fresh_alloc.get(n.name.as_str())) {
            (Some(a), _) => (a.id, n.subnet.unwrap_or(a.subnet)),
            (None, Some(f)) => *f,
            (None, None) => unreachable!("every node is locked or fresh"),
        };
        let switch_ip = Ipv4Addr::from(u32::from(c.switch_cidr.network()) + id);
        next.nodes.insert(n.name.clone(), Allocation { id, subnet, switch_ip });
    }
    Ok(next)
}

/// The cluster CIDR cut into node-sized blocks, addressed by index.
struct BlockSpace {
    base: u32,
    shift: u32,
    count: u32,
    reserved: Vec<Ipv4Net>,
    node_prefix: u8,
}

impl BlockSpace {
    fn new(c: &Cluster) -> Self {
        let mut reserved = c.exclude.clone();
        reserved.push(c.switch_cidr);
        BlockSpace {
            base: u32::from(c.cidr.network()),
            shift: 32 - u32::from(c.node_prefix),
            count: 1u32 << (c.node_prefix - c.cidr.prefix_len()),
            reserved,
            node_prefix: c.node_prefix,
        }
    }

    fn subnet(&self, i: u32) -> Ipv4Net {
        Ipv4Net::new(Ipv4Addr::from(self.base + (i << self.shift)), self.node_prefix).expect("prefix checked")
    }

    fn index_of(&self, s: Ipv4Net) -> Option<u32> {
        let off = u32::from(s.network()).checked_sub(self.base)?;
        let i = off >> self.shift;
        (s.prefix_len() == self.node_prefix && i < self.count).then_some(i)
    }

    fn usable(&self, i: u32) -> bool {
        let s = self.subnet(i);
        !self.reserved.iter().any(|r| crate::model::inventory::overlaps(&s, r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn inv(yaml: &str) -> Inventory {
        crate::model::inventory::parse(Path::new("t.yaml"), yaml).unwrap()
    }

    #[test]
    fn classic_layout_skips_docker0_and_switch_range() {
        let i = inv(
            "cluster: {cidr: 172.16.0.0/12, switch_cidr: 172.30.0.0/16}\nnodes:\n  - {name: vm1, host: 10.0.0.1}\n  - {name: vm2, host: 10.0.0.2}\n  - {name: vm3, host: 10.0.0.3}\n",
        );
        let l = allocate(&i, None, Path::new("t.lock")).unwrap();
        let got: Vec<_> = l.nodes.values().map(|a| (a.subnet.to_string(), a.switch_ip.to_string())).collect();
        assert_eq!(
            got,
            [("172.16.0.0/16", "172.30.0.1"), ("172.18.0.0/16", "172.30.0.2"), ("172.19.0.0/16", "172.30.0.3")]
                .map(|(a, b)| (a.to_string(), b.to_string()))
        );
    }

    #[test]
    fn changed_cluster_shape_is_refused_with_both_values() {
        let a = inv("cluster: {cidr: 10.0.0.0/8}\nnodes: [{name: a, host: 1.1.1.1}]\n");
        let lock = allocate(&a, None, Path::new("t.lock")).unwrap();
        let b = inv("cluster: {cidr: 10.0.0.0/9}\nnodes: [{name: a, host: 1.1.1.1}]\n");
        let e = allocate(&b, Some(&lock), Path::new("t.lock")).unwrap_err().to_string();
        assert!(e.contains("`10.0.0.0/8`") && e.contains("`10.0.0.0/9`"), "{e}");
    }

    #[test]
    fn lock_round_trips_through_its_file() {
        let dir = std::env::temp_dir().join(format!("vxmesh-ipam-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("vxmesh.lock");
        let a = inv("cluster: {cidr: 10.0.0.0/8}\nnodes: [{name: a, host: 1.1.1.1}, {name: b, host: 1.1.1.2}]\n");
        let lock = allocate(&a, None, &path).unwrap();
        lock.save(&path).unwrap();
        assert_eq!(Lock::load(&path).unwrap(), Some(lock));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temporary file is left behind");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
