//! What a host runs at boot to restore its part of the mesh without the admin's laptop: a script in vxmesh's
//! directory ([`names::STATE_DIR`]) and a systemd unit ordered after Open vSwitch and docker. The script itself is the node's
//! from-scratch build of what the kernel forgets (`converge` renders it from the other components' steps).

use serde::Serialize;

use super::core::{Concern, Kind, Phase, Piece, Step};
use crate::cmd;
use crate::facts::{FactsError, HostFacts, Sections, mark};
use crate::model::names;
use crate::shell::{Stmt, Word, when};

pub const SCRIPT_PATH: &str = names::BOOT_SCRIPT;
pub const UNIT_PATH: &str = "/etc/systemd/system/vxmesh.service";
pub const WANTS_LINK: &str = "/etc/systemd/system/multi-user.target.wants/vxmesh.service";

const SCRIPT_HASH: &str = "# vxmesh-boot-hash: ";
const UNIT_HASH: &str = "# vxmesh-unit-hash: ";

/// FNV-1a, 64 bits: a stable fingerprint of a file's content, so facts can tell whether it is current.
pub fn fingerprint(text: &str) -> String {
    let mut h = Fnv::default();
    h.add(text.as_bytes());
    h.hex()
}

/// [`fingerprint`] fed in pieces: as an `io::Write`, it hashes a serializer's output without holding it.
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub fn add(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

impl std::io::Write for Fnv {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.add(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `body` with its fingerprint on a line of its own, after `tag`: second after a shebang, else first. In place, as
/// a 1,000-peer boot script is half a megabyte. Every file vxmesh writes for the facts to check is stamped so.
pub fn stamped(mut body: String, tag: &str) -> String {
    let line = format!("{tag}{}\n", fingerprint(&body));
    let at = match body.find('\n') {
        Some(i) if body.starts_with("#!") => i + 1,
        None if body.starts_with("#!") => {
            body.push('\n');
            body.len()
        }
        _ => 0,
    };
    body.insert_str(at, &line);
    body
}

/// The boot script with its fingerprint as the second line (after the shebang).
pub fn with_fingerprint(body: String) -> String {
    stamped(body, SCRIPT_HASH)
}

pub fn unit() -> String {
    let body = format!(
        "[Unit]\nDescription=vxmesh: restore this host's part of the container mesh\n\
         After=network-online.target openvswitch-switch.service openvswitch.service ovs-vswitchd.service docker.service\n\
         Wants=network-online.target\n\n[Service]\nType=oneshot\nExecStart=/bin/sh {SCRIPT_PATH}\nRemainAfterExit=yes\n\n\
         [Install]\nWantedBy=multi-user.target\n"
    );
    stamped(body, UNIT_HASH)
}

/// The fingerprints written into the files, as the facts script reports them.
pub fn hash_of(content: &str) -> Option<&str> {
    content.lines().find_map(|l| l.strip_prefix(SCRIPT_HASH).or_else(|| l.strip_prefix(UNIT_HASH)))
}

/// The installed boot files' fingerprints, and whether the unit is enabled.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BootFacts {
    pub script: Option<String>,
    pub unit: Option<String>,
    pub enabled: bool,
}

#[derive(Debug, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// The boot script and systemd unit that restore the node after a reboot.
    BootUnit {
        script: String,
        unit: String,
    },
    RemoveBootUnit,
}

/// The boot unit. Not a [`super::Component`]: its diff needs the finished boot script, which the other
/// components' steps make ([`Boot::diff`]).
pub struct Boot;

fn daemon_reload() -> Stmt {
    when(cmd!["test", "-d", "/run/systemd/system"], vec![cmd!["systemctl", "daemon-reload"].into()])
}

impl Piece for Boot {
    fn kind(&self) -> Kind {
        Kind::Boot
    }

    fn gather(&self) -> Vec<Stmt> {
        let hash = |prefix: &str, label: &str, path: &'static str| {
            let expr = format!("s/^{prefix}/{label} /p");
            cmd!["sed", "-n", Word::Data(expr), path].silent_stderr().may_fail().into()
        };
        vec![
            mark("boot"),
            hash(SCRIPT_HASH, "script", SCRIPT_PATH),
            hash(UNIT_HASH, "unit", UNIT_PATH),
            when(cmd!["test", "-L", WANTS_LINK], vec![cmd!["echo", "enabled"].into()]),
        ]
    }

    fn parse(&self, s: &Sections, facts: &mut HostFacts) -> Result<(), FactsError> {
        let body = s.get("boot");
        let kv: std::collections::BTreeMap<&str, &str> =
            body.lines().filter_map(|l| l.split_once(' ')).map(|(k, v)| (k.trim(), v.trim())).collect();
        facts.set_part(BootFacts {
            script: kv.get("script").map(|s| s.to_string()),
            unit: kv.get("unit").map(|s| s.to_string()),
            enabled: body.lines().any(|l| l.trim() == "enabled"),
        });
        Ok(())
    }

    fn teardown(&self, facts: &HostFacts) -> Vec<Step> {
        let have = facts.part::<BootFacts>().cloned().unwrap_or_default();
        if have.script.is_none() && have.unit.is_none() && !have.enabled {
            return vec![];
        }
        vec![Step::new(
            Phase::Boot,
            self.kind(),
            format!("remove the boot unit and {}", names::STATE_DIR),
            Change::RemoveBootUnit,
            vec![
                cmd!["rm", "-f", WANTS_LINK, UNIT_PATH, SCRIPT_PATH, names::APPLIED].into(),
                cmd!["rmdir", names::STATE_DIR].silent().may_fail().into(),
                daemon_reload(),
            ],
        )]
    }
}

impl Boot {
    /// Installs `script` and the unit, unless the host has both, current and enabled.
    pub fn diff(&self, script: &str, facts: &HostFacts) -> Vec<Step> {
        let unit = unit();
        let empty = BootFacts::default();
        let have = facts.part::<BootFacts>().unwrap_or(&empty);
        let current =
            have.script.as_deref() == hash_of(script) && have.unit.as_deref() == hash_of(&unit) && have.enabled;
        if current {
            return vec![];
        }
        let commands = vec![
            cmd!["mkdir", "-p", names::STATE_DIR, "/etc/systemd/system/multi-user.target.wants"].into(),
            Stmt::WriteFile { path: SCRIPT_PATH, content: vec![Word::Data(script.to_string())], mode: Some("755") },
            Stmt::WriteFile { path: UNIT_PATH, content: vec![Word::Data(unit.clone())], mode: None },
            // Enabled by its link, so it works without a running systemd.
            cmd!["ln", "-sf", UNIT_PATH, WANTS_LINK].into(),
            daemon_reload(),
        ];
        vec![
            Step::new(
                Phase::Boot,
                self.kind(),
                format!("install the boot unit (vxmesh.service runs {SCRIPT_PATH} after OVS and docker)"),
                Change::BootUnit { script: script.to_string(), unit },
                commands,
            )
            // The script holds the peer list (firewall rules): it follows every change of peers, or a reboot
            // would bring back the old list.
            .concerning(Concern::Peers)
            .kept_across_reboots(),
        ]
    }
}
