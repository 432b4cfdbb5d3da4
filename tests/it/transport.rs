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
    assert_eq!(vm1.tunnels.len(), 1, "{yaml}");
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
