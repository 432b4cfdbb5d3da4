//! Labs across sites: each site its own network behind a router namespace doing 1:1 NAT or masquerade onto a
//! shared WAN, and a separate management network for SSH, as clouds have. `--sites dc1:2,dc2:1@mtu1400,home:1@nat`.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::sys::{lab_err, run};
use crate::error::Result;

/// How a site's router connects it to the WAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Nat {
    /// Each host gets a public address of its own, mapped both ways (a cloud's elastic IPs).
    OneToOne,
    /// Hosts share the router's address; nothing can reach them from outside (an office, a home).
    Masquerade,
}

/// One `NAME:COUNT[@nat][@mtuN]` of `--sites`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteSpec {
    pub name: String,
    pub hosts: usize,
    pub nat: Nat,
    /// The MTU of the site's links (hosts' underlay, the router's LAN side); 1500 unless given.
    pub mtu: u16,
}

pub const DEFAULT_MTU: u16 = 1500;
/// Sites a lab may have: each has a /24 and a router address on the WAN.
pub const MAX_SITES: usize = 9;
/// Hosts a lab with sites may have: their public addresses are .101 and up on the WAN's /24.
pub const MAX_HOSTS: usize = 150;

/// Parses `--sites`: comma-separated `NAME:COUNT`, each optionally followed by `@nat` (masquerade instead of 1:1
/// NAT) and `@mtuN` (the site's link MTU, 576..=9000).
pub fn parse(text: &str) -> Result<Vec<SiteSpec>> {
    let bad = |item: &str, why: &str| {
        lab_err(format!(
            "--sites: `{item}` {why}; expected NAME:COUNT[@nat][@mtuN], e.g. dc1:2,dc2:1@mtu1400,home:1@nat"
        ))
    };
    let mut sites: Vec<SiteSpec> = vec![];
    for item in text.split(',').map(str::trim) {
        let mut parts = item.split('@');
        let head = parts.next().unwrap_or_default();
        let (name, count) = head.split_once(':').ok_or_else(|| bad(item, "has no `:COUNT`"))?;
        let named = !name.is_empty()
            && name.len() <= 12
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && name.starts_with(|c: char| c.is_ascii_lowercase());
        if !named {
            return Err(bad(item, "needs a name of 1 to 12 lowercase letters or digits, starting with a letter"));
        }
        let hosts: usize =
            count.parse().ok().filter(|n| *n >= 1).ok_or_else(|| bad(item, "needs a count of 1 or more"))?;
        let mut site = SiteSpec { name: name.to_string(), hosts, nat: Nat::OneToOne, mtu: DEFAULT_MTU };
        for opt in parts {
            match opt {
                "nat" => site.nat = Nat::Masquerade,
                o if o.starts_with("mtu") => {
                    site.mtu = o[3..]
                        .parse()
                        .ok()
                        .filter(|m| (576..=9000).contains(m))
                        .ok_or_else(|| bad(item, "has an MTU outside 576..=9000"))?;
                }
                _ => return Err(bad(item, &format!("has the unknown option `@{opt}`"))),
            }
        }
        if sites.iter().any(|s| s.name == site.name) {
            return Err(bad(item, "names a site twice"));
        }
        sites.push(site);
    }
    if sites.len() > MAX_SITES {
        return Err(lab_err(format!("--sites: {} sites; a lab has at most {MAX_SITES}", sites.len())));
    }
    Ok(sites)
}

/// The WAN every router sits on: TEST-NET-2, which no real network routes.
pub const WAN: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(198, 51, 100, 0), 24);

/// A site as built: its network, its router, and where its hosts are.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabSite {
    pub spec: SiteSpec,
    /// The site's bridge on the machine (its LAN).
    pub bridge: String,
    pub subnet: Ipv4Net,
    /// The router's namespace; its `lan` is the site's gateway, its `wan` on the WAN bridge.
    pub router: String,
    pub lan_ip: Ipv4Addr,
    pub wan_ip: Ipv4Addr,
}

/// Where one host sits in its site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteLink {
    pub site: String,
    /// The machine-side end of the host's second NIC (`eth1`), in the site's bridge.
    pub veth: String,
    /// Its address on the site's network: the tunnel endpoint within the site.
    pub underlay: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    pub mtu: u16,
    /// Its 1:1 NAT address on the WAN; none behind masquerade.
    pub public_ip: Option<Ipv4Addr>,
}

/// Site `k` (1-based): its /24, router addresses and names.
pub fn site(lab: &str, k: usize, spec: &SiteSpec) -> LabSite {
    let subnet = Ipv4Net::new(Ipv4Addr::new(10, 77, k as u8, 0), 24).expect("valid");
    LabSite {
        spec: spec.clone(),
        bridge: format!("vxl{lab}s{k}"),
        subnet,
        router: format!("vxlab-{lab}-r{k}"),
        lan_ip: Ipv4Addr::new(10, 77, k as u8, 1),
        wan_ip: Ipv4Addr::new(198, 51, 100, k as u8),
    }
}

/// Host `i` (the lab's node number) as the `j`th host of site `s`.
pub fn link(lab: &str, i: usize, s: &LabSite) -> SiteLink {
    SiteLink {
        site: s.spec.name.clone(),
        veth: format!("vxl{lab}e{i}"),
        underlay: Ipv4Addr::new(10, 77, s.subnet.network().octets()[2], 10 + i as u8),
        prefix: s.subnet.prefix_len(),
        gateway: s.lan_ip,
        mtu: s.spec.mtu,
        public_ip: (s.spec.nat == Nat::OneToOne).then(|| Ipv4Addr::new(198, 51, 100, 100 + i as u8)),
    }
}

/// The WAN bridge's name.
pub fn wan_bridge(lab: &str) -> String {
    format!("vxl{lab}wan")
}

/// The WAN bridge: no address on the machine, so nothing on it is routed to or from the machine.
pub fn build_wan(lab: &str) -> Result<()> {
    let br = wan_bridge(lab);
    run("ip", &["link", "add", &br, "type", "bridge"])?;
    run("ip", &["link", "set", &br, "up"])?;
    Ok(())
}

/// The site's bridge and router: LAN and WAN legs, forwarding, and its NAT rules for `hosts`.
pub fn build_site(lab: &str, k: usize, s: &LabSite, hosts: &[SiteLink]) -> Result<()> {
    let mtu = s.spec.mtu.to_string();
    run("ip", &["link", "add", &s.bridge, "type", "bridge"])?;
    run("ip", &["link", "set", &s.bridge, "mtu", &mtu, "up"])?;
    run("ip", &["netns", "add", &s.router])?;
    let r = |args: &[&str]| run("ip", &[&["-n", s.router.as_str()][..], args].concat());
    let (lan, wan) = (format!("vxl{lab}l{k}"), format!("vxl{lab}w{k}"));
    run("ip", &["link", "add", &lan, "mtu", &mtu, "type", "veth", "peer", "name", "lan", "netns", &s.router])?;
    run("ip", &["link", "set", &lan, "master", &s.bridge, "up"])?;
    run("ip", &["link", "add", &wan, "type", "veth", "peer", "name", "wan", "netns", &s.router])?;
    run("ip", &["link", "set", &wan, "master", &wan_bridge(lab), "up"])?;
    r(&["link", "set", "lan", "mtu", &mtu])?;
    r(&["addr", "add", &format!("{}/{}", s.lan_ip, s.subnet.prefix_len()), "dev", "lan"])?;
    r(&["addr", "add", &format!("{}/{}", s.wan_ip, WAN.prefix_len()), "dev", "wan"])?;
    for h in hosts {
        if let Some(p) = h.public_ip {
            // The router answers ARP on the WAN for each host's public address.
            r(&["addr", "add", &format!("{p}/32"), "dev", "wan"])?;
        }
    }
    for dev in ["lo", "lan", "wan"] {
        r(&["link", "set", dev, "up"])?;
    }
    let ns = |args: &[&str]| run("ip", &[&["netns", "exec", s.router.as_str()][..], args].concat());
    ns(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
    for rule in nat_rules(s, hosts) {
        let args: Vec<&str> = rule.iter().map(String::as_str).collect();
        ns(&[&["iptables", "-w", "-t", "nat", "-A"][..], &args].concat())?;
    }
    Ok(())
}

/// The router's NAT: per host DNAT in and SNAT out (1:1), or one masquerade for the whole site.
pub fn nat_rules(s: &LabSite, hosts: &[SiteLink]) -> Vec<Vec<String>> {
    let v = |a: &[&str]| a.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    match s.spec.nat {
        Nat::Masquerade => vec![v(&["POSTROUTING", "-o", "wan", "-s", &s.subnet.to_string(), "-j", "MASQUERADE"])],
        Nat::OneToOne => hosts
            .iter()
            .filter_map(|h| Some((h.underlay.to_string(), h.public_ip?.to_string())))
            .flat_map(|(private, public)| {
                [
                    v(&["PREROUTING", "-i", "wan", "-d", &public, "-j", "DNAT", "--to-destination", &private]),
                    v(&["POSTROUTING", "-o", "wan", "-s", &private, "-j", "SNAT", "--to-source", &public]),
                ]
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_issue_fleet_and_names_what_is_wrong() {
        let s = parse("dc1:2,dc2:1@mtu1400,home1:1@nat,home2:1@nat").unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(s[0], SiteSpec { name: "dc1".into(), hosts: 2, nat: Nat::OneToOne, mtu: 1500 });
        assert_eq!((s[1].mtu, s[1].nat), (1400, Nat::OneToOne));
        assert_eq!((s[2].nat, s[3].hosts), (Nat::Masquerade, 1));
        assert_eq!(
            parse("a:1@nat@mtu1280").unwrap()[0],
            SiteSpec { name: "a".into(), hosts: 1, nat: Nat::Masquerade, mtu: 1280 }
        );
        for (bad, why) in [
            ("dc1", "has no `:COUNT`"),
            ("dc1:0", "count of 1 or more"),
            ("DC:1", "lowercase"),
            ("a:1@mtu99", "MTU outside"),
            ("a:1@fast", "unknown option `@fast`"),
            ("a:1,a:2", "names a site twice"),
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn one_to_one_maps_each_host_both_ways_and_masquerade_hides_the_site() {
        let dc = site("t", 1, &SiteSpec { name: "dc".into(), hosts: 2, nat: Nat::OneToOne, mtu: 1500 });
        let hosts = [link("t", 1, &dc), link("t", 2, &dc)];
        assert_eq!(hosts[1].underlay, Ipv4Addr::new(10, 77, 1, 12));
        assert_eq!(hosts[1].public_ip, Some(Ipv4Addr::new(198, 51, 100, 102)));
        let rules = nat_rules(&dc, &hosts);
        assert_eq!(rules.len(), 4);
        assert_eq!(rules[0].join(" "), "PREROUTING -i wan -d 198.51.100.101 -j DNAT --to-destination 10.77.1.11");
        assert_eq!(rules[1].join(" "), "POSTROUTING -o wan -s 10.77.1.11 -j SNAT --to-source 198.51.100.101");
        let home = site("t", 3, &SiteSpec { name: "home".into(), hosts: 1, nat: Nat::Masquerade, mtu: 1500 });
        let h = link("t", 4, &home);
        assert_eq!(h.public_ip, None);
        assert_eq!(
            nat_rules(&home, &[h]),
            vec!["POSTROUTING -o wan -s 10.77.3.0/24 -j MASQUERADE".split(' ').map(String::from).collect::<Vec<_>>()]
        );
    }
}
