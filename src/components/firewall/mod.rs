//! Who may send VXLAN to this host: only its peers. Three backends, each a component of its own, and `auto`,
//! which picks what the host runs (firewalld when it runs, nftables where iptables is absent, else iptables).

pub mod firewalld;
mod iptables;
mod nft_facts;
pub mod nftables;

pub use firewalld::{Firewalld, FirewalldFacts, rich_rule};
pub use iptables::IptablesFirewall;
pub use nft_facts::NftTable;
pub use nftables::{NftFacts, Nftables};

use super::core::{Component, Ctx, Need, Step};
use crate::facts::{FactsError, HostFacts, Sections};
use crate::model::inventory::FirewallKind;
use crate::plan::NodePlan;
use crate::shell::Stmt;

/// The firewall that will actually be programmed: `auto` picks what the host runs.
pub fn resolve(kind: FirewallKind, facts: &HostFacts) -> FirewallKind {
    let firewalld_running = facts.part::<FirewalldFacts>().is_some_and(|f| f.running);
    match kind {
        FirewallKind::Auto if firewalld_running => FirewallKind::Firewalld,
        FirewallKind::Auto if facts.tools.contains_key("nft") && !facts.tools.contains_key("iptables") => {
            FirewallKind::Nftables
        }
        FirewallKind::Auto => FirewallKind::Iptables,
        k => k,
    }
}

/// Every backend at once: `auto` (which one is decided by the facts), and teardown (any may have been used).
pub struct AnyFirewall<'a> {
    pub node: &'a NodePlan,
    backends: [Box<dyn Component + 'a>; 3],
}

impl<'a> AnyFirewall<'a> {
    pub fn new(node: &'a NodePlan) -> AnyFirewall<'a> {
        AnyFirewall {
            node,
            backends: [Box::new(IptablesFirewall { node }), Box::new(Nftables { node }), Box::new(Firewalld { node })],
        }
    }

    fn chosen(&self, facts: &HostFacts) -> Option<&dyn Component> {
        let name = match resolve(self.node.firewall.kind, facts) {
            FirewallKind::Iptables => "iptables",
            FirewallKind::Nftables => "nftables",
            FirewallKind::Firewalld => "firewalld",
            FirewallKind::Auto | FirewallKind::None => return None,
        };
        self.backends.iter().map(|b| b.as_ref()).find(|b| b.name() == name)
    }
}

impl Component for AnyFirewall<'_> {
    fn name(&self) -> &'static str {
        "firewall"
    }

    fn needs(&self, facts: &HostFacts) -> Vec<Need> {
        self.chosen(facts).map(|c| c.needs(facts)).unwrap_or_default()
    }

    fn gather(&self) -> Vec<Stmt> {
        self.backends.iter().flat_map(|b| b.gather()).collect()
    }

    fn parse(&self, sections: &Sections, facts: &mut HostFacts) -> Result<(), FactsError> {
        self.backends.iter().try_for_each(|b| b.parse(sections, facts))
    }

    fn preflight(&self, facts: &HostFacts) -> Vec<String> {
        self.chosen(facts).map(|c| c.preflight(facts)).unwrap_or_default()
    }

    fn diff(&self, facts: &HostFacts, ctx: &Ctx) -> Vec<Step> {
        self.chosen(facts).map(|c| c.diff(facts, ctx)).unwrap_or_default()
    }

    fn teardown(&self, facts: &HostFacts) -> Vec<Step> {
        self.backends.iter().flat_map(|b| b.teardown(facts)).collect()
    }
}
