//! Commands as data, and the one place they become POSIX sh: every word is quoted here, so no string from the
//! inventory or read back from a host can ever be run as code.

use std::fmt::Write as _;

use serde::Serialize;

use crate::model::names::IfName;

/// A value only the host knows when the script runs, held in a shell variable the script sets first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Var {
    /// The overlay MTU learnt from the underlay device (`mtu: auto` without facts).
    Mtu,
    /// The WireGuard interface's MTU: the overlay's plus VXLAN's headers, which travel inside it.
    WireguardMtu,
}

impl Var {
    pub fn name(self) -> &'static str {
        match self {
            Var::Mtu => "MTU",
            Var::WireguardMtu => "WG_MTU",
        }
    }
}

/// One shell word. Whatever it holds, it renders as exactly one argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Word {
    /// Text written in this program's source.
    Lit(&'static str),
    /// A device name that validation made.
    Name(IfName),
    /// Anything else: numbers, addresses, strings from the inventory or from a host.
    Data(String),
    /// A runtime variable, expanded by the shell (in double quotes: one word, no globbing).
    Var(Var),
    /// Parts glued into one word, e.g. `options:remote_ip=` + an address.
    Join(Vec<Word>),
}

impl Word {
    pub fn uses(&self, v: Var) -> bool {
        match self {
            Word::Var(x) => *x == v,
            Word::Join(parts) => parts.iter().any(|p| p.uses(v)),
            _ => false,
        }
    }

    fn render(&self, out: &mut String) {
        match self {
            Word::Lit(s) => push_quoted(out, s),
            Word::Name(n) => push_quoted(out, n.as_str()),
            Word::Data(s) => push_quoted(out, s),
            Word::Var(v) => {
                let _ = write!(out, "\"${}\"", v.name());
            }
            Word::Join(parts) => {
                if parts.is_empty() {
                    out.push_str("''");
                }
                for p in parts {
                    p.render(out);
                }
            }
        }
    }

    /// The word as it would print, for messages and JSON.
    pub fn display(&self) -> String {
        let mut s = String::new();
        self.render(&mut s);
        s
    }
}

impl From<&'static str> for Word {
    fn from(s: &'static str) -> Self {
        Word::Lit(s)
    }
}

impl From<&IfName> for Word {
    fn from(n: &IfName) -> Self {
        Word::Name(n.clone())
    }
}

impl From<String> for Word {
    fn from(s: String) -> Self {
        Word::Data(s)
    }
}

/// Any value with a Display (addresses, numbers) as one data word.
pub fn data(v: impl std::fmt::Display) -> Word {
    Word::Data(v.to_string())
}

/// An address or network as one data word: as [`data`], without `core::fmt` (see [`crate::model::addr_text`]).
pub fn addr(v: impl crate::model::addr_text::AddrText) -> Word {
    Word::Data(v.text())
}

/// Words glued into one.
pub fn join(parts: impl IntoIterator<Item = Word>) -> Word {
    Word::Join(parts.into_iter().collect())
}

/// Where a command's output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Output {
    #[default]
    Shown,
    /// `>/dev/null`
    NoStdout,
    /// `>/dev/null 2>&1`
    Silent,
    /// `2>/dev/null`
    NoStderr,
}

/// One command: an argument vector, optionally with data on its standard input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    pub argv: Vec<Word>,
    /// Sent verbatim as a quoted here-document: the shell expands nothing in it.
    pub stdin: Option<String>,
    pub output: Output,
    /// `|| true`: a failure does not stop the script.
    pub may_fail: bool,
    /// Further commands this one's output is piped into, in order.
    pub pipe: Vec<Vec<Word>>,
}

impl Cmd {
    pub fn new(argv: impl IntoIterator<Item = Word>) -> Cmd {
        Cmd { argv: argv.into_iter().collect(), stdin: None, output: Output::Shown, may_fail: false, pipe: vec![] }
    }

    /// `self | next`
    pub fn pipe(mut self, next: Cmd) -> Cmd {
        self.pipe.push(next.argv);
        self
    }

    pub fn stdin(mut self, text: impl Into<String>) -> Cmd {
        self.stdin = Some(text.into());
        self
    }

    pub fn no_stdout(mut self) -> Cmd {
        self.output = Output::NoStdout;
        self
    }

    pub fn silent(mut self) -> Cmd {
        self.output = Output::Silent;
        self
    }

    pub fn silent_stderr(mut self) -> Cmd {
        self.output = Output::NoStderr;
        self
    }

    pub fn may_fail(mut self) -> Cmd {
        self.may_fail = true;
        self
    }

    fn uses(&self, v: Var) -> bool {
        self.argv.iter().chain(self.pipe.iter().flatten()).any(|w| w.uses(v))
    }
}

/// `Cmd::new` from words written inline: `cmd!["ip", "link", "set", "dev", name, "up"]`.
#[macro_export]
macro_rules! cmd {
    ($($w:expr),* $(,)?) => { $crate::shell::Cmd::new([$($crate::shell::Word::from($w)),*]) };
}

/// A statement of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stmt {
    Run(Cmd),
    /// One sub-command of a tool that takes several separated by `--` (ovs-vsctl): neighbours share one
    /// invocation, so they are one transaction.
    Batch {
        tool: &'static str,
        args: Vec<Word>,
    },
    /// `if CONDS; then THEN else ELSE fi`, the conditions joined by `&&` (negated: `! { ...; }`).
    If {
        conds: Vec<Cmd>,
        negate: bool,
        then: Vec<Stmt>,
        otherwise: Vec<Stmt>,
    },
    /// `while CMD; do :; done`: repeat until it fails (e.g. delete every copy of a rule).
    Repeat(Cmd),
    /// Print `vxmesh: MESSAGE` on stderr and stop the script.
    Fail(String),
    /// Write `content` to `path` atomically (a temporary file beside it, then rename), with `mode` if given.
    WriteFile {
        path: &'static str,
        content: Vec<Word>,
        mode: Option<&'static str>,
    },
    /// A line for the human reader; control characters are escaped so it can never end early.
    Comment(String),
    /// Shell written in this program's source, with nothing from outside in it (loops, pipelines).
    Static(&'static str),
    /// Each statement in the background (`( ... ) &`); a later `wait` collects them.
    Background(Vec<Stmt>),
    /// `VAR=WORD`: a shell variable that fixed text ([`Stmt::Static`]) may then use, always in double quotes; how
    /// a value from outside reaches such text as data.
    Set {
        var: &'static str,
        value: Word,
    },
}

impl Stmt {
    pub fn uses(&self, v: Var) -> bool {
        match self {
            Stmt::Run(c) | Stmt::Repeat(c) => c.uses(v),
            Stmt::Batch { args, .. } => args.iter().any(|w| w.uses(v)),
            Stmt::If { conds, then, otherwise, .. } => {
                conds.iter().any(|c| c.uses(v)) || then.iter().chain(otherwise).any(|s| s.uses(v))
            }
            Stmt::WriteFile { content, .. } => content.iter().any(|w| w.uses(v)),
            Stmt::Background(b) => b.iter().any(|s| s.uses(v)),
            Stmt::Set { value, .. } => value.uses(v),
            Stmt::Fail(_) | Stmt::Comment(_) | Stmt::Static(_) => false,
        }
    }

    pub fn is_batch_of(&self, tool: &str) -> bool {
        matches!(self, Stmt::Batch { tool: t, .. } if *t == tool)
    }
}

impl From<Cmd> for Stmt {
    fn from(c: Cmd) -> Self {
        Stmt::Run(c)
    }
}

/// `if ! COND; then THEN; fi`
pub fn unless(cond: Cmd, then: Vec<Stmt>) -> Stmt {
    Stmt::If { conds: vec![cond], negate: true, then, otherwise: vec![] }
}

/// `if COND; then THEN; fi`
pub fn when(cond: Cmd, then: Vec<Stmt>) -> Stmt {
    Stmt::If { conds: vec![cond], negate: false, then, otherwise: vec![] }
}

/// Quotes a word for POSIX sh: left bare when it holds only characters the shell never treats specially,
/// single-quoted otherwise (a `'` inside becomes `'\''`). An empty word is `''`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_quoted(&mut out, s);
    out
}

/// [`quote`] onto the end of `out`, without a string of its own (scripts hold a million words at 1,000 hosts).
fn push_quoted(out: &mut String, s: &str) {
    // By bytes: every character outside ASCII is quoted anyway, and a byte test per character is what a
    // million words cost.
    let safe = |b: u8| {
        b.is_ascii_alphanumeric() || matches!(b, b'@' | b'%' | b'+' | b'=' | b':' | b',' | b'.' | b'/' | b'_' | b'-')
    };
    if !s.is_empty() && s.bytes().all(safe) {
        out.push_str(s);
        return;
    }
    out.push('\'');
    for (i, part) in s.split('\'').enumerate() {
        if i > 0 {
            out.push_str(r"'\''");
        }
        out.push_str(part);
    }
    out.push('\'');
}

/// Text made safe for one comment line: control characters (newlines first) shown as escapes.
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_one_line(&mut out, s);
    out
}

/// [`one_line`] onto the end of `out`.
fn push_one_line(out: &mut String, s: &str) {
    if !s.chars().any(char::is_control) {
        // Nearly always: every step's description passes here, a million of them in a 1,000-node plan.
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
}

/// A here-document delimiter that occurs in none of `body`'s lines.
fn delimiter(body: &str) -> String {
    let mut d = "VXMESH_EOF".to_string();
    let mut n = 0;
    while body.lines().any(|l| l == d) {
        n += 1;
        d = format!("VXMESH_EOF_{n}");
    }
    d
}

/// Renders statements as POSIX sh, indented by `indent` spaces: a slice, or statements that live in several places
/// (every step's commands) without copying them.
pub fn render<'a>(stmts: impl IntoIterator<Item = &'a Stmt>, indent: usize) -> String {
    let mut out = String::new();
    render_into(&mut out, stmts, indent);
    out
}

/// [`render`] onto the end of `out`: a script is written into one buffer, not assembled from a string per
/// statement.
pub fn render_into<'a>(out: &mut String, stmts: impl IntoIterator<Item = &'a Stmt>, indent: usize) {
    let mut batch: Option<(&'static str, Vec<&[Word]>)> = None;
    for s in stmts {
        if let Stmt::Batch { tool, args } = s {
            match &mut batch {
                Some((t, items)) if t == tool => items.push(args),
                _ => {
                    flush(out, batch.take(), indent);
                    batch = Some((tool, vec![args]));
                }
            }
            continue;
        }
        flush(out, batch.take(), indent);
        render_stmt(out, s, indent);
    }
    flush(out, batch, indent);
}

fn flush(out: &mut String, batch: Option<(&'static str, Vec<&[Word]>)>, indent: usize) {
    let Some((tool, items)) = batch else { return };
    let pad = " ".repeat(indent);
    out.push_str(&pad);
    out.push_str(&quote(tool));
    if items.len() == 1 {
        words(out, items[0]);
    } else {
        for args in items {
            let _ = write!(out, " \\\n{pad}  --");
            words(out, args);
        }
    }
    out.push('\n');
}

fn words(out: &mut String, ws: &[Word]) {
    for w in ws {
        out.push(' ');
        w.render(out);
    }
}

/// The command's line onto the end of `out` (no newline); its here-document's body and delimiter, if it has one,
/// to follow on the next lines.
fn cmd_line<'c>(out: &mut String, c: &'c Cmd) -> Option<(&'c str, String)> {
    for (i, w) in c.argv.iter().enumerate() {
        if i > 0 {
            out.push(' ');
            w.render(out);
            continue;
        }
        let start = out.len();
        w.render(out);
        // A bare first word with `=` would be an assignment, not a command.
        let word = &out[start..];
        if word.contains('=') && !word.starts_with('\'') {
            out.insert(start, '\'');
            out.push('\'');
        }
    }
    for stage in &c.pipe {
        out.push_str(" |");
        words(out, stage);
    }
    match c.output {
        Output::Shown => {}
        Output::NoStdout => out.push_str(" >/dev/null"),
        Output::Silent => out.push_str(" >/dev/null 2>&1"),
        Output::NoStderr => out.push_str(" 2>/dev/null"),
    }
    let heredoc = c.stdin.as_deref().map(|body| {
        let d = delimiter(body);
        let _ = write!(out, " <<'{d}'");
        (body, d)
    });
    if c.may_fail {
        out.push_str(" || true");
    }
    heredoc
}

/// A here-document after its command's line: the body, ended by a newline, then the delimiter's line.
fn push_heredoc(out: &mut String, (body, d): (&str, String)) {
    out.push_str(body);
    if !body.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&d);
    out.push('\n');
}

/// A command that takes no input (a condition, a repeated command) onto the end of `out`.
fn plain_line(out: &mut String, c: &Cmd, what: &str) {
    let heredoc = cmd_line(out, c);
    assert!(heredoc.is_none(), "{what} takes no input");
}

fn render_stmt(out: &mut String, s: &Stmt, indent: usize) {
    let pad = " ".repeat(indent);
    match s {
        Stmt::Run(c) => {
            out.push_str(&pad);
            let heredoc = cmd_line(out, c);
            out.push('\n');
            if let Some(h) = heredoc {
                push_heredoc(out, h);
            }
        }
        Stmt::Repeat(c) => {
            let _ = write!(out, "{pad}while ");
            plain_line(out, c, "a repeated command");
            out.push_str("; do :; done\n");
        }
        Stmt::If { conds, negate, then, otherwise } => {
            let _ = write!(out, "{pad}if ");
            let group = *negate && conds.len() != 1;
            match (negate, group) {
                (false, _) => {}
                (true, false) => out.push_str("! "),
                (true, true) => out.push_str("! { "),
            }
            for (i, c) in conds.iter().enumerate() {
                if i > 0 {
                    out.push_str(" && ");
                }
                plain_line(out, c, "a condition");
            }
            if group {
                out.push_str("; }");
            }
            out.push_str("; then\n");
            render_into(out, then, indent + 2);
            if then.is_empty() {
                let _ = writeln!(out, "{pad}  :");
            }
            if !otherwise.is_empty() {
                let _ = writeln!(out, "{pad}else");
                render_into(out, otherwise, indent + 2);
            }
            let _ = writeln!(out, "{pad}fi");
        }
        Stmt::Fail(message) => {
            let _ = writeln!(out, "{pad}echo {} >&2", quote(&format!("vxmesh: {message}")));
            let _ = writeln!(out, "{pad}exit 1");
        }
        Stmt::WriteFile { path, content, mode } => {
            let tmp = format!("{path}.vxmesh-new");
            if content.iter().any(|w| matches!(w, Word::Var(_) | Word::Join(_))) {
                // printf keeps every part one quoted word; the variables expand, nothing else does.
                let mut line = format!("{pad}printf '%s'");
                words(&mut line, content);
                let _ = writeln!(out, "{line} > {}", quote(&tmp));
            } else {
                let body: String = content
                    .iter()
                    .map(|w| match w {
                        Word::Lit(s) => s.to_string(),
                        Word::Name(n) => n.as_str().to_string(),
                        Word::Data(s) => s.clone(),
                        Word::Var(_) | Word::Join(_) => unreachable!("checked above"),
                    })
                    .collect();
                let d = delimiter(&body);
                let _ = writeln!(out, "{pad}cat > {} <<'{d}'", quote(&tmp));
                out.push_str(&body);
                if !body.is_empty() && !body.ends_with('\n') {
                    out.push('\n');
                }
                let _ = writeln!(out, "{d}");
            }
            if let Some(m) = mode {
                let _ = writeln!(out, "{pad}chmod {} {}", quote(m), quote(&tmp));
            }
            let _ = writeln!(out, "{pad}mv {} {}", quote(&tmp), quote(path));
        }
        Stmt::Comment(text) => {
            let _ = write!(out, "{pad}# ");
            push_one_line(out, text);
            out.push('\n');
        }
        Stmt::Static(text) => {
            for l in text.lines() {
                let _ = writeln!(out, "{pad}{l}");
            }
        }
        Stmt::Background(stmts) => {
            for st in stmts {
                let _ = writeln!(out, "{pad}(");
                render_into(out, std::slice::from_ref(st), indent + 2);
                let _ = writeln!(out, "{pad}) &");
            }
        }
        Stmt::Set { var, value } => {
            assert!(
                var.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                    && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{var:?} is no shell variable name"
            );
            let _ = write!(out, "{pad}{var}=");
            value.render(out);
            out.push('\n');
        }
        Stmt::Batch { .. } => unreachable!("batches are grouped by render"),
    }
}

/// The preamble that sets [`Var::Mtu`]: the MTU of the device holding `underlay_ip`, minus `overhead`. An IPv6
/// address is looked up among the IPv6 addresses, which `ip` prints in the same canonical form (RFC 5952) as
/// vxmesh. (Not `ip -6 route get`: for the host's own address that answers `dev lo`.)
pub fn learn_mtu(underlay_ip: impl Into<std::net::IpAddr>, node: &str, overhead: u16) -> String {
    use crate::model::inventory::{VXLAN_OVERHEAD, VXLAN_OVERHEAD_V6};
    let underlay_ip = underlay_ip.into();
    let missing = format!("vxmesh: no device on this host has {underlay_ip} (underlay_ip of {node})");
    format!(
        "# mtu: auto = the underlay device's MTU minus {overhead} bytes of {headers} headers.\n\
         UNDERLAY_IP={ip}\n\
         UNDERLAY_DEV=$(ip -o -{family} addr show | awk -v ip=\"$UNDERLAY_IP\" '{{split($4, a, \"/\"); if (a[1] == ip) {{print $2; exit}}}}')\n\
         [ -n \"$UNDERLAY_DEV\" ] || {{ echo {missing} >&2; exit 1; }}\n\
         {var}=$(( $(cat /sys/class/net/\"$UNDERLAY_DEV\"/mtu) - {overhead} ))\n",
        ip = quote(&underlay_ip.to_string()),
        missing = quote(&missing),
        var = Var::Mtu.name(),
        family = if underlay_ip.is_ipv6() { 6 } else { 4 },
        headers = if [VXLAN_OVERHEAD, VXLAN_OVERHEAD_V6].contains(&overhead) { "VXLAN" } else { "VXLAN and WireGuard" },
    )
}

/// Sets [`Var::WireguardMtu`] from [`Var::Mtu`] (which [`learn_mtu`] set first).
pub fn learn_wireguard_mtu(vxlan_overhead: u16) -> String {
    format!(
        "# WireGuard carries the VXLAN frames: its MTU is the overlay's plus {vxlan_overhead} bytes of VXLAN headers.\n{}=$(( ${} + {vxlan_overhead} ))\n",
        Var::WireguardMtu.name(),
        Var::Mtu.name()
    )
}

/// Every command line of `stmts` rendered on its own, for JSON output (batches stand alone).
pub fn lines(stmts: &[Stmt]) -> Vec<String> {
    let mut out = vec![];
    for s in stmts {
        out.push(render(std::slice::from_ref(s), 0).trim_end().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learn_mtu_looks_the_underlay_up_in_its_own_family() {
        let v4 = learn_mtu(std::net::Ipv4Addr::new(192, 0, 2, 1), "a", 50);
        assert!(v4.contains("UNDERLAY_IP=192.0.2.1\n") && v4.contains("ip -o -4 addr show"), "{v4}");
        assert!(v4.contains("minus 50 bytes of VXLAN headers"), "{v4}");
        let v6 = learn_mtu("fd78::12".parse::<std::net::IpAddr>().unwrap(), "a", 70);
        assert!(v6.contains("UNDERLAY_IP=fd78::12\n") && v6.contains("ip -o -6 addr show"), "{v6}");
        assert!(v6.contains("minus 70 bytes of VXLAN headers") && v6.contains("- 70 ))"), "{v6}");
        let sealed = learn_mtu("fd78::12".parse::<std::net::IpAddr>().unwrap(), "a", 130);
        assert!(sealed.contains("minus 130 bytes of VXLAN and WireGuard headers"), "{sealed}");
    }

    #[test]
    fn quoting_keeps_plain_words_bare_and_quotes_the_rest() {
        assert_eq!(quote("vx-node1"), "vx-node1");
        assert_eq!(quote("options:remote_ip=10.0.0.1"), "options:remote_ip=10.0.0.1");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("vx-zz;touch /tmp/x"), "'vx-zz;touch /tmp/x'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("$(id)`id`"), "'$(id)`id`'");
        assert_eq!(quote("~root"), "'~root'");
        assert_eq!(quote("*"), "'*'");
    }

    #[test]
    fn comments_never_end_early() {
        let s = render(&[Stmt::Comment("a\nrm -rf /\r\x1b[2J".into())], 0);
        assert_eq!(s.lines().count(), 1, "{s}");
        assert!(s.starts_with("# a\\nrm -rf /\\r\\u{1b}[2J"), "{s}");
    }

    #[test]
    fn neighbouring_batches_share_one_invocation() {
        let b = |a: &'static str| Stmt::Batch { tool: "ovs-vsctl", args: vec![Word::Lit(a)] };
        let s = render(&[b("x"), b("y"), Stmt::Run(cmd!["true"]), b("z")], 0);
        assert_eq!(s, "ovs-vsctl \\\n  -- x \\\n  -- y\ntrue\novs-vsctl z\n");
    }

    #[test]
    fn heredoc_delimiter_avoids_the_body() {
        let s = render(&[Stmt::Run(cmd!["cat"].stdin("VXMESH_EOF\n$(id)\n"))], 0);
        assert_eq!(s, "cat <<'VXMESH_EOF_1'\nVXMESH_EOF\n$(id)\nVXMESH_EOF_1\n");
    }

    #[test]
    fn a_set_variable_holds_its_value_as_data() {
        let s = render(&[Stmt::Set { var: "network", value: Word::Data("a b;$(id)'".into()) }], 0);
        assert_eq!(s, concat!(r"network='a b;$(id)'\'''", "\n"));
    }

    #[test]
    fn variables_expand_as_one_word() {
        let c = Cmd::new([Word::Lit("ip"), join([Word::Lit("mtu="), Word::Var(Var::Mtu)])]);
        assert_eq!(render(&[Stmt::Run(c)], 0), "ip mtu=\"$MTU\"\n");
    }
}
