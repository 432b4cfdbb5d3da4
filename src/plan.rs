//! The mesh plan: inventory + address plan in, every node's desired state out, as typed data (no shell yet).

use std::net::Ipv4Addr;
use std::sync::Arc;

use ipnet::Ipv4Net;
use serde::Serialize;

use crate::inventory::{Datapath, DockerMode, FirewallKind, Inventory, MtuSetting};
use crate::ipam::Lock;
use crate::names;

#[derive(Debug, Clone, Serialize)]
pub struct ClusterPlan {
    pub cluster: String,
    pub cidr: Ipv4Net,
    /// N(N-1)/2: each pair of hosts shares one tunnel, seen from both ends.
    pub tunnel_pairs: usize,
    pub nodes: Vec<NodePlan>,
}

/// Everything one host must have for the mesh; `diff` compares it with what the host has.
#[derive(Debug, Clone, Serialize)]
pub struct NodePlan {
    pub name: String,
    /// The cluster's name, for the scripts' headers.
    pub cluster: String,
    pub host: String,
    pub underlay_ip: Ipv4Addr,
    pub subnet: Ipv4Net,
    pub mtu: MtuSetting,
    pub switch: SwitchSpec,
    pub vxlan: VxlanSpec,
    pub tunnels: Vec<TunnelSpec>,
    pub veth: VethSpec,
    pub docker: DockerSpec,
    pub sysctls: Vec<Sysctl>,
    /// Devices whose TX checksum offload must be off (userspace datapath: see docs/architecture.md).
    pub tx_offload_off: Vec<String>,
    pub nat: Option<NatSpec>,
    /// Traffic inside the cluster CIDR is accepted in FORWARD, ahead of docker's own rules.
    pub forward_accept: Ipv4Net,
    /// Blocks of the cluster CIDR that are not the mesh's (docker0): their isolation stays docker's business.
    pub forward_exclude: Vec<Ipv4Net>,
    pub firewall: FirewallSpec,
}

#[derive(Debug, Clone, Serialize)]
pub struct SwitchSpec {
    pub bridge: String,
    pub datapath: Datapath,
    /// The switch address with the cluster's prefix, so the whole cluster routes via sw0.
    pub address: Ipv4Net,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct VxlanSpec {
    pub vni: u32,
    pub port: u16,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TunnelSpec {
    /// Shared by every node's tunnel to the same peer (a million of these in a 1,000-node plan).
    pub port: Arc<str>,
    pub peer: Arc<str>,
    pub remote_ip: Ipv4Addr,
    /// Split horizon: a frame that came in on one tunnel never leaves on another (no loop in a full mesh).
    pub protected: bool,
    /// Liveness of the tunnel, reported by `status`.
    pub bfd: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct VethSpec {
    pub switch_end: String,
    pub docker_end: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DockerSpec {
    pub mode: DockerMode,
    pub network: String,
    pub bridge: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// Always false: docker's masquerade would NAT traffic between hosts; vxmesh NATs only what leaves the cluster.
    pub masquerade: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Sysctl {
    pub key: String,
    pub value: String,
}

/// Masquerade from this node's subnet to anything outside the cluster; nothing else.
#[derive(Debug, Clone, Serialize)]
pub struct NatSpec {
    pub source: Ipv4Net,
    pub cluster: Ipv4Net,
}

#[derive(Debug, Clone, Serialize)]
pub struct FirewallSpec {
    pub kind: FirewallKind,
    pub port: u16,
    /// The only addresses allowed to send VXLAN to this host.
    pub peers: Vec<Ipv4Addr>,
}

/// Builds every node's desired state. `lock` must hold an allocation for every inventory node.
pub fn plan(inv: &Inventory, lock: &Lock) -> ClusterPlan {
    let c = &inv.cluster;
    let peers: Vec<(Arc<str>, Arc<str>, Ipv4Addr)> = inv
        .nodes
        .iter()
        .map(|n| (Arc::from(names::tunnel_port(&n.name)), Arc::from(n.name.as_str()), n.underlay_ip))
        .collect();
    let nodes = inv
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let a = lock.nodes[&n.name];
            let gateway = a.subnet.hosts().next().expect("node subnets are /30 or larger");
            let tunnels: Vec<TunnelSpec> = peers
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, (port, peer, ip))| TunnelSpec {
                    port: port.clone(),
                    peer: peer.clone(),
                    remote_ip: *ip,
                    protected: true,
                    bfd: true,
                })
                .collect();
            let docker_bridge = match c.docker.mode {
                DockerMode::Network => names::docker_bridge(&c.docker.network),
                DockerMode::Docker0 => names::DOCKER0.to_string(),
                DockerMode::None => String::new(),
            };
            let has_docker = c.docker.mode != DockerMode::None;
            let sysctls = [
                ("net.ipv4.ip_forward", "1"),
                // Loose reverse-path filtering: replies from other hosts' containers arrive on sw0
                // while the route back may point at the docker bridge, and strict mode would drop them.
                (&*format!("net.ipv4.conf.{}.rp_filter", names::SWITCH_BRIDGE), "2"),
                (&*format!("net.ipv4.conf.{docker_bridge}.rp_filter"), "2"),
            ]
            .map(|(k, v)| Sysctl { key: k.to_string(), value: v.to_string() })
            .into_iter()
            .filter(|s| {
                has_docker || !s.key.ends_with(".rp_filter") || s.key.contains(&format!(".{}.", names::SWITCH_BRIDGE))
            })
            .collect::<Vec<_>>();
            let tx_offload_off = match c.datapath {
                Datapath::Netdev if has_docker => {
                    vec![names::VETH_SWITCH_END.to_string(), names::VETH_DOCKER_END.to_string()]
                }
                _ => vec![],
            };
            NodePlan {
                name: n.name.clone(),
                cluster: c.name.clone(),
                host: n.host.clone(),
                underlay_ip: n.underlay_ip,
                subnet: a.subnet,
                mtu: c.mtu,
                switch: SwitchSpec {
                    bridge: names::SWITCH_BRIDGE.to_string(),
                    datapath: c.datapath,
                    address: Ipv4Net::new(a.switch_ip, c.cidr.prefix_len()).expect("prefix from a valid net"),
                },
                vxlan: VxlanSpec { vni: c.vni, port: c.port },
                tunnels,
                veth: VethSpec {
                    switch_end: names::VETH_SWITCH_END.to_string(),
                    docker_end: names::VETH_DOCKER_END.to_string(),
                },
                docker: DockerSpec {
                    mode: c.docker.mode,
                    // In docker0 mode containers join docker's default network, called `bridge`.
                    network: match c.docker.mode {
                        DockerMode::Network => c.docker.network.clone(),
                        DockerMode::Docker0 => "bridge".to_string(),
                        DockerMode::None => String::new(),
                    },
                    bridge: docker_bridge,
                    subnet: a.subnet,
                    gateway,
                    masquerade: false,
                },
                sysctls,
                tx_offload_off,
                nat: c.nat.then_some(NatSpec { source: a.subnet, cluster: c.cidr }),
                forward_accept: c.cidr,
                forward_exclude: c.exclude.clone(),
                firewall: FirewallSpec {
                    kind: c.firewall,
                    port: c.port,
                    peers: peers.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, p)| p.2).collect(),
                },
            }
        })
        .collect::<Vec<_>>();
    let n = nodes.len();
    ClusterPlan { cluster: c.name.clone(), cidr: c.cidr, tunnel_pairs: n * n.saturating_sub(1) / 2, nodes }
}

impl ClusterPlan {
    pub fn node(&self, name: &str) -> Option<&NodePlan> {
        self.nodes.iter().find(|n| n.name == name)
    }
}
