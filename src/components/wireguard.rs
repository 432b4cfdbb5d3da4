//! Encryption under the tunnels: one WireGuard interface per host (the kernel's, else `wireguard-go`), its private
//! key made on the host and never read back, every other host a peer (endpoint its address on the pair's path,
//! none for a peer behind NAT; allowed IPs its WireGuard address, plus those it relays for this host). VXLAN then
//! runs between WireGuard addresses. An `unreachable` route for the whole WireGuard range, below the interface's
//! own, makes the host fail closed: with the interface down or gone, VXLAN to a peer has no route at all, instead
//! of leaving in clear through the default route.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::Serialize;

use super::core::{
    Capabilities, Component, Concern, Ctx, Kind, Mtu, Need, PeerLink, Phase, Piece, Presence, Status, Step, need,
};
use crate::cmd;
use crate::facts::{FactsError, HostFacts, Sections, mark};
use crate::model::addr_text::{AddrText, Shown};
use crate::model::inventory::VXLAN_OVERHEAD;
use crate::model::names::{self, IfName};
use crate::plan::{NodePlan, WireguardPeer, WireguardSpec};
use crate::shell::{Cmd, Stmt, Var, Word, addr, data, join, unless, when};

/// The metric of the fail-closed route: above the interface's own route (metric 0), so it only ever answers
/// when that one is gone. Also how vxmesh recognises its own guard routes.
pub const GUARD_METRIC: u32 = 4242;

/// wireguard-go's control socket: removing it is how a userspace interface is stopped (as wg-quick does).
const USERSPACE_SOCKET: &str = names::WIREGUARD_SOCKET;

/// The key file's path as a literal, for the fixed shell text below ([`names::WIREGUARD_KEY`]).
macro_rules! key_file {
    () => {
        concat!(names::state_dir!(), "/wireguard.key")
    };
}

/// Writes a new private key: root-only from the first byte (umask), written beside and renamed, so a host never
/// has half a key. Nothing from outside is in it.
macro_rules! make_key {
    () => {
        concat!(
            "(umask 077 && mkdir -p ",
            names::state_dir!(),
            " && wg genkey > ",
            key_file!(),
            ".new && mv ",
            key_file!(),
            ".new ",
            key_file!(),
            ")"
        )
    };
}

/// Makes the private key once.
const KEYGEN: &str = concat!("if [ ! -s ", key_file!(), " ]; then\n  ", make_key!(), "\nfi");

/// wireguard-go returns before its control socket exists; `wg set` needs it.
const WAIT_FOR_USERSPACE: &str = concat!(
    "i=0; while [ ! -S /var/run/wireguard/",
    names::wireguard_device_name!(),
    ".sock ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done"
);

/// The interface gone after its socket was removed (wireguard-go exits and takes its device with it).
const WAIT_FOR_USERSPACE_EXIT: &str = concat!(
    "i=0; while ip link show dev ",
    names::wireguard_device_name!(),
    " >/dev/null 2>&1 && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done"
);

/// Makes a new key in place of the old one (`rotate-keys`): the interface keeps the old one until it is set up again.
const REKEY: &str = make_key!();

/// The script of encryption's first round trip on a host without a key (or, with `replace`, one whose key is
/// rotated): make it there, print its public key.
pub fn keygen_script(replace: bool) -> String {
    let stmts = [
        Stmt::Static(if replace { REKEY } else { KEYGEN }),
        cmd!["cat", names::WIREGUARD_KEY].pipe(cmd!["wg", "pubkey"]).into(),
    ];
    format!("set -eu\nexport PATH=\"$PATH:/usr/sbin:/sbin\"\n{}", crate::shell::render(&stmts, 0))
}

/// The public keys the hosts reported, by node name.
pub fn public_keys<'a>(
    facts: impl IntoIterator<Item = (&'a String, &'a HostFacts)>,
) -> std::collections::BTreeMap<String, String> {
    facts
        .into_iter()
        .filter_map(|(name, f)| Some((name.clone(), f.part::<WireguardFacts>()?.public_key.clone()?)))
        .collect()
}

/// The public keys to plan with: each reached host's own, and for hosts `--limit` left out, the key the reached
/// hosts already have for them (a peer is found by its WireGuard address, the only address it may send from).
pub fn known_keys<'a>(
    plan: &crate::plan::ClusterPlan,
    facts: impl Iterator<Item = (&'a String, &'a HostFacts)> + Clone,
) -> std::collections::BTreeMap<String, String> {
    let mut keys = public_keys(facts.clone());
    if plan.nodes.iter().all(|n| keys.contains_key(&n.name)) {
        return keys;
    }
    // The first key any host has configured for each allowed address (a host's entries, in hosts' order).
    let mut configured: HashMap<&str, &str> = HashMap::new();
    for p in facts.filter_map(|(_, f)| f.part::<WireguardFacts>()?.device.as_ref()).flat_map(|d| d.peers.iter()) {
        if let [address] = p.allowed_ips.as_slice() {
            configured.entry(address.as_str()).or_insert(p.public_key.as_str());
        }
    }
    for n in &plan.nodes {
        if keys.contains_key(&n.name) {
            continue;
        }
        let Some(w) = &n.wireguard else { continue };
        if let Some(key) = configured.get(allowed(w.address.addr()).as_str()) {
            keys.insert(n.name.clone(), key.to_string());
        }
    }
    keys
}

/// Records the public key a host just made in its facts.
pub fn set_public_key(facts: &mut HostFacts, key: String) {
    facts.part_mut::<WireguardFacts>().public_key = Some(key);
}

/// Waits (at most 8 s) until the interface has a handshake with every peer; changes nothing.
pub const SETTLE: &str = concat!(
    "i=0; while [ $i -lt 40 ]; do n=$(wg show ",
    names::wireguard_device_name!(),
    " latest-handshakes 2>/dev/null | awk '$2 == 0' | wc -l); [ \"$n\" = 0 ] && break; sleep 0.2; i=$((i+1)); done"
);

/// Encryption as the node's plan asks for it.
pub struct Wireguard<'a> {
    pub node: &'a NodePlan,
    pub spec: &'a WireguardSpec,
}

/// What an earlier run with encryption on may have left on a host whose plan has none: gathered and removed
/// only (the list of a host's components decides that, once: [`super::HostComponents`]).
pub struct Remains;

/// What the host has of vxmesh's WireGuard. Only public keys are ever read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WireguardFacts {
    /// The public key of the host's key file, if there is one.
    pub public_key: Option<String>,
    /// The interface as `wg show` reports it, if it is a WireGuard interface.
    pub device: Option<WgDevice>,
    /// Whether the kernel makes WireGuard interfaces (`None`: not probed, the interface exists).
    pub kernel_module: Option<bool>,
    /// vxmesh's fail-closed routes (unreachable, [`GUARD_METRIC`]).
    pub guards: BTreeSet<Ipv4Net>,
    /// The key file exists (even one `wg` cannot read): `down` removes it either way.
    pub key_file: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WgDevice {
    pub public_key: String,
    pub listen_port: Option<u16>,
    pub peers: Vec<WgPeerState>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WgPeerState {
    pub public_key: String,
    pub endpoint: Option<String>,
    pub allowed_ips: Vec<String>,
    /// Seconds since the epoch of the latest handshake; 0 for never.
    pub latest_handshake: u64,
    /// Seconds between keepalives; `None` for off.
    pub keepalive: Option<u16>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    GenerateKey,
    Guard {
        cidr: Ipv4Net,
    },
    Device {
        dev: IfName,
        address: Ipv4Net,
        port: u16,
        mtu: Mtu,
    },
    Peer {
        peer: String,
        public_key: String,
        /// Empty when the peer is behind NAT: its endpoint is learnt from its handshake.
        #[serde(skip_serializing_if = "String::is_empty")]
        endpoint: String,
        address: Ipv4Addr,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        relayed: Vec<Ipv4Addr>,
        replaces: Option<String>,
    },
    PeerWithoutKey {
        peer: String,
    },
    RemovePeer {
        public_key: String,
    },
    RemoveDevice {
        dev: IfName,
    },
    RemoveGuard {
        cidr: Ipv4Net,
    },
    RemoveKey,
}

/// A WireGuard public key: 32 bytes in base64, 44 characters ending in `=`. Anything else from a host is refused.
pub fn is_public_key(s: &str) -> bool {
    s.len() == 44 && s.ends_with('=') && s[..43].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

fn key_error(what: &str) -> FactsError {
    FactsError::new("wg-key", format!("{what} is not a WireGuard public key"))
}

fn parse_key(body: &str) -> Result<Option<String>, FactsError> {
    let k = body.trim();
    if k.is_empty() {
        return Ok(None);
    }
    if !is_public_key(k) {
        return Err(key_error("the key file's public key"));
    }
    Ok(Some(k.to_string()))
}

/// `wg show DEV dump` as the host's awk left it: first the interface (public key, port; the private key is
/// dropped on the host), then one line per peer (public key, endpoint, allowed IPs, latest handshake).
fn parse_show(body: &str) -> Result<Option<WgDevice>, FactsError> {
    let mut lines = body.lines().filter(|l| !l.trim().is_empty());
    let Some(first) = lines.next() else { return Ok(None) };
    let mut f = first.split_whitespace();
    let public_key = f.next().unwrap_or_default().to_string();
    if !is_public_key(&public_key) {
        return Err(FactsError::new("wg-show", "the interface's public key is not a WireGuard public key"));
    }
    let listen_port = f.next().and_then(|p| p.parse().ok());
    let mut peers = vec![];
    for l in lines {
        let mut w = l.split_whitespace();
        let key = w.next().unwrap_or_default().to_string();
        if !is_public_key(&key) {
            return Err(FactsError::new("wg-show", "a peer's public key is not a WireGuard public key"));
        }
        let endpoint = w.next().filter(|e| *e != "(none)").map(String::from);
        let allowed_ips =
            w.next().filter(|a| *a != "(none)").map(|a| a.split(',').map(String::from).collect()).unwrap_or_default();
        let latest_handshake = w.next().and_then(|h| h.parse().ok()).unwrap_or(0);
        let keepalive = w.next().and_then(|k| k.parse().ok());
        peers.push(WgPeerState { public_key: key, endpoint, allowed_ips, latest_handshake, keepalive });
    }
    Ok(Some(WgDevice { public_key, listen_port, peers }))
}

/// `ip -o route show type unreachable`: vxmesh's own are those with [`GUARD_METRIC`].
fn parse_guards(body: &str) -> BTreeSet<Ipv4Net> {
    body.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let metric = w.iter().position(|x| *x == "metric").and_then(|i| w.get(i + 1))?;
            (w.first() == Some(&"unreachable") && *metric == GUARD_METRIC.to_string()).then_some(())?;
            w.get(1)?.parse().ok()
        })
        .collect()
}

fn dev() -> IfName {
    names::wireguard_device()
}

fn wg_set(rest: impl IntoIterator<Item = Word>) -> Cmd {
    Cmd::new(["wg".into(), "set".into(), (&dev()).into()].into_iter().chain(rest))
}

fn allowed(address: Ipv4Addr) -> String {
    let mut s = String::with_capacity(18);
    address.push_text(&mut s);
    s.push_str("/32");
    s
}

/// Seconds between keepalives to every peer. Not for NAT: a host whose interface was re-created (wireguard-go
/// restarted, a reboot) has forgotten its sessions while its peers still send on theirs, and those packets are
/// dropped until a peer gives up on its session (up to 15 s; measured: `verify` right after such an `up` lost its
/// first probes). A peer configured with a keepalive gets one at once, so the new interface starts the handshake
/// itself; after that, one small packet per peer every 25 s.
pub const KEEPALIVE: u16 = 25;

/// `peer KEY [endpoint ADDR:PORT] allowed-ips ADDR/32[,RELAYED/32...] persistent-keepalive 25`. A peer behind NAT
/// gets no endpoint: it starts, and WireGuard answers where its handshake came from. From a host behind NAT the
/// keepalive is what keeps its router's mapping open.
fn peer_words(key: &str, p: &WireguardPeer) -> Vec<Word> {
    let mut w = vec!["peer".into(), data(key)];
    if let Some(e) = p.endpoint {
        w.extend(["endpoint".into(), addr(e)]);
    }
    w.extend(["allowed-ips".into(), data(allowed_ips(p).join(",")), "persistent-keepalive".into(), data(KEEPALIVE)]);
    w
}

/// The peer's allowed IPs as `wg` prints them: its own address, then those it relays for this host.
fn allowed_ips(p: &WireguardPeer) -> Vec<String> {
    std::iter::once(p.address).chain(p.relayed.iter().copied()).map(allowed).collect()
}

/// Whether an entry's allowed IPs are exactly the peer's (in any order).
fn same_allowed(have: &[String], p: &WireguardPeer) -> bool {
    let want: BTreeSet<String> = allowed_ips(p).into_iter().collect();
    have.len() == want.len() && have.iter().all(|a| want.contains(a))
}

fn guard_route(op: &'static str, cidr: Ipv4Net) -> Cmd {
    cmd!["ip", "route", op, "unreachable", data(cidr), "metric", data(GUARD_METRIC)]
}

/// The WireGuard interface's MTU: the overlay's plus VXLAN's headers, which travel inside it.
fn device_mtu(overlay: Mtu) -> Word {
    match overlay {
        Mtu::Value(v) => data(v + u32::from(VXLAN_OVERHEAD)),
        Mtu::Detect => Word::Var(Var::WireguardMtu),
    }
}

fn step(description: String, change: Change, commands: Vec<Stmt>) -> Step {
    Step::new(Phase::Encryption, Kind::Wireguard, description, change, commands)
}

impl Wireguard<'_> {
    fn device_steps(&self, w: &WireguardSpec, f: &WireguardFacts, facts: &HostFacts, mtu: Mtu) -> Vec<Step> {
        let d = dev();
        let link = facts.links.get(d.as_str());
        let device = f.device.as_ref();
        let right = device
            .is_some_and(|x| Some(&x.public_key) == f.public_key.as_ref() && x.listen_port == Some(w.port))
            && link.is_some_and(|l| {
                l.addrs.contains(&w.address)
                    && l.up
                    && mtu.value().is_none_or(|m| l.mtu == m + u32::from(VXLAN_OVERHEAD))
            });
        if right {
            return vec![];
        }
        let create = unless(
            cmd!["ip", "link", "show", "dev", &d].silent(),
            vec![Stmt::If {
                conds: vec![cmd!["ip", "link", "add", &d, "type", "wireguard"].silent()],
                negate: true,
                then: vec![
                    Stmt::Comment(
                        "No WireGuard in this kernel: the userspace implementation, as wg-quick does.".into(),
                    ),
                    cmd!["env", "WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1", "wireguard-go", &d].into(),
                    Stmt::Static(WAIT_FOR_USERSPACE),
                ],
                otherwise: vec![],
            }],
        );
        let mtu_word = device_mtu(mtu);
        vec![step(
            format!("bring up WireGuard interface {d} ({}, port {})", w.address, w.port),
            Change::Device { dev: d.clone(), address: w.address, port: w.port, mtu },
            vec![
                create,
                wg_set(["listen-port".into(), data(w.port), "private-key".into(), Word::Lit(names::WIREGUARD_KEY)])
                    .into(),
                cmd!["ip", "address", "replace", data(w.address), "dev", &d].into(),
                Cmd::new(["ip".into(), "link".into(), "set".into(), "dev".into(), (&d).into(), "mtu".into(), mtu_word])
                    .into(),
                cmd!["ip", "link", "set", "dev", &d, "up"].into(),
            ],
        )]
    }

    fn peer_steps(&self, f: &WireguardFacts, fresh_device: bool) -> Vec<Step> {
        let have: &[WgPeerState] = match (&f.device, fresh_device) {
            (Some(d), false) => &d.peers,
            _ => &[],
        };
        // The host's entries by each of their allowed addresses, in the host's order: looked up once per peer,
        // so a host of a 1,000-node mesh compares 999 entries, not 999 squared.
        let mut have_at: HashMap<&str, Vec<&WgPeerState>> = HashMap::new();
        for h in have {
            for a in &h.allowed_ips {
                have_at.entry(a.as_str()).or_default().push(h);
            }
        }
        let peers: Vec<WireguardPeer> = self.node.wireguard_peers().collect();
        let planned_keys: std::collections::HashSet<&str> =
            peers.iter().filter_map(|p| p.public_key.as_deref()).collect();
        // Peers whose host has no key yet: an entry for their address may be theirs, so it stays.
        let unknown: std::collections::HashSet<String> =
            peers.iter().filter(|p| p.public_key.is_none()).map(|p| allowed(p.address)).collect();
        // Entries a peer's step removes itself (`replace the key of`).
        let mut replaced: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut steps = vec![];
        for p in &peers {
            let want_ip = allowed(p.address);
            // The entry for this address: the one with the plan's key, else one that is no other planned peer's
            // (an entry of a relay that also carries this address is the relay's, and stays so).
            let candidates = have_at.get(want_ip.as_str()).map_or(&[][..], Vec::as_slice);
            let found = candidates
                .iter()
                .find(|h| p.public_key.as_deref() == Some(h.public_key.as_str()))
                .or_else(|| candidates.iter().find(|h| !planned_keys.contains(h.public_key.as_str())))
                .copied();
            // A relay's entry carries other peers' addresses: it changes when they come or go, so it is the peers'
            // concern (`add-node` and `remove-node` change it on the other hosts), not only this peer's.
            let relaying = !p.relayed.is_empty() || found.is_some_and(|h| h.allowed_ips.len() > 1);
            let concern = if relaying { Concern::Peers } else { Concern::Peer(p.name.clone()) };
            let Some(key) = &p.public_key else {
                if found.is_none() {
                    steps.push(
                        step(
                            format!("add WireGuard peer {} once its host has a key (made at its first `up`)", p.name),
                            Change::PeerWithoutKey { peer: p.name.to_string() },
                            vec![Stmt::Comment(format!("{}: no public key known yet", p.name))],
                        )
                        .concerning(concern),
                    );
                }
                continue;
            };
            let endpoint = p.endpoint.map(|e| e.text());
            let (what, mut words) = match found {
                None => ("add", vec![]),
                Some(h) if h.public_key != *key => {
                    ("replace the key of", vec!["peer".into(), data(&h.public_key), "remove".into()])
                }
                // A peer behind NAT is wherever its last handshake came from: no endpoint to compare.
                Some(h) if endpoint.is_some() && h.endpoint != endpoint => ("set the endpoint of", vec![]),
                Some(h) if !same_allowed(&h.allowed_ips, p) => ("set the allowed IPs of", vec![]),
                Some(h) if h.keepalive != Some(KEEPALIVE) => ("set the keepalive of", vec![]),
                Some(_) => continue,
            };
            let replaces = found.filter(|h| h.public_key != *key).map(|h| h.public_key.clone());
            replaced.extend(replaces.clone());
            words.extend(peer_words(key, p));
            let shown = endpoint.clone().unwrap_or_else(|| "behind NAT: it starts".into());
            let via = if p.relayed.is_empty() { String::new() } else { format!(", relaying {}", p.relayed.len()) };
            steps.push(
                step(
                    format!("{what} WireGuard peer {} ({shown}, {}{via})", p.name, Shown(p.address)),
                    Change::Peer {
                        peer: p.name.to_string(),
                        public_key: key.clone(),
                        endpoint: endpoint.unwrap_or_default(),
                        address: p.address,
                        relayed: p.relayed.clone(),
                        replaces,
                    },
                    vec![wg_set(words).into()],
                )
                .concerning(concern),
            );
        }
        for h in have {
            // An entry stays when the plan names its key, when a peer's step replaces it, or when it may belong
            // to a peer whose key is not known yet; any other (a stale peer, a second entry for an address whose
            // key the plan knows) goes.
            let ours = planned_keys.contains(h.public_key.as_str())
                || replaced.contains(&h.public_key)
                || h.allowed_ips.iter().any(|a| unknown.contains(a));
            if !ours {
                steps.push(
                    step(
                        format!("remove WireGuard peer {} (not in the plan)", short(&h.public_key)),
                        Change::RemovePeer { public_key: h.public_key.clone() },
                        vec![wg_set(["peer".into(), data(&h.public_key), "remove".into()]).into()],
                    )
                    .concerning(Concern::Peers),
                );
            }
        }
        steps
    }
}

/// A key as messages show it: enough to tell keys apart.
fn short(key: &str) -> String {
    format!("{}…", &key[..key.len().min(8)])
}

/// Its read-only sections, the same whether encryption is planned or only maybe left by an earlier run.
fn gather() -> Vec<Stmt> {
    let d = dev();
    let probe = names::wireguard_probe();
    let exists = || cmd!["ip", "link", "show", "dev", &d].silent();
    vec![
        mark("wg-key"),
        Stmt::If {
            conds: vec![cmd!["has", "wg"], cmd!["test", "-s", names::WIREGUARD_KEY]],
            negate: false,
            // The private key goes from the file into `wg pubkey` on the host; only the public key is printed.
            then: vec![cmd!["cat", names::WIREGUARD_KEY].pipe(cmd!["wg", "pubkey"]).may_fail().into()],
            otherwise: vec![],
        },
        mark("wg-key-file"),
        when(cmd!["test", "-e", names::WIREGUARD_KEY], vec![cmd!["echo", "yes"].into()]),
        mark("wg-show"),
        Stmt::If {
            conds: vec![cmd!["has", "wg"], exists()],
            negate: false,
            // The dump's first line starts with the private key: awk drops it on the host.
            then: vec![
                cmd!["wg", "show", &d, "dump"]
                    .silent_stderr()
                    .pipe(cmd!["awk", "NR == 1 { print $2, $3 } NR > 1 { print $1, $3, $4, $5, $8 }"])
                    .may_fail()
                    .into(),
            ],
            otherwise: vec![],
        },
        mark("wg-kernel"),
        Stmt::If {
            conds: vec![exists()],
            negate: true,
            then: vec![Stmt::If {
                conds: vec![cmd!["ip", "link", "add", &probe, "type", "wireguard"].silent()],
                negate: false,
                then: vec![cmd!["ip", "link", "del", &probe].silent().may_fail().into(), cmd!["echo", "yes"].into()],
                otherwise: vec![cmd!["echo", "no"].into()],
            }],
            otherwise: vec![],
        },
        mark("wg-guard"),
        cmd!["ip", "-o", "route", "show", "type", "unreachable"].silent_stderr().may_fail().into(),
    ]
}

/// What the host has of vxmesh's WireGuard, from [`gather`]'s sections.
fn parse(s: &Sections, facts: &mut HostFacts) -> Result<(), FactsError> {
    let kernel = s.get("wg-kernel").trim();
    facts.set_part(WireguardFacts {
        public_key: parse_key(s.get("wg-key"))?,
        device: parse_show(s.get("wg-show"))?,
        kernel_module: match kernel {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        },
        guards: parse_guards(s.get("wg-guard")),
        key_file: s.get("wg-key-file").trim() == "yes",
    });
    Ok(())
}

/// What removes whatever the host has of vxmesh's WireGuard: interface, guard routes, key.
fn teardown(facts: &HostFacts) -> Vec<Step> {
    let Some(f) = facts.part::<WireguardFacts>() else { return vec![] };
    let d = dev();
    let mut steps = vec![];
    if facts.links.contains_key(d.as_str()) {
        steps.push(step(
            format!("delete WireGuard interface {d}"),
            Change::RemoveDevice { dev: d.clone() },
            vec![Stmt::If {
                conds: vec![cmd!["test", "-S", USERSPACE_SOCKET]],
                negate: false,
                then: vec![cmd!["rm", "-f", USERSPACE_SOCKET].into(), Stmt::Static(WAIT_FOR_USERSPACE_EXIT)],
                otherwise: vec![cmd!["ip", "link", "del", &d].silent_stderr().may_fail().into()],
            }],
        ));
    }
    for cidr in &f.guards {
        steps.push(step(
            format!("remove the fail-closed route for {cidr}"),
            Change::RemoveGuard { cidr: *cidr },
            vec![guard_route("del", *cidr).silent_stderr().may_fail().into()],
        ));
    }
    if f.public_key.is_some() || f.key_file {
        steps.push(step(
            "delete this host's WireGuard private key".into(),
            Change::RemoveKey,
            vec![cmd!["rm", "-f", names::WIREGUARD_KEY, join([Word::Lit(names::WIREGUARD_KEY), ".new".into()])].into()],
        ));
    }
    steps
}

/// The planned interface and what an earlier run may have left are the same piece of the host: one gather, one
/// parse, one teardown.
macro_rules! wireguard_piece {
    ($t:ty) => {
        impl Piece for $t {
            fn kind(&self) -> Kind {
                Kind::Wireguard
            }

            fn gather(&self) -> Vec<Stmt> {
                gather()
            }

            fn parse(&self, s: &Sections, facts: &mut HostFacts) -> Result<(), FactsError> {
                parse(s, facts)
            }

            fn teardown(&self, facts: &HostFacts) -> Vec<Step> {
                teardown(facts)
            }
        }
    };
}

wireguard_piece!(Wireguard<'_>);
wireguard_piece!(Remains);

impl Component for Wireguard<'_> {
    fn needs(&self, facts: &HostFacts) -> Vec<Need> {
        let mut v = vec![need("wg", "wireguard-tools", "wireguard-tools")];
        if facts.part::<WireguardFacts>().is_some_and(|f| f.kernel_module == Some(false)) {
            v.push(need("wireguard-go", "wireguard-go", "wireguard-go"));
        }
        v
    }

    fn preflight(&self, facts: &HostFacts) -> Vec<String> {
        let f = facts.part::<WireguardFacts>();
        if f.is_some_and(|f| f.key_file && f.public_key.is_none()) && facts.tools.contains_key("wg") {
            return vec![format!(
                "{} is there but is not a WireGuard private key (`wg pubkey` refuses it): remove it, and `up` makes a new one",
                names::WIREGUARD_KEY
            )];
        }
        vec![]
    }

    fn diff(&self, facts: &HostFacts, ctx: &Ctx) -> Vec<Step> {
        let w = self.spec;
        let empty = WireguardFacts::default();
        let f = facts.part::<WireguardFacts>().unwrap_or(&empty);
        let mut steps = vec![];
        if f.public_key.is_none() {
            steps.push(
                step(
                    "generate this host's WireGuard private key (root-only, it never leaves the host)".into(),
                    Change::GenerateKey,
                    vec![Stmt::Static(KEYGEN)],
                )
                .kept_across_reboots(),
            );
        }
        let cidr = w.address.trunc();
        if !f.guards.contains(&cidr) {
            steps.push(step(
                format!("fail closed: unreachable route for {cidr} under the WireGuard interface's own"),
                Change::Guard { cidr },
                vec![guard_route("replace", cidr).into()],
            ));
        }
        let device = self.device_steps(w, f, facts, ctx.mtu);
        let fresh = !facts.links.contains_key(dev().as_str());
        steps.extend(device);
        steps.extend(self.peer_steps(f, fresh));
        steps
    }

    fn capabilities(&self) -> Capabilities<'_> {
        Capabilities { status: Some(self), ..Capabilities::NONE }
    }
}

impl Status for Wireguard<'_> {
    /// `status` shows the interface through its peers.
    fn present(&self, _: &HostFacts) -> Option<(Presence, bool)> {
        None
    }

    fn peers(&self, facts: &HostFacts) -> Vec<PeerLink> {
        let have = facts.part::<WireguardFacts>().and_then(|f| f.device.as_ref());
        let mut have_at: HashMap<&str, &WgPeerState> = HashMap::new();
        // By each allowed address: a relay's entry on a host behind NAT carries the relayed peers' too.
        for h in have.iter().flat_map(|d| d.peers.iter()) {
            for a in &h.allowed_ips {
                have_at.entry(a.as_str()).or_insert(h);
            }
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.node
            .wireguard_peers()
            .map(|p| {
                let h = have_at.get(allowed(p.address).as_str()).copied();
                let state = h.map(|h| match h.latest_handshake {
                    0 => "no handshake yet".to_string(),
                    t => format!("handshake {}s ago", now.saturating_sub(t)),
                });
                PeerLink {
                    peer: p.name.to_string(),
                    present: h.is_some_and(|h| p.public_key.as_ref().is_none_or(|k| *k == h.public_key)),
                    state,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
    const K2: &str = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";

    #[test]
    fn reads_only_public_keys_and_refuses_anything_else() {
        assert_eq!(parse_key(&format!("{K1}\n")).unwrap(), Some(K1.to_string()));
        assert_eq!(parse_key("").unwrap(), None);
        assert!(parse_key("$(reboot)").is_err());
        let dump = format!("{K1} 51820\n{K2} 192.168.77.12:51820 198.19.0.2/32 1700000000 25\n");
        let d = parse_show(&dump).unwrap().unwrap();
        assert_eq!(d.public_key, K1);
        assert_eq!(d.listen_port, Some(51820));
        assert_eq!(
            d.peers,
            vec![WgPeerState {
                public_key: K2.into(),
                endpoint: Some("192.168.77.12:51820".into()),
                allowed_ips: vec!["198.19.0.2/32".into()],
                latest_handshake: 1_700_000_000,
                keepalive: Some(25),
            }]
        );
        let never = parse_show(&format!("{K1} 51820\n{K2} (none) (none) 0 off\n")).unwrap().unwrap();
        assert_eq!(never.peers[0].keepalive, None);
        assert_eq!(never.peers[0].endpoint, None);
        assert!(never.peers[0].allowed_ips.is_empty());
        assert!(parse_show("not-a-key 51820\n").is_err());
        assert_eq!(parse_show("").unwrap(), None);
    }

    #[test]
    fn only_routes_with_the_guard_metric_are_ours() {
        let body =
            "unreachable 198.19.0.0/16 metric 4242 \nunreachable 10.9.0.0/16 metric 10 \nunreachable 10.8.0.0/16 \n";
        let got: Vec<String> = parse_guards(body).iter().map(|n| n.to_string()).collect();
        assert_eq!(got, ["198.19.0.0/16"]);
    }
}
