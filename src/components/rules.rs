//! iptables chains vxmesh owns, each reached by one jump placed first in a built-in chain: no NAT inside the
//! cluster and masquerade out of it (`VXMESH-NAT`), forwarding allowed ahead of docker's DROP (`VXMESH-FWD`), and,
//! for the iptables firewall, VXLAN only from peers (`VXMESH-VXLAN`). Chains are replaced in one
//! `iptables-restore --noflush` transaction, never rule by rule; removal goes through iptables-restore too, so
//! rules read back from the host are only ever data.

use std::fmt::Write as _;

use serde::Serialize;

use super::core::{Capabilities, Component, Concern, Ctx, Kind, Need, Phase, Piece, Step, need};
use crate::facts::{FactsError, HostFacts, Iptables, Sections};
use crate::model::addr_text::Shown;
use crate::model::names;
use crate::plan::NodePlan;
use crate::shell::{Cmd, Stmt, Word};

/// docker's chain for the admin's own forwarding rules: docker keeps it, and its place, across restarts.
pub const DOCKER_USER: &str = "DOCKER-USER";

/// One iptables chain vxmesh owns, reached by one jump placed first in a built-in chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwnedChain {
    pub table: &'static str,
    pub parent: &'static str,
    pub chain: &'static str,
    /// The jump rule as iptables-save prints it (after `-A PARENT `).
    pub jump: String,
    /// Built-in chains the jump may have been in before (it is removed from there).
    pub former_parents: Vec<&'static str>,
    /// The facts did not say whether docker's DOCKER-USER chain exists (offline scripts): the script decides.
    pub parent_at_runtime: bool,
    pub rules: Vec<String>,
    /// Written with ip6tables (the containers' IPv6 side), not iptables.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ipv6: bool,
}

impl OwnedChain {
    /// The tools that write this chain's family.
    fn tools(&self) -> (&'static str, &'static str) {
        if self.ipv6 { ("ip6tables", "ip6tables-restore") } else { ("iptables", "iptables-restore") }
    }
}

#[derive(Debug, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    IptablesChain(OwnedChain),
    RemoveChain {
        table: &'static str,
        chain: &'static str,
        jumps: Vec<String>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        ipv6: bool,
    },
}

pub(crate) fn tag() -> String {
    format!("-m comment --comment {}", names::RULE_TAG)
}

/// vxmesh's NAT chain in one family (`ipv6`: ip6tables), jumped to first from POSTROUTING.
pub fn nat_chain(rules: Vec<String>, ipv6: bool) -> OwnedChain {
    OwnedChain {
        table: "nat",
        parent: "POSTROUTING",
        chain: names::NAT_CHAIN,
        jump: format!("{} -j {}", tag(), names::NAT_CHAIN),
        former_parents: vec![],
        parent_at_runtime: false,
        rules,
        ipv6,
    }
}

/// vxmesh's forwarding chain in one family, ahead of docker's rules: jumped to from docker's DOCKER-USER where
/// docker manages that family (`docker_user`), else from FORWARD; `None`: unknown, and the script looks.
pub fn forward_chain(rules: Vec<String>, docker_user: Option<bool>, ipv6: bool) -> OwnedChain {
    let at_runtime = docker_user.is_none();
    let docker_user = docker_user.unwrap_or(false);
    OwnedChain {
        table: "filter",
        parent: if docker_user { DOCKER_USER } else { "FORWARD" },
        chain: names::FORWARD_CHAIN,
        jump: format!("{} -j {}", tag(), names::FORWARD_CHAIN),
        former_parents: if docker_user { vec!["FORWARD"] } else { vec![DOCKER_USER] },
        parent_at_runtime: at_runtime,
        rules,
        ipv6,
    }
}

/// The NAT and forwarding chains. `docker_user`: whether docker manages iptables here (forwarding is then allowed
/// from its DOCKER-USER chain); `None` when unknown, and the script looks.
pub fn routing_chains(node: &NodePlan, docker_user: Option<bool>) -> Vec<OwnedChain> {
    let t = tag();
    let sub = node.subnet;
    let cidr = node.forward_accept;
    let mut nat_rules = vec![format!("-s {sub} -d {cidr} {t} -j ACCEPT")];
    if let Some(n) = &node.nat {
        nat_rules.push(format!("-s {} ! -d {} {t} -j MASQUERADE", n.source, n.cluster));
    }
    let forward_rules = relay_rules(node)
        .into_iter()
        .chain(
            node.forward_exclude
                .iter()
                .flat_map(|e| [format!("-s {e} {t} -j RETURN"), format!("-d {e} {t} -j RETURN")]),
        )
        .chain([format!("-s {cidr} -d {cidr} {t} -j ACCEPT")])
        .collect();
    vec![nat_chain(nat_rules, false), forward_chain(forward_rules, docker_user, false)]
}

/// On a relay: WireGuard to WireGuard only between the pairs it relays for (two hosts behind NAT in different
/// sites), anything else between its peers dropped. None on other hosts.
fn relay_rules(node: &NodePlan) -> Vec<String> {
    let (Some(w), pairs) = (&node.wireguard, node.relay_pairs()) else { return vec![] };
    if pairs.is_empty() {
        return vec![];
    }
    let (t, d) = (tag(), &w.device);
    pairs
        .iter()
        .map(|(a, b)| format!("-s {a}/32 -d {b}/32 -i {d} -o {d} {t} -j ACCEPT"))
        .chain([format!("-i {d} -o {d} {t} -j DROP")])
        .collect()
}

/// The iptables firewall's chain: UDP to the VXLAN port only from the peers' underlay addresses; with encryption,
/// only through the WireGuard interface, from the peers' WireGuard addresses.
pub fn vxlan_chain(node: &NodePlan) -> OwnedChain {
    let t = tag();
    let port = node.firewall.port;
    let mut rules: Vec<String> = match &node.firewall.wireguard {
        None => node.firewall_peers().map(|p| format!("-s {}/32 {t} -j ACCEPT", Shown(p))).collect(),
        Some(g) => node.wireguard_mesh().map(|p| format!("-s {p}/32 -i {} {t} -j ACCEPT", g.device)).collect(),
    };
    rules.push(format!("{t} -j DROP"));
    OwnedChain {
        table: "filter",
        parent: "INPUT",
        chain: names::VXLAN_CHAIN,
        jump: format!("-p udp -m udp --dport {port} {t} -j {}", names::VXLAN_CHAIN),
        former_parents: vec![],
        parent_at_runtime: false,
        rules,
        ipv6: false,
    }
}

/// With encryption, the iptables firewall's second chain: UDP to the WireGuard port only from the addresses the
/// peers' packets come from; from anywhere when a peer is behind NAT (its address is its router's, unknown in
/// advance; WireGuard's keys authenticate every packet).
pub fn wireguard_chain(node: &NodePlan) -> Option<OwnedChain> {
    let g = node.firewall.wireguard.as_ref()?;
    let t = tag();
    let mut rules: Vec<String> = node.firewall_peers().map(|p| format!("-s {}/32 {t} -j ACCEPT", Shown(p))).collect();
    rules.push(format!("{t} -j {}", if node.firewall_open() { "ACCEPT" } else { "DROP" }));
    Some(OwnedChain {
        table: "filter",
        parent: "INPUT",
        chain: names::WIREGUARD_CHAIN,
        jump: format!("-p udp -m udp --dport {} {t} -j {}", g.port, names::WIREGUARD_CHAIN),
        former_parents: vec![],
        parent_at_runtime: false,
        rules,
        ipv6: false,
    })
}

/// Whether docker runs its DOCKER-USER chain here; `None` when the facts were not gathered.
pub fn docker_user(facts: &HostFacts) -> Option<bool> {
    facts.iptables.tables.get("filter").map(|t| t.contains_key(DOCKER_USER))
}

fn iptables(tool: &'static str, table: &'static str, rest: impl IntoIterator<Item = Word>) -> Cmd {
    Cmd::new([Word::Lit(tool), "-w".into(), "-t".into(), Word::Lit(table)].into_iter().chain(rest))
}

/// The jump rule's words (our own rules have no quoted parts).
fn jump_words(jump: &str) -> Vec<Word> {
    jump.split_whitespace().map(|w| Word::Data(w.to_string())).collect()
}

/// The chain's content replaced in one iptables-restore transaction, then exactly one jump to it, placed first.
fn chain_commands(c: &OwnedChain) -> Vec<Stmt> {
    let (tool, restore_tool) = c.tools();
    let iptables = |table, rest| iptables(tool, table, rest);
    let mut restore = format!("*{}\n:{} - [0:0]\n", c.table, c.chain);
    for r in &c.rules {
        let _ = writeln!(restore, "-A {} {r}", c.chain);
    }
    restore.push_str("COMMIT\n");
    let mut v = vec![Cmd::new([Word::Lit(restore_tool), "--noflush".into()]).stdin(restore).into()];
    for p in std::iter::once(&c.parent).chain(&c.former_parents) {
        let del = iptables(c.table, [Word::Lit("-D"), Word::Lit(p)].into_iter().chain(jump_words(&c.jump)).collect());
        v.push(Stmt::Repeat(del.silent_stderr()));
    }
    let insert = |parent: &'static str| {
        Stmt::Run(iptables(
            c.table,
            ["-I".into(), Word::Lit(parent), "1".into()].into_iter().chain(jump_words(&c.jump)).collect(),
        ))
    };
    if c.parent_at_runtime {
        v.push(Stmt::Comment(
            "docker keeps DOCKER-USER first in FORWARD across restarts: allow the mesh there when docker manages iptables."
                .into(),
        ));
        v.push(Stmt::If {
            conds: vec![iptables(c.table, vec!["-n".into(), "-L".into(), DOCKER_USER.into()]).silent()],
            negate: false,
            then: vec![insert(DOCKER_USER)],
            otherwise: vec![insert(c.parent)],
        });
    } else {
        v.push(insert(c.parent));
    }
    v
}

/// Steps for the chains the host does not have exactly as planned.
pub fn chain_steps(component: Kind, chains: Vec<OwnedChain>, facts: &HostFacts, concern: Concern) -> Vec<Step> {
    chain_steps_in(component, chains, &facts.iptables, concern)
}

/// [`chain_steps`] against the rules of one family (`ipt`: what iptables-save or ip6tables-save printed).
pub fn chain_steps_in(component: Kind, chains: Vec<OwnedChain>, ipt: &Iptables, concern: Concern) -> Vec<Step> {
    // Chains that share a parent (the firewall's two, in INPUT) each go first in turn: together they lead it.
    let leading: Vec<(&'static str, &'static str, String)> =
        chains.iter().map(|c| (c.table, c.parent, c.jump.clone())).collect();
    chains
        .into_iter()
        .filter(|c| {
            let rules_ok = ipt.chain(c.table, c.chain) == Some(&c.rules);
            let stray = c.former_parents.iter().any(|p| ipt.chain(c.table, p).is_some_and(|r| r.contains(&c.jump)));
            let parent = ipt.chain(c.table, c.parent);
            let ours = |r: &String| leading.iter().any(|(t, p, j)| *t == c.table && *p == c.parent && j == r);
            let jump_first = parent.is_some_and(|r| r.iter().take_while(|r| ours(r)).any(|r| *r == c.jump));
            let jumps = parent.map_or(0, |r| r.iter().filter(|x| **x == c.jump).count());
            !rules_ok || !jump_first || jumps != 1 || stray
        })
        .map(|c| {
            let description = format!(
                "program {} {}/{} ({} rules) and jump to it first from {}",
                c.tools().0,
                c.table,
                c.chain,
                c.rules.len(),
                if c.parent_at_runtime { "DOCKER-USER, or FORWARD where docker does not run" } else { c.parent }
            );
            let commands = chain_commands(&c);
            Step::new(Phase::Rules, component, description, Change::IptablesChain(c), commands)
                .concerning(concern.clone())
        })
        .collect()
}

/// Removes `chain` and every jump to it that the host has, in one iptables-restore transaction.
pub fn remove_chain_steps(component: Kind, table: &'static str, chain: &'static str, facts: &HostFacts) -> Vec<Step> {
    remove_chain_steps_in(component, table, chain, &facts.iptables, false)
}

/// [`remove_chain_steps`] in one family's rules (`ipv6`: ip6tables).
pub fn remove_chain_steps_in(
    component: Kind,
    table: &'static str,
    chain: &'static str,
    ipt: &Iptables,
    ipv6: bool,
) -> Vec<Step> {
    let Some(chains) = ipt.tables.get(table) else { return vec![] };
    let target = format!("-j {chain}");
    let jumps: Vec<(String, String)> = chains
        .iter()
        .flat_map(|(parent, rules)| {
            rules.iter().filter(|r| r.ends_with(&target)).map(move |r| (parent.clone(), r.clone()))
        })
        .collect();
    if !chains.contains_key(chain) && jumps.is_empty() {
        return vec![];
    }
    // Declaring the chain first makes the transaction valid whether or not it exists, and empties it.
    let mut restore = format!("*{table}\n:{chain} - [0:0]\n");
    for (parent, rule) in &jumps {
        let _ = writeln!(restore, "-D {parent} {rule}");
    }
    let _ = write!(restore, "-X {chain}\nCOMMIT\n");
    let (tool, restore_tool) = if ipv6 { ("ip6tables", "ip6tables-restore") } else { ("iptables", "iptables-restore") };
    vec![Step::new(
        Phase::Rules,
        component,
        format!("remove {tool} {table}/{chain} and {} jumps to it", jumps.len()),
        Change::RemoveChain {
            table,
            chain,
            jumps: jumps.into_iter().map(|(p, r)| format!("-A {p} {r}")).collect(),
            ipv6,
        },
        vec![Cmd::new([Word::Lit(restore_tool), "--noflush".into()]).stdin(restore).into()],
    )]
}

/// NAT and forwarding rules, on every host whatever its firewall.
pub struct Rules<'a> {
    pub node: &'a NodePlan,
}

/// The shared facts hold `iptables-save`'s output: nothing of its own to gather.
impl Piece for Rules<'_> {
    fn kind(&self) -> Kind {
        Kind::Rules
    }

    fn gather(&self) -> Vec<Stmt> {
        vec![]
    }

    fn parse(&self, _: &Sections, _: &mut HostFacts) -> Result<(), FactsError> {
        Ok(())
    }

    fn teardown(&self, facts: &HostFacts) -> Vec<Step> {
        [("nat", names::NAT_CHAIN), ("filter", names::FORWARD_CHAIN)]
            .into_iter()
            .flat_map(|(table, chain)| remove_chain_steps(self.kind(), table, chain, facts))
            .collect()
    }
}

impl Component for Rules<'_> {
    fn needs(&self, _: &HostFacts) -> Vec<Need> {
        ["iptables", "iptables-save", "iptables-restore"].map(|t| need(t, "iptables", "iptables-nft")).to_vec()
    }

    fn diff(&self, facts: &HostFacts, _: &Ctx) -> Vec<Step> {
        // A relay's forwarding rules follow the set of peers (a NATed host added or removed elsewhere changes
        // them), so its forwarding chain is the peers' concern while it relays or did; otherwise the node's.
        let wg = names::wireguard_device();
        let relays = |c: &OwnedChain| {
            let had = facts.iptables.chain(c.table, c.chain).into_iter().flatten();
            c.rules.iter().chain(had).any(|r| r.contains(&format!("-o {wg} ")))
        };
        routing_chains(self.node, docker_user(facts))
            .into_iter()
            .flat_map(|c| {
                let concern = if relays(&c) { Concern::Peers } else { Concern::Node };
                chain_steps(self.kind(), vec![c], facts, concern)
            })
            .collect()
    }

    fn preflight(&self, _: &HostFacts) -> Vec<String> {
        vec![]
    }

    fn capabilities(&self) -> Capabilities<'_> {
        Capabilities::NONE
    }
}
