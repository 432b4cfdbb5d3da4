//! `lab create --dual-stack`: a flat lab whose hosts have an IPv4 and an IPv6 (ULA) address on their underlay
//! interface, sshd still on IPv4; `--ipv4-only NODE` leaves those hosts without IPv6. The inventory lists each
//! host's underlay addresses, so vxmesh picks the family every host has (`cluster.underlay_family`).

use super::sys::{lab_err, run};
use super::{CreateOptions, LabNode, LabState, ipv6};
use crate::error::Result;

/// Creates a flat lab and adds IPv6 beside IPv4 on every host but those named in `ipv4_only`; on any failure the
/// whole lab is torn down again.
pub fn create(opts: &CreateOptions, ipv4_only: &[String], progress: &mut dyn FnMut(&str)) -> Result<LabState> {
    if !opts.sites.is_empty() {
        return Err(lab_err("--dual-stack makes a flat lab: it does not take --sites"));
    }
    // Node names are known before the lab exists: refuse a typo before building anything.
    let names: Vec<String> = (1..=opts.nodes).map(|i| format!("node{i}")).collect();
    if let Some(bad) = ipv4_only.iter().find(|n| !names.contains(n)) {
        return Err(lab_err(format!("--ipv4-only {bad}: the lab has no such node (nodes: {})", names.join(", "))));
    }
    let state = super::create(opts, progress)?;
    match add_ipv6(&state, ipv4_only, progress) {
        Ok(()) => Ok(state),
        Err(e) => {
            progress("adding IPv6 to the lab failed; tearing it down");
            let _ = super::destroy(&opts.name);
            Err(e)
        }
    }
}

/// Whether the lab node keeps IPv6 beside IPv4.
fn dual(n: &LabNode, ipv4_only: &[String]) -> bool {
    !ipv4_only.contains(&n.name)
}

fn add_ipv6(state: &LabState, ipv4_only: &[String], progress: &mut dyn FnMut(&str)) -> Result<()> {
    let gw = ipv6::gateway(state);
    progress(&format!("IPv6 beside IPv4 on bridge {} (gateway {gw} and {})", state.bridge, state.gateway));
    run("ip", &["-6", "address", "add", &format!("{gw}/64"), "dev", &state.bridge, "nodad"])?;
    ipv6::fence(state)?;
    for n in state.nodes.iter().filter(|n| dual(n, ipv4_only)) {
        // The underlay device is the one holding the IPv4 address: eth0, or br-phy on an OVS host.
        let script = format!(
            "set -e\n\
             dev=$(ip -o -4 addr show | awk -v ip={v4} '{{split($4, a, \"/\"); if (a[1] == ip) {{print $2; exit}}}}')\n\
             [ -n \"$dev\" ] || {{ echo 'no device has {v4}' >&2; exit 1; }}\n\
             ip -6 address add {v6}/64 dev \"$dev\" nodad\n",
            v4 = n.ip,
            v6 = ipv6::node_address(state, n),
        );
        super::node_exec(state, &n.name, &script)?;
    }
    let dual_count = state.nodes.iter().filter(|n| dual(n, ipv4_only)).count();
    progress(&format!("{dual_count} dual-stack node(s), {} IPv4-only", state.nodes.len() - dual_count));
    std::fs::write(state.inventory_path(), inventory_text(state, ipv4_only)).map_err(|e| lab_err(e.to_string()))
}

/// The lab's inventory with each dual-stack host's two underlay addresses listed (`underlay_ip: [IPv4, IPv6]`);
/// an IPv4-only host keeps its entry as a flat lab writes it.
pub fn inventory_text(state: &LabState, ipv4_only: &[String]) -> String {
    let mut y = String::new();
    for line in super::inventory_text(state).lines() {
        let entry = state.nodes.iter().filter(|n| dual(n, ipv4_only)).find_map(|n| {
            // `host: IP,` or `host: IP}`: the whole address, never a prefix of another (.1 of .11).
            [",", "}"].iter().find_map(|end| {
                let host = format!("name: {}, host: {}{end}", n.name, n.ip);
                line.contains(&host).then(|| {
                    let both = format!(
                        "name: {}, host: {}, underlay_ip: [{}, \"{}\"]{end}",
                        n.name,
                        n.ip,
                        n.ip,
                        ipv6::node_address(state, n)
                    );
                    line.replacen(&host, &both, 1)
                })
            })
        });
        y.push_str(&entry.unwrap_or_else(|| line.to_string()));
        y.push('\n');
    }
    y
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::path::Path;

    use super::*;

    fn lab(nodes: u8) -> LabState {
        let node = |i: u8| LabNode {
            name: format!("node{i}"),
            netns: String::new(),
            veth: String::new(),
            ip: Ipv4Addr::new(192, 168, 79, 10 + i),
            kernel: i == 2,
            site: None,
        };
        LabState {
            name: "dst".into(),
            dir: "/nonexistent/dst".into(),
            bridge: "vxlab-dst".into(),
            subnet: "192.168.79.0/24".parse().unwrap(),
            gateway: Ipv4Addr::new(192, 168, 79, 1),
            light: false,
            firewalld: false,
            nodes: (1..=nodes).map(node).collect(),
            outside: LabNode { name: "outside".into(), ..node(240) },
            sites: vec![],
        }
    }

    #[test]
    fn dual_stack_hosts_list_both_addresses_and_ipv4_only_ones_one() {
        let l = lab(3);
        let y = inventory_text(&l, &["node3".to_string()]);
        assert!(
            y.contains("  - {name: node1, host: 192.168.79.11, underlay_ip: [192.168.79.11, \"fd76:0:0:79::11\"]}\n"),
            "{y}"
        );
        assert!(
            y.contains("  - {name: node2, host: 192.168.79.12, underlay_ip: [192.168.79.12, \"fd76:0:0:79::12\"], backend: linux}\n"),
            "{y}"
        );
        assert!(y.contains("  - {name: node3, host: 192.168.79.13}\n"), "{y}");
        assert!(y.contains("  outside: 192.168.79.250 "), "{y}");
        let inv = crate::model::inventory::parse(Path::new("lab.yaml"), &y).unwrap();
        assert_eq!(inv.cluster.underlay_family, Some(crate::model::inventory::UnderlayFamily::Ipv4));
        assert_eq!(inv.nodes[0].underlay.to_string(), "192.168.79.11");
    }

    #[test]
    fn ten_hosts_list_the_tenth_by_its_own_address() {
        // node1 is .11 and node10 is .20: no entry is matched by another's address as a prefix.
        let l = lab(10);
        let y = inventory_text(&l, &[]);
        assert_eq!(y.matches("underlay_ip: [").count(), 10, "{y}");
        assert!(
            y.contains("{name: node10, host: 192.168.79.20, underlay_ip: [192.168.79.20, \"fd76:0:0:79::20\"]}"),
            "{y}"
        );
        let six = y.replace("  cidr: 172.16.0.0/12\n", "  cidr: 172.16.0.0/12\n  underlay_family: ipv6\n");
        let inv = crate::model::inventory::parse(Path::new("lab.yaml"), &six).unwrap();
        assert_eq!(inv.nodes[9].underlay.to_string(), "fd76:0:0:79::20");
    }
}
