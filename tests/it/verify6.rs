//! verify over both families (issue 22): with dual-stack containers every pair is proven over IPv4 and IPv6, the
//! listener seeing the client's own address in each, and full-size don't-fragment probes per family.

use std::os::unix::fs::PermissionsExt;

use crate::util::{TempDir, plan_of};

const DUAL: &str = "cluster: {cidr: 172.16.0.0/12, cidr6: 'fd42:7:1::/48'}\nnodes:\n  - {name: vm1, host: 192.0.2.1}\n  - {name: vm2, host: 192.0.2.2}\n";

/// Runs `script` with `sh` under stub tools that log their arguments (one a line, `--` after each call) to
/// `LOG/<tool>`: docker's inspect answers with both addresses, the container's eth0 has MTU 1450, and iputils'
/// ping refuses one byte over it in each family (1423 bytes of ICMP payload over IPv4, 1403 over IPv6).
fn run_with_stubs(script: &str) -> (Vec<String>, TempDir) {
    let dir = TempDir::new("verify6-stubs");
    let bin = dir.0.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = |tool: &str| format!("printf '%s\\n' \"$@\" >> \"$LOG/{tool}\"; echo -- >> \"$LOG/{tool}\"\n");
    let stubs = [
        (
            "docker",
            format!(
                "{}[ \"$1\" = inspect ] && case $3 in *GlobalIPv6Address*) echo '999999999 172.18.0.3 fd42:7:1:1::3' ;; \
                 *) echo '999999999 172.18.0.3' ;; esac\ntrue\n",
                log("docker")
            ),
        ),
        (
            "nsenter",
            format!(
                "{}while [ $# -gt 0 ]; do case $1 in -t) shift 2 ;; -m|-n) shift ;; --) shift; break ;; *) break ;; esac; done\n\
                 [ \"$1\" = cat ] && {{ echo 1450; exit 0; }}\nexec \"$@\"\n",
                log("nsenter")
            ),
        ),
        (
            "wget",
            format!(
                "{}case $2 in *'['*) echo '[fd42:7:1:1::3]' ;; *) echo '[::ffff:172.18.0.3]' ;; esac\n",
                log("wget")
            ),
        ),
        (
            "ping",
            format!(
                "{}[ \"$1\" = -V ] && {{ echo 'ping from iputils 20221126'; exit 0; }}\n\
                 case \" $* \" in *' -s 1423 '*|*' -6 '*' -s 1403 '*) echo 'ping: local error: message too long, mtu: 1450'; exit 1 ;; esac\n\
                 echo '64 bytes from x: icmp_seq=1 ttl=64 time=0.42 ms'\n",
                log("ping")
            ),
        ),
        ("cat", format!("{}echo 1450\n", log("cat"))),
    ];
    for (name, body) in stubs {
        let p = bin.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = std::process::Command::new("timeout")
        .args(["20", "sh", "-c", script])
        .env("PATH", path)
        .env("LOG", &dir.0)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{script}\nstdout:\n{stdout}\nstderr:\n{}", String::from_utf8_lossy(&out.stderr));
    let mut lines: Vec<String> = stdout.lines().map(String::from).collect();
    lines.sort();
    (lines, dir)
}

fn calls(dir: &TempDir, tool: &str) -> Vec<String> {
    let text = std::fs::read_to_string(dir.0.join(tool)).unwrap_or_default();
    text.split_terminator("--\n").map(|c| c.lines().collect::<Vec<_>>().join(" ")).collect()
}

#[test]
fn the_dual_stack_client_probes_each_peer_over_both_families() {
    use vxmesh::verify::Probes6;
    use vxmesh::verify::scripts::dual_client_script;
    let (_, plan) = plan_of(DUAL);
    let n = &plan.nodes[0];
    let six = Probes6 {
        targets: vec![("vm2".into(), "fd42:7:1:2::3".parse().unwrap())],
        switches: vec![("vm2".into(), "fd42:7:1::2".parse().unwrap())],
    };
    let script = dual_client_script(
        n,
        "t",
        &[("vm2".into(), "172.19.0.3".parse().unwrap())],
        &[("vm2".into(), "172.30.0.2".parse().unwrap())],
        None,
        Some(&six),
    );
    let (out, dir) = run_with_stubs(&script);
    assert_eq!(
        out,
        [
            "me 172.18.0.3 1450",
            "me6 fd42:7:1:1::3",
            "mtu vm2 ok refused",
            "mtu6 vm2 ok refused",
            "pair vm2 0.42 [::ffff:172.18.0.3] 1",
            "pair6 vm2 0.42 [fd42:7:1:1::3] 1",
            "switch vm2 ok",
            "switch6 vm2 ok",
        ]
    );
    let wgets = calls(&dir, "wget");
    assert!(wgets.contains(&"-qO- http://[fd42:7:1:2::3]:7777/cgi-bin/ip".to_string()), "{wgets:?}");
    let pings = calls(&dir, "ping");
    for want in [
        "-6 -c2 -i 0.1 -W2 fd42:7:1:2::3",
        "-6 -c1 -W2 -w2 -M do -s 1402 fd42:7:1:2::3",
        "-6 -c1 -W0.1 -M do -s 1403 fd42:7:1:2::3",
        "-6 -c1 -W2 fd42:7:1::2",
        "-c1 -W2 -w2 -M do -s 1422 172.19.0.3",
    ] {
        assert!(pings.iter().any(|p| p == want), "no `ping {want}` in {pings:?}");
    }
    let inspect = &calls(&dir, "docker")[0];
    assert!(inspect.contains(".GlobalIPv6Address}}{{.}}{{else}}-{{end}}"), "{inspect}");
}

#[test]
fn an_ipv4_only_client_asks_nothing_of_ipv6() {
    use vxmesh::verify::scripts::{client_script, listener_script};
    let (_, plan) = plan_of(&DUAL.replace(", cidr6: 'fd42:7:1::/48'", ""));
    let n = &plan.nodes[0];
    let script = client_script(n, "t", &[("vm2".into(), "172.19.0.3".parse().unwrap())], &[], None);
    assert!(!script.contains("IPv6") && !script.contains("-6") && !script.contains("me6"), "{script}");
    let (out, _) = run_with_stubs(&script);
    assert_eq!(out, ["me 172.18.0.3 1450", "mtu vm2 ok refused", "pair vm2 0.42 [::ffff:172.18.0.3] 1"]);
    assert!(listener_script(n, "t", "busybox").contains("echo \"$2\"\n"));
    let (_, dual) = plan_of(DUAL);
    let listener = listener_script(&dual.nodes[0], "t", "busybox");
    assert!(listener.contains("echo \"$2 $3\"\n") && listener.contains("GlobalIPv6Address"), "{listener}");
}
