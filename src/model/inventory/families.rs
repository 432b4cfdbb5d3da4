//! Address families of the underlay, checked offline: a pair of hosts needs one family in common (a tunnel is IPv4
//! or IPv6 end to end, and no NAT on the way changes the family); where hosts list both, the one the tunnels use.

use std::net::IpAddr;

use super::check::{Check, shown};
use super::model::{Node, UnderlayFamily};
use crate::error::Pos;

/// The underlay addresses a node lists, as written: one, or one per family on a dual-stack host.
pub struct Listed {
    pub addrs: Vec<IpAddr>,
    /// Where the node's tunnel endpoint is written (`underlay_ip`, or `host` standing for it).
    pub pos: Option<Pos>,
}

impl Listed {
    fn of(&self, family: UnderlayFamily) -> Option<IpAddr> {
        self.addrs.iter().copied().find(|a| UnderlayFamily::of(*a) == family)
    }
}

/// Chooses the family every tunnel runs over and sets each node's `underlay` to its address of that family; returns
/// it when some node listed two addresses (there was a choice), `None` otherwise or when refused.
///
/// Every pair of hosts has a tunnel (a relayed pair too: both ends talk to the relay), and a pair needs a family
/// both have: so every node has the cluster's family. Where every node has both, IPv4, whose 20 bytes less header
/// leave a larger overlay MTU, unless `setting` (`cluster.underlay_family`) says which. A node's `public_ip` (1:1
/// NAT maps within a family) is of that family too. Reported once, naming the first pair that has none.
pub fn families(
    nodes: &mut [Node],
    listed: &[Listed],
    setting: Option<UnderlayFamily>,
    ck: &mut Check,
) -> Option<UnderlayFamily> {
    let chosen = match setting {
        Some(f) => forced(nodes, listed, f, ck),
        None => common(nodes, listed, ck),
    };
    let dual = listed.iter().any(|l| l.addrs.len() > 1);
    for (n, l) in nodes.iter_mut().zip(listed) {
        if let Some(ip) = chosen.and_then(|f| l.of(f)) {
            n.underlay = ip;
        }
        public_family(n, l, chosen, setting, ck);
    }
    chosen.filter(|_| dual)
}

/// The family `cluster.underlay_family` forces, when every node has it; each node that lacks it (one that lists a
/// single address, of the other family) is named.
fn forced(nodes: &[Node], listed: &[Listed], f: UnderlayFamily, ck: &mut Check) -> Option<UnderlayFamily> {
    let before = ck.count();
    for (n, l) in nodes.iter().zip(listed).filter(|(_, l)| l.of(f).is_none()) {
        ck.add(
            l.pos,
            format!(
                "nodes[{who}].underlay_ip: `{}` ({}) has no {f} address, but cluster.underlay_family is `{}`: \
                 every tunnel runs over it; give the node an {f} underlay address too (a list, e.g. `[192.0.2.1, \
                 \"2001:db8::1\"]`), or set `underlay_family: auto`",
                l.addrs[0],
                UnderlayFamily::of(l.addrs[0]),
                f.as_str(),
                who = shown(&n.name),
            ),
        );
    }
    (ck.count() == before).then_some(f)
}

/// The family every node has, IPv4 where both are; or the first pair with none, named.
fn common(nodes: &[Node], listed: &[Listed], ck: &mut Check) -> Option<UnderlayFamily> {
    let all = |f| listed.iter().all(|l| l.of(f).is_some());
    if all(UnderlayFamily::Ipv4) {
        return Some(UnderlayFamily::Ipv4);
    }
    if all(UnderlayFamily::Ipv6) {
        return Some(UnderlayFamily::Ipv6);
    }
    // Neither family is everywhere: some node has only one family, and some node lacks that one.
    let (a, la) = nodes.iter().zip(listed).find(|(_, l)| l.addrs.len() == 1)?;
    let family = UnderlayFamily::of(la.addrs[0]);
    let (b, lb) = nodes.iter().zip(listed).find(|(_, l)| l.of(family).is_none())?;
    ck.add(
        b.pos,
        format!(
            "nodes[{a}].underlay_ip: `{}` ({family}) and nodes[{b}].underlay_ip: `{}` ({}) have no common family: \
             every pair of hosts has a tunnel, which runs over one family end to end; give every node an \
             underlay address of one family",
            la.addrs[0],
            lb.addrs[0],
            UnderlayFamily::of(lb.addrs[0]),
            a = shown(&a.name),
            b = shown(&b.name),
        ),
    );
    None
}

/// A `public_ip` of the other family than the tunnels' could never carry them. Without a cluster family (refused
/// above), a single-address node's own family is the one compared.
fn public_family(
    n: &Node,
    l: &Listed,
    chosen: Option<UnderlayFamily>,
    setting: Option<UnderlayFamily>,
    ck: &mut Check,
) {
    let Some(public) = n.public_ip else { return };
    let pf = UnderlayFamily::of(public);
    let single = (l.addrs.len() == 1).then(|| UnderlayFamily::of(l.addrs[0]));
    let Some(f) = single.or(chosen).filter(|f| *f != pf) else { return };
    let who = shown(&n.name);
    let message = if single.is_some() {
        format!(
            "nodes[{who}].public_ip: `{public}` ({pf}) and nodes[{who}].underlay_ip: `{}` ({f}) have no common \
             family: a 1:1 NAT maps addresses within one family; give a public address of the underlay's family",
            l.addrs[0],
        )
    } else {
        let why = match setting {
            Some(s) => format!("cluster.underlay_family is `{}`", s.as_str()),
            None => format!("{f} is the family every node has, IPv4 where all have both"),
        };
        format!(
            "nodes[{who}].public_ip: `{public}` is {pf}, but the tunnels run over {f} ({why}): a 1:1 NAT maps \
             addresses within one family; give an {f} public address"
        )
    };
    ck.add(n.pos, message);
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::parse;
    use super::*;

    fn inventory(family: &str, nodes: &[&str]) -> Result<super::super::Inventory, String> {
        let mut text = format!("cluster:\n  cidr: 172.16.0.0/12\n{family}nodes:\n");
        for (i, u) in nodes.iter().enumerate() {
            text += &format!("  - {{name: n{i}, host: h{i}, underlay_ip: {u}}}\n");
        }
        parse(Path::new("f.yaml"), &text).map_err(|e| e.to_string())
    }

    fn chosen(family: &str, nodes: &[&str]) -> (Option<UnderlayFamily>, Vec<String>) {
        let inv = inventory(family, nodes).unwrap();
        (inv.cluster.underlay_family, inv.nodes.iter().map(|n| n.underlay.to_string()).collect())
    }

    const DUAL1: &str = "[10.0.0.1, \"fd00::1\"]";
    const DUAL2: &str = "[\"fd00::2\", 10.0.0.2]";

    #[test]
    fn every_node_with_both_takes_ipv4_unless_told() {
        let v4 = (Some(UnderlayFamily::Ipv4), vec!["10.0.0.1".to_string(), "10.0.0.2".to_string()]);
        assert_eq!(chosen("", &[DUAL1, DUAL2]), v4);
        assert_eq!(chosen("  underlay_family: auto\n", &[DUAL1, DUAL2]), v4);
        assert_eq!(chosen("  underlay_family: ipv4\n", &[DUAL1, DUAL2]), v4);
        let v6 = (Some(UnderlayFamily::Ipv6), vec!["fd00::1".to_string(), "fd00::2".to_string()]);
        assert_eq!(chosen("  underlay_family: ipv6\n", &[DUAL1, DUAL2]), v6);
    }

    #[test]
    fn the_family_every_node_has_wins() {
        let (f, addrs) = chosen("", &[DUAL1, "10.0.0.3", DUAL2]);
        assert_eq!((f, addrs.join(" ")), (Some(UnderlayFamily::Ipv4), "10.0.0.1 10.0.0.3 10.0.0.2".into()));
        let (f, addrs) = chosen("", &[DUAL1, "\"fd00::3\"", DUAL2]);
        assert_eq!((f, addrs.join(" ")), (Some(UnderlayFamily::Ipv6), "fd00::1 fd00::3 fd00::2".into()));
        // A one-item list is one address: nothing to choose, as before.
        assert_eq!(chosen("", &["[10.0.0.1]", "10.0.0.2"]).0, None);
        assert_eq!(chosen("  underlay_family: ipv6\n", &["\"fd00::1\"", "\"fd00::2\""]).0, None);
    }

    #[test]
    fn a_forced_family_some_node_lacks_names_it() {
        let e = inventory("  underlay_family: ipv6\n", &[DUAL1, "10.0.0.3", DUAL2, "10.0.0.4"]).unwrap_err();
        assert_eq!(e.lines().count(), 2, "{e}");
        assert!(e.contains("nodes[n1].underlay_ip: `10.0.0.3` (IPv4) has no IPv6 address"), "{e}");
        assert!(e.contains("nodes[n3].underlay_ip: `10.0.0.4` (IPv4) has no IPv6 address"), "{e}");
        let e = inventory("  underlay_family: ipv4\n", &["\"fd00::9\"", DUAL2]).unwrap_err();
        assert!(e.contains("nodes[n0].underlay_ip: `fd00::9` (IPv6) has no IPv4 address"), "{e}");
    }

    #[test]
    fn a_pair_with_no_common_family_is_named_among_dual_stack_hosts() {
        let e = inventory("", &[DUAL1, "10.0.0.3", DUAL2, "\"fd00::4\""]).unwrap_err();
        assert!(
            e.contains("nodes[n1].underlay_ip: `10.0.0.3` (IPv4) and nodes[n3].underlay_ip: `fd00::4` (IPv6) have no common family"),
            "{e}"
        );
    }

    #[test]
    fn a_public_ip_of_the_other_family_is_refused() {
        let text = "cluster:\n  cidr: 172.16.0.0/12\n  encryption: wireguard\nnodes:\n  - {name: a, host: ha, underlay_ip: [10.0.0.1, \"fd00::1\"], site: s1, public_ip: \"2001:db8::1\"}\n  - {name: b, host: hb, underlay_ip: [10.0.0.2, \"fd00::2\"], site: s2, public_ip: 192.0.2.2}\n";
        let e = parse(Path::new("f.yaml"), text).unwrap_err().to_string();
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(e.contains("nodes[a].public_ip: `2001:db8::1` is IPv6, but the tunnels run over IPv4"), "{e}");
        let ok = text
            .replace("  encryption", "  underlay_family: ipv6\n  encryption")
            .replace("192.0.2.2", "\"2001:db8::2\"");
        let inv = parse(Path::new("f.yaml"), &ok).unwrap();
        assert_eq!(inv.nodes[1].underlay.to_string(), "fd00::2");
    }
}
