//! `up`: gather and check every host, then converge each (only what is missing), then verify.

use crate::converge::host::Scope;
use crate::model::inventory::Inventory;
use crate::plan::ClusterPlan;
use crate::remote::executor::{self, Connect, Options};
use crate::verify::VerifyOptions;

use super::{ChangeOutcome, HostResult, check_then_apply, finish_change};

pub async fn run(
    inv: &Inventory,
    plan: &ClusterPlan,
    opts: &Options,
    verify: Option<VerifyOptions>,
    before_verify: &dyn Fn(&[HostResult]),
) -> ChangeOutcome {
    run_with(&executor::Ssh::new(inv, plan, opts), plan, opts, verify, before_verify).await
}

/// [`run`] over the hosts `connector` reaches (a simulated fleet in the benchmarks).
pub async fn run_with(
    connector: &dyn Connect,
    plan: &ClusterPlan,
    opts: &Options,
    verify: Option<VerifyOptions>,
    before_verify: &dyn Fn(&[HostResult]),
) -> ChangeOutcome {
    let (hosts, sessions) = executor::connect_with(connector, plan, opts).await;
    let rows = check_then_apply(&hosts, plan, opts, false, |_| Scope::Whole, "up").await;
    let outcome = finish_change(&hosts, plan, opts, verify, rows, before_verify).await;
    sessions.close().await;
    outcome
}
