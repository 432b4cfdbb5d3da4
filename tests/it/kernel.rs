//! The kernel backend on the lab, on hosts that run no Open vSwitch at all, alone and mixed with OVS hosts in
//! one mesh: every pair, day-two changes under a live stream, reboots, down, and no broadcast storm.

use vxmesh::lab::LabState;

use crate::faults::{failed_pairs, host, json, status_until};
use crate::labkit::{Lab, assert_stream_intact, ssh, start_stream};
use crate::util::vxmesh;

/// What the kernel backend leaves on a host: the bridge, the VXLAN device, all-zeros FDB entries, rules, files.
fn kernel_state(lab: &LabState, node: &str) -> String {
    ssh(
        lab,
        node,
        "ip -o link show sw0 2>/dev/null | grep -o 'sw0'; ip -o link show vxm-vxlan 2>/dev/null | grep -o vxm-vxlan; \
         bridge fdb show 2>/dev/null | grep -c '^00:00:00:00:00:00' | sed 's/^/flood:/'; iptables-save | grep -c VXMESH | sed 's/^/iptables:/'; \
         ls /etc/vxmesh 2>/dev/null; true",
    )
}

/// `nft ARGS` on the machine (the lab's bridge is there), its output; a failing nft fails the test.
fn nft(args: &str) -> String {
    let out = std::process::Command::new("sh").arg("-c").arg(format!("nft {args}")).output().unwrap();
    assert!(out.status.success(), "nft {args}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn flood_targets(lab: &LabState, node: &str) -> Vec<String> {
    let mut v: Vec<String> = ssh(lab, node, "bridge fdb show dev vxm-vxlan | grep '^00:00:00:00:00:00'")
        .lines()
        .filter_map(|l| l.split_whitespace().skip_while(|w| *w != "dst").nth(1).map(String::from))
        .collect();
    v.sort();
    v
}

#[test]
fn mixed_mesh_of_ovs_and_kernel_hosts() {
    // Odd nodes run Open vSwitch, even nodes only the kernel: node2, node4 and (later) node6 have no OVS.
    let Some(lab) = Lab::new("k1").nodes(6).backend("mixed").inventory(|inv| inv.without(&["node5", "node6"])).create()
    else {
        return;
    };
    let (dir, inv) = (lab.work(), lab.inv());
    let ip = |n: usize| lab.nodes[n - 1].ip.to_string();
    assert!(ssh(&lab, "node2", "pgrep -x ovs-vswitchd || echo none").contains("none"), "node2 runs no OVS");

    let r = vxmesh(dir, &["up", "-i", inv, "--json"]);
    assert_eq!(r.code, 0, "{r}");
    let v = json(&r);
    let pairs = v["verify"]["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 12, "{r}");
    for p in pairs {
        assert_eq!(p["ok"], true, "{p}");
        assert_eq!(p["seen_source"], p["client"], "no NAT: {p}");
        assert_eq!(p["full_size"], true, "full-size DF packets across both kinds of host: {p}");
    }
    let r = vxmesh(dir, &["up", "-i", inv, "--no-verify"]);
    assert!(r.stdout.contains("4 hosts: 0 changed, 4 ok, 0 failed"), "a second up changes nothing: {r}");
    assert_eq!(flood_targets(&lab, "node2"), vec![ip(1), ip(3), ip(4)]);
    // OVS hosts keep BFD only towards OVS peers; kernel peers are watched by ping. All of it up.
    let (r, s) = status_until(dir, inv, 0, 15);
    assert_eq!(r.code, 0, "{r}");
    let node1 =
        ssh(&lab, "node1", "ovs-vsctl get interface vx-node2 bfd:enable; ovs-vsctl get interface vx-node3 bfd:enable");
    assert_eq!(node1.split_whitespace().collect::<Vec<_>>(), ["\"false\"", "\"true\""], "{node1}");
    assert_eq!(host(&s, "node2")["tunnels"].as_array().unwrap().len(), 3);

    // A stream from a container on node1 (OVS) to one on node2 (kernel) while node6 (kernel) joins and node3
    // (OVS) leaves.
    start_stream(&lab, "node1", "node2");
    let r = vxmesh(dir, &["add-node", "node6", "--host", &ip(6), "--backend", "linux", "-i", inv, "--json"]);
    assert_eq!(r.code, 0, "{r}");
    let v = json(&r);
    let changed = |n: &str| -> Vec<String> {
        v["hosts"].as_array().unwrap().iter().find(|h| h["node"] == n).unwrap()["changed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect()
    };
    let on_kernel = changed("node2");
    assert_eq!(on_kernel.len(), 4, "one FDB entry, one route, the firewall, the boot unit: {on_kernel:?}");
    assert!(on_kernel[0].starts_with("flood broadcasts to node6"), "{on_kernel:?}");
    let on_ovs = changed("node1");
    assert_eq!(on_ovs.len(), 4, "one tunnel port, one route, the firewall, the boot unit: {on_ovs:?}");
    assert!(on_ovs[0].starts_with("add tunnel vx-node6"), "{on_ovs:?}");
    assert_eq!(v["verify"]["ok"], true, "{r}");
    let r = vxmesh(dir, &["remove-node", "node3", "--yes", "-i", inv]);
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(flood_targets(&lab, "node2"), vec![ip(1), ip(4), ip(6)], "node3 withdrawn, node6 added");
    assert_stream_intact(&lab, "node1", "node2");

    // A kernel host forgets everything at reboot; its boot unit brings it back without vxmesh.
    let r = vxmesh(dir, &["lab", "node", "reboot", "node4", "--name", "k1"]);
    assert_eq!(r.code, 0, "{r}");
    let (r, _) = status_until(dir, inv, 0, 30);
    assert_eq!(r.code, 0, "node4 restored itself: {r}");
    let r = vxmesh(dir, &["verify", "-i", inv, "--json"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(failed_pairs(&json(&r)).is_empty());

    // down leaves nothing: no bridge, no VXLAN device, no FDB entry, no rule, no file.
    let r = vxmesh(dir, &["down", "--yes", "-i", inv]);
    assert_eq!(r.code, 0, "{r}");
    for n in ["node2", "node4", "node6"] {
        assert_eq!(kernel_state(&lab, n).trim(), "flood:0\niptables:0", "{n} after down");
    }
}

/// One ARP broadcast from a container crosses the underlay a bounded number of times: once to each peer from
/// its host (head-end replication), never again from a receiver (no loop), on an all-kernel and a mixed mesh.
#[test]
fn one_broadcast_is_replicated_once_to_each_peer_and_never_loops() {
    for (lab_name, backend) in [("k2", "linux"), ("k3", "mixed")] {
        let Some(lab) = Lab::new(lab_name).nodes(4).backend(backend).create() else { return };
        let (dir, inv) = (lab.work(), lab.inv());
        let r = vxmesh(dir, &["up", "-i", inv]);
        assert_eq!(r.code, 0, "{r}");
        // Count, on the machine's lab bridge, VXLAN packets whose inner frame is an Ethernet broadcast.
        let table = format!("vxt{lab_name}");
        nft(&format!("add table bridge {table}"));
        let cleanup = || {
            let _ = std::process::Command::new("nft").args(["delete", "table", "bridge", &table]).status();
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            nft(&format!("'add chain bridge {table} count {{ type filter hook forward priority 0; policy accept; }}'"));
            // Only frames from this lab's hosts (their machine-side veths): other labs must not add to the count.
            nft(&format!(
                "add rule bridge {table} count iifname '\"vxl{lab_name}n*\"' udp dport 4789 @th,128,48 0xffffffffffff counter"
            ));
            let counted = || -> u64 {
                let t = nft(&format!("list table bridge {table}"));
                t.split("counter packets ").nth(1).and_then(|r| r.split_whitespace().next()?.parse().ok()).unwrap()
            };
            // The broadcasts the mesh makes by itself in a quiet window (ARP refreshes) are subtracted: only the
            // one request counts.
            let b0 = counted();
            std::thread::sleep(std::time::Duration::from_secs(3));
            let b1 = counted();
            // One ARP request for an address nobody has, from a container on node1.
            ssh(
                &lab,
                "node1",
                "docker run --rm --network vxmesh busybox arping -c1 -w1 172.16.255.254 >/dev/null 2>&1; true",
            );
            std::thread::sleep(std::time::Duration::from_secs(2));
            let idle = b1 - b0;
            let frames = (counted() - b1).saturating_sub(idle);
            let peers = lab.nodes.len() as u64 - 1;
            assert!(
                (peers..=2 * peers).contains(&frames),
                "{backend} mesh: one broadcast made {frames} frames on the underlay (peers: {peers})"
            );
        }));
        cleanup();
        if let Err(e) = result {
            std::panic::resume_unwind(e);
        }
        let r = vxmesh(dir, &["down", "--yes", "-i", inv]);
        assert_eq!(r.code, 0, "{r}");
    }
}

/// A long flow between two hosts stays between them: once the bridges' learnt addresses age (shortened here from
/// 300 s to 3 s), its frames still go to one peer only. Before each host routed its peers' subnets via their switch
/// addresses, the receiving container's address aged out of the sender's bridge while TCP kept the neighbour entry
/// fresh, and every frame of the flow went to every peer (measured: 1,178 frames in 6 s to an uninvolved host).
#[test]
fn a_long_flow_is_never_flooded_to_other_hosts() {
    for (lab_name, backend) in [("k4", "linux"), ("k5", "ovs")] {
        let Some(lab) = Lab::new(lab_name).nodes(3).backend(backend).create() else { return };
        let (dir, inv) = (lab.work(), lab.inv());
        let r = vxmesh(dir, &["up", "-i", inv, "--no-verify"]);
        assert_eq!(r.code, 0, "{r}");
        let age = match backend {
            "linux" => "ip link set sw0 type bridge ageing_time 300 && ip link set vxm-vxlan type vxlan ageing 3",
            _ => "ovs-vsctl set bridge sw0 other_config:mac-aging-time=3",
        };
        for n in ["node1", "node2", "node3"] {
            ssh(&lab, n, age);
        }
        let table = format!("vxf{lab_name}");
        nft(&format!("add table bridge {table}"));
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            nft(&format!("'add chain bridge {table} c {{ type filter hook forward priority 0; policy accept; }}'"));
            for n in [&lab.nodes[1], &lab.nodes[2]] {
                nft(&format!("add rule bridge {table} c ip daddr {} udp dport 4789 counter", n.ip));
            }
            let counts = || -> Vec<u64> {
                nft(&format!("list table bridge {table}"))
                    .split("counter packets ")
                    .skip(1)
                    .map(|r| r.split_whitespace().next().unwrap().parse().unwrap())
                    .collect()
            };
            start_stream(&lab, "node1", "node2");
            // `ps` sees both ends of the stream, where they run, with their mesh addresses.
            let r = vxmesh(dir, &["ps", "-i", inv, "--json"]);
            assert_eq!(r.code, 0, "{r}");
            let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
            let found = |name: &str| v["containers"].as_array().unwrap().iter().find(|c| c["name"] == name).cloned();
            let (tx, rx) = (found("tx").expect("tx listed"), found("rx").expect("rx listed"));
            assert_eq!(
                (tx["node"].as_str(), tx["state"].as_str(), tx["image"].as_str()),
                (Some("node1"), Some("running"), Some("busybox"))
            );
            assert_eq!(rx["node"], "node2");
            let rx_ip = ssh(&lab, "node2", "docker inspect -f '{{.NetworkSettings.Networks.vxmesh.IPAddress}}' rx");
            assert_eq!(rx["address"].as_str(), Some(rx_ip.trim()), "{r}");
            let text = vxmesh(dir, &["ps", "-i", inv]);
            assert!(
                text.stdout.lines().any(|l| l.starts_with("node2") && l.contains(" rx ") && l.contains(rx_ip.trim())),
                "{text}"
            );
            // Past the shortened ageing, then a window of 4 s.
            std::thread::sleep(std::time::Duration::from_secs(4));
            let before = counts();
            std::thread::sleep(std::time::Duration::from_secs(4));
            let after = counts();
            let (to_peer, to_other) = (after[0] - before[0], after[1] - before[1]);
            assert!(to_peer > 500, "{backend}: the flow is alive ({to_peer} frames to node2)");
            assert!(to_other < 40, "{backend}: {to_other} frames of a node1 -> node2 flow reached node3");
            assert_stream_intact(&lab, "node1", "node2");
        }));
        let _ = std::process::Command::new("nft").args(["delete", "table", "bridge", &table]).status();
        if let Err(e) = result {
            std::panic::resume_unwind(e);
        }
    }
}

/// sw0 has a fixed MAC derived from its switch address, on both kinds of host. A node removed and added again
/// (or rebuilt, or rebooted) re-makes sw0 with the same MAC, so its peers' neighbour entries for its switch address
/// stay right and it answers at once. With a MAC that changed, peers kept sending to the old one until their
/// entry expired: a lab run saw 40 pings over 4 s lost after such an add-node.
#[test]
fn a_remade_switch_keeps_its_mac_so_peers_reach_it_at_once() {
    // node1 and node3 run Open vSwitch, node2 only the kernel.
    let Some(lab) = Lab::new("k6").nodes(3).backend("mixed").create() else { return };
    let (dir, inv) = (lab.work(), lab.inv());
    let r = vxmesh(dir, &["up", "-i", inv, "--no-verify"]);
    assert_eq!(r.code, 0, "{r}");
    let switch_ip = |n: &str| -> std::net::Ipv4Addr {
        let out = ssh(&lab, n, "ip -4 -o addr show dev sw0 | awk '{print $4}' | cut -d/ -f1");
        out.trim().parse().unwrap_or_else(|_| panic!("{n} has no switch address: {out}"))
    };
    for n in ["node1", "node2", "node3"] {
        let mac = ssh(&lab, n, "cat /sys/class/net/sw0/address");
        assert_eq!(mac.trim(), vxmesh::plan::switch_mac(switch_ip(n)), "{n}'s sw0");
    }
    let node1 = switch_ip("node1");
    // docker's bridge (joined to sw0 by the veth) does not answer for the switch address: only sw0's MAC is learnt.
    // The peers learn node1's switch MAC now, as live traffic would.
    for n in ["node2", "node3"] {
        ssh(&lab, n, &format!("ip neigh flush {node1} dev sw0"));
        ssh(&lab, n, &format!("ping -c3 -i 0.2 -w5 {node1} >/dev/null && ip neigh show {node1} dev sw0"));
    }

    let r = vxmesh(dir, &["remove-node", "node1", "--yes", "-i", inv]);
    assert_eq!(r.code, 0, "{r}");
    let r = vxmesh(dir, &["add-node", "node1", "--host", &lab.nodes[0].ip.to_string(), "-i", inv, "--no-verify"]);
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(switch_ip("node1"), node1, "the premise: node1 got its switch address back");
    // The OVS peer's tunnel needs BFD up first (about a second); a stale neighbour entry would cost 15 s and more.
    // Which of one-a-second pings (for at most 8 s) from `n` node1 answered first (99: none), and `n`'s neighbour
    // entry for it.
    let first_answer = |n: &str| -> (u32, String) {
        let out = ssh(
            &lab,
            n,
            &format!(
                "ping -c1 -w8 {node1} | sed -n 's/.*icmp_seq=\\([0-9]*\\).*/\\1/p'; ip neigh show {node1} dev sw0"
            ),
        );
        (out.lines().next().and_then(|l| l.trim().parse().ok()).unwrap_or(99), out)
    };
    for n in ["node2", "node3"] {
        let (seq, first) = first_answer(n);
        assert!(seq <= 3, "{n} reached the re-made node1 only at ping {seq}: {first}");
    }

    // Drift (or a host built before MACs were fixed): node1's OVS picks a port's MAC and the peers learn it. `up`
    // puts the fixed MAC back and the kernel announces it, so the peers answer at once again.
    ssh(
        &lab,
        "node1",
        "ovs-vsctl remove bridge sw0 other-config hwaddr && ip link set vxm-sw0 address 02:00:00:00:00:09",
    );
    for n in ["node2", "node3"] {
        let learnt = ssh(
            &lab,
            n,
            &format!(
                "ip neigh flush {node1} dev sw0; ping -c2 -i 0.2 -w5 {node1} >/dev/null; ip neigh show {node1} dev sw0"
            ),
        );
        assert!(!learnt.contains(&vxmesh::plan::switch_mac(node1)), "{n} learnt the drifted MAC: {learnt}");
    }
    let r = vxmesh(dir, &["up", "-i", inv, "--no-verify", "--json"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("give sw0 the MAC address"), "{r}");
    for n in ["node2", "node3"] {
        let (seq, first) = first_answer(n);
        assert!(seq <= 1, "{n} reached node1 only at ping {seq} after its MAC was put back: {first}");
    }
}
