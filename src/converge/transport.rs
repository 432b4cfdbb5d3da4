//! How converge talks to a host: run a script, get what it printed and its status. SSH implements it for real
//! hosts; tests implement it with recorded host output.

use futures::future::BoxFuture;

use crate::error::HostError;

/// What a script printed, and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub code: u32,
}

pub trait Transport: Send + Sync {
    /// Runs `script` with `sh -s` (as root) on the host, the script on its standard input.
    fn run<'a>(&'a self, script: &'a str) -> BoxFuture<'a, Result<Output, HostError>>;
}
