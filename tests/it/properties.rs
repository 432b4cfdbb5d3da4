//! Property tests: the address plan never overlaps and never renumbers; the diff always converges.

use std::collections::BTreeSet;
use std::path::Path;

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
    ipam::allocate(&inv, prev, Path::new("p.lock")).map_err(|e| e.to_string())
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

#[test]
fn converged_fixture_is_converged_for_the_simulator_too() {
    let (_, plan) = plan_of(&read_fixture("three-nodes.yaml"));
    let node = plan.node("vm1").unwrap();
    let facts: HostFacts = converge::parse_for(node, &read_fixture("facts/converged-host.txt")).unwrap();
    assert!(converge::diff(node, &facts).is_empty());
}
