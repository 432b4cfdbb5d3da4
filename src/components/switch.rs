//! What every data plane does the same way: sw0's address, with the cluster's prefix so the whole cluster
//! routes through it, and sw0 up.

use ipnet::Ipv4Net;
use serde::Serialize;

use super::core::{Phase, Step};
use crate::cmd;
use crate::facts::HostFacts;
use crate::model::names::IfName;
use crate::plan::NodePlan;
use crate::shell::{Stmt, data};

#[derive(Debug, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    SwitchAddress { dev: IfName, address: Ipv4Net, stale: Vec<Ipv4Net> },
    LinkUp { dev: IfName },
}

/// sw0's address and state, for `component`.
pub fn address_steps(component: &'static str, node: &NodePlan, facts: &HostFacts) -> Vec<Step> {
    let br = &node.switch.bridge;
    let mut steps = vec![];
    let link = facts.links.get(br.as_str());
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
