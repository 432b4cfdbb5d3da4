//! Docker networks from `docker network inspect` (of every network at once): the mesh's own, and the others'
//! subnets, which must not collide with the mesh.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::facts::FactsError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DockerNetwork {
    pub name: String,
    pub driver: String,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    /// Driver options, e.g. `com.docker.network.bridge.name`.
    pub options: BTreeMap<String, String>,
    /// Names of the containers attached right now: recreating or removing the network would cut them off.
    pub containers: Vec<String>,
    /// Every IPv4 subnet of the network (`subnet` is the first).
    pub subnets: Vec<String>,
    /// Its IPv6 subnet and gateway, when it has IPv6 (`EnableIPv6`).
    pub ipv6: bool,
    pub subnet6: Option<String>,
    pub gateway6: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Raw {
    name: String,
    driver: String,
    #[serde(rename = "IPAM")]
    ipam: Option<RawIpam>,
    #[serde(default)]
    options: Option<BTreeMap<String, String>>,
    #[serde(default)]
    containers: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, rename = "EnableIPv6")]
    enable_ipv6: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawIpam {
    config: Option<Vec<RawIpamConfig>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawIpamConfig {
    subnet: Option<String>,
    gateway: Option<String>,
}

/// Every network in the output (empty when docker printed nothing).
pub fn parse_all(body: &str) -> Result<Vec<DockerNetwork>, FactsError> {
    if body.trim().is_empty() {
        return Ok(vec![]);
    }
    let raw: Vec<Raw> = serde_json::from_str(body).map_err(|e| FactsError::new("docker-networks", e.to_string()))?;
    Ok(raw.into_iter().map(network).collect())
}

fn network(r: Raw) -> DockerNetwork {
    let all = r.ipam.and_then(|i| i.config).unwrap_or_default();
    // IPv4 and IPv6 configs come in either order; an IPv6 subnet has a colon.
    let (v6, configs): (Vec<RawIpamConfig>, Vec<RawIpamConfig>) =
        all.into_iter().partition(|c| c.subnet.as_deref().is_some_and(|s| s.contains(':')));
    let cfg = configs.first();
    DockerNetwork {
        name: r.name,
        driver: r.driver,
        subnet: cfg.and_then(|c| c.subnet.clone()),
        gateway: cfg.and_then(|c| c.gateway.clone()),
        options: r.options.unwrap_or_default(),
        containers: {
            let mut names: Vec<String> = r
                .containers
                .unwrap_or_default()
                .iter()
                .map(|(id, c)| c["Name"].as_str().map_or_else(|| id.chars().take(12).collect(), String::from))
                .collect();
            names.sort();
            names
        },
        subnets: configs.iter().filter_map(|c| c.subnet.clone()).collect(),
        ipv6: r.enable_ipv6,
        subnet6: v6.first().and_then(|c| c.subnet.clone()),
        gateway6: v6.first().and_then(|c| c.gateway.clone()),
    }
}
