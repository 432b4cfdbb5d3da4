//! The pieces of a node's network, each behind [`Component`]; this module is where a host's pieces are chosen,
//! once per host and purpose ([`HostComponents`]).

pub mod boot;
pub mod coexist;
pub mod core;
pub mod dns;
mod docker;
pub mod docker0;
mod docker_inspect;
pub mod docker_network;
pub mod firewall;
pub mod linux;
mod liveness;
pub mod overlay6;
pub mod ovs;
pub mod rules;
pub mod switch;
pub mod sysctl;
pub mod veth;
pub mod wireguard;

pub use core::{
    AnyChange, Capabilities, Claims, Component, Concern, Ctx, Kind, Mtu, Need, PeerLink, Phase, Piece, Presence,
    RefuseTeardown, Status, Step,
};

use crate::facts::HostFacts;
use crate::model::inventory::{Backend, DockerMode, FirewallKind};
use crate::plan::NodePlan;

/// How a piece takes part in a run.
enum Entry<'a> {
    /// The plan asks for it: every question is asked of it.
    Planned(Box<dyn Component + 'a>),
    /// One of the backends `firewall: auto` may pick: gathered and removed like any piece, planned only when the
    /// facts pick it ([`firewall::resolve`]).
    Candidate(Box<dyn Component + 'a>),
    /// Not planned but maybe left on the host by an earlier run (a firewall used before, WireGuard from when
    /// encryption was on), and the boot unit, whose diff needs the finished boot script: gathered and removed only.
    Removable(Box<dyn Piece + 'a>),
}

/// What a list of components is for: `up` (and `status`, `plan`) or `down`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Up,
    Teardown,
}

/// A host's components, chosen once from its node's plan: the one place that decides which pieces a host has.
pub struct HostComponents<'a> {
    pub node: &'a NodePlan,
    entries: Vec<Entry<'a>>,
}

impl<'a> HostComponents<'a> {
    /// The components `up` plans, checks and gathers facts for, in the order their steps apply within a phase,
    /// the boot unit last.
    pub fn up(node: &'a NodePlan) -> HostComponents<'a> {
        HostComponents::new(node, Purpose::Up)
    }

    /// What `down` looks at: the node's components with every firewall backend (any may have been used before)
    /// and WireGuard even when encryption is off, the boot unit last.
    pub fn teardown(node: &'a NodePlan) -> HostComponents<'a> {
        HostComponents::new(node, Purpose::Teardown)
    }

    pub fn new(node: &'a NodePlan, purpose: Purpose) -> HostComponents<'a> {
        let mut v: Vec<Entry<'a>> = vec![Entry::Planned(Box::new(sysctl::Sysctls { node }))];
        if let Some(spec) = &node.wireguard {
            v.push(Entry::Planned(Box::new(wireguard::Wireguard { node, spec })));
        }
        if let Some(bridge) = &node.docker.bridge {
            v.push(Entry::Planned(Box::new(veth::Veth { node, bridge })));
        }
        match node.backend {
            Backend::Ovs => v.push(Entry::Planned(Box::new(ovs::Ovs { node }))),
            Backend::Linux => v.push(Entry::Planned(Box::new(linux::Linux { node }))),
        }
        match node.docker.mode {
            DockerMode::Network => {
                v.push(Entry::Planned(Box::new(docker_network::DockerNetworkAttachment { spec: &node.docker })))
            }
            DockerMode::Docker0 => {
                v.push(Entry::Planned(Box::new(docker0::Docker0 { spec: &node.docker, cluster: node.forward_accept })))
            }
            DockerMode::None => {}
        }
        match (&node.ipv6, purpose) {
            (Some(spec), _) => v.push(Entry::Planned(Box::new(overlay6::Overlay6 { node, spec }))),
            (None, Purpose::Teardown) => v.push(Entry::Removable(Box::new(overlay6::Remains))),
            (None, Purpose::Up) => {}
        }
        v.push(Entry::Planned(Box::new(rules::Rules { node })));
        match (purpose, &node.dns) {
            (Purpose::Up, Some(settings)) => v.push(Entry::Planned(Box::new(dns::Names { node, settings }))),
            (Purpose::Up, None) => {}
            (Purpose::Teardown, _) => v.push(Entry::Removable(Box::new(dns::Remains))),
        }
        if purpose == Purpose::Up {
            v.push(Entry::Planned(Box::new(coexist::Coexistence { node })));
        }
        let backends = || firewall::backends(node);
        match (purpose, node.firewall.kind) {
            (Purpose::Teardown, _) => v.extend(backends().map(|b| Entry::Removable(b))),
            (Purpose::Up, FirewallKind::Auto) => v.extend(backends().map(Entry::Candidate)),
            (Purpose::Up, FirewallKind::None) => {}
            (Purpose::Up, kind) => {
                v.extend(backends().filter(|b| b.kind() == Kind::Firewall(kind)).map(Entry::Planned))
            }
        }
        if purpose == Purpose::Teardown && node.wireguard.is_none() {
            v.push(Entry::Removable(Box::new(wireguard::Remains)));
        }
        v.push(Entry::Removable(Box::new(boot::Boot)));
        HostComponents { node, entries: v }
    }

    /// Every piece, planned or not: what the facts script gathers and parses, and what teardown removes.
    pub fn pieces(&self) -> impl Iterator<Item = &(dyn Piece + 'a)> {
        self.entries.iter().map(|e| match e {
            Entry::Planned(c) | Entry::Candidate(c) => c.as_ref() as &(dyn Piece + 'a),
            Entry::Removable(p) => p.as_ref(),
        })
    }

    /// The components planned on this host as the facts show it (`auto` has picked its firewall).
    pub fn planned<'s>(&'s self, facts: &HostFacts) -> impl Iterator<Item = &'s (dyn Component + 'a)> + use<'s, 'a> {
        let chosen = firewall::resolve(self.node.firewall.kind, facts);
        self.entries.iter().filter_map(move |e| match e {
            Entry::Planned(c) => Some(c.as_ref()),
            Entry::Candidate(c) => (c.kind() == Kind::Firewall(chosen)).then_some(c.as_ref()),
            Entry::Removable(_) => None,
        })
    }

    /// Every capability of the planned components, each with its component's kind.
    pub fn capabilities<'s>(
        &'s self,
        facts: &HostFacts,
    ) -> impl Iterator<Item = (Kind, Capabilities<'s>)> + use<'s, 'a> {
        self.planned(facts).map(|c| (c.kind(), c.capabilities()))
    }

    /// Why removing the mesh from this host now would harm, from every planned component that can refuse.
    pub fn refusals(&self, facts: &HostFacts) -> Vec<String> {
        let planned = self.entries.iter().filter_map(|e| match e {
            Entry::Planned(c) | Entry::Candidate(c) => Some(c),
            Entry::Removable(_) => None,
        });
        planned.filter_map(|c| c.capabilities().refusal?.refuse_teardown(facts)).collect()
    }
}
