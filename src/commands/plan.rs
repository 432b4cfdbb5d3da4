//! `plan`: what `up` would change on each host, exactly, without changing anything.

use crate::converge::host::Scope;
use crate::model::inventory::Inventory;
use crate::plan::ClusterPlan;
use crate::remote::executor::{self, Options};

use super::{HostResult, check_then_apply};

pub async fn run(inv: &Inventory, plan: &ClusterPlan, opts: &Options) -> Vec<HostResult> {
    let (hosts, sessions) = executor::connect_all(inv, plan, opts).await;
    let rows = check_then_apply(&hosts, plan, opts, true, |_| Scope::Whole, "plan").await;
    sessions.close().await;
    rows
}
