//! Fleets across sites: the path of each pair (private, public, through a relay) as `plan` shows it, the offline
//! refusal of hosts behind NAT without WireGuard, and, on the lab (module `lab`, root), the 5-host,
//! 4-site fleet behind 1:1 NAT and masquerade routers proven with captures on the WAN and the sites.

use std::path::Path;

use crate::util::{TempDir, vxmesh};

/// The fleet: dc1 (two hosts, 1:1 NAT), dc2 (one, 1:1 NAT), two homes each behind its own masquerade.
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
