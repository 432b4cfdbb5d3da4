//! The pieces of a node's network, each behind [`Component`]; this module is where a node's pieces are chosen.

pub mod boot;
pub mod core;
mod docker;
pub mod docker0;
mod docker_inspect;
pub mod docker_network;
pub mod firewall;
pub mod kernel;
pub mod linux;
mod liveness;
pub mod ovs;
pub mod rules;
pub mod switch;
pub mod veth;
pub mod wireguard;

pub use core::{Change, Component, Concern, Ctx, Mtu, Need, PeerLink, Phase, Step};

use crate::model::inventory::{Backend, DockerMode, FirewallKind};
use crate::plan::NodePlan;

/// A node's components, in the order their steps apply within a phase.
pub fn for_node(node: &NodePlan) -> Vec<Box<dyn Component + '_>> {
    let mut v: Vec<Box<dyn Component + '_>> = vec![Box::new(kernel::Kernel { node })];
    if node.wireguard.is_some() {
        v.push(Box::new(wireguard::Wireguard { node }));
    }
    if let Some(bridge) = &node.docker.bridge {
        v.push(Box::new(veth::Veth { node, bridge }));
    }
    match node.backend {
        Backend::Ovs => v.push(Box::new(ovs::Ovs { node })),
        Backend::Linux => v.push(Box::new(linux::Linux { node })),
    }
    match node.docker.mode {
        DockerMode::Network => v.push(Box::new(docker_network::DockerNetworkAttachment { spec: &node.docker })),
        DockerMode::Docker0 => v.push(Box::new(docker0::Docker0 { spec: &node.docker, cluster: node.forward_accept })),
        DockerMode::None => {}
    }
    v.push(Box::new(rules::Rules { node }));
    match node.firewall.kind {
        FirewallKind::Iptables => v.push(Box::new(firewall::IptablesFirewall { node })),
        FirewallKind::Nftables => v.push(Box::new(firewall::Nftables { node })),
        FirewallKind::Firewalld => v.push(Box::new(firewall::Firewalld { node })),
        FirewallKind::Auto => v.push(Box::new(firewall::AnyFirewall::new(node))),
        FirewallKind::None => {}
    }
    v
}

/// What `down` looks at: the node's components, with every firewall backend (any may have been used before).
pub fn for_teardown(node: &NodePlan) -> Vec<Box<dyn Component + '_>> {
    let mut v: Vec<Box<dyn Component + '_>> = for_node(node)
        .into_iter()
        .filter(|c| !["iptables", "nftables", "firewalld", "firewall"].contains(&c.name()))
        .collect();
    v.push(Box::new(firewall::AnyFirewall::new(node)));
    // Encryption may have been on before: whatever is left of it goes too.
    if node.wireguard.is_none() {
        v.push(Box::new(wireguard::Wireguard { node }));
    }
    v
}
