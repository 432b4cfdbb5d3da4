//! Names across hosts (`cluster.dns`): each host runs dnsmasq on its switch address, fed by a watcher of docker's
//! events that publishes the host's container names and fetches its peers' (docs/architecture.md, "Names").

mod chains;
mod facts;
pub mod files;

use std::net::Ipv4Addr;
use std::sync::Arc;

use ipnet::Ipv4Net;
use serde::Serialize;

pub use facts::DnsFacts;

use super::core::{Capabilities, Component, Ctx, Kind, Need, Phase, Piece, Step, need};
use crate::cmd;
use crate::facts::{FactsError, HostFacts, Sections};
use crate::model::inventory::{DnsSettings, is_label};
use crate::model::names::{self, IfName};
use crate::plan::NodePlan;
use crate::shell::{Stmt, Word, when};

/// What one host serves and fetches, from its node's plan and `cluster.dns`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Spec {
    pub domain: String,
    /// The node's name as a DNS label (lower case): `web.NODE.DOMAIN`.
    pub node: String,
    /// The switch address: where the server listens, reachable from the mesh only.
    pub listen: Ipv4Addr,
    /// The cluster's range: the only sources that may ask over sw0.
    pub cluster: Ipv4Net,
    /// This host's container subnet: the only addresses its records may hold.
    pub subnet: Ipv4Net,
    pub network: String,
    /// docker's bridge for the mesh's network: where containers' queries come from.
    pub bridge: IfName,
    /// The reverse zones of the mesh's addresses (`16.172.in-addr.arpa`, ...), blocks that are not the mesh's left out.
    pub reverse: Vec<String>,
    pub peers: Vec<PeerNames>,
}

/// A peer whose records this host fetches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerNames {
    pub label: String,
    pub name: Arc<str>,
    pub switch: Ipv4Addr,
    /// Its records must lie in its subnet: a compromised peer cannot claim another host's addresses.
    pub subnet: Ipv4Net,
}

impl Spec {
    /// `None` without a docker bridge (`docker.mode: none`: no containers to name). Peers whose names are not DNS
    /// labels are left out (their hosts refuse names in preflight).
    pub fn new(node: &NodePlan, settings: &DnsSettings) -> Option<Spec> {
        let bridge = node.docker.bridge.clone()?;
        Some(Spec {
            domain: settings.domain.clone(),
            node: node.name.to_ascii_lowercase(),
            listen: node.switch.address.addr(),
            cluster: node.forward_accept,
            subnet: node.subnet,
            network: node.docker.network.clone(),
            bridge,
            reverse: reverse_zones(node.forward_accept, &node.forward_exclude),
            peers: node
                .tunnels()
                .map(|t| PeerNames {
                    label: t.peer.to_ascii_lowercase(),
                    name: t.peer.clone(),
                    switch: t.peer_switch,
                    subnet: t.peer_subnet,
                })
                .filter(|p| is_label(&p.label))
                .collect(),
        })
    }
}

/// The `in-addr.arpa` zones that cover `cidr` on octet boundaries (16 for a /12), without those inside an excluded
/// block (docker0's 172.17.0.0/16: its reverse names stay the host's resolvers' business).
pub fn reverse_zones(cidr: Ipv4Net, exclude: &[Ipv4Net]) -> Vec<String> {
    let grain = cidr.prefix_len().div_ceil(8).clamp(1, 4) * 8;
    let Ok(blocks) = cidr.subnets(grain) else { return vec![] };
    blocks
        .filter(|b| !exclude.iter().any(|e| e.contains(b)))
        .map(|b| {
            let octets = b.network().octets();
            let kept = usize::from(grain / 8);
            let mut labels: Vec<String> = octets[..kept].iter().rev().map(u8::to_string).collect();
            labels.push("in-addr.arpa".into());
            labels.join(".")
        })
        .collect()
}

#[derive(Debug, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// dnsmasq's configuration, the watcher and their units, written and (re)started.
    InstallNames {
        listen: Ipv4Addr,
        domain: String,
    },
    /// Both units started again (the files were current).
    StartNames,
    /// The rules: mesh-only ports, and containers' queries for the domain sent to this host's server.
    NamesChain(chains::Chain),
    RemoveNames,
}

/// The planned component: this host serves names.
pub struct Names<'a> {
    pub node: &'a NodePlan,
    pub settings: &'a DnsSettings,
}

/// What an earlier run with names on may have left: gathered and removed only (`down`, or names turned off).
pub struct Remains;

fn systemd(then: Vec<Stmt>) -> Stmt {
    when(cmd!["test", "-d", "/run/systemd/system"], then)
}

fn restart() -> Stmt {
    systemd(vec![cmd!["systemctl", "restart", names::DNS_UNIT, names::DNS_WATCH_UNIT].into()])
}

fn gather() -> Vec<Stmt> {
    facts::gather()
}

fn teardown(facts: &HostFacts) -> Vec<Step> {
    let have = facts.part::<DnsFacts>().cloned().unwrap_or_default();
    let mut steps = chains::removal(facts);
    if have.anything() {
        steps.push(Step::new(
            Phase::Firewall,
            Kind::Dns,
            format!("stop and remove the mesh's name server and watcher ({})", names::DNS_UNIT),
            Change::RemoveNames,
            vec![
                systemd(vec![
                    cmd!["systemctl", "stop", names::DNS_WATCH_UNIT, names::DNS_UNIT].silent().may_fail().into(),
                ]),
                cmd![
                    "rm",
                    "-f",
                    names::DNS_UNIT_LINK,
                    names::DNS_WATCH_UNIT_LINK,
                    names::DNS_UNIT_PATH,
                    names::DNS_WATCH_UNIT_PATH,
                    names::DNS_CONFIG,
                    names::DNS_WATCHER
                ]
                .into(),
                cmd!["rm", "-rf", names::DNS_RUN_DIR].into(),
                cmd!["rmdir", names::DNS_DIR].silent().may_fail().into(),
                systemd(vec![cmd!["systemctl", "daemon-reload"].into()]),
            ],
        ));
    }
    steps
}

impl Piece for Remains {
    fn kind(&self) -> Kind {
        Kind::Dns
    }
    fn gather(&self) -> Vec<Stmt> {
        gather()
    }
    fn parse(&self, s: &Sections, facts: &mut HostFacts) -> Result<(), FactsError> {
        facts::parse(s, facts)
    }
    fn teardown(&self, facts: &HostFacts) -> Vec<Step> {
        teardown(facts)
    }
}

impl Piece for Names<'_> {
    fn kind(&self) -> Kind {
        Kind::Dns
    }
    fn gather(&self) -> Vec<Stmt> {
        gather()
    }
    fn parse(&self, s: &Sections, facts: &mut HostFacts) -> Result<(), FactsError> {
        facts::parse(s, facts)
    }
    fn teardown(&self, facts: &HostFacts) -> Vec<Step> {
        teardown(facts)
    }
}

impl Names<'_> {
    fn spec(&self) -> Option<Spec> {
        Spec::new(self.node, self.settings)
    }
}

impl Component for Names<'_> {
    /// dnsmasq and curl are not in the shared tool list: the component checks them itself ([`Names::preflight`]).
    fn needs(&self, _: &HostFacts) -> Vec<Need> {
        vec![need("iptables-restore", "iptables", "iptables-nft")]
    }

    fn preflight(&self, facts: &HostFacts) -> Vec<String> {
        let Some(have) = facts.part::<DnsFacts>() else { return vec![] };
        let mut problems = vec![];
        let node = &self.node.name;
        let missing: Vec<(&str, &str, &str)> =
            [(have.dnsmasq, "dnsmasq", "dnsmasq-base", "dnsmasq"), (have.curl, "curl", "curl", "curl")]
                .into_iter()
                .filter(|(present, ..)| !present)
                .map(|(_, tool, deb, rpm)| (tool, deb, rpm))
                .collect();
        if !missing.is_empty() {
            let tools: Vec<&str> = missing.iter().map(|m| m.0).collect();
            let (how, pkgs): (&str, Vec<&str>) = if facts.is_rpm_family() {
                ("dnf install -y", missing.iter().map(|m| m.2).collect())
            } else {
                ("apt-get install -y", missing.iter().map(|m| m.1).collect())
            };
            problems.push(format!(
                "cluster.dns needs {} on {node}; install with: {how} {}",
                tools.join(", "),
                pkgs.join(" ")
            ));
        }
        if !have.systemd {
            problems.push(format!(
                "cluster.dns runs its name server and watcher as systemd units, and {node} does not run systemd"
            ));
        }
        if !is_label(&node.to_ascii_lowercase()) {
            problems.push(format!(
                "cluster.dns: node name `{}` is not a DNS label (letters, digits and `-`): its containers could not \
                 be named NAME.{}.{}; rename the node or turn cluster.dns off",
                crate::model::inventory::shown(node),
                crate::model::inventory::shown(node),
                self.settings.domain
            ));
        }
        if self.node.docker.bridge.is_none() {
            problems.push("cluster.dns needs docker on the mesh (cluster.docker.mode `network` or `docker0`)".into());
        }
        problems
    }

    fn diff(&self, facts: &HostFacts, _: &Ctx) -> Vec<Step> {
        let Some(spec) = self.spec() else { return vec![] };
        let mut steps = chains::steps(&spec, facts);
        let conf = files::dnsmasq_conf(&spec);
        let watcher = files::watcher(&spec);
        let (server, watch) = (files::server_unit(), files::watch_unit());
        let empty = DnsFacts::default();
        let have = facts.part::<DnsFacts>().unwrap_or(&empty);
        let current = have.config.as_deref() == files::hash_of(&conf)
            && have.watcher.as_deref() == files::hash_of(&watcher)
            && have.server_unit.as_deref() == files::hash_of(&server)
            && have.watch_unit.as_deref() == files::hash_of(&watch)
            && have.enabled;
        let file = |path: &'static str, text: &str, mode| Stmt::WriteFile {
            path,
            content: vec![Word::Data(text.to_string())],
            mode,
        };
        if !current {
            steps.push(
                Step::new(
                    Phase::Firewall,
                    self.kind(),
                    format!(
                        "install the mesh's name server (dnsmasq on {}:53, the mesh only) and the watcher of docker's \
                         containers ({} and {})",
                        spec.listen,
                        names::DNS_UNIT,
                        names::DNS_WATCH_UNIT
                    ),
                    Change::InstallNames { listen: spec.listen, domain: spec.domain.clone() },
                    vec![
                        cmd!["mkdir", "-p", names::DNS_DIR, "/etc/systemd/system/multi-user.target.wants"].into(),
                        file(names::DNS_CONFIG, &conf, Some("644")),
                        file(names::DNS_WATCHER, &watcher, Some("755")),
                        file(names::DNS_UNIT_PATH, &server, Some("644")),
                        file(names::DNS_WATCH_UNIT_PATH, &watch, Some("644")),
                        cmd!["ln", "-sf", names::DNS_UNIT_PATH, names::DNS_UNIT_LINK].into(),
                        cmd!["ln", "-sf", names::DNS_WATCH_UNIT_PATH, names::DNS_WATCH_UNIT_LINK].into(),
                        systemd(vec![cmd!["systemctl", "daemon-reload"].into()]),
                        restart(),
                    ],
                )
                // systemd starts both units at boot itself.
                .kept_across_reboots(),
            );
        } else if facts.gathered && !(have.server_active && have.watch_active) {
            steps.push(
                Step::new(
                    Phase::Firewall,
                    self.kind(),
                    format!(
                        "start the mesh's name server and watcher ({} and {})",
                        names::DNS_UNIT,
                        names::DNS_WATCH_UNIT
                    ),
                    Change::StartNames,
                    vec![restart()],
                )
                .kept_across_reboots(),
            );
        }
        steps
    }

    fn capabilities(&self) -> Capabilities<'_> {
        Capabilities::NONE
    }
}

#[cfg(test)]
mod tests;
