//! From components to scripts: the facts script, the diff of a whole node, the apply script with its step
//! markers, the boot script, teardown and preflight. Pure: [`host`] runs them over a [`Transport`].

pub mod host;
pub mod pool;
pub mod transport;

pub use transport::{Output, Transport};

use std::fmt::Write as _;

use crate::cmd;
use crate::components::{self, Ctx, HostComponents, Mtu, Phase, Step, boot::Boot};
use crate::facts::{FactsError, HostFacts, MARK, Sections, mark};
use crate::model::inventory::{MtuSetting, VXLAN_OVERHEAD};
use crate::model::names;

use crate::plan::NodePlan;
use crate::shell::{self, Stmt, Var, Word, when};

/// The overlay MTU: fixed, or the underlay device's MTU minus the tunnels' overhead (VXLAN, and WireGuard).
pub fn resolve_mtu(node: &NodePlan, facts: &HostFacts) -> Mtu {
    match node.mtu {
        MtuSetting::Fixed(m) => Mtu::Value(u32::from(m)),
        MtuSetting::Auto => match facts.mtu_of_device_with(node.underlay) {
            Some(m) => Mtu::Value(m.saturating_sub(u32::from(node.overhead))),
            None => Mtu::Detect,
        },
    }
}

/// Tools whose presence the facts report: `command -v` is a shell builtin, so the loop starts no process. Only
/// docker is asked for its daemon's version, which also says whether the daemon answers.
const TOOLS: &str = r#"for t in ovs-vsctl docker ip bridge iptables iptables-save iptables-restore nft firewall-cmd ethtool sysctl wg wireguard-go; do
  p=$(command -v "$t") || continue
  v=
  [ "$t" = docker ] && v=$(docker version --format '{{.Server.Version}}' 2>/dev/null)
  printf '%s\t%s\t%s\n' "$t" "$p" "$v"
done"#;

/// The sections every component shares.
fn common_gather(node: &NodePlan) -> Vec<Stmt> {
    let mut sysctl = cmd!["sysctl", "-e"];
    sysctl.argv.extend(node.sysctls.iter().map(|s| Word::Data(s.key.clone())));
    let offload: Vec<Stmt> = [&node.veth.switch_end, &node.veth.docker_end]
        .into_iter()
        .map(|d| {
            let expr = format!("s/^tx-checksumming:/{d} tx-checksumming:/p");
            cmd!["ethtool", "-k", d].silent_stderr().pipe(cmd!["sed", "-n", Word::Data(expr)]).into()
        })
        .collect();
    vec![
        mark("os-release"),
        cmd!["cat", "/etc/os-release"].silent_stderr().may_fail().into(),
        mark("tools"),
        Stmt::Static(TOOLS),
        mark("ip-addr"),
        cmd!["ip", "-j", "-d", "addr", "show"].silent_stderr().may_fail().into(),
        mark("ip-route"),
        cmd!["ip", "-j", "route", "show"].silent_stderr().may_fail().into(),
        mark("iptables-save"),
        when(cmd!["has", "iptables-save"], vec![cmd!["iptables-save"].silent_stderr().may_fail().into()]),
        mark("sysctl"),
        sysctl.silent_stderr().may_fail().into(),
        mark("tx-offload"),
        when(cmd!["has", "ethtool"], offload),
        mark("applied"),
        cmd!["cat", APPLIED_PATH].silent_stderr().may_fail().into(),
    ]
}

/// Where a host keeps the fingerprint of the plan vxmesh last changed it from, and when.
pub const APPLIED_PATH: &str = names::APPLIED;

/// The fingerprint of a node's plan (what `status` compares with the host's record).
pub fn plan_fingerprint(node: &NodePlan) -> String {
    // Hashed as it serializes: at 1,000 nodes the JSON of one node (its 999 peers) is a quarter of a megabyte.
    let mut h = components::boot::Fnv::default();
    serde_json::to_writer(&mut h, node).expect("plans serialize");
    h.hex()
}

/// The last statement of every script that changes a host: the plan's fingerprint and the time, for `status`.
pub fn applied_record(node: &NodePlan) -> String {
    let stmt: Stmt = cmd![
        "sh",
        "-c",
        concat!(
            "mkdir -p ",
            names::state_dir!(),
            " && printf '%s %s\\n' \"$1\" \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\" > ",
            names::applied_file!()
        ),
        "sh",
        Word::Data(plan_fingerprint(node))
    ]
    .into();
    shell::render(&[Stmt::Comment("What plan built this host, and when (vxmesh status shows it).".into()), stmt], 0)
}

/// The read-only script that prints every section the components parse. It changes nothing on the host.
pub fn gather_script(node: &NodePlan, comps: &HostComponents<'_>) -> String {
    let mut out = String::from("export LC_ALL=C PATH=\"$PATH:/usr/sbin:/sbin\"\n");
    let _ = writeln!(out, "mark() {{ printf '{MARK}%s\\n' \"$1\"; }}");
    out.push_str("has() { command -v \"$1\" >/dev/null 2>&1; }\n");
    let mut stmts = common_gather(node);
    for c in comps.pieces() {
        stmts.extend(c.gather());
    }
    stmts.push(mark("end"));
    out.push_str(&shell::render(&stmts, 0));
    out
}

/// The host's facts from the gather script's output: the shared sections, then each component's own.
pub fn parse_facts(output: &str, comps: &HostComponents<'_>) -> Result<HostFacts, FactsError> {
    let sections = Sections::parse(output)?;
    let mut facts = HostFacts::parse_common(&sections)?;
    for c in comps.pieces() {
        c.parse(&sections, &mut facts)?;
    }
    Ok(facts)
}

/// Everything `node` still needs, in the order it must be applied, the boot unit last.
pub fn diff(node: &NodePlan, facts: &HostFacts) -> Vec<Step> {
    diff_with(&HostComponents::up(node), facts)
}

/// [`diff`] with the host's components already chosen.
pub fn diff_with(comps: &HostComponents<'_>, facts: &HostFacts) -> Vec<Step> {
    let node = comps.node;
    let ctx = ctx(node, facts);
    let mut steps: Vec<Step> = comps.planned(facts).flat_map(|c| c.diff(facts, &ctx)).collect();
    // Stable: within a phase, components keep their order.
    steps.sort_by_key(|s| s.phase);
    // Without facts (offline plans, `render`) the boot script's own basis is these very facts: its steps are the
    // ones just made, and need not be made again.
    let script = if facts.is_empty() {
        let at_boot: Vec<&Step> = steps.iter().filter(|s| s.at_boot).collect();
        boot_script_of(node, &at_boot)
    } else {
        boot_script_with(comps, facts)
    };
    steps.extend(Boot.diff(&script, facts));
    steps
}

fn ctx(node: &NodePlan, facts: &HostFacts) -> Ctx {
    Ctx { mtu: resolve_mtu(node, facts) }
}

/// The boot script: the node's from-scratch build of what the kernel forgets (every command checks before it
/// changes, so on a host that kept something it is a no-op there). It depends only on the node and on which
/// firewall the host runs, so it is the same on every run.
pub fn boot_script(node: &NodePlan, facts: &HostFacts) -> String {
    boot_script_with(&HostComponents::up(node), facts)
}

fn boot_script_with(comps: &HostComponents<'_>, facts: &HostFacts) -> String {
    // Only what picks the firewall backend: anything else the host has would make the script vary. Whether
    // docker runs its DOCKER-USER chain is left for the script to see at boot, as offline scripts do.
    let mut basis = HostFacts::default();
    basis.tools = facts.tools.clone();
    if let Some(f) = facts.part::<components::firewall::FirewalldFacts>() {
        basis.set_part(components::firewall::FirewalldFacts { running: f.running, rich_rules: vec![] });
    }
    let ctx = ctx(comps.node, &basis);
    let mut steps: Vec<Step> = comps.planned(&basis).flat_map(|c| c.boot_diff(&basis, &ctx)).collect();
    steps.sort_by_key(|s| s.phase);
    boot_script_of(comps.node, &steps.iter().collect::<Vec<&Step>>())
}

/// The boot script of `at_boot` steps, sorted by phase, with its fingerprint.
fn boot_script_of(node: &NodePlan, at_boot: &[&Step]) -> String {
    components::boot::with_fingerprint(script_of(node, at_boot))
}

/// A POSIX shell script that applies `steps` to `node`; runnable by hand, and what `up` sends. Before each step
/// it prints `### vxmesh-step N description` on stderr, so a failure names its step.
pub fn script(node: &NodePlan, steps: &[Step]) -> String {
    script_of(node, &steps.iter().collect::<Vec<&Step>>())
}

/// [`script`] of borrowed steps: the boot script is a subset of a diff's steps, not a copy of them.
fn script_of(node: &NodePlan, steps: &[&Step]) -> String {
    let mut out = String::new();
    out.push_str("#!/bin/sh\n");
    let header = format!(
        "vxmesh {}: node `{}` of cluster `{}`, {} step(s). Safe to run again: each command checks or replaces.",
        env!("CARGO_PKG_VERSION"),
        node.name,
        node.cluster,
        steps.len()
    );
    shell::render_into(&mut out, &[Stmt::Comment(header)], 0);
    out.push_str("set -eu\nexport PATH=\"$PATH:/usr/sbin:/sbin\"\n");
    out.push_str("step() { printf '### vxmesh-step %s %s\\n' \"$1\" \"$2\" >&2; }\n");
    let uses = |v| steps.iter().flat_map(|s| &s.commands).any(|c| c.uses(v));
    if uses(Var::Mtu) || uses(Var::WireguardMtu) {
        out.push_str(&shell::learn_mtu(node.underlay, &node.name, node.overhead));
    }
    if uses(Var::WireguardMtu) {
        out.push_str(&shell::learn_wireguard_mtu(VXLAN_OVERHEAD));
    }
    let total = steps.len();
    let mut n = 0;
    for group in groups(steps) {
        n += group.len();
        out.push('\n');
        let mut head = vec![];
        let marker = if let [only] = group {
            head.push(Stmt::Comment(format!("[{n}/{total}] {}", only.description)));
            only.description.clone()
        } else {
            let first = n + 1 - group.len();
            head.push(Stmt::Comment(format!("[{first}-{n}/{total}] one OVS transaction:")));
            head.extend(group.iter().map(|s| Stmt::Comment(format!("  - {}", s.description))));
            format!("OVS transaction of {} changes", group.len())
        };
        head.push(cmd!["step", Word::Data(n.to_string()), Word::Data(shell::one_line(&marker))].into());
        shell::render_into(&mut out, &head, 0);
        shell::render_into(&mut out, group.iter().flat_map(|s| &s.commands), 0);
    }
    out.push('\n');
    shell::render_into(&mut out, &[cmd!["step", "done", Word::Lit("all steps applied")].into()], 0);
    out
}

/// Steps split so that neighbouring steps made only of batched commands (OVS) share one transaction.
fn groups<'a, 's>(steps: &'a [&'s Step]) -> Vec<&'a [&'s Step]> {
    let batch_only = |s: &Step| !s.commands.is_empty() && s.commands.iter().all(|c| matches!(c, Stmt::Batch { .. }));
    let mut out: Vec<&[&Step]> = vec![];
    let mut start = 0;
    for i in 1..=steps.len() {
        let split = i == steps.len() || !(batch_only(steps[i - 1]) && batch_only(steps[i]));
        if split {
            out.push(&steps[start..i]);
            start = i;
        }
    }
    out
}

/// What removes the mesh from a host, from what it has; or why it must not be touched. With `force`, nothing
/// is refused (containers still on the mesh's docker network are disconnected).
pub fn teardown(node: &NodePlan, facts: &HostFacts, force: bool) -> Result<Vec<Step>, Vec<String>> {
    teardown_with(&HostComponents::teardown(node), facts, force)
}

/// [`teardown`] with the host's components for `down` already chosen ([`HostComponents::teardown`]).
pub fn teardown_with(comps: &HostComponents<'_>, facts: &HostFacts, force: bool) -> Result<Vec<Step>, Vec<String>> {
    let refusals = comps.refusals(facts);
    if !refusals.is_empty() && !force {
        return Err(refusals);
    }
    let mut steps: Vec<Step> = comps.pieces().flat_map(|c| c.teardown(facts)).collect();
    // Removal runs the phases backwards: firewall and rules first, the switch last but one, the boot unit last.
    steps.sort_by_key(|s| std::cmp::Reverse(s.phase));
    if let Some(i) = steps.iter().position(|s| s.phase == Phase::Boot) {
        let boot = steps.remove(i);
        steps.push(boot);
    }
    Ok(steps)
}

/// The script `down` gathers facts with: every piece any run may have left (every firewall backend, the boot unit).
pub fn teardown_gather_script(node: &NodePlan) -> String {
    gather_script(node, &HostComponents::teardown(node))
}

/// Facts for `down`, parsed as [`teardown_gather_script`] gathered them.
pub fn parse_teardown_facts(node: &NodePlan, output: &str) -> Result<HostFacts, FactsError> {
    parse_facts(output, &HostComponents::teardown(node))
}

/// `node`'s facts from the output of its `up` facts script (what `vxmesh facts-script` prints).
pub fn parse_for(node: &NodePlan, output: &str) -> Result<HostFacts, FactsError> {
    parse_facts(output, &up_components(node))
}

/// The components `up` gathers facts for, the boot unit included.
pub fn up_components(node: &NodePlan) -> HostComponents<'_> {
    HostComponents::up(node)
}

/// Everything that stops a host from taking the mesh, all at once, with what to install per OS family.
pub fn preflight(node: &NodePlan, facts: &HostFacts) -> Vec<String> {
    preflight_with(&HostComponents::up(node), facts)
}

/// [`preflight`] with the host's components already chosen.
pub fn preflight_with(comps: &HostComponents<'_>, facts: &HostFacts) -> Vec<String> {
    let node = comps.node;
    let mut problems = vec![];
    let mut missing: Vec<components::Need> = vec![];
    for need in comps.planned(facts).flat_map(|c| c.needs(facts)) {
        if !facts.tools.contains_key(need.tool) && !missing.contains(&need) {
            missing.push(need);
        }
    }
    if !missing.is_empty() {
        let rpm = facts.is_rpm_family();
        let tools: Vec<&str> = missing.iter().map(|m| m.tool).collect();
        let mut pkgs: Vec<&str> = missing.iter().map(|m| if rpm { m.rpm } else { m.debian }).collect();
        pkgs.dedup();
        let how = if rpm { "dnf install" } else { "apt-get install" };
        let name = facts.os.get("PRETTY_NAME").cloned().unwrap_or_else(|| "this host".into());
        problems.push(format!("missing {} on {name}; install with: {how} {}", tools.join(", "), pkgs.join(" ")));
    } else {
        problems.extend(comps.planned(facts).flat_map(|c| c.preflight(facts)));
    }
    if facts.mtu_of_device_with(node.underlay).is_none() {
        problems.push(format!(
            "no interface on this host has the underlay address {} (underlay_ip of {})",
            node.underlay, node.name
        ));
    }
    problems.extend(collisions(comps, facts, &[node]));
    problems
}

/// Address ranges in use on `host` for something else (routes through devices that are not the mesh's, other
/// docker networks) that collide with a subnet or switch address of any of `nodes`. A foreign route less specific
/// than the cluster's own route loses to it and is no collision; one as specific or more would capture traffic.
fn collisions(comps: &HostComponents<'_>, facts: &HostFacts, nodes: &[&NodePlan]) -> Vec<String> {
    let host = comps.node;
    let ours: Vec<&str> =
        [Some(host.switch.bridge.as_str()), host.docker.bridge.as_deref()].into_iter().flatten().collect();
    let cluster_prefix = host.switch.address.prefix_len();
    let mut claims: Vec<(String, ipnet::Ipv4Net)> = facts
        .routes
        .iter()
        .filter(|r| !r.dev.as_deref().is_some_and(|d| ours.contains(&d)))
        .filter_map(|r| {
            let net = r.dst.parse::<ipnet::Ipv4Net>().ok()?;
            Some((format!("route {} via {}", r.dst, r.dev.as_deref().unwrap_or("?")), net))
        })
        .filter(|(_, net)| net.prefix_len() >= cluster_prefix)
        .collect();
    claims.extend(comps.capabilities(facts).filter_map(|(_, c)| c.claims).flat_map(|c| c.claims(facts)));
    let mut out = vec![];
    for (what, net) in &claims {
        for n in nodes {
            let fix = if n.name == host.name { "this node" } else { "that node" };
            if crate::model::inventory::overlaps(net, &n.subnet) {
                out.push(format!(
                    "subnet {} of {} collides with {what} already on the host; pin another subnet for {fix}",
                    n.subnet, n.name
                ));
            } else if net.contains(&n.switch.address.addr()) {
                out.push(format!(
                    "switch address {} of {} lies in {what} already on the host; choose another cluster.switch_cidr",
                    n.switch.address.addr(),
                    n.name
                ));
            }
        }
    }
    out
}

/// Every problem on every host, before any host is changed: each host's own preflight, and collisions of what
/// any host has with any node's subnet or switch address. Hosts without facts (unreachable) are skipped here.
pub fn fleet_problems(
    plan: &crate::plan::ClusterPlan,
    facts: &[(&NodePlan, &HostFacts)],
) -> Vec<(String, Vec<String>)> {
    let nodes: Vec<&NodePlan> = plan.nodes.iter().collect();
    facts
        .iter()
        .map(|(node, f)| {
            let comps = HostComponents::up(node);
            let mut problems = preflight_with(&comps, f);
            for c in collisions(&comps, f, &nodes) {
                if !problems.contains(&c) {
                    problems.push(c);
                }
            }
            (node.name.clone(), problems)
        })
        .filter(|(_, p)| !p.is_empty())
        .collect()
}
