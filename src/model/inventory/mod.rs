//! Reads the inventory file: YAML in, a validated [`Inventory`] out, or every problem with file:line:column and the value.

pub mod edit;
mod model;
mod raw;
mod validate;

pub use validate::{overlaps, switch_capacity};

pub use model::*;

use std::path::Path;

use crate::error::{Diagnostic, Diagnostics, Error, Pos, Result};

/// The inventory used when `-i` is not given.
pub const DEFAULT_PATH: &str = "vxmesh.yaml";

/// Reads and validates the inventory at `path`. Touches nothing but that file.
pub fn load(path: &Path) -> Result<Inventory> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        action: "read the inventory",
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Parses and validates inventory text; `path` is only used in messages.
pub fn parse(path: &Path, text: &str) -> Result<Inventory> {
    let fail = |items| Error::Inventory(Diagnostics { file: path.to_path_buf(), items });
    let raw: raw::RawInventory = serde_saphyr::from_str(text).map_err(|e| fail(vec![yaml_diagnostic(&e)]))?;
    validate::validate(path, raw).map_err(fail)
}

/// serde-saphyr's message, reduced to one line and placed at its location.
fn yaml_diagnostic(e: &serde_saphyr::Error) -> Diagnostic {
    let pos = e.location().and_then(|l| pos_of(&l));
    let full = e.to_string();
    // The library appends a source snippet after the first line; ours carries the position already.
    let first = full.lines().next().unwrap_or("invalid YAML").trim();
    let message = strip_location_prefix(first);
    Diagnostic::at(pos, message.to_string())
}

/// `error: line 3 column 3: unknown field` -> `unknown field`: the position is printed in front already.
fn strip_location_prefix(message: &str) -> &str {
    let m = message.strip_prefix("error: ").unwrap_or(message);
    let m = match m.strip_prefix("line ").and_then(|rest| rest.split_once(": ")) {
        Some((_, tail)) => tail,
        None => m,
    };
    // Advice meant for programs embedding the parser, not for someone editing an inventory.
    m.split(", set DuplicateKeyPolicy").next().unwrap_or(m)
}

pub(crate) fn pos_of(l: &serde_saphyr::Location) -> Option<Pos> {
    (l.line() > 0).then(|| Pos { line: l.line(), column: l.column() })
}
