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

/// Starts a numbered-line TCP stream (4,000 lines over ~8 s) from a container on `from` to one on `to`.
pub fn start_stream(lab: &LabState, from: &str, to: &str) {
    let rx_ip = ssh(
        lab,
        to,
        // nc's stdin is a fifo held open, so it ends when the sender closes, not when its own stdin does.
        "docker run -d --name rx --network vxmesh busybox sh -c 'mkfifo /tmp/f; sleep 600 > /tmp/f & nc -l -p 9000 < /tmp/f > /tmp/recv; echo $? > /tmp/rc' >/dev/null; \
         docker inspect -f '{{.NetworkSettings.Networks.vxmesh.IPAddress}}' rx",
    );
    let rx_ip = rx_ip.trim();
    ssh(
        lab,
        from,
        &format!(
            "docker run -d --name tx --network vxmesh busybox sh -c 'i=0; while [ $i -lt 4000 ]; do echo $i; i=$((i+1)); usleep 2000; done | nc {rx_ip} 9000; echo $? > /tmp/rc' >/dev/null"
        ),
    );
    std::thread::sleep(std::time::Duration::from_millis(800));
}

/// Waits for the stream to end on its own: every line arrived, in order, and both ends exited cleanly (no reset).
pub fn assert_stream_intact(lab: &LabState, from: &str, to: &str) {
    ssh(lab, from, "docker wait tx >/dev/null");
    ssh(lab, to, "docker wait rx >/dev/null");
    let got = ssh(lab, to, "docker cp rx:/tmp/recv - | tar -xO");
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines.len(), 4000, "no data lost");
    assert!(lines.iter().enumerate().all(|(i, l)| *l == i.to_string()), "in order");
    assert_eq!(ssh(lab, from, "docker cp tx:/tmp/rc - | tar -xO").trim(), "0", "the sender saw no reset");
    assert_eq!(ssh(lab, to, "docker cp rx:/tmp/rc - | tar -xO").trim(), "0", "the receiver saw no reset");
    ssh(lab, from, "docker rm -f tx >/dev/null");
    ssh(lab, to, "docker rm -f rx >/dev/null");
}
