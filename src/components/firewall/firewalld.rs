//! The firewalld firewall, in firewalld's own model. In the zone the underlay falls in (the default zone), rich
//! rules accept the tunnel's port from each peer: VXLAN, or with encryption WireGuard (from anyone when a peer is
//! behind NAT: keys authenticate). vxmesh's own zone holds sw0 and the WireGuard interface (VXLAN accepted there
//! only from the peers' WireGuard addresses; with names, the name server's ports from the mesh only), and its
//! policy forwards the mesh to the containers. Rules change in the running and the permanent configuration at
//! once: a `--reload` also flushes every iptables chain (vxmesh's, docker's) while docker runs, so vxmesh reloads
//! only to create its zone and policy, in the first phase of a run, before any chain of its own is made.

use std::collections::BTreeSet;

use serde::Serialize;

use super::firewalld_zone::{self as zone, FwObject, Objects};
use crate::cmd;
use crate::components::core::{Capabilities, Component, Concern, Ctx, Kind, Need, Phase, Piece, Step, need};
use crate::facts::{FactsError, HostFacts, Sections, mark};
use crate::model::inventory::FirewallKind;
use crate::plan::NodePlan;
use crate::shell::{Stmt, Word, join};

pub struct Firewalld<'a> {
    pub node: &'a NodePlan,
}

/// Whether firewalld runs, and the default zone's rich rules as it runs them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FirewalldFacts {
    pub running: bool,
    pub rich_rules: Vec<String>,
}

/// The rest of what firewalld holds of vxmesh's: the default zone's permanent rich rules, and vxmesh's zone and
/// policy, running and permanent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FirewalldConfig {
    pub permanent_rules: Vec<String>,
    pub running: Objects,
    pub permanent: Objects,
}

#[derive(Debug, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// Default-zone rules to add and, as the host spelled them, rules to withdraw (running and permanent).
    Firewalld {
        add: Vec<String>,
        remove: Vec<String>,
    },
    /// vxmesh's zone and policy made as these (`reload`: firewalld reloaded to run new ones).
    FirewalldZone {
        zone: Box<FwObject>,
        policy: Box<FwObject>,
        reload: bool,
    },
    RemoveFirewalldZone,
}

/// firewalld's own spelling of a rule allowing VXLAN from one peer (as `--list-rich-rules` prints it), in the
/// peer's family.
pub fn rich_rule(peer: std::net::IpAddr, port: u16) -> String {
    zone::accept_udp(Some(peer), port, peer.is_ipv6())
}

/// Whether a default-zone rule is one vxmesh may have made: it accepts UDP to one of the tunnel ports.
fn ours(node: &NodePlan, rule: &str) -> bool {
    let fw = &node.firewall;
    std::iter::once(fw.port).chain(fw.wireguard.as_ref().map(|g| g.port)).any(|p| {
        (rule.starts_with("rule family=\"ipv4\" ") || rule.starts_with("rule family=\"ipv6\" "))
            && rule.ends_with(&format!(" port port=\"{p}\" protocol=\"udp\" accept"))
    })
}

/// The default zone's rules a node needs: its tunnel port from each peer's address, or from anyone.
fn wanted_rules(node: &NodePlan) -> Vec<String> {
    let fw = &node.firewall;
    let port = fw.wireguard.as_ref().map_or(fw.port, |g| g.port);
    // Each peer in its own family: on an IPv6 underlay these are ipv6 rules.
    let mut v: Vec<String> = node.tunnel_sources().map(|p| rich_rule(p, port)).collect();
    if node.firewall_open() {
        v.push(zone::accept_udp(None, port, node.underlay.is_ipv6()));
    }
    v
}

/// One call per configuration and kind of change: firewall-cmd takes `--add-rich-rule` many times (a 1,000-node
/// mesh has 999 rules), but not with `--remove-rich-rule`.
fn rule_cmds(permanent: bool, op: &'static str, rules: &[(bool, String)]) -> Option<Stmt> {
    let mut words = vec![Word::Lit("firewall-cmd"), Word::Lit("--quiet")];
    if permanent {
        words.push(Word::Lit("--permanent"));
    }
    let before = words.len();
    words.extend(
        rules.iter().filter(|(p, _)| *p == permanent).map(|(_, r)| join([Word::Lit(op), Word::Data(r.clone())])),
    );
    (words.len() > before).then(|| crate::shell::Cmd::new(words).into())
}

fn running() -> crate::shell::Cmd {
    cmd!["firewall-cmd", "--state"].silent()
}

fn reload_cmd() -> Stmt {
    cmd!["firewall-cmd", "--quiet", "--reload"].into()
}

impl Firewalld<'_> {
    fn rules_step(&self, description: String, add: Vec<(bool, String)>, remove: Vec<(bool, String)>) -> Step {
        let cmds: Vec<Stmt> = [false, true]
            .into_iter()
            .flat_map(|p| [rule_cmds(p, "--add-rich-rule=", &add), rule_cmds(p, "--remove-rich-rule=", &remove)])
            .flatten()
            .collect();
        let names = |v: Vec<(bool, String)>| -> Vec<String> {
            let set: BTreeSet<String> = v.into_iter().map(|(_, r)| r).collect();
            set.into_iter().collect()
        };
        let change = Change::Firewalld { add: names(add), remove: names(remove) };
        Step::new(Phase::Firewall, self.kind(), description, change, cmds)
            .concerning(Concern::Peers)
            .kept_across_reboots()
    }

    /// vxmesh's zone and policy: made or mended in both configurations; reloaded only when firewalld does not run
    /// them yet (or runs another target), as only a reload makes a new zone run.
    fn objects_step(&self, cfg: &FirewalldConfig) -> Option<(Step, bool)> {
        let (want_zone, want_policy) = (zone::zone(self.node), zone::policy(self.node));
        let (pz, pp) = (cfg.permanent.zone.as_ref(), cfg.permanent.policy.as_ref());
        let (rz, rp) = (cfg.running.zone.as_ref(), cfg.running.policy.as_ref());
        if zone::matches(&want_zone, pz)
            && zone::matches(&want_policy, pp)
            && zone::matches(&want_zone, rz)
            && zone::matches(&want_policy, rp)
        {
            return None;
        }
        let reload =
            rz.is_none_or(|z| z.target != want_zone.target) || rp.is_none_or(|p| p.target != want_policy.target);
        let mut cmds = zone::commands("zone", &want_zone, pz, true);
        cmds.extend(zone::commands("policy", &want_policy, pp, true));
        if reload {
            cmds.push(reload_cmd());
        } else {
            cmds.extend(zone::commands("zone", &want_zone, rz, false));
            cmds.extend(zone::commands("policy", &want_policy, rp, false));
        }
        let ifaces: Vec<&str> = want_zone.interfaces.iter().map(String::as_str).collect();
        let description = format!(
            "firewalld: zone {} ({}) and policy {} (the mesh to the containers){}",
            zone::ZONE,
            ifaces.join(", "),
            zone::POLICY,
            if reload { ", then reload firewalld" } else { "" }
        );
        let change = Change::FirewalldZone { zone: Box::new(want_zone), policy: Box::new(want_policy), reload };
        // Host: before any chain of this run, which a reload would flush.
        let step = Step::new(Phase::Host, self.kind(), description, change, cmds)
            .concerning(Concern::Peers)
            .kept_across_reboots();
        Some((step, reload))
    }
}

impl Piece for Firewalld<'_> {
    fn kind(&self) -> Kind {
        Kind::Firewall(FirewallKind::Firewalld)
    }

    fn gather(&self) -> Vec<Stmt> {
        let q = |args: &[&'static str]| -> Stmt {
            crate::shell::Cmd::new(std::iter::once("firewall-cmd").chain(args.iter().copied()).map(Word::Lit))
                .silent_stderr()
                .may_fail()
                .into()
        };
        vec![
            mark("firewalld-state"),
            crate::shell::when(
                cmd!["has", "firewall-cmd"],
                vec![cmd!["firewall-cmd", "--state"].silent_stderr().may_fail().into()],
            ),
            Stmt::If {
                conds: vec![cmd!["has", "firewall-cmd"], running()],
                negate: false,
                then: vec![
                    mark("firewalld-rich-rules"),
                    q(&["--list-rich-rules"]),
                    mark("firewalld-permanent-rich-rules"),
                    q(&["--permanent", "--list-rich-rules"]),
                    mark("firewalld-zone"),
                    q(&["--info-zone=vxmesh"]),
                    mark("firewalld-permanent-zone"),
                    q(&["--permanent", "--info-zone=vxmesh"]),
                    mark("firewalld-policy"),
                    q(&["--info-policy=vxmesh-fwd"]),
                    mark("firewalld-permanent-policy"),
                    q(&["--permanent", "--info-policy=vxmesh-fwd"]),
                ],
                otherwise: vec![],
            },
        ]
    }

    fn parse(&self, s: &Sections, facts: &mut HostFacts) -> Result<(), FactsError> {
        // firewall-cmd warns on stdout, among the rules, when an interface is in another zone than the default
        // (docker's bridges are): only `rule` lines are rules.
        let lines = |name: &str| -> Vec<String> {
            s.get(name).lines().map(str::trim).filter(|l| l.starts_with("rule ")).map(String::from).collect()
        };
        facts.set_part(FirewalldFacts {
            running: s.get("firewalld-state").trim() == "running",
            rich_rules: lines("firewalld-rich-rules"),
        });
        facts.set_part(FirewalldConfig {
            permanent_rules: lines("firewalld-permanent-rich-rules"),
            running: Objects {
                zone: zone::parse_info(s.get("firewalld-zone")),
                policy: zone::parse_info(s.get("firewalld-policy")),
            },
            permanent: Objects {
                zone: zone::parse_info(s.get("firewalld-permanent-zone")),
                policy: zone::parse_info(s.get("firewalld-permanent-policy")),
            },
        });
        Ok(())
    }

    fn teardown(&self, facts: &HostFacts) -> Vec<Step> {
        let Some(f) = facts.part::<FirewalldFacts>().filter(|f| f.running) else { return vec![] };
        let empty = FirewalldConfig::default();
        let cfg = facts.part::<FirewalldConfig>().unwrap_or(&empty);
        let mut steps = vec![];
        let remove: Vec<(bool, String)> = [(false, &f.rich_rules), (true, &cfg.permanent_rules)]
            .into_iter()
            .flat_map(|(p, rules)| rules.iter().filter(|r| ours(self.node, r)).map(move |r| (p, r.clone())))
            .collect();
        if !remove.is_empty() {
            let n = remove.iter().map(|(_, r)| r).collect::<BTreeSet<_>>().len();
            steps.push(self.rules_step(format!("firewalld: withdraw {n} tunnel port rules"), vec![], remove));
        }
        let (pz, pp) = (cfg.permanent.zone.is_some(), cfg.permanent.policy.is_some());
        if pz || pp || cfg.running.zone.is_some() || cfg.running.policy.is_some() {
            let mut cmds = vec![];
            if pp {
                cmds.push(cmd!["firewall-cmd", "--quiet", "--permanent", "--delete-policy=vxmesh-fwd"].into());
            }
            if pz {
                cmds.push(cmd!["firewall-cmd", "--quiet", "--permanent", "--delete-zone=vxmesh"].into());
            }
            cmds.push(reload_cmd());
            steps.push(
                Step::new(
                    Phase::Host,
                    self.kind(),
                    format!("firewalld: delete zone {} and policy {}, then reload firewalld", zone::ZONE, zone::POLICY),
                    Change::RemoveFirewalldZone,
                    cmds,
                )
                .kept_across_reboots(),
            );
        }
        steps
    }
}

impl Component for Firewalld<'_> {
    fn needs(&self, _: &HostFacts) -> Vec<Need> {
        vec![need("firewall-cmd", "firewalld", "firewalld")]
    }

    fn preflight(&self, _: &HostFacts) -> Vec<String> {
        vec![]
    }

    fn diff(&self, facts: &HostFacts, _: &Ctx) -> Vec<Step> {
        let empty = (FirewalldFacts::default(), FirewalldConfig::default());
        let running = facts.part::<FirewalldFacts>().unwrap_or(&empty.0);
        let cfg = facts.part::<FirewalldConfig>().unwrap_or(&empty.1);
        let mut steps = vec![];
        let objects = self.objects_step(cfg);
        // A reload in this run leaves firewalld running its permanent rules.
        let reloads = objects.as_ref().is_some_and(|(_, r)| *r);
        steps.extend(objects.map(|(s, _)| s));
        let want = wanted_rules(self.node);
        let want_set: BTreeSet<&String> = want.iter().collect();
        let mut add = vec![];
        let mut remove = vec![];
        let sides =
            [(false, if reloads { &cfg.permanent_rules } else { &running.rich_rules }), (true, &cfg.permanent_rules)];
        for (permanent, have) in sides {
            // Sets for the lookups: a 1,000-node mesh has 999 rules on each side.
            let have_set: BTreeSet<&String> = have.iter().collect();
            add.extend(want.iter().filter(|w| !have_set.contains(w)).map(|w| (permanent, w.clone())));
            remove.extend(
                have.iter().filter(|h| ours(self.node, h) && !want_set.contains(h)).map(|h| (permanent, h.clone())),
            );
        }
        if !add.is_empty() || !remove.is_empty() {
            let count = |v: &[(bool, String)]| v.iter().map(|(_, r)| r).collect::<BTreeSet<_>>().len();
            let what = if self.node.firewall.wireguard.is_some() { "WireGuard" } else { "VXLAN" };
            let description =
                format!("firewalld: allow {what} from {} more peers, withdraw {}", count(&add), count(&remove));
            steps.push(self.rules_step(description, add, remove));
        }
        steps
    }

    fn capabilities(&self) -> Capabilities<'_> {
        Capabilities::NONE
    }
}
