//! Tunnels over an IPv6 underlay: offline, what the plan and scripts say (VXLAN and WireGuard over IPv6, the
//! overlay MTU less 70 or 50 + 80 bytes, nftables matching `ip6 saddr`); in `lab::`, the proof on an IPv6-only lab.

use crate::util::{TempDir, fixtures, plan_of, vxmesh};

/// Runs vxmesh in a scratch copy of `inventory`, so the lock it writes lands there.
fn run_on(inventory: &str, args: &[&str]) -> String {
    let dir = TempDir::new("ipv6");
    std::fs::copy(fixtures().join(inventory), dir.0.join("vxmesh.yaml")).unwrap();
    let r = vxmesh(&dir.0, args);
    assert_eq!(r.code, 0, "{r}");
    r.stdout
}

fn node_json(inventory: &str, node: &str) -> serde_json::Value {
    let out = run_on(inventory, &["plan", "--offline", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let nodes = v["nodes"].as_array().unwrap();
    nodes.iter().find(|n| n["desired"]["name"] == node).unwrap()["desired"].clone()
}

/// What `render` writes on an IPv6 underlay. (The `mtu: auto` preamble is checked where it is made:
/// `shell::learn_mtu`'s tests; `render` hands it the node's address once converge reads `NodePlan::underlay`.)
#[test]
fn render_puts_the_tunnels_and_the_firewall_on_ipv6() {
    let out = run_on("ipv6.yaml", &["render", "vm2"]);
    for line in [
        "# mtu: auto = the underlay device's MTU minus 70 bytes of VXLAN headers.",
        "ip link add vxm-vxlan mtu \"$MTU\" type vxlan id 42 dstport 4789 local fd78::12",
        "bridge fdb append 00:00:00:00:00:00 dev vxm-vxlan dst fd78::11",
        "bridge fdb append 00:00:00:00:00:00 dev vxm-vxlan dst fd78::13",
        "  set peers { type ipv6_addr; elements = { fd78::11, fd78::13 }; }",
        "    udp dport 4789 ip6 saddr != @peers counter drop comment \"vxmesh\"",
    ] {
        assert!(out.lines().any(|l| l == line), "missing `{line}` in\n{out}");
    }
    assert!(!out.contains(" ip saddr"), "an `ip saddr` rule matches no IPv6 packet:\n{out}");
}

#[test]
fn encrypted_render_guards_wireguard_on_ipv6_and_vxlan_on_the_ipv4_mesh() {
    let out = run_on("ipv6-encrypted.yaml", &["render", "vm2"]);
    for line in [
        "# mtu: auto = the underlay device's MTU minus 130 bytes of VXLAN and WireGuard headers.",
        "WG_MTU=$(( $MTU + 50 ))",
        "ip link add vxm-vxlan mtu \"$MTU\" type vxlan id 42 dstport 4789 local 198.19.0.2",
        "  set peers { type ipv6_addr; elements = { fd78::11, fd78::13 }; }",
        "  set mesh { type ipv4_addr; elements = { 198.19.0.1, 198.19.0.3 }; }",
        "    udp dport 51820 ip6 saddr != @peers counter drop comment \"vxmesh\"",
        "    udp dport 4789 ip saddr != @mesh counter drop comment \"vxmesh\"",
    ] {
        assert!(out.lines().any(|l| l == line), "missing `{line}` in\n{out}");
    }
}

#[test]
fn plain_tunnels_run_between_ipv6_underlay_addresses_less_70_bytes() {
    let n = node_json("ipv6.yaml", "vm2");
    assert_eq!(n["underlay_ip"], "fd78::12");
    assert_eq!(n["tunnel_ip"], "fd78::12");
    assert_eq!(n["overhead"], 70, "outer IPv6 40 + UDP 8 + VXLAN 8 + inner Ethernet 14");
    let remotes: Vec<&str> =
        n["tunnels"].as_array().unwrap().iter().map(|t| t["remote_ip"].as_str().unwrap()).collect();
    assert_eq!(remotes, ["fd78::11", "fd78::13"], "vm3's tunnel endpoint is its underlay_ip, not its SSH address");
    assert_eq!(n["firewall"]["peers"], serde_json::json!(["fd78::11", "fd78::13"]));
}

#[test]
fn encrypted_endpoints_are_bracketed_ipv6_and_vxlan_stays_on_wireguard_ipv4() {
    let n = node_json("ipv6-encrypted.yaml", "vm2");
    assert_eq!(n["overhead"], 130, "VXLAN over IPv4 WireGuard addresses 50 + WireGuard over IPv6 80");
    let endpoints: Vec<&str> =
        n["wireguard"]["peers"].as_array().unwrap().iter().map(|p| p["endpoint"].as_str().unwrap()).collect();
    assert_eq!(endpoints, ["[fd78::11]:51820", "[fd78::13]:51820"]);
    for t in n["tunnels"].as_array().unwrap() {
        let ip: std::net::IpAddr = t["remote_ip"].as_str().unwrap().parse().unwrap();
        assert!(ip.is_ipv4(), "VXLAN runs between WireGuard addresses: {ip}");
    }
}

#[test]
fn with_cluster_mtu_takes_the_ipv6_overhead() {
    let text = std::fs::read_to_string(fixtures().join("ipv6.yaml")).unwrap();
    let (_, plan) = plan_of(&text);
    let sized = plan.with_cluster_mtu([1500, 1500, 1480]);
    for n in &sized.nodes {
        assert_eq!(n.mtu, vxmesh::model::inventory::MtuSetting::Fixed(1480 - 70), "{}", n.name);
    }
    let text = std::fs::read_to_string(fixtures().join("ipv6-encrypted.yaml")).unwrap();
    let (_, plan) = plan_of(&text);
    let sized = plan.with_cluster_mtu([1500]);
    assert_eq!(sized.nodes[0].mtu, vxmesh::model::inventory::MtuSetting::Fixed(1500 - 130));
}

#[test]
fn an_ipv4_cluster_plans_as_before() {
    let (_, plan) =
        plan_of("cluster: {cidr: 10.0.0.0/8}\nnodes: [{name: a, host: 192.0.2.1}, {name: b, host: 192.0.2.2}]\n");
    assert_eq!(plan.nodes[0].overhead, 50);
    assert_eq!(plan.nodes[0].underlay.to_string(), "192.0.2.1");
}

/// OVS: `remote_ip` the peer's IPv6 address, and `local_ip` the node's own (a host has several IPv6 addresses).
#[test]
fn ovs_tunnels_name_both_ipv6_ends() {
    let dir = TempDir::new("ipv6-ovs");
    let inv = "cluster: {name: six, cidr: 172.16.0.0/12, backend: ovs, firewall: nftables}\nnodes:\n  - {name: vm1, host: \"fd78::11\"}\n  - {name: vm2, host: \"fd78::12\"}\n";
    std::fs::write(dir.0.join("vxmesh.yaml"), inv).unwrap();
    let r = vxmesh(&dir.0, &["render", "vm2"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(
        r.stdout.contains(" type=vxlan options:remote_ip=fd78::11 options:local_ip=fd78::12 options:key=42 "),
        "{}",
        r.stdout
    );
}

/// The proof on real daemons: an IPv6-only lab (`lab create --ipv6-only`, kernel backend), plain then encrypted.
mod lab {
    use crate::labkit::{Capture, Lab, both_families_between_every_pair, start_probes};
    use crate::util::{TempDir, vxmesh};
    use vxmesh::lab::{self, LabState};

    const NAME: &str = "v6p";

    /// `up` (the mesh verified at the given overlay MTU) with the lab's underlay captured meanwhile: tunnels
    /// as IPv6 UDP to `port`, and not one IPv4 packet.
    fn up_over_ipv6_only(lab: &LabState, dir: &std::path::Path, mtu: u32, port: u16) {
        let mut cap = Capture::on_machine(dir, &lab.bridge);
        let up = vxmesh(dir, &["up"]);
        cap.stop();
        assert_eq!(up.code, 0, "{up}");
        assert!(up.stdout.contains("verify: 6/6 pairs ok"), "{up}");
        assert!(up.stdout.contains(&format!("full-size {mtu} byte packets with DF")), "overlay MTU {mtu}: {up}");
        let tunnels = cap.count(&format!("ip6 and udp port {port}"));
        assert!(tunnels > 20, "{tunnels} IPv6 tunnel packets on the underlay");
        assert_eq!(cap.count("ip"), 0, "IPv4 on an IPv6-only underlay");
        if port != 4789 {
            assert_eq!(cap.count("udp port 4789"), 0, "VXLAN in clear beside WireGuard");
        }
        let again = vxmesh(dir, &["up"]);
        assert_eq!(again.code, 0, "{again}");
        assert!(again.stdout.contains("3 hosts: 0 changed, 3 ok"), "the second up changes nothing: {again}");
    }

    /// `down`, then nothing of the mesh on any host: no VXLAN or WireGuard device, no nftables table, no sw0.
    fn down_leaves_nothing(lab: &LabState, dir: &std::path::Path) {
        let down = vxmesh(dir, &["down", "--yes"]);
        assert_eq!(down.code, 0, "{down}");
        for n in &lab.nodes {
            let left = lab::node_exec(
                lab,
                &n.name,
                "for d in sw0 vxm-vxlan vxm-wg vxm-sw0; do ip link show dev $d >/dev/null 2>&1 && echo $d; done; \
                 nft list table inet vxmesh >/dev/null 2>&1 && echo nft; true",
            )
            .unwrap();
            assert_eq!(left.trim(), "", "{} keeps: {left}", n.name);
        }
    }

    /// Creates the IPv6-only lab (3 hosts of `backend`) and writes its inventory into `work`: the inventory text.
    fn ipv6_only_lab(work: &std::path::Path, backend: &str) -> (LabState, String) {
        let r = vxmesh(work, &["lab", "create", "--name", NAME, "--nodes", "3", "--backend", backend, "--ipv6-only"]);
        assert_eq!(r.code, 0, "{r}");
        let lab = lab::load(NAME).unwrap();
        for n in &lab.nodes {
            // The underlay device: eth0 on a kernel host, br-phy (eth0 its port) on an OVS host.
            let v4 = lab::node_exec(
                &lab,
                &n.name,
                "ip -o -4 address show dev eth0; ip -o -4 address show dev br-phy 2>/dev/null; true",
            )
            .unwrap();
            assert_eq!(v4.trim(), "", "{}: IPv4 left on the underlay", n.name);
        }
        let text = std::fs::read_to_string(lab.inventory_path()).unwrap();
        assert!(text.contains(&format!("host: \"{}\"", lab::ipv6::node_address(&lab, &lab.nodes[0]))), "{text}");
        std::fs::write(work.join("vxmesh.yaml"), &text).unwrap();
        (lab, text)
    }

    #[test]
    fn an_ipv6_only_lab_meshes_plain_and_encrypted() {
        let Some(_held) = Lab::new(NAME).reserve() else { return };
        let work = TempDir::new("ipv6-lab");
        let (lab, text) = ipv6_only_lab(&work.0, "linux");
        // 1500 - 70: outer IPv6 40, UDP 8, VXLAN 8, inner Ethernet 14.
        up_over_ipv6_only(&lab, &work.0, 1430, 4789);
        down_leaves_nothing(&lab, &work.0);

        let sealed = text.replacen("\n  firewall: nftables", "\n  encryption: wireguard\n  firewall: nftables", 1);
        assert_ne!(sealed, text);
        std::fs::write(work.0.join("vxmesh.yaml"), &sealed).unwrap();
        // 1500 - 50 - 80: VXLAN between the IPv4 WireGuard addresses, WireGuard over IPv6.
        up_over_ipv6_only(&lab, &work.0, 1370, 51820);
        down_leaves_nothing(&lab, &work.0);

        // The iptables firewall: its chains in ip6tables, VXLAN only from the peers.
        let iptables = text.replacen("\n  firewall: nftables", "\n  firewall: iptables", 1);
        std::fs::write(work.0.join("vxmesh.yaml"), &iptables).unwrap();
        up_over_ipv6_only(&lab, &work.0, 1430, 4789);
        let chain = lab::node_exec(&lab, "node1", "ip6tables -S VXMESH-VXLAN").unwrap();
        let peer = lab::ipv6::node_address(&lab, &lab.nodes[1]);
        assert!(chain.contains(&format!("-A VXMESH-VXLAN -s {peer}/128 ")), "{chain}");
        down_leaves_nothing(&lab, &work.0);
        let left = lab::node_exec(&lab, "node1", "ip6tables-save -t filter | grep -c VXMESH || true").unwrap();
        assert_eq!(left.trim(), "0", "ip6tables chains left after down");
    }

    /// OVS's userspace datapath sends VXLAN over IPv6 itself (`remote_ip` and `local_ip` on br-phy's address).
    #[test]
    fn an_ipv6_only_ovs_lab_meshes() {
        let Some(_held) = Lab::new(NAME).reserve() else { return };
        let work = TempDir::new("ipv6-ovs-lab");
        let (lab, _) = ipv6_only_lab(&work.0, "ovs");
        up_over_ipv6_only(&lab, &work.0, 1430, 4789);
        down_leaves_nothing(&lab, &work.0);
    }

    /// Gives the outside host an IPv6 address on the lab's network: what a container tries to reach.
    fn outside6(lab: &LabState) -> std::net::Ipv6Addr {
        let mut seg = lab::ipv6::gateway(lab).segments();
        seg[7] = 0x250;
        let addr = std::net::Ipv6Addr::from(seg);
        let ns = &lab.outside.netns;
        let out = std::process::Command::new("ip")
            .args(["-n", ns, "-6", "addr", "replace", &format!("{addr}/64"), "dev", "eth0", "nodad"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        addr
    }

    /// Whether node1's container reaches `target` (ping), and the sources the outside saw meanwhile.
    fn ping_outside(lab: &LabState, dir: &std::path::Path, target: std::net::Ipv6Addr) -> (bool, usize, usize) {
        let mut cap = Capture::start(dir, "outside6", Some(&lab.outside.netns), "eth0");
        std::thread::sleep(std::time::Duration::from_millis(500));
        let ok = lab::node_exec(
            lab,
            "node1",
            &format!("docker exec v6probe ping -c2 -W2 {target} >/dev/null 2>&1 && echo ok; true"),
        )
        .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        cap.stop();
        let node1 = lab::ipv6::node_address(lab, &lab.nodes[0]);
        let from_host = cap.count(&format!("icmp6 and src host {node1} and dst host {target}"));
        let from_container = cap.count(&format!("icmp6 and src net fd42:7:1::/48 and dst host {target}"));
        (ok.trim() == "ok", from_host, from_container)
    }

    /// Dual-stack containers on an IPv6-only lab (OVS and kernel hosts mixed): both families between every pair,
    /// what leaves the range as `outside6` says, a node removed and added back, nothing left after `down`.
    #[test]
    fn dual_stack_containers_on_an_ipv6_only_lab() {
        let Some(_held) = Lab::new(NAME).reserve() else { return };
        let work = TempDir::new("ipv6-dual");
        let (lab, text) = ipv6_only_lab(&work.0, "mixed");
        let dual = text.replacen("\n  firewall: nftables", "\n  firewall: nftables\n  cidr6: \"fd42:7:1::/48\"", 1);
        assert_ne!(dual, text);
        std::fs::write(work.0.join("vxmesh.yaml"), &dual).unwrap();
        // node2 takes its IPv6 default route from router advertisements (one made by hand, towards the lab's own
        // network): IPv6 forwarding must not make it ignore them.
        let ra = "sysctl -qw net.ipv6.conf.eth0.accept_ra=1; ip -6 route replace default via fe80::1 dev eth0 proto ra";
        lab::node_exec(&lab, "node2", ra).unwrap();
        up_over_ipv6_only(&lab, &work.0, 1430, 4789);
        let accept_ra = lab::node_exec(&lab, "node2", "cat /proc/sys/net/ipv6/conf/eth0/accept_ra").unwrap();
        assert_eq!(accept_ra.trim(), "2", "node2's advertised default route would expire under forwarding");
        lab::node_exec(&lab, "node2", "ip -6 route del default via fe80::1 dev eth0 proto ra").unwrap();
        let probes = start_probes(&lab);
        both_families_between_every_pair(&lab, &probes, 1430);

        // outside6: none (the default) drops it; masquerade shows the host's address; route the container's own.
        let target = outside6(&lab);
        let (ok, from_host, from_container) = ping_outside(&lab, &work.0, target);
        assert!(
            !ok && from_host + from_container == 0,
            "outside6: none let {from_container} packets out as the container, {from_host} as the host"
        );
        std::fs::write(
            work.0.join("vxmesh.yaml"),
            dual.replacen("\n  cidr6:", "\n  outside6: masquerade\n  cidr6:", 1),
        )
        .unwrap();
        let up = vxmesh(&work.0, &["up"]);
        assert_eq!(up.code, 0, "{up}");
        let (ok, from_host, from_container) = ping_outside(&lab, &work.0, target);
        assert!(ok && from_host > 0 && from_container == 0, "masquerade: {ok} {from_host} {from_container}");
        std::fs::write(work.0.join("vxmesh.yaml"), dual.replacen("\n  cidr6:", "\n  outside6: route\n  cidr6:", 1))
            .unwrap();
        let up = vxmesh(&work.0, &["up"]);
        assert_eq!(up.code, 0, "{up}");
        let node1 = lab::ipv6::node_address(&lab, &lab.nodes[0]);
        let back = std::process::Command::new("ip")
            .args(["-n", &lab.outside.netns, "-6", "route", "replace", "fd42:7:1::/48", "via", &node1.to_string()])
            .output()
            .unwrap();
        assert!(back.status.success(), "{back:?}");
        let (ok, from_host, from_container) = ping_outside(&lab, &work.0, target);
        assert!(ok && from_host == 0 && from_container > 0, "route: {ok} {from_host} {from_container}");
        // Routed, not opened: the outside cannot start a conversation with a container.
        let c1 = &probes[0].2;
        let inbound = std::process::Command::new("ip")
            .args(["netns", "exec", &lab.outside.netns, "ping", "-c1", "-W2", c1])
            .output()
            .unwrap();
        assert!(!inbound.status.success(), "the outside reached container {c1} unasked");
        std::fs::write(work.0.join("vxmesh.yaml"), &dual).unwrap();

        // node3 leaves (its containers first: remove-node refuses to cut them off): its block's routes go from the
        // others; back again, the pairs work again.
        lab::node_exec(&lab, "node3", "docker rm -f v6probe >/dev/null").unwrap();
        let r = vxmesh(&work.0, &["remove-node", "node3", "--yes"]);
        assert_eq!(r.code, 0, "{r}");
        let routes = lab::node_exec(&lab, "node1", "ip -6 route show dev sw0 | grep -c via; true").unwrap();
        assert_eq!(routes.trim(), "1", "node1 keeps a route to node3's block after remove-node");
        let host3 = lab::ipv6::node_address(&lab, &lab.nodes[2]).to_string();
        let r = vxmesh(&work.0, &["add-node", "node3", "--host", &host3]);
        assert_eq!(r.code, 0, "{r}");
        let up = vxmesh(&work.0, &["up"]);
        assert_eq!(up.code, 0, "{up}");
        let probes = start_probes(&lab);
        both_families_between_every_pair(&lab, &probes, 1430);

        for n in &lab.nodes {
            lab::node_exec(&lab, &n.name, "docker rm -f v6probe >/dev/null 2>&1; true").unwrap();
        }
        down_leaves_nothing(&lab, &work.0);
        for n in &lab.nodes {
            let left = lab::node_exec(&lab, &n.name, "ip6tables-save | grep -c VXMESH; true").unwrap();
            assert_eq!(left.trim(), "0", "{}: ip6tables chains left after down", n.name);
        }
    }
}
