//! The path between each ordered pair of hosts across sites (private, public, or through a relay) and which end
//! must start the conversation: pure, computed on the laptop from each host's site and public address.
//!
//! Same site: the underlay address, both ways (no hairpin NAT: a site peer cannot use the public address). Other
//! site: the peer's `public_ip`. A peer without one, outside the caller's site, is behind NAT: nobody can start a
//! conversation with it, so it starts (WireGuard keepalive) and its peers answer where its packets came from. Two
//! such peers in different sites reach each other through a relay, a host with a `public_ip`.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;

/// What the choice of a path needs of a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub name: Arc<str>,
    pub site: Arc<str>,
    /// IPv4 or IPv6: validation makes every pair's ends one family ([`crate::model::inventory`]).
    pub underlay_ip: IpAddr,
    /// Where hosts in other sites reach it; `None`: it is behind NAT for them.
    pub public_ip: Option<IpAddr>,
}

/// How one host's packets reach another.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Path {
    /// Same site: between underlay addresses.
    Private,
    /// Other sites: to the peer's public address, or back to where a NATed peer's packets come from.
    Public,
    /// Both ends behind NAT in different sites: through this host's WireGuard.
    Relay { via: Arc<str> },
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Private => f.write_str("private"),
            Path::Public => f.write_str("public"),
            Path::Relay { via } => write!(f, "relay via {via}"),
        }
    }
}

/// One ordered pair's path, as `plan` (and `verify`) show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PairPath {
    pub from: Arc<str>,
    pub to: Arc<str>,
    pub path: Path,
    /// The one end that must start the conversation (it is behind NAT for the other); `None` when either may.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starts: Option<Arc<str>>,
}

impl fmt::Display for PairPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}  {}", self.from, self.to, self.path)?;
        match &self.starts {
            Some(s) => write!(f, " ({s} starts)"),
            None => Ok(()),
        }
    }
}

/// Why a fleet cannot be planned as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Without encryption, `host` (index) is behind NAT for the hosts in `from` (the first few, by index) and
    /// `more` others: plain VXLAN cannot open a NAT mapping.
    Unreachable { host: usize, from: Vec<usize>, more: usize },
    /// Two hosts behind NAT in different sites, and no relay: `pairs` such pairs, `example` the first.
    NoRelay { example: (usize, usize), pairs: usize },
}

/// How many peers a problem names before it says "and N more".
pub const NAMED: usize = 5;

/// Every host's endpoint and the relays, indexed once: each pair's answer is then O(1). Owned, so a plan can keep
/// it for the questions it asks per pair later.
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    hosts: Vec<Endpoint>,
    /// Indices of the hosts that may relay, in the order given.
    relays: Vec<usize>,
    relay_names: Vec<Arc<str>>,
    /// Whether any two hosts are in different sites: a flat fleet needs none of this.
    sites: bool,
    index: HashMap<Arc<str>, usize>,
}

impl Fleet {
    /// `relays`: the names listed in `cluster.wireguard.relays` (each a host with a `public_ip`; others are
    /// ignored here, validation refuses them), or `None` for the default: the first host with a `public_ip`.
    pub fn new(hosts: Vec<Endpoint>, relays: Option<&[String]>) -> Fleet {
        let index: HashMap<Arc<str>, usize> = hosts.iter().enumerate().map(|(i, h)| (h.name.clone(), i)).collect();
        let relays: Vec<usize> = match relays {
            Some(list) => list
                .iter()
                .filter_map(|r| index.get(r.as_str()).copied())
                .filter(|i| hosts[*i].public_ip.is_some())
                .collect(),
            None => hosts.iter().position(|h| h.public_ip.is_some()).into_iter().collect(),
        };
        let relay_names = relays.iter().map(|i| hosts[*i].name.clone()).collect();
        let sites = hosts.windows(2).any(|w| w[0].site != w[1].site);
        Fleet { hosts, relays, relay_names, sites, index }
    }

    pub fn hosts(&self) -> &[Endpoint] {
        &self.hosts
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// The ordered pair's path and who starts, by index.
    pub fn pair(&self, from: usize, to: usize) -> PairPath {
        let name = |i: usize| self.hosts[i].name.clone();
        let starts = match (self.initiates(from, to), self.initiates(to, from)) {
            (true, false) => Some(name(from)),
            (false, true) => Some(name(to)),
            _ => None,
        };
        PairPath { from: name(from), to: name(to), path: self.path(from, to), starts }
    }

    /// The ordered pair's path, by names (`None` for a name not in the fleet): what `verify` shows per pair.
    pub fn between(&self, from: &str, to: &str) -> Option<PairPath> {
        Some(self.pair(self.index(from)?, self.index(to)?))
    }

    /// Every ordered pair's path, in inventory order; empty for a flat fleet (every pair private, as before).
    pub fn table(&self) -> Vec<PairPath> {
        if !self.sites {
            return vec![];
        }
        let n = self.hosts.len();
        (0..n)
            .flat_map(|a| (0..n).filter(move |b| *b != a).map(move |b| (a, b)))
            .map(|(a, b)| self.pair(a, b))
            .collect()
    }

    /// Whether every host is in one site: every pair private, as before sites existed.
    pub fn is_flat(&self) -> bool {
        !self.sites
    }

    /// The relays in use, by index.
    pub fn relays(&self) -> &[usize] {
        &self.relays
    }

    /// Whether `to` cannot be reached by `from` at all: another site, and no public address.
    pub fn behind_nat(&self, from: usize, to: usize) -> bool {
        let (a, b) = (&self.hosts[from], &self.hosts[to]);
        a.site != b.site && b.public_ip.is_none()
    }

    /// Whether `host` is behind NAT for some other host.
    pub fn is_natted(&self, host: usize) -> bool {
        self.sites && self.hosts[host].public_ip.is_none()
    }

    /// Where `from` sends packets for `to` directly, which is also where `to`'s packets come from (1:1 NAT maps
    /// both ways): its underlay address in the same site, its public address across sites; `None` when `to` is
    /// behind NAT for `from` (`from` answers where `to`'s packets came from, a router's address).
    pub fn address(&self, from: usize, to: usize) -> Option<IpAddr> {
        let (a, b) = (&self.hosts[from], &self.hosts[to]);
        if a.site == b.site { Some(b.underlay_ip) } else { b.public_ip }
    }

    /// The path from `from` to `to`. Symmetric: the same both ways.
    pub fn path(&self, from: usize, to: usize) -> Path {
        match self.relay(from, to) {
            Some(r) => Path::Relay { via: self.relay_names[r].clone() },
            None if self.hosts[from].site == self.hosts[to].site => Path::Private,
            None => Path::Public,
        }
    }

    /// Whether the pair needs a relay: behind NAT for each other.
    pub fn needs_relay(&self, a: usize, b: usize) -> bool {
        self.behind_nat(a, b) && self.behind_nat(b, a)
    }

    /// The position in [`Fleet::relays`] of the pair's relay, when it needs one and there is one. The same for
    /// both orders; spread over the relays by the two names, so a pair keeps its relay while the list stays.
    fn relay(&self, a: usize, b: usize) -> Option<usize> {
        if !self.needs_relay(a, b) || self.relays.is_empty() {
            return None;
        }
        let (x, y) = (&*self.hosts[a].name, &*self.hosts[b].name);
        let (lo, hi) = if x <= y { (x, y) } else { (y, x) };
        let hash = fnv1a(lo.as_bytes().iter().chain([&0u8]).chain(hi.as_bytes()));
        Some((hash % self.relays.len() as u64) as usize)
    }

    /// The host (index) relaying between `a` and `b`, if they need one.
    pub fn relay_of(&self, a: usize, b: usize) -> Option<usize> {
        self.relay(a, b).map(|r| self.relays[r])
    }

    /// The hosts whose packets from and to `from` go through `relay`: their WireGuard addresses join `from`'s
    /// peer entry for the relay. Empty unless `from` is behind NAT and `relay` relays for it.
    pub fn relayed_via(&self, from: usize, relay: usize) -> impl Iterator<Item = usize> + '_ {
        // Asked for every peer of every node: O(1) unless `from` is NATed and `relay` relays.
        let n = if self.is_natted(from) && self.relays.contains(&relay) { self.hosts.len() } else { 0 };
        (0..n).filter(move |k| self.relay_of(from, *k) == Some(relay))
    }

    /// The ordered pairs `host` relays for (its forwarding allows exactly these); empty for a host that relays
    /// for nobody.
    pub fn relayed_by(&self, host: usize) -> Vec<(usize, usize)> {
        if !self.relays.contains(&host) {
            return vec![];
        }
        let natted: Vec<usize> = (0..self.hosts.len()).filter(|i| self.is_natted(*i)).collect();
        natted
            .iter()
            .flat_map(|&a| natted.iter().map(move |&b| (a, b)))
            .filter(|&(a, b)| a != b && self.relay_of(a, b) == Some(host))
            .collect()
    }

    /// Whether `from` must start the conversation with `to` and keep it open (WireGuard's persistent
    /// keepalive): `from` is behind NAT for `to`. Through a relay, both ends start towards the relay.
    pub fn initiates(&self, from: usize, to: usize) -> bool {
        self.behind_nat(to, from)
    }

    /// Why this fleet cannot be planned; empty when every pair has a path. `encrypted`: WireGuard carries the
    /// tunnels (a NATed host can start them; without it, nothing can reach it).
    pub fn problems(&self, encrypted: bool) -> Vec<Problem> {
        if !self.sites {
            return vec![];
        }
        let natted: Vec<usize> = (0..self.hosts.len()).filter(|i| self.is_natted(*i)).collect();
        if !encrypted {
            return natted
                .iter()
                .map(|&h| {
                    let mut from = (0..self.hosts.len()).filter(|&p| self.behind_nat(p, h));
                    let named: Vec<usize> = from.by_ref().take(NAMED).collect();
                    Problem::Unreachable { host: h, from: named, more: from.count() }
                })
                .collect();
        }
        if !self.relays.is_empty() {
            return vec![];
        }
        let mut pairs = 0;
        let mut example = None;
        for (k, &a) in natted.iter().enumerate() {
            for &b in &natted[k + 1..] {
                if self.needs_relay(a, b) {
                    pairs += 1;
                    example.get_or_insert((a, b));
                }
            }
        }
        example.map(|example| vec![Problem::NoRelay { example, pairs }]).unwrap_or_default()
    }
}

fn fnv1a<'b>(bytes: impl Iterator<Item = &'b u8>) -> u64 {
    bytes.fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn ep(name: &str, site: &str, underlay: u8, public: Option<u8>) -> Endpoint {
        Endpoint {
            name: name.into(),
            site: site.into(),
            underlay_ip: Ipv4Addr::new(10, 0, 0, underlay).into(),
            public_ip: public.map(|p| Ipv4Addr::new(203, 0, 113, p).into()),
        }
    }

    /// The issue's fleet: dc1 (two hosts, 1:1 NAT), dc2 (one, 1:1 NAT), two homes behind masquerade.
    fn issue_fleet() -> Vec<Endpoint> {
        vec![
            ep("a1", "dc1", 1, Some(1)),
            ep("a2", "dc1", 2, Some(2)),
            ep("b1", "dc2", 3, Some(3)),
            ep("h1", "home1", 4, None),
            ep("h2", "home2", 5, None),
        ]
    }

    #[test]
    fn a_flat_fleet_is_private_everywhere_and_needs_nothing() {
        let hosts = vec![ep("a", "default", 1, None), ep("b", "default", 2, None), ep("c", "default", 3, None)];
        let f = Fleet::new(hosts, None);
        assert!(f.is_flat());
        for a in 0..3 {
            for b in (0..3).filter(|b| *b != a) {
                assert_eq!(f.path(a, b), Path::Private);
                assert_eq!(f.address(a, b), Some(Ipv4Addr::new(10, 0, 0, b as u8 + 1).into()));
                assert!(!f.initiates(a, b) && !f.is_natted(a));
            }
        }
        assert!(f.problems(false).is_empty());
        assert!(f.table().is_empty(), "no table: plans as before sites existed");
    }

    #[test]
    fn the_issue_fleet_has_each_kind_of_path() {
        let f = Fleet::new(issue_fleet(), None);
        assert_eq!(f.path(0, 1), Path::Private);
        assert_eq!(f.address(0, 1), Some(Ipv4Addr::new(10, 0, 0, 2).into()), "site peers use the underlay");
        assert_eq!(f.path(0, 2), Path::Public);
        assert_eq!(f.address(0, 2), Some(Ipv4Addr::new(203, 0, 113, 3).into()));
        assert_eq!(f.path(3, 0), Path::Public);
        assert_eq!(f.address(0, 3), None, "h1 is behind NAT: a1 answers where its packets come from");
        assert!(f.initiates(3, 0) && !f.initiates(0, 3));
        assert_eq!(f.path(3, 4), Path::Relay { via: "a1".into() }, "the default relay: the first public host");
        assert_eq!(f.path(3, 4).to_string(), "relay via a1");
        assert!(f.problems(true).is_empty());
        assert_eq!(f.between("a1", "h1").unwrap().to_string(), "a1 -> h1  public (h1 starts)");
        assert_eq!(f.between("h2", "h1").unwrap().to_string(), "h2 -> h1  relay via a1", "both start, to the relay");
        assert_eq!(f.between("a2", "a1").unwrap().to_string(), "a2 -> a1  private");
        assert_eq!(f.between("a1", "nobody"), None);
        assert_eq!(f.table().len(), 20);
        assert_eq!(f.relayed_by(0), vec![(3, 4), (4, 3)], "a1 forwards between h1 and h2, both ways");
        assert!(f.relayed_by(1).is_empty() && f.relayed_by(3).is_empty());
        assert_eq!(f.relayed_via(3, 0).collect::<Vec<_>>(), vec![4], "h1 reaches h2 through a1");
        assert_eq!(f.relayed_via(3, 1).count(), 0, "a2 relays nothing");
        assert_eq!(f.relayed_via(0, 1).count(), 0, "a public host needs no relay");
    }

    #[test]
    fn without_encryption_each_natted_host_is_named_with_who_cannot_reach_it() {
        let f = Fleet::new(issue_fleet(), None);
        assert_eq!(
            f.problems(false),
            vec![
                Problem::Unreachable { host: 3, from: vec![0, 1, 2, 4], more: 0 },
                Problem::Unreachable { host: 4, from: vec![0, 1, 2, 3], more: 0 },
            ]
        );
    }

    #[test]
    fn two_natted_sites_without_any_public_host_have_no_path() {
        let f = Fleet::new(vec![ep("h1", "home1", 1, None), ep("h2", "home2", 2, None)], None);
        assert_eq!(f.problems(true), vec![Problem::NoRelay { example: (0, 1), pairs: 1 }]);
        let listed = Fleet::new(issue_fleet(), Some(&[]));
        assert_eq!(listed.problems(true), vec![Problem::NoRelay { example: (3, 4), pairs: 1 }], "an empty list");
    }

    #[test]
    fn listed_relays_share_the_pairs_and_each_pair_keeps_one() {
        let mut hosts = issue_fleet();
        hosts.extend([ep("h3", "home3", 6, None), ep("h4", "home4", 7, None), ep("h5", "home5", 8, None)]);
        let relays = ["b1".to_string(), "a2".to_string()];
        let f = Fleet::new(hosts, Some(&relays));
        let used: std::collections::BTreeSet<String> = (3..8)
            .flat_map(|a| (3..8).filter(move |b| *b != a).map(move |b| (a, b)))
            .map(|(a, b)| f.path(a, b).to_string())
            .collect();
        assert_eq!(used, ["relay via a2", "relay via b1"].map(String::from).into(), "both relays carry pairs");
    }

    fn fleets() -> impl Strategy<Value = (Vec<(u8, bool)>, Option<Vec<usize>>, bool)> {
        (
            prop::collection::vec((0u8..4, any::<bool>()), 1..9),
            prop::option::of(prop::collection::vec(0usize..9, 0..3)),
            any::<bool>(),
        )
    }

    proptest! {
        /// Every pair has a path or the fleet is refused; paths are symmetric; a relay is a third host with a
        /// public address; someone can always start a pair's conversation.
        #[test]
        fn every_pair_has_a_path_or_the_fleet_is_refused((shape, relays, encrypted) in fleets()) {
            let names: Vec<String> = (0..shape.len()).map(|i| format!("n{i}")).collect();
            let sites: Vec<String> = shape.iter().map(|(s, _)| format!("s{s}")).collect();
            let hosts: Vec<Endpoint> = shape
                .iter()
                .enumerate()
                .map(|(i, (_, public))| Endpoint {
                    name: names[i].as_str().into(),
                    site: sites[i].as_str().into(),
                    underlay_ip: Ipv4Addr::new(10, 0, 0, i as u8 + 1).into(),
                    public_ip: public.then(|| Ipv4Addr::new(203, 0, 113, i as u8 + 1).into()),
                })
                .collect();
            let relay_names: Option<Vec<String>> =
                relays.map(|r| r.into_iter().filter(|i| *i < names.len()).map(|i| names[i].clone()).collect());
            let f = Fleet::new(hosts.clone(), relay_names.as_deref());
            let refused = !f.problems(encrypted).is_empty();
            for a in 0..hosts.len() {
                for b in (0..hosts.len()).filter(|b| *b != a) {
                    let path = f.path(a, b);
                    prop_assert_eq!(&path, &f.path(b, a));
                    prop_assert!(f.address(a, b).is_some() || f.address(b, a).is_some() || path != Path::Public || refused);
                    if f.needs_relay(a, b) {
                        match f.relay_of(a, b) {
                            Some(r) => {
                                prop_assert!(r != a && r != b, "a relay never relays for itself");
                                prop_assert!(hosts[r].public_ip.is_some());
                                prop_assert_eq!(path, Path::Relay { via: names[r].as_str().into() });
                            }
                            None => prop_assert!(refused, "{a}-{b} has no relay, yet the fleet is accepted"),
                        }
                    } else {
                        prop_assert!(f.address(a, b).is_some() || f.initiates(b, a));
                        prop_assert!(f.address(a, b).is_some() || encrypted || refused, "plain VXLAN to a NATed host");
                    }
                    if hosts[a].site == hosts[b].site {
                        prop_assert_eq!(f.path(a, b), Path::Private);
                    }
                }
            }
        }
    }
}
