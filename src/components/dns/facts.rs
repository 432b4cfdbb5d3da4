//! What a host has of names across hosts: the tools, the installed files' fingerprints, the units' state.

use serde::Serialize;

use super::files::HASH;
use crate::cmd;
use crate::facts::{FactsError, HostFacts, Sections, mark};
use crate::model::names;
use crate::shell::{Stmt, Word, when};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DnsFacts {
    pub dnsmasq: bool,
    pub curl: bool,
    pub systemd: bool,
    /// Fingerprints of the installed files.
    pub config: Option<String>,
    pub watcher: Option<String>,
    pub server_unit: Option<String>,
    pub watch_unit: Option<String>,
    /// Both units enabled (their links in multi-user.target.wants).
    pub enabled: bool,
    pub server_active: bool,
    pub watch_active: bool,
    /// Anything else of an earlier run: a link, the directories.
    pub leftovers: bool,
}

impl DnsFacts {
    /// Whether the host has any part of it: what teardown looks at.
    pub fn anything(&self) -> bool {
        self.config.is_some()
            || self.watcher.is_some()
            || self.server_unit.is_some()
            || self.watch_unit.is_some()
            || self.enabled
            || self.server_active
            || self.watch_active
            || self.leftovers
    }
}

fn echo(what: &'static str) -> Stmt {
    cmd!["echo", what].into()
}

pub fn gather() -> Vec<Stmt> {
    let hash = |label: &str, path: &'static str| -> Stmt {
        let expr = format!("s/^{HASH}/{label} /p");
        cmd!["sed", "-n", Word::Data(expr), path].silent_stderr().may_fail().into()
    };
    let active = |unit: &'static str, label: &'static str| {
        when(cmd!["systemctl", "is-active", "--quiet", unit].silent(), vec![echo(label)])
    };
    vec![
        mark("dns"),
        when(cmd!["command", "-v", "dnsmasq"].silent(), vec![echo("tool dnsmasq")]),
        when(cmd!["command", "-v", "curl"].silent(), vec![echo("tool curl")]),
        when(cmd!["test", "-d", "/run/systemd/system"], vec![echo("systemd")]),
        hash("config", names::DNS_CONFIG),
        hash("watcher", names::DNS_WATCHER),
        hash("server-unit", names::DNS_UNIT_PATH),
        hash("watch-unit", names::DNS_WATCH_UNIT_PATH),
        when(cmd!["test", "-L", names::DNS_UNIT_LINK], vec![echo("link server")]),
        when(cmd!["test", "-L", names::DNS_WATCH_UNIT_LINK], vec![echo("link watch")]),
        active(names::DNS_UNIT, "active server"),
        active(names::DNS_WATCH_UNIT, "active watch"),
        when(cmd!["test", "-d", names::DNS_DIR], vec![echo("dir state")]),
        when(cmd!["test", "-d", names::DNS_RUN_DIR], vec![echo("dir run")]),
    ]
}

/// The section as [`gather`] prints it; unknown lines are ignored (a newer vxmesh may print more).
pub fn parse_text(body: &str) -> DnsFacts {
    let mut f = DnsFacts::default();
    let (mut server_link, mut watch_link) = (false, false);
    for line in body.lines().map(str::trim) {
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        let hash = || Some(value.trim().to_string()).filter(|v| !v.is_empty());
        match (key, value) {
            ("tool", "dnsmasq") => f.dnsmasq = true,
            ("tool", "curl") => f.curl = true,
            ("systemd", _) => f.systemd = true,
            ("config", _) => f.config = hash(),
            ("watcher", _) => f.watcher = hash(),
            ("server-unit", _) => f.server_unit = hash(),
            ("watch-unit", _) => f.watch_unit = hash(),
            ("link", "server") => server_link = true,
            ("link", "watch") => watch_link = true,
            ("active", "server") => f.server_active = true,
            ("active", "watch") => f.watch_active = true,
            ("dir", _) => f.leftovers = true,
            _ => {}
        }
    }
    f.enabled = server_link && watch_link;
    f.leftovers |= server_link || watch_link;
    f
}

pub fn parse(s: &Sections, facts: &mut HostFacts) -> Result<(), FactsError> {
    facts.set_part(parse_text(s.get("dns")));
    Ok(())
}
