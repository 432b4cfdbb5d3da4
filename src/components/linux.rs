//! The kernel data plane: a Linux bridge `sw0`, one VXLAN device (VNI, port, `local` = the tunnel address: the
//! underlay's, or the WireGuard interface's when encrypted) in
//! it, and one all-zeros FDB entry per peer (head-end replication of broadcasts to every peer). Unicast MACs are
//! learnt from the frames that arrive, so a frame for one container goes to one peer, never to all (flooding
//! unicast to every peer halved throughput when measured). The bridge never sends a frame back out the port it
//! came in on, so one VXLAN device in a full mesh is loop-free. Same wire format as the OVS backend: same VNI and
//! port, so both kinds of host join one mesh. The kernel forgets all of it at reboot: the boot unit rebuilds it.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::core::{
    Capabilities, Component, Concern, Ctx, Kind, Mtu, Need, PeerLink, Phase, Piece, Presence, Status, Step, need,
};
use crate::cmd;
use crate::facts::{FactsError, HostFacts, Sections, mark};
use crate::model::addr_text::Shown;
use crate::model::names::{self, IfName};
use crate::plan::NodePlan;
use crate::shell::{Cmd, Stmt, addr, data, unless, when};

const ZERO_MAC: &str = "00:00:00:00:00:00";

pub struct Linux<'a> {
    pub node: &'a NodePlan,
}

/// The VXLAN device as the host has it, and its all-zeros FDB entries.
#[derive(Debug, Clone, Default)]
pub struct LinuxFacts {
    pub vxlan: Option<VxlanDevice>,
    /// Destinations of the all-zeros entries: where broadcasts are replicated to.
    pub flood_to: BTreeSet<IpAddr>,
    /// The kernel could make a VXLAN device (or one is there).
    pub vxlan_supported: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VxlanDevice {
    pub id: Option<u32>,
    pub port: Option<u16>,
    pub local: Option<IpAddr>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    Bridge {
        bridge: IfName,
        mtu: Mtu,
    },
    Vxlan {
        dev: IfName,
        vni: u32,
        port: u16,
        local: IpAddr,
        mtu: Mtu,
        recreate: bool,
    },
    /// Broadcasts replicated to `peer` at `dst`.
    FloodTo {
        dev: IfName,
        peer: String,
        dst: IpAddr,
    },
    /// `dst` as the host had it: no longer a peer.
    StopFlooding {
        dev: IfName,
        dst: IpAddr,
    },
    Plug {
        dev: IfName,
        bridge: IfName,
    },
    RemoveDevice {
        dev: IfName,
    },
}

fn vxlan_dev() -> IfName {
    names::vxlan_device()
}

fn fdb(op: &'static str, dst: IpAddr) -> Cmd {
    cmd!["bridge", "fdb", op, ZERO_MAC, "dev", &vxlan_dev(), "dst", addr(dst)]
}

#[derive(Deserialize)]
struct RawFdb {
    mac: String,
    dst: Option<String>,
}

#[derive(Deserialize)]
struct RawLink {
    linkinfo: Option<RawLinkInfo>,
}

#[derive(Deserialize)]
struct RawLinkInfo {
    info_kind: Option<String>,
    info_data: Option<RawVxlan>,
}

#[derive(Deserialize)]
struct RawVxlan {
    id: Option<u32>,
    port: Option<u16>,
    local: Option<String>,
    /// `ip -j` names an IPv6 `local` so.
    local6: Option<String>,
}

fn parse_device(body: &str) -> Result<Option<VxlanDevice>, FactsError> {
    if body.trim().is_empty() {
        return Ok(None);
    }
    let links: Vec<RawLink> = serde_json::from_str(body).map_err(|e| FactsError::new("vxlan-link", e.to_string()))?;
    Ok(links.into_iter().next().and_then(|l| l.linkinfo).filter(|i| i.info_kind.as_deref() == Some("vxlan")).map(|i| {
        let d = i.info_data;
        VxlanDevice {
            id: d.as_ref().and_then(|d| d.id),
            port: d.as_ref().and_then(|d| d.port),
            local: d.as_ref().and_then(|d| d.local.as_deref().or(d.local6.as_deref())?.parse().ok()),
        }
    }))
}

fn parse_fdb(body: &str) -> Result<BTreeSet<IpAddr>, FactsError> {
    if body.trim().is_empty() {
        return Ok(BTreeSet::new());
    }
    let entries: Vec<RawFdb> = serde_json::from_str(body).map_err(|e| FactsError::new("vxlan-fdb", e.to_string()))?;
    Ok(entries.into_iter().filter(|e| e.mac == ZERO_MAC).filter_map(|e| e.dst?.parse().ok()).collect())
}

impl Linux<'_> {
    fn step(&self, phase: Phase, description: String, change: Change, commands: Vec<Stmt>) -> Step {
        Step::new(phase, self.kind(), description, change, commands)
    }

    fn bridge_steps(&self, facts: &HostFacts, mtu: Mtu) -> Vec<Step> {
        let br = &self.node.switch.bridge;
        let link = facts.links.get(br.as_str());
        let mut steps = vec![];
        if link.is_some_and(|l| l.kind == "openvswitch") {
            let reason = format!(
                "{br} is an Open vSwitch bridge: this host moves to the kernel backend; run `vxmesh down` on it first (docs: moving a host between backends)"
            );
            steps.push(self.step(
                Phase::Switch,
                format!("stop: {reason}"),
                Change::Bridge { bridge: br.clone(), mtu },
                vec![Stmt::Fail(reason)],
            ));
            return steps;
        }
        let is_bridge = link.is_some_and(|l| l.kind == "bridge");
        let mtu_ok = mtu.value().is_none_or(|m| link.is_some_and(|l| l.mtu == m));
        if !is_bridge || !mtu_ok {
            let what = if is_bridge { "set the MTU of" } else { "create" };
            steps.push(self.step(
                Phase::Switch,
                format!("{what} Linux bridge {br}"),
                Change::Bridge { bridge: br.clone(), mtu },
                vec![
                        unless(
                            cmd!["ip", "link", "show", "dev", br].silent(),
                            vec![cmd!["ip", "link", "add", br, "type", "bridge"].into()],
                        ),
                        Cmd::new([
                            "ip".into(),
                            "link".into(),
                            "set".into(),
                            "dev".into(),
                            br.into(),
                            "mtu".into(),
                            mtu.word(),
                        ])
                        .into(),
                    ],
            ));
        }
        steps
    }

    fn vxlan_steps(&self, facts: &HostFacts, lf: &LinuxFacts, mtu: Mtu) -> Vec<Step> {
        let n = self.node;
        let dev = vxlan_dev();
        let br = &n.switch.bridge;
        let want = VxlanDevice { id: Some(n.vxlan.vni), port: Some(n.vxlan.port), local: Some(n.tunnel) };
        let link = facts.links.get(dev.as_str());
        let mut steps = vec![];
        let right = lf.vxlan.as_ref() == Some(&want);
        let vxlan_change = |recreate| Change::Vxlan {
            dev: dev.clone(),
            vni: n.vxlan.vni,
            port: n.vxlan.port,
            local: n.tunnel,
            mtu,
            recreate,
        };
        if !right {
            let recreate = lf.vxlan.is_some() || link.is_some();
            let create = Cmd::new([
                "ip".into(),
                "link".into(),
                "add".into(),
                (&dev).into(),
                "mtu".into(),
                mtu.word(),
                "type".into(),
                "vxlan".into(),
                "id".into(),
                data(n.vxlan.vni),
                "dstport".into(),
                data(n.vxlan.port),
                "local".into(),
                data(n.tunnel),
            ]);
            steps.push(self.step(
                Phase::Switch,
                format!(
                    "{} VXLAN device {dev} (VNI {}, port {}, local {})",
                    if recreate { "recreate" } else { "create" },
                    n.vxlan.vni,
                    n.vxlan.port,
                    n.tunnel
                ),
                vxlan_change(recreate),
                vec![cmd!["ip", "link", "del", &dev].silent_stderr().may_fail().into(), create.into()],
            ));
        } else if let Some(m) = mtu.value().filter(|m| link.is_some_and(|l| l.mtu != *m)) {
            steps.push(self.step(
                Phase::Switch,
                format!("set {dev} MTU to {m}"),
                vxlan_change(false),
                vec![cmd!["ip", "link", "set", "dev", &dev, "mtu", data(m)].into()],
            ));
        }
        // A new device starts with no FDB, outside the bridge, down.
        let flood_to: BTreeSet<IpAddr> = if right { lf.flood_to.clone() } else { BTreeSet::new() };
        let plugged = right && link.is_some_and(|l| l.master.as_deref() == Some(br.as_str()) && l.up);
        if !plugged {
            steps.push(self.step(
                Phase::Switch,
                format!("plug {dev} into {br} and bring it up"),
                Change::Plug { dev: dev.clone(), bridge: br.clone() },
                vec![cmd!["ip", "link", "set", "dev", &dev, "master", br, "up"].into()],
            ));
        }
        for t in n.tunnels() {
            if !flood_to.contains(&t.remote_ip) {
                steps.push(
                    self.step(
                        Phase::Switch,
                        format!("flood broadcasts to {} ({}) over {dev}", t.peer, Shown(t.remote_ip)),
                        Change::FloodTo { dev: dev.clone(), peer: t.peer.to_string(), dst: t.remote_ip },
                        vec![fdb("append", t.remote_ip).into()],
                    )
                    .concerning(Concern::Peer(t.peer.clone())),
                );
            }
        }
        let wanted: BTreeSet<IpAddr> = n.tunnels().map(|t| t.remote_ip).collect();
        for stale in flood_to.difference(&wanted) {
            steps.push(
                self.step(
                    Phase::Switch,
                    format!("stop flooding to {stale} (no longer a peer)"),
                    Change::StopFlooding { dev: dev.clone(), dst: *stale },
                    vec![fdb("del", *stale).into()],
                )
                .concerning(Concern::Peers),
            );
        }
        steps
    }
}

impl Piece for Linux<'_> {
    fn kind(&self) -> Kind {
        Kind::Linux
    }

    fn gather(&self) -> Vec<Stmt> {
        let dev = vxlan_dev();
        let probe: IfName = names::vxlan_probe();
        let mut v = vec![
            mark("vxlan-link"),
            cmd!["ip", "-j", "-d", "link", "show", "dev", &dev].silent_stderr().may_fail().into(),
            mark("vxlan-fdb"),
            when(
                cmd!["ip", "link", "show", "dev", &dev].silent(),
                vec![cmd!["bridge", "-j", "fdb", "show", "dev", &dev].silent_stderr().may_fail().into()],
            ),
            // Whether this kernel makes VXLAN devices: a device that exists says so; otherwise try one and remove it.
            mark("vxlan-support"),
            Stmt::If {
                conds: vec![cmd!["ip", "link", "show", "dev", &dev].silent()],
                negate: false,
                then: vec![cmd!["echo", "yes"].into()],
                otherwise: vec![Stmt::If {
                    conds: vec![
                        cmd![
                            "ip",
                            "link",
                            "add",
                            &probe,
                            "type",
                            "vxlan",
                            "id",
                            "1",
                            "dstport",
                            "4789",
                            "local",
                            "127.0.0.1"
                        ]
                        .silent(),
                    ],
                    negate: false,
                    then: vec![
                        cmd!["ip", "link", "del", &probe].silent().may_fail().into(),
                        cmd!["echo", "yes"].into(),
                    ],
                    otherwise: vec![cmd!["echo", "no"].into()],
                }],
            },
        ];
        v.extend(super::liveness::gather(&self.node.tunnels().map(|t| t.peer_switch).collect::<Vec<_>>()));
        v
    }

    fn parse(&self, s: &Sections, facts: &mut HostFacts) -> Result<(), FactsError> {
        facts.set_part(LinuxFacts {
            vxlan: parse_device(s.get("vxlan-link"))?,
            flood_to: parse_fdb(s.get("vxlan-fdb"))?,
            vxlan_supported: s.get("vxlan-support").trim() == "yes",
        });
        super::liveness::parse(s, facts);
        Ok(())
    }

    fn teardown(&self, facts: &HostFacts) -> Vec<Step> {
        let mut steps = vec![];
        let dev = vxlan_dev();
        if facts.links.contains_key(dev.as_str()) {
            steps.push(self.step(
                Phase::Switch,
                format!("delete VXLAN device {dev}"),
                Change::RemoveDevice { dev: dev.clone() },
                vec![cmd!["ip", "link", "del", &dev].silent_stderr().may_fail().into()],
            ));
        }
        let br = &self.node.switch.bridge;
        if facts.links.get(br.as_str()).is_some_and(|l| l.kind == "bridge") {
            steps.push(self.step(
                Phase::Switch,
                format!("delete Linux bridge {br}"),
                Change::RemoveDevice { dev: br.clone() },
                vec![cmd!["ip", "link", "del", br].silent_stderr().may_fail().into()],
            ));
        }
        steps
    }
}

impl Component for Linux<'_> {
    fn needs(&self, _: &HostFacts) -> Vec<Need> {
        vec![need("ip", "iproute2", "iproute"), need("bridge", "iproute2", "iproute")]
    }

    fn preflight(&self, facts: &HostFacts) -> Vec<String> {
        match facts.part::<LinuxFacts>() {
            Some(lf) if !lf.vxlan_supported && facts.tools.contains_key("ip") => vec![
                "the kernel cannot make VXLAN devices (`ip link add ... type vxlan` fails): load the module (modprobe vxlan) or use backend: ovs".into(),
            ],
            _ => vec![],
        }
    }

    fn diff(&self, facts: &HostFacts, ctx: &Ctx) -> Vec<Step> {
        let empty = LinuxFacts::default();
        let lf = facts.part::<LinuxFacts>().unwrap_or(&empty);
        let mut steps = self.bridge_steps(facts, ctx.mtu);
        if steps.iter().any(|s| {
            matches!(s.change_as::<Change>(), Some(Change::Bridge { .. }))
                && s.commands.iter().any(|c| matches!(c, Stmt::Fail(_)))
        }) {
            return steps;
        }
        steps.extend(self.vxlan_steps(facts, lf, ctx.mtu));
        let n = self.node;
        let sw_end = &n.veth.switch_end;
        if n.docker.bridge.is_some()
            && facts.links.get(sw_end.as_str()).and_then(|l| l.master.as_deref()) != Some(n.switch.bridge.as_str())
        {
            steps.push(self.step(
                Phase::Attach,
                format!("plug {sw_end} into {}", n.switch.bridge),
                Change::Plug { dev: sw_end.clone(), bridge: n.switch.bridge.clone() },
                vec![cmd!["ip", "link", "set", "dev", sw_end, "master", &n.switch.bridge].into()],
            ));
        }
        steps.extend(super::switch::address_steps(self.kind(), n, facts, |br, mac| {
            cmd!["ip", "link", "set", "dev", br, "address", data(mac)].into()
        }));
        steps.extend(super::switch::route_steps(self.kind(), n, facts));
        steps
    }

    fn capabilities(&self) -> Capabilities<'_> {
        Capabilities { status: Some(self), ..Capabilities::NONE }
    }
}

impl Status for Linux<'_> {
    fn present(&self, facts: &HostFacts) -> Option<(Presence, bool)> {
        Some((Presence::Switch, facts.links.get(self.node.switch.bridge.as_str()).is_some_and(|l| l.kind == "bridge")))
    }

    fn peers(&self, facts: &HostFacts) -> Vec<PeerLink> {
        let flood_to = facts.part::<LinuxFacts>().map(|l| l.flood_to.clone()).unwrap_or_default();
        self.node
            .tunnels()
            .map(|t| PeerLink {
                peer: t.peer.to_string(),
                present: flood_to.contains(&t.remote_ip),
                state: super::liveness::state(facts, t.peer_switch),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_vxlan_device_and_its_flood_list_as_iproute2_prints_them() {
        let link = r#"[{"ifindex":8,"ifname":"vxm-vxlan","mtu":1450,"master":"sw0","linkinfo":{"info_kind":"vxlan","info_data":{"id":42,"local":"192.168.77.12","port":4789,"ttl":0,"learning":true}}}]"#;
        assert_eq!(
            parse_device(link).unwrap(),
            Some(VxlanDevice { id: Some(42), port: Some(4789), local: Some("192.168.77.12".parse().unwrap()) })
        );
        assert_eq!(parse_device("").unwrap(), None);
        let not_vxlan = r#"[{"ifname":"vxm-vxlan","linkinfo":{"info_kind":"dummy"}}]"#;
        assert_eq!(parse_device(not_vxlan).unwrap(), None, "a device of another kind is not ours");
        let fdb = r#"[{"mac":"00:00:00:00:00:00","dst":"192.168.77.11","flags":["self"],"state":"permanent"},
                     {"mac":"02:42:ac:10:00:03","master":"sw0","state":""},
                     {"mac":"02:42:ac:10:00:03","dst":"192.168.77.11","flags":["self"],"state":""},
                     {"mac":"00:00:00:00:00:00","dst":"192.168.77.13","flags":["self"],"state":"permanent"}]"#;
        let want: BTreeSet<IpAddr> = ["192.168.77.11", "192.168.77.13"].iter().map(|a| a.parse().unwrap()).collect();
        assert_eq!(parse_fdb(fdb).unwrap(), want, "only the all-zeros entries are the flood list");
        assert!(parse_fdb("not json").is_err());
    }

    /// iproute2 names an IPv6 `local` `local6` (as `ip -d -j link show` printed it in a namespace here).
    #[test]
    fn reads_an_ipv6_vxlan_device_and_flood_list() {
        let link = r#"[{"ifname":"vxm-vxlan","linkinfo":{"info_kind":"vxlan","info_data":{"id":42,"local6":"fd78::12","port":4789,"learning":true,"udp_zero_csum6_tx":false}}}]"#;
        assert_eq!(
            parse_device(link).unwrap(),
            Some(VxlanDevice { id: Some(42), port: Some(4789), local: Some("fd78::12".parse().unwrap()) })
        );
        let fdb = r#"[{"mac":"00:00:00:00:00:00","dst":"fd78::11","flags":["self"],"state":"permanent"}]"#;
        assert_eq!(parse_fdb(fdb).unwrap(), ["fd78::11".parse::<IpAddr>().unwrap()].into());
    }
}
