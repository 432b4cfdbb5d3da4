//! The iptables firewall: chain `VXMESH-VXLAN` from INPUT accepts VXLAN from each peer and drops the rest; with
//! encryption, `VXMESH-WG` does the same for WireGuard's port, and VXLAN is accepted only through its interface.

use crate::components::core::{Capabilities, Component, Concern, Ctx, Kind, Need, Piece, Step, need};
use crate::components::rules::{chain_steps, remove_chain_steps, vxlan_chain, wireguard_chain};
use crate::facts::{FactsError, HostFacts, Sections};
use crate::model::inventory::FirewallKind;
use crate::model::names;
use crate::plan::NodePlan;
use crate::shell::Stmt;

pub struct IptablesFirewall<'a> {
    pub node: &'a NodePlan,
}

/// The shared facts hold `iptables-save`'s output: nothing of its own to gather.
impl Piece for IptablesFirewall<'_> {
    fn kind(&self) -> Kind {
        Kind::Firewall(FirewallKind::Iptables)
    }

    fn gather(&self) -> Vec<Stmt> {
        vec![]
    }

    fn parse(&self, _: &Sections, _: &mut HostFacts) -> Result<(), FactsError> {
        Ok(())
    }

    fn teardown(&self, facts: &HostFacts) -> Vec<Step> {
        [names::VXLAN_CHAIN, names::WIREGUARD_CHAIN]
            .into_iter()
            .flat_map(|chain| remove_chain_steps(self.kind(), "filter", chain, facts))
            .collect()
    }
}

impl Component for IptablesFirewall<'_> {
    fn needs(&self, _: &HostFacts) -> Vec<Need> {
        ["iptables", "iptables-save", "iptables-restore"].map(|t| need(t, "iptables", "iptables-nft")).to_vec()
    }

    fn diff(&self, facts: &HostFacts, _: &Ctx) -> Vec<Step> {
        let chains = std::iter::once(vxlan_chain(self.node)).chain(wireguard_chain(self.node)).collect();
        chain_steps(self.kind(), chains, facts, Concern::Peers)
    }

    /// Its chains are IPv4 (`iptables`): on an IPv6 underlay they would filter no tunnel packet at all, and the
    /// kernel backend's VXLAN device would take frames from anyone. Refused until they have ip6tables twins.
    fn preflight(&self, _: &HostFacts) -> Vec<String> {
        if !self.node.underlay_is_ipv6() {
            return vec![];
        }
        vec![format!(
            "the iptables firewall writes IPv4 rules only, and the underlay of {} is IPv6 ({}): they would let \
             tunnel packets from anyone in; set `cluster.firewall: nftables` (its `inet` table filters IPv6)",
            self.node.name, self.node.underlay
        )]
    }

    fn capabilities(&self) -> Capabilities<'_> {
        Capabilities::NONE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preflight_of(hosts: [&str; 2]) -> Vec<String> {
        let text = format!(
            "cluster: {{cidr: 10.0.0.0/8, backend: linux}}\nnodes: [{{name: a, host: \"{}\"}}, {{name: b, host: \"{}\"}}]\n",
            hosts[0], hosts[1]
        );
        let inv = crate::model::inventory::parse(std::path::Path::new("t.yaml"), &text).unwrap();
        let lock = crate::model::ipam::assign(&inv, None).unwrap();
        let plan = crate::plan::plan(&inv, &lock);
        IptablesFirewall { node: &plan.nodes[0] }.preflight(&HostFacts::default())
    }

    /// `firewall: auto` picks iptables on the host: there it must refuse an IPv6 underlay its IPv4 rules leave open.
    #[test]
    fn refuses_an_ipv6_underlay_its_rules_would_leave_open() {
        assert_eq!(preflight_of(["192.0.2.1", "192.0.2.2"]), Vec::<String>::new());
        let problems = preflight_of(["fd78::1", "fd78::2"]);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("underlay of a is IPv6 (fd78::1)"), "{problems:?}");
        assert!(problems[0].contains("`cluster.firewall: nftables`"), "{problems:?}");
    }
}
