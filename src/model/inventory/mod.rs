//! Reads the inventory file: YAML in, a validated [`Inventory`] out, or every problem with file:line:column and the value.

mod check;
mod dns;
mod document;
pub mod edit;
mod families;
pub mod init;
mod model;
mod nodes;
pub mod overlay6;
mod ranges;
mod ranges6;
mod raw;
mod sites;
mod unknown;
mod validate;

pub use check::{escaped, shown};
pub use dns::{DnsSettings, is_domain, is_label};
pub use document::{MAX_BYTES, read_text};
pub use ranges::overlaps;
pub use validate::switch_capacity;

pub use model::*;

use std::path::Path;

use crate::error::{Diagnostics, Error, Pos, Result};

/// The inventory used when `-i` is not given.
pub const DEFAULT_PATH: &str = "vxmesh.yaml";

/// Reads and validates the inventory at `path`. Touches nothing but that file, and reads at most [`MAX_BYTES`].
pub fn load(path: &Path) -> Result<Inventory> {
    let text = document::read_text(path)?;
    parse(path, &text)
}

/// Parses and validates inventory text; `path` is only used in messages.
pub fn parse(path: &Path, text: &str) -> Result<Inventory> {
    let fail = |items| Error::Inventory(Diagnostics { file: path.to_path_buf(), items });
    let raw = document::parse_reporting_all(text).map_err(fail)?;
    validate::validate(path, text, &raw).map_err(fail)
}

pub(crate) fn pos_of(l: &serde_saphyr::Location) -> Option<Pos> {
    (l.line() > 0).then(|| Pos { line: l.line(), column: l.column() })
}
