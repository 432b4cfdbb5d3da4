//! Turns the raw inventory into the validated model, collecting every problem instead of stopping at the first.
//!
//! Each part is checked as far as the parts it depends on are valid: a bad `vni` does not hide a node's bad
//! underlay, while a bad `cidr` does hide checks that need the cidr.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;

use super::check::{Check, at, check_name, is_safe_name, shown};
use super::model::*;
use super::nodes::{self, Layout};
use super::ranges::{
    DOCKER_RESERVED_NETWORKS, DOCKER0_DEFAULT, Role, non_unicast, overlaps, reserved_problem, vxmesh_conflict,
};
use super::raw::{At, RawCluster, RawDocker, RawInventory, RawSsh, RawWireguard, Scalar, Shaped};
use super::sites;
use crate::error::Diagnostic;
use crate::model::blocks::BlockSpace;
use crate::model::names;

pub fn validate(path: &Path, src: &str, raw: &At<Shaped<RawInventory>>) -> Result<Inventory, Vec<Diagnostic>> {
    let mut ck = Check::new(src);
    let Some(inv) = ck.shaped("inventory", raw, "a mapping with `cluster:` and `nodes:`") else {
        return Err(ck.into_problems());
    };
    let nodes = ck.shaped("nodes", &inv.nodes, "a list of nodes, e.g. `[{name: vm1, host: 192.168.122.81}]`");
    let node_count = nodes.map_or(0, Vec::len);
    let mut draft = ck
        .shaped("cluster", &inv.cluster, "a mapping of cluster settings, e.g. `{cidr: 172.16.0.0/12}`")
        .map_or_else(Draft::default, |c| cluster(c, node_count, &mut ck));
    let ssh_raw = match &inv.ssh {
        Some(s) => ck.shaped("ssh", s, "a mapping of SSH settings, e.g. `{user: root}`"),
        None => None,
    };
    let ssh = ssh(ssh_raw, &mut ck);
    if nodes.is_some_and(Vec::is_empty) {
        ck.add(at(&inv.nodes), "nodes: the list is empty; name at least one host");
    }
    let raw_nodes = nodes.map_or(&[][..], Vec::as_slice);
    let (mut nodes, underlay_family) = nodes::nodes(raw_nodes, &draft.layout, &mut ck);
    draft.underlay_family = underlay_family;
    super::overlay6::pins(raw_nodes, &mut nodes, draft.ipv6.flatten().as_ref(), &mut ck);
    if let Shaped::Ok(c) = &inv.cluster.value {
        encryption_combinations(c, &draft, &nodes, &mut ck);
        kernel_backend_firewall(c, &draft, &nodes, &mut ck);
        let relays = sites::relays(c, &nodes, &mut ck);
        if let Some(w) = draft.wireguard.as_mut() {
            w.relays = relays.clone().flatten();
        }
        if ck.count() == 0 {
            sites::paths(c, draft.encryption, &nodes, relays.flatten().as_deref(), &mut ck);
        }
        let network = (draft.mode == Some(DockerMode::Network)).then_some(draft.network.as_deref()).flatten();
        super::dns::domain_is_not_the_network(c.dns.as_ref(), draft.dns.as_ref(), network, &mut ck);
        super::dns::needs(c.dns.as_ref(), draft.dns.as_ref(), draft.mode, &nodes, &mut ck);
    }
    if ck.count() > 0 {
        return Err(ck.into_problems());
    }
    match draft.finish() {
        Some(cluster) => Ok(Inventory { path: path.to_path_buf(), cluster, ssh, nodes }),
        // Every `None` above comes with a problem; this is a safety net, never a panic.
        None => Err(vec![Diagnostic::at(
            at(&inv.cluster),
            "cluster: incomplete, yet no problem was reported (a bug in vxmesh)",
        )]),
    }
}

/// The cluster section, each field `None` when it had a problem.
#[derive(Default)]
struct Draft {
    name: Option<String>,
    layout: Layout,
    vni: Option<u32>,
    port: Option<u16>,
    mtu: Option<MtuSetting>,
    backend: Option<Backend>,
    datapath: Option<Datapath>,
    mode: Option<DockerMode>,
    network: Option<String>,
    nat: Option<bool>,
    firewall: Option<FirewallKind>,
    outside: Option<Option<Ipv4Addr>>,
    ipv6: Option<Option<super::model::Overlay6>>,
    encryption: Option<Encryption>,
    wireguard: Option<WireguardSettings>,
    dns: Option<super::dns::DnsSettings>,
    /// As chosen among the nodes' addresses ([`super::families::families`]).
    underlay_family: Option<UnderlayFamily>,
}

impl Draft {
    fn finish(self) -> Option<Cluster> {
        let l = self.layout;
        Some(Cluster {
            name: self.name?,
            cidr: l.cidr?,
            node_prefix: l.node_prefix?,
            switch_cidr: l.switch_cidr?,
            exclude: l.exclude?,
            vni: self.vni?,
            port: self.port?,
            mtu: self.mtu?,
            backend: self.backend?,
            datapath: self.datapath?,
            docker: DockerSettings { mode: self.mode?, network: self.network? },
            nat: self.nat?,
            firewall: self.firewall?,
            outside: self.outside?,
            ipv6: self.ipv6?,
            encryption: self.encryption?,
            wireguard: self.wireguard?,
            dns: self.dns?,
            underlay_family: self.underlay_family,
        })
    }
}

fn cluster(raw: &RawCluster, node_count: usize, ck: &mut Check) -> Draft {
    // `Some(None)`: no docker section; `None`: one that is not a mapping (reported).
    let docker = match &raw.docker {
        Some(d) => ck.shaped("cluster.docker", d, "a mapping, e.g. `{mode: network}`").map(Some),
        None => Some(None),
    };
    let mode = docker.and_then(|d| docker_mode(d, ck));
    let encryption = word(
        ck,
        "cluster.encryption",
        &raw.encryption,
        &[("none", Encryption::None), ("wireguard", Encryption::Wireguard)],
        Encryption::None,
    );
    let port = raw.port.as_ref().map_or(Some(4789), |v| ck.int("cluster.port", v, 1, 65535)).map(|n| n as u16);
    let mut layout = layout(raw, mode, node_count, ck);
    let encrypted = encryption == Some(Encryption::Wireguard);
    let wireguard = wireguard(raw, &layout, port, encrypted.then(|| keeps_docker0(mode)), ck);
    if encrypted {
        layout.wireguard_cidr = wireguard.as_ref().map(|w| w.cidr);
        wireguard_room(raw, wireguard.as_ref(), node_count, ck);
    }
    Draft {
        name: cluster_name(raw, ck),
        vni: raw.vni.as_ref().map_or(Some(42), |v| ck.int("cluster.vni", v, 1, (1 << 24) - 1)).map(|n| n as u32),
        port,
        mtu: raw.mtu.as_ref().map_or(Some(MtuSetting::Auto), |v| mtu(v, ck)),
        backend: word(ck, "cluster.backend", &raw.backend, &BACKENDS, Backend::Ovs),
        datapath: word(
            ck,
            "cluster.datapath",
            &raw.datapath,
            &[("system", Datapath::System), ("netdev", Datapath::Netdev)],
            Datapath::System,
        ),
        mode,
        network: docker.and_then(|d| docker_network(d, ck)),
        nat: raw.nat.as_ref().map_or(Some(true), |v| ck.boolean("cluster.nat", v)),
        firewall: word(
            ck,
            "cluster.firewall",
            &raw.firewall,
            &[
                ("auto", FirewallKind::Auto),
                ("firewalld", FirewallKind::Firewalld),
                ("nftables", FirewallKind::Nftables),
                ("iptables", FirewallKind::Iptables),
                ("none", FirewallKind::None),
            ],
            FirewallKind::Auto,
        ),
        outside: outside(raw, &layout, ck),
        ipv6: super::overlay6::settings(raw, mode, node_count, ck),
        layout,
        encryption,
        wireguard,
        dns: super::dns::settings(raw.dns.as_ref(), ck),
        underlay_family: None,
    }
}

/// `cluster.wireguard`, validated whether or not encryption is on (a typo there should not wait for the day it is);
/// compared with the other ranges, docker0's and `cluster.port` only when it is on (`encrypted`, with the docker
/// mode that keeps docker0, if any): a range or port nothing uses conflicts with nothing.
fn wireguard(
    raw: &RawCluster,
    l: &Layout,
    vxlan_port: Option<u16>,
    encrypted: Option<Option<&str>>,
    ck: &mut Check,
) -> Option<WireguardSettings> {
    let section: Option<&RawWireguard> = match &raw.wireguard {
        Some(w) => Some(ck.shaped("cluster.wireguard", w, "a mapping, e.g. `{port: 51820, cidr: 198.19.0.0/16}`")?),
        None => None,
    };
    let port_v = section.and_then(|w| w.port.as_ref());
    let port = match port_v {
        None => Some(WIREGUARD_DEFAULT_PORT),
        Some(v) => ck.int("cluster.wireguard.port", v, 1, 65535).map(|n| n as u16),
    };
    let port = match (port, vxlan_port) {
        (Some(p), Some(vx)) if p == vx && encrypted.is_some() => {
            // Blame the field the user wrote: with no wireguard.port it is cluster.port meeting WireGuard's default.
            let message = match (port_v, raw.port.as_ref()) {
                (None, Some(vx_v)) => (
                    at(vx_v),
                    format!(
                        "cluster.port: `{vx}` is WireGuard's default port (cluster.wireguard.port), and VXLAN and \
                         WireGuard each need a UDP port of their own; choose another cluster.port (default 4789) or \
                         set cluster.wireguard.port"
                    ),
                ),
                _ => (
                    port_v.and_then(at),
                    format!(
                        "cluster.wireguard.port: `{p}` is also cluster.port, VXLAN's; WireGuard needs a UDP port of its own"
                    ),
                ),
            };
            ck.add(message.0, message.1);
            None
        }
        (p, _) => p,
    };
    let cidr_v = section.and_then(|w| w.cidr.as_ref());
    let cidr = match cidr_v {
        None => WIREGUARD_DEFAULT_CIDR,
        Some(v) => ck.cidr("cluster.wireguard.cidr", v)?,
    };
    let docker0_kept = encrypted.flatten();
    let problem = if let Some(reserved) = reserved_problem(&cidr, Role::Wireguard, docker0_kept) {
        reserved
    } else if cidr.prefix_len() > 30 {
        format!("is a /{}; give at least a /30", cidr.prefix_len())
    } else if encrypted.is_none() {
        return Some(WireguardSettings { port: port?, cidr, relays: None });
    } else if let Some(conflict) = vxmesh_conflict(&cidr, Role::Wireguard, l.cidr, l.switch_cidr) {
        conflict
    } else {
        return Some(WireguardSettings { port: port?, cidr, relays: None });
    };
    let (pos, label) = match cidr_v {
        Some(v) => (at(v), format!("cluster.wireguard.cidr: `{cidr}`")),
        None => (at(&raw.cidr), format!("cluster.wireguard.cidr: `{cidr}` (the default)")),
    };
    ck.add(pos, format!("{label} {problem}; set cluster.wireguard.cidr to another block"));
    None
}

/// One WireGuard address per node, numbered like the switch addresses.
fn wireguard_room(raw: &RawCluster, w: Option<&WireguardSettings>, node_count: usize, ck: &mut Check) {
    let Some(w) = w else { return };
    let room = switch_capacity(w.cidr);
    if node_count as u64 > room {
        let pos = raw
            .wireguard
            .as_ref()
            .and_then(|s| match &s.value {
                Shaped::Ok(r) => r.cidr.as_ref().and_then(at),
                Shaped::Wrong(_) => None,
            })
            .or_else(|| at(&raw.cidr));
        ck.add(
            pos,
            format!("cluster.wireguard.cidr: `{}` has room for {room} WireGuard addresses, but the inventory lists {node_count} nodes; give it a larger block", w.cidr),
        );
    }
}

/// What encryption cannot run with, named with the setting to change.
fn encryption_combinations(raw: &RawCluster, d: &Draft, nodes: &[Node], ck: &mut Check) {
    if d.encryption != Some(Encryption::Wireguard) {
        return;
    }
    let pos = raw.encryption.as_ref().and_then(at);
    if d.datapath == Some(Datapath::Netdev) {
        let cluster_ovs = d.backend == Some(Backend::Ovs);
        let ovs_nodes: Vec<&str> = nodes
            .iter()
            .filter(|n| n.backend.map_or(cluster_ovs, |b| b == Backend::Ovs))
            .map(|n| n.name.as_str())
            .collect();
        if !ovs_nodes.is_empty() {
            let shown: Vec<&str> = ovs_nodes.iter().take(5).copied().collect();
            let more = if ovs_nodes.len() > 5 { format!(" and {} more", ovs_nodes.len() - 5) } else { String::new() };
            ck.add(
                pos,
                format!(
                    "cluster.encryption: `wireguard` cannot carry the tunnels of Open vSwitch's userspace datapath \
                     (cluster.datapath `netdev`): it sends VXLAN itself, past the kernel's WireGuard interface, so the \
                     frames would leave in clear; nodes on it: {}{more}. Use `datapath: system`, or `backend: linux` for them",
                    shown.join(", ")
                ),
            );
        }
    }
}

/// The kernel backend's VXLAN device has no fixed remote and learns source addresses: without a firewall, any host
/// that reaches the VXLAN port can inject frames and, through learning, pull container traffic to itself. (OVS
/// accepts a tunnel packet only on the port whose `remote_ip` sent it.)
fn kernel_backend_firewall(raw: &RawCluster, d: &Draft, nodes: &[Node], ck: &mut Check) {
    if d.firewall != Some(FirewallKind::None) {
        return;
    }
    let cluster_linux = d.backend == Some(Backend::Linux);
    let linux: Vec<&str> = nodes
        .iter()
        .filter(|n| n.backend.map_or(cluster_linux, |b| b == Backend::Linux))
        .map(|n| n.name.as_str())
        .collect();
    if linux.is_empty() {
        return;
    }
    let shown: Vec<&str> = linux.iter().take(5).copied().collect();
    let more = if linux.len() > 5 { format!(" and {} more", linux.len() - 5) } else { String::new() };
    let port = d.port.unwrap_or(4789);
    let nodes = if linux.len() == 1 { "node" } else { "nodes" };
    ck.add(
        raw.firewall.as_ref().and_then(at),
        format!(
            "cluster.firewall: `none` leaves the kernel backend (`backend: linux`, {nodes} {}{more}) open to VXLAN from \
             anyone: its VXLAN device accepts UDP port {port} from any source and learns the sender's address, so a \
             stranger could inject frames and pull container traffic to itself; use `firewall: auto` (or \
             `nftables`, `iptables`, `firewalld`), which accepts VXLAN only from the peers, or `backend: ovs`, which \
             accepts it only on a peer's tunnel port",
            shown.join(", ")
        ),
    );
}

/// A word field that may be left out.
fn word<T: Copy>(ck: &mut Check, field: &str, v: &Option<At<Scalar>>, choices: &[(&str, T)], default: T) -> Option<T> {
    v.as_ref().map_or(Some(default), |v| ck.word(field, v, choices))
}

fn cluster_name(raw: &RawCluster, ck: &mut Check) -> Option<String> {
    let Some(v) = &raw.name else { return Some("vxmesh".into()) };
    let name = ck.text("cluster.name", v, "a name: letters, digits, `-` and `_`")?;
    if !is_safe_name(&name) {
        ck.add(at(v), format!("cluster.name: `{}` may use only letters, digits, `-` and `_`", shown(&name)));
        return None;
    }
    Some(name)
}

fn mtu(v: &At<Scalar>, ck: &mut Check) -> Option<MtuSetting> {
    let range = i64::from(MTU_MIN)..=i64::from(MTU_MAX);
    match &v.value {
        Scalar::Text(w) if w == "auto" => Some(MtuSetting::Auto),
        // A number, also quoted (`mtu: "1450"`), as `int` takes it.
        Scalar::Int(_) => ck.int("cluster.mtu", v, *range.start(), *range.end()).map(|n| MtuSetting::Fixed(n as u16)),
        Scalar::Text(w) if w.trim().parse::<i64>().is_ok() => {
            ck.int("cluster.mtu", v, *range.start(), *range.end()).map(|n| MtuSetting::Fixed(n as u16))
        }
        Scalar::Text(_) | Scalar::Float(_) | Scalar::Bool(_) => {
            let message =
                format!("cluster.mtu: `{}` is neither `auto` nor a number in {MTU_MIN}..={MTU_MAX}", ck.written(v));
            ck.add(at(v), message);
            None
        }
        _ => {
            ck.wrong("cluster.mtu", v, &format!("`auto` or a number in {MTU_MIN}..={MTU_MAX}"));
            None
        }
    }
}

fn docker_mode(docker: Option<&RawDocker>, ck: &mut Check) -> Option<DockerMode> {
    let v = docker.and_then(|d| d.mode.as_ref());
    v.map_or(Some(DockerMode::Network), |v| {
        ck.word(
            "cluster.docker.mode",
            v,
            &[("network", DockerMode::Network), ("docker0", DockerMode::Docker0), ("none", DockerMode::None)],
        )
    })
}

fn docker_network(docker: Option<&RawDocker>, ck: &mut Check) -> Option<String> {
    let Some(v) = docker.and_then(|d| d.network.as_ref()) else {
        return Some("vxmesh".into());
    };
    let field = "cluster.docker.network";
    let name = ck.text(field, v, "a docker network name")?;
    if DOCKER_RESERVED_NETWORKS.contains(&name.as_str()) {
        ck.add(
            at(v),
            format!("{field}: `{name}` is a network docker makes itself; choose another name, e.g. `vxmesh`"),
        );
        return None;
    }
    let derived = format!("{}{name}", names::DOCKER_BRIDGE_PREFIX);
    check_name(field, v, &name, names::NETWORK_NAME_MAX, &derived, ck).then_some(name)
}

/// Whether docker0 keeps its default 172.17.0.0/16 on the hosts: every mode but `docker0`, which renumbers it.
fn keeps_docker0(mode: Option<DockerMode>) -> Option<&'static str> {
    match mode? {
        DockerMode::Network => Some("network"),
        DockerMode::None => Some("none"),
        DockerMode::Docker0 => None,
    }
}

fn layout(raw: &RawCluster, mode: Option<DockerMode>, node_count: usize, ck: &mut Check) -> Layout {
    let cidr = cluster_cidr(raw, mode, ck);
    let node_prefix = node_prefix(raw, cidr, ck);
    let exclude = exclude(raw, cidr, mode, ck);
    let switch_cidr = switch_cidr(raw, cidr, node_prefix, mode, exclude.as_deref(), ck);
    let underlay_family = word(
        ck,
        "cluster.underlay_family",
        &raw.underlay_family,
        &[("auto", None), ("ipv4", Some(UnderlayFamily::Ipv4)), ("ipv6", Some(UnderlayFamily::Ipv6))],
        None,
    )
    .flatten();
    let layout = Layout { cidr, node_prefix, switch_cidr, exclude, wireguard_cidr: None, underlay_family };
    room(raw, &layout, node_count, ck);
    layout
}

fn cluster_cidr(raw: &RawCluster, mode: Option<DockerMode>, ck: &mut Check) -> Option<Ipv4Net> {
    let c = ck.cidr("cluster.cidr", &raw.cidr)?;
    let problem = if let Some(special) = reserved_problem(&c, Role::Cluster, None) {
        special
    } else if c.prefix_len() > 29 {
        format!(
            "is a /{}; a cluster must be a /29 or larger, since each node subnet is at least a /30 and \
             cluster.node_prefix must be longer than the cluster's prefix",
            c.prefix_len()
        )
    } else if let Some(docker0) = reserved_problem(&c, Role::Cluster, keeps_docker0(mode)) {
        docker0
    } else {
        return Some(c);
    };
    ck.add(at(&raw.cidr), format!("cluster.cidr: `{c}` {problem}"));
    None
}

fn node_prefix(raw: &RawCluster, cidr: Option<Ipv4Net>, ck: &mut Check) -> Option<u8> {
    let lo = cidr.map_or(1, |c| i64::from(c.prefix_len()) + 1);
    match (&raw.node_prefix, cidr) {
        (Some(v), _) => ck.int("cluster.node_prefix", v, lo, 30).map(|n| n as u8),
        (None, Some(c)) => Some(default_node_prefix(c)),
        (None, None) => None,
    }
}

/// /16 per node in a /12 or larger cluster (the classic layout), /24 otherwise.
fn default_node_prefix(cidr: Ipv4Net) -> u8 {
    if cidr.prefix_len() <= 12 { 16 } else { (cidr.prefix_len() + 8).min(30) }
}

/// docker0's default subnet, when it falls in the cluster and docker keeps it there: handing it to a node would
/// collide on every host. In mode `docker0` every host's docker0 is renumbered into its node's subnet, so the range
/// is free (and a cluster of exactly 172.17.0.0/16 is allowed).
fn default_exclude(cidr: Ipv4Net, mode: Option<DockerMode>) -> Option<Vec<Ipv4Net>> {
    match mode? {
        DockerMode::Docker0 => Some(vec![]),
        _ if cidr.contains(&DOCKER0_DEFAULT) => Some(vec![DOCKER0_DEFAULT]),
        _ => Some(vec![]),
    }
}

fn exclude(raw: &RawCluster, cidr: Option<Ipv4Net>, mode: Option<DockerMode>, ck: &mut Check) -> Option<Vec<Ipv4Net>> {
    let Some(list) = &raw.exclude else { return cidr.and_then(|c| default_exclude(c, mode)) };
    let items = ck.shaped("cluster.exclude", list, "a list of CIDRs, e.g. `[172.17.0.0/16]`")?;
    let before = ck.count();
    let nets: Vec<Ipv4Net> = items.iter().filter_map(|v| excluded_block(v, cidr, ck)).collect();
    if let (Some(c), Some(m)) = (cidr, keeps_docker0(mode))
        && c.contains(&DOCKER0_DEFAULT)
        && !nets.iter().any(|e| e.contains(&DOCKER0_DEFAULT))
    {
        ck.add(
            at(list),
            format!(
                "cluster.exclude: leaves `{DOCKER0_DEFAULT}`, docker0's default bridge range, free for nodes, but docker \
                 keeps it on every host in docker mode `{m}`; add `{DOCKER0_DEFAULT}` to the list"
            ),
        );
    }
    (ck.count() == before).then_some(nets)
}

fn excluded_block(v: &At<Scalar>, cidr: Option<Ipv4Net>, ck: &mut Check) -> Option<Ipv4Net> {
    let e = ck.cidr("cluster.exclude", v)?;
    let problem = if let Some(special) = reserved_problem(&e, Role::Cluster, None) {
        special
    } else if let Some(c) = cidr.filter(|c| !c.contains(&e)) {
        format!("lies outside cluster.cidr `{c}`")
    } else {
        return Some(e);
    };
    ck.add(at(v), format!("cluster.exclude: `{e}` {problem}"));
    None
}

fn switch_cidr(
    raw: &RawCluster,
    cidr: Option<Ipv4Net>,
    node_prefix: Option<u8>,
    mode: Option<DockerMode>,
    exclude: Option<&[Ipv4Net]>,
    ck: &mut Check,
) -> Option<Ipv4Net> {
    let s = match (&raw.switch_cidr, cidr, node_prefix) {
        (Some(v), ..) => given_switch_cidr(v, cidr, ck)?,
        // The last block, computed: walking a /0's billion /30s to reach it took minutes.
        (None, Some(c), Some(np)) => Ipv4Net::new(c.broadcast(), np).ok()?.trunc(),
        _ => return None,
    };
    let problem = if let Some(reserved) = reserved_problem(&s, Role::Switch, keeps_docker0(mode)) {
        reserved
    } else if let Some(e) = exclude.and_then(|ex| ex.iter().find(|e| overlaps(&s, e))) {
        format!("overlaps the excluded block `{e}`; sw0 addresses must come from space the cluster may use")
    } else {
        return Some(s);
    };
    let (pos, label) = match &raw.switch_cidr {
        Some(v) => (at(v), format!("cluster.switch_cidr: `{s}`")),
        None => (
            at(&raw.cidr),
            format!("cluster.switch_cidr: `{s}` (the default: the last /{} of cluster.cidr)", s.prefix_len()),
        ),
    };
    ck.add(pos, format!("{label} {problem}; set cluster.switch_cidr to another block"));
    None
}

fn given_switch_cidr(v: &At<Scalar>, cidr: Option<Ipv4Net>, ck: &mut Check) -> Option<Ipv4Net> {
    let s = ck.cidr("cluster.switch_cidr", v)?;
    let problem = if let Some(special) = reserved_problem(&s, Role::Switch, None) {
        special
    } else if let Some(conflict) = vxmesh_conflict(&s, Role::Switch, cidr, None) {
        conflict
    } else {
        return Some(s);
    };
    ck.add(at(v), format!("cluster.switch_cidr: `{s}` {problem}"));
    None
}

/// Usable host addresses of the switch range (network and broadcast excluded).
pub fn switch_capacity(s: Ipv4Net) -> u64 {
    (1u64 << (32 - s.prefix_len())).saturating_sub(2)
}

/// The cluster must hold a block per node outside the reserved ranges, and the switch range an address per node.
fn room(raw: &RawCluster, l: &Layout, node_count: usize, ck: &mut Check) {
    let (Some(c), Some(np), Some(s), Some(ex)) = (l.cidr, l.node_prefix, l.switch_cidr, &l.exclude) else { return };
    let Some(blocks) = BlockSpace::new(c, np, ex.iter().copied().chain([s])) else { return };
    let room = blocks.free_count();
    if node_count > room as usize {
        ck.add(
            at(&raw.cidr),
            format!(
                "cluster.cidr: `{c}` has room for {room} node subnets of /{np} (outside switch_cidr `{s}` and the excluded blocks), but the inventory lists {node_count} nodes"
            ),
        );
    }
    let switch_room = switch_capacity(s);
    if node_count as u64 > switch_room {
        let pos = raw.switch_cidr.as_ref().map_or(at(&raw.cidr), at);
        ck.add(
            pos,
            format!("cluster.switch_cidr: `{s}` has room for {switch_room} switch addresses, but the inventory lists {node_count} nodes; give it a larger block"),
        );
    }
}

fn outside(raw: &RawCluster, l: &Layout, ck: &mut Check) -> Option<Option<Ipv4Addr>> {
    let Some(v) = &raw.outside else { return Some(None) };
    let o = ck.ip("cluster.outside", v)?;
    let problem = if let Some(special) = non_unicast(o, true) {
        format!("is in {}; `verify` needs a unicast address to reach through NAT", special.describe())
    } else if let Some(c) = l.cidr.filter(|c| c.contains(&o)) {
        format!("lies inside cluster.cidr `{c}`; it must be an address outside the cluster")
    } else if let Some(s) = l.switch_cidr.filter(|s| s.contains(&o)) {
        format!("lies inside cluster.switch_cidr `{s}`; it must be an address outside the cluster")
    } else if let Some(w) = l.wireguard_cidr.filter(|w| w.contains(&o)) {
        format!("lies inside cluster.wireguard.cidr `{w}`; it must be an address outside the cluster")
    } else {
        return Some(Some(o));
    };
    ck.add(at(v), format!("cluster.outside: `{o}` {problem}"));
    None
}

fn ssh(raw: Option<&RawSsh>, ck: &mut Check) -> SshSettings {
    let text = |ck: &mut Check, field, v: Option<&At<Scalar>>, expected| v.and_then(|v| ck.text(field, v, expected));
    let user = text(ck, "ssh.user", raw.and_then(|r| r.user.as_ref()), "a user name");
    let port = raw.and_then(|r| r.port.as_ref()).and_then(|v| ck.int("ssh.port", v, 1, 65535)).map(|n| n as u16);
    let r#become = raw
        .and_then(|r| r.r#become.as_ref())
        .and_then(|v| ck.word("ssh.become", v, &[("auto", Become::Auto), ("yes", Become::Yes), ("no", Become::No)]))
        .unwrap_or(Become::Auto);
    let identity_file = text(ck, "ssh.identity_file", raw.and_then(|r| r.identity_file.as_ref()), "a file path");
    let known_hosts_v = raw.and_then(|r| r.known_hosts.as_ref());
    let known_hosts = text(ck, "ssh.known_hosts", known_hosts_v, "a file path");
    // Host keys are checked against this file: a blank name is a mistake, never "the default".
    let known_hosts = match (known_hosts, known_hosts_v) {
        (Some(k), Some(v)) if k.trim().is_empty() => {
            ck.add(at(v), "ssh.known_hosts: is empty; expected a file path (leave the field out for the default)");
            None
        }
        (k, _) => k,
    };
    SshSettings {
        user,
        port,
        identity_file: identity_file.map(PathBuf::from),
        r#become,
        known_hosts: known_hosts.map(PathBuf::from),
    }
}
