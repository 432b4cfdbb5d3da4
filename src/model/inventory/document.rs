//! From the file to the raw inventory: a size limit, UTF-8, exactly one YAML document, and the parser's
//! errors reduced to one escaped line at their place.

use std::io::Read;
use std::path::Path;

use super::check::escaped;
use super::pos_of;
use super::raw::{At, RawInventory, Scalar, Shaped};
use crate::error::{Diagnostic, Diagnostics, Error, Pos, Result};
use crate::model::files::{self, Opened};

/// Thousands of nodes fit in a few hundred KiB; past this a file is a mistake (or `-i /dev/zero`),
/// and parsing it would only cost time and memory.
pub const MAX_BYTES: u64 = 4 * 1024 * 1024;

/// Parser messages can quote keys of any length; one line of a terminal is enough.
const MESSAGE_MAX: usize = 300;

fn refused(path: &Path, d: Diagnostic) -> Error {
    Error::Inventory(Diagnostics { file: path.to_path_buf(), items: vec![d] })
}

fn too_big(size: &str) -> Diagnostic {
    Diagnostic::at(None, format!("is {size} bytes; inventories are at most 4 MiB"))
}

/// The inventory's text, read no further than the limit. Only a regular file (or a symlink to one) is read, and
/// opening it never blocks: a FIFO or a device would hang or never end.
pub fn read_text(path: &Path) -> Result<String> {
    let io = |source| Error::Io { action: "read the inventory", path: path.to_path_buf(), source };
    let file = match files::open_regular(path, true).map_err(io)? {
        Opened::File(f) => f,
        // ENOENT, worded by the OS as a plain open would have been.
        Opened::Missing => return Err(io(std::io::Error::from_raw_os_error(2))),
        Opened::NotRegular(kind) => {
            let message = format!("{}; an inventory is a YAML file", kind.describe());
            return Err(refused(path, Diagnostic::at(None, message)));
        }
    };
    let len = file.metadata().map_err(io)?.len();
    if len > MAX_BYTES {
        return Err(refused(path, too_big(&len.to_string())));
    }
    let mut bytes = Vec::new();
    file.take(MAX_BYTES + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(refused(path, too_big(&format!("more than {MAX_BYTES}"))));
    }
    String::from_utf8(bytes).map_err(|e| refused(path, not_utf8(e.as_bytes(), e.utf8_error().valid_up_to())))
}

/// Where the first byte that is not UTF-8 is, as an editor would show it.
fn not_utf8(bytes: &[u8], valid: usize) -> Diagnostic {
    let before = String::from_utf8_lossy(&bytes[..valid]);
    let line = before.matches('\n').count() as u64 + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u64 + 1;
    Diagnostic::at(
        Some(Pos { line, column }),
        format!("the file is not UTF-8 text (byte `{:#04x}` here); save the inventory as UTF-8", bytes[valid]),
    )
}

/// Parses one YAML document into the raw inventory; every unknown field is reported at once (the parser stops at
/// the first: [`super::unknown`] finds the others).
pub fn parse_reporting_all(text: &str) -> Result<At<Shaped<RawInventory>>, Vec<Diagnostic>> {
    parse(text).map_err(|first| {
        if !first.message.starts_with("unknown field `") {
            return vec![first];
        }
        let all = super::unknown::unknown_fields(text);
        if all.len() < 2 {
            return vec![first];
        }
        all.into_iter()
            .map(|d| {
                let message = match did_you_mean(&d.message) {
                    Some(hint) => format!("{}; did you mean `{hint}`?", d.message),
                    None => d.message.clone(),
                };
                Diagnostic::at(d.pos, escaped(&message, MESSAGE_MAX))
            })
            .collect()
    })
}

/// Parses one YAML document into the raw inventory.
pub fn parse(text: &str) -> Result<At<Shaped<RawInventory>>, Diagnostic> {
    if text.len() as u64 > MAX_BYTES {
        return Err(too_big(&text.len().to_string()));
    }
    let raw: At<Shaped<RawInventory>> = serde_saphyr::from_str(text).map_err(|e| explain(text, &e))?;
    // Nothing but blank lines and comments parses as an empty value (a written `~` is left to validation).
    if matches!(raw.value, Shaped::Wrong(Scalar::Null)) && raw.defined.span().byte_len() == Some(0) {
        return Err(Diagnostic::at(
            Some(Pos { line: 1, column: 1 }),
            "the file is empty; an inventory needs `cluster:` and `nodes:`",
        ));
    }
    Ok(raw)
}

fn explain(text: &str, e: &serde_saphyr::Error) -> Diagnostic {
    match e.without_snippet() {
        serde_saphyr::Error::MultipleDocuments { location, .. } => second_document(text, location.line()),
        _ => yaml_diagnostic(e),
    }
}

/// The parser reports the second document where its content starts; the user looks for the `---` above it.
fn second_document(text: &str, reported: u64) -> Diagnostic {
    let lines: Vec<&str> = text.lines().take(usize::try_from(reported).unwrap_or(usize::MAX)).collect();
    let marker = lines.iter().rposition(|l| l == &"---" || l.starts_with("--- ") || l.starts_with("---\t"));
    let line = marker.map_or(reported, |i| i as u64 + 1);
    Diagnostic::at(
        Some(Pos { line, column: 1 }),
        "a second YAML document starts here; an inventory is one document: remove this `---` and what follows, or merge them",
    )
}

/// serde-saphyr's message, reduced to one line, placed at its location, and escaped: it may quote a key.
fn yaml_diagnostic(e: &serde_saphyr::Error) -> Diagnostic {
    let pos = e.location().and_then(|l| pos_of(&l));
    let full = e.to_string();
    // The library appends a source snippet after the first line; ours carries the position already.
    let first = full.lines().next().unwrap_or("invalid YAML").trim();
    let message = strip_location_prefix(first);
    let message = match did_you_mean(message) {
        Some(hint) => format!("{message}; did you mean `{hint}`?"),
        None => message.to_string(),
    };
    Diagnostic::at(pos, escaped(&message, MESSAGE_MAX))
}

/// For `unknown field `encrypton`, expected one of ..., encryption, ...`: the expected field a typo most likely
/// meant (at most a third of its letters off, and closer than any other), if any.
fn did_you_mean(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    let (typed, rest) = rest.split_once('`')?;
    let expected = rest.split_once("expected ")?.1;
    let expected = expected.strip_prefix("one of ").unwrap_or(expected);
    let fields = expected.split([',', ' ']).map(|f| f.trim_matches('`')).filter(|f| !f.is_empty() && *f != "or");
    let (distance, best) = fields.map(|f| (edit_distance(typed, f), f)).min()?;
    (distance > 0 && distance <= typed.chars().count().max(3) / 3).then_some(best)
}

/// Edit distance over characters: insertions, deletions, substitutions, and two neighbours swapped (`mut` for
/// `mtu` is one typo, not two).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_of_a_field_gets_the_field_it_meant() {
        let m = "unknown field `encrypton`, expected one of name, cidr, mtu, encryption, wireguard, dns";
        assert_eq!(did_you_mean(m), Some("encryption"));
        assert_eq!(
            did_you_mean("unknown field `undelay_ip`, expected one of `name`, `host`, `underlay_ip`"),
            Some("underlay_ip")
        );
        assert_eq!(did_you_mean("unknown field `mut`, expected `mtu` or `vni`"), Some("mtu"));
        assert_eq!(did_you_mean("unknown field `adress`, expected one of name, host, subnet"), None, "nothing close");
        assert_eq!(did_you_mean("invalid type: string, expected a mapping"), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("mut", "mtu"), 1);
    }
}
