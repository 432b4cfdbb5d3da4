//! The nftables firewall: table `inet vxmesh` with a `peers` set and one drop rule for VXLAN from anyone else,
//! replaced atomically with `nft -f`. On an IPv6 underlay the set holds IPv6 addresses and the rules match `ip6
//! saddr` (in an `inet` table an `ip saddr` rule matches IPv4 packets only, so it would let every IPv6 one in).

use std::collections::BTreeSet;
use std::fmt::Display;
use std::net::IpAddr;

use serde::Serialize;

use super::nft_facts::{self, NftTable};
use crate::cmd;
use crate::components::core::{Capabilities, Component, Concern, Ctx, Kind, Need, Phase, Piece, Step, need};
use crate::facts::{FactsError, HostFacts, Sections, mark};
use crate::model::inventory::FirewallKind;
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
    /// The table as it will be (what the facts read back).
    NftTable(NftTable),
    RemoveNftTable,
}

/// The table a node needs: VXLAN only from the peers; with encryption, WireGuard only from the peers and VXLAN
/// only through the WireGuard interface, from the peers' WireGuard addresses.
pub fn wanted(node: &NodePlan) -> NftTable {
    let fw = &node.firewall;
    let peers: BTreeSet<IpAddr> = node.tunnel_sources().collect();
    match &fw.wireguard {
        None => NftTable { peers, mesh: BTreeSet::new(), drops: [(fw.port, "@peers".to_string())].into() },
        Some(g) => NftTable {
            peers,
            mesh: node.wireguard_mesh().collect(),
            // A peer behind NAT sends from its router's address, unknown in advance: WireGuard's port stays open
            // (keys authenticate), VXLAN stays limited to the WireGuard interface and the mesh.
            drops: [
                (!node.firewall_open()).then(|| (g.port, "@peers".to_string())),
                Some((fw.port, format!("iif:{}", g.device))),
                Some((fw.port, "@mesh".to_string())),
            ]
            .into_iter()
            .flatten()
            .collect(),
        },
    }
}

fn set<A: Display>(name: &str, kind: &str, members: &BTreeSet<A>) -> String {
    let elements = if members.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = members.iter().map(|p| p.to_string()).collect();
        format!(" elements = {{ {} }};", list.join(", "))
    };
    format!("  set {name} {{ type {kind};{elements} }}\n")
}

/// The `nft -f` program that replaces the table at once.
fn program(node: &NodePlan, want: &NftTable) -> String {
    let t = names::NFT_TABLE;
    let fw = &node.firewall;
    let tag = names::RULE_TAG;
    // The peers' underlay addresses are of the underlay's family; the mesh's (WireGuard) are IPv4.
    let (kind, ip) = if node.underlay_is_ipv6() { ("ipv6_addr", "ip6") } else { ("ipv4_addr", "ip") };
    let mut sets = set("peers", kind, &want.peers);
    let rules = match &fw.wireguard {
        None => format!("    udp dport {} {ip} saddr != @peers counter drop comment \"{tag}\"\n", fw.port),
        Some(g) => {
            sets.push_str(&set("mesh", "ipv4_addr", &want.mesh));
            let wg = if node.firewall_open() {
                String::new()
            } else {
                format!("    udp dport {} {ip} saddr != @peers counter drop comment \"{tag}\"\n", g.port)
            };
            format!(
                "{wg}    udp dport {vx} iifname != \"{dev}\" counter drop comment \"{tag}\"\n    udp dport {vx} ip saddr != @mesh counter drop comment \"{tag}\"\n",
                vx = fw.port,
                dev = g.device
            )
        }
    };
    format!(
        "table inet {t}\ndelete table inet {t}\ntable inet {t} {{\n{sets}  chain input {{\n    type filter hook input priority filter - 10; policy accept;\n{rules}  }}\n}}\n"
    )
}

impl Piece for Nftables<'_> {
    fn kind(&self) -> Kind {
        Kind::Firewall(FirewallKind::Nftables)
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

    fn teardown(&self, facts: &HostFacts) -> Vec<Step> {
        if facts.part::<NftFacts>().is_none_or(|n| n.0.is_none()) {
            return vec![];
        }
        vec![Step::new(
            Phase::Firewall,
            self.kind(),
            format!("delete nftables table inet {}", names::NFT_TABLE),
            Change::RemoveNftTable,
            vec![cmd!["nft", "delete", "table", "inet", names::NFT_TABLE].into()],
        )]
    }
}

impl Component for Nftables<'_> {
    fn needs(&self, _: &HostFacts) -> Vec<Need> {
        vec![need("nft", "nftables", "nftables")]
    }

    fn preflight(&self, _: &HostFacts) -> Vec<String> {
        vec![]
    }

    fn diff(&self, facts: &HostFacts, _: &Ctx) -> Vec<Step> {
        let want = wanted(self.node);
        let have = facts.part::<NftFacts>().and_then(|n| n.0.as_ref());
        if have == Some(&want) {
            return vec![];
        }
        let fw = &self.node.firewall;
        let t = names::NFT_TABLE;
        let description = match &fw.wireguard {
            None => {
                format!("program nftables table inet {t}: VXLAN port {} only from {} peers", fw.port, want.peers.len())
            }
            Some(g) => format!(
                "program nftables table inet {t}: WireGuard port {} only from {} peers, VXLAN port {} only through {}",
                g.port,
                want.peers.len(),
                fw.port,
                g.device
            ),
        };
        let program = program(self.node, &want);
        vec![
            Step::new(
                Phase::Firewall,
                self.kind(),
                description,
                Change::NftTable(want),
                vec![cmd!["nft", "-f", "-"].stdin(program).into()],
            )
            .concerning(Concern::Peers),
        ]
    }

    fn capabilities(&self) -> Capabilities<'_> {
        Capabilities::NONE
    }
}
