//! `add-node`: build the new node; on every other node add its tunnel and let it through the firewall, nothing
//! else. Every host is checked first. Then verify the pairs that involve it.

use crate::converge::host::Scope;
use crate::model::inventory::Inventory;
use crate::plan::ClusterPlan;
use crate::remote::executor::{self, Options};
use crate::verify::VerifyOptions;

use super::{ChangeOutcome, HostResult, check_then_apply, finish_change};

pub async fn run(
    inv: &Inventory,
    plan: &ClusterPlan,
    name: &str,
    opts: &Options,
    verify: Option<VerifyOptions>,
    before_verify: &dyn Fn(&[HostResult]),
) -> ChangeOutcome {
    let (hosts, sessions) = executor::connect_all(inv, plan, opts).await;
    let scope = |n: &str| if n == name { Scope::Whole } else { Scope::Peer(name.to_string()) };
    let rows = check_then_apply(&hosts, plan, opts, false, scope, "add").await;
    let verify = verify.map(|v| VerifyOptions { only: Some(name.to_string()), ..v });
    let outcome = finish_change(&hosts, plan, opts, verify, rows, before_verify).await;
    sessions.close().await;
    outcome
}
