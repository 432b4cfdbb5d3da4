//! Encryption on the lab: kernel-backend hosts with their tunnels under WireGuard (wireguard-go: the lab's kernel
//! has no WireGuard module). Nothing crosses the underlay in clear, a forged VXLAN frame from a peer's own address
//! reaches no container, the host fails closed when WireGuard goes, and day-two changes keep streams whole.

use std::path::Path;

use vxmesh::lab::LabState;

use crate::faults::{failed_pairs, host, json, status_until};
use crate::labkit::{Capture, Inventory, Lab, assert_stream_intact, ssh, start_stream};
use crate::util::vxmesh;

/// What the containers send: a capture that holds it anywhere has seen the payload in clear.
const MARKER: &str = "VXMESH-SECRET-PAYLOAD";

/// The lab's inventory, encrypted, behind this firewall.
fn encrypted(inv: Inventory, firewall: &str) -> Inventory {
    inv.cluster("encryption", "wireguard").cluster("firewall", firewall)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Sends `bytes` of the marker from a container on `from` to one on `to` over the mesh; the bytes received. The
/// receiver's stdin is a fifo held open: busybox's nc stops listening when its own stdin ends.
fn transfer(lab: &LabState, from: &str, to: &str, bytes: usize) -> usize {
    let rx_ip = ssh(
        lab,
        to,
        "docker run -d --name wrx --network vxmesh busybox sh -c 'mkfifo /tmp/f; sleep 600 > /tmp/f & nc -l -p 9001 < /tmp/f > /tmp/got' >/dev/null; \
         docker inspect -f '{{.NetworkSettings.Networks.vxmesh.IPAddress}}' wrx",
    );
    let rx_ip = rx_ip.trim();
    ssh(
        lab,
        from,
        &format!(
            // The sender keeps the connection open a moment after its last byte: a container that exits takes
            // the bytes still in its socket buffer with it.
            "docker run --rm --network vxmesh busybox sh -c '(yes {MARKER} | head -c {bytes}; sleep 2) | nc {rx_ip} 9001'"
        ),
    );
    ssh(lab, to, "timeout 20 docker wait wrx >/dev/null");
    let got = ssh(lab, to, "docker cp wrx:/tmp/got - | tar -xO | wc -c; docker rm -f wrx >/dev/null");
    got.trim().parse().unwrap()
}

/// What encryption leaves on a host: the interface, the key, the fail-closed route, rules, wireguard-go.
fn wireguard_state(lab: &LabState, node: &str) -> String {
    ssh(
        lab,
        node,
        "ip -o link show vxm-wg 2>/dev/null | grep -o vxm-wg; ls /etc/vxmesh/wireguard.key 2>/dev/null; \
         ip route show type unreachable | grep -c 'metric 4242' | sed 's/^/guard:/'; \
         iptables-save | grep -c VXMESH | sed 's/^/iptables:/'; pgrep -x wireguard-go >/dev/null && echo wireguard-go; true",
    )
}

fn public_key(lab: &LabState, node: &str) -> String {
    ssh(lab, node, "wg pubkey < /etc/vxmesh/wireguard.key").trim().to_string()
}

/// Peers' public keys as `node` has them.
fn peer_keys(lab: &LabState, node: &str) -> Vec<String> {
    let mut v: Vec<String> = ssh(lab, node, "wg show vxm-wg peers").lines().map(String::from).collect();
    v.sort();
    v
}

#[test]
fn an_encrypted_mesh_shows_nothing_in_clear_and_fails_closed() {
    let Some(lab) = Lab::new("w1").nodes(3).backend("linux").inventory(|inv| encrypted(inv, "iptables")).create()
    else {
        return;
    };
    let (dir, inv) = (lab.work(), lab.inv());

    let r = vxmesh(dir, &["up", "-i", inv, "--json"]);
    assert_eq!(r.code, 0, "{r}");
    let v = json(&r);
    let pairs = v["verify"]["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 6, "{r}");
    for p in pairs {
        assert_eq!(p["ok"], true, "{p}");
        assert_eq!(p["seen_source"], p["client"], "no NAT: {p}");
        assert_eq!(p["full_size"], true, "DF packets of exactly the overlay MTU pass: {p}");
        assert_eq!(p["oversize_refused"], true, "and one byte more is refused at the sender: {p}");
    }
    // The overlay MTU leaves room for both headers: 1500 - 50 (VXLAN) - 60 (WireGuard).
    assert_eq!(ssh(&lab, "node1", "cat /sys/class/net/sw0/mtu").trim(), "1390");
    assert_eq!(ssh(&lab, "node1", "cat /sys/class/net/vxm-wg/mtu").trim(), "1440");
    // Keys were born on the hosts, root-only; each host knows the others' public keys and nothing else.
    let keys: Vec<String> = ["node1", "node2", "node3"].iter().map(|n| public_key(&lab, n)).collect();
    assert_eq!(ssh(&lab, "node1", "stat -c %a /etc/vxmesh/wireguard.key").trim(), "600");
    let mut others = vec![keys[1].clone(), keys[2].clone()];
    others.sort();
    assert_eq!(peer_keys(&lab, "node1"), others);
    let private = ssh(&lab, "node2", "cat /etc/vxmesh/wireguard.key");
    assert!(!r.stdout.contains(private.trim()) && !r.stderr.contains(private.trim()), "no private key in output");
    assert!(
        std::fs::read_dir(dir)
            .unwrap()
            .all(|e| !std::fs::read_to_string(e.unwrap().path()).unwrap_or_default().contains(private.trim())),
        "no private key in the files beside the inventory"
    );

    // Every ordered pair, 1 MiB each, captured on the underlay and inside node1's tunnel interface.
    let mut underlay = Capture::start(dir, "underlay", None, &lab.bridge);
    let mut inner = Capture::start(dir, "inner", Some(&lab.nodes[0].netns), "vxm-wg");
    for (from, to) in [
        ("node1", "node2"),
        ("node2", "node1"),
        ("node1", "node3"),
        ("node3", "node1"),
        ("node2", "node3"),
        ("node3", "node2"),
    ] {
        assert_eq!(transfer(&lab, from, to, 1 << 20), 1 << 20, "{from} -> {to}");
    }
    let outer_bytes = underlay.stop();
    let inner_bytes = inner.stop();
    assert!(underlay.count("udp port 51820") > 1000, "the transfers crossed the underlay as WireGuard");
    assert_eq!(underlay.count("udp port 4789"), 0, "not one VXLAN frame on the underlay");
    assert!(!contains(&outer_bytes, MARKER), "no payload byte on the underlay");
    // The check is real: inside the tunnel the same traffic is VXLAN with the payload in it.
    assert!(inner.count("udp port 4789") > 100, "VXLAN runs inside the WireGuard interface");
    assert!(contains(&inner_bytes, MARKER), "the payload is there, inside the tunnel");

    // A forged VXLAN frame from a peer's own underlay address is dropped; sent through the tunnel from the
    // peer's WireGuard address, the same frame reaches the container (so the check can fail).
    let (ip, mac) = crate::mesh::start_sink(&lab, "node1", "");
    let (ip, mac) = (ip.as_str(), mac.as_str());
    let arrived = || crate::mesh::sink_arrivals(&lab, "node1");
    let node2 = &lab.nodes[1];
    for _ in 0..3 {
        crate::mesh::send_vxlan_to(&node2.netns, &node2.ip.to_string(), &lab.nodes[0].ip.to_string(), mac, ip);
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(arrived(), 0, "a frame forged from a peer's underlay address reached a container");
    let wg = |n: usize| -> String {
        let lock = vxmesh::model::ipam::Lock::load(&dir.join("vxmesh.lock")).unwrap().unwrap();
        lock.nodes[&format!("node{n}")].wireguard_ip.unwrap().to_string()
    };
    // Forged with the peer's WireGuard address as source but sent over the underlay: the address is right, the
    // interface is not (only `-i vxm-wg` tells them apart).
    for _ in 0..3 {
        crate::mesh::send_vxlan_to(&node2.netns, &wg(2), &lab.nodes[0].ip.to_string(), mac, ip);
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(arrived(), 0, "a frame with a peer's WireGuard address, sent over the underlay, reached a container");
    let mut through_tunnel = 0;
    for _ in 0..5 {
        crate::mesh::send_vxlan_to(&node2.netns, &wg(2), &wg(1), mac, ip);
        std::thread::sleep(std::time::Duration::from_millis(500));
        through_tunnel = arrived();
        if through_tunnel > 0 {
            break;
        }
    }
    assert!(through_tunnel > 0, "the same frames through the tunnel arrive (the check is real)");
    ssh(&lab, "node1", "docker rm -f sink >/dev/null");

    let r = vxmesh(dir, &["up", "-i", inv, "--no-verify"]);
    assert!(r.stdout.contains("3 hosts: 0 changed, 3 ok, 0 failed"), "a second up changes nothing: {r}");
    let (r, s) = status_until(dir, inv, 0, 15);
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(host(&s, "node1")["wireguard"].as_array().unwrap().len(), 2, "{r}");
    // Each host says when vxmesh last changed it, and that it was from the plan vxmesh would build now.
    let last = &host(&s, "node1")["last_applied"];
    assert_eq!(last["current"], true, "{r}");
    assert!(last["time"].as_str().unwrap().starts_with("20"), "{r}");

    // --limit: node2 and node3 drift; `up --limit node2` contacts and repairs node2 alone (its peers still
    // planned, their keys as node2 has them), node3 keeps its drift, and verify of node1 and node2 passes.
    for n in ["node2", "node3"] {
        ssh(&lab, n, "ip link set vxm-wg down");
    }
    let r = vxmesh(dir, &["up", "-i", inv, "--no-verify", "--limit", "node2", "--json"]);
    assert_eq!(r.code, 0, "{r}");
    let v = json(&r);
    assert_eq!(v["hosts"].as_array().unwrap().len(), 1, "only node2 was contacted: {r}");
    assert!(
        host(&v, "node2")["changed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c.as_str().unwrap().starts_with("bring up WireGuard")),
        "{r}"
    );
    let (r, s) = status_until(dir, inv, 3, 3);
    assert_eq!(r.code, 3, "node3 was left alone: {r}");
    assert!(host(&s, "node2")["drift"].as_array().unwrap().is_empty(), "{r}");
    assert!(!host(&s, "node3")["drift"].as_array().unwrap().is_empty(), "{r}");
    let r = vxmesh(dir, &["verify", "-i", inv, "--limit", "node1", "--limit", "nod?2", "--json"]);
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(json(&r)["pairs"].as_array().unwrap().len(), 2, "only the pairs of the limited hosts: {r}");
    let r = vxmesh(dir, &["up", "-i", inv, "--no-verify", "--limit", "node*"]);
    assert!(r.stdout.contains("3 hosts: 1 changed, 2 ok, 0 failed"), "then node3 too: {r}");

    // Fail closed: with the WireGuard interface down in the middle of a stream, not one VXLAN frame leaves in
    // clear; back up, the stream resumes whole.
    start_stream(&lab, "node1", "node2");
    let mut gap = Capture::start(dir, "gap", None, &lab.bridge);
    ssh(&lab, "node1", "ip link set vxm-wg down");
    std::thread::sleep(std::time::Duration::from_secs(2));
    ssh(&lab, "node1", "ip link set vxm-wg up");
    std::thread::sleep(std::time::Duration::from_millis(500));
    gap.stop();
    assert_eq!(gap.count("udp port 4789"), 0, "VXLAN leaked in clear while the interface was down");
    assert_stream_intact(&lab, "node1", "node2");

    // wireguard-go dies: the interface goes with it; traffic still finds no way out in clear; status says so,
    // and `up` brings it back.
    let mut crash = Capture::start(dir, "crash", None, &lab.bridge);
    ssh(&lab, "node1", "pkill -x wireguard-go; sleep 1; ip link show vxm-wg >/dev/null 2>&1 && echo still there; true");
    ssh(&lab, "node1", "docker run --rm --network vxmesh busybox ping -c 3 -W 1 172.16.255.254 >/dev/null 2>&1; true");
    ssh(&lab, "node1", "ip neigh flush dev sw0; ping -c 2 -W 1 172.30.0.2 >/dev/null 2>&1; true");
    crash.stop();
    assert_eq!(crash.count("udp port 4789"), 0, "VXLAN leaked in clear after wireguard-go died");
    let (r, s) = status_until(dir, inv, 3, 5);
    assert_eq!(r.code, 3, "status reports the missing interface: {r}");
    let drift = host(&s, "node1")["drift"].as_array().unwrap();
    assert!(drift.iter().any(|d| d.as_str().unwrap().starts_with("bring up WireGuard interface")), "{r}");
    let r = vxmesh(dir, &["up", "-i", inv, "--json"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(failed_pairs(&json(&r)["verify"]).is_empty(), "{r}");

    // Every changing run keeps a record of what each host was sent and answered, with no private key in it.
    let runs = dir.join(".state/vxmesh/runs");
    let up_runs: Vec<std::path::PathBuf> = std::fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains("-up-"))
        .collect();
    assert!(up_runs.len() >= 4, "{up_runs:?}");
    for run in &up_runs {
        for e in std::fs::read_dir(run).unwrap() {
            let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
            assert!(text.starts_with("### sent") && text.contains("### exit 0"), "{text}");
            assert!(!text.contains(private.trim()), "a private key in a run record");
        }
    }
    // A key file that is not a key: every host is held, node3's problem named, and the output names the record
    // of what each host was sent and answered.
    ssh(&lab, "node3", "echo not-a-key > /etc/vxmesh/wireguard.key");
    let r = vxmesh(dir, &["up", "-i", inv, "--no-verify"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stdout.contains("/etc/vxmesh/wireguard.key is there but is not a WireGuard private key"), "{r}");
    let named = r.stderr.lines().find_map(|l| l.strip_prefix("what each host was sent and answered: ")).expect("named");
    let record = std::fs::read_to_string(Path::new(named).join("node3.log")).unwrap();
    assert!(record.contains("mark wg-key-file") && record.contains("### exit 0"), "{record}");

    // down leaves no interface, key, route, rule or process (the broken key file goes too).
    let r = vxmesh(dir, &["down", "--yes", "-i", inv]);
    assert_eq!(r.code, 0, "{r}");
    for n in ["node1", "node2", "node3"] {
        assert_eq!(wireguard_state(&lab, n).trim(), "guard:0\niptables:0", "{n} after down");
    }
}

#[test]
fn encrypted_day_two_keeps_streams_whole() {
    // node4 is kept out for add-node.
    let Some(lab) = Lab::new("w2")
        .nodes(4)
        .backend("linux")
        .inventory(|inv| encrypted(inv, "nftables").without(&["node4"]))
        .create()
    else {
        return;
    };
    let (dir, inv) = (lab.work(), lab.inv());
    let r = vxmesh(dir, &["up", "-i", inv]);
    assert_eq!(r.code, 0, "{r}");

    // add-node under a stream: the new host makes its key; every other host gains exactly one peer.
    start_stream(&lab, "node1", "node2");
    let ip4 = lab.nodes[3].ip.to_string();
    let r = vxmesh(dir, &["add-node", "node4", "--host", &ip4, "--backend", "linux", "-i", inv, "--json"]);
    assert_eq!(r.code, 0, "{r}");
    let v = json(&r);
    let changed: Vec<String> =
        host(&v, "node2")["changed"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
    assert_eq!(
        changed.iter().filter(|c| c.starts_with("add WireGuard peer node4")).count(),
        1,
        "one new peer on node2: {changed:?}"
    );
    assert!(changed.iter().all(|c| !c.contains("WireGuard interface")), "the interface is left alone: {changed:?}");
    assert_eq!(v["verify"]["ok"], true, "{r}");
    assert_eq!(peer_keys(&lab, "node2").len(), 3);
    assert!(peer_keys(&lab, "node2").contains(&public_key(&lab, "node4")));

    // remove-node under the same stream: withdrawn from every other host.
    let r = vxmesh(dir, &["remove-node", "node3", "--yes", "-i", inv]);
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(peer_keys(&lab, "node2").len(), 2, "node3's peer withdrawn");
    assert_stream_intact(&lab, "node1", "node2");

    // rotate-keys under a new stream: new key pairs on node1 and node2, every peer updated, no byte lost.
    let before = [public_key(&lab, "node1"), public_key(&lab, "node2")];
    start_stream(&lab, "node1", "node2");
    let r = vxmesh(dir, &["rotate-keys", "node1", "node2", "-i", inv, "--json"]);
    assert_eq!(r.code, 0, "{r}");
    let after = [public_key(&lab, "node1"), public_key(&lab, "node2")];
    assert_ne!(before[0], after[0]);
    assert_ne!(before[1], after[1]);
    assert_eq!(ssh(&lab, "node1", "wg show vxm-wg public-key").trim(), after[0], "the interface uses the new key");
    assert!(peer_keys(&lab, "node4").contains(&after[0]) && peer_keys(&lab, "node4").contains(&after[1]));
    assert!(!peer_keys(&lab, "node4").contains(&before[0]), "the old key is gone from the peers");
    assert_stream_intact(&lab, "node1", "node2");

    // A reboot: the boot unit restores the interface, its key and its peers (the rotated ones).
    let r = vxmesh(dir, &["lab", "node", "reboot", "node2", "--name", "w2"]);
    assert_eq!(r.code, 0, "{r}");
    let (r, _) = status_until(dir, inv, 0, 30);
    assert_eq!(r.code, 0, "node2 restored itself: {r}");
    assert_eq!(ssh(&lab, "node2", "wg show vxm-wg public-key").trim(), after[1], "with its own key");
    let r = vxmesh(dir, &["verify", "-i", inv, "--json"]);
    assert_eq!(r.code, 0, "{r}");

    let r = vxmesh(dir, &["down", "--yes", "-i", inv]);
    assert_eq!(r.code, 0, "{r}");
    for n in ["node1", "node2", "node4"] {
        let state = wireguard_state(&lab, n);
        assert_eq!(state.trim(), "guard:0\niptables:0", "{n} after down");
        assert!(
            ssh(&lab, n, "nft list tables").trim().is_empty() || !ssh(&lab, n, "nft list tables").contains("vxmesh")
        );
    }
}
