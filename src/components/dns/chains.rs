//! The names' iptables chains: the server's ports open to the mesh only (filter, from INPUT), and containers'
//! queries for the cluster's domain and the mesh's reverse zones, wherever docker's embedded DNS forwards them,
//! sent to this host's server (nat, from PREROUTING, matched on the query's name). Other queries are left alone.

use std::fmt::Write as _;

use serde::Serialize;

use super::{Change, Spec, files};
use crate::cmd;
use crate::components::core::{Kind, Phase, Step};
use crate::components::rules::remove_chain_steps;
use crate::facts::HostFacts;
use crate::model::names;
use crate::shell::{Cmd, Stmt, Word};

/// One chain of ours and its one jump, each rule as iptables-save prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Chain {
    pub table: &'static str,
    pub parent: &'static str,
    pub chain: &'static str,
    pub jump: String,
    pub rules: Vec<String>,
}

pub fn planned(spec: &Spec) -> [Chain; 2] {
    let t = format!("-m comment --comment {}", names::RULE_TAG);
    let (listen, bridge) = (spec.listen, &spec.bridge);
    [
        Chain {
            table: "filter",
            parent: "INPUT",
            chain: names::DNS_CHAIN,
            jump: format!("-d {listen}/32 {t} -j {}", names::DNS_CHAIN),
            rules: vec![
                format!("-s {} -i {} {t} -j RETURN", spec.cluster, names::SWITCH_BRIDGE),
                format!("-s {} -i {bridge} {t} -j RETURN", spec.subnet),
                format!("-i lo {t} -j RETURN"),
                format!("-p udp -m udp --dport 53 {t} -j DROP"),
                format!("-p tcp -m tcp --dport 53 {t} -j DROP"),
                format!("-p udp -m udp --dport 69 {t} -j DROP"),
            ],
        },
        Chain {
            table: "nat",
            parent: "PREROUTING",
            chain: names::DNS_NAT_CHAIN,
            jump: format!("-i {bridge} -p udp -m udp --dport 53 {t} -j {}", names::DNS_NAT_CHAIN),
            // The domain's names, then the mesh's reverse zones (PTR queries for its addresses).
            rules: std::iter::once(&spec.domain)
                .chain(&spec.reverse)
                .map(|zone| {
                    format!(
                        "-p udp -m udp --dport 53 -m string --hex-string \"{}\" --algo bm --icase {t} -j DNAT \
                         --to-destination {listen}:53",
                        files::qname_suffix_hex(zone)
                    )
                })
                .collect(),
        },
    ]
}

fn iptables(table: &'static str, verb: &'static str, parent: &'static str, rest: &str) -> Cmd {
    let mut argv: Vec<Word> = vec!["iptables".into(), "-w".into(), "-t".into(), Word::Lit(table), Word::Lit(verb)];
    argv.push(Word::Lit(parent));
    if verb == "-I" {
        argv.push("1".into());
    }
    // Our own jump rules hold no quoted parts: one word each.
    argv.extend(rest.split_whitespace().map(|w| Word::Data(w.to_string())));
    Cmd::new(argv)
}

/// Whether the host has the chain exactly, with exactly one jump to it. The jump's place is not checked: the
/// firewall's chain goes first in INPUT, and each insisting on first place would move the other on every run.
pub fn current(c: &Chain, facts: &HostFacts) -> bool {
    let ipt = &facts.iptables;
    let jumps = ipt.chain(c.table, c.parent).map_or(0, |r| r.iter().filter(|r| **r == c.jump).count());
    ipt.chain(c.table, c.chain) == Some(&c.rules) && jumps == 1
}

fn commands(c: &Chain) -> Vec<Stmt> {
    let mut restore = format!("*{}\n:{} - [0:0]\n", c.table, c.chain);
    for r in &c.rules {
        let _ = writeln!(restore, "-A {} {r}", c.chain);
    }
    restore.push_str("COMMIT\n");
    vec![
        cmd!["iptables-restore", "--noflush"].stdin(restore).into(),
        Stmt::Repeat(iptables(c.table, "-D", c.parent, &c.jump).silent_stderr()),
        Stmt::Run(iptables(c.table, "-I", c.parent, &c.jump)),
    ]
}

pub fn steps(spec: &Spec, facts: &HostFacts) -> Vec<Step> {
    planned(spec)
        .into_iter()
        .filter(|c| !current(c, facts))
        .map(|c| {
            let description = match c.table {
                "nat" => format!(
                    "send containers' queries for `{}` to this host's name server (iptables {}/{})",
                    spec.domain, c.table, c.chain
                ),
                _ => format!(
                    "open the name server's ports on {} to the mesh only (iptables {}/{})",
                    spec.listen, c.table, c.chain
                ),
            };
            let commands = commands(&c);
            Step::new(Phase::Rules, Kind::Dns, description, Change::NamesChain(c), commands)
        })
        .collect()
}

pub fn removal(facts: &HostFacts) -> Vec<Step> {
    [("nat", names::DNS_NAT_CHAIN), ("filter", names::DNS_CHAIN)]
        .into_iter()
        .flat_map(|(table, chain)| remove_chain_steps(Kind::Dns, table, chain, facts))
        .collect()
}
