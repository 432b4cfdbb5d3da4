//! Checks that can fail: faults made on purpose on a built 3-node lab, each caught by `verify` in exactly the
//! right cells (matrix and JSON) and by `status`, and repaired by `up` where the fault is on a host. Also
//! BFD's view of a stopped host, a docker restart, `--forks 1`, and `remove-node --force` of a dead host.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;
use vxmesh::lab::LabState;

use crate::labkit::{Lab, ssh};
use crate::util::{Run, vxmesh};

pub(crate) fn json(r: &Run) -> Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{r}"))
}

/// The ordered pairs `verify --json` reports as failed.
pub(crate) fn failed_pairs(v: &Value) -> BTreeSet<(String, String)> {
    v["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["ok"] != true)
        .map(|p| (p["from"].as_str().unwrap().to_string(), p["to"].as_str().unwrap().to_string()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

/// `verify` twice at most: a first run may meet BFD or ARP still settling after a change; a real fault fails both.
fn verify(dir: &Path, inv: &str) -> (Run, Value) {
    let r = vxmesh(dir, &["verify", "-i", inv, "--json"]);
    let v = json(&r);
    (r, v)
}

pub(crate) fn status(dir: &Path, inv: &str) -> (Run, Value) {
    let r = vxmesh(dir, &["status", "-i", inv, "--json"]);
    let v = json(&r);
    (r, v)
}

pub(crate) fn host<'a>(v: &'a Value, node: &str) -> &'a Value {
    v["hosts"].as_array().unwrap().iter().find(|h| h["node"] == node).unwrap()
}

/// Waits up to `secs` for `status` to reach `code`.
pub(crate) fn status_until(dir: &Path, inv: &str, code: i32, secs: u64) -> (Run, Value) {
    let mut last = status(dir, inv);
    for _ in 0..secs {
        if last.0.code == code {
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
        last = status(dir, inv);
    }
    last
}

fn subnet_of(dir: &Path, node: &str) -> String {
    let lock = vxmesh::model::ipam::Lock::load(&dir.join("vxmesh.lock")).unwrap().unwrap();
    lock.nodes[node].subnet.to_string()
}

fn machine_veth(lab: &LabState, node: &str) -> String {
    lab.node(node).unwrap().veth.clone()
}

#[test]
fn verify_and_status_catch_each_fault_and_up_repairs_it() {
    let Some(lab) = Lab::new("f1").nodes(3).create() else { return };
    let (dir, inv) = (lab.work(), lab.inv());
    // One host at a time works too.
    let r = vxmesh(dir, &["up", "-i", inv, "--forks", "1", "--json"]);
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(json(&r)["verify"]["ok"], true, "{r}");
    let (r, _) = status_until(dir, inv, 0, 10);
    assert_eq!(r.code, 0, "{r}");

    // 1. A MASQUERADE slipped in ahead of vxmesh's NAT chain on node1: node1's containers reach the others
    //    under node1's address, not their own.
    let sub1 = subnet_of(dir, "node1");
    ssh(&lab, "node1", &format!("iptables -w -t nat -I POSTROUTING 1 -s {sub1} -j MASQUERADE"));
    let (r, v) = verify(dir, inv);
    assert_eq!(r.code, 3, "{r}");
    assert_eq!(failed_pairs(&v), pairs(&[("node1", "node2"), ("node1", "node3")]), "{r}");
    let text = vxmesh(dir, &["verify", "-i", inv]);
    assert_eq!(text.code, 3, "{text}");
    assert!(text.stdout.contains("FAIL nat") && text.stdout.contains("mesh BROKEN"), "{text}");
    let (r, s) = status(dir, inv);
    assert_eq!(r.code, 3, "{r}");
    assert!(host(&s, "node1")["drift"].to_string().contains("VXMESH-NAT"), "{r}");
    assert!(host(&s, "node2")["drift"].as_array().unwrap().is_empty(), "{r}");
    let r = vxmesh(dir, &["up", "-i", inv, "--json"]);
    assert_eq!(r.code, 0, "up repairs it: {r}");

    // 2. A tunnel deleted on node2: node2 and node3 no longer reach each other, both ways; nothing else breaks.
    ssh(&lab, "node2", "ovs-vsctl del-port sw0 vx-node3");
    let (r, v) = verify(dir, inv);
    assert_eq!(r.code, 3, "{r}");
    assert_eq!(failed_pairs(&v), pairs(&[("node2", "node3"), ("node3", "node2")]), "{r}");
    let (r, s) = status(dir, inv);
    assert_eq!(r.code, 3, "{r}");
    assert!(host(&s, "node2")["drift"].to_string().contains("add tunnel vx-node3"), "{r}");
    let r = vxmesh(dir, &["up", "-i", inv, "--json"]);
    assert_eq!(r.code, 0, "up repairs it: {r}");

    // 3. node3's underlay MTU shrunk below what the overlay needs (eth0 carries the tunnels, br-phy holds the
    //    address vxmesh learns the MTU from): full-size packets to and from node3 no longer fit.
    ssh(&lab, "node3", "ip link set eth0 mtu 1400 && ovs-vsctl set interface br-phy mtu_request=1400");
    let (r, v) = verify(dir, inv);
    assert_eq!(r.code, 3, "{r}");
    assert_eq!(
        failed_pairs(&v),
        pairs(&[("node1", "node3"), ("node3", "node1"), ("node2", "node3"), ("node3", "node2")]),
        "{r}"
    );
    for p in v["pairs"].as_array().unwrap().iter().filter(|p| p["ok"] != true) {
        assert!(p["error"].as_str().unwrap().contains("don't-fragment"), "an MTU failure, not another: {p}");
    }
    let (r, s) = status(dir, inv);
    assert_eq!(r.code, 3, "{r}");
    for node in ["node1", "node2", "node3"] {
        assert!(
            host(&s, node)["drift"].to_string().contains("MTU to 1350"),
            "the overlay MTU follows the cluster's smallest underlay, on every host: {node}: {r}"
        );
    }
    ssh(&lab, "node3", "ip link set eth0 mtu 1500 && ovs-vsctl set interface br-phy mtu_request=1500");
    let (r, _) = status_until(dir, inv, 0, 10);
    assert_eq!(r.code, 0, "with the underlay back, nothing drifted: {r}");

    // 4. UDP to the VXLAN port blocked on the way to node3 (a cloud security group without the rule): every pair
    //    with node3 fails, BFD shows the tunnels down; vxmesh cannot repair a network outside the hosts.
    let veth = machine_veth(&lab, "node3");
    // On the machine's lab bridge: nothing inside the nodes sees it, as with a provider's filter.
    let block = format!(
        "nft add table bridge vxtf1 && nft add chain bridge vxtf1 block '{{ type filter hook forward priority 0; policy accept; }}' && \
         nft add rule bridge vxtf1 block oifname {veth} udp dport 4789 counter drop"
    );
    let out = std::process::Command::new("sh").arg("-c").arg(&block).output().unwrap();
    let unblock = || {
        let _ = std::process::Command::new("nft").args(["delete", "table", "bridge", "vxtf1"]).status();
    };
    if !out.status.success() {
        unblock();
        panic!("{}", String::from_utf8_lossy(&out.stderr));
    }
    let (r, v) = verify(dir, inv);
    let failed = failed_pairs(&v);
    unblock_if_panics(&unblock, || {
        assert_eq!(r.code, 3, "{r}");
        assert_eq!(
            failed,
            pairs(&[("node1", "node3"), ("node3", "node1"), ("node2", "node3"), ("node3", "node2")]),
            "{r}"
        );
        let (r, s) = status_until(dir, inv, 3, 10);
        assert_eq!(r.code, 3, "{r}");
        let down: Vec<String> = host(&s, "node3")["tunnels"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["state"] != "up")
            .map(|t| t["peer"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(down, ["node1", "node2"], "BFD on node3 sees both tunnels down: {r}");
    });
    unblock();
    let (r, _) = status_until(dir, inv, 0, 15);
    assert_eq!(r.code, 0, "unblocked, BFD comes back: {r}");
    let (r, _) = verify(dir, inv);
    assert_eq!(r.code, 0, "{r}");
}

/// Runs `checks`; if one fails, `cleanup` runs before the panic goes on (a tc rule on the machine must not stay).
fn unblock_if_panics(cleanup: &dyn Fn(), checks: impl FnOnce()) {
    if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(checks)) {
        cleanup();
        std::panic::resume_unwind(e);
    }
}

#[test]
fn bfd_docker_restarts_and_dead_hosts() {
    let Some(lab) = Lab::new("f2").nodes(4).create() else { return };
    let (dir, inv) = (lab.work(), lab.inv());
    let r = vxmesh(dir, &["up", "-i", inv, "--no-verify"]);
    assert_eq!(r.code, 0, "{r}");
    let (r, _) = status_until(dir, inv, 0, 10);
    assert_eq!(r.code, 0, "{r}");

    // A stopped host: within seconds BFD on every other host shows its tunnel down; started, they come back.
    let r = vxmesh(dir, &["lab", "node", "stop", "node3", "--name", "f2"]);
    assert_eq!(r.code, 0, "{r}");
    let started = std::time::Instant::now();
    let mut seen_down = false;
    while started.elapsed().as_secs() < 15 && !seen_down {
        let (_, s) = status(dir, inv);
        seen_down = ["node1", "node2", "node4"].iter().all(|n| {
            host(&s, n)["tunnels"].as_array().unwrap().iter().any(|t| t["peer"] == "node3" && t["state"] == "down")
        });
    }
    assert!(seen_down, "BFD reports node3's tunnels down on all other hosts");
    let secs = started.elapsed().as_secs_f64();
    assert!(secs < 15.0, "within seconds: {secs:.1}");
    let (r, s) = status(dir, inv);
    assert_eq!(r.code, 2, "a host is unreachable: {r}");
    assert_eq!(host(&s, "node3")["reachable"], false);
    let r = vxmesh(dir, &["lab", "node", "start", "node3", "--name", "f2"]);
    assert_eq!(r.code, 0, "{r}");
    let (r, _) = status_until(dir, inv, 0, 20);
    assert_eq!(r.code, 0, "node3's boot unit restored it and BFD is up again: {r}");

    // dockerd restarted on node2: status reports what moved, up repairs it.
    ssh(&lab, "node2", "systemctl restart docker");
    let (r, s) = status(dir, inv);
    assert_eq!(r.code, 3, "{r}");
    assert!(!host(&s, "node2")["drift"].as_array().unwrap().is_empty(), "{r}");
    let r = vxmesh(dir, &["up", "-i", inv]);
    assert_eq!(r.code, 0, "{r}");
    let (r, _) = status_until(dir, inv, 0, 10);
    assert_eq!(r.code, 0, "{r}");

    // A dead host is removed only with --force; the others drop it.
    let r = vxmesh(dir, &["lab", "node", "stop", "node4", "--name", "f2"]);
    assert_eq!(r.code, 0, "{r}");
    let r = vxmesh(dir, &["remove-node", "node4", "--yes", "-i", inv, "--connect-timeout", "3"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("--force"), "{r}");
    assert!(std::fs::read_to_string(inv).unwrap().contains("node4"), "nothing changed");
    let r = vxmesh(dir, &["remove-node", "node4", "--yes", "-i", inv, "--connect-timeout", "3", "--force"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(!std::fs::read_to_string(inv).unwrap().contains("node4"));
    for n in ["node1", "node2", "node3"] {
        assert!(!ssh(&lab, n, "ovs-vsctl list-ports sw0").contains("vx-node4"), "{n}");
    }
    let (r, _) = status_until(dir, inv, 0, 10);
    assert_eq!(r.code, 0, "{r}");
}
