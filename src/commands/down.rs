//! `down`: remove the mesh from every host; docker and OVS keep running.

use crate::converge::host;
use crate::model::inventory::Inventory;
use crate::plan::ClusterPlan;
use crate::remote::executor::{self, Options};

use super::{HostResult, results};

pub async fn run(inv: &Inventory, plan: &ClusterPlan, opts: &Options) -> Vec<HostResult> {
    let (hosts, sessions) = executor::connect_all(inv, plan, opts).await;
    let out = executor::on_each(&hosts, opts, "down", |node, t, bar| async move {
        host::remove(t.as_ref(), &node, &|m| bar.set_message(m.to_string())).await
    })
    .await;
    sessions.close().await;
    results(out)
}
