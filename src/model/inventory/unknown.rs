//! Every unknown field of an inventory at once. serde stops at the first, so a file with three typos took three
//! runs to fix; this second pass reads only the keys, each with where it is, and compares them with the fields the
//! raw types accept. Those lists are asked of the types themselves ([`fields_of`]), so they can never drift from
//! what the parser takes.

use std::cell::Cell;

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};

use super::check::at;
use super::raw::{At, RawCluster, RawDns, RawDocker, RawInventory, RawNode, RawSsh, RawWireguard, Scalar};
use crate::error::Diagnostic;

/// The YAML document as keys and nesting only: scalars are not kept.
enum Tree {
    Map(Vec<(At<Scalar>, Tree)>),
    Seq(Vec<Tree>),
    Leaf,
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TreeVisitor)
    }
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Tree;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Tree, E> {
        Ok(Tree::Leaf)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Tree, E> {
        Ok(Tree::Leaf)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Tree, E> {
        Ok(Tree::Leaf)
    }
    fn visit_i128<E>(self, _: i128) -> Result<Tree, E> {
        Ok(Tree::Leaf)
    }
    fn visit_u128<E>(self, _: u128) -> Result<Tree, E> {
        Ok(Tree::Leaf)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Tree, E> {
        Ok(Tree::Leaf)
    }
    fn visit_str<E>(self, _: &str) -> Result<Tree, E> {
        Ok(Tree::Leaf)
    }
    fn visit_unit<E>(self) -> Result<Tree, E> {
        Ok(Tree::Leaf)
    }
    fn visit_none<E>(self) -> Result<Tree, E> {
        Ok(Tree::Leaf)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Tree, D::Error> {
        Tree::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
        let mut items = vec![];
        while let Some(t) = seq.next_element()? {
            items.push(t);
        }
        Ok(Tree::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
        let mut entries = vec![];
        while let Some(k) = map.next_key::<At<Scalar>>()? {
            entries.push((k, map.next_value()?));
        }
        Ok(Tree::Map(entries))
    }
}

/// A deserializer that answers nothing but records the field names a struct asks for.
struct FieldNames<'a>(&'a Cell<&'static [&'static str]>);

impl<'de> de::Deserializer<'de> for FieldNames<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("only asked for field names"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.set(fields);
        Err(de::Error::custom("only asked for field names"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

/// The fields `T` (a struct with derived `Deserialize`) accepts.
fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let names = Cell::new(&[][..]);
    let _ = T::deserialize(FieldNames(&names));
    names.get()
}

/// Which fields each mapping of the inventory takes, and which of its keys lead to a nested one.
#[derive(Clone, Copy)]
enum Schema {
    Inventory,
    Cluster,
    Docker,
    Wireguard,
    Dns,
    Ssh,
    Node,
}

impl Schema {
    fn fields(self) -> &'static [&'static str] {
        match self {
            Schema::Inventory => fields_of::<RawInventory>(),
            Schema::Cluster => fields_of::<RawCluster>(),
            Schema::Docker => fields_of::<RawDocker>(),
            Schema::Wireguard => fields_of::<RawWireguard>(),
            Schema::Dns => fields_of::<RawDns>(),
            Schema::Ssh => fields_of::<RawSsh>(),
            Schema::Node => fields_of::<RawNode>(),
        }
    }

    /// The schema of the value under `key`; `nodes` is a list of nodes.
    fn inner(self, key: &str) -> Option<Schema> {
        match (self, key) {
            (Schema::Inventory, "cluster") => Some(Schema::Cluster),
            (Schema::Inventory, "ssh") => Some(Schema::Ssh),
            (Schema::Inventory, "nodes") => Some(Schema::Node),
            (Schema::Cluster, "docker") => Some(Schema::Docker),
            (Schema::Cluster, "wireguard") => Some(Schema::Wireguard),
            (Schema::Cluster, "dns") => Some(Schema::Dns),
            _ => None,
        }
    }
}

/// Every key the inventory's mappings do not take, in the order written, worded as the parser words the first:
/// `unknown field `X`, expected one of A, B, ...` (the typo's likely field is added by the caller). Empty when the
/// text does not parse as YAML at all, or has no unknown key.
pub fn unknown_fields(text: &str) -> Vec<Diagnostic> {
    let Ok(tree) = serde_saphyr::from_str::<Tree>(text) else { return vec![] };
    let mut found = vec![];
    walk(&tree, Schema::Inventory, &mut found);
    found
}

fn walk(tree: &Tree, schema: Schema, found: &mut Vec<Diagnostic>) {
    match tree {
        Tree::Map(entries) => {
            let fields = schema.fields();
            for (key, value) in entries {
                let Scalar::Text(name) = &key.value else { continue };
                if !fields.contains(&name.as_str()) {
                    let message =
                        format!("unknown field `{}`, expected one of {}", super::check::shown(name), fields.join(", "));
                    found.push(Diagnostic::at(at(key), message));
                    continue;
                }
                if let Some(inner) = schema.inner(name) {
                    walk(value, inner, found);
                }
            }
        }
        // Only the node list is a list of mappings with a schema.
        Tree::Seq(items) if matches!(schema, Schema::Node) => {
            for item in items {
                walk(item, schema, found);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_lists_come_from_the_types() {
        assert!(Schema::Cluster.fields().contains(&"encryption"));
        assert!(Schema::Node.fields().contains(&"underlay_ip"));
        assert_eq!(Schema::Inventory.fields(), ["cluster", "ssh", "nodes"]);
    }

    #[test]
    fn every_unknown_key_is_found_where_it_is() {
        let text = "cluster:\n  cidr: 10.0.0.0/8\n  encrypton: wireguard\n  docker: {mdoe: network}\nssh: {usr: root}\nnodes:\n  - {name: a, host: 192.0.2.1, adress: x}\n  - name: b\n    host: 192.0.2.2\n    sbunet: 10.1.0.0/16\nextra: 1\n";
        let found = unknown_fields(text);
        let got: Vec<String> = found
            .iter()
            .map(|d| format!("{}: {}", d.pos.map_or(0, |p| p.line), d.message.split(',').next().unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                "3: unknown field `encrypton`",
                "4: unknown field `mdoe`",
                "5: unknown field `usr`",
                "7: unknown field `adress`",
                "10: unknown field `sbunet`",
                "11: unknown field `extra`"
            ]
        );
    }
}
