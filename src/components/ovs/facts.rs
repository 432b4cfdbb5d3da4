//! Open vSwitch facts from `ovs-vsctl --format=json list Bridge|Port|Interface` (OVSDB's JSON encoding).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::Serialize;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
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

/// One JSON value of a table cell, its strings borrowed from the text where they hold no escapes. A converged
/// host's Interface table has a row per peer: through `serde_json::Value` (every string copied, then every row
/// copied again into a map keyed by its headings) parsing the facts was the largest cost of a no-op `up`.
#[derive(Debug)]
enum Json<'a> {
    Str(Cow<'a, str>),
    Arr(Vec<Json<'a>>),
    /// Numbers, booleans, null and objects: rare in the columns read, kept as serde_json has them.
    Other(Value),
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(v)))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Json<'de>, E> {
        Ok(Json::Other(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Json<'de>, E> {
        Ok(Json::Other(Value::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Json<'de>, E> {
        Ok(Json::Other(Value::from(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Json<'de>, E> {
        Ok(Json::Other(Value::from(v)))
    }
    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Other(Value::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(x) = seq.next_element()? {
            items.push(x);
        }
        Ok(Json::Arr(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Json<'de>, A::Error> {
        Value::deserialize(de::value::MapAccessDeserializer::new(map)).map(Json::Other)
    }
}

impl Json<'_> {
    fn as_array(&self) -> Option<&[Self]> {
        match self {
            Json::Arr(a) => Some(a),
            _ => None,
        }
    }

    fn is_str(&self, s: &str) -> bool {
        matches!(self, Json::Str(x) if x == s)
    }

    /// The value as serde_json has it: how a cell that is not a string is printed.
    fn to_value(&self) -> Value {
        match self {
            Json::Str(s) => Value::String(s.to_string()),
            Json::Arr(a) => Value::Array(a.iter().map(Json::to_value).collect()),
            Json::Other(v) => v.clone(),
        }
    }
}

/// The document of one `--format=json list`: only `headings` and `data` are kept (the last of each, as
/// serde_json's maps keep them); anything but an object has neither.
#[derive(Debug, Default)]
struct Doc<'a> {
    headings: Option<Json<'a>>,
    data: Option<Json<'a>>,
}

impl<'de> Deserialize<'de> for Doc<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Doc<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Doc<'de>, A::Error> {
                let mut doc = Doc::default();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    match key.as_ref() {
                        "headings" => doc.headings = Some(map.next_value()?),
                        "data" => doc.data = Some(map.next_value()?),
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(doc)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Doc<'de>, A::Error> {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(Doc::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<Doc<'de>, E> {
                Ok(Doc::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<Doc<'de>, E> {
                Ok(Doc::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<Doc<'de>, E> {
                Ok(Doc::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<Doc<'de>, E> {
                Ok(Doc::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<Doc<'de>, E> {
                Ok(Doc::default())
            }
            fn visit_unit<E>(self) -> Result<Doc<'de>, E> {
                Ok(Doc::default())
            }
        }
        d.deserialize_any(V)
    }
}

fn document<'a>(section: &str, body: &'a str) -> Result<Doc<'a>, FactsError> {
    serde_json::from_str(body).map_err(|e| FactsError::new(section, format!("not JSON: {e}")))
}

/// Rows of one table, each cell found by its column's position (looked up once per table, not per row).
struct Table<'a> {
    headings: Vec<&'a str>,
    rows: Vec<&'a [Json<'a>]>,
}

impl<'a> Table<'a> {
    fn of(section: &str, doc: &'a Doc<'a>) -> Result<Table<'a>, FactsError> {
        let headings = doc
            .headings
            .as_ref()
            .and_then(Json::as_array)
            .ok_or_else(|| FactsError::new(section, "no `headings`"))?
            .iter()
            .map(|h| match h {
                Json::Str(s) => s.as_ref(),
                _ => "",
            })
            .collect();
        let data = doc.data.as_ref().and_then(Json::as_array).ok_or_else(|| FactsError::new(section, "no `data`"))?;
        Ok(Table { headings, rows: data.iter().filter_map(Json::as_array).collect() })
    }

    /// Where column `name` is in each row (a row shorter than the headings lacks the columns past its end). With
    /// a heading twice, the last one counts, as a map keyed by heading would have it.
    fn column(&self, name: &str) -> Option<usize> {
        self.headings.iter().rposition(|h| *h == name)
    }
}

fn cell<'r, 'a>(row: &'r [Json<'a>], column: Option<usize>) -> Option<&'r Json<'a>> {
    row.get(column?)
}

/// OVSDB encodes a one-element set as the element itself and others as `["set", [...]]`.
fn set<'r, 'a>(v: &'r Json<'a>) -> &'r [Json<'a>] {
    match v {
        Json::Arr(a) => match a.as_slice() {
            [tag, Json::Arr(items)] if tag.is_str("set") => items,
            _ => std::slice::from_ref(v),
        },
        _ => std::slice::from_ref(v),
    }
}

fn map(v: Option<&Json>) -> BTreeMap<String, String> {
    let Some(Json::Arr(a)) = v else {
        return BTreeMap::new();
    };
    match a.as_slice() {
        [tag, Json::Arr(pairs)] if tag.is_str("map") => pairs
            .iter()
            .filter_map(|p| {
                let p = p.as_array()?;
                Some((scalar(p.first()?), scalar(p.get(1)?)))
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

fn scalar(v: &Json) -> String {
    match v {
        Json::Str(s) => s.to_string(),
        other => other.to_value().to_string(),
    }
}

fn uuid<'r>(v: &'r Json) -> Option<&'r str> {
    match v.as_array()? {
        [tag, Json::Str(u)] if tag.is_str("uuid") => Some(u),
        _ => None,
    }
}

/// Each row's name (made once), and rows by UUID; the last row of a UUID wins, as in any map.
fn names<'a>(t: &Table<'a>, name: impl Fn(&Table, &[Json]) -> String) -> (Vec<String>, HashMap<&'a str, usize>) {
    let at = t.column("_uuid");
    let names: Vec<String> = t.rows.iter().map(|r| name(t, r)).collect();
    let by_uuid = t.rows.iter().enumerate().map(|(i, r)| (cell(r, at).and_then(uuid).unwrap_or_default(), i));
    (names, by_uuid.collect())
}

/// Joins the three tables: bridges list port UUIDs, ports list interface UUIDs.
pub fn parse(bridges: &str, ports: &str, interfaces: &str) -> Result<OvsFacts, FactsError> {
    if bridges.trim().is_empty() {
        return Ok(OvsFacts::default());
    }
    let docs = [document("ovs-bridge", bridges)?, document("ovs-port", ports)?, document("ovs-interface", interfaces)?];
    let bridge_t = Table::of("ovs-bridge", &docs[0])?;
    let port_t = Table::of("ovs-port", &docs[1])?;
    let iface_t = Table::of("ovs-interface", &docs[2])?;
    let name = |t: &Table, r: &[Json]| cell(r, t.column("name")).map(scalar).unwrap_or_default();
    let (port_names, port_at) = names(&port_t, name);
    let (iface_names, iface_at) = names(&iface_t, name);
    let names_of = |v: Option<&Json>, names: &[String], at: &HashMap<&str, usize>| {
        let mut out: Vec<String> = v
            .map(set)
            .unwrap_or_default()
            .iter()
            .filter_map(uuid)
            .filter_map(|u| at.get(u).map(|&i| names[i].clone()))
            .collect();
        out.sort();
        out
    };
    let (b_dp, b_ports) = (bridge_t.column("datapath_type"), bridge_t.column("ports"));
    let bridges = bridge_t
        .rows
        .iter()
        .map(|r| {
            let datapath_type = cell(r, b_dp).map(scalar).unwrap_or_default();
            (name(&bridge_t, r), OvsBridge { datapath_type, ports: names_of(cell(r, b_ports), &port_names, &port_at) })
        })
        .collect();
    let (p_protected, p_ifaces) = (port_t.column("protected"), port_t.column("interfaces"));
    let ports = port_t
        .rows
        .iter()
        .zip(&port_names)
        .map(|(r, name)| {
            let protected = matches!(cell(r, p_protected), Some(Json::Other(Value::Bool(true))));
            (name.clone(), OvsPort { protected, interfaces: names_of(cell(r, p_ifaces), &iface_names, &iface_at) })
        })
        .collect();
    let col = |c: &str| iface_t.column(c);
    let (i_type, i_options, i_bfd, i_status) = (col("type"), col("options"), col("bfd"), col("bfd_status"));
    let (i_mtu, i_error) = (col("mtu_request"), col("error"));
    let interfaces = iface_t
        .rows
        .iter()
        .zip(iface_names)
        .map(|(r, name)| {
            let optional = |c: Option<usize>| cell(r, c).map(set).unwrap_or_default().first();
            let mtu_request = match optional(i_mtu) {
                Some(Json::Other(v)) => v.as_u64().map(|m| m as u32),
                _ => None,
            };
            let iface = OvsInterface {
                r#type: cell(r, i_type).map(scalar).unwrap_or_default(),
                options: map(cell(r, i_options)),
                bfd: map(cell(r, i_bfd)),
                bfd_status: map(cell(r, i_status)),
                mtu_request,
                error: optional(i_error).map(scalar),
            };
            (name, iface)
        })
        .collect();
    Ok(OvsFacts { reachable: true, bridges, ports, interfaces })
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
    fn cells_read_as_serde_json_values_read() {
        // Escaped strings, numbers and booleans in maps, a heading out of order, a row that is not an array, ports
        // listed out of order and one whose UUID names no row.
        let bridges = r#"{"headings":["ports","name","_uuid","datapath_type"],"data":[[["set",[["uuid","p1"],["uuid","zz"],["uuid","p2"]]],"sw\u0030",["uuid","b1"],""],7]}"#;
        let ports = r#"{"data":[[["uuid","p1"],"b",["set",[]],false],[["uuid","p2"],"a",["uuid","i1"],true]],"headings":["_uuid","name","interfaces","protected"]}"#;
        let ifaces = r#"{"data":[[["uuid","i1"],"a","vxlan",["map",[["key",42],["a\u0022b","c\nd"],["on",true]]],["map",[]],["map",[["state","up"]]],1450,"no such device"]],"headings":["_uuid","name","type","options","bfd","bfd_status","mtu_request","error"],"extra":{"x":[1]}}"#;
        let f = parse(bridges, ports, ifaces).unwrap();
        assert_eq!(f.bridges["sw0"].ports, ["a", "b"]);
        assert_eq!(f.bridges["sw0"].datapath_type, "");
        assert!(f.ports["a"].protected && !f.ports["b"].protected);
        assert_eq!(f.ports["a"].interfaces, ["a"]);
        let i = &f.interfaces["a"];
        assert_eq!(i.options["key"], "42");
        assert_eq!(i.options["a\"b"], "c\nd");
        assert_eq!(i.options["on"], "true");
        assert_eq!(i.bfd_status["state"], "up");
        assert_eq!((i.mtu_request, i.error.as_deref()), (Some(1450), Some("no such device")));
    }

    #[test]
    fn a_document_without_its_table_is_refused() {
        for (doc, want) in [("[1]", "no `headings`"), (r#"{"headings":[]}"#, "no `data`"), ("{} x", "not JSON")] {
            let e = parse(doc, doc, doc).unwrap_err();
            assert!(e.to_string().contains(want), "{doc}: {e}");
        }
    }

    #[test]
    fn broken_json_names_its_section() {
        let e = parse("{", "", "").unwrap_err();
        assert_eq!(e.section, "ovs-bridge");
    }
}
