//! The mesh's docker network from `docker network inspect NAME` (`[]` when it does not exist).

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

pub fn parse(body: &str) -> Result<Option<DockerNetwork>, FactsError> {
    if body.trim().is_empty() {
        return Ok(None);
    }
    let raw: Vec<Raw> = serde_json::from_str(body).map_err(|e| FactsError::new("docker-network", e.to_string()))?;
    Ok(raw.into_iter().next().map(|r| {
        let cfg = r.ipam.and_then(|i| i.config).and_then(|c| c.into_iter().next());
        DockerNetwork {
            name: r.name,
            driver: r.driver,
            subnet: cfg.as_ref().and_then(|c| c.subnet.clone()),
            gateway: cfg.and_then(|c| c.gateway),
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
        }
    }))
}
