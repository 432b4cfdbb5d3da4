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
                Some(p) => write!(f, "{}:{}:{}: {}", self.file.display(), p.line, p.column, d.message)?,
                None => write!(f, "{}: {}", self.file.display(), d.message)?,
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The inventory is not valid YAML, has unknown fields, or breaks a rule.
    #[error("{0}")]
    Inventory(Diagnostics),

    /// The lock file exists but cannot be used as it is.
    #[error("{file}: {message}", file = .file.display())]
    Lock { file: PathBuf, message: String },

    #[error("cannot {action} `{path}`: {source}", path = .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("no node named `{name}` in the inventory (nodes: {known})")]
    UnknownNode { name: String, known: String },

    /// The address plan cannot be made: the cluster has no room left.
    #[error("{0}")]
    Exhausted(String),

    /// A command that cannot be done as asked (e.g. adding a node that is already there).
    #[error("{0}")]
    Usage(String),

    /// A host-level refusal before anything changed (e.g. removing an unreachable node without --force).
    #[error("{0}")]
    Hosts(String),

    /// Another vxmesh command holds the inventory (with `--no-wait`).
    #[error("{0}")]
    Busy(String),

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
    /// The process exit code: 1 for bad usage or input, 2 when hosts (lab hosts included) failed.
    pub fn code(&self) -> i32 {
        match self {
            Error::Lab(_) | Error::Hosts(_) => 2,
            _ => 1,
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
