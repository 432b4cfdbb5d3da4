//! Address families of the underlay, checked offline: a pair of hosts needs one family in common (a tunnel is IPv4
//! or IPv6 end to end, and no NAT on the way changes the family).

use super::check::{Check, shown};
use super::model::Node;
use super::ranges6::Family;

/// With one underlay address per node and a tunnel between every pair (a relayed pair too: both ends talk to the
/// relay), every node's underlay is one family, and its `public_ip` (1:1 NAT maps within a family) is the same
/// family as its underlay. Reported once, naming the first pair that has none.
pub fn families(nodes: &[Node], ck: &mut Check) {
    for n in nodes {
        let Some(public) = n.public_ip.filter(|p| Family::of(*p) != Family::of(n.underlay)) else { continue };
        ck.add(
            n.pos,
            format!(
                "nodes[{who}].public_ip: `{public}` ({}) and nodes[{who}].underlay_ip: `{}` ({}) have no common \
                 family: a 1:1 NAT maps addresses within one family; give a public address of the underlay's family",
                Family::of(public),
                n.underlay,
                Family::of(n.underlay),
                who = shown(&n.name),
            ),
        );
    }
    let Some(first) = nodes.first() else { return };
    let family = Family::of(first.underlay);
    if let Some(other) = nodes.iter().find(|n| Family::of(n.underlay) != family) {
        ck.add(
            other.pos,
            format!(
                "nodes[{a}].underlay_ip: `{}` ({family}) and nodes[{b}].underlay_ip: `{}` ({}) have no common family: \
                 every pair of hosts has a tunnel, which runs over one family end to end; give every node an \
                 underlay address of one family",
                first.underlay,
                other.underlay,
                Family::of(other.underlay),
                a = shown(&first.name),
                b = shown(&other.name),
            ),
        );
    }
}
