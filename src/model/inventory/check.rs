//! The checker's state and its conversions: each turns one [`Scalar`] into a typed value or reports it as
//! `field: \`value as written\` ... what was expected`, the value shown escaped so it can never forge a line.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;
use serde_saphyr::Location;

use super::pos_of;
use super::raw::{At, Scalar, Shaped};
use crate::error::{Diagnostic, Pos};
use crate::model::names;

/// Every problem found so far, and the inventory text, to quote values as the user wrote them.
pub struct Check<'a> {
    src: &'a str,
    found: Vec<Diagnostic>,
}

pub fn at<T>(v: &At<T>) -> Option<Pos> {
    pos_of(&v.referenced)
}

/// How messages show a value: one escaping for the whole program, kept with the error type.
pub use crate::error::{escaped, is_forbidden, shown};

impl<'a> Check<'a> {
    pub fn new(src: &'a str) -> Self {
        Check { src, found: Vec::new() }
    }

    pub fn add(&mut self, pos: Option<Pos>, message: impl Into<String>) {
        self.found.push(Diagnostic::at(pos, message));
    }

    /// How many problems so far: a step compares before and after to know whether it added any.
    pub fn count(&self) -> usize {
        self.found.len()
    }

    /// Every problem, in file order (checks run by topic, the user reads top to bottom).
    pub fn into_problems(mut self) -> Vec<Diagnostic> {
        self.found.sort_by_key(|d| d.pos);
        self.found
    }

    /// The value's text in the file (where it is defined, for aliases), when the parser kept its span.
    fn source(&self, defined: &Location) -> Option<&'a str> {
        let span = defined.span();
        let start = usize::try_from(span.byte_offset()?).ok()?;
        let len = usize::try_from(span.byte_len()?).ok()?;
        self.src.get(start..start.checked_add(len)?).map(str::trim)
    }

    /// The value as the user wrote it, escaped: `0x10` stays `0x10`, `007` stays `007`.
    pub fn written(&self, v: &At<Scalar>) -> String {
        self.written_as(&v.value, &v.defined)
    }

    pub fn written_as(&self, value: &Scalar, defined: &Location) -> String {
        let raw = match value {
            Scalar::Text(t) => return shown(t),
            Scalar::Int(n) => self.source(defined).map_or_else(|| n.to_string(), str::to_string),
            Scalar::Float(x) => self.source(defined).map_or_else(|| x.to_string(), str::to_string),
            Scalar::Bool(b) => self.source(defined).map_or_else(|| b.to_string(), str::to_string),
            Scalar::Null => self.source(defined).unwrap_or("~").to_string(),
            Scalar::List => "[...]".to_string(),
            Scalar::Map => "{...}".to_string(),
        };
        shown(&raw)
    }

    /// Reports `v` as not being `expected`, worded by what it is instead.
    pub fn wrong(&mut self, field: &str, v: &At<Scalar>, expected: &str) {
        self.wrong_as(field, &v.value, &v.defined, at(v), expected);
    }

    fn wrong_as(&mut self, field: &str, value: &Scalar, defined: &Location, pos: Option<Pos>, expected: &str) {
        let message = match value {
            Scalar::Null if self.source(defined).is_none_or(str::is_empty) => {
                format!("{field}: is empty; expected {expected}")
            }
            Scalar::Null => format!("{field}: `{}` is null; expected {expected}", self.written_as(value, defined)),
            Scalar::List => format!("{field}: is a list; expected {expected}"),
            Scalar::Map => format!("{field}: is a mapping; expected {expected}"),
            _ => format!("{field}: `{}` is not {expected}", self.written_as(value, defined)),
        };
        self.add(pos, message);
    }

    /// The mapping or list inside `v`, or a report of what was written there instead.
    pub fn shaped<'v, T>(&mut self, field: &str, v: &'v At<Shaped<T>>, expected: &str) -> Option<&'v T> {
        match &v.value {
            Shaped::Ok(t) => Some(t),
            Shaped::Wrong(s) => {
                self.wrong_as(field, s, &v.defined, at(v), expected);
                None
            }
        }
    }

    /// Text of a text field. A number or boolean counts as its text as written (`name: 007` is `007`);
    /// null, lists, mappings and control characters are refused.
    pub fn text(&mut self, field: &str, v: &At<Scalar>, expected: &str) -> Option<String> {
        let text = match &v.value {
            Scalar::Text(t) => t.clone(),
            Scalar::Int(_) | Scalar::Float(_) | Scalar::Bool(_) => self.written(v),
            Scalar::Null | Scalar::List | Scalar::Map => {
                self.wrong(field, v, expected);
                return None;
            }
        };
        if let Some(c) = text.chars().find(|c| is_forbidden(*c)) {
            let message = format!(
                "{field}: `{}` contains the control character `{}`; expected {expected}",
                shown(&text),
                c.escape_debug()
            );
            self.add(at(v), message);
            return None;
        }
        Some(text)
    }

    /// A whole number in `lo..=hi`.
    pub fn int(&mut self, field: &str, v: &At<Scalar>, lo: i64, hi: i64) -> Option<i64> {
        // A quoted number (`port: "22"`) is still the number the user meant.
        let n = match &v.value {
            Scalar::Int(n) => Some(*n),
            Scalar::Text(t) => t.trim().parse::<i128>().ok(),
            _ => None,
        };
        match n {
            Some(n) if (i128::from(lo)..=i128::from(hi)).contains(&n) => i64::try_from(n).ok(),
            Some(_) => {
                let message = format!("{field}: `{}` is out of range {lo}..={hi}", self.written(v));
                self.add(at(v), message);
                None
            }
            _ => {
                self.wrong(field, v, &format!("a whole number in {lo}..={hi}"));
                None
            }
        }
    }

    pub fn boolean(&mut self, field: &str, v: &At<Scalar>) -> Option<bool> {
        match v.value {
            Scalar::Bool(b) => Some(b),
            _ => {
                self.wrong(field, v, "`true` or `false`");
                None
            }
        }
    }

    /// One of a few words.
    pub fn word<T: Copy>(&mut self, field: &str, v: &At<Scalar>, choices: &[(&str, T)]) -> Option<T> {
        let names: Vec<String> = choices.iter().map(|(w, _)| format!("`{w}`")).collect();
        let expected = format!("one of {}", names.join(", "));
        let text = self.text(field, v, &expected)?;
        let found = choices.iter().find(|(w, _)| *w == text).map(|(_, t)| *t);
        if found.is_none() {
            self.add(at(v), format!("{field}: `{}` is not {expected}", shown(&text)));
        }
        found
    }

    /// An IPv4 CIDR without host bits.
    pub fn cidr(&mut self, field: &str, v: &At<Scalar>) -> Option<Ipv4Net> {
        let text = self.text(field, v, "an IPv4 CIDR (e.g. `172.16.0.0/12`)")?;
        let text = text.trim();
        let problem = match text.parse::<Ipv4Net>() {
            Ok(net) if net.trunc() == net => return Some(net),
            Ok(net) => format!("has host bits set; did you mean `{}`?", net.trunc()),
            Err(_) if text.parse::<ipnet::Ipv6Net>().is_ok() => "is IPv6; vxmesh plans IPv4 overlays only".into(),
            Err(_) => "is not an IPv4 CIDR (expected e.g. `172.16.0.0/12`)".into(),
        };
        self.add(at(v), format!("{field}: `{}` {problem}", shown(text)));
        None
    }

    pub fn ip(&mut self, field: &str, v: &At<Scalar>) -> Option<Ipv4Addr> {
        let text = self.text(field, v, "an IPv4 address")?;
        let text = text.trim();
        let ip = text.parse::<Ipv4Addr>().ok();
        if ip.is_none() {
            let problem = if text.parse::<std::net::Ipv6Addr>().is_ok() {
                "is IPv6; this field is IPv4 (the containers' network is IPv4)"
            } else {
                "is not an IPv4 address"
            };
            self.add(at(v), format!("{field}: `{}` {problem}", shown(text)));
        }
        ip
    }

    /// An underlay address: IPv4 or IPv6, the written form as the user gave it refused when neither.
    pub fn underlay_ip(&mut self, field: &str, v: &At<Scalar>) -> Option<IpAddr> {
        let text = self.text(field, v, "an IPv4 or IPv6 address")?;
        let text = text.trim();
        let ip = text.parse::<IpAddr>().ok();
        if ip.is_none() {
            let problem = match without_prefix(text) {
                Some(bare) => {
                    format!("has a prefix length (as `ip addr` prints it); write the address alone: `{bare}`")
                }
                None => "is not an IPv4 address, nor an IPv6 one".to_string(),
            };
            self.add(at(v), format!("{field}: `{}` {problem}", shown(text)));
        }
        ip
    }
}

/// `fd00::1/64` -> `fd00::1`: an address pasted with its prefix length, as `ip addr` shows it.
pub fn without_prefix(text: &str) -> Option<IpAddr> {
    let (addr, len) = text.split_once('/')?;
    len.parse::<u8>().ok()?;
    addr.parse().ok()
}

/// Characters safe in interface names, sysctl paths and shell words alike.
pub fn is_safe_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A name that becomes part of an interface name: safe characters, and short enough for `derived`.
pub fn check_name(field: &str, v: &At<Scalar>, name: &str, max: usize, derived: &str, ck: &mut Check) -> bool {
    let message = if !is_safe_name(name) {
        format!("{field}: `{}` may use only letters, digits, `-` and `_`, starting with a letter or digit", shown(name))
    } else if name.len() > max {
        format!(
            "{field}: `{name}` is {} bytes; at most {max} fit, since the interface `{derived}` must stay within {} bytes",
            name.len(),
            names::IFNAME_MAX
        )
    } else {
        return true;
    };
    ck.add(at(v), message);
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_escapes_what_could_forge_a_line_or_a_terminal_sequence() {
        assert_eq!(shown("web1"), "web1");
        assert_eq!(shown("a\nb"), "a\\nb");
        assert_eq!(shown("\u{1b}[2J"), "\\u{1b}[2J");
        assert_eq!(shown("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(shown("ünïcödé"), "ünïcödé");
        assert_eq!(shown(&"x".repeat(200)).chars().count(), crate::error::SHOWN_MAX + 1);
    }
}
