//! A simulated fleet: hosts that answer each script as a real one would, from facts, after a delay. A cold host
//! prints the recorded bare host's facts (its own underlay address in them); once it got its apply script it
//! prints the facts of the host that script builds, so a second `up` has nothing to do and `status` is clean.
//!
//! The converged facts are made before any run, not while one is measured: the recorded bare host's facts, the
//! node's diff applied to them by the model of what each change does (`tests/it/simulate.rs`, and the kernel
//! backend's changes here), BFD up on every tunnel, then written as the gather script prints them. They are kept
//! in files: at 3,000 hosts the fleet's converged facts are gigabytes, which no host keeps for another.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use vxmesh::components::linux::{self, LinuxFacts, VxlanDevice};
use vxmesh::components::ovs::{self, OvsFacts};
use vxmesh::components::wireguard;
use vxmesh::components::{Kind, Phase, Step, switch};
use vxmesh::converge::{self, Output, Transport};
use vxmesh::error::HostError;
use vxmesh::facts::{HostFacts, Link};
use vxmesh::plan::{ClusterPlan, NodePlan};
use vxmesh::remote::executor::{Connect, Connection, Options};

use super::facts_text;
use super::simulate;

/// What the network and the hosts cost, per round trip and per script.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    /// One round trip between the laptop and a host.
    pub rtt: Duration,
    /// Round trips of an SSH connection: TCP, key exchange (two), the user's key, the first channel.
    pub connect_rtts: u32,
    /// Round trips of one script: its channel, then `exec` with the script and its answer.
    pub script_rtts: u32,
    /// The host's own time for the facts script, for the apply script of a cold host, for anything else.
    pub gather: Duration,
    pub apply: Duration,
    pub other: Duration,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            rtt: Duration::from_millis(20),
            connect_rtts: 5,
            script_rtts: 2,
            // docs/benchmarks.md: the facts script 0.05 s (median, light OVS host); a host's apply 0.3-0.4 s.
            gather: Duration::from_millis(50),
            apply: Duration::from_millis(400),
            other: Duration::from_millis(10),
        }
    }
}

impl Latency {
    /// No waiting at all: for checking the simulation itself.
    pub fn none() -> Latency {
        Latency {
            rtt: Duration::ZERO,
            connect_rtts: 0,
            script_rtts: 0,
            gather: Duration::ZERO,
            apply: Duration::ZERO,
            other: Duration::ZERO,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Cold,
    /// It made its WireGuard key (encryption's first round trip), nothing else yet.
    Keyed,
    Converged,
}

struct Host {
    underlay: String,
    key: String,
    /// Steps its apply script must carry: the diff of the cold host.
    steps: usize,
    converged: PathBuf,
    state: Mutex<State>,
}

/// Scripts the hosts ran, by kind, since the last [`Fleet::reset`].
#[derive(Debug, Default)]
pub struct Counts {
    pub connects: AtomicUsize,
    pub gathers: AtomicUsize,
    pub keygens: AtomicUsize,
    pub applies: AtomicUsize,
    pub others: AtomicUsize,
    /// Bytes of facts the hosts printed.
    pub facts_bytes: AtomicU64,
}

/// The simulated hosts of one cluster plan.
pub struct Fleet {
    hosts: HashMap<String, Arc<Host>>,
    template: String,
    keygen: String,
    latency: Latency,
    pub counts: Arc<Counts>,
}

/// The recorded bare host, and what the recording predates: the kernel can make VXLAN and WireGuard devices.
pub fn bare_template() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/facts/bare-host.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = facts_text::Output::parse(&text);
    out.set("vxlan-support", "yes".into());
    out.set("wg-kernel", "yes".into());
    out.text()
}

/// The recorded host's underlay address: each simulated host prints its own in its place.
const RECORDED_UNDERLAY: &str = "192.168.122.81";

fn cold_text(template: &str, underlay: &str) -> String {
    template.replace(RECORDED_UNDERLAY, underlay)
}

/// A WireGuard public key of its own for each host (44 characters of base64, as `wg pubkey` prints).
pub fn key_of(index: usize) -> String {
    let mut bytes = [0x5au8; 32];
    bytes[..8].copy_from_slice(&(index as u64).to_be_bytes());
    base64(&bytes)
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in bytes.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// What the kernel backend's changes do to a host's facts (the rest is `simulate.rs`'s).
fn apply_linux(f: &mut HostFacts, c: &linux::Change) {
    let mtu = |m: vxmesh::components::Mtu| m.value().expect("simulated hosts know their MTU");
    match c {
        linux::Change::Bridge { bridge, mtu: m } => {
            let l = f.links.entry(bridge.to_string()).or_default();
            l.kind = "bridge".into();
            l.mtu = mtu(*m);
        }
        linux::Change::Vxlan { dev, vni, port, local, mtu: m, .. } => {
            f.links.insert(
                dev.to_string(),
                Link {
                    mtu: mtu(*m),
                    up: false,
                    kind: "vxlan".into(),
                    master: None,
                    addrs: vec![],
                    addrs6: vec![],
                    mac: None,
                },
            );
            let lf = f.part_mut::<LinuxFacts>();
            lf.vxlan = Some(VxlanDevice { id: Some(*vni), port: Some(*port), local: Some(*local) });
            lf.flood_to.clear();
        }
        linux::Change::FloodTo { dst, .. } => {
            f.part_mut::<LinuxFacts>().flood_to.insert(*dst);
        }
        linux::Change::StopFlooding { dst, .. } => {
            f.part_mut::<LinuxFacts>().flood_to.remove(dst);
        }
        linux::Change::Plug { dev, bridge } => {
            let l = f.links.entry(dev.to_string()).or_default();
            l.master = Some(bridge.to_string());
            l.up = true;
        }
        linux::Change::RemoveDevice { dev } => {
            f.links.remove(dev.as_str());
            f.part_mut::<LinuxFacts>().vxlan = None;
        }
    }
}

/// The changes made once per peer (a tunnel, a route, a WireGuard peer), applied at once at the end: the model
/// in `simulate.rs` applies each by a search through the ones before, which at 3,000 hosts of 2,999 peers each is
/// 10^10 comparisons. The result is the same: none of them is on a cold host.
#[derive(Default)]
struct PerPeer {
    tunnels: Vec<ovs::Change>,
    routes: Vec<vxmesh::facts::Route>,
    wireguard: Vec<wireguard::WgPeerState>,
}

impl PerPeer {
    fn take(&mut self, s: &Step) -> bool {
        if let Some(c @ ovs::Change::Tunnel { .. }) = s.change_as::<ovs::Change>() {
            self.tunnels.push(clone_tunnel(c));
        } else if let Some(switch::Change::Route { dev, subnet, via, .. }) = s.change_as::<switch::Change>() {
            self.routes.push(vxmesh::facts::Route {
                dst: subnet.to_string(),
                dev: Some(dev.to_string()),
                gateway: Some(via.to_string()),
            });
        } else if let Some(wireguard::Change::Peer { public_key, endpoint, address, replaces: None, .. }) =
            s.change_as::<wireguard::Change>()
        {
            self.wireguard.push(wireguard::WgPeerState {
                public_key: public_key.clone(),
                endpoint: Some(endpoint.clone()),
                allowed_ips: vec![format!("{address}/32")],
                latest_handshake: 0,
                keepalive: Some(wireguard::KEEPALIVE),
            });
        } else {
            return false;
        }
        true
    }

    fn apply(self, f: &mut HostFacts) {
        let dsts: std::collections::HashSet<&str> = self.routes.iter().map(|r| r.dst.as_str()).collect();
        f.routes.retain(|r| !dsts.contains(r.dst.as_str()));
        f.routes.extend(self.routes.iter().cloned());
        if !self.wireguard.is_empty() {
            let d = f.part_mut::<wireguard::WireguardFacts>().device.as_mut().expect("the interface before its peers");
            let keys: std::collections::HashSet<&str> = self.wireguard.iter().map(|p| p.public_key.as_str()).collect();
            d.peers.retain(|p| !keys.contains(p.public_key.as_str()));
            d.peers.extend(self.wireguard.iter().cloned());
        }
        if self.tunnels.is_empty() {
            return;
        }
        // Each tunnel as `simulate.rs` makes it, on a bridge of its own; then all of them joined to the real one.
        let o = f.part_mut::<OvsFacts>();
        let (mut on, mut names) = (String::new(), vec![]);
        for c in self.tunnels {
            let ovs::Change::Tunnel { bridge, tunnel, .. } = &c else { unreachable!() };
            let (bridge, port) = (bridge.to_string(), tunnel.port.to_string());
            let mut alone = HostFacts::default();
            alone.part_mut::<OvsFacts>().bridges.insert(bridge.clone(), Default::default());
            simulate::apply(&mut alone, &Step::new(Phase::Switch, Kind::Ovs, "", c, vec![]));
            let made = alone.part_mut::<OvsFacts>();
            o.ports.insert(port.clone(), made.ports.remove(&port).expect("its port"));
            o.interfaces.insert(port.clone(), made.interfaces.remove(&port).expect("its interface"));
            names.push(port);
            on = bridge;
        }
        let b = o.bridges.get_mut(&on).expect("ovs-vsctl add-port fails without the bridge");
        b.ports.extend(names);
        b.ports.sort();
        b.ports.dedup();
    }
}

fn clone_tunnel(c: &ovs::Change) -> ovs::Change {
    match c {
        ovs::Change::Tunnel { bridge, tunnel, vni, port, repair } => ovs::Change::Tunnel {
            bridge: bridge.clone(),
            tunnel: tunnel.clone(),
            vni: *vni,
            port: *port,
            repair: repair.clone(),
        },
        _ => unreachable!(),
    }
}

/// The facts of `cold` once `node`'s diff is applied, every tunnel's BFD up and the apply recorded; and how many
/// steps that diff had.
pub fn converge(node: &NodePlan, cold: &HostFacts) -> (HostFacts, usize) {
    let steps = converge::diff(node, cold);
    let mut f = cold.clone();
    let mut per_peer = PerPeer::default();
    for s in &steps {
        if let Some(c) = s.change_as::<linux::Change>() {
            apply_linux(&mut f, c);
        } else if !per_peer.take(s) {
            simulate::apply(&mut f, s);
        }
    }
    per_peer.apply(&mut f);
    if let Some(o) = f.part::<OvsFacts>().cloned() {
        let mut o = o;
        for i in o.interfaces.values_mut().filter(|i| i.bfd.get("enable").map(String::as_str) == Some("true")) {
            i.bfd_status.insert("state".into(), "up".into());
            i.bfd_status.insert("forwarding".into(), "true".into());
        }
        f.set_part(o);
    }
    if f.part::<wireguard::WireguardFacts>().is_some() {
        // Every peer shook hands (a recent time, as `wg show` reports it).
        for p in f.part_mut::<wireguard::WireguardFacts>().device.iter_mut().flat_map(|d| d.peers.iter_mut()) {
            p.latest_handshake = 1_796_000_000;
        }
    }
    f.applied = Some((converge::plan_fingerprint(node), "2026-12-07T19:30:00Z".into()));
    (f, steps.len())
}

/// The text a converged host prints for `node`'s gather script, and the steps its cold apply had.
pub fn converged_text(template: &str, node: &NodePlan, key: &str) -> (String, usize) {
    let before = facts_text::Output::parse(&cold_text(template, &node.underlay.to_string()));
    let mut cold = converge::parse_for(node, &before.text()).expect("the bare host's facts parse");
    if node.wireguard.is_some() {
        wireguard::set_public_key(&mut cold, key.to_string());
    }
    let (f, steps) = converge(node, &cold);
    (facts_text::write(&before, node, &f), steps)
}

impl Fleet {
    /// Simulated hosts for every node of `plan`, their converged facts written under `dir` first (on `threads`
    /// threads); the first host's are checked to leave nothing to do, so a broken model fails here, clearly.
    pub fn build(plan: &ClusterPlan, dir: &Path, latency: Latency, threads: usize) -> Fleet {
        let template = bare_template();
        let keys: HashMap<&str, String> =
            plan.nodes.iter().enumerate().map(|(i, n)| (n.name.as_str(), key_of(i))).collect();
        // Every node as `up` plans it once every host reported: the cluster's smallest underlay MTU (the recorded
        // host's 1500 everywhere) and every host's key.
        let keyed = plan
            .with_cluster_mtu([1500])
            .with_public_keys(&keys.iter().map(|(n, k)| (n.to_string(), k.clone())).collect());
        let next = AtomicUsize::new(0);
        let steps: Vec<AtomicUsize> = plan.nodes.iter().map(|_| AtomicUsize::new(0)).collect();
        std::thread::scope(|s| {
            for _ in 0..threads.max(1) {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(node) = keyed.nodes.get(i) else { break };
                        let (text, n) = converged_text(&template, node, &keys[node.name.as_str()]);
                        if i == 0 {
                            let f = converge::parse_for(node, &text).expect("the converged facts parse");
                            let left: Vec<String> =
                                converge::diff(node, &f).into_iter().map(|s| s.description).collect();
                            assert!(left.is_empty(), "a simulated converged host still needs: {left:#?}");
                        }
                        std::fs::write(dir.join(&node.name), text).expect("writes the converged facts");
                        steps[i].store(n, Ordering::Relaxed);
                    }
                });
            }
        });
        let hosts = plan
            .nodes
            .iter()
            .zip(&steps)
            .map(|(n, s)| {
                let host = Host {
                    underlay: n.underlay.to_string(),
                    key: keys[n.name.as_str()].clone(),
                    steps: s.load(Ordering::Relaxed),
                    converged: dir.join(&n.name),
                    state: Mutex::new(State::Cold),
                };
                (n.name.clone(), Arc::new(host))
            })
            .collect();
        Fleet { hosts, template, keygen: wireguard::keygen_script(false), latency, counts: Arc::default() }
    }

    /// Every host cold again (as before its first `up`), the counts zero.
    pub fn reset(&self) {
        for h in self.hosts.values() {
            *h.state.lock().unwrap() = State::Cold;
        }
        self.zero();
    }

    pub fn zero(&self) {
        let c = &self.counts;
        for a in [&c.connects, &c.gathers, &c.keygens, &c.applies, &c.others] {
            a.store(0, Ordering::Relaxed);
        }
        c.facts_bytes.store(0, Ordering::Relaxed);
    }

    pub fn converged(&self) -> usize {
        self.hosts.values().filter(|h| *h.state.lock().unwrap() == State::Converged).count()
    }
}

/// One connection to a simulated host.
struct Session {
    host: Arc<Host>,
    template: Arc<str>,
    keygen: Arc<str>,
    latency: Latency,
    counts: Arc<Counts>,
}

impl Session {
    fn answer(&self, script: &str) -> (Output, Duration) {
        let c = &self.counts;
        let ok = |stdout: String| Output { stdout, stderr: String::new(), code: 0 };
        let mut state = self.host.state.lock().unwrap();
        if tail_has(script, "\nmark end\n") {
            c.gathers.fetch_add(1, Ordering::Relaxed);
            let text = match *state {
                State::Converged => std::fs::read_to_string(&self.host.converged).expect("reads the converged facts"),
                State::Cold => cold_text(&self.template, &self.host.underlay),
                State::Keyed => {
                    let mut out = facts_text::Output::parse(&cold_text(&self.template, &self.host.underlay));
                    out.set("wg-key", self.host.key.clone());
                    out.set("wg-key-file", "yes".into());
                    out.text()
                }
            };
            c.facts_bytes.fetch_add(text.len() as u64, Ordering::Relaxed);
            (ok(text), self.latency.gather)
        } else if script == &*self.keygen {
            c.keygens.fetch_add(1, Ordering::Relaxed);
            if *state == State::Cold {
                *state = State::Keyed;
            }
            (ok(format!("{}\n", self.host.key)), self.latency.other)
        } else if tail_has(script, "\nstep done 'all steps applied'\n") {
            c.applies.fetch_add(1, Ordering::Relaxed);
            let want = format!(", {} step(s).", self.host.steps);
            if *state == State::Converged || !script.lines().take(3).any(|l| l.contains(&want)) {
                let why =
                    format!("simulated host: an apply script other than the cold host's {} steps", self.host.steps);
                return (Output { stdout: String::new(), stderr: why, code: 99 }, self.latency.other);
            }
            *state = State::Converged;
            (ok(String::new()), self.latency.apply)
        } else {
            c.others.fetch_add(1, Ordering::Relaxed);
            let why = "simulated host: no answer for this script".to_string();
            (Output { stdout: String::new(), stderr: why, code: 127 }, self.latency.other)
        }
    }
}

/// Whether `what` is in the last few kilobytes of `script`, where the gather and apply scripts end: a cold apply
/// script of 1,000 peers is over a megabyte, and searching all of it twice was the simulated host's own cost, not
/// the laptop's.
fn tail_has(script: &str, what: &str) -> bool {
    let b = script.as_bytes();
    b[b.len().saturating_sub(4096)..].windows(what.len()).any(|w| w == what.as_bytes())
}

impl Transport for Session {
    fn run<'a>(&'a self, script: &'a str) -> BoxFuture<'a, Result<Output, HostError>> {
        Box::pin(async move {
            let (out, host_time) = self.answer(script);
            let wait = self.latency.rtt * self.latency.script_rtts + host_time;
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            Ok(out)
        })
    }
}

impl Connection for Session {
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// Connects to the simulated hosts, as SSH would to real ones.
pub struct Connector {
    fleet: Arc<Fleet>,
    template: Arc<str>,
    keygen: Arc<str>,
}

impl Connector {
    pub fn new(fleet: Arc<Fleet>) -> Connector {
        let (template, keygen) = (fleet.template.as_str().into(), fleet.keygen.as_str().into());
        Connector { fleet, template, keygen }
    }
}

impl Connect for Connector {
    fn connect<'a>(
        &'a self,
        node: &'a NodePlan,
        _: &'a Options,
    ) -> BoxFuture<'a, Result<Arc<dyn Connection>, HostError>> {
        Box::pin(async move {
            let host = self.fleet.hosts.get(&node.name).cloned();
            let host = host.ok_or_else(|| HostError::Unreachable(format!("no simulated host {}", node.name)))?;
            self.fleet.counts.connects.fetch_add(1, Ordering::Relaxed);
            let l = self.fleet.latency;
            if !(l.rtt * l.connect_rtts).is_zero() {
                tokio::time::sleep(l.rtt * l.connect_rtts).await;
            }
            Ok(Arc::new(Session {
                host,
                template: self.template.clone(),
                keygen: self.keygen.clone(),
                latency: l,
                counts: self.fleet.counts.clone(),
            }) as Arc<dyn Connection>)
        })
    }
}
