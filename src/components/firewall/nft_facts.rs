//! vxmesh's own nftables table from `nft -j list table inet vxmesh` (empty output when it does not exist).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use serde::Serialize;
use serde_json::Value;

use crate::facts::FactsError;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NftTable {
    /// Members of the `peers` set: the peers' underlay addresses.
    pub peers: BTreeSet<Ipv4Addr>,
    /// Members of the `mesh` set (with encryption): the peers' WireGuard addresses.
    pub mesh: BTreeSet<Ipv4Addr>,
    /// The input chain's drop rules: the UDP port each guards, and what lets a packet through
    /// (`@peers`, `@mesh`, or `iif:DEVICE`).
    pub drops: BTreeSet<(u16, String)>,
}

pub fn parse(body: &str) -> Result<Option<NftTable>, FactsError> {
    if body.trim().is_empty() {
        return Ok(None);
    }
    let v: Value = serde_json::from_str(body).map_err(|e| FactsError::new("nft", e.to_string()))?;
    let items = v["nftables"].as_array().ok_or_else(|| FactsError::new("nft", "no `nftables` list"))?;
    let mut table = NftTable::default();
    let mut seen_table = false;
    for item in items {
        if item.get("table").is_some() {
            seen_table = true;
        }
        if let Some(set) = item.get("set") {
            let members = match set["name"].as_str() {
                Some("peers") => &mut table.peers,
                Some("mesh") => &mut table.mesh,
                _ => continue,
            };
            for e in set["elem"].as_array().into_iter().flatten() {
                if let Some(ip) = e.as_str().and_then(|s| s.parse().ok()) {
                    members.insert(ip);
                }
            }
        }
        if let Some(rule) = item.get("rule") {
            let exprs = rule["expr"].as_array().cloned().unwrap_or_default();
            let drops = exprs.iter().any(|e| e.get("drop").is_some());
            let port = exprs.iter().find_map(|e| {
                let m = e.get("match")?;
                (m["left"]["payload"]["field"] == "dport" && m["op"] == "==").then(|| m["right"].as_u64())?
            });
            let through = exprs.iter().find_map(|e| {
                let m = e.get("match").filter(|m| m["op"] == "!=")?;
                match (m["left"]["meta"]["key"].as_str(), m["right"].as_str()) {
                    (Some("iifname"), Some(dev)) => Some(format!("iif:{dev}")),
                    (None, Some(set)) if set.starts_with('@') => Some(set.to_string()),
                    _ => None,
                }
            });
            if drops && let (Some(p), Some(t)) = (port.and_then(|p| u16::try_from(p).ok()), through) {
                table.drops.insert((p, t));
            }
        }
    }
    Ok(seen_table.then_some(table))
}
