//! The laptop's own cost of `up` and `status` at 100, 1,000 and 3,000 hosts, measured on a simulated fleet: the
//! real commands (connect, gather, check, diff, apply, report) over hosts that answer from facts after a delay.
//!
//! `cargo bench --bench fleet -- [SIZES...] [--runs N] [--kinds ovs,wg] [--forks N] [--rtt-ms MS] [--no-record]`
//! (default: 100 1000 3000, 3 runs, both kinds, --forks 200, 20 ms). Without `--bench` (as `cargo test --benches`
//! runs it) it checks itself on small fleets without any delay. Any run whose second `up` changes something, or
//! whose `status` is not clean, stops the benchmark with an error: a broken run is never measured.

#[path = "fleet/facts_text.rs"]
mod facts_text;
#[path = "fleet/sim.rs"]
mod sim;
#[allow(dead_code)]
#[path = "../tests/it/simulate.rs"]
mod simulate;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use vxmesh::commands::{self, HostState};
use vxmesh::converge;
use vxmesh::facts::HostFacts;
use vxmesh::model::{inventory, ipam};
use vxmesh::plan::{self, ClusterPlan};
use vxmesh::remote::executor::Options;

#[path = "common/counting.rs"]
mod counting;
use counting::{LIVE, PEAK};

/// `struct rusage` on Linux: two timevals, then fourteen longs.
#[repr(C)]
#[derive(Default)]
struct Rusage {
    utime: [i64; 2],
    stime: [i64; 2],
    rest: [i64; 14],
}

unsafe extern "C" {
    fn getrusage(who: i32, usage: *mut Rusage) -> i32;
}

/// User + system CPU time of the whole process (every thread) so far.
fn cpu_time() -> Duration {
    let mut r = Rusage::default();
    // SAFETY: RUSAGE_SELF (0) and a buffer of the kernel's struct rusage layout.
    let rc = unsafe { getrusage(0, &mut r) };
    assert_eq!(rc, 0, "getrusage");
    let tv = |t: [i64; 2]| Duration::from_secs(t[0] as u64) + Duration::from_micros(t[1] as u64);
    tv(r.utime) + tv(r.stime)
}

/// Resets the kernel's peak RSS of this process (`VmHWM`), so each command's own peak can be read after it.
fn reset_hwm() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// `VmHWM` of /proc/self/status, in bytes.
fn hwm() -> usize {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// Open vSwitch hosts (the default cluster).
    Ovs,
    /// Kernel-backend hosts with `encryption: wireguard`.
    Wireguard,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Ovs => "ovs",
            Kind::Wireguard => "kernel + wireguard",
        }
    }
}

/// A generated inventory of `nodes` hosts (as benches/plan.rs makes them).
fn inventory_text(kind: Kind, nodes: usize) -> String {
    let mut y = String::from("cluster:\n  cidr: 10.0.0.0/8\n  node_prefix: 24\n  switch_cidr: 10.255.0.0/16\n");
    if kind == Kind::Wireguard {
        y.push_str("  backend: linux\n  encryption: wireguard\n");
    }
    y.push_str("nodes:\n");
    for i in 0..nodes {
        y.push_str(&format!("  - {{name: n{i}, host: 100.64.{}.{}}}\n", i / 250, i % 250 + 1));
    }
    y
}

fn plan_of(kind: Kind, nodes: usize) -> ClusterPlan {
    let inv = inventory::parse(Path::new("fleet.yaml"), &inventory_text(kind, nodes)).expect("valid inventory");
    let lock = ipam::assign(&inv, None).expect("allocates");
    plan::plan(&inv, &lock)
}

struct Args {
    sizes: Vec<usize>,
    runs: usize,
    kinds: Vec<Kind>,
    forks: usize,
    latency: sim::Latency,
    record: bool,
    breakdown: bool,
}

fn args() -> Args {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let benching = argv.iter().any(|a| a == "--bench");
    let mut a = Args {
        sizes: vec![],
        runs: 3,
        kinds: vec![Kind::Ovs, Kind::Wireguard],
        forks: 200,
        latency: sim::Latency::default(),
        record: true,
        breakdown: true,
    };
    if !benching {
        // `cargo test --benches`: check the simulation itself, small and without waiting.
        a.sizes = vec![3, 12];
        a.runs = 1;
        a.latency = sim::Latency::none();
        a.breakdown = false;
    }
    let mut it = argv.into_iter();
    while let Some(x) = it.next() {
        let mut value = |what: &str| it.next().unwrap_or_else(|| panic!("{what} needs a value"));
        match x.as_str() {
            "--bench" => {}
            "--runs" => a.runs = value("--runs").parse().expect("--runs N"),
            "--forks" => a.forks = value("--forks").parse().expect("--forks N"),
            "--rtt-ms" => a.latency.rtt = Duration::from_millis(value("--rtt-ms").parse().expect("--rtt-ms MS")),
            "--no-record" => a.record = false,
            "--no-breakdown" => a.breakdown = false,
            "--kinds" => {
                a.kinds = value("--kinds")
                    .split(',')
                    .map(|k| match k {
                        "ovs" => Kind::Ovs,
                        "wg" | "wireguard" => Kind::Wireguard,
                        other => panic!("unknown kind {other}: ovs or wg"),
                    })
                    .collect()
            }
            n if n.parse::<usize>().is_ok() => a.sizes.push(n.parse().unwrap()),
            other => panic!("unknown argument {other}"),
        }
    }
    if a.sizes.is_empty() {
        a.sizes = vec![100, 1_000, 3_000];
    }
    a
}

/// One command's cost.
#[derive(Clone, Copy, Default)]
struct Sample {
    wall: Duration,
    cpu: Duration,
    heap: usize,
    hwm: usize,
}

fn measure<T>(rt: &tokio::runtime::Runtime, f: impl Future<Output = T>) -> (T, Sample) {
    reset_hwm();
    PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
    let (t0, c0) = (Instant::now(), cpu_time());
    let out = rt.block_on(f);
    let s = Sample { wall: t0.elapsed(), cpu: cpu_time() - c0, heap: PEAK.load(Ordering::Relaxed), hwm: hwm() };
    (out, s)
}

/// A temporary directory, removed when dropped (also when a check fails and the benchmark unwinds).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let base = std::env::var_os("FLEET_TMP").map_or_else(std::env::temp_dir, PathBuf::from);
        let p = base.join(format!("vxmesh-fleet-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("makes a temporary directory");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn options(forks: usize, record: Option<PathBuf>) -> Options {
    Options {
        forks,
        policy: vxmesh::remote::ssh::HostKeyPolicy { known_hosts: "/nonexistent".into(), accept_new: false },
        timeouts: Default::default(),
        progress: false,
        stop: vxmesh::remote::interrupt::Stop::new(),
        limit: vec![],
        record,
        transcript: None,
    }
}

/// Stops the benchmark: a panic, so the temporary directories are removed on the way out.
fn fail(what: &str, detail: impl std::fmt::Display) -> ! {
    panic!("fleet: FAILED: {what}\n{detail}");
}

/// The three commands of one run, each checked: cold `up` builds every host, the second `up` changes nothing and
/// `status` is clean on every host.
fn one_run(
    rt: &tokio::runtime::Runtime,
    fleet: &Arc<sim::Fleet>,
    plan: &ClusterPlan,
    a: &Args,
    records: &Path,
    run: usize,
) -> [Sample; 3] {
    let n = plan.nodes.len();
    let connector = sim::Connector::new(fleet.clone());
    let c = &fleet.counts;
    fleet.reset();
    let record = |what: &str| a.record.then(|| records.join(format!("{run}-{what}")));
    let opts = options(a.forks, record("cold"));
    if let Some(d) = &opts.record {
        std::fs::create_dir_all(d).expect("record directory");
    }
    let mut sink: Vec<u8> = vec![];
    let (cold, s_cold) = measure(rt, async {
        let o = commands::up::run_with(&connector, plan, &opts, None, &|_| {}).await;
        vxmesh::report::summary(&mut sink, &o.hosts, "changed");
        o
    });
    let changed = cold.hosts.iter().filter(|h| h.status == HostState::Changed).count();
    if !cold.ok || changed != n || fleet.converged() != n || c.applies.load(Ordering::Relaxed) != n {
        let failed: Vec<String> =
            cold.hosts.iter().filter(|h| h.failed()).take(5).map(|h| format!("{}: {:?}", h.node, h.error)).collect();
        fail(&format!("cold up: {changed} of {n} hosts changed, {} converged", fleet.converged()), failed.join("\n"));
    }
    fleet.zero();
    let opts = options(a.forks, record("noop"));
    if let Some(d) = &opts.record {
        std::fs::create_dir_all(d).expect("record directory");
    }
    sink.clear();
    let (noop, s_noop) = measure(rt, async {
        let o = commands::up::run_with(&connector, plan, &opts, None, &|_| {}).await;
        vxmesh::report::summary(&mut sink, &o.hosts, "changed");
        o
    });
    let not_ok: Vec<String> = noop
        .hosts
        .iter()
        .filter(|h| h.status != HostState::Ok || !h.changed.is_empty())
        .take(5)
        .map(|h| format!("{} {}: {:?} {:?}", h.node, h.status.word(), h.changed, h.error))
        .collect();
    if !noop.ok || !not_ok.is_empty() || c.applies.load(Ordering::Relaxed) != 0 {
        fail("the second up is not a no-op", not_ok.join("\n"));
    }
    sink.clear();
    let opts = options(a.forks, None);
    let (rows, s_status) = measure(rt, async {
        let rows = commands::status::run_with(&connector, plan, &opts).await;
        let clean = rows.iter().all(|r| r.clean());
        vxmesh::report::status(&mut sink, &rows, clean);
        rows
    });
    let unclean: Vec<String> = rows
        .iter()
        .filter(|r| !r.clean())
        .take(5)
        .map(|r| {
            let down: Vec<_> =
                r.tunnels.iter().filter(|t| !t.present || t.state.as_deref() != Some("up")).take(3).collect();
            let wg: Vec<_> = r.wireguard.iter().filter(|w| !w.present).take(3).collect();
            format!("{}: error {:?}, drift {:?}, tunnels {down:?}, wireguard {wg:?}", r.node, r.error, r.drift)
        })
        .collect();
    if rows.len() != n || !unclean.is_empty() {
        fail("status is not clean", unclean.join("\n"));
    }
    [s_cold, s_noop, s_status]
}

fn mib(b: usize) -> f64 {
    b as f64 / (1 << 20) as f64
}

/// `min / median / max`.
fn spread(mut v: Vec<f64>, unit: &str, digits: usize) -> String {
    v.sort_by(f64::total_cmp);
    let f = |x: f64| format!("{x:.digits$}");
    format!("{} / {} / {} {unit}", f(v[0]), f(v[v.len() / 2]), f(v[v.len() - 1]))
}

/// CPU of each stage of the laptop's work, measured alone over the same hosts (one thread): the parts `up` and
/// `status` are made of, without the waiting.
fn breakdown(plan_time: Duration, plan: &ClusterPlan, fleet_dir: &Path) {
    let template = sim::bare_template();
    let time = |f: &mut dyn FnMut()| {
        let (t, c) = (Instant::now(), cpu_time());
        f();
        (t.elapsed(), cpu_time() - c)
    };
    let nodes = &plan.nodes;
    let cold_texts: Vec<String> =
        nodes.iter().map(|n| template.replace("192.168.122.81", &n.underlay.to_string())).collect();
    let mut cold: Vec<HostFacts> = vec![];
    let parse_cold = time(&mut || {
        cold = nodes.iter().zip(&cold_texts).map(|(n, t)| converge::parse_for(n, t).expect("parses")).collect();
    });
    drop(cold_texts);
    let mut steps = 0;
    let diff_cold = time(&mut || {
        steps = nodes.iter().zip(&cold).map(|(n, f)| converge::script(n, &converge::diff(n, f)).len()).sum::<usize>();
    });
    let checks = time(&mut || {
        let facts: Vec<(&vxmesh::plan::NodePlan, &HostFacts)> = nodes.iter().zip(&cold).collect();
        assert!(converge::fleet_problems(plan, &facts).is_empty());
    });
    drop(cold);
    let mut bytes = 0;
    let mut parse_conv = (Duration::ZERO, Duration::ZERO);
    let mut diff_conv = (Duration::ZERO, Duration::ZERO);
    for n in nodes {
        let text = std::fs::read_to_string(fleet_dir.join(&n.name)).expect("converged facts");
        bytes += text.len();
        let mut f = HostFacts::default();
        let (w, c) = time(&mut || f = converge::parse_for(n, &text).expect("parses"));
        parse_conv = (parse_conv.0 + w, parse_conv.1 + c);
        let (w, c) = time(&mut || {
            let _ = converge::diff(n, &f);
        });
        diff_conv = (diff_conv.0 + w, diff_conv.1 + c);
    }
    let row = |what: &str, (w, c): (Duration, Duration)| {
        println!("| {what} | {:.3} s | {:.3} s |", w.as_secs_f64(), c.as_secs_f64());
    };
    println!("\n| stage (alone, one thread) | wall | CPU |\n|---|---:|---:|");
    row("plan the cluster", (plan_time, plan_time));
    row("parse every cold host's facts", parse_cold);
    row("diff + render every cold host's script", diff_cold);
    row("check every host against the fleet (fleet_problems)", checks);
    row(&format!("parse every converged host's facts ({:.0} MiB)", mib(bytes)), parse_conv);
    row("diff every converged host (no-op up, status)", diff_conv);
    println!("(cold scripts: {:.1} MiB in all)", mib(steps));
}

/// One russh handshake and `true` run over it, `count` times, against a real sshd (bench/handshake.sh starts one):
/// `--handshake HOST:PORT USER IDENTITY KNOWN_HOSTS COUNT`. Host keys are checked as the CLI checks them.
fn handshake(argv: &[String]) {
    let [addr, user, identity, known_hosts, count] = argv else {
        fail("--handshake", "usage: --handshake HOST:PORT USER IDENTITY KNOWN_HOSTS COUNT");
    };
    let (host, port) = addr.rsplit_once(':').expect("HOST:PORT");
    let target = vxmesh::remote::ssh::Target {
        host: host.to_string(),
        port: port.parse().expect("a port"),
        user: user.clone(),
        identity_files: vec![identity.into()],
        jumps: vec![],
        proxy_command: None,
        known_hosts: known_hosts.into(),
        sudo: false,
    };
    let policy = vxmesh::remote::ssh::HostKeyPolicy { known_hosts: known_hosts.into(), accept_new: false };
    let timeouts = vxmesh::remote::ssh::Timeouts::default();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    let (mut connect, mut exec, mut total, mut cpu) = (vec![], vec![], vec![], vec![]);
    for _ in 0..count.parse::<usize>().expect("COUNT") {
        let (t0, c0) = (Instant::now(), cpu_time());
        let session = rt
            .block_on(vxmesh::remote::ssh::connect(&target, &policy, &timeouts))
            .unwrap_or_else(|e| fail("handshake", e));
        let t1 = Instant::now();
        let out = rt.block_on(session.run("true\n")).unwrap_or_else(|e| fail("exec of true", e));
        assert_eq!(out.code, 0, "true exits 0: {out:?}");
        let t2 = Instant::now();
        let c1 = cpu_time();
        rt.block_on(session.close());
        connect.push((t1 - t0).as_secs_f64() * 1e3);
        exec.push((t2 - t1).as_secs_f64() * 1e3);
        total.push((t2 - t0).as_secs_f64() * 1e3);
        cpu.push((c1 - c0).as_secs_f64() * 1e3);
    }
    println!("| russh on loopback, {} times | min / median / max |\n|---|---:|", total.len());
    println!("| handshake (TCP, key exchange, host key checked, public key auth) | {} |", spread(connect, "ms", 2));
    println!("| exec of `true` (channel, `sh -s`, exit status) | {} |", spread(exec, "ms", 2));
    println!("| both | {} |", spread(total, "ms", 2));
    println!("| laptop CPU for both (this process) | {} |", spread(cpu, "ms", 2));
}

fn main() {
    let argv: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    if let Some(i) = argv.iter().position(|a| a == "--handshake") {
        return handshake(&argv[i + 1..argv.len().min(i + 6)]);
    }
    let a = args();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    println!(
        "fleet: sizes {:?}, {} run(s), --forks {}, {} ms per round trip ({} to connect, {} per script), host time \
         {} / {} / {} ms (facts / cold apply / other), run record {}",
        a.sizes,
        a.runs,
        a.forks,
        a.latency.rtt.as_millis(),
        a.latency.connect_rtts,
        a.latency.script_rtts,
        a.latency.gather.as_millis(),
        a.latency.apply.as_millis(),
        a.latency.other.as_millis(),
        if a.record { "on (as the CLI writes it for up)" } else { "off" },
    );
    println!(
        "\n| hosts | kind | command | wall (min / median / max) | CPU | peak heap | peak RSS (VmHWM) |\n|---:|---|---|---:|---:|---:|---:|"
    );
    for &kind in &a.kinds {
        for &n in &a.sizes {
            let t = Instant::now();
            let plan = plan_of(kind, n);
            let plan_time = t.elapsed();
            let dir = TempDir::new(&format!("{}-{n}", kind.label().replace(' ', "")));
            let facts_dir = dir.0.join("facts");
            let records = dir.0.join("records");
            std::fs::create_dir_all(&facts_dir).expect("facts directory");
            let t = Instant::now();
            let fleet = Arc::new(sim::Fleet::build(&plan, &facts_dir, a.latency, threads));
            let built = t.elapsed();
            let mut samples: Vec<[Sample; 3]> = vec![];
            for run in 0..a.runs {
                samples.push(one_run(&rt, &fleet, &plan, &a, &records, run));
                let _ = std::fs::remove_dir_all(&records);
            }
            for (i, what) in ["cold up", "no-op up", "status"].iter().enumerate() {
                let col = |f: &dyn Fn(&Sample) -> f64| samples.iter().map(|s| f(&s[i])).collect::<Vec<f64>>();
                println!(
                    "| {n} | {} | {what} | {} | {} | {} | {} |",
                    kind.label(),
                    spread(col(&|s| s.wall.as_secs_f64()), "s", 2),
                    spread(col(&|s| s.cpu.as_secs_f64()), "s", 2),
                    spread(col(&|s| mib(s.heap)), "MiB", 0),
                    spread(col(&|s| mib(s.hwm)), "MiB", 0),
                );
            }
            eprintln!(
                "fleet: {n} {} hosts: converged facts made in {:.1} s (not measured)",
                kind.label(),
                built.as_secs_f64()
            );
            if a.breakdown {
                breakdown(plan_time, &plan, &facts_dir);
                println!(
                    "\n| hosts | kind | command | wall (min / median / max) | CPU | peak heap | peak RSS (VmHWM) |\n|---:|---|---|---:|---:|---:|---:|"
                );
            }
        }
    }
    println!("fleet: every run checked: cold up changed every host, the second up changed none, status clean");
}
