//! Address plan: stable subnets and switch addresses for every node. The lock file that remembers them is
//! [`crate::model::lock`]'s; this module only decides.
//!
//! Stability is the point: once a node has a subnet it keeps it whatever else is added, removed or reordered,
//! because renumbering a node means restarting its containers.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::Path;

use ipnet::Ipv4Net;

use crate::error::{Error, Result};
use crate::model::blocks::BlockSpace;
use crate::model::inventory::{Encryption, Inventory, Node, switch_capacity};
use crate::model::lock::lock_err;

// The lock's types and paths, where callers have always found them.
pub use crate::model::lock::{Allocation, Guard, LOCK_VERSION, Lock, guard_path, lock_path};

/// Problems of a lock are reported against the file it was read from.
fn stale(previous: &Lock, message: String) -> Error {
    lock_err(previous.origin.as_deref().unwrap_or(Path::new("the lock")), message)
}

/// Allocates every inventory node, keeping what `previous` already gave.
///
/// Order of precedence: a subnet pinned in the inventory, then the lock's, then the lowest free block,
/// handed out to new nodes in name order so two laptops without a lock still agree.
/// The work is bounded by the number of nodes and reserved ranges, never by the number of blocks.
/// A lock's own problems (it no longer fits the inventory, it gives one block twice) are reported against the file it
/// was read from ([`Lock::origin`]).
pub fn assign(inv: &Inventory, previous: Option<&Lock>) -> Result<Lock> {
    let c = &inv.cluster;
    if let Some(prev) = previous
        && (prev.cidr != c.cidr || prev.node_prefix != c.node_prefix || prev.switch_cidr != c.switch_cidr)
    {
        return Err(stale(
            prev,
            format!(
                "made for cidr `{}`, node_prefix {}, switch_cidr `{}`, but the inventory now says `{}`, {}, `{}`; \
             changing them renumbers every node: delete the lock file if that is what you want",
                prev.cidr, prev.node_prefix, prev.switch_cidr, c.cidr, c.node_prefix, c.switch_cidr
            ),
        ));
    }
    let wireguard = (c.encryption == Encryption::Wireguard).then_some(c.wireguard.cidr);
    if let (Some(p), Some(prev), Some(now)) = (previous, previous.and_then(|p| p.wireguard_cidr), wireguard)
        && prev != now
    {
        return Err(stale(
            p,
            format!(
                "made for cluster.wireguard.cidr `{prev}`, but the inventory now says `{now}`; changing it renumbers every \
             host's WireGuard address: delete the lock file if that is what you want"
            ),
        ));
    }
    let blocks = BlockSpace::new(c.cidr, c.node_prefix, c.exclude.iter().copied().chain([c.switch_cidr]))
        .ok_or_else(|| Error::Exhausted(format!("cluster.cidr `{}` holds no /{} block", c.cidr, c.node_prefix)))?;
    let mut taken = Taken::default();
    take_pinned(inv, &blocks, &mut taken)?;
    if let Some(prev) = previous {
        take_locked(inv, prev, &blocks, &mut taken).map_err(|m| stale(prev, m))?;
    }
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
        next.nodes.insert(n.name.clone(), Allocation { id, subnet, switch_ip, wireguard_ip, subnet6: None });
    }
    if let Some(o) = c.ipv6 {
        let switch_block = crate::model::inventory::overlay6::block(o.cidr, o.node_prefix, 0);
        let room = 1u128.checked_shl(128 - u32::from(o.node_prefix)).unwrap_or(u128::MAX);
        if let Some((name, a)) = next.nodes.iter().find(|(_, a)| u128::from(a.id) >= room) {
            return Err(Error::Exhausted(format!(
                "the first block of cluster.cidr6, `{switch_block}`, has no switch address for node `{name}` (switch id {}); give it a shorter node_prefix6",
                a.id
            )));
        }
        let blocks6 = assign6(inv, o, previous)?;
        for (name, a) in next.nodes.iter_mut() {
            a.subnet6 = blocks6.get(name.as_str()).copied();
        }
    }
    Ok(next)
}

/// Every node's IPv6 block: pinned, else the lock's, else the lowest free one (block 0 is the switches'), handed
/// out in name order like the IPv4 subnets, so two laptops without a lock agree. Bounded by the node count.
fn assign6<'a>(
    inv: &'a Inventory,
    o: crate::model::inventory::Overlay6,
    previous: Option<&Lock>,
) -> Result<BTreeMap<&'a str, ipnet::Ipv6Net>> {
    use crate::model::inventory::overlay6::{block, blocks, index_of};
    let now = (o.cidr, o.node_prefix);
    let prev = previous.filter(|p| p.cidr6.is_some());
    if let Some(p) = prev
        && p.cidr6 != Some(now)
    {
        let (c, np) = p.cidr6.expect("filtered");
        return Err(stale(
            p,
            format!(
                "made for cidr6 `{c}`, node_prefix6 {np}, but the inventory now says `{}`, {}; changing them renumbers \
                 every container's IPv6 address: delete the lock file if that is what you want",
                o.cidr, o.node_prefix
            ),
        ));
    }
    let mut taken: HashMap<u128, &str> = HashMap::new();
    let mut out = BTreeMap::new();
    for n in &inv.nodes {
        if let Some(s) = n.subnet6 {
            let i = index_of(o.cidr, o.node_prefix, s).expect("validated pin");
            taken.insert(i, &n.name);
            out.insert(n.name.as_str(), s);
        }
    }
    for n in inv.nodes.iter().filter(|n| n.subnet6.is_none()) {
        let Some(s) = prev.and_then(|p| p.nodes.get(&n.name)).and_then(|a| a.subnet6) else { continue };
        let p = prev.expect("a lock gave it");
        let i = index_of(o.cidr, o.node_prefix, s).filter(|i| *i > 0).ok_or_else(|| {
            stale(p, format!("node `{}` has subnet6 `{s}`, which is not a node block of cidr6 `{}`", n.name, o.cidr))
        })?;
        if let Some(other) = taken.insert(i, &n.name) {
            return Err(stale(
                p,
                format!(
                    "node `{}` holds subnet6 `{s}`, which node `{other}` has too; pin `{other}` elsewhere, or fix the lock",
                    n.name
                ),
            ));
        }
        out.insert(n.name.as_str(), s);
    }
    let mut fresh: Vec<&Node> = inv.nodes.iter().filter(|n| !out.contains_key(n.name.as_str())).collect();
    fresh.sort_by(|a, b| a.name.cmp(&b.name));
    let (mut cursor, end) = (1u128, blocks(o.cidr, o.node_prefix));
    for n in fresh {
        while taken.contains_key(&cursor) {
            cursor += 1;
        }
        if cursor >= end {
            return Err(Error::Exhausted(format!(
                "cluster.cidr6 `{}` has no free /{} block left for node `{}`",
                o.cidr, o.node_prefix, n.name
            )));
        }
        taken.insert(cursor, &n.name);
        out.insert(n.name.as_str(), block(o.cidr, o.node_prefix, cursor));
    }
    Ok(out)
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
        let b = blocks.index_of(s).filter(|b| blocks.usable(*b)).ok_or_else(|| Error::PinnedSubnet {
            node: n.name.clone(),
            subnet: s,
            cidr: inv.cluster.cidr,
            node_prefix: inv.cluster.node_prefix,
        })?;
        taken.blocks.insert(b);
        taken.owners.insert(b, Owner::Pinned(&n.name));
    }
    Ok(())
}

/// Then what the lock remembers, checked against the pins, each other and the cluster shape.
fn take_locked<'a>(
    inv: &'a Inventory,
    previous: &Lock,
    blocks: &BlockSpace,
    taken: &mut Taken<'a>,
) -> std::result::Result<(), String> {
    let c = &inv.cluster;
    for n in &inv.nodes {
        let Some(a) = previous.nodes.get(&n.name) else { continue };
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

    fn inv(yaml: &str) -> Inventory {
        crate::model::inventory::parse(Path::new("t.yaml"), yaml).unwrap()
    }

    fn blocks6(l: &Lock) -> Vec<(String, String)> {
        l.nodes.iter().map(|(n, a)| (n.clone(), a.subnet6.map(|s| s.to_string()).unwrap_or_default())).collect()
    }

    #[test]
    fn ipv6_blocks_are_pinned_kept_and_handed_out_lowest_first() {
        let three = "cluster: {cidr: 10.0.0.0/8, cidr6: 'fd42:7:1::/48'}\nnodes:\n  - {name: c, host: 192.0.2.3}\n  - {name: a, host: 192.0.2.1, subnet6: 'fd42:7:1:1::/64'}\n  - {name: b, host: 192.0.2.2}\n";
        let first = assign(&inv(three), None).unwrap();
        let want = [("a", "fd42:7:1:1::/64"), ("b", "fd42:7:1:2::/64"), ("c", "fd42:7:1:3::/64")];
        assert_eq!(blocks6(&first), want.map(|(a, b)| (a.to_string(), b.to_string())));
        // Round trip through the file's text, then a new node and one gone: the others keep theirs.
        let text = serde_json::to_string(&first).unwrap();
        let read = Lock::parse(&text).unwrap();
        assert_eq!(read, first);
        let next = "cluster: {cidr: 10.0.0.0/8, cidr6: 'fd42:7:1::/48'}\nnodes:\n  - {name: c, host: 192.0.2.3}\n  - {name: aa, host: 192.0.2.4}\n  - {name: b, host: 192.0.2.2}\n";
        let again = assign(&inv(next), Some(&read)).unwrap();
        let want = [("aa", "fd42:7:1:1::/64"), ("b", "fd42:7:1:2::/64"), ("c", "fd42:7:1:3::/64")];
        assert_eq!(blocks6(&again), want.map(|(a, b)| (a.to_string(), b.to_string())));
        // Another range renumbers every container: refused, naming both.
        let moved = three.replace("fd42:7:1::/48", "fd42:7:2::/48").replace("fd42:7:1:1::/64", "fd42:7:2:1::/64");
        let e = assign(&inv(&moved), Some(&read)).unwrap_err().to_string();
        assert!(e.contains("`fd42:7:1::/48`") && e.contains("`fd42:7:2::/48`"), "{e}");
        // A lock from before IPv6 gains blocks; its IPv4 side is untouched.
        let v4 = assign(&inv("cluster: {cidr: 10.0.0.0/8}\nnodes: [{name: a, host: 192.0.2.1}]\n"), None).unwrap();
        let grown = assign(
            &inv("cluster: {cidr: 10.0.0.0/8, cidr6: 'fd42:7:1::/48'}\nnodes: [{name: a, host: 192.0.2.1}]\n"),
            Some(&v4),
        )
        .unwrap();
        assert_eq!(grown.nodes["a"].subnet, v4.nodes["a"].subnet);
        assert_eq!(grown.nodes["a"].subnet6.unwrap().to_string(), "fd42:7:1:1::/64");
    }

    #[test]
    fn classic_layout_skips_docker0_and_switch_range() {
        let i = inv(
            "cluster: {cidr: 172.16.0.0/12, switch_cidr: 172.30.0.0/16}\nnodes:\n  - {name: vm1, host: 10.0.0.1}\n  - {name: vm2, host: 10.0.0.2}\n  - {name: vm3, host: 10.0.0.3}\n",
        );
        let l = assign(&i, None).unwrap();
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
        let lock = assign(&a, None).unwrap();
        let b = inv("cluster: {cidr: 10.0.0.0/9}\nnodes: [{name: a, host: 1.1.1.1}]\n");
        let e = assign(&b, Some(&lock)).unwrap_err().to_string();
        assert!(e.contains("`10.0.0.0/8`") && e.contains("`10.0.0.0/9`"), "{e}");
    }

    #[test]
    fn any_one_changed_part_of_the_cluster_shape_is_refused() {
        let a = inv(
            "cluster: {cidr: 10.0.0.0/8, node_prefix: 16, switch_cidr: 10.255.0.0/16}\nnodes: [{name: a, host: 1.1.1.1}]\n",
        );
        let lock = assign(&a, None).unwrap();
        for changed in [
            "cluster: {cidr: 10.0.0.0/8, node_prefix: 17, switch_cidr: 10.255.0.0/16}",
            "cluster: {cidr: 10.0.0.0/8, node_prefix: 16, switch_cidr: 10.254.0.0/16}",
        ] {
            let b = inv(&format!("{changed}\nnodes: [{{name: a, host: 1.1.1.1}}]\n"));
            assert!(assign(&b, Some(&lock)).is_err(), "{changed}");
        }
    }

    #[test]
    fn a_locked_switch_id_must_be_in_range_and_used_once() {
        // A /29 switch range holds ids 1..=6.
        let i = inv(
            "cluster: {cidr: 10.0.0.0/16, node_prefix: 24, switch_cidr: 10.0.255.0/29}\nnodes: [{name: a, host: 1.1.1.1}, {name: b, host: 1.1.1.2}]\n",
        );
        let good = assign(&i, None).unwrap();
        let with_ids = |a: u32, b: u32| {
            let mut l = good.clone();
            l.nodes.get_mut("a").unwrap().id = a;
            l.nodes.get_mut("b").unwrap().id = b;
            l
        };
        assert!(assign(&i, Some(&with_ids(1, 6))).is_ok(), "the last id in range is fine");
        for (a, b) in [(0, 1), (1, 7), (2, 2)] {
            assert!(assign(&i, Some(&with_ids(a, b))).is_err(), "ids {a} and {b}");
        }
    }

    #[test]
    fn a_pinned_subnet_allocation_cannot_use_is_not_reported_as_exhaustion() {
        // Validation refuses such a pin; a caller that changed the inventory after validation gets its own error.
        let mut i = inv("cluster: {cidr: 10.0.0.0/16, node_prefix: 24}\nnodes: [{name: a, host: 1.1.1.1}]\n");
        i.nodes[0].subnet = Some("10.0.255.0/24".parse().unwrap());
        let e = assign(&i, None).unwrap_err();
        assert!(matches!(e, Error::PinnedSubnet { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "node `a` is pinned to `10.0.255.0/24`, which is not a usable /24 block of cluster.cidr `10.0.0.0/16` \
             (outside it, or in switch_cidr or an excluded block)"
        );
    }

    #[test]
    fn a_lock_problem_names_the_file_the_lock_came_from() {
        let a = inv("cluster: {cidr: 10.0.0.0/8}\nnodes: [{name: a, host: 1.1.1.1}]\n");
        let mut lock = assign(&a, None).unwrap();
        let b = inv("cluster: {cidr: 10.0.0.0/9}\nnodes: [{name: a, host: 1.1.1.1}]\n");
        assert!(assign(&b, Some(&lock)).unwrap_err().to_string().starts_with("the lock: made for cidr"));
        lock.origin = Some("dir/v.lock".into());
        assert!(assign(&b, Some(&lock)).unwrap_err().to_string().starts_with("dir/v.lock: made for cidr"));
    }

    #[test]
    fn allocation_jumps_reserved_ranges_instead_of_walking_blocks() {
        // Two million /30 blocks lie in the excluded half before the first free one; walking them one by one
        // with a check per reserved range is what made large clusters slow. How fast is benches/plan.rs's to
        // measure; a time asserted here would fail on a busy machine, not on slow code.
        let i = inv(
            "cluster: {cidr: 10.0.0.0/8, node_prefix: 30, exclude: [10.0.0.0/9]}\nnodes: [{name: a, host: 1.1.1.1}, {name: b, host: 1.1.1.2}]\n",
        );
        let l = assign(&i, None).unwrap();
        assert_eq!(l.nodes["a"].subnet.to_string(), "10.128.0.0/30");
        assert_eq!(l.nodes["b"].subnet.to_string(), "10.128.0.4/30");
    }
}
