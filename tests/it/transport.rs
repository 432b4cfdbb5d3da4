//! `converge`, the add/remove-node scopes and verification, driven through the `Transport` trait by hosts that
//! answer with recorded output: no root, no network, the same code paths as over SSH.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use vxmesh::converge::host::{self, Scope};
use vxmesh::converge::{Output, Transport};
use vxmesh::error::HostError;
use vxmesh::plan::NodePlan;

use crate::util::{plan_of, read_fixture};

/// A host that answers the facts script with a recording and every other script as `apply` says.
struct Recorded {
    facts: String,
    apply: Output,
    /// Every script it was sent, in order.
    sent: Mutex<Vec<String>>,
}

impl Recorded {
    fn new(facts: String) -> Recorded {
        Recorded { facts, apply: Output::default(), sent: Mutex::new(vec![]) }
    }

    fn sent(&self) -> Vec<String> {
        self.sent.lock().unwrap().clone()
    }
}

impl Transport for Recorded {
    fn run<'a>(&'a self, script: &'a str) -> BoxFuture<'a, Result<Output, HostError>> {
        self.sent.lock().unwrap().push(script.to_string());
        let out = if script.contains("\nmark end\n") {
            Output { stdout: self.facts.clone(), ..Output::default() }
        } else {
            self.apply.clone()
        };
        Box::pin(async move { Ok(out) })
    }
}

fn block<T>(f: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
}

fn node(yaml: &str, name: &str) -> NodePlan {
    plan_of(yaml).1.node(name).unwrap().clone()
}

fn vm1() -> NodePlan {
    node(&read_fixture("three-nodes.yaml"), "vm1")
}

fn quiet(_: &str) {}

#[test]
fn a_converged_host_gets_one_round_trip_and_no_change() {
    let h = Recorded::new(read_fixture("facts/converged-host.txt"));
    let applied = block(host::converge(&h, &vm1(), false, &Scope::Whole, &quiet)).unwrap();
    assert!(applied.steps.is_empty(), "{:?}", applied.steps);
    assert_eq!(h.sent().len(), 1, "facts only");
}

#[test]
fn a_bare_host_gets_the_missing_steps_in_one_script() {
    let h = Recorded::new(read_fixture("facts/bare-host.txt"));
    let applied = block(host::converge(&h, &vm1(), false, &Scope::Whole, &quiet)).unwrap();
    let sent = h.sent();
    assert_eq!(sent.len(), 2, "facts, then one apply script");
    assert!(applied.steps.len() > 10, "{:?}", applied.steps);
    for (i, d) in applied.steps.iter().enumerate() {
        assert!(sent[1].contains(&format!("# [{}", i + 1)) || sent[1].contains(d), "step {d} is in the script");
    }
    assert!(sent[1].contains("step done 'all steps applied'"));
    // plan: the same diff, nothing sent after the facts.
    let h = Recorded::new(read_fixture("facts/bare-host.txt"));
    let dry = block(host::converge(&h, &vm1(), true, &Scope::Whole, &quiet)).unwrap();
    assert_eq!(dry.steps, applied.steps);
    assert_eq!(h.sent().len(), 1);
}

#[test]
fn a_failed_step_is_named_with_its_stderr() {
    let mut h = Recorded::new(read_fixture("facts/bare-host.txt"));
    h.apply = Output {
        stdout: String::new(),
        stderr: "### vxmesh-step 1 set net.ipv4.ip_forward = 1\n### vxmesh-step 2 create the veth pair\nRTNETLINK answers: File exists\n".into(),
        code: 2,
    };
    let e = block(host::converge(&h, &vm1(), false, &Scope::Whole, &quiet)).unwrap_err();
    assert_eq!(
        e,
        HostError::StepFailed {
            step: "2".into(),
            description: "create the veth pair".into(),
            code: 2,
            stderr: "RTNETLINK answers: File exists".into()
        }
    );
    assert_eq!(e.kind(), "step-failed");
}

#[test]
fn preflight_stops_before_any_change() {
    let facts = read_fixture("facts/bare-host.txt");
    let without_ovs: String =
        facts.lines().filter(|l| !l.starts_with("ovs-vsctl\t")).map(|l| format!("{l}\n")).collect();
    let h = Recorded::new(without_ovs);
    let e = block(host::converge(&h, &vm1(), false, &Scope::Whole, &quiet)).unwrap_err();
    assert!(matches!(&e, HostError::Preflight(p) if p[0].contains("missing ovs-vsctl")), "{e}");
    assert_eq!(h.sent().len(), 1, "nothing but the facts script was sent");
}

#[test]
fn adding_a_node_touches_only_its_tunnel_route_firewall_and_boot_unit_on_the_others() {
    // vm1 was built for three nodes; a fourth joins.
    let yaml = read_fixture("three-nodes.yaml") + "  - {name: vm4, host: 192.168.122.84}\n";
    let vm1 = node(&yaml, "vm1");
    let mut drifted = Recorded::new(read_fixture("facts/drifted-host.txt"));
    drifted.apply = Output::default();
    let applied = block(host::converge(&drifted, &vm1, false, &Scope::Peer("vm4".into()), &quiet)).unwrap();
    assert_eq!(
        applied.steps,
        [
            "add tunnel vx-vm4 to vm4 (192.168.122.84)",
            "route 172.16.0.0/16 (vm4) via 172.30.0.4 on sw0",
            "program iptables filter/VXMESH-VXLAN (4 rules) and jump to it first from INPUT",
            "install the boot unit (vxmesh.service runs /etc/vxmesh/boot.sh after OVS and docker)",
        ]
    );
    // The drift recorded on that host is another matter: reported, left for `up`.
    assert_eq!(applied.left_alone.len(), 3, "{:?}", applied.left_alone);
    assert!(applied.left_alone[0].starts_with("repair tunnel vx-vm2"), "{:?}", applied.left_alone);
}

#[test]
fn removing_a_node_withdraws_only_its_tunnel_route_and_firewall_entry() {
    let yaml =
        read_fixture("three-nodes.yaml").replace("  - {name: vm3, host: 192.168.122.83, subnet: 172.20.0.0/16}\n", "");
    let vm1 = node(&yaml, "vm1");
    assert_eq!(vm1.tunnels().count(), 1, "{yaml}");
    let h = Recorded::new(read_fixture("facts/converged-host.txt"));
    let applied = block(host::converge(&h, &vm1, false, &Scope::Peer("vm3".into()), &quiet)).unwrap();
    assert_eq!(
        applied.steps,
        [
            "remove tunnel vx-vm3 (no longer a peer)",
            "remove route 172.20.0.0/16 via 172.30.0.3 on sw0 (no peer's)",
            "program iptables filter/VXMESH-VXLAN (2 rules) and jump to it first from INPUT",
            "install the boot unit (vxmesh.service runs /etc/vxmesh/boot.sh after OVS and docker)",
        ]
    );
    assert!(applied.left_alone.is_empty(), "{:?}", applied.left_alone);
}

#[test]
fn down_refuses_a_host_whose_network_still_has_containers() {
    let facts = read_fixture("facts/converged-host.txt");
    // The section lists every docker network (one JSON array); plant a container on the mesh's.
    let mark = "### vxmesh:docker-networks\n";
    let start = facts.find(mark).unwrap();
    let after = start + mark.len();
    let end = after + facts[after..].find("### vxmesh:").unwrap();
    let raw: serde_json::Value = serde_json::from_str(&facts[after..end]).unwrap();
    let mut with_container = raw.clone();
    for n in with_container.as_array_mut().unwrap() {
        if n["Name"] == "vxmesh" {
            n["Containers"] = serde_json::json!({"0123456789abcdef": {"Name": "web-1"}});
        }
    }
    let section = |v: &serde_json::Value| format!("{mark}{}\n", serde_json::to_string(v).unwrap());
    let planted = format!("{}{}{}", &facts[..start], section(&with_container), &facts[end..]);
    let h = Recorded::new(planted);
    let e = block(host::remove(&h, &vm1(), &quiet)).unwrap_err();
    assert!(matches!(&e, HostError::Refused(r) if r[0].contains("web-1")), "{e}");
    assert_eq!(h.sent().len(), 1, "nothing was changed");
    // Without containers, the teardown runs, and removes exactly what is there.
    let h = Recorded::new(format!("{}{}{}", &facts[..start], section(&raw), &facts[end..]));
    let applied = block(host::remove(&h, &vm1(), &quiet)).unwrap();
    assert_eq!(h.sent().len(), 2);
    assert!(applied.steps.iter().any(|s| s == "remove docker network vxmesh"), "{:?}", applied.steps);
    assert!(applied.steps.iter().any(|s| s == "delete OVS bridge sw0 and its tunnels"), "{:?}", applied.steps);
    assert_eq!(applied.steps.last().unwrap(), "remove the boot unit and /etc/vxmesh");
    // A host with nothing of the mesh on it: nothing to remove, nothing sent.
    let h = Recorded::new(read_fixture("facts/bare-host.txt"));
    let applied = block(host::remove(&h, &vm1(), &quiet)).unwrap();
    assert!(applied.steps.is_empty(), "{:?}", applied.steps);
    assert_eq!(h.sent().len(), 1);
}

/// Verification over recorded hosts: listeners answer with their address, clients with what they saw.
struct VerifyHost {
    listener: &'static str,
    client: String,
}

impl Transport for VerifyHost {
    fn run<'a>(&'a self, script: &'a str) -> BoxFuture<'a, Result<Output, HostError>> {
        let stdout = if script.contains("httpd") {
            self.listener.to_string()
        } else if script.contains("echo \"me $me $mtu\"") {
            self.client.clone()
        } else {
            String::new()
        };
        Box::pin(async move { Ok(Output { stdout, ..Output::default() }) })
    }
}

#[test]
fn verification_assembles_what_recorded_hosts_print() {
    let (_, plan) = plan_of(&read_fixture("three-nodes.yaml"));
    let hosts: Vec<vxmesh::remote::executor::Connected> = [
        ("172.18.0.2", "me 172.18.0.3 1450\npair vm2 0.4 172.18.0.3\npair vm3 0.5 172.18.0.3\nmtu vm2 ok refused\nmtu vm3 ok refused\nswitch vm2 ok\nswitch vm3 ok\n"),
        ("172.16.0.2", "me 172.16.0.3 1450\npair vm1 0.4 172.16.0.3\npair vm3 0.5 10.9.9.9\nmtu vm1 ok refused\nmtu vm3 fail refused\nswitch vm1 ok\nswitch vm3 fail\n"),
        ("172.19.0.2", "me 172.19.0.3 1450\npair vm1 0.4 172.19.0.3\npair vm2 - -\nmtu vm1 ok refused\nmtu vm2 ok lost\nswitch vm1 ok\nswitch vm2 ok\n"),
    ]
    .into_iter()
    .zip(&plan.nodes)
    .map(|((listener, client), n)| vxmesh::remote::executor::Connected {
        node: Arc::new(n.clone()),
        session: Ok(Arc::new(VerifyHost { listener, client: client.to_string() }) as Arc<dyn Transport>),
    })
    .collect();
    let opts = vxmesh::remote::executor::Options {
        forks: 10,
        policy: vxmesh::remote::ssh::HostKeyPolicy { known_hosts: "/nonexistent".into(), accept_new: false },
        timeouts: Default::default(),
        progress: false,
        stop: vxmesh::remote::interrupt::Stop::new(),
        limit: vec![],
        record: None,
        transcript: None,
    };
    let v = vxmesh::verify::VerifyOptions {
        sample: None,
        only: None,
        bandwidth: false,
        outside: None,
        image: "busybox".into(),
    };
    let r = block(vxmesh::verify::verify(&hosts, &plan, &opts, &v, "t"));
    assert!(!r.ok);
    let cell = |a: &str, b: &str| r.pairs.iter().find(|p| p.from == a && p.to == b).unwrap();
    assert!(cell("vm1", "vm2").ok && cell("vm1", "vm3").ok && cell("vm2", "vm1").ok && cell("vm3", "vm1").ok);
    assert!(cell("vm2", "vm3").error.as_deref().unwrap().starts_with("NAT: the listener saw 10.9.9.9"), "{r:?}");
    assert_eq!(cell("vm3", "vm2").error.as_deref(), Some("no answer from the listener"));
    assert_eq!(r.hosts[1].unreachable_switches, ["vm3"]);
}

/// Runs a verify script with `sh` under stub tools (docker, nsenter, wget, ping, iperf3, cat), each logging its
/// arguments one a line to `LOG/<tool>`; returns what the script printed, its lines sorted (probes run at once).
fn run_with_stubs(script: &str) -> (Vec<String>, crate::util::TempDir) {
    let dir = crate::util::TempDir::new("verify-stubs");
    let bin = dir.0.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = |tool: &str| format!("printf '%s\\n' \"$@\" >> \"$LOG/{tool}\"; echo -- >> \"$LOG/{tool}\"\n");
    let stubs = [
        ("docker", format!("{}[ \"$1\" = inspect ] && echo '999999999 172.18.0.3'\ntrue\n", log("docker"))),
        // nsenter -t PID [-m] -n [--] CMD...: runs CMD here; the container's eth0 has MTU 1450.
        (
            "nsenter",
            format!(
                "{}while [ $# -gt 0 ]; do case $1 in -t) shift 2 ;; -m|-n) shift ;; --) shift; break ;; *) break ;; esac; done\n\
                 [ \"$1\" = cat ] && {{ echo 1450; exit 0; }}\nexec \"$@\"\n",
                log("nsenter")
            ),
        ),
        ("wget", format!("{}echo 172.18.0.9\n", log("wget"))),
        // iputils' ping on a path of MTU 1450: 1422 bytes of payload pass, 1423 are refused by the sender.
        (
            "ping",
            format!(
                "{}[ \"$1\" = -V ] && {{ echo 'ping from iputils 20211215'; exit 0; }}\n\
                 case \" $* \" in *' -s 1423 '*) echo 'ping: local error: message too long, mtu=1450'; exit 1 ;; esac\n\
                 echo '64 bytes from 10.0.0.1: icmp_seq=1 ttl=64 time=0.42 ms'\n\
                 echo 'rtt min/avg/max/mdev = 0.30/0.42/0.50/0.08 ms'\n",
                log("ping")
            ),
        ),
        ("iperf3", format!("{}case \" $* \" in *' -c '*) echo '{{}}' ;; esac\n", log("iperf3"))),
        ("cat", format!("{}echo 1450\n", log("cat"))),
    ];
    for (name, body) in stubs {
        let p = bin.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}")).unwrap();
        use std::os::unix::fs::PermissionsExt;
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

/// The arguments each call of `tool` got, one call a list.
fn calls(dir: &crate::util::TempDir, tool: &str) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(dir.0.join(tool)).unwrap_or_default();
    text.split_terminator("--\n").map(|c| c.lines().map(String::from).collect()).collect()
}

fn verify_node() -> NodePlan {
    let (_, plan) = plan_of(&read_fixture("three-nodes.yaml"));
    let mut n = plan.nodes[0].clone();
    // Validation would refuse it; the scripts must carry it as one word anyway.
    n.docker.network = "mesh net'$(id)".into();
    n
}

#[test]
fn verify_client_probes_every_target_through_the_container() {
    use vxmesh::verify::scripts::client_script;
    let n = verify_node();
    let ip = |s: &str| s.parse().unwrap();
    let script = client_script(
        &n,
        "t",
        &[("vm2".into(), ip("172.19.0.3"))],
        &[("vm2".into(), ip("172.30.0.2"))],
        Some(ip("192.0.2.1")),
    );
    let (out, dir) = run_with_stubs(&script);
    assert_eq!(
        out,
        ["me 172.18.0.3 1450", "mtu vm2 ok refused", "outside ok", "pair vm2 0.42 172.18.0.9 1", "switch vm2 ok"]
    );
    let inspect =
        format!("{{{{.State.Pid}}}} {{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}", n.docker.network);
    assert_eq!(calls(&dir, "docker"), [vec!["inspect".to_string(), "-f".into(), inspect, "vxmesh-verify-t".into()]]);
    assert_eq!(calls(&dir, "wget"), [["-qO-", "http://172.19.0.3:7777/cgi-bin/ip"]]);
    let pings: Vec<Vec<String>> = calls(&dir, "ping");
    for want in [
        "-c2 -i 0.1 -W2 172.19.0.3",
        "-c1 -W2 -w2 -M do -s 1422 172.19.0.3",
        "-c1 -W0.1 -M do -s 1423 172.19.0.3",
        "-c1 -W2 172.30.0.2",
        "-c1 -W2 192.0.2.1",
    ] {
        assert!(pings.iter().any(|p| p.join(" ") == want), "no `ping {want}` in {pings:?}");
    }
}

#[test]
fn verify_switch_probes_run_on_the_host() {
    use vxmesh::verify::scripts::switch_script;
    let n = verify_node();
    let (out, dir) = run_with_stubs(&switch_script(&n, &[("vm2".into(), "172.30.0.2".parse().unwrap())]));
    assert_eq!(out, ["me 172.30.0.1 1450", "mtu vm2 ok refused", "pair vm2 0.42 -"]);
    assert_eq!(calls(&dir, "cat"), [["/sys/class/net/sw0/mtu"]]);
    let pings: Vec<String> = calls(&dir, "ping").iter().map(|p| p.join(" ")).collect();
    for want in
        ["-c3 -i 0.3 -W3 172.30.0.2", "-c1 -W2 -w2 -M do -s 1422 172.30.0.2", "-c1 -W0.1 -M do -s 1423 172.30.0.2"]
    {
        assert!(pings.iter().any(|p| p == want), "no `ping {want}` in {pings:?}");
    }
    assert!(calls(&dir, "nsenter").is_empty(), "the switch's probes run on the host");
}

#[test]
fn verify_bandwidth_and_cleanup_scripts_call_their_tools_as_before() {
    use vxmesh::verify::scripts::{bandwidth_client, bandwidth_server, cleanup_script};
    let ip = |s: &str| -> std::net::Ipv4Addr { s.parse().unwrap() };
    let (out, dir) = run_with_stubs(&bandwidth_server("t", ip("192.168.122.82")));
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(calls(&dir, "docker"), [["inspect", "-f", "{{.State.Pid}}", "vxmesh-verify-t"]]);
    assert_eq!(
        calls(&dir, "iperf3"),
        [vec!["-s", "-1", "-D", "-p", "5201"], vec!["-s", "-1", "-D", "-p", "5202", "-B", "192.168.122.82"]]
    );
    let (out, dir) =
        run_with_stubs(&bandwidth_client("t", ip("172.19.0.3"), ip("192.168.122.81"), ip("192.168.122.82")));
    let fragments = out.iter().find(|l| l.starts_with("fragments ")).cloned().unwrap_or_default();
    assert!(fragments["fragments ".len()..].parse::<i64>().is_ok(), "{out:?}");
    let rest: Vec<&String> = out.iter().filter(|l| !l.starts_with("fragments ")).collect();
    assert_eq!(rest, ["### end", "### overlay", "### underlay", "overlay-rtt 0.42", "underlay-rtt 0.42", "{}", "{}"]);
    assert_eq!(
        calls(&dir, "iperf3"),
        [
            vec!["-c", "172.19.0.3", "-p", "5201", "-t", "3", "-J"],
            vec!["-c", "192.168.122.82", "-p", "5202", "-t", "3", "-J", "-B", "192.168.122.81"]
        ]
    );
    let (out, dir) = run_with_stubs(&cleanup_script("t"));
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(calls(&dir, "docker"), [["rm", "-f", "vxmesh-verify-t"]]);
}

#[test]
fn verify_listener_starts_the_container_with_every_value_as_one_argument() {
    use vxmesh::verify::scripts::listener_script;
    let n = verify_node();
    let script = listener_script(&n, "t", "busy box;$(touch x)");
    let check = std::process::Command::new("sh").args(["-n", "-c", &script]).output().unwrap();
    assert!(check.status.success(), "sh -n: {}", String::from_utf8_lossy(&check.stderr));
    assert!(script.contains("--network 'mesh net'\\''$(id)' 'busy box;$(touch x)' sh -c "), "{script}");
    assert!(script.contains("--label vxmesh.verify=t "), "{script}");
}
