//! What every command is run with: the global flags resolved once (inventory path, output form), and the ways
//! commands load the inventory and its address plan and hold the inventory against other vxmesh runs.

use std::path::PathBuf;

use clap::Args;
use vxmesh::error::Error;
use vxmesh::model::inventory::{self, Inventory};
use vxmesh::model::lock::Guard;
use vxmesh::plan::ClusterPlan;

#[derive(Args)]
pub struct GlobalArgs {
    /// The inventory file (YAML). Its address plan is kept beside it, in the same name with `.lock`.
    /// Without -i: the file named by VXMESH_INVENTORY, else vxmesh.yaml in the current directory.
    #[arg(
        short,
        long,
        global = true,
        env = "VXMESH_INVENTORY",
        default_value = inventory::DEFAULT_PATH,
        value_name = "FILE",
        value_parser = inventory_path
    )]
    pub inventory: PathBuf,

    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// When another vxmesh command is working on the same inventory, stop at once instead of waiting for it.
    #[arg(long, global = true)]
    pub no_wait: bool,

    /// Print only errors (on stderr) and a one-line result: no tables, no progress bars.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Show every script sent to a host and what it printed, on stderr as each ends (no progress bars then);
    /// `plan --offline` adds each node's read-only facts script.
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

/// An empty inventory path names where it came from: `-i ""` or an empty `VXMESH_INVENTORY`.
fn inventory_path(s: &str) -> Result<PathBuf, String> {
    if s.is_empty() {
        return Err("the inventory path is empty (from -i, or VXMESH_INVENTORY set to nothing: unset it or name \
                    a file)"
            .into());
    }
    Ok(PathBuf::from(s))
}

/// How results are printed, chosen once from `--json` and `-q`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// One JSON document on stdout, in the envelope every command shares.
    Json,
    /// Errors on stderr and a one-line result.
    Quiet,
    /// Tables, the matrix, progress bars on a terminal.
    Text,
}

impl Form {
    pub fn is_text(self) -> bool {
        self == Form::Text
    }
}

pub struct Ctx {
    pub inventory: PathBuf,
    pub form: Form,
    pub no_wait: bool,
    pub verbose: bool,
    /// The command line's command (`lab create`, `up`): what the JSON envelope names.
    pub command: String,
}

impl Ctx {
    pub fn new(g: &GlobalArgs, command: String) -> Ctx {
        let form = if g.json {
            Form::Json
        } else if g.quiet {
            Form::Quiet
        } else {
            Form::Text
        };
        Ctx { inventory: g.inventory.clone(), form, no_wait: g.no_wait, verbose: g.verbose, command }
    }

    /// The inventory, validated, with the address plan kept in step with it (the lock is written when it changed).
    pub fn load(&self) -> Result<(Inventory, ClusterPlan), Error> {
        vxmesh::commands::files::load(&self.inventory, true)
    }

    /// As [`Ctx::load`], but the address plan stays in memory: for commands that only show.
    pub fn load_readonly(&self) -> Result<(Inventory, ClusterPlan), Error> {
        vxmesh::commands::files::load(&self.inventory, false)
    }

    /// Held for the whole command: two vxmesh commands on one inventory never interleave. Without an inventory
    /// file there is nothing to hold (the command then fails on reading it).
    pub fn guard(&self) -> Result<Option<Guard>, Error> {
        if self.inventory.exists() {
            Guard::acquire(&self.inventory, self.no_wait, |waiting| eprintln!("{waiting}")).map(Some)
        } else {
            Ok(None)
        }
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime")
}
