//! Links, addresses and routes from `ip -j -d addr show` and `ip -j route show`.

use std::collections::BTreeMap;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::FactsError;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Link {
    pub mtu: u32,
    pub up: bool,
    /// `veth`, `bridge`, `openvswitch`, `vxlan`, ... (empty for plain devices).
    pub kind: String,
    /// The bridge this device is a port of, if any.
    pub master: Option<String>,
    pub addrs: Vec<Ipv4Net>,
    /// Its IPv6 addresses (an IPv6 underlay's device is found by them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addrs6: Vec<std::net::Ipv6Addr>,
    /// The link-layer address, lower case (`ip` prints it so).
    pub mac: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    /// `default` or a CIDR.
    pub dst: String,
    pub dev: Option<String>,
    pub gateway: Option<String>,
}

#[derive(Deserialize)]
struct RawLink {
    ifname: String,
    #[serde(default)]
    flags: Vec<String>,
    #[serde(default)]
    mtu: u32,
    master: Option<String>,
    address: Option<String>,
    linkinfo: Option<RawLinkInfo>,
    #[serde(default)]
    addr_info: Vec<RawAddr>,
}

#[derive(Deserialize)]
struct RawLinkInfo {
    info_kind: Option<String>,
}

#[derive(Deserialize)]
struct RawAddr {
    family: Option<String>,
    local: Option<String>,
    prefixlen: Option<u8>,
}

#[derive(Deserialize)]
struct RawRoute {
    dst: String,
    dev: Option<String>,
    gateway: Option<String>,
}

pub fn parse_links(body: &str) -> Result<BTreeMap<String, Link>, FactsError> {
    if body.trim().is_empty() {
        return Ok(BTreeMap::new());
    }
    let raw: Vec<RawLink> = serde_json::from_str(body).map_err(|e| FactsError::new("ip-addr", e.to_string()))?;
    Ok(raw
        .into_iter()
        .map(|l| {
            let addrs = l
                .addr_info
                .iter()
                .filter(|a| a.family.as_deref() == Some("inet"))
                .filter_map(|a| Ipv4Net::new(a.local.as_deref()?.parse().ok()?, a.prefixlen?).ok())
                .collect();
            let addrs6 = l
                .addr_info
                .iter()
                .filter(|a| a.family.as_deref() == Some("inet6"))
                .filter_map(|a| a.local.as_deref()?.parse().ok())
                .collect();
            let link = Link {
                mtu: l.mtu,
                up: l.flags.iter().any(|f| f == "UP"),
                kind: l.linkinfo.and_then(|i| i.info_kind).unwrap_or_default(),
                master: l.master,
                addrs,
                addrs6,
                mac: l.address.map(|a| a.to_ascii_lowercase()),
            };
            (l.ifname, link)
        })
        .collect())
}

pub fn parse_routes(body: &str) -> Result<Vec<Route>, FactsError> {
    if body.trim().is_empty() {
        return Ok(vec![]);
    }
    let raw: Vec<RawRoute> = serde_json::from_str(body).map_err(|e| FactsError::new("ip-route", e.to_string()))?;
    Ok(raw.into_iter().map(|r| Route { dst: r.dst, dev: r.dev, gateway: r.gateway }).collect())
}
