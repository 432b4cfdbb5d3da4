//! What a host runs at boot to restore its part of the mesh without the admin's laptop: a script under
//! /etc/vxmesh/ and a systemd unit ordered after Open vSwitch and docker.

use crate::diff::{self, Change};
use crate::facts::HostFacts;
use crate::plan::NodePlan;
use crate::render;

pub const SCRIPT_PATH: &str = "/etc/vxmesh/boot.sh";
pub const UNIT_PATH: &str = "/etc/systemd/system/vxmesh.service";
pub const WANTS_LINK: &str = "/etc/systemd/system/multi-user.target.wants/vxmesh.service";

const SCRIPT_HASH: &str = "# vxmesh-boot-hash: ";
const UNIT_HASH: &str = "# vxmesh-unit-hash: ";

/// FNV-1a, 64 bits: a stable fingerprint of a file's content, so facts can tell whether it is current.
pub fn fingerprint(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The boot script: the node's whole from-scratch build (every command checks before it changes, so on a
/// host that kept something it is a no-op there), except the tunnels, which OVSDB keeps across reboots.
/// It depends only on the node and on which firewall the host runs, so it is the same on every run.
pub fn script(node: &NodePlan, facts: &HostFacts) -> String {
    // Only what picks the firewall backend: anything else the host has would make the script vary. Whether
    // docker runs its DOCKER-USER chain is left for the script to see at boot, as offline scripts do.
    let firewalld = crate::facts::FirewalldFacts { running: facts.firewalld.running, rich_rules: vec![] };
    let basis = HostFacts { tools: facts.tools.clone(), firewalld, ..HostFacts::default() };
    let steps: Vec<_> = diff::diff_core(node, &basis)
        .into_iter()
        // Tunnels live in OVSDB; daemon.json (docker0 mode) lives on disk: neither is forgotten at boot.
        .filter(|s| !matches!(s.change, Change::Tunnel { .. } | Change::DockerDaemon { .. }))
        .collect();
    let body = render::script(node, &steps);
    // The fingerprint line goes second, after the shebang.
    let (shebang, rest) = body.split_once('\n').unwrap_or((&body, ""));
    format!("{shebang}\n{SCRIPT_HASH}{}\n{rest}", fingerprint(&body))
}

pub fn unit() -> String {
    let body = format!(
        "[Unit]\nDescription=vxmesh: restore this host's part of the container mesh\n\
         After=network-online.target openvswitch-switch.service openvswitch.service ovs-vswitchd.service docker.service\n\
         Wants=network-online.target\n\n[Service]\nType=oneshot\nExecStart=/bin/sh {SCRIPT_PATH}\nRemainAfterExit=yes\n\n\
         [Install]\nWantedBy=multi-user.target\n"
    );
    format!("{UNIT_HASH}{}\n{body}", fingerprint(&body))
}

/// The fingerprints written into the files, as the facts script reports them.
pub fn hash_of(content: &str) -> Option<&str> {
    content.lines().find_map(|l| l.strip_prefix(SCRIPT_HASH).or_else(|| l.strip_prefix(UNIT_HASH)))
}

/// Shell that prints the installed files' fingerprints (facts section `boot`).
pub fn facts_snippet() -> String {
    format!(
        "sed -n 's/^{SCRIPT_HASH}/script /p' {SCRIPT_PATH} 2>/dev/null\nsed -n 's/^{UNIT_HASH}/unit /p' {UNIT_PATH} 2>/dev/null\n[ -L {WANTS_LINK} ] && echo enabled\n"
    )
}

/// The step installing the boot files, when what the host has is not current.
pub fn step(node: &NodePlan, facts: &HostFacts) -> Option<diff::Step> {
    let script = script(node, facts);
    let unit = unit();
    let current = facts.boot.script.as_deref() == hash_of(&script)
        && facts.boot.unit.as_deref() == hash_of(&unit)
        && facts.boot.enabled;
    (!current).then(|| diff::Step {
        description: format!("install the boot unit (vxmesh.service runs {SCRIPT_PATH} after OVS and docker)"),
        change: Change::BootUnit { script, unit },
    })
}
