//! `status`: per host, reachable, the switch and its peers (with BFD's view on OVS), the docker network, and
//! drift from the plan. Read-only.

use serde::Serialize;

use crate::components::{HostComponents, Kind, PeerLink, Presence};
use crate::converge::{self, host};
use crate::model::inventory::Inventory;
use crate::plan::ClusterPlan;
use crate::remote::executor::{self, Connect, Options};

#[derive(Debug, Clone, Serialize)]
pub struct HostStatus {
    pub node: String,
    pub host: String,
    pub reachable: bool,
    pub error: Option<String>,
    pub switch: bool,
    pub subnet: String,
    pub docker_network: bool,
    pub tunnels: Vec<PeerLink>,
    /// When vxmesh last changed this host, and whether from the plan it would build now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_applied: Option<LastApplied>,
    /// With encryption: each WireGuard peer, present with the planned key, and its latest handshake.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub wireguard: Vec<PeerLink>,
    pub drift: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LastApplied {
    /// UTC, as the host's clock had it.
    pub time: String,
    /// The fingerprint of the plan it was built from.
    pub plan: String,
    /// That plan is the one vxmesh would build now.
    pub current: bool,
}

impl HostStatus {
    /// Reachable, nothing to repair, every tunnel present and up.
    pub fn clean(&self) -> bool {
        self.reachable
            && self.error.is_none()
            && self.drift.is_empty()
            && self.tunnels.iter().all(|t| t.present && t.state.as_deref() == Some("up"))
            && self.wireguard.iter().all(|w| w.present)
    }
}

pub async fn run(inv: &Inventory, plan: &ClusterPlan, opts: &Options) -> Vec<HostStatus> {
    run_with(&executor::Ssh::new(inv, plan, opts), plan, opts).await
}

/// [`run`] over the hosts `connector` reaches (a simulated fleet in the benchmarks).
pub async fn run_with(connector: &dyn Connect, plan: &ClusterPlan, opts: &Options) -> Vec<HostStatus> {
    let (hosts, sessions) = executor::connect_with(connector, plan, opts).await;
    let out = executor::on_each(&hosts, opts, "status", |node, t, bar| async move {
        bar.set_message("gathering facts");
        host::facts(t.as_ref(), &node).await
    })
    .await;
    sessions.close().await;
    // Each node's plan completed with the public keys its peers' hosts reported, as `up` would use it.
    let reported = out.iter().filter_map(|o| Some((&o.node, o.result.as_ref().ok()?)));
    let keyed = super::completed(plan, reported);
    // Each host's view and drift on every core: at 1,000 hosts each is a diff against N-1 peers' rows.
    converge::pool::par_map(out, |o| {
        let n = keyed.node(&o.node.name).unwrap_or(&o.node);
        match o.result {
            Err(e) => HostStatus {
                node: n.name.clone(),
                host: n.host.clone(),
                reachable: false,
                error: Some(e.to_string()),
                switch: false,
                subnet: n.subnet.to_string(),
                docker_network: false,
                tunnels: vec![],
                last_applied: None,
                wireguard: vec![],
                drift: vec![],
            },
            Ok(f) => {
                let comps = HostComponents::up(n);
                let shown: Vec<_> = comps.capabilities(&f).filter_map(|(k, c)| Some((k, c.status?))).collect();
                let has = |what: Presence| shown.iter().any(|(_, s)| s.present(&f) == Some((what, true)));
                let peers = |wireguard: bool| -> Vec<PeerLink> {
                    let of = shown.iter().filter(|(k, _)| (*k == Kind::Wireguard) == wireguard);
                    of.flat_map(|(_, s)| s.peers(&f)).collect()
                };
                let problems = converge::preflight_with(&comps, &f);
                HostStatus {
                    node: n.name.clone(),
                    host: n.host.clone(),
                    reachable: true,
                    error: (!problems.is_empty()).then(|| problems.join("; ")),
                    switch: has(Presence::Switch),
                    subnet: n.subnet.to_string(),
                    docker_network: has(Presence::DockerNetwork),
                    last_applied: f.applied.as_ref().map(|(plan, time)| LastApplied {
                        time: time.clone(),
                        current: *plan == converge::plan_fingerprint(n),
                        plan: plan.clone(),
                    }),
                    tunnels: peers(false),
                    wireguard: peers(true),
                    drift: converge::diff_with(&comps, &f).into_iter().map(|s| s.description).collect(),
                }
            }
        }
    })
}
