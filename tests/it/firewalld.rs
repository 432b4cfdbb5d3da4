//! firewalld for real: lab hosts running firewalld (`vxmesh lab create --firewalld`: default zone `public`,
//! nftables backend, docker 20.10 beside it) with `firewall: firewalld`. Every pair talks, the rules are exactly
//! what the peers need, a second `up` changes nothing, VXLAN from an address that is not a peer never reaches the
//! tunnel, and `down` leaves nothing of vxmesh's in firewalld or iptables. The lab tests are in `lab` (root);
//! the script's order is checked offline.

use vxmesh::components::firewall::FirewalldFacts;
use vxmesh::converge;

use crate::simulate;
use crate::util::{plan_of, read_fixture};

/// firewalld's reload flushes every iptables chain while docker runs: the one reload of a first `up` must come
/// before any chain of the script, a converged host needs none, zone drift is mended without one, and no
/// firewalld command is in the boot script (firewalld restores its permanent configuration itself).
#[test]
fn firewalld_reloads_before_any_chain_only_to_make_its_zone_and_never_at_boot() {
    let yaml = read_fixture("three-nodes.yaml").replace("firewall: iptables", "firewall: firewalld");
    let (_, plan) = plan_of(&yaml);
    let node = plan.node("vm1").unwrap();
    let mut facts = converge::parse_for(node, &read_fixture("facts/bare-host.txt")).unwrap();
    facts.part_mut::<FirewalldFacts>().running = true;
    let steps = converge::diff(node, &facts);
    let script = converge::script(node, &steps);
    let reload = script.find("firewall-cmd --quiet --reload").expect("a reload makes the new zone run");
    let chain = script.find("iptables-restore").expect("the routing chains");
    assert!(reload < chain, "the reload comes before the first chain:\n{script}");
    assert_eq!(script.matches("--reload").count(), 1, "{script}");
    assert!(!converge::boot_script(node, &facts).contains("firewall-cmd"), "firewalld restores itself at boot");

    for s in &steps {
        simulate::apply(&mut facts, s);
    }
    assert!(converge::diff(node, &facts).is_empty(), "converged");
    let cfg = facts.part_mut::<vxmesh::components::firewall::FirewalldConfig>();
    cfg.running.zone.as_mut().unwrap().interfaces.remove("sw0");
    let mend = converge::script(node, &converge::diff(node, &facts));
    assert!(mend.contains("firewall-cmd --quiet --zone=vxmesh --add-interface=sw0"), "{mend}");
    assert!(!mend.contains("--reload") && !mend.contains("--permanent"), "only the running zone is mended: {mend}");
}

/// The lab tests (root): each builds a lab of hosts running firewalld.
mod lab {
    use std::path::Path;
    use std::sync::MutexGuard;

    use vxmesh::lab::LabState;

    use crate::faults::json;
    use crate::labkit::{self, Capture, LabGuard, ssh};
    use crate::util::{TempDir, vxmesh};

    const THREE: &[&str] = &["--nodes", "3", "--backend", "linux"];

    /// A lab of kernel-backend hosts running firewalld (OVS's userspace datapath reads the underlay itself, past any
    /// firewall), with the test's inventory: the lab's, `firewall: firewalld` and `extra` cluster lines.
    struct FwLab {
        work: TempDir,
        inv: String,
        lab: LabState,
        _guard: LabGuard,
        _serial: MutexGuard<'static, ()>,
    }

    fn firewalld_lab(name: &str, lab_args: &[&str], extra: &str) -> Option<FwLab> {
        if labkit::skip_without_root("network namespaces") {
            return None;
        }
        let serial = labkit::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let args = [lab_args, &["--firewalld"]].concat();
        let (guard, lab, _) = labkit::create(name, &args);
        let work = TempDir::new(&format!("lab-{name}"));
        let text = std::fs::read_to_string(lab.inventory_path()).unwrap();
        assert!(text.contains("\ncluster:\n"), "{text}");
        let text = text.replacen("\ncluster:\n", &format!("\ncluster:\n  firewall: firewalld\n{extra}"), 1);
        let path = work.0.join("vxmesh.yaml");
        std::fs::write(&path, text).unwrap();
        let inv = path.to_str().unwrap().to_string();
        Some(FwLab { work, inv, lab, _guard: guard, _serial: serial })
    }

    fn sorted_lines(s: &str) -> Vec<String> {
        let mut v: Vec<String> = s.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
        v.sort();
        v
    }

    /// The default zone's rich rules, running and permanent, each sorted. Read inside the node's namespaces, not
    /// over SSH: an IPv6-only lab has no IPv4 to reach it on. (firewall-cmd warns on stdout when an interface is in a
    /// zone other than the default, as docker's are.)
    fn default_zone_rules(lab: &LabState, node: &str) -> (Vec<String>, Vec<String>) {
        let list = |permanent: &str| {
            let script = format!("firewall-cmd {permanent} --list-rich-rules | grep '^rule'; true");
            sorted_lines(&vxmesh::lab::node_exec(lab, node, &script).unwrap())
        };
        (list(""), list("--permanent"))
    }

    /// The rules node `i` should hold: `port` from every other node, at the address `address` gives, sorted.
    fn peer_rules(
        lab: &LabState,
        i: usize,
        port: u16,
        address: impl Fn(&vxmesh::lab::LabNode) -> std::net::IpAddr,
    ) -> Vec<String> {
        let rules = lab.nodes.iter().enumerate().filter(|(j, _)| *j != i);
        sorted_lines(
            &rules.map(|(_, p)| vxmesh::components::firewall::rich_rule(address(p), port) + "\n").collect::<String>(),
        )
    }

    /// Sends five VXLAN frames (VNI `vni`, inner source MAC `mac`) to `to`: `Ok(node)` from that lab node over SSH,
    /// `Err(netns)` from that network namespace of the machine's.
    fn forge_vxlan(lab: &LabState, from: Result<&str, &str>, to: &str, vni: u32, mac: &str) {
        let family = if to.contains(':') { "AF_INET6" } else { "AF_INET" };
        let py = format!(
            "import socket; hdr = bytes([8, 0, 0, 0]) + ({vni}).to_bytes(3, 'big') + bytes(1); \
         frame = bytes.fromhex('ffffffffffff' + '{mac}' + '0806') + bytes(28); \
         s = socket.socket(socket.{family}, socket.SOCK_DGRAM); \
         [s.sendto(hdr + frame, ('{to}', 4789)) for _ in range(5)]"
        );
        match from {
            Ok(node) => {
                // In the node's namespaces, not over SSH: an IPv6-only lab has no IPv4 to reach it on.
                vxmesh::lab::node_exec(lab, node, &format!("python3 -c \"{py}\"")).unwrap();
            }
            Err(netns) => {
                let out = std::process::Command::new("ip")
                    .args(["netns", "exec", netns, "python3", "-c", &py])
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            }
        }
    }

    fn vni(lab: &LabState, node: &str) -> u32 {
        let out = vxmesh::lab::node_exec(lab, node, "ip -d link show vxm-vxlan").unwrap();
        let id = out.split_whitespace().skip_while(|w| *w != "id").nth(1).unwrap_or_else(|| panic!("{out}"));
        id.parse().unwrap()
    }

    /// What vxmesh may leave in firewalld and iptables: its zone and policy, tunnel port rules, chains.
    fn leftovers(lab: &LabState, node: &str) -> String {
        ssh(
            lab,
            node,
            "{ firewall-cmd --get-zones; firewall-cmd --get-policies; firewall-cmd --list-rich-rules; \
           firewall-cmd --permanent --list-rich-rules; } 2>/dev/null | tr ' ' '\\n' | grep -E '^vxmesh|4789|51820' ; \
         iptables-save | grep -c VXMESH | sed 's/^/iptables:/'; true",
        )
    }

    /// firewalld on an IPv6-only underlay: the default zone's rules are ipv6 rules, one per peer's IPv6 address,
    /// running and permanent; every pair talks; VXLAN over IPv6 from the outside host never reaches a tunnel.
    #[test]
    fn firewalld_on_an_ipv6_underlay_accepts_vxlan_from_each_peer_in_ipv6() {
        let Some(fl) = firewalld_lab("fwd6", &["--nodes", "3", "--backend", "linux", "--ipv6-only"], "") else {
            return;
        };
        let (dir, inv, lab): (&Path, &str, &LabState) = (&fl.work.0, &fl.inv, &fl.lab);
        // The IPv6 lab writes `firewall: nftables`; firewalld_lab put `firewall: firewalld` first.
        let text = std::fs::read_to_string(inv).unwrap();
        let text: String =
            text.lines().filter(|l| !l.starts_with("  firewall: nftables")).map(|l| l.to_string() + "\n").collect();
        std::fs::write(inv, &text).unwrap();
        assert_eq!(vxmesh::lab::node_exec(lab, "node1", "firewall-cmd --state").unwrap().trim(), "running");

        let r = vxmesh(dir, &["up", "-i", inv]);
        assert_eq!(r.code, 0, "{r}");
        assert!(r.stdout.contains("6/6 pairs ok"), "{r}");
        for (i, n) in lab.nodes.iter().enumerate() {
            let want = peer_rules(lab, i, 4789, |p| vxmesh::lab::ipv6::node_address(lab, p).into());
            assert!(want.iter().all(|r| r.starts_with("rule family=\"ipv6\" source address=\"fd76:")), "{want:?}");
            let (running, permanent) = default_zone_rules(lab, &n.name);
            assert_eq!(running, want, "{} running", n.name);
            assert_eq!(permanent, want, "{} permanent", n.name);
        }
        let r = vxmesh(dir, &["up", "-i", inv, "--no-verify"]);
        assert!(r.code == 0 && r.stdout.contains("3 hosts: 0 changed, 3 ok, 0 failed"), "{r}");

        // VXLAN over IPv6 from the outside namespace (on the lab's IPv6 network, not a peer) never reaches node1's
        // tunnel; the same frames from a peer over IPv6 do (so the capture can see them).
        let to = vxmesh::lab::ipv6::node_address(lab, lab.node("node1").unwrap()).to_string();
        let outside = lab.outside.netns.clone();
        // The IPv6 lab leaves the outside host IPv4 only: give it an address on the hosts' IPv6 network.
        let v6 = vxmesh::lab::ipv6::node_address(lab, &lab.outside);
        let script = format!(
            "dev=$(ip -o -4 addr show | awk '$4 ~ /^{}\\//{{print $2; exit}}'); ip -6 addr add {v6}/64 dev $dev nodad",
            lab.outside.ip
        );
        let added = std::process::Command::new("ip").args(["netns", "exec", &outside, "sh", "-c", &script]).output();
        assert!(added.unwrap().status.success(), "an IPv6 address for the outside host");
        let id = vni(lab, "node1");
        let from_outside = || forge_vxlan(lab, Err(&outside), &to, id, "02000000ee01");
        let seen = reaches_the_tunnel(dir, lab, (&to, ["02000000ee02", "02000000ee03"]), from_outside, "02000000ee01");
        assert_eq!(seen, 0, "VXLAN over IPv6 from a non-peer was dropped");

        let r = vxmesh(dir, &["down", "--yes", "-i", inv]);
        assert_eq!(r.code, 0, "{r}");
        let (running, permanent) = default_zone_rules(lab, "node1");
        assert!(running.is_empty() && permanent.is_empty(), "down leaves no rule: {running:?} {permanent:?}");
    }

    #[test]
    fn firewalld_hosts_carry_the_mesh_and_accept_vxlan_only_from_peers() {
        let Some(fl) = firewalld_lab("fwd1", THREE, "") else { return };
        let (dir, inv, lab): (&Path, &str, &LabState) = (&fl.work.0, &fl.inv, &fl.lab);
        assert_eq!(ssh(lab, "node1", "firewall-cmd --state").trim(), "running");

        // Up verifies every ordered pair: sw0 in firewalld's default zone rejected every forwarded packet (PR fix).
        let r = vxmesh(dir, &["up", "-i", inv, "--json"]);
        assert_eq!(r.code, 0, "{r}");
        let v = json(&r);
        assert_eq!(v["verify"]["pairs"].as_array().unwrap().len(), 6, "{r}");
        let r = vxmesh(dir, &["verify", "-i", inv]);
        assert_eq!(r.code, 0, "{r}");
        assert!(r.stdout.contains("6/6 pairs ok"), "{r}");
        // The reload that makes vxmesh's zone run flushed iptables: it must come before vxmesh's chains, not after.
        let r = vxmesh(dir, &["status", "-i", inv]);
        assert_eq!(r.code, 0, "status after up: {r}");

        // Exactly one rule per peer for the VXLAN port, running and permanent; sw0 in vxmesh's zone.
        for (i, n) in lab.nodes.iter().enumerate() {
            let want = peer_rules(lab, i, 4789, |p| p.ip.into());
            let (running, permanent) = default_zone_rules(lab, &n.name);
            assert_eq!(running, want, "{} running", n.name);
            assert_eq!(permanent, want, "{} permanent", n.name);
            assert_eq!(ssh(lab, &n.name, "firewall-cmd --get-zone-of-interface=sw0").trim(), "vxmesh");
        }

        // Again: nothing to do.
        let r = vxmesh(dir, &["up", "-i", inv, "--no-verify"]);
        assert_eq!(r.code, 0, "{r}");
        assert!(r.stdout.contains("3 hosts: 0 changed, 3 ok, 0 failed"), "{r}");

        // VXLAN from the outside host (on the underlay, not a peer) never reaches node1's tunnel; the same frames
        // from a peer do (so the capture can see them).
        let to = lab.node("node1").unwrap().ip.to_string();
        let outside = lab.outside.netns.clone();
        let id = vni(lab, "node1");
        let from_outside = || forge_vxlan(lab, Err(&outside), &to, id, "02000000ee01");
        let seen = reaches_the_tunnel(dir, lab, (&to, ["02000000ee02", "02000000ee03"]), from_outside, "02000000ee01");
        assert_eq!(seen, 0, "VXLAN from a non-peer was dropped");

        // A reboot: firewalld restores its permanent configuration (zone, policy, rules), the boot unit vxmesh's
        // chains; no firewalld step is in the boot script.
        vxmesh::lab::node_reboot(lab, "node1").unwrap();
        let r = vxmesh(dir, &["verify", "-i", inv]);
        assert_eq!(r.code, 0, "after node1's reboot: {r}");
        assert!(!ssh(lab, "node1", "cat /etc/vxmesh/boot.sh").contains("firewall-cmd"), "firewalld restores itself");

        // An admin's reload flushes every iptables chain (docker re-creates its own): status sees vxmesh's gone, and
        // up puts them back.
        ssh(lab, "node1", "firewall-cmd --quiet --reload");
        let r = vxmesh(dir, &["status", "-i", inv]);
        assert_eq!(r.code, 3, "{r}");
        let r = vxmesh(dir, &["up", "-i", inv]);
        assert_eq!(r.code, 0, "{r}");
        assert!(r.stdout.contains("6/6 pairs ok"), "{r}");

        // Drift: sw0 taken out of vxmesh's zone shows in status, and up puts it back without a reload.
        ssh(lab, "node2", "firewall-cmd --quiet --zone=vxmesh --remove-interface=sw0");
        let r = vxmesh(dir, &["status", "-i", inv]);
        assert_eq!(r.code, 3, "{r}");
        let r = vxmesh(dir, &["up", "-i", inv]);
        assert_eq!(r.code, 0, "{r}");
        assert!(r.stdout.contains("6/6 pairs ok"), "{r}");
        assert_eq!(ssh(lab, "node2", "firewall-cmd --get-zone-of-interface=sw0").trim(), "vxmesh");

        // Down leaves nothing of vxmesh's.
        let r = vxmesh(dir, &["down", "--yes", "-i", inv]);
        assert_eq!(r.code, 0, "{r}");
        for n in &lab.nodes {
            assert_eq!(leftovers(lab, &n.name).trim(), "iptables:0", "{} after down", n.name);
            assert_eq!(ssh(lab, &n.name, "firewall-cmd --state").trim(), "running");
        }
    }

    /// node1's tunnel device, captured while `send` runs: frames whose inner source MAC is `mac`. The capture is
    /// proven running first with frames a peer sends through `working` (`(destination, mac)`), and again after.
    fn reaches_the_tunnel(dir: &Path, lab: &LabState, working: (&str, [&str; 2]), send: impl Fn(), mac: &str) -> usize {
        let node1 = lab.node("node1").unwrap();
        let id = vni(lab, "node1");
        let mut cap = Capture::start(dir, "fwd-vx", Some(&node1.netns), "vxm-vxlan");
        let shown = |m: &str| {
            format!(
                "ether src {}",
                m.as_bytes().chunks(2).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join(":")
            )
        };
        // tcpdump takes a while to start on a busy machine: a peer's frames show when it captures.
        for _ in 0..20 {
            forge_vxlan(lab, Ok("node2"), working.0, id, working.1[0]);
            std::thread::sleep(std::time::Duration::from_millis(300));
            if cap.count(&shown(working.1[0])) > 0 {
                break;
            }
        }
        send();
        // Then the working path again, until it shows: what was sent before has had its chance.
        for _ in 0..20 {
            forge_vxlan(lab, Ok("node2"), working.0, id, working.1[1]);
            std::thread::sleep(std::time::Duration::from_millis(300));
            if cap.count(&shown(working.1[1])) > 0 {
                break;
            }
        }
        cap.stop();
        let all =
            std::process::Command::new("tcpdump").args(["-enn", "-r"]).arg(dir.join("fwd-vx.pcap")).output().unwrap();
        assert!(
            cap.count(&shown(working.1[1])) >= 1,
            "the working path's frames arrive, before and after (to {} vni {id}):\n{}",
            working.0,
            String::from_utf8_lossy(&all.stdout)
        );
        cap.count(&shown(mac))
    }

    #[test]
    fn wireguard_under_firewalld_takes_vxlan_only_through_the_wireguard_interface() {
        let Some(fl) = firewalld_lab("fwd2", THREE, "  encryption: wireguard\n") else { return };
        let (dir, inv, lab): (&Path, &str, &LabState) = (&fl.work.0, &fl.inv, &fl.lab);

        let r = vxmesh(dir, &["up", "-i", inv]);
        assert_eq!(r.code, 0, "{r}");
        let r = vxmesh(dir, &["verify", "-i", inv]);
        assert_eq!(r.code, 0, "{r}");
        assert!(r.stdout.contains("6/6 pairs ok"), "{r}");
        let r = vxmesh(dir, &["status", "-i", inv]);
        assert_eq!(r.code, 0, "status after up: {r}");

        // The underlay's zone opens WireGuard's port to each peer, and nothing for VXLAN; vxmesh's zone holds the
        // WireGuard interface.
        for (i, n) in lab.nodes.iter().enumerate() {
            let port = ssh(lab, &n.name, "wg show vxm-wg listen-port").trim().parse::<u16>().unwrap();
            let want = peer_rules(lab, i, port, |p| p.ip.into());
            let (running, permanent) = default_zone_rules(lab, &n.name);
            assert_eq!((&running, &permanent), (&want, &want), "{}", n.name);
            let zone = sorted_lines(&ssh(lab, &n.name, "firewall-cmd --zone=vxmesh --list-interfaces | tr ' ' '\\n'"));
            assert_eq!(zone, ["sw0", "vxm-wg"], "{}", n.name);
        }

        // Plain VXLAN from a peer's own underlay address never reaches node1's tunnel; through WireGuard it does.
        let wg1 = ssh(lab, "node1", "ip -4 -o addr show vxm-wg");
        let wg1 = wg1.split_whitespace().nth(3).and_then(|a| a.split('/').next()).unwrap().to_string();
        let to = lab.node("node1").unwrap().ip.to_string();
        let id = vni(lab, "node1");
        let plain = || forge_vxlan(lab, Ok("node2"), &to, id, "02000000ee04");
        let seen = reaches_the_tunnel(dir, lab, (&wg1, ["02000000ee05", "02000000ee06"]), plain, "02000000ee04");
        assert_eq!(seen, 0, "plain VXLAN from a peer's underlay address was dropped");

        let r = vxmesh(dir, &["up", "-i", inv, "--no-verify"]);
        assert_eq!(r.code, 0, "{r}");
        assert!(r.stdout.contains("3 hosts: 0 changed, 3 ok, 0 failed"), "{r}");

        let r = vxmesh(dir, &["down", "--yes", "-i", inv]);
        assert_eq!(r.code, 0, "{r}");
        for n in &lab.nodes {
            assert_eq!(leftovers(lab, &n.name).trim(), "iptables:0", "{} after down", n.name);
            assert_eq!(
                ssh(lab, &n.name, "ip link show vxm-wg >/dev/null 2>&1 && echo left || echo gone").trim(),
                "gone"
            );
        }
    }

    #[test]
    fn names_resolve_across_firewalld_hosts_and_only_from_the_mesh() {
        let Some(fl) = firewalld_lab("fwd3", THREE, "  dns: {enabled: true, domain: mesh}\n") else { return };
        let (dir, inv, lab): (&Path, &str, &LabState) = (&fl.work.0, &fl.inv, &fl.lab);

        let r = vxmesh(dir, &["up", "-i", inv]);
        assert_eq!(r.code, 0, "{r}");
        // verify resolves each peer's probe container by NAME.NODE.mesh and NAME.mesh from every host; the name
        // servers fetch each other's records over TFTP on sw0, which zone vxmesh rejected without its rules.
        let r = vxmesh(dir, &["verify", "-i", inv]);
        assert_eq!(r.code, 0, "{r}");
        assert!(r.stdout.contains("6/6 pairs ok") && r.stdout.contains("+names"), "{r}");
        assert!(!r.stdout.contains("FAIL"), "{r}");
        let rules = ssh(lab, "node1", "firewall-cmd --zone=vxmesh --list-rich-rules");
        for port in ["port=\"53\" protocol=\"udp\"", "port=\"53\" protocol=\"tcp\"", "port=\"69\" protocol=\"udp\""] {
            assert!(rules.contains(port), "{port} open to the mesh: {rules}");
        }

        // From the underlay (the outside host, routed at node1's switch address through node1's underlay address),
        // the name server does not answer.
        let sw1 = ssh(lab, "node1", "ip -4 -o addr show dev sw0 | awk '{print $4}' | cut -d/ -f1").trim().to_string();
        let via = lab.node("node1").unwrap().ip.to_string();
        let netns = ["netns", "exec", lab.outside.netns.as_str()];
        let ip = |args: &[&str]| std::process::Command::new("ip").args(netns).args(args).output().unwrap();
        assert!(ip(&["ip", "route", "add", &format!("{sw1}/32"), "via", &via]).status.success());
        let asked = ip(&["timeout", "3", "busybox", "nslookup", "-type=a", "sw0.node1.mesh", &sw1]);
        let tcp = ip(&["timeout", "3", "busybox", "nc", "-w", "2", &sw1, "53"]);
        assert!(ip(&["ip", "route", "del", &format!("{sw1}/32"), "via", &via]).status.success());
        let said = String::from_utf8_lossy(&asked.stdout);
        // Any reply, NXDOMAIN included, prints the server; none comes (firewalld rejects, VXMESH-DNS drops).
        assert!(!asked.status.success() && !said.contains("Server:"), "no answer to the underlay: {said}");
        assert!(!tcp.status.success(), "no TCP connection from the underlay");

        let r = vxmesh(dir, &["up", "-i", inv, "--no-verify"]);
        assert_eq!(r.code, 0, "{r}");
        assert!(r.stdout.contains("3 hosts: 0 changed, 3 ok, 0 failed"), "{r}");
        let r = vxmesh(dir, &["down", "--yes", "-i", inv]);
        assert_eq!(r.code, 0, "{r}");
        for n in &lab.nodes {
            assert_eq!(leftovers(lab, &n.name).trim(), "iptables:0", "{} after down", n.name);
        }
    }

    #[test]
    fn a_peer_behind_nat_opens_wireguard_to_anyone_under_firewalld() {
        // node1 and node2 in dc1 (1:1 NAT, public addresses), node3 alone behind masquerade: encrypted.
        let Some(fl) = firewalld_lab("fwd4", &["--sites", "dc1:2,home:1@nat"], "") else { return };
        let (dir, inv, lab): (&Path, &str, &LabState) = (&fl.work.0, &fl.inv, &fl.lab);
        let r = vxmesh(dir, &["up", "-i", inv]);
        assert_eq!(r.code, 0, "{r}");
        assert!(r.stdout.contains("6/6 pairs ok"), "{r}");
        let public = |n: &str| lab.node(n).unwrap().site.as_ref().unwrap().public_ip.unwrap();
        let underlay = |n: &str| lab.node(n).unwrap().site.as_ref().unwrap().underlay;
        let rule = |ip: std::net::Ipv4Addr| vxmesh::components::firewall::rich_rule(ip.into(), 51820);
        let open = r#"rule family="ipv4" port port="51820" protocol="udp" accept"#.to_string();
        // node1: its site peer on its private address, and anyone (node3's packets come from its router).
        let mut want = vec![rule(underlay("node2")), open];
        want.sort();
        assert_eq!(default_zone_rules(lab, "node1"), (want.clone(), want));
        // node3: both dc1 hosts at their public addresses, nobody else.
        let mut want = vec![rule(public("node1")), rule(public("node2"))];
        want.sort();
        assert_eq!(default_zone_rules(lab, "node3"), (want.clone(), want));
        let r = vxmesh(dir, &["status", "-i", inv]);
        assert_eq!(r.code, 0, "{r}");
        let r = vxmesh(dir, &["down", "--yes", "-i", inv]);
        assert_eq!(r.code, 0, "{r}");
        for n in &lab.nodes {
            assert_eq!(leftovers(lab, &n.name).trim(), "iptables:0", "{} after down", n.name);
        }
    }
}
