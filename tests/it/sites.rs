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

/// On the lab: root only, and named `sites::lab::…` so that `--skip lab::` leaves it out with the other labs.
mod lab {
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};

    use crate::labkit::{Lab, ssh};

    /// tcpdump writing every frame of a machine-side interface to a file; stopped on `stop` or drop.
    struct Capture {
        child: Option<Child>,
        file: PathBuf,
    }

    impl Capture {
        fn start(dir: &Path, iface: &str) -> Capture {
            let file = dir.join(format!("{iface}.pcap"));
            let child = Command::new("tcpdump")
                .args(["-i", iface, "-U", "-n", "-s", "128", "-w"])
                .arg(&file)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("tcpdump (scripts/install-deps.sh installs it)");
            for _ in 0..50 {
                if file.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
            Capture { child: Some(child), file }
        }

        fn stop(&mut self) {
            if let Some(mut c) = self.child.take() {
                let _ = Command::new("kill").args(["-INT", &c.id().to_string()]).status();
                let _ = c.wait();
            }
        }

        /// Frames of the stopped capture that match a tcpdump filter.
        fn count(&self, filter: &str) -> usize {
            let out = Command::new("tcpdump").args(["-nn", "-r"]).arg(&self.file).arg(filter).output().unwrap();
            String::from_utf8_lossy(&out.stdout).lines().count()
        }
    }

    impl Drop for Capture {
        fn drop(&mut self) {
            self.stop();
        }
    }

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
        let mut dc1 = Capture::start(lab.work(), &format!("vxl{}s1", lab.name));
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
}
