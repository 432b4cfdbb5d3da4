//! Every bad inventory under tests/fixtures/bad/ is refused with the message its first line expects.

use std::path::Path;

use crate::util::fixtures;

#[test]
fn every_bad_inventory_names_place_and_value() {
    let dir = fixtures().join("bad");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 20, "the corpus keeps at least 20 bad inventories, has {}", files.len());
    let mut failures = vec![];
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{}: first line must be `# expect: MESSAGE`", path.display()));
        // Messages name the file as the user gave it; give it relative, as a user would.
        let rel = Path::new(path.file_name().unwrap());
        let got = match vxmesh::model::inventory::parse(rel, &text) {
            Ok(_) => "accepted".to_string(),
            Err(e) => e.to_string(),
        };
        if !got.contains(expect) {
            failures.push(format!("{}\n  expected: {expect}\n  got:      {got}", rel.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = "cluster:\n  cidr: 172.16.0.0/12\n  vni: 0\n  port: 0\nnodes:\n  - {name: a, host: 10.0.0.1}\n  - {name: a, host: 10.0.0.1}\n";
    let e = vxmesh::model::inventory::parse(Path::new("v.yaml"), text).unwrap_err().to_string();
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(lines.len(), 5, "{e}");
    assert!(lines[0].starts_with("v.yaml:3:8: cluster.vni: `0`"), "{e}");
    assert!(lines[1].starts_with("v.yaml:4:9: cluster.port: `0`"), "{e}");
}

#[test]
fn the_example_inventory_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("inventory.example.yaml");
    let inv = vxmesh::model::inventory::load(&path).unwrap();
    assert_eq!(inv.nodes.len(), 3);
    assert_eq!(inv.cluster.switch_cidr.to_string(), "172.30.0.0/16");
}

#[test]
fn minimal_inventory_gets_documented_defaults() {
    let inv = vxmesh::model::inventory::parse(
        Path::new("m.yaml"),
        "cluster: {cidr: 10.0.0.0/8}\nnodes: [{name: a, host: 192.0.2.1}]\n",
    )
    .unwrap();
    let c = &inv.cluster;
    assert_eq!((c.name.as_str(), c.node_prefix, c.vni, c.port), ("vxmesh", 16, 42, 4789));
    assert_eq!(c.switch_cidr.to_string(), "10.255.0.0/16");
    assert_eq!(c.docker.network, "vxmesh");
    assert!(c.nat && c.exclude.is_empty());
    assert_eq!((inv.ssh.user.as_deref(), inv.ssh.port), (None, None), "left to ~/.ssh/config, then root and 22");
}
