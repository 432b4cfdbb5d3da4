//! The iptables firewall: chain `VXMESH-VXLAN` from INPUT accepts VXLAN from each peer and drops the rest; with
//! encryption, `VXMESH-WG` does the same for WireGuard's port, and VXLAN is accepted only through its interface.
//! On an IPv6 underlay the same two chains are written with ip6tables for the underlay's packets (the IPv4 ones
//! still guard VXLAN between the IPv4 WireGuard addresses).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::cmd;
use crate::components::core::{Capabilities, Component, Concern, Ctx, Kind, Need, Phase, Piece, Step, need};
use crate::components::rules::{chain_steps, remove_chain_steps, vxlan_chain, wireguard_chain};
use crate::facts::{FactsError, HostFacts, Sections, mark};
use crate::model::inventory::FirewallKind;
use crate::model::names;
use crate::plan::NodePlan;
use crate::shell::{Cmd, Stmt, Word, when};

pub struct IptablesFirewall<'a> {
    pub node: &'a NodePlan,
}

const SECTION: &str = "ip6tables";

/// `ip6tables-save -t filter`: chain -> rules as it prints them (after `-A CHAIN `); `None` when not gathered.
#[derive(Debug, Clone, Default)]
pub struct Ip6Facts(pub Option<BTreeMap<String, Vec<String>>>);

/// One ip6tables chain in `filter`, reached by one jump placed first in INPUT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Chain6 {
    pub chain: &'static str,
    /// The jump as ip6tables-save prints it (after `-A INPUT `).
    pub jump: String,
    pub rules: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    Ip6tablesChain(Chain6),
    RemoveIp6Chain { chain: &'static str, jumps: Vec<String> },
}

fn parse6(body: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in body.lines().map(str::trim) {
        if let Some(decl) = line.strip_prefix(':') {
            out.entry(decl.split_whitespace().next().unwrap_or_default().to_string()).or_default();
        } else if let Some(rule) = line.strip_prefix("-A ") {
            let (chain, spec) = rule.split_once(' ').unwrap_or((rule, ""));
            out.entry(chain.to_string()).or_default().push(spec.to_string());
        }
    }
    out
}

/// The IPv6 chains: what the IPv4 chains of [`vxlan_chain`] and [`wireguard_chain`] are on an IPv4 underlay.
/// VXLAN only from the peers' underlay addresses; encrypted, no VXLAN over IPv6 at all (it comes through the
/// WireGuard interface, over IPv4) and WireGuard only from the peers (from anyone when a peer is behind NAT).
pub fn chains6(node: &NodePlan) -> Vec<Chain6> {
    let t = format!("-m comment --comment {}", names::RULE_TAG);
    let peers = |verdict: &str| -> Vec<String> {
        let mut r: Vec<String> = node.tunnel_sources().map(|p| format!("-s {p}/128 {t} -j ACCEPT")).collect();
        r.push(format!("{t} -j {verdict}"));
        r
    };
    let fw = &node.firewall;
    let vxlan = Chain6 {
        chain: names::VXLAN_CHAIN,
        jump: format!("-p udp -m udp --dport {} {t} -j {}", fw.port, names::VXLAN_CHAIN),
        rules: if fw.wireguard.is_some() { vec![format!("{t} -j DROP")] } else { peers("DROP") },
    };
    let wireguard = fw.wireguard.as_ref().map(|g| Chain6 {
        chain: names::WIREGUARD_CHAIN,
        jump: format!("-p udp -m udp --dport {} {t} -j {}", g.port, names::WIREGUARD_CHAIN),
        rules: peers(if node.firewall_open() { "ACCEPT" } else { "DROP" }),
    });
    std::iter::once(vxlan).chain(wireguard).collect()
}

fn ip6tables(rest: impl IntoIterator<Item = Word>) -> Cmd {
    Cmd::new(["ip6tables".into(), "-w".into(), "-t".into(), "filter".into()].into_iter().chain(rest))
}

/// The chain replaced in one ip6tables-restore transaction, then exactly one jump to it, first in INPUT.
fn chain6_commands(c: &Chain6) -> Vec<Stmt> {
    let mut restore = format!("*filter\n:{} - [0:0]\n", c.chain);
    for r in &c.rules {
        let _ = writeln!(restore, "-A {} {r}", c.chain);
    }
    restore.push_str("COMMIT\n");
    let jump = || c.jump.split_whitespace().map(|w| Word::Data(w.to_string()));
    vec![
        cmd!["ip6tables-restore", "--noflush"].stdin(restore).into(),
        Stmt::Repeat(ip6tables(["-D".into(), "INPUT".into()].into_iter().chain(jump())).silent_stderr()),
        Stmt::Run(ip6tables(["-I".into(), "INPUT".into(), "1".into()].into_iter().chain(jump()))),
    ]
}

impl IptablesFirewall<'_> {
    /// Steps for the IPv6 chains the host does not have exactly as planned (none on an IPv4 underlay).
    fn diff6(&self, facts: &HostFacts) -> Vec<Step> {
        if !self.node.underlay_is_ipv6() {
            return vec![];
        }
        let empty = BTreeMap::new();
        let have = facts.part::<Ip6Facts>().and_then(|f| f.0.as_ref()).unwrap_or(&empty);
        let want = chains6(self.node);
        let input = have.get("INPUT");
        let ours = |r: &String| want.iter().any(|c| c.jump == *r);
        want.iter()
            .filter(|c| {
                let leading = input.is_some_and(|i| i.iter().take_while(|r| ours(r)).any(|r| *r == c.jump));
                let jumps = input.map_or(0, |i| i.iter().filter(|r| **r == c.jump).count());
                have.get(c.chain) != Some(&c.rules) || !leading || jumps != 1
            })
            .map(|c| {
                let description = format!(
                    "program ip6tables filter/{} ({} rules) and jump to it first from INPUT",
                    c.chain,
                    c.rules.len()
                );
                Step::new(Phase::Rules, self.kind(), description, Change::Ip6tablesChain(c.clone()), chain6_commands(c))
                    .concerning(Concern::Peers)
            })
            .collect()
    }

    /// Removes the IPv6 chains and their jumps the host has, in one ip6tables-restore transaction each.
    fn teardown6(&self, facts: &HostFacts) -> Vec<Step> {
        let Some(have) = facts.part::<Ip6Facts>().and_then(|f| f.0.as_ref()) else { return vec![] };
        [names::VXLAN_CHAIN, names::WIREGUARD_CHAIN]
            .into_iter()
            .filter_map(|chain| {
                let target = format!("-j {chain}");
                let jumps: Vec<String> =
                    have.get("INPUT").into_iter().flatten().filter(|r| r.ends_with(&target)).cloned().collect();
                if !have.contains_key(chain) && jumps.is_empty() {
                    return None;
                }
                let mut restore = format!("*filter\n:{chain} - [0:0]\n");
                for rule in &jumps {
                    let _ = writeln!(restore, "-D INPUT {rule}");
                }
                let _ = write!(restore, "-X {chain}\nCOMMIT\n");
                Some(Step::new(
                    Phase::Rules,
                    self.kind(),
                    format!("remove ip6tables filter/{chain} and {} jumps to it", jumps.len()),
                    Change::RemoveIp6Chain { chain, jumps },
                    vec![cmd!["ip6tables-restore", "--noflush"].stdin(restore).into()],
                ))
            })
            .collect()
    }
}

/// The shared facts hold `iptables-save`'s output; on an IPv6 underlay it gathers `ip6tables-save` itself.
impl Piece for IptablesFirewall<'_> {
    fn kind(&self) -> Kind {
        Kind::Firewall(FirewallKind::Iptables)
    }

    fn gather(&self) -> Vec<Stmt> {
        if !self.node.underlay_is_ipv6() {
            return vec![];
        }
        vec![
            mark(SECTION),
            when(
                cmd!["has", "ip6tables-save"],
                vec![cmd!["ip6tables-save", "-t", "filter"].silent_stderr().may_fail().into()],
            ),
        ]
    }

    fn parse(&self, s: &Sections, facts: &mut HostFacts) -> Result<(), FactsError> {
        if self.node.underlay_is_ipv6() {
            facts.set_part(Ip6Facts(Some(parse6(s.get(SECTION)))));
        }
        Ok(())
    }

    fn teardown(&self, facts: &HostFacts) -> Vec<Step> {
        [names::VXLAN_CHAIN, names::WIREGUARD_CHAIN]
            .into_iter()
            .flat_map(|chain| remove_chain_steps(self.kind(), "filter", chain, facts))
            .chain(self.teardown6(facts))
            .collect()
    }
}

impl Component for IptablesFirewall<'_> {
    /// ip6tables and its save/restore come in the same packages as iptables (Debian `iptables`, RPM
    /// `iptables-nft`), and the gather script's tool list names only the IPv4 ones: they stand for both.
    fn needs(&self, _: &HostFacts) -> Vec<Need> {
        ["iptables", "iptables-save", "iptables-restore"].map(|t| need(t, "iptables", "iptables-nft")).to_vec()
    }

    fn diff(&self, facts: &HostFacts, _: &Ctx) -> Vec<Step> {
        let chains = std::iter::once(vxlan_chain(self.node)).chain(wireguard_chain(self.node)).collect();
        let mut steps = chain_steps(self.kind(), chains, facts, Concern::Peers);
        steps.extend(self.diff6(facts));
        steps
    }

    fn preflight(&self, _: &HostFacts) -> Vec<String> {
        vec![]
    }

    fn capabilities(&self) -> Capabilities<'_> {
        Capabilities::NONE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(hosts: [&str; 2], cluster: &str) -> crate::plan::ClusterPlan {
        let text = format!(
            "cluster: {{cidr: 10.0.0.0/8, backend: linux{cluster}}}\nnodes: [{{name: a, host: \"{}\"}}, {{name: b, host: \"{}\"}}]\n",
            hosts[0], hosts[1]
        );
        let inv = crate::model::inventory::parse(std::path::Path::new("t.yaml"), &text).unwrap();
        let lock = crate::model::ipam::assign(&inv, None).unwrap();
        crate::plan::plan(&inv, &lock)
    }

    fn diff6(plan: &crate::plan::ClusterPlan, facts: &HostFacts) -> Vec<Step> {
        IptablesFirewall { node: &plan.nodes[0] }.diff6(facts)
    }

    #[test]
    fn an_ipv6_underlay_gets_ip6tables_chains_once() {
        let plan = plan_of(["fd78::1", "fd78::2"], "");
        let steps = diff6(&plan, &HostFacts::default());
        assert_eq!(steps.len(), 1);
        let script = crate::shell::render(&steps[0].commands, 0);
        assert!(script.contains("-A VXMESH-VXLAN -s fd78::2/128 -m comment --comment vxmesh -j ACCEPT\n"), "{script}");
        assert!(script.contains("-A VXMESH-VXLAN -m comment --comment vxmesh -j DROP\n"), "{script}");
        assert!(
            script.contains("ip6tables -w -t filter -I INPUT 1 -p udp -m udp --dport 4789 -m comment --comment vxmesh -j VXMESH-VXLAN"),
            "{script}"
        );
        // What ip6tables-save prints after that: nothing left to do.
        let saved = "*filter\n:INPUT ACCEPT [0:0]\n:VXMESH-VXLAN - [0:0]\n\
            -A INPUT -p udp -m udp --dport 4789 -m comment --comment vxmesh -j VXMESH-VXLAN\n\
            -A VXMESH-VXLAN -s fd78::2/128 -m comment --comment vxmesh -j ACCEPT\n\
            -A VXMESH-VXLAN -m comment --comment vxmesh -j DROP\nCOMMIT\n";
        let mut facts = HostFacts::default();
        facts.set_part(Ip6Facts(Some(parse6(saved))));
        assert!(diff6(&plan, &facts).is_empty());
        let teardown = IptablesFirewall { node: &plan.nodes[0] }.teardown6(&facts);
        assert_eq!(teardown.len(), 1, "the chain and its jump");
        assert!(diff6(&plan_of(["192.0.2.1", "192.0.2.2"], ""), &HostFacts::default()).is_empty(), "IPv4: none");
    }

    #[test]
    fn encrypted_over_ipv6_guards_wireguard_and_drops_vxlan_in_clear() {
        let plan = plan_of(["fd78::1", "fd78::2"], ", encryption: wireguard");
        let chains = chains6(&plan.nodes[0]);
        assert_eq!(chains[0].rules, ["-m comment --comment vxmesh -j DROP"], "VXLAN comes through WireGuard only");
        assert_eq!(chains[1].chain, names::WIREGUARD_CHAIN);
        assert_eq!(chains[1].rules[0], "-s fd78::2/128 -m comment --comment vxmesh -j ACCEPT");
    }
}
