//! What every data plane does the same way: sw0's address, with the cluster's prefix so the whole cluster
//! routes through it, sw0 up, and each peer's subnet routed via that peer's switch address.
//!
//! Why the routes: without them a host sends to a remote container's own MAC address (the cluster is on-link on
//! sw0), while the container's replies come back routed by its own host, from that host's sw0 MAC. The container's
//! MAC then never reappears as a source on the sender's bridge; once the bridge's entry ages out (300 s) every frame
//! of the flow is flooded to every peer, and TCP keeps the neighbour entry fresh so nothing relearns it (measured:
//! throughput fell by a third, and an uninvolved host received a copy of every frame). Routed via the peers' switch
//! addresses, both directions carry the two switches' MAC addresses, which every frame refreshes.

use ipnet::Ipv4Net;
use serde::Serialize;

use super::core::{Concern, Kind, Phase, Step};
use crate::cmd;
use crate::facts::HostFacts;
use crate::model::addr_text::AddrText;
use crate::model::names::IfName;
use crate::plan::NodePlan;
use crate::shell::{Stmt, Word, data};

#[derive(Debug, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    SwitchAddress {
        dev: IfName,
        address: Ipv4Net,
        stale: Vec<Ipv4Net>,
    },
    LinkUp {
        dev: IfName,
    },
    /// sw0's fixed MAC address (see `plan::switch_mac`).
    SwitchMac {
        dev: IfName,
        mac: String,
    },
    /// `subnet` (of `peer`) routed via the peer's switch address `via`, on `dev`.
    Route {
        dev: IfName,
        subnet: Ipv4Net,
        via: std::net::Ipv4Addr,
        peer: String,
    },
    /// A route via sw0 the host had that is no peer's (as the host printed it).
    RemoveRoute {
        dev: IfName,
        dst: String,
        via: String,
    },
}

/// Each peer's subnet via its switch address; routes via sw0 to anything else go.
pub fn route_steps(component: Kind, node: &NodePlan, facts: &HostFacts) -> Vec<Step> {
    let br = &node.switch.bridge;
    let on_switch: Vec<&crate::facts::Route> =
        facts.routes.iter().filter(|r| r.dev.as_deref() == Some(br.as_str()) && r.gateway.is_some()).collect();
    let mut steps = vec![];
    // Looked up in a set: a converged host of a 1,000-node mesh has 999 routes to check against 999 peers.
    let have: std::collections::HashSet<(&str, &str)> =
        on_switch.iter().filter_map(|r| Some((r.dst.as_str(), r.gateway.as_deref()?))).collect();
    for t in node.tunnels() {
        let (dst, via) = (t.peer_subnet.text(), t.peer_switch.text());
        if have.contains(&(dst.as_str(), via.as_str())) {
            continue;
        }
        steps.push(
            Step::new(
                Phase::Devices,
                component,
                format!("route {dst} ({}) via {via} on {br}", t.peer),
                Change::Route { dev: br.clone(), subnet: t.peer_subnet, via: t.peer_switch, peer: t.peer.to_string() },
                vec![cmd!["ip", "route", "replace", Word::Data(dst), "via", Word::Data(via), "dev", br].into()],
            )
            .concerning(Concern::Peer(t.peer.clone())),
        );
    }
    // Looked up in a set: a host of a 1,000-node mesh has 999 routes on sw0, each checked against 999 peers.
    let planned_routes: std::collections::HashSet<(String, String)> =
        node.tunnels().map(|t| (t.peer_subnet.text(), t.peer_switch.text())).collect();
    for r in on_switch {
        let via = r.gateway.clone().unwrap_or_default();
        let planned = planned_routes.contains(&(r.dst.clone(), via.clone()));
        if !planned {
            steps.push(
                Step::new(
                    Phase::Devices,
                    component,
                    format!("remove route {} via {via} on {br} (no peer's)", r.dst),
                    Change::RemoveRoute { dev: br.clone(), dst: r.dst.clone(), via: via.clone() },
                    vec![
                        cmd!["ip", "route", "del", Word::Data(r.dst.clone()), "via", Word::Data(via), "dev", br]
                            .silent_stderr()
                            .may_fail()
                            .into(),
                    ],
                )
                .concerning(Concern::Peers),
            );
        }
    }
    steps
}

/// sw0's MAC, address and state, for `component`; `set_mac` is how its data plane fixes the bridge's MAC (a
/// Linux bridge takes it from `ip link`, an OVS bridge from its `other-config:hwaddr`, which OVS would otherwise
/// overwrite with a port's).
pub fn address_steps(
    component: Kind,
    node: &NodePlan,
    facts: &HostFacts,
    set_mac: impl Fn(&IfName, &str) -> Stmt,
) -> Vec<Step> {
    let br = &node.switch.bridge;
    let mut steps = vec![];
    let link = facts.links.get(br.as_str());
    let mac = &node.switch.mac;
    if link.and_then(|l| l.mac.as_deref()) != Some(mac.as_str()) {
        steps.push(Step::new(
            Phase::SwitchAddress,
            component,
            format!("give {br} the MAC address {mac}"),
            Change::SwitchMac { dev: br.clone(), mac: mac.clone() },
            // With arp_notify the kernel announces the new MAC (a gratuitous ARP through the tunnels) the moment it
            // changes, so peers holding the old one (a host built before MACs were fixed, or drift) update at once.
            vec![
                cmd!["sysctl", "-qw", Word::Data(format!("net.ipv4.conf.{br}.arp_notify=1"))]
                    .silent()
                    .may_fail()
                    .into(),
                set_mac(br, mac),
            ],
        ));
    }
    let addrs = link.map(|l| l.addrs.clone()).unwrap_or_default();
    let address = node.switch.address;
    let stale: Vec<Ipv4Net> = addrs.iter().filter(|a| **a != address).copied().collect();
    if !addrs.contains(&address) || !stale.is_empty() {
        let mut cmds: Vec<Stmt> =
            stale.iter().map(|s| cmd!["ip", "addr", "del", data(s), "dev", br].silent().may_fail().into()).collect();
        cmds.push(cmd!["ip", "addr", "replace", data(address), "dev", br].into());
        steps.push(Step::new(
            Phase::SwitchAddress,
            component,
            format!("give {br} the address {address}"),
            Change::SwitchAddress { dev: br.clone(), address, stale },
            cmds,
        ));
    }
    if !link.is_some_and(|l| l.up) {
        steps.push(Step::new(
            Phase::SwitchAddress,
            component,
            format!("bring {br} up"),
            Change::LinkUp { dev: br.clone() },
            vec![cmd!["ip", "link", "set", "dev", br, "up"].into()],
        ));
    }
    steps
}
