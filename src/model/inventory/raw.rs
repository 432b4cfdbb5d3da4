//! The inventory exactly as written in YAML, every value with its location, before any rule is checked.
//!
//! Every leaf is a [`Scalar`]: whatever YAML type the user wrote is kept, so validation can say
//! "`cluster.port: \`seventy\` is not a whole number`" instead of the parser's "invalid i64".

use std::fmt;

use serde::Deserialize;
use std::marker::PhantomData;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A value as the user wrote it, with where they wrote it.
pub type At<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInventory {
    pub cluster: At<Shaped<RawCluster>>,
    #[serde(default)]
    pub ssh: Option<At<Shaped<RawSsh>>>,
    pub nodes: At<Shaped<Vec<At<Shaped<RawNode>>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub name: Option<At<Scalar>>,
    pub cidr: At<Scalar>,
    pub node_prefix: Option<At<Scalar>>,
    pub switch_cidr: Option<At<Scalar>>,
    pub exclude: Option<At<Shaped<Vec<At<Scalar>>>>>,
    pub vni: Option<At<Scalar>>,
    pub port: Option<At<Scalar>>,
    /// `auto` or a number.
    pub mtu: Option<At<Scalar>>,
    pub backend: Option<At<Scalar>>,
    pub datapath: Option<At<Scalar>>,
    pub docker: Option<At<Shaped<RawDocker>>>,
    pub nat: Option<At<Scalar>>,
    #[serde(default, deserialize_with = "written")]
    pub firewall: Option<At<Scalar>>,
    pub outside: Option<At<Scalar>>,
    /// Dual-stack containers: the cluster's IPv6 range, each node's prefix length in it, and what IPv6 traffic
    /// leaving the cluster gets.
    pub cidr6: Option<At<Scalar>>,
    pub node_prefix6: Option<At<Scalar>>,
    #[serde(default, deserialize_with = "written")]
    pub outside6: Option<At<Scalar>>,
    #[serde(default, deserialize_with = "written")]
    pub encryption: Option<At<Scalar>>,
    #[serde(default, deserialize_with = "written")]
    pub wireguard: Option<At<Shaped<RawWireguard>>>,
    /// Names across hosts (`cluster.dns`).
    pub dns: Option<At<Shaped<RawDns>>>,
    /// `auto`, `ipv4` or `ipv6`: the tunnels' family where every host has both.
    pub underlay_family: Option<At<Scalar>>,
}

/// A security setting written with an empty value is kept as written (a null), not taken as left out: `encryption:`
/// with nothing after it must not quietly mean `none`. Validation then reports it as empty.
fn written<'de, D: de::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWireguard {
    #[serde(default, deserialize_with = "written")]
    pub port: Option<At<Scalar>>,
    #[serde(default, deserialize_with = "written")]
    pub cidr: Option<At<Scalar>>,
    #[serde(default, deserialize_with = "written")]
    pub relays: Option<At<Shaped<Vec<At<Scalar>>>>>,
}

/// `cluster.dns`: names across hosts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDns {
    pub enabled: Option<At<Scalar>>,
    pub domain: Option<At<Scalar>>,
}

impl Container for RawDns {
    const MAPPING: bool = true;
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDocker {
    pub mode: Option<At<Scalar>>,
    pub network: Option<At<Scalar>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSsh {
    pub user: Option<At<Scalar>>,
    pub port: Option<At<Scalar>>,
    pub identity_file: Option<At<Scalar>>,
    #[serde(default, deserialize_with = "written")]
    pub r#become: Option<At<Scalar>>,
    #[serde(default, deserialize_with = "written")]
    pub known_hosts: Option<At<Scalar>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    pub name: At<Scalar>,
    pub host: At<Scalar>,
    /// One address, or a dual-stack host's list of one per family.
    pub underlay_ip: Option<At<OneOrList>>,
    pub subnet: Option<At<Scalar>>,
    /// The node's IPv6 subnet, pinned (needs `cluster.cidr6`).
    pub subnet6: Option<At<Scalar>>,
    pub backend: Option<At<Scalar>>,
    pub site: Option<At<Scalar>>,
    pub public_ip: Option<At<Scalar>>,
}

/// A value written alone (`10.0.0.1`) or as a list (`[10.0.0.1, "fd00::1"]`).
#[derive(Debug)]
pub enum OneOrList {
    One(Scalar),
    List(Vec<At<Scalar>>),
}

impl<'de> Deserialize<'de> for OneOrList {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A list reads as one; anything else is kept as the scalar (or shape) it is, as `Shaped` reports it.
        Ok(match Shaped::<Vec<At<Scalar>>>::deserialize(d)? {
            Shaped::Ok(list) => OneOrList::List(list),
            Shaped::Wrong(one) => OneOrList::One(one),
        })
    }
}

/// One YAML value with the type the parser gave it; lists and mappings are only noted, for the message.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Text(String),
    Int(i128),
    Float(f64),
    Bool(bool),
    /// `~`, `null`, or nothing after the colon.
    Null,
    List,
    Map,
}

/// Scalars of a value that is not one, drained: only its shape is reported.
fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Scalar, A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(Scalar::List)
}

fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<Scalar, A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(Scalar::Map)
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Text(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Scalar, E> {
        Ok(Scalar::Text(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Scalar, E> {
        Ok(Scalar::Text(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar::Float(v))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_unit<E>(self) -> Result<Scalar, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E>(self) -> Result<Scalar, E> {
        Ok(Scalar::Null)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Scalar, A::Error> {
        drain_seq(seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Scalar, A::Error> {
        drain_map(map)
    }
}

/// A mapping or a list where the inventory has one, or whatever was written there instead: validation reports
/// `cluster: \`5\` is not a mapping` at its place, where the parser would only say "expected mapping start".
#[derive(Debug)]
pub enum Shaped<T> {
    Ok(T),
    Wrong(Scalar),
}

/// Whether a type is read from a YAML mapping (the structs) or a list.
pub trait Container {
    const MAPPING: bool;
}

impl<T> Container for Vec<T> {
    const MAPPING: bool = false;
}

macro_rules! mapping {
    ($($t:ty),*) => { $(impl Container for $t { const MAPPING: bool = true; })* };
}
mapping!(RawInventory, RawCluster, RawDocker, RawSsh, RawNode, RawWireguard);

impl<'de, T: Deserialize<'de> + Container> Deserialize<'de> for Shaped<T> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ShapedVisitor(PhantomData))
    }
}

struct ShapedVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de> + Container> Visitor<'de> for ShapedVisitor<T> {
    type Value = Shaped<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(if T::MAPPING { "a mapping" } else { "a list" })
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Shaped<T>, A::Error> {
        if T::MAPPING {
            T::deserialize(MapAccessDeserializer::new(map)).map(Shaped::Ok)
        } else {
            drain_map(map).map(Shaped::Wrong)
        }
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Shaped<T>, A::Error> {
        if T::MAPPING {
            drain_seq(seq).map(Shaped::Wrong)
        } else {
            T::deserialize(SeqAccessDeserializer::new(seq)).map(Shaped::Ok)
        }
    }
    fn visit_str<E>(self, v: &str) -> Result<Shaped<T>, E> {
        Ok(Shaped::Wrong(Scalar::Text(v.to_string())))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Shaped<T>, E> {
        Ok(Shaped::Wrong(Scalar::Int(v.into())))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Shaped<T>, E> {
        Ok(Shaped::Wrong(Scalar::Int(v.into())))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Shaped<T>, E> {
        Ok(Shaped::Wrong(Scalar::Float(v)))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Shaped<T>, E> {
        Ok(Shaped::Wrong(Scalar::Bool(v)))
    }
    fn visit_unit<E>(self) -> Result<Shaped<T>, E> {
        Ok(Shaped::Wrong(Scalar::Null))
    }
    fn visit_none<E>(self) -> Result<Shaped<T>, E> {
        Ok(Shaped::Wrong(Scalar::Null))
    }
}
