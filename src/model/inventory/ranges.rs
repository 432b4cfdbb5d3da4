//! Address ranges an overlay or a tunnel endpoint must stay out of, each with the reason a host would break.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// A range with a special meaning to every IPv4 stack.
pub struct Special {
    pub net: Ipv4Net,
    /// What the range is, as the RFCs name it.
    pub what: &'static str,
    /// Why a host cannot put a bridge, a route or a tunnel there.
    pub why: &'static str,
}

impl Special {
    /// `127.0.0.0/8 (loopback: ...)`, the way messages name a range.
    pub fn describe(&self) -> String {
        format!("`{}` ({}: {})", self.net, self.what, self.why)
    }
}

/// In the order they are reported: the first match names the problem (a /0 overlaps them all).
pub const SPECIAL: [Special; 6] = [
    Special {
        net: Ipv4Net::new_assert(Ipv4Addr::new(0, 0, 0, 0), 8),
        what: "\"this network\"",
        why: "those addresses mean the host itself and are never routed",
    },
    Special {
        net: Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8),
        what: "loopback",
        why: "it never leaves a host",
    },
    Special {
        net: Ipv4Net::new_assert(Ipv4Addr::new(169, 254, 0, 0), 16),
        what: "link-local",
        why: "it is never routed, and clouds serve their metadata service there",
    },
    Special {
        net: Ipv4Net::new_assert(Ipv4Addr::new(224, 0, 0, 0), 4),
        what: "multicast",
        why: "it addresses groups, not hosts",
    },
    Special {
        net: Ipv4Net::new_assert(Ipv4Addr::BROADCAST, 32),
        what: "broadcast",
        why: "it addresses every host of a link",
    },
    Special {
        net: Ipv4Net::new_assert(Ipv4Addr::new(240, 0, 0, 0), 4),
        what: "reserved",
        why: "hosts refuse to route it",
    },
];

/// docker0's default bridge range: docker keeps it on every host that runs docker, unless `bip` renumbers it.
pub const DOCKER0_DEFAULT: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(172, 17, 0, 0), 16);

/// Names docker gives its own networks: `docker network create` refuses them, or worse, they are the default
/// bridge or the host's stack.
pub const DOCKER_RESERVED_NETWORKS: [&str; 5] = ["host", "bridge", "none", "ingress", "docker_gwbridge"];

/// The first special range `net` overlaps. The broadcast address is named only for addresses: a block
/// reaching it lies in the reserved 240.0.0.0/4, which says more.
pub fn special_overlap(net: &Ipv4Net) -> Option<&'static Special> {
    SPECIAL.iter().filter(|s| s.net.prefix_len() < 32).find(|s| overlaps(net, &s.net))
}

/// The special range `ip` lies in, when it cannot be a tunnel endpoint (or the `outside` probe target).
/// Link-local is allowed where asked: `outside` may well be a metadata service, a tunnel endpoint may not.
pub fn non_unicast(ip: Ipv4Addr, link_local_ok: bool) -> Option<&'static Special> {
    SPECIAL.iter().filter(|s| !(link_local_ok && s.what == "link-local")).find(|s| s.net.contains(&ip))
}

/// Whether two CIDR blocks share an address (blocks either nest or are disjoint).
pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// CIDR blocks with a value each, answering "which one overlaps this block?" in at most 33 lookups plus one
/// range query, however many there are: thousands of nodes against thousands of excludes stay instant.
pub struct NetMap<V> {
    /// Keyed by (first address, prefix): blocks nested inside a block sort within its address range.
    map: BTreeMap<(u32, u8), (Ipv4Net, V)>,
}

impl<V> Default for NetMap<V> {
    fn default() -> Self {
        NetMap { map: BTreeMap::new() }
    }
}

impl<V> NetMap<V> {
    pub fn insert(&mut self, net: Ipv4Net, v: V) {
        let net = net.trunc();
        self.map.entry((u32::from(net.network()), net.prefix_len())).or_insert((net, v));
    }

    /// A block that overlaps `s`: one containing it (one of its 33 supernets), else one inside it.
    pub fn first_overlap(&self, s: &Ipv4Net) -> Option<&(Ipv4Net, V)> {
        let s = s.trunc();
        let start = u32::from(s.network());
        (0..=s.prefix_len())
            .filter_map(|p| Ipv4Net::new(s.network(), p).ok().map(|sup| sup.trunc()))
            .find_map(|sup| self.map.get(&(u32::from(sup.network()), sup.prefix_len())))
            .or_else(|| self.map.range((start, s.prefix_len())..=(u32::from(s.broadcast()), 32)).next().map(|(_, e)| e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_special_range_is_found_for_nets_and_addresses() {
        let n = |s: &str| s.parse::<Ipv4Net>().unwrap();
        assert_eq!(special_overlap(&n("0.0.0.0/0")).unwrap().what, "\"this network\"");
        assert_eq!(special_overlap(&n("127.1.0.0/16")).unwrap().what, "loopback");
        assert_eq!(special_overlap(&n("169.254.0.0/24")).unwrap().what, "link-local");
        assert_eq!(special_overlap(&n("232.0.0.0/8")).unwrap().what, "multicast");
        assert_eq!(special_overlap(&n("248.0.0.0/8")).unwrap().what, "reserved");
        assert_eq!(special_overlap(&n("255.255.255.0/24")).unwrap().what, "reserved");
        assert!(special_overlap(&n("10.0.0.0/8")).is_none());
        assert_eq!(non_unicast(Ipv4Addr::BROADCAST, false).unwrap().what, "broadcast");
        assert_eq!(non_unicast(Ipv4Addr::UNSPECIFIED, false).unwrap().what, "\"this network\"");
        assert!(non_unicast(Ipv4Addr::new(169, 254, 169, 254), true).is_none());
        assert!(non_unicast(Ipv4Addr::new(169, 254, 169, 254), false).is_some());
        assert!(non_unicast(Ipv4Addr::new(192, 0, 2, 1), false).is_none());
    }

    #[test]
    fn net_map_finds_containing_contained_and_equal_blocks() {
        let n = |s: &str| s.parse::<Ipv4Net>().unwrap();
        let mut m = NetMap::default();
        for (net, v) in [("10.0.0.0/16", 1), ("10.1.2.0/24", 2), ("10.2.0.0/30", 3)] {
            m.insert(n(net), v);
        }
        let found = |s: &str| m.first_overlap(&n(s)).map(|(_, v)| *v);
        assert_eq!(found("10.0.5.0/24"), Some(1), "inside a member");
        assert_eq!(found("10.1.0.0/16"), Some(2), "holds a member");
        assert_eq!(found("10.1.2.0/24"), Some(2), "equal to a member");
        assert_eq!(found("10.2.0.0/24"), Some(3));
        assert_eq!(found("10.1.3.0/24"), None);
        assert_eq!(found("0.0.0.0/0"), Some(1));
        assert_eq!(found("10.3.0.0/16"), None);
    }
}
