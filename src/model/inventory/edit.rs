//! Edits the inventory file as text, so the admin's comments, order and style survive `add-node`/`remove-node`.
//! Every edit is checked by parsing the result: an edit that would not read back as intended is refused.

use std::path::Path;

use crate::error::{Error, Result};
use crate::model::files;

/// A node entry to add, already validated as values.
pub struct NewNode<'a> {
    pub name: &'a str,
    pub host: &'a str,
    /// Its tunnel endpoints: none (the host's address), one, or one per family (a dual-stack host).
    pub underlay_ip: &'a [&'a str],
    pub subnet: Option<&'a str>,
    pub subnet6: Option<&'a str>,
    pub backend: Option<&'a str>,
}

fn edit_error(path: &Path, message: String) -> Error {
    Error::Inventory(crate::error::Diagnostics {
        file: path.to_path_buf(),
        items: vec![crate::error::Diagnostic::at(None, message)],
    })
}

/// The `nodes:` block: the line of its key and the lines of its items (first and one past the last).
struct Block {
    key: usize,
    first_item: Option<usize>,
    end: usize,
}

fn find_block(lines: &[&str]) -> Option<Block> {
    let key = lines.iter().position(|l| l.starts_with("nodes:"))?;
    let mut end = key + 1;
    let mut first_item = None;
    for (i, l) in lines.iter().enumerate().skip(key + 1) {
        let t = l.trim_start();
        if !l.is_empty() && !l.starts_with(' ') && !l.starts_with('-') && !t.starts_with('#') {
            break;
        }
        if !t.is_empty() && !t.starts_with('#') {
            end = i + 1;
            if first_item.is_none() && t.starts_with("- ") {
                first_item = Some(i);
            }
        }
    }
    Some(Block { key, first_item, end })
}

/// Where a new node sits across sites (`nodes[].site`, `nodes[].public_ip`), already validated as values; the
/// default is no site (`default`) and no public address.
#[derive(Default)]
pub struct Placement<'a> {
    pub site: Option<&'a str>,
    pub public_ip: Option<&'a str>,
}

/// Appends a node to the `nodes:` list, in the style of the entries already there.
pub fn add_node(path: &Path, text: &str, n: &NewNode) -> Result<String> {
    add_node_placed(path, text, n, &Placement::default())
}

/// [`add_node`], with the node's site and public address written too (`add-node --site --public-ip`).
pub fn add_node_placed(path: &Path, text: &str, n: &NewNode, at: &Placement) -> Result<String> {
    let lines: Vec<&str> = text.lines().collect();
    let block = find_block(&lines).ok_or_else(|| edit_error(path, "no top-level `nodes:` list to add to".into()))?;
    let underlay = match n.underlay_ip {
        [] => None,
        [one] => Some(yaml_scalar(one)),
        many => Some(format!("[{}]", many.iter().map(|v| yaml_scalar(v)).collect::<Vec<_>>().join(", "))),
    };
    let given = [
        ("name", Some(yaml_scalar(n.name))),
        ("host", Some(yaml_scalar(n.host))),
        ("underlay_ip", underlay),
        ("subnet", n.subnet.map(yaml_scalar)),
        ("subnet6", n.subnet6.map(yaml_scalar)),
        ("backend", n.backend.map(yaml_scalar)),
        ("site", at.site.map(yaml_scalar)),
        ("public_ip", at.public_ip.map(yaml_scalar)),
    ];
    let fields: Vec<String> = given.iter().filter_map(|(key, v)| v.as_ref().map(|v| format!("{key}: {v}"))).collect();
    let key_line = lines[block.key];
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    if let Some(rest) = key_line.strip_prefix("nodes:").map(str::trim).filter(|r| r.starts_with('[')) {
        // Flow style on one line: `nodes: [{...}, {...}]`.
        let close = rest
            .rfind(']')
            .ok_or_else(|| edit_error(path, "the one-line `nodes: [...]` list is not closed on its line".into()))?;
        let inner = rest[1..close].trim();
        let sep = if inner.is_empty() { "" } else { ", " };
        out[block.key] = format!("nodes: [{inner}{sep}{{{}}}]{}", fields.join(", "), &rest[close + 1..]);
    } else {
        let (indent, flow) = match block.first_item {
            Some(i) => {
                let l = lines[i];
                let indent = l.len() - l.trim_start().len();
                (indent, l.trim_start()[2..].trim_start().starts_with('{'))
            }
            None => (2, false),
        };
        let pad = " ".repeat(indent);
        let entry = if flow {
            vec![format!("{pad}- {{{}}}", fields.join(", "))]
        } else {
            let mut v = vec![format!("{pad}- {}", fields[0])];
            v.extend(fields[1..].iter().map(|f| format!("{pad}  {f}")));
            v
        };
        let at = block.end.max(block.key + 1);
        for (k, e) in entry.into_iter().enumerate() {
            out.insert(at + k, e);
        }
    }
    Ok(join(out, text))
}

/// A value as a YAML scalar that reads back as exactly this string, whatever it holds: plain where that is
/// unambiguous (letters, digits, `.`, `/`, `-`, `_`, starting with a letter or digit), double-quoted and escaped
/// otherwise. A value typed on the command line can then never add a field, close the entry or start a comment.
fn yaml_scalar(v: &str) -> String {
    let plain = v.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b".-_/".contains(&b))
        && !matches!(v.to_ascii_lowercase().as_str(), "true" | "false" | "yes" | "no" | "on" | "off" | "null");
    if plain {
        return v.to_string();
    }
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Removes the node named `name` from the `nodes:` list: its item line(s), nothing else.
pub fn remove_node(path: &Path, text: &str, name: &str) -> Result<String> {
    let lines: Vec<&str> = text.lines().collect();
    let block = find_block(&lines).ok_or_else(|| edit_error(path, "no top-level `nodes:` list".into()))?;
    let is_name = |s: &str| {
        let s = s.trim().trim_start_matches("- ").trim_start_matches('{').trim();
        s.split([',', '}', '#']).any(|f| {
            let f = f.trim();
            f.strip_prefix("name:").is_some_and(|v| v.trim().trim_matches(['"', '\'']) == name)
        })
    };
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let key_line = lines[block.key];
    if key_line.trim_start_matches("nodes:").trim().starts_with('[') {
        return Err(edit_error(
            path,
            format!("the one-line `nodes: [...]` list is too tangled to edit safely; remove `{name}` by hand"),
        ));
    }
    // Items start with `- `; an item's lines run until the next item or the block's end.
    let items: Vec<usize> = (block.key + 1..block.end).filter(|i| lines[*i].trim_start().starts_with("- ")).collect();
    let item_indent = items.first().map(|i| lines[*i].len() - lines[*i].trim_start().len()).unwrap_or(0);
    let items: Vec<usize> =
        items.into_iter().filter(|i| lines[*i].len() - lines[*i].trim_start().len() == item_indent).collect();
    for (k, start) in items.iter().enumerate() {
        let stop = items.get(k + 1).copied().unwrap_or(block.end);
        if (*start..stop).any(|i| is_name(lines[i])) {
            out.drain(*start..stop);
            return Ok(join(out, text));
        }
    }
    Err(edit_error(path, format!("no entry with `name: {name}` under `nodes:`")))
}

fn join(lines: Vec<String>, original: &str) -> String {
    let mut s = lines.join("\n");
    if original.ends_with('\n') || original.is_empty() {
        s.push('\n');
    }
    s
}

/// Writes the inventory atomically with [`files::save`], keeping its permissions: nothing planted beside it is
/// followed, and it stays a regular file.
pub fn save(path: &Path, text: &str) -> Result<()> {
    files::save(path, text.as_bytes(), files::Kind::Inventory, files::Replace::Yes)
}

/// Writes a new inventory, never replacing a file that is there (or appeared meanwhile).
pub fn create(path: &Path, text: &str) -> Result<()> {
    files::save(path, text.as_bytes(), files::Kind::Inventory, files::Replace::No)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("v.yaml")
    }

    #[test]
    fn block_style_keeps_comments_and_style() {
        let text = "cluster:\n  cidr: 10.0.0.0/8   # the cluster\nnodes:\n  # web tier\n  - name: a\n    host: 192.0.2.1\n\n  - name: b   # db\n    host: 192.0.2.2\nssh:\n  user: root\n";
        let out = add_node(
            p(),
            text,
            &NewNode {
                name: "c",
                host: "192.0.2.3",
                underlay_ip: &[],
                subnet: Some("10.9.0.0/16"),
                subnet6: None,
                backend: None,
            },
        )
        .unwrap();
        assert_eq!(
            out,
            "cluster:\n  cidr: 10.0.0.0/8   # the cluster\nnodes:\n  # web tier\n  - name: a\n    host: 192.0.2.1\n\n  - name: b   # db\n    host: 192.0.2.2\n  - name: c\n    host: 192.0.2.3\n    subnet: 10.9.0.0/16\nssh:\n  user: root\n"
        );
        let back = remove_node(p(), &out, "b").unwrap();
        assert_eq!(
            back,
            "cluster:\n  cidr: 10.0.0.0/8   # the cluster\nnodes:\n  # web tier\n  - name: a\n    host: 192.0.2.1\n\n  - name: c\n    host: 192.0.2.3\n    subnet: 10.9.0.0/16\nssh:\n  user: root\n"
        );
    }

    #[test]
    fn flow_items_stay_flow_items() {
        let text = "cluster: {cidr: 10.0.0.0/8}\nnodes:\n- {name: a, host: 192.0.2.1}\n- {name: b, host: 192.0.2.2}\n";
        let out = add_node(
            p(),
            text,
            &NewNode { name: "c", host: "h", underlay_ip: &["192.0.2.3"], subnet: None, subnet6: None, backend: None },
        )
        .unwrap();
        assert!(out.ends_with("- {name: b, host: 192.0.2.2}\n- {name: c, host: h, underlay_ip: 192.0.2.3}\n"), "{out}");
        assert_eq!(
            remove_node(p(), &out, "a").unwrap(),
            "cluster: {cidr: 10.0.0.0/8}\nnodes:\n- {name: b, host: 192.0.2.2}\n- {name: c, host: h, underlay_ip: 192.0.2.3}\n"
        );
    }

    #[test]
    fn one_line_list_grows_in_place() {
        let out = add_node(
            p(),
            "cluster: {cidr: 10.0.0.0/8}\nnodes: [{name: a, host: 192.0.2.1}]\n",
            &NewNode { name: "b", host: "192.0.2.2", underlay_ip: &[], subnet: None, subnet6: None, backend: None },
        )
        .unwrap();
        assert_eq!(
            out,
            "cluster: {cidr: 10.0.0.0/8}\nnodes: [{name: a, host: 192.0.2.1}, {name: b, host: 192.0.2.2}]\n"
        );
    }

    /// Regression (issue 20): the inventory was written first to the fixed name `INVENTORY.vxmesh-tmp`, following a
    /// symlink planted there, and the rename then left the inventory a symlink.
    #[test]
    fn saving_the_inventory_follows_no_planted_link_and_keeps_it_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.yaml");
        std::fs::write(&path, "old\n").unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        std::os::unix::fs::symlink(&victim, path.with_extension("yaml.vxmesh-tmp")).unwrap();
        save(&path, "new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert!(std::fs::symlink_metadata(&path).unwrap().file_type().is_file());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        assert!(create(&path, "other\n").is_err(), "a new inventory never replaces one");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
    }

    #[test]
    fn unknown_node_is_an_error() {
        assert!(
            remove_node(p(), "nodes:\n  - name: a\n    host: x\n", "zz")
                .unwrap_err()
                .to_string()
                .contains("no entry with `name: zz`")
        );
    }

    #[test]
    fn a_node_is_added_with_its_site_and_public_address() {
        let p = Path::new("v.yaml");
        let text = "cluster: {cidr: 172.16.0.0/12, encryption: wireguard}\nnodes:\n  - {name: a, host: 192.0.2.1, site: dc1, public_ip: 198.51.100.1}\n";
        let n = NewNode {
            name: "h",
            host: "192.0.2.9",
            underlay_ip: &["10.0.0.9"],
            subnet: None,
            subnet6: None,
            backend: None,
        };
        let added = add_node_placed(p, text, &n, &Placement { site: Some("home"), public_ip: None }).unwrap();
        assert!(added.ends_with("  - {name: h, host: 192.0.2.9, underlay_ip: 10.0.0.9, site: home}\n"), "{added}");
        let inv = super::super::parse(p, &added).unwrap();
        assert_eq!((inv.nodes[1].site.as_str(), inv.nodes[1].public_ip), ("home", None));
        let placed = Placement { site: Some("dc2"), public_ip: Some("198.51.100.9") };
        let inv = super::super::parse(p, &add_node_placed(p, text, &n, &placed).unwrap()).unwrap();
        assert_eq!(inv.nodes[1].public_ip, Some("198.51.100.9".parse().unwrap()));
    }

    /// Every value lands as one field holding exactly that string, however it is spelt: a value can never add a
    /// field, close the entry or start a comment, in either style.
    #[test]
    fn values_are_written_as_scalars_that_read_back_exactly() {
        #[derive(serde::Deserialize)]
        struct Doc {
            nodes: Vec<std::collections::BTreeMap<String, String>>,
        }
        let hostile = [
            "10.0.0.3, underlay_ip: 10.9.9.9",
            "h} # x",
            "a\"b\\c",
            "- [x]",
            "*ref",
            "yes",
            "2001:db8::11",
            "line\nbreak\ttab\u{7}",
            "'quoted'",
            "plain-name_1.example/x",
        ];
        let block = "nodes:\n  - name: a\n    host: 192.0.2.1\n";
        let flow = "nodes:\n- {name: a, host: 192.0.2.1}\n";
        let one_line = "nodes: [{name: a, host: 192.0.2.1}]\n";
        for text in [block, flow, one_line] {
            for v in hostile {
                let n = NewNode { name: "c", host: v, underlay_ip: &[v], subnet: None, subnet6: None, backend: None };
                let out = add_node_placed(p(), text, &n, &Placement { site: Some(v), public_ip: Some(v) }).unwrap();
                let doc: Doc = serde_saphyr::from_str(&out).unwrap_or_else(|e| panic!("{v:?} in {text:?}: {e}\n{out}"));
                assert_eq!(doc.nodes.len(), 2, "{out}");
                let c = &doc.nodes[1];
                let keys: Vec<&str> = c.keys().map(String::as_str).collect();
                assert_eq!(keys, ["host", "name", "public_ip", "site", "underlay_ip"], "{v:?}: {out}");
                for key in ["host", "underlay_ip", "site", "public_ip"] {
                    assert_eq!(c[key], v, "{key} of {v:?}: {out}");
                }
            }
        }
        assert_eq!(yaml_scalar("10.0.0.3"), "10.0.0.3", "addresses stay plain");
        assert_eq!(yaml_scalar("a b"), "\"a b\"");
    }

    /// IPv6 addresses (host, underlay, public) are written so that they parse back as the addresses given.
    #[test]
    fn a_node_is_added_at_ipv6_addresses() {
        let p = Path::new("v.yaml");
        let text = "cluster: {cidr: 172.16.0.0/12, encryption: wireguard}\nnodes:\n  - {name: a, host: \"fd00::1\", site: dc1, public_ip: \"2001:db8::1\"}\n";
        let n = NewNode {
            name: "h",
            host: "2001:db8::9",
            underlay_ip: &["fd00::9"],
            subnet: None,
            subnet6: None,
            backend: None,
        };
        let placed = Placement { site: Some("dc2"), public_ip: Some("2001:db8::99") };
        let added = add_node_placed(p, text, &n, &placed).unwrap();
        let inv = super::super::parse(p, &added).unwrap_or_else(|e| panic!("{e}\n{added}"));
        let h = &inv.nodes[1];
        assert_eq!(h.host, "2001:db8::9");
        assert_eq!(h.underlay.to_string(), "fd00::9");
        assert_eq!(h.public_ip.map(|p| p.to_string()).as_deref(), Some("2001:db8::99"));
    }

    /// A dual-stack node (an underlay address per family) with its IPv6 block pinned, in block and flow style.
    #[test]
    fn a_dual_stack_node_is_added_with_both_addresses_and_its_ipv6_block() {
        let p = Path::new("v.yaml");
        let n = NewNode {
            name: "h",
            host: "192.0.2.9",
            underlay_ip: &["192.0.2.9", "fd00::9"],
            subnet: None,
            subnet6: Some("fd42:7:1:9::/64"),
            backend: None,
        };
        for text in [
            "cluster: {cidr: 172.16.0.0/12, cidr6: \"fd42:7:1::/48\", underlay_family: ipv6}\nnodes:\n  - {name: a, host: 192.0.2.1, underlay_ip: [192.0.2.1, \"fd00::1\"]}\n",
            "cluster:\n  cidr: 172.16.0.0/12\n  cidr6: \"fd42:7:1::/48\"\n  underlay_family: ipv6\nnodes:\n  - name: a\n    host: 192.0.2.1\n    underlay_ip: [192.0.2.1, \"fd00::1\"]\n",
        ] {
            let added = add_node(p, text, &n).unwrap();
            let inv = super::super::parse(p, &added).unwrap_or_else(|e| panic!("{e}\n{added}"));
            let h = &inv.nodes[1];
            assert_eq!(h.underlay.to_string(), "fd00::9", "{added}");
            assert_eq!(h.subnet6.map(|s| s.to_string()).as_deref(), Some("fd42:7:1:9::/64"), "{added}");
        }
    }
}
