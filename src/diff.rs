//! (desired, facts) -> the changes still needed, each typed; empty when the host already matches.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::Serialize;

use crate::facts::HostFacts;
use crate::inventory::{Datapath, DockerMode, FirewallKind, MtuSetting, VXLAN_OVERHEAD};
use crate::names;
use crate::plan::{DockerSpec, NodePlan, Sysctl, TunnelSpec};

/// The overlay MTU as a number, or "learn it on the host" when the facts cannot tell (offline scripts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mtu {
    Detect,
    #[serde(untagged)]
    Value(u32),
}

/// The overlay MTU: fixed, or the underlay device's MTU minus VXLAN's overhead.
pub fn resolve_mtu(node: &NodePlan, facts: &HostFacts) -> Mtu {
    match node.mtu {
        MtuSetting::Fixed(m) => Mtu::Value(u32::from(m)),
        MtuSetting::Auto => match facts.mtu_of_device_with(node.underlay_ip) {
            Some(m) => Mtu::Value(m.saturating_sub(u32::from(VXLAN_OVERHEAD))),
            None => Mtu::Detect,
        },
    }
}

/// The firewall that will actually be programmed: `auto` picks what the host runs.
pub fn resolve_firewall(kind: FirewallKind, facts: &HostFacts) -> FirewallKind {
    match kind {
        FirewallKind::Auto if facts.firewalld.running => FirewallKind::Firewalld,
        FirewallKind::Auto if facts.tools.contains_key("nft") && !facts.tools.contains_key("iptables") => {
            FirewallKind::Nftables
        }
        FirewallKind::Auto => FirewallKind::Iptables,
        k => k,
    }
}

/// One iptables chain vxmesh owns, reached by one jump placed first in a built-in chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwnedChain {
    pub table: &'static str,
    pub parent: &'static str,
    pub chain: &'static str,
    /// The jump rule as iptables-save prints it (after `-A PARENT `).
    pub jump: String,
    /// Built-in chains the jump may have been in before (it is removed from there).
    pub former_parents: Vec<&'static str>,
    /// The facts did not say whether docker's DOCKER-USER chain exists (offline scripts): the script decides.
    pub parent_at_runtime: bool,
    pub rules: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    Sysctl(Sysctl),
    CreateVeth {
        switch_end: String,
        docker_end: String,
        mtu: Mtu,
    },
    LinkMtu {
        dev: String,
        mtu: Mtu,
    },
    LinkUp {
        dev: String,
    },
    TxOffloadOff {
        dev: String,
    },
    Bridge {
        bridge: String,
        datapath: Datapath,
        mtu: Mtu,
    },
    Tunnel {
        bridge: String,
        tunnel: TunnelSpec,
        vni: u32,
        port: u16,
        repair: Vec<String>,
    },
    RemoveTunnel {
        bridge: String,
        port: String,
    },
    AttachPort {
        bridge: String,
        port: String,
    },
    SwitchAddress {
        dev: String,
        address: Ipv4Net,
        stale: Vec<Ipv4Net>,
    },
    DockerNetwork {
        spec: DockerSpec,
        mtu: Mtu,
        recreate: Option<String>,
    },
    /// `docker0` mode: daemon.json gets `content`; `guard_existing` when the host's file was not read (offline).
    DockerDaemon {
        bip: Ipv4Net,
        mtu: Mtu,
        content: String,
        guard_existing: bool,
    },
    Enslave {
        dev: String,
        master: String,
    },
    IptablesChain(OwnedChain),
    NftTable {
        port: u16,
        peers: Vec<Ipv4Addr>,
    },
    Firewalld {
        add: Vec<String>,
        remove: Vec<String>,
    },
    /// The boot script and systemd unit that restore the node after a reboot.
    BootUnit {
        script: String,
        unit: String,
    },
    /// The host is in a state vxmesh will not change by itself; the script stops here with `reason`.
    Blocked {
        reason: String,
    },
}

/// A change with the sentence an admin reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub description: String,
    #[serde(flatten)]
    pub change: Change,
}

const DOCKER_OPT_BRIDGE: &str = "com.docker.network.bridge.name";
const DOCKER_OPT_MASQ: &str = "com.docker.network.bridge.enable_ip_masquerade";
const DOCKER_OPT_MTU: &str = "com.docker.network.driver.mtu";

/// Docker options the mesh network is created with.
pub fn docker_options(spec: &DockerSpec, mtu: Mtu) -> Vec<(&'static str, String)> {
    let mtu = match mtu {
        Mtu::Value(m) => m.to_string(),
        Mtu::Detect => "$MTU".to_string(),
    };
    vec![
        (DOCKER_OPT_BRIDGE, spec.bridge.clone()),
        (DOCKER_OPT_MASQ, spec.masquerade.to_string()),
        (DOCKER_OPT_MTU, mtu),
    ]
}

fn tag() -> String {
    format!("-m comment --comment {}", names::RULE_TAG)
}

/// docker's chain for the admin's own forwarding rules: docker keeps it, and its place, across restarts.
pub const DOCKER_USER: &str = "DOCKER-USER";

/// The iptables chains this node needs, rules spelled exactly as iptables-save prints them.
/// `docker_user`: whether docker manages iptables here (forwarding is then allowed from its DOCKER-USER chain);
/// `None` when unknown, and the script looks.
pub fn owned_chains(node: &NodePlan, firewall: FirewallKind, docker_user: Option<bool>) -> Vec<OwnedChain> {
    let at_runtime = docker_user.is_none();
    let docker_user = docker_user.unwrap_or(false);
    let t = tag();
    let mut out = vec![];
    let sub = node.subnet;
    let cidr = node.forward_accept;
    let mut nat_rules = vec![format!("-s {sub} -d {cidr} {t} -j ACCEPT")];
    if let Some(n) = &node.nat {
        nat_rules.push(format!("-s {} ! -d {} {t} -j MASQUERADE", n.source, n.cluster));
    }
    out.push(OwnedChain {
        table: "nat",
        parent: "POSTROUTING",
        chain: names::NAT_CHAIN,
        jump: format!("{t} -j {}", names::NAT_CHAIN),
        former_parents: vec![],
        parent_at_runtime: false,
        rules: nat_rules,
    });
    out.push(OwnedChain {
        table: "filter",
        parent: if docker_user { DOCKER_USER } else { "FORWARD" },
        chain: names::FORWARD_CHAIN,
        jump: format!("{t} -j {}", names::FORWARD_CHAIN),
        former_parents: if docker_user { vec!["FORWARD"] } else { vec![DOCKER_USER] },
        parent_at_runtime: at_runtime,
        rules: node
            .forward_exclude
            .iter()
            .flat_map(|e| [format!("-s {e} {t} -j RETURN"), format!("-d {e} {t} -j RETURN")])
            .chain([format!("-s {cidr} -d {cidr} {t} -j ACCEPT")])
            .collect(),
    });
    if firewall == FirewallKind::Iptables {
        let port = node.firewall.port;
        let mut rules: Vec<String> = node.firewall.peers.iter().map(|p| format!("-s {p}/32 {t} -j ACCEPT")).collect();
        rules.push(format!("{t} -j DROP"));
        out.push(OwnedChain {
            table: "filter",
            parent: "INPUT",
            chain: names::VXLAN_CHAIN,
            jump: format!("-p udp -m udp --dport {port} {t} -j {}", names::VXLAN_CHAIN),
            former_parents: vec![],
            parent_at_runtime: false,
            rules,
        });
    }
    out
}

/// firewalld's own spelling of a rule allowing VXLAN from one peer (as `--list-rich-rules` prints it).
pub fn rich_rule(peer: Ipv4Addr, port: u16) -> String {
    format!(r#"rule family="ipv4" source address="{peer}" port port="{port}" protocol="udp" accept"#)
}

/// Everything `node` still needs, in the order it must be applied, the boot unit last.
pub fn diff(node: &NodePlan, facts: &HostFacts) -> Vec<Step> {
    let mut steps = diff_core(node, facts);
    steps.extend(crate::boot::step(node, facts));
    steps
}

/// The network part of [`diff`]: everything but the boot unit (which is built from it).
pub fn diff_core(node: &NodePlan, facts: &HostFacts) -> Vec<Step> {
    let mut steps = vec![];
    let mut add = |description: String, change: Change| steps.push(Step { description, change });
    let mtu = resolve_mtu(node, facts);
    let mtu_num = match mtu {
        Mtu::Value(m) => Some(m),
        Mtu::Detect => None,
    };
    let firewall = resolve_firewall(node.firewall.kind, facts);
    let sysctl_missing = |s: &Sysctl| facts.sysctls.get(&s.key) != Some(&s.value);

    let (forward, per_device): (Vec<&Sysctl>, Vec<&Sysctl>) =
        node.sysctls.iter().partition(|s| !s.key.starts_with("net.ipv4.conf."));
    for s in forward.into_iter().filter(|s| sysctl_missing(s)) {
        add(format!("set {} = {}", s.key, s.value), Change::Sysctl(s.clone()));
    }

    let has_docker = node.docker.mode != DockerMode::None;
    // The veth pair joining the docker bridge to sw0.
    let (sw_end, dk_end) = (&node.veth.switch_end, &node.veth.docker_end);
    let veth_ok = [sw_end, dk_end].iter().all(|d| facts.links.get(*d).is_some_and(|l| l.kind == "veth"));
    if has_docker && !veth_ok {
        add(
            format!("create the veth pair {sw_end} <-> {dk_end}"),
            Change::CreateVeth { switch_end: sw_end.clone(), docker_end: dk_end.clone(), mtu },
        );
    }
    for dev in [sw_end, dk_end].into_iter().filter(|_| has_docker) {
        let link = facts.links.get(dev).filter(|_| veth_ok);
        if veth_ok && mtu_num.is_some_and(|m| link.is_some_and(|l| l.mtu != m)) {
            add(format!("set {dev} MTU to {}", mtu_num.unwrap_or_default()), Change::LinkMtu { dev: dev.clone(), mtu });
        }
        // A veth created now starts with offloads on, whatever the facts said of the old one.
        if node.tx_offload_off.contains(dev) && (!veth_ok || facts.tx_offload.get(dev) != Some(&false)) {
            add(
                format!("turn TX checksum offload off on {dev} (userspace datapath)"),
                Change::TxOffloadOff { dev: dev.clone() },
            );
        }
        if !link.is_some_and(|l| l.up) {
            add(format!("bring {dev} up"), Change::LinkUp { dev: dev.clone() });
        }
    }

    // The OVS bridge, its tunnels and the veth port.
    let br = &node.switch.bridge;
    let bridge = facts.ovs.bridges.get(br);
    let bridge_iface = facts.ovs.interfaces.get(br);
    let want_dp = node.switch.datapath.as_str();
    let dp_ok =
        bridge.is_some_and(|b| b.datapath_type == want_dp || (want_dp == "system" && b.datapath_type.is_empty()));
    let mtu_ok = mtu_num.is_none_or(|m| bridge_iface.is_some_and(|i| i.mtu_request == Some(m)));
    if bridge.is_none() || !dp_ok || !mtu_ok {
        let what = if bridge.is_none() { "create" } else { "repair" };
        add(
            format!("{what} OVS bridge {br} (datapath {want_dp})"),
            Change::Bridge { bridge: br.clone(), datapath: node.switch.datapath, mtu },
        );
    }
    let present: BTreeSet<&str> = bridge.map(|b| b.ports.iter().map(String::as_str).collect()).unwrap_or_default();
    for t in &node.tunnels {
        let repair = tunnel_drift(t, node, facts, present.contains(&*t.port));
        if repair.as_ref().is_some_and(|r| r.is_empty()) {
            continue;
        }
        let repair = repair.unwrap_or_default();
        let description = if repair.is_empty() {
            format!("add tunnel {} to {} ({})", t.port, t.peer, t.remote_ip)
        } else {
            format!("repair tunnel {} to {}: {}", t.port, t.peer, repair.join(", "))
        };
        add(
            description,
            Change::Tunnel {
                bridge: br.clone(),
                tunnel: t.clone(),
                vni: node.vxlan.vni,
                port: node.vxlan.port,
                repair,
            },
        );
    }
    let wanted: BTreeSet<&str> = node.tunnels.iter().map(|t| &*t.port).collect();
    for stale in present.iter().filter(|p| p.starts_with(names::TUNNEL_PREFIX) && !wanted.contains(*p)) {
        add(
            format!("remove tunnel {stale} (no longer a peer)"),
            Change::RemoveTunnel { bridge: br.clone(), port: stale.to_string() },
        );
    }
    if has_docker && !present.contains(sw_end.as_str()) {
        add(format!("plug {sw_end} into {br}"), Change::AttachPort { bridge: br.clone(), port: sw_end.clone() });
    }

    // sw0's address: the cluster routes through it.
    let sw_link = facts.links.get(br);
    let addrs = sw_link.map(|l| l.addrs.clone()).unwrap_or_default();
    let stale: Vec<Ipv4Net> = addrs.iter().filter(|a| **a != node.switch.address).copied().collect();
    if !addrs.contains(&node.switch.address) || !stale.is_empty() {
        add(
            format!("give {br} the address {}", node.switch.address),
            Change::SwitchAddress { dev: br.clone(), address: node.switch.address, stale },
        );
    }
    if !sw_link.is_some_and(|l| l.up) {
        add(format!("bring {br} up"), Change::LinkUp { dev: br.clone() });
    }

    // Docker: the container side of the mesh.
    match node.docker.mode {
        DockerMode::Network => {
            let net = facts.docker_network.as_ref();
            let recreate = net.and_then(|n| docker_drift(&node.docker, mtu, n));
            if net.is_none() || recreate.is_some() {
                let description = match &recreate {
                    None => format!(
                        "create docker network {} ({}, bridge {})",
                        node.docker.network, node.docker.subnet, node.docker.bridge
                    ),
                    Some(why) => format!("recreate docker network {} ({why})", node.docker.network),
                };
                add(description, Change::DockerNetwork { spec: node.docker.clone(), mtu, recreate });
            }
        }
        DockerMode::None => {}
        DockerMode::Docker0 => {
            let bip = Ipv4Net::new(node.docker.gateway, node.docker.subnet.prefix_len()).expect("valid prefix");
            match crate::docker_daemon::merged(&facts.docker_daemon_json, bip, mtu, node.forward_accept) {
                Ok(Some(content)) => add(
                    format!("set docker's bip to {bip} in /etc/docker/daemon.json and restart docker"),
                    Change::DockerDaemon {
                        bip,
                        mtu,
                        content,
                        guard_existing: facts.docker_daemon_json.trim().is_empty(),
                    },
                ),
                // daemon.json is current; docker only reads it when it starts.
                Ok(None)
                    if !facts.links.is_empty()
                        && !facts.links.get(names::DOCKER0).is_some_and(|l| l.addrs.contains(&bip)) =>
                {
                    let reason = format!(
                        "docker0 still has its old address: docker applies bip {bip} only when it starts with no container on \
                         its default network (live-restore keeps running containers on the old one). Stop the containers on \
                         docker0, restart docker (systemctl restart docker), then run vxmesh up again"
                    );
                    add(format!("stop: {reason}"), Change::Blocked { reason });
                }
                Ok(None) => {}
                Err(reason) => add(format!("stop: {reason}; fix it by hand"), Change::Blocked { reason }),
            }
        }
    }
    let dk_master = facts.links.get(dk_end).and_then(|l| l.master.as_deref());
    if has_docker && (!veth_ok || dk_master != Some(node.docker.bridge.as_str())) {
        add(
            format!("plug {dk_end} into docker bridge {}", node.docker.bridge),
            Change::Enslave { dev: dk_end.clone(), master: node.docker.bridge.clone() },
        );
    }
    for s in per_device.into_iter().filter(|s| sysctl_missing(s)) {
        add(format!("set {} = {}", s.key, s.value), Change::Sysctl(s.clone()));
    }

    // Rules: no NAT inside the cluster, masquerade out of it, forwarding allowed, VXLAN only from peers.
    // No filter table in the facts means they were not gathered (offline): let the script look for DOCKER-USER.
    let docker_user = facts.iptables.tables.get("filter").map(|t| t.contains_key(DOCKER_USER));
    for chain in owned_chains(node, firewall, docker_user) {
        let rules_ok = facts.iptables.chain(chain.table, chain.chain) == Some(&chain.rules);
        let stray = chain
            .former_parents
            .iter()
            .any(|p| facts.iptables.chain(chain.table, p).is_some_and(|r| r.contains(&chain.jump)));
        let jump_first = facts.iptables.chain(chain.table, chain.parent).and_then(|r| r.first()) == Some(&chain.jump);
        let jumps = facts
            .iptables
            .chain(chain.table, chain.parent)
            .map_or(0, |r| r.iter().filter(|x| **x == chain.jump).count());
        if !rules_ok || !jump_first || jumps != 1 || stray {
            add(
                format!(
                    "program iptables {}/{} ({} rules) and jump to it first from {}",
                    chain.table,
                    chain.chain,
                    chain.rules.len(),
                    if chain.parent_at_runtime {
                        "DOCKER-USER, or FORWARD where docker does not run"
                    } else {
                        chain.parent
                    }
                ),
                Change::IptablesChain(chain),
            );
        }
    }
    match firewall {
        FirewallKind::Nftables => {
            let want: BTreeSet<Ipv4Addr> = node.firewall.peers.iter().copied().collect();
            let ok = facts.nft.as_ref().is_some_and(|t| t.peers == want && t.guarded_port == Some(node.firewall.port));
            if !ok {
                add(
                    format!(
                        "program nftables table inet {}: VXLAN port {} only from {} peers",
                        names::NFT_TABLE,
                        node.firewall.port,
                        want.len()
                    ),
                    Change::NftTable { port: node.firewall.port, peers: want.into_iter().collect() },
                );
            }
        }
        FirewallKind::Firewalld => {
            let want: Vec<String> = node.firewall.peers.iter().map(|p| rich_rule(*p, node.firewall.port)).collect();
            let ours = format!(r#"port port="{}" protocol="udp" accept"#, node.firewall.port);
            let have = &facts.firewalld.rich_rules;
            let add_rules: Vec<String> = want.iter().filter(|w| !have.contains(w)).cloned().collect();
            let remove: Vec<String> =
                have.iter().filter(|h| h.ends_with(&ours) && !want.contains(h)).cloned().collect();
            if !add_rules.is_empty() || !remove.is_empty() {
                add(
                    format!("firewalld: allow VXLAN from {} more peers, withdraw {}", add_rules.len(), remove.len()),
                    Change::Firewalld { add: add_rules, remove },
                );
            }
        }
        _ => {}
    }
    steps
}

/// `None`: the tunnel port is missing. `Some(empty)`: it matches. Otherwise what differs.
fn tunnel_drift(t: &TunnelSpec, node: &NodePlan, facts: &HostFacts, present: bool) -> Option<Vec<String>> {
    if !present {
        return None;
    }
    let mut out = vec![];
    let iface = facts.ovs.interfaces.get(&*t.port).cloned().unwrap_or_default();
    let port = facts.ovs.ports.get(&*t.port).cloned().unwrap_or_default();
    if iface.r#type != "vxlan" {
        out.push(format!("type is `{}`", iface.r#type));
    }
    let want = [
        ("remote_ip", t.remote_ip.to_string()),
        ("key", node.vxlan.vni.to_string()),
        ("dst_port", node.vxlan.port.to_string()),
    ];
    for (k, v) in want {
        let have = iface.options.get(k).map(String::as_str).unwrap_or("unset");
        if have != v {
            out.push(format!("{k} is {have}, want {v}"));
        }
    }
    if t.bfd && iface.bfd.get("enable").map(String::as_str) != Some("true") {
        out.push("BFD is off".to_string());
    }
    let ms = names::BFD_INTERVAL_MS.to_string();
    if t.bfd && (iface.bfd.get("min_tx") != Some(&ms) || iface.bfd.get("min_rx") != Some(&ms)) {
        out.push(format!("BFD intervals are not {ms} ms"));
    }
    if t.protected && !port.protected {
        out.push("not protected (loop risk)".to_string());
    }
    Some(out)
}

/// Why the existing docker network must be recreated, if it must.
fn docker_drift(spec: &DockerSpec, mtu: Mtu, net: &crate::facts::DockerNetwork) -> Option<String> {
    let mut why = vec![];
    if net.driver != "bridge" {
        why.push(format!("driver is {}", net.driver));
    }
    if net.subnet.as_deref() != Some(&*spec.subnet.to_string()) {
        why.push(format!("subnet is {}", net.subnet.as_deref().unwrap_or("unset")));
    }
    if net.gateway.as_deref() != Some(&*spec.gateway.to_string()) {
        why.push(format!("gateway is {}", net.gateway.as_deref().unwrap_or("unset")));
    }
    for (k, v) in docker_options(spec, mtu) {
        if mtu == Mtu::Detect && k == DOCKER_OPT_MTU {
            continue;
        }
        let have = net.options.get(k).map(String::as_str).unwrap_or("unset");
        if have != v {
            why.push(format!("{k} is {have}, want {v}"));
        }
    }
    if why.is_empty() {
        return None;
    }
    if net.containers > 0 {
        why.push(format!("{} containers attached must be reconnected", net.containers));
    }
    Some(why.join("; "))
}
