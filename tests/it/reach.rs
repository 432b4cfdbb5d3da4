//! Reaching hosts the way OpenSSH would, from ~/.ssh/config: a ProxyCommand (SSH spoken over its stdin and
//! stdout), UserKnownHostsFile, ProxyJump over two hops with every hop's key checked, and a key protected by a
//! passphrase (asked on the terminal, or refused with what to do).

use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::labkit::{Lab, LiveLab};

/// `vxmesh status -i INV` with HOME set to `home` (so ~/.ssh/config is the test's) and no ssh-agent.
fn status(home: &Path, inv: &Path) -> Output {
    Command::new("timeout")
        .args(["--kill-after=5", "120", env!("CARGO_BIN_EXE_vxmesh")])
        .args(["status", "-i"])
        .arg(inv)
        .env("HOME", home)
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n{}\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn reached(o: &Output, node: &str) -> bool {
    String::from_utf8_lossy(&o.stdout).lines().any(|l| l.starts_with(node) && l.contains(" yes "))
}

/// The lab's inventory with these nodes only, its known_hosts left to ~/.ssh/config and the defaults.
fn inventory(lab: &LiveLab, key: &Path, nodes: &[&str], dest: &Path) {
    let key = key.display().to_string();
    lab.inventory().ssh("known_hosts", None).ssh("identity_file", Some(&key)).nodes(nodes).write(dest);
}

#[test]
fn proxy_command_user_known_hosts_two_hops_and_passphrase_keys() {
    let Some(lab) = Lab::new("s1").nodes(3).light().create() else { return };
    // The scratch directory is HOME too.
    let home = lab.work();
    let ssh_dir = home.join(".ssh");
    std::fs::create_dir_all(&ssh_dir).unwrap();
    let (n1, n2, n3) = (lab.nodes[0].ip, lab.nodes[1].ip, lab.nodes[2].ip);
    let key = lab.dir.join("id_ed25519");
    let lab_known = std::fs::read_to_string(lab.dir.join("known_hosts")).unwrap();
    let line_of = |ip: std::net::Ipv4Addr| lab_known.lines().find(|l| l.starts_with(&format!("{ip} "))).unwrap();
    let fleet = ssh_dir.join("fleet_hosts");
    std::fs::write(&fleet, &lab_known).unwrap();
    // ~/.ssh/known_hosts lacks node3: only UserKnownHostsFile knows it.
    std::fs::write(ssh_dir.join("known_hosts"), format!("{}\n{}\n", line_of(n1), line_of(n2))).unwrap();
    std::fs::write(
        ssh_dir.join("config"),
        format!(
            "Host via-proxy\n  HostName {n3}\n  StrictHostKeyChecking yes\n  UserKnownHostsFile {fleet}\n  \
             ProxyCommand ssh -i {key} -o UserKnownHostsFile={fleet} -o StrictHostKeyChecking=yes -o BatchMode=yes -W %h:%p root@{n1}\n\
             Host two-hops\n  HostName {n3}\n  UserKnownHostsFile {fleet}\n  ProxyJump root@{n1},root@{n2}\n",
            fleet = fleet.display(),
            key = key.display()
        ),
    )
    .unwrap();

    // node3 through a ProxyCommand (OpenSSH's `ssh -W` on node1), its key found only in UserKnownHostsFile.
    let inv = home.join("proxy.yaml");
    inventory(
        &lab,
        &key,
        &[&format!("{{name: node1, host: {n1}}}"), &format!("{{name: node3, host: via-proxy, underlay_ip: {n3}}}")],
        &inv,
    );
    let o = status(home, &inv);
    assert!(reached(&o, "node3") && reached(&o, "node1"), "{}", text(&o));
    // The check is real: without the proxy's known host file entry, node3's key is unknown and refused.
    std::fs::write(&fleet, format!("{}\n", line_of(n1))).unwrap();
    let o = status(home, &inv);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("host key of {n3} is not in {}", fleet.display())),
        "{}",
        text(&o)
    );
    std::fs::write(&fleet, &lab_known).unwrap();

    // Two jump hosts, each checked: through node1 and node2 to node3.
    let inv = home.join("hops.yaml");
    inventory(&lab, &key, &[&format!("{{name: node3, host: two-hops, underlay_ip: {n3}}}")], &inv);
    let o = status(home, &inv);
    assert!(reached(&o, "node3"), "{}", text(&o));
    // The second jump host's key recorded as another host's: refused, naming it.
    let wrong = line_of(n1).replacen(&n1.to_string(), &n2.to_string(), 1);
    std::fs::write(&fleet, format!("{}\n{wrong}\n{}\n", line_of(n1), line_of(n3))).unwrap();
    std::fs::write(ssh_dir.join("known_hosts"), format!("{}\n{wrong}\n", line_of(n1))).unwrap();
    let o = status(home, &inv);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("HOST KEY OF {n2} HAS CHANGED")), "{}", text(&o));
    std::fs::write(&fleet, &lab_known).unwrap();

    // A key protected by a passphrase: without a terminal (and no agent) refused, saying what to do; on a
    // terminal asked once, then used for every host.
    let locked = home.join("locked_key");
    std::fs::copy(&key, &locked).unwrap();
    let k = Command::new("ssh-keygen")
        .args(["-q", "-p", "-P", "", "-N", "open sesame", "-f"])
        .arg(&locked)
        .output()
        .unwrap();
    assert!(k.status.success(), "{}", String::from_utf8_lossy(&k.stderr));
    let inv = home.join("locked.yaml");
    inventory(&lab, &locked, &[&format!("{{name: node1, host: {n1}}}"), &format!("{{name: node2, host: {n2}}}")], &inv);
    std::fs::write(ssh_dir.join("known_hosts"), &lab_known).unwrap();
    let o = status(home, &inv);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("protected by a passphrase"), "{}", text(&o));
    // `script` gives vxmesh a terminal; the passphrase is typed into it once.
    let cmd = format!("{} status -i {}", env!("CARGO_BIN_EXE_vxmesh"), inv.display());
    let mut child = Command::new("timeout")
        .args(["--kill-after=5", "120", "script", "-qec", &cmd, "/dev/null"])
        .env("HOME", home)
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(1));
    {
        use std::io::Write;
        child.stdin.as_mut().unwrap().write_all(b"open sesame\n").unwrap();
    }
    let o = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.matches("Enter passphrase for key").count(), 1, "asked once for two hosts:\n{}", text(&o));
    assert!(reached(&o, "node1") && reached(&o, "node2"), "{}", text(&o));
}

/// Runs `cmd` on the machine, failing the test with its output when it fails.
fn sh(cmd: &str) {
    let o = Command::new("sh").args(["-c", cmd]).output().unwrap();
    assert!(o.status.success(), "`{cmd}`: {}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn a_host_reached_at_an_ipv6_address_directly_and_as_a_jump_host() {
    let Some(lab) = Lab::new("s6").nodes(2).light().backend("linux").create() else { return };
    // Light nodes have no docker: the mesh is proven switch to switch.
    let inventory = |nodes: &[&str], dest: &Path| {
        let key = lab.dir.join("id_ed25519").display().to_string();
        let inv = lab.inventory().cluster("docker", "{mode: none}").ssh("known_hosts", None);
        inv.ssh("identity_file", Some(&key)).nodes(nodes).write(dest);
    };
    let home = lab.work();
    let ssh_dir = home.join(".ssh");
    std::fs::create_dir_all(&ssh_dir).unwrap();
    let (n1, n2) = (lab.nodes[0].ip, lab.nodes[1].ip);
    // An IPv6 management network on the lab's bridge (ULA, only on this machine's lab), and a second sshd on node1
    // that listens on node1's IPv6 address only: the one vxmesh may reach it at.
    let v6 = "fd7e:77:0:6::11";
    sh(&format!("ip -6 address add fd7e:77:0:6::1/64 dev {} nodad", lab.bridge));
    crate::labkit::ssh(
        &lab,
        "node1",
        &format!(
            "ip -6 address add {v6}/64 dev eth0 nodad && \
             sed -e 's/^ListenAddress .*/ListenAddress [{v6}]:22/' -e 's|^PidFile .*|PidFile /run/sshd6.pid|' \
             /etc/ssh/sshd_config > /run/sshd6.conf && /usr/sbin/sshd -f /run/sshd6.conf && \
             i=0; until ss -ltn | grep -q '\\[{v6}\\]:22'; do i=$((i+1)); [ $i -lt 50 ] || exit 1; sleep 0.1; done"
        ),
    );
    // known_hosts as OpenSSH writes it for an IPv6 address on port 22: the bare address.
    let lab_known = std::fs::read_to_string(lab.dir.join("known_hosts")).unwrap();
    let line_of = |ip: std::net::Ipv4Addr| lab_known.lines().find(|l| l.starts_with(&format!("{ip} "))).unwrap();
    let node1_v6 = line_of(n1).replacen(&n1.to_string(), v6, 1);
    std::fs::write(ssh_dir.join("known_hosts"), format!("{node1_v6}\n{}\n", line_of(n2))).unwrap();

    // node1 at its IPv6 address (its tunnels on the IPv4 underlay), node2 as before: `up` builds and verifies.
    let inv = home.join("v6.yaml");
    inventory(
        &[
            &format!("{{name: node1, host: \"{v6}\", underlay_ip: {n1}, backend: linux}}"),
            &format!("{{name: node2, host: {n2}, backend: linux}}"),
        ],
        &inv,
    );
    let up = Command::new("timeout")
        .args(["--kill-after=5", "300", env!("CARGO_BIN_EXE_vxmesh")])
        .args(["up", "-i"])
        .arg(&inv)
        .env("HOME", home)
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(up.status.code(), Some(0), "{}", text(&up));
    assert!(String::from_utf8_lossy(&up.stdout).contains("2/2 pairs ok"), "{}", text(&up));
    // `status` too, over the same IPv6 session setup.
    let o = status(home, &inv);
    assert!(reached(&o, "node1") && reached(&o, "node2"), "{}", text(&o));

    // The check is real: the IPv6 entry missing (only node1's IPv4 one), node1's key is unknown and refused.
    std::fs::write(ssh_dir.join("known_hosts"), format!("{}\n{}\n", line_of(n1), line_of(n2))).unwrap();
    let o = status(home, &inv);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("host key of {v6} is not in")), "{}", text(&o));

    // node2 through node1 as a jump host written in brackets with its port, as OpenSSH's ProxyJump takes it.
    std::fs::write(ssh_dir.join("known_hosts"), format!("{node1_v6}\n{}\n", line_of(n2))).unwrap();
    std::fs::write(ssh_dir.join("config"), format!("Host behind-v6\n  HostName {n2}\n  ProxyJump root@[{v6}]:22\n"))
        .unwrap();
    let inv = home.join("jump.yaml");
    inventory(&[&format!("{{name: node2, host: behind-v6, underlay_ip: {n2}, backend: linux}}")], &inv);
    let o = status(home, &inv);
    assert!(reached(&o, "node2"), "{}", text(&o));
    // The jump really was node1's IPv6 sshd: stopped, node2 is out of reach that way.
    crate::labkit::ssh(&lab, "node1", "kill $(cat /run/sshd6.pid)");
    let o = status(home, &inv);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}
