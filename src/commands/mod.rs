//! The commands that talk to hosts, one module each. They compute typed outcomes; [`crate::report`] prints them
//! and the CLI picks exit codes.

pub mod add_node;
pub mod down;
pub mod files;
pub mod plan;
pub mod ps;
pub mod remove_node;
pub mod rotate_keys;
pub mod status;
pub mod up;
pub mod verify;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::converge::host::{self, Applied, Scope};
use crate::converge::{self, fleet_problems};
use crate::error::HostError;
use crate::facts::HostFacts;
use crate::plan::{ClusterPlan, NodePlan};
use crate::remote::executor::{self, Connected, Options, Outcome};
use crate::verify::{Report, VerifyOptions};

/// How one host ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HostState {
    /// Nothing to do: the host matched the plan.
    Ok,
    /// Steps were applied.
    Changed,
    /// The host could not be worked on, or a step failed.
    Failed,
    /// Left unchanged because another host failed its checks: every host is checked before any is changed.
    Held,
}

impl HostState {
    /// The word tables and JSON show.
    pub fn word(self) -> &'static str {
        match self {
            HostState::Ok => "ok",
            HostState::Changed => "changed",
            HostState::Failed => "failed",
            HostState::Held => "held",
        }
    }
}

/// One host's result, as tables and JSON show it.
#[derive(Debug, Clone, Serialize)]
pub struct HostResult {
    pub node: String,
    pub host: String,
    pub status: HostState,
    pub changed: Vec<String>,
    /// Drift the command was not allowed to repair (`add-node` and `remove-node` touch only their node).
    pub left_alone: Vec<String>,
    pub error: Option<String>,
    /// What kind of failure (`unreachable`, `preflight`, `step-failed`, ...).
    pub error_kind: Option<&'static str>,
    pub seconds: f64,
    /// The script `plan` would send (empty after a real run: only `plan` prints it).
    #[serde(skip)]
    pub script: String,
    /// Each step as `plan --json` shows it.
    #[serde(skip)]
    pub detail: Vec<serde_json::Value>,
}

impl HostResult {
    pub fn failed(&self) -> bool {
        self.status == HostState::Failed
    }
}

pub fn results(outcomes: Vec<Outcome<Applied>>) -> Vec<HostResult> {
    outcomes.into_iter().map(|o| result(&o.node.name, &o.node.host, o.result, o.elapsed)).collect()
}

pub(crate) fn result(node: &str, host: &str, r: Result<Applied, HostError>, elapsed: Duration) -> HostResult {
    let (status, applied, error) = match r {
        Ok(a) if a.steps.is_empty() => (HostState::Ok, a, None),
        Ok(a) => (HostState::Changed, a, None),
        Err(e) => (HostState::Failed, Applied::default(), Some(e)),
    };
    HostResult {
        node: node.to_string(),
        host: host.to_string(),
        status,
        changed: applied.steps,
        left_alone: applied.left_alone,
        error_kind: error.as_ref().map(HostError::kind),
        error: error.map(|e| e.to_string()),
        seconds: elapsed.as_secs_f64(),
        script: applied.script,
        detail: applied.detail,
    }
}

/// What a command that changes hosts ends with: per host, then the verification (if it ran).
#[derive(Debug, Clone, Serialize)]
pub struct ChangeOutcome {
    pub ok: bool,
    pub hosts: Vec<HostResult>,
    pub verify: Option<Report>,
    /// Verification was asked for but not run, since not every host was built.
    #[serde(skip)]
    pub verify_skipped: bool,
    #[serde(skip)]
    pub interrupted: bool,
    /// Ctrl-C came during verification (its temporary containers were removed).
    #[serde(skip)]
    pub verify_interrupted: bool,
}

/// A run id for verification's temporary containers: this process and the time, so runs never collide.
pub fn run_id() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() % 1_000_000)
    )
}

/// Runs verification, and always removes its containers, also on Ctrl-C (then `None`: no report).
pub async fn run_verify(hosts: &[Connected], plan: &ClusterPlan, opts: &Options, v: &VerifyOptions) -> Option<Report> {
    let run = run_id();
    let mut outcome = tokio::select! {
        r = crate::verify::verify(hosts, plan, opts, v, &run) => Some(r),
        _ = opts.stop.interrupted() => None,
    };
    // Across sites each pair names its path, so a failure reads with the way its packets went.
    if let Some(r) = outcome.as_mut().filter(|_| !plan.paths().is_empty()) {
        for p in &mut r.pairs {
            p.path = plan.path(&p.from, &p.to).map(|x| x.path.to_string());
        }
    }
    // The containers serve every peer's client until all are done; the sweep removes them (also after Ctrl-C).
    if !outcome.as_ref().is_some_and(|r| r.containers_removed) {
        crate::verify::cleanup(hosts, opts, &run).await;
    }
    outcome
}

/// After the hosts were changed: `before_verify` sees the rows (to print them), then verification runs if asked
/// and every host was built.
pub async fn finish_change(
    hosts: &[Connected],
    plan: &ClusterPlan,
    opts: &Options,
    verify: Option<VerifyOptions>,
    rows: Vec<HostResult>,
    before_verify: &dyn Fn(&[HostResult]),
) -> ChangeOutcome {
    let failed = rows.iter().any(HostResult::failed);
    before_verify(&rows);
    if verify.is_some() && !failed && rows.iter().any(|r| r.status == HostState::Changed) {
        settle_wireguard(hosts, plan, opts).await;
    }
    let (report, verify_interrupted) = match &verify {
        Some(v) if !failed && !opts.stopped() => match run_verify(hosts, &opts.reach(plan), opts, v).await {
            Some(r) => (Some(r), false),
            None => (None, true),
        },
        _ => (None, false),
    };
    ChangeOutcome {
        ok: !failed && report.as_ref().is_none_or(|r| r.ok),
        verify_skipped: verify.is_some() && report.is_none(),
        hosts: rows,
        verify: report,
        interrupted: opts.stopped(),
        verify_interrupted,
    }
}

/// Before verifying a mesh just changed under encryption: each host waits (at most 8 s) until it has a handshake
/// with every peer. A peer's first handshake initiation can arrive before the peer's own interface listens; WireGuard
/// then tries again only after 5 s, and verification in between would report a mesh that is merely settling.
async fn settle_wireguard(hosts: &[Connected], plan: &ClusterPlan, opts: &Options) {
    if plan.nodes.iter().all(|n| n.wireguard.is_none()) {
        return;
    }
    let _ = executor::on_each(hosts, opts, "handshakes", |_, t, bar| async move {
        bar.set_message("waiting for WireGuard handshakes");
        t.run(crate::components::wireguard::SETTLE).await
    })
    .await;
}

/// Facts of every host, gathered at once before anything changes.
pub type Gathered = BTreeMap<String, HostFacts>;

/// Phase one of the commands that change hosts: facts from every host at once, then every check on every host
/// (each host's preflight and collisions across hosts). Hosts that cannot be reached fail alone and the others
/// go on; a reachable host with a problem stops the command before any host is changed (`Err`: every row).
pub async fn gather_checked(
    hosts: &[Connected],
    plan: &ClusterPlan,
    opts: &Options,
) -> Result<(Gathered, Vec<HostResult>), Vec<HostResult>> {
    let out = executor::on_each(hosts, opts, "facts", |node, t, bar| async move {
        bar.set_message("gathering facts");
        host::facts(t.as_ref(), &node).await
    })
    .await;
    split_checked(out, |facts| fleet_problems(plan, facts))
}

/// Facts for `down`: every host at once; with any host refusing its teardown (and no `force`), none is changed.
pub async fn gather_for_teardown(
    hosts: &[Connected],
    opts: &Options,
    force: bool,
) -> Result<(Gathered, Vec<HostResult>), Vec<HostResult>> {
    let out = executor::on_each(hosts, opts, "facts", |node, t, bar| async move {
        bar.set_message("gathering facts");
        host::teardown_facts(t.as_ref(), &node).await
    })
    .await;
    split_checked(out, |facts| {
        facts.iter().filter_map(|(n, f)| converge::teardown(n, f, force).err().map(|r| (n.name.clone(), r))).collect()
    })
}

/// Splits gathered facts into usable ones and unreachable hosts, or refuses all when `check` finds problems.
fn split_checked(
    out: Vec<Outcome<HostFacts>>,
    check: impl FnOnce(&[(&NodePlan, &HostFacts)]) -> Vec<(String, Vec<String>)>,
) -> Result<(Gathered, Vec<HostResult>), Vec<HostResult>> {
    let reached: Vec<(&NodePlan, &HostFacts)> =
        out.iter().filter_map(|o| o.result.as_ref().ok().map(|f| (o.node.as_ref(), f))).collect();
    let problems: BTreeMap<String, Vec<String>> = check(&reached).into_iter().collect();
    let mut unreachable = vec![];
    let mut gathered = Gathered::new();
    let mut rows = vec![];
    for o in out {
        let (name, host) = (o.node.name.clone(), o.node.host.clone());
        match (o.result, problems.get(&name)) {
            (Err(e), _) => {
                let row = result(&name, &host, Err(e), o.elapsed);
                unreachable.push(row.clone());
                rows.push(row);
            }
            (Ok(_), Some(p)) => rows.push(result(&name, &host, Err(HostError::Preflight(p.clone())), o.elapsed)),
            (Ok(f), None) => {
                gathered.insert(name.clone(), f);
                rows.push(HostResult {
                    status: HostState::Held,
                    error: Some("not changed: another host failed its checks".into()),
                    ..result(&name, &host, Ok(Applied::default()), o.elapsed)
                });
            }
        }
    }
    if problems.is_empty() { Ok((gathered, unreachable)) } else { Err(rows) }
}

/// The connected hosts that passed phase one (their facts are in `gathered`).
fn ready(hosts: &[Connected], gathered: &Gathered) -> Vec<Connected> {
    hosts
        .iter()
        .filter(|h| gathered.contains_key(&h.node.name))
        .map(|h| Connected { node: h.node.clone(), session: h.session.clone() })
        .collect()
}

/// With encryption, the round trip before phase two: each host that may be changed as a whole and has no
/// WireGuard key makes one (on the host); its public key joins its facts. Hosts where that fails drop out.
async fn make_keys(
    hosts: &[Connected],
    opts: &Options,
    gathered: &mut Gathered,
    may_change: impl Fn(&str) -> bool,
) -> Vec<Outcome<Applied>> {
    let without: Vec<String> = ready(hosts, gathered)
        .into_iter()
        .filter(|h| h.node.wireguard.is_some() && may_change(&h.node.name))
        .filter(|h| {
            gathered[&h.node.name]
                .part::<crate::components::wireguard::WireguardFacts>()
                .is_some_and(|f| f.public_key.is_none())
        })
        .map(|h| h.node.name.clone())
        .collect();
    new_keys(hosts, opts, gathered, &without, false).await
}

/// Each of `names` makes a WireGuard key on its host (`replace`: a new one even if it has one); the public keys
/// join the facts. Hosts where that fails leave `gathered` and come back as failed outcomes.
pub async fn new_keys(
    hosts: &[Connected],
    opts: &Options,
    gathered: &mut Gathered,
    names: &[String],
    replace: bool,
) -> Vec<Outcome<Applied>> {
    let without: Vec<Connected> = ready(hosts, gathered).into_iter().filter(|h| names.contains(&h.node.name)).collect();
    if without.is_empty() {
        return vec![];
    }
    let made = executor::on_each(&without, opts, "keys", |_, t, bar| async move {
        bar.set_message("making its WireGuard key");
        host::make_key(t.as_ref(), replace).await
    })
    .await;
    let mut failed = vec![];
    for o in made {
        match o.result {
            Ok(key) => {
                if let Some(f) = gathered.get_mut(&o.node.name) {
                    crate::components::wireguard::set_public_key(f, key);
                }
            }
            Err(e) => {
                gathered.remove(&o.node.name);
                failed.push(Outcome { node: o.node, result: Err(e), elapsed: o.elapsed });
            }
        }
    }
    failed
}

/// The hosts to change, each with its node's plan as the other hosts' facts complete it: the cluster's smallest
/// underlay MTU (`mtu: auto`) and their public keys.
fn keyed(hosts: &[Connected], plan: &ClusterPlan, gathered: &Gathered) -> Vec<Connected> {
    let completed = completed(plan, hosts.iter().filter_map(|h| Some((&h.node, gathered.get(&h.node.name)?))));
    ready(hosts, gathered)
        .into_iter()
        .map(|h| match completed.node(&h.node.name) {
            Some(n) => Connected { node: Arc::new(n.clone()), session: h.session },
            None => h,
        })
        .collect()
}

/// The plan as the hosts' facts complete it, for `up` and `status` alike: with `mtu: auto` every node's overlay MTU
/// from the smallest underlay MTU any reached host reports (a full-size packet then fits every path, and a host
/// whose underlay shrinks shows as drift on every host), and with encryption the public keys the hosts reported.
pub fn completed<'a>(
    plan: &ClusterPlan,
    facts: impl Iterator<Item = (&'a Arc<NodePlan>, &'a HostFacts)> + Clone,
) -> ClusterPlan {
    let sized = plan.with_cluster_mtu(facts.clone().filter_map(|(n, f)| f.mtu_of_device_with(n.underlay)));
    if sized.nodes.iter().any(|n| n.wireguard.is_some()) {
        let keys = crate::components::wireguard::known_keys(&sized, facts.map(|(n, f)| (&n.name, f)));
        sized.with_public_keys(&keys)
    } else {
        sized
    }
}

/// Phase two: every host that passed gets its diff within `scope_of` its name, against the facts of phase one.
/// `plan` is the whole cluster's (other hosts' public keys complete each node's plan).
#[allow(clippy::too_many_arguments)]
pub async fn apply_all(
    hosts: &[Connected],
    plan: &ClusterPlan,
    opts: &Options,
    mut gathered: Gathered,
    dry_run: bool,
    scope_of: impl Fn(&str) -> Scope,
    what: &str,
) -> Vec<Outcome<Applied>> {
    let mut failed =
        if dry_run { vec![] } else { make_keys(hosts, opts, &mut gathered, |n| scope_of(n) == Scope::Whole).await };
    let ready = keyed(hosts, plan, &gathered);
    // Each host takes its own facts out, and they are dropped once its diff is made, not when the last host ends.
    let gathered = std::sync::Mutex::new(gathered);
    let mut out = executor::on_each(&ready, opts, what, |node, t, bar| {
        let facts = gathered.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&node.name);
        let scope = scope_of(&node.name);
        async move {
            let f = facts.ok_or_else(|| HostError::Facts(format!("no facts gathered for {}", node.name)))?;
            host::apply(t.as_ref(), &node, f, dry_run, &scope, &|m| bar.set_message(m.to_string())).await
        }
    })
    .await;
    out.append(&mut failed);
    out
}

/// Both phases, for the commands that converge hosts (`plan`, `up`, `add-node`): every row in plan order.
pub async fn check_then_apply(
    hosts: &[Connected],
    plan: &ClusterPlan,
    opts: &Options,
    dry_run: bool,
    scope_of: impl Fn(&str) -> Scope,
    what: &str,
) -> Vec<HostResult> {
    match gather_checked(hosts, plan, opts).await {
        Err(refused) => refused,
        Ok((gathered, mut unreachable)) => {
            let mut rows = results(apply_all(hosts, plan, opts, gathered, dry_run, scope_of, what).await);
            rows.append(&mut unreachable);
            rows_in_order(plan, rows)
        }
    }
}

/// `down`'s phase two: every host that passed is torn down as its facts show.
pub async fn remove_all(hosts: &[Connected], opts: &Options, gathered: Gathered, force: bool) -> Vec<Outcome<Applied>> {
    let ready = ready(hosts, &gathered);
    let gathered = Arc::new(gathered);
    executor::on_each(&ready, opts, "down", |node, t, bar| {
        let gathered = gathered.clone();
        async move {
            let f = &gathered[&node.name];
            host::remove_with(t.as_ref(), &node, f, force, &|m| bar.set_message(m.to_string())).await
        }
    })
    .await
}

/// The rows of a command: the hosts it worked on, then those it could not reach, in plan order.
pub fn rows_in_order(plan: &ClusterPlan, mut rows: Vec<HostResult>) -> Vec<HostResult> {
    // Positions looked up in a map: a search per comparison made sorting 1,000 rows cost a billion compares.
    let at: std::collections::HashMap<&str, usize> =
        plan.nodes.iter().enumerate().map(|(i, n)| (n.name.as_str(), i)).collect();
    rows.sort_by_key(|r| at.get(r.node.as_str()).copied().unwrap_or(usize::MAX));
    rows
}
