//! `docker.mode: docker0`, the classic `--bip` way: vxmesh's keys merged into /etc/docker/daemon.json (the
//! admin's keys and order kept), docker restarted only with live-restore, and the new bip checked.

mod daemon_json;

pub use daemon_json::{MTU_PLACEHOLDER, merged};

use ipnet::Ipv4Net;
use serde::Serialize;

use super::core::{
    Capabilities, Claims, Component, Ctx, Kind, Mtu, Need, PeerLink, Phase, Piece, Presence, Status, Step,
};
use crate::cmd;
use crate::facts::{FactsError, HostFacts, Sections, mark};
use crate::model::names;
use crate::plan::DockerSpec;
use crate::shell::{Stmt, Var, Word, data, join, unless, when};

const PATH: &str = "/etc/docker/daemon.json";

pub struct Docker0<'a> {
    pub spec: &'a DockerSpec,
    /// The cluster CIDR: docker's default address pools are moved out of it.
    pub cluster: Ipv4Net,
}

/// /etc/docker/daemon.json as found (empty when absent).
#[derive(Debug, Clone, Default)]
pub struct DaemonJson(pub String);

#[derive(Debug, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// daemon.json gets `content`; `guard_existing` when the host's file was not read (offline).
    DockerDaemon { bip: Ipv4Net, mtu: Mtu, content: String, guard_existing: bool },
    /// The host is in a state vxmesh will not change by itself; the script stops here with `reason`.
    Blocked { reason: String },
}

impl Docker0<'_> {
    fn bip(&self) -> Ipv4Net {
        Ipv4Net::new(self.spec.gateway, self.spec.subnet.prefix_len()).expect("valid prefix")
    }

    fn blocked(&self, reason: String, description: String) -> Step {
        Step::new(
            Phase::Docker,
            self.kind(),
            description,
            Change::Blocked { reason: reason.clone() },
            vec![Stmt::Fail(reason)],
        )
        .kept_across_reboots()
    }

    fn write(&self, bip: Ipv4Net, mtu: Mtu, content: &str, guard_existing: bool) -> Vec<Stmt> {
        let mut v = vec![];
        if guard_existing {
            // Without the host's file in hand, never overwrite one: the admin's keys would be lost.
            v.push(when(
                cmd!["test", "-s", PATH],
                vec![unless(
                    cmd!["grep", "-qF", "-e", Word::Data(format!("\"bip\": \"{bip}\"")), PATH],
                    vec![Stmt::Fail(format!(
                        "{PATH} exists; add \"bip\": \"{bip}\" to it by hand, or run vxmesh up, which merges"
                    ))],
                )],
            ));
        }
        // The MTU learnt on the host goes where the merge left its placeholder; the rest stays literal data.
        let placeholder = format!("\"{MTU_PLACEHOLDER}\"");
        let mut content_words = vec![];
        for (i, part) in content.split(&placeholder).enumerate() {
            if i > 0 {
                content_words.push(Word::Var(Var::Mtu));
            }
            content_words.push(Word::Data(part.to_string()));
        }
        if mtu != Mtu::Detect {
            content_words = vec![Word::Data(content.to_string())];
        }
        v.push(cmd!["mkdir", "-p", "/etc/docker"].into());
        v.push(Stmt::WriteFile { path: PATH, content: content_words, mode: None });
        // Restarting docker without live-restore would stop every container on the host: leave that to the admin.
        v.push(Stmt::If {
            conds: vec![cmd!["grep", "-q", "\"live-restore\": *true", PATH]],
            negate: false,
            then: vec![
                cmd!["systemctl", "restart", "docker"].into(),
                unless(
                    cmd!["ip", "-4", "-o", "addr", "show", "dev", "docker0"]
                        .pipe(cmd!["grep", "-qF", "-e", join([" ".into(), data(bip), " ".into()])]),
                    vec![Stmt::Fail(format!(
                        "docker restarted but kept docker0's old address: it applies bip {bip} only when no container is on its default network (live-restore keeps running ones on the old one). Stop the containers on docker0, restart docker, then run vxmesh up again"
                    ))],
                ),
            ],
            otherwise: vec![Stmt::Fail(format!(
                "{PATH} now has bip {bip}; restart docker to apply it (this stops running containers; with \"live-restore\": true they survive), then run vxmesh up again"
            ))],
        });
        v
    }
}

impl Piece for Docker0<'_> {
    fn kind(&self) -> Kind {
        Kind::Docker0
    }

    fn gather(&self) -> Vec<Stmt> {
        let mut v = super::docker::gather_networks();
        v.extend([mark("docker-daemon-json"), cmd!["cat", PATH].silent_stderr().may_fail().into()]);
        v
    }

    fn parse(&self, s: &Sections, facts: &mut HostFacts) -> Result<(), FactsError> {
        facts.set_part(DaemonJson(s.get("docker-daemon-json").to_string()));
        super::docker::parse_networks(s, facts)
    }

    fn teardown(&self, _: &HostFacts) -> Vec<Step> {
        vec![]
    }
}

impl Component for Docker0<'_> {
    fn needs(&self, _: &HostFacts) -> Vec<Need> {
        super::docker::needs()
    }

    fn preflight(&self, facts: &HostFacts) -> Vec<String> {
        super::docker::preflight(facts)
    }

    fn diff(&self, facts: &HostFacts, ctx: &Ctx) -> Vec<Step> {
        let bip = self.bip();
        let current = facts.part::<DaemonJson>().map(|d| d.0.as_str()).unwrap_or("");
        match merged(current, bip, ctx.mtu, self.cluster) {
            Ok(Some(content)) => {
                let guard_existing = current.trim().is_empty();
                vec![
                    Step::new(
                        Phase::Docker,
                        self.kind(),
                        format!("set docker's bip to {bip} in {PATH} and restart docker"),
                        Change::DockerDaemon { bip, mtu: ctx.mtu, content: content.clone(), guard_existing },
                        self.write(bip, ctx.mtu, &content, guard_existing),
                    )
                    .kept_across_reboots(),
                ]
            }
            // daemon.json is current; docker only reads it when it starts.
            Ok(None) if facts.gathered && !facts.links.get(names::DOCKER0).is_some_and(|l| l.addrs.contains(&bip)) => {
                let reason = format!(
                    "docker0 still has its old address: docker applies bip {bip} only when it starts with no container on \
                     its default network (live-restore keeps running containers on the old one). Stop the containers on \
                     docker0, restart docker (systemctl restart docker), then run vxmesh up again"
                );
                vec![self.blocked(reason.clone(), format!("stop: {reason}"))]
            }
            Ok(None) => vec![],
            Err(reason) => vec![self.blocked(reason.clone(), format!("stop: {reason}; fix it by hand"))],
        }
    }

    fn capabilities(&self) -> Capabilities<'_> {
        Capabilities { status: Some(self), claims: Some(self), ..Capabilities::NONE }
    }
}

impl Status for Docker0<'_> {
    fn present(&self, facts: &HostFacts) -> Option<(Presence, bool)> {
        Some((Presence::DockerNetwork, facts.links.get(names::DOCKER0).is_some_and(|l| l.addrs.contains(&self.bip()))))
    }

    fn peers(&self, _: &HostFacts) -> Vec<PeerLink> {
        vec![]
    }
}

impl Claims for Docker0<'_> {
    fn claims(&self, facts: &HostFacts) -> Vec<(String, Ipv4Net)> {
        // docker0 is the mesh's network in this mode: docker calls it `bridge`.
        super::docker::claims(facts, "bridge")
    }
}
