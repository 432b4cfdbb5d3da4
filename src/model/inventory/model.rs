//! The validated inventory: every value parsed, defaulted and checked; what the rest of vxmesh works from.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use ipnet::{Ipv4Net, Ipv6Net};
use serde::Serialize;

use crate::error::Pos;

#[derive(Debug, Clone, Serialize)]
pub struct Inventory {
    #[serde(skip)]
    pub path: PathBuf,
    pub cluster: Cluster,
    pub ssh: SshSettings,
    pub nodes: Vec<Node>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cluster {
    pub name: String,
    pub cidr: Ipv4Net,
    pub node_prefix: u8,
    pub switch_cidr: Ipv4Net,
    /// Blocks inside `cidr` never handed to a node (by default docker0's 172.17.0.0/16 when it lies inside).
    pub exclude: Vec<Ipv4Net>,
    pub vni: u32,
    pub port: u16,
    pub mtu: MtuSetting,
    pub backend: Backend,
    pub datapath: Datapath,
    pub docker: DockerSettings,
    pub nat: bool,
    pub firewall: FirewallKind,
    /// An address outside the cluster that `verify` reaches to prove NAT works.
    pub outside: Option<Ipv4Addr>,
    /// Dual-stack containers (`cluster.cidr6`), when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Overlay6>,
    pub encryption: Encryption,
    /// Used when `encryption` is `wireguard`.
    pub wireguard: WireguardSettings,
    /// Names across hosts.
    pub dns: super::dns::DnsSettings,
    /// The family the tunnels use, when some node lists an underlay address of each family (`cluster.underlay_family`,
    /// else the one every node has, IPv4 where all have both); `None` when every node lists one address, whose
    /// family is then the only one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub underlay_family: Option<UnderlayFamily>,
}

/// An underlay address family, as `cluster.underlay_family` names it (`auto` there is no family: it is left to
/// the nodes' addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UnderlayFamily {
    Ipv4,
    Ipv6,
}

impl UnderlayFamily {
    pub fn of(ip: IpAddr) -> UnderlayFamily {
        if ip.is_ipv4() { UnderlayFamily::Ipv4 } else { UnderlayFamily::Ipv6 }
    }

    /// The setting's word, as the inventory writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            UnderlayFamily::Ipv4 => "ipv4",
            UnderlayFamily::Ipv6 => "ipv6",
        }
    }
}

impl std::fmt::Display for UnderlayFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UnderlayFamily::Ipv4 => "IPv4",
            UnderlayFamily::Ipv6 => "IPv6",
        })
    }
}

/// The containers' IPv6 side: every node a block of `cidr`, sw0 an address in its first block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Overlay6 {
    pub cidr: Ipv6Net,
    /// Each node's block: /64 unless set.
    pub node_prefix: u8,
    pub outside: Outside6,
}

/// What happens to IPv6 traffic from containers to addresses outside `cluster.cidr6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outside6 {
    /// Dropped: the default. A ULA range is never routed outside, and a global one routed without NAT makes every
    /// container reachable from the world unless the network upstream filters: the admin decides, not vxmesh.
    None,
    /// Forwarded as is, replies let back in, nothing else from outside: for a global range routed to the hosts.
    Route,
    /// Masqueraded behind the host's own IPv6 address, as IPv4 is.
    Masquerade,
}

pub const OUTSIDE6: [(&str, Outside6); 3] =
    [("none", Outside6::None), ("route", Outside6::Route), ("masquerade", Outside6::Masquerade)];

/// What carries the VXLAN tunnels between hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encryption {
    /// VXLAN straight over the underlay, in clear.
    None,
    /// VXLAN between WireGuard addresses: every host one WireGuard interface, every other host a peer.
    Wireguard,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WireguardSettings {
    /// The UDP port WireGuard listens on (on every host).
    pub port: u16,
    /// Where each host's WireGuard address comes from (`cidr` network + the node's switch id).
    pub cidr: Ipv4Net,
    /// The hosts that forward WireGuard between two hosts behind NAT in different sites, as listed; `None`
    /// when unset: the first node with a `public_ip` ([`crate::model::paths`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relays: Option<Vec<String>>,
}

/// Bytes WireGuard adds around each packet on an IPv4 underlay: outer IP 20, UDP 8, WireGuard header 16, tag 16.
pub const WIREGUARD_OVERHEAD: u16 = 60;
/// The same on an IPv6 underlay: the outer IPv6 header is 40 bytes.
pub const WIREGUARD_OVERHEAD_V6: u16 = 80;

/// The WireGuard addresses' default range: RFC 2544's benchmarking block, which no real network routes, so it
/// cannot collide with an underlay or a cloud's private ranges.
pub const WIREGUARD_DEFAULT_CIDR: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(198, 19, 0, 0), 16);
pub const WIREGUARD_DEFAULT_PORT: u16 = 51820;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MtuSetting {
    /// Underlay MTU minus the VXLAN overhead, learnt from each host.
    Auto,
    #[serde(untagged)]
    Fixed(u16),
}

/// Bytes VXLAN adds around each frame on IPv4: outer IP 20, UDP 8, VXLAN 8, inner Ethernet 14.
pub const VXLAN_OVERHEAD: u16 = 50;
/// The same on an IPv6 underlay: the outer IPv6 header is 40 bytes.
pub const VXLAN_OVERHEAD_V6: u16 = 70;

impl Cluster {
    /// What the tunnels add to every overlay packet on an IPv4 underlay: VXLAN, and WireGuard under it when
    /// encrypted.
    pub fn overhead(&self) -> u16 {
        self.overhead_on(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    /// What the tunnels add on the family of `underlay`. Encrypted, VXLAN runs between the (IPv4) WireGuard
    /// addresses, so only WireGuard's outer header follows the underlay's family.
    pub fn overhead_on(&self, underlay: IpAddr) -> u16 {
        let v6 = underlay.is_ipv6();
        match self.encryption {
            Encryption::None if v6 => VXLAN_OVERHEAD_V6,
            Encryption::None => VXLAN_OVERHEAD,
            Encryption::Wireguard if v6 => VXLAN_OVERHEAD + WIREGUARD_OVERHEAD_V6,
            Encryption::Wireguard => VXLAN_OVERHEAD + WIREGUARD_OVERHEAD,
        }
    }
}
pub const MTU_MIN: u16 = 576;
pub const MTU_MAX: u16 = 9000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Open vSwitch: bridge `sw0` with one protected VXLAN port per peer, BFD towards OVS peers.
    Ovs,
    /// The kernel's own: a Linux bridge `sw0`, one VXLAN device, one all-zeros FDB entry per peer.
    Linux,
}

pub const BACKENDS: [(&str, Backend); 2] = [("ovs", Backend::Ovs), ("linux", Backend::Linux)];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Datapath {
    /// The kernel datapath: what production hosts with the openvswitch module use.
    System,
    /// OVS's userspace datapath (DPDK-style hosts, and the lab).
    Netdev,
}

impl Datapath {
    pub fn as_str(self) -> &'static str {
        match self {
            Datapath::System => "system",
            Datapath::Netdev => "netdev",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DockerSettings {
    pub mode: DockerMode,
    pub network: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DockerMode {
    /// A dedicated docker bridge network on each host.
    Network,
    /// docker's default bridge, renumbered with `bip` (the classic recipe).
    Docker0,
    /// No docker: the mesh of switches only (hosts whose workloads attach to sw0 by other means; light labs).
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FirewallKind {
    Auto,
    Firewalld,
    Nftables,
    Iptables,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Become {
    /// sudo when the SSH user is not root.
    Auto,
    Yes,
    No,
}

#[derive(Debug, Clone, Serialize)]
pub struct SshSettings {
    /// Set in the inventory; otherwise ~/.ssh/config's `User`, otherwise root.
    pub user: Option<String>,
    /// Set in the inventory; otherwise ~/.ssh/config's `Port`, otherwise 22.
    pub port: Option<u16>,
    pub identity_file: Option<PathBuf>,
    pub r#become: Become,
    /// Set in the inventory; otherwise ~/.ssh/config's `UserKnownHostsFile`, otherwise ~/.ssh/known_hosts.
    pub known_hosts: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Node {
    pub name: String,
    /// SSH address or ~/.ssh/config alias.
    pub host: String,
    /// Tunnel endpoint: `underlay_ip`, or `host` when that is an address; IPv4 or IPv6 (one family per cluster).
    #[serde(rename = "underlay_ip")]
    pub underlay: IpAddr,
    /// The subnet the user pinned, if any.
    pub subnet: Option<Ipv4Net>,
    /// The IPv6 subnet the user pinned, if any (needs `cluster.cidr6`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<Ipv6Net>,
    /// The data plane of this node, when it differs from `cluster.backend`.
    pub backend: Option<Backend>,
    /// Hosts of one site reach each other on `underlay_ip`; `default` unless set.
    pub site: String,
    /// Where hosts in other sites reach this one (1:1 NAT: not necessarily on an interface); `None`: behind NAT
    /// for them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_ip: Option<IpAddr>,
    /// Where the node's entry starts in the inventory, for later messages.
    #[serde(skip)]
    pub pos: Option<Pos>,
}

/// The site a node is in when the inventory does not say.
pub const DEFAULT_SITE: &str = "default";

impl Node {
    pub fn endpoint(&self) -> crate::model::paths::Endpoint {
        crate::model::paths::Endpoint {
            name: self.name.as_str().into(),
            site: self.site.as_str().into(),
            underlay_ip: self.underlay,
            public_ip: self.public_ip,
        }
    }
}

impl Inventory {
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The error for a node name the inventory does not have, listing the ones it has.
    pub fn unknown_node(&self, name: &str) -> crate::error::Error {
        crate::error::Error::UnknownNode { name: name.to_string(), known: self.node_names() }
    }

    /// Every node's site and addresses, for the path between any two ([`crate::model::paths`]).
    pub fn fleet(&self) -> crate::model::paths::Fleet {
        let hosts = self.nodes.iter().map(Node::endpoint).collect();
        crate::model::paths::Fleet::new(hosts, self.cluster.wireguard.relays.as_deref())
    }

    pub fn node_names(&self) -> String {
        self.nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", ")
    }
}
