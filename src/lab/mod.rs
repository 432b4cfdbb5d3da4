//! A local lab of real hosts: each node is its own network, mount, PID, UTS and cgroup namespace with systemd as
//! PID 1 starting sshd, Open vSwitch and docker, on an underlay bridge whose gateway drops anything not for the lab.

mod cgroup;
pub mod dualstack;
pub mod ipv6;
pub mod sites;
mod sys;
mod units;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::error::Result;
pub use sys::require_root;
use sys::{lab_err, run, run_quiet};

/// Where labs keep their state, keys and every node's private files.
pub const LAB_ROOT: &str = "/var/lib/vxmesh-lab";

const BOOT_SCRIPT: &str = include_str!("node-boot.sh");
/// Every node's PID 1.
const SYSTEMD: &str = "/lib/systemd/systemd";

/// The address that plays "the outside world" on every lab's underlay.
const OUTSIDE_HOST: u8 = 250;
/// Node N's underlay address is .(10 + N).
const FIRST_NODE_HOST: u8 = 11;
pub const MAX_NODES: usize = 200;
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// Nodes boot at once on a few cores: 30 systemd boots took 22 s at a load average of 30.
const BOOT_TIMEOUT_PER_NODE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabState {
    pub name: String,
    pub dir: PathBuf,
    pub bridge: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub light: bool,
    /// `--firewalld`: every node runs firewalld (its default zone, nftables backend) beside docker.
    #[serde(default)]
    pub firewalld: bool,
    pub nodes: Vec<LabNode>,
    pub outside: LabNode,
    /// `--sites`: each site's network and router, behind which its nodes sit; none in a flat lab.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sites: Vec<sites::LabSite>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabNode {
    pub name: String,
    /// Network namespace, as in /run/netns.
    pub netns: String,
    /// The machine-side end of the node's veth, in the lab bridge.
    pub veth: String,
    pub ip: Ipv4Addr,
    /// A host without Open vSwitch (the kernel backend): its underlay address sits on eth0 itself.
    #[serde(default)]
    pub kernel: bool,
    /// In a lab with sites: the node's second NIC (`eth1`) on its site's network, its tunnel endpoint; `eth0`
    /// then only carries SSH (the management network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<sites::SiteLink>,
}

/// Which data plane the lab's hosts run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabBackend {
    /// Open vSwitch on every host (userspace datapath, underlay on br-phy).
    Ovs,
    /// No Open vSwitch at all: every host uses the kernel backend.
    Linux,
    /// Odd hosts Open vSwitch, even hosts the kernel: both kinds in one mesh.
    Mixed,
}

impl LabBackend {
    fn kernel(self, i: usize) -> bool {
        match self {
            LabBackend::Ovs => false,
            LabBackend::Linux => true,
            LabBackend::Mixed => i.is_multiple_of(2),
        }
    }
}

#[derive(Debug, Clone)]
pub struct CreateOptions {
    pub name: String,
    pub nodes: usize,
    pub light: bool,
    /// `--firewalld`: the nodes run firewalld, as RHEL-family hosts do.
    pub firewalld: bool,
    pub backend: LabBackend,
    /// `--sites`: nodes behind routers, per site (`nodes` is then their sum and every node the kernel backend).
    pub sites: Vec<sites::SiteSpec>,
}

impl LabState {
    pub fn inventory_path(&self) -> PathBuf {
        self.dir.join("vxmesh.yaml")
    }

    pub fn node(&self, name: &str) -> Result<&LabNode> {
        self.nodes.iter().find(|n| n.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
            lab_err(format!("lab `{}` has no node `{name}` (nodes: {})", self.name, known.join(", ")))
        })
    }

    fn node_dir(&self, node: &str) -> PathBuf {
        self.dir.join(node)
    }

    fn save(&self) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("state serializes");
        std::fs::write(self.dir.join("state.json"), text).map_err(|e| lab_err(format!("cannot write lab state: {e}")))
    }
}

fn lab_dir(name: &str) -> PathBuf {
    Path::new(LAB_ROOT).join(name)
}

/// Lab names become parts of interface names (`vxl<name>n<i>`), so they stay short.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty() && name.len() <= 6 && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if ok { Ok(()) } else { Err(lab_err(format!("lab name `{name}` must be 1 to 6 lowercase letters or digits"))) }
}

pub fn load(name: &str) -> Result<LabState> {
    check_name(name)?;
    let path = lab_dir(name).join("state.json");
    let text = std::fs::read_to_string(&path).map_err(|_| {
        lab_err(format!("no lab named `{name}` (see `vxmesh lab list`; create one with `vxmesh lab create`)"))
    })?;
    serde_json::from_str(&text).map_err(|e| lab_err(format!("{}: {e}", path.display())))
}

/// Every lab on this machine, by its state file.
pub fn list() -> Vec<LabState> {
    let mut out: Vec<LabState> = std::fs::read_dir(LAB_ROOT)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("state.json")).ok())
        .filter_map(|t| serde_json::from_str(&t).ok())
        .collect();
    out.sort_by(|a: &LabState, b| a.name.cmp(&b.name));
    out
}

/// Whether node `n` of `lab` is up: its boot finished and its PID 1 is alive.
pub fn node_running(lab: &LabState, n: &LabNode) -> bool {
    lab.node_dir(&n.name).join("ready").exists() && !sys::pids_in_netns(&n.netns).is_empty()
}

/// A free /24 for the underlay: not another lab's, not on any interface of the machine.
fn pick_subnet() -> Result<Ipv4Net> {
    let taken: Vec<Ipv4Net> = list().iter().map(|l| l.subnet).collect();
    let addrs = run("ip", &["-4", "-o", "addr", "show"]).unwrap_or_default();
    (77u8..=99)
        .map(|k| Ipv4Net::new(Ipv4Addr::new(192, 168, k, 0), 24).expect("valid"))
        .find(|s| !taken.contains(s) && !addrs.contains(&format!(" 192.168.{}.", s.network().octets()[2])))
        .ok_or_else(|| lab_err("no free underlay /24 left in 192.168.77.0-192.168.99.0"))
}

fn host(subnet: Ipv4Net, last: u8) -> Ipv4Addr {
    let o = subnet.network().octets();
    Ipv4Addr::new(o[0], o[1], o[2], last)
}

/// Builds a lab; on any failure everything made so far is torn down again.
pub fn create(opts: &CreateOptions, progress: &mut dyn FnMut(&str)) -> Result<LabState> {
    require_root()?;
    check_name(&opts.name)?;
    if !(1..=MAX_NODES).contains(&opts.nodes) {
        return Err(lab_err(format!("--nodes {} is out of range 1..={MAX_NODES}", opts.nodes)));
    }
    let site_hosts: usize = opts.sites.iter().map(|s| s.hosts).sum();
    if !opts.sites.is_empty() && site_hosts > sites::MAX_HOSTS {
        return Err(lab_err(format!("--sites: {site_hosts} hosts; a lab with sites has at most {}", sites::MAX_HOSTS)));
    }
    let dir = lab_dir(&opts.name);
    if dir.join("state.json").exists() {
        return Err(lab_err(format!(
            "lab `{}` already exists; `vxmesh lab destroy --name {}` first",
            opts.name, opts.name
        )));
    }
    check_tools(opts.light, opts.firewalld)?;
    let subnet = pick_subnet()?;
    let name = &opts.name;
    let lab_sites: Vec<sites::LabSite> =
        opts.sites.iter().enumerate().map(|(k, s)| sites::site(name, k + 1, s)).collect();
    // Node i's site: the sites in order, each with its count of nodes.
    let site_of = |i: usize| {
        let mut first = 1;
        lab_sites.iter().find(|s| {
            first += s.spec.hosts;
            i < first
        })
    };
    let node = |i: usize| LabNode {
        name: format!("node{i}"),
        netns: format!("vxlab-{name}-node{i}"),
        veth: format!("vxl{name}n{i}"),
        ip: host(subnet, FIRST_NODE_HOST + (i - 1) as u8),
        // Sites are for WireGuard across NAT, which OVS's userspace datapath cannot carry: the kernel backend.
        kernel: site_of(i).is_some() || opts.backend.kernel(i),
        site: site_of(i).map(|s| sites::link(name, i, s)),
    };
    let count = if lab_sites.is_empty() { opts.nodes } else { site_hosts };
    let state = LabState {
        name: name.clone(),
        dir: dir.clone(),
        bridge: format!("vxlab-{name}"),
        subnet,
        gateway: host(subnet, 1),
        light: opts.light,
        firewalld: opts.firewalld,
        nodes: (1..=count).map(node).collect(),
        outside: LabNode {
            name: "outside".into(),
            netns: format!("vxlab-{name}-out"),
            veth: format!("vxl{name}o"),
            ip: host(subnet, OUTSIDE_HOST),
            kernel: true,
            site: None,
        },
        sites: lab_sites.clone(),
    };
    std::fs::create_dir_all(&dir).map_err(|e| lab_err(format!("cannot create {}: {e}", dir.display())))?;
    state.save()?;
    match build(&state, progress) {
        Ok(()) => Ok(state),
        Err(e) if std::env::var_os("VXMESH_LAB_KEEP_FAILED").is_some() => {
            progress("creation failed; kept as it is for debugging (VXMESH_LAB_KEEP_FAILED)");
            Err(e)
        }
        Err(e) => {
            progress("creation failed; tearing down what was made");
            let _ = destroy(name);
            Err(e)
        }
    }
}

fn check_tools(light: bool, firewalld: bool) -> Result<()> {
    let mut need = vec![
        "ip",
        "nsenter",
        "unshare",
        "ovsdb-server",
        "ovs-vswitchd",
        "ovs-vsctl",
        "sshd",
        "ssh-keygen",
        "ethtool",
        "iptables",
    ];
    if !light {
        need.extend(["dockerd", "containerd", "busybox", "tar"]);
    }
    if firewalld {
        need.extend(["firewalld", "firewall-cmd"]);
    }
    need.extend(["useradd", "userdel", "mknod", "sudo"]);
    let mut missing: Vec<&str> =
        need.into_iter().filter(|t| !run_quiet("sh", &["-c", &format!("command -v {t}")])).collect();
    if !Path::new(SYSTEMD).exists() {
        missing.push(SYSTEMD);
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(lab_err(format!("missing on this machine: {}; run scripts/install-deps.sh (Debian)", missing.join(", "))))
    }
}

fn build(state: &LabState, progress: &mut dyn FnMut(&str)) -> Result<()> {
    let dir = &state.dir;
    let p = |f: &str| dir.join(f).to_string_lossy().into_owned();
    std::fs::write(dir.join("node-boot.sh"), BOOT_SCRIPT).map_err(|e| lab_err(e.to_string()))?;
    run(
        "ssh-keygen",
        &["-q", "-t", "ed25519", "-N", "", "-C", &format!("vxmesh-lab-{}", state.name), "-f", &p("id_ed25519")],
    )?;
    if !state.light {
        busybox_image(dir)?;
    }
    progress(&format!("underlay {} on bridge {} (gateway {})", state.subnet, state.bridge, state.gateway));
    run("ip", &["link", "add", &state.bridge, "type", "bridge"])?;
    run("ip", &["addr", "add", &format!("{}/{}", state.gateway, state.subnet.prefix_len()), "dev", &state.bridge])?;
    run("ip", &["link", "set", &state.bridge, "up"])?;
    // This machine forwards packets and has a way out: nothing from the lab may leave, nothing may come in.
    for rule in gateway_rules(state) {
        run(
            "iptables",
            &[&["-w", "-I", "FORWARD"][..], &rule.iter().map(String::as_str).collect::<Vec<_>>()].concat(),
        )?;
    }
    if !state.sites.is_empty() {
        build_sites(state, progress)?;
    }
    if let Some(raised) = raise_inotify_instances()? {
        progress(&raised);
    }
    for n in &state.nodes {
        prepare_node(state, n)?;
        fail_point(&n.name)?;
        boot_node(state, n)?;
    }
    start_outside(state)?;
    progress(&format!("booting {} node(s){}", state.nodes.len(), if state.light { " (light: no docker)" } else { "" }));
    wait_ready(state, &state.nodes)?;
    write_access_files(state)?;
    Ok(())
}

/// The WAN and every site's bridge and router, each bridge fenced like the underlay's: nothing bridged there
/// may be forwarded anywhere else by the machine.
fn build_sites(state: &LabState, progress: &mut dyn FnMut(&str)) -> Result<()> {
    let name = &state.name;
    sites::build_wan(name)?;
    fence(state, &sites::wan_bridge(name))?;
    for (k, s) in state.sites.iter().enumerate() {
        let hosts: Vec<sites::SiteLink> =
            state.nodes.iter().filter_map(|n| n.site.clone()).filter(|l| l.site == s.spec.name).collect();
        let how = match s.spec.nat {
            sites::Nat::OneToOne => "1:1 NAT",
            sites::Nat::Masquerade => "masquerade",
        };
        progress(&format!(
            "site {}: {} behind router {} ({how}, WAN {}), MTU {}",
            s.spec.name, s.subnet, s.router, s.wan_ip, s.spec.mtu
        ));
        sites::build_site(name, k + 1, s, &hosts)?;
        fence(state, &s.bridge)?;
    }
    Ok(())
}

/// The gateway's drop rules for another bridge of the lab, tagged like them so destroy removes them.
fn fence(state: &LabState, bridge: &str) -> Result<()> {
    let tag = format!("vxmesh-lab-{}", state.name);
    for dir in [["-i", bridge, "!", "-o", bridge], ["!", "-i", bridge, "-o", bridge]] {
        run(
            "iptables",
            &[&["-w", "-I", "FORWARD"][..], &dir, &["-m", "comment", "--comment", tag.as_str(), "-j", "DROP"]].concat(),
        )?;
    }
    Ok(())
}

/// inotify instances a node's systemd, journald, dbus, logind and daemons use, with room to spare (about 5 seen).
const INOTIFY_PER_NODE: u64 = 8;
/// Left for the machine's own processes: small labs (up to 8 nodes at the default 128) change nothing.
const INOTIFY_MACHINE: u64 = 64;
const INOTIFY_LIMIT: &str = "/proc/sys/fs/inotify/max_user_instances";

/// Every node runs as the machine's root, and the kernel counts inotify instances per user: at the default of
/// 128, nodes beyond about 25 of all labs wait forever in "Failed to create inotify object: Too many open files".
/// Raises the machine's limit to what every lab's nodes need (as kind asks of its users), never lowers it.
fn raise_inotify_instances() -> Result<Option<String>> {
    let nodes: u64 = list().iter().map(|l| l.nodes.len() as u64).sum();
    let need = INOTIFY_MACHINE + INOTIFY_PER_NODE * nodes;
    let now: u64 = std::fs::read_to_string(INOTIFY_LIMIT)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| lab_err(format!("cannot read {INOTIFY_LIMIT}")))?;
    if now >= need {
        return Ok(None);
    }
    std::fs::write(INOTIFY_LIMIT, need.to_string())
        .map_err(|e| lab_err(format!("cannot raise {INOTIFY_LIMIT} to {need}: {e}")))?;
    Ok(Some(format!("fs.inotify.max_user_instances raised from {now} to {need} ({nodes} lab nodes on this machine)")))
}

/// Tests make creation fail after a given node to prove a half-made lab is cleaned up.
fn fail_point(node: &str) -> Result<()> {
    match std::env::var("VXMESH_LAB_FAIL_AFTER") {
        Ok(n) if n == node => Err(lab_err(format!("failing on purpose after {node} (VXMESH_LAB_FAIL_AFTER)"))),
        _ => Ok(()),
    }
}

/// The gateway's two DROP rules, tagged so destroy removes exactly these.
pub fn gateway_rules(state: &LabState) -> [Vec<String>; 2] {
    let tag = format!("vxmesh-lab-{}", state.name);
    let br = state.bridge.clone();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    [
        s(&["-i", &br, "!", "-o", &br, "-m", "comment", "--comment", &tag, "-j", "DROP"]),
        s(&["!", "-i", &br, "-o", &br, "-m", "comment", "--comment", &tag, "-j", "DROP"]),
    ]
}

/// Packets the gateway dropped on their way out of the lab (the first rule's counter).
pub fn gateway_drops(state: &LabState) -> Result<u64> {
    let out = run("iptables", &["-w", "-L", "FORWARD", "-v", "-x", "-n"])?;
    let tag = format!("vxmesh-lab-{}", state.name);
    out.lines()
        .filter(|l| l.contains(&tag) && l.contains(&format!(" {} ", state.bridge)))
        .find(|l| l.split_whitespace().nth(5) == Some(state.bridge.as_str()))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| lab_err("the gateway's drop rule is missing"))
}

/// A busybox rootfs tarball, imported into each node's docker as `busybox:latest` (nothing can be pulled).
fn busybox_image(dir: &Path) -> Result<()> {
    let root = dir.join("busybox-rootfs");
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).map_err(|e| lab_err(e.to_string()))?;
    for d in ["etc", "tmp", "proc", "sys", "dev", "root"] {
        std::fs::create_dir_all(root.join(d)).map_err(|e| lab_err(e.to_string()))?;
    }
    std::fs::copy("/bin/busybox", bin.join("busybox"))
        .map_err(|e| lab_err(format!("cannot copy /bin/busybox: {e}")))?;
    for applet in run("/bin/busybox", &["--list"])?.lines().filter(|a| *a != "busybox") {
        let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").map_err(|e| lab_err(e.to_string()))?;
    let tar = dir.join("busybox.tar").to_string_lossy().into_owned();
    run("tar", &["-C", &root.to_string_lossy(), "-cf", &tar, "."])?;
    std::fs::remove_dir_all(&root).map_err(|e| lab_err(e.to_string()))
}

/// The node's private /etc layer (sshd config, host key, authorized key, its own systemd units) and its other
/// private directories.
fn prepare_node(state: &LabState, n: &LabNode) -> Result<()> {
    let nd = state.node_dir(&n.name);
    let etc_lab = nd.join("etc/vxmesh-lab");
    let units = nd.join("etc/systemd/system");
    for d in [etc_lab.clone(), nd.join("etc.work"), nd.join("etc/ssh"), units.clone()] {
        std::fs::create_dir_all(&d).map_err(|e| lab_err(e.to_string()))?;
    }
    // The node starts from no enabled unit of the machine's, only the lab's, and none of its mounts: it is a
    // fresh host with the machine's packages, not a copy of the machine.
    sys::set_opaque(&units)?;
    units::NodeUnits {
        node_dir: &nd,
        boot_script: &state.dir.join("node-boot.sh"),
        busybox_tar: &state.dir.join("busybox.tar"),
        addr: format!("{}/{}", n.ip, state.subnet.prefix_len()),
        gateway: state.gateway.to_string(),
        kernel: n.kernel,
        light: state.light,
        firewalld: state.firewalld,
        site: n.site.as_ref(),
    }
    .write(&units)?;
    std::fs::write(nd.join("etc/fstab"), "# vxmesh lab node: the machine's mounts are not this host's\n")
        .map_err(|e| lab_err(e.to_string()))?;
    let key = etc_lab.join("ssh_host_ed25519_key");
    if !key.exists() {
        run(
            "ssh-keygen",
            &[
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                &format!("{}@{}", n.name, state.name),
                "-f",
                &key.to_string_lossy(),
            ],
        )?;
    }
    std::fs::copy(state.dir.join("id_ed25519.pub"), etc_lab.join("authorized_keys"))
        .map_err(|e| lab_err(e.to_string()))?;
    let sshd = format!(
        "ListenAddress {ip}\nPort 22\nHostKey /etc/vxmesh-lab/ssh_host_ed25519_key\nAuthorizedKeysFile /etc/vxmesh-lab/authorized_keys\n\
         PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
         PidFile /run/sshd.pid\nStrictModes no\nAcceptEnv LANG LC_*\nSubsystem sftp /usr/lib/openssh/sftp-server\n",
        ip = n.ip
    );
    // Where the distribution's ssh.service reads it (its `sshd -t` check included).
    std::fs::write(nd.join("etc/ssh/sshd_config"), sshd).map_err(|e| lab_err(e.to_string()))?;
    std::fs::write(nd.join("etc/hostname"), format!("{}\n", n.name)).map_err(|e| lab_err(e.to_string()))
}

/// A fresh network namespace wired to the lab bridge, as a powered-on host's NIC.
fn plug(state: &LabState, n: &LabNode) -> Result<()> {
    run("ip", &["netns", "add", &n.netns])?;
    run("ip", &["link", "add", &n.veth, "type", "veth", "peer", "name", "eth0", "netns", &n.netns])?;
    run("ip", &["link", "set", &n.veth, "master", &state.bridge, "up"])?;
    // A veth feeding OVS's userspace datapath with TX checksum offload on passes ICMP but breaks TCP.
    run("ethtool", &["-K", &n.veth, "tx", "off"])?;
    if let Some(l) = &n.site {
        let bridge = &state.sites.iter().find(|s| s.spec.name == l.site).expect("a node's site is the lab's").bridge;
        let mtu = l.mtu.to_string();
        run("ip", &["link", "add", &l.veth, "mtu", &mtu, "type", "veth", "peer", "name", "eth1", "netns", &n.netns])?;
        run("ip", &["link", "set", &l.veth, "master", bridge, "up"])?;
        // A host keeps its NICs' MACs across a reboot; a new veth would get new ones, and the machine and the
        // site's router would send to the old ones until their neighbour entries expire (about 30 s lost after
        // every reboot, measured).
        for (dev, prefix, ip) in [("eth0", 0x6c, n.ip), ("eth1", 0x6d, l.underlay)] {
            let [a, b, c, d] = ip.octets();
            let mac = format!("02:{prefix:02x}:{a:02x}:{b:02x}:{c:02x}:{d:02x}");
            run("ip", &["-n", &n.netns, "link", "set", dev, "address", &mac])?;
        }
    }
    Ok(())
}

/// Powers the node on: its boot script makes the node's other namespaces and execs systemd as their PID 1,
/// detached from this process.
fn boot_node(state: &LabState, n: &LabNode) -> Result<()> {
    plug(state, n)?;
    let nd = state.node_dir(&n.name);
    for f in ["ready", "failed"] {
        let _ = std::fs::remove_file(nd.join(f));
    }
    cgroup::create_node(&state.name, &n.name)
        .map_err(|e| lab_err(format!("{}: cannot make its cgroups: {e}", n.name)))?;
    spawn_detached(
        &n.netns,
        &[
            "bash",
            &state.dir.join("node-boot.sh").to_string_lossy(),
            &nd.to_string_lossy(),
            &n.name,
            if n.kernel { "linux" } else { "ovs" },
            &cgroup::node_path(&state.name, &n.name),
        ],
    )
}

/// `nsenter --net=NS ARGS...`, in its own session, output to /dev/null.
fn spawn_detached(netns: &str, args: &[&str]) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net=/run/netns/{netns}"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    cmd.spawn().map(|_| ()).map_err(|e| lab_err(format!("cannot start a namespace in {netns}: {e}")))
}

/// The outside world: a namespace on the underlay, outside any cluster, that answers ping and echoes TCP port 7.
fn start_outside(state: &LabState) -> Result<()> {
    let o = &state.outside;
    plug(state, o)?;
    let addr = format!("{}/{}", o.ip, state.subnet.prefix_len());
    run("ip", &["-n", &o.netns, "addr", "add", &addr, "dev", "eth0"])?;
    run("ip", &["-n", &o.netns, "link", "set", "eth0", "up"])?;
    run("ip", &["-n", &o.netns, "link", "set", "lo", "up"])?;
    spawn_detached(
        &o.netns,
        &[
            "unshare",
            "--pid",
            "--fork",
            "--mount",
            "--uts",
            "--propagation",
            "private",
            "busybox",
            "nc",
            "-ll",
            "-p",
            "7",
            "-e",
            "/bin/cat",
        ],
    )
}

fn wait_ready(state: &LabState, nodes: &[LabNode]) -> Result<()> {
    let start = Instant::now();
    loop {
        let pending: Vec<&LabNode> = nodes.iter().filter(|n| !state.node_dir(&n.name).join("ready").exists()).collect();
        if pending.is_empty() {
            return Ok(());
        }
        for n in &pending {
            if state.node_dir(&n.name).join("failed").exists() {
                return Err(lab_err(format!(
                    "{} booted without a unit it needs:\n{}",
                    n.name,
                    boot_log_tail(state, n)
                )));
            }
            if start.elapsed() > Duration::from_millis(500) && sys::pids_in_netns(&n.netns).is_empty() {
                return Err(lab_err(format!("{} stopped while booting:\n{}", n.name, boot_log_tail(state, n))));
            }
        }
        if start.elapsed() > BOOT_TIMEOUT + BOOT_TIMEOUT_PER_NODE * nodes.len() as u32 {
            let n = pending[0];
            return Err(lab_err(format!(
                "{} did not boot within {}s:\n{}",
                n.name,
                (BOOT_TIMEOUT + BOOT_TIMEOUT_PER_NODE * nodes.len() as u32).as_secs(),
                boot_log_tail(state, n)
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn boot_log_tail(state: &LabState, n: &LabNode) -> String {
    let log = std::fs::read_to_string(state.node_dir(&n.name).join("boot.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// known_hosts with the nodes' real host keys, and an inventory that `vxmesh up -i` uses as it is.
fn write_access_files(state: &LabState) -> Result<()> {
    let mut known = String::new();
    for n in &state.nodes {
        let pubkey = std::fs::read_to_string(state.node_dir(&n.name).join("etc/vxmesh-lab/ssh_host_ed25519_key.pub"))
            .map_err(|e| lab_err(format!("{}: no host key: {e}", n.name)))?;
        let mut parts = pubkey.split_whitespace();
        let (kind, key) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
        known.push_str(&format!("{} {kind} {key}\n", n.ip));
    }
    std::fs::write(state.dir.join("known_hosts"), known).map_err(|e| lab_err(e.to_string()))?;
    std::fs::write(state.inventory_path(), inventory_text(state)).map_err(|e| lab_err(e.to_string()))
}

pub fn inventory_text(state: &LabState) -> String {
    let mut y = format!(
        "# Written by `vxmesh lab create` for lab `{name}`. Use it as it is: vxmesh up -i {inv}\n\
         cluster:\n  name: lab-{name}\n  cidr: 172.16.0.0/12\n  node_prefix: {prefix}             # a /12 holds 14 /16s besides docker0's and the switches'\n  switch_cidr: 172.30.0.0/16\n\
         \x20 datapath: netdev             # no kernel OVS module here: OVS's userspace datapath, tunnels via br-phy\n\
         \x20 outside: {outside}          # the lab's outside-world host, for verify's NAT check\n\
         ssh:\n  user: vxadmin                # a non-root user: every script runs under `sudo -n` (root logs in too)\n  identity_file: {dir}/id_ed25519\n  known_hosts: {dir}/known_hosts\nnodes:\n",
        name = state.name,
        inv = state.inventory_path().display(),
        outside = state.outside.ip,
        dir = state.dir.display(),
        prefix = if state.nodes.len() <= 13 { 16 } else { 20 },
    );
    if state.sites.iter().any(|s| s.spec.nat == sites::Nat::Masquerade) {
        y = y.replacen(
            "\nssh:\n",
            "\n  encryption: wireguard        # hosts behind masquerade can only start their tunnels themselves\nssh:\n",
            1,
        );
    }
    for n in &state.nodes {
        let backend = if n.kernel { ", backend: linux" } else { "" };
        let site = n.site.as_ref().map_or_else(String::new, |l| {
            let public = l.public_ip.map_or_else(String::new, |p| format!(", public_ip: {p}"));
            format!(", underlay_ip: {}, site: {}{public}", l.underlay, l.site)
        });
        y.push_str(&format!("  - {{name: {}, host: {}{backend}{site}}}\n", n.name, n.ip));
    }
    y
}

/// Powers a node off: every process of the node dies (its PID 1 first), its network namespace goes.
pub fn node_stop(state: &LabState, node: &str) -> Result<()> {
    require_root()?;
    let n = state.node(node)?;
    power_off(state, n)?;
    let _ = std::fs::remove_file(state.node_dir(&n.name).join("ready"));
    Ok(())
}

/// Kills the node and removes what its processes held on the machine: its namespace, veth and cgroups.
fn power_off(state: &LabState, n: &LabNode) -> Result<()> {
    kill_netns(n);
    let left = cgroup::remove_node(&state.name, &n.name);
    if left.is_empty() {
        Ok(())
    } else {
        Err(lab_err(format!("{}: cgroups still in use after power-off: {}", n.name, left.join(", "))))
    }
}

fn kill_netns(n: &LabNode) {
    for _ in 0..50 {
        let pids = sys::pids_in_netns(&n.netns);
        if pids.is_empty() {
            break;
        }
        pids.into_iter().for_each(sys::kill);
        std::thread::sleep(Duration::from_millis(100));
    }
    // The kernel frees a namespace asynchronously after `ip netns del`; remove the link now so a quick
    // power-on does not find the old veth still there.
    if !n.veth.is_empty() {
        run_quiet("ip", &["link", "del", &n.veth]);
    }
    if let Some(l) = &n.site {
        run_quiet("ip", &["link", "del", &l.veth]);
    }
    run_quiet("ip", &["netns", "del", &n.netns]);
    for _ in 0..100 {
        if n.veth.is_empty() || !run_quiet("ip", &["link", "show", &n.veth]) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Powers a node on: fresh network state, the same disk, daemons and boot units started as at boot.
pub fn node_start(state: &LabState, node: &str) -> Result<()> {
    require_root()?;
    let n = state.node(node)?;
    if node_running(state, n) {
        return Err(lab_err(format!("{node} is already running")));
    }
    power_off(state, n)?;
    boot_node(state, n)?;
    wait_ready(state, std::slice::from_ref(n))
}

pub fn node_reboot(state: &LabState, node: &str) -> Result<()> {
    node_stop(state, node)?;
    node_start(state, node)
}

/// Tears a lab down: processes, namespaces, links, gateway rules, mounts and files. Works on half-made labs too.
pub fn destroy(name: &str) -> Result<Vec<String>> {
    require_root()?;
    check_name(name)?;
    let prefix = format!("vxlab-{name}-");
    let namespaces: Vec<String> = run("ip", &["netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|ns| ns.starts_with(&prefix))
        .map(String::from)
        .collect();
    for ns in &namespaces {
        kill_netns(&LabNode {
            name: ns.clone(),
            netns: ns.clone(),
            veth: String::new(),
            ip: Ipv4Addr::UNSPECIFIED,
            kernel: false,
            site: None,
        });
    }
    let links = run("ip", &["-o", "link", "show"]).unwrap_or_default();
    for l in links.lines().filter_map(|l| l.split(": ").nth(1)).map(|l| l.split('@').next().unwrap_or(l)) {
        if l.starts_with(&format!("vxl{name}")) {
            run_quiet("ip", &["link", "del", l]);
        }
    }
    run_quiet("ip", &["link", "del", &format!("vxlab-{name}")]);
    let tag = format!("vxmesh-lab-{name}");
    let rules = run("iptables", &["-w", "-S", "FORWARD"]).unwrap_or_default();
    for r in rules.lines().filter(|r| r.contains(&tag)) {
        let args: Vec<&str> = r.split_whitespace().skip(2).collect();
        run_quiet("iptables", &[&["-w", "-D", "FORWARD"][..], &args].concat());
    }
    ipv6::unfence(name);
    cgroup::remove_lab(name);
    let dir = lab_dir(name);
    for m in mounts_under(&dir).into_iter().rev() {
        run_quiet("umount", &["-l", &m]);
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| lab_err(format!("cannot remove {}: {e}", dir.display())))?;
    }
    let left = leftovers(name);
    if left.is_empty() {
        Ok(namespaces)
    } else {
        Err(lab_err(format!("destroy left things behind: {}", left.join("; "))))
    }
}

fn mounts_under(dir: &Path) -> Vec<String> {
    let d = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|m| m.starts_with(&d))
        .map(String::from)
        .collect()
}

/// Everything of lab `name` still on the machine: namespaces, links, processes, mounts, rules, files.
pub fn leftovers(name: &str) -> Vec<String> {
    let mut out = vec![];
    let prefix = format!("vxlab-{name}-");
    for ns in run("ip", &["netns", "list"]).unwrap_or_default().lines() {
        if ns.starts_with(&prefix) {
            out.push(format!("namespace {ns}"));
        }
    }
    for l in run("ip", &["-o", "link", "show"]).unwrap_or_default().lines().filter_map(|l| l.split(": ").nth(1)) {
        let l = l.split('@').next().unwrap_or(l);
        if l.starts_with(&format!("vxl{name}")) || l == format!("vxlab-{name}") {
            out.push(format!("link {l}"));
        }
    }
    let dir = lab_dir(name);
    let d = dir.to_string_lossy().into_owned();
    for m in mounts_under(&dir) {
        out.push(format!("mount {m}"));
    }
    out.extend(cgroup::leftovers(name));
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if (cmd.contains(&d) || cmd.contains(&prefix)) && sys::alive(pid) {
            out.push(format!("process {pid} `{}`", cmd.trim()));
        }
    }
    if run("iptables", &["-w", "-S", "FORWARD"]).unwrap_or_default().contains(&format!("vxmesh-lab-{name}")) {
        out.push("gateway rules".into());
    }
    if dir.exists() {
        out.push(format!("directory {}", dir.display()));
    }
    out
}

/// Runs a shell command inside a node (its network, mount, UTS, PID and cgroup namespaces), as the machine's root.
pub fn node_exec(state: &LabState, node: &str, script: &str) -> Result<String> {
    let n = state.node(node)?;
    let pid = sys::pids_in_netns(&n.netns)
        .into_iter()
        .find(|p| is_pid1_of_node(*p))
        .ok_or_else(|| lab_err(format!("{node} is not running")))?;
    run("nsenter", &["-t", &pid.to_string(), "-n", "-m", "-u", "-p", "-C", "sh", "-c", script])
}

/// The node's systemd: PID 1 of a PID namespace one level below ours (a container's init is two levels below).
fn is_pid1_of_node(pid: u32) -> bool {
    let nspid = |p: &str| {
        std::fs::read_to_string(format!("/proc/{p}/status")).ok().and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("NSpid:").map(|v| v.split_whitespace().map(String::from).collect()))
        })
    };
    let (Some(own), Some(its)): (Option<Vec<String>>, Option<Vec<String>>) = (nspid("self"), nspid(&pid.to_string()))
    else {
        return false;
    };
    its.len() == own.len() + 1 && its.last().map(String::as_str) == Some("1")
}
