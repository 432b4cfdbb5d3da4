//! Property tests: the address plan never overlaps and never renumbers; the diff always converges.

use std::collections::BTreeSet;
use std::path::Path;

use ipnet::Ipv4Net;

use proptest::prelude::*;
use vxmesh::components::docker_network::DockerNetworkFacts;
use vxmesh::components::firewall::FirewalldFacts;
use vxmesh::components::ovs::OvsFacts;
use vxmesh::converge;
use vxmesh::facts::HostFacts;
use vxmesh::model::inventory::{self, overlaps};
use vxmesh::model::ipam::{self, Lock};

use crate::simulate;
use crate::util::{plan_of, read_fixture};

fn inventory_yaml(cidr: &str, prefix: u8, names: &[String]) -> String {
    let mut y = format!("cluster:\n  cidr: {cidr}\n  node_prefix: {prefix}\nnodes:\n");
    for (i, n) in names.iter().enumerate() {
        y.push_str(&format!("  - {{name: {n}, host: 192.0.{}.{}}}\n", i / 250, i % 250 + 1));
    }
    y
}

fn names(max: usize) -> impl Strategy<Value = Vec<String>> {
    prop::collection::btree_set("[a-z][a-z0-9]{0,7}", 1..max).prop_map(|s| s.into_iter().collect())
}

fn alloc(yaml: &str, prev: Option<&Lock>) -> Result<Lock, String> {
    let inv = inventory::parse(Path::new("p.yaml"), yaml).map_err(|e| e.to_string())?;
    ipam::assign(&inv, prev).map_err(|e| e.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn allocations_never_overlap(ns in names(40), prefix in 22u8..=26) {
        let lock = alloc(&inventory_yaml("10.0.0.0/16", prefix, &ns), None).unwrap();
        let subnets: Vec<_> = lock.nodes.values().map(|a| a.subnet).collect();
        for (i, a) in subnets.iter().enumerate() {
            prop_assert!(!overlaps(a, &lock.switch_cidr), "{a} overlaps the switch range");
            for b in &subnets[i + 1..] {
                prop_assert!(!overlaps(a, b), "{a} overlaps {b}");
            }
        }
        let ips: BTreeSet<_> = lock.nodes.values().map(|a| a.switch_ip).collect();
        prop_assert_eq!(ips.len(), ns.len());
        prop_assert!(ips.iter().all(|ip| lock.switch_cidr.contains(ip) && *ip != lock.switch_cidr.network() && *ip != lock.switch_cidr.broadcast()));
    }

    #[test]
    fn existing_nodes_keep_their_addresses(
        first in names(30),
        added in names(10),
        removed in prop::collection::vec(any::<prop::sample::Index>(), 0..5),
        shuffle in any::<u64>(),
    ) {
        let before = alloc(&inventory_yaml("10.0.0.0/16", 24, &first), None).unwrap();
        let gone: BTreeSet<String> = removed.iter().map(|i| first[i.index(first.len())].clone()).collect();
        let mut next: Vec<String> = first.iter().filter(|n| !gone.contains(*n)).cloned().collect();
        next.extend(added.into_iter().filter(|n| !first.contains(n)));
        // Reorder deterministically from the seed.
        let len = next.len();
        for i in 0..len {
            next.swap(i, (shuffle as usize).wrapping_add(i * 7919) % len.max(1));
        }
        prop_assume!(!next.is_empty());
        let after = alloc(&inventory_yaml("10.0.0.0/16", 24, &next), Some(&before)).unwrap();
        for n in &next {
            if let Some(old) = before.nodes.get(n) {
                prop_assert_eq!(&after.nodes[n], old, "node {} was renumbered", n);
            }
        }
        prop_assert_eq!(after.nodes.len(), next.len());
    }

    #[test]
    fn too_many_nodes_is_an_error_never_a_panic(count in 1usize..80, prefix in 26u8..=29) {
        let ns: Vec<String> = (0..count).map(|i| format!("n{i}")).collect();
        let yaml = inventory_yaml("10.9.0.0/24", prefix, &ns);
        let room = (1usize << (prefix - 24)) - 1; // the last block is the switch range
        let switch_room = (1usize << (32 - prefix)) - 2;
        match alloc(&yaml, None) {
            Ok(lock) => prop_assert!(count <= room.min(switch_room) && lock.nodes.len() == count),
            Err(e) => prop_assert!(count > room.min(switch_room) && e.contains("has room for"), "{e}"),
        }
    }
}

/// What happens to the inventory between two runs of vxmesh.
#[derive(Debug, Clone)]
enum Change {
    Add(String),
    Remove(prop::sample::Index),
    /// Rotate the list: order must never matter.
    Reorder(prop::sample::Index),
    /// Pin a node (new or old) to a block nothing holds yet.
    Pin(prop::sample::Index, prop::sample::Index),
    Unpin(prop::sample::Index),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        3 => "[a-z][a-z0-9]{0,5}".prop_map(Change::Add),
        2 => any::<prop::sample::Index>().prop_map(Change::Remove),
        1 => any::<prop::sample::Index>().prop_map(Change::Reorder),
        2 => (any::<prop::sample::Index>(), any::<prop::sample::Index>()).prop_map(|(n, b)| Change::Pin(n, b)),
        1 => any::<prop::sample::Index>().prop_map(Change::Unpin),
    ]
}

/// A /16 of /24s with the switch range and two excluded blocks in the middle, so free space has holes.
const SHAPE: &str =
    "  cidr: 10.0.0.0/16\n  node_prefix: 24\n  switch_cidr: 10.0.200.0/24\n  exclude: [10.0.8.0/22, 10.0.17.0/24]\n";

fn reserved() -> Vec<Ipv4Net> {
    ["10.0.200.0/24", "10.0.8.0/22", "10.0.17.0/24"].iter().map(|s| s.parse().unwrap()).collect()
}

/// The inventory: names in list order, each with its pinned subnet if any.
fn pinned_yaml(nodes: &[(String, Option<Ipv4Net>)]) -> String {
    let mut y = format!("cluster:\n{SHAPE}nodes:\n");
    for (i, (n, pin)) in nodes.iter().enumerate() {
        let pin = pin.map(|p| format!(", subnet: {p}")).unwrap_or_default();
        y.push_str(&format!("  - {{name: {n}, host: 192.0.{}.{}{pin}}}\n", i / 250, i % 250 + 1));
    }
    y
}

/// Blocks of the cluster no reserved range touches, that neither the lock nor a pin holds.
fn free_blocks(lock: &Lock, nodes: &[(String, Option<Ipv4Net>)]) -> Vec<Ipv4Net> {
    let held: BTreeSet<Ipv4Net> =
        lock.nodes.values().map(|a| a.subnet).chain(nodes.iter().filter_map(|(_, p)| *p)).collect();
    let cidr: Ipv4Net = "10.0.0.0/16".parse().unwrap();
    cidr.subnets(24).unwrap().filter(|b| !held.contains(b) && !reserved().iter().any(|r| overlaps(b, r))).collect()
}

fn apply_change(nodes: &mut Vec<(String, Option<Ipv4Net>)>, c: &Change, lock: &Lock) {
    match c {
        Change::Add(n) if !nodes.iter().any(|(m, _)| m == n) => nodes.push((n.clone(), None)),
        Change::Add(_) => {}
        Change::Remove(i) if nodes.len() > 1 => {
            nodes.remove(i.index(nodes.len()));
        }
        Change::Remove(_) => {}
        Change::Reorder(i) => {
            let k = i.index(nodes.len());
            nodes.rotate_left(k);
        }
        Change::Pin(n, b) => {
            let free = free_blocks(lock, nodes);
            let k = n.index(nodes.len());
            nodes[k].1 = Some(free[b.index(free.len())]);
        }
        Change::Unpin(i) => {
            let k = i.index(nodes.len());
            nodes[k].1 = None;
        }
    }
}

/// Everything a lock must hold whatever came before it.
fn check_lock(lock: &Lock, nodes: &[(String, Option<Ipv4Net>)]) -> Result<(), TestCaseError> {
    let names: BTreeSet<&str> = nodes.iter().map(|(n, _)| n.as_str()).collect();
    prop_assert_eq!(lock.nodes.keys().map(String::as_str).collect::<BTreeSet<_>>(), names);
    let all: Vec<(&String, &ipam::Allocation)> = lock.nodes.iter().collect();
    for (i, (n, a)) in all.iter().enumerate() {
        prop_assert!(a.subnet.prefix_len() == 24 && lock.cidr.contains(&a.subnet), "{n}: {}", a.subnet);
        for r in reserved() {
            prop_assert!(!overlaps(&a.subnet, &r), "{n}: {} overlaps the reserved {r}", a.subnet);
        }
        prop_assert!(lock.switch_cidr.contains(&a.switch_ip) && a.switch_ip != lock.switch_cidr.network());
        for (m, b) in &all[i + 1..] {
            prop_assert!(!overlaps(&a.subnet, &b.subnet), "{n} and {m} share {}", a.subnet);
            prop_assert!(a.id != b.id && a.switch_ip != b.switch_ip, "{n} and {m} share switch id {}", a.id);
        }
    }
    for (n, pin) in nodes {
        if let Some(p) = pin {
            prop_assert_eq!(lock.nodes[n].subnet, *p, "{} is pinned", n);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Run after run on top of the lock, whatever is added, removed, reordered or pinned: no two nodes share a
    /// block or a switch address, nothing lands in the switch range or an excluded block, and every node already
    /// in the lock keeps its block and address (unless the inventory pins it elsewhere).
    #[test]
    fn allocations_on_an_existing_lock_stay_disjoint_and_stable(
        first in names(20),
        runs in prop::collection::vec(prop::collection::vec(change(), 1..6), 1..6),
    ) {
        let mut nodes: Vec<(String, Option<Ipv4Net>)> = first.into_iter().map(|n| (n, None)).collect();
        let mut lock = alloc(&pinned_yaml(&nodes), None).unwrap();
        check_lock(&lock, &nodes)?;
        for changes in &runs {
            for c in changes {
                apply_change(&mut nodes, c, &lock);
            }
            let next = alloc(&pinned_yaml(&nodes), Some(&lock)).map_err(|e| TestCaseError::fail(format!("{e}\n{}", pinned_yaml(&nodes))))?;
            check_lock(&next, &nodes)?;
            for (n, pin) in &nodes {
                if let Some(old) = lock.nodes.get(n) {
                    let moved_by_pin = pin.is_some_and(|p| p != old.subnet);
                    prop_assert_eq!(next.nodes[n].id, old.id, "{} got another switch id", n);
                    prop_assert!(moved_by_pin || next.nodes[n] == *old, "{} was renumbered: {:?} -> {:?}", n, old, next.nodes[n]);
                }
            }
            lock = next;
        }
    }
}

/// A CIDR anywhere in IPv4, of any length, or near 10/8 where layouts tend to be valid.
fn any_net() -> impl Strategy<Value = Ipv4Net> {
    prop_oneof![
        (any::<u32>(), 0u8..=32).prop_map(|(a, p)| Ipv4Net::new(a.into(), p).unwrap().trunc()),
        (0u32..1 << 24, 8u8..=30).prop_map(|(a, p)| Ipv4Net::new((10 << 24 | a).into(), p).unwrap().trunc()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Whatever the layout (a /0 cut into /30s, a /32, special ranges, switch and excludes anywhere), the
    /// inventory is refused with file:line:col messages or allocated without overlap: never a panic, and
    /// never the minutes that walking every block took.
    #[test]
    fn any_layout_is_refused_or_allocated_never_a_panic(
        cidr in any_net(),
        node_prefix in prop::option::of(0i64..=33),
        switch in prop::option::of(any_net()),
        exclude in prop::option::of(prop::collection::vec(any_net(), 0..3)),
        mode in prop::sample::select(vec!["network", "docker0", "none"]),
        underlays in prop::collection::vec(any::<u32>(), 1..5),
    ) {
        let mut y = format!("cluster:\n  cidr: {cidr}\n  docker: {{mode: {mode}}}\n");
        if let Some(np) = node_prefix {
            y.push_str(&format!("  node_prefix: {np}\n"));
        }
        if let Some(s) = switch {
            y.push_str(&format!("  switch_cidr: {s}\n"));
        }
        if let Some(ex) = exclude {
            y.push_str(&format!("  exclude: [{}]\n", ex.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", ")));
        }
        y.push_str("nodes:\n");
        for (i, u) in underlays.iter().enumerate() {
            y.push_str(&format!("  - {{name: n{i}, host: {}}}\n", std::net::Ipv4Addr::from(*u)));
        }
        match inventory::parse(Path::new("p.yaml"), &y) {
            Err(e) => {
                let e = e.to_string();
                prop_assert!(e.lines().all(|l| l.starts_with("p.yaml:")), "{}", e);
            }
            Ok(inv) => {
                if let Ok(lock) = ipam::assign(&inv, None) {
                    let subnets: Vec<_> = lock.nodes.values().map(|a| a.subnet).collect();
                    for (i, a) in subnets.iter().enumerate() {
                        prop_assert!(inv.cluster.cidr.contains(a) && !overlaps(a, &inv.cluster.switch_cidr), "{a}\n{y}");
                        prop_assert!(subnets[i + 1..].iter().all(|b| !overlaps(a, b)), "{a}\n{y}");
                    }
                }
            }
        }
    }
}

/// A host address: anywhere in IPv4, or near the ranges the layouts below use, where collisions happen.
fn any_address() -> impl Strategy<Value = std::net::Ipv4Addr> {
    prop_oneof![
        any::<u32>().prop_map(std::net::Ipv4Addr::from),
        (0u32..1 << 16).prop_map(|a| std::net::Ipv4Addr::from(10 << 24 | a)),
        (0u32..1 << 17).prop_map(|a| std::net::Ipv4Addr::from(0xac10_0000 | a)),
        (0u32..1 << 16).prop_map(|a| std::net::Ipv4Addr::from(0xc613_0000 | a)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// For any inventory the validator accepts, no two vxmesh ranges overlap (the switch range lies inside the
    /// cluster by design, apart from every node subnet; the WireGuard range, when used, apart from both and from
    /// docker0's range where docker keeps it), and no range covers an address a host is reached or tunnelled at.
    #[test]
    fn accepted_inventories_keep_ranges_apart_and_hosts_outside(
        cidr in prop::sample::select(vec!["10.0.0.0/8", "10.0.0.0/16", "172.16.0.0/12", "172.17.0.0/16", "198.18.0.0/15"]),
        switch in prop::option::of(any_net()),
        wireguard in prop::option::of(prop_oneof![any_net(), Just("172.17.0.0/16".parse::<Ipv4Net>().unwrap())]),
        encrypted in any::<bool>(),
        mode in prop::sample::select(vec!["network", "docker0", "none"]),
        hosts in prop::collection::vec((any_address(), prop::option::of(any_address())), 1..5),
    ) {
        let mut y = format!("cluster:\n  cidr: {cidr}\n  docker: {{mode: {mode}}}\n");
        if let Some(s) = switch {
            y.push_str(&format!("  switch_cidr: {s}\n"));
        }
        if encrypted {
            y.push_str("  encryption: wireguard\n");
        }
        if let Some(w) = wireguard {
            y.push_str(&format!("  wireguard: {{cidr: {w}}}\n"));
        }
        y.push_str("nodes:\n");
        for (i, (host, underlay)) in hosts.iter().enumerate() {
            let underlay = underlay.map(|u| format!(", underlay_ip: {u}")).unwrap_or_default();
            y.push_str(&format!("  - {{name: n{i}, host: {host}{underlay}}}\n"));
        }
        let Ok(inv) = inventory::parse(Path::new("p.yaml"), &y) else { return Ok(()) };
        let c = &inv.cluster;
        prop_assert!(c.cidr.contains(&c.switch_cidr), "switch range outside the cluster\n{y}");
        let mut ranges = vec![("cidr", c.cidr), ("switch_cidr", c.switch_cidr)];
        let docker0: Ipv4Net = "172.17.0.0/16".parse().unwrap();
        if c.encryption == inventory::Encryption::Wireguard {
            let w = c.wireguard.cidr;
            prop_assert!(!overlaps(&w, &c.cidr), "wireguard {w} overlaps the cluster\n{y}");
            prop_assert!(mode == "docker0" || !overlaps(&w, &docker0), "wireguard {w} overlaps docker0\n{y}");
            ranges.push(("wireguard.cidr", w));
        }
        let mut addresses: Vec<std::net::Ipv4Addr> = inv
            .nodes
            .iter()
            .filter_map(|n| match n.underlay {
                std::net::IpAddr::V4(v) => Some(v),
                std::net::IpAddr::V6(_) => None,
            })
            .collect();
        addresses.extend(inv.nodes.iter().filter_map(|n| n.host.parse::<std::net::Ipv4Addr>().ok()));
        for (what, r) in &ranges {
            for a in &addresses {
                prop_assert!(!r.contains(a), "{what} {r} covers the host address {a}\n{y}");
            }
        }
        let lock = ipam::assign(&inv, None).map_err(|e| TestCaseError::fail(format!("{e}\n{y}")))?;
        let subnets: Vec<Ipv4Net> = lock.nodes.values().map(|a| a.subnet).collect();
        for (i, a) in subnets.iter().enumerate() {
            prop_assert!(!overlaps(a, &c.switch_cidr), "{a} overlaps the switch range\n{y}");
            prop_assert!(subnets[i + 1..].iter().all(|b| !overlaps(a, b)), "{a}\n{y}");
            prop_assert!(mode == "docker0" || !overlaps(a, &docker0), "{a} is docker0's range\n{y}");
        }
    }
}

/// Ways a host drifts from the plan, applied in sequence to a converged host.
#[derive(Debug, Clone)]
enum Drift {
    DropLink(usize),
    LinkDown(usize),
    DropPort(usize),
    RetargetTunnel(usize, u8),
    Unprotect(usize),
    DropBridge,
    DockerGone,
    DockerSubnet,
    DropChain(usize),
    ForeignRuleFirst(usize),
    Sysctl(usize),
    OffloadOn(usize),
    StaleTunnel,
    ExtraAddress,
    Unenslave,
    ForeignFirewalldRule,
}

const LINKS: [&str; 3] = ["vxm-sw0", "vxm-dkr", "sw0"];
const CHAINS: [(&str, &str, &str); 3] = [
    ("nat", "VXMESH-NAT", "POSTROUTING"),
    ("filter", "VXMESH-FWD", "DOCKER-USER"),
    ("filter", "VXMESH-VXLAN", "INPUT"),
];

fn drift() -> impl Strategy<Value = Drift> {
    prop_oneof![
        (0..3usize).prop_map(Drift::DropLink),
        (0..3usize).prop_map(Drift::LinkDown),
        (0..4usize).prop_map(Drift::DropPort),
        (0..4usize, any::<u8>()).prop_map(|(i, b)| Drift::RetargetTunnel(i, b)),
        (0..4usize).prop_map(Drift::Unprotect),
        Just(Drift::DropBridge),
        Just(Drift::DockerGone),
        Just(Drift::DockerSubnet),
        (0..3usize).prop_map(Drift::DropChain),
        (0..3usize).prop_map(Drift::ForeignRuleFirst),
        (0..3usize).prop_map(Drift::Sysctl),
        (0..2usize).prop_map(Drift::OffloadOn),
        Just(Drift::StaleTunnel),
        Just(Drift::ExtraAddress),
        Just(Drift::Unenslave),
        Just(Drift::ForeignFirewalldRule),
    ]
}

fn apply_drift(f: &mut HostFacts, d: &Drift) {
    let ports: Vec<String> = f.part_mut::<OvsFacts>().bridges.get("sw0").map(|b| b.ports.clone()).unwrap_or_default();
    let pick = |i: usize| ports.get(i % ports.len().max(1)).cloned();
    match d {
        Drift::DropLink(i) => {
            f.links.remove(LINKS[*i]);
        }
        Drift::LinkDown(i) => {
            if let Some(l) = f.links.get_mut(LINKS[*i]) {
                l.up = false;
            }
        }
        Drift::DropPort(i) => {
            if let (Some(p), Some(b)) = (pick(*i), f.part_mut::<OvsFacts>().bridges.get_mut("sw0")) {
                b.ports.retain(|x| *x != p);
            }
        }
        Drift::RetargetTunnel(i, b) => {
            if let Some(iface) = pick(*i).and_then(|p| f.part_mut::<OvsFacts>().interfaces.get_mut(&p)) {
                iface.options.insert("remote_ip".into(), format!("192.0.2.{b}"));
            }
        }
        Drift::Unprotect(i) => {
            if let Some(port) = pick(*i).and_then(|p| f.part_mut::<OvsFacts>().ports.get_mut(&p)) {
                port.protected = false;
            }
        }
        Drift::DropBridge => {
            f.part_mut::<OvsFacts>().bridges.remove("sw0");
        }
        Drift::DockerGone => f.set_part(DockerNetworkFacts(None)),
        Drift::DockerSubnet => {
            if let Some(n) = f.part_mut::<DockerNetworkFacts>().0.as_mut() {
                n.subnet = Some("172.99.0.0/16".into());
            }
        }
        Drift::DropChain(i) => {
            let (t, c, _) = CHAINS[*i];
            if let Some(t) = f.iptables.tables.get_mut(t) {
                t.remove(c);
            }
        }
        Drift::ForeignRuleFirst(i) => {
            let (t, _, parent) = CHAINS[*i];
            f.iptables
                .tables
                .entry(t.into())
                .or_default()
                .entry(parent.into())
                .or_default()
                .insert(0, "-j DOCKER-USER".into());
        }
        Drift::Sysctl(i) => {
            let k = ["net.ipv4.ip_forward", "net.ipv4.conf.sw0.rp_filter", "net.ipv4.conf.br-vxmesh.rp_filter"][*i];
            f.sysctls.insert(k.into(), "0".into());
        }
        Drift::OffloadOn(i) => {
            f.tx_offload.insert(LINKS[*i].into(), true);
        }
        Drift::StaleTunnel => {
            if let Some(b) = f.part_mut::<OvsFacts>().bridges.get_mut("sw0") {
                b.ports.push("vx-gone".into());
            }
        }
        Drift::ExtraAddress => {
            if let Some(l) = f.links.get_mut("sw0") {
                l.addrs.push("172.30.0.77/12".parse().unwrap());
            }
        }
        Drift::Unenslave => {
            if let Some(l) = f.links.get_mut("vxm-dkr") {
                l.master = None;
            }
        }
        Drift::ForeignFirewalldRule => f
            .part_mut::<FirewalldFacts>()
            .rich_rules
            .push(r#"rule family="ipv4" source address="192.0.2.9" port port="4789" protocol="udp" accept"#.into()),
    }
}

fn variant_yaml(firewall: &str, mode: &str, nat: bool) -> String {
    read_fixture("three-nodes.yaml")
        .replace("firewall: iptables", &format!("firewall: {firewall}\n  nat: {nat}\n  docker: {{mode: {mode}}}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Apply the steps' effect to the facts, diff again: nothing is left (and a second pass changes nothing).
    #[test]
    fn diff_converges_from_any_drift(
        drifts in prop::collection::vec(drift(), 0..8),
        firewall in prop::sample::select(vec!["iptables", "nftables", "firewalld", "none"]),
        mode in prop::sample::select(vec!["network", "docker0"]),
        nat in any::<bool>(),
    ) {
        let (_, plan) = plan_of(&variant_yaml(firewall, mode, nat));
        let node = plan.node("vm1").unwrap();
        let mut facts = converge::parse_for(node, &read_fixture("facts/converged-host.txt")).unwrap();
        facts.part_mut::<FirewalldFacts>().running = firewall == "firewalld";
        for d in &drifts {
            apply_drift(&mut facts, d);
        }
        let steps = converge::diff(node, &facts);
        for s in &steps {
            simulate::apply(&mut facts, s);
        }
        let again = converge::diff(node, &facts);
        prop_assert!(again.is_empty(), "after {:?}\nfirst pass: {:#?}\nstill needed: {:#?}", drifts, steps.iter().map(|s| &s.description).collect::<Vec<_>>(), again);
    }
}

/// Ways an encrypted host drifts: its interface gone or down, a peer gone, holding another key or endpoint, a
/// stranger's peer, the fail-closed route gone, the key file gone.
#[derive(Debug, Clone)]
enum WgDrift {
    DeviceGone,
    Down,
    PeerGone(usize),
    PeerKey(usize),
    PeerEndpoint(usize),
    StrangePeer,
    GuardGone,
    KeyGone,
}

fn wg_drift() -> impl Strategy<Value = WgDrift> {
    prop_oneof![
        Just(WgDrift::DeviceGone),
        Just(WgDrift::Down),
        (0..2usize).prop_map(WgDrift::PeerGone),
        (0..2usize).prop_map(WgDrift::PeerKey),
        (0..2usize).prop_map(WgDrift::PeerEndpoint),
        Just(WgDrift::StrangePeer),
        Just(WgDrift::GuardGone),
        Just(WgDrift::KeyGone),
    ]
}

fn apply_wg_drift(f: &mut HostFacts, d: &WgDrift) {
    use vxmesh::components::wireguard::{WgPeerState, WireguardFacts};
    if matches!(d, WgDrift::DeviceGone) {
        f.links.remove("vxm-wg");
    }
    if matches!(d, WgDrift::Down)
        && let Some(l) = f.links.get_mut("vxm-wg")
    {
        l.up = false;
    }
    let w = f.part_mut::<WireguardFacts>();
    let peers = w.device.as_mut().map(|d| &mut d.peers);
    match (d, peers) {
        (WgDrift::DeviceGone, _) => w.device = None,
        (WgDrift::PeerGone(i), Some(p)) if !p.is_empty() => {
            let i = *i % p.len();
            p.remove(i);
        }
        (WgDrift::PeerKey(i), Some(p)) if !p.is_empty() => {
            let i = *i % p.len();
            p[i].public_key = "b3RoZXIga2V5IG9mIDMyIGJ5dGVzIGZvciBhIHBlZXI=".into();
        }
        (WgDrift::PeerEndpoint(i), Some(p)) if !p.is_empty() => {
            let i = *i % p.len();
            p[i].endpoint = Some("192.0.2.99:51820".into());
        }
        (WgDrift::StrangePeer, Some(p)) => p.push(WgPeerState {
            public_key: "c3RyYW5nZXIncyBrZXkgb2YgMzIgYnl0ZXMgaGVyZSE=".into(),
            endpoint: None,
            allowed_ips: vec!["198.19.9.9/32".into()],
            latest_handshake: 0,
            keepalive: None,
        }),
        (WgDrift::GuardGone, _) => w.guards.clear(),
        (WgDrift::KeyGone, _) => w.public_key = None,
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// The same with encryption: from a host that never had it, then after any drift of what it built, the diff
    /// converges in one pass, and peers end with exactly the planned keys.
    #[test]
    fn encrypted_diff_converges_from_any_drift(
        drifts in prop::collection::vec(wg_drift(), 0..6),
        firewall in prop::sample::select(vec!["iptables", "nftables", "none"]),
    ) {
        let yaml = read_fixture("three-nodes.yaml")
            .replace("datapath: netdev", "datapath: system\n  encryption: wireguard")
            .replace("firewall: iptables", &format!("firewall: {firewall}"));
        let (_, plan) = plan_of(&yaml);
        let keys: std::collections::BTreeMap<String, String> = [
            ("vm2", "dm0yJ3MgcHVibGljIGtleSBvZiAzMiBieXRlcywgb2sh"),
            ("vm3", "dm0zJ3MgcHVibGljIGtleSBvZiAzMiBieXRlcywgb2sh"),
        ]
        .into_iter()
        .map(|(n, k)| (n.to_string(), k.to_string()))
        .collect();
        let plan = plan.with_public_keys(&keys);
        let node = plan.node("vm1").unwrap();
        let mut facts = converge::parse_for(node, &read_fixture("facts/converged-host.txt")).unwrap();
        for s in converge::diff(node, &facts) {
            simulate::apply(&mut facts, &s);
        }
        prop_assert!(converge::diff(node, &facts).is_empty(), "encryption did not converge from scratch");
        for d in &drifts {
            apply_wg_drift(&mut facts, d);
        }
        let steps = converge::diff(node, &facts);
        for s in &steps {
            simulate::apply(&mut facts, s);
        }
        let again = converge::diff(node, &facts);
        prop_assert!(again.is_empty(), "after {:?}\nfirst pass: {:#?}\nstill needed: {:#?}", drifts, steps.iter().map(|s| &s.description).collect::<Vec<_>>(), again);
        let w = facts.part::<vxmesh::components::wireguard::WireguardFacts>().unwrap();
        let mut have: Vec<&str> = w.device.as_ref().unwrap().peers.iter().map(|p| p.public_key.as_str()).collect();
        have.sort();
        prop_assert_eq!(have, keys.values().map(String::as_str).collect::<Vec<_>>());
    }
}

#[test]
fn converged_fixture_is_converged_for_the_simulator_too() {
    let (_, plan) = plan_of(&read_fixture("three-nodes.yaml"));
    let node = plan.node("vm1").unwrap();
    let facts: HostFacts = converge::parse_for(node, &read_fixture("facts/converged-host.txt")).unwrap();
    assert!(converge::diff(node, &facts).is_empty());
}
