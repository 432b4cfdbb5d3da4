//! A new inventory, as `vxmesh init` writes it: the required fields filled in from the command line, every optional
//! field present as a comment with the value it takes by default for this cluster. The text is checked with the
//! inventory's own validator, and returned only when it reads back as exactly what was asked: a file `init` writes
//! is always one every other command accepts.

use std::net::Ipv4Addr;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::ipam;

use super::check::{escaped, is_forbidden};
use super::{Inventory, parse};

/// The cluster CIDR when none is given: 16 /16 subnets, docker0's 172.17.0.0/16 excluded.
pub const DEFAULT_CIDR: &str = "172.16.0.0/12";

/// One `--host` argument: `HOST`, or `NAME=HOST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHost {
    pub name: Option<String>,
    pub host: String,
}

impl NewHost {
    /// `web1=10.0.0.5` names the node; `10.0.0.5` alone leaves it to be numbered.
    pub fn parse(arg: &str) -> NewHost {
        match arg.split_once('=') {
            Some((name, host)) => NewHost { name: Some(name.to_string()), host: host.to_string() },
            None => NewHost { name: None, host: arg.to_string() },
        }
    }
}

/// The inventory text for `hosts` (nodes `node1`, `node2`, ... unless named), checked by parsing it. `path` is where
/// it will be written: it names the lock file in the comments and the file in messages. Every problem the validator
/// finds is returned at once, naming the field and the value (not a line: the file does not exist yet).
pub fn render(path: &Path, cluster_name: Option<&str>, cidr: &str, hosts: &[NewHost]) -> Result<String> {
    if hosts.is_empty() {
        return Err(Error::Usage("init: name at least one host (--host ADDRESS or --host NAME=ADDRESS)".into()));
    }
    let names: Vec<String> =
        hosts.iter().enumerate().map(|(i, h)| h.name.clone().unwrap_or_else(|| format!("node{}", i + 1))).collect();
    let nodes: String = names
        .iter()
        .zip(hosts)
        .map(|(name, h)| format!("  - name: {}\n    host: {}\n", scalar(name), scalar(&h.host)))
        .collect();
    let name_line = cluster_name.map(|n| format!("  name: {}\n", scalar(n))).unwrap_or_default();
    // First the required fields alone: the validator works out every default from them.
    let minimal = format!("cluster:\n{name_line}  cidr: {}\nnodes:\n{nodes}", scalar(cidr));
    let inv = parse(path, &minimal).map_err(refused).map_err(|e| with_cidr_hint(e, hosts))?;
    let lock = ipam::assign(&inv, None).map_err(refused)?;
    let first_subnet = lock.nodes.get(&names[0]).map(|a| a.subnet.to_string()).unwrap_or_default();
    let text = commented(path, &inv, cluster_name, cidr, &first_subnet, &nodes);
    let back = parse(path, &text).map_err(refused)?;
    let same = back.cluster.name == inv.cluster.name
        && back.cluster.cidr == inv.cluster.cidr
        && back.nodes.len() == hosts.len()
        && back.nodes.iter().zip(names.iter().zip(hosts)).all(|(n, (name, h))| n.name == *name && n.host == h.host);
    if !same {
        return Err(Error::Usage(
            "init: the inventory would not read back as given; nothing was written (write it by hand)".into(),
        ));
    }
    Ok(text)
}

/// The validator's findings about arguments, as `init` reports them: no line numbers (the file does not exist).
fn refused(e: Error) -> Error {
    match e {
        Error::Inventory(d) => {
            let items: Vec<String> = d.items.iter().map(|i| without_line_refs(&i.message)).collect();
            let file = escaped(&d.file.to_string_lossy(), usize::MAX);
            Error::Usage(format!("init: nothing written to {file}: {}", items.join("\n")))
        }
        Error::Exhausted(m) => Error::Usage(format!("init: nothing written: {m}")),
        e @ Error::PinnedSubnet { .. } => Error::Usage(format!("init: nothing written: {e}")),
        other => other,
    }
}

/// Ranges `init` offers when the cluster CIDR holds a host's address (AWS's default VPC is 172.31.0.0/16, inside the
/// default 172.16.0.0/12): private, /16 (256 nodes of /24), rarely a provider's default.
const CIDR_OFFERS: [&str; 3] = ["10.200.0.0/16", "10.210.0.0/16", "192.168.192.0/18"];

/// A host inside the cluster's ranges is fixed by another `--cidr`: say so, with one that holds none of the hosts.
fn with_cidr_hint(e: Error, hosts: &[NewHost]) -> Error {
    let Error::Usage(m) = &e else { return e };
    if !m.contains("lies inside cluster.") {
        return e;
    }
    let addrs: Vec<Ipv4Addr> = hosts.iter().filter_map(|h| h.host.parse().ok()).collect();
    let free = CIDR_OFFERS.iter().find(|c| {
        let net: ipnet::Ipv4Net = c.parse().expect("a valid offer");
        !addrs.iter().any(|a| net.contains(a))
    });
    match free {
        Some(c) => Error::Usage(format!(
            "{m}\nthe cluster CIDR must not hold the hosts' own addresses: pass one that does not, e.g. `--cidr {c}`"
        )),
        None => e,
    }
}

/// `... (first at line 5)` and `... (line 5)` point into a text the user never saw.
fn without_line_refs(message: &str) -> String {
    let mut out = message.to_string();
    for opening in [" (first at line ", " (line "] {
        while let Some(at) = out.find(opening) {
            let rest = &out[at + opening.len()..];
            let digits = rest.chars().take_while(char::is_ascii_digit).count();
            if digits == 0 || !rest[digits..].starts_with(')') {
                break;
            }
            out.replace_range(at..at + opening.len() + digits + 1, "");
        }
    }
    out
}

/// A YAML scalar for `s`: as it is when it cannot be read as anything else, else double-quoted (JSON's quoting is
/// YAML's). The text is parsed again afterwards, so a value read back differently is caught either way.
fn scalar(s: &str) -> String {
    let reserved = ["true", "false", "yes", "no", "on", "off", "null", "y", "n"];
    let word = s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        && !reserved.contains(&s.to_ascii_lowercase().as_str());
    let cidr = s.split_once('/').is_some_and(|(a, p)| {
        a.parse::<Ipv4Addr>().is_ok() && !p.is_empty() && p.len() <= 2 && p.chars().all(|c| c.is_ascii_digit())
    });
    if word || cidr || s.parse::<Ipv4Addr>().is_ok() { s.to_string() } else { double_quoted(s) }
}

/// A YAML double-quoted scalar holding exactly `s`: every character that could end a line, drive a terminal or that
/// YAML refuses raw (DEL, C1 controls) written as an escape, so the validator sees the value and names it.
fn double_quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if is_forbidden(c) || c.is_control() => match u32::from(c) {
                n if n <= 0xffff => out.push_str(&format!("\\u{n:04x}")),
                n => out.push_str(&format!("\\U{n:08x}")),
            },
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An enum's word as the inventory spells it (`ovs`, `auto`, ...).
fn word<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// One line: `key: value`, commented out or not, then its explanation in an aligned column.
fn line(indent: usize, commented: bool, kv: &str, why: &str) -> String {
    let field = if commented { format!("# {kv}") } else { kv.to_string() };
    aligned(&format!("{}{field}", " ".repeat(indent)), why)
}

/// A commented-out field under a commented-out parent at `parent` columns: `  #   mode: network`. Deleting its
/// first `# ` gives the line as YAML wants it.
fn child(parent: usize, kv: &str, why: &str) -> String {
    aligned(&format!("{}#   {kv}", " ".repeat(parent)), why)
}

/// Names across hosts, on in a new inventory: a new fleet gets them from its first `up` (an inventory without the
/// section keeps them off, so upgrading vxmesh never starts a name server on a running fleet unasked). The domain
/// is `mesh`, not the default `vxmesh`: that is also the default docker network's name, and docker answers
/// NAME.NETWORK itself. Off, and why, when a node's name cannot be a DNS label.
fn names_section(inv: &Inventory) -> String {
    let why = "needs dnsmasq-base and curl on the hosts (docs/inventory.md)";
    let domain = "domain: mesh";
    let domain_why = "web.node1.mesh: container web on node1; web.mesh: every web";
    match inv.nodes.iter().find(|n| !super::dns::is_label(&n.name.to_ascii_lowercase())) {
        None => {
            let mut t = line(2, false, "dns:", "names across hosts, proven by verify");
            t += &aligned("    enabled: true", why);
            t += &aligned(&format!("    {domain}"), domain_why);
            t
        }
        Some(n) => {
            let off = format!("off: node `{}` is not a DNS label (letters, digits, -)", escaped(&n.name, 40));
            let mut t = line(2, true, "dns:", &off);
            t += &child(2, "enabled: true", why);
            t += &child(2, domain, domain_why);
            t
        }
    }
}

fn aligned(text: &str, why: &str) -> String {
    if why.is_empty() { format!("{text}\n") } else { format!("{text:<32} # {why}\n") }
}

fn commented(
    path: &Path,
    inv: &Inventory,
    cluster_name: Option<&str>,
    cidr: &str,
    first_subnet: &str,
    nodes: &str,
) -> String {
    let c = &inv.cluster;
    let lock = ipam::lock_path(path);
    // A comment ends at a newline: the name (from `-o PATH`) is escaped, or it could write YAML of its own.
    let lock_name = lock.file_name().map_or_else(|| lock.display().to_string(), |f| f.to_string_lossy().into_owned());
    let lock_name = escaped(&lock_name, usize::MAX);
    let exclude: Vec<String> = c.exclude.iter().map(ToString::to_string).collect();
    let first = &inv.nodes[0];
    let mut t = String::new();
    t +=
        "# vxmesh inventory, written by `vxmesh init`. Only cluster.cidr and each node's name and host are required;\n";
    t += "# every other field is shown commented out, with the value it takes when left out. docs/inventory.md has\n";
    t += &format!("# the rules. Subnets are allocated once and kept in {lock_name} beside this file: keep both.\n");
    t += "cluster:\n";
    t += &match cluster_name {
        Some(n) => line(2, false, &format!("name: {}", scalar(n)), "letters, digits, - and _"),
        None => line(2, true, &format!("name: {}", c.name), "letters, digits, - and _"),
    };
    t += &line(2, false, &format!("cidr: {}", scalar(cidr)), "every container subnet and switch address lies inside");
    t += &line(2, true, &format!("node_prefix: {}", c.node_prefix), "the size of each host's container subnet");
    t += &line(2, true, &format!("switch_cidr: {}", c.switch_cidr), "where the switch (sw0) addresses come from");
    t += &line(2, true, &format!("exclude: [{}]", exclude.join(", ")), "blocks never handed to a node");
    t += &line(2, true, &format!("vni: {}", c.vni), "VXLAN network identifier, 1..=16777215");
    t += &line(2, true, &format!("port: {}", c.port), "VXLAN UDP port: open it between the hosts");
    t +=
        &line(2, true, &format!("mtu: {}", word(&c.mtu)), "auto: smallest underlay MTU - 50 (IPv6: 70); or 576..=9000");
    t += &line(2, true, &format!("backend: {}", word(&c.backend)), "ovs | linux (no Open vSwitch: docs/backends.md)");
    t += &line(2, true, &format!("datapath: {}", c.datapath.as_str()), "OVS hosts: system | netdev (userspace)");
    t += &line(2, true, "docker:", "");
    t += &child(2, &format!("mode: {}", word(&c.docker.mode)), "network | docker0 (the --bip way) | none");
    t += &child(2, &format!("network: {}", c.docker.network), "the docker network; its bridge is br-<network>");
    t += &line(2, true, &format!("nat: {}", c.nat), "masquerade only what leaves the cluster");
    t += &line(2, true, &format!("firewall: {}", word(&c.firewall)), "auto | firewalld | nftables | iptables | none");
    t += &line(2, true, "outside: 192.0.2.10", "none by default: an address `verify` reaches through NAT");
    t += &line(2, true, &format!("encryption: {}", word(&c.encryption)), "none | wireguard (docs/security.md)");
    t += &line(2, true, "wireguard:", "used with encryption: wireguard");
    t += &child(2, &format!("port: {}", c.wireguard.port), "WireGuard's UDP port on every host");
    t += &child(2, &format!("cidr: {}", c.wireguard.cidr), "the hosts' WireGuard addresses");
    t += &child(2, "relays: [node1]", "across sites: forward between NATed hosts; default: first with public_ip");
    t += &names_section(inv);
    t += "# ssh:\n";
    t += &child(0, "user: root", "default: ~/.ssh/config's User, else root");
    t += &child(0, "port: 22", "default: ~/.ssh/config's Port, else 22");
    t += &child(0, "identity_file: ~/.ssh/id_ed25519", "default: the ssh-agent's keys");
    t += &child(0, "become: auto", "auto (sudo -n when the user is not root) | yes | no");
    t += &child(0, "known_hosts: ~/.ssh/known_hosts", "host keys are always checked");
    t += "nodes:\n";
    t += "  # Each node: name and host are required; the others default as shown (for the first node).\n";
    t += &line(2, true, &format!("- name: {}", scalar(&first.name)), "letters, digits, - and _; at most 12 bytes");
    t += &line(2, true, &format!("  host: {}", scalar(&first.host)), "an SSH address or ~/.ssh/config alias");
    t += &line(2, true, &format!("  underlay_ip: {}", first.underlay), "the tunnel endpoint; default: host");
    t += &line(
        2,
        true,
        &format!("  subnet: {first_subnet}"),
        &format!("pins it; default: allocated, kept in {lock_name}"),
    );
    t +=
        &line(2, true, &format!("  backend: {}", word(&c.backend)), "this host's data plane; default: cluster.backend");
    t += &line(2, true, &format!("  site: {}", first.site), "hosts of one site reach each other on underlay_ip");
    t += &line(2, true, "  public_ip: 203.0.113.10", "where other sites reach it (1:1 NAT); none: behind NAT");
    t += nodes;
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("new.yaml")
    }

    fn hosts(args: &[&str]) -> Vec<NewHost> {
        args.iter().map(|a| NewHost::parse(a)).collect()
    }

    #[test]
    fn numbered_and_named_nodes_read_back_with_every_default_commented() {
        let text = render(p(), None, DEFAULT_CIDR, &hosts(&["192.0.2.1", "web1=192.0.2.2"])).unwrap();
        let inv = parse(p(), &text).unwrap();
        let nodes: Vec<(&str, &str)> = inv.nodes.iter().map(|n| (n.name.as_str(), n.host.as_str())).collect();
        assert_eq!(nodes, [("node1", "192.0.2.1"), ("web1", "192.0.2.2")]);
        assert_eq!(inv.cluster.name, "vxmesh");
        assert!(
            text.ends_with("  - name: node1\n    host: 192.0.2.1\n  - name: web1\n    host: 192.0.2.2\n"),
            "{text}"
        );
        for field in [
            "# name: vxmesh",
            "# node_prefix: 16",
            "# switch_cidr: 172.31.0.0/16",
            "# exclude: [172.17.0.0/16]",
            "# vni: 42",
            "# port: 4789",
            "# mtu: auto",
            "# backend: ovs",
            "# datapath: system",
            "#   mode: network",
            "#   network: vxmesh",
            "# nat: true",
            "# firewall: auto",
            "# outside: 192.0.2.10",
            "# encryption: none",
            "#   port: 51820",
            "#   cidr: 198.19.0.0/16",
            "# ssh:",
            "#   user: root",
            "#   become: auto",
            "#   known_hosts: ~/.ssh/known_hosts",
            "#   underlay_ip: 192.0.2.1",
            "#   subnet: 172.16.0.0/16",
            "kept in new.lock",
        ] {
            assert!(text.contains(field), "`{field}` missing:\n{text}");
        }
        // Uncommenting every default gives the same cluster: the comments tell the truth.
        let uncommented: String = text
            .lines()
            .filter(|l| !l.starts_with("# vxmesh") && !l.starts_with("# every") && !l.starts_with("# the rules"))
            .filter(|l| !l.contains("# Each node") && !l.contains("# - name") && !l.contains("#   host"))
            .filter(|l| !l.contains("underlay_ip") && !l.contains("subnet:") && !l.contains("#   backend"))
            .filter(|l| !l.contains("outside:") && !l.contains("identity_file"))
            .filter(|l| !l.contains("relays:") && !l.contains("public_ip:") && !l.contains("#   site"))
            .map(|l| if l.trim_start().starts_with("# ") { l.replacen("# ", "", 1) } else { l.to_string() })
            .collect::<Vec<_>>()
            .join("\n");
        let full = parse(p(), &uncommented).unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
        assert_ne!(uncommented, text);
        assert_eq!(serde_json::to_value(&full.cluster).unwrap(), serde_json::to_value(&inv.cluster).unwrap());
        assert_eq!(serde_json::to_value(&full.nodes).unwrap(), serde_json::to_value(&inv.nodes).unwrap());
        assert_eq!(full.ssh.user.as_deref(), Some("root"));
    }

    #[test]
    fn add_node_and_remove_node_edit_it_cleanly() {
        use super::super::edit::{NewNode, add_node, remove_node};
        let text = render(p(), None, DEFAULT_CIDR, &hosts(&["192.0.2.1", "192.0.2.2"])).unwrap();
        let new =
            NewNode { name: "web", host: "192.0.2.3", underlay_ip: &[], subnet: None, subnet6: None, backend: None };
        let added = add_node(p(), &text, &new).unwrap();
        assert_eq!(added, format!("{text}  - name: web\n    host: 192.0.2.3\n"));
        assert_eq!(parse(p(), &added).unwrap().node_names(), "node1, node2, web");
        let removed = remove_node(p(), &added, "node1").unwrap();
        assert_eq!(
            removed,
            text.replace("  - name: node1\n    host: 192.0.2.1\n", "") + "  - name: web\n    host: 192.0.2.3\n"
        );
        // The commented example above the list stays where it is.
        assert!(removed.contains("  # - name: node1"), "{removed}");
        assert_eq!(parse(p(), &removed).unwrap().node_names(), "node2, web");
    }

    /// A new fleet gets names across hosts, in a domain docker does not answer itself; a node name that cannot be
    /// a DNS label leaves them off, saying which.
    #[test]
    fn names_are_on_in_a_new_inventory_unless_a_node_name_is_not_a_label() {
        let text = render(p(), None, DEFAULT_CIDR, &hosts(&["192.0.2.1", "web1=192.0.2.2"])).unwrap();
        let inv = parse(p(), &text).unwrap();
        assert!(inv.cluster.dns.enabled, "{text}");
        assert_eq!(inv.cluster.dns.domain, "mesh");
        assert_ne!(inv.cluster.dns.domain, inv.cluster.docker.network, "docker answers NAME.NETWORK itself");
        let text = render(p(), None, DEFAULT_CIDR, &hosts(&["192.0.2.1", "web_1=192.0.2.2"])).unwrap();
        let inv = parse(p(), &text).unwrap();
        assert!(!inv.cluster.dns.enabled, "{text}");
        assert!(text.contains("# dns:") && text.contains("off: node `web_1` is not a DNS label"), "{text}");
    }

    /// Hosts in AWS's default VPC (172.31.0.0/16) collide with the default cluster CIDR: the refusal says which
    /// `--cidr` would do, one that holds none of the hosts.
    #[test]
    fn hosts_inside_the_cluster_cidr_get_a_cidr_that_fits() {
        let e = render(p(), None, DEFAULT_CIDR, &hosts(&["172.31.5.10", "172.31.5.11"])).unwrap_err().to_string();
        assert!(e.contains("`172.31.5.10` lies inside cluster.switch_cidr"), "{e}");
        assert!(e.ends_with("pass one that does not, e.g. `--cidr 10.200.0.0/16`"), "{e}");
        let e = render(p(), None, "10.200.0.0/16", &hosts(&["10.200.0.5"])).unwrap_err().to_string();
        assert!(e.ends_with("e.g. `--cidr 10.210.0.0/16`"), "the offer holds none of the hosts: {e}");
        let text = render(p(), None, "10.210.0.0/16", &hosts(&["10.200.0.5"])).unwrap();
        assert!(parse(p(), &text).is_ok(), "the offer works");
        let e = render(p(), None, DEFAULT_CIDR, &hosts(&["192.0.2.1", "192.0.2.1"])).unwrap_err().to_string();
        assert!(!e.contains("--cidr"), "no hint where the CIDR is not the trouble: {e}");
    }

    #[test]
    fn the_defaults_shown_follow_the_cidr_and_the_name() {
        let text = render(p(), Some("prod"), "10.8.0.0/16", &hosts(&["192.0.2.1"])).unwrap();
        assert!(text.contains("\n  name: prod "), "{text}");
        assert!(text.contains("# node_prefix: 24"), "{text}");
        assert!(text.contains("# switch_cidr: 10.8.255.0/24"), "{text}");
        assert!(text.contains("# exclude: []"), "{text}");
    }

    #[test]
    fn bad_hosts_are_refused_as_the_validator_words_them_without_lines() {
        let e = render(p(), None, DEFAULT_CIDR, &hosts(&["192.0.2.1", "192.0.2.1"])).unwrap_err().to_string();
        assert_eq!(
            e,
            "init: nothing written to new.yaml: nodes[node2].host: `192.0.2.1` is also the host of node `node1`"
        );
        let e = render(p(), None, DEFAULT_CIDR, &hosts(&["web/1=192.0.2.1", "db.example.org"])).unwrap_err();
        let e = e.to_string();
        assert!(e.contains("nodes.name: `web/1` may use only letters, digits, `-` and `_`"), "{e}");
        assert!(e.contains("nodes[node2].host: `db.example.org` is not an IP address"), "{e}");
        let e = render(p(), None, "172.16.0.1/12", &hosts(&["192.0.2.1"])).unwrap_err().to_string();
        assert!(e.contains("has host bits set; did you mean `172.16.0.0/12`?"), "{e}");
        assert!(render(p(), None, DEFAULT_CIDR, &[]).unwrap_err().to_string().contains("at least one host"));
    }

    #[test]
    fn values_that_yaml_would_misread_are_quoted_or_refused() {
        // A host that is YAML syntax stays one string (and, not being an address, is refused for its own reason).
        let e = render(p(), None, DEFAULT_CIDR, &hosts(&["a=x: y", "b=#c", "c=[1]"])).unwrap_err().to_string();
        for (v, why) in [
            ("`x: y`", "is neither an IPv6 address nor a host name"),
            ("`#c`", "is not an IP address"),
            ("`[1]`", "is in brackets"),
        ] {
            assert!(e.contains(&format!("host: {v} {why}")), "{v}: {e}");
        }
        let e = render(p(), None, DEFAULT_CIDR, &hosts(&["web\n1=192.0.2.1"])).unwrap_err().to_string();
        assert!(e.contains("web\\n1"), "{e}");
        let text = render(p(), None, DEFAULT_CIDR, &hosts(&["007=192.0.2.1", "yes=192.0.2.2"])).unwrap();
        let inv = parse(p(), &text).unwrap();
        assert_eq!(inv.node_names(), "007, yes");
        assert_eq!(scalar("192.0.2.1"), "192.0.2.1");
        assert_eq!(scalar("true"), "\"true\"");
        assert_eq!(scalar("a b"), "\"a b\"");
        assert_eq!(scalar("a\"b\\c\u{7f}\u{85}\u{2028}"), r#""a\"b\\c\u007f\u0085\u2028""#);
    }

    #[test]
    fn a_control_character_in_an_argument_is_named_with_its_field() {
        let e = render(p(), None, DEFAULT_CIDR, &hosts(&["web=192.0.2.1\u{7f}"])).unwrap_err().to_string();
        assert_eq!(
            e,
            "init: nothing written to new.yaml: nodes[web].host: `192.0.2.1\\u{7f}` contains the control character \
             `\\u{7f}`; expected an SSH address or ~/.ssh/config alias"
        );
        let e = render(p(), None, DEFAULT_CIDR, &hosts(&["w\u{1b}b=192.0.2.1"])).unwrap_err().to_string();
        assert!(e.contains(r"nodes.name: `w\u{1b}b` contains the control character `\u{1b}`"), "{e}");
    }

    #[test]
    fn the_output_path_cannot_write_yaml_into_the_comments() {
        let path = Path::new("x\nnodes: []\n#.yaml");
        let text = render(path, None, DEFAULT_CIDR, &hosts(&["192.0.2.1"])).unwrap();
        assert!(text.contains(r"kept in x\nnodes: []\n#.lock beside this file"), "{text}");
        assert_eq!(parse(p(), &text).unwrap().nodes.len(), 1);
        assert!(text.lines().all(|l| l != "nodes: []" && l != "#.lock beside this file: keep both."), "{text}");
    }

    #[test]
    fn a_cidr_over_the_default_wireguard_range_is_fine_without_encryption() {
        let text = render(p(), None, "198.18.0.0/15", &hosts(&["192.0.2.1"])).unwrap();
        assert_eq!(parse(p(), &text).unwrap().cluster.cidr.to_string(), "198.18.0.0/15");
    }

    #[test]
    fn line_references_are_dropped_only_where_they_are() {
        assert_eq!(without_line_refs("x `a` is listed twice (first at line 5)"), "x `a` is listed twice");
        assert_eq!(without_line_refs("host of node `a` (line 12): more"), "host of node `a`: more");
        assert_eq!(without_line_refs("a (line x)"), "a (line x)");
    }
}
