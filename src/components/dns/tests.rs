use std::path::Path;

use super::*;
use crate::components::core::Mtu;
use crate::model::{inventory, ipam};
use crate::plan::{ClusterPlan, plan};

const INVENTORY: &str = "cluster:\n  cidr: 172.16.0.0/12\n  switch_cidr: 172.30.0.0/16\n  firewall: iptables\n  docker: {network: apps}\n  dns: {enabled: true}\n\
nodes:\n  - {name: vm1, host: 192.168.122.81, subnet: 172.18.0.0/16}\n  - {name: VM2, host: 192.168.122.82, subnet: 172.19.0.0/16}\n  - {name: vm3, host: 192.168.122.83, subnet: 172.20.0.0/16}\n";

fn cluster() -> (inventory::Inventory, ClusterPlan) {
    let inv = inventory::parse(Path::new("t.yaml"), INVENTORY).expect("valid inventory");
    let lock = ipam::assign(&inv, None).expect("addresses");
    let p = plan(&inv, &lock);
    (inv, p)
}

/// The same cluster with a node whose name is not a DNS label (`vm_3`): the inventory refuses that with names on, so
/// it is planned with names off and given the names settings by hand, as a host's own check must still see it.
fn odd_cluster() -> (inventory::Inventory, ClusterPlan) {
    let odd = INVENTORY.replace("name: vm3", "name: vm_3").replace("enabled: true", "enabled: false");
    let inv = inventory::parse(Path::new("t.yaml"), &odd).expect("valid with names off");
    let p = plan(&inv, &ipam::assign(&inv, None).expect("addresses"));
    (inv, p)
}

fn gathered() -> HostFacts {
    let mut f = HostFacts::default();
    f.gathered = true;
    f
}

fn ctx() -> Ctx {
    Ctx { mtu: Mtu::Value(1450) }
}

/// Facts of a host that has everything `diff` asks for.
fn converged(spec: &Spec) -> HostFacts {
    let mut f = gathered();
    for c in chains::planned(spec) {
        let t = f.iptables.tables.entry(c.table.to_string()).or_default();
        t.insert(c.chain.to_string(), c.rules.clone());
        t.entry(c.parent.to_string()).or_default().push(c.jump.clone());
    }
    let hash = |s: &str| files::hash_of(s).map(str::to_string);
    f.set_part(DnsFacts {
        dnsmasq: true,
        curl: true,
        systemd: true,
        config: hash(&files::dnsmasq_conf(spec)),
        watcher: hash(&files::watcher(spec)),
        server_unit: hash(&files::server_unit()),
        watch_unit: hash(&files::watch_unit()),
        enabled: true,
        server_active: true,
        watch_active: true,
        leftovers: true,
    });
    f
}

#[test]
fn the_spec_follows_the_plan_and_leaves_out_peers_that_are_not_labels() {
    let (inv, _) = cluster();
    let (_, p) = odd_cluster();
    let spec = Spec::new(p.node("vm1").unwrap(), &inv.cluster.dns).unwrap();
    assert_eq!(spec.domain, "vxmesh");
    assert_eq!(spec.node, "vm1");
    assert_eq!(spec.listen.to_string(), "172.30.0.2", "the switch address");
    assert_eq!(spec.subnet.to_string(), "172.18.0.0/16");
    let peers: Vec<(&str, String, String)> =
        spec.peers.iter().map(|p| (p.label.as_str(), p.switch.to_string(), p.subnet.to_string())).collect();
    assert_eq!(peers, vec![("vm2", "172.30.0.1".to_string(), "172.19.0.0/16".to_string())]);
}

#[test]
fn the_server_listens_on_the_switch_address_only_and_forwards_nothing() {
    let (inv, p) = cluster();
    let spec = Spec::new(p.node("vm1").unwrap(), &inv.cluster.dns).unwrap();
    let conf = files::dnsmasq_conf(&spec);
    for line in ["listen-address=172.30.0.2", "bind-dynamic", "no-resolv", "no-hosts", "local=/vxmesh/"] {
        assert!(conf.lines().any(|l| l == line), "{line} missing in\n{conf}");
    }
    assert!(!conf.lines().any(|l| l.starts_with("server=")), "{conf}");
    // verify reads the host's domain from its first `local=` line.
    assert_eq!(conf.lines().find(|l| l.starts_with("local=")), Some("local=/vxmesh/"));
    let nat = &chains::planned(&spec)[1];
    assert_eq!(
        nat.rules[0],
        "-p udp -m udp --dport 53 -m string --hex-string \"|0676786d65736800|\" --algo bm --icase -m comment \
         --comment vxmesh -j DNAT --to-destination 172.30.0.2:53"
    );
    // 16.172.in-addr.arpa: PTR queries for the mesh's addresses come here too.
    assert!(nat.rules[1].contains("\"|0231360331373207696e2d61646472046172706100|\""), "{}", nat.rules[1]);
    assert_eq!(nat.rules.len(), 1 + 15, "the /12's sixteen /16 zones but docker0's");
    assert!(conf.contains("local=/16.172.in-addr.arpa/\nlocal=/18.172.in-addr.arpa/"), "{conf}");
    assert_eq!(nat.jump, "-i br-apps -p udp -m udp --dport 53 -m comment --comment vxmesh -j VXMESH-DNSNAT");
}

#[test]
fn a_bare_host_gets_everything_and_a_converged_one_nothing() {
    let (inv, p) = cluster();
    let node = p.node("vm1").unwrap();
    let names = Names { node, settings: &inv.cluster.dns };
    let spec = names.spec().unwrap();
    let bare = gathered();
    let steps = names.diff(&bare, &ctx());
    let kinds: Vec<String> = steps.iter().map(|s| s.change.to_json()["change"].as_str().unwrap().to_string()).collect();
    assert_eq!(kinds, ["names_chain", "names_chain", "install_names"]);
    assert!(steps[2].commands.len() > 5 && !steps[2].at_boot, "systemd starts the units at boot");
    assert!(steps[0].at_boot && steps[1].at_boot, "the kernel forgets rules");

    let mut host = converged(&spec);
    assert!(names.diff(&host, &ctx()).is_empty(), "{:?}", names.diff(&host, &ctx()));

    // A stopped watcher is drift, repaired by starting the units.
    let mut f = host.part::<DnsFacts>().unwrap().clone();
    f.watch_active = false;
    host.set_part(f);
    let steps = names.diff(&host, &ctx());
    assert_eq!(steps.len(), 1);
    assert!(steps[0].change_as::<Change>().is_some_and(|c| matches!(c, Change::StartNames)));

    // A jump to our chain twice, or a rule changed by hand, is drift too.
    let mut host = converged(&spec);
    host.iptables
        .tables
        .get_mut("filter")
        .unwrap()
        .get_mut("INPUT")
        .unwrap()
        .push(chains::planned(&spec)[0].jump.clone());
    assert_eq!(names.diff(&host, &ctx()).len(), 1);
    let mut host = converged(&spec);
    host.iptables.tables.get_mut("nat").unwrap().get_mut(names::DNS_NAT_CHAIN).unwrap().clear();
    assert_eq!(names.diff(&host, &ctx()).len(), 1);
    // A changed domain rewrites the configuration.
    let other = DnsSettings { enabled: true, domain: "mesh.example".into() };
    let renamed = Names { node, settings: &other };
    assert!(
        renamed
            .diff(&converged(&spec), &ctx())
            .iter()
            .any(|s| s.change_as::<Change>().is_some_and(|c| matches!(c, Change::InstallNames { .. })))
    );
}

#[test]
fn reverse_zones_cover_the_mesh_on_octet_boundaries() {
    let net = |s: &str| s.parse::<ipnet::Ipv4Net>().unwrap();
    let z = reverse_zones(net("172.16.0.0/12"), &[net("172.17.0.0/16")]);
    assert_eq!(z.len(), 15);
    assert_eq!((z[0].as_str(), z[14].as_str()), ("16.172.in-addr.arpa", "31.172.in-addr.arpa"));
    assert!(!z.contains(&"17.172.in-addr.arpa".to_string()));
    assert_eq!(reverse_zones(net("10.0.0.0/8"), &[]), ["10.in-addr.arpa"]);
    assert_eq!(reverse_zones(net("10.1.2.0/23"), &[]), ["2.1.10.in-addr.arpa", "3.1.10.in-addr.arpa"]);
}

#[test]
fn facts_are_read_back_as_the_gather_script_prints_them() {
    let f = facts::parse_text(
        "tool dnsmasq\nsystemd\nconfig 0123456789abcdef\nwatcher aa\nlink server\nlink watch\nactive server\nnoise x\n",
    );
    assert!(f.dnsmasq && !f.curl && f.systemd && f.enabled && f.server_active && !f.watch_active);
    assert_eq!(f.config.as_deref(), Some("0123456789abcdef"));
    assert!(f.anything());
    assert!(!facts::parse_text("tool dnsmasq\ntool curl\nsystemd\n").anything());
}

#[test]
fn preflight_names_the_packages_and_what_else_is_missing() {
    let (inv, p) = cluster();
    let mut host = gathered();
    host.set_part(facts::parse_text("tool curl\n"));
    let (_, odd_plan) = odd_cluster();
    let names = Names { node: odd_plan.node("vm_3").unwrap(), settings: &inv.cluster.dns };
    let problems = names.preflight(&host).join("\n");
    assert!(problems.contains("install with: apt-get install -y dnsmasq-base"), "{problems}");
    assert!(problems.contains("does not run systemd"), "{problems}");
    assert!(problems.contains("`vm_3` is not a DNS label"), "{problems}");
    host.set_part(facts::parse_text("tool curl\ntool dnsmasq\nsystemd\n"));
    assert!(Names { node: p.node("vm1").unwrap(), settings: &inv.cluster.dns }.preflight(&host).is_empty());
}

#[test]
fn teardown_removes_what_is_there_and_nothing_when_nothing_is() {
    let (inv, p) = cluster();
    let spec = Spec::new(p.node("vm1").unwrap(), &inv.cluster.dns).unwrap();
    let steps = Remains.teardown(&converged(&spec));
    assert_eq!(steps.len(), 3, "{steps:?}");
    let script = crate::shell::render(steps.iter().flat_map(|s| &s.commands), 0);
    for needle in [names::DNS_UNIT_PATH, names::DNS_RUN_DIR, "-X VXMESH-DNSNAT", "-X VXMESH-DNS\n"] {
        assert!(script.contains(needle), "{needle} not in\n{script}");
    }
    let mut bare = gathered();
    bare.set_part(facts::parse_text("tool dnsmasq\ntool curl\nsystemd\n"));
    assert!(Remains.teardown(&bare).is_empty());
}

/// The watcher's own functions, run by sh against stub `docker` and `curl` that print hostile names.
mod watcher {
    use super::*;
    use std::process::Command;

    fn setup(tag: &str) -> (std::path::PathBuf, String) {
        let (inv, p) = cluster();
        let spec = Spec::new(p.node("vm1").unwrap(), &inv.cluster.dns).unwrap();
        let dir = std::env::temp_dir().join(format!("vxmesh-dns-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        let script = files::watcher(&spec);
        let lib = script.split("\n# main\n").next().unwrap();
        let lib = lib.replace(
            &format!("run={}\n", names::DNS_RUN_DIR),
            &format!("run={}\n", crate::shell::quote(&dir.join("run").to_string_lossy())),
        );
        assert!(lib.contains(&dir.to_string_lossy().to_string()), "the test must not touch {}", names::DNS_RUN_DIR);
        (dir, lib)
    }

    fn stub(dir: &Path, name: &str, body: &str) {
        let p = dir.join("bin").join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn run(dir: &Path, lib: &str, main: &str) -> (String, String) {
        let path = format!("{}:{}", dir.join("bin").display(), std::env::var("PATH").unwrap_or_default());
        let out = Command::new("sh").arg("-c").arg(format!("{lib}\n{main}")).env("PATH", path).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        (String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
    }

    #[test]
    fn only_labels_of_the_hosts_subnet_reach_the_hosts_file() {
        let (dir, lib) = setup("own");
        let marker = dir.join("pwned");
        // What `docker inspect --format` prints with the watcher's template: names and aliases `%q`-quoted.
        let inspect = [
            r#"0123456789ab 172.18.0.2 "0123456789ab" "Api" "web" "/web""#.to_string(),
            format!(
                r#"111111111111 172.18.0.3 "a;b" "c d" "e\n172.18.0.9 evil" "ok-1" "/x$(touch {m})""#,
                m = marker.display()
            ),
            r#"222222222222 10.9.9.9 "far" "/far""#.to_string(),
            r#"333333333333 172.18.0.4 "-bad" "bad-" "Ünï" "dup" "/dup""#.to_string(),
            "444444444444 172.18.0.5 \"x\"\" \"/fake\"".to_string(),
            r#"555555555555  "/not-on-the-network""#.to_string(),
        ]
        .join("\n");
        stub(
            &dir,
            "docker",
            &format!("case $1 in ps) echo a; echo b ;; inspect) cat <<'EOF'\n{inspect}\nEOF\n;; esac\n"),
        );
        let (_, err) = run(&dir, &lib, "publish; cat \"$HOSTS/self\" \"$PUB/records\" >&2");
        let hosts = std::fs::read_to_string(dir.join("run/hosts/self")).unwrap();
        assert_eq!(
            hosts,
            "172.18.0.2 api.vm1.vxmesh api.vxmesh\n172.18.0.2 web.vm1.vxmesh web.vxmesh\n\
             172.18.0.3 ok-1.vm1.vxmesh ok-1.vxmesh\n172.18.0.4 dup.vm1.vxmesh dup.vxmesh\n\
             172.18.0.5 fake.vm1.vxmesh fake.vxmesh\n",
            "{err}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("run/publish/records")).unwrap(),
            "# vxmesh: container names of vm1\n172.18.0.2 api\n172.18.0.2 web\n172.18.0.3 ok-1\n172.18.0.4 dup\n172.18.0.5 fake\n"
        );
        assert!(!marker.exists(), "a container name ran a command");
        for skipped in [
            "skipped \"a;b\" (172.18.0.3): not a DNS label",
            "skipped \"-bad\" (172.18.0.4): not a DNS label",
            "skipped \"c: not one name",
        ] {
            assert!(err.contains(skipped), "{skipped} not logged:\n{err}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_peers_records_outside_its_subnet_or_not_labels_are_dropped_and_a_silent_peer_is_withdrawn() {
        let (dir, lib) = setup("pull");
        let records = "# vxmesh: container names of vm2\n172.19.0.2 web\n172.18.0.2 stolen\n172.19.0.3 Bad\n172.19.0.4 a b\n172.19.0.05 zero\n\
                       172.19.0.6 ok\n1.2.3.4.5 x\n";
        stub(
            &dir,
            "curl",
            &format!(
                "while [ $# -gt 1 ]; do [ \"$1\" = -o ] && out=$2; shift; done\ncat > \"$out\" <<'EOF'\n{records}EOF\n"
            ),
        );
        let (_, err) = run(&dir, &lib, "mkdir -p \"$HOSTS\"; pull_one vm2 172.30.0.2 172.19.0.0/16");
        assert_eq!(
            std::fs::read_to_string(dir.join("run/hosts/peer-vm2")).unwrap(),
            "172.19.0.2 web.vm2.vxmesh web.vxmesh\n172.19.0.6 ok.vm2.vxmesh ok.vxmesh\n",
            "{err}"
        );
        assert_eq!(err.matches("skipped a record from vm2").count(), 5, "{err}");
        stub(&dir, "curl", "exit 28\n");
        run(&dir, &lib, "pull_one vm2 172.30.0.2 172.19.0.0/16; pull_one vm2 172.30.0.2 172.19.0.0/16");
        assert!(dir.join("run/hosts/peer-vm2").exists(), "two misses keep the names");
        let (_, err) = run(&dir, &lib, "pull_one vm2 172.30.0.2 172.19.0.0/16");
        assert!(!dir.join("run/hosts/peer-vm2").exists(), "the third miss withdraws them: {err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
