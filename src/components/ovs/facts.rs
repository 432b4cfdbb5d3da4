//! Open vSwitch facts from `ovs-vsctl --format=json list Bridge|Port|Interface` (OVSDB's JSON encoding).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::facts::FactsError;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OvsFacts {
    /// False when ovs-vsctl could not reach ovsdb-server (the section was empty).
    pub reachable: bool,
    pub bridges: BTreeMap<String, OvsBridge>,
    pub ports: BTreeMap<String, OvsPort>,
    pub interfaces: BTreeMap<String, OvsInterface>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OvsBridge {
    pub datapath_type: String,
    /// Port names, sorted.
    pub ports: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OvsPort {
    pub protected: bool,
    pub interfaces: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OvsInterface {
    pub r#type: String,
    pub options: BTreeMap<String, String>,
    pub bfd: BTreeMap<String, String>,
    pub bfd_status: BTreeMap<String, String>,
    pub mtu_request: Option<u32>,
    /// OVS's own complaint about the interface (e.g. a device that does not exist).
    pub error: Option<String>,
}

type Row = BTreeMap<String, Value>;

/// Rows of one `--format=json list` table, each as heading -> value.
fn rows(section: &str, body: &str) -> Result<Vec<Row>, FactsError> {
    let v: Value = serde_json::from_str(body).map_err(|e| FactsError::new(section, format!("not JSON: {e}")))?;
    let headings: Vec<String> = v["headings"]
        .as_array()
        .ok_or_else(|| FactsError::new(section, "no `headings`"))?
        .iter()
        .map(|h| h.as_str().unwrap_or_default().to_string())
        .collect();
    let data = v["data"].as_array().ok_or_else(|| FactsError::new(section, "no `data`"))?;
    Ok(data
        .iter()
        .filter_map(Value::as_array)
        .map(|r| headings.iter().cloned().zip(r.iter().cloned()).collect())
        .collect())
}

/// OVSDB encodes a one-element set as the element itself and others as `["set", [...]]`.
fn set(v: &Value) -> Vec<Value> {
    match v.as_array().map(Vec::as_slice) {
        Some([tag, Value::Array(items)]) if tag == "set" => items.clone(),
        _ => vec![v.clone()],
    }
}

fn map(v: Option<&Value>) -> BTreeMap<String, String> {
    let Some(Value::Array(a)) = v else {
        return BTreeMap::new();
    };
    match a.as_slice() {
        [tag, Value::Array(pairs)] if tag == "map" => {
            pairs.iter().filter_map(|p| Some((scalar(p.get(0)?), scalar(p.get(1)?)))).collect()
        }
        _ => BTreeMap::new(),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn uuid(v: &Value) -> Option<String> {
    match v.as_array().map(Vec::as_slice) {
        Some([tag, Value::String(u)]) if tag == "uuid" => Some(u.clone()),
        _ => None,
    }
}

fn name(r: &Row) -> String {
    r.get("name").map(scalar).unwrap_or_default()
}

/// Joins the three tables: bridges list port UUIDs, ports list interface UUIDs.
pub fn parse(bridges: &str, ports: &str, interfaces: &str) -> Result<OvsFacts, FactsError> {
    if bridges.trim().is_empty() {
        return Ok(OvsFacts::default());
    }
    let bridge_rows = rows("ovs-bridge", bridges)?;
    let port_rows = rows("ovs-port", ports)?;
    let iface_rows = rows("ovs-interface", interfaces)?;
    let uuid_of = |r: &Row| r.get("_uuid").and_then(uuid).unwrap_or_default();
    let iface_name: BTreeMap<String, String> = iface_rows.iter().map(|r| (uuid_of(r), name(r))).collect();
    let port_name: BTreeMap<String, String> = port_rows.iter().map(|r| (uuid_of(r), name(r))).collect();
    let names_of = |v: Option<&Value>, table: &BTreeMap<String, String>| {
        let mut names: Vec<String> =
            v.map(set).unwrap_or_default().iter().filter_map(uuid).filter_map(|u| table.get(&u).cloned()).collect();
        names.sort();
        names
    };
    Ok(OvsFacts {
        reachable: true,
        bridges: bridge_rows
            .iter()
            .map(|r| {
                let datapath_type = r.get("datapath_type").map(scalar).unwrap_or_default();
                (name(r), OvsBridge { datapath_type, ports: names_of(r.get("ports"), &port_name) })
            })
            .collect(),
        ports: port_rows
            .iter()
            .map(|r| {
                let protected = r.get("protected").and_then(Value::as_bool).unwrap_or(false);
                (name(r), OvsPort { protected, interfaces: names_of(r.get("interfaces"), &iface_name) })
            })
            .collect(),
        interfaces: iface_rows
            .iter()
            .map(|r| {
                let optional = |k: &str| r.get(k).map(set).unwrap_or_default().into_iter().next();
                (
                    name(r),
                    OvsInterface {
                        r#type: r.get("type").map(scalar).unwrap_or_default(),
                        options: map(r.get("options")),
                        bfd: map(r.get("bfd")),
                        bfd_status: map(r.get("bfd_status")),
                        mtu_request: optional("mtu_request").and_then(|v| v.as_u64()).map(|m| m as u32),
                        error: optional("error").map(|v| scalar(&v)),
                    },
                )
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_element_sets_and_maps_decode() {
        let bridges = r#"{"data":[[["uuid","b1"],"sw0","netdev",["uuid","p1"]]],"headings":["_uuid","name","datapath_type","ports"]}"#;
        let ports = r#"{"data":[[["uuid","p1"],"vx-b",["uuid","i1"],true]],"headings":["_uuid","name","interfaces","protected"]}"#;
        let ifaces = r#"{"data":[[["uuid","i1"],"vx-b","vxlan",["map",[["key","42"],["remote_ip","10.0.0.2"]]],["map",[["enable","true"]]],["map",[]],["set",[]],["set",[]]]],"headings":["_uuid","name","type","options","bfd","bfd_status","mtu_request","error"]}"#;
        let f = parse(bridges, ports, ifaces).unwrap();
        assert_eq!(f.bridges["sw0"].ports, ["vx-b"]);
        assert!(f.ports["vx-b"].protected);
        assert_eq!(f.interfaces["vx-b"].options["remote_ip"], "10.0.0.2");
        assert_eq!(f.interfaces["vx-b"].mtu_request, None);
    }

    #[test]
    fn broken_json_names_its_section() {
        let e = parse("{", "", "").unwrap_err();
        assert_eq!(e.section, "ovs-bridge");
    }
}
