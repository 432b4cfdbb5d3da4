//! The iptables firewall: chain `VXMESH-VXLAN` from INPUT accepts VXLAN from each peer and drops the rest.

use crate::components::core::{Component, Concern, Ctx, Need, Step, need};
use crate::components::rules::{chain_steps, remove_chain_steps, vxlan_chain};
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
        chain_steps(self.name(), vec![vxlan_chain(self.node)], facts, Concern::Peers)
    }

    fn teardown(&self, facts: &HostFacts) -> Vec<Step> {
        remove_chain_steps(self.name(), "filter", names::VXLAN_CHAIN, facts)
    }
}
