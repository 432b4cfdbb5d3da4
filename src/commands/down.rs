//! `down`: remove the mesh from every host; docker and OVS keep running. Every host is looked at first: if one
//! must not be torn down (containers still on the mesh network), none is, unless `force`.

use std::sync::Arc;

use crate::converge::host;
use crate::model::inventory::Inventory;
use crate::plan::ClusterPlan;
use crate::remote::executor::{self, Connected, Options};

use super::{HostResult, gather_for_teardown, results, rows_in_order};

pub async fn run(inv: &Inventory, plan: &ClusterPlan, opts: &Options, force: bool) -> Vec<HostResult> {
    let (hosts, sessions) = executor::connect_all(inv, plan, opts).await;
    let rows = match gather_for_teardown(&hosts, opts, force).await {
        Err(refused) => refused,
        Ok((gathered, mut unreachable)) => {
            let gathered = Arc::new(gathered);
            let ready: Vec<Connected> = hosts
                .iter()
                .filter(|h| gathered.contains_key(&h.node.name))
                .map(|h| Connected { node: h.node.clone(), session: h.session.clone() })
                .collect();
            let out = executor::on_each(&ready, opts, "down", |node, t, bar| {
                let gathered = gathered.clone();
                async move {
                    let f = &gathered[&node.name];
                    host::remove_with(t.as_ref(), &node, f, force, &|m| bar.set_message(m.to_string())).await
                }
            })
            .await;
            let mut rows = results(out);
            rows.append(&mut unreachable);
            rows_in_order(plan, rows)
        }
    };
    sessions.close().await;
    rows
}
