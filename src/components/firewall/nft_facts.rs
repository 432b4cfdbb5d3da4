//! vxmesh's own nftables table from `nft -j list table inet vxmesh` (empty output when it does not exist).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use serde::Serialize;
use serde_json::Value;

use crate::facts::FactsError;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NftTable {
    /// Members of the `peers` set: the peers' underlay addresses (IPv4 or IPv6, as the underlay).
    pub peers: BTreeSet<IpAddr>,
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
            let elements = set["elem"].as_array().into_iter().flatten().filter_map(|e| e.as_str());
            match set["name"].as_str() {
                Some("peers") => table.peers.extend(elements.filter_map(|s| s.parse::<IpAddr>().ok())),
                Some("mesh") => table.mesh.extend(elements.filter_map(|s| s.parse::<Ipv4Addr>().ok())),
                _ => continue,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// On an IPv6 underlay the `peers` set holds IPv6 addresses, and `mesh` (WireGuard) stays IPv4.
    #[test]
    fn reads_an_ipv6_peers_set_beside_an_ipv4_mesh() {
        let body = r#"{"nftables":[{"table":{"family":"inet","name":"vxmesh"}},
            {"set":{"family":"inet","name":"peers","table":"vxmesh","type":"ipv6_addr","elem":["fd78::11","fd78::13"]}},
            {"set":{"family":"inet","name":"mesh","table":"vxmesh","type":"ipv4_addr","elem":["198.19.0.1"]}}]}"#;
        let t = parse(body).unwrap().unwrap();
        let peers: Vec<String> = t.peers.iter().map(|p| p.to_string()).collect();
        assert_eq!(peers, ["fd78::11", "fd78::13"]);
        assert_eq!(t.mesh, ["198.19.0.1".parse::<Ipv4Addr>().unwrap()].into());
    }
}
