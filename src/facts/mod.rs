//! What a host has now: the facts every component shares (OS, tools, links, routes, sysctls, offloads, iptables),
//! parsed from the facts script's sections, plus a typed slot per component for what only that component reads.

mod ip;
mod iptables;
mod text;

pub use ip::{Link, Route, parse_routes};
pub use iptables::{Iptables, parse as parse_iptables_save};
pub use text::{MARK, Sections};

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

/// The line that opens section `name` of the facts script's output (`mark` is defined in its header).
pub fn mark(name: &'static str) -> crate::shell::Stmt {
    crate::shell::Stmt::Run(crate::shell::Cmd::new([crate::shell::Word::Lit("mark"), crate::shell::Word::Lit(name)]))
}

/// A facts section that could not be read, with the section's name and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read the host's `{section}` facts: {message}")]
pub struct FactsError {
    pub section: String,
    pub message: String,
}

impl FactsError {
    pub fn new(section: &str, message: impl Into<String>) -> Self {
        FactsError { section: section.to_string(), message: message.into() }
    }
}

/// A tool the mesh needs, and the version it reported, if present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tool {
    pub path: String,
    pub version: String,
}

/// What one component knows of the host, kept in [`HostFacts`] under its type.
pub trait Part: Any + Send + Sync + fmt::Debug {
    fn clone_part(&self) -> Box<dyn Part>;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Any + Send + Sync + fmt::Debug + Clone> Part for T {
    fn clone_part(&self) -> Box<dyn Part> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Everything vxmesh knows about one host's current state.
#[derive(Debug, Default)]
pub struct HostFacts {
    /// /etc/os-release, key by key.
    pub os: BTreeMap<String, String>,
    pub tools: BTreeMap<String, Tool>,
    pub links: BTreeMap<String, Link>,
    pub routes: Vec<Route>,
    pub sysctls: BTreeMap<String, String>,
    /// TX checksum offload per device, for the devices vxmesh cares about.
    pub tx_offload: BTreeMap<String, bool>,
    /// Read by the NAT/forwarding rules and by the iptables firewall alike.
    pub iptables: Iptables,
    /// False when the facts were not gathered (offline scripts): components then let the script decide.
    pub gathered: bool,
    /// When and from which plan vxmesh last changed this host (`names::APPLIED`: fingerprint, UTC time).
    pub applied: Option<(String, String)>,
    parts: BTreeMap<TypeId, Box<dyn Part>>,
}

impl Clone for HostFacts {
    fn clone(&self) -> Self {
        HostFacts {
            os: self.os.clone(),
            tools: self.tools.clone(),
            links: self.links.clone(),
            routes: self.routes.clone(),
            sysctls: self.sysctls.clone(),
            tx_offload: self.tx_offload.clone(),
            iptables: self.iptables.clone(),
            gathered: self.gathered,
            applied: self.applied.clone(),
            parts: self.parts.iter().map(|(k, v)| (*k, (**v).clone_part())).collect(),
        }
    }
}

impl HostFacts {
    /// Parses the sections every component shares.
    pub fn parse_common(sections: &Sections) -> Result<HostFacts, FactsError> {
        Ok(HostFacts {
            os: text::key_values(sections.get("os-release"), '='),
            tools: text::tools(sections.get("tools")),
            links: ip::parse_links(sections.get("ip-addr"))?,
            routes: ip::parse_routes(sections.get("ip-route"))?,
            sysctls: text::key_values(sections.get("sysctl"), '='),
            tx_offload: text::offloads(sections.get("tx-offload")),
            iptables: iptables::parse(sections.get("iptables-save")),
            gathered: true,
            applied: sections
                .get("applied")
                .split_whitespace()
                .collect::<Vec<_>>()
                .as_slice()
                .get(0..2)
                .map(|w| (w[0].to_string(), w[1].to_string())),
            parts: BTreeMap::new(),
        })
    }

    /// Nothing is known of the host: the facts of offline plans and `render`.
    pub fn is_empty(&self) -> bool {
        let HostFacts { os, tools, links, routes, sysctls, tx_offload, iptables, gathered, applied, parts } = self;
        !gathered
            && os.is_empty()
            && tools.is_empty()
            && links.is_empty()
            && routes.is_empty()
            && sysctls.is_empty()
            && tx_offload.is_empty()
            && iptables.tables.is_empty()
            && applied.is_none()
            && parts.is_empty()
    }

    /// A component's own facts, if it parsed any.
    pub fn part<T: Part>(&self) -> Option<&T> {
        self.parts.get(&TypeId::of::<T>()).and_then(|p| (**p).as_any().downcast_ref())
    }

    /// A component's own facts, made empty first if absent.
    pub fn part_mut<T: Part + Default>(&mut self) -> &mut T {
        self.parts
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(T::default()))
            .as_any_mut()
            .downcast_mut()
            .expect("keyed by its type")
    }

    pub fn set_part<T: Part>(&mut self, part: T) {
        self.parts.insert(TypeId::of::<T>(), Box::new(part));
    }

    /// The MTU of the device that holds `ip`: the underlay the tunnels ride on.
    pub fn mtu_of_device_with(&self, ip: std::net::IpAddr) -> Option<u32> {
        let has = |l: &&ip::Link| match ip {
            std::net::IpAddr::V4(v4) => l.addrs.iter().any(|a| a.addr() == v4),
            std::net::IpAddr::V6(v6) => l.addrs6.contains(&v6),
        };
        self.links.values().find(has).map(|l| l.mtu)
    }

    /// The OS family's package manager, for install hints.
    pub fn is_rpm_family(&self) -> bool {
        let os = self.os.get("ID").cloned().unwrap_or_default();
        let like = self.os.get("ID_LIKE").cloned().unwrap_or_default();
        ["rhel", "centos", "fedora", "rocky", "almalinux", "ol"]
            .iter()
            .any(|d| os == *d || like.split(' ').any(|l| l == *d))
    }
}
