//! The inventory exactly as written in YAML, every value with its location, before any rule is checked.

use serde::Deserialize;
use serde_saphyr::Spanned;

/// A value as the user wrote it, with where they wrote it.
pub type At<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInventory {
    pub cluster: At<RawCluster>,
    #[serde(default)]
    pub ssh: Option<At<RawSsh>>,
    pub nodes: At<Vec<At<RawNode>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub name: Option<At<String>>,
    pub cidr: At<String>,
    pub node_prefix: Option<At<i64>>,
    pub switch_cidr: Option<At<String>>,
    pub exclude: Option<Vec<At<String>>>,
    pub vni: Option<At<i64>>,
    pub port: Option<At<i64>>,
    pub mtu: Option<At<RawMtu>>,
    pub backend: Option<At<String>>,
    pub datapath: Option<At<String>>,
    pub docker: Option<At<RawDocker>>,
    pub nat: Option<At<bool>>,
    pub firewall: Option<At<String>>,
    pub outside: Option<At<String>>,
}

/// `mtu: auto` or `mtu: 1450`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawMtu {
    Number(i64),
    Word(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDocker {
    pub mode: Option<At<String>>,
    pub network: Option<At<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSsh {
    pub user: Option<At<String>>,
    pub port: Option<At<i64>>,
    pub identity_file: Option<At<String>>,
    pub r#become: Option<At<String>>,
    pub known_hosts: Option<At<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    pub name: At<String>,
    pub host: At<String>,
    pub underlay_ip: Option<At<String>>,
    pub subnet: Option<At<String>>,
}
