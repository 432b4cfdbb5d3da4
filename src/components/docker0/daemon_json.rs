//! `docker0` mode: merges vxmesh's keys into /etc/docker/daemon.json without clobbering the admin's own.

use ipnet::Ipv4Net;
use serde_json::{Map, Value, json};

use super::super::core::Mtu;

/// docker's built-in default address pools (used when daemon.json names none).
const DOCKER_DEFAULT_POOLS: [(&str, u8); 2] = [("172.17.0.0/12", 16), ("192.168.0.0/16", 20)];

/// Stands for the MTU a script learns on the host; the renderer swaps it for `$MTU`.
pub const MTU_PLACEHOLDER: &str = "__VXMESH_MTU__";

/// The new daemon.json text, or `None` when `current` already has everything.
/// A `current` that is not a JSON object is an error: vxmesh never rewrites a file it cannot read.
pub fn merged(current: &str, bip: Ipv4Net, mtu: Mtu, cluster: Ipv4Net) -> Result<Option<String>, String> {
    let mut doc: Map<String, Value> = if current.trim().is_empty() {
        Map::new()
    } else {
        match serde_json::from_str::<Value>(current) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return Err("/etc/docker/daemon.json is not a JSON object".into()),
            Err(e) => return Err(format!("/etc/docker/daemon.json is not valid JSON ({e})")),
        }
    };
    let before = doc.clone();
    doc.insert("bip".into(), json!(bip.to_string()));
    match mtu {
        Mtu::Value(m) => doc.insert("mtu".into(), json!(m)),
        Mtu::Detect => doc.insert("mtu".into(), json!(MTU_PLACEHOLDER)),
    };
    let pools_inside = |pools: &Value| {
        pools.as_array().into_iter().flatten().any(|p| {
            p["base"]
                .as_str()
                .and_then(|b| b.parse::<Ipv4Net>().ok())
                .is_some_and(|b| crate::model::inventory::overlaps(&b, &cluster))
        })
    };
    let needs_pools = match doc.get("default-address-pools") {
        None => true,
        Some(p) => pools_inside(p),
    };
    if needs_pools {
        // Keep docker's own pools where they do not collide with the cluster, so `docker network create` still works.
        let pools: Vec<Value> = DOCKER_DEFAULT_POOLS
            .iter()
            .filter(|(base, _)| !crate::model::inventory::overlaps(&base.parse().expect("constant"), &cluster))
            .map(|(base, size)| json!({"base": base, "size": size}))
            .collect();
        doc.insert("default-address-pools".into(), Value::Array(pools));
    }
    Ok((doc != before).then(|| serde_json::to_string_pretty(&Value::Object(doc)).expect("json") + "\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_admins_keys_and_order() {
        let cur = r#"{"log-driver": "journald", "live-restore": true}"#;
        let out = merged(cur, "172.18.0.1/16".parse().unwrap(), Mtu::Value(1450), "172.16.0.0/12".parse().unwrap())
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["log-driver"], "journald");
        assert_eq!(v["bip"], "172.18.0.1/16");
        assert_eq!(v["default-address-pools"], json!([{"base": "192.168.0.0/16", "size": 20}]));
        assert!(out.find("log-driver").unwrap() < out.find("bip").unwrap());
        assert_eq!(
            merged(&out, "172.18.0.1/16".parse().unwrap(), Mtu::Value(1450), "172.16.0.0/12".parse().unwrap()),
            Ok(None)
        );
        assert!(
            merged("[1]", "172.18.0.1/16".parse().unwrap(), Mtu::Value(1450), "172.16.0.0/12".parse().unwrap())
                .is_err()
        );
    }
}
