//! What every docker attachment shares: the docker CLI, and a daemon that answers.

use super::core::{Need, need};
use crate::facts::HostFacts;

pub fn needs() -> Vec<Need> {
    vec![need("docker", "docker.io", "docker-ce (from docker's repository) or moby-engine")]
}

/// The facts script asks the daemon for its version: none means it does not answer.
pub fn preflight(facts: &HostFacts) -> Vec<String> {
    if facts.tools.get("docker").is_some_and(|t| t.version.is_empty()) {
        vec!["docker is installed but its daemon does not answer: start it (systemctl start docker)".into()]
    } else {
        vec![]
    }
}
