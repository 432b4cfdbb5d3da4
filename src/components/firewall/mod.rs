//! Who may send VXLAN to this host: only its peers. Three backends, each a component of its own; `auto` plans
//! the one the host runs (firewalld when it runs, nftables where iptables is absent, else iptables).

pub mod firewalld;
pub mod firewalld_zone;
mod iptables;
mod nft_facts;
pub mod nftables;

pub use firewalld::{Firewalld, FirewalldConfig, FirewalldFacts, rich_rule};
pub use iptables::IptablesFirewall;
pub use nft_facts::NftTable;
pub use nftables::{NftFacts, Nftables};

use super::core::Component;
use crate::facts::HostFacts;
use crate::model::inventory::FirewallKind;
use crate::plan::NodePlan;

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

/// Every backend, in the order they are gathered: `auto` plans the one the facts pick, `down` removes them all.
pub fn backends<'a>(node: &'a NodePlan) -> impl Iterator<Item = Box<dyn Component + 'a>> {
    let all: [Box<dyn Component + 'a>; 3] =
        [Box::new(IptablesFirewall { node }), Box::new(Nftables { node }), Box::new(Firewalld { node })];
    all.into_iter()
}
