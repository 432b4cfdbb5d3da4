//! `add-node`: build the new node; on every other node add its tunnel and let it through the firewall, nothing
//! else. Then verify the pairs that involve it.

use crate::converge::host::{self, Scope};
use crate::model::inventory::Inventory;
use crate::plan::ClusterPlan;
use crate::remote::executor::{self, Options};
use crate::verify::VerifyOptions;

use super::{ChangeOutcome, HostResult, finish_change, results};

pub async fn run(
    inv: &Inventory,
    plan: &ClusterPlan,
    name: &str,
    opts: &Options,
    verify: Option<VerifyOptions>,
    before_verify: &dyn Fn(&[HostResult]),
) -> ChangeOutcome {
    let (hosts, sessions) = executor::connect_all(inv, plan, opts).await;
    let out = executor::on_each(&hosts, opts, "add", |node, t, bar| {
        let scope = if node.name == name { Scope::Whole } else { Scope::Peer(name.to_string()) };
        async move { host::converge(t.as_ref(), &node, false, &scope, &|m| bar.set_message(m.to_string())).await }
    })
    .await;
    let verify = verify.map(|v| VerifyOptions { only: Some(name.to_string()), ..v });
    let outcome = finish_change(&hosts, plan, opts, verify, results(out), before_verify).await;
    sessions.close().await;
    outcome
}
