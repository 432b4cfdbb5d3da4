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

/// Without docker (`docker.mode: none`) the switches prove IPv6 themselves, from the host.
#[test]
fn without_docker_the_switches_probe_each_other_over_ipv6_too() {
    use vxmesh::verify::scripts::dual_switch_script;
    let (_, plan) = plan_of(&DUAL.replace("cidr6: 'fd42:7:1::/48'", "cidr6: 'fd42:7:1::/48', docker: {mode: none}"));
    let n = &plan.nodes[0];
    let six = vec![("vm2".to_string(), "fd42:7:1::2".parse().unwrap())];
    let script = dual_switch_script(n, &[("vm2".into(), "172.31.0.2".parse().unwrap())], Some(&six));
    let (out, dir) = run_with_stubs(&script);
    assert_eq!(
        out,
        [
            "me 172.31.0.1 1450",
            "me6 fd42:7:1::1",
            "mtu vm2 ok refused",
            "mtu6 vm2 ok refused",
            "pair vm2 0.42 -",
            "pair6 vm2 0.42 -"
        ]
    );
    let pings = calls(&dir, "ping");
    for want in [
        "-6 -c3 -i 0.3 -W3 fd42:7:1::2",
        "-6 -c1 -W2 -w2 -M do -s 1402 fd42:7:1::2",
        "-6 -c1 -W0.1 -M do -s 1403 fd42:7:1::2",
    ] {
        assert!(pings.iter().any(|p| p == want), "no `ping {want}` in {pings:?}");
    }
    assert!(calls(&dir, "nsenter").is_empty(), "the switch's probes run on the host");
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

/// The proof on real daemons: a 3-host lab with dual-stack containers, verified in both families, then IPv6
/// broken on purpose twice (a route, then its path MTU) while IPv4 stays whole.
mod lab {
    use crate::labkit::Lab;
    use crate::util::vxmesh;
    use serde_json::Value;
    use vxmesh::lab::{LabState, node_exec};

    /// `verify --json`: its exit code and the report.
    fn verify(dir: &std::path::Path) -> (i32, Value, String) {
        let r = vxmesh(dir, &["verify", "--json"]);
        let v: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r}"));
        (r.code, v, r.to_string())
    }

    /// Every pair whose IPv4 side passed in full: answered, no NAT, DF probes as they should be.
    fn ipv4_whole(p: &Value) -> bool {
        p["seen_source"].is_string()
            && p["seen_source"] == p["client"]
            && p["full_size"] == true
            && p["oversize_refused"] == true
    }

    /// The ordered pairs that failed, as `from>to`.
    fn failing(v: &Value) -> Vec<String> {
        let pairs = v["pairs"].as_array().unwrap();
        let mut out: Vec<String> = pairs
            .iter()
            .filter(|p| p["ok"] != true)
            .map(|p| format!("{}>{}", p["from"].as_str().unwrap(), p["to"].as_str().unwrap()))
            .collect();
        out.sort();
        out
    }

    /// node1's route to node2's IPv6 block, as `ip -6 route` shows it.
    fn route_to_node2(lab: &LabState, block: &str) -> String {
        node_exec(lab, "node1", &format!("ip -6 route show {block}")).unwrap().trim().to_string()
    }

    #[test]
    fn verify_proves_both_families_and_names_the_one_broken() {
        let Some(lab) =
            Lab::new("vrfy6").nodes(3).backend("linux").inventory(|i| i.cluster("cidr6", "'fd42:7:1::/48'")).create()
        else {
            return;
        };
        let dir = lab.work();
        let up = vxmesh(dir, &["up", "--no-verify"]);
        assert_eq!(up.code, 0, "{up}");

        let (code, v, shown) = verify(dir);
        assert_eq!(code, 0, "{shown}");
        let pairs = v["pairs"].as_array().unwrap();
        assert_eq!(pairs.len(), 6, "{shown}");
        for p in pairs {
            let six = &p["ipv6"];
            assert!(p["ok"] == true && six["ok"] == true && ipv4_whole(p), "{p}");
            let client: std::net::Ipv6Addr = six["client"].as_str().unwrap().parse().unwrap();
            let seen: std::net::Ipv6Addr = six["seen_source"].as_str().unwrap().parse().unwrap();
            assert_eq!(seen, client, "the listener saw the client's own IPv6 address: {p}");
            assert!(client.to_string().starts_with("fd42:7:1:"), "{p}");
            assert_eq!((&six["full_size"], &six["oversize_refused"]), (&Value::Bool(true), &Value::Bool(true)), "{p}");
        }
        for h in v["hosts"].as_array().unwrap() {
            assert!(h["ok"] == true && h.get("unreachable_switches6").is_none(), "{h}");
        }
        let text = vxmesh(dir, &["verify"]);
        assert!(text.stdout.contains("over IPv4 and IPv6") && text.stdout.contains("ok/ok"), "{text}");

        // node2's IPv6 block, from the plan.
        let plan: Value = serde_json::from_str(&vxmesh(dir, &["plan", "--offline", "--json"]).stdout).unwrap();
        let node2 = plan["nodes"].as_array().unwrap().iter().find(|n| n["desired"]["name"] == "node2").unwrap();
        let block = node2["desired"]["ipv6"]["subnet"].as_str().unwrap().to_string();
        let route = route_to_node2(&lab, &block);
        assert!(route.contains(" dev sw0"), "{route}");

        // Break one: node1 loses its IPv6 route to node2's block. Both directions between them fail over IPv6
        // (the replies have no way back either), named so; IPv4 passes everywhere.
        node_exec(&lab, "node1", &format!("ip -6 route del {block}")).unwrap();
        let (code, v, shown) = verify(dir);
        assert_eq!(code, 3, "{shown}");
        assert_eq!(failing(&v), ["node1>node2", "node2>node1"], "{shown}");
        for p in v["pairs"].as_array().unwrap() {
            assert!(ipv4_whole(p), "IPv4 still passes: {p}");
            if p["ok"] != true {
                assert!(p["error"].as_str().unwrap().starts_with("IPv6: "), "{p}");
                assert_eq!(p["ipv6"]["ok"], false, "{p}");
            }
        }
        let text = vxmesh(dir, &["verify"]);
        assert!(text.stdout.contains("node1 -> node2: IPv6: "), "{text}");
        assert!(text.stdout.contains("ok/FAIL"), "{text}");
        let repaired = vxmesh(dir, &["up", "--no-verify"]);
        assert_eq!(repaired.code, 0, "{repaired}");
        assert_eq!(route_to_node2(&lab, &block), route, "up put the route back");
        let (code, _, shown) = verify(dir);
        assert_eq!(code, 0, "{shown}");

        // Break two: the same route with a path MTU 50 bytes under the overlay's, IPv6 only. node1's full-size
        // packet towards node2 meets it and is lost (the host answers "packet too big"; no router fragments IPv6);
        // IPv4 is untouched. (node2 -> node1 may pass: node1's echo reply, once told, is fragmented by its sender.)
        node_exec(&lab, "node1", &format!("ip -6 route replace {route} mtu 1400")).unwrap();
        let (code, v, shown) = verify(dir);
        assert_eq!(code, 3, "{shown}");
        let failed = failing(&v);
        assert!(failed.contains(&"node1>node2".to_string()), "{shown}");
        assert!(failed.iter().all(|f| f == "node1>node2" || f == "node2>node1"), "{shown}");
        for p in v["pairs"].as_array().unwrap().iter().filter(|p| p["ok"] != true) {
            assert!(ipv4_whole(p), "IPv4 still passes: {p}");
            assert_eq!(p["error"], "IPv6: a full-size packet with don't-fragment was lost", "{p}");
            assert_eq!(p["ipv6"]["seen_source"], p["ipv6"]["client"], "small packets still pass: {p}");
        }
        let text = vxmesh(dir, &["verify"]);
        assert!(text.stdout.contains("ok/FAIL mtu"), "{text}");

        let down = vxmesh(dir, &["down", "--yes"]);
        assert_eq!(down.code, 0, "{down}");
    }

    /// Hosts without docker: the switches prove IPv6 switch to switch, and a switch whose IPv6 address is gone
    /// fails its pairs over IPv6 only.
    #[test]
    fn without_docker_the_switches_prove_both_families() {
        let Some(lab) = Lab::new("vrfy6l")
            .nodes(3)
            .light()
            .inventory(|i| i.cluster("docker", "{mode: none}").cluster("cidr6", "'fd42:7:1::/48'"))
            .create()
        else {
            return;
        };
        let dir = lab.work();
        let up = vxmesh(dir, &["up", "--no-verify"]);
        assert_eq!(up.code, 0, "{up}");
        let (code, v, shown) = verify(dir);
        assert_eq!(code, 0, "{shown}");
        let pairs = v["pairs"].as_array().unwrap();
        assert_eq!(pairs.len(), 6, "{shown}");
        for p in pairs {
            assert!(p["ok"] == true && p["ipv6"]["ok"] == true && p["ipv6"]["rtt_ms"].is_number(), "{p}");
            assert_eq!(
                (&p["ipv6"]["full_size"], &p["ipv6"]["oversize_refused"]),
                (&Value::Bool(true), &Value::Bool(true))
            );
        }
        // node3's sw0 loses its IPv6 address: every pair with node3 fails over IPv6, and only over IPv6.
        node_exec(&lab, "node3", "ip -6 addr flush dev sw0 scope global").unwrap();
        let (code, v, shown) = verify(dir);
        assert_eq!(code, 3, "{shown}");
        assert_eq!(failing(&v), ["node1>node3", "node2>node3", "node3>node1", "node3>node2"], "{shown}");
        for p in v["pairs"].as_array().unwrap() {
            assert!(p["rtt_ms"].is_number() && p["full_size"] == true, "IPv4 still passes: {p}");
            if p["ok"] != true {
                assert!(p["error"].as_str().unwrap().starts_with("IPv6: "), "{p}");
            }
        }
        let down = vxmesh(dir, &["down", "--yes"]);
        assert_eq!(down.code, 0, "{down}");
    }
}
