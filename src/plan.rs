//! The mesh plan: inventory + address plan in, every node's desired state out, as typed data (no shell yet).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::{Ipv4Net, Ipv6Net};
use serde::Serialize;

use crate::model::inventory::{
    Backend, Datapath, DockerMode, Encryption, FirewallKind, Inventory, MtuSetting, Outside6, overlay6,
};
use crate::model::ipam::Lock;
use crate::model::names::{self, IfName};
use crate::model::paths::{Fleet, PairPath};

#[derive(Debug, Clone, Serialize)]
pub struct ClusterPlan {
    pub cluster: String,
    pub cidr: Ipv4Net,
    /// N(N-1)/2: each pair of hosts shares one tunnel, seen from both ends.
    pub tunnel_pairs: usize,
    /// The tunnels' family where dual-stack hosts left a choice (`cluster.underlay_family`); `None` otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub underlay_family: Option<crate::model::inventory::UnderlayFamily>,
    pub nodes: Vec<NodePlan>,
}

/// Everything one host must have for the mesh; `diff` compares it with what the host has.
///
/// What it must have towards each peer (tunnel, WireGuard peer, firewall entry) is not stored: it is computed per
/// pair from the cluster's one [`PeerTable`] when asked ([`NodePlan::tunnels`], [`NodePlan::wireguard_peers`], ...),
/// so a cluster's plans take memory linear in its nodes, not N(N-1) of each. Serialized (`plan --json`) with those
/// lists written out, as before.
#[derive(Debug, Clone)]
pub struct NodePlan {
    pub name: String,
    /// The cluster's name, for the scripts' headers.
    pub cluster: String,
    pub host: String,
    /// The underlay address, IPv4 or IPv6.
    pub underlay: IpAddr,
    /// Where this node's tunnels start: its underlay address, or its WireGuard address when encrypted.
    pub tunnel: IpAddr,
    pub subnet: Ipv4Net,
    /// Dual-stack containers: the node's IPv6 side, when `cluster.cidr6` is set.
    pub ipv6: Option<Ipv6Spec>,
    pub mtu: MtuSetting,
    /// Bytes the tunnels add (VXLAN, and WireGuard under it): `mtu: auto` is the underlay's MTU minus this.
    pub overhead: u16,
    /// The data plane this node runs: the cluster's, or the node's own override.
    pub backend: Backend,
    pub switch: SwitchSpec,
    pub vxlan: VxlanSpec,
    /// The WireGuard interface under the tunnels, when `encryption: wireguard`.
    pub wireguard: Option<WireguardSpec>,
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
    /// Names across hosts (`cluster.dns`), when enabled.
    pub dns: Option<crate::model::inventory::DnsSettings>,
    /// Every node of the cluster, this one included (at `me`): where the per-pair parts come from.
    peers: Arc<PeerTable>,
    me: usize,
}

/// A node's IPv6 side: its block for containers, docker's gateway in it, sw0's address (in the cluster range's first
/// block, with the range's prefix, so the whole range routes via sw0 as IPv4 does), and what leaves the range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ipv6Spec {
    pub subnet: Ipv6Net,
    pub gateway: Ipv6Addr,
    pub switch: Ipv6Net,
    pub cluster: Ipv6Net,
    pub outside: Outside6,
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

/// One WireGuard interface: its address and its port; every other node is a peer ([`NodePlan::wireguard_peers`]).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct WireguardSpec {
    pub device: IfName,
    pub port: u16,
    /// This node's WireGuard address, with the WireGuard range's prefix.
    pub address: Ipv4Net,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct WireguardPeer {
    pub name: Arc<str>,
    /// Where to send to the peer: its address on the pair's path ([`crate::model::paths`]) and WireGuard port;
    /// `None` for a peer behind NAT, which starts the conversation (its endpoint is learnt from its handshake).
    pub endpoint: Option<SocketAddr>,
    /// Its WireGuard address: the only address it may send from inside the tunnel.
    pub address: Ipv4Addr,
    /// The WireGuard addresses of the hosts this peer relays for this node (both behind NAT, in other sites):
    /// their packets come and go through it, so they join its allowed IPs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub relayed: Vec<Ipv4Addr>,
    /// Read from the peer host (its key is made there); `None` until that host has one.
    pub public_key: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TunnelSpec {
    /// The same name on every node's tunnel to this peer.
    pub port: IfName,
    pub peer: Arc<str>,
    /// The peer's tunnel address: its underlay address, or its WireGuard address when encrypted.
    pub remote_ip: IpAddr,
    /// Split horizon: a frame that came in on one tunnel never leaves on another (no loop in a full mesh).
    pub protected: bool,
    /// Liveness of the tunnel, reported by `status`: BFD between OVS hosts only (a Linux peer never answers it).
    pub bfd: bool,
    /// The peer's switch address: what `status` pings when BFD cannot tell, and where the peer's subnet is routed.
    pub peer_switch: Ipv4Addr,
    /// The peer's container subnet, routed via its switch address.
    pub peer_subnet: Ipv4Net,
    /// With dual-stack containers: the peer's IPv6 switch address and block, routed the same way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_switch6: Option<Ipv6Addr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_subnet6: Option<Ipv6Net>,
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
    /// With dual-stack containers: the network's IPv6 block and gateway (`docker network create --ipv6`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<Ipv6Net>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<Ipv6Addr>,
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

/// Who may send tunnel traffic here: the peers' underlay addresses ([`NodePlan::firewall_peers`]) for VXLAN (or,
/// encrypted, WireGuard); with encryption, VXLAN only from the WireGuard interface, from the peers' WireGuard
/// addresses ([`NodePlan::wireguard_mesh`]).
#[derive(Debug, Clone, Serialize)]
pub struct FirewallSpec {
    pub kind: FirewallKind,
    pub port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wireguard: Option<WireguardGuard>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WireguardGuard {
    pub port: u16,
    pub device: IfName,
}

/// Every node of a cluster as its peers see it, in inventory order; one table shared by every node's plan.
#[derive(Debug)]
pub struct PeerTable {
    rows: Vec<Peer>,
    /// Sites, public addresses and relays, same order as `rows`: the path of each pair.
    fleet: Fleet,
    /// Each node's WireGuard public key as its host reported it (same order as `rows`); `None` until it has one.
    keys: Vec<Option<String>>,
}

/// What every other node needs to know of one node.
#[derive(Debug, Clone)]
struct Peer {
    port: IfName,
    name: Arc<str>,
    /// Its tunnel address: underlay, or WireGuard when encrypted.
    tunnel_ip: IpAddr,
    /// Its WireGuard address, when encrypted.
    wireguard_ip: Option<Ipv4Addr>,
    backend: Backend,
    switch_ip: Ipv4Addr,
    underlay_ip: IpAddr,
    subnet: Ipv4Net,
    /// With dual-stack containers: its IPv6 switch address and block.
    v6: Option<(Ipv6Addr, Ipv6Net)>,
}

/// Builds every node's desired state. `lock` must hold an allocation for every inventory node.
pub fn plan(inv: &Inventory, lock: &Lock) -> ClusterPlan {
    let c = &inv.cluster;
    let backend_of = |n: &crate::model::inventory::Node| n.backend.unwrap_or(c.backend);
    let encrypted = c.encryption == Encryption::Wireguard;
    // The address a node's tunnels run between: its WireGuard address when encrypted.
    let wireguard_ip = |n: &crate::model::inventory::Node| {
        encrypted.then(|| lock.nodes[&n.name].wireguard_ip.expect("the lock has WireGuard addresses when encrypted"))
    };
    let tunnel_ip = |n: &crate::model::inventory::Node| wireguard_ip(n).map_or(n.underlay, IpAddr::V4);
    // sw0's IPv6 address: the first block of the range, host part the node's switch id (as `switch_cidr` for IPv4).
    let v6 = |n: &crate::model::inventory::Node| {
        let o = c.ipv6?;
        let a = &lock.nodes[&n.name];
        let switches = u128::from(overlay6::block(o.cidr, o.node_prefix, 0).network());
        let subnet = a.subnet6.expect("the lock has IPv6 blocks when cidr6 is set");
        Some((Ipv6Addr::from(switches + u128::from(a.id)), subnet))
    };
    let rows: Vec<Peer> = inv
        .nodes
        .iter()
        .map(|n| {
            let a = &lock.nodes[&n.name];
            Peer {
                port: names::tunnel_port(&n.name).expect("validated node name"),
                name: Arc::from(n.name.as_str()),
                tunnel_ip: tunnel_ip(n),
                wireguard_ip: wireguard_ip(n),
                backend: backend_of(n),
                switch_ip: a.switch_ip,
                underlay_ip: n.underlay,
                subnet: a.subnet,
                v6: v6(n),
            }
        })
        .collect();
    let peers = Arc::new(PeerTable { keys: vec![None; rows.len()], rows, fleet: inv.fleet() });
    let nodes = inv
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let a = lock.nodes[&n.name];
            let gateway = a.subnet.hosts().next().expect("node subnets are /30 or larger");
            let ipv6 = c.ipv6.zip(v6(n)).map(|(o, (switch, subnet))| Ipv6Spec {
                subnet,
                gateway: Ipv6Addr::from(u128::from(subnet.network()) + 1),
                switch: Ipv6Net::new(switch, o.cidr.prefix_len()).expect("prefix from a valid net"),
                cluster: o.cidr,
                outside: o.outside,
            });
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
                // Dual-stack containers: the host routes IPv6 between sw0 and docker's bridge.
                ipv6.as_ref().map(|_| sysctl("net.ipv6.conf.all.forwarding".to_string(), "1")),
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
            let wireguard = wireguard_ip(n).map(|w| WireguardSpec {
                device: names::wireguard_device(),
                port: c.wireguard.port,
                address: Ipv4Net::new(w, c.wireguard.cidr.prefix_len()).expect("prefix from a valid net"),
            });
            NodePlan {
                name: n.name.clone(),
                cluster: c.name.clone(),
                host: n.host.clone(),
                underlay: n.underlay,
                tunnel: tunnel_ip(n),
                subnet: a.subnet,
                ipv6: ipv6.clone(),
                mtu: c.mtu,
                overhead: c.overhead_on(n.underlay),
                backend: backend_of(n),
                switch: SwitchSpec {
                    bridge: names::switch_bridge(),
                    datapath: c.datapath,
                    address: Ipv4Net::new(a.switch_ip, c.cidr.prefix_len()).expect("prefix from a valid net"),
                    mac: switch_mac(a.switch_ip),
                },
                vxlan: VxlanSpec { vni: c.vni, port: c.port },
                wireguard,
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
                    subnet6: ipv6.as_ref().map(|v| v.subnet),
                    gateway6: ipv6.as_ref().map(|v| v.gateway),
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
                    wireguard: encrypted
                        .then(|| WireguardGuard { port: c.wireguard.port, device: names::wireguard_device() }),
                },
                dns: c.dns.enabled.then(|| c.dns.clone()),
                peers: peers.clone(),
                me: i,
            }
        })
        .collect::<Vec<_>>();
    let n = nodes.len();
    ClusterPlan {
        cluster: c.name.clone(),
        cidr: c.cidr,
        tunnel_pairs: n * n.saturating_sub(1) / 2,
        underlay_family: c.underlay_family,
        nodes,
    }
}

impl ClusterPlan {
    pub fn node(&self, name: &str) -> Option<&NodePlan> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Every node's WireGuard peers given the public keys their hosts reported (by node name); peers whose host
    /// has no key yet keep `None`.
    pub fn with_public_keys(&self, keys: &std::collections::BTreeMap<String, String>) -> ClusterPlan {
        let mut plan = self.clone();
        let Some(first) = plan.nodes.first() else { return plan };
        let rows = &first.peers.rows;
        let table = Arc::new(PeerTable {
            keys: rows.iter().map(|r| keys.get(&*r.name).cloned()).collect(),
            rows: rows.iter().map(Peer::clone).collect(),
            fleet: first.peers.fleet.clone(),
        });
        for n in &mut plan.nodes {
            n.peers = table.clone();
        }
        plan
    }

    /// With `mtu: auto`, every node's overlay MTU set to the cluster's minimum: the smallest underlay MTU of any host
    /// (`underlay_mtus`, as each host's facts report it) minus the tunnels' overhead, the same on every path. A
    /// full-size packet between any two containers then passes, even between hosts of different underlay MTU (a
    /// per-host MTU lets a 1500-byte host send what a 1400-byte site drops). Unchanged with a fixed MTU, or with
    /// no MTU known.
    pub fn with_cluster_mtu(&self, underlay_mtus: impl IntoIterator<Item = u32>) -> ClusterPlan {
        let mut plan = self.clone();
        let Some(least) = underlay_mtus.into_iter().min() else { return plan };
        for n in plan.nodes.iter_mut().filter(|n| n.mtu == MtuSetting::Auto) {
            let overlay = least.saturating_sub(u32::from(n.overhead));
            n.mtu = MtuSetting::Fixed(u16::try_from(overlay).unwrap_or(u16::MAX));
        }
        plan
    }

    /// Every ordered pair's path (`private`, `public`, `relay via NODE`) and who starts, in inventory order; empty
    /// when every host is in one site (all `private`, as before sites existed).
    pub fn paths(&self) -> Vec<PairPath> {
        self.nodes.first().map_or_else(Vec::new, |n| n.peers.fleet.table())
    }

    /// One ordered pair's path by node names, also in a flat cluster (`private`); `None` for an unknown name.
    pub fn path(&self, from: &str, to: &str) -> Option<PairPath> {
        self.nodes.first()?.peers.fleet.between(from, to)
    }
}

impl NodePlan {
    /// Every other node of the cluster, in inventory order, with its row number.
    fn others(&self) -> impl Iterator<Item = (usize, &Peer)> + '_ {
        self.peers.rows.iter().enumerate().filter(move |(j, _)| *j != self.me)
    }

    /// This node's site and addresses as the pair paths see them.
    pub fn endpoint(&self) -> &crate::model::paths::Endpoint {
        &self.peers.fleet.hosts()[self.me]
    }

    /// Whether the cluster has sites (some node is in another site or has a public address).
    pub fn across_sites(&self) -> bool {
        !self.peers.fleet.is_flat()
    }

    /// How many peers (and tunnels) this node has: every other node.
    pub fn peer_count(&self) -> usize {
        self.peers.rows.len().saturating_sub(1)
    }

    /// One tunnel per peer, in inventory order.
    pub fn tunnels(&self) -> impl Iterator<Item = TunnelSpec> + '_ {
        self.others().map(|(j, p)| self.tunnel_to(j, p))
    }

    fn tunnel_to(&self, j: usize, p: &Peer) -> TunnelSpec {
        // In clear, VXLAN goes to the peer's address on the pair's path (its public address across sites);
        // validation refuses a peer nothing can reach without WireGuard.
        let remote_ip = match self.wireguard {
            Some(_) => p.tunnel_ip,
            None => self.peers.fleet.address(self.me, j).unwrap_or(p.underlay_ip),
        };
        TunnelSpec {
            port: p.port.clone(),
            peer: p.name.clone(),
            remote_ip,
            protected: true,
            bfd: self.backend == Backend::Ovs && p.backend == Backend::Ovs,
            peer_switch: p.switch_ip,
            peer_subnet: p.subnet,
            peer_switch6: p.v6.map(|v| v.0),
            peer_subnet6: p.v6.map(|v| v.1),
        }
    }

    /// Every other node this one talks to directly, as a WireGuard peer; none without encryption. A peer behind
    /// NAT has no endpoint (it starts); one reached only through a relay is no peer here (the relay's entry
    /// carries its address instead).
    pub fn wireguard_peers(&self) -> impl Iterator<Item = WireguardPeer> + '_ {
        let port = self.wireguard.as_ref().map(|w| w.port);
        let fleet = &self.peers.fleet;
        port.into_iter().flat_map(move |port| {
            self.direct().map(move |(j, p)| WireguardPeer {
                name: p.name.clone(),
                endpoint: fleet.address(self.me, j).map(|a| SocketAddr::new(a, port)),
                address: p.wireguard(),
                relayed: fleet.relayed_via(self.me, j).map(|k| self.peers.rows[k].wireguard()).collect(),
                public_key: self.peers.keys[j].clone(),
            })
        })
    }

    /// The peers this node exchanges packets with itself: every other node but those it reaches through a relay.
    fn direct(&self) -> impl Iterator<Item = (usize, &Peer)> + '_ {
        let fleet = &self.peers.fleet;
        self.others().filter(move |(j, _)| fleet.relay_of(self.me, *j).is_none())
    }

    /// Where the peers' tunnel packets come from, the only addresses allowed to send VXLAN here (or, encrypted,
    /// WireGuard): each direct peer's address on the pair's path (underlay within the site, public across).
    /// Peers behind NAT have none: see [`NodePlan::firewall_open`].
    pub fn tunnel_sources(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let fleet = &self.peers.fleet;
        self.direct().filter_map(move |(j, _)| fleet.address(self.me, j))
    }

    /// The IPv4 ones of [`NodePlan::tunnel_sources`]: all of them on an IPv4 underlay, none on an IPv6 one (the
    /// firewalls that write only IPv4 rules read these: they then let no tunnel in, never every one).
    pub fn firewall_peers(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.tunnel_sources().filter_map(|ip| match ip {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        })
    }

    /// Whether the WireGuard port must stay open to any source: some direct peer is behind NAT, so its packets
    /// come from an address nobody knows in advance (its keys authenticate it). Never without encryption.
    pub fn firewall_open(&self) -> bool {
        let fleet = &self.peers.fleet;
        self.wireguard.is_some() && self.direct().any(|(j, _)| fleet.address(self.me, j).is_none())
    }

    /// The WireGuard addresses of the ordered pairs this node relays for: its forwarding accepts wg -> wg
    /// between these only. Empty on a node that relays for nobody.
    pub fn relay_pairs(&self) -> Vec<(Ipv4Addr, Ipv4Addr)> {
        let rows = &self.peers.rows;
        self.peers
            .fleet
            .relayed_by(self.me)
            .into_iter()
            .map(|(a, b)| (rows[a].wireguard(), rows[b].wireguard()))
            .collect()
    }

    /// With encryption, the peers' WireGuard addresses: VXLAN is accepted only from these, on the WireGuard
    /// interface. Empty without encryption.
    pub fn wireguard_mesh(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        let guarded = self.firewall.wireguard.is_some();
        self.others().filter(move |_| guarded).map(|(_, p)| p.wireguard())
    }

    /// Whether the tunnels' underlay is IPv6: the firewall then writes ip6tables (or `ip6` nftables) rules, and
    /// the outer headers are 20 bytes longer.
    pub fn underlay_is_ipv6(&self) -> bool {
        self.underlay.is_ipv6()
    }
}

impl Peer {
    /// Its WireGuard address: asked only of plans with encryption, where every row has one.
    fn wireguard(&self) -> Ipv4Addr {
        self.wireguard_ip.expect("asked only when encrypted, where every node has a WireGuard address")
    }
}

/// A list written out from an iterator as it is serialized, never collected.
pub(crate) struct Listed<F>(pub(crate) F);

impl<F: Fn() -> I, I: Iterator<Item = T>, T: Serialize> Serialize for Listed<F> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq((self.0)())
    }
}

/// `plan --json`'s shape of a node: the stored fields with the per-pair lists written out in their old places.
impl Serialize for NodePlan {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        #[derive(Serialize)]
        struct Wireguard<'a, P: Serialize> {
            device: &'a IfName,
            port: u16,
            address: Ipv4Net,
            peers: P,
        }
        #[derive(Serialize)]
        struct Guard<'a, M: Serialize> {
            port: u16,
            device: &'a IfName,
            mesh: M,
        }
        #[derive(Serialize)]
        struct Firewall<P: Serialize, G: Serialize> {
            kind: FirewallKind,
            port: u16,
            peers: P,
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            open: bool,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            relays_for: Vec<(Ipv4Addr, Ipv4Addr)>,
            #[serde(skip_serializing_if = "Option::is_none")]
            wireguard: Option<G>,
        }
        let mut n = s.serialize_struct("NodePlan", 25)?;
        n.serialize_field("name", &self.name)?;
        n.serialize_field("cluster", &self.cluster)?;
        n.serialize_field("host", &self.host)?;
        // Where the cluster has sites: this node's, and the address other sites reach it at (null: behind NAT).
        if self.across_sites() {
            let e = self.endpoint();
            n.serialize_field("site", &*e.site)?;
            n.serialize_field("public_ip", &e.public_ip)?;
        } else {
            n.skip_field("site")?;
            n.skip_field("public_ip")?;
        }
        n.serialize_field("underlay_ip", &self.underlay)?;
        n.serialize_field("tunnel_ip", &self.tunnel)?;
        n.serialize_field("subnet", &self.subnet)?;
        match &self.ipv6 {
            Some(v) => n.serialize_field("ipv6", v)?,
            None => n.skip_field("ipv6")?,
        }
        n.serialize_field("mtu", &self.mtu)?;
        n.serialize_field("overhead", &self.overhead)?;
        n.serialize_field("backend", &self.backend)?;
        n.serialize_field("switch", &self.switch)?;
        n.serialize_field("vxlan", &self.vxlan)?;
        if let Some(w) = &self.wireguard {
            let peers = Listed(|| self.wireguard_peers());
            n.serialize_field("wireguard", &Wireguard { device: &w.device, port: w.port, address: w.address, peers })?;
        } else {
            n.skip_field("wireguard")?;
        }
        n.serialize_field("tunnels", &Listed(|| self.tunnels()))?;
        n.serialize_field("veth", &self.veth)?;
        n.serialize_field("docker", &self.docker)?;
        n.serialize_field("sysctls", &self.sysctls)?;
        n.serialize_field("tx_offload_off", &self.tx_offload_off)?;
        n.serialize_field("nat", &self.nat)?;
        n.serialize_field("forward_accept", &self.forward_accept)?;
        n.serialize_field("forward_exclude", &self.forward_exclude)?;
        let fw = &self.firewall;
        let guard = fw.wireguard.as_ref().map(|g| Guard {
            port: g.port,
            device: &g.device,
            mesh: Listed(|| self.wireguard_mesh()),
        });
        n.serialize_field(
            "firewall",
            &Firewall {
                kind: fw.kind,
                port: fw.port,
                peers: Listed(|| self.tunnel_sources()),
                open: self.firewall_open(),
                relays_for: self.relay_pairs(),
                wireguard: guard,
            },
        )?;
        match &self.dns {
            Some(d) => n.serialize_field("dns", d)?,
            None => n.skip_field("dns")?,
        }
        n.end()
    }
}
