//! One host's round trips over a [`Transport`]: facts (read-only), then the missing steps in one script; or
//! the teardown. All checks come before the first change.

use std::sync::Arc;

use serde::Serialize;

use super::{Transport, diff_with, gather_script, parse_facts, pool, preflight_with, script, teardown_with};
use crate::components::{Concern, HostComponents, Step};
use crate::error::HostError;
use crate::facts::HostFacts;
use crate::plan::NodePlan;

/// Which changes a command may make on a host: all, or (on the other hosts, for `add-node` and `remove-node`)
/// only what concerns one peer: its tunnel, and the firewall's list of peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Whole,
    Peer(String),
    /// What concerns any of these peers (`rotate-keys` on the hosts that keep their key).
    Peers(Vec<String>),
}

impl Scope {
    pub fn admits(&self, step: &Step) -> bool {
        match (self, &step.concern) {
            (Scope::Whole, _) => true,
            (Scope::Peer(p), Concern::Peer(q)) => **p == **q,
            (Scope::Peers(ps), Concern::Peer(q)) => ps.iter().any(|p| **p == **q),
            (Scope::Peer(_) | Scope::Peers(_), Concern::Peers) => true,
            (Scope::Peer(_) | Scope::Peers(_), Concern::Node) => false,
        }
    }
}

/// What a command found and did on one host.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Applied {
    /// Descriptions of the steps applied (or, for `plan`, that would be).
    pub steps: Vec<String>,
    /// Steps the host needed but the command's scope left alone (drift to repair with `up`).
    pub left_alone: Vec<String>,
    /// The script that would be sent (`plan`); empty after a real run, which keeps no copy of what it sent.
    #[serde(skip)]
    pub script: String,
    /// Each step as `plan --json` shows it ([`Step::to_json`]).
    #[serde(skip)]
    pub detail: Vec<serde_json::Value>,
}

/// Runs the facts script and parses it with `parse`.
async fn gather(
    t: &dyn Transport,
    script: &str,
    parse: impl FnOnce(&str) -> Result<HostFacts, crate::facts::FactsError>,
) -> Result<HostFacts, HostError> {
    let out = t.run(script).await?;
    if out.code != 0 {
        return Err(HostError::Facts(format!("gathering facts failed (exit {}): {}", out.code, tail(&out.stderr, 5))));
    }
    parse(&out.stdout).map_err(|e| HostError::Facts(e.to_string()))
}

/// The host's facts, as `up` needs them (no checks). The parse runs off the sessions' task ([`super::pool`]).
pub async fn facts(t: &dyn Transport, node: &Arc<NodePlan>) -> Result<HostFacts, HostError> {
    let script = gather_script(node, &HostComponents::up(node));
    let out = t.run(&script).await?;
    drop(script);
    if out.code != 0 {
        return Err(HostError::Facts(format!("gathering facts failed (exit {}): {}", out.code, tail(&out.stderr, 5))));
    }
    let node = node.clone();
    let stdout = out.stdout;
    pool::off_thread(move || parse_facts(&stdout, &HostComponents::up(&node)))
        .await
        .map_err(|e| HostError::Facts(e.to_string()))
}

/// The facts `comps` gather.
async fn facts_of(t: &dyn Transport, comps: &HostComponents<'_>) -> Result<HostFacts, HostError> {
    gather(t, &gather_script(comps.node, comps), |out| parse_facts(out, comps)).await
}

/// Facts, preflight, diff and (unless `dry_run`) the missing steps within `scope`, applied in one round trip.
/// For one host on its own; commands that touch several gather and check all of them first ([`apply`]).
pub async fn converge(
    t: &dyn Transport,
    node: &NodePlan,
    dry_run: bool,
    scope: &Scope,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<Applied, HostError> {
    progress("gathering facts");
    let comps = HostComponents::up(node);
    let facts = facts_of(t, &comps).await?;
    let problems = preflight_with(&comps, &facts);
    if !problems.is_empty() {
        return Err(HostError::Preflight(problems));
    }
    apply_with(t, &comps, &facts, dry_run, scope, progress).await
}

/// The diff of `node` against `facts` (gathered and checked before), within `scope`; unless `dry_run`, the
/// missing steps are sent as one script. The diff and the script are made off the sessions' task
/// ([`super::pool`]), and the facts are dropped as soon as the diff is made.
pub async fn apply(
    t: &dyn Transport,
    node: &Arc<NodePlan>,
    facts: HostFacts,
    dry_run: bool,
    scope: &Scope,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<Applied, HostError> {
    let (node, scope) = (node.clone(), scope.clone());
    let prepared = pool::off_thread(move || prepare(&HostComponents::up(&node), &facts, dry_run, &scope)).await;
    send(t, prepared, dry_run, progress).await
}

/// [`apply`] with the host's components already chosen, on this task.
async fn apply_with(
    t: &dyn Transport,
    comps: &HostComponents<'_>,
    facts: &HostFacts,
    dry_run: bool,
    scope: &Scope,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<Applied, HostError> {
    send(t, prepare(comps, facts, dry_run, scope), dry_run, progress).await
}

/// The pure half of applying: what changes within `scope`, and the script (with the record of the plan it
/// applies, unless `dry_run`: `plan` shows the steps alone).
fn prepare(comps: &HostComponents<'_>, facts: &HostFacts, dry_run: bool, scope: &Scope) -> (Applied, usize) {
    let node = comps.node;
    let (steps, left): (Vec<Step>, Vec<Step>) = diff_with(comps, facts).into_iter().partition(|s| scope.admits(s));
    let mut sent = script(node, &steps);
    if !dry_run && !steps.is_empty() {
        sent.push_str(&super::applied_record(node));
    }
    let applied = Applied {
        steps: steps.iter().map(|s| s.description.clone()).collect(),
        left_alone: left.into_iter().map(|s| s.description).collect(),
        script: sent,
        // Only `plan --json` shows the steps in full: a real run does not render them twice.
        detail: if dry_run { steps.iter().map(Step::to_json).collect() } else { vec![] },
    };
    (applied, steps.len())
}

/// The other half: the script sent (unless there is nothing to do or it is a dry run). A real run keeps none of
/// it afterwards: at 1,000 hosts the scripts sent are a gigabyte, and only `plan` prints them.
async fn send(
    t: &dyn Transport,
    (mut applied, steps): (Applied, usize),
    dry_run: bool,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<Applied, HostError> {
    if steps == 0 || dry_run {
        if !dry_run {
            applied.script = String::new();
        }
        return Ok(applied);
    }
    progress(&format!("applying {steps} steps"));
    let script = std::mem::take(&mut applied.script);
    run_script(t, &script).await?;
    Ok(applied)
}

/// Encryption's first round trip: the host makes its WireGuard key (unless it has one, or with `replace` a new one
/// in its place) and sends back only the public key. A replaced key takes effect when the interface is next set up.
pub async fn make_key(t: &dyn Transport, replace: bool) -> Result<String, HostError> {
    let out = t.run(&crate::components::wireguard::keygen_script(replace)).await?;
    let key = out.stdout.trim();
    if out.code != 0 {
        return Err(HostError::ScriptFailed { code: out.code, stderr: tail(&out.stderr, 5) });
    }
    if !crate::components::wireguard::is_public_key(key) {
        return Err(HostError::Facts("making the WireGuard key printed something that is not a public key".into()));
    }
    Ok(key.to_string())
}

/// What `down` needs to know of a host: everything any component may have left there.
pub async fn teardown_facts(t: &dyn Transport, node: &NodePlan) -> Result<HostFacts, HostError> {
    facts_of(t, &HostComponents::teardown(node)).await
}

/// Removes the mesh from the host: facts first, and nothing at all when any component refuses.
pub async fn remove(
    t: &dyn Transport,
    node: &NodePlan,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<Applied, HostError> {
    progress("gathering facts");
    let comps = HostComponents::teardown(node);
    let facts = facts_of(t, &comps).await?;
    remove_steps(t, node, teardown_with(&comps, &facts, false), progress).await
}

/// Removes the mesh as `facts` show it. `force` disconnects containers still on the mesh's docker network.
pub async fn remove_with(
    t: &dyn Transport,
    node: &NodePlan,
    facts: &HostFacts,
    force: bool,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<Applied, HostError> {
    remove_steps(t, node, teardown_with(&HostComponents::teardown(node), facts, force), progress).await
}

/// Runs the teardown's steps, or reports its refusals.
async fn remove_steps(
    t: &dyn Transport,
    node: &NodePlan,
    steps: Result<Vec<Step>, Vec<String>>,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<Applied, HostError> {
    let steps = steps.map_err(HostError::Refused)?;
    let applied = Applied {
        steps: steps.iter().map(|s| s.description.clone()).collect(),
        left_alone: vec![],
        script: script(node, &steps),
        detail: vec![],
    };
    if !steps.is_empty() {
        progress("removing the mesh");
        run_script(t, &applied.script).await?;
    }
    Ok(applied)
}

async fn run_script(t: &dyn Transport, script: &str) -> Result<(), HostError> {
    let out = t.run(script).await?;
    if out.code != 0 {
        return Err(failed_step(&out.stderr, out.code));
    }
    Ok(())
}

/// Names the step a script stopped in, from its `### vxmesh-step` markers, with what it printed.
pub fn failed_step(stderr: &str, code: u32) -> HostError {
    let last = stderr.lines().rev().find_map(|l| l.strip_prefix("### vxmesh-step "));
    let printed: String = stderr.lines().filter(|l| !l.starts_with("### vxmesh-step ")).collect::<Vec<_>>().join("\n");
    match last {
        Some(step) => {
            let (n, desc) = step.split_once(' ').unwrap_or((step, ""));
            HostError::StepFailed {
                step: n.to_string(),
                description: desc.to_string(),
                code,
                stderr: tail(&printed, 8),
            }
        }
        None => HostError::ScriptFailed { code, stderr: tail(&printed, 8) },
    }
}

/// The last `n` non-empty lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    let t = lines[lines.len().saturating_sub(n)..].join("\n");
    if t.is_empty() { "(nothing on stderr)".into() } else { t }
}
