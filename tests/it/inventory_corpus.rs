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
    // vni, port, the repeated name, the repeated host (said once: the tunnel endpoint taken from it is the same fault).
    assert_eq!(lines.len(), 4, "{e}");
    assert!(lines[0].starts_with("v.yaml:3:8: cluster.vni: `0`"), "{e}");
    assert!(lines[1].starts_with("v.yaml:4:9: cluster.port: `0`"), "{e}");
}

#[test]
fn every_unknown_field_is_reported_at_once() {
    let text = "cluster:\n  cidr: 10.0.0.0/8\n  encrypton: wireguard\n  docker: {mdoe: network}\nnodes:\n  - {name: a, host: 192.0.2.1, adress: x}\n";
    let e = vxmesh::model::inventory::parse(Path::new("u.yaml"), text).unwrap_err().to_string();
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(lines.len(), 3, "{e}");
    assert!(
        lines[0].starts_with("u.yaml:3:3: unknown field `encrypton`")
            && lines[0].ends_with("did you mean `encryption`?"),
        "{e}"
    );
    assert!(lines[1].starts_with("u.yaml:4:12: unknown field `mdoe`, expected one of mode, network"), "{e}");
    assert!(lines[2].starts_with("u.yaml:6:32: unknown field `adress`"), "{e}");
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

/// Every line of every message starts with the file's name: a value carrying a newline or a terminal
/// sequence is shown escaped, so no message can forge a line of its own.
#[test]
fn no_value_can_forge_a_message_line() {
    let text = "cluster:\n  cidr: 172.16.0.0/12\nnodes:\n  - {name: \"a\\nf.yaml:1:1: all good\", host: \"b\\u001b[2J\\r\"}\n  - {name: \"x\\u202ey\", host: 192.0.2.2}\n\"k\\ny\": 1\n";
    let e = vxmesh::model::inventory::parse(Path::new("f.yaml"), text).unwrap_err().to_string();
    assert!(e.lines().all(|l| l.starts_with("f.yaml:")), "{e}");
    let e = vxmesh::model::inventory::parse(Path::new("f.yaml"), &text.replace("\"k\\ny\": 1\n", ""))
        .unwrap_err()
        .to_string();
    assert_eq!(e.lines().count(), 3, "{e}");
    assert!(e.lines().all(|l| l.starts_with("f.yaml:") && !l.chars().any(char::is_control)), "{e}");
    assert!(e.contains(r"`a\nf.yaml:1:1: all good`") && e.contains(r"\u{1b}[2J\r") && e.contains(r"x\u{202e}y"), "{e}");
}

#[test]
fn the_new_rules_report_every_problem_at_once() {
    let text = "cluster:\n  cidr: 10.0.0.0/8\n  port: seventy\n  docker: {network: host}\nnodes:\n  - {name: a, host: 10.0.0.1}\n  - {name: b, host: 127.0.0.1}\n";
    let e = vxmesh::model::inventory::parse(Path::new("v.yaml"), text).unwrap_err().to_string();
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(lines.len(), 4, "{e}");
    assert!(lines[0].starts_with("v.yaml:3:9: cluster.port: `seventy`"), "{e}");
    assert!(lines[1].starts_with("v.yaml:4:21: cluster.docker.network: `host`"), "{e}");
    assert!(lines[2].starts_with("v.yaml:6:21: nodes[a].host: `10.0.0.1` lies inside cluster.cidr"), "{e}");
    assert!(lines[3].starts_with("v.yaml:7:21: nodes[b].host: `127.0.0.1` is in `127.0.0.0/8`"), "{e}");
}

#[test]
fn what_the_rules_allow_stays_allowed() {
    let ok = |text: &str| vxmesh::model::inventory::parse(Path::new("ok.yaml"), text).unwrap_or_else(|e| panic!("{e}"));
    // docker0 mode renumbers docker0, so its default range is free for the cluster.
    ok("cluster: {cidr: 172.17.5.0/24, docker: {mode: docker0}}\nnodes: [{name: a, host: 192.0.2.1}]\n");
    // `outside` may be a metadata service; an SSH address may be a loopback port forward.
    ok(
        "cluster: {cidr: 10.0.0.0/8, outside: 169.254.169.254}\nnodes: [{name: a, host: 127.0.0.1, underlay_ip: 192.0.2.1}]\n",
    );
    // A /29 is the smallest cluster: a /30 for the node, a /30 for the switches.
    let inv = ok("cluster: {cidr: 10.0.0.0/29}\nnodes: [{name: a, host: 192.0.2.1}]\n");
    assert_eq!((inv.cluster.node_prefix, inv.cluster.switch_cidr.to_string().as_str()), (30, "10.0.0.4/30"));
    // Text written as a number is kept as written; a quoted number is still a number.
    let inv = ok("cluster: {cidr: 10.0.0.0/8, name: 007, port: \"4790\"}\nnodes: [{name: 0x1F, host: 192.0.2.1}]\n");
    assert_eq!((inv.cluster.name.as_str(), inv.nodes[0].name.as_str(), inv.cluster.port), ("007", "0x1F", 4790));
    // Every docker mode but docker0 is fine when the cluster does not reach docker0's range.
    ok(
        "cluster: {cidr: 172.16.0.0/12, docker: {mode: none}, exclude: [172.17.0.0/16, 172.20.0.0/16]}\nnodes: [{name: a, host: 192.0.2.1}]\n",
    );
}

/// The room check counts free blocks by arithmetic on the reserved ranges: a /8 cut into /30s (4 M blocks)
/// validates as fast as a /24. (How fast is for benches/plan.rs: a time asserted here fails on a busy machine.)
#[test]
fn a_cluster_of_millions_of_blocks_validates_at_once() {
    let text = "cluster:\n  cidr: 10.0.0.0/8\n  node_prefix: 30\n  exclude: [10.0.0.0/9, 10.200.0.0/13]\nnodes: [{name: a, host: 192.0.2.1}]\n";
    let inv = vxmesh::model::inventory::parse(Path::new("big.yaml"), text).unwrap();
    assert_eq!(inv.cluster.switch_cidr.to_string(), "10.255.255.252/30");
    // Room is still counted exactly: 2^22 blocks, minus 2^21 and 2^17 excluded, minus the switch block.
    let many: String = (0..3).map(|i| format!("  - {{name: n{i}, host: 192.0.2.{}}}\n", i + 1)).collect();
    let tight = text
        .replace("node_prefix: 30", "node_prefix: 10")
        .replace("exclude: [10.0.0.0/9, 10.200.0.0/13]", "exclude: [10.0.0.0/9]");
    let e = vxmesh::model::inventory::parse(
        Path::new("big.yaml"),
        &tight.replace("nodes: [{name: a, host: 192.0.2.1}]\n", &format!("nodes:\n{many}")),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("has room for 1 node subnets of /10"), "{e}");
}

#[test]
fn an_inventory_over_4_mib_is_refused_before_it_is_parsed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.yaml");
    let mut text = "cluster: {cidr: 10.0.0.0/8}\nnodes: [{name: a, host: 192.0.2.1}]\n".to_string();
    text.push_str(&"#".repeat(4 * 1024 * 1024 + 1 - text.len()));
    std::fs::write(&path, &text).unwrap();
    let e = vxmesh::model::inventory::load(&path).unwrap_err().to_string();
    assert!(e.ends_with("big.yaml: is 4194305 bytes; inventories are at most 4 MiB"), "{e}");
    // A device is not read at all (one that never ends would be read no further than the limit).
    let e = vxmesh::model::inventory::load(Path::new("/dev/zero")).unwrap_err().to_string();
    assert_eq!(e, "/dev/zero: is a device, not a regular file; an inventory is a YAML file");
    // Exactly at the limit is still read (and here, valid).
    text.truncate(4 * 1024 * 1024);
    std::fs::write(&path, &text).unwrap();
    assert!(vxmesh::model::inventory::load(&path).is_ok());
}

#[test]
fn an_inventory_that_is_not_utf8_is_refused_at_the_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latin1.yaml");
    std::fs::write(&path, b"cluster: {cidr: 10.0.0.0/8}\nnodes: [{name: caf\xe9, host: 192.0.2.1}]\n").unwrap();
    let e = vxmesh::model::inventory::load(&path).unwrap_err().to_string();
    assert!(
        e.ends_with("latin1.yaml:2:19: the file is not UTF-8 text (byte `0xe9` here); save the inventory as UTF-8"),
        "{e}"
    );
}

/// A FIFO (or a device) planted as the inventory is refused without being opened for a blocking read: `plan
/// --offline` must not hang. A symlink to a regular file is still an inventory.
#[test]
fn an_inventory_that_is_not_a_regular_file_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.yaml");
    if std::process::Command::new("mkfifo").arg(&fifo).status().is_ok_and(|s| s.success()) {
        let (tx, rx) = std::sync::mpsc::channel();
        let f = fifo.clone();
        std::thread::spawn(move || tx.send(vxmesh::model::inventory::load(&f).map(|_| ()).map_err(|e| e.to_string())));
        let got = rx.recv_timeout(std::time::Duration::from_secs(20)).expect("loading a FIFO returned");
        let e = got.unwrap_err();
        assert!(e.ends_with("fifo.yaml: is a FIFO, not a regular file; an inventory is a YAML file"), "{e}");
        let e = vxmesh::model::inventory::read_text(&fifo).unwrap_err().to_string();
        assert!(e.contains("is a FIFO"), "{e}");
    }
    let e = vxmesh::model::inventory::load(dir.path()).unwrap_err().to_string();
    assert!(e.ends_with(": is a directory, not a regular file; an inventory is a YAML file"), "{e}");
    let real = dir.path().join("real.yaml");
    std::fs::write(&real, "cluster: {cidr: 10.0.0.0/8}\nnodes: [{name: a, host: 192.0.2.1}]\n").unwrap();
    let link = dir.path().join("link.yaml");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    assert_eq!(vxmesh::model::inventory::load(&link).unwrap().nodes.len(), 1);
}

/// A refusal must point at a real conflict: what used to be refused with none is accepted.
#[test]
fn settings_that_conflict_with_nothing_are_accepted() {
    let ok = |text: &str| vxmesh::model::inventory::parse(Path::new("ok.yaml"), text).unwrap_or_else(|e| panic!("{e}"));
    // WireGuard's port and range matter only with encryption on.
    let inv = ok("cluster: {cidr: 10.0.0.0/8, port: 51820}\nnodes: [{name: a, host: 192.0.2.1}]\n");
    assert_eq!(inv.cluster.port, 51820);
    ok("cluster: {cidr: 198.18.0.0/15}\nnodes: [{name: a, host: 192.0.2.1}]\n");
    ok(
        "cluster: {cidr: 10.0.0.0/8, wireguard: {cidr: 10.9.0.0/16, port: 4789}}\nnodes: [{name: a, host: 192.0.2.1}]\n",
    );
    // With encryption, the same are refused: there they are real.
    for refused in [
        "cluster: {cidr: 10.0.0.0/8, port: 51820, encryption: wireguard}",
        "cluster: {cidr: 198.18.0.0/15, encryption: wireguard}",
    ] {
        let text = format!("{refused}\nnodes: [{{name: a, host: 192.0.2.1}}]\n");
        assert!(vxmesh::model::inventory::parse(Path::new("v.yaml"), &text).is_err(), "{refused}");
    }
    // docker0 mode renumbers docker0: its default range may be the whole cluster, nothing excluded.
    let inv = ok("cluster: {cidr: 172.17.0.0/16, docker: {mode: docker0}}\nnodes: [{name: a, host: 192.0.2.1}]\n");
    assert!(inv.cluster.exclude.is_empty());
    let inv = ok("cluster: {cidr: 172.16.0.0/12}\nnodes: [{name: a, host: 192.0.2.1}]\n");
    assert_eq!(inv.cluster.exclude.len(), 1, "docker keeps docker0 in mode network: excluded by default");
    // The kernel backend with a firewall, OVS without one; a loopback SSH address with its own tunnel endpoint.
    ok("cluster: {cidr: 10.0.0.0/8, backend: linux}\nnodes: [{name: a, host: 192.0.2.1}]\n");
    ok("cluster: {cidr: 10.0.0.0/8, firewall: none}\nnodes: [{name: a, host: 192.0.2.1}]\n");
    ok(
        "cluster: {cidr: 10.0.0.0/8}\nnodes: [{name: a, host: 127.0.0.1, underlay_ip: 192.0.2.1}, {name: b, host: 192.0.2.2}]\n",
    );
    // A node's SSH address may be its own tunnel endpoint, written in both fields.
    ok("cluster: {cidr: 10.0.0.0/8}\nnodes: [{name: a, host: 192.0.2.1, underlay_ip: 192.0.2.1}]\n");
}
