//! Proves the mesh with containers: a listener on every host, a client on every host talking to every peer's
//! listener (no NAT: the listener reports the source it saw), full-size packets with don't-fragment, the
//! switches, and the outside world. Temporary containers are always removed.
//! [`scripts`] writes what runs on the hosts, [`run`] runs it, [`assemble`] reads what they printed.

pub mod assemble;
pub mod names;
pub mod run;
pub mod scripts;

pub use assemble::{assemble, parse_bandwidth};
pub use run::{cleanup, verify};

use std::net::{Ipv4Addr, Ipv6Addr};

use serde::Serialize;

/// Peers by name with the address to probe.
type Named = Vec<(String, Ipv4Addr)>;

/// Peers by name with the IPv6 address to probe (dual-stack containers).
pub type Named6 = Vec<(String, Ipv6Addr)>;

/// With dual-stack containers (`cluster.cidr6`), what a host's client probes over IPv6 besides IPv4: each
/// target's listener at its container's IPv6 address, and the peers' switches at their sw0 IPv6 addresses.
#[derive(Debug, Clone, Default)]
pub struct Probes6 {
    pub targets: Named6,
    pub switches: Named6,
}

/// TCP port the listeners serve on, inside the mesh network only.
pub const LISTEN_PORT: u16 = 7777;

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Test only this many ordered pairs, spread over the cluster.
    pub sample: Option<usize>,
    /// Test only the pairs that involve this node (after `add-node`).
    pub only: Option<String>,
    /// Also measure TCP throughput with iperf3, container to container and host to host, around a ring of hosts.
    pub bandwidth: bool,
    pub outside: Option<Ipv4Addr>,
    pub image: String,
}

impl VerifyOptions {
    /// The ordered pairs this verification tests: all, a spread sample, or those involving `only`.
    pub fn pairs(&self, names: &[String]) -> Vec<(String, String)> {
        let mut wanted = pairs(names, self.sample);
        if let Some(n) = &self.only {
            wanted.retain(|(a, b)| a == n || b == n);
        }
        wanted
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Pair {
    pub from: String,
    pub to: String,
    pub ok: bool,
    pub rtt_ms: Option<f64>,
    /// The client container's own address, and the source address the listener saw: equal means no NAT.
    pub client: Option<String>,
    pub seen_source: Option<String>,
    /// A packet of exactly the overlay MTU with don't-fragment set got through (None: not checked).
    pub full_size: Option<bool>,
    /// One byte more was refused at the sender, not silently lost (None: not checked).
    pub oversize_refused: Option<bool>,
    /// How many fetches it took (a second one is allowed, and reported: a busy host may drop a first SYN).
    pub tries: Option<u32>,
    /// With names on (`cluster.dns`): the peer's container was found by both its names and answered by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub names: Option<bool>,
    /// With more than one site: the pair's path (`private`, `public`, `relay via NODE`), as `plan` shows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// With dual-stack containers: the same checks over IPv6. The fields above are IPv4's; `ok` and `error`
    /// cover both families (a pair passes only if both do, and `error` names the family that failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Family>,
    pub error: Option<String>,
}

/// One family's checks of a pair: the listener answered, saw the client's own address (no NAT), and the
/// don't-fragment probes at the overlay MTU passed and one byte more was refused at the sender.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Family {
    pub ok: bool,
    pub rtt_ms: Option<f64>,
    pub client: Option<String>,
    pub seen_source: Option<String>,
    pub full_size: Option<bool>,
    pub oversize_refused: Option<bool>,
    pub tries: Option<u32>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostCheck {
    pub node: String,
    pub ok: bool,
    pub mtu: Option<u32>,
    /// Peers whose switch (sw0) address this host's container could not reach.
    pub unreachable_switches: Vec<String>,
    /// Peers whose switch answered only the second ping: passed, and reported so a flaky link shows.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub switches_on_second_try: Vec<String>,
    /// With dual-stack containers: the same for the switches' IPv6 addresses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreachable_switches6: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub switches6_on_second_try: Vec<String>,
    pub outside: Option<bool>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ok: bool,
    pub pairs: Vec<Pair>,
    pub hosts: Vec<HostCheck>,
    pub outside: Option<Ipv4Addr>,
    pub seconds: f64,
    /// With `--bandwidth`: one row per ring pair.
    pub bandwidth: Vec<Bandwidth>,
    /// Every host's client removed its container when done: no cleanup round trip is needed.
    #[serde(skip)]
    pub containers_removed: bool,
}

/// Throughput and latency over the mesh next to the same between the hosts themselves.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Bandwidth {
    pub from: String,
    pub to: String,
    pub overlay_mbps: Option<f64>,
    pub underlay_mbps: Option<f64>,
    pub overlay_rtt_ms: Option<f64>,
    pub underlay_rtt_ms: Option<f64>,
    /// TCP's maximum segment size on the overlay: MTU - 40 - 12 (timestamps) means full-size segments.
    pub mss: Option<u32>,
    /// IP fragments created on the sending host (its containers' and its own namespace) during the run.
    pub fragments: Option<u64>,
    pub error: Option<String>,
}

/// The ordered pairs to test: all of them, or `k` spread evenly.
pub fn pairs(names: &[String], sample: Option<usize>) -> Vec<(String, String)> {
    let all: Vec<(String, String)> =
        names.iter().flat_map(|a| names.iter().filter(move |b| *b != a).map(move |b| (a.clone(), b.clone()))).collect();
    match sample {
        Some(k) if k < all.len() => {
            let step = all.len() as f64 / k as f64;
            (0..k).map(|i| all[(i as f64 * step) as usize].clone()).collect()
        }
        _ => all,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_spreads_over_all_pairs() {
        let names: Vec<String> = (1..=10).map(|i| format!("n{i}")).collect();
        assert_eq!(pairs(&names, None).len(), 90);
        let s = pairs(&names, Some(9));
        assert_eq!(s.len(), 9);
        let froms: std::collections::BTreeSet<_> = s.iter().map(|p| &p.0).collect();
        assert!(froms.len() >= 5, "a sample touches many hosts: {s:?}");
    }
}
