//! Shared by the tests that need a lab: the `Lab` fixture (root or a one-line skip, one lab at a time, destroyed
//! when the test ends, the test's own edited inventory) and reaching the nodes over SSH.

use std::io::Write;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use vxmesh::lab::{self, LabState};

use crate::util::{TempDir, vxmesh};

/// Labs share the machine's bridge range and CPU: one at a time.
pub static SERIAL: Mutex<()> = Mutex::new(());

/// Where the root tests must run (CI), `VXMESH_ROOT_TESTS=require` turns their skip into a failure, so a
/// runner that lost root cannot pass them without running them.
const REQUIRE_ROOT_TESTS: &str = "VXMESH_ROOT_TESTS";

/// True when the calling test cannot run here and has said so in one line: it needs root for `needs`. As root
/// it is always false: a root test never skips where it can run.
pub fn skip_without_root(needs: &str) -> bool {
    if lab::require_root().is_ok() {
        return false;
    }
    if std::env::var(REQUIRE_ROOT_TESTS).is_ok_and(|v| v == "require") {
        require_root();
    }
    // libtest names each test's thread after the test (`mesh::…`).
    let current = std::thread::current();
    let test = current.name().filter(|n| *n != "main").unwrap_or("this test");
    // Straight to the process's stderr: libtest swallows `eprintln!` from a passing test, and a skip must show.
    let line = format!("skipped: {test} needs root ({needs}); scripts/test.sh runs it as root\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
    true
}

/// Fails the calling test unless it runs as root: what a root test does where it may not skip.
pub fn require_root() {
    assert!(
        lab::require_root().is_ok(),
        "the lab tests need root on Linux (they build network namespaces); run scripts/test.sh as root"
    );
}

/// Destroys the lab when the test ends, also when it fails halfway.
pub struct LabGuard(pub String);

impl Drop for LabGuard {
    fn drop(&mut self) {
        let _ = lab::destroy(&self.0);
    }
}

/// Runs `vxmesh lab create --name NAME EXTRA…` after destroying any lab left by that name; the guard destroys it
/// again, also when the create fails. The caller holds [`SERIAL`]; [`Lab`] does all of this.
pub fn create(name: &str, extra: &[&str]) -> (LabGuard, LabState, f64) {
    let _ = lab::destroy(name);
    let dir = TempDir::new("lab");
    let guard = LabGuard(name.to_string());
    let t = Instant::now();
    let r = vxmesh(&dir.0, &[&["lab", "create", "--name", name][..], extra].concat());
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(r.code, 0, "{r}");
    (guard, lab::load(name).unwrap(), secs)
}

type Edit = Box<dyn Fn(Inventory) -> Inventory>;

/// One test's lab, in the manner of just's `Test` builder: `Lab::new("m1").nodes(3).create()` checks for root
/// (or skips), takes [`SERIAL`], creates the lab, and writes the test's inventory (the lab's, with the edits
/// given to [`Lab::inventory`]) into a scratch directory of its own, so the lock and run records are the test's.
#[must_use]
pub struct Lab {
    name: String,
    args: Vec<String>,
    edits: Vec<Edit>,
}

impl Lab {
    /// `name` is the lab's (1 to 6 lowercase letters or digits), unique among the tests.
    pub fn new(name: &str) -> Lab {
        Lab { name: name.to_string(), args: Vec::new(), edits: Vec::new() }
    }

    pub fn nodes(self, n: usize) -> Lab {
        self.arg("--nodes").arg(&n.to_string())
    }

    /// Nodes without docker.
    pub fn light(self) -> Lab {
        self.arg("--light")
    }

    /// `ovs`, `linux` or `mixed` (odd nodes Open vSwitch, even nodes the kernel backend).
    pub fn backend(self, backend: &str) -> Lab {
        self.arg("--backend").arg(backend)
    }

    /// Hosts in sites behind routers (`--sites`, docs/lab.md), e.g. `dc1:2,home:1@nat`.
    pub fn sites(self, spec: &str) -> Lab {
        self.arg("--sites").arg(spec)
    }

    fn arg(mut self, arg: &str) -> Lab {
        self.args.push(arg.to_string());
        self
    }

    /// An edit of the test's inventory; edits apply in the order given.
    pub fn inventory(mut self, edit: impl Fn(Inventory) -> Inventory + 'static) -> Lab {
        self.edits.push(Box::new(edit));
        self
    }

    /// The lab's place without creating it, for a test whose subject is `vxmesh lab create` itself: the root
    /// check (or skip) and [`SERIAL`] as for [`Lab::create`], and whatever the test makes of the lab destroyed
    /// before and after. Nodes, backend and inventory edits do not apply.
    pub fn reserve(self) -> Option<Reserved> {
        if skip_without_root("network namespaces") {
            return None;
        }
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let _ = lab::destroy(&self.name);
        Some(Reserved { _guard: LabGuard(self.name), _serial: serial })
    }

    /// The running lab, or `None` when the test cannot run here: not root (it has printed why; see
    /// [`skip_without_root`]). Use as `let Some(lab) = Lab::new(…).create() else { return };`.
    pub fn create(self) -> Option<LiveLab> {
        if skip_without_root("network namespaces") {
            return None;
        }
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let (guard, state, secs) = create(&self.name, &args);
        let work = TempDir::new(&format!("lab-{}", self.name));
        let start = Inventory::of(&state, &work.0);
        let inventory = self.edits.iter().fold(start, |inv, edit| edit(inv));
        let path = work.0.join("vxmesh.yaml");
        inventory.write(&path);
        let inv = path.to_str().expect("a UTF-8 temporary directory").to_string();
        Some(LiveLab { work, inv, state, secs, _guard: guard, _serial: serial })
    }
}

/// A lab name held by [`Lab::reserve`]: destroyed, then free for the next lab test, when dropped.
pub struct Reserved {
    _guard: LabGuard,
    _serial: MutexGuard<'static, ()>,
}

/// A created lab, read as its [`LabState`]. Dropped, it removes the scratch directory, destroys the lab and lets
/// the next lab test go, in that order.
pub struct LiveLab {
    work: TempDir,
    inv: String,
    state: LabState,
    /// How long `vxmesh lab create` took.
    pub secs: f64,
    _guard: LabGuard,
    _serial: MutexGuard<'static, ()>,
}

impl LiveLab {
    /// The test's scratch directory: its inventory, the lock beside it, run records under `.state`.
    pub fn work(&self) -> &Path {
        &self.work.0
    }

    /// The path of the test's inventory, `vxmesh.yaml` in [`LiveLab::work`].
    pub fn inv(&self) -> &str {
        &self.inv
    }

    /// The lab's inventory as `vxmesh lab create` wrote it, to edit into another file.
    pub fn inventory(&self) -> Inventory {
        Inventory::of(&self.state, &self.work.0)
    }
}

impl Deref for LiveLab {
    type Target = LabState;

    fn deref(&self) -> &LabState {
        &self.state
    }
}

/// A lab inventory's text under edit. Every edit checks that it found what it changes: an edit that silently
/// missed (the lab's inventory changed shape) would leave a test checking something else than it says.
#[derive(Clone, Debug)]
pub struct Inventory {
    text: String,
    lab: LabState,
    work: PathBuf,
}

impl Inventory {
    fn of(lab: &LabState, work: &Path) -> Inventory {
        let text = std::fs::read_to_string(lab.inventory_path()).unwrap();
        Inventory { text, lab: lab.clone(), work: work.to_path_buf() }
    }

    /// The lab this inventory is for.
    pub fn lab(&self) -> &LabState {
        &self.lab
    }

    /// The test's scratch directory (see [`LiveLab::work`]).
    pub fn work(&self) -> &Path {
        &self.work
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn write(&self, path: &Path) {
        std::fs::write(path, &self.text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    /// `key: value` in the `cluster:` section, replacing the key's line if there is one.
    pub fn cluster(self, key: &str, value: &str) -> Inventory {
        self.set("cluster", key, Some(value))
    }

    /// `key: value` in the `ssh:` section (replacing the key's line), or with `None` the key's line removed.
    pub fn ssh(self, key: &str, value: Option<&str>) -> Inventory {
        self.set("ssh", key, value)
    }

    /// Without these nodes' entries (kept out for `add-node`, say).
    pub fn without(mut self, nodes: &[&str]) -> Inventory {
        for n in nodes {
            self = self.map_node(n, |_| None);
        }
        self
    }

    /// Node `name`'s entry replaced by `entry`, a YAML flow mapping (`{name: node2, host: …}`).
    pub fn node(self, name: &str, entry: &str) -> Inventory {
        self.map_node(name, |_| Some(format!("  - {entry}")))
    }

    /// These entries and no others under `nodes:`.
    pub fn nodes(self, entries: &[&str]) -> Inventory {
        let mut lines = Vec::new();
        let mut found = false;
        for (section, line) in self.sectioned() {
            if section == "nodes" && line.starts_with("  - ") {
                found = true;
            } else {
                lines.push(line.to_string());
            }
        }
        assert!(found, "no node entries in the lab's inventory:\n{}", self.text);
        lines.extend(entries.iter().map(|e| format!("  - {e}")));
        Inventory { text: join(&lines), ..self }
    }

    fn map_node(self, name: &str, f: impl Fn(&str) -> Option<String>) -> Inventory {
        let mut lines = Vec::new();
        let mut found = false;
        for (section, line) in self.sectioned() {
            let entry = section == "nodes" && line.starts_with("  - ");
            if entry && (line.contains(&format!("name: {name},")) || line.contains(&format!("name: {name}}}"))) {
                found = true;
                lines.extend(f(line));
            } else {
                lines.push(line.to_string());
            }
        }
        assert!(found, "no node `{name}` in the lab's inventory:\n{}", self.text);
        Inventory { text: join(&lines), ..self }
    }

    fn set(self, section: &str, key: &str, value: Option<&str>) -> Inventory {
        let new = value.map(|v| format!("  {key}: {v}"));
        let prefix = format!("  {key}:");
        let mut lines: Vec<String> = Vec::new();
        let (mut seen, mut done) = (false, false);
        let mut last_of_section = None;
        for (s, line) in self.sectioned() {
            if s == section {
                seen = true;
                if line.starts_with(&prefix) {
                    lines.extend(new.clone());
                    done = true;
                    last_of_section = Some(lines.len());
                    continue;
                }
                lines.push(line.to_string());
                if line.starts_with("  ") {
                    last_of_section = Some(lines.len());
                }
            } else {
                lines.push(line.to_string());
            }
        }
        assert!(seen, "no `{section}:` section in the lab's inventory:\n{}", self.text);
        if !done {
            assert!(value.is_some(), "no `{key}` under `{section}:` to remove:\n{}", self.text);
            // Where the section's last key is, or right under its header.
            let at = last_of_section
                .or_else(|| lines.iter().position(|l| l.starts_with(&format!("{section}:"))).map(|i| i + 1))
                .unwrap();
            lines.insert(at, new.unwrap());
        }
        Inventory { text: join(&lines), ..self }
    }

    /// Each line with the top-level section it is in (`""` before the first).
    fn sectioned(&self) -> Vec<(String, &str)> {
        let mut section = String::new();
        self.text
            .lines()
            .map(|line| {
                if !line.is_empty() && !line.starts_with([' ', '#', '-']) {
                    section = line.split(':').next().unwrap_or_default().to_string();
                }
                (section.clone(), line)
            })
            .collect()
    }
}

fn join(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// `ssh` to a lab node with strict host key checking against the lab's known_hosts (or another file).
pub fn ssh_with(lab: &LabState, ip: &str, known_hosts: &str, script: &str) -> std::process::Output {
    let key = lab.dir.join("id_ed25519");
    // A hung command (ssh, docker wait) fails the test instead of hanging CI.
    Command::new("timeout")
        .args(["--kill-after=5", "180", "ssh"])
        .args(["-i", &key.to_string_lossy()])
        .args(["-o", &format!("UserKnownHostsFile={known_hosts}"), "-o", "StrictHostKeyChecking=yes"])
        .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=3", "-o", "LogLevel=ERROR"])
        .arg(format!("root@{ip}"))
        .arg(script)
        .output()
        .unwrap()
}

pub fn ssh(lab: &LabState, node: &str, script: &str) -> String {
    let ip = lab.node(node).unwrap().ip.to_string();
    let out = ssh_with(lab, &ip, &lab.dir.join("known_hosts").to_string_lossy(), script);
    assert!(out.status.success(), "ssh {node} `{script}`: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts a numbered-line TCP stream (4,000 lines over ~8 s) from a container on `from` to one on `to`.
pub fn start_stream(lab: &LabState, from: &str, to: &str) {
    let rx_ip = ssh(
        lab,
        to,
        // nc's stdin is a fifo held open, so it ends when the sender closes, not when its own stdin does.
        "docker run -d --name rx --network vxmesh busybox sh -c 'mkfifo /tmp/f; sleep 600 > /tmp/f & nc -l -p 9000 < /tmp/f > /tmp/recv; echo $? > /tmp/rc' >/dev/null; \
         docker inspect -f '{{.NetworkSettings.Networks.vxmesh.IPAddress}}' rx",
    );
    let rx_ip = rx_ip.trim();
    ssh(
        lab,
        from,
        &format!(
            "docker run -d --name tx --network vxmesh busybox sh -c 'i=0; while [ $i -lt 4000 ]; do echo $i; i=$((i+1)); usleep 2000; done | nc {rx_ip} 9000; echo $? > /tmp/rc' >/dev/null"
        ),
    );
    std::thread::sleep(std::time::Duration::from_millis(800));
}

/// Waits for the stream to end on its own: every line arrived, in order, and both ends exited cleanly (no reset).
pub fn assert_stream_intact(lab: &LabState, from: &str, to: &str) {
    ssh(lab, from, "docker wait tx >/dev/null");
    ssh(lab, to, "docker wait rx >/dev/null");
    let got = ssh(lab, to, "docker cp rx:/tmp/recv - | tar -xO");
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines.len(), 4000, "no data lost");
    assert!(lines.iter().enumerate().all(|(i, l)| *l == i.to_string()), "in order");
    assert_eq!(ssh(lab, from, "docker cp tx:/tmp/rc - | tar -xO").trim(), "0", "the sender saw no reset");
    assert_eq!(ssh(lab, to, "docker cp rx:/tmp/rc - | tar -xO").trim(), "0", "the receiver saw no reset");
    ssh(lab, from, "docker rm -f tx >/dev/null");
    ssh(lab, to, "docker rm -f rx >/dev/null");
}

/// The inventory edits on the text `vxmesh lab create` writes, read back by the real parser; no root needed.
mod tests {
    use std::path::Path;

    use vxmesh::lab::LabState;
    use vxmesh::model::inventory::{self, Backend, DockerMode, Encryption, FirewallKind};

    use super::Inventory;
    use crate::util::TempDir;

    /// A 3-node mixed lab's state (from JSON, as `lab::load` reads it), its inventory written where a created
    /// lab's would be.
    fn lab_in(dir: &Path) -> LabState {
        let node = |i: u8| {
            let n = format!("node{i}");
            serde_json::json!({"name": n, "netns": n, "veth": n, "ip": format!("192.168.77.{}", 10 + i), "kernel": i.is_multiple_of(2)})
        };
        let state: LabState = serde_json::from_value(serde_json::json!({
            "name": "zz", "dir": dir, "bridge": "vxlzz", "subnet": "192.168.77.0/24", "gateway": "192.168.77.1",
            "light": false, "nodes": [node(1), node(2), node(3)], "outside": node(240),
        }))
        .unwrap();
        std::fs::write(state.inventory_path(), vxmesh::lab::inventory_text(&state)).unwrap();
        state
    }

    fn parsed(inv: &Inventory) -> inventory::Inventory {
        inventory::parse(Path::new("vxmesh.yaml"), inv.text()).unwrap_or_else(|e| panic!("{e}\n{}", inv.text()))
    }

    #[test]
    fn inventory_edits_change_what_they_say_and_nothing_else() {
        let dir = TempDir::new("labkit");
        let lab = lab_in(&dir.0);
        let plain = parsed(&Inventory::of(&lab, &dir.0));
        assert_eq!(plain.nodes.len(), 3);
        assert_eq!(plain.cluster.encryption, Encryption::None);

        let edited = parsed(
            &Inventory::of(&lab, &dir.0)
                .cluster("encryption", "wireguard")
                .cluster("firewall", "nftables")
                .cluster("docker", "{mode: none}")
                .cluster("vni", "4242")
                .without(&["node1", "node3"]),
        );
        assert_eq!(edited.cluster.encryption, Encryption::Wireguard);
        assert_eq!(edited.cluster.firewall, FirewallKind::Nftables);
        assert_eq!(edited.cluster.docker.mode, DockerMode::None);
        assert_eq!(edited.cluster.vni, 4242);
        assert_eq!(edited.cluster.datapath, plain.cluster.datapath);
        assert_eq!(edited.cluster.outside, plain.cluster.outside);
        let names: Vec<&str> = edited.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["node2"], "the kernel node, as encryption needs");

        let ssh = parsed(
            &Inventory::of(&lab, &dir.0)
                .ssh("known_hosts", Some("/elsewhere/known_hosts"))
                .ssh("identity_file", None)
                .node("node2", "{name: node2, host: behind, underlay_ip: 192.168.77.12, backend: linux}"),
        );
        assert_eq!(ssh.ssh.known_hosts.as_deref(), Some(Path::new("/elsewhere/known_hosts")));
        assert_eq!(ssh.ssh.identity_file, None);
        assert_eq!(ssh.ssh.user, plain.ssh.user);
        assert_eq!((ssh.nodes[1].host.as_str(), ssh.nodes[1].backend), ("behind", Some(Backend::Linux)));
        assert_eq!(ssh.nodes[2].host, plain.nodes[2].host);

        let only =
            parsed(&Inventory::of(&lab, &dir.0).nodes(&["{name: a, host: 10.0.0.1}", "{name: b, host: 10.0.0.2}"]));
        let hosts: Vec<&str> = only.nodes.iter().map(|n| n.host.as_str()).collect();
        assert_eq!(hosts, ["10.0.0.1", "10.0.0.2"]);
    }

    #[test]
    #[should_panic(expected = "no node `node9`")]
    fn removing_a_node_the_lab_lacks_fails() {
        let dir = TempDir::new("labkit");
        let lab = lab_in(&dir.0);
        let _ = Inventory::of(&lab, &dir.0).without(&["node9"]);
    }

    #[test]
    #[should_panic(expected = "no `port` under `ssh:` to remove")]
    fn removing_a_key_the_section_lacks_fails() {
        let dir = TempDir::new("labkit");
        let lab = lab_in(&dir.0);
        let _ = Inventory::of(&lab, &dir.0).ssh("port", None);
    }
}

/// tcpdump writing every frame of one interface to a file; stopped (and waited for) on `stop` or drop.
pub struct Capture {
    child: Option<Child>,
    file: PathBuf,
}

impl Capture {
    /// On a machine-side interface (a lab bridge), the capture file named after it.
    pub fn on_machine(dir: &Path, iface: &str) -> Capture {
        Capture::start(dir, iface, None, iface)
    }

    /// On `iface` of the machine, or of a lab node's network namespace.
    pub fn start(dir: &Path, name: &str, netns: Option<&str>, iface: &str) -> Capture {
        let file = dir.join(format!("{name}.pcap"));
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{ns}")).arg("tcpdump");
                c
            }
            None => Command::new("tcpdump"),
        };
        let child = cmd
            .args(["-i", iface, "-U", "-n", "-s", "0", "-w"])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tcpdump (scripts/install-deps.sh installs it)");
        // tcpdump needs a moment before it captures.
        for _ in 0..50 {
            if file.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
        Capture { child: Some(child), file }
    }

    pub fn stop(&mut self) -> Vec<u8> {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-INT", &c.id().to_string()]).status();
            let _ = c.wait();
        }
        std::fs::read(&self.file).unwrap()
    }

    /// Frames of the stopped capture that match a tcpdump filter.
    pub fn count(&self, filter: &str) -> usize {
        let out = Command::new("tcpdump").args(["-nn", "-r"]).arg(&self.file).arg(filter).output().unwrap();
        String::from_utf8_lossy(&out.stdout).lines().count()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// On each node a busybox container on the mesh network serving a 1 MiB file and, at /cgi-bin/ip, the address
/// it sees a client at; its IPv4 and IPv6 addresses.
pub fn start_probes(lab: &LabState) -> Vec<(String, String, String)> {
    const SETUP: &str = r##"docker rm -f v6probe >/dev/null 2>&1
docker run -d --name v6probe --network vxmesh busybox sh -c 'mkdir -p /www/cgi-bin; printf "#!/bin/sh\necho Content-Type: text/plain\necho\necho \$REMOTE_ADDR\n" > /www/cgi-bin/ip; chmod +x /www/cgi-bin/ip; dd if=/dev/zero of=/www/blob bs=1024 count=1024 2>/dev/null; httpd -f -p 8080 -h /www' >/dev/null
docker inspect v6probe --format '{{.NetworkSettings.Networks.vxmesh.IPAddress}} {{.NetworkSettings.Networks.vxmesh.GlobalIPv6Address}}'"##;
    lab.nodes
        .iter()
        .map(|n| {
            let out = vxmesh::lab::node_exec(lab, &n.name, SETUP).unwrap();
            let (v4, v6) = out.trim().split_once(' ').unwrap_or_else(|| panic!("{}: {out}", n.name));
            assert!(v6.parse::<std::net::Ipv6Addr>().is_ok(), "{}: no IPv6 address from docker: {out}", n.name);
            (n.name.clone(), v4.to_string(), v6.to_string())
        })
        .collect()
}

/// Every ordered pair in both families: the listener sees the client's own address (no NAT), 1 MiB arrives
/// whole, a packet of exactly the overlay MTU passes with don't-fragment and one byte more is refused at the
/// sender, and the peer's switch answers on its IPv6 address.
pub fn both_families_between_every_pair(lab: &LabState, probes: &[(String, String, String)], mtu: u32) {
    for (a, a4, a6) in probes {
        for (b, b4, b6) in probes.iter().filter(|p| p.0 != *a) {
            for (family, url_host, own, payload) in
                [("IPv4", b4.clone(), a4, mtu - 28), ("IPv6", format!("[{b6}]"), a6, mtu - 48)]
            {
                let target = url_host.trim_matches(|c| c == '[' || c == ']');
                let script = format!(
                    "docker exec v6probe wget -qO- 'http://{url_host}:8080/cgi-bin/ip'; \
                     docker exec v6probe sh -c 'wget -qO- http://{url_host}:8080/blob | wc -c'; \
                     pid=$(docker inspect -f '{{{{.State.Pid}}}}' v6probe); \
                     nsenter -t $pid -n ping -c1 -W3 -M do -s {payload} {target} >/dev/null 2>&1 && echo full-ok; \
                     nsenter -t $pid -n ping -c1 -W3 -M do -s {over} {target} 2>&1 | grep -q 'too long' && echo over-refused; true",
                    over = payload + 1
                );
                let out = vxmesh::lab::node_exec(lab, a, &script).unwrap();
                let lines: Vec<&str> = out.lines().map(str::trim).collect();
                let seen = lines.first().copied().unwrap_or_default();
                let seen = seen.trim_matches(|c| c == '[' || c == ']').trim_start_matches("::ffff:");
                assert_eq!(
                    seen,
                    own.as_str(),
                    "{a} -> {b} over {family}: the listener saw {seen}, not {a}'s own address: {out}"
                );
                assert_eq!(lines.get(1).copied(), Some("1048576"), "{a} -> {b} over {family}: 1 MiB: {out}");
                assert!(lines.contains(&"full-ok"), "{a} -> {b} over {family}: {payload} bytes with DF: {out}");
                assert!(lines.contains(&"over-refused"), "{a} -> {b} over {family}: one byte more: {out}");
            }
        }
    }
    let switches = vxmesh::lab::node_exec(lab, "node1", "ip -6 route show dev sw0 | awk '/via/ {print $3}'").unwrap();
    assert_eq!(switches.lines().count(), probes.len() - 1, "node1 routes each peer's block via its sw0: {switches}");
    for via in switches.lines() {
        let ping = vxmesh::lab::node_exec(
            lab,
            "node1",
            &format!("docker exec v6probe ping -c1 -W3 {via} >/dev/null && echo ok; true"),
        )
        .unwrap();
        assert_eq!(ping.trim(), "ok", "node1's container reaches the switch {via}");
    }
}
