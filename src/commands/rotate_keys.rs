//! `rotate-keys`: new WireGuard key pairs, made on the hosts named (all by default); then, in one round trip to
//! every host, each rotated host takes its new key and every other host the rotated peers' new public keys.
//! Streams between containers survive: packets in the gap are retransmitted once both ends have the new keys.

use crate::converge::host::Scope;
use crate::model::inventory::Inventory;
use crate::plan::ClusterPlan;
use crate::remote::executor::{self, Options};
use crate::verify::VerifyOptions;

use super::{ChangeOutcome, HostResult, apply_all, finish_change, gather_checked, new_keys, results, rows_in_order};

pub async fn run(
    inv: &Inventory,
    plan: &ClusterPlan,
    nodes: &[String],
    opts: &Options,
    verify: Option<VerifyOptions>,
    before_verify: &dyn Fn(&[HostResult]),
) -> ChangeOutcome {
    let (hosts, sessions) = executor::connect_all(inv, plan, opts).await;
    let rows = match gather_checked(&hosts, plan, opts).await {
        Err(refused) => refused,
        Ok((mut gathered, mut unreachable)) => {
            // Every host is checked first; only then are keys replaced.
            let mut out = new_keys(&hosts, opts, &mut gathered, nodes, true).await;
            let scope = |n: &str| {
                if nodes.iter().any(|r| r == n) { Scope::Whole } else { Scope::Peers(nodes.to_vec()) }
            };
            out.extend(apply_all(&hosts, plan, opts, gathered, false, scope, "rotate").await);
            let mut rows = results(out);
            rows.append(&mut unreachable);
            rows_in_order(plan, rows)
        }
    };
    let outcome = finish_change(&hosts, plan, opts, verify, rows, before_verify).await;
    sessions.close().await;
    outcome
}
