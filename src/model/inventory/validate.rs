//! Turns the raw inventory into the validated model, collecting every problem instead of stopping at the first.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;

use super::model::*;
use super::pos_of;
use super::raw::{At, RawCluster, RawInventory, RawMtu, RawNode, RawSsh};
use crate::error::{Diagnostic, Pos};
use crate::model::names;

/// Every problem found, in file order as far as the checks go.
#[derive(Default)]
struct Problems(Vec<Diagnostic>);

impl Problems {
    fn add(&mut self, pos: Option<Pos>, message: impl Into<String>) {
        self.0.push(Diagnostic::at(pos, message));
    }
}

fn at<T>(v: &At<T>) -> Option<Pos> {
    pos_of(&v.referenced)
}

pub fn validate(path: &Path, raw: RawInventory) -> Result<Inventory, Vec<Diagnostic>> {
    let mut p = Problems::default();
    let cluster = cluster(&raw.cluster.value, raw.nodes.value.len(), &mut p);
    let ssh = ssh(raw.ssh.as_ref().map(|s| &s.value), &mut p);
    if raw.nodes.value.is_empty() {
        p.add(at(&raw.nodes), "nodes: the list is empty; name at least one host");
    }
    let nodes = nodes(&raw.nodes.value, cluster.as_ref(), &mut p);
    if !p.0.is_empty() {
        return Err(p.0);
    }
    Ok(Inventory { path: path.to_path_buf(), cluster: cluster.expect("a cluster without problems"), ssh, nodes })
}

fn parse_cidr(field: &str, v: &At<String>, p: &mut Problems) -> Option<Ipv4Net> {
    let text = v.value.trim();
    match text.parse::<Ipv4Net>() {
        Ok(net) if net.trunc() != net => {
            p.add(at(v), format!("{field}: `{text}` has host bits set; did you mean `{}`?", net.trunc()));
            None
        }
        Ok(net) => Some(net),
        Err(_) if text.parse::<ipnet::Ipv6Net>().is_ok() => {
            p.add(at(v), format!("{field}: `{text}` is IPv6; vxmesh plans IPv4 overlays only"));
            None
        }
        Err(_) => {
            p.add(at(v), format!("{field}: `{text}` is not an IPv4 CIDR (expected e.g. `172.16.0.0/12`)"));
            None
        }
    }
}

fn parse_ip(field: &str, v: &At<String>, p: &mut Problems) -> Option<Ipv4Addr> {
    let text = v.value.trim();
    match text.parse::<Ipv4Addr>() {
        Ok(ip) => Some(ip),
        Err(_) => {
            p.add(at(v), format!("{field}: `{text}` is not an IPv4 address"));
            None
        }
    }
}

fn ranged(field: &str, v: &At<i64>, lo: i64, hi: i64, p: &mut Problems) -> Option<i64> {
    if (lo..=hi).contains(&v.value) {
        Some(v.value)
    } else {
        p.add(at(v), format!("{field}: `{}` is out of range {lo}..={hi}", v.value));
        None
    }
}

fn word<T: Copy>(field: &str, v: &At<String>, choices: &[(&str, T)], p: &mut Problems) -> Option<T> {
    let found = choices.iter().find(|(w, _)| *w == v.value).map(|(_, t)| *t);
    if found.is_none() {
        let names: Vec<String> = choices.iter().map(|(w, _)| format!("`{w}`")).collect();
        p.add(at(v), format!("{field}: `{}` is not one of {}", v.value, names.join(", ")));
    }
    found
}

/// Characters safe in interface names, sysctl paths and shell words alike.
fn is_safe_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn check_name(field: &str, v: &At<String>, max: usize, derived: &str, p: &mut Problems) -> bool {
    let name = &v.value;
    if !is_safe_name(name) {
        p.add(
            at(v),
            format!("{field}: `{name}` may use only letters, digits, `-` and `_`, starting with a letter or digit"),
        );
        false
    } else if name.len() > max {
        p.add(
            at(v),
            format!(
                "{field}: `{name}` is {} bytes; at most {max} fit, since the interface `{derived}` must stay within {} bytes",
                name.len(),
                names::IFNAME_MAX
            ),
        );
        false
    } else {
        true
    }
}

fn cluster(raw: &RawCluster, node_count: usize, p: &mut Problems) -> Option<Cluster> {
    let before = p.0.len();
    let name = raw.name.as_ref().map(|n| n.value.clone()).unwrap_or_else(|| "vxmesh".into());
    if let Some(n) = &raw.name
        && !is_safe_name(&n.value)
    {
        p.add(at(n), format!("cluster.name: `{}` may use only letters, digits, `-` and `_`", n.value));
    }
    let cidr = parse_cidr("cluster.cidr", &raw.cidr, p);
    let node_prefix = match (&raw.node_prefix, cidr) {
        (Some(v), Some(c)) => ranged("cluster.node_prefix", v, i64::from(c.prefix_len()) + 1, 30, p).map(|n| n as u8),
        (Some(v), None) => ranged("cluster.node_prefix", v, 1, 30, p).map(|n| n as u8),
        (None, Some(c)) => Some(default_node_prefix(c)),
        (None, None) => None,
    };
    let switch_cidr = match (&raw.switch_cidr, cidr, node_prefix) {
        (Some(v), Some(c), _) => parse_cidr("cluster.switch_cidr", v, p).and_then(|s| {
            if c.contains(&s) {
                Some(s)
            } else {
                p.add(at(v), format!("cluster.switch_cidr: `{s}` lies outside cluster.cidr `{c}`; sw0 addresses must be inside the cluster"));
                None
            }
        }),
        (Some(v), None, _) => parse_cidr("cluster.switch_cidr", v, p),
        (None, Some(c), Some(np)) => c.subnets(np).ok().and_then(|s| s.last()),
        _ => None,
    };
    let exclude: Vec<Ipv4Net> = match (&raw.exclude, cidr) {
        (Some(list), _) => list.iter().filter_map(|v| parse_cidr("cluster.exclude", v, p)).collect(),
        (None, Some(c)) => default_exclude(c),
        (None, None) => vec![],
    };
    let vni = raw.vni.as_ref().map_or(Some(42), |v| ranged("cluster.vni", v, 1, (1 << 24) - 1, p)).map(|n| n as u32);
    let port = raw.port.as_ref().map_or(Some(4789), |v| ranged("cluster.port", v, 1, 65535, p)).map(|n| n as u16);
    let mtu = match &raw.mtu {
        None => Some(MtuSetting::Auto),
        Some(v) => match &v.value {
            RawMtu::Word(w) if w == "auto" => Some(MtuSetting::Auto),
            RawMtu::Number(n) if (i64::from(MTU_MIN)..=i64::from(MTU_MAX)).contains(n) => {
                Some(MtuSetting::Fixed(*n as u16))
            }
            RawMtu::Number(n) => {
                p.add(at(v), format!("cluster.mtu: `{n}` is out of range {MTU_MIN}..={MTU_MAX}"));
                None
            }
            RawMtu::Word(w) => {
                p.add(at(v), format!("cluster.mtu: `{w}` is neither `auto` nor a number in {MTU_MIN}..={MTU_MAX}"));
                None
            }
        },
    };
    let backend =
        raw.backend.as_ref().map_or(Some(Backend::Ovs), |v| word("cluster.backend", v, &[("ovs", Backend::Ovs)], p));
    let datapath = raw.datapath.as_ref().map_or(Some(Datapath::System), |v| {
        word("cluster.datapath", v, &[("system", Datapath::System), ("netdev", Datapath::Netdev)], p)
    });
    let docker = docker(raw, p);
    let nat = raw.nat.as_ref().is_none_or(|v| v.value);
    let firewall = raw.firewall.as_ref().map_or(Some(FirewallKind::Auto), |v| {
        word(
            "cluster.firewall",
            v,
            &[
                ("auto", FirewallKind::Auto),
                ("firewalld", FirewallKind::Firewalld),
                ("nftables", FirewallKind::Nftables),
                ("iptables", FirewallKind::Iptables),
                ("none", FirewallKind::None),
            ],
            p,
        )
    });
    let outside = raw.outside.as_ref().and_then(|v| parse_ip("cluster.outside", v, p));
    if let (Some(o), Some(c), Some(v)) = (outside, cidr, raw.outside.as_ref())
        && c.contains(&o)
    {
        p.add(
            at(v),
            format!("cluster.outside: `{o}` lies inside cluster.cidr `{c}`; it must be an address outside the cluster"),
        );
    }

    if let (Some(c), Some(np), Some(s)) = (cidr, node_prefix, switch_cidr) {
        for (e, v) in exclude.iter().zip(raw.exclude.iter().flatten()) {
            if !c.contains(e) {
                p.add(at(v), format!("cluster.exclude: `{e}` lies outside cluster.cidr `{c}`"));
            }
        }
        let room = c
            .subnets(np)
            .map(|it| it.filter(|b| !overlaps(b, &s) && !exclude.iter().any(|e| overlaps(b, e))).count())
            .unwrap_or(0);
        if node_count > room {
            p.add(
                at(&raw.cidr),
                format!(
                    "cluster.cidr: `{c}` has room for {room} node subnets of /{np} (outside switch_cidr `{s}` and the excluded blocks), but the inventory lists {node_count} nodes"
                ),
            );
        }
        let switch_room = switch_capacity(s);
        if node_count as u64 > switch_room {
            let pos = raw.switch_cidr.as_ref().map_or(at(&raw.cidr), at);
            p.add(
                pos,
                format!("cluster.switch_cidr: `{s}` has room for {switch_room} switch addresses, but the inventory lists {node_count} nodes; give it a larger block"),
            );
        }
    }
    if p.0.len() != before {
        return None;
    }
    Some(Cluster {
        name,
        cidr: cidr?,
        node_prefix: node_prefix?,
        switch_cidr: switch_cidr?,
        exclude,
        vni: vni?,
        port: port?,
        mtu: mtu?,
        backend: backend?,
        datapath: datapath?,
        docker: docker?,
        nat,
        firewall: firewall?,
        outside,
    })
}

/// /16 per node in a /12 or larger cluster (the classic layout), /24 otherwise.
fn default_node_prefix(cidr: Ipv4Net) -> u8 {
    if cidr.prefix_len() <= 12 { 16 } else { (cidr.prefix_len() + 8).min(30) }
}

/// docker0's default subnet, when it falls in the cluster: handing it to a node would collide on every host.
fn default_exclude(cidr: Ipv4Net) -> Vec<Ipv4Net> {
    let docker0: Ipv4Net = "172.17.0.0/16".parse().expect("constant");
    if cidr.contains(&docker0) { vec![docker0] } else { vec![] }
}

/// Usable host addresses of the switch range (network and broadcast excluded).
pub fn switch_capacity(s: Ipv4Net) -> u64 {
    (1u64 << (32 - s.prefix_len())).saturating_sub(2)
}

pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn docker(raw: &RawCluster, p: &mut Problems) -> Option<DockerSettings> {
    let d = raw.docker.as_ref().map(|d| &d.value);
    let mode = d.and_then(|d| d.mode.as_ref()).map_or(Some(DockerMode::Network), |v| {
        word(
            "cluster.docker.mode",
            v,
            &[("network", DockerMode::Network), ("docker0", DockerMode::Docker0), ("none", DockerMode::None)],
            p,
        )
    });
    let network = match d.and_then(|d| d.network.as_ref()) {
        None => Some("vxmesh".to_string()),
        Some(v) => {
            let derived = format!("{}{}", names::DOCKER_BRIDGE_PREFIX, v.value);
            check_name("cluster.docker.network", v, names::NETWORK_NAME_MAX, &derived, p).then(|| v.value.clone())
        }
    };
    Some(DockerSettings { mode: mode?, network: network? })
}

fn ssh(raw: Option<&RawSsh>, p: &mut Problems) -> SshSettings {
    let user = raw.and_then(|r| r.user.as_ref()).map(|u| u.value.clone());
    let port = raw.and_then(|r| r.port.as_ref()).and_then(|v| ranged("ssh.port", v, 1, 65535, p)).map(|n| n as u16);
    let r#become = raw
        .and_then(|r| r.r#become.as_ref())
        .map_or(Some(Become::Auto), |v| {
            word("ssh.become", v, &[("auto", Become::Auto), ("yes", Become::Yes), ("no", Become::No)], p)
        })
        .unwrap_or(Become::Auto);
    let identity_file = raw.and_then(|r| r.identity_file.as_ref()).map(|v| PathBuf::from(&v.value));
    let known_hosts = raw
        .and_then(|r| r.known_hosts.as_ref())
        .map_or_else(|| PathBuf::from("~/.ssh/known_hosts"), |v| PathBuf::from(&v.value));
    SshSettings { user, port, identity_file, r#become, known_hosts }
}

fn nodes(raw: &[At<RawNode>], cluster: Option<&Cluster>, p: &mut Problems) -> Vec<Node> {
    let mut out = Vec::with_capacity(raw.len());
    let mut seen_name: HashMap<&str, Option<Pos>> = HashMap::new();
    let mut seen_host: HashMap<&str, (&str, Option<Pos>)> = HashMap::new();
    let mut seen_underlay: HashMap<Ipv4Addr, &str> = HashMap::new();
    let mut pinned: Vec<(Ipv4Net, &str)> = Vec::new();

    for entry in raw {
        let n = &entry.value;
        let name = n.name.value.as_str();
        let field = format!("nodes[{name}]");
        check_name("nodes.name", &n.name, names::NODE_NAME_MAX, &format!("{}{name}", names::TUNNEL_PREFIX), p);
        if let Some(first) = seen_name.insert(name, at(&n.name)) {
            p.add(
                at(&n.name),
                format!("nodes.name: `{name}` is listed twice (first at line {})", first.map_or(0, |f| f.line)),
            );
        }
        let host = n.host.value.trim();
        if host.is_empty() {
            p.add(at(&n.host), format!("{field}.host: is empty; give an SSH address or ~/.ssh/config alias"));
        } else if let Some((other, first)) = seen_host.insert(host, (name, at(&n.host))) {
            p.add(
                at(&n.host),
                format!(
                    "{field}.host: `{host}` is also the host of node `{other}` (line {})",
                    first.map_or(0, |f| f.line)
                ),
            );
        }
        let underlay = match &n.underlay_ip {
            Some(v) => parse_ip(&format!("{field}.underlay_ip"), v, p),
            None => match host.parse::<Ipv4Addr>() {
                Ok(ip) => Some(ip),
                Err(_) => {
                    if !host.is_empty() {
                        p.add(
                            at(&n.host),
                            format!("{field}.host: `{host}` is not an IPv4 address, so the tunnel endpoint is unknown; set `underlay_ip`"),
                        );
                    }
                    None
                }
            },
        };
        if let Some(ip) = underlay
            && let Some(other) = seen_underlay.insert(ip, name)
        {
            let pos = n.underlay_ip.as_ref().map_or(at(&n.host), at);
            p.add(pos, format!("{field}.underlay_ip: `{ip}` is also the tunnel endpoint of node `{other}`"));
        }
        let subnet = n.subnet.as_ref().and_then(|v| {
            let s = parse_cidr(&format!("{field}.subnet"), v, p)?;
            let c = cluster?;
            let problem = if !c.cidr.contains(&s) {
                Some(format!("lies outside cluster.cidr `{}`", c.cidr))
            } else if s.prefix_len() != c.node_prefix {
                Some(format!(
                    "is a /{}, but every node subnet is a /{} (cluster.node_prefix)",
                    s.prefix_len(),
                    c.node_prefix
                ))
            } else if overlaps(&s, &c.switch_cidr) {
                Some(format!("overlaps cluster.switch_cidr `{}`", c.switch_cidr))
            } else if let Some(e) = c.exclude.iter().find(|e| overlaps(&s, e)) {
                Some(format!("overlaps the excluded block `{e}`"))
            } else {
                pinned
                    .iter()
                    .find(|(o, _)| overlaps(&s, o))
                    .map(|(o, other)| format!("overlaps `{o}`, the subnet of node `{other}`"))
            };
            match problem {
                Some(why) => {
                    p.add(at(v), format!("{field}.subnet: `{s}` {why}"));
                    None
                }
                None => {
                    pinned.push((s, name));
                    Some(s)
                }
            }
        });
        if let Some(ip) = underlay {
            out.push(Node { name: name.to_string(), host: host.to_string(), underlay_ip: ip, subnet, pos: at(entry) });
        }
    }
    out
}
