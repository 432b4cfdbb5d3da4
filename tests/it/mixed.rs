//! Mixed-family clusters: dual-stack hosts list an underlay address per family and the tunnels use the one every
//! host has. Offline, the family chosen and refused; in `mixed::lab`, the proof on a dual-stack lab.

use crate::util::{TempDir, vxmesh};

/// Three hosts with both families; the third, when `v4_only`, with IPv4 only.
fn inventory(cluster_extra: &str, v4_only: bool) -> String {
    let third = if v4_only { "192.0.2.3".to_string() } else { "[192.0.2.3, \"fd00::3\"]".to_string() };
    format!(
        "cluster:\n  cidr: 172.16.0.0/12\n{cluster_extra}nodes:\n  - {{name: a, host: 192.0.2.1, underlay_ip: [192.0.2.1, \
         \"fd00::1\"]}}\n  - {{name: b, host: 192.0.2.2, underlay_ip: [\"fd00::2\", 192.0.2.2]}}\n  - {{name: c, host: \
         192.0.2.3, underlay_ip: {third}}}\n"
    )
}

/// `plan --offline --json` of `text`: each node's underlay address and overhead.
fn planned(text: &str) -> Vec<(String, u64)> {
    let dir = TempDir::new("mixed");
    std::fs::write(dir.0.join("vxmesh.yaml"), text).unwrap();
    let r = vxmesh(&dir.0, &["plan", "--offline", "--json"]);
    assert_eq!(r.code, 0, "{r}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let nodes = v["nodes"].as_array().unwrap();
    nodes
        .iter()
        .map(|n| {
            (n["desired"]["underlay_ip"].as_str().unwrap().to_string(), n["desired"]["overhead"].as_u64().unwrap())
        })
        .collect()
}

#[test]
fn dual_stack_hosts_tunnel_over_ipv4_unless_told_ipv6() {
    let v4 = planned(&inventory("", false));
    assert_eq!(v4, [("192.0.2.1".into(), 50), ("192.0.2.2".into(), 50), ("192.0.2.3".into(), 50)]);
    let v6 = planned(&inventory("  underlay_family: ipv6\n", false));
    assert_eq!(v6, [("fd00::1".into(), 70), ("fd00::2".into(), 70), ("fd00::3".into(), 70)]);
    // An IPv4-only host among them: IPv4 is the family every host has.
    assert_eq!(planned(&inventory("", true))[1], ("192.0.2.2".into(), 50));
    // The plan's first line says which family the tunnels took.
    for (extra, family) in [("", "IPv4"), ("  underlay_family: ipv6\n", "IPv6")] {
        let dir = TempDir::new("mixed");
        std::fs::write(dir.0.join("vxmesh.yaml"), inventory(extra, false)).unwrap();
        let r = vxmesh(&dir.0, &["plan", "--offline"]);
        let first = r.stdout.lines().next().unwrap_or_default();
        assert!(first.ends_with(&format!(", tunnels over {family}")), "{first}");
    }
}

#[test]
fn forcing_ipv6_with_an_ipv4_only_host_is_refused_offline_naming_it() {
    let dir = TempDir::new("mixed");
    std::fs::write(dir.0.join("vxmesh.yaml"), inventory("  underlay_family: ipv6\n", true)).unwrap();
    let r = vxmesh(&dir.0, &["plan", "--offline"]);
    assert_ne!(r.code, 0, "{r}");
    assert!(
        r.stderr.contains(
            "nodes[c].underlay_ip: `192.0.2.3` (IPv4) has no IPv6 address, but cluster.underlay_family is `ipv6`"
        ),
        "{r}"
    );
    assert!(!dir.0.join("vxmesh.lock").exists(), "a refused inventory allocates nothing");
}

/// The proof on real daemons: `lab create --dual-stack` (kernel backend), with and without an IPv4-only host.
mod lab {
    use std::path::Path;

    use crate::labkit::{Capture, Lab, both_families_between_every_pair, start_probes};
    use crate::util::{TempDir, vxmesh};
    use vxmesh::lab::{self, LabState};

    /// Creates a 3-host dual-stack lab named `name` (its hosts in `ipv4_only` without IPv6), checks each host's
    /// underlay addresses, and returns it with its inventory text.
    fn dual_stack_lab(work: &Path, name: &str, ipv4_only: &[&str]) -> (LabState, String) {
        let mut args = vec!["lab", "create", "--name", name, "--nodes", "3", "--backend", "linux", "--dual-stack"];
        for n in ipv4_only {
            args.extend(["--ipv4-only", n]);
        }
        let r = vxmesh(work, &args);
        assert_eq!(r.code, 0, "{r}");
        let lab = lab::load(name).unwrap();
        let text = std::fs::read_to_string(lab.inventory_path()).unwrap();
        for n in &lab.nodes {
            let v6 = lab::ipv6::node_address(&lab, n);
            let has = lab::node_exec(&lab, &n.name, "ip -o address show dev eth0 scope global").unwrap();
            assert!(has.contains(&format!(" {}/24 ", n.ip)), "{}: {has}", n.name);
            let listed = format!("underlay_ip: [{}, \"{v6}\"]", n.ip);
            if ipv4_only.contains(&n.name.as_str()) {
                assert!(!has.contains(" inet6 "), "{}: IPv6 on an IPv4-only host: {has}", n.name);
                assert!(!text.contains(&listed), "{text}");
            } else {
                assert!(has.contains(&format!(" {v6}/64 ")), "{}: {has}", n.name);
                assert!(text.contains(&listed), "{text}");
            }
        }
        (lab, text)
    }

    /// `text` with `lines` added at the top of the `cluster:` section.
    fn with_cluster(text: &str, lines: &str) -> String {
        let out = text.replacen("\ncluster:\n", &format!("\ncluster:\n{lines}"), 1);
        assert_ne!(out, text, "no `cluster:` section in\n{text}");
        out
    }

    /// `up` with the lab's bridge captured meanwhile; `up` verified the mesh at `mtu`. Returns the capture.
    fn up_captured(lab: &LabState, dir: &Path, mtu: u32) -> Capture {
        let mut cap = Capture::on_machine(dir, &lab.bridge);
        let up = vxmesh(dir, &["up"]);
        cap.stop();
        assert_eq!(up.code, 0, "{up}");
        assert!(up.stdout.contains("verify: 6/6 pairs ok"), "{up}");
        assert!(up.stdout.contains(&format!("full-size {mtu} byte packets with DF")), "overlay MTU {mtu}: {up}");
        cap
    }

    /// `verify` alone passes, and a second `up` changes nothing.
    fn verify_and_up_again(dir: &Path) {
        let verify = vxmesh(dir, &["verify"]);
        assert_eq!(verify.code, 0, "{verify}");
        assert!(verify.stdout.contains("6/6 pairs ok"), "{verify}");
        let again = vxmesh(dir, &["up"]);
        assert_eq!(again.code, 0, "{again}");
        assert!(again.stdout.contains("3 hosts: 0 changed, 3 ok"), "the second up changes nothing: {again}");
    }

    /// What of the mesh each host holds: devices, WireGuard, vxmesh's files. Empty on a host vxmesh never touched.
    fn mesh_left(lab: &LabState) -> Vec<String> {
        let script = "for d in sw0 vxm-vxlan vxm-wg vxm-sw0 vxm-dkr; do ip link show dev $d >/dev/null 2>&1 && echo $d; \
                      done; ls /etc/vxmesh 2>/dev/null; iptables -S 2>/dev/null | grep -c VXMESH | grep -v '^0$'; \
                      ip6tables -S 2>/dev/null | grep -c VXMESH | grep -v '^0$'; true";
        lab.nodes
            .iter()
            .filter_map(|n| {
                let left = lab::node_exec(lab, &n.name, script).unwrap();
                (!left.trim().is_empty())
                    .then(|| format!("{}: {}", n.name, left.split_whitespace().collect::<Vec<_>>().join(" ")))
            })
            .collect()
    }

    fn down_leaves_nothing(lab: &LabState, dir: &Path) {
        let down = vxmesh(dir, &["down", "--yes"]);
        assert_eq!(down.code, 0, "{down}");
        let left = mesh_left(lab);
        assert!(left.is_empty(), "down left: {left:?}");
    }

    /// (a) Every host dual-stack, `underlay_family: ipv6`, encrypted: WireGuard crosses the underlay as IPv6 UDP
    /// only, though every host also has IPv4 there (and SSH runs over it).
    #[test]
    fn dual_stack_hosts_carry_wireguard_over_ipv6_when_told() {
        let Some(_held) = Lab::new("lab6a").reserve() else { return };
        let work = TempDir::new("mixed-lab-a");
        let (lab, text) = dual_stack_lab(&work.0, "lab6a", &[]);
        // Containers dual-stack too (`cidr6`): both families between every pair, inside the tunnels.
        let text =
            with_cluster(&text, "  underlay_family: ipv6\n  encryption: wireguard\n  cidr6: \"fd42:7:2::/48\"\n");
        std::fs::write(work.0.join("vxmesh.yaml"), &text).unwrap();
        // 1500 - 50 - 80: VXLAN between the IPv4 WireGuard addresses, WireGuard over IPv6.
        let mut cap = Capture::on_machine(&work.0, &lab.bridge);
        let up = vxmesh(&work.0, &["up"]);
        assert_eq!(up.code, 0, "{up}");
        assert!(up.stdout.contains("full-size 1370 byte packets with DF"), "{up}");
        let probes = start_probes(&lab);
        both_families_between_every_pair(&lab, &probes, 1370);
        cap.stop();
        let over6 = cap.count("ip6 and udp port 51820");
        assert!(over6 > 100, "{over6} WireGuard packets over IPv6 on the underlay");
        assert_eq!(cap.count("ip and udp port 51820"), 0, "WireGuard over IPv4 with underlay_family: ipv6");
        assert_eq!(cap.count("udp port 4789"), 0, "VXLAN in clear beside WireGuard");
        assert_eq!(cap.count("ip6 and src net fd42:7:2::/48"), 0, "container IPv6 in clear on the underlay");
        for n in &lab.nodes {
            lab::node_exec(&lab, &n.name, "docker rm -f v6probe >/dev/null").unwrap();
        }
        verify_and_up_again(&work.0);
        down_leaves_nothing(&lab, &work.0);
    }

    /// (b) One IPv4-only host, two dual-stack: forcing IPv6 is refused before any host is touched; left to
    /// `auto`, the mesh runs over IPv4, the family every host has.
    #[test]
    fn an_ipv4_only_host_among_dual_stack_ones_meshes_over_ipv4() {
        let Some(_held) = Lab::new("lab6b").reserve() else { return };
        let work = TempDir::new("mixed-lab-b");
        let (lab, text) = dual_stack_lab(&work.0, "lab6b", &["node3"]);

        std::fs::write(work.0.join("vxmesh.yaml"), with_cluster(&text, "  underlay_family: ipv6\n")).unwrap();
        for cmd in [&["plan", "--offline"][..], &["up"]] {
            let r = vxmesh(&work.0, cmd);
            assert_ne!(r.code, 0, "{r}");
            assert!(r.stderr.contains("nodes[node3].underlay_ip: `"), "{r}");
            assert!(r.stderr.contains("has no IPv6 address, but cluster.underlay_family is `ipv6`"), "{r}");
        }
        let left = mesh_left(&lab);
        assert!(left.is_empty(), "a refused inventory touched hosts: {left:?}");

        // Containers dual-stack though node3's underlay is IPv4 only: their IPv6 rides inside the tunnels.
        let text = with_cluster(&text, "  cidr6: \"fd42:7:3::/48\"\n");
        std::fs::write(work.0.join("vxmesh.yaml"), &text).unwrap();
        let cap = up_captured(&lab, &work.0, 1450);
        let over4 = cap.count("ip and udp port 4789");
        assert!(over4 > 20, "{over4} VXLAN packets over IPv4 on the underlay");
        assert_eq!(cap.count("ip6 and udp port 4789"), 0, "VXLAN over IPv6 though node3 has no IPv6");
        let probes = start_probes(&lab);
        both_families_between_every_pair(&lab, &probes, 1450);
        for n in &lab.nodes {
            lab::node_exec(&lab, &n.name, "docker rm -f v6probe >/dev/null").unwrap();
        }
        verify_and_up_again(&work.0);
        down_leaves_nothing(&lab, &work.0);
    }
}
