//! `remove-node`: withdraw the node's tunnel and firewall entry from every other node, tear the node down if it
//! answers, free its subnet. Every host is checked before the inventory, the lock or any host changes.

use std::sync::Arc;
use std::time::Instant;

use crate::converge::host::{self, Applied, Scope};
use crate::converge::{self};
use crate::error::{Error, HostError};
use crate::model::inventory::Inventory;
use crate::plan::ClusterPlan;
use crate::remote::executor::{self, Connected, Options, Outcome};

use super::{ChangeOutcome, HostResult, apply_all, finish_change, gather_checked, result, results, rows_in_order};

/// `commit` records the new inventory and lock; it runs only once every host passed its checks and the node is
/// known reachable (or `force`).
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
        return Err(Error::RemoveUnreachable { name: name.to_string(), reason: e.clone() });
    }
    // The remaining nodes, seen through the new plan.
    let remaining: Vec<Connected> = hosts
        .into_iter()
        .map(|h| Connected { node: Arc::new(new_plan.node(&h.node.name).expect("kept").clone()), session: h.session })
        .collect();
    let started = Instant::now();
    // The leaving node's own teardown is checked with the others.
    let gone_facts = match &gone.session {
        Ok(t) => Some(host::teardown_facts(t.as_ref(), &gone.node).await),
        Err(_) => None,
    };
    let gone_refusal = match &gone_facts {
        Some(Ok(f)) => converge::teardown(&gone.node, f, force).err(),
        _ => None,
    };
    let checked = gather_checked(&remaining, new_plan, opts).await;
    let (gathered, mut unreachable) = match (checked, gone_refusal) {
        (Ok(ok), None) => ok,
        (checked, refusal) => {
            let mut rows = checked.map_or_else(|rows| rows, |(g, _)| held(new_plan, &g));
            let why =
                refusal.map_or(HostError::Refused(vec!["another host failed its checks".into()]), HostError::Refused);
            rows.push(result(&gone.node.name, &gone.node.host, Err(why), started.elapsed()));
            let outcome = finish_change(&remaining, new_plan, opts, None, rows, before_verify).await;
            sessions.close().await;
            return Ok(outcome);
        }
    };
    commit()?;
    let mut out =
        apply_all(&remaining, new_plan, opts, gathered, false, |_| Scope::Peer(name.to_string()), "remove").await;
    let teardown = match (&gone.session, gone_facts) {
        (Ok(t), Some(Ok(f))) => host::remove_with(t.as_ref(), &gone.node, &f, force, &|_| {}).await.map(|mut a| {
            a.steps.insert(0, "left the cluster".into());
            a
        }),
        (Ok(_), Some(Err(e))) => Err(e),
        (_, _) => Ok(Applied {
            steps: vec![format!(
                "forced: unreachable ({}), dropped from the mesh without cleaning it",
                gone.session.as_ref().err().map(|e| e.to_string()).unwrap_or_default()
            )],
            ..Applied::default()
        }),
    };
    out.push(Outcome { node: gone.node.clone(), result: teardown, elapsed: started.elapsed() });
    let mut rows = results(out);
    rows.append(&mut unreachable);
    let outcome = finish_change(&remaining, new_plan, opts, None, rows_in_order(plan, rows), before_verify).await;
    sessions.close().await;
    Ok(outcome)
}

/// Rows for hosts that passed their checks but were left unchanged.
fn held(plan: &ClusterPlan, gathered: &super::Gathered) -> Vec<HostResult> {
    plan.nodes
        .iter()
        .filter(|n| gathered.contains_key(&n.name))
        .map(|n| HostResult {
            status: super::HostState::Held,
            error: Some("not changed: another host failed its checks".into()),
            ..result(&n.name, &n.host, Ok(Applied::default()), std::time::Duration::ZERO)
        })
        .collect()
}
