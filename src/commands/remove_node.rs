//! `remove-node`: withdraw the node's tunnel and firewall entry from every other node, tear the node down if it
//! answers, free its subnet.

use std::sync::Arc;
use std::time::Instant;

use crate::converge::host::{self, Applied, Scope};
use crate::error::Error;
use crate::model::inventory::Inventory;
use crate::plan::ClusterPlan;
use crate::remote::executor::{self, Connected, Options, Outcome};

use super::{ChangeOutcome, HostResult, finish_change, results};

/// `commit` records the new inventory and lock; it runs only once the node is known reachable (or `force`).
pub async fn run(
    old: (&Inventory, &ClusterPlan),
    new_plan: &ClusterPlan,
    name: &str,
    force: bool,
    opts: &Options,
    commit: impl FnOnce() -> Result<(), Error>,
    before_verify: &dyn Fn(&[HostResult]),
) -> Result<ChangeOutcome, Error> {
    let (inv, plan) = old;
    let (mut hosts, sessions) = executor::connect_all(inv, plan, opts).await;
    let gone_at = hosts.iter().position(|h| h.node.name == name).expect("the node is in the old plan");
    let gone = hosts.remove(gone_at);
    if let (Err(e), false) = (&gone.session, force) {
        sessions.close().await;
        return Err(Error::Hosts(format!(
            "{name} cannot be reached ({e}); nothing was changed. `vxmesh remove-node {name} --force` removes it from the mesh anyway (its own host then keeps its mesh until cleaned by hand)"
        )));
    }
    commit()?;
    // The remaining nodes, seen through the new plan.
    let remaining: Vec<Connected> = hosts
        .into_iter()
        .map(|h| Connected { node: Arc::new(new_plan.node(&h.node.name).expect("kept").clone()), session: h.session })
        .collect();
    let mut out = executor::on_each(&remaining, opts, "remove", |node, t, bar| async move {
        host::converge(t.as_ref(), &node, false, &Scope::Peer(name.to_string()), &|m| bar.set_message(m.to_string()))
            .await
    })
    .await;
    let started = Instant::now();
    let teardown = match &gone.session {
        Ok(t) => host::remove(t.as_ref(), &gone.node, &|_| {}).await.map(|mut a| {
            a.steps.insert(0, "left the cluster".into());
            a
        }),
        Err(e) => Ok(Applied {
            steps: vec![format!("forced: unreachable ({e}), dropped from the mesh without cleaning it")],
            ..Applied::default()
        }),
    };
    out.push(Outcome { node: gone.node.clone(), result: teardown, elapsed: started.elapsed() });
    let outcome = finish_change(&remaining, new_plan, opts, None, results(out), before_verify).await;
    sessions.close().await;
    Ok(outcome)
}
