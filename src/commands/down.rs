//! `down`: remove the mesh from every host; docker and OVS keep running. Every host is looked at first: if one
//! must not be torn down (containers still on the mesh network), none is, unless `force`.

use crate::model::inventory::Inventory;
use crate::plan::ClusterPlan;
use crate::remote::executor::{self, Options};

use super::{HostResult, gather_for_teardown, remove_all, results, rows_in_order};

pub async fn run(inv: &Inventory, plan: &ClusterPlan, opts: &Options, force: bool) -> Vec<HostResult> {
    let (hosts, sessions) = executor::connect_all(inv, plan, opts).await;
    let rows = match gather_for_teardown(&hosts, opts, force).await {
        Err(refused) => refused,
        Ok((gathered, mut unreachable)) => {
            let mut rows = results(remove_all(&hosts, opts, gathered, force).await);
            rows.append(&mut unreachable);
            rows_in_order(plan, rows)
        }
    };
    sessions.close().await;
    rows
}
