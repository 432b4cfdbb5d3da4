//! The nftables firewall: table `inet vxmesh` with a `peers` set and one drop rule for VXLAN from anyone else,
//! replaced atomically with `nft -f`.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use serde::Serialize;

use super::nft_facts::{self, NftTable};
use crate::cmd;
use crate::components::core::{Component, Concern, Ctx, Need, Phase, Step, need};
use crate::facts::{FactsError, HostFacts, Sections, mark};
use crate::model::names;
use crate::plan::NodePlan;
use crate::shell::{Stmt, when};

pub struct Nftables<'a> {
    pub node: &'a NodePlan,
}

/// vxmesh's table as the host has it (`None`: absent).
#[derive(Debug, Clone, Default)]
pub struct NftFacts(pub Option<NftTable>);

#[derive(Debug, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    NftTable { port: u16, peers: Vec<Ipv4Addr> },
    RemoveNftTable,
}

impl Component for Nftables<'_> {
    fn name(&self) -> &'static str {
        "nftables"
    }

    fn needs(&self, _: &HostFacts) -> Vec<Need> {
        vec![need("nft", "nftables", "nftables")]
    }

    fn gather(&self) -> Vec<Stmt> {
        vec![
            mark("nft"),
            when(
                cmd!["has", "nft"],
                vec![cmd!["nft", "-j", "list", "table", "inet", names::NFT_TABLE].silent_stderr().may_fail().into()],
            ),
        ]
    }

    fn parse(&self, s: &Sections, facts: &mut HostFacts) -> Result<(), FactsError> {
        facts.set_part(NftFacts(nft_facts::parse(s.get("nft"))?));
        Ok(())
    }

    fn diff(&self, facts: &HostFacts, _: &Ctx) -> Vec<Step> {
        let fw = &self.node.firewall;
        let want: BTreeSet<Ipv4Addr> = fw.peers.iter().copied().collect();
        let have = facts.part::<NftFacts>().and_then(|n| n.0.as_ref());
        if have.is_some_and(|t| t.peers == want && t.guarded_port == Some(fw.port)) {
            return vec![];
        }
        let t = names::NFT_TABLE;
        let elements = if want.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = want.iter().map(|p| p.to_string()).collect();
            format!(" elements = {{ {} }};", list.join(", "))
        };
        let program = format!(
            "table inet {t}\ndelete table inet {t}\ntable inet {t} {{\n  set peers {{ type ipv4_addr;{elements} }}\n  chain input {{\n    type filter hook input priority filter - 10; policy accept;\n    udp dport {port} ip saddr != @peers counter drop comment \"{tag}\"\n  }}\n}}\n",
            port = fw.port,
            tag = names::RULE_TAG
        );
        vec![
            Step::new(
                Phase::Firewall,
                self.name(),
                format!("program nftables table inet {t}: VXLAN port {} only from {} peers", fw.port, want.len()),
                Change::NftTable { port: fw.port, peers: want.into_iter().collect() },
                vec![cmd!["nft", "-f", "-"].stdin(program).into()],
            )
            .concerning(Concern::Peers),
        ]
    }

    fn teardown(&self, facts: &HostFacts) -> Vec<Step> {
        if facts.part::<NftFacts>().is_none_or(|n| n.0.is_none()) {
            return vec![];
        }
        vec![Step::new(
            Phase::Firewall,
            self.name(),
            format!("delete nftables table inet {}", names::NFT_TABLE),
            Change::RemoveNftTable,
            vec![cmd!["nft", "delete", "table", "inet", names::NFT_TABLE].into()],
        )]
    }
}
