//! Snapshot tests of what users read: the offline plan and render scripts, in text and JSON.

use crate::util::{TempDir, fixtures, vxmesh};

/// Runs vxmesh in a scratch copy of `inventory`, so the lock it writes lands there.
fn run_on(inventory: &str, args: &[&str]) -> String {
    let dir = TempDir::new("snap");
    std::fs::copy(fixtures().join("..").join("..").join(inventory), dir.0.join("vxmesh.yaml")).unwrap();
    let r = vxmesh(&dir.0, args);
    assert_eq!(r.code, 0, "{r}");
    r.stdout
}

#[test]
fn example_plan_offline() {
    insta::assert_snapshot!(run_on("inventory.example.yaml", &["plan", "--offline"]));
}

#[test]
fn example_render_vm2() {
    insta::assert_snapshot!(run_on("inventory.example.yaml", &["render", "vm2"]));
}

#[test]
fn example_plan_offline_json() {
    let out = run_on("inventory.example.yaml", &["plan", "--offline", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    insta::assert_json_snapshot!(v);
}

#[test]
fn twelve_node_plan_offline() {
    insta::assert_snapshot!(run_on("tests/fixtures/twelve-nodes.yaml", &["plan", "--offline"]));
}

#[test]
fn twelve_node_plan_has_every_pair_once_per_side() {
    let out = run_on("tests/fixtures/twelve-nodes.yaml", &["plan", "--offline", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["tunnel_pairs"], 66);
    let mut ends = std::collections::BTreeSet::new();
    for n in v["nodes"].as_array().unwrap() {
        let me = n["desired"]["name"].as_str().unwrap();
        let tunnels = n["desired"]["tunnels"].as_array().unwrap();
        assert_eq!(tunnels.len(), 11);
        for t in tunnels {
            assert_eq!(t["protected"], true, "split horizon on every tunnel");
            assert_eq!(t["bfd"], true);
            ends.insert((me.to_string(), t["peer"].as_str().unwrap().to_string()));
        }
    }
    assert_eq!(ends.len(), 132, "12 x 11 ordered pairs, each exactly once");
    assert!(ends.iter().all(|(a, b)| ends.contains(&(b.clone(), a.clone()))), "every tunnel has its other end");
}

/// Encryption: the WireGuard interface, the fail-closed route and the firewall's two chains, with VXLAN
/// between WireGuard addresses and the MTU less both headers. Offline, peers' keys are not known yet.
#[test]
fn encrypted_render_vm2() {
    insta::assert_snapshot!(run_on("tests/fixtures/encrypted.yaml", &["render", "vm2"]));
}

#[test]
fn encrypted_plan_offline_json() {
    let out = run_on("tests/fixtures/encrypted.yaml", &["plan", "--offline", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    insta::assert_json_snapshot!(v);
}
