//! The lab on this machine, as root: real sshd, OVS and docker in namespaces, and nothing left when it is gone.

use std::process::Command;

use vxmesh::components::boot;
use vxmesh::lab::{self, LabState};

use crate::labkit::{Lab, skip_without_root, ssh, ssh_with};
use crate::util::{TempDir, vxmesh};

#[test]
fn lab_hosts_are_real_private_and_rebootable() {
    let Some(lab) = Lab::new("t1").nodes(3).create() else { return };
    eprintln!("3-node lab created in {:.1} s", lab.secs);

    // The inventory it wrote is valid and points at the lab.
    let inv = vxmesh::model::inventory::load(&lab.inventory_path()).unwrap();
    assert_eq!(inv.nodes.len(), 3);
    assert_eq!(inv.cluster.datapath, vxmesh::model::inventory::Datapath::Netdev);
    assert_eq!(inv.cluster.outside, Some(lab.outside.ip));

    for n in ["node1", "node2", "node3"] {
        // SSH with host key checking on, against the nodes' real keys.
        assert_eq!(ssh(&lab, n, "hostname").trim(), n);
        // Docker runs busybox; OVS answers with the underlay on br-phy.
        assert_eq!(ssh(&lab, n, "docker run --rm busybox echo ok").trim(), "ok");
        let ovs = ssh(&lab, n, "ovs-vsctl show; ip -4 -br addr show br-phy");
        assert!(ovs.contains("Bridge br-phy") && ovs.contains("datapath_type: netdev"), "{ovs}");
        assert!(ovs.contains(&lab.node(n).unwrap().ip.to_string()), "{ovs}");
        // A normal docker: docker0 and docker's iptables are there for the mesh to coexist with.
        assert!(ssh(&lab, n, "ip -br link show docker0; iptables -S FORWARD").contains("DOCKER"));
        // systemd is PID 1 and started the distribution's units, every one of them without a failure.
        let init = ssh(
            &lab,
            n,
            "cat /proc/1/comm; systemctl is-system-running; systemctl is-active ssh docker openvswitch-switch",
        );
        assert_eq!(
            init.split_whitespace().collect::<Vec<_>>(),
            ["systemd", "running", "active", "active", "active"],
            "{init}"
        );
    }

    // The inventory reaches the hosts as a non-root user with passwordless sudo, as real fleets are reached.
    assert_eq!(inv.ssh.user.as_deref(), Some("vxadmin"));
    let as_admin = Command::new("ssh")
        .args(["-i", &lab.dir.join("id_ed25519").to_string_lossy(), "-o", "BatchMode=yes", "-o"])
        .arg(format!("UserKnownHostsFile={}", lab.dir.join("known_hosts").display()))
        .arg(format!("vxadmin@{}", lab.nodes[0].ip))
        .arg("id -u; sudo -n id -u; touch /etc/vxmesh-not-root 2>&1 || true")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&as_admin.stdout);
    assert!(as_admin.status.success(), "{out}{}", String::from_utf8_lossy(&as_admin.stderr));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0] != "0" && lines[1] == "0", "vxadmin is not root, and sudo makes it root: {out}");
    assert!(lines[2].contains("Permission denied"), "without sudo it cannot change the host: {out}");

    // A host whose key is not known is refused.
    let empty = TempDir::new("known");
    let unknown = ssh_with(&lab, &lab.nodes[0].ip.to_string(), &empty.0.join("kh").to_string_lossy(), "true");
    assert!(!unknown.status.success(), "an unknown host key must be refused");

    // Writes are private to the node.
    ssh(
        &lab,
        "node1",
        "echo private > /etc/vxmesh-privacy-test && mkdir -p /var/lib/vxmesh && touch /var/lib/vxmesh/x",
    );
    assert!(ssh(&lab, "node2", "ls /etc/vxmesh-privacy-test /var/lib/vxmesh/x 2>&1 || true").contains("No such file"));
    assert!(!std::path::Path::new("/etc/vxmesh-privacy-test").exists(), "the machine must not see node1's /etc");

    // The outside world answers ping and TCP, from a node and from a container.
    let outside = lab.outside.ip.to_string();
    assert!(ssh(&lab, "node1", &format!("busybox ping -c1 -W2 {outside}")).contains("1 packets received"));
    assert_eq!(ssh(&lab, "node2", &format!("echo hello | busybox nc -w 2 {outside} 7")).trim(), "hello");
    assert_eq!(
        ssh(&lab, "node3", &format!("docker run --rm busybox sh -c 'echo hi | nc -w 2 {outside} 7'")).trim(),
        "hi"
    );

    // Reboot: runtime state is gone, the disk, OVSDB and installed boot units stay.
    ssh(
        &lab,
        "node2",
        "touch /run/runtime-marker; ip link add vxtest0 type veth peer name vxtest1; ovs-vsctl add-br test-br; \
         mkdir -p /etc/systemd/system/multi-user.target.wants; \
         printf '[Service]\\nType=oneshot\\nExecStart=/bin/sh -c \"echo ran > /run/boot-unit-ran\"\\n' > /etc/systemd/system/t.service; \
         ln -sf /etc/systemd/system/t.service /etc/systemd/system/multi-user.target.wants/t.service",
    );
    // vxmesh's own boot unit, as `up` installs it, with a script that records what it finds: systemd must start
    // it once docker and Open vSwitch answer and the underlay address is up.
    let saw = "#!/bin/sh\n{ docker info >/dev/null 2>&1 && echo docker-answered; ovs-vsctl --timeout=2 show >/dev/null 2>&1 && echo ovs-answered; ip -4 -br addr show br-phy; } > /run/vxmesh-boot-saw\n";
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    ssh(
        &lab,
        "node2",
        &format!(
            "mkdir -p /etc/vxmesh && printf '%s' {} > {} && printf '%s' {} > {} && ln -sf {} {}",
            quote(saw),
            boot::SCRIPT_PATH,
            quote(&boot::unit()),
            boot::UNIT_PATH,
            boot::UNIT_PATH,
            boot::WANTS_LINK
        ),
    );
    let r = vxmesh(&lab.dir, &["lab", "node", "reboot", "node2", "--name", "t1"]);
    assert_eq!(r.code, 0, "{r}");
    let after = ssh(
        &lab,
        "node2",
        "ls /run/runtime-marker 2>&1; ip link show vxtest0 2>&1; ovs-vsctl br-exists test-br && echo ovsdb-kept; cat /run/boot-unit-ran; hostname",
    );
    assert!(after.contains("No such file"), "{after}");
    assert!(after.contains("does not exist"), "{after}");
    assert!(after.contains("ovsdb-kept") && after.contains("ran") && after.contains("node2"), "{after}");
    let unit = ssh(&lab, "node2", "cat /proc/1/comm; systemctl is-active vxmesh.service; cat /run/vxmesh-boot-saw");
    let ip = lab.node("node2").unwrap().ip.to_string();
    assert!(unit.starts_with("systemd\nactive\n"), "systemd itself ran vxmesh.service at boot: {unit}");
    assert!(
        unit.contains("docker-answered") && unit.contains("ovs-answered") && unit.contains(&ip),
        "vxmesh.service started after docker, Open vSwitch and the underlay: {unit}"
    );
    // docker answers through its socket even before dockerd is up: the order itself, as systemd recorded it.
    let times = ssh(
        &lab,
        "node2",
        "systemctl show -P ActiveEnterTimestampMonotonic docker.service openvswitch-switch.service; \
         systemctl show -P InactiveExitTimestampMonotonic vxmesh.service",
    );
    let t: Vec<u64> = times.split_whitespace().map(|v| v.parse().unwrap()).collect();
    assert!(t.len() == 3 && t[0] > 0 && t[1] > 0, "{times}");
    assert!(t[2] >= t[0] && t[2] >= t[1], "vxmesh.service started once docker and OVS were up: {times}");

    // Stop makes a node unreachable; start brings it back.
    let r = vxmesh(&lab.dir, &["lab", "node", "stop", "node3", "--name", "t1"]);
    assert_eq!(r.code, 0, "{r}");
    let down = ssh_with(&lab, &lab.nodes[2].ip.to_string(), &lab.dir.join("known_hosts").to_string_lossy(), "true");
    assert!(!down.status.success(), "a stopped node answers no SSH");
    let list = vxmesh(&lab.dir, &["lab", "list"]);
    assert!(list.stdout.lines().any(|l| l.contains("node3") && l.contains("stopped")), "{list}");
    let r = vxmesh(&lab.dir, &["lab", "node", "start", "node3", "--name", "t1"]);
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(ssh(&lab, "node3", "docker run --rm busybox echo back").trim(), "back");

    // Destroy leaves nothing: namespaces, links, processes (containers included), mounts, rules, files.
    ssh(&lab, "node1", "docker run -d busybox sleep 600 >/dev/null");
    let r = vxmesh(lab.dir.parent().unwrap(), &["lab", "destroy", "--name", "t1"]);
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(lab::leftovers("t1"), Vec::<String>::new());
    drop(lab);
}

/// Sends from a lab container to an address the lab does not own, with a route on the machine that would carry
/// it into a sink namespace of ours: the gateway's drop rule counts it and the sink sees nothing. Without the rule
/// the sink does see it, so the test can fail.
#[test]
fn nothing_leaves_the_lab() {
    let Some(lab) = Lab::new("t3").nodes(1).create() else { return };
    let sink = Sink::new(&lab);
    let ping = || ssh(&lab, "node1", "docker run --rm busybox ping -c3 -W1 203.0.113.7 >/dev/null 2>&1; true");

    let drops_before = lab::gateway_drops(&lab).unwrap();
    ping();
    assert!(lab::gateway_drops(&lab).unwrap() >= drops_before + 3, "the gateway counted the escaping packets");
    assert_eq!(sink.seen(), 0, "no packet got past the gateway");

    // Take the rule away and the same packets do get out (into our sink): the check above is real.
    let rule = &lab::gateway_rules(&lab)[0];
    let rule: Vec<&str> = rule.iter().map(String::as_str).collect();
    run("iptables", &[&["-w", "-D", "FORWARD"][..], &rule].concat());
    ping();
    run("iptables", &[&["-w", "-I", "FORWARD"][..], &rule].concat());
    assert!(sink.seen() >= 3, "without the drop rule the sink sees the packets");
}

fn run(prog: &str, args: &[&str]) -> String {
    let out = Command::new(prog).args(args).output().unwrap();
    assert!(out.status.success(), "{prog} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A namespace of ours that a machine route sends 203.0.113.0/24 to, counting what arrives.
struct Sink {
    bridge: String,
}

impl Sink {
    fn new(lab: &LabState) -> Sink {
        let _ = Command::new("ip").args(["netns", "del", "vxtest-sink"]).status();
        run("ip", &["netns", "add", "vxtest-sink"]);
        run("ip", &["link", "add", "vxtestsink", "type", "veth", "peer", "name", "eth0", "netns", "vxtest-sink"]);
        run("ip", &["addr", "add", "198.18.0.1/30", "dev", "vxtestsink"]);
        run("ip", &["link", "set", "vxtestsink", "up"]);
        run("ip", &["-n", "vxtest-sink", "addr", "add", "198.18.0.2/30", "dev", "eth0"]);
        run("ip", &["-n", "vxtest-sink", "link", "set", "eth0", "up"]);
        run(
            "ip",
            &["netns", "exec", "vxtest-sink", "iptables", "-w", "-A", "INPUT", "-d", "203.0.113.7", "-j", "ACCEPT"],
        );
        run("ip", &["-n", "vxtest-sink", "route", "add", "local", "203.0.113.0/24", "dev", "lo"]);
        run("ip", &["route", "add", "203.0.113.0/24", "via", "198.18.0.2", "dev", "vxtestsink"]);
        // Forward what enters from the lab bridge even where the machine's global forwarding is off.
        run("sysctl", &["-qw", &format!("net.ipv4.conf.{}.forwarding=1", lab.bridge)]);
        Sink { bridge: lab.bridge.clone() }
    }

    fn seen(&self) -> u64 {
        let out = run("ip", &["netns", "exec", "vxtest-sink", "iptables", "-w", "-L", "INPUT", "-v", "-x", "-n"]);
        out.lines()
            .find(|l| l.contains("203.0.113.7"))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["route", "del", "203.0.113.0/24"]).status();
        let _ = Command::new("ip").args(["link", "del", "vxtestsink"]).status();
        let _ = Command::new("ip").args(["netns", "del", "vxtest-sink"]).status();
        let _ = Command::new("sysctl").args(["-qw", &format!("net.ipv4.conf.{}.forwarding=0", self.bridge)]).status();
    }
}

#[test]
fn a_create_that_fails_halfway_leaves_nothing() {
    let Some(_reserved) = Lab::new("t2").reserve() else { return };
    let dir = TempDir::new("lab-fail");
    let out = Command::new("timeout")
        .args(["--kill-after=5", "300", env!("CARGO_BIN_EXE_vxmesh")])
        .args(["lab", "create", "--name", "t2", "--nodes", "3"])
        .env("VXMESH_LAB_FAIL_AFTER", "node2")
        .current_dir(&dir.0)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The lab's exit code, whichever error.rs gives lab failures.
    assert_eq!(out.status.code(), Some(vxmesh::error::Error::Lab(String::new()).code()), "{stderr}");
    assert!(stderr.contains("failing on purpose after node2") && stderr.contains("tearing down"), "{stderr}");
    assert_eq!(lab::leftovers("t2"), Vec::<String>::new());
}

#[test]
fn light_lab_has_ssh_and_ovs_but_no_docker() {
    let Some(lab) = Lab::new("t4").nodes(2).light().inventory(|inv| inv.cluster("docker", "{mode: none}")).create()
    else {
        return;
    };
    for n in ["node1", "node2"] {
        let out = ssh(&lab, n, "ovs-vsctl br-exists br-phy && echo ovs; pgrep -x dockerd || echo no-docker");
        assert!(out.contains("ovs") && out.contains("no-docker"), "{out}");
    }
    // The mesh without docker (docker.mode none): switches and tunnels only, verified switch to switch.
    let r = vxmesh(lab.work(), &["up", "-i", lab.inv()]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("2/2 pairs ok") && r.stdout.contains("switch to switch"), "{r}");
}

#[test]
fn bad_lab_names_and_sizes_are_refused() {
    let dir = TempDir::new("lab-args");
    for args in [
        &["lab", "create", "--name", "Bad-Name"][..],
        &["lab", "create", "--nodes", "0"],
        &["lab", "node", "stop", "node1", "--name", "nolab"],
    ] {
        let r = vxmesh(&dir.0, args);
        assert_ne!(r.code, 0, "{r}");
        assert!(r.stderr.starts_with("error: lab:"), "{r}");
    }
}

/// On a machine that has its own `vxadmin` (another home, another key, a locked password), the lab's `vxadmin` is
/// still the lab's: reached with the lab's key, with the lab's home, and the machine's key does not get in.
#[test]
fn the_lab_user_is_the_labs_own_whatever_the_machine_has() {
    if skip_without_root("network namespaces and a user on the machine") {
        return;
    }
    let keys = TempDir::new("machine-user");
    let machine_key = keys.0.join("id_ed25519");
    run(
        "ssh-keygen",
        &["-q", "-t", "ed25519", "-N", "", "-C", "machine-vxadmin", "-f", &machine_key.to_string_lossy()],
    );
    let _user = MachineUser::ensure(&machine_key.with_extension("pub"));
    let machine_entry = run("getent", &["passwd", "vxadmin"]);

    let lab = Lab::new("t5").nodes(1).light().create().expect("root, checked above");
    let ip = lab.nodes[0].ip.to_string();
    let lab_key = lab.dir.join("id_ed25519");
    for boot in ["first boot", "after a reboot"] {
        let out = ssh_as(&lab, &lab_key, &format!("vxadmin@{ip}"), "id -un; echo $HOME; sudo -n id -u; ls -A $HOME");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{boot}: the lab's key reaches vxadmin: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            ["vxadmin", "/home/vxadmin", "0"],
            "{boot}: the lab's user, home (empty) and sudo"
        );
        let machine = ssh_as(&lab, &machine_key, &format!("vxadmin@{ip}"), "true");
        assert!(!machine.status.success(), "{boot}: the machine's key must not reach the lab's vxadmin");
        if boot == "first boot" {
            let r = vxmesh(&lab.dir, &["lab", "node", "reboot", "node1", "--name", "t5"]);
            assert_eq!(r.code, 0, "{r}");
        }
    }
    assert_eq!(run("getent", &["passwd", "vxadmin"]), machine_entry, "the machine's own user is left as it was");
}

fn ssh_as(lab: &LabState, key: &std::path::Path, target: &str, script: &str) -> std::process::Output {
    Command::new("timeout")
        .args(["--kill-after=5", "60", "ssh", "-i", &key.to_string_lossy(), "-o", "IdentitiesOnly=yes"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", lab.dir.join("known_hosts").display()))
        .args([
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=3",
            "-o",
            "LogLevel=ERROR",
        ])
        .args([target, script])
        .output()
        .unwrap()
}

/// A `vxadmin` on the machine, as some machines have: its own home and key, the password locked (useradd's
/// default). Made only if the machine has none, and then removed again; a machine's own user is never touched.
struct MachineUser {
    made: bool,
}

impl MachineUser {
    fn ensure(pubkey: &std::path::Path) -> MachineUser {
        let exists = Command::new("id").arg("vxadmin").output().unwrap().status.success();
        if exists || std::path::Path::new("/home/vxadmin").exists() {
            return MachineUser { made: false };
        }
        run("useradd", &["-m", "-d", "/home/vxadmin", "-s", "/bin/bash", "vxadmin"]);
        let user = MachineUser { made: true };
        std::fs::create_dir_all("/home/vxadmin/.ssh").unwrap();
        std::fs::copy(pubkey, "/home/vxadmin/.ssh/authorized_keys").unwrap();
        run("chown", &["-R", "vxadmin:vxadmin", "/home/vxadmin/.ssh"]);
        user
    }
}

impl Drop for MachineUser {
    fn drop(&mut self) {
        if self.made {
            // `-f`: lab nodes' own vxadmin (other labs, other tests) may run processes under the same uid, and
            // userdel would then refuse, leaving the machine with this test's user.
            let out = Command::new("userdel").args(["-f", "-r", "vxadmin"]).output().unwrap();
            if Command::new("id").arg("vxadmin").output().unwrap().status.success() {
                eprintln!("the test's machine user vxadmin is left behind: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
    }
}
