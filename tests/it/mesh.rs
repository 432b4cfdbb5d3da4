//! `up`, `verify`, `status`, `down` against a 3-node lab: real sshd, OVS, docker and busybox containers.

use std::path::Path;

use serde_json::Value;
use vxmesh::lab::LabState;

use crate::labkit::{Lab, assert_stream_intact, ssh, start_stream};
use crate::util::{Run, vxmesh};

fn run(dir: &Path, args: &[&str]) -> Run {
    vxmesh(dir, args)
}

fn json(r: &Run) -> Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{r}"))
}

/// What vxmesh leaves on a node, from the node's own tools.
fn mesh_state(lab: &LabState, node: &str) -> String {
    ssh(
        lab,
        node,
        "ovs-vsctl br-exists sw0 && echo bridge; ip -o link show | grep -o 'vxm-[a-z0-9]*' | sort -u; \
         docker network ls --format '{{.Name}}' | grep -x vxmesh; iptables-save | grep -c VXMESH | sed 's/^/iptables:/'; \
         nft list tables 2>/dev/null | grep vxmesh; true",
    )
}

#[test]
fn up_verify_status_down_on_a_real_lab() {
    let Some(lab) = Lab::new("m1").nodes(3).create() else { return };
    let (dir, inv) = (lab.work(), lab.inv());

    // A bad inventory touches no host.
    let bad = dir.join("bad/vxmesh.yaml");
    std::fs::create_dir_all(bad.parent().unwrap()).unwrap();
    lab.inventory().cluster("cidr", "172.16.0.0/33").write(&bad);
    let r = run(dir, &["up", "-i", bad.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{r}");
    assert!(!mesh_state(&lab, "node1").contains("bridge"), "nothing was built");
    std::fs::remove_file(&bad).unwrap();

    // Cold up builds and verifies every ordered pair.
    let r = run(dir, &["up", "-i", inv, "--json"]);
    assert_eq!(r.code, 0, "{r}");
    let v = json(&r);
    assert_eq!(v["ok"], true, "{r}");
    let hosts = v["hosts"].as_array().unwrap();
    assert!(hosts.iter().all(|h| h["status"] == "changed"), "{r}");
    let pairs = v["verify"]["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 6);
    for p in pairs {
        assert_eq!(p["ok"], true, "{p}");
        assert_eq!(p["seen_source"], p["client"], "no NAT between containers: {p}");
        assert_eq!(p["full_size"], true, "a DF packet of the overlay MTU gets through: {p}");
        assert_eq!(p["oversize_refused"], true, "one byte more is refused, not lost: {p}");
    }
    for h in v["verify"]["hosts"].as_array().unwrap() {
        assert_eq!(h["mtu"], 1450, "underlay 1500 - 50: {h}");
        assert_eq!(h["outside"], true, "the outside world through NAT: {h}");
        assert_eq!(h["unreachable_switches"].as_array().unwrap().len(), 0, "{h}");
    }

    // Again: nothing to do.
    let r = run(dir, &["up", "-i", inv, "--no-verify"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("3 hosts: 0 changed, 3 ok, 0 failed"), "{r}");

    // A port name planted in OVSDB (reachable over TCP on many hosts) is data: `up` removes the stray port
    // and runs nothing of it.
    let marker = "/tmp/vxmesh-pwned-m1";
    let _ = std::fs::remove_file(marker);
    let peer = &lab.nodes[1].ip;
    ssh(
        &lab,
        "node1",
        &format!(
            "rm -f {marker}; ovs-vsctl add-port sw0 'vx-zz;touch {marker}' -- set Interface 'vx-zz;touch {marker}' type=vxlan options:remote_ip={peer}"
        ),
    );
    let r = run(dir, &["up", "-i", inv, "--no-verify"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains(&format!("remove tunnel vx-zz;touch {marker}")), "{r}");
    assert_eq!(ssh(&lab, "node1", &format!("test -e {marker} && echo RAN || echo clean")).trim(), "clean");
    assert!(!std::path::Path::new(marker).exists());
    assert!(!ssh(&lab, "node1", "ovs-vsctl list-ports sw0").contains("vx-zz"), "the stray port is gone");

    // Status: clean, every tunnel's BFD up (sessions at 1 s intervals take a few seconds to come up).
    let mut r = run(dir, &["status", "-i", inv, "--json"]);
    for _ in 0..10 {
        if r.code == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
        r = run(dir, &["status", "-i", inv, "--json"]);
    }
    assert_eq!(r.code, 0, "{r}");
    let v = json(&r);
    assert_eq!(v["ok"], true, "{r}");
    for h in v["hosts"].as_array().unwrap() {
        assert!(h["tunnels"].as_array().unwrap().iter().all(|t| t["state"] == "up"), "{h}");
    }

    // Throughput over the mesh next to the underlay: full-size segments (MSS = 1450 - 40 - 12), no fragments.
    let r = run(dir, &["verify", "-i", inv, "--bandwidth", "--json"]);
    assert_eq!(r.code, 0, "{r}");
    let v = json(&r);
    let rows = v["bandwidth"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "a ring of three pairs: {r}");
    for b in rows {
        assert!(b["overlay_mbps"].as_f64().unwrap() > 10.0 && b["underlay_mbps"].as_f64().unwrap() > 10.0, "{b}");
        assert_eq!(b["mss"], 1398, "{b}");
        assert_eq!(b["fragments"], 0, "{b}");
    }

    // A plain verify on its own, and the matrix a person reads.
    let r = run(dir, &["verify", "-i", inv]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("6/6 pairs ok") && r.stdout.contains("mesh OK"), "{r}");
    assert_eq!(
        ssh(&lab, "node1", "docker ps -aq --filter label=vxmesh.verify | wc -l").trim(),
        "0",
        "verify leaves no containers"
    );

    // Down removes all of it; docker and OVS keep running; plan shows the full build again.
    let r = run(dir, &["down", "--yes", "-i", inv]);
    assert_eq!(r.code, 0, "{r}");
    for n in ["node1", "node2", "node3"] {
        assert_eq!(mesh_state(&lab, n).trim(), "iptables:0", "{n} after down");
        assert!(ssh(&lab, n, "ovs-vsctl br-exists br-phy && docker info >/dev/null && echo alive").contains("alive"));
    }
    let r = run(dir, &["plan", "-i", inv, "--json"]);
    assert_eq!(r.code, 0, "{r}");
    let v = json(&r);
    assert!(v["hosts"].as_array().unwrap().iter().all(|h| h["changed"].as_array().unwrap().len() >= 17), "{r}");
    // Per node, the same shape as `plan --offline --json`: what it should have, each step with its commands.
    let offline = json(&run(dir, &["plan", "-i", inv, "--offline", "--json"]));
    for (online, offline) in v["nodes"].as_array().unwrap().iter().zip(offline["nodes"].as_array().unwrap()) {
        assert_eq!(online["desired"]["name"], offline["desired"]["name"]);
        let steps = online["steps"].as_array().unwrap();
        assert!(
            steps.len() >= 17 && steps.iter().all(|s| s["commands"].as_array().is_some_and(|c| !c.is_empty())),
            "{r}"
        );
        let keys = |s: &serde_json::Value| s.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        let same = steps
            .iter()
            .filter_map(|s| {
                let o = offline["steps"].as_array().unwrap().iter().find(|o| o["description"] == s["description"])?;
                assert_eq!(keys(s), keys(o), "the same fields per step: {s}");
                Some(())
            })
            .count();
        assert!(same >= 10, "most steps of a torn-down host are its from-scratch build: {same}");
    }
}

#[test]
fn host_keys_are_always_checked() {
    let Some(lab) = Lab::new("m2")
        .nodes(2)
        .light()
        .inventory(|inv| {
            let known = inv.work().join("known_hosts");
            inv.ssh("known_hosts", Some(&known.display().to_string()))
        })
        .create()
    else {
        return;
    };
    let (dir, inv) = (lab.work(), lab.inv());
    let known = dir.join("known_hosts");

    // Unknown host: refused, with its fingerprint, and nothing learnt.
    let r = run(dir, &["status", "-i", inv]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stdout.contains("is not in") && r.stdout.contains("SHA256:"), "{r}");
    assert!(!known.exists(), "no key learnt without --accept-new-host-keys");

    // --accept-new-host-keys learns them, then they are checked like any other.
    let r = run(dir, &["status", "-i", inv, "--accept-new-host-keys"]);
    assert!(r.stdout.contains("yes"), "{r}");
    let learnt = std::fs::read_to_string(&known).unwrap();
    let real = std::fs::read_to_string(lab.dir.join("known_hosts")).unwrap();
    for line in real.lines() {
        assert!(learnt.contains(line.split_whitespace().nth(2).unwrap()), "learnt the real key of {line}");
    }

    // A changed key is refused even with --accept-new-host-keys, naming the known_hosts line.
    let lines: Vec<&str> = real.lines().collect();
    let key2 = lines[1].split_whitespace().nth(2).unwrap();
    let forged = format!("# comment\n{} ssh-ed25519 {key2}\n{}\n", lab.nodes[0].ip, lines[1]);
    std::fs::write(&known, forged).unwrap();
    let r = run(dir, &["status", "-i", inv, "--accept-new-host-keys"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stdout.contains("HAS CHANGED") && r.stdout.contains(&format!("{}:2.", known.display())), "{r}");
}

#[test]
fn a_stopped_host_fails_alone_and_a_later_up_completes_it() {
    let Some(lab) = Lab::new("m3").nodes(3).create() else { return };
    let (dir, inv) = (lab.work(), lab.inv());
    let r = vxmesh(dir, &["lab", "node", "stop", "node3", "--name", "m3"]);
    assert_eq!(r.code, 0, "{r}");

    let r = run(dir, &["up", "-i", inv, "--connect-timeout", "3", "--json"]);
    assert_eq!(r.code, 2, "{r}");
    let v = json(&r);
    let status = |n: &str| v["hosts"].as_array().unwrap().iter().find(|h| h["node"] == n).unwrap()["status"].clone();
    assert_eq!(status("node1"), "changed");
    assert_eq!(status("node2"), "changed");
    assert_eq!(status("node3"), "failed");
    assert!(mesh_state(&lab, "node1").contains("bridge"));

    let r = vxmesh(dir, &["lab", "node", "start", "node3", "--name", "m3"]);
    assert_eq!(r.code, 0, "{r}");
    let r = run(dir, &["up", "-i", inv, "--json"]);
    assert_eq!(r.code, 0, "{r}");
    let v = json(&r);
    let status = |n: &str| v["hosts"].as_array().unwrap().iter().find(|h| h["node"] == n).unwrap()["status"].clone();
    assert_eq!(status("node1"), "ok", "{r}");
    assert_eq!(status("node3"), "changed", "{r}");
    assert_eq!(v["verify"]["ok"], true, "{r}");
}

/// A node reached through a jump host named in ~/.ssh/config, authenticated by the ssh-agent (no identity_file).
#[test]
fn jump_host_from_ssh_config_and_agent_auth() {
    // No identity file: the key comes from the agent. node2 is known by its ~/.ssh/config name only.
    let Some(lab) = Lab::new("m4")
        .nodes(2)
        .light()
        .inventory(|inv| {
            let n2 = inv.lab().nodes[1].ip;
            inv.ssh("identity_file", None).node("node2", &format!("{{name: node2, host: behind, underlay_ip: {n2}}}"))
        })
        .create()
    else {
        return;
    };
    // The scratch directory is HOME too.
    let home = lab.work();
    let ssh_dir = home.join(".ssh");
    std::fs::create_dir_all(&ssh_dir).unwrap();
    let (n1, n2) = (lab.nodes[0].ip, lab.nodes[1].ip);
    std::fs::write(ssh_dir.join("config"), format!("Host behind\n  HostName {n2}\n  ProxyJump root@{n1}\n")).unwrap();
    let inv = lab.inv();

    let sock = home.join("agent.sock");
    let agent = std::process::Command::new("ssh-agent").args(["-D", "-a"]).arg(&sock).spawn().unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _agent = Kill(agent);
    for _ in 0..50 {
        if sock.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let add = std::process::Command::new("ssh-add")
        .arg(lab.dir.join("id_ed25519"))
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .unwrap();
    assert!(add.status.success(), "{}", String::from_utf8_lossy(&add.stderr));

    let out = std::process::Command::new("timeout")
        .args(["--kill-after=5", "300", env!("CARGO_BIN_EXE_vxmesh")])
        .args(["status", "-i"])
        .arg(inv)
        .env("HOME", home)
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.lines().any(|l| l.starts_with("node2") && l.contains(" yes ")),
        "node2 reached through node1:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.lines().any(|l| l.starts_with("node1") && l.contains(" yes ")), "{stdout}");

    // Without the agent there is no key: refused, saying so.
    let out = std::process::Command::new("timeout")
        .args(["--kill-after=5", "300", env!("CARGO_BIN_EXE_vxmesh")])
        .args(["status", "-i"])
        .arg(inv)
        .env("HOME", home)
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("refused every key") && stdout.contains("no ssh-agent"), "{stdout}");
}

/// What must not change on a host when another node comes or goes: docker, the bridge, the other ports, the veth.
fn identity(lab: &LabState, node: &str, other_peer: &str) -> String {
    ssh(
        lab,
        node,
        &format!(
            "pgrep -x dockerd; ovs-vsctl get bridge sw0 _uuid; ovs-vsctl get port vx-{other_peer} _uuid; \
             ovs-vsctl get interface vx-{other_peer} _uuid; ip -o link show vxm-sw0 | cut -d: -f1; ip -o link show vxm-dkr | cut -d: -f1"
        ),
    )
}

fn vxlan_rule_sources(lab: &LabState, node: &str) -> Vec<String> {
    let mut v: Vec<String> = ssh(lab, node, "iptables -S VXMESH-VXLAN")
        .lines()
        .filter_map(|l| {
            l.split_whitespace().skip_while(|w| *w != "-s").nth(1).map(|s| s.trim_end_matches("/32").to_string())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn add_and_remove_nodes_under_live_traffic() {
    // Start with node1, node2 and node4; node3 joins later, node4 leaves.
    let Some(lab) = Lab::new("m5").nodes(4).inventory(|inv| inv.without(&["node3"])).create() else { return };
    let ip = |n: usize| lab.nodes[n - 1].ip.to_string();
    let (dir, inv) = (lab.work(), lab.inv());
    let r = run(dir, &["up", "-i", inv, "--no-verify"]);
    assert_eq!(r.code, 0, "{r}");
    let before = identity(&lab, "node1", "node2");

    // A TCP stream from a container on node1 to one on node2, numbered lines, ~8 s long.
    start_stream(&lab, "node1", "node2");

    let r = run(dir, &["add-node", "node3", "--host", &ip(3), "-i", inv]);
    assert_eq!(r.code, 0, "{r}");
    assert!(
        r.stdout.lines().any(|l| l.split_whitespace().take(3).eq(["node1", "changed", "4"]))
            && r.stdout.contains("add tunnel vx-node3"),
        "one tunnel, one route, the firewall and the boot unit (it holds the firewall's peers) on node1:\n{r}"
    );
    assert!(
        std::fs::read_to_string(dir.join("vxmesh.yaml"))
            .unwrap()
            .contains(&format!("  - {{name: node3, host: {}}}", ip(3)))
    );
    for n in ["node1", "node2", "node3", "node4"] {
        let mut peers: Vec<String> = (1..=4).map(ip).filter(|p| *p != lab.node(n).unwrap().ip.to_string()).collect();
        peers.sort();
        assert_eq!(vxlan_rule_sources(&lab, n), peers, "{n} lets VXLAN in from exactly its peers");
    }

    let r = run(dir, &["remove-node", "node4", "--yes", "-i", inv]);
    assert_eq!(r.code, 0, "{r}");
    assert!(!std::fs::read_to_string(dir.join("vxmesh.yaml")).unwrap().contains("node4"));
    assert!(!std::fs::read_to_string(dir.join("vxmesh.lock")).unwrap().contains("node4"), "its subnet is freed");
    assert!(!mesh_state(&lab, "node4").contains("bridge"), "node4 was torn down");
    for n in ["node1", "node2", "node3"] {
        let mut peers: Vec<String> = (1..=3).map(ip).filter(|p| *p != lab.node(n).unwrap().ip.to_string()).collect();
        peers.sort();
        assert_eq!(vxlan_rule_sources(&lab, n), peers, "{n} after node4 left");
        assert!(!ssh(&lab, n, "ovs-vsctl list-ports sw0").contains("vx-node4"));
    }
    assert_eq!(
        identity(&lab, "node1", "node2"),
        before,
        "docker, sw0, the tunnel to node2 and the veth on node1 are untouched"
    );

    // The stream ends on its own: every line arrived, in order, and both ends exited cleanly (no reset).
    assert_stream_intact(&lab, "node1", "node2");
}

#[test]
fn drift_is_reported_and_repaired_and_reboots_restore_without_vxmesh() {
    let Some(lab) = Lab::new("m6").nodes(3).create() else { return };
    let (dir, inv) = (lab.work(), lab.inv());
    let r = run(dir, &["up", "-i", inv, "--no-verify"]);
    assert_eq!(r.code, 0, "{r}");

    // Hand-made drift on node1: a tunnel deleted, the NAT chain emptied.
    ssh(&lab, "node1", "ovs-vsctl del-port sw0 vx-node2; iptables -t nat -F VXMESH-NAT");
    let r = run(dir, &["status", "-i", inv, "--json"]);
    assert_eq!(r.code, 3, "drift is not clean: {r}");
    let v = json(&r);
    let node1 = v["hosts"].as_array().unwrap().iter().find(|h| h["node"] == "node1").unwrap().clone();
    let drift: Vec<String> =
        node1["drift"].as_array().unwrap().iter().map(|d| d.as_str().unwrap().to_string()).collect();
    assert_eq!(drift.len(), 2, "{drift:?}");
    assert!(drift[0].contains("add tunnel vx-node2") && drift[1].contains("VXMESH-NAT"), "{drift:?}");
    assert!(node1["tunnels"].as_array().unwrap().iter().any(|t| t["peer"] == "node2" && t["present"] == false));
    let r = run(dir, &["up", "-i", inv, "--no-verify", "--json"]);
    assert_eq!(r.code, 0, "{r}");
    let v = json(&r);
    for h in v["hosts"].as_array().unwrap() {
        let want = if h["node"] == "node1" { 2 } else { 0 };
        assert_eq!(h["changed"].as_array().unwrap().len(), want, "up restores only what drifted: {h}");
    }

    // A reboot forgets addresses, veths, sysctls and rules; the boot unit puts them back, no vxmesh involved.
    let r = vxmesh(dir, &["lab", "node", "reboot", "node2", "--name", "m6"]);
    assert_eq!(r.code, 0, "{r}");
    let r = run(dir, &["verify", "-i", inv]);
    assert_eq!(r.code, 0, "verify passes after the reboot: {r}");
    let r = run(dir, &["plan", "-i", inv, "--json"]);
    let v = json(&r);
    assert!(
        v["hosts"].as_array().unwrap().iter().all(|h| h["changed"].as_array().unwrap().is_empty()),
        "nothing left for up: {r}"
    );

    // down removes the boot unit too.
    let r = run(dir, &["down", "--yes", "-i", inv]);
    assert_eq!(r.code, 0, "{r}");
    for n in ["node1", "node2", "node3"] {
        let left = ssh(
            &lab,
            n,
            "ls /etc/vxmesh /etc/systemd/system/vxmesh.service /etc/systemd/system/multi-user.target.wants/vxmesh.service 2>&1 | grep -vc 'No such file'; true",
        );
        assert_eq!(left.trim(), "0", "{n} keeps no boot files");
    }
}

#[test]
fn an_interrupted_up_converges_when_run_again() {
    let Some(lab) = Lab::new("m7").nodes(3).create() else { return };
    let (dir, inv) = (lab.work(), lab.inv());
    let start_up = || {
        // Spawned directly: the test signals vxmesh itself (and then waits for it).
        std::process::Command::new(env!("CARGO_BIN_EXE_vxmesh"))
            .args(["up", "--no-verify", "-i", inv])
            .current_dir(dir)
            .env("XDG_STATE_HOME", dir.join(".state"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    // Kill points as fractions of one uninterrupted cold up on this machine: early, middle and late in the run.
    let started = std::time::Instant::now();
    let r = run(dir, &["up", "--no-verify", "-i", inv]);
    assert_eq!(r.code, 0, "{r}");
    let cold_ms = started.elapsed().as_millis() as u64;
    let at = |percent: u64| cold_ms * percent / 100;
    let cases: [(&str, u64); 5] =
        [("kill", at(15)), ("kill", at(40)), ("kill", at(55)), ("int", at(40)), ("drop-ssh", at(30))];
    for (how, after_ms) in cases {
        let r = run(dir, &["down", "--yes", "-i", inv]);
        assert_eq!(r.code, 0, "{r}");
        let mut child = start_up();
        std::thread::sleep(std::time::Duration::from_millis(after_ms));
        assert!(
            child.try_wait().unwrap().is_none(),
            "`{how}` at {after_ms} ms must hit a running up, not a finished one"
        );
        match how {
            "kill" => child.kill().unwrap(),
            "int" => {
                let _ = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status();
            }
            _ => {
                // Cut node2's SSH sessions from inside the node: the connection drops mid-run.
                let _ = vxmesh::lab::node_exec(&lab, "node2", "pkill -f 'sshd: root' || true");
            }
        }
        let status = child.wait().unwrap();
        if how == "int" {
            assert!(matches!(status.code(), Some(0) | Some(130)), "Ctrl-C ends cleanly: {status:?}");
        }
        let r = run(dir, &["up", "-i", inv]);
        assert_eq!(r.code, 0, "after `{how}` at {after_ms} ms, up converges:\n{r}");
        assert!(r.stdout.contains("mesh OK"), "{r}");
        let r = run(dir, &["up", "-i", inv, "--no-verify"]);
        assert!(r.stdout.contains("0 changed, 3 ok"), "and then has nothing left to do:\n{r}");
    }
}

/// A VXLAN frame forged by a host that is not a peer reaches no container; the same frame from a peer's
/// address does (so the check can fail). With the userspace datapath the host's netfilter never sees tunnel
/// packets: what stops the forgery here is OVS's `remote_ip` on every tunnel port (docs/security.md).
#[test]
fn forged_vxlan_from_a_non_peer_reaches_no_container() {
    let Some(lab) = Lab::new("m8").nodes(2).create() else { return };
    let (dir, inv) = (lab.work(), lab.inv());
    let r = run(dir, &["up", "-i", inv, "--no-verify"]);
    assert_eq!(r.code, 0, "{r}");
    let (ip, mac) = start_sink(&lab, "node1", "-s 172.31.254.1");
    let (ip, mac) = (ip.as_str(), mac.as_str());
    let arrived = || sink_arrivals(&lab, "node1");
    let send = |netns: &str, source: &str| {
        send_vxlan_to(netns, source, &lab.nodes[0].ip.to_string(), mac, ip);
        std::thread::sleep(std::time::Duration::from_millis(500));
        arrived()
    };
    // Several rounds each: the peer's first frames can race the tunnel's readiness right after `up`.
    for _ in 0..3 {
        assert_eq!(
            send(&lab.outside.netns, &lab.outside.ip.to_string()),
            0,
            "a non-peer injected frames into a container"
        );
    }
    let mut from_peer = 0;
    for _ in 0..10 {
        from_peer = send(&lab.nodes[1].netns, &lab.nodes[1].ip.to_string());
        if from_peer >= 3 {
            break;
        }
    }
    assert!(from_peer >= 3, "the same frames from a peer's address arrive (the check is real): {from_peer}");
    assert_eq!(send(&lab.outside.netns, &lab.outside.ip.to_string()), from_peer, "and the outsider's still do not");

    // The host firewall's own drop rule counts the forgeries that reach the kernel, as every tunnel packet does
    // with OVS's kernel datapath: the outsider sends to eth0's MAC now; the peer's packets end in their tunnel
    // and never reach it. send_vxlan.py sends 3 frames a call.
    to_kernel_side(&lab, &lab.outside.netns, 0);
    for _ in 0..4 {
        assert_eq!(send(&lab.outside.netns, &lab.outside.ip.to_string()), from_peer, "no forgery reaches a container");
    }
    let counters = ssh(&lab, "node1", "iptables -w -L VXMESH-VXLAN -v -x -n");
    let dropped: u64 = counters
        .lines()
        .filter(|l| l.contains("DROP"))
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(dropped, 12, "every forged frame and none of the peer's hit the DROP rule:\n{counters}");
}

/// A container `sink` on `node` that counts the UDP packets to its port 9999 (matching `filter`, iptables words)
/// with an iptables rule in its network namespace, as busybox's nc has no UDP. Its address and MAC.
pub(crate) fn start_sink(lab: &LabState, node: &str, filter: &str) -> (String, String) {
    let target = ssh(
        lab,
        node,
        &format!(
            "docker run -d --name sink --network vxmesh busybox sleep 600 >/dev/null; pid=$(docker inspect -f '{{{{.State.Pid}}}}' sink); \
             nsenter -t $pid -n iptables -w -A INPUT {filter} -p udp --dport 9999 -j ACCEPT; \
             docker inspect -f '{{{{.NetworkSettings.Networks.vxmesh.IPAddress}}}} {{{{.NetworkSettings.Networks.vxmesh.MacAddress}}}}' sink"
        ),
    );
    let (ip, mac) = target.trim().split_once(' ').unwrap();
    (ip.to_string(), mac.to_string())
}

/// The packets [`start_sink`]'s container has counted so far.
pub(crate) fn sink_arrivals(lab: &LabState, node: &str) -> u64 {
    ssh(lab, node, "nsenter -t $(docker inspect -f '{{.State.Pid}}' sink) -n iptables -w -L INPUT -v -x -n | awk '/dpt:9999/ {print $1}'")
        .trim()
        .parse()
        .unwrap()
}

/// Sends VXLAN frames (3: see send_vxlan.py) from namespace `netns` with source address `source` to `to`:4789.
/// Makes `netns` send to node `n`'s underlay address at the MAC of that node's eth0, so its frames meet the node's
/// kernel and firewall, as every tunnel packet does on a host with OVS's kernel datapath. In the lab OVS's userspace
/// datapath owns br-phy and itself drops tunnel packets that match no tunnel, and eth0 answers no ARP
/// (docs/lab.md): without this the host firewall would never see a packet to count.
fn to_kernel_side(lab: &LabState, netns: &str, n: usize) {
    let (ip, mac) = (lab.nodes[n].ip.to_string(), ssh(lab, &lab.nodes[n].name, "cat /sys/class/net/eth0/address"));
    let script = format!(
        "dev=$(ip -o route get {ip} | sed -n 's/.* dev \\([^ ]*\\).*/\\1/p') && ip neigh replace {ip} lladdr {mac} dev \"$dev\" nud permanent",
        mac = mac.trim()
    );
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net=/run/netns/{netns}"))
        .args(["sh", "-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
}

fn send_vxlan(netns: &str, source: &str, to: &str) {
    send_vxlan_to(netns, source, to, "02:00:00:00:00:01", "172.31.0.9");
}

/// The same, for a container with MAC `mac` and address `ip` behind `to` (UDP to its port 9999).
pub(crate) fn send_vxlan_to(netns: &str, source: &str, to: &str, mac: &str, ip: &str) {
    let tool = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/send_vxlan.py");
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net=/run/netns/{netns}"))
        .args(["/usr/bin/python3", tool.to_str().unwrap(), to, "4789", "42", mac, ip, "9999", "x", source])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// docker0 mode: bip merged into daemon.json (the admin's keys kept), docker restarted only with live-restore,
/// a clear report whenever a restart is still needed, and the mesh working on docker's default network.
#[test]
fn docker0_mode_merges_daemon_json_and_restarts_only_with_live_restore() {
    let Some(lab) = Lab::new("m9").nodes(2).inventory(|inv| inv.cluster("docker", "{mode: docker0}")).create() else {
        return;
    };
    let (dir, inv) = (lab.work(), lab.inv());
    // node1: live-restore on, a container running on docker0. node2: an admin key, no live-restore.
    ssh(
        &lab,
        "node1",
        r#"echo '{"live-restore": true, "log-level": "warn"}' > /etc/docker/daemon.json && systemctl restart docker && docker run -d --name keeper busybox sleep 600 >/dev/null"#,
    );
    ssh(&lab, "node2", r#"echo '{"log-level": "warn"}' > /etc/docker/daemon.json"#);

    let r = run(dir, &["up", "-i", inv, "--json"]);
    assert_eq!(r.code, 2, "{r}");
    let v = json(&r);
    let host = |n: &str| v["hosts"].as_array().unwrap().iter().find(|h| h["node"] == n).unwrap().clone();
    assert!(host("node2")["error"].as_str().unwrap().contains("restart docker to apply it"), "{r}");
    assert!(host("node1")["error"].as_str().unwrap().contains("Stop the containers on docker0"), "{r}");
    let json1: Value = serde_json::from_str(&ssh(&lab, "node1", "cat /etc/docker/daemon.json")).unwrap();
    assert_eq!(json1["live-restore"], true, "the admin's keys are kept");
    assert_eq!(json1["log-level"], "warn");
    assert_eq!(json1["bip"], "172.16.0.1/16");
    assert!(
        json1["default-address-pools"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| !p["base"].as_str().unwrap().starts_with("172.")),
        "{json1}"
    );
    assert!(
        ssh(&lab, "node1", "docker ps --format '{{.Names}}'").contains("keeper"),
        "live-restore kept the container running"
    );

    // The admin frees docker0 on node1 and restarts docker on node2: now up completes and the mesh works. The
    // nodes' systemd keeps docker.service's start limit (3 starts a minute), which boot, the test's and vxmesh's
    // restarts have used up: `reset-failed` first, as systemd itself advises.
    ssh(&lab, "node1", "docker rm -f keeper >/dev/null && systemctl reset-failed docker && systemctl restart docker");
    ssh(&lab, "node2", "systemctl reset-failed docker && systemctl restart docker");
    let r = run(dir, &["up", "-i", inv]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("2/2 pairs ok") && r.stdout.contains("mesh OK"), "{r}");
    // docker0 mode excludes nothing by default (stop 18): node2's subnet is the lowest free block, docker0's own
    // 172.17.0.0/16, which its docker0 now carries as the node's subnet.
    assert!(ssh(&lab, "node2", "ip -br addr show docker0").contains("172.17.0.1/16"));
}

/// The nftables backend: a table of vxmesh's own whose peer set is exactly the current peers, kept so by
/// remove-node, and gone after down.
#[test]
fn nftables_firewall_lists_exactly_the_peers() {
    let Some(lab) = Lab::new("m10")
        .nodes(3)
        .light()
        .inventory(|inv| inv.cluster("docker", "{mode: none}").cluster("firewall", "nftables"))
        .create()
    else {
        return;
    };
    let (dir, inv) = (lab.work(), lab.inv());
    let peers = |n: &str| -> Vec<String> {
        let out = ssh(&lab, n, "nft -j list set inet vxmesh peers");
        let v: Value = serde_json::from_str(&out).unwrap();
        let mut p: Vec<String> = v["nftables"][1]["set"]["elem"]
            .as_array()
            .map(|a| a.iter().map(|e| e.as_str().unwrap().to_string()).collect())
            .unwrap_or_default();
        p.sort();
        p
    };
    let ip = |i: usize| lab.nodes[i].ip.to_string();
    let r = run(dir, &["up", "-i", inv]);
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(peers("node1"), vec![ip(1), ip(2)]);
    assert_eq!(peers("node3"), vec![ip(0), ip(1)]);
    assert!(!ssh(&lab, "node1", "iptables -S").contains("VXMESH-VXLAN"), "one firewall backend, not two");
    // The table's own drop rule counts VXLAN from a non-peer, and only from a non-peer (both sent to eth0's MAC,
    // so that they meet the kernel: see `to_kernel_side`).
    to_kernel_side(&lab, &lab.nodes[1].netns, 0);
    to_kernel_side(&lab, &lab.outside.netns, 0);
    let dropped = || -> u64 {
        let t = ssh(&lab, "node1", "nft list table inet vxmesh");
        t.split("counter packets ").nth(1).and_then(|r| r.split_whitespace().next()?.parse().ok()).unwrap()
    };
    let before = dropped();
    for _ in 0..3 {
        send_vxlan(&lab.nodes[1].netns, &ip(1), &ip(0));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(dropped(), before, "a peer's VXLAN is not dropped");
    for _ in 0..3 {
        send_vxlan(&lab.outside.netns, &lab.outside.ip.to_string(), &ip(0));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(dropped(), before + 9, "each non-peer frame (3 calls of 3) is dropped and counted");
    let r = run(dir, &["remove-node", "node3", "--yes", "-i", inv]);
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(peers("node1"), vec![ip(1)]);
    assert_eq!(peers("node2"), vec![ip(0)]);
    let r = run(dir, &["down", "--yes", "-i", inv]);
    assert_eq!(r.code, 0, "{r}");
    assert!(!ssh(&lab, "node1", "nft list tables").contains("vxmesh"));
}
