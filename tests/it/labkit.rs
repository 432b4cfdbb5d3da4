//! Shared by the tests that need a lab: create one (destroyed when the test ends), reach its nodes over SSH.

use std::process::Command;
use std::sync::Mutex;
use std::time::Instant;

use vxmesh::lab::{self, LabState};

use crate::util::{TempDir, vxmesh};

/// Labs share the machine's bridge range and CPU: one at a time.
pub static SERIAL: Mutex<()> = Mutex::new(());

pub fn require_root() {
    assert!(
        lab::require_root().is_ok(),
        "the lab tests need root on Linux (they build network namespaces); run scripts/test.sh as root"
    );
}

/// Destroys the lab when the test ends, also when it fails halfway.
pub struct LabGuard(pub String);

impl Drop for LabGuard {
    fn drop(&mut self) {
        let _ = lab::destroy(&self.0);
    }
}

pub fn create(name: &str, extra: &[&str]) -> (LabGuard, LabState, f64) {
    let _ = lab::destroy(name);
    let dir = TempDir::new("lab");
    let guard = LabGuard(name.to_string());
    let t = Instant::now();
    let r = vxmesh(&dir.0, &[&["lab", "create", "--name", name][..], extra].concat());
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(r.code, 0, "{r}");
    (guard, lab::load(name).unwrap(), secs)
}

/// `ssh` to a lab node with strict host key checking against the lab's known_hosts (or another file).
pub fn ssh_with(lab: &LabState, ip: &str, known_hosts: &str, script: &str) -> std::process::Output {
    let key = lab.dir.join("id_ed25519");
    // A hung command (ssh, docker wait) fails the test instead of hanging CI.
    Command::new("timeout")
        .args(["--kill-after=5", "180", "ssh"])
        .args(["-i", &key.to_string_lossy()])
        .args(["-o", &format!("UserKnownHostsFile={known_hosts}"), "-o", "StrictHostKeyChecking=yes"])
        .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=3", "-o", "LogLevel=ERROR"])
        .arg(format!("root@{ip}"))
        .arg(script)
        .output()
        .unwrap()
}

pub fn ssh(lab: &LabState, node: &str, script: &str) -> String {
    let ip = lab.node(node).unwrap().ip.to_string();
    let out = ssh_with(lab, &ip, &lab.dir.join("known_hosts").to_string_lossy(), script);
    assert!(out.status.success(), "ssh {node} `{script}`: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
