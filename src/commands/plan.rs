//! `plan`: what `up` would change on each host, exactly, without changing anything.

use crate::converge::host::{self, Scope};
use crate::model::inventory::Inventory;
use crate::plan::ClusterPlan;
use crate::remote::executor::{self, Options};

use super::{HostResult, results};

pub async fn run(inv: &Inventory, plan: &ClusterPlan, opts: &Options) -> Vec<HostResult> {
    let (hosts, sessions) = executor::connect_all(inv, plan, opts).await;
    let out = executor::on_each(&hosts, opts, "facts", |node, t, bar| async move {
        host::converge(t.as_ref(), &node, true, &Scope::Whole, &|m| bar.set_message(m.to_string())).await
    })
    .await;
    sessions.close().await;
    results(out)
}
