//! `lab create --ipv6-only`: a lab whose hosts are reached and tunnel over IPv6 only. It is made as an ordinary
//! flat lab, then each host's underlay interface (eth0, or br-phy on OVS hosts) gets a ULA address, sshd listens
//! there only, and the interface's IPv4 address goes; the inventory, known_hosts and the gateway follow.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::sys::{lab_err, run, run_quiet};
use super::{CreateOptions, LabNode, LabState};
use crate::error::Result;

/// A node's sshd takes this long at most to listen again on its new address.
const SSH_TIMEOUT: Duration = Duration::from_secs(30);

/// The lab's IPv6 network: `fd76:0:0:K::/64`, K the third byte of its IPv4 underlay (written in decimal, as
/// hex digits: lab 192.168.77.0/24 is fd76:0:0:77::/64), so labs' networks differ as their IPv4 ones do.
fn address(lab: &LabState, v4: Ipv4Addr) -> Ipv6Addr {
    let [_, _, k, host] = v4.octets();
    let hex = |n: u8| u16::from_str_radix(&n.to_string(), 16).expect("decimal digits are hex digits");
    let third = lab.subnet.network().octets()[2];
    debug_assert_eq!(k, third);
    Ipv6Addr::new(0xfd76, 0, 0, hex(third), 0, 0, 0, hex(host))
}

/// A lab node's IPv6 address, where vxmesh reaches it and its tunnels run.
pub fn node_address(lab: &LabState, n: &LabNode) -> Ipv6Addr {
    address(lab, n.ip)
}

/// The machine's address on the lab's IPv6 network: where vxmesh and the tests speak from.
pub fn gateway(lab: &LabState) -> Ipv6Addr {
    address(lab, lab.gateway)
}

/// Creates a flat lab and moves it to IPv6; on any failure the whole lab is torn down again.
pub fn create(opts: &CreateOptions, progress: &mut dyn FnMut(&str)) -> Result<LabState> {
    if !opts.sites.is_empty() {
        return Err(lab_err("--ipv6-only makes a flat lab: it does not take --sites"));
    }
    let state = super::create(opts, progress)?;
    match to_ipv6(&state, progress) {
        Ok(()) => Ok(state),
        Err(e) => {
            progress("moving the lab to IPv6 failed; tearing it down");
            let _ = super::destroy(&opts.name);
            Err(e)
        }
    }
}

fn to_ipv6(state: &LabState, progress: &mut dyn FnMut(&str)) -> Result<()> {
    let gw = gateway(state);
    progress(&format!("IPv6 underlay fd76:0:0:{}::/64 on bridge {} (gateway {gw})", subnet_tag(state), state.bridge));
    run("ip", &["-6", "address", "add", &format!("{gw}/64"), "dev", &state.bridge, "nodad"])?;
    fence(state)?;
    for n in &state.nodes {
        let v6 = node_address(state, n);
        // One script in the node's namespaces: the address first, then sshd, then IPv4 goes (nothing of this
        // needs SSH, so the session cannot be cut halfway).
        let script = format!(
            "set -e\n\
             dev=$(ip -o -4 addr show | awk -v ip={v4} '{{split($4, a, \"/\"); if (a[1] == ip) {{print $2; exit}}}}')\n\
             [ -n \"$dev\" ] || {{ echo 'no device has {v4}' >&2; exit 1; }}\n\
             ip -6 address add {v6}/64 dev \"$dev\" nodad\n\
             sed -i 's/^ListenAddress .*/ListenAddress [{v6}]:22/' /etc/ssh/sshd_config\n\
             systemctl restart ssh.service\n\
             ip -4 address flush dev \"$dev\"\n",
            v4 = n.ip
        );
        super::node_exec(state, &n.name, &script)?;
        wait_ssh(&n.name, SocketAddr::new(v6.into(), 22))?;
    }
    progress(&format!("{} node(s) reached over IPv6 only; no IPv4 address on their underlay", state.nodes.len()));
    let known = std::fs::read_to_string(state.dir.join("known_hosts")).map_err(|e| lab_err(e.to_string()))?;
    std::fs::write(state.dir.join("known_hosts"), known_hosts(state, &known)).map_err(|e| lab_err(e.to_string()))?;
    std::fs::write(state.inventory_path(), inventory_text(state)).map_err(|e| lab_err(e.to_string()))
}

fn subnet_tag(state: &LabState) -> u8 {
    state.subnet.network().octets()[2]
}

fn wait_ssh(node: &str, at: SocketAddr) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < SSH_TIMEOUT {
        if TcpStream::connect_timeout(&at, Duration::from_millis(500)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(lab_err(format!("{node}: sshd does not answer at {at} after {} s", SSH_TIMEOUT.as_secs())))
}

/// The machine does not forward IPv6 today (`net.ipv6.conf.all.forwarding = 0`), but nothing keeps it so: as
/// for IPv4, nothing from the lab may leave through the machine, nothing may come in. Tagged like the IPv4 rules.
pub(super) fn fence(state: &LabState) -> Result<()> {
    let tag = format!("vxmesh-lab-{}", state.name);
    let br = state.bridge.as_str();
    for dir in [["-i", br, "!", "-o", br], ["!", "-i", br, "-o", br]] {
        run(
            "ip6tables",
            &[&["-w", "-I", "FORWARD"][..], &dir, &["-m", "comment", "--comment", tag.as_str(), "-j", "DROP"]].concat(),
        )?;
    }
    Ok(())
}

/// Removes lab `name`'s ip6tables rules (`destroy` of every lab: a lab that never was IPv6 has none).
pub fn unfence(name: &str) {
    let tag = format!("vxmesh-lab-{name}");
    let rules = run("ip6tables", &["-w", "-S", "FORWARD"]).unwrap_or_default();
    for r in rules.lines().filter(|r| r.contains(&tag)) {
        let args: Vec<&str> = r.split_whitespace().skip(2).collect();
        run_quiet("ip6tables", &[&["-w", "-D", "FORWARD"][..], &args].concat());
    }
}

/// known_hosts with each node's line at its IPv6 address (bare, port 22: as OpenSSH writes it).
fn known_hosts(state: &LabState, ipv4: &str) -> String {
    let mut out = String::new();
    for line in ipv4.lines() {
        let Some((host, key)) = line.split_once(' ') else { continue };
        match state.nodes.iter().find(|n| n.ip.to_string() == host) {
            Some(n) => out.push_str(&format!("{} {key}\n", node_address(state, n))),
            None => out.push_str(&format!("{line}\n")),
        }
    }
    out
}

/// The lab's inventory with every host at its IPv6 address (the tunnel endpoint too), without `outside`: no
/// container traffic leaves an IPv6-only lab (the overlay is IPv4, the underlay has no IPv4 way out).
pub fn inventory_text(state: &LabState) -> String {
    let mut y = String::new();
    for line in super::inventory_text(state).lines() {
        if line.trim_start().starts_with("outside:") {
            continue;
        }
        if line.starts_with("ssh:") {
            // `auto` would pick iptables on these hosts; nftables' one inet table is the simpler proof.
            y.push_str("  firewall: nftables           # its inet table filters the IPv6 tunnels\n");
        }
        let line = match state.nodes.iter().find(|n| line.contains(&format!("name: {}, host: {},", n.name, n.ip))) {
            Some(n) => line.replacen(&format!("host: {},", n.ip), &format!("host: \"{}\",", node_address(state, n)), 1),
            None => match state.nodes.iter().find(|n| line.contains(&format!("name: {}, host: {}}}", n.name, n.ip))) {
                Some(n) => {
                    line.replacen(&format!("host: {}}}", n.ip), &format!("host: \"{}\"}}", node_address(state, n)), 1)
                }
                None => line.to_string(),
            },
        };
        y.push_str(&line);
        y.push('\n');
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab() -> LabState {
        let node = |i: u8| LabNode {
            name: format!("node{i}"),
            netns: String::new(),
            veth: String::new(),
            ip: Ipv4Addr::new(192, 168, 78, 10 + i),
            kernel: i == 2,
            site: None,
        };
        LabState {
            name: "v6t".into(),
            dir: "/nonexistent/v6t".into(),
            bridge: "vxlab-v6t".into(),
            subnet: "192.168.78.0/24".parse().unwrap(),
            gateway: Ipv4Addr::new(192, 168, 78, 1),
            light: false,
            firewalld: false,
            nodes: vec![node(1), node(2)],
            outside: LabNode { name: "outside".into(), ..node(240) },
            sites: vec![],
        }
    }

    #[test]
    fn addresses_follow_the_ipv4_ones_digit_for_digit() {
        let l = lab();
        assert_eq!(node_address(&l, &l.nodes[0]).to_string(), "fd76:0:0:78::11");
        assert_eq!(gateway(&l).to_string(), "fd76:0:0:78::1");
    }

    #[test]
    fn the_inventory_names_every_host_by_its_ipv6_address_and_has_no_outside() {
        let l = lab();
        let y = inventory_text(&l);
        assert!(y.contains("  - {name: node1, host: \"fd76:0:0:78::11\"}\n"), "{y}");
        assert!(y.contains("  - {name: node2, host: \"fd76:0:0:78::12\", backend: linux}\n"), "{y}");
        assert!(!y.contains("outside:"), "{y}");
        assert!(y.contains("\n  firewall: nftables "), "{y}");
        assert!(!y.contains("192.168.78."), "{y}");
        let known = known_hosts(&l, "192.168.78.11 ssh-ed25519 AAAA\n192.168.78.12 ssh-ed25519 BBBB\n");
        assert_eq!(known, "fd76:0:0:78::11 ssh-ed25519 AAAA\nfd76:0:0:78::12 ssh-ed25519 BBBB\n");
    }
}
