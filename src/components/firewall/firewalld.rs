//! The firewalld firewall: one permanent rich rule per peer for the VXLAN port; stale ones withdrawn.

use std::net::Ipv4Addr;

use serde::Serialize;

use crate::cmd;
use crate::components::core::{Capabilities, Component, Concern, Ctx, Kind, Need, Phase, Piece, Step, need};
use crate::facts::{FactsError, HostFacts, Sections, mark};
use crate::model::inventory::FirewallKind;
use crate::plan::NodePlan;
use crate::shell::{Stmt, Word, join, when};

pub struct Firewalld<'a> {
    pub node: &'a NodePlan,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FirewalldFacts {
    pub running: bool,
    pub rich_rules: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// Rules to add and, as the host spelled them, rules to withdraw.
    Firewalld { add: Vec<String>, remove: Vec<String> },
}

/// firewalld's own spelling of a rule allowing VXLAN from one peer (as `--list-rich-rules` prints it).
pub fn rich_rule(peer: Ipv4Addr, port: u16) -> String {
    format!(r#"rule family="ipv4" source address="{peer}" port port="{port}" protocol="udp" accept"#)
}

fn ours(port: u16) -> String {
    format!(r#"port port="{port}" protocol="udp" accept"#)
}

fn rule_cmd(op: &'static str, rule: &str) -> Stmt {
    cmd!["firewall-cmd", "--quiet", "--permanent", join([Word::Lit(op), Word::Data(rule.to_string())])].into()
}

fn running() -> crate::shell::Cmd {
    cmd!["firewall-cmd", "--state"].silent()
}

impl Firewalld<'_> {
    fn step(&self, description: String, add: Vec<String>, remove: Vec<String>) -> Step {
        let mut cmds: Vec<Stmt> = add.iter().map(|r| rule_cmd("--add-rich-rule=", r)).collect();
        cmds.extend(remove.iter().map(|r| rule_cmd("--remove-rich-rule=", r)));
        cmds.push(cmd!["firewall-cmd", "--quiet", "--reload"].into());
        Step::new(Phase::Firewall, self.kind(), description, Change::Firewalld { add, remove }, cmds)
            .concerning(Concern::Peers)
    }
}

impl Piece for Firewalld<'_> {
    fn kind(&self) -> Kind {
        Kind::Firewall(FirewallKind::Firewalld)
    }

    fn gather(&self) -> Vec<Stmt> {
        vec![
            mark("firewalld-state"),
            when(cmd!["has", "firewall-cmd"], vec![cmd!["firewall-cmd", "--state"].silent_stderr().may_fail().into()]),
            mark("firewalld-rich-rules"),
            Stmt::If {
                conds: vec![cmd!["has", "firewall-cmd"], running()],
                negate: false,
                then: vec![cmd!["firewall-cmd", "--list-rich-rules"].silent_stderr().may_fail().into()],
                otherwise: vec![],
            },
        ]
    }

    fn parse(&self, s: &Sections, facts: &mut HostFacts) -> Result<(), FactsError> {
        facts.set_part(FirewalldFacts {
            running: s.get("firewalld-state").trim() == "running",
            rich_rules: s
                .get("firewalld-rich-rules")
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect(),
        });
        Ok(())
    }

    fn teardown(&self, facts: &HostFacts) -> Vec<Step> {
        let Some(f) = facts.part::<FirewalldFacts>().filter(|f| f.running) else { return vec![] };
        let remove: Vec<String> =
            f.rich_rules.iter().filter(|r| r.ends_with(&ours(self.node.firewall.port))).cloned().collect();
        if remove.is_empty() {
            return vec![];
        }
        vec![self.step(format!("firewalld: withdraw {} VXLAN rules", remove.len()), vec![], remove)]
    }
}

impl Component for Firewalld<'_> {
    fn needs(&self, _: &HostFacts) -> Vec<Need> {
        vec![need("firewall-cmd", "firewalld", "firewalld")]
    }

    fn preflight(&self, _: &HostFacts) -> Vec<String> {
        vec![]
    }

    fn diff(&self, facts: &HostFacts, _: &Ctx) -> Vec<Step> {
        let fw = &self.node.firewall;
        let want: Vec<String> = self.node.firewall_peers().map(|p| rich_rule(p, fw.port)).collect();
        let empty = FirewalldFacts::default();
        let have = &facts.part::<FirewalldFacts>().unwrap_or(&empty).rich_rules;
        // Sets for the lookups: a 1,000-node mesh has 999 rules on each side.
        let (want_set, have_set): (std::collections::HashSet<&String>, std::collections::HashSet<&String>) =
            (want.iter().collect(), have.iter().collect());
        let add: Vec<String> = want.iter().filter(|w| !have_set.contains(w)).cloned().collect();
        let remove: Vec<String> =
            have.iter().filter(|h| h.ends_with(&ours(fw.port)) && !want_set.contains(h)).cloned().collect();
        if add.is_empty() && remove.is_empty() {
            return vec![];
        }
        let description = format!("firewalld: allow VXLAN from {} more peers, withdraw {}", add.len(), remove.len());
        vec![self.step(description, add, remove)]
    }

    fn capabilities(&self) -> Capabilities<'_> {
        Capabilities::NONE
    }
}
