//! Strings read back from a host are data, never code: hostile port names, option values, firewall rules and
//! iptables rules planted in recorded facts reach the tools as exactly one argument (or as input to a tool
//! that parses them itself), and nothing else runs. The scripts run for real, with every tool replaced by a
//! stub that logs its argv, inside a throwaway mount and network namespace (with an empty /etc).

use std::path::Path;
use std::process::Command;

use vxmesh::components::docker_network::DockerNetworkFacts;
use vxmesh::components::firewall::{FirewalldConfig, FirewalldFacts};
use vxmesh::components::ovs::OvsFacts;
use vxmesh::converge;
use vxmesh::facts::HostFacts;

use crate::util::{TempDir, plan_of, read_fixture};

/// Tools the up and down scripts call; each one becomes a stub.
const TOOLS: &[&str] = &[
    "sysctl",
    "ip",
    "ethtool",
    "ovs-vsctl",
    "docker",
    "iptables",
    "iptables-restore",
    "nft",
    "firewall-cmd",
    "systemctl",
    "mkdir",
    "chmod",
    "mv",
    "ln",
    "rm",
    "rmdir",
    "cat",
    "grep",
    "sed",
    "touch",
    "id",
    "sh",
    "bash",
];

/// Names a hostile host could give its OVS ports; `PWN` is replaced by a file that must never appear.
const HOSTILE: &[&str] = &[
    "vx-zz;touch PWN",
    "vx-$(touch PWN)",
    "vx-`touch PWN`",
    "vx-'q'\"d\"",
    "vx-a\ntouch PWN",
    "vx-\u{1b}[2J\u{7}bell",
    "vx-x' ; touch PWN ; '",
];

fn hostile(pwn: &str) -> Vec<String> {
    HOSTILE.iter().map(|h| h.replace("PWN", pwn)).collect()
}

/// The recorded converged host, with hostile strings planted where a host's answers land.
fn planted(node: &vxmesh::plan::NodePlan, pwn: &str, firewalld: bool) -> HostFacts {
    let mut f = converge::parse_for(node, &read_fixture("facts/converged-host.txt")).unwrap();
    let ovs = f.part_mut::<OvsFacts>();
    for h in hostile(pwn) {
        ovs.bridges.get_mut("sw0").unwrap().ports.push(h);
    }
    ovs.interfaces.get_mut("vx-vm2").unwrap().options.insert("remote_ip".into(), format!("1.2.3.4;touch {pwn}"));
    if let Some(n) = f.part_mut::<DockerNetworkFacts>().0.as_mut() {
        n.driver = format!("bridge$(touch {pwn})");
    }
    f.iptables
        .tables
        .get_mut("nat")
        .unwrap()
        .get_mut("POSTROUTING")
        .unwrap()
        .push(format!("-m comment --comment \"x;touch {pwn}\" -j VXMESH-NAT"));
    if firewalld {
        // Planted as firewalld holds a rule: running and permanent (a running one alone goes with the reload that
        // makes vxmesh's zone, and is then never named in a command).
        let rule = format!(
            "rule family=\"ipv4\" source address=\"1.1.1.1$(touch {pwn})\" port port=\"4789\" protocol=\"udp\" accept"
        );
        let fw = f.part_mut::<FirewalldFacts>();
        fw.running = true;
        fw.rich_rules.push(rule.clone());
        f.part_mut::<FirewalldConfig>().permanent_rules.push(rule);
    }
    f
}

/// One logged invocation: the tool, its arguments, and what it read on stdin.
#[derive(Debug)]
struct Call {
    argv: Vec<String>,
    stdin: String,
}

/// Runs `script` with only stubs on PATH, in new mount and network namespaces with an empty /etc;
/// returns every call the stubs saw.
fn run_with_stubs(dir: &Path, script: &str) -> (Vec<Call>, String) {
    let stubs = dir.join("stubs");
    std::fs::create_dir_all(&stubs).unwrap();
    let log = dir.join("calls.log");
    for t in TOOLS {
        // argv NUL-separated, then stdin (when not a terminal and not empty), then a record separator.
        let body = format!(
            "#!/bin/dash\n{{ printf '%s\\0' \"{t}\" \"$@\"; printf '\\001'; [ -t 0 ] || /bin/cat; printf '\\036'; }} >> {log}\nexit 0\n",
            log = log.display()
        );
        let p = stubs.join(t);
        std::fs::write(&p, body).unwrap();
        std::process::Command::new("/bin/chmod").arg("755").arg(&p).status().unwrap();
    }
    std::fs::write(dir.join("script.sh"), script).unwrap();
    let inner = format!(
        "mount --make-rprivate / && mount -t tmpfs none /etc && mkdir -p /etc/vxmesh /etc/systemd/system/multi-user.target.wants && cd {d} && \
         env -i PATH={s} /bin/dash {d}/script.sh < /dev/null",
        d = dir.display(),
        s = stubs.display()
    );
    let out = Command::new("unshare").args(["--mount", "--net", "--fork", "/bin/sh", "-c", &inner]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "the script failed: {stderr}");
    let text = std::fs::read(&log).unwrap_or_default();
    let calls = text
        .split(|b| *b == 0x1e)
        .filter(|r| !r.is_empty())
        .map(|r| {
            let (args, stdin) = r.split_at(r.iter().position(|b| *b == 1).unwrap());
            Call {
                argv: args
                    .split(|b| *b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into())
                    .collect(),
                stdin: String::from_utf8_lossy(&stdin[1..]).into(),
            }
        })
        .collect();
    (calls, stderr)
}

fn assert_nothing_else_ran(calls: &[Call], pwn: &Path) {
    assert!(!pwn.exists(), "a hostile string ran as code");
    for c in calls {
        assert!(!["touch", "id", "sh", "bash"].contains(&c.argv[0].as_str()), "ran {:?}", c.argv);
    }
}

#[test]
fn hostile_host_strings_reach_tools_as_single_arguments() {
    if crate::labkit::skip_without_root("a throwaway mount and network namespace") {
        return;
    }
    for firewall in ["iptables", "firewalld"] {
        let dir = TempDir::new("hostile");
        // Where a hostile string that ran would leave its mark.
        let pwn = dir.0.join("PWNED");
        let pwn_s = pwn.display().to_string();
        let yaml = read_fixture("three-nodes.yaml").replace("firewall: iptables", &format!("firewall: {firewall}"));
        let (_, plan) = plan_of(&yaml);
        let node = plan.node("vm1").unwrap();
        let facts = planted(node, &pwn_s, firewall == "firewalld");

        let steps = converge::diff(node, &facts);
        let up = converge::script(node, &steps);
        // Descriptions carry host strings too: each stays on its comment line.
        for line in up.lines().filter(|l| l.contains("touch")) {
            assert!(line.starts_with('#') || line.starts_with("step ") || line.contains('\''), "bare: {line}");
        }
        let (calls, stderr) = run_with_stubs(&dir.0, &up);
        assert_nothing_else_ran(&calls, &pwn);
        for h in hostile(&pwn_s) {
            let removed =
                calls.iter().any(|c| c.argv[0] == "ovs-vsctl" && c.argv.iter().filter(|a| **a == h).count() == 1);
            assert!(removed, "port {h:?} reached ovs-vsctl as one argument:\n{calls:#?}\n{stderr}");
        }
        if firewall == "firewalld" {
            let rule = format!(
                "--remove-rich-rule=rule family=\"ipv4\" source address=\"1.1.1.1$(touch {pwn_s})\" port port=\"4789\" protocol=\"udp\" accept"
            );
            assert!(calls.iter().any(|c| c.argv[0] == "firewall-cmd" && c.argv.contains(&rule)), "{calls:#?}");
        }

        let teardown_facts = {
            let mut f = converge::parse_teardown_facts(node, &read_fixture("facts/converged-host.txt")).unwrap();
            let planted = planted(node, &pwn_s, firewall == "firewalld");
            f.iptables = planted.iptables.clone();
            f.set_part(planted.part::<FirewalldFacts>().cloned().unwrap_or_default());
            f
        };
        let down_steps = converge::teardown(node, &teardown_facts, false).unwrap();
        let down = converge::script(node, &down_steps);
        let (calls, _) = run_with_stubs(&dir.0, &down);
        assert_nothing_else_ran(&calls, &pwn);
        let restore = calls.iter().find(|c| c.argv[0] == "iptables-restore" && c.stdin.contains("VXMESH-NAT")).unwrap();
        assert!(
            restore.stdin.contains(&format!("-D POSTROUTING -m comment --comment \"x;touch {pwn_s}\" -j VXMESH-NAT\n")),
            "the host's rule goes to iptables-restore as input, not to the shell: {}",
            restore.stdin
        );
    }
}
