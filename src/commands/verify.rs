//! `verify`: prove the mesh with containers on every pair of hosts.

use crate::model::inventory::Inventory;
use crate::plan::ClusterPlan;
use crate::remote::executor::{self, Options};
use crate::verify::{Report, VerifyOptions};

pub async fn run(inv: &Inventory, plan: &ClusterPlan, opts: &Options, v: &VerifyOptions) -> Report {
    let (hosts, sessions) = executor::connect_all(inv, plan, opts).await;
    let report = super::run_verify(&hosts, plan, opts, v).await;
    sessions.close().await;
    report
}
