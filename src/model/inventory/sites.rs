//! Checks what sites ask of the inventory: relays that can relay, and a path for every pair of hosts
//! ([`crate::model::paths`]), each refusal naming the field, the value and the hosts concerned.

use super::check::{Check, at, shown};
use super::model::{Encryption, Node};
use super::raw::{RawCluster, Shaped};
use crate::model::paths::{self, NAMED, Problem};

/// `cluster.wireguard.relays`: `Some(None)` when unset, `None` when refused (reported). Each entry must name a
/// node with a `public_ip` (the hosts it relays for cannot reach it otherwise), once.
pub fn relays(raw: &RawCluster, nodes: &[Node], ck: &mut Check) -> Option<Option<Vec<String>>> {
    let section = match raw.wireguard.as_ref().map(|w| &w.value) {
        Some(Shaped::Ok(w)) => w,
        // Not a mapping: reported with the rest of `cluster.wireguard`.
        Some(Shaped::Wrong(_)) => return None,
        None => return Some(None),
    };
    let Some(list) = &section.relays else { return Some(None) };
    let field = "cluster.wireguard.relays";
    let items = ck.shaped(field, list, "a list of node names, e.g. `[gw1]`")?;
    let before = ck.count();
    let mut names: Vec<String> = Vec::with_capacity(items.len());
    for v in items {
        let Some(name) = ck.text(field, v, "a node name") else { continue };
        let problem = match nodes.iter().find(|n| n.name == name) {
            _ if names.contains(&name) => "is listed twice".to_string(),
            None if nodes.is_empty() => continue,
            None => {
                let known: Vec<&str> = nodes.iter().take(NAMED).map(|n| n.name.as_str()).collect();
                let more = if nodes.len() > NAMED { ", ..." } else { "" };
                format!("is not a node of the inventory (nodes: {}{more})", known.join(", "))
            }
            Some(n) if n.public_ip.is_none() => format!(
                "has no public_ip: a relay must be reachable from every site; give node `{}` a `public_ip` or list another",
                shown(&n.name)
            ),
            Some(_) => {
                names.push(name);
                continue;
            }
        };
        ck.add(at(v), format!("{field}: `{}` {problem}", shown(&name)));
    }
    (ck.count() == before).then_some(Some(names))
}

/// Every pair of hosts must have a path: without encryption nothing can reach a host behind NAT; with it, two
/// hosts behind NAT in different sites need a relay.
pub fn paths(
    raw: &RawCluster,
    encryption: Option<Encryption>,
    nodes: &[Node],
    relays: Option<&[String]>,
    ck: &mut Check,
) {
    let Some(encryption) = encryption else { return };
    let fleet = paths::Fleet::new(nodes.iter().map(Node::endpoint).collect(), relays);
    let name = |i: usize| shown(&nodes[i].name);
    for problem in fleet.problems(encryption == Encryption::Wireguard) {
        match problem {
            Problem::Unreachable { host, from, more } => {
                let n = &nodes[host];
                let mut peers: Vec<String> = from.into_iter().map(name).collect();
                if more > 0 {
                    peers.push(format!("{more} more"));
                }
                let encryption = match &raw.encryption {
                    Some(v) => format!("cluster.encryption is `{}`", ck.written(v)),
                    None => "cluster.encryption is `none` (the default)".to_string(),
                };
                ck.add(
                    n.pos,
                    format!(
                        "nodes[{who}]: site `{site}` without public_ip is behind NAT for {peers} (other sites), and \
                         {encryption}: plain VXLAN cannot reach a host behind NAT; set `encryption: wireguard` \
                         (`{who}` then starts its tunnels) or give node `{who}` a `public_ip`",
                        who = name(host),
                        site = shown(&n.site),
                        peers = peers.join(", "),
                    ),
                );
            }
            Problem::NoRelay { example: (a, b), pairs } => {
                let listed = raw.wireguard.as_ref().and_then(|w| match &w.value {
                    Shaped::Ok(w) => w.relays.as_ref(),
                    Shaped::Wrong(_) => None,
                });
                let (pos, setting, fix) = match listed {
                    Some(v) => {
                        (at(v), "cluster.wireguard.relays: `[]` lists no relay", "list a node with a `public_ip`")
                    }
                    None => (
                        nodes[a].pos,
                        "cluster.wireguard.relays: unset, and no node has a public_ip to relay",
                        "give a node a `public_ip` (the first such node relays by default)",
                    ),
                };
                let others = if pairs > 1 { format!(" (and {} more such pairs)", pairs - 1) } else { String::new() };
                ck.add(
                    pos,
                    format!(
                        "{setting}: nodes `{}` (site `{}`) and `{}` (site `{}`) are both behind NAT, so they have no \
                         path to each other{others}; {fix}",
                        name(a),
                        shown(&nodes[a].site),
                        name(b),
                        shown(&nodes[b].site),
                    ),
                );
            }
        }
    }
}
