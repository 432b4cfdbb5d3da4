//! Turns what the hosts printed into pairs, host checks and throughput rows. Pure, so it is tested on recorded output.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::{Bandwidth, HostCheck, Pair, Report};
use crate::plan::ClusterPlan;

/// Parses what [`bandwidth_client`] printed.
pub fn parse_bandwidth(text: &str, from: &str, to: &str) -> Bandwidth {
    let mut b = Bandwidth { from: from.into(), to: to.into(), ..Default::default() };
    let section = |name: &str| -> Option<serde_json::Value> {
        let start = text.find(&format!("### {name}\n"))? + name.len() + 5;
        let end = text[start..].find("### ")? + start;
        serde_json::from_str(&text[start..end]).ok()
    };
    let mbps = |v: &serde_json::Value| v["end"]["sum_received"]["bits_per_second"].as_f64().map(|b| b / 1e6);
    if let Some(o) = section("overlay") {
        b.overlay_mbps = mbps(&o);
        b.mss = o["start"]["tcp_mss_default"].as_u64().map(|m| m as u32);
        if let Some(e) = o["error"].as_str() {
            b.error = Some(format!("overlay: {e}"));
        }
    }
    if let Some(u) = section("underlay") {
        b.underlay_mbps = mbps(&u);
    }
    for line in text.lines() {
        let mut f = line.split_whitespace();
        match (f.next(), f.next()) {
            (Some("fragments"), Some(n)) => b.fragments = n.parse().ok(),
            (Some("underlay-rtt"), Some(r)) => b.underlay_rtt_ms = r.parse().ok(),
            (Some("overlay-rtt"), Some(r)) => b.overlay_rtt_ms = r.parse().ok(),
            _ => {}
        }
    }
    if b.overlay_mbps.is_none() && b.error.is_none() {
        b.error = Some("iperf3 gave no result over the mesh".into());
    }
    b
}

/// Turns what the hosts printed into pairs and host checks. Pure, so it is tested on recorded output.
pub fn assemble(
    wanted: &[(String, String)],
    listener_ip: &BTreeMap<String, Result<Ipv4Addr, String>>,
    client_out: &BTreeMap<String, Result<String, String>>,
    plan: &ClusterPlan,
    outside: Option<Ipv4Addr>,
    containers: bool,
) -> Report {
    let mut parsed: BTreeMap<String, Parsed> = BTreeMap::new();
    for (node, out) in client_out {
        if let Ok(text) = out {
            parsed.insert(node.clone(), parse_client(text));
        }
    }
    let pairs = wanted
        .iter()
        .map(|(a, b)| {
            let mut p = Pair {
                from: a.clone(),
                to: b.clone(),
                ok: false,
                rtt_ms: None,
                tries: None,
                client: None,
                seen_source: None,
                full_size: None,
                oversize_refused: None,
                names: None,
                path: None,
                error: None,
            };
            if let Some(Err(e)) = listener_ip.get(b) {
                p.error = Some(format!("no listener on {b}: {e}"));
                return p;
            }
            let c = match client_out.get(a) {
                Some(Ok(_)) => &parsed[a],
                Some(Err(e)) => {
                    p.error = Some(format!("no client on {a}: {e}"));
                    return p;
                }
                None => {
                    p.error = Some(format!("{a} was not probed"));
                    return p;
                }
            };
            p.client = c.me.clone();
            if let Some((rtt, seen, tries)) = c.pairs.get(b) {
                p.rtt_ms = *rtt;
                p.tries = *tries;
                p.seen_source = seen.clone();
            }
            if let Some((full, over)) = c.mtu.get(b) {
                p.full_size = Some(*full);
                p.oversize_refused = Some(*over);
            }
            let no_nat = p.seen_source.is_some() && p.seen_source == p.client;
            p.error = if !containers && p.rtt_ms.is_none() {
                Some("no answer from its switch".into())
            } else if !containers && p.full_size == Some(false) {
                Some("a full-size packet with don't-fragment was lost".into())
            } else if !containers && p.oversize_refused == Some(false) {
                Some("an oversize packet with don't-fragment was not refused".into())
            } else if !containers {
                None
            } else if p.seen_source.is_none() {
                Some("no answer from the listener".into())
            } else if !no_nat {
                Some(format!(
                    "NAT: the listener saw {} instead of {}",
                    p.seen_source.as_deref().unwrap_or("?"),
                    p.client.as_deref().unwrap_or("?")
                ))
            } else if p.full_size == Some(false) {
                Some("a full-size packet with don't-fragment was lost".into())
            } else if p.oversize_refused == Some(false) {
                Some("an oversize packet with don't-fragment was not refused".into())
            } else {
                None
            };
            p.ok = p.error.is_none();
            p
        })
        .collect::<Vec<_>>();
    let hosts = plan
        .nodes
        .iter()
        .map(|n| {
            let mut h = HostCheck {
                node: n.name.clone(),
                ok: false,
                mtu: None,
                unreachable_switches: vec![],
                switches_on_second_try: vec![],
                outside: None,
                error: None,
            };
            match client_out.get(&n.name) {
                Some(Ok(_)) => {
                    let c = &parsed[&n.name];
                    h.mtu = c.mtu_value;
                    h.unreachable_switches =
                        c.switches.iter().filter(|(_, ok)| !**ok).map(|(s, _)| s.clone()).collect();
                    h.switches_on_second_try = c.switch_retries.clone();
                    h.outside = outside.and(c.outside);
                    h.ok = h.unreachable_switches.is_empty() && h.outside != Some(false);
                }
                Some(Err(e)) => h.error = Some(e.clone()),
                None => h.error = Some("not probed".into()),
            }
            h
        })
        .collect::<Vec<_>>();
    let ok = pairs.iter().all(|p| p.ok) && hosts.iter().all(|h| h.ok);
    Report { ok, pairs, hosts, outside, seconds: 0.0, bandwidth: vec![], containers_removed: false }
}

/// Round-trip time, the source the listener saw, and how many fetches it took.
type PairSeen = (Option<f64>, Option<String>, Option<u32>);

#[derive(Default)]
struct Parsed {
    me: Option<String>,
    mtu_value: Option<u32>,
    pairs: BTreeMap<String, PairSeen>,
    mtu: BTreeMap<String, (bool, bool)>,
    switches: BTreeMap<String, bool>,
    /// Switches that answered only the second ping (reported, never hidden).
    switch_retries: Vec<String>,
    outside: Option<bool>,
}

fn parse_client(text: &str) -> Parsed {
    let mut p = Parsed::default();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let dash = |s: &str| (s != "-").then(|| s.to_string());
        match f.as_slice() {
            ["me", ip, mtu] => {
                p.me = Some(ip.to_string());
                p.mtu_value = mtu.parse().ok();
            }
            ["pair", name, rtt, seen, rest @ ..] => {
                let tries = rest.first().and_then(|t| t.parse().ok());
                p.pairs.insert(name.to_string(), (rtt.parse().ok(), dash(seen).map(|s| plain_ipv4(&s)), tries));
            }
            ["mtu", name, full, over] => {
                p.mtu.insert(name.to_string(), (*full == "ok", *over == "refused"));
            }
            ["switch", name, r] => {
                p.switches.insert(name.to_string(), *r == "ok" || *r == "retried");
                if *r == "retried" {
                    p.switch_retries.push(name.to_string());
                }
            }
            ["outside", r] => p.outside = Some(*r == "ok"),
            _ => {}
        }
    }
    p
}

/// busybox httpd listens dual-stack and reports `[::ffff:172.16.0.2]`; the address is what matters.
pub(super) fn plain_ipv4(s: &str) -> String {
    s.trim_start_matches('[').trim_end_matches(']').trim_start_matches("::ffff:").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_output_parses() {
        let p = parse_client(
            "me 172.16.0.2 1450\npair node2 0.812 [::ffff:172.16.0.2]\npair node3 - -\nmtu node2 ok refused\nswitch node2 ok\nswitch node3 fail\nswitch node4 retried\noutside ok\n",
        );
        assert_eq!(p.me.as_deref(), Some("172.16.0.2"));
        assert_eq!(p.mtu_value, Some(1450));
        assert_eq!(p.pairs["node2"], (Some(0.812), Some("172.16.0.2".into()), None));
        assert_eq!(p.pairs["node3"], (None, None, None));
        assert_eq!(p.mtu["node2"], (true, true));
        assert!(!p.switches["node3"]);
        assert!(p.switches["node4"] && p.switch_retries == ["node4"], "a second try passes and is reported");
        assert_eq!(p.outside, Some(true));
    }
}

#[cfg(test)]
mod bandwidth_tests {
    use super::*;

    #[test]
    fn iperf_json_and_counters_parse() {
        let text = "### overlay\n{\"start\": {\"tcp_mss_default\": 1398}, \"end\": {\"sum_received\": {\"bits_per_second\": 812000000.0}}}\n\
                    ### underlay\n{\"start\": {}, \"end\": {\"sum_received\": {\"bits_per_second\": 1020000000.0}}}\n### end\n\
                    fragments 0\nunderlay-rtt 0.180\noverlay-rtt 0.412\n";
        let b = parse_bandwidth(text, "a", "b");
        assert_eq!(b.overlay_mbps, Some(812.0));
        assert_eq!(b.underlay_mbps, Some(1020.0));
        assert_eq!(b.mss, Some(1398));
        assert_eq!(b.fragments, Some(0));
        assert_eq!((b.overlay_rtt_ms, b.underlay_rtt_ms), (Some(0.412), Some(0.18)));
        assert!(b.error.is_none());
    }

    #[test]
    fn missing_iperf_result_is_an_error() {
        let b = parse_bandwidth("### overlay\n{\"error\": \"unable to connect\"}\n### underlay\n### end\n", "a", "b");
        assert!(b.error.as_deref().unwrap().contains("unable to connect"), "{b:?}");
    }
}
