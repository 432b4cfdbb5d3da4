//! Address plan: stable subnets and switch addresses for every node, remembered in a lock file beside the inventory.
//!
//! Stability is the point: once a node has a subnet it keeps it whatever else is added, removed or reordered,
//! because renumbering a node means restarting its containers.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{Error, Result};
use crate::model::blocks::BlockSpace;
use crate::model::inventory::{Cluster, Encryption, Inventory, Node, switch_capacity};

pub const LOCK_VERSION: u32 = 1;

/// A lock holds ~150 bytes per node; past this it is not one vxmesh wrote.
const MAX_LOCK_BYTES: u64 = 64 * 1024 * 1024;

/// What one node was given. `id` numbers the switch address: `switch_cidr` network + id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allocation {
    pub id: u32,
    pub subnet: Ipv4Net,
    pub switch_ip: Ipv4Addr,
    /// With encryption: `wireguard_cidr` network + id, the address its tunnels run between.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wireguard_ip: Option<Ipv4Addr>,
}

/// The lock file's content: the cluster shape it was made for, and every node's allocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    pub version: u32,
    pub cidr: Ipv4Net,
    pub node_prefix: u8,
    pub switch_cidr: Ipv4Net,
    /// With encryption: the range the WireGuard addresses come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wireguard_cidr: Option<Ipv4Net>,
    /// A node listed twice would otherwise silently take its last entry: the node would move.
    #[serde(deserialize_with = "unique_nodes")]
    pub nodes: BTreeMap<String, Allocation>,
}

fn unique_nodes<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Allocation>, D::Error> {
    struct Unique;
    impl<'de> Visitor<'de> for Unique {
        type Value = BTreeMap<String, Allocation>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map from node names to allocations")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(name) = map.next_key::<String>()? {
                if out.contains_key(&name) {
                    return Err(de::Error::custom(format!("node `{}` is listed twice", name.escape_debug())));
                }
                let allocation = map.next_value()?;
                out.insert(name, allocation);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Unique)
}

/// `vxmesh.yaml` -> `vxmesh.lock`, in the same directory.
pub fn lock_path(inventory: &Path) -> PathBuf {
    inventory.with_extension("lock")
}

fn lock_err(file: &Path, message: String) -> Error {
    Error::Lock { file: file.to_path_buf(), message }
}

/// What a path is, when it is not the regular file a lock must be.
fn kind_of(t: std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// The lock's text; `None` when there is none. Only a regular file is read: a symlink could make vxmesh read
/// (and later replace) a file elsewhere, a FIFO or a device would hang or never end.
fn read_lock(path: &Path) -> Result<Option<String>> {
    let io = |source| Error::Io { action: "read the lock file", path: path.to_path_buf(), source };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let t = meta.file_type();
    if t.is_symlink() {
        return Err(lock_err(
            path,
            "is a symbolic link; vxmesh reads and replaces the lock in place, so it must be a regular file \
             (copy the file the link points to over the link)"
                .into(),
        ));
    }
    if !t.is_file() {
        return Err(lock_err(path, format!("is {}, not a regular file; move it away", kind_of(t))));
    }
    let file = std::fs::File::open(path).map_err(io)?;
    let opened = file.metadata().map_err(io)?;
    if (opened.dev(), opened.ino()) != (meta.dev(), meta.ino()) {
        return Err(lock_err(path, "was replaced while being read; run the command again".into()));
    }
    let mut bytes = Vec::new();
    file.take(MAX_LOCK_BYTES + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > MAX_LOCK_BYTES {
        return Err(lock_err(path, format!("is larger than {MAX_LOCK_BYTES} bytes; it is not a lock vxmesh wrote")));
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| lock_err(path, "is not UTF-8 text; it is not a lock vxmesh wrote".into()))
}

impl Lock {
    pub fn empty(cluster: &Cluster) -> Self {
        Lock {
            version: LOCK_VERSION,
            cidr: cluster.cidr,
            node_prefix: cluster.node_prefix,
            switch_cidr: cluster.switch_cidr,
            wireguard_cidr: (cluster.encryption == Encryption::Wireguard).then_some(cluster.wireguard.cidr),
            nodes: BTreeMap::new(),
        }
    }

    /// Reads the lock at `path`; `None` when there is none yet.
    pub fn load(path: &Path) -> Result<Option<Lock>> {
        let Some(text) = read_lock(path)? else { return Ok(None) };
        let lock: Lock = serde_json::from_str(&text).map_err(|e| {
            lock_err(path, format!("{}:{}: {e}; fix it or delete it to allocate afresh", e.line(), e.column()))
        })?;
        if lock.version != LOCK_VERSION {
            return Err(lock_err(
                path,
                format!("version {} is not supported (this vxmesh writes version {LOCK_VERSION})", lock.version),
            ));
        }
        lock.check_blocks().map_err(|m| lock_err(path, format!("{m}; fix it or delete it to allocate afresh")))?;
        Ok(Some(lock))
    }

    /// Every range in the lock is a block: `10.0.0.1/24` is a typo, and reading it as `10.0.0.0/24` would be a guess.
    fn check_blocks(&self) -> std::result::Result<(), String> {
        let host_bits = |net: &Ipv4Net| net.addr() != net.network();
        let wireguard = self.wireguard_cidr.iter().map(|w| ("wireguard_cidr", w));
        for (what, net) in [("cidr", &self.cidr), ("switch_cidr", &self.switch_cidr)].into_iter().chain(wireguard) {
            if host_bits(net) {
                return Err(format!("`{what}` `{net}` has host bits set (did you mean `{}`?)", net.trunc()));
            }
        }
        match self.nodes.iter().find(|(_, a)| host_bits(&a.subnet)) {
            Some((name, a)) => Err(format!(
                "node `{}` has subnet `{}` with host bits set (did you mean `{}`?)",
                name.escape_debug(),
                a.subnet,
                a.subnet.trunc()
            )),
            None => Ok(()),
        }
    }

    /// Writes atomically: a temporary file in the same directory, flushed, then renamed over the old one,
    /// so a crash leaves either the old lock or the new one, never half of one.
    pub fn save(&self, path: &Path) -> Result<()> {
        let io = |action, source| Error::Io { action, path: path.to_path_buf(), source };
        let mut text = serde_json::to_string_pretty(self).expect("a lock serializes");
        text.push('\n');
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        // A random name, created exclusively: nothing planted in the directory (a symlink at a guessable
        // name) is followed or written through. 0o666 less the umask, as a plain create would give.
        let mut tmp = tempfile::Builder::new()
            .prefix(".vxmesh-lock.")
            .permissions(std::fs::Permissions::from_mode(0o666))
            .tempfile_in(dir)
            .map_err(|e| io("create a temporary file beside the lock file", e))?;
        tmp.write_all(text.as_bytes()).map_err(|e| io("write the lock file", e))?;
        tmp.as_file().sync_all().map_err(|e| io("flush the lock file", e))?;
        tmp.persist(path).map_err(|e| io("replace the lock file", e.error))?;
        // The rename itself is durable only once the directory is flushed; a failure here loses nothing
        // that a crash would not (the old lock), so it is not worth an error.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// Allocates every inventory node, keeping what `previous` already gave.
///
/// Order of precedence: a subnet pinned in the inventory, then the lock's, then the lowest free block,
/// handed out to new nodes in name order so two laptops without a lock still agree.
/// The work is bounded by the number of nodes and reserved ranges, never by the number of blocks.
pub fn allocate(inv: &Inventory, previous: Option<&Lock>, lock_file: &Path) -> Result<Lock> {
    let c = &inv.cluster;
    let lock_err = |message: String| lock_err(lock_file, message);
    if let Some(prev) = previous
        && (prev.cidr != c.cidr || prev.node_prefix != c.node_prefix || prev.switch_cidr != c.switch_cidr)
    {
        return Err(lock_err(format!(
            "made for cidr `{}`, node_prefix {}, switch_cidr `{}`, but the inventory now says `{}`, {}, `{}`; \
             changing them renumbers every node: delete the lock file if that is what you want",
            prev.cidr, prev.node_prefix, prev.switch_cidr, c.cidr, c.node_prefix, c.switch_cidr
        )));
    }
    let wireguard = (c.encryption == Encryption::Wireguard).then_some(c.wireguard.cidr);
    if let (Some(prev), Some(now)) = (previous.and_then(|p| p.wireguard_cidr), wireguard)
        && prev != now
    {
        return Err(lock_err(format!(
            "made for cluster.wireguard.cidr `{prev}`, but the inventory now says `{now}`; changing it renumbers every \
             host's WireGuard address: delete the lock file if that is what you want"
        )));
    }
    let blocks = BlockSpace::new(c.cidr, c.node_prefix, c.exclude.iter().copied().chain([c.switch_cidr]))
        .ok_or_else(|| Error::Exhausted(format!("cluster.cidr `{}` holds no /{} block", c.cidr, c.node_prefix)))?;
    let mut taken = Taken::default();
    take_pinned(inv, &blocks, &mut taken)?;
    take_locked(inv, previous, &blocks, &mut taken).map_err(lock_err)?;
    let fresh = fresh_allocations(inv, &blocks, previous, &mut taken)?;
    let mut next = Lock::empty(c);
    for n in &inv.nodes {
        let (id, subnet) = match (previous.and_then(|p| p.nodes.get(&n.name)), fresh.get(n.name.as_str())) {
            (Some(a), _) => (a.id, n.subnet.unwrap_or(a.subnet)),
            (None, Some(f)) => *f,
            (None, None) => unreachable!("every node is locked or fresh"),
        };
        let switch_ip = Ipv4Addr::from(u32::from(c.switch_cidr.network()) + id);
        let wireguard_ip = match wireguard {
            Some(w) if u64::from(id) > switch_capacity(w) => {
                return Err(Error::Exhausted(format!(
                    "cluster.wireguard.cidr `{w}` has no address for node `{}` (switch id {id}); give it a larger block",
                    n.name
                )));
            }
            Some(w) => Some(Ipv4Addr::from(u32::from(w.network()) + id)),
            None => None,
        };
        next.nodes.insert(n.name.clone(), Allocation { id, subnet, switch_ip, wireguard_ip });
    }
    Ok(next)
}

/// Blocks and switch ids already handed out, and who holds each block (for the messages).
#[derive(Default)]
struct Taken<'a> {
    blocks: HashSet<u32>,
    ids: HashSet<u32>,
    owners: HashMap<u32, Owner<'a>>,
}

/// Pinned subnets first: they win over the lock. Validation already proved they fit and do not overlap.
fn take_pinned<'a>(inv: &'a Inventory, blocks: &BlockSpace, taken: &mut Taken<'a>) -> Result<()> {
    for n in &inv.nodes {
        let Some(s) = n.subnet else { continue };
        let b = blocks.index_of(s).filter(|b| blocks.usable(*b)).ok_or_else(|| {
            Error::Exhausted(format!(
                "node `{}` is pinned to `{s}`, which is not a usable block of the cluster",
                n.name
            ))
        })?;
        taken.blocks.insert(b);
        taken.owners.insert(b, Owner::Pinned(&n.name));
    }
    Ok(())
}

/// Then what the lock remembers, checked against the pins, each other and the cluster shape.
fn take_locked<'a>(
    inv: &'a Inventory,
    previous: Option<&Lock>,
    blocks: &BlockSpace,
    taken: &mut Taken<'a>,
) -> std::result::Result<(), String> {
    let c = &inv.cluster;
    for n in &inv.nodes {
        let Some(a) = previous.and_then(|p| p.nodes.get(&n.name)) else { continue };
        if n.subnet.is_none() {
            let b = blocks.index_of(a.subnet).filter(|b| blocks.usable(*b)).ok_or_else(|| {
                format!(
                    "node `{}` has subnet `{}`, which is not a usable /{} block of the cluster",
                    n.name, a.subnet, c.node_prefix
                )
            })?;
            if let Some(other) = taken.owners.get(&b) {
                return Err(other.conflict(&n.name, a.subnet));
            }
            taken.blocks.insert(b);
            taken.owners.insert(b, Owner::Locked(&n.name));
        }
        if a.id == 0 || u64::from(a.id) > switch_capacity(c.switch_cidr) || !taken.ids.insert(a.id) {
            return Err(format!("node `{}` has switch id {}, which is out of range or used twice", n.name, a.id));
        }
    }
    Ok(())
}

/// Who holds a block already, for the message when a lock entry claims it too.
enum Owner<'a> {
    Pinned(&'a str),
    Locked(&'a str),
}

impl Owner<'_> {
    fn conflict(&self, node: &str, subnet: Ipv4Net) -> String {
        match self {
            Owner::Pinned(other) => format!(
                "node `{node}` holds subnet `{subnet}`, but the inventory pins it to node `{other}`; pin `{other}` elsewhere or remove `{node}` first"
            ),
            Owner::Locked(other) => {
                format!(
                    "node `{node}` holds subnet `{subnet}`, which the lock also gives node `{other}`; fix it or delete it to allocate afresh"
                )
            }
        }
    }
}

/// Nodes the lock does not know, in name order: the lowest free block and the lowest free id each.
/// The cursor only moves forward, jumping whole reserved ranges at once.
fn fresh_allocations<'a>(
    inv: &'a Inventory,
    blocks: &BlockSpace,
    previous: Option<&Lock>,
    taken: &mut Taken,
) -> Result<BTreeMap<&'a str, (u32, Ipv4Net)>> {
    let c = &inv.cluster;
    let mut fresh: Vec<&Node> =
        inv.nodes.iter().filter(|n| previous.is_none_or(|p| !p.nodes.contains_key(&n.name))).collect();
    fresh.sort_by(|a, b| a.name.cmp(&b.name));
    let (mut block_cursor, mut id_cursor) = (0u32, 1u32);
    let mut out = BTreeMap::new();
    for n in fresh {
        let subnet = match n.subnet {
            Some(s) => s,
            None => {
                let b = loop {
                    let b = blocks.next_usable(block_cursor).ok_or_else(|| {
                        Error::Exhausted(format!(
                            "cluster.cidr `{}` has no free /{} subnet left for node `{}`",
                            c.cidr, c.node_prefix, n.name
                        ))
                    })?;
                    block_cursor = b + 1;
                    if !taken.blocks.contains(&b) {
                        break b;
                    }
                };
                taken.blocks.insert(b);
                blocks.subnet(b)
            }
        };
        while taken.ids.contains(&id_cursor) {
            id_cursor += 1;
        }
        if u64::from(id_cursor) > switch_capacity(c.switch_cidr) {
            return Err(Error::Exhausted(format!(
                "cluster.switch_cidr `{}` has no free switch address left for node `{}`",
                c.switch_cidr, n.name
            )));
        }
        taken.ids.insert(id_cursor);
        out.insert(n.name.as_str(), (id_cursor, subnet));
    }
    Ok(out)
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
    fn any_one_changed_part_of_the_cluster_shape_is_refused() {
        let a = inv(
            "cluster: {cidr: 10.0.0.0/8, node_prefix: 16, switch_cidr: 10.255.0.0/16}\nnodes: [{name: a, host: 1.1.1.1}]\n",
        );
        let lock = allocate(&a, None, Path::new("t.lock")).unwrap();
        for changed in [
            "cluster: {cidr: 10.0.0.0/8, node_prefix: 17, switch_cidr: 10.255.0.0/16}",
            "cluster: {cidr: 10.0.0.0/8, node_prefix: 16, switch_cidr: 10.254.0.0/16}",
        ] {
            let b = inv(&format!("{changed}\nnodes: [{{name: a, host: 1.1.1.1}}]\n"));
            assert!(allocate(&b, Some(&lock), Path::new("t.lock")).is_err(), "{changed}");
        }
    }

    #[test]
    fn a_locked_switch_id_must_be_in_range_and_used_once() {
        // A /29 switch range holds ids 1..=6.
        let i = inv(
            "cluster: {cidr: 10.0.0.0/16, node_prefix: 24, switch_cidr: 10.0.255.0/29}\nnodes: [{name: a, host: 1.1.1.1}, {name: b, host: 1.1.1.2}]\n",
        );
        let good = allocate(&i, None, Path::new("t.lock")).unwrap();
        let with_ids = |a: u32, b: u32| {
            let mut l = good.clone();
            l.nodes.get_mut("a").unwrap().id = a;
            l.nodes.get_mut("b").unwrap().id = b;
            l
        };
        assert!(allocate(&i, Some(&with_ids(1, 6)), Path::new("t.lock")).is_ok(), "the last id in range is fine");
        for (a, b) in [(0, 1), (1, 7), (2, 2)] {
            assert!(allocate(&i, Some(&with_ids(a, b)), Path::new("t.lock")).is_err(), "ids {a} and {b}");
        }
    }

    #[test]
    fn lock_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vxmesh.lock");
        let a = inv("cluster: {cidr: 10.0.0.0/8}\nnodes: [{name: a, host: 1.1.1.1}, {name: b, host: 1.1.1.2}]\n");
        let lock = allocate(&a, None, &path).unwrap();
        lock.save(&path).unwrap();
        assert_eq!(Lock::load(&path).unwrap(), Some(lock));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file is left behind");
    }

    /// A valid lock's text for nodes `a` and `b`, to be broken by each test.
    fn lock_text() -> String {
        let a = inv("cluster: {cidr: 10.0.0.0/8}\nnodes: [{name: a, host: 1.1.1.1}, {name: b, host: 1.1.1.2}]\n");
        serde_json::to_string_pretty(&allocate(&a, None, Path::new("t.lock")).unwrap()).unwrap()
    }

    /// Writes `text` as a lock in a fresh directory and loads it.
    fn load_text(text: &str) -> Result<Option<Lock>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vxmesh.lock");
        std::fs::write(&path, text).unwrap();
        Lock::load(&path)
    }

    #[test]
    fn a_node_listed_twice_in_the_lock_is_refused_not_the_last_one_taken() {
        // The second entry would silently move `a` to 10.1.0.0/16.
        let text = r#"{"version": 1, "cidr": "10.0.0.0/8", "node_prefix": 16, "switch_cidr": "10.255.0.0/16", "nodes": {
            "a": {"id": 1, "subnet": "10.0.0.0/16", "switch_ip": "10.255.0.1"},
            "a": {"id": 2, "subnet": "10.1.0.0/16", "switch_ip": "10.255.0.2"}}}"#;
        let e = load_text(text).unwrap_err().to_string();
        assert!(e.contains("node `a` is listed twice"), "{e}");
        assert!(load_text(&text.replacen("\"a\": {\"id\": 2", "\"b\": {\"id\": 2", 1)).is_ok());
    }

    #[test]
    fn a_lock_subnet_with_host_bits_is_refused() {
        let text = lock_text().replacen("\"10.0.0.0/16\"", "\"10.0.0.1/16\"", 1);
        let e = load_text(&text).unwrap_err().to_string();
        assert!(
            e.contains("node `a` has subnet `10.0.0.1/16` with host bits set (did you mean `10.0.0.0/16`?)"),
            "{e}"
        );
    }

    #[test]
    fn unknown_fields_in_a_node_entry_are_refused() {
        let text = lock_text().replacen("\"id\": 1,", "\"id\": 1,\n      \"vlan\": 7,", 1);
        let e = load_text(&text).unwrap_err().to_string();
        assert!(e.contains("unknown field `vlan`"), "{e}");
    }

    #[test]
    fn only_a_regular_file_is_read_as_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let as_dir = dir.path().join("dir.lock");
        std::fs::create_dir(&as_dir).unwrap();
        let e = Lock::load(&as_dir).unwrap_err().to_string();
        assert!(e.contains("is a directory, not a regular file"), "{e}");

        let e = Lock::load(Path::new("/dev/null")).unwrap_err().to_string();
        assert!(e.contains("is a device, not a regular file"), "{e}");

        let fifo = dir.path().join("fifo.lock");
        if std::process::Command::new("mkfifo").arg(&fifo).status().is_ok_and(|s| s.success()) {
            // Reading a FIFO would block until someone writes to it: refused before it is opened.
            let e = Lock::load(&fifo).unwrap_err().to_string();
            assert!(e.contains("is a FIFO, not a regular file"), "{e}");
        }

        let target = dir.path().join("elsewhere.lock");
        std::fs::write(&target, lock_text()).unwrap();
        let link = dir.path().join("vxmesh.lock");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = Lock::load(&link).unwrap_err().to_string();
        assert!(e.contains("is a symbolic link"), "{e}");
    }

    #[test]
    fn saving_follows_no_planted_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vxmesh.lock");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        // The name the old code wrote to first, and a link at the lock path itself.
        let guessable = path.with_extension(format!("lock.tmp{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &guessable).unwrap();
        let a = inv("cluster: {cidr: 10.0.0.0/8}\nnodes: [{name: a, host: 1.1.1.1}]\n");
        let lock = allocate(&a, None, &path).unwrap();
        lock.save(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert_eq!(Lock::load(&path).unwrap(), Some(lock.clone()));

        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        lock.save(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "precious\n",
            "the link is replaced, not written through"
        );
        assert!(std::fs::symlink_metadata(&path).unwrap().is_file());
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 3, "the lock, the victim, the planted link; no temporary file: {names:?}");
    }

    #[test]
    fn allocation_jumps_reserved_ranges_instead_of_walking_blocks() {
        // Two million /30 blocks lie in the excluded half before the first free one; walking them one by one
        // with a check per reserved range is what made large clusters slow.
        let i = inv(
            "cluster: {cidr: 10.0.0.0/8, node_prefix: 30, exclude: [10.0.0.0/9]}\nnodes: [{name: a, host: 1.1.1.1}, {name: b, host: 1.1.1.2}]\n",
        );
        let t = std::time::Instant::now();
        let l = allocate(&i, None, Path::new("t.lock")).unwrap();
        assert!(t.elapsed() < std::time::Duration::from_millis(200), "took {:?}", t.elapsed());
        assert_eq!(l.nodes["a"].subnet.to_string(), "10.128.0.0/30");
        assert_eq!(l.nodes["b"].subnet.to_string(), "10.128.0.4/30");
    }
}
