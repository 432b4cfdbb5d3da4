//! The veth pair joining the docker bridge to `sw0`: created at the overlay MTU, TX offload off where the
//! userspace datapath needs it, up, and its docker end plugged into docker's bridge.

use serde::Serialize;

use super::core::{Capabilities, Component, Ctx, Kind, Mtu, Need, Phase, Piece, Step, need};
use crate::cmd;
use crate::facts::{FactsError, HostFacts, Sections};
use crate::model::names::IfName;
use crate::plan::NodePlan;
use crate::shell::{Cmd, Stmt, Word};

pub struct Veth<'a> {
    pub node: &'a NodePlan,
    /// The docker bridge the docker end joins.
    pub bridge: &'a IfName,
}

#[derive(Debug, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    CreateVeth { switch_end: IfName, docker_end: IfName, mtu: Mtu },
    LinkMtu { dev: IfName, mtu: Mtu },
    LinkUp { dev: IfName },
    TxOffloadOff { dev: IfName },
    Enslave { dev: IfName, master: IfName },
    DeleteVeth { dev: IfName },
}

fn exists(dev: &IfName) -> Cmd {
    cmd!["ip", "link", "show", "dev", dev].silent()
}

impl Veth<'_> {
    fn ends(&self) -> [&IfName; 2] {
        [&self.node.veth.switch_end, &self.node.veth.docker_end]
    }
}

impl Piece for Veth<'_> {
    fn kind(&self) -> Kind {
        Kind::Veth
    }

    fn gather(&self) -> Vec<Stmt> {
        vec![]
    }

    fn parse(&self, _: &Sections, _: &mut HostFacts) -> Result<(), FactsError> {
        Ok(())
    }

    fn teardown(&self, facts: &HostFacts) -> Vec<Step> {
        let sw_end = &self.node.veth.switch_end;
        // Deleting one end deletes the pair.
        self.ends()
            .iter()
            .find(|d| facts.links.contains_key(d.as_str()))
            .map(|d| {
                Step::new(
                    Phase::Links,
                    self.kind(),
                    format!("delete the veth pair {sw_end}"),
                    Change::DeleteVeth { dev: (*d).clone() },
                    vec![cmd!["ip", "link", "del", *d].silent().may_fail().into()],
                )
            })
            .into_iter()
            .collect()
    }
}

impl Component for Veth<'_> {
    fn needs(&self, _: &HostFacts) -> Vec<Need> {
        let mut v = vec![need("ip", "iproute2", "iproute")];
        if !self.node.tx_offload_off.is_empty() {
            v.push(need("ethtool", "ethtool", "ethtool"));
        }
        v
    }

    fn preflight(&self, _: &HostFacts) -> Vec<String> {
        vec![]
    }

    fn diff(&self, facts: &HostFacts, ctx: &Ctx) -> Vec<Step> {
        let name = self.kind();
        let mut steps = vec![];
        let [sw_end, dk_end] = self.ends();
        let mtu = ctx.mtu;
        let veth_ok = self.ends().iter().all(|d| facts.links.get(d.as_str()).is_some_and(|l| l.kind == "veth"));
        if !veth_ok {
            let m = mtu.word();
            let create = Stmt::If {
                conds: vec![exists(sw_end), exists(dk_end)],
                negate: true,
                then: vec![
                    cmd!["ip", "link", "del", sw_end].silent_stderr().may_fail().into(),
                    cmd!["ip", "link", "del", dk_end].silent_stderr().may_fail().into(),
                    Cmd::new([
                        "ip".into(),
                        "link".into(),
                        "add".into(),
                        sw_end.into(),
                        "mtu".into(),
                        m.clone(),
                        "type".into(),
                        "veth".into(),
                        "peer".into(),
                        "name".into(),
                        dk_end.into(),
                        "mtu".into(),
                        m,
                    ])
                    .into(),
                ],
                otherwise: vec![],
            };
            steps.push(Step::new(
                Phase::Links,
                name,
                format!("create the veth pair {sw_end} <-> {dk_end}"),
                Change::CreateVeth { switch_end: sw_end.clone(), docker_end: dk_end.clone(), mtu },
                vec![create],
            ));
        }
        for dev in self.ends() {
            let link = facts.links.get(dev.as_str()).filter(|_| veth_ok);
            if let Some(m) = mtu.value().filter(|m| veth_ok && link.is_some_and(|l| l.mtu != *m)) {
                steps.push(Step::new(
                    Phase::Links,
                    name,
                    format!("set {dev} MTU to {m}"),
                    Change::LinkMtu { dev: dev.clone(), mtu },
                    vec![cmd!["ip", "link", "set", "dev", dev, "mtu", Word::Data(m.to_string())].into()],
                ));
            }
            // A veth created now starts with offloads on, whatever the facts said of the old one.
            if self.node.tx_offload_off.contains(dev)
                && (!veth_ok || facts.tx_offload.get(dev.as_str()) != Some(&false))
            {
                steps.push(Step::new(
                    Phase::Links,
                    name,
                    format!("turn TX checksum offload off on {dev} (userspace datapath)"),
                    Change::TxOffloadOff { dev: dev.clone() },
                    vec![cmd!["ethtool", "-K", dev, "tx", "off"].no_stdout().into()],
                ));
            }
            if !link.is_some_and(|l| l.up) {
                steps.push(Step::new(
                    Phase::Links,
                    name,
                    format!("bring {dev} up"),
                    Change::LinkUp { dev: dev.clone() },
                    vec![cmd!["ip", "link", "set", "dev", dev, "up"].into()],
                ));
            }
        }
        let master = facts.links.get(dk_end.as_str()).and_then(|l| l.master.as_deref());
        if !veth_ok || master != Some(self.bridge.as_str()) {
            steps.push(Step::new(
                Phase::Attach,
                name,
                format!("plug {dk_end} into docker bridge {}", self.bridge),
                Change::Enslave { dev: dk_end.clone(), master: self.bridge.clone() },
                vec![cmd!["ip", "link", "set", "dev", dk_end, "master", self.bridge].into()],
            ));
        }
        steps
    }

    fn capabilities(&self) -> Capabilities<'_> {
        Capabilities::NONE
    }
}
