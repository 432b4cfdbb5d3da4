//! What every component of a node's network is: the trait, and the typed steps its diff yields.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::facts::{FactsError, HostFacts, Sections};
use crate::model::inventory::FirewallKind;
use crate::shell::Stmt;

/// The overlay MTU as a number, or "learn it on the host" when the facts cannot tell (offline scripts):
/// then commands use [`crate::shell::Var::Mtu`], which the script sets first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mtu {
    Detect,
    #[serde(untagged)]
    Value(u32),
}

impl Mtu {
    /// The MTU as one shell word.
    pub fn word(self) -> crate::shell::Word {
        match self {
            Mtu::Value(v) => crate::shell::data(v),
            Mtu::Detect => crate::shell::Word::Var(crate::shell::Var::Mtu),
        }
    }

    pub fn value(self) -> Option<u32> {
        match self {
            Mtu::Value(v) => Some(v),
            Mtu::Detect => None,
        }
    }
}

/// What every component's diff may need beyond its own plan and the facts.
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    pub mtu: Mtu,
}

/// Where a step goes in the script: steps are applied phase by phase, each component's in its own order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Host-wide settings first (forwarding).
    Host,
    /// What carries the tunnels: the WireGuard interface and its peers, before any tunnel points at it.
    Encryption,
    /// Links the switch will plug in (the veth pair).
    Links,
    /// The switch and its tunnels.
    Switch,
    /// The switch's address and state.
    SwitchAddress,
    /// Docker's side: the network or daemon.json.
    Docker,
    /// Devices joined to docker's bridge.
    Attach,
    /// Per-device settings, once every device exists.
    Devices,
    /// NAT and forwarding rules.
    Rules,
    /// Who may send VXLAN here.
    Firewall,
    /// The boot unit, built from all of the above.
    Boot,
}

/// Which part of the mesh a step concerns, so `add-node` and `remove-node` touch only a peer's share on others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "peer")]
pub enum Concern {
    /// The node itself (bridge, docker, rules): left alone when another node is added or removed.
    Node,
    /// One peer's share: its tunnel.
    Peer(Arc<str>),
    /// The list of peers as a whole (the firewall's allow list).
    Peers,
}

/// A component's typed change (each module's `enum Change`) with its type erased, kept as the component made it
/// (tests and JSON read it).
pub trait AnyChange: Any + Send + Sync + fmt::Debug {
    fn to_json(&self) -> Value;
    fn as_any(&self) -> &dyn Any;
}

impl<T: Serialize + Any + Send + Sync + fmt::Debug> AnyChange for T {
    fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("changes serialize")
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// One change with the sentence an admin reads and the commands that make it.
#[derive(Debug, Clone)]
pub struct Step {
    pub phase: Phase,
    pub component: Kind,
    pub description: String,
    pub change: Arc<dyn AnyChange>,
    pub commands: Vec<Stmt>,
    pub concern: Concern,
    /// Part of the boot script: what the kernel forgets at reboot (tunnels live in OVSDB, daemon.json on disk).
    pub at_boot: bool,
}

impl Step {
    pub fn new(
        phase: Phase,
        component: Kind,
        description: impl Into<String>,
        change: impl AnyChange,
        commands: Vec<Stmt>,
    ) -> Step {
        Step {
            phase,
            component,
            description: description.into(),
            change: Arc::new(change),
            commands,
            concern: Concern::Node,
            at_boot: true,
        }
    }

    pub fn concerning(mut self, concern: Concern) -> Step {
        self.concern = concern;
        self
    }

    /// Not restored by the boot script (the host keeps it across reboots).
    pub fn kept_across_reboots(mut self) -> Step {
        self.at_boot = false;
        self
    }

    /// The typed change, if it is of type `T`.
    pub fn change_as<T: 'static>(&self) -> Option<&T> {
        self.change.as_any().downcast_ref()
    }

    /// The step as `plan --json` shows it, online and offline alike: its description, its typed change (flattened)
    /// and each command line.
    pub fn to_json(&self) -> Value {
        let mut v = serde_json::json!({ "description": self.description });
        if let (Some(m), Value::Object(change)) = (v.as_object_mut(), self.change.to_json()) {
            m.extend(change);
        }
        v["commands"] = crate::shell::lines(&self.commands).into();
        v
    }
}

/// A tool a component needs on the host, and the package that brings it per OS family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    pub tool: &'static str,
    pub debian: &'static str,
    pub rpm: &'static str,
}

pub const fn need(tool: &'static str, debian: &'static str, rpm: &'static str) -> Need {
    Need { tool, debian, rpm }
}

/// How a data plane sees one peer, for `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerLink {
    pub peer: String,
    pub present: bool,
    /// The liveness the data plane reports (BFD's state on OVS), if any.
    pub state: Option<String>,
}

/// Which piece of a node's network a component is: how steps name their component, and how `status` and the list
/// of a host's components tell them apart (never by a string). A firewall backend is the inventory's own keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sysctl,
    Wireguard,
    Veth,
    Ovs,
    Linux,
    DockerNetwork,
    Docker0,
    Rules,
    Firewall(FirewallKind),
    Boot,
    /// Other overlays on the host (Docker Swarm, a VXLAN device on the mesh's port): checked, never changed.
    Coexistence,
    /// Names across hosts: the name server, the watcher of docker's events and their rules.
    Dns,
    /// The containers' IPv6 side: sw0's IPv6 address, the peers' IPv6 routes, the ip6tables chains.
    Overlay6,
}

/// What every piece of a host's network answers, whether the plan asks for it or an earlier run may have left it
/// (a firewall used before, WireGuard from when encryption was on): its part of the facts, and what removes it.
/// Every method is required: a piece with nothing to say answers so explicitly.
pub trait Piece: Send + Sync {
    fn kind(&self) -> Kind;

    /// Its read-only part of the facts script: sections opened with [`crate::facts::mark`].
    fn gather(&self) -> Vec<Stmt>;

    /// Its own facts from its sections, kept in `facts` as a typed part.
    fn parse(&self, sections: &Sections, facts: &mut HostFacts) -> Result<(), FactsError>;

    /// What removes its part of the host, given what is there; empty when nothing is.
    fn teardown(&self, facts: &HostFacts) -> Vec<Step>;
}

/// A piece the node's plan asks for: also what it needs, whether the host can take it now, and what is missing.
/// What only some components offer is a trait of its own, named by [`Component::capabilities`].
pub trait Component: Piece {
    /// Tools it needs on this host.
    fn needs(&self, facts: &HostFacts) -> Vec<Need>;

    /// Reasons this host cannot take the component now (a daemon not answering, a file it cannot read).
    fn preflight(&self, facts: &HostFacts) -> Vec<String>;

    /// What is missing or wrong, in the order it must be applied; empty when the host matches.
    fn diff(&self, facts: &HostFacts, ctx: &Ctx) -> Vec<Step>;

    /// The steps of [`Component::diff`] that the boot script replays (what the kernel forgets). A component whose
    /// kept steps are many (OVS's tunnels, one per peer, kept in OVSDB) skips building them here.
    fn boot_diff(&self, facts: &HostFacts, ctx: &Ctx) -> Vec<Step> {
        self.diff(facts, ctx).into_iter().filter(|s| s.at_boot).collect()
    }

    /// The optional capabilities it has: each component states them, so none is left out by accident.
    fn capabilities(&self) -> Capabilities<'_>;
}

/// The optional capabilities of a component, each `None` unless it has it.
#[derive(Clone, Copy, Default)]
pub struct Capabilities<'a> {
    pub status: Option<&'a dyn Status>,
    pub refusal: Option<&'a dyn RefuseTeardown>,
    pub claims: Option<&'a dyn Claims>,
}

impl Capabilities<'_> {
    pub const NONE: Capabilities<'static> = Capabilities { status: None, refusal: None, claims: None };
}

/// What `status` shows of a component.
pub trait Status {
    /// Whether its part is on the host, as one of `status`'s yes/no columns (`None`: it has no column).
    fn present(&self, facts: &HostFacts) -> Option<(Presence, bool)>;

    /// Each planned peer as the host sees it (a data plane's tunnels, WireGuard's peers).
    fn peers(&self, facts: &HostFacts) -> Vec<PeerLink>;
}

/// `status`'s yes/no columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Switch,
    DockerNetwork,
}

/// Why removing a component now would harm (containers still attached): checked on every component before any
/// teardown command runs.
pub trait RefuseTeardown {
    fn refuse_teardown(&self, facts: &HostFacts) -> Option<String>;
}

/// Address ranges the host uses for something that is not the mesh's (e.g. other docker networks), each with what
/// uses it: none may overlap a node's subnet.
pub trait Claims {
    fn claims(&self, facts: &HostFacts) -> Vec<(String, ipnet::Ipv4Net)>;
}
