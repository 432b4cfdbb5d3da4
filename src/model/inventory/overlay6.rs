//! Dual-stack containers, checked offline: `cluster.cidr6` (a ULA or global unicast range), each node's block in it
//! (`cluster.node_prefix6`, /64 unless set; `nodes[].subnet6` pins one), `cluster.outside6`.
//!
//! The first block of the range holds the switches' addresses (sw0's, as `switch_cidr` does for IPv4), so a node's
//! block is never it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};

use ipnet::Ipv6Net;

use super::check::{Check, at, shown};
use super::model::{DockerMode, Node, OUTSIDE6, Outside6, Overlay6};
use super::raw::{At, OneOrList, RawCluster, RawNode, Scalar, Shaped};

/// A node's IPv6 block when `cluster.node_prefix6` is not set: what SLAAC, docker and every tool expect.
pub const DEFAULT_NODE_PREFIX6: u8 = 64;
/// Longest node block: docker and the kernel take longer ones, but a block should hold many containers.
const MAX_NODE_PREFIX6: u8 = 120;

/// Where a container range may come from: unique local (fc00::/7, RFC 4193) or global unicast (2000::/3).
const ULA: Ipv6Net = Ipv6Net::new_assert(Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7);
const GLOBAL: Ipv6Net = Ipv6Net::new_assert(Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3);

/// `cluster.cidr6`, `cluster.node_prefix6` and `cluster.outside6`: `Some(None)` when no IPv6 range is set (then
/// the other two must not be either), `None` when something was wrong (reported).
pub fn settings(
    raw: &RawCluster,
    mode: Option<DockerMode>,
    node_count: usize,
    ck: &mut Check,
) -> Option<Option<Overlay6>> {
    let Some(v) = &raw.cidr6 else {
        for (field, given) in [("node_prefix6", &raw.node_prefix6), ("outside6", &raw.outside6)] {
            if let Some(g) = given {
                ck.add(
                    at(g),
                    format!(
                        "cluster.{field}: `{}` is set, but cluster.cidr6 is not; it means something only with an IPv6 \
                         range for the containers (e.g. `cidr6: fd42:7:1::/48`)",
                        ck.written(g)
                    ),
                );
                return None;
            }
        }
        return Some(None);
    };
    let cidr = cidr6("cluster.cidr6", v, ck)?;
    let problem = if !ULA.contains(&cidr) && !GLOBAL.contains(&cidr) {
        Some(
            "is neither a unique local range (inside `fc00::/7`) nor a global unicast one (inside `2000::/3`); \
              containers need addresses routed like any other (e.g. `fd42:7:1::/48`)"
                .to_string(),
        )
    } else if cidr.prefix_len() > MAX_NODE_PREFIX6 - 2 {
        Some(format!(
            "is too small: it needs a block for the switches and one per node (a /{} at most)",
            MAX_NODE_PREFIX6 - 2
        ))
    } else {
        None
    };
    if let Some(p) = problem {
        ck.add(at(v), format!("cluster.cidr6: `{cidr}` {p}"));
        return None;
    }
    if mode == Some(DockerMode::Docker0) {
        ck.add(
            at(v),
            format!(
                "cluster.cidr6: `{cidr}` with docker.mode `docker0` is not built: IPv6 on docker's default bridge \
                 means `ipv6`/`fixed-cidr-v6` in daemon.json and a docker restart; use docker.mode `network`"
            ),
        );
        return None;
    }
    let default = DEFAULT_NODE_PREFIX6.max(cidr.prefix_len() + 1);
    let node_prefix = match &raw.node_prefix6 {
        None => default,
        Some(p) => {
            let lo = i64::from(cidr.prefix_len()) + 1;
            ck.int("cluster.node_prefix6", p, lo, i64::from(MAX_NODE_PREFIX6))? as u8
        }
    };
    let blocks = blocks(cidr, node_prefix);
    if blocks <= node_count as u128 {
        let pos = raw.node_prefix6.as_ref().map_or(at(v), at);
        ck.add(
            pos,
            format!(
                "cluster.cidr6: `{cidr}` has room for {} node block{} of /{node_prefix} (its first block holds the \
                 switches), but the inventory lists {node_count} nodes; give it a larger range or a longer node_prefix6",
                blocks - 1,
                if blocks == 2 { "" } else { "s" }
            ),
        );
        return None;
    }
    let outside = match &raw.outside6 {
        None => Outside6::None,
        Some(o) => ck.word("cluster.outside6", o, &OUTSIDE6)?,
    };
    Some(Some(Overlay6 { cidr, node_prefix, outside }))
}

/// How many blocks of /`node_prefix` `cidr` holds (saturating: a /8 of /120s is more than any fleet).
pub fn blocks(cidr: Ipv6Net, node_prefix: u8) -> u128 {
    1u128.checked_shl(u32::from(node_prefix - cidr.prefix_len())).unwrap_or(u128::MAX)
}

/// The block numbered `index` (0: the switches') of /`node_prefix` in `cidr`.
pub fn block(cidr: Ipv6Net, node_prefix: u8, index: u128) -> Ipv6Net {
    let host_bits = 128 - u32::from(node_prefix);
    let base = u128::from(cidr.network()) + index.checked_shl(host_bits).unwrap_or(0);
    Ipv6Net::new(Ipv6Addr::from(base), node_prefix).expect("prefix checked")
}

/// The number of `net`'s block in `cidr`, when `net` is one.
pub fn index_of(cidr: Ipv6Net, node_prefix: u8, net: Ipv6Net) -> Option<u128> {
    (net.prefix_len() == node_prefix && cidr.contains(&net) && net.trunc() == net)
        .then(|| (u128::from(net.network()) - u128::from(cidr.network())) >> (128 - u32::from(node_prefix)))
}

/// An IPv6 CIDR without host bits.
fn cidr6(field: &str, v: &At<Scalar>, ck: &mut Check) -> Option<Ipv6Net> {
    let text = ck.text(field, v, "an IPv6 CIDR (e.g. `fd42:7:1::/48`)")?;
    let text = text.trim();
    let problem = match text.parse::<Ipv6Net>() {
        Ok(net) if net.trunc() == net => return Some(net),
        Ok(net) => format!("has host bits set; did you mean `{}`?", net.trunc()),
        Err(_) if text.parse::<ipnet::Ipv4Net>().is_ok() => "is IPv4; this field is the containers' IPv6 range".into(),
        Err(_) => "is not an IPv6 CIDR (expected e.g. `fd42:7:1::/48`)".into(),
    };
    ck.add(at(v), format!("{field}: `{}` {problem}", shown(text)));
    None
}

/// `nodes[].subnet6`: a block of the cluster's range, not the switches', each given once; and no tunnel endpoint
/// inside the range (the hosts would route their own tunnels into the mesh). Sets each node's pin.
pub fn pins(raw: &[At<Shaped<RawNode>>], nodes: &mut [Node], overlay: Option<&Overlay6>, ck: &mut Check) {
    let mut given: HashMap<Ipv6Net, String> = HashMap::new();
    for entry in raw {
        let Shaped::Ok(r) = &entry.value else { continue };
        let Some(v) = &r.subnet6 else { continue };
        let name = match &r.name.value {
            Scalar::Text(t) => t.clone(),
            _ => ck.written(&r.name),
        };
        let field = format!("nodes[{}].subnet6", shown(&name));
        let Some(o) = overlay else {
            ck.add(
                at(v),
                format!(
                    "{field}: `{}` is set, but cluster.cidr6 is not; pins mean something only with an IPv6 range for \
                     the containers",
                    ck.written(v)
                ),
            );
            continue;
        };
        let Some(net) = cidr6(&field, v, ck) else { continue };
        let problem = match index_of(o.cidr, o.node_prefix, net) {
            None if !o.cidr.contains(&net) => Some(format!("lies outside cluster.cidr6 `{}`", o.cidr)),
            None => Some(format!("is not a /{} block (cluster.node_prefix6)", o.node_prefix)),
            Some(0) => {
                Some(format!("is the first block of cluster.cidr6 `{}`, which holds the switches' addresses", o.cidr))
            }
            Some(_) => given.get(&net).map(|other| format!("is also nodes[{}].subnet6", shown(other))),
        };
        if let Some(p) = problem {
            ck.add(at(v), format!("{field}: `{net}` {p}"));
            continue;
        }
        given.insert(net, name.clone());
        if let Some(n) = nodes.iter_mut().find(|n| n.name == name) {
            n.subnet6 = Some(net);
        }
    }
    let Some(o) = overlay else { return };
    // A dual-stack host lists an address per family: the one not chosen for the tunnels counts too (it is still
    // the host's, and would be routed into the mesh).
    let listed: HashMap<String, Vec<IpAddr>> = raw
        .iter()
        .filter_map(|e| match &e.value {
            Shaped::Ok(r) => Some(r),
            Shaped::Wrong(_) => None,
        })
        .filter_map(|r| {
            let Scalar::Text(name) = &r.name.value else { return None };
            let texts: Vec<&Scalar> = match &r.underlay_ip.as_ref()?.value {
                OneOrList::One(s) => vec![s],
                OneOrList::List(l) => l.iter().map(|a| &a.value).collect(),
            };
            let ips = texts
                .into_iter()
                .filter_map(|s| match s {
                    Scalar::Text(t) => t.trim().parse::<IpAddr>().ok(),
                    _ => None,
                })
                .collect();
            Some((name.clone(), ips))
        })
        .collect();
    for n in nodes.iter() {
        let extra = listed
            .get(&n.name)
            .into_iter()
            .flatten()
            .filter(|ip| **ip != n.underlay)
            .map(|ip| ("underlay_ip", Some(*ip)));
        for (field, ip) in [("underlay_ip", Some(n.underlay)), ("public_ip", n.public_ip)].into_iter().chain(extra) {
            let Some(IpAddr::V6(ip)) = ip else { continue };
            if o.cidr.contains(&ip) {
                ck.add(
                    n.pos,
                    format!(
                        "nodes[{}].{field}: `{ip}` lies inside cluster.cidr6 `{}`; the tunnels run over the underlay, so \
                         its addresses must be outside the containers' range",
                        shown(&n.name),
                        o.cidr
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_numbered_from_the_start_of_the_range() {
        let cidr: Ipv6Net = "fd42:7:1::/48".parse().unwrap();
        assert_eq!(block(cidr, 64, 0).to_string(), "fd42:7:1::/64");
        assert_eq!(block(cidr, 64, 3).to_string(), "fd42:7:1:3::/64");
        assert_eq!(index_of(cidr, 64, "fd42:7:1:3::/64".parse().unwrap()), Some(3));
        assert_eq!(index_of(cidr, 64, "fd42:7:1:3::/80".parse().unwrap()), None);
        assert_eq!(index_of(cidr, 64, "fd42:7:2::/64".parse().unwrap()), None);
        assert_eq!(blocks(cidr, 64), 65536);
        assert_eq!(blocks("fd00::/8".parse().unwrap(), 120), 1 << 112);
        assert_eq!(blocks("::/0".parse().unwrap(), 128), u128::MAX);
    }
}
