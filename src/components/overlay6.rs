//! The containers' IPv6 side (`cluster.cidr6`), on every data plane alike: sw0's IPv6 address (with the range's
//! prefix, so the whole range is on-link via sw0), each peer's block routed via that peer's sw0 IPv6 address (the
//! same reason as IPv4's routes: see [`super::switch`]), and the ip6tables chains: forwarding inside the range
//! ahead of docker's rules, what leaves the range as `cluster.outside6` says, no NAT inside.

use std::collections::HashSet;

use ipnet::Ipv6Net;
use serde::{Deserialize, Serialize};

use super::core::{Capabilities, Component, Concern, Ctx, Kind, Need, Phase, Piece, Step, need};
use super::rules::{DOCKER_USER, OwnedChain, chain_steps_in, forward_chain, nat_chain, remove_chain_steps_in, tag};
use crate::cmd;
use crate::facts::{FactsError, HostFacts, Iptables, Route, Sections, mark, parse_iptables_save};
use crate::model::inventory::Outside6;
use crate::model::names;
use crate::plan::{Ipv6Spec, NodePlan};
use crate::shell::{Stmt, Word, data, when};

const ADDR: &str = "ip6-switch";
const ROUTES: &str = "ip6-routes";
const RULES: &str = "ip6tables-overlay";
const RA: &str = "ip6-ra";
const STACK: &str = "ip6-stack";

/// The devices whose IPv6 default route comes from router advertisements, each with its `accept_ra`: with
/// forwarding on, the kernel ignores advertisements where it is 1, and the host loses that route when it expires.
const RA_DEVICES: &str = r#"ip -6 route show default proto ra 2>/dev/null | awk '{for (i = 1; i < NF; i++) if ($i == "dev") print $(i + 1)}' | sort -u | while read -r dev; do printf '%s %s\n' "$dev" "$(cat "/proc/sys/net/ipv6/conf/$dev/accept_ra" 2>/dev/null)"; done"#;

/// Sets `accept_ra` to 2 (advertisements taken even when forwarding) where it is 1; 0 (the admin's "none") stays.
const KEEP_RA: &str = r#"ip -6 route show default proto ra 2>/dev/null | awk '{for (i = 1; i < NF; i++) if ($i == "dev") print $(i + 1)}' | sort -u | while read -r dev; do f="/proc/sys/net/ipv6/conf/$dev/accept_ra"; if [ "$(cat "$f" 2>/dev/null)" = 1 ]; then echo 2 > "$f"; fi; done"#;

/// What the host has of the IPv6 side: sw0's global IPv6 addresses, its IPv6 routes, ip6tables' rules.
#[derive(Debug, Clone, Default)]
pub struct Overlay6Facts {
    /// The kernel has no IPv6 at all (booted with `ipv6.disable=1`): nothing of this side can be made.
    pub no_ipv6: bool,
    /// Devices with an advertised default route whose `accept_ra` is 1 (forwarding would make them ignore it).
    pub ra_at_risk: Vec<String>,
    pub addrs: Vec<Ipv6Net>,
    pub routes: Vec<Route>,
    pub ip6tables: Iptables,
}

#[derive(Debug, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    KeepRouterAdvertisements { devices: Vec<String> },
    SwitchAddress6 { dev: String, address: Ipv6Net, stale: Vec<Ipv6Net> },
    Route6 { dev: String, subnet: Ipv6Net, via: std::net::Ipv6Addr, peer: String },
    RemoveRoute6 { dev: String, dst: String, via: String },
}

pub struct Overlay6<'a> {
    pub node: &'a NodePlan,
    pub spec: &'a Ipv6Spec,
}

/// Only what `down` removes when the plan no longer has an IPv6 side: the ip6tables chains (sw0 and its routes
/// go with sw0).
pub struct Remains;

#[derive(Deserialize)]
struct RawLink {
    #[serde(default)]
    addr_info: Vec<RawAddr>,
}

#[derive(Deserialize)]
struct RawAddr {
    family: Option<String>,
    local: Option<String>,
    prefixlen: Option<u8>,
    scope: Option<String>,
}

/// sw0's global IPv6 addresses from `ip -j -6 addr show dev sw0` (empty when sw0 is not there).
fn parse_addrs(body: &str) -> Result<Vec<Ipv6Net>, FactsError> {
    if body.trim().is_empty() {
        return Ok(vec![]);
    }
    let links: Vec<RawLink> = serde_json::from_str(body).map_err(|e| FactsError::new(ADDR, e.to_string()))?;
    Ok(links
        .iter()
        .flat_map(|l| &l.addr_info)
        .filter(|a| a.family.as_deref() == Some("inet6") && a.scope.as_deref() == Some("global"))
        .filter_map(|a| Ipv6Net::new(a.local.as_deref()?.parse().ok()?, a.prefixlen?).ok())
        .collect())
}

fn gather_all() -> Vec<Stmt> {
    let sw = names::SWITCH_BRIDGE;
    vec![
        mark(STACK),
        Stmt::Static("[ -e /proc/net/if_inet6 ] || echo none"),
        mark(RA),
        Stmt::Static(RA_DEVICES),
        mark(ADDR),
        cmd!["ip", "-j", "-6", "addr", "show", "dev", sw].silent_stderr().may_fail().into(),
        mark(ROUTES),
        cmd!["ip", "-j", "-6", "route", "show", "dev", sw].silent_stderr().may_fail().into(),
        mark(RULES),
        when(cmd!["has", "ip6tables-save"], vec![cmd!["ip6tables-save"].silent_stderr().may_fail().into()]),
    ]
}

fn parse_all(s: &Sections, facts: &mut HostFacts) -> Result<(), FactsError> {
    // `ip -j route show dev X` leaves the device out of each route: they are all sw0's.
    let routes = crate::facts::parse_routes(s.get(ROUTES))?
        .into_iter()
        .map(|r| Route { dev: Some(names::SWITCH_BRIDGE.to_string()), ..r })
        .collect();
    let ra_at_risk = s
        .get(RA)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, v)| v.trim() == "1")
        .map(|(d, _)| d.to_string())
        .collect();
    facts.set_part(Overlay6Facts {
        no_ipv6: s.get(STACK).trim() == "none",
        ra_at_risk,
        addrs: parse_addrs(s.get(ADDR))?,
        routes,
        ip6tables: parse_iptables_save(s.get(RULES)),
    });
    Ok(())
}

/// Removes the ip6tables chains, whatever the plan says now.
fn teardown_chains(kind: Kind, facts: &HostFacts) -> Vec<Step> {
    let Some(f) = facts.part::<Overlay6Facts>() else { return vec![] };
    [("nat", names::NAT_CHAIN), ("filter", names::FORWARD_CHAIN)]
        .into_iter()
        .flat_map(|(table, chain)| remove_chain_steps_in(kind, table, chain, &f.ip6tables, true))
        .collect()
}

/// The ip6tables chains: forwarding accepted inside the range (ahead of docker's own rules, from DOCKER-USER when
/// docker manages ip6tables, as docker 27 does by default), the rest of the range's traffic as `outside` says; a NAT
/// chain only to masquerade.
pub fn chains6(spec: &Ipv6Spec, docker_user: Option<bool>) -> Vec<OwnedChain> {
    let t = tag();
    let (cidr, sub) = (spec.cluster, spec.subnet);
    let mut forward = vec![format!("-s {cidr} -d {cidr} {t} -j ACCEPT")];
    match spec.outside {
        Outside6::None => {
            forward.push(format!("-s {cidr} {t} -j DROP"));
            forward.push(format!("-d {cidr} {t} -j DROP"));
        }
        Outside6::Route | Outside6::Masquerade => {
            forward.push(format!("-s {cidr} {t} -j ACCEPT"));
            forward.push(format!("-d {cidr} -m conntrack --ctstate RELATED,ESTABLISHED {t} -j ACCEPT"));
            forward.push(format!("-d {cidr} {t} -j DROP"));
        }
    }
    let mut v = vec![forward_chain(forward, docker_user, true)];
    if spec.outside == Outside6::Masquerade {
        let nat = vec![format!("-s {sub} -d {cidr} {t} -j ACCEPT"), format!("-s {sub} ! -d {cidr} {t} -j MASQUERADE")];
        v.push(nat_chain(nat, true));
    }
    v
}

impl Overlay6<'_> {
    /// Before forwarding is on (the sysctl step, in the same phase, comes first but takes effect only at the next
    /// advertisement), the uplinks keep taking their default route from advertisements. Unknown devices (offline,
    /// the boot script): the script finds them.
    fn router_advertisement_steps(&self, facts: &HostFacts, f: Option<&Overlay6Facts>) -> Vec<Step> {
        let devices = match f {
            Some(f) if f.ra_at_risk.is_empty() => return vec![],
            Some(f) => f.ra_at_risk.clone(),
            None if facts.gathered => return vec![],
            None => vec![],
        };
        let shown = if devices.is_empty() { "the interfaces".to_string() } else { devices.join(", ") };
        vec![Step::new(
            Phase::Host,
            Kind::Overlay6,
            format!("keep taking the IPv6 default route from router advertisements on {shown} (accept_ra 2)"),
            Change::KeepRouterAdvertisements { devices },
            vec![Stmt::Static(KEEP_RA)],
        )]
    }

    fn address_steps(&self, f: Option<&Overlay6Facts>) -> Vec<Step> {
        let br = names::SWITCH_BRIDGE;
        let want = self.spec.switch;
        let have = f.map(|f| f.addrs.as_slice()).unwrap_or_default();
        let stale: Vec<Ipv6Net> = have.iter().filter(|a| **a != want).copied().collect();
        if have.contains(&want) && stale.is_empty() {
            return vec![];
        }
        // A host with IPv6 off by default (`default.disable_ipv6=1`) made sw0 without it.
        let mut cmds: Vec<Stmt> =
            vec![cmd!["sysctl", "-qw", Word::Data(format!("net.ipv6.conf.{br}.disable_ipv6=0"))].into()];
        cmds.extend(
            stale.iter().map(|s| cmd!["ip", "-6", "addr", "del", data(s), "dev", br].silent().may_fail().into()),
        );
        // No duplicate address detection: the address is unique in the cluster by construction, and DAD would
        // keep it unusable for a second after every boot.
        cmds.push(cmd!["ip", "-6", "addr", "replace", data(want), "dev", br, "nodad"].into());
        vec![Step::new(
            Phase::SwitchAddress,
            Kind::Overlay6,
            format!("give {br} the IPv6 address {want}"),
            Change::SwitchAddress6 { dev: br.to_string(), address: want, stale },
            cmds,
        )]
    }

    fn route_steps(&self, f: Option<&Overlay6Facts>) -> Vec<Step> {
        let br = names::SWITCH_BRIDGE;
        let have: Vec<&Route> =
            f.map(|f| f.routes.iter().filter(|r| r.gateway.is_some()).collect()).unwrap_or_default();
        // A set, not a scan per peer: 999 routes against 999 peers on a converged host of a 1,000-node mesh.
        let there_now: HashSet<(&str, &str)> =
            have.iter().filter_map(|r| Some((r.dst.as_str(), r.gateway.as_deref()?))).collect();
        let mut planned = HashSet::new();
        let mut steps = vec![];
        for t in self.node.tunnels() {
            let (Some(subnet), Some(via)) = (t.peer_subnet6, t.peer_switch6) else { continue };
            let (dst, gw) = (subnet.to_string(), via.to_string());
            let there = there_now.contains(&(dst.as_str(), gw.as_str()));
            planned.insert((dst.clone(), gw.clone()));
            if there {
                continue;
            }
            steps.push(
                Step::new(
                    Phase::Devices,
                    Kind::Overlay6,
                    format!("route {dst} ({}) via {gw} on {br}", t.peer),
                    Change::Route6 { dev: br.to_string(), subnet, via, peer: t.peer.to_string() },
                    vec![cmd!["ip", "-6", "route", "replace", data(subnet), "via", data(via), "dev", br].into()],
                )
                .concerning(Concern::Peer(t.peer.clone())),
            );
        }
        for r in have {
            let via = r.gateway.clone().unwrap_or_default();
            if planned.contains(&(r.dst.clone(), via.clone())) {
                continue;
            }
            steps.push(
                Step::new(
                    Phase::Devices,
                    Kind::Overlay6,
                    format!("remove IPv6 route {} via {via} on {br} (no peer's)", r.dst),
                    Change::RemoveRoute6 { dev: br.to_string(), dst: r.dst.clone(), via: via.clone() },
                    vec![
                        cmd!["ip", "-6", "route", "del", Word::Data(r.dst.clone()), "via", Word::Data(via), "dev", br]
                            .silent_stderr()
                            .may_fail()
                            .into(),
                    ],
                )
                .concerning(Concern::Peers),
            );
        }
        steps
    }

    fn chain_steps(&self, facts: &HostFacts, f: Option<&Overlay6Facts>) -> Vec<Step> {
        let empty = Iptables::default();
        let ip6 = f.map_or(&empty, |f| &f.ip6tables);
        let docker_user = facts.gathered.then(|| ip6.chain("filter", DOCKER_USER).is_some());
        let chains = chains6(self.spec, docker_user);
        let masquerades = chains.iter().any(|c| c.table == "nat");
        let mut steps = chain_steps_in(Kind::Overlay6, chains, ip6, Concern::Node);
        if !masquerades {
            steps.extend(remove_chain_steps_in(Kind::Overlay6, "nat", names::NAT_CHAIN, ip6, true));
        }
        steps
    }
}

/// The planned side and what an earlier one left gather, parse and remove the same way.
macro_rules! overlay6_piece {
    ($t:ty) => {
        impl Piece for $t {
            fn kind(&self) -> Kind {
                Kind::Overlay6
            }

            fn gather(&self) -> Vec<Stmt> {
                gather_all()
            }

            fn parse(&self, s: &Sections, facts: &mut HostFacts) -> Result<(), FactsError> {
                parse_all(s, facts)
            }

            fn teardown(&self, facts: &HostFacts) -> Vec<Step> {
                teardown_chains(self.kind(), facts)
            }
        }
    };
}

overlay6_piece!(Overlay6<'_>);
overlay6_piece!(Remains);

impl Component for Overlay6<'_> {
    /// ip6tables comes with iptables (Debian `iptables`, RPM `iptables-nft`); the tool list names the IPv4 ones.
    fn needs(&self, _: &HostFacts) -> Vec<Need> {
        ["iptables-save", "iptables-restore"].map(|t| need(t, "iptables", "iptables-nft")).to_vec()
    }

    fn preflight(&self, facts: &HostFacts) -> Vec<String> {
        match facts.part::<Overlay6Facts>() {
            Some(f) if f.no_ipv6 => vec![format!(
                "this host's kernel has no IPv6 (booted with `ipv6.disable=1`?), but cluster.cidr6 `{}` gives its \
                 containers IPv6; boot it with IPv6, or remove cidr6",
                self.spec.cluster
            )],
            _ => vec![],
        }
    }

    fn diff(&self, facts: &HostFacts, _: &Ctx) -> Vec<Step> {
        let f = facts.part::<Overlay6Facts>();
        let mut steps = self.router_advertisement_steps(facts, f);
        steps.extend(self.address_steps(f));
        steps.extend(self.route_steps(f));
        steps.extend(self.chain_steps(facts, f));
        steps
    }

    fn capabilities(&self) -> Capabilities<'_> {
        Capabilities::NONE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_only_global_addresses_of_sw0() {
        let body = r#"[{"ifindex":5,"ifname":"sw0","addr_info":[{"family":"inet6","local":"fd42:7:1::2","prefixlen":48,"scope":"global"},{"family":"inet6","local":"fe80::76:1","prefixlen":64,"scope":"link"}]}]"#;
        assert_eq!(parse_addrs(body).unwrap(), vec!["fd42:7:1::2/48".parse::<Ipv6Net>().unwrap()]);
        assert!(parse_addrs("").unwrap().is_empty());
        assert!(parse_addrs("not json").is_err());
    }

    /// A kernel without IPv6 is refused before anything is changed, naming the range; routes read back are sw0's.
    #[test]
    fn a_host_without_ipv6_is_refused_in_preflight() {
        let text = "cluster: {cidr: 10.0.0.0/8, cidr6: 'fd42:7:1::/48'}\nnodes: [{name: a, host: 192.0.2.1}, {name: b, host: 192.0.2.2}]\n";
        let inv = crate::model::inventory::parse(std::path::Path::new("t.yaml"), text).unwrap();
        let lock = crate::model::ipam::assign(&inv, None).unwrap();
        let plan = crate::plan::plan(&inv, &lock);
        let node = &plan.nodes[0];
        let c = Overlay6 { node, spec: node.ipv6.as_ref().unwrap() };
        let facts_of = |stack: &str| {
            let out = format!(
                "### vxmesh:ip6-stack\n{stack}### vxmesh:ip6-routes\n[{{\"dst\":\"fd42:7:1:2::/64\",\"gateway\":\"fd42:7:1::2\"}}]\n### vxmesh:end\n"
            );
            let mut f = HostFacts::default();
            c.parse(&Sections::parse(&out).unwrap(), &mut f).unwrap();
            f
        };
        let refused = c.preflight(&facts_of("none\n"));
        assert_eq!(refused.len(), 1);
        assert!(refused[0].contains("no IPv6") && refused[0].contains("fd42:7:1::/48"), "{refused:?}");
        let fine = facts_of("");
        assert!(c.preflight(&fine).is_empty());
        let routes = &fine.part::<Overlay6Facts>().unwrap().routes;
        assert_eq!(routes[0].dev.as_deref(), Some("sw0"));
        // The route to b is there: no step for it.
        assert!(
            c.diff(&fine, &Ctx { mtu: super::super::core::Mtu::Detect })
                .iter()
                .all(|s| !s.description.starts_with("route "))
        );
    }
}
