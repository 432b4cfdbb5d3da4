//! `verify`: prove the mesh with containers on every pair of hosts.

use crate::model::inventory::Inventory;
use crate::plan::ClusterPlan;
use crate::remote::executor::{self, Connect, Options};
use crate::verify::{Report, VerifyOptions};

/// The verification (none after Ctrl-C), and the hosts it could not reach (a host failure, not a failed check).
pub struct Verified {
    pub report: Option<Report>,
    pub unreachable: Vec<String>,
}

pub async fn run(inv: &Inventory, plan: &ClusterPlan, opts: &Options, v: &VerifyOptions) -> Verified {
    run_with(&executor::Ssh::new(inv, plan, opts), plan, opts, v).await
}

/// [`run`] over the hosts `connector` reaches (a simulated fleet in the benchmarks).
pub async fn run_with(connector: &dyn Connect, plan: &ClusterPlan, opts: &Options, v: &VerifyOptions) -> Verified {
    let (hosts, sessions) = executor::connect_with(connector, plan, opts).await;
    let unreachable = hosts.iter().filter(|h| h.session.is_err()).map(|h| h.node.name.clone()).collect();
    let report = super::run_verify(&hosts, &opts.reach(plan), opts, v).await;
    sessions.close().await;
    Verified { report, unreachable }
}
