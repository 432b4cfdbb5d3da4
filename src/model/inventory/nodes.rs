//! Checks the node list: names, hosts and tunnel endpoints unique and usable, pinned subnets where the layout
//! allows them. Every lookup is hashed or ordered, so thousands of nodes cost milliseconds.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};

use ipnet::Ipv4Net;

use super::check::{Check, at, check_name, is_safe_name, shown};
use super::families::Listed;
use super::model::{Node, UnderlayFamily};
use super::ranges::{NetMap, legacy_numeric, non_unicast, not_a_host, overlaps, special_overlap};
use super::ranges6::non_unicast6;
use super::raw::{At, OneOrList, RawNode, Scalar, Shaped};
use crate::error::Pos;
use crate::model::names;

/// The cluster's address layout, as far as the node checks need it: each part `None` when it is wrong
/// (and reported) or cannot be known.
#[derive(Default)]
pub struct Layout {
    pub cidr: Option<Ipv4Net>,
    pub node_prefix: Option<u8>,
    pub switch_cidr: Option<Ipv4Net>,
    pub exclude: Option<Vec<Ipv4Net>>,
    /// Set only when encryption is on: tunnel endpoints must stay out of it.
    pub wireguard_cidr: Option<Ipv4Net>,
    /// `cluster.underlay_family`; `None`: `auto` (or refused, and then checked as `auto`).
    pub underlay_family: Option<UnderlayFamily>,
}

/// What earlier nodes already claimed, for the "listed twice" checks.
#[derive(Default)]
struct Seen {
    names: HashMap<String, Option<Pos>>,
    /// By lowercase host (DNS names are case-insensitive): the host as written, its node, its line.
    hosts: HashMap<String, (String, String, Option<Pos>)>,
    underlays: HashMap<IpAddr, String>,
    /// SSH addresses of nodes whose tunnel endpoint is another address: no other node's endpoint may be one.
    host_ips: HashMap<IpAddr, String>,
    pinned: NetMap<String>,
    exclude: NetMap<()>,
    /// Public addresses already given, by the node that has it.
    public_ips: HashMap<IpAddr, String>,
}

/// The nodes, each `underlay` its address of the cluster's family; and that family when some node lists two.
pub fn nodes(raw: &[At<Shaped<RawNode>>], layout: &Layout, ck: &mut Check) -> (Vec<Node>, Option<UnderlayFamily>) {
    let mut seen = Seen::default();
    for e in layout.exclude.iter().flatten() {
        seen.exclude.insert(*e, ());
    }
    let (mut nodes, listed): (Vec<Node>, Vec<Listed>) =
        raw.iter().filter_map(|entry| node(entry, layout, &mut seen, ck)).unzip();
    let family = super::families::families(&mut nodes, &listed, layout.underlay_family, ck);
    (nodes, family)
}

fn node(entry: &At<Shaped<RawNode>>, layout: &Layout, seen: &mut Seen, ck: &mut Check) -> Option<(Node, Listed)> {
    let n = ck.shaped("nodes", entry, "a node mapping, e.g. `{name: vm1, host: 192.168.122.81}`")?;
    let name = node_name(n, seen, ck);
    // Messages name the node as written, escaped: a name is never trusted to be printable.
    let who = name.as_deref().map_or_else(|| ck.written(&n.name), shown);
    let label = format!("nodes[{who}]");
    let host = host(n, &label, &who, seen, ck);
    let host = match (&n.underlay_ip, host) {
        (Some(_), Some(h)) => host_address(n, &label, &who, h, layout, seen, ck),
        (_, h) => h,
    };
    let underlay = underlay(n, &label, &who, host.as_deref(), layout, seen, ck);
    let subnet = pinned_subnet(n, &label, &who, layout, seen, ck);
    let backend = match &n.backend {
        None => Some(None),
        Some(v) => ck.word(&format!("{label}.backend"), v, &super::model::BACKENDS).map(Some),
    };
    let site = site(n, &label, ck);
    let public_ip = public_ip(n, &label, &who, layout, seen, ck);
    let underlay = underlay?;
    let node = Node {
        name: name?,
        host: host?,
        // The first listed until the cluster's family is known ([`super::families::families`]).
        underlay: underlay.addrs[0],
        subnet: subnet?,
        // Checked with the cluster's IPv6 range ([`super::overlay6::pins`]).
        subnet6: None,
        backend: backend?,
        site: site?,
        public_ip: public_ip?,
        pos: at(entry),
    };
    Some((node, underlay))
}

fn node_name(n: &RawNode, seen: &mut Seen, ck: &mut Check) -> Option<String> {
    let v = &n.name;
    let name = ck.text("nodes.name", v, "a node name: letters, digits, `-` and `_`")?;
    let derived = format!("{}{name}", names::TUNNEL_PREFIX);
    check_name("nodes.name", v, &name, names::NODE_NAME_MAX, &derived, ck);
    if let Some(first) = seen.names.insert(name.clone(), at(v)) {
        let line = first.map_or(0, |f| f.line);
        ck.add(at(v), format!("nodes.name: `{}` is listed twice (first at line {line})", shown(&name)));
    }
    Some(name)
}

fn host(n: &RawNode, label: &str, who: &str, seen: &mut Seen, ck: &mut Check) -> Option<String> {
    let v = &n.host;
    let field = format!("{label}.host");
    let host = ck.text(&field, v, "an SSH address or ~/.ssh/config alias")?.trim().to_string();
    if host.is_empty() {
        ck.add(at(v), format!("{field}: is empty; give an SSH address or ~/.ssh/config alias"));
        return None;
    }
    if let Some(ip) = legacy_numeric(&host) {
        ck.add(
            at(v),
            format!(
                "{field}: `{}` is a legacy numeric form of the address `{ip}` (the system resolver reads it so, and \
                 another node could name the same machine as `{ip}`); write `{ip}`",
                shown(&host)
            ),
        );
        return None;
    }
    if let Some(problem) = ipv6_host_problem(&host) {
        ck.add(at(v), format!("{field}: `{}` {problem}", shown(&host)));
        return None;
    }
    // One spelling per machine: DNS names are case-insensitive, and an IPv6 address has many written forms.
    let key = match host.parse::<Ipv6Addr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => host.to_ascii_lowercase(),
    };
    if let Some((as_written, other, first)) = seen.hosts.get(&key) {
        let line = first.map_or(0, |f| f.line);
        let spelled = if *as_written == host { String::new() } else { format!(", written `{}`", shown(as_written)) };
        ck.add(at(v), format!("{field}: `{}` is also the host of node `{other}` (line {line}{spelled})", shown(&host)));
    } else {
        seen.hosts.insert(key, (host.clone(), who.to_string(), at(v)));
    }
    Some(host)
}

/// Why `host` cannot be an IPv6 address vxmesh reaches over SSH, when it is (or looks like) one. Loopback stays
/// allowed, as in IPv4 (vxmesh on the node itself, or an SSH port forward).
fn ipv6_host_problem(host: &str) -> Option<String> {
    let Ok(ip) = host.parse::<Ipv6Addr>() else {
        return if let Some(inner) = host.strip_prefix('[') {
            let bare = inner.split(']').next().unwrap_or(inner);
            Some(format!(
                "is in brackets; write the address bare (`{}`), and a port for this host in ~/.ssh/config (a `Host` \
                 alias with `Port`)",
                shown(bare)
            ))
        } else if host.contains('%') {
            Some("names a zone (`%...`), which an inventory cannot carry; use the host's global or ULA address".into())
        } else if let Some(bare) = super::check::without_prefix(host) {
            Some(format!("has a prefix length (as `ip addr` prints it); write the address alone: `{bare}`"))
        } else if host.contains(':') {
            Some(
                "is neither an IPv6 address nor a host name; a port for this host goes in ~/.ssh/config (a `Host` \
                 alias with `Port`), or `ssh.port` for every host"
                    .into(),
            )
        } else {
            None
        };
    };
    let first = ip.segments()[0];
    if let Some(v4) = ip.to_ipv4_mapped() {
        Some(format!("is an IPv4-mapped IPv6 address; write the IPv4 address `{v4}`"))
    } else if ip.is_unspecified() {
        Some("is the unspecified address; an SSH address must be a unicast address vxmesh can reach".into())
    } else if ip.is_multicast() {
        Some("is a multicast address; an SSH address must be a unicast address vxmesh can reach".into())
    } else if first & 0xffc0 == 0xfe80 {
        Some(
            "is link-local: reaching it needs an interface (a zone) an inventory cannot give; use the host's global \
             or ULA address"
                .into(),
        )
    } else {
        None
    }
}

/// `host` when it is an address and `underlay_ip` is another: the address vxmesh reaches the node at over SSH. It
/// must be one a host can be reached at (loopback stays allowed: vxmesh may run on a node, or reach it through an
/// SSH port forward), outside every vxmesh range (SSH would depend on the mesh it builds), and not another node's
/// tunnel endpoint (the two nodes would be one machine).
fn host_address(
    n: &RawNode,
    label: &str,
    who: &str,
    host: String,
    l: &Layout,
    seen: &mut Seen,
    ck: &mut Check,
) -> Option<String> {
    let ip = match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip,
        // Its nonsense was refused with `host`; what is left to check is the other nodes' endpoints.
        Ok(IpAddr::V6(ip)) => return host_address6(n, label, who, host, ip, seen, ck),
        Err(_) => return Some(host),
    };
    let inside = |range: &str, net: Ipv4Net| {
        format!("lies inside {range} `{net}`; vxmesh reaches hosts over SSH outside the overlay it builds")
    };
    let problem = if let Some(special) = not_a_host(ip) {
        format!("is in {}; an SSH address must be a unicast address vxmesh can reach", special.describe())
    } else if let Some(s) = l.switch_cidr.filter(|s| s.contains(&ip)) {
        inside("cluster.switch_cidr", s)
    } else if let Some(c) = l.cidr.filter(|c| c.contains(&ip)) {
        inside("cluster.cidr", c)
    } else if let Some(w) = l.wireguard_cidr.filter(|w| w.contains(&ip)) {
        inside("cluster.wireguard.cidr", w)
    } else if let Some(other) = seen.underlays.get(&IpAddr::V4(ip)) {
        format!("is the tunnel endpoint of node `{other}`; two nodes would be one machine")
    } else {
        seen.host_ips.entry(IpAddr::V4(ip)).or_insert_with(|| who.to_string());
        return Some(host);
    };
    ck.add(at(&n.host), format!("{label}.host: `{ip}` {problem}"));
    None
}

/// [`host_address`] for an IPv6 `host`: the overlay is IPv4, so only the other nodes' endpoints are in the way.
fn host_address6(
    n: &RawNode,
    label: &str,
    who: &str,
    host: String,
    ip: Ipv6Addr,
    seen: &mut Seen,
    ck: &mut Check,
) -> Option<String> {
    let ip = IpAddr::V6(ip);
    if let Some(other) = seen.underlays.get(&ip) {
        let problem = format!("is the tunnel endpoint of node `{other}`; two nodes would be one machine");
        ck.add(at(&n.host), format!("{label}.host: `{}` {problem}", shown(&host)));
        return None;
    }
    seen.host_ips.entry(ip).or_insert_with(|| who.to_string());
    Some(host)
}

/// The tunnel endpoints: `underlay_ip` (one address, or one per family on a dual-stack host), or `host` when that
/// is an address.
fn underlay(
    n: &RawNode,
    label: &str,
    who: &str,
    host: Option<&str>,
    l: &Layout,
    seen: &mut Seen,
    ck: &mut Check,
) -> Option<Listed> {
    let Some(v) = &n.underlay_ip else {
        let host = host?;
        let Ok(ip) = host.parse::<IpAddr>() else {
            ck.add(
                at(&n.host),
                format!(
                    "{label}.host: `{}` is not an IP address, so the tunnel endpoint is unknown; set `underlay_ip`",
                    shown(host)
                ),
            );
            return None;
        };
        let ip = endpoint(n, &format!("{label}.host"), at(&n.host), ip, who, l, seen, ck)?;
        return Some(Listed { addrs: vec![ip], pos: at(&n.host) });
    };
    let field = format!("{label}.underlay_ip");
    let items = listed_items(v, &field, ck)?;
    let ips: Vec<Option<IpAddr>> = items.iter().map(|i| ck.underlay_ip(&field, i)).collect();
    let ips: Vec<IpAddr> = ips.into_iter().collect::<Option<_>>()?;
    if let [a, b] = ips[..]
        && a.is_ipv4() == b.is_ipv4()
    {
        let family = UnderlayFamily::of(a);
        ck.add(
            at(&items[1]),
            format!(
                "{field}: `{a}` and `{b}` are both {family}; a host lists one underlay address per family (one \
                 IPv4, one IPv6), the tunnels use one"
            ),
        );
        return None;
    }
    let checked: Vec<Option<IpAddr>> =
        items.iter().zip(ips).map(|(i, ip)| endpoint(n, &field, at(i), ip, who, l, seen, ck)).collect();
    Some(Listed { addrs: checked.into_iter().collect::<Option<_>>()?, pos: at(v) })
}

/// The addresses `underlay_ip` lists, each where it is written: one, or a list of at most two.
fn listed_items(v: &At<OneOrList>, field: &str, ck: &mut Check) -> Option<Vec<At<Scalar>>> {
    match &v.value {
        OneOrList::One(one) => Some(vec![At::new(one.clone(), v.referenced, v.defined)]),
        OneOrList::List(list) if list.is_empty() => {
            ck.add(at(v), format!("{field}: is an empty list; give the tunnel endpoint, or one IPv4 and one IPv6"));
            None
        }
        OneOrList::List(list) if list.len() > 2 => {
            ck.add(
                at(v),
                format!(
                    "{field}: lists {} addresses; give at most two, one IPv4 and one IPv6 (a dual-stack host)",
                    list.len()
                ),
            );
            None
        }
        OneOrList::List(list) => Some(list.iter().map(|i| At::new(i.value.clone(), i.referenced, i.defined)).collect()),
    }
}

/// One tunnel endpoint. Other hosts send VXLAN to it, so it must be unicast, reachable, and outside the overlay
/// (or the host would route its own tunnel into sw0).
#[allow(clippy::too_many_arguments)]
fn endpoint(
    n: &RawNode,
    field: &str,
    pos: Option<Pos>,
    ip: IpAddr,
    who: &str,
    l: &Layout,
    seen: &mut Seen,
    ck: &mut Check,
) -> Option<IpAddr> {
    let inside = |range: &str, net: Ipv4Net| {
        format!(
            "lies inside {range} `{net}`; a tunnel endpoint must be outside the overlay, or the host would route its own tunnel into sw0"
        )
    };
    let unicast = "a tunnel endpoint must be a unicast address the other hosts reach";
    let problem = if let Some(special) = special_range(ip) {
        format!("is in {special}; {unicast}")
    } else if let Some(s) = l.switch_cidr.filter(|s| in_net(s, ip)) {
        inside("cluster.switch_cidr", s)
    } else if let Some(c) = l.cidr.filter(|c| in_net(c, ip)) {
        inside("cluster.cidr", c)
    } else if let Some(w) = l.wireguard_cidr.filter(|w| in_net(w, ip)) {
        format!(
            "lies inside cluster.wireguard.cidr `{w}`; WireGuard carries the tunnels over the underlay, so an underlay address must be outside it"
        )
    } else if let Some(other) = seen.underlays.get(&ip) {
        // A tunnel endpoint taken from a host already refused as another node's host: said once, not twice.
        let host_said = n.underlay_ip.is_none() && seen.hosts.get(&ip.to_string()).is_some_and(|(_, o, _)| o == other);
        if host_said {
            return None;
        }
        format!("is also the tunnel endpoint of node `{other}`")
    } else if let Some(other) = seen.host_ips.get(&ip).filter(|o| *o != who) {
        format!("is the SSH address of node `{other}`; two nodes would be one machine")
    } else if let Some(other) = seen.public_ips.get(&ip) {
        format!("is the public_ip of node `{other}`; two nodes would be one machine")
    } else {
        seen.underlays.insert(ip, who.to_string());
        return Some(ip);
    };
    ck.add(pos, format!("{field}: `{ip}` {problem}"));
    None
}

/// `Some(None)` when no subnet is pinned; `None` when the pinned one is refused.
fn pinned_subnet(
    n: &RawNode,
    label: &str,
    who: &str,
    l: &Layout,
    seen: &mut Seen,
    ck: &mut Check,
) -> Option<Option<Ipv4Net>> {
    let Some(v) = &n.subnet else { return Some(None) };
    let field = format!("{label}.subnet");
    let s = ck.cidr(&field, v)?;
    match subnet_problem(s, l, seen) {
        Some(why) => {
            ck.add(at(v), format!("{field}: `{s}` {why}"));
            None
        }
        None => {
            seen.pinned.insert(s, who.to_string());
            Some(Some(s))
        }
    }
}

fn subnet_problem(s: Ipv4Net, l: &Layout, seen: &Seen) -> Option<String> {
    if let Some(special) = special_overlap(&s) {
        return Some(format!("overlaps {}", special.describe()));
    }
    if let Some(c) = l.cidr.filter(|c| !c.contains(&s)) {
        return Some(format!("lies outside cluster.cidr `{c}`"));
    }
    if let Some(np) = l.node_prefix.filter(|np| *np != s.prefix_len()) {
        return Some(format!("is a /{}, but every node subnet is a /{np} (cluster.node_prefix)", s.prefix_len()));
    }
    if let Some(sw) = l.switch_cidr.filter(|sw| overlaps(&s, sw)) {
        return Some(format!("overlaps cluster.switch_cidr `{sw}`"));
    }
    if let Some((e, ())) = seen.exclude.first_overlap(&s) {
        return Some(format!("overlaps the excluded block `{e}`"));
    }
    seen.pinned.first_overlap(&s).map(|(o, other)| format!("overlaps `{o}`, the subnet of node `{other}`"))
}

/// The node's site: a name, `default` when left out. Only compared, never made into a device name.
fn site(n: &RawNode, label: &str, ck: &mut Check) -> Option<String> {
    let Some(v) = &n.site else { return Some(super::model::DEFAULT_SITE.to_string()) };
    let field = format!("{label}.site");
    let site = ck.text(&field, v, "a site name: letters, digits, `-` and `_`")?;
    if !is_safe_name(&site) || site.len() > SITE_MAX {
        ck.add(
            at(v),
            format!(
                "{field}: `{}` is not a site name: at most {SITE_MAX} letters, digits, `-` and `_`, starting with a letter or digit",
                shown(&site)
            ),
        );
        return None;
    }
    Some(site)
}

/// A site name's length at most: a name people read in tables, not a description.
const SITE_MAX: usize = 63;

/// `Some(None)` when the node has no public address; `None` when the one given is refused. Hosts in other sites
/// send tunnels to it, so it is checked like a tunnel endpoint; it may be the node's own underlay address (a host
/// with its public address on an interface), but no other node's address.
fn public_ip(
    n: &RawNode,
    label: &str,
    who: &str,
    l: &Layout,
    seen: &mut Seen,
    ck: &mut Check,
) -> Option<Option<IpAddr>> {
    let Some(v) = &n.public_ip else { return Some(None) };
    let field = format!("{label}.public_ip");
    let ip = ck.underlay_ip(&field, v)?;
    let inside = |range: &str, net: Ipv4Net| {
        format!("lies inside {range} `{net}`; a public address must be outside the overlay")
    };
    let problem = if let Some(special) = special_range(ip) {
        format!("is in {special}; a public address must be a unicast address the other sites reach")
    } else if let Some(s) = l.switch_cidr.filter(|s| in_net(s, ip)) {
        inside("cluster.switch_cidr", s)
    } else if let Some(c) = l.cidr.filter(|c| in_net(c, ip)) {
        inside("cluster.cidr", c)
    } else if let Some(w) = l.wireguard_cidr.filter(|w| in_net(w, ip)) {
        inside("cluster.wireguard.cidr", w)
    } else if let Some(other) = seen.public_ips.get(&ip) {
        format!("is also the public_ip of node `{other}`")
    } else if let Some(other) = seen.underlays.get(&ip).filter(|o| *o != who) {
        format!("is the tunnel endpoint of node `{other}`; two nodes would be one machine")
    } else if let Some(other) = seen.host_ips.get(&ip).filter(|o| *o != who) {
        format!("is the SSH address of node `{other}`; two nodes would be one machine")
    } else {
        seen.public_ips.insert(ip, who.to_string());
        return Some(Some(ip));
    };
    ck.add(at(v), format!("{field}: `{ip}` {problem}"));
    None
}

/// The special range a tunnel endpoint of either family lies in, described for a message.
fn special_range(ip: IpAddr) -> Option<String> {
    match ip {
        IpAddr::V4(v4) => non_unicast(v4, false).map(|s| s.describe()),
        IpAddr::V6(v6) => non_unicast6(v6).map(|s| s.describe()),
    }
}

/// Whether an endpoint lies in one of the (IPv4) overlay ranges: an IPv6 endpoint never does.
fn in_net(net: &Ipv4Net, ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v4) if net.contains(&v4))
}
