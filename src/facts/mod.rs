//! What a host has now: one script gathers everything in one round trip, pure parsers turn its output into typed facts.

mod docker;
mod ip;
mod iptables;
mod nft;
mod ovs;
mod script;
mod text;

pub use docker::DockerNetwork;
pub use ip::{Link, Route};
pub use iptables::Iptables;
pub use nft::NftTable;
pub use ovs::{OvsBridge, OvsFacts, OvsInterface, OvsPort};
pub use script::gather_script;

use std::collections::BTreeMap;

use serde::Serialize;

/// A facts section that could not be read, with the section's name and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read the host's `{section}` facts: {message}")]
pub struct FactsError {
    pub section: String,
    pub message: String,
}

impl FactsError {
    pub fn new(section: &str, message: impl Into<String>) -> Self {
        FactsError { section: section.to_string(), message: message.into() }
    }
}

/// A tool the mesh needs, and the version it reported, if present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tool {
    pub path: String,
    pub version: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FirewalldFacts {
    pub running: bool,
    pub rich_rules: Vec<String>,
}

/// Everything vxmesh knows about one host's current state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostFacts {
    /// /etc/os-release, key by key.
    pub os: BTreeMap<String, String>,
    pub tools: BTreeMap<String, Tool>,
    pub ovs: OvsFacts,
    pub links: BTreeMap<String, Link>,
    pub routes: Vec<Route>,
    pub docker_network: Option<DockerNetwork>,
    /// /etc/docker/daemon.json as found (empty when absent); `docker0` mode merges into it.
    pub docker_daemon_json: String,
    pub iptables: Iptables,
    pub nft: Option<NftTable>,
    pub firewalld: FirewalldFacts,
    pub sysctls: BTreeMap<String, String>,
    /// TX checksum offload per device, for the devices vxmesh cares about.
    pub tx_offload: BTreeMap<String, bool>,
    pub boot: BootFacts,
}

/// The installed boot files' fingerprints, and whether the unit is enabled.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BootFacts {
    pub script: Option<String>,
    pub unit: Option<String>,
    pub enabled: bool,
}

impl HostFacts {
    /// Parses the whole output of [`gather_script`].
    pub fn parse(output: &str) -> Result<HostFacts, FactsError> {
        let sections = text::sections(output)?;
        let get = |name: &str| sections.get(name).map(String::as_str).unwrap_or("");
        Ok(HostFacts {
            os: text::key_values(get("os-release"), '='),
            tools: text::tools(get("tools")),
            ovs: ovs::parse(get("ovs-bridge"), get("ovs-port"), get("ovs-interface"))?,
            links: ip::parse_links(get("ip-addr"))?,
            routes: ip::parse_routes(get("ip-route"))?,
            docker_network: docker::parse(get("docker-network"))?,
            docker_daemon_json: get("docker-daemon-json").to_string(),
            iptables: iptables::parse(get("iptables-save")),
            nft: nft::parse(get("nft"))?,
            firewalld: FirewalldFacts {
                running: get("firewalld-state").trim() == "running",
                rich_rules: get("firewalld-rich-rules")
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(String::from)
                    .collect(),
            },
            sysctls: text::key_values(get("sysctl"), '='),
            tx_offload: text::offloads(get("tx-offload")),
            boot: {
                let kv = text::key_values(get("boot"), ' ');
                BootFacts {
                    script: kv.get("script").cloned(),
                    unit: kv.get("unit").cloned(),
                    enabled: get("boot").lines().any(|l| l.trim() == "enabled"),
                }
            },
        })
    }

    /// The MTU of the device that holds `ip`: the underlay the tunnels ride on.
    pub fn mtu_of_device_with(&self, ip: std::net::Ipv4Addr) -> Option<u32> {
        self.links.values().find(|l| l.addrs.iter().any(|a| a.addr() == ip)).map(|l| l.mtu)
    }
}
