//! Facts parsers and the diff on output recorded from a real host (tests/fixtures/record.sh).

use vxmesh::components::docker_network::DockerNetworkFacts;
use vxmesh::components::ovs::{self, OvsFacts};
use vxmesh::converge::{self as diff, preflight};
use vxmesh::facts::HostFacts;

use crate::util::{plan_of, read_fixture};

fn vm1() -> vxmesh::plan::NodePlan {
    let (_, plan) = plan_of(&read_fixture("three-nodes.yaml"));
    plan.node("vm1").unwrap().clone()
}

fn facts(name: &str) -> HostFacts {
    diff::parse_for(&vm1(), &read_fixture(&format!("facts/{name}.txt"))).unwrap()
}

#[test]
fn converged_host_needs_nothing() {
    let steps = diff::diff(&vm1(), &facts("converged-host"));
    assert!(steps.is_empty(), "a host built by `vxmesh render` still needs: {steps:#?}");
}

#[test]
fn converged_host_facts_read_right() {
    let f = facts("converged-host");
    let o = f.part::<OvsFacts>().unwrap();
    assert_eq!(f.os["ID"], "debian");
    assert_eq!(f.tools["ovs-vsctl"].path, "/usr/bin/ovs-vsctl", "{:?}", f.tools);
    assert!(!f.tools["docker"].version.is_empty(), "the docker daemon answered: {:?}", f.tools);
    assert_eq!(o.bridges["sw0"].datapath_type, "netdev");
    assert_eq!(o.bridges["sw0"].ports, ["sw0", "vx-vm2", "vx-vm3", "vxm-sw0"]);
    assert!(o.ports["vx-vm2"].protected);
    assert_eq!(o.interfaces["vx-vm3"].options["remote_ip"], "192.168.122.83");
    assert_eq!(o.interfaces["vx-vm3"].bfd["enable"], "true");
    assert_eq!(o.interfaces["sw0"].mtu_request, Some(1450));
    assert_eq!(f.links["sw0"].addrs, ["172.30.0.1/12".parse().unwrap()]);
    assert_eq!(f.links["vxm-dkr"].master.as_deref(), Some("br-vxmesh"));
    assert_eq!(f.links["vxm-sw0"].kind, "veth");
    assert_eq!(f.mtu_of_device_with("192.168.122.81".parse().unwrap()), Some(1500));
    let net = f.part::<DockerNetworkFacts>().unwrap().0.as_ref().unwrap();
    assert_eq!(net.subnet.as_deref(), Some("172.18.0.0/16"));
    assert_eq!(net.options["com.docker.network.driver.mtu"], "1450");
    assert_eq!(f.iptables.chain("nat", "VXMESH-NAT").unwrap().len(), 2);
    assert_eq!(f.sysctls["net.ipv4.ip_forward"], "1");
    assert!(!f.tx_offload["vxm-sw0"]);
    assert!(f.routes.iter().any(|r| r.dst == "172.16.0.0/12" && r.dev.as_deref() == Some("sw0")), "{:?}", f.routes);
}

#[test]
fn bare_host_needs_the_full_build_with_a_known_mtu() {
    let f = facts("bare-host");
    let o = f.part::<OvsFacts>().unwrap();
    assert!(o.reachable && o.bridges.is_empty());
    assert!(f.part::<DockerNetworkFacts>().unwrap().0.is_none());
    let steps = diff::diff(&vm1(), &f);
    let offline = diff::diff(&vm1(), &HostFacts::default());
    // The bare host differs from "nothing known" only where it already matches (IPv4 forwarding was on).
    // Offline, the script looks for docker's DOCKER-USER chain itself; the host's facts name it: same step.
    let same = |d: &str| d.split(" and jump to it first").next().unwrap_or(d).to_string();
    let bare: Vec<String> = steps.iter().map(|s| same(&s.description)).collect();
    let missing: Vec<String> = offline.iter().map(|s| same(&s.description)).filter(|d| !bare.contains(d)).collect();
    assert_eq!(missing, ["set net.ipv4.ip_forward = 1"]);
    assert_eq!(f.sysctls["net.ipv4.ip_forward"], "1");
    assert!(
        steps.iter().all(|s| !s.change.to_json().to_string().contains("detect")),
        "MTU learnt from the host's underlay"
    );
}

#[test]
fn drift_is_repaired_and_nothing_else() {
    let steps = diff::diff(&vm1(), &facts("drifted-host"));
    let got: Vec<&str> = steps.iter().map(|s| s.description.as_str()).collect();
    assert_eq!(
        got,
        [
            "repair tunnel vx-vm2 to vm2: remote_ip is 192.168.122.99, want 192.168.122.82",
            "repair tunnel vx-vm3 to vm3: not protected (loop risk)",
            "program iptables nat/VXMESH-NAT (2 rules) and jump to it first from POSTROUTING",
        ]
    );
    assert!(matches!(steps[0].change_as(), Some(ovs::Change::Tunnel { repair, .. }) if !repair.is_empty()));
}

#[test]
fn docker_inspect_fixture_matches_the_gathered_section() {
    let f = facts("converged-host");
    let raw: serde_json::Value = serde_json::from_str(&read_fixture("facts/docker-network-inspect.json")).unwrap();
    assert_eq!(raw[0]["Name"], "vxmesh");
    assert_eq!(f.part::<DockerNetworkFacts>().unwrap().0.as_ref().unwrap().name, "vxmesh");
}

#[test]
fn a_cut_facts_output_is_refused() {
    let full = read_fixture("facts/converged-host.txt");
    let cut = &full[..full.len() / 2];
    assert!(diff::parse_for(&vm1(), cut).is_err());
}

#[test]
fn preflight_names_what_to_install_for_the_os() {
    let mut f = facts("converged-host");
    assert_eq!(preflight(&vm1(), &f), Vec::<String>::new());
    f.tools.remove("ovs-vsctl");
    let e = preflight(&vm1(), &f).join("; ");
    assert!(e.contains("missing ovs-vsctl") && e.contains("apt-get install openvswitch-switch"), "{e}");
    f.os.insert("ID".into(), "rocky".into());
    f.os.insert("ID_LIKE".into(), "rhel centos fedora".into());
    let e = preflight(&vm1(), &f).join("; ");
    assert!(e.contains("dnf install openvswitch"), "{e}");
}

#[test]
fn preflight_refuses_a_host_without_the_underlay_or_with_a_colliding_route() {
    let mut f = facts("converged-host");
    let node = vm1();
    f.routes.push(vxmesh::facts::Route { dst: "172.18.0.0/24".into(), dev: Some("eth1".into()), gateway: None });
    let e = preflight(&node, &f).join("; ");
    assert!(e.contains("collides with route 172.18.0.0/24 via eth1"), "{e}");
    let mut f = facts("converged-host");
    for l in f.links.values_mut() {
        l.addrs.retain(|a| a.addr().to_string() != "192.168.122.81");
    }
    let e = preflight(&node, &f).join("; ");
    assert!(e.contains("no interface on this host has the underlay address 192.168.122.81"), "{e}");
}

/// The kinds of `comps`' pieces, in list order.
fn kinds(comps: &vxmesh::components::HostComponents<'_>) -> Vec<vxmesh::components::Kind> {
    comps.pieces().map(|p| p.kind()).collect()
}

/// One list per host and purpose: `up` plans the node's pieces, `down` also looks at every firewall backend and at
/// what encryption may have left; `auto` plans the backend the facts pick, which then answers for itself.
#[test]
fn a_host_s_components_are_chosen_in_one_place() {
    use vxmesh::components::{HostComponents, Kind};
    use vxmesh::model::inventory::FirewallKind::{Firewalld, Iptables, Nftables};
    let n = vm1();
    let up = HostComponents::up(&n);
    let fw = |k| Kind::Firewall(k);
    assert_eq!(
        kinds(&up),
        [
            Kind::Sysctl,
            Kind::Veth,
            Kind::Ovs,
            Kind::DockerNetwork,
            Kind::Rules,
            Kind::Coexistence,
            fw(Iptables),
            Kind::Boot
        ]
    );
    let planned: Vec<Kind> = up.planned(&HostFacts::default()).map(|c| c.kind()).collect();
    assert_eq!(
        planned,
        [Kind::Sysctl, Kind::Veth, Kind::Ovs, Kind::DockerNetwork, Kind::Rules, Kind::Coexistence, fw(Iptables)]
    );
    let down = HostComponents::teardown(&n);
    assert_eq!(
        kinds(&down),
        [
            Kind::Sysctl,
            Kind::Veth,
            Kind::Ovs,
            Kind::DockerNetwork,
            // What an earlier IPv6 side left (its ip6tables chains): looked for at teardown, even without cidr6.
            Kind::Overlay6,
            Kind::Rules,
            Kind::Dns,
            fw(Iptables),
            fw(Nftables),
            fw(Firewalld),
            Kind::Wireguard,
            Kind::Boot
        ]
    );
    assert_eq!(down.planned(&HostFacts::default()).count(), 5, "down plans nothing but the node's own pieces");

    let (_, plan) = plan_of(&read_fixture("three-nodes.yaml").replace("firewall: iptables", "firewall: auto"));
    let auto = plan.node("vm1").unwrap();
    let comps = HostComponents::up(auto);
    assert_eq!(kinds(&comps)[6..], [fw(Iptables), fw(Nftables), fw(Firewalld), Kind::Boot], "all gathered");
    let mut nft_only = HostFacts::default();
    nft_only.tools.insert("nft".into(), vxmesh::facts::Tool { path: "/usr/sbin/nft".into(), version: String::new() });
    let firewalls = |f: &HostFacts| -> Vec<Kind> {
        comps.planned(f).map(|c| c.kind()).filter(|k| matches!(k, Kind::Firewall(_))).collect()
    };
    assert_eq!(firewalls(&nft_only), [fw(Nftables)]);
    assert_eq!(firewalls(&HostFacts::default()), [fw(Iptables)]);
    let steps = diff::diff(auto, &nft_only);
    assert!(steps.iter().any(|s| s.component == fw(Nftables)), "the picked backend's own diff");
    assert!(!steps.iter().any(|s| s.component == fw(Iptables)));
}

/// Without facts, the boot script is made from the diff's own steps: the same script as from the facts that only
/// say which firewall runs, which is what a host with facts gets.
#[test]
fn the_offline_boot_script_is_the_one_a_host_gets() {
    use vxmesh::components::boot;
    let n = vm1();
    let offline = diff::diff(&n, &HostFacts::default());
    let installed = offline.iter().find_map(|s| match s.change_as::<boot::Change>() {
        Some(boot::Change::BootUnit { script, .. }) => Some(script.clone()),
        _ => None,
    });
    let mut host = facts("bare-host");
    host.tools.clear();
    assert!(!host.is_empty(), "a host's facts are not the offline ones");
    assert_eq!(installed.as_deref(), Some(diff::boot_script(&n, &host).as_str()));
}
