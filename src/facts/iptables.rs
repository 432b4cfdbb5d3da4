//! Rules from `iptables-save`: table -> chain -> rules, each rule as iptables-save prints it (after `-A CHAIN `).

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Iptables {
    pub tables: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

impl Iptables {
    pub fn chain(&self, table: &str, chain: &str) -> Option<&Vec<String>> {
        self.tables.get(table)?.get(chain)
    }
}

pub fn parse(body: &str) -> Iptables {
    let mut out = Iptables::default();
    let mut table: Option<String> = None;
    for line in body.lines().map(str::trim) {
        if let Some(t) = line.strip_prefix('*') {
            table = Some(t.to_string());
            out.tables.entry(t.to_string()).or_default();
        } else if let (Some(t), Some(decl)) = (&table, line.strip_prefix(':')) {
            let chain = decl.split_whitespace().next().unwrap_or_default();
            out.tables.entry(t.clone()).or_default().entry(chain.to_string()).or_default();
        } else if let (Some(t), Some(rule)) = (&table, line.strip_prefix("-A ")) {
            let (chain, spec) = rule.split_once(' ').unwrap_or((rule, ""));
            out.tables.entry(t.clone()).or_default().entry(chain.to_string()).or_default().push(spec.to_string());
        } else if line == "COMMIT" {
            table = None;
        }
    }
    out
}
