//! What every docker attachment shares: the docker CLI, a daemon that answers, and the other docker networks on
//! the host (their subnets must not collide with the mesh).

use ipnet::Ipv4Net;

use super::core::{Need, need};
use crate::cmd;
use crate::facts::{HostFacts, Sections, mark};
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

/// Every docker network on the host with its IPv4 subnets.
#[derive(Debug, Clone, Default)]
pub struct DockerNetworks(pub Vec<(String, Vec<Ipv4Net>)>);

const SECTION: &str = "docker-networks";

/// One `docker network inspect` of all networks: a line `NAME SUBNET...` each.
pub fn gather_networks() -> Vec<Stmt> {
    vec![
        mark(SECTION),
        when(
            cmd!["has", "docker"],
            vec![
                cmd!["docker", "network", "ls", "-q"]
                    .silent_stderr()
                    .pipe(cmd![
                        "xargs",
                        "-r",
                        "docker",
                        "network",
                        "inspect",
                        "--format",
                        "{{.Name}}{{range .IPAM.Config}} {{.Subnet}}{{end}}"
                    ])
                    .silent_stderr()
                    .may_fail()
                    .into(),
            ],
        ),
    ]
}

pub fn parse_networks(s: &Sections, facts: &mut HostFacts) {
    let nets = s
        .get(SECTION)
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let name = f.next()?.to_string();
            Some((name, f.filter_map(|n| n.parse::<Ipv4Net>().ok()).collect()))
        })
        .collect();
    facts.set_part(DockerNetworks(nets));
}

/// The subnets of docker networks other than `ours`.
pub fn claims(facts: &HostFacts, ours: &str) -> Vec<(String, Ipv4Net)> {
    facts
        .part::<DockerNetworks>()
        .map(|d| {
            d.0.iter()
                .filter(|(name, _)| name != ours)
                .flat_map(|(name, nets)| nets.iter().map(move |n| (format!("docker network {name} ({n})"), *n)))
                .collect()
        })
        .unwrap_or_default()
}
