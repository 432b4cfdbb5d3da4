//! How a command's result reaches the terminal: one form chosen once (`--json`, `-q`, text), one JSON envelope,
//! and the exit codes.

use serde_json::json;
use vxmesh::commands::{ChangeOutcome, HostResult};
use vxmesh::error::Error;
use vxmesh::plan::ClusterPlan;
use vxmesh::remote::executor::Options;
use vxmesh::report;

use super::context::{Ctx, Form};

/// Exit code when any host failed.
pub const HOSTS_FAILED: i32 = 2;
/// Exit code when `status` found drift or `verify` a failed check: the hosts answered, the mesh is not right.
pub const CHECK_FAILED: i32 = 3;
/// Exit code after Ctrl-C, as shells expect.
pub const INTERRUPTED: i32 = 130;

/// What is said when Ctrl-C ended a verification.
pub const INTERRUPTED_VERIFY: &str = "interrupted: temporary containers removed";

/// A command's result in each of the three forms; [`Ctx::show`] picks one.
pub trait Show {
    /// The JSON document (put in the envelope).
    fn json(&self) -> serde_json::Value;
    /// `-q`: errors on stderr and one line.
    fn quiet(&self);
    /// Tables and text.
    fn text(&self);
    /// Writes the JSON document in the envelope; a result too large to hold as one value writes itself instead.
    fn write_json(&self, ctx: &Ctx) {
        json(ctx, &self.json());
    }
}

impl Ctx {
    /// Prints a failure in the output's form and returns its exit code.
    pub fn error(&self, e: &Error) -> i32 {
        match self.form {
            Form::Json => json(
                self,
                &serde_json::json!({"ok": false, "error": {"message": e.to_string(), "exit_code": e.code()}}),
            ),
            Form::Quiet | Form::Text => eprintln!("error: {e}"),
        }
        e.code()
    }

    pub fn show(&self, result: &dyn Show) {
        match self.form {
            Form::Json => result.write_json(self),
            Form::Quiet => result.quiet(),
            Form::Text => result.text(),
        }
    }
}

/// Every JSON output in one envelope: `{"schema": 1, "command": ..., "ok": ..., ...}` (a list goes under `items`).
pub fn json(ctx: &Ctx, v: &serde_json::Value) {
    report::json(&mut std::io::stdout(), &report::envelope(&ctx.command, v.clone()));
}

/// 130 after Ctrl-C, 2 when a host failed, 3 when a check failed, else 0.
pub fn exit_code(opts: &Options, hosts_failed: bool, check_failed: bool) -> i32 {
    if opts.stopped() {
        INTERRUPTED
    } else if hosts_failed {
        HOSTS_FAILED
    } else if check_failed {
        CHECK_FAILED
    } else {
        0
    }
}

/// Names the run's record when something failed: where to read what each host was sent and answered.
/// (`-q` keeps to one line per failed host and the result: the record is in `--json`, and on disk.)
pub fn name_record(ctx: &Ctx, opts: &Options, failed: bool) {
    if let (true, true, Some(dir)) = (failed, ctx.form != Form::Quiet, &opts.record) {
        eprintln!("what each host was sent and answered: {}", dir.display());
    }
}

/// What change commands print before verification starts: the per-host table (not with --json; with -q only the
/// hosts that failed, on stderr: the summary joins the result line at the end).
pub fn summary_printer(ctx: &Ctx, verb: &'static str) -> impl Fn(&[HostResult]) {
    let form = ctx.form;
    move |rows: &[HostResult]| match form {
        Form::Json => {}
        Form::Quiet => report::host_errors(&mut std::io::stderr(), rows),
        Form::Text => report::summary(&mut std::io::stdout(), rows, verb),
    }
}

/// A change command's outcome (up, add-node, remove-node, rotate-keys): the summary was printed before
/// verification; this is the rest.
pub struct Changed<'a> {
    pub outcome: &'a ChangeOutcome,
    pub plan: &'a ClusterPlan,
    pub record: Option<&'a std::path::Path>,
}

impl Changed<'_> {
    fn verify_skipped(&self) -> bool {
        self.outcome.verify_skipped && !self.outcome.interrupted
    }
}

impl Show for Changed<'_> {
    fn json(&self) -> serde_json::Value {
        let o = self.outcome;
        json!({"ok": o.ok, "hosts": o.hosts, "verify": o.verify, "record": self.record})
    }

    fn quiet(&self) {
        let mut line = report::summary_line(&self.outcome.hosts, "changed");
        if let Some(r) = &self.outcome.verify {
            report::verify_errors(&mut std::io::stderr(), r);
            line = format!("{line}; {}", report::verify_line(r));
        } else if self.verify_skipped() {
            line += "; verify skipped: not every host was built";
        }
        println!("{line}");
    }

    fn text(&self) {
        if let Some(r) = &self.outcome.verify {
            report::verify(&mut std::io::stdout(), r, self.plan);
        } else if self.verify_skipped() {
            println!("verify skipped: not every host was built");
        }
    }
}

/// Prints a change command's outcome and picks its exit code.
pub fn finish(ctx: &Ctx, outcome: &ChangeOutcome, plan: &ClusterPlan, opts: &Options) -> i32 {
    if outcome.verify_interrupted {
        eprintln!("{INTERRUPTED_VERIFY}");
        return INTERRUPTED;
    }
    name_record(ctx, opts, !outcome.ok);
    ctx.show(&Changed { outcome, plan, record: opts.record.as_deref() });
    let hosts_failed = outcome.hosts.iter().any(HostResult::failed);
    exit_code(opts, hosts_failed, outcome.verify.as_ref().is_some_and(|r| !r.ok))
}
