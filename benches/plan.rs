//! Planning benchmark: address plan and full mesh plan at 100 / 1,000 / 10,000 nodes, with peak heap.
//! Run with `cargo bench --bench plan`; numbers go to docs/benchmarks.md.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use vxmesh::converge;
use vxmesh::facts::HostFacts;
use vxmesh::model::{inventory, ipam};
use vxmesh::plan;

#[path = "common/counting.rs"]
mod counting;
use counting::{LIVE, PEAK};

fn inventory_text(nodes: usize) -> String {
    let mut y = String::from("cluster:\n  cidr: 10.0.0.0/8\n  node_prefix: 24\n  switch_cidr: 10.255.0.0/16\nnodes:\n");
    for i in 0..nodes {
        y.push_str(&format!("  - {{name: n{i}, host: 100.64.{}.{}}}\n", i / 250, i % 250 + 1));
    }
    y
}

/// Median wall time of `runs` runs, and the peak heap above what was live before.
fn measure<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, usize) {
    let mut times = vec![];
    let mut peak = 0;
    for _ in 0..runs {
        let base = LIVE.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        let t = Instant::now();
        let out = f();
        times.push(t.elapsed());
        peak = peak.max(PEAK.load(Ordering::Relaxed) - base);
        drop(out);
    }
    times.sort();
    (times[times.len() / 2], peak)
}

fn row(what: &str, (t, peak): (Duration, usize)) {
    println!("| {what:<44} | {:>10.1} ms | {:>9.1} MiB |", t.as_secs_f64() * 1e3, peak as f64 / (1 << 20) as f64);
}

fn main() {
    println!("| what | median | peak heap |\n|---|---:|---:|");
    for n in [100usize, 1_000, 10_000] {
        let text = inventory_text(n);
        let runs = if n >= 10_000 { 5 } else { 11 };
        row(
            &format!("parse + validate inventory, {n} nodes"),
            measure(runs, || inventory::parse(Path::new("b.yaml"), &text).unwrap()),
        );
        let inv = inventory::parse(Path::new("b.yaml"), &text).unwrap();
        row(&format!("address plan, {n} nodes"), measure(runs, || ipam::assign(&inv, None).unwrap()));
        let lock = ipam::assign(&inv, None).unwrap();
        row(
            &format!("address plan with a full lock, {n} nodes"),
            measure(runs, || ipam::assign(&inv, Some(&lock)).unwrap()),
        );
        if n > 1_000 {
            continue;
        }
        row(&format!("mesh plan ({} tunnel ports), {n} nodes", n * (n - 1)), measure(runs, || plan::plan(&inv, &lock)));
        let p = plan::plan(&inv, &lock);
        row(
            &format!("offline diff alone, {n} nodes"),
            measure(3, || p.nodes.iter().map(|node| converge::diff(node, &HostFacts::default()).len()).sum::<usize>()),
        );
        row(
            &format!("offline diff + scripts, {n} nodes"),
            measure(3, || {
                p.nodes
                    .iter()
                    .map(|node| converge::script(node, &converge::diff(node, &HostFacts::default())).len())
                    .sum::<usize>()
            }),
        );
    }
}
