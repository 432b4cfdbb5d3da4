//! Whether peers answer through the mesh, for data planes without BFD: one ping to each peer's switch address,
//! all at once, from the host's own sw0 (so through the tunnels). At most a second, and only for `status`'s sake.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::cmd;
use crate::facts::{HostFacts, Sections, mark};
use crate::shell::{Stmt, data};

const SECTION: &str = "peer-pings";

/// Which peer switch addresses answered a ping.
#[derive(Debug, Clone, Default)]
pub struct Answers(pub BTreeMap<Ipv4Addr, bool>);

pub fn gather(targets: &[Ipv4Addr]) -> Vec<Stmt> {
    let mut v = vec![mark(SECTION)];
    if targets.is_empty() {
        return v;
    }
    // Each ping in the background: a dead peer costs its one-second wait once, not once per peer.
    for t in targets {
        v.push(Stmt::If {
            conds: vec![cmd!["ping", "-c1", "-W1", "-q", data(t)].silent()],
            negate: false,
            then: vec![cmd!["echo", "up", data(t)].into()],
            otherwise: vec![cmd!["echo", "down", data(t)].into()],
        });
    }
    vec![mark(SECTION), Stmt::Background(v.split_off(1)), Stmt::Static("wait")]
}

pub fn parse(s: &Sections, facts: &mut HostFacts) {
    let answers = s
        .get(SECTION)
        .lines()
        .filter_map(|l| {
            let (state, ip) = l.split_once(' ')?;
            Some((ip.trim().parse().ok()?, state == "up"))
        })
        .collect();
    facts.set_part(Answers(answers));
}

/// `up`, `down`, or `None` when not asked.
pub fn state(facts: &HostFacts, ip: Ipv4Addr) -> Option<String> {
    facts.part::<Answers>()?.0.get(&ip).map(|up| if *up { "up".into() } else { "down".into() })
}
