//! `down` and `remove-node` ask before they remove anything: on a terminal, a question answered y or yes; without
//! one, a refusal unless `--yes`. Either way before the guard, the lock or any host is touched.

use std::io::{BufRead, IsTerminal, Write};

use vxmesh::error::Error;
use vxmesh::model::inventory::{self, Inventory};

use super::{Cli, Command};

/// Host names shown in the question; more are counted.
const SHOWN: usize = 10;

/// Asks for `down` and `remove-node` (unless `--yes`); `Err` when not confirmed. Other commands pass.
pub fn removal(cli: &Cli) -> Result<(), Error> {
    let (verb, node) = match &cli.command {
        Command::Down { yes: false, .. } => ("down", None),
        Command::RemoveNode { yes: false, name, .. } => ("remove-node", Some(name)),
        _ => return Ok(()),
    };
    // A bad inventory or an unknown node is said as such, not behind a question.
    let inv = inventory::load(&cli.inventory)?;
    let question = match node {
        None => format!("Remove the mesh from {} hosts ({})?", inv.nodes.len(), hosts(&inv)),
        Some(name) => {
            let n = inv.node(name).ok_or_else(|| Error::UnknownNode { name: name.clone(), known: inv.node_names() })?;
            let others = inv.nodes.len() - 1;
            format!(
                "Remove node {} ({}) from the mesh, withdrawing it from {others} other host{}, and tear it down?",
                n.name,
                n.host,
                if others == 1 { "" } else { "s" }
            )
        }
    };
    if !std::io::stdin().is_terminal() {
        return Err(Error::Usage(format!(
            "{verb} asks before it removes anything, and stdin is not a terminal; pass --yes to go ahead without \
             asking. Nothing was done. (The question: {question})"
        )));
    }
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{question} [y/N] ");
    let _ = err.flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if yes(&answer) { Ok(()) } else { Err(Error::Usage(format!("{verb}: not confirmed; nothing was done"))) }
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
