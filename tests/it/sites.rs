//! Fleets across sites: the path of each pair (private, public, through a relay) as `plan` shows it, the offline
//! refusal of hosts behind NAT without WireGuard, and, on the lab (module `lab`, root), the issue's 5-host,
//! 4-site fleet behind 1:1 NAT and masquerade routers proven with captures on the WAN and the sites.

use std::path::Path;

use crate::util::{TempDir, vxmesh};

/// The issue's fleet: dc1 (two hosts, 1:1 NAT), dc2 (one, 1:1 NAT), two homes each behind its own masquerade.
fn fleet(encryption: &str) -> String {
    format!(
        "cluster:\n  cidr: 172.16.0.0/12\n  encryption: {encryption}\n  firewall: iptables\nnodes:\n\
         \x20 - {{name: a1, host: 192.0.2.1, underlay_ip: 10.77.1.11, site: dc1, public_ip: 198.51.100.101, backend: linux}}\n\
         \x20 - {{name: a2, host: 192.0.2.2, underlay_ip: 10.77.1.12, site: dc1, public_ip: 198.51.100.102, backend: linux}}\n\
         \x20 - {{name: b1, host: 192.0.2.3, underlay_ip: 10.77.2.13, site: dc2, public_ip: 198.51.100.103, backend: linux}}\n\
         \x20 - {{name: h1, host: 192.0.2.4, underlay_ip: 10.77.3.14, site: home1, backend: linux}}\n\
         \x20 - {{name: h2, host: 192.0.2.5, underlay_ip: 10.77.4.15, site: home2, backend: linux}}\n"
    )
}

fn write(dir: &Path, text: &str) -> String {
    let path = dir.join("vxmesh.yaml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn without_wireguard_the_natted_hosts_are_refused_offline_by_name() {
    let dir = TempDir::new("sites-none");
    let inv = write(&dir.0, &fleet("none"));
    let r = vxmesh(&dir.0, &["plan", "--offline", "-i", &inv]);
    assert_eq!(r.code, 1, "{r}");
    for (line, host, peers) in [(9, "h1", "a1, a2, b1, h2"), (10, "h2", "a1, a2, b1, h1")] {
        let want = format!(
            "vxmesh.yaml:{line}:5: nodes[{host}]: site `home{}` without public_ip is behind NAT for {peers} (other \
             sites), and cluster.encryption is `none`",
            &host[1..]
        );
        assert!(r.stderr.contains(&want), "expected `{want}`:\n{r}");
    }
    assert_eq!(r.stderr.lines().count(), 2, "the hosts with a public address are not named: {r}");
}

#[test]
fn plan_shows_each_ordered_pair_s_path() {
    let dir = TempDir::new("sites-plan");
    let inv = write(&dir.0, &fleet("wireguard"));
    let r = vxmesh(&dir.0, &["plan", "--offline", "-i", &inv]);
    assert_eq!(r.code, 0, "{r}");
    for row in [
        "a1 -> a2  private",
        "a1 -> b1  public",
        "a1 -> h1  public (h1 starts)",
        "h1 -> a1  public (h1 starts)",
        "h1 -> h2  relay via a1",
        "h2 -> h1  relay via a1",
    ] {
        assert!(r.stdout.contains(row), "`{row}` missing:\n{}", &r.stdout[..r.stdout.len().min(3000)]);
    }
    let r = vxmesh(&dir.0, &["plan", "--offline", "-i", &inv, "--json"]);
    assert_eq!(r.code, 0, "{r}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let paths = v["paths"].as_array().unwrap_or_else(|| panic!("no `paths`: {r}"));
    assert_eq!(paths.len(), 20, "every ordered pair of 5 hosts");
    let relay = paths.iter().find(|p| p["from"] == "h2" && p["to"] == "h1").unwrap();
    assert_eq!(relay["path"], serde_json::json!({"kind": "relay", "via": "a1"}), "{relay}");
}

#[test]
fn a_flat_inventory_shows_no_path_table() {
    let dir = TempDir::new("sites-flat");
    let inv = write(
        &dir.0,
        "cluster: {cidr: 172.16.0.0/12}\nnodes: [{name: a, host: 192.0.2.1}, {name: b, host: 192.0.2.2}]\n",
    );
    let r = vxmesh(&dir.0, &["plan", "--offline", "-i", &inv, "--json"]);
    assert_eq!(r.code, 0, "{r}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(v.get("paths").is_none(), "a flat fleet plans as before sites existed: {r}");
}

/// Each node's plan follows the pair's path: VXLAN to the address on it, WireGuard endpoints only where the peer
/// can be reached, the relayed addresses on the relay's entry, the firewall open only where a peer is NATed, and
/// forwarding on the relay only between the pairs it relays for.
#[test]
fn tunnels_wireguard_and_firewall_follow_the_paths() {
    use std::collections::BTreeMap;
    use vxmesh::converge;
    use vxmesh::facts::HostFacts;

    // In clear, across 1:1 NAT: private inside dc1, public across.
    let clear = fleet("none").lines().filter(|l| !l.contains("name: h")).collect::<Vec<_>>().join("\n");
    let (_, plan) = crate::util::plan_of(&clear);
    let remote = |n: &str| -> Vec<String> {
        plan.node(n).unwrap().tunnels().map(|t| format!("{} {}", t.peer, t.remote_ip)).collect()
    };
    assert_eq!(remote("a1"), ["a2 10.77.1.12", "b1 198.51.100.103"]);
    assert_eq!(remote("b1"), ["a1 198.51.100.101", "a2 198.51.100.102"]);
    let sources: Vec<String> = plan.node("a1").unwrap().firewall_peers().map(|a| a.to_string()).collect();
    assert_eq!(sources, ["10.77.1.12", "198.51.100.103"], "VXLAN accepted from where the packets arrive from");

    let (_, plan) = crate::util::plan_of(&fleet("wireguard"));
    let keys: BTreeMap<String, String> = ["a1", "a2", "b1", "h1", "h2"]
        .iter()
        .enumerate()
        .map(|(i, n)| (n.to_string(), format!("{}{i}=", "K".repeat(43 - 1))))
        .collect();
    let plan = plan.with_public_keys(&keys);
    let node = |n: &str| plan.node(n).unwrap();
    let peers = |n: &str| -> Vec<String> {
        node(n)
            .wireguard_peers()
            .map(|p| format!("{} {:?} {} {:?}", p.name, p.endpoint.map(|e| e.to_string()), p.address, p.relayed))
            .collect()
    };
    assert_eq!(
        peers("h1"),
        [
            "a1 Some(\"198.51.100.101:51820\") 198.19.0.1 [198.19.0.5]",
            "a2 Some(\"198.51.100.102:51820\") 198.19.0.2 []",
            "b1 Some(\"198.51.100.103:51820\") 198.19.0.3 []",
        ],
        "h1 reaches h2 through a1, and has no entry of h2's own"
    );
    assert_eq!(
        peers("a1"),
        [
            "a2 Some(\"10.77.1.12:51820\") 198.19.0.2 []",
            "b1 Some(\"198.51.100.103:51820\") 198.19.0.3 []",
            "h1 None 198.19.0.4 []",
            "h2 None 198.19.0.5 []",
        ],
        "the relay's entries stay one address each; NATed peers have no endpoint"
    );
    assert!(node("a1").firewall_open() && !node("h1").firewall_open(), "open only where a peer is NATed");
    assert_eq!(node("a1").relay_pairs().len(), 2);
    assert!(node("a2").relay_pairs().is_empty());

    let script = |n: &str| converge::script(node(n), &converge::diff(node(n), &HostFacts::default()));
    let h1 = script("h1");
    assert!(h1.contains("endpoint 198.51.100.101:51820 allowed-ips 198.19.0.1/32,198.19.0.5/32"), "{h1}");
    let a1 = script("a1");
    let to_h1 = a1.lines().find(|l| l.contains("allowed-ips 198.19.0.4/32")).unwrap();
    assert!(!to_h1.contains("endpoint"), "no endpoint for a peer behind NAT: {to_h1}");
    for rule in [
        "-A VXMESH-FWD -s 198.19.0.4/32 -d 198.19.0.5/32 -i vxm-wg -o vxm-wg -m comment --comment vxmesh -j ACCEPT",
        "-A VXMESH-FWD -s 198.19.0.5/32 -d 198.19.0.4/32 -i vxm-wg -o vxm-wg -m comment --comment vxmesh -j ACCEPT",
        "-A VXMESH-FWD -i vxm-wg -o vxm-wg -m comment --comment vxmesh -j DROP",
        "-A VXMESH-WG -m comment --comment vxmesh -j ACCEPT",
    ] {
        assert!(a1.contains(rule), "a1 lacks `{rule}`:\n{a1}");
    }
    let a2 = script("a2");
    assert!(!a2.contains("-o vxm-wg"), "a2 relays nothing: {a2}");
    assert!(h1.contains("-A VXMESH-WG -m comment --comment vxmesh -j DROP"), "h1's peers all have addresses");
}

/// `mtu: auto` across sites: every host gets the smallest underlay's MTU minus the overhead, so full-size packets
/// pass between a 1500-byte host and a 1400-byte one; a fixed MTU stays as set.
#[test]
fn the_cluster_mtu_is_the_smallest_underlay_s() {
    use vxmesh::model::inventory::MtuSetting;
    let (_, plan) = crate::util::plan_of(&fleet("wireguard"));
    let least = plan.with_cluster_mtu([1500, 1400, 1500, 1500, 1500]);
    assert!(least.nodes.iter().all(|n| n.mtu == MtuSetting::Fixed(1400 - 110)), "{:?}", least.nodes[0].mtu);
    assert!(plan.with_cluster_mtu([]).nodes.iter().all(|n| n.mtu == MtuSetting::Auto), "nothing known: auto");
    let (_, fixed) = crate::util::plan_of(&fleet("wireguard").replace("  firewall:", "  mtu: 1300\n  firewall:"));
    let fixed = fixed.with_cluster_mtu([1400]);
    assert!(fixed.nodes.iter().all(|n| n.mtu == MtuSetting::Fixed(1300)), "a fixed MTU stays as set");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// On every node of any encrypted fleet that validates, WireGuard's allowed IPs over its peers are disjoint
    /// (WireGuard gives an address to one peer only) and cover every other node's WireGuard address exactly once:
    /// each peer is reached directly or through exactly one relay. Only relays forward, and only for NATed pairs.
    #[test]
    fn every_node_reaches_every_other_through_exactly_one_wireguard_peer(
        shape in proptest::collection::vec((0u8..4, proptest::bool::ANY), 2..8),
        relays in proptest::option::of(proptest::collection::vec(0usize..8, 1..3)),
    ) {
        let mut yaml = String::from("cluster:\n  cidr: 172.16.0.0/12\n  encryption: wireguard\n");
        if let Some(r) = &relays {
            let names: Vec<String> =
                r.iter().filter(|i| **i < shape.len()).map(|i| format!("n{i}")).collect();
            yaml += &format!("  wireguard: {{relays: [{}]}}\n", names.join(", "));
        }
        yaml += "nodes:\n";
        for (i, (site, public)) in shape.iter().enumerate() {
            let public = if *public { format!(", public_ip: 203.0.113.{}", i + 1) } else { String::new() };
            yaml += &format!("  - {{name: n{i}, host: 192.0.2.{}, site: s{site}{public}}}\n", i + 1);
        }
        // Fleets the inventory refuses (no relay for two NATed sites, a listed relay without a public address)
        // have no plan to check.
        let Ok(inv) = vxmesh::model::inventory::parse(Path::new("p.yaml"), &yaml) else { return Ok(()) };
        let lock = vxmesh::model::ipam::assign(&inv, None).unwrap();
        let plan = vxmesh::plan::plan(&inv, &lock);
        for n in &plan.nodes {
            let mut covered: Vec<std::net::Ipv4Addr> = vec![];
            for p in n.wireguard_peers() {
                covered.push(p.address);
                covered.extend(p.relayed.iter().copied());
            }
            let mut sorted = covered.clone();
            sorted.sort();
            sorted.dedup();
            proptest::prop_assert_eq!(sorted.len(), covered.len(), "{}: an address on two peers", n.name);
            // Encrypted: every node's tunnel address is its (IPv4) WireGuard address.
            let v4 = |ip: std::net::IpAddr| match ip {
                std::net::IpAddr::V4(v) => v,
                other => panic!("a WireGuard address is IPv4: {other}"),
            };
            let mut others: Vec<std::net::Ipv4Addr> =
                plan.nodes.iter().filter(|o| o.name != n.name).map(|o| v4(o.tunnel)).collect();
            others.sort();
            proptest::prop_assert_eq!(sorted, others, "{}: every other node once", n.name);
            let node_at = |ip: std::net::Ipv4Addr| {
                let name = &plan.nodes.iter().find(|o| o.tunnel == ip).unwrap().name;
                inv.node(name).unwrap()
            };
            for (a, b) in n.relay_pairs() {
                let (a, b) = (node_at(a), node_at(b));
                proptest::prop_assert!(inv.node(&n.name).unwrap().public_ip.is_some(), "{} relays", n.name);
                proptest::prop_assert!(a.public_ip.is_none() && b.public_ip.is_none() && a.site != b.site);
                proptest::prop_assert!(a.name != n.name && b.name != n.name, "never for itself");
            }
        }
    }
}

/// On the lab: root only, and named `sites::lab::…` so that `--skip lab::` leaves it out with the other labs.
mod lab {
    use std::path::Path;
    use std::process::Command;

    use crate::faults::json;
    use crate::labkit::{Capture, Lab, ssh};
    use crate::util::vxmesh;

    /// The lab's sites behave as clouds and offices do: 1:1 NAT both ways between sites, no hairpin, nothing
    /// into a masqueraded site, a smaller MTU where asked, SSH on the management network only; destroy leaves
    /// nothing of the routers, bridges or fences.
    #[test]
    fn sites_sit_behind_their_routers() {
        let Some(lab) = Lab::new("sites").light().sites("dc1:2,dc2:1@mtu1400,home:1@nat").create() else { return };
        let inv = std::fs::read_to_string(lab.inventory_path()).unwrap();
        for line in [
            "{name: node1, host: 192.168.",
            "underlay_ip: 10.77.1.11, site: dc1, public_ip: 198.51.100.101}",
            "underlay_ip: 10.77.3.14, site: home}",
            "encryption: wireguard",
        ] {
            assert!(inv.contains(line), "`{line}` missing:\n{inv}");
        }
        let mut dc1 = Capture::on_machine(lab.work(), &format!("vxl{}s1", lab.name));
        let pinged = ssh(&lab, "node3", "ping -c 2 -W 1 198.51.100.101 >/dev/null && echo ok");
        dc1.stop();
        assert_eq!(pinged.trim(), "ok");
        assert!(dc1.count("icmp and src 198.51.100.103 and dst 10.77.1.11") > 0, "1:1 NAT in both routers");
        let direct = ssh(&lab, "node2", "ping -c 1 -W 1 10.77.1.11 >/dev/null && echo ok");
        assert_eq!(direct.trim(), "ok", "site peers reach each other privately");
        let unreachable = ssh(&lab, "node1", "ping -c 1 -W 1 10.77.3.14 >/dev/null 2>&1 && echo reached || echo no");
        assert_eq!(unreachable.trim(), "no", "nothing reaches a masqueraded site");
        let home = ssh(&lab, "node4", "ping -c 1 -W 1 198.51.100.101 >/dev/null && echo ok");
        assert_eq!(home.trim(), "ok", "the home host reaches out");
        let mtu = ssh(&lab, "node3", "cat /sys/class/net/eth1/mtu; ip route show default");
        assert!(mtu.starts_with("1400\n") && mtu.contains("via 10.77.2.1 dev eth1"), "{mtu}");
        let name = lab.name.clone();
        drop(lab);
        assert!(vxmesh::lab::leftovers(&name).is_empty(), "{:?}", vxmesh::lab::leftovers(&name));
        let fences = Command::new("iptables").args(["-S", "FORWARD"]).output().unwrap();
        assert!(!String::from_utf8_lossy(&fences.stdout).contains(&format!("vxl{name}")), "fences removed");
    }

    /// The issue's proof, first part: 5 hosts in 4 sites (dc1: 2 behind 1:1 NAT, dc2: 1 behind 1:1 NAT with
    /// 1400-byte links, two homes each behind its own masquerade), encrypted, kernel backend: `up` proves every
    /// ordered pair container to container; the captures show where the tunnels run.
    #[test]
    fn the_issue_fleet_across_four_sites() {
        // `mtu: auto` (the lab's): every host gets the cluster's minimum, dc2's 1400-byte links minus 110 bytes of
        // VXLAN and WireGuard; with each host's own, full-size packets to dc2 were lost (16/20 pairs).
        let Some(lab) = Lab::new("sites").sites("dc1:2,dc2:1@mtu1400,home1:1@nat,home2:1@nat").create() else {
            return;
        };
        let (dir, inv) = (lab.work(), lab.inv());
        let name = &lab.name;

        // Without WireGuard the same fleet is refused before any host is touched, naming the NATed hosts.
        let plain = dir.join("plain.yaml");
        let text = std::fs::read_to_string(inv).unwrap().replace("encryption: wireguard", "encryption: none");
        std::fs::write(&plain, text).unwrap();
        let r = vxmesh(dir, &["up", "-i", plain.to_str().unwrap()]);
        assert_eq!(r.code, 1, "{r}");
        assert!(r.stderr.contains("nodes[node4]: site `home1` without public_ip is behind NAT"), "{r}");
        assert!(r.stderr.contains("nodes[node5]: site `home2` without public_ip is behind NAT"), "{r}");

        let mut wan = Capture::on_machine(dir, &format!("vxl{name}wan"));
        let mut dc1 = Capture::on_machine(dir, &format!("vxl{name}s1"));
        let r = vxmesh(dir, &["up", "-i", inv, "--json"]);
        wan.stop();
        dc1.stop();
        assert_eq!(r.code, 0, "{r}");
        let v = json(&r);
        let pairs = v["verify"]["pairs"].as_array().unwrap();
        assert_eq!(pairs.len(), 20, "{r}");
        for p in pairs {
            assert_eq!(p["ok"], true, "{p}");
            assert_eq!(p["seen_source"], p["client"], "no NAT between containers: {p}");
            assert_eq!(p["full_size"], true, "full-size DF packets at the cluster MTU: {p}");
        }
        let path = |from: &str, to: &str| {
            pairs.iter().find(|p| p["from"] == from && p["to"] == to).map(|p| p["path"].clone()).unwrap()
        };
        assert_eq!(path("node1", "node2"), "private", "{r}");
        assert_eq!(path("node1", "node3"), "public", "{r}");
        assert!(path("node4", "node5").as_str().unwrap().starts_with("relay via "), "{r}");
        for h in v["verify"]["hosts"].as_array().unwrap() {
            assert_eq!(h["mtu"], 1290, "every host at the cluster's minimum, 1400 - 110: {h}");
        }
        // Nothing in clear anywhere; across sites only public addresses; within dc1 only private ones.
        assert_eq!(wan.count("udp port 4789"), 0, "VXLAN in clear on the WAN");
        assert_eq!(dc1.count("udp port 4789"), 0, "VXLAN in clear in dc1");
        assert_eq!(wan.count("net 10.77.0.0/16"), 0, "a private address crossed the WAN");
        assert!(wan.count("udp port 51820 and host 198.51.100.101 and host 198.51.100.103") > 0, "dc1 <-> dc2");
        assert!(dc1.count("udp port 51820 and host 10.77.1.11 and host 10.77.1.12") > 0, "dc1's pair, privately");
        assert_eq!(dc1.count("udp port 51820 and host 198.51.100.102 and host 10.77.1.11"), 0, "no hairpin");
        // The two homes reach each other only through the relay (node1, the first public host).
        assert_eq!(wan.count("udp and host 198.51.100.3 and host 198.51.100.4"), 0, "home1 <-> home2 directly");
        let wg = ssh(&lab, "node4", "wg show vxm-wg allowed-ips");
        let relay_line = wg.lines().find(|l| l.contains("198.19.0.1/32")).unwrap_or_default();
        assert!(relay_line.contains("198.19.0.5/32"), "node4 reaches node5 through node1: {wg}");

        let r = vxmesh(dir, &["verify", "-i", inv]);
        assert_eq!(r.code, 0, "{r}");
        let r = vxmesh(dir, &["up", "-i", inv, "--no-verify"]);
        assert!(r.stdout.contains("5 hosts: 0 changed, 5 ok, 0 failed"), "a second up changes nothing: {r}");
        let r = vxmesh(dir, &["down", "-i", inv, "--yes"]);
        assert_eq!(r.code, 0, "{r}");
    }

    /// `verify` until it exits 0, for at most `secs`: how long it took, or the last run when it never did.
    fn verify_within(dir: &Path, inv: &str, secs: u64) -> Result<f64, crate::util::Run> {
        let start = std::time::Instant::now();
        loop {
            let r = vxmesh(dir, &["verify", "-i", inv, "--json"]);
            if r.code == 0 {
                return Ok(start.elapsed().as_secs_f64());
            }
            if start.elapsed().as_secs() >= secs {
                return Err(r);
            }
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }

    /// The issue's proof, second part: a host behind NAT rebooted comes back by itself (it starts its tunnels
    /// again; its peers learn its new endpoint) and `verify` passes within 30 s; a stopped relay is seen by
    /// `verify` and `status` (exit 3), naming the pairs that went through it, and its return heals them.
    #[test]
    fn a_natted_host_reboots_and_a_stopped_relay_is_named() {
        let Some(lab) = Lab::new("sites").sites("dc1:2,dc2:1@mtu1400,home1:1@nat,home2:1@nat").create() else {
            return;
        };
        let (dir, inv) = (lab.work(), lab.inv());
        let name = lab.name.clone();
        let r = vxmesh(dir, &["up", "-i", inv]);
        assert_eq!(r.code, 0, "{r}");

        let r = vxmesh(dir, &["lab", "node", "reboot", "node4", "--name", &name]);
        assert_eq!(r.code, 0, "{r}");
        match verify_within(dir, inv, 30) {
            Ok(secs) => eprintln!("node4 (behind NAT) back {secs:.1} s after its reboot"),
            Err(r) => panic!("node4 did not come back within 30 s of its reboot:\n{r}"),
        }

        let r = vxmesh(dir, &["lab", "node", "stop", "node1", "--name", &name]);
        assert_eq!(r.code, 0, "{r}");
        let others = ["--limit", "node2", "--limit", "node3", "--limit", "node4", "--limit", "node5"];
        let r = vxmesh(dir, &[&["verify", "-i", inv, "--json"][..], &others].concat());
        assert_eq!(r.code, 3, "{r}");
        let failed = crate::faults::failed_pairs(&json(&r));
        let relayed: std::collections::BTreeSet<(String, String)> =
            [("node4", "node5"), ("node5", "node4")].iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        assert_eq!(failed, relayed, "only the pairs through the stopped relay fail: {r}");
        let r = vxmesh(dir, &[&["status", "-i", inv, "--json"][..], &others].concat());
        assert_eq!(r.code, 3, "{r}");
        let s = json(&r);
        let down = |from: &str, to: &str| {
            crate::faults::host(&s, from)["tunnels"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["peer"] == to && t["state"] != "up")
        };
        assert!(down("node4", "node5") && down("node5", "node4"), "status names the relayed pairs: {r}");
        assert!(!down("node2", "node3"), "a direct pair is not touched: {r}");

        let r = vxmesh(dir, &["lab", "node", "start", "node1", "--name", &name]);
        assert_eq!(r.code, 0, "{r}");
        if let Err(r) = verify_within(dir, inv, 30) {
            panic!("the relay's return did not heal the mesh within 30 s:\n{r}");
        }
    }

    /// The same fleet behind the nftables firewall: every pair passes, the WireGuard port is open only on hosts
    /// with a NATed peer (the public ones), and the relay forwards between the two homes.
    #[test]
    fn the_issue_fleet_behind_nftables() {
        let Some(lab) = Lab::new("sites")
            .sites("dc1:2,dc2:1@mtu1400,home1:1@nat,home2:1@nat")
            .inventory(|inv| inv.cluster("firewall", "nftables"))
            .create()
        else {
            return;
        };
        let (dir, inv) = (lab.work(), lab.inv());
        let r = vxmesh(dir, &["up", "-i", inv, "--json"]);
        assert_eq!(r.code, 0, "{r}");
        let v = json(&r);
        let pairs = v["verify"]["pairs"].as_array().unwrap();
        assert_eq!(pairs.len(), 20, "{r}");
        assert!(pairs.iter().all(|p| p["ok"] == true && p["full_size"] == true), "{r}");
        let table = |node: &str| ssh(&lab, node, "nft list table inet vxmesh");
        let (relay, home) = (table("node1"), table("node4"));
        assert!(!relay.contains("udp dport 51820 ip saddr != @peers"), "open where peers are NATed:\n{relay}");
        assert!(home.contains("udp dport 51820 ip saddr != @peers"), "closed where every peer is known:\n{home}");
        assert!(relay.contains("udp dport 4789 iifname != \"vxm-wg\""), "VXLAN still only through WireGuard");
        let r = vxmesh(dir, &["up", "-i", inv, "--no-verify"]);
        assert!(r.stdout.contains("5 hosts: 0 changed, 5 ok, 0 failed"), "a second up changes nothing: {r}");
    }

    /// Day two across sites: a host behind NAT in a site of its own joins with `add-node --site office` and leaves
    /// with `remove-node`, each under a live stream between two other sites that loses nothing; `down` then leaves
    /// no WireGuard behind.
    #[test]
    fn a_natted_host_in_a_new_site_joins_and_leaves_under_a_live_stream() {
        let Some(lab) = Lab::new("sites")
            .sites("dc1:2,dc2:1@mtu1400,home1:1@nat,office:1@nat")
            .inventory(|inv| inv.without(&["node5"]))
            .create()
        else {
            return;
        };
        let (dir, inv) = (lab.work(), lab.inv());
        let r = vxmesh(dir, &["up", "-i", inv]);
        assert_eq!(r.code, 0, "{r}");

        crate::labkit::start_stream(&lab, "node2", "node3");
        let host = lab.nodes[4].ip.to_string();
        let r = vxmesh(
            dir,
            &[
                "add-node",
                "node5",
                "--host",
                &host,
                "--underlay-ip",
                "10.77.4.15",
                "--site",
                "office",
                "--backend",
                "linux",
                "-i",
                inv,
            ],
        );
        assert_eq!(r.code, 0, "{r}");
        crate::labkit::assert_stream_intact(&lab, "node2", "node3");
        let r = vxmesh(dir, &["verify", "-i", inv, "--json"]);
        assert_eq!(r.code, 0, "{r}");
        assert_eq!(json(&r)["pairs"].as_array().unwrap().len(), 20, "{r}");
        let r = vxmesh(dir, &["plan", "--offline", "-i", inv]);
        assert!(r.stdout.contains("node4 -> node5  relay via node1"), "the two NATed sites meet at the relay: {r}");

        crate::labkit::start_stream(&lab, "node3", "node1");
        let r = vxmesh(dir, &["remove-node", "node5", "--yes", "-i", inv]);
        assert_eq!(r.code, 0, "{r}");
        crate::labkit::assert_stream_intact(&lab, "node3", "node1");
        let wg = ssh(&lab, "node1", "wg show vxm-wg allowed-ips");
        assert!(!wg.contains("198.19.0.5/32"), "node5 is gone from the relay: {wg}");

        let r = vxmesh(dir, &["down", "--yes", "-i", inv]);
        assert_eq!(r.code, 0, "{r}");
        for n in ["node1", "node4"] {
            let left = ssh(&lab, n, "ip -o link show vxm-wg 2>/dev/null; iptables-save | grep -c VXMESH; true");
            assert_eq!(left.trim(), "0", "{n}: down leaves nothing: {left}");
        }
    }

    /// Without NAT in the way of anyone (1:1 NAT only), plain VXLAN crosses sites: each kernel-backend host sends
    /// to the peers' public addresses across sites and to the private ones within, the firewall accepting exactly
    /// those sources; the captures show it.
    #[test]
    fn plain_vxlan_across_one_to_one_nat() {
        let Some(lab) =
            Lab::new("sites").sites("dc1:2,dc2:1@mtu1400").inventory(|inv| inv.cluster("mtu", "1350")).create()
        else {
            return;
        };
        let (dir, inv) = (lab.work(), lab.inv());
        assert!(!std::fs::read_to_string(inv).unwrap().contains("encryption"), "no NATed site: no encryption needed");
        let mut wan = Capture::on_machine(dir, &format!("vxl{}wan", lab.name));
        let mut dc1 = Capture::on_machine(dir, &format!("vxl{}s1", lab.name));
        let r = vxmesh(dir, &["up", "-i", inv, "--json"]);
        wan.stop();
        dc1.stop();
        assert_eq!(r.code, 0, "{r}");
        let pairs = json(&r)["verify"]["pairs"].as_array().unwrap().clone();
        assert_eq!(pairs.len(), 6, "{r}");
        assert!(pairs.iter().all(|p| p["ok"] == true && p["full_size"] == true), "{r}");
        assert!(wan.count("udp port 4789 and host 198.51.100.101 and host 198.51.100.103") > 0, "dc1 <-> dc2 public");
        assert_eq!(wan.count("net 10.77.0.0/16"), 0, "no private address on the WAN");
        assert!(dc1.count("udp port 4789 and host 10.77.1.11 and host 10.77.1.12") > 0, "dc1's pair, privately");
        let fdb = ssh(
            &lab,
            "node1",
            "bridge fdb show dev vxm-vxlan | grep '^00:00:00:00:00:00' | grep -o 'dst [0-9.]*' | sort",
        );
        assert_eq!(fdb.trim(), "dst 10.77.1.12\ndst 198.51.100.103", "{fdb}");
    }
}
