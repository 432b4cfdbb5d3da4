//! `up`: gather and check every host, then converge each (only what is missing), then verify.

use crate::converge::host::Scope;
use crate::model::inventory::Inventory;
use crate::plan::ClusterPlan;
use crate::remote::executor::{self, Options};
use crate::verify::VerifyOptions;

use super::{ChangeOutcome, HostResult, apply_all, finish_change, gather_checked, results, rows_in_order};

pub async fn run(
    inv: &Inventory,
    plan: &ClusterPlan,
    opts: &Options,
    verify: Option<VerifyOptions>,
    before_verify: &dyn Fn(&[HostResult]),
) -> ChangeOutcome {
    let (hosts, sessions) = executor::connect_all(inv, plan, opts).await;
    let rows = match gather_checked(&hosts, plan, opts).await {
        Err(refused) => refused,
        Ok((gathered, mut unreachable)) => {
            let mut rows = results(apply_all(&hosts, opts, gathered, false, |_| Scope::Whole, "up").await);
            rows.append(&mut unreachable);
            rows_in_order(plan, rows)
        }
    };
    let outcome = finish_change(&hosts, plan, opts, verify, rows, before_verify).await;
    sessions.close().await;
    outcome
}
