//! The commands that talk to hosts, one module each. They compute typed outcomes; [`crate::report`] prints them
//! and the CLI picks exit codes.

pub mod add_node;
pub mod down;
pub mod plan;
pub mod remove_node;
pub mod status;
pub mod up;
pub mod verify;

use std::time::Duration;

use serde::Serialize;

use crate::converge::host::Applied;
use crate::error::HostError;
use crate::plan::ClusterPlan;
use crate::remote::executor::{Connected, Options, Outcome};
use crate::verify::{Report, VerifyOptions};

/// One host's result, as tables and JSON show it.
#[derive(Debug, Clone, Serialize)]
pub struct HostResult {
    pub node: String,
    pub host: String,
    /// `ok` (nothing to do), `changed`, or `failed`.
    pub status: &'static str,
    pub changed: Vec<String>,
    /// Drift the command was not allowed to repair (`add-node` and `remove-node` touch only their node).
    pub left_alone: Vec<String>,
    pub error: Option<String>,
    /// What kind of failure (`unreachable`, `preflight`, `step-failed`, ...).
    pub error_kind: Option<&'static str>,
    pub seconds: f64,
    /// The script that was (or, for `plan`, would be) sent.
    #[serde(skip)]
    pub script: String,
}

impl HostResult {
    pub fn failed(&self) -> bool {
        self.status == "failed"
    }
}

pub fn results(outcomes: Vec<Outcome<Applied>>) -> Vec<HostResult> {
    outcomes.into_iter().map(|o| result(&o.node.name, &o.node.host, o.result, o.elapsed)).collect()
}

fn result(node: &str, host: &str, r: Result<Applied, HostError>, elapsed: Duration) -> HostResult {
    let (status, applied, error) = match r {
        Ok(a) if a.steps.is_empty() => ("ok", a, None),
        Ok(a) => ("changed", a, None),
        Err(e) => ("failed", Applied::default(), Some(e)),
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
}

/// A run id for verification's temporary containers: this process and the time, so runs never collide.
pub fn run_id() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() % 1_000_000)
    )
}

/// Runs verification, and always removes its containers (also on Ctrl-C, which then ends the program).
pub async fn run_verify(hosts: &[Connected], plan: &ClusterPlan, opts: &Options, v: &VerifyOptions) -> Report {
    let run = run_id();
    let outcome = tokio::select! {
        r = crate::verify::verify(hosts, plan, opts, v, &run) => Some(r),
        _ = opts.stop.interrupted() => None,
    };
    crate::verify::cleanup(hosts, opts, &run).await;
    match outcome {
        Some(r) => r,
        None => {
            eprintln!("interrupted: temporary containers removed");
            std::process::exit(130);
        }
    }
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
    let report = match &verify {
        Some(v) if !failed && !opts.stopped() => Some(run_verify(hosts, plan, opts, v).await),
        _ => None,
    };
    ChangeOutcome {
        ok: !failed && report.as_ref().is_none_or(|r| r.ok),
        verify_skipped: verify.is_some() && report.is_none(),
        hosts: rows,
        verify: report,
        interrupted: opts.stopped(),
    }
}
