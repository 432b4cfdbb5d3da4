//! Other overlays on the same host: a VXLAN device or socket already on the cluster's UDP port, or Docker Swarm,
//! whose overlay networks take UDP 4789 and address pools from 10.0.0.0/8 by default. Either breaks the mesh or
//! the other overlay silently, so preflight names what collides and what to change, and `status` shows it when it
//! appears later.

use ipnet::Ipv4Net;
use serde::Deserialize;

use super::core::{Capabilities, Component, Ctx, Kind, Need, Piece, Step};
use crate::cmd;
use crate::facts::{FactsError, HostFacts, Sections, mark};
use crate::model::inventory::Backend;
use crate::model::names;
use crate::plan::NodePlan;
use crate::shell::{Stmt, when};

/// Looks for other overlays on every host `up`, `plan` and `status` reach; it changes nothing and removes nothing.
pub struct Coexistence<'a> {
    pub node: &'a NodePlan,
}

const VXLAN_LINKS: &str = "vxlan-links";
const UDP_SOCKETS: &str = "udp-sockets";
const SWARM: &str = "swarm";
/// Where docker keeps a swarm member's state (with the default data-root): `docker info` is asked only when it
/// exists, so hosts outside a swarm pay no docker call for this check.
const SWARM_STATE: &str = "/var/lib/docker/swarm/docker-state.json";

impl Piece for Coexistence<'_> {
    fn kind(&self) -> Kind {
        Kind::Coexistence
    }

    fn gather(&self) -> Vec<Stmt> {
        vec![
            mark(VXLAN_LINKS),
            cmd!["ip", "-d", "-j", "link", "show", "type", "vxlan"].silent_stderr().may_fail().into(),
            mark(UDP_SOCKETS),
            cmd!["cat", "/proc/net/udp", "/proc/net/udp6"].silent_stderr().may_fail().into(),
            mark(SWARM),
            when(
                cmd!["test", "-e", SWARM_STATE],
                vec![cmd!["docker", "info", "--format", "{{json .Swarm}}"].silent_stderr().may_fail().into()],
            ),
        ]
    }

    fn parse(&self, s: &Sections, facts: &mut HostFacts) -> Result<(), FactsError> {
        facts.set_part(OverlayFacts {
            vxlan_links: parse_vxlan_links(s.get(VXLAN_LINKS)),
            udp_ports: parse_udp_ports(s.get(UDP_SOCKETS)),
            swarm: parse_swarm(s.get(SWARM)),
        });
        Ok(())
    }

    fn teardown(&self, _: &HostFacts) -> Vec<Step> {
        vec![]
    }
}

impl Component for Coexistence<'_> {
    fn needs(&self, _: &HostFacts) -> Vec<Need> {
        vec![]
    }

    fn preflight(&self, facts: &HostFacts) -> Vec<String> {
        let Some(f) = facts.part::<OverlayFacts>() else { return vec![] };
        let n = self.node;
        let port = n.vxlan.port;
        // The devices of vxmesh's own that hold the port: the kernel backend's, or OVS's kernel datapath's.
        let ovs_port = format!("vxlan_sys_{port}");
        let own: Vec<&str> = match n.backend {
            Backend::Linux => vec![names::VXLAN_DEVICE],
            Backend::Ovs => vec![ovs_port.as_str()],
        };
        // switch_cidr lies inside cidr, so the cluster's range covers the switch addresses too.
        let mut ranges = vec![("cluster.cidr", n.forward_accept)];
        if let Some(wg) = &n.wireguard {
            ranges.push(("cluster.wireguard.cidr", wg.address.trunc()));
        }
        problems(f, &Claim { port, own_devices: &own, ranges: &ranges })
    }

    fn diff(&self, _: &HostFacts, _: &Ctx) -> Vec<Step> {
        vec![]
    }

    fn capabilities(&self) -> Capabilities<'_> {
        Capabilities::NONE
    }
}

/// What the facts script reads of other overlays.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OverlayFacts {
    /// VXLAN devices in the host's namespace: name and destination port.
    pub vxlan_links: Vec<(String, u16)>,
    /// Local UDP ports with a bound socket (kernel sockets of VXLAN devices in other namespaces included).
    pub udp_ports: Vec<u16>,
    /// Docker Swarm, when the host is in one.
    pub swarm: Option<Swarm>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Swarm {
    /// The UDP port of Swarm's VXLAN data path.
    pub data_path_port: u16,
    /// Where Swarm takes overlay subnets from.
    pub pools: Vec<Ipv4Net>,
}

/// Swarm's pool when `docker swarm init` was not given `--default-addr-pool` (docker's own default).
pub const SWARM_DEFAULT_POOL: &str = "10.0.0.0/8";
/// Swarm's data path port when `docker swarm init` was not given `--data-path-port`.
pub const SWARM_DEFAULT_PORT: u16 = 4789;

/// `ip -d -j link show type vxlan`: each device's name and destination port; anything unreadable is no device.
pub fn parse_vxlan_links(json: &str) -> Vec<(String, u16)> {
    #[derive(Deserialize)]
    struct Link {
        ifname: String,
        linkinfo: Option<LinkInfo>,
    }
    #[derive(Deserialize)]
    struct LinkInfo {
        info_kind: Option<String>,
        info_data: Option<InfoData>,
    }
    #[derive(Deserialize)]
    struct InfoData {
        port: Option<u16>,
    }
    let links: Vec<Link> = serde_json::from_str(json.trim()).unwrap_or_default();
    links
        .into_iter()
        .filter_map(|l| {
            let info = l.linkinfo?;
            (info.info_kind.as_deref() == Some("vxlan")).then_some(())?;
            Some((l.ifname, info.info_data.and_then(|d| d.port).unwrap_or(SWARM_DEFAULT_PORT)))
        })
        .collect()
}

/// `/proc/net/udp` and `/proc/net/udp6`: the local port of every socket (the hex after the colon of the second
/// column), sorted, without repeats.
pub fn parse_udp_ports(text: &str) -> Vec<u16> {
    let mut ports: Vec<u16> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|local| local.rsplit_once(':'))
        .filter_map(|(_, port)| u16::from_str_radix(port, 16).ok())
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// `docker info --format '{{json .Swarm}}'`: the swarm when this host is an active member of one.
pub fn parse_swarm(json: &str) -> Option<Swarm> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Info {
        local_node_state: Option<String>,
        cluster: Option<Cluster>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Cluster {
        default_addr_pool: Option<Vec<String>>,
        data_path_port: Option<u16>,
    }
    let info: Info = serde_json::from_str(json.trim()).ok()?;
    if info.local_node_state.as_deref() != Some("active") {
        return None;
    }
    let cluster = info.cluster;
    let pools: Vec<Ipv4Net> = cluster
        .as_ref()
        .and_then(|c| c.default_addr_pool.clone())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| vec![SWARM_DEFAULT_POOL.to_string()])
        .iter()
        .filter_map(|p| p.parse().ok())
        .collect();
    let port = cluster.and_then(|c| c.data_path_port).filter(|p| *p != 0).unwrap_or(SWARM_DEFAULT_PORT);
    Some(Swarm { data_path_port: port, pools })
}

/// What the mesh is about to take on this host: its VXLAN port, the devices of its own that may hold that port,
/// and its address ranges by the inventory field that names each.
pub struct Claim<'a> {
    pub port: u16,
    pub own_devices: &'a [&'a str],
    pub ranges: &'a [(&'a str, Ipv4Net)],
}

/// Every collision between the mesh and another overlay on this host, in words that say what to change.
pub fn problems(f: &OverlayFacts, claim: &Claim) -> Vec<String> {
    let port = claim.port;
    let mut out = vec![];
    let swarm_port = f.swarm.as_ref().is_some_and(|s| s.data_path_port == port);
    if let Some(s) = &f.swarm {
        if swarm_port {
            out.push(format!(
                "Docker Swarm runs on this host and its overlay networks use UDP {port} (its data path port), the \
                 same as cluster.port: one of them would stop carrying traffic. Set cluster.port to another port \
                 (e.g. 4790), or re-create the swarm with --data-path-port"
            ));
        }
        for pool in &s.pools {
            for (field, range) in claim.ranges {
                if pool.contains(&range.network()) || range.contains(&pool.network()) {
                    out.push(format!(
                        "Docker Swarm takes overlay subnets from {pool}, which overlaps {field} `{range}`: choose \
                         {field} outside {pool}, or re-create the swarm with --default-addr-pool"
                    ));
                }
            }
        }
    }
    let foreign: Vec<&(String, u16)> =
        f.vxlan_links.iter().filter(|(name, p)| *p == port && !claim.own_devices.contains(&name.as_str())).collect();
    for (name, _) in &foreign {
        out.push(format!(
            "VXLAN device `{}` (not vxmesh's) already uses UDP {port}, the same as cluster.port: set cluster.port to \
             a free port",
            crate::error::shown(name)
        ));
    }
    let explained = swarm_port || f.vxlan_links.iter().any(|(_, p)| *p == port);
    if !explained && f.udp_ports.contains(&port) {
        out.push(format!(
            "UDP {port} (cluster.port) is already bound on this host by something that is not vxmesh's (another \
             overlay's VXLAN socket, or a program): set cluster.port to a free port"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    const OWN: &[&str] = &["vxm-vxlan"];

    #[test]
    fn swarm_is_read_from_docker_info_with_its_defaults() {
        let active =
            r#"{"LocalNodeState":"active","Cluster":{"DefaultAddrPool":null,"SubnetSize":24,"DataPathPort":4789}}"#;
        assert_eq!(parse_swarm(active), Some(Swarm { data_path_port: 4789, pools: vec![net("10.0.0.0/8")] }));
        let custom =
            r#"{"LocalNodeState":"active","Cluster":{"DefaultAddrPool":["10.20.0.0/16"],"DataPathPort":7789}}"#;
        assert_eq!(parse_swarm(custom), Some(Swarm { data_path_port: 7789, pools: vec![net("10.20.0.0/16")] }));
        assert_eq!(parse_swarm(r#"{"LocalNodeState":"inactive"}"#), None);
        assert_eq!(parse_swarm(""), None);
        assert_eq!(parse_swarm("not json"), None);
    }

    #[test]
    fn vxlan_links_and_udp_ports_are_read() {
        let links = r#"[{"ifname":"flannel.1","linkinfo":{"info_kind":"vxlan","info_data":{"id":1,"port":8472}}},
            {"ifname":"eth0","linkinfo":null},{"ifname":"vxm-vxlan","linkinfo":{"info_kind":"vxlan","info_data":{"port":4789}}}]"#;
        assert_eq!(parse_vxlan_links(links), vec![("flannel.1".to_string(), 8472), ("vxm-vxlan".to_string(), 4789)]);
        assert_eq!(parse_vxlan_links(""), vec![]);
        let udp = "  sl  local_address rem_address   st\n 1108: 00000000:12B5 00000000:0000 07 0\n 12: 0100007F:0035 00000000:0000 07 0\n 9: 00000000000000000000000000000000:12B5 00000000000000000000000000000000:0000 07\n";
        assert_eq!(parse_udp_ports(udp), vec![53, 4789]);
    }

    #[test]
    fn a_swarm_on_the_same_port_and_pool_is_named_with_what_to_change() {
        let f = OverlayFacts {
            udp_ports: vec![4789],
            swarm: Some(Swarm { data_path_port: 4789, pools: vec![net("10.0.0.0/8")] }),
            ..Default::default()
        };
        let ranges = [("cluster.cidr", net("10.10.0.0/16")), ("cluster.switch_cidr", net("172.30.0.0/16"))];
        let p = problems(&f, &Claim { port: 4789, own_devices: OWN, ranges: &ranges });
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("Docker Swarm") && p[0].contains("UDP 4789") && p[0].contains("cluster.port"), "{p:?}");
        assert!(p[1].contains("10.0.0.0/8") && p[1].contains("cluster.cidr `10.10.0.0/16`"), "{p:?}");
        // Side by side, as tried by hand: another port and a cidr outside Swarm's pool.
        let ranges = [("cluster.cidr", net("172.16.0.0/12"))];
        assert_eq!(problems(&f, &Claim { port: 4790, own_devices: OWN, ranges: &ranges }), Vec::<String>::new());
    }

    #[test]
    fn a_foreign_vxlan_device_or_socket_on_the_port_is_named_but_vxmeshs_own_is_not() {
        let own = OverlayFacts { vxlan_links: vec![("vxm-vxlan".into(), 4789)], udp_ports: vec![4789], swarm: None };
        assert_eq!(problems(&own, &Claim { port: 4789, own_devices: OWN, ranges: &[] }), Vec::<String>::new());
        let flannel =
            OverlayFacts { vxlan_links: vec![("flan\u{1b}nel.1".into(), 4789)], udp_ports: vec![4789], swarm: None };
        let p = problems(&flannel, &Claim { port: 4789, own_devices: OWN, ranges: &[] });
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("`flan\\u{1b}nel.1`"), "{p:?}");
        let hidden = OverlayFacts { udp_ports: vec![4789], ..Default::default() };
        let p = problems(&hidden, &Claim { port: 4789, own_devices: OWN, ranges: &[] });
        assert!(p.len() == 1 && p[0].contains("already bound"), "{p:?}");
        assert_eq!(problems(&hidden, &Claim { port: 4790, own_devices: OWN, ranges: &[] }), Vec::<String>::new());
    }
}
