//! The mesh plan: inventory + address plan in, every node's desired state out, as typed data (no shell yet).

use std::net::Ipv4Addr;
use std::sync::Arc;

use ipnet::Ipv4Net;
use serde::Serialize;

use crate::model::inventory::{Backend, Datapath, DockerMode, Encryption, FirewallKind, Inventory, MtuSetting};
use crate::model::ipam::Lock;
use crate::model::names::{self, IfName};

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
    /// Where this node's tunnels start: its underlay address, or its WireGuard address when encrypted.
    pub tunnel_ip: Ipv4Addr,
    pub subnet: Ipv4Net,
    pub mtu: MtuSetting,
    /// Bytes the tunnels add (VXLAN, and WireGuard under it): `mtu: auto` is the underlay's MTU minus this.
    pub overhead: u16,
    /// The data plane this node runs: the cluster's, or the node's own override.
    pub backend: Backend,
    pub switch: SwitchSpec,
    pub vxlan: VxlanSpec,
    /// The WireGuard interface under the tunnels, when `encryption: wireguard`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wireguard: Option<WireguardSpec>,
    pub tunnels: Vec<TunnelSpec>,
    pub veth: VethSpec,
    pub docker: DockerSpec,
    pub sysctls: Vec<Sysctl>,
    /// Devices whose TX checksum offload must be off (userspace datapath: see docs/architecture.md).
    pub tx_offload_off: Vec<IfName>,
    pub nat: Option<NatSpec>,
    /// Traffic inside the cluster CIDR is accepted in FORWARD, ahead of docker's own rules.
    pub forward_accept: Ipv4Net,
    /// Blocks of the cluster CIDR that are not the mesh's (docker0): their isolation stays docker's business.
    pub forward_exclude: Vec<Ipv4Net>,
    pub firewall: FirewallSpec,
}

#[derive(Debug, Clone, Serialize)]
pub struct SwitchSpec {
    pub bridge: IfName,
    pub datapath: Datapath,
    /// The switch address with the cluster's prefix, so the whole cluster routes via sw0.
    pub address: Ipv4Net,
    /// sw0's MAC address, derived from its switch address ([`switch_mac`]): the same every time sw0 is made.
    pub mac: String,
}

/// A fixed, locally administered unicast MAC for the switch holding `address`: `02:76:` and the address's four
/// bytes. Left to themselves, a Linux bridge takes its lowest port's MAC and an OVS bridge picks one of its ports',
/// so sw0 got a new MAC whenever its veth was re-made (a reboot, `down` and `up`, a node removed and added again),
/// and every peer kept sending to the old one until its neighbour entry expired (tens of seconds of loss; `verify`
/// saw it as switches answering only a second ping). Unique within a cluster, as its switch addresses are.
pub fn switch_mac(address: std::net::Ipv4Addr) -> String {
    let [a, b, c, d] = address.octets();
    format!("02:76:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct VxlanSpec {
    pub vni: u32,
    pub port: u16,
}

/// One WireGuard interface: its address, its port, and every other node as a peer.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct WireguardSpec {
    pub device: IfName,
    pub port: u16,
    /// This node's WireGuard address, with the WireGuard range's prefix.
    pub address: Ipv4Net,
    pub peers: Vec<WireguardPeer>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct WireguardPeer {
    pub name: Arc<str>,
    /// The peer's underlay address and WireGuard port.
    pub endpoint: std::net::SocketAddrV4,
    /// Its WireGuard address: the only address it may send from inside the tunnel.
    pub address: Ipv4Addr,
    /// Read from the peer host (its key is made there); `None` until that host has one.
    pub public_key: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TunnelSpec {
    /// Shared by every node's tunnel to the same peer (a million of these in a 1,000-node plan).
    pub port: IfName,
    pub peer: Arc<str>,
    /// The peer's tunnel address: its underlay address, or its WireGuard address when encrypted.
    pub remote_ip: Ipv4Addr,
    /// Split horizon: a frame that came in on one tunnel never leaves on another (no loop in a full mesh).
    pub protected: bool,
    /// Liveness of the tunnel, reported by `status`: BFD between OVS hosts only (a Linux peer never answers it).
    pub bfd: bool,
    /// The peer's switch address: what `status` pings when BFD cannot tell, and where the peer's subnet is routed.
    pub peer_switch: Ipv4Addr,
    /// The peer's container subnet, routed via its switch address.
    pub peer_subnet: Ipv4Net,
}

#[derive(Debug, Clone, Serialize)]
pub struct VethSpec {
    pub switch_end: IfName,
    pub docker_end: IfName,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DockerSpec {
    pub mode: DockerMode,
    pub network: String,
    /// The Linux bridge docker puts the network on; none in `docker.mode: none`.
    pub bridge: Option<IfName>,
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
    /// The peers' underlay addresses: the only ones allowed to send VXLAN here (or, encrypted, WireGuard).
    pub peers: Vec<Ipv4Addr>,
    /// With encryption: VXLAN is accepted only from the WireGuard interface, from the peers' WireGuard addresses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wireguard: Option<WireguardGuard>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WireguardGuard {
    pub port: u16,
    pub device: IfName,
    pub mesh: Vec<Ipv4Addr>,
}

/// What every other node needs to know of one node.
struct Peer {
    port: IfName,
    name: Arc<str>,
    /// Its tunnel address: underlay, or WireGuard when encrypted.
    tunnel_ip: Ipv4Addr,
    backend: Backend,
    switch_ip: Ipv4Addr,
    underlay_ip: Ipv4Addr,
    subnet: Ipv4Net,
}

/// Builds every node's desired state. `lock` must hold an allocation for every inventory node.
pub fn plan(inv: &Inventory, lock: &Lock) -> ClusterPlan {
    let c = &inv.cluster;
    let backend_of = |n: &crate::model::inventory::Node| n.backend.unwrap_or(c.backend);
    let encrypted = c.encryption == Encryption::Wireguard;
    // The address a node's tunnels run between: its WireGuard address when encrypted.
    let tunnel_ip = |n: &crate::model::inventory::Node| {
        let a = &lock.nodes[&n.name];
        if encrypted { a.wireguard_ip.expect("the lock has WireGuard addresses when encrypted") } else { n.underlay_ip }
    };
    let peers: Vec<Peer> = inv
        .nodes
        .iter()
        .map(|n| {
            let a = &lock.nodes[&n.name];
            Peer {
                port: names::tunnel_port(&n.name).expect("validated node name"),
                name: Arc::from(n.name.as_str()),
                tunnel_ip: tunnel_ip(n),
                backend: backend_of(n),
                switch_ip: a.switch_ip,
                underlay_ip: n.underlay_ip,
                subnet: a.subnet,
            }
        })
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
                .map(|(_, p)| TunnelSpec {
                    port: p.port.clone(),
                    peer: p.name.clone(),
                    remote_ip: p.tunnel_ip,
                    protected: true,
                    bfd: backend_of(n) == Backend::Ovs && p.backend == Backend::Ovs,
                    peer_switch: p.switch_ip,
                    peer_subnet: p.subnet,
                })
                .collect();
            let docker_bridge = match c.docker.mode {
                DockerMode::Network => Some(names::docker_bridge(&c.docker.network).expect("validated network name")),
                DockerMode::Docker0 => Some(names::docker0()),
                DockerMode::None => None,
            };
            let has_docker = c.docker.mode != DockerMode::None;
            let sysctl = |k: String, v: &str| Sysctl { key: k, value: v.to_string() };
            let on_docker_bridge =
                |key: &str, v: &str| docker_bridge.as_ref().map(|b| sysctl(format!("net.ipv4.conf.{b}.{key}"), v));
            let sysctls = [
                Some(sysctl("net.ipv4.ip_forward".to_string(), "1")),
                // Loose reverse-path filtering: replies from other hosts' containers arrive on sw0
                // while the route back may point at the docker bridge, and strict mode would drop them.
                Some(sysctl(format!("net.ipv4.conf.{}.rp_filter", names::SWITCH_BRIDGE), "2")),
                on_docker_bridge("rp_filter", "2"),
                // docker's bridge answers ARP only for its own address: joined to sw0 by the veth, it would otherwise
                // also answer peers asking for the switch address, with its own MAC, which changes whenever docker's
                // network is re-made (peers then send to a MAC that is gone until their entry expires).
                on_docker_bridge("arp_ignore", "1"),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>();
            let tx_offload_off = match c.datapath {
                Datapath::Netdev if has_docker && backend_of(n) == Backend::Ovs => {
                    vec![names::veth_switch_end(), names::veth_docker_end()]
                }
                _ => vec![],
            };
            let others = || peers.iter().enumerate().filter(move |(j, _)| *j != i).map(|(_, p)| p);
            let wireguard = encrypted.then(|| WireguardSpec {
                device: names::wireguard_device(),
                port: c.wireguard.port,
                address: Ipv4Net::new(tunnel_ip(n), c.wireguard.cidr.prefix_len()).expect("prefix from a valid net"),
                peers: others()
                    .map(|p| WireguardPeer {
                        name: p.name.clone(),
                        endpoint: std::net::SocketAddrV4::new(p.underlay_ip, c.wireguard.port),
                        address: p.tunnel_ip,
                        public_key: None,
                    })
                    .collect(),
            });
            NodePlan {
                name: n.name.clone(),
                cluster: c.name.clone(),
                host: n.host.clone(),
                underlay_ip: n.underlay_ip,
                tunnel_ip: tunnel_ip(n),
                subnet: a.subnet,
                mtu: c.mtu,
                overhead: c.overhead(),
                backend: backend_of(n),
                switch: SwitchSpec {
                    bridge: names::switch_bridge(),
                    datapath: c.datapath,
                    address: Ipv4Net::new(a.switch_ip, c.cidr.prefix_len()).expect("prefix from a valid net"),
                    mac: switch_mac(a.switch_ip),
                },
                vxlan: VxlanSpec { vni: c.vni, port: c.port },
                wireguard,
                tunnels,
                veth: VethSpec { switch_end: names::veth_switch_end(), docker_end: names::veth_docker_end() },
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
                    peers: others().map(|p| p.underlay_ip).collect(),
                    wireguard: encrypted.then(|| WireguardGuard {
                        port: c.wireguard.port,
                        device: names::wireguard_device(),
                        mesh: others().map(|p| p.tunnel_ip).collect(),
                    }),
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

    /// Every node's WireGuard peers given the public keys their hosts reported (by node name); peers whose host
    /// has no key yet keep `None`.
    pub fn with_public_keys(&self, keys: &std::collections::BTreeMap<String, String>) -> ClusterPlan {
        let mut plan = self.clone();
        for n in &mut plan.nodes {
            for p in n.wireguard.iter_mut().flat_map(|w| w.peers.iter_mut()) {
                p.public_key = keys.get(&*p.name).cloned();
            }
        }
        plan
    }
}
