//! Small text parsers shared by the facts sections: section splitting, `key = value` lines, tool lines.

use std::collections::BTreeMap;

use super::{FactsError, Tool};

/// Every section starts with a line `### vxmesh:NAME`; a script that stopped early leaves no `### vxmesh:end`.
pub const MARK: &str = "### vxmesh:";

/// The facts script's output, split into its named sections.
#[derive(Debug, Clone, Default)]
pub struct Sections(BTreeMap<String, String>);

impl Sections {
    pub fn parse(output: &str) -> Result<Sections, FactsError> {
        sections(output).map(Sections)
    }

    /// A section's text; empty when the script printed none (the tool is absent, or the thing does not exist).
    pub fn get(&self, name: &str) -> &str {
        self.0.get(name).map(String::as_str).unwrap_or("")
    }
}

fn sections(output: &str) -> Result<BTreeMap<String, String>, FactsError> {
    let mut out = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    let mut ended = false;
    for line in output.lines() {
        if let Some(name) = line.strip_prefix(MARK) {
            if let Some((n, body)) = current.take() {
                out.insert(n, body);
            }
            if name == "end" {
                ended = true;
                break;
            }
            current = Some((name.trim().to_string(), String::new()));
        } else if let Some((_, body)) = current.as_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    if !ended {
        return Err(FactsError::new("end", "the facts script stopped before its end marker (was its output cut?)"));
    }
    Ok(out)
}

/// `net.ipv4.ip_forward = 1` and `ID=debian` alike; values lose their surrounding quotes.
pub fn key_values(body: &str, sep: char) -> BTreeMap<String, String> {
    body.lines()
        .filter_map(|l| l.split_once(sep))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .filter(|(k, _)| !k.is_empty() && !k.starts_with('#'))
        .collect()
}

/// Lines `name<TAB>path<TAB>version`; tools that are absent are not listed.
pub fn tools(body: &str) -> BTreeMap<String, Tool> {
    body.lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, '\t');
            let (name, path, version) = (f.next()?, f.next()?, f.next().unwrap_or(""));
            (!path.is_empty())
                .then(|| (name.to_string(), Tool { path: path.to_string(), version: version.trim().to_string() }))
        })
        .collect()
}

/// Lines `DEV tx-checksumming: on|off` (ethtool -k, one line kept per device).
pub fn offloads(body: &str) -> BTreeMap<String, bool> {
    body.lines()
        .filter_map(|l| {
            let (dev, rest) = l.split_once(' ')?;
            let state = rest.strip_prefix("tx-checksumming:")?.trim();
            Some((dev.to_string(), state.starts_with("on")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_output_is_an_error_not_an_empty_host() {
        let e = sections("### vxmesh:ovs-bridge\n{}\n").unwrap_err();
        assert!(e.message.contains("end marker"), "{e}");
    }

    #[test]
    fn sections_split_on_marks() {
        let s = sections("noise\n### vxmesh:a\n1\n2\n### vxmesh:b\n### vxmesh:end\n").unwrap();
        assert_eq!(s["a"], "1\n2\n");
        assert_eq!(s["b"], "");
    }

    #[test]
    fn offload_lines() {
        let o = offloads("vxm-sw0 tx-checksumming: off\nvxm-dkr tx-checksumming: on [fixed]\n");
        assert!(!o["vxm-sw0"]);
        assert!(o["vxm-dkr"]);
    }
}
