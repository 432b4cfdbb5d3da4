//! `down` and `remove-node` ask before they remove anything: on a terminal, a question answered y or yes; without
//! one, a refusal unless `--yes`. Either way before the guard, the lock or any host is touched.

use std::io::{BufRead, IsTerminal, Write};

use vxmesh::error::Error;
use vxmesh::model::inventory::{self, Inventory};

use super::Ctx;

/// Host names shown in the question; more are counted.
const SHOWN: usize = 10;

/// Asks before `down` (unless `--yes`); `Err` when not confirmed.
pub fn down(ctx: &Ctx) -> Result<(), Error> {
    // A bad inventory is said as such, not behind a question.
    let inv = inventory::load(&ctx.inventory)?;
    let count = vxmesh::report::counted(inv.nodes.len(), "host", "hosts");
    ask("down", &format!("Remove the mesh from {count} ({})?", hosts(&inv)))
}

/// Asks before `remove-node NAME` (unless `--yes`); `Err` when not confirmed.
pub fn remove_node(ctx: &Ctx, name: &str) -> Result<(), Error> {
    // A bad inventory or an unknown node is said as such, not behind a question.
    let inv = inventory::load(&ctx.inventory)?;
    let n = inv.node(name).ok_or_else(|| inv.unknown_node(name))?;
    let others = inv.nodes.len() - 1;
    ask(
        "remove-node",
        &format!(
            "Remove node {} ({}) from the mesh, withdrawing it from {others} other host{}, and tear it down?",
            n.name,
            n.host,
            if others == 1 { "" } else { "s" }
        ),
    )
}

fn ask(verb: &'static str, question: &str) -> Result<(), Error> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::NoTerminalToAsk { command: verb, question: question.to_string() });
    }
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{question} [y/N] ");
    let _ = err.flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if yes(&answer) { Ok(()) } else { Err(Error::NotConfirmed { command: verb }) }
}

/// `vm1, vm2, ... and 5 more`.
fn hosts(inv: &Inventory) -> String {
    let names: Vec<&str> = inv.nodes.iter().take(SHOWN).map(|n| n.name.as_str()).collect();
    match inv.nodes.len().saturating_sub(SHOWN) {
        0 => names.join(", "),
        more => format!("{}, and {more} more", names.join(", ")),
    }
}

/// Only `y` and `yes` (any case) say yes; anything else, an empty line or end of input included, says no.
fn yes(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}
