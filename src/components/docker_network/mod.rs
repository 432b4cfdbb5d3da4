//! `docker.mode: network`: a docker bridge network of the node's subnet, at the overlay MTU, with docker's own
//! masquerade off (docker would otherwise NAT container traffic between hosts).

pub use super::docker::DockerNetwork;

use serde::Serialize;

use super::core::{
    Capabilities, Claims, Component, Ctx, Kind, Mtu, Need, PeerLink, Phase, Piece, Presence, RefuseTeardown, Status,
    Step,
};
use crate::cmd;
use crate::facts::{FactsError, HostFacts, Sections};
use crate::plan::DockerSpec;
use crate::shell::{Cmd, Stmt, Word, data, join};

pub struct DockerNetworkAttachment<'a> {
    pub spec: &'a DockerSpec,
}

/// The mesh network as the host has it (`None`: absent).
#[derive(Debug, Clone, Default)]
pub struct DockerNetworkFacts(pub Option<DockerNetwork>);

#[derive(Debug, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    DockerNetwork { spec: DockerSpec, mtu: Mtu, recreate: Option<String> },
    RemoveDockerNetwork { network: String },
}

const OPT_BRIDGE: &str = "com.docker.network.bridge.name";
const OPT_MASQ: &str = "com.docker.network.bridge.enable_ip_masquerade";
const OPT_MTU: &str = "com.docker.network.driver.mtu";

/// Docker options the mesh network is created with, each as one `KEY=VALUE` word.
pub fn options(spec: &DockerSpec, mtu: Mtu) -> Vec<(&'static str, Word)> {
    let bridge = spec.bridge.as_ref().map_or(Word::Lit(""), Word::from);
    vec![(OPT_BRIDGE, bridge), (OPT_MASQ, data(spec.masquerade)), (OPT_MTU, mtu.word())]
}

impl DockerNetworkAttachment<'_> {
    fn network(&self) -> Word {
        Word::Data(self.spec.network.clone())
    }
}

impl Piece for DockerNetworkAttachment<'_> {
    fn kind(&self) -> Kind {
        Kind::DockerNetwork
    }

    fn gather(&self) -> Vec<Stmt> {
        super::docker::gather_networks()
    }

    fn parse(&self, s: &Sections, facts: &mut HostFacts) -> Result<(), FactsError> {
        super::docker::parse_networks(s, facts)?;
        let ours = facts.part::<super::docker::DockerNetworks>().and_then(|d| d.named(&self.spec.network)).cloned();
        facts.set_part(DockerNetworkFacts(ours));
        Ok(())
    }

    fn teardown(&self, facts: &HostFacts) -> Vec<Step> {
        let Some(net) = facts.part::<DockerNetworkFacts>().and_then(|d| d.0.as_ref()) else {
            return vec![];
        };
        // Containers still attached are there only when `--force` overrode the refusal: they lose the mesh.
        let mut cmds: Vec<Stmt> = net
            .containers
            .iter()
            .map(|c| {
                Cmd::new([
                    "docker".into(),
                    "network".into(),
                    "disconnect".into(),
                    "-f".into(),
                    self.network(),
                    Word::Data(c.clone()),
                ])
                .into()
            })
            .collect();
        cmds.push(Cmd::new(["docker".into(), "network".into(), "rm".into(), self.network()]).no_stdout().into());
        vec![Step::new(
            Phase::Docker,
            self.kind(),
            format!("remove docker network {}", self.spec.network),
            Change::RemoveDockerNetwork { network: self.spec.network.clone() },
            cmds,
        )]
    }
}

impl Component for DockerNetworkAttachment<'_> {
    fn needs(&self, _: &HostFacts) -> Vec<Need> {
        super::docker::needs()
    }

    fn preflight(&self, facts: &HostFacts) -> Vec<String> {
        super::docker::preflight(facts)
    }

    fn diff(&self, facts: &HostFacts, ctx: &Ctx) -> Vec<Step> {
        let spec = self.spec;
        let net = facts.part::<DockerNetworkFacts>().and_then(|d| d.0.as_ref());
        let recreate = net.and_then(|n| drift(spec, ctx.mtu, n));
        if net.is_some() && recreate.is_none() {
            return vec![];
        }
        let description = match &recreate {
            None => format!(
                "create docker network {} ({}, bridge {})",
                spec.network,
                spec.subnet,
                spec.bridge.as_ref().map(|b| b.to_string()).unwrap_or_default()
            ),
            Some(why) => format!("recreate docker network {} ({why})", spec.network),
        };
        let mut cmds: Vec<Stmt> = vec![];
        if recreate.is_some() {
            cmds.push(cmd!["docker", "network", "rm", self.network()].no_stdout().into());
        }
        let mut create = cmd![
            "docker",
            "network",
            "create",
            "--driver",
            "bridge",
            "--subnet",
            data(spec.subnet),
            "--gateway",
            data(spec.gateway)
        ];
        if let (Some(subnet6), Some(gateway6)) = (spec.subnet6, spec.gateway6) {
            for w in [Word::Lit("--ipv6"), "--subnet".into(), data(subnet6), "--gateway".into(), data(gateway6)] {
                create.argv.push(w);
            }
        }
        for (k, v) in options(spec, ctx.mtu) {
            create.argv.push("-o".into());
            create.argv.push(join([Word::Lit(k), "=".into(), v]));
        }
        create.argv.push(self.network());
        let create = create.no_stdout();
        cmds.push(Stmt::If {
            conds: vec![cmd!["docker", "network", "inspect", self.network()].silent()],
            negate: true,
            then: vec![create.into()],
            otherwise: vec![],
        });
        vec![Step::new(
            Phase::Docker,
            self.kind(),
            description,
            Change::DockerNetwork { spec: spec.clone(), mtu: ctx.mtu, recreate },
            cmds,
        )]
    }

    fn capabilities(&self) -> Capabilities<'_> {
        Capabilities { status: Some(self), refusal: Some(self), claims: Some(self) }
    }
}

impl Status for DockerNetworkAttachment<'_> {
    fn present(&self, facts: &HostFacts) -> Option<(Presence, bool)> {
        Some((Presence::DockerNetwork, facts.part::<DockerNetworkFacts>().is_some_and(|d| d.0.is_some())))
    }

    fn peers(&self, _: &HostFacts) -> Vec<PeerLink> {
        vec![]
    }
}

impl RefuseTeardown for DockerNetworkAttachment<'_> {
    fn refuse_teardown(&self, facts: &HostFacts) -> Option<String> {
        let net = facts.part::<DockerNetworkFacts>().and_then(|d| d.0.as_ref())?;
        (!net.containers.is_empty()).then(|| {
            format!(
                "docker network {} still has containers attached ({}); stop or disconnect them (docker network disconnect), then run this again, or pass --force to disconnect them",
                net.name,
                net.containers.join(", ")
            )
        })
    }
}

impl Claims for DockerNetworkAttachment<'_> {
    fn claims(&self, facts: &HostFacts) -> Vec<(String, ipnet::Ipv4Net)> {
        super::docker::claims(facts, &self.spec.network)
    }
}

/// Why the existing docker network must be recreated, if it must.
fn drift(spec: &DockerSpec, mtu: Mtu, net: &DockerNetwork) -> Option<String> {
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
    // IPv6 on or off, and its block: a network's subnets are fixed at creation.
    let want6 = spec.subnet6.map(|s| s.to_string());
    let have6 = if net.ipv6 { net.subnet6.clone() } else { None };
    if have6 != want6 {
        why.push(format!("IPv6 subnet is {}", have6.as_deref().unwrap_or("unset")));
    }
    if let (Some(g), true) = (spec.gateway6, want6.is_some()) {
        let g = g.to_string();
        if net.gateway6.as_deref().is_some_and(|h| h != g) {
            why.push(format!("IPv6 gateway is {}", net.gateway6.as_deref().unwrap_or("unset")));
        }
    }
    let wanted = [
        (OPT_BRIDGE, spec.bridge.as_ref().map(|b| b.to_string())),
        (OPT_MASQ, Some(spec.masquerade.to_string())),
        // An MTU learnt only at run time cannot be compared.
        (OPT_MTU, mtu.value().map(|m| m.to_string())),
    ];
    for (k, v) in wanted {
        let Some(v) = v else { continue };
        let have = net.options.get(k).map(String::as_str).unwrap_or("unset");
        if have != v {
            why.push(format!("{k} is {have}, want {v}"));
        }
    }
    if why.is_empty() {
        return None;
    }
    if !net.containers.is_empty() {
        why.push(format!("{} containers attached must be reconnected", net.containers.len()));
    }
    Some(why.join("; "))
}
