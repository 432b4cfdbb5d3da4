//! The library's one error type: structured fields, one user-facing message each, and an exit code.

use std::fmt;
use std::path::PathBuf;

/// Where in a file a problem is, 1-based like editors show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

/// One problem found in an input file, naming the place and the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub pos: Option<Pos>,
    pub message: String,
}

impl Diagnostic {
    pub fn at(pos: Option<Pos>, message: impl Into<String>) -> Self {
        Self { pos, message: message.into() }
    }
}

/// Every diagnostic of one file, printed one per line as `file:line:column: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics {
    pub file: PathBuf,
    pub items: Vec<Diagnostic>,
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.items.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match d.pos {
                Some(at) => write!(f, "{}:{}:{}: {}", p(&self.file), at.line, at.column, d.message)?,
                None => write!(f, "{}: {}", p(&self.file), d.message)?,
            }
        }
        Ok(())
    }
}

/// How many characters of a value a message quotes before it cuts it: a megabyte of host name helps no one.
pub const SHOWN_MAX: usize = 80;

/// Characters that could end a message line or drive a terminal: C0/C1 controls (newline, ESC, DEL, ...),
/// Unicode line separators and the bidirectional overrides that reorder what is displayed.
pub fn is_forbidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` as messages show it: forbidden characters escaped (`\n`, `\u{1b}`), long values cut.
pub fn shown(s: &str) -> String {
    escaped(s, SHOWN_MAX)
}

/// `s` with forbidden characters escaped, cut after `max` characters.
pub fn escaped(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if is_forbidden(c) {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// A value from the command line, a file or a host, as a message quotes it: control characters and line breaks
/// escaped, so no input can forge a line or drive the terminal.
fn q(s: impl AsRef<str>) -> String {
    shown(s.as_ref())
}

/// A path as a message quotes it: escaped as [`q`] does, but never cut.
fn p(path: &std::path::Path) -> String {
    escaped(&path.display().to_string(), usize::MAX)
}

/// What a newcomer without an inventory does next: the two ways to get one.
fn first_steps(action: &str, source: &std::io::Error) -> &'static str {
    if action == "read the inventory" && source.kind() == std::io::ErrorKind::NotFound {
        "; write one with `vxmesh init --host ADDRESS --host ADDRESS ...`, or build a local lab and its inventory with `vxmesh lab create` \
         (-i FILE or VXMESH_INVENTORY names another file)"
    } else {
        ""
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The inventory is not valid YAML, has unknown fields, or breaks a rule.
    #[error("{0}")]
    Inventory(Diagnostics),

    /// The lock file exists but cannot be used as it is.
    #[error("{}: {message}", p(file))]
    Lock { file: PathBuf, message: String },

    #[error("cannot {action} `{}`: {source}{}", p(path), first_steps(action, source))]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("no node named `{}` in the inventory (nodes: {known})", q(name))]
    UnknownNode { name: String, known: String },

    /// The address plan cannot be made: the cluster has no room left.
    #[error("{0}")]
    Exhausted(String),

    /// A command that cannot be done as asked, worded where it is found (`init`'s hosts).
    #[error("{0}")]
    Usage(String),

    /// `add-node` of a node the inventory already has.
    #[error("node `{}` is already in the inventory", q(name))]
    NodeExists { name: String },

    /// The inventory's text could not be edited so that it parses back as asked.
    #[error("could not {edit} `{}` in the inventory safely; {edit} it by hand", q(name))]
    EditUnsafe { name: String, edit: &'static str },

    /// A `--limit` pattern that reaches no node (a typo must not quietly reach none).
    #[error("--limit `{}` matches no node; the nodes are {known}", q(pattern))]
    LimitMatchesNone { pattern: String, known: String },

    /// A command that changes the mesh's membership, or takes it down, given `--limit`.
    #[error("{command} works on every host (each one's peers change); --limit is for plan, up, status, verify and ps")]
    WholeClusterOnly { command: &'static str },

    /// A WireGuard command on a cluster without encryption.
    #[error("{command}: cluster.encryption is `none`; there are no WireGuard keys to rotate")]
    NotEncrypted { command: &'static str },

    /// A command that asks first, run without a terminal and without `--yes`.
    #[error(
        "{command} asks before it removes anything, and stdin is not a terminal; pass --yes to go ahead without \
         asking. Nothing was done. (The question: {question})"
    )]
    NoTerminalToAsk { command: &'static str, question: String },

    /// The question was answered no.
    #[error("{command}: not confirmed; nothing was done")]
    NotConfirmed { command: &'static str },

    /// `init` without `--force` where a file already is.
    #[error("{} already exists; nothing was written (--force replaces it)", p(path))]
    Exists { path: PathBuf },

    /// `remove-node` of a node that cannot be reached, without `--force`.
    #[error(
        "{} cannot be reached ({reason}); nothing was changed. `vxmesh remove-node {} --force` removes it from the \
         mesh anyway (its own host then keeps its mesh until cleaned by hand)",
        q(name),
        q(name)
    )]
    RemoveUnreachable { name: String, reason: HostError },

    /// Another vxmesh command holds the inventory (with `--no-wait`).
    #[error("{}; nothing was done (without --no-wait, vxmesh waits for it)", self.without_advice())]
    Busy { inventory: PathBuf, guard: PathBuf },

    /// The local lab could not be built, changed or torn down.
    #[error("lab: {0}")]
    Lab(String),

    /// A node's pinned subnet is not a block the allocator may hand out (validation refuses such pins; this is
    /// what a caller that skipped it gets, not an exhaustion).
    #[error(
        "node `{node}` is pinned to `{subnet}`, which is not a usable /{node_prefix} block of cluster.cidr `{cidr}` \
         (outside it, or in switch_cidr or an excluded block)"
    )]
    PinnedSubnet { node: String, subnet: ipnet::Ipv4Net, cidr: ipnet::Ipv4Net, node_prefix: u8 },
}

impl Error {
    /// The process exit code: 1 for bad usage or input, 2 when hosts failed, 4 when the local lab failed.
    pub fn code(&self) -> i32 {
        match self {
            Error::RemoveUnreachable { .. } => 2,
            Error::Lab(_) => 4,
            _ => 1,
        }
    }

    /// What [`Error::Busy`] says without what to do about it (for the line printed while waiting).
    pub fn without_advice(&self) -> String {
        match self {
            Error::Busy { inventory, guard } => {
                format!("another vxmesh command is working on {} (it holds {})", p(inventory), p(guard))
            }
            other => other.to_string(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why one host could not be worked on. Each kind is decided where it happens, never read back from a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// No connection: the host did not answer, refused, or a jump host could not reach it.
    #[error("{0}")]
    Unreachable(String),
    /// The host answered but refused every credential offered.
    #[error("{0}")]
    Auth(String),
    /// The host's key is unknown or changed (never accepted silently).
    #[error("{0}")]
    HostKey(String),
    /// The host cannot take the mesh as it is; nothing was changed.
    #[error("{}", .0.join("; "))]
    Preflight(Vec<String>),
    /// The facts script failed, or its output could not be read.
    #[error("{0}")]
    Facts(String),
    /// A step of the apply script failed; the steps before it were applied.
    #[error("step {step} ({description}) failed with exit {code}: {stderr}")]
    StepFailed { step: String, description: String, code: u32, stderr: String },
    /// A script failed before its first step.
    #[error("the script failed before its first step (exit {code}): {stderr}")]
    ScriptFailed { code: u32, stderr: String },
    /// The connection broke while a script ran.
    #[error("{0}")]
    Connection(String),
    /// A verification step on the host failed (its container did not start, ...).
    #[error("{0}")]
    Verify(String),
    #[error("the command did not finish within {0}s")]
    Timeout(u64),
    #[error("interrupted (Ctrl-C) before this host was started")]
    Interrupted,
    /// The command will not change this host as it is (e.g. containers still on the network `down` removes).
    #[error("refused, nothing changed: {}", .0.join("; "))]
    Refused(Vec<String>),
}

impl HostError {
    /// A short word for tables and JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            HostError::Unreachable(_) => "unreachable",
            HostError::Auth(_) => "auth",
            HostError::HostKey(_) => "host-key",
            HostError::Preflight(_) => "preflight",
            HostError::Facts(_) => "facts",
            HostError::StepFailed { .. } => "step-failed",
            HostError::ScriptFailed { .. } => "script-failed",
            HostError::Connection(_) => "connection",
            HostError::Verify(_) => "verify",
            HostError::Timeout(_) => "timeout",
            HostError::Interrupted => "interrupted",
            HostError::Refused(_) => "refused",
        }
    }

    /// Whether the host was never worked on (so a forced removal may skip it).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, HostError::Unreachable(_) | HostError::Auth(_) | HostError::HostKey(_))
    }
}
