//! `plan`: what `up` would change on each host, exactly, without changing anything.

use crate::converge::host::Scope;
use crate::model::inventory::Inventory;
use crate::plan::ClusterPlan;
use crate::remote::executor::{self, Options};

use super::{HostResult, apply_all, gather_checked, results, rows_in_order};

pub async fn run(inv: &Inventory, plan: &ClusterPlan, opts: &Options) -> Vec<HostResult> {
    let (hosts, sessions) = executor::connect_all(inv, plan, opts).await;
    let rows = match gather_checked(&hosts, plan, opts).await {
        Err(refused) => refused,
        Ok((gathered, mut unreachable)) => {
            let mut rows = results(apply_all(&hosts, opts, gathered, true, |_| Scope::Whole, "plan").await);
            rows.append(&mut unreachable);
            rows_in_order(plan, rows)
        }
    };
    sessions.close().await;
    rows
}
