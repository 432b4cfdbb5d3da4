//! `vxmesh down`: remove what vxmesh made on every host, after asking.

use clap::Args;
use serde_json::json;
use vxmesh::commands::{self, HostResult};
use vxmesh::error::Error;
use vxmesh::report;

use super::Ctx;
use super::args::HostArgs;
use super::context::runtime;
use super::output::{Show, exit_code, name_record};

#[derive(Args)]
pub struct DownArgs {
    /// Disconnect containers still attached to the mesh's docker network instead of refusing.
    #[arg(long)]
    force: bool,
    /// Do not ask for confirmation (needed when stdin is not a terminal).
    #[arg(short, long)]
    yes: bool,
    #[command(flatten)]
    hosts: HostArgs,
}

impl DownArgs {
    pub fn exec(&self, ctx: &Ctx) -> Result<i32, Error> {
        // A `--limit` it cannot honour is refused before the question (asking about every host first misleads);
        // then the question comes before anything else: a refusal touches nothing, not even the guard or the lock.
        self.hosts.whole_cluster("down")?;
        if !self.yes {
            super::confirm::down(ctx)?;
        }
        let _guard = ctx.guard()?;
        let (inv, plan) = ctx.load()?;
        let opts = self.hosts.changing_options(ctx, &inv, "down")?;
        let rows = runtime().block_on(commands::down::run(&inv, &plan, &opts, self.force));
        let failed = rows.iter().any(HostResult::failed);
        name_record(ctx, &opts, failed);
        ctx.show(&Removed { rows: &rows, record: opts.record.as_deref() });
        Ok(exit_code(&opts, failed, false))
    }
}

struct Removed<'a> {
    rows: &'a [HostResult],
    record: Option<&'a std::path::Path>,
}

impl Show for Removed<'_> {
    fn json(&self) -> serde_json::Value {
        json!({"ok": !self.rows.iter().any(HostResult::failed), "hosts": self.rows, "record": self.record})
    }

    fn quiet(&self) {
        report::host_errors(&mut std::io::stderr(), self.rows);
        println!("{}", report::summary_line(self.rows, "removed"));
    }

    fn text(&self) {
        report::summary(&mut std::io::stdout(), self.rows, "removed");
    }
}
