//! vxmesh's own nftables table from `nft -j list table inet vxmesh` (empty output when it does not exist).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use serde::Serialize;
use serde_json::Value;

use crate::facts::FactsError;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NftTable {
    /// Members of the `peers` set.
    pub peers: BTreeSet<Ipv4Addr>,
    /// The UDP port the input chain's drop rule guards, if the rule is there.
    pub guarded_port: Option<u16>,
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
        if let Some(set) = item.get("set").filter(|s| s["name"] == "peers") {
            for e in set["elem"].as_array().into_iter().flatten() {
                if let Some(ip) = e.as_str().and_then(|s| s.parse().ok()) {
                    table.peers.insert(ip);
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
            if drops && let Some(p) = port {
                table.guarded_port = u16::try_from(p).ok();
            }
        }
    }
    Ok(seen_table.then_some(table))
}
