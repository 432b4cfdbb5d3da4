//! Changes -> shell. One renderer serves `render`, `plan --offline` and `up`: what an admin reads is what runs.

use std::fmt::Write as _;

use serde::Serialize;

use crate::diff::{Change, Mtu, OwnedChain, Step, docker_options};
use crate::plan::NodePlan;

/// One command: an `ovs-vsctl` sub-command (merged with its neighbours into one transaction) or plain shell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// The arguments of one `ovs-vsctl` command, e.g. `--may-exist add-br sw0`.
    Ovs(String),
    Sh(String),
}

impl Command {
    /// The command as it would run on its own.
    pub fn to_shell(&self) -> String {
        match self {
            Command::Ovs(args) => format!("ovs-vsctl {args}"),
            Command::Sh(s) => s.clone(),
        }
    }
}

fn mtu(m: Mtu) -> String {
    match m {
        Mtu::Value(v) => v.to_string(),
        Mtu::Detect => "\"$MTU\"".to_string(),
    }
}

fn ovs(args: impl Into<String>) -> Command {
    Command::Ovs(args.into())
}

fn sh(s: impl Into<String>) -> Command {
    Command::Sh(s.into())
}

/// The end marker of every here-document the scripts use.
const EOF_MARK: &str = "VXMESH_EOF";

/// The commands of one change. Every command is safe to run again.
pub fn commands(change: &Change) -> Vec<Command> {
    match change {
        Change::Sysctl(s) => vec![sh(format!("sysctl -qw {}={}", s.key, s.value))],
        Change::CreateVeth { switch_end: a, docker_end: b, mtu: m } => vec![sh(format!(
            "if ! {{ ip link show dev {a} && ip link show dev {b}; }} >/dev/null 2>&1; then\n  ip link del {a} 2>/dev/null || true\n  ip link del {b} 2>/dev/null || true\n  ip link add {a} mtu {m} type veth peer name {b} mtu {m}\nfi",
            m = mtu(*m)
        ))],
        Change::LinkMtu { dev, mtu: m } => {
            vec![sh(format!("ip link set dev {dev} mtu {}", mtu(*m)))]
        }
        Change::LinkUp { dev } => vec![sh(format!("ip link set dev {dev} up"))],
        Change::TxOffloadOff { dev } => vec![sh(format!("ethtool -K {dev} tx off >/dev/null"))],
        Change::Bridge { bridge, datapath, mtu: m } => {
            let v = vec![
                ovs(format!("--may-exist add-br {bridge}")),
                ovs(format!("set bridge {bridge} datapath_type={}", datapath.as_str())),
                ovs(format!("set interface {bridge} mtu_request={}", mtu(*m))),
            ];
            v
        }
        Change::Tunnel { bridge, tunnel: t, vni, port, repair } => {
            let mut v = Vec::with_capacity(3);
            if repair.is_empty() {
                v.push(ovs(format!("--may-exist add-port {bridge} {}", t.port)));
            }
            v.push(ovs(format!(
                "set interface {p} type=vxlan options:remote_ip={ip} options:key={vni} options:dst_port={port} bfd:enable={bfd} bfd:min_tx={ms} bfd:min_rx={ms}",
                ms = crate::names::BFD_INTERVAL_MS,
                p = t.port,
                ip = t.remote_ip,
                bfd = t.bfd
            )));
            v.push(ovs(format!("set port {} protected={}", t.port, t.protected)));
            v
        }
        Change::RemoveTunnel { bridge, port } => {
            vec![ovs(format!("--if-exists del-port {bridge} {port}"))]
        }
        Change::AttachPort { bridge, port } => {
            vec![ovs(format!("--may-exist add-port {bridge} {port}"))]
        }
        Change::SwitchAddress { dev, address, stale } => {
            let mut v: Vec<Command> =
                stale.iter().map(|s| sh(format!("ip addr del {s} dev {dev} 2>/dev/null || true"))).collect();
            v.push(sh(format!("ip addr replace {address} dev {dev}")));
            v
        }
        Change::DockerNetwork { spec, mtu: m, recreate } => {
            let mut v = vec![];
            if recreate.is_some() {
                v.push(sh(format!("docker network rm {} >/dev/null", spec.network)));
            }
            let opts: String =
                docker_options(spec, *m).iter().map(|(k, val)| format!(" \\\n    -o {k}={val}")).collect();
            let opts = opts.replace("=$MTU", "=\"$MTU\"");
            v.push(sh(format!(
                "docker network inspect {n} >/dev/null 2>&1 || docker network create --driver bridge \\\n    --subnet {s} --gateway {g}{opts} \\\n    {n} >/dev/null",
                n = spec.network,
                s = spec.subnet,
                g = spec.gateway
            )));
            v
        }
        Change::DockerDaemon { bip, mtu: m, content, guard_existing } => {
            docker_daemon(*bip, *m, content, *guard_existing)
        }
        Change::Enslave { dev, master } => {
            vec![sh(format!("ip link set dev {dev} master {master}"))]
        }
        Change::IptablesChain(c) => iptables_chain(c),
        Change::NftTable { port, peers } => {
            let elements = if peers.is_empty() {
                String::new()
            } else {
                let list: Vec<String> = peers.iter().map(|p| p.to_string()).collect();
                format!(" elements = {{ {} }};", list.join(", "))
            };
            let t = crate::names::NFT_TABLE;
            vec![sh(format!(
                "nft -f - <<'{EOF_MARK}'\ntable inet {t}\ndelete table inet {t}\ntable inet {t} {{\n  set peers {{ type ipv4_addr;{elements} }}\n  chain input {{\n    type filter hook input priority filter - 10; policy accept;\n    udp dport {port} ip saddr != @peers counter drop comment \"{tag}\"\n  }}\n}}\n{EOF_MARK}",
                tag = crate::names::RULE_TAG
            ))]
        }
        Change::BootUnit { script, unit } => boot_unit(script, unit),
        Change::Blocked { reason } => {
            vec![sh(format!("echo {} >&2\nexit 1", shell_quote(&format!("vxmesh: {reason}"))))]
        }
        Change::Firewalld { add, remove } => {
            let mut v: Vec<Command> =
                add.iter().map(|r| sh(format!("firewall-cmd --quiet --permanent --add-rich-rule='{r}'"))).collect();
            v.extend(remove.iter().map(|r| sh(format!("firewall-cmd --quiet --permanent --remove-rich-rule='{r}'"))));
            v.push(sh("firewall-cmd --quiet --reload"));
            v
        }
    }
}

/// The chain's content replaced in one iptables-restore transaction, then exactly one jump to it, placed first.
fn iptables_chain(c: &OwnedChain) -> Vec<Command> {
    let mut restore = format!("iptables-restore --noflush <<'{EOF_MARK}'\n*{}\n:{} - [0:0]\n", c.table, c.chain);
    for r in &c.rules {
        let _ = writeln!(restore, "-A {} {r}", c.chain);
    }
    let _ = write!(restore, "COMMIT\n{EOF_MARK}");
    let mut v = vec![sh(restore)];
    for p in std::iter::once(&c.parent).chain(&c.former_parents) {
        v.push(sh(format!("while iptables -w -t {t} -D {p} {j} 2>/dev/null; do :; done", t = c.table, j = c.jump)));
    }
    if c.parent_at_runtime {
        v.push(sh(format!(
            "# docker keeps DOCKER-USER first in FORWARD across restarts: allow the mesh there when docker manages iptables.\n\
             if iptables -w -t {t} -n -L {du} >/dev/null 2>&1; then parent={du}; else parent={p}; fi\n\
             iptables -w -t {t} -I \"$parent\" 1 {j}",
            t = c.table,
            du = crate::diff::DOCKER_USER,
            p = c.parent,
            j = c.jump
        )));
    } else {
        v.push(sh(format!("iptables -w -t {} -I {} 1 {}", c.table, c.parent, c.jump)));
    }
    v
}

fn docker_daemon(bip: ipnet::Ipv4Net, m: Mtu, content: &str, guard_existing: bool) -> Vec<Command> {
    let path = "/etc/docker/daemon.json";
    let mut v = vec![];
    if guard_existing {
        // Without the host's file in hand, never overwrite one: the admin's keys would be lost.
        v.push(sh(format!(
            "if [ -s {path} ] && ! grep -q '\"bip\": \"{bip}\"' {path}; then\n  echo \"vxmesh: {path} exists; add \\\"bip\\\": \\\"{bip}\\\" to it by hand, or run vxmesh up, which merges\" >&2\n  exit 1\nfi"
        )));
    }
    // A quoted here-document keeps the admin's JSON literal; only the offline `mtu: auto` script needs expansion.
    let (quote, body) = match m {
        Mtu::Detect => ("", content.replace(&format!("\"{}\"", crate::docker_daemon::MTU_PLACEHOLDER), "$MTU")),
        Mtu::Value(_) => ("'", content.to_string()),
    };
    v.push(sh(format!("mkdir -p /etc/docker\ncat > {path}.vxmesh <<{quote}{EOF_MARK}{quote}\n{body}{EOF_MARK}\nmv {path}.vxmesh {path}")));
    // Restarting docker without live-restore would stop every container on the host: leave that to the admin.
    v.push(sh(format!(
        "if grep -q '\"live-restore\": *true' {path}; then\n  systemctl restart docker\n  \
         ip -4 -o addr show dev docker0 | grep -q ' {bip} ' || {{ echo \"vxmesh: docker restarted but kept docker0's old address: it applies bip {bip} only when no container is on its default network (live-restore keeps running ones on the old one). Stop the containers on docker0, restart docker, then run vxmesh up again\" >&2; exit 1; }}\nelse\n  echo \"vxmesh: {path} now has bip {bip}; restart docker to apply it (this stops running containers; with \\\"live-restore\\\": true they survive), then run vxmesh up again\" >&2\n  exit 1\nfi"
    )));
    v
}

/// Writes the boot files atomically and enables the unit (by its link, so it works without a running systemd).
fn boot_unit(script: &str, unit: &str) -> Vec<Command> {
    use crate::boot::{SCRIPT_PATH, UNIT_PATH, WANTS_LINK};
    let mark = "VXMESH_BOOT_EOF";
    vec![
        sh(format!(
            "mkdir -p /etc/vxmesh /etc/systemd/system/multi-user.target.wants\ncat > {SCRIPT_PATH}.new <<'{mark}'\n{script}{mark}\nchmod 755 {SCRIPT_PATH}.new\nmv {SCRIPT_PATH}.new {SCRIPT_PATH}"
        )),
        sh(format!(
            "cat > {UNIT_PATH}.new <<'{mark}'\n{unit}{mark}\nmv {UNIT_PATH}.new {UNIT_PATH}\nln -sf {UNIT_PATH} {WANTS_LINK}"
        )),
        sh("if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi"),
    ]
}

/// Applies the changes' commands in order, merging neighbouring OVS commands into one `ovs-vsctl` transaction.
pub struct ScriptGroup<'a> {
    pub steps: Vec<&'a Step>,
    pub commands: Vec<Command>,
    /// Only `ovs-vsctl` commands so far: the group can take more OVS steps.
    ovs_only: bool,
}

/// Groups steps so that consecutive OVS-only steps share one transaction.
pub fn group(steps: &[Step]) -> Vec<ScriptGroup<'_>> {
    let mut out: Vec<ScriptGroup> = vec![];
    for s in steps {
        let cmds = commands(&s.change);
        let all_ovs = cmds.iter().all(|c| matches!(c, Command::Ovs(_)));
        match out.last_mut() {
            Some(g) if all_ovs && g.ovs_only => {
                g.steps.push(s);
                g.commands.extend(cmds);
            }
            _ => out.push(ScriptGroup { steps: vec![s], commands: cmds, ovs_only: all_ovs }),
        }
    }
    out
}

/// A POSIX shell script that applies `steps` to `node`; runnable by hand, and what `up` sends.
pub fn script(node: &NodePlan, steps: &[Step]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "#!/bin/sh");
    let _ = writeln!(
        out,
        "# vxmesh {}: node `{}` of cluster `{}`, {} step(s). Safe to run again: each command checks or replaces.",
        env!("CARGO_PKG_VERSION"),
        node.name,
        node.cluster,
        steps.len()
    );
    let _ = writeln!(out, "set -eu\nexport PATH=\"$PATH:/usr/sbin:/sbin\"");
    let _ = writeln!(out, "step() {{ printf '### vxmesh-step %s %s\\n' \"$1\" \"$2\" >&2; }}");
    if steps.iter().any(|s| uses_detected_mtu(&s.change)) {
        let _ = writeln!(
            out,
            "# mtu: auto = the underlay device's MTU minus 50 bytes of VXLAN headers.\nUNDERLAY_IP={ip}\nUNDERLAY_DEV=$(ip -o -4 addr show | awk -v ip=\"$UNDERLAY_IP\" '{{split($4, a, \"/\"); if (a[1] == ip) {{print $2; exit}}}}')\n[ -n \"$UNDERLAY_DEV\" ] || {{ echo \"vxmesh: no device on this host has $UNDERLAY_IP (underlay_ip of {name})\" >&2; exit 1; }}\nMTU=$(( $(cat /sys/class/net/\"$UNDERLAY_DEV\"/mtu) - {overhead} ))",
            ip = node.underlay_ip,
            name = node.name,
            overhead = crate::inventory::VXLAN_OVERHEAD
        );
    }
    let total = steps.len();
    let mut n = 0;
    for g in group(steps) {
        n += g.steps.len();
        out.push('\n');
        if g.steps.len() == 1 {
            let _ = writeln!(out, "# [{n}/{total}] {}", g.steps[0].description);
            let _ = writeln!(out, "step {n} {}", shell_quote(&g.steps[0].description));
        } else {
            let first = n + 1 - g.steps.len();
            let _ = writeln!(out, "# [{first}-{n}/{total}] one OVS transaction:");
            for s in &g.steps {
                let _ = writeln!(out, "#   - {}", s.description);
            }
            let _ = writeln!(out, "step {n} {}", shell_quote(&format!("OVS transaction of {} changes", g.steps.len())));
        }
        let mut ovs_args: Vec<&String> = vec![];
        for c in &g.commands {
            match c {
                Command::Ovs(a) => ovs_args.push(a),
                Command::Sh(s) => {
                    flush_ovs(&mut out, &mut ovs_args);
                    let _ = writeln!(out, "{s}");
                }
            }
        }
        flush_ovs(&mut out, &mut ovs_args);
    }
    let _ = writeln!(out, "\nstep done {}", shell_quote("all steps applied"));
    out
}

fn flush_ovs(out: &mut String, pending: &mut Vec<&String>) {
    match pending.len() {
        0 => {}
        1 => {
            let _ = writeln!(out, "ovs-vsctl {}", pending[0]);
        }
        _ => {
            out.push_str("ovs-vsctl");
            for a in pending.iter() {
                let _ = write!(out, " \\\n  -- {a}");
            }
            out.push('\n');
        }
    }
    pending.clear();
}

fn uses_detected_mtu(c: &Change) -> bool {
    matches!(
        c,
        Change::CreateVeth { mtu: Mtu::Detect, .. }
            | Change::LinkMtu { mtu: Mtu::Detect, .. }
            | Change::Bridge { mtu: Mtu::Detect, .. }
            | Change::DockerNetwork { mtu: Mtu::Detect, .. }
            | Change::DockerDaemon { mtu: Mtu::Detect, .. }
    )
}

/// Single-quotes a word for POSIX sh.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Removes everything vxmesh made on a node; docker, OVS and the admin's own settings stay. Safe to run again.
pub fn teardown_script(node: &NodePlan) -> String {
    let mut out = String::from(
        "#!/bin/sh\n# vxmesh teardown: removes the mesh from this host, nothing else.\nexport PATH=\"$PATH:/usr/sbin:/sbin\"\n",
    );
    let _ = writeln!(out, "ovs-vsctl --if-exists del-br {}", node.switch.bridge);
    let _ = writeln!(out, "ip link del {} 2>/dev/null || true", node.veth.switch_end);
    if node.docker.mode == crate::inventory::DockerMode::Network {
        let _ = writeln!(
            out,
            "if docker network inspect {n} >/dev/null 2>&1; then\n  docker network rm {n} >/dev/null || {{ echo \"vxmesh: docker network {n} still has containers; remove them, then run down again\" >&2; exit 1; }}\nfi",
            n = node.docker.network
        );
    }
    for (table, parents, chain) in [
        ("nat", &["POSTROUTING"][..], crate::names::NAT_CHAIN),
        ("filter", &["FORWARD", crate::diff::DOCKER_USER][..], crate::names::FORWARD_CHAIN),
        ("filter", &["INPUT"][..], crate::names::VXLAN_CHAIN),
    ] {
        for parent in parents {
            let _ = writeln!(
                out,
                "iptables-save -t {table} 2>/dev/null | sed -n 's/^-A {parent} \\(.*-j {chain}\\)$/\\1/p' | while read -r rule; do eval \"iptables -w -t {table} -D {parent} $rule\"; done"
            );
        }
        let _ = writeln!(
            out,
            "iptables -w -t {table} -F {chain} 2>/dev/null || true\niptables -w -t {table} -X {chain} 2>/dev/null || true"
        );
    }
    let _ = writeln!(
        out,
        "command -v nft >/dev/null 2>&1 && nft delete table inet {} 2>/dev/null || true",
        crate::names::NFT_TABLE
    );
    let _ = writeln!(
        out,
        "if command -v firewall-cmd >/dev/null 2>&1 && firewall-cmd --state >/dev/null 2>&1; then\n  \
         firewall-cmd --list-rich-rules | grep 'port port=\"{port}\" protocol=\"udp\" accept' | while read -r r; do firewall-cmd --quiet --permanent --remove-rich-rule=\"$r\"; done\n  \
         firewall-cmd --quiet --reload\nfi",
        port = node.firewall.port
    );
    let _ = writeln!(
        out,
        "rm -f {} {} {}\nrmdir /etc/vxmesh 2>/dev/null || true\nif [ -d /run/systemd/system ]; then systemctl daemon-reload; fi",
        crate::boot::WANTS_LINK,
        crate::boot::UNIT_PATH,
        crate::boot::SCRIPT_PATH
    );
    out.push_str("exit 0\n");
    out
}
