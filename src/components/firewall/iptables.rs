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

    fn preflight(&self, _: &HostFacts) -> Vec<String> {
        vec![]
    }

    fn capabilities(&self) -> Capabilities<'_> {
        Capabilities::NONE
    }
}
