//! Everything the commands print: tables, the verification matrix, the offline plan, and JSON.

use std::io::{IsTerminal, Write};

use serde::Serialize;

use crate::commands::status::HostStatus;
use crate::commands::{HostResult, HostState};
use crate::components::Step;
use crate::converge;
use crate::facts::HostFacts;
use crate::plan::{ClusterPlan, NodePlan};
use crate::verify::{self, Report};

/// A table without borders whose last columns wrap to fit the terminal (no limit when output is not a terminal).
fn grid(header: &[&str]) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING).set_header(header.to_vec());
    // A terminal that reports no usable width (a pseudo-terminal of size 0) gets no wrapping at all.
    // Only the columns count: a pseudo-terminal may report 0 rows and still a width.
    let width = std::io::stdout().is_terminal().then(|| rustix::termios::tcgetwinsize(std::io::stdout()).ok());
    match width.flatten().map(|w| w.ws_col).filter(|w| *w >= 40) {
        Some(w) => t.set_width(w).set_content_arrangement(comfy_table::ContentArrangement::Dynamic),
        None => t.set_content_arrangement(comfy_table::ContentArrangement::Disabled),
    };
    for c in t.column_iter_mut() {
        c.set_padding((0, 2));
    }
    t
}

/// A table's lines, each without the padding after its last cell.
fn print_grid(out: &mut dyn Write, t: &comfy_table::Table) {
    for line in t.lines() {
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

/// Per host: result, number of steps, time, and what was done (or why it failed).
pub fn summary(out: &mut dyn Write, rows: &[HostResult], verb: &str) {
    let verb_up = verb.to_uppercase();
    let mut t = grid(&["HOST", "RESULT", &verb_up, "TIME", "WHAT"]);
    for r in rows {
        let what = match (&r.error, r.changed.len()) {
            (Some(e), _) => e.clone(),
            (None, 0) => String::new(),
            (None, 1) => r.changed[0].clone(),
            (None, n) => format!("{} (+{} more)", r.changed[0], n - 1),
        };
        let changed = if r.error.is_some() { "-".to_string() } else { r.changed.len().to_string() };
        t.add_row(vec![r.node.clone(), r.status.word().to_string(), changed, format!("{:.2}s", r.seconds), what]);
    }
    print_grid(out, &t);
    for r in rows.iter().filter(|r| !r.left_alone.is_empty()) {
        let _ = writeln!(
            out,
            "  {}: left alone ({} steps of unrelated drift; `vxmesh up` repairs them): {}",
            r.node,
            r.left_alone.len(),
            r.left_alone.join("; ")
        );
    }
    let _ = writeln!(out, "{}", summary_line(rows, verb));
}

/// `1 host`, `3 hosts`: a count with its noun, singular for one.
pub fn counted(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The last line of [`summary`]: how many hosts ended how. With `-q`, the one line a change command prints.
pub fn summary_line(rows: &[HostResult], verb: &str) -> String {
    let count = |s: HostState| rows.iter().filter(|r| r.status == s).count();
    format!(
        "{}: {} {verb}, {} ok, {} failed{}",
        counted(rows.len(), "host", "hosts"),
        count(HostState::Changed),
        count(HostState::Ok),
        count(HostState::Failed),
        held(rows)
    )
}

/// `, N held back: ...` when some hosts were left unchanged because another failed its checks.
fn held(rows: &[HostResult]) -> String {
    match rows.iter().filter(|r| r.status == HostState::Held).count() {
        0 => String::new(),
        n => format!(", {n} held back: no host is changed until every host passes its checks"),
    }
}

/// With `-q`: each failed host and why, on stderr (the tables are left out).
pub fn host_errors(err: &mut dyn Write, rows: &[HostResult]) {
    for r in rows.iter().filter(|r| r.failed()) {
        let why = r.error.as_deref().unwrap_or("failed").lines().collect::<Vec<_>>().join("\n    ");
        let _ = writeln!(err, "{} ({}): {why}", r.node, r.host);
    }
}

/// `plan` with `-q`: one line, how many hosts `up` would change.
pub fn plan_line(rows: &[HostResult]) -> String {
    let count = |s: HostState| rows.iter().filter(|r| r.status == s).count();
    let steps: usize = rows.iter().filter(|r| r.status == HostState::Changed).map(|r| r.changed.len()).sum();
    format!(
        "{}: {} to change ({}), {} up to date, {} failed{}",
        counted(rows.len(), "host", "hosts"),
        count(HostState::Changed),
        counted(steps, "step", "steps"),
        count(HostState::Ok),
        count(HostState::Failed),
        held(rows)
    )
}

/// `plan` (online): per host, the exact script `up` would send, or "up to date".
pub fn plan(out: &mut dyn Write, rows: &[HostResult]) {
    for r in rows {
        let _ = match (&r.error, r.changed.is_empty()) {
            (Some(e), _) => writeln!(out, "=== {} ({}): cannot plan: {e}", r.node, r.host),
            (None, true) => writeln!(out, "=== {} ({}): up to date", r.node, r.host),
            (None, false) => writeln!(out, "=== {} ({}): {} steps\n{}", r.node, r.host, r.changed.len(), r.script),
        };
    }
}

/// The verification: a summary line, the matrix, then every failure in words.
pub fn verify(out: &mut dyn Write, r: &verify::Report, plan: &ClusterPlan) {
    let names: Vec<String> = plan.nodes.iter().map(|n| n.name.clone()).collect();
    let ok_pairs = r.pairs.iter().filter(|p| p.ok).count();
    let mtu: Vec<String> = r
        .hosts
        .iter()
        .filter_map(|h| h.mtu)
        .map(|m| m.to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mtu_checked = r.pairs.iter().any(|p| p.full_size.is_some());
    let what = if plan.nodes.first().is_some_and(|n| n.docker.mode == crate::model::inventory::DockerMode::None) {
        "switch to switch, no docker on the hosts"
    } else if r.pairs.iter().any(|p| p.ipv6.is_some()) {
        "container to container over IPv4 and IPv6, no NAT; cells IPv4/IPv6"
    } else {
        "container to container, no NAT"
    };
    let _ = writeln!(
        out,
        "\nverify: {ok_pairs}/{} pairs ok in {:.1}s ({what}{}{})",
        r.pairs.len(),
        r.seconds,
        if mtu_checked {
            format!(", full-size {} byte packets with DF", mtu.join("/"))
        } else {
            ", MTU not probed: no iputils ping on the hosts".into()
        },
        r.outside.map_or(String::new(), |o| format!(", outside {o}"))
    );
    if r.pairs.iter().any(|p| p.names.is_some()) {
        let named = r.pairs.iter().filter(|p| p.names == Some(true)).count();
        let _ = writeln!(
            out,
            "names: {named}/{} pairs found the peer's container as NAME.NODE.DOMAIN and among NAME.DOMAIN, and \
             fetched from the address its name gave",
            r.pairs.len()
        );
    }
    if r.pairs.iter().any(|p| p.path.is_some()) {
        let mut ways: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
        for p in &r.pairs {
            *ways.entry(p.path.as_deref().unwrap_or("?")).or_default() += 1;
        }
        let ways: Vec<String> = ways.into_iter().map(|(w, n)| format!("{n} {w}")).collect();
        let _ = writeln!(out, "paths (ordered pairs): {}", ways.join(", "));
    }
    let _ = write!(out, "{}", matrix(r, &names));
    let retried: Vec<String> = r
        .pairs
        .iter()
        .filter(|p| p.ok)
        .flat_map(|p| {
            let v4 = p.tries.is_some_and(|t| t > 1).then(|| format!("{} -> {}", p.from, p.to));
            let v6 = p.ipv6.as_ref().and_then(|f| f.tries).is_some_and(|t| t > 1);
            v4.into_iter().chain(v6.then(|| format!("{} -> {} (IPv6)", p.from, p.to)))
        })
        .collect();
    if !retried.is_empty() {
        let _ = writeln!(out, "  answered only on a second try (a first fetch got nothing): {}", retried.join(", "));
    }
    for problem in verify_problems(r) {
        let _ = writeln!(out, "  {problem}");
    }
    if !r.bandwidth.is_empty() {
        let _ = writeln!(
            out,
            "\nthroughput (iperf3 TCP, 3 s each) and latency, over the mesh vs host to host on the underlay:"
        );
        let _ = writeln!(
            out,
            "{:<10} {:<10} {:>13} {:>13} {:>6} {:>5} {:>6} {:>15}",
            "FROM", "TO", "MESH", "UNDERLAY", "RATIO", "MSS", "FRAGS", "RTT MESH/UNDER"
        );
        let f = |v: Option<f64>| v.map_or("-".to_string(), |m| format!("{m:.0} Mbit/s"));
        for b in &r.bandwidth {
            let ratio = b.overlay_mbps.zip(b.underlay_mbps).map_or("-".into(), |(o, u)| format!("{:.2}", o / u));
            let rtt = format!(
                "{}/{} ms",
                b.overlay_rtt_ms.map_or("-".into(), |v| format!("{v:.2}")),
                b.underlay_rtt_ms.map_or("-".into(), |v| format!("{v:.2}"))
            );
            let _ = writeln!(
                out,
                "{:<10} {:<10} {:>13} {:>13} {:>6} {:>5} {:>6} {:>15}{}",
                b.from,
                b.to,
                f(b.overlay_mbps),
                f(b.underlay_mbps),
                ratio,
                b.mss.map_or("-".into(), |m| m.to_string()),
                b.fragments.map_or("-".into(), |n| n.to_string()),
                rtt,
                b.error.as_deref().map(|e| format!("  {e}")).unwrap_or_default()
            );
        }
    }
    let _ = writeln!(out, "{}", if r.ok { "mesh OK" } else { "mesh BROKEN" });
}

/// Every check `verify` found failing, in words: the pairs, then the hosts.
pub fn verify_problems(r: &verify::Report) -> Vec<String> {
    let mut out: Vec<String> = r
        .pairs
        .iter()
        .filter(|p| !p.ok)
        .map(|p| {
            let path = p.path.as_deref().map_or(String::new(), |x| format!(" ({x})"));
            format!("{} -> {}{path}: {}", p.from, p.to, p.error.as_deref().unwrap_or("failed"))
        })
        .collect();
    for h in &r.hosts {
        if let Some(e) = &h.error {
            out.push(format!("{}: {e}", h.node));
        }
        if !h.unreachable_switches.is_empty() {
            out.push(format!("{}: cannot reach the switch of {}", h.node, h.unreachable_switches.join(", ")));
        }
        if !h.switches_on_second_try.is_empty() {
            out.push(format!(
                "{}: the switch of {} answered only a second ping",
                h.node,
                h.switches_on_second_try.join(", ")
            ));
        }
        if !h.unreachable_switches6.is_empty() {
            out.push(format!(
                "{}: cannot reach the IPv6 switch address of {}",
                h.node,
                h.unreachable_switches6.join(", ")
            ));
        }
        if !h.switches6_on_second_try.is_empty() {
            out.push(format!(
                "{}: the IPv6 switch address of {} answered only a second ping",
                h.node,
                h.switches6_on_second_try.join(", ")
            ));
        }
        if h.outside == Some(false) {
            out.push(format!(
                "{}: cannot reach the outside address {} through NAT",
                h.node,
                r.outside.map(|o| o.to_string()).unwrap_or_default()
            ));
        }
    }
    out
}

/// `verify` with `-q`: its problems on stderr; the one line result is [`verify_line`].
pub fn verify_errors(err: &mut dyn Write, r: &verify::Report) {
    for problem in verify_problems(r) {
        let _ = writeln!(err, "{problem}");
    }
}

/// The verification in one line: `mesh OK (6/6 pairs)`.
pub fn verify_line(r: &verify::Report) -> String {
    let ok = r.pairs.iter().filter(|p| p.ok).count();
    format!("mesh {} ({ok}/{} pairs)", if r.ok { "OK" } else { "BROKEN" }, r.pairs.len())
}

/// `status` with `-q`: what is wrong on each host, on stderr, then one line.
pub fn status_quiet(out: &mut dyn Write, err: &mut dyn Write, rows: &[HostStatus], clean: bool) {
    let mut unclean = 0;
    for r in rows {
        let mut problems = vec![];
        if let Some(e) = &r.error {
            problems.push(e.clone());
        }
        if !r.drift.is_empty() {
            problems.push(format!("drift, {} steps: {}", r.drift.len(), r.drift.join("; ")));
        }
        for t in r.tunnels.iter().filter(|t| !t.present || t.state.as_deref() != Some("up")) {
            let state = if t.present {
                format!("BFD {}", t.state.as_deref().unwrap_or("no state yet"))
            } else {
                "missing".into()
            };
            problems.push(format!("tunnel to {}: {state}", t.peer));
        }
        let keyless: Vec<&str> = r.wireguard.iter().filter(|w| !w.present).map(|w| w.peer.as_str()).collect();
        if !keyless.is_empty() {
            problems.push(format!("wireguard peers missing or with another key: {}", keyless.join(", ")));
        }
        if !r.clean() {
            unclean += 1;
        }
        for p in problems {
            let _ = writeln!(err, "{} ({}): {p}", r.node, r.host);
        }
    }
    if clean {
        let _ = writeln!(out, "all hosts match the plan, every tunnel up");
    } else {
        let _ = writeln!(out, "not clean: {unclean} of {}", counted(rows.len(), "host", "hosts"));
    }
}

/// `-v`: a script a host ran and what it printed, on stderr as one block (control characters shown escaped: what
/// a host prints cannot drive the terminal).
pub fn transcript(
    node: &NodePlan,
    script: &str,
    result: &Result<converge::Output, crate::error::HostError>,
    took: std::time::Duration,
) {
    let text = transcript_text(&node.name, &node.host, script, result, took);
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// The block [`transcript`] prints: the script, then what the host printed on each stream and how it ended.
fn transcript_text(
    name: &str,
    host: &str,
    script: &str,
    result: &Result<converge::Output, crate::error::HostError>,
    took: std::time::Duration,
) -> String {
    let secs = took.as_secs_f64();
    let mut text = format!("--- {name} ({host}): script, {} lines\n", script.lines().count());
    let mut section = |body: &str| {
        text += &terminal_safe(body);
        if !body.is_empty() && !body.ends_with('\n') {
            text.push('\n');
        }
    };
    section(script);
    match result {
        Ok(o) => {
            for (what, body) in [("stdout", &o.stdout), ("stderr", &o.stderr)] {
                if body.is_empty() {
                    text += &format!("--- {name}: {what}: (nothing)\n");
                } else {
                    text += &format!("--- {name}: {what}:\n");
                    text += &terminal_safe(body);
                    if !body.ends_with('\n') {
                        text.push('\n');
                    }
                }
            }
            text += &format!("--- {name}: exit {} after {secs:.2} s\n", o.code);
        }
        Err(e) => text += &format!("--- {name}: no result after {secs:.2} s: {}\n", terminal_safe(&e.to_string())),
    }
    text
}

/// `s` with every control character but newline and tab, and the bidirectional overrides, shown as escapes.
fn terminal_safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let bidi = matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        );
        if (c.is_control() && c != '\n' && c != '\t') || bidi {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// `status`: one row per host, then every tunnel that is not up.
pub fn status(out: &mut dyn Write, rows: &[HostStatus], clean: bool) {
    status_of(out, rows, None, clean);
}

/// [`status`]; with dual-stack containers (`cluster.cidr6`), two more columns: each node's IPv6 block and sw0's
/// IPv6 address, from `plan` (as SUBNET is); whether the host has them shows as drift.
pub fn status_with_plan(out: &mut dyn Write, rows: &[HostStatus], plan: &ClusterPlan, clean: bool) {
    status_of(out, rows, Some(plan), clean);
}

fn status_of(out: &mut dyn Write, rows: &[HostStatus], plan: Option<&ClusterPlan>, clean: bool) {
    let yn = |b: bool| if b { "yes" } else { "no" };
    let plan = plan.filter(|p| p.nodes.iter().any(|n| n.ipv6.is_some()));
    let six = plan.is_some();
    let mut head = vec!["HOST", "REACHABLE", "SW0", "SUBNET"];
    if six {
        head.extend(["SUBNET6", "SW0 IPV6"]);
    }
    head.extend(["DOCKER", "TUNNELS", "DRIFT"]);
    let mut t = grid(&head);
    let mut details: Vec<String> = vec![];
    for r in rows {
        let up = r.tunnels.iter().filter(|t| t.state.as_deref() == Some("up")).count();
        let tunnels = if r.reachable { format!("{up}/{} up", r.tunnels.len()) } else { "-".into() };
        let drift = match (&r.error, r.drift.len()) {
            (Some(e), _) => e.clone(),
            (None, 0) => "none".into(),
            (None, n) => format!("{n} steps: {}", r.drift.join("; ")),
        };
        let mut row = vec![
            r.node.clone(),
            yn(r.reachable).to_string(),
            if r.reachable { yn(r.switch) } else { "-" }.to_string(),
            r.subnet.clone(),
        ];
        if six {
            let v6 = plan.and_then(|p| p.node(&r.node)).and_then(|n| n.ipv6.as_ref());
            row.push(v6.map_or("-".into(), |v| v.subnet.to_string()));
            row.push(v6.map_or("-".into(), |v| v.switch.to_string()));
        }
        row.extend([if r.reachable { yn(r.docker_network) } else { "-" }.to_string(), tunnels, drift]);
        t.add_row(row);
        for tn in r.tunnels.iter().filter(|t| !t.present || t.state.as_deref() != Some("up")) {
            let what = if tn.present {
                format!("BFD {}", tn.state.as_deref().unwrap_or("no state yet"))
            } else {
                "missing".into()
            };
            details.push(format!("{}: tunnel to {}: {what}", r.node, tn.peer));
        }
        if !r.wireguard.is_empty() {
            let keyed = r.wireguard.iter().filter(|w| w.present).count();
            let each: Vec<String> = r
                .wireguard
                .iter()
                .map(|w| {
                    let what = if w.present { w.state.as_deref().unwrap_or("?") } else { "missing or another key" };
                    format!("{} {what}", w.peer)
                })
                .collect();
            details.push(format!("{}: wireguard: {keyed}/{} peers; {}", r.node, r.wireguard.len(), each.join(", ")));
        }
        if let Some(l) = &r.last_applied {
            let which = if l.current { "this plan" } else { "an earlier plan: run `vxmesh up`" };
            details.push(format!("{}: last changed by vxmesh {}, from {which}", r.node, l.time));
        }
    }
    print_grid(out, &t);
    for d in details {
        let _ = writeln!(out, "  {d}");
    }
    let _ =
        writeln!(out, "{}", if clean { "all hosts match the plan, every tunnel up" } else { "not clean: see above" });
}

/// The N x N matrix a person reads at a glance.
pub fn matrix(report: &Report, names: &[String]) -> String {
    let cell = |a: &str, b: &str| -> String {
        if a == b {
            return "·".into();
        }
        match report.pairs.iter().find(|p| p.from == a && p.to == b) {
            None => "".into(),
            Some(p) if p.ok => {
                let ok = if p.ipv6.is_some() { "ok/ok" } else { "ok" };
                let ok = p.rtt_ms.map_or(ok.into(), |r| format!("{ok} {r:.1}ms"));
                // Found by both its names and answered by name (`cluster.dns`).
                if p.names == Some(true) { format!("{ok} +names") } else { ok }
            }
            // Dual-stack: each family's verdict, IPv4/IPv6 (a names failure reads as before).
            Some(p)
                if p.ipv6.as_ref().is_some_and(|f| !f.ok)
                    || p.error.as_deref().is_some_and(|e| e.starts_with("IPv4")) =>
            {
                let v4 = p
                    .error
                    .as_deref()
                    .and_then(|e| e.strip_prefix("IPv4: "))
                    .map(|e| e.split("; IPv6: ").next().unwrap_or(e));
                let v6 = p.ipv6.as_ref().and_then(|f| f.error.as_deref());
                format!("{}/{}", family_cell(v4), family_cell(v6))
            }
            Some(p) => family_cell(Some(p.error.as_deref().unwrap_or("failed"))),
        }
    };
    let dual = report.pairs.iter().any(|p| p.ipv6.is_some());
    let cell_width = match (report.pairs.iter().any(|p| p.names == Some(true)), dual) {
        (true, true) => 21,
        (true, false) => 18,
        (false, true) => 14,
        (false, false) => 11,
    };
    let w = names.iter().map(|n| n.len()).max().unwrap_or(4).max(cell_width);
    let mut out = format!("{:<w$}", "from \\ to");
    for n in names {
        out.push_str(&format!("  {n:<w$}"));
    }
    out.push('\n');
    for a in names {
        out.push_str(&format!("{a:<w$}"));
        for b in names {
            out.push_str(&format!("  {:<w$}", cell(a, b)));
        }
        out.push('\n');
    }
    out
}

/// One family's word in a matrix cell: `ok`, or `FAIL` with the kind of failure.
fn family_cell(error: Option<&str>) -> String {
    match error {
        None => "ok".into(),
        Some(e) if e.starts_with("NAT") => "FAIL nat".into(),
        Some(e) if e.starts_with("name") => "FAIL names".into(),
        Some(e) if e.contains("don't-fragment") => "FAIL mtu".into(),
        Some(_) => "FAIL".into(),
    }
}

/// Version of the JSON envelope every command prints with `--json`.
pub const JSON_SCHEMA: u32 = 1;

/// `v` in the envelope: `schema`, `command` and `ok` first-class in every output. An object keeps its fields
/// (`ok` is true where it has none: outputs that cannot fail); anything else goes under `items`.
pub fn envelope(command: &str, v: serde_json::Value) -> serde_json::Value {
    let mut out = match v {
        serde_json::Value::Object(m) => m,
        other => {
            let mut m = serde_json::Map::new();
            m.insert("items".into(), other);
            m
        }
    };
    out.insert("schema".into(), JSON_SCHEMA.into());
    out.insert("command".into(), command.into());
    out.entry("ok").or_insert(true.into());
    serde_json::Value::Object(out)
}

pub fn json<T: Serialize>(out: &mut dyn Write, v: &T) {
    let _ = serde_json::to_writer_pretty(&mut *out, v);
    let _ = writeln!(out);
}

#[derive(Serialize)]
pub struct PlanJson<'a> {
    cluster: &'a str,
    cidr: ipnet::Ipv4Net,
    #[serde(skip_serializing_if = "Option::is_none")]
    cidr6: Option<ipnet::Ipv6Net>,
    tunnel_pairs: usize,
    nodes: Vec<NodeJson<'a>>,
}

/// One node in `plan --json`, online and offline alike: what it should have, and the steps it needs.
#[derive(Serialize)]
pub struct NodeJson<'a> {
    pub desired: &'a NodePlan,
    pub steps: Vec<serde_json::Value>,
}

pub fn plan_json<'a>(plan: &'a ClusterPlan, nodes: &'a [(&'a NodePlan, Vec<Step>)]) -> PlanJson<'a> {
    PlanJson {
        cluster: &plan.cluster,
        cidr: plan.cidr,
        cidr6: cidr6(plan),
        tunnel_pairs: plan.tunnel_pairs,
        nodes: nodes
            .iter()
            .map(|(n, steps)| NodeJson { desired: n, steps: steps.iter().map(Step::to_json).collect() })
            .collect(),
    }
}

/// `plan --offline --json`, written as it is made: one node's desired state and steps at a time, so the document
/// of a 1,000-node plan is never in memory whole. The same document as [`plan_json`] in [`envelope`].
pub fn offline_plan_json(out: &mut dyn Write, plan: &ClusterPlan, command: &str) {
    #[derive(Serialize)]
    struct Document<'a, N: Serialize> {
        cluster: &'a str,
        cidr: ipnet::Ipv4Net,
        #[serde(skip_serializing_if = "Option::is_none")]
        cidr6: Option<ipnet::Ipv6Net>,
        tunnel_pairs: usize,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        paths: Vec<crate::model::paths::PairPath>,
        nodes: N,
        schema: u32,
        command: &'a str,
        ok: bool,
    }
    let nodes = crate::plan::Listed(|| {
        plan.nodes.iter().map(|n| NodeJson {
            desired: n,
            steps: converge::diff(n, &HostFacts::default()).iter().map(Step::to_json).collect(),
        })
    });
    let document = Document {
        cluster: &plan.cluster,
        cidr: plan.cidr,
        cidr6: cidr6(plan),
        tunnel_pairs: plan.tunnel_pairs,
        paths: plan.paths(),
        nodes,
        schema: JSON_SCHEMA,
        command,
        ok: true,
    };
    json(&mut std::io::BufWriter::new(out), &document);
}

/// The path of each ordered pair, when the hosts are in more than one site (`paths` is empty otherwise, and nothing
/// is printed): `private`, `public` or `relay via NODE`, and which end starts when only one can.
pub fn paths(out: &mut dyn Write, paths: &[crate::model::paths::PairPath]) {
    if paths.is_empty() {
        return;
    }
    let _ = writeln!(out, "\npaths of the ordered pairs (`X starts`: X is behind NAT, its peers answer it):");
    let w = paths.iter().map(|p| p.from.chars().count().max(p.to.chars().count())).max().unwrap_or(0);
    for p in paths {
        let starts = p.starts.as_ref().map_or_else(String::new, |s| format!(" ({s} starts)"));
        let _ = writeln!(out, "  {:<w$} -> {:<w$}  {}{starts}", p.from, p.to, p.path);
    }
}

/// The offline plan's first line; with `-q`, all it prints.
pub fn offline_plan_line(plan: &ClusterPlan) -> String {
    format!(
        "vxmesh plan (offline): cluster `{}`, {}, {}, cluster CIDR {}{}{}",
        plan.cluster,
        counted(plan.nodes.len(), "node", "nodes"),
        counted(plan.tunnel_pairs, "tunnel pair", "tunnel pairs"),
        plan.cidr,
        cidr6(plan).map_or(String::new(), |c| format!(" and {c}")),
        // Where dual-stack hosts left a choice, which family the tunnels took.
        plan.underlay_family.map_or(String::new(), |f| format!(", tunnels over {f}"))
    )
}

/// The cluster's IPv6 range, with dual-stack containers (`cluster.cidr6`): every node plan carries it.
pub fn cidr6(plan: &ClusterPlan) -> Option<ipnet::Ipv6Net> {
    plan.nodes.iter().find_map(|n| Some(n.ipv6.as_ref()?.cluster))
}

/// Streams the offline plan: scripts are rendered a chunk of nodes at a time, on every core, and
/// printed in order, so a 1,000-node plan (a million tunnel ports) never sits in memory whole.
/// `verbose` adds each node's read-only facts script, the one `up` and `plan` send first.
pub fn offline_plan(out: &mut dyn Write, plan: &ClusterPlan, verbose: bool) {
    let mut out = std::io::BufWriter::new(out);
    let _ = writeln!(out, "{}\n", offline_plan_line(plan));
    // One row per node; columns as wide as their widest value (an IPv6 host is 39 characters), the IPv6 side
    // and the sites only where some node has them.
    let six = plan.nodes.iter().any(|n| n.ipv6.is_some());
    let sites = plan.nodes.first().is_some_and(NodePlan::across_sites);
    let mut head = vec!["NODE", "HOST", "UNDERLAY", "SUBNET", "SWITCH (sw0)"];
    if six {
        head.extend(["SUBNET6", "SWITCH6 (sw0)"]);
    }
    if sites {
        head.extend(["SITE", "PUBLIC IP"]);
    }
    head.push("TUNNELS");
    let rows: Vec<Vec<String>> = plan
        .nodes
        .iter()
        .map(|n| {
            let mut r = vec![
                n.name.clone(),
                n.host.clone(),
                n.underlay.to_string(),
                n.subnet.to_string(),
                n.switch.address.to_string(),
            ];
            if six {
                let (sub, sw) =
                    n.ipv6.as_ref().map_or(("-".into(), "-".into()), |v| (v.subnet.to_string(), v.switch.to_string()));
                r.extend([sub, sw]);
            }
            if sites {
                let e = n.endpoint();
                r.extend([e.site.to_string(), e.public_ip.map_or("-".into(), |p| p.to_string())]);
            }
            r.push(n.peer_count().to_string());
            r
        })
        .collect();
    let mut widths: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let last = cells.len() - 1;
        let text: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| if i == last { format!("{c:>w$}", w = widths[i]) } else { format!("{c:<w$}", w = widths[i]) })
            .collect();
        text.join("  ")
    };
    let _ = writeln!(out, "{}", line(&head));
    for r in &rows {
        let cells: Vec<&str> = r.iter().map(String::as_str).collect();
        let _ = writeln!(out, "{}", line(&cells));
    }
    paths(&mut out, &plan.paths());
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    for chunk in plan.nodes.chunks(16 * workers) {
        let texts = map_in_parallel(chunk, workers, |n| {
            let steps = converge::diff(n, &HostFacts::default());
            let mut text =
                format!("\n=== {} ({}): {} steps ===\n{}", n.name, n.host, steps.len(), converge::script(n, &steps));
            if verbose {
                text += &format!(
                    "\n=== {} ({}): facts script (read-only, sent first by up and plan) ===\n{}",
                    n.name,
                    n.host,
                    converge::gather_script(n, &converge::up_components(n))
                );
            }
            text
        });
        for t in texts {
            let _ = out.write_all(t.as_bytes());
        }
    }
}

/// `items.map(f)` on up to `workers` threads, results in input order.
fn map_in_parallel<T: Sync, R: Send>(items: &[T], workers: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let per = items.len().div_ceil(workers.max(1)).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = items.chunks(per).map(|c| s.spawn(|| c.iter().map(&f).collect::<Vec<R>>())).collect();
        handles.into_iter().flat_map(|h| h.join().expect("a rendering thread panicked")).collect()
    })
}

/// `ps`: one line per container on the mesh, by host.
pub fn ps(out: &mut dyn Write, listing: &crate::commands::ps::Listing) {
    let c = &listing.containers;
    // The NAMES column only where names are on (`cluster.dns`): a listing without them reads as before.
    let named = c.iter().any(|x| !x.names.is_empty());
    // The IPv6 column only where some container has an IPv6 address (dual-stack containers, `cluster.cidr6`).
    let six = c.iter().any(|x| x.address6.is_some());
    let mut head = vec!["HOST", "CONTAINER", "IMAGE", "ADDRESS"];
    if six {
        head.push("ADDRESS6");
    }
    head.push("STATUS");
    if named {
        head.push("NAMES");
    }
    let mut t = grid(&head);
    for x in c {
        let mut row =
            vec![x.node.clone(), x.name.clone(), x.image.clone(), x.address.clone().unwrap_or_else(|| "-".into())];
        if six {
            row.push(x.address6.clone().unwrap_or_else(|| "-".into()));
        }
        row.push(x.status.clone());
        if named {
            row.push(if x.names.is_empty() { "-".into() } else { x.names.join(" ") });
        }
        t.add_row(row);
    }
    print_grid(out, &t);
    for (node, why) in &listing.failed {
        let _ = writeln!(out, "{node}: not listed: {why}");
    }
    let hosts: std::collections::BTreeSet<&str> = c.iter().map(|x| x.node.as_str()).collect();
    let _ = writeln!(
        out,
        "{} on the mesh on {}",
        counted(c.len(), "container", "containers"),
        counted(hosts.len(), "host", "hosts")
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn row(node: &str, status: HostState, changed: usize, error: Option<&str>) -> HostResult {
        HostResult {
            node: node.into(),
            host: format!("{node}.example"),
            status,
            changed: (0..changed).map(|i| format!("step {i}")).collect(),
            left_alone: vec![],
            error: error.map(String::from),
            error_kind: None,
            seconds: 0.1,
            script: String::new(),
            detail: vec![],
        }
    }

    #[test]
    fn one_line_results_count_each_kind_of_host() {
        let rows = [
            row("a", HostState::Changed, 3, None),
            row("b", HostState::Ok, 0, None),
            row("c", HostState::Failed, 0, Some("unreachable")),
            row("d", HostState::Held, 0, Some("not changed: another host failed its checks")),
        ];
        assert_eq!(
            summary_line(&rows, "changed"),
            "4 hosts: 1 changed, 1 ok, 1 failed, 1 held back: no host is changed until every host passes its checks"
        );
        assert_eq!(summary_line(&rows[..2], "removed"), "2 hosts: 1 removed, 1 ok, 0 failed");
        let plan = [
            row("a", HostState::Changed, 3, None),
            row("b", HostState::Changed, 2, None),
            row("c", HostState::Ok, 0, None),
        ];
        assert_eq!(plan_line(&plan), "3 hosts: 2 to change (5 steps), 1 up to date, 0 failed");
        assert_eq!(
            plan_line(&rows),
            "4 hosts: 1 to change (3 steps), 1 up to date, 1 failed, 1 held back: no host is changed until every \
             host passes its checks"
        );
    }

    #[test]
    fn a_transcript_shows_the_script_and_what_came_back() {
        let out = converge::Output { stdout: "facts\n".into(), stderr: "warn \x1b[2J".into(), code: 0 };
        assert_eq!(
            transcript_text("vm1", "10.0.0.1", "set -e\necho hi\n", &Ok(out), Duration::from_millis(1834)),
            "--- vm1 (10.0.0.1): script, 2 lines\nset -e\necho hi\n--- vm1: stdout:\nfacts\n--- vm1: stderr:\n\
             warn \\u{1b}[2J\n--- vm1: exit 0 after 1.83 s\n"
        );
        let empty = converge::Output { code: 3, ..Default::default() };
        assert_eq!(
            transcript_text("vm1", "h", "true", &Ok(empty), Duration::ZERO),
            "--- vm1 (h): script, 1 lines\ntrue\n--- vm1: stdout: (nothing)\n--- vm1: stderr: (nothing)\n--- vm1: exit 3 after 0.00 s\n"
        );
        let gone = Err(crate::error::HostError::Timeout(300));
        assert_eq!(
            transcript_text("vm1", "h", "true\n", &gone, Duration::from_secs(300)),
            "--- vm1 (h): script, 1 lines\ntrue\n--- vm1: no result after 300.00 s: the command did not finish within 300s\n"
        );
    }

    #[test]
    fn the_matrix_shows_both_families_at_a_glance() {
        use crate::verify::{Family, Pair};
        let pair = |to: &str, v4: Option<&str>, v6: Option<&str>| {
            let six = Family { ok: v6.is_none(), error: v6.map(String::from), ..Family::default() };
            let error = match (v4, v6) {
                (None, None) => None,
                (Some(e), None) => Some(format!("IPv4: {e}")),
                (None, Some(e)) => Some(format!("IPv6: {e}")),
                (Some(a), Some(b)) => Some(format!("IPv4: {a}; IPv6: {b}")),
            };
            Pair {
                from: "a".into(),
                to: to.into(),
                ok: error.is_none(),
                rtt_ms: Some(0.42),
                client: None,
                seen_source: None,
                full_size: None,
                oversize_refused: None,
                tries: None,
                names: None,
                path: None,
                ipv6: Some(six),
                error,
            }
        };
        let report = Report {
            ok: false,
            pairs: vec![
                pair("b", None, None),
                pair("c", None, Some("a full-size packet with don't-fragment was lost")),
                pair("d", Some("NAT: the listener saw x instead of y"), Some("no answer from the listener")),
            ],
            hosts: vec![verify::HostCheck {
                node: "a".into(),
                ok: false,
                mtu: Some(1450),
                unreachable_switches: vec![],
                switches_on_second_try: vec![],
                unreachable_switches6: vec!["d".into()],
                switches6_on_second_try: vec!["c".into()],
                outside: None,
                error: None,
            }],
            outside: None,
            seconds: 0.0,
            bandwidth: vec![],
            containers_removed: false,
        };
        let names: Vec<String> = ["a", "b", "c", "d"].map(String::from).into();
        let m = matrix(&report, &names);
        let row = m.lines().nth(1).unwrap().split("  ").map(str::trim).filter(|c| !c.is_empty()).collect::<Vec<_>>();
        assert_eq!(row, ["a", "·", "ok/ok 0.4ms", "ok/FAIL mtu", "FAIL nat/FAIL"], "{m}");
        let problems = verify_problems(&report);
        assert_eq!(problems[0], "a -> c: IPv6: a full-size packet with don't-fragment was lost");
        assert_eq!(
            problems[2..],
            [
                "a: cannot reach the IPv6 switch address of d",
                "a: the IPv6 switch address of c answered only a second ping"
            ]
        );
    }

    fn plan_of(cidr6: &str) -> ClusterPlan {
        let text = format!(
            "cluster: {{cidr: 172.16.0.0/12{cidr6}}}\nnodes:\n  - {{name: vm1, host: 192.0.2.1}}\n  - {{name: vm2, host: 192.0.2.2}}\n"
        );
        let inv = crate::model::inventory::parse(std::path::Path::new("t.yaml"), &text).unwrap();
        crate::plan::plan(&inv, &crate::model::ipam::assign(&inv, None).unwrap())
    }

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = vec![];
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_ipv6_side_shows_only_with_dual_stack_containers() {
        let (v4, dual) = (plan_of(""), plan_of(", cidr6: 'fd42:7:1::/48'"));
        let plain = text(|o| offline_plan(o, &v4, false));
        assert!(!plain.contains("SUBNET6") && !plain.lines().next().unwrap().contains(" and "), "{plain}");
        let both = text(|o| offline_plan(o, &dual, false));
        assert!(both.starts_with("vxmesh plan (offline): cluster `vxmesh`, 2 nodes, 1 tunnel pair, cluster CIDR 172.16.0.0/12 and fd42:7:1::/48\n"), "{both}");
        let row = both.lines().find(|l| l.starts_with("vm2 ")).unwrap().split_whitespace().collect::<Vec<_>>();
        assert_eq!(row[5..], ["fd42:7:1:2::/64", "fd42:7:1::2/48", "1"], "{both}");
        let json: serde_json::Value =
            serde_json::from_slice(&text(|o| offline_plan_json(o, &dual, "plan")).into_bytes()).unwrap();
        assert_eq!(json["cidr6"], "fd42:7:1::/48");
        let json: serde_json::Value =
            serde_json::from_slice(&text(|o| offline_plan_json(o, &v4, "plan")).into_bytes()).unwrap();
        assert!(json.get("cidr6").is_none());

        let host = |node: &str| HostStatus {
            node: node.into(),
            host: "h".into(),
            reachable: true,
            error: None,
            switch: true,
            subnet: "172.16.0.0/16".into(),
            docker_network: true,
            tunnels: vec![],
            last_applied: None,
            wireguard: vec![],
            drift: vec![],
        };
        let rows = [host("vm1"), host("vm2")];
        let with = text(|o| status_with_plan(o, &rows, &dual, true));
        let words = |l: &str| l.split_whitespace().map(String::from).collect::<Vec<_>>();
        assert_eq!(words(with.lines().next().unwrap())[4..7], ["SUBNET6", "SW0", "IPV6"], "{with}");
        assert_eq!(words(with.lines().nth(1).unwrap())[4..6], ["fd42:7:1:1::/64", "fd42:7:1::1/48"], "{with}");
        assert_eq!(text(|o| status_with_plan(o, &rows, &v4, true)), text(|o| status(o, &rows, true)));

        let c = |address6: Option<&str>| crate::commands::ps::MeshContainer {
            node: "vm1".into(),
            name: "web".into(),
            image: "busybox".into(),
            address: Some("172.16.0.2".into()),
            address6: address6.map(String::from),
            state: "running".into(),
            status: "Up".into(),
            names: vec![],
        };
        let listing = |cs| crate::commands::ps::Listing { containers: cs, failed: Default::default() };
        let listed = text(|o| ps(o, &listing(vec![c(Some("fd42:7:1:1::2"))])));
        assert!(listed.contains("ADDRESS6") && listed.contains("172.16.0.2  fd42:7:1:1::2  Up"), "{listed}");
        assert!(!text(|o| ps(o, &listing(vec![c(None)]))).contains("ADDRESS6"));
    }

    #[test]
    fn what_hosts_print_cannot_drive_the_terminal() {
        assert_eq!(terminal_safe("a\tb\nc\x1b[31md\u{202e}e\r"), "a\tb\nc\\u{1b}[31md\\u{202e}e\\r");
    }
}
