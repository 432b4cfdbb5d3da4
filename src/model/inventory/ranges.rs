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

/// What a vxmesh range is for, which decides how it may meet docker0's default range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `cluster.cidr`: it may hold docker0's range (the `exclude` list then keeps it from every node), but not lie
    /// inside it.
    Cluster,
    /// `cluster.switch_cidr`: sw0's addresses.
    Switch,
    /// `cluster.wireguard.cidr`: every host's WireGuard address and the route for the whole range.
    Wireguard,
}

/// The one check of a vxmesh range against what every host already reserves: the special ranges, and docker0's
/// default range while docker keeps it (`docker0_kept`: the docker mode that keeps it, `None` when `docker0`
/// renumbers it). `None` when the range is clear.
pub fn reserved_problem(net: &Ipv4Net, role: Role, docker0_kept: Option<&str>) -> Option<String> {
    if let Some(special) = special_overlap(net) {
        return Some(format!("overlaps {}", special.describe()));
    }
    let m = docker0_kept?;
    let kept = format!(
        "`{DOCKER0_DEFAULT}`, docker0's default bridge range, which docker keeps on every host in docker mode `{m}`"
    );
    match role {
        Role::Cluster if DOCKER0_DEFAULT.contains(net) => Some(format!(
            "lies inside {kept}; choose another range, or docker mode `docker0` (which renumbers docker0)"
        )),
        Role::Switch if overlaps(net, &DOCKER0_DEFAULT) => {
            Some(format!("overlaps {kept}; sw0 would take addresses docker0 routes"))
        }
        Role::Wireguard if overlaps(net, &DOCKER0_DEFAULT) => Some(format!(
            "overlaps {kept}; every host's WireGuard interface would take docker0's addresses and route them into the \
             tunnels"
        )),
        _ => None,
    }
}

/// The one check of a vxmesh range against the other vxmesh ranges already known (`None` where unknown or wrong):
/// the switch range lies inside the cluster (its addresses are the cluster's), the WireGuard range apart from both
/// (it carries the tunnels, so routing it into the overlay would loop). The cluster's own range meets the others
/// here, from their side.
pub fn vxmesh_conflict(net: &Ipv4Net, role: Role, cidr: Option<Ipv4Net>, switch: Option<Ipv4Net>) -> Option<String> {
    match role {
        Role::Cluster => None,
        Role::Switch => cidr
            .filter(|c| !c.contains(net))
            .map(|c| format!("lies outside cluster.cidr `{c}`; sw0 addresses must be inside the cluster")),
        Role::Wireguard => {
            if let Some(c) = cidr.filter(|c| overlaps(c, net)) {
                Some(format!(
                    "overlaps cluster.cidr `{c}`; WireGuard addresses carry the tunnels, so they must lie outside the \
                     overlay"
                ))
            } else {
                switch.filter(|s| overlaps(s, net)).map(|s| {
                    format!("overlaps cluster.switch_cidr `{s}`; WireGuard addresses must lie outside the overlay")
                })
            }
        }
    }
}

/// The first special range `net` overlaps. The broadcast address is named only for addresses: a block
/// reaching it lies in the reserved 240.0.0.0/4, which says more.
pub fn special_overlap(net: &Ipv4Net) -> Option<&'static Special> {
    SPECIAL.iter().filter(|s| s.net.prefix_len() < 32).find(|s| overlaps(net, &s.net))
}

/// The special range `ip` lies in, when it cannot be a host vxmesh reaches over SSH: loopback is allowed (a node
/// may be the machine vxmesh runs on, or an SSH port forward), and link-local (a host on a direct cable).
pub fn not_a_host(ip: Ipv4Addr) -> Option<&'static Special> {
    SPECIAL.iter().filter(|s| !matches!(s.what, "loopback" | "link-local")).find(|s| s.net.contains(&ip))
}

/// The address the system resolver makes of `text` when it is one of inet_aton's legacy numeric forms: fewer than
/// four parts (`10.1` is 10.0.0.1, `167772161` is 10.0.0.1), octal (`010.0.0.1` is 8.0.0.1, `10.0.0.01`) or hex
/// (`0xa.0.0.1`). `None` for anything else, the dotted quad included.
pub fn legacy_numeric(text: &str) -> Option<Ipv4Addr> {
    if text.parse::<Ipv4Addr>().is_ok() {
        return None;
    }
    let parts: Vec<u64> = text.split('.').map(legacy_part).collect::<Option<_>>()?;
    let (last, head) = parts.split_last()?;
    if head.len() > 3 || head.iter().any(|p| *p > 0xff) || *last >= 1u64 << (8 * (4 - head.len())) {
        return None;
    }
    let value = head.iter().enumerate().fold(*last, |acc, (i, p)| acc | (p << (8 * (3 - i))));
    u32::try_from(value).ok().map(Ipv4Addr::from)
}

fn legacy_part(p: &str) -> Option<u64> {
    let (digits, radix) = match p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None if p.len() > 1 && p.starts_with('0') => (&p[1..], 8),
        None => (p, 10),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    // Leading zeros do not count (the resolver reads `00000000000001` as 0.0.0.1); past 12 significant digits no
    // part can fit an address, and u64 is safe.
    let significant = digits.trim_start_matches('0');
    if significant.len() > 12 {
        return None;
    }
    u64::from_str_radix(if significant.is_empty() { "0" } else { significant }, radix).ok()
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
    fn legacy_numeric_forms_are_read_as_the_resolver_reads_them() {
        let a = |s: &str| legacy_numeric(s).map(|ip| ip.to_string());
        assert_eq!(a("10.0.0.01").as_deref(), Some("10.0.0.1"));
        assert_eq!(a("167772161").as_deref(), Some("10.0.0.1"));
        assert_eq!(a("10.1").as_deref(), Some("10.0.0.1"));
        assert_eq!(a("10.0.1").as_deref(), Some("10.0.0.1"));
        assert_eq!(a("010.0.0.1").as_deref(), Some("8.0.0.1"));
        assert_eq!(a("0xa.0.0.1").as_deref(), Some("10.0.0.1"));
        assert_eq!(a("0x0A000001").as_deref(), Some("10.0.0.1"));
        assert_eq!(a("0").as_deref(), Some("0.0.0.0"));
        // Each leading part lands in its own octet (cargo-mutants: the shift's `-` to `+`).
        assert_eq!(a("10.1.1").as_deref(), Some("10.1.0.1"));
        assert_eq!(a("1.2.3.04").as_deref(), Some("1.2.3.4"));
        // However many leading zeros (cargo-mutants: the length bound's `>` to `>=` and `==`).
        assert_eq!(a("00000000000001").as_deref(), Some("0.0.0.1"));
        assert_eq!(a("0x00000000000000a").as_deref(), Some("0.0.0.10"));
        assert_eq!(a("000000000000000000000000").as_deref(), Some("0.0.0.0"));
        assert_eq!(a("1000000000000"), None, "13 significant digits");
        // A leading part may be 255 but no more, even where the whole would still fit in 32 bits.
        assert_eq!(a("255.1").as_deref(), Some("255.0.0.1"));
        let not = ["10.0.0.1", "web1", "10.0.0.256", "1.2.3.4.5", "08.0.0.1", "0x", "4294967296", "", "1..2", "256.1"];
        // Five parts are never an address, whatever the last (cargo-mutants: `||` to `&&`, `>` to `==`).
        for not in not.into_iter().chain(["1.2.3.4.0", "0.256.1"]) {
            assert_eq!(a(not), None, "{not}");
        }
    }

    #[test]
    fn reserved_ranges_are_checked_by_role() {
        let n = |s: &str| s.parse::<Ipv4Net>().unwrap();
        let kept = Some("network");
        assert!(reserved_problem(&n("172.16.0.0/12"), Role::Cluster, kept).is_none(), "holds docker0: excluded");
        assert!(reserved_problem(&n("172.17.0.0/20"), Role::Cluster, kept).unwrap().starts_with("lies inside"));
        assert!(reserved_problem(&n("172.17.0.0/20"), Role::Cluster, None).is_none(), "docker0 renumbered");
        for role in [Role::Switch, Role::Wireguard] {
            assert!(reserved_problem(&n("172.16.0.0/12"), role, kept).unwrap().starts_with("overlaps `172.17"));
            assert!(reserved_problem(&n("172.16.0.0/12"), role, None).is_none());
            assert!(reserved_problem(&n("127.0.0.0/16"), role, None).unwrap().contains("loopback"));
        }
        assert!(reserved_problem(&n("172.17.0.0/16"), Role::Wireguard, kept).unwrap().contains("WireGuard"));
    }

    #[test]
    fn vxmesh_ranges_meet_each_other_only_as_designed() {
        let n = |s: &str| s.parse::<Ipv4Net>().unwrap();
        let (c, s) = (Some(n("10.0.0.0/8")), Some(n("10.255.0.0/16")));
        assert!(vxmesh_conflict(&n("10.255.0.0/16"), Role::Switch, c, None).is_none(), "inside the cluster");
        assert!(vxmesh_conflict(&n("11.0.0.0/16"), Role::Switch, c, None).unwrap().starts_with("lies outside"));
        assert!(vxmesh_conflict(&n("198.19.0.0/16"), Role::Wireguard, c, s).is_none());
        assert!(vxmesh_conflict(&n("10.9.0.0/16"), Role::Wireguard, c, s).unwrap().contains("cluster.cidr"));
        assert!(vxmesh_conflict(&n("10.255.0.0/24"), Role::Wireguard, None, s).unwrap().contains("switch_cidr"));
        assert!(vxmesh_conflict(&n("0.0.0.0/0"), Role::Cluster, c, s).is_none());
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
