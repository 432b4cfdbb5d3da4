//! What every docker attachment shares: the docker CLI, a daemon that answers, and the other docker networks on
//! the host (their subnets must not collide with the mesh).

use ipnet::Ipv4Net;

use super::core::{Need, need};
use super::docker_inspect;
pub use super::docker_inspect::DockerNetwork;
use crate::cmd;
use crate::facts::{FactsError, HostFacts, Sections, mark};
use crate::shell::{Stmt, when};

pub fn needs() -> Vec<Need> {
    vec![need("docker", "docker.io", "docker-ce (from docker's repository) or moby-engine")]
}

/// The facts script asks the daemon for its version: none means it does not answer.
pub fn preflight(facts: &HostFacts) -> Vec<String> {
    if facts.tools.get("docker").is_some_and(|t| t.version.is_empty()) {
        vec!["docker is installed but its daemon does not answer: start it (systemctl start docker)".into()]
    } else {
        vec![]
    }
}

/// Every docker network on the host, as `docker network inspect` shows it.
#[derive(Debug, Clone, Default)]
pub struct DockerNetworks(pub Vec<DockerNetwork>);

impl DockerNetworks {
    pub fn named(&self, name: &str) -> Option<&DockerNetwork> {
        self.0.iter().find(|n| n.name == name)
    }
}

const SECTION: &str = "docker-networks";

/// One `docker network inspect` of every network: the mesh's own and the others', in one docker call.
pub fn gather_networks() -> Vec<Stmt> {
    vec![
        mark(SECTION),
        when(
            cmd!["has", "docker"],
            vec![
                cmd!["docker", "network", "ls", "-q"]
                    .silent_stderr()
                    .pipe(cmd!["xargs", "-r", "docker", "network", "inspect"])
                    .silent_stderr()
                    .may_fail()
                    .into(),
            ],
        ),
    ]
}

pub fn parse_networks(s: &Sections, facts: &mut HostFacts) -> Result<(), FactsError> {
    facts.set_part(DockerNetworks(docker_inspect::parse_all(s.get(SECTION))?));
    Ok(())
}

/// The subnets of docker networks other than `ours`.
pub fn claims(facts: &HostFacts, ours: &str) -> Vec<(String, Ipv4Net)> {
    facts
        .part::<DockerNetworks>()
        .map(|d| {
            d.0.iter()
                .filter(|n| n.name != ours)
                .flat_map(|n| {
                    n.subnets
                        .iter()
                        .filter_map(|s| s.parse::<Ipv4Net>().ok())
                        .map(|s| (format!("docker network {} ({s})", n.name), s))
                })
                .collect()
        })
        .unwrap_or_default()
}
