//! The gather script's output for typed facts: what a host with these facts would print, section by section, in
//! the formats the parsers read (`ip -j`, `iptables-save`, `ovs-vsctl --format=json`, `wg show dump`, ...).

use std::fmt::Write as _;

use serde_json::{Value, json};
use vxmesh::components::boot::BootFacts;
use vxmesh::components::docker_network::DockerNetworkFacts;
use vxmesh::components::linux::LinuxFacts;
use vxmesh::components::ovs::OvsFacts;
use vxmesh::components::wireguard::{GUARD_METRIC, WireguardFacts};
use vxmesh::facts::{HostFacts, Iptables, Link, MARK, Route};
use vxmesh::plan::NodePlan;

/// A gather output split into its sections, in the order the host printed them (the end marker left out).
#[derive(Debug, Clone, Default)]
pub struct Output(pub Vec<(String, String)>);

impl Output {
    pub fn parse(text: &str) -> Output {
        let mut out: Vec<(String, String)> = vec![];
        for line in text.lines() {
            if let Some(name) = line.strip_prefix(MARK) {
                if name == "end" {
                    break;
                }
                out.push((name.trim().to_string(), String::new()));
            } else if let Some((_, body)) = out.last_mut() {
                body.push_str(line);
                body.push('\n');
            }
        }
        Output(out)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, b)| b.as_str())
    }

    /// Sets a section's body (a newline is added when missing); a new section goes last.
    pub fn set(&mut self, name: &str, body: String) {
        let body = if body.is_empty() || body.ends_with('\n') { body } else { body + "\n" };
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some((_, b)) => *b = body,
            None => self.0.push((name.to_string(), body)),
        }
    }

    pub fn text(&self) -> String {
        let mut s = String::with_capacity(self.0.iter().map(|(n, b)| n.len() + b.len() + 16).sum());
        for (n, b) in &self.0 {
            let _ = writeln!(s, "{MARK}{n}");
            s.push_str(b);
        }
        let _ = writeln!(s, "{MARK}end");
        s
    }
}

/// `ip -j -d addr show`, as far as the parser reads it.
pub fn links(links: &std::collections::BTreeMap<String, Link>) -> String {
    let v: Vec<Value> = links
        .iter()
        .map(|(name, l)| {
            let flags: &[&str] =
                if l.up { &["BROADCAST", "MULTICAST", "UP", "LOWER_UP"] } else { &["BROADCAST", "MULTICAST"] };
            let addrs: Vec<Value> = l
                .addrs
                .iter()
                .map(|a| json!({"family": "inet", "local": a.addr().to_string(), "prefixlen": a.prefix_len()}))
                .collect();
            let mut o = json!({"ifname": name, "flags": flags, "mtu": l.mtu, "addr_info": addrs});
            if let Some(m) = &l.master {
                o["master"] = json!(m);
            }
            if let Some(mac) = &l.mac {
                o["address"] = json!(mac);
            }
            if !l.kind.is_empty() {
                o["linkinfo"] = json!({"info_kind": l.kind});
            }
            o
        })
        .collect();
    serde_json::to_string(&v).expect("JSON")
}

/// `ip -j route show`.
pub fn routes(routes: &[Route]) -> String {
    let v: Vec<Value> = routes
        .iter()
        .map(|r| {
            let mut o = json!({"dst": r.dst});
            if let Some(d) = &r.dev {
                o["dev"] = json!(d);
            }
            if let Some(g) = &r.gateway {
                o["gateway"] = json!(g);
            }
            o
        })
        .collect();
    serde_json::to_string(&v).expect("JSON")
}

/// `iptables-save`.
pub fn iptables(t: &Iptables) -> String {
    let mut s = String::new();
    for (table, chains) in &t.tables {
        let _ = writeln!(s, "*{table}");
        for chain in chains.keys() {
            let _ = writeln!(s, ":{chain} - [0:0]");
        }
        for (chain, rules) in chains {
            for r in rules {
                let _ = writeln!(s, "-A {chain} {r}");
            }
        }
        s.push_str("COMMIT\n");
    }
    s
}

/// `key = value` lines (`sysctl`).
pub fn sysctls(f: &HostFacts) -> String {
    f.sysctls.iter().map(|(k, v)| format!("{k} = {v}\n")).collect()
}

/// `DEV tx-checksumming: on|off` lines (ethtool, cut by sed on the host).
pub fn offloads(f: &HostFacts) -> String {
    f.tx_offload.iter().map(|(d, on)| format!("{d} tx-checksumming: {}\n", if *on { "on" } else { "off" })).collect()
}

fn map(m: &std::collections::BTreeMap<String, String>) -> Value {
    json!(["map", m.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>()])
}

fn uuids(prefix: &str, names: &[String]) -> Value {
    json!(["set", names.iter().map(|n| json!(["uuid", format!("{prefix}-{n}")])).collect::<Vec<_>>()])
}

/// The three `ovs-vsctl --format=json list` documents (Bridge, Port, Interface), one a line.
pub fn ovs(o: &OvsFacts) -> String {
    if !o.reachable {
        return String::new();
    }
    let bridges: Vec<Value> = o
        .bridges
        .iter()
        .map(|(n, b)| json!([["uuid", format!("b-{n}")], n, b.datapath_type, uuids("p", &b.ports)]))
        .collect();
    let ports: Vec<Value> = o
        .ports
        .iter()
        .map(|(n, p)| json!([["uuid", format!("p-{n}")], n, uuids("i", &p.interfaces), p.protected]))
        .collect();
    let ifaces: Vec<Value> = o
        .interfaces
        .iter()
        .map(|(n, i)| {
            json!([
                ["uuid", format!("i-{n}")],
                n,
                i.r#type,
                map(&i.options),
                map(&i.bfd),
                map(&i.bfd_status),
                i.mtu_request.map_or_else(|| json!(["set", []]), |m| json!(m)),
                i.error.as_ref().map_or_else(|| json!(["set", []]), |e| json!(e)),
            ])
        })
        .collect();
    let doc = |headings: &[&str], data: Vec<Value>| json!({"data": data, "headings": headings}).to_string();
    format!(
        "{}\n{}\n{}\n",
        doc(&["_uuid", "name", "datapath_type", "ports"], bridges),
        doc(&["_uuid", "name", "interfaces", "protected"], ports),
        doc(&["_uuid", "name", "type", "options", "bfd", "bfd_status", "mtu_request", "error"], ifaces),
    )
}

/// Every peer's switch address answering its ping (the liveness probe of peers without BFD).
pub fn peer_pings(node: &NodePlan) -> String {
    node.tunnels().map(|t| format!("up {}\n", t.peer_switch)).collect()
}

/// `docker network inspect` of every network: the ones the host had (`before`, its JSON array) and the mesh's.
pub fn docker_networks(before: &str, f: &HostFacts) -> String {
    let mut all: Vec<Value> = serde_json::from_str(before).unwrap_or_default();
    if let Some(Some(n)) = f.part::<DockerNetworkFacts>().map(|d| d.0.as_ref()) {
        all.retain(|v| v["Name"] != n.name.as_str());
        let config: Vec<Value> = n
            .subnets
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut c = json!({"Subnet": s});
                if let (0, Some(g)) = (i, &n.gateway) {
                    c["Gateway"] = json!(g);
                }
                c
            })
            .collect();
        let containers: serde_json::Map<String, Value> =
            n.containers.iter().enumerate().map(|(i, c)| (format!("{i:064x}"), json!({"Name": c}))).collect();
        all.push(json!({
            "Name": n.name,
            "Driver": n.driver,
            "IPAM": {"Driver": "default", "Config": config},
            "Options": n.options,
            "Containers": containers,
        }));
    }
    serde_json::to_string_pretty(&all).expect("JSON")
}

/// The boot files' fingerprints, as the host's `sed` prints them.
pub fn boot(b: &BootFacts) -> String {
    let mut s = String::new();
    if let Some(h) = &b.script {
        let _ = writeln!(s, "script {h}");
    }
    if let Some(h) = &b.unit {
        let _ = writeln!(s, "unit {h}");
    }
    if b.enabled {
        s.push_str("enabled\n");
    }
    s
}

/// WireGuard's sections: the public key, the key file, `wg show dump` (as the host's awk cuts it), the kernel
/// probe (not run when the interface exists) and the fail-closed routes.
pub fn wireguard(out: &mut Output, w: &WireguardFacts) {
    out.set("wg-key", w.public_key.clone().unwrap_or_default());
    out.set("wg-key-file", if w.key_file || w.public_key.is_some() { "yes".into() } else { String::new() });
    let show = w.device.as_ref().map_or_else(String::new, |d| {
        let mut s = format!("{} {}\n", d.public_key, d.listen_port.map_or_else(|| "0".to_string(), |p| p.to_string()));
        for p in &d.peers {
            let _ = writeln!(
                s,
                "{} {} {} {} {}",
                p.public_key,
                p.endpoint.as_deref().unwrap_or("(none)"),
                if p.allowed_ips.is_empty() { "(none)".to_string() } else { p.allowed_ips.join(",") },
                p.latest_handshake,
                p.keepalive.map_or_else(|| "off".to_string(), |k| k.to_string()),
            );
        }
        s
    });
    out.set("wg-show", show);
    let kernel = match (w.device.is_some(), w.kernel_module) {
        (true, _) | (false, None) => String::new(),
        (false, Some(true)) => "yes".into(),
        (false, Some(false)) => "no".into(),
    };
    out.set("wg-kernel", kernel);
    out.set("wg-guard", w.guards.iter().map(|g| format!("unreachable {g} metric {GUARD_METRIC}\n")).collect());
}

/// The kernel backend's sections: its VXLAN device, its all-zeros FDB entries, and whether VXLAN is supported.
pub fn linux(out: &mut Output, l: &LinuxFacts) {
    let link = l.vxlan.as_ref().map_or_else(String::new, |d| {
        let mut data = json!({});
        if let Some(id) = d.id {
            data["id"] = json!(id);
        }
        if let Some(p) = d.port {
            data["port"] = json!(p);
        }
        if let Some(local) = d.local {
            data["local"] = json!(local.to_string());
        }
        json!([{"linkinfo": {"info_kind": "vxlan", "info_data": data}}]).to_string()
    });
    out.set("vxlan-link", link);
    let fdb = if l.vxlan.is_some() {
        let v: Vec<Value> = l
            .flood_to
            .iter()
            .map(|d| json!({"mac": "00:00:00:00:00:00", "dst": d.to_string(), "self": true}))
            .collect();
        serde_json::to_string(&v).expect("JSON")
    } else {
        String::new()
    };
    out.set("vxlan-fdb", fdb);
    out.set("vxlan-support", if l.vxlan_supported { "yes".into() } else { "no".into() });
}

/// Every section a converge can change, written from `f`; the others (os-release, tools, other overlays,
/// firewalld, nft, ...) stay as `before` had them.
pub fn write(before: &Output, node: &NodePlan, f: &HostFacts) -> String {
    let mut out = before.clone();
    out.set("ip-addr", links(&f.links));
    out.set("ip-route", routes(&f.routes));
    out.set("iptables-save", iptables(&f.iptables));
    out.set("sysctl", sysctls(f));
    out.set("tx-offload", offloads(f));
    out.set("applied", f.applied.as_ref().map_or_else(String::new, |(p, t)| format!("{p} {t}")));
    if let Some(o) = f.part::<OvsFacts>() {
        out.set("ovs", ovs(o));
    }
    out.set("peer-pings", peer_pings(node));
    if f.part::<DockerNetworkFacts>().is_some() {
        out.set("docker-networks", docker_networks(before.get("docker-networks").unwrap_or("[]"), f));
    }
    if let Some(b) = f.part::<BootFacts>() {
        out.set("boot", boot(b));
    }
    if let Some(w) = f.part::<WireguardFacts>() {
        wireguard(&mut out, w);
    }
    if let Some(l) = f.part::<LinuxFacts>() {
        linux(&mut out, l);
    }
    out.text()
}
