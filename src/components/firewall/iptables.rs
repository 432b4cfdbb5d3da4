//! The iptables firewall: chain `VXMESH-VXLAN` from INPUT accepts VXLAN from each peer and drops the rest; with
//! encryption, `VXMESH-WG` does the same for WireGuard's port, and VXLAN is accepted only through its interface.

use crate::components::core::{Component, Concern, Ctx, Need, Step, need};
use crate::components::rules::{chain_steps, remove_chain_steps, vxlan_chain, wireguard_chain};
use crate::facts::HostFacts;
use crate::model::names;
use crate::plan::NodePlan;

pub struct IptablesFirewall<'a> {
    pub node: &'a NodePlan,
}

impl Component for IptablesFirewall<'_> {
    fn name(&self) -> &'static str {
        "iptables"
    }

    fn needs(&self, _: &HostFacts) -> Vec<Need> {
        ["iptables", "iptables-save", "iptables-restore"].map(|t| need(t, "iptables", "iptables-nft")).to_vec()
    }

    fn diff(&self, facts: &HostFacts, _: &Ctx) -> Vec<Step> {
        let chains = std::iter::once(vxlan_chain(self.node)).chain(wireguard_chain(self.node)).collect();
        chain_steps(self.name(), chains, facts, Concern::Peers)
    }

    fn teardown(&self, facts: &HostFacts) -> Vec<Step> {
        [names::VXLAN_CHAIN, names::WIREGUARD_CHAIN]
            .into_iter()
            .flat_map(|chain| remove_chain_steps(self.name(), "filter", chain, facts))
            .collect()
    }
}
