//! `up`: converge every host (only what is missing), then verify.

use crate::converge::host::{self, Scope};
use crate::model::inventory::Inventory;
use crate::plan::ClusterPlan;
use crate::remote::executor::{self, Options};
use crate::verify::VerifyOptions;

use super::{ChangeOutcome, HostResult, finish_change, results};

pub async fn run(
    inv: &Inventory,
    plan: &ClusterPlan,
    opts: &Options,
    verify: Option<VerifyOptions>,
    before_verify: &dyn Fn(&[HostResult]),
) -> ChangeOutcome {
    let (hosts, sessions) = executor::connect_all(inv, plan, opts).await;
    let out = executor::on_each(&hosts, opts, "up", |node, t, bar| async move {
        host::converge(t.as_ref(), &node, false, &Scope::Whole, &|m| bar.set_message(m.to_string())).await
    })
    .await;
    let outcome = finish_change(&hosts, plan, opts, verify, results(out), before_verify).await;
    sessions.close().await;
    outcome
}
