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
