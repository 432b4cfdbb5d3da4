//! The Open vSwitch data plane: bridge `sw0`, one protected VXLAN port per peer (BFD on), the veth's switch end,
//! and sw0's address. All OVS changes of one run share one `ovs-vsctl` transaction.

mod facts;

pub use facts::{OvsBridge, OvsFacts, OvsInterface, OvsPort};

use std::collections::BTreeSet;

use serde::Serialize;

use super::core::{
    Capabilities, Component, Concern, Ctx, Kind, Mtu, Need, PeerLink, Phase, Piece, Presence, Status, Step, need,
};
use crate::cmd;
use crate::facts::{FactsError, HostFacts, Sections, mark};
use crate::model::addr_text::Shown;
use crate::model::inventory::Datapath;
use crate::model::names::{self, IfName};
use crate::plan::{NodePlan, TunnelSpec};
use crate::shell::{Stmt, Word, addr, data, join, when};

pub struct Ovs<'a> {
    pub node: &'a NodePlan,
}

#[derive(Debug, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    Bridge {
        bridge: IfName,
        datapath: Datapath,
        mtu: Mtu,
    },
    Tunnel {
        bridge: IfName,
        tunnel: TunnelSpec,
        vni: u32,
        port: u16,
        repair: Vec<String>,
    },
    /// `port` is as the host named it: data, never code.
    RemoveTunnel {
        bridge: IfName,
        port: String,
    },
    AttachPort {
        bridge: IfName,
        port: IfName,
    },
    RemoveBridge {
        bridge: IfName,
    },
}

const TOOL: &str = "ovs-vsctl";

/// The facts section with the Bridge, Port and Interface tables.
const SECTION: &str = "ovs";

fn ovs(args: impl IntoIterator<Item = Word>) -> Stmt {
    Stmt::Batch { tool: TOOL, args: args.into_iter().collect() }
}

fn set(key: &'static str, value: impl std::fmt::Display) -> Word {
    join([Word::Lit(key), data(value)])
}

/// [`set`] of an address, written without `core::fmt` (one per tunnel: see [`crate::model::addr_text`]).
fn set_addr(key: &'static str, value: impl crate::model::addr_text::AddrText) -> Word {
    join([Word::Lit(key), addr(value)])
}

impl Ovs<'_> {
    /// Peers BFD cannot watch (kernel-backend hosts): `status` pings their switch addresses instead.
    fn no_bfd_peers(&self) -> Vec<std::net::Ipv4Addr> {
        self.node.tunnels().filter(|t| !t.bfd).map(|t| t.peer_switch).collect()
    }

    /// The OVS steps, with or without the tunnels.
    fn steps(&self, facts: &HostFacts, ctx: &Ctx, tunnels: bool) -> Vec<Step> {
        let name = self.kind();
        let n = self.node;
        let empty = OvsFacts::default();
        let of = facts.part::<OvsFacts>().unwrap_or(&empty);
        let mut steps = vec![];
        let br = &n.switch.bridge;
        let bridge = of.bridges.get(br.as_str());
        let want_dp = n.switch.datapath.as_str();
        let dp_ok =
            bridge.is_some_and(|b| b.datapath_type == want_dp || (want_dp == "system" && b.datapath_type.is_empty()));
        let mtu_ok =
            ctx.mtu.value().is_none_or(|m| of.interfaces.get(br.as_str()).is_some_and(|i| i.mtu_request == Some(m)));
        if bridge.is_none() || !dp_ok || !mtu_ok {
            let what = if bridge.is_none() { "create" } else { "repair" };
            steps.push(Step::new(
                Phase::Switch,
                name,
                format!("{what} OVS bridge {br} (datapath {want_dp})"),
                Change::Bridge { bridge: br.clone(), datapath: n.switch.datapath, mtu: ctx.mtu },
                vec![
                    ovs(["--may-exist".into(), "add-br".into(), br.into()]),
                    ovs(["set".into(), "bridge".into(), br.into(), set("datapath_type=", want_dp)]),
                    ovs(["set".into(), "interface".into(), br.into(), join(["mtu_request=".into(), ctx.mtu.word()])]),
                ],
            ));
        }
        let present: BTreeSet<&str> = bridge.map(|b| b.ports.iter().map(String::as_str).collect()).unwrap_or_default();
        // Tunnels (OVSDB keeps them across reboots) only when asked: a 1,000-host plan has 999 per host.
        for t in n.tunnels().filter(|_| tunnels) {
            match tunnel_drift(&t, n, of, present.contains(t.port.as_str())) {
                Some(r) if r.is_empty() => {}
                repair => steps.push(self.tunnel_step(&t, repair.unwrap_or_default())),
            }
        }
        let wanted: BTreeSet<String> = n.tunnels().map(|t| t.port.to_string()).collect();
        for stale in present.iter().filter(|p| tunnels && p.starts_with(names::TUNNEL_PREFIX) && !wanted.contains(**p))
        {
            let peer = stale.strip_prefix(names::TUNNEL_PREFIX).unwrap_or(stale);
            steps.push(
                Step::new(
                    Phase::Switch,
                    name,
                    format!("remove tunnel {stale} (no longer a peer)"),
                    Change::RemoveTunnel { bridge: br.clone(), port: stale.to_string() },
                    vec![ovs(["--if-exists".into(), "del-port".into(), br.into(), Word::Data(stale.to_string())])],
                )
                .concerning(Concern::Peer(peer.into()))
                .kept_across_reboots(),
            );
        }
        if n.docker.bridge.is_some() && !present.contains(n.veth.switch_end.as_str()) {
            let port = &n.veth.switch_end;
            steps.push(Step::new(
                Phase::Switch,
                name,
                format!("plug {port} into {br}"),
                Change::AttachPort { bridge: br.clone(), port: port.clone() },
                vec![ovs(["--may-exist".into(), "add-port".into(), br.into(), port.into()])],
            ));
        }
        steps.extend(super::switch::address_steps(name, n, facts, |br, mac| {
            // OVSDB string syntax: the value is quoted, or ovs-vsctl reads its colons as key separators.
            ovs(["set".into(), "bridge".into(), br.into(), set("other-config:hwaddr=", format!("\"{mac}\""))])
        }));
        steps.extend(super::switch::route_steps(name, n, facts));
        steps
    }

    fn tunnel_step(&self, t: &TunnelSpec, repair: Vec<String>) -> Step {
        let n = self.node;
        let br = &n.switch.bridge;
        let mut cmds = vec![];
        if repair.is_empty() {
            cmds.push(ovs(["--may-exist".into(), "add-port".into(), br.into(), (&t.port).into()]));
        }
        let ms = names::BFD_INTERVAL_MS;
        cmds.push(ovs([
            "set".into(),
            "interface".into(),
            (&t.port).into(),
            "type=vxlan".into(),
            set_addr("options:remote_ip=", t.remote_ip),
        ]
        .into_iter()
        .chain(local_ip(n, t).map(|ip| set_addr("options:local_ip=", ip)))
        .chain([
            set("options:key=", n.vxlan.vni),
            set("options:dst_port=", n.vxlan.port),
            set("bfd:enable=", t.bfd),
            set("bfd:min_tx=", ms),
            set("bfd:min_rx=", ms),
        ])));
        cmds.push(ovs(["set".into(), "port".into(), (&t.port).into(), set("protected=", t.protected)]));
        let description = if repair.is_empty() {
            format!("add tunnel {} to {} ({})", t.port, t.peer, Shown(t.remote_ip))
        } else {
            format!("repair tunnel {} to {}: {}", t.port, t.peer, repair.join(", "))
        };
        Step::new(
            Phase::Switch,
            self.kind(),
            description,
            Change::Tunnel { bridge: br.clone(), tunnel: t.clone(), vni: n.vxlan.vni, port: n.vxlan.port, repair },
            cmds,
        )
        .concerning(Concern::Peer(t.peer.clone()))
        // OVSDB keeps tunnels across reboots.
        .kept_across_reboots()
    }
}

impl Piece for Ovs<'_> {
    fn kind(&self) -> Kind {
        Kind::Ovs
    }

    fn gather(&self) -> Vec<Stmt> {
        // One ovs-vsctl for all three tables (one JSON document a line): it is also the check that ovsdb answers.
        let tables = cmd![
            TOOL,
            "--timeout=5",
            "--format=json",
            "--",
            "--columns=_uuid,name,datapath_type,ports",
            "list",
            "Bridge",
            "--",
            "--columns=_uuid,name,interfaces,protected",
            "list",
            "Port",
            "--",
            "--columns=_uuid,name,type,options,bfd,bfd_status,mtu_request,error",
            "list",
            "Interface"
        ];
        let mut v = vec![mark(SECTION), when(cmd!["has", TOOL], vec![tables.silent_stderr().may_fail().into()])];
        v.extend(super::liveness::gather(&self.no_bfd_peers()));
        v
    }

    fn parse(&self, s: &Sections, facts: &mut HostFacts) -> Result<(), FactsError> {
        let docs: Vec<&str> = s.get(SECTION).lines().filter(|l| !l.trim().is_empty()).collect();
        let ovs = match docs.as_slice() {
            [] => OvsFacts::default(),
            [bridges, ports, interfaces] => facts::parse(bridges, ports, interfaces)?,
            other => return Err(FactsError::new(SECTION, format!("{} JSON documents, expected 3", other.len()))),
        };
        facts.set_part(ovs);
        super::liveness::parse(s, facts);
        Ok(())
    }

    fn teardown(&self, facts: &HostFacts) -> Vec<Step> {
        let br = &self.node.switch.bridge;
        let present = facts.part::<OvsFacts>().is_some_and(|o| o.bridges.contains_key(br.as_str()));
        if !present {
            return vec![];
        }
        vec![Step::new(
            Phase::Switch,
            self.kind(),
            format!("delete OVS bridge {br} and its tunnels"),
            Change::RemoveBridge { bridge: br.clone() },
            vec![ovs(["--if-exists".into(), "del-br".into(), br.into()])],
        )]
    }
}

impl Component for Ovs<'_> {
    fn needs(&self, _: &HostFacts) -> Vec<Need> {
        vec![need(TOOL, "openvswitch-switch", "openvswitch (from the NFV SIG or RDO repository)")]
    }

    fn preflight(&self, facts: &HostFacts) -> Vec<String> {
        let reachable = facts.part::<OvsFacts>().is_some_and(|o| o.reachable);
        if facts.tools.contains_key(TOOL) && !reachable {
            vec!["Open vSwitch is installed but ovsdb-server does not answer: start it (systemctl start openvswitch-switch)".into()]
        } else {
            vec![]
        }
    }

    fn diff(&self, facts: &HostFacts, ctx: &Ctx) -> Vec<Step> {
        self.steps(facts, ctx, true)
    }

    fn boot_diff(&self, facts: &HostFacts, ctx: &Ctx) -> Vec<Step> {
        self.steps(facts, ctx, false).into_iter().filter(|s| s.at_boot).collect()
    }

    fn capabilities(&self) -> Capabilities<'_> {
        Capabilities { status: Some(self), ..Capabilities::NONE }
    }
}

impl Status for Ovs<'_> {
    fn present(&self, facts: &HostFacts) -> Option<(Presence, bool)> {
        let has = facts.part::<OvsFacts>().is_some_and(|o| o.bridges.contains_key(self.node.switch.bridge.as_str()));
        Some((Presence::Switch, has))
    }

    fn peers(&self, facts: &HostFacts) -> Vec<PeerLink> {
        let empty = OvsFacts::default();
        let of = facts.part::<OvsFacts>().unwrap_or(&empty);
        let ports = of.bridges.get(self.node.switch.bridge.as_str()).map(|b| b.ports.as_slice()).unwrap_or_default();
        // A set, not a scan per peer: N-1 peers each looked up among N-1 ports made `status` quadratic per host.
        let ports: BTreeSet<&str> = ports.iter().map(String::as_str).collect();
        self.node
            .tunnels()
            .map(|t| PeerLink {
                peer: t.peer.to_string(),
                present: ports.contains(t.port.as_str()),
                state: if t.bfd {
                    of.interfaces.get(t.port.as_str()).and_then(|i| i.bfd_status.get("state").cloned())
                } else {
                    super::liveness::state(facts, t.peer_switch)
                },
            })
            .collect()
    }
}

/// The tunnel's source address, set only over IPv6: a host has several IPv6 addresses (ULA, global, temporary
/// ones), and the source must be the one its peers expect (`local_ip`). Unset over IPv4, as before.
fn local_ip(node: &NodePlan, t: &TunnelSpec) -> Option<std::net::IpAddr> {
    t.remote_ip.is_ipv6().then_some(node.tunnel)
}

/// `None`: the tunnel port is missing. `Some(empty)`: it matches. Otherwise what differs.
fn tunnel_drift(t: &TunnelSpec, node: &NodePlan, of: &OvsFacts, present: bool) -> Option<Vec<String>> {
    if !present {
        return None;
    }
    let mut out = vec![];
    // Borrowed: copying each tunnel's interface (three maps of strings) cost more than comparing it.
    let (no_iface, no_port) = (OvsInterface::default(), OvsPort::default());
    let iface = of.interfaces.get(t.port.as_str()).unwrap_or(&no_iface);
    let port = of.ports.get(t.port.as_str()).unwrap_or(&no_port);
    if iface.r#type != "vxlan" {
        out.push(format!("type is `{}`", iface.r#type));
    }
    let want = [
        Some(("remote_ip", t.remote_ip.to_string())),
        local_ip(node, t).map(|ip| ("local_ip", ip.to_string())),
        Some(("key", node.vxlan.vni.to_string())),
        Some(("dst_port", node.vxlan.port.to_string())),
    ]
    .into_iter()
    .flatten();
    for (k, v) in want {
        let have = iface.options.get(k).map(String::as_str).unwrap_or("unset");
        if have != v {
            out.push(format!("{k} is {have}, want {v}"));
        }
    }
    let bfd_on = iface.bfd.get("enable").map(String::as_str) == Some("true");
    if t.bfd && !bfd_on {
        out.push("BFD is off".to_string());
    }
    if !t.bfd && bfd_on {
        out.push("BFD is on towards a peer that never answers it".to_string());
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
