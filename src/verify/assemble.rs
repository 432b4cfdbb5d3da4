//! Turns what the hosts printed into pairs, host checks and throughput rows. Pure, so it is tested on recorded output.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{Bandwidth, Family, HostCheck, Pair, Report};
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
    assemble_dual(wanted, listener_ip, None, client_out, plan, outside, containers)
}

/// [`assemble`], and with `listener_ip6` (dual-stack containers: each listener's IPv6 address, `None` where docker
/// gave it none) every pair and host checked over IPv6 too. A pair passes only if both families pass.
pub fn assemble_dual(
    wanted: &[(String, String)],
    listener_ip: &BTreeMap<String, Result<Ipv4Addr, String>>,
    listener_ip6: Option<&BTreeMap<String, Option<Ipv6Addr>>>,
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
                ipv6: None,
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
            let mut v4 = Family { client: c.me.clone(), ..Family::default() };
            if let Some((rtt, seen, tries)) = c.pairs.get(b) {
                v4.rtt_ms = *rtt;
                v4.tries = *tries;
                v4.seen_source = seen.clone();
            }
            if let Some((full, over)) = c.mtu.get(b) {
                v4.full_size = Some(*full);
                v4.oversize_refused = Some(*over);
            }
            v4.error = verdict(&v4, containers);
            p.rtt_ms = v4.rtt_ms;
            p.tries = v4.tries;
            p.client = v4.client.clone();
            p.seen_source = v4.seen_source.clone();
            p.full_size = v4.full_size;
            p.oversize_refused = v4.oversize_refused;
            p.error = v4.error.clone();
            if let Some(ip6) = listener_ip6 {
                let mut v6 = Family { client: c.me6.clone(), ..Family::default() };
                if let Some((rtt, seen, tries)) = c.pairs6.get(b) {
                    v6.rtt_ms = *rtt;
                    v6.tries = *tries;
                    v6.seen_source = seen.clone();
                }
                if let Some((full, over)) = c.mtu6.get(b) {
                    v6.full_size = Some(*full);
                    v6.oversize_refused = Some(*over);
                }
                v6.error = if ip6.get(b).is_some_and(Option::is_none) {
                    Some(format!("{b}'s container has no IPv6 address"))
                } else if v6.client.is_none() {
                    Some(format!("{a}'s container has no IPv6 address"))
                } else {
                    verdict(&v6, containers)
                };
                v6.ok = v6.error.is_none();
                // Both families checked: each failure names its family.
                p.error = match (&v4.error, &v6.error) {
                    (None, None) => None,
                    (Some(e), None) => Some(format!("IPv4: {e}")),
                    (None, Some(e)) => Some(format!("IPv6: {e}")),
                    (Some(e4), Some(e6)) => Some(format!("IPv4: {e4}; IPv6: {e6}")),
                };
                p.ipv6 = Some(v6);
            }
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
                unreachable_switches6: vec![],
                switches6_on_second_try: vec![],
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
                    h.unreachable_switches6 =
                        c.switches6.iter().filter(|(_, ok)| !**ok).map(|(s, _)| s.clone()).collect();
                    h.switches6_on_second_try = c.switch6_retries.clone();
                    h.outside = outside.and(c.outside);
                    h.ok = h.unreachable_switches.is_empty()
                        && h.unreachable_switches6.is_empty()
                        && h.outside != Some(false);
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

/// What is wrong with one family's checks of a pair, in words (`None`: it passed). Without containers only the
/// switches' pings and DF probes count.
fn verdict(f: &Family, containers: bool) -> Option<String> {
    let no_nat = f.seen_source.is_some() && same_address(f.seen_source.as_deref(), f.client.as_deref());
    if !containers && f.rtt_ms.is_none() {
        Some("no answer from its switch".into())
    } else if !containers && f.full_size == Some(false) {
        Some("a full-size packet with don't-fragment was lost".into())
    } else if !containers && f.oversize_refused == Some(false) {
        Some("an oversize packet with don't-fragment was not refused".into())
    } else if !containers {
        None
    } else if f.seen_source.is_none() {
        Some("no answer from the listener".into())
    } else if !no_nat {
        Some(format!(
            "NAT: the listener saw {} instead of {}",
            f.seen_source.as_deref().unwrap_or("?"),
            f.client.as_deref().unwrap_or("?")
        ))
    } else if f.full_size == Some(false) {
        Some("a full-size packet with don't-fragment was lost".into())
    } else if f.oversize_refused == Some(false) {
        Some("an oversize packet with don't-fragment was not refused".into())
    } else {
        None
    }
}

/// The same address, however each side spelt it (IPv6 has several spellings of one address).
fn same_address(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
            (Ok(x), Ok(y)) => x == y,
            _ => a == b,
        },
        _ => a == b,
    }
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
    /// Dual-stack: the same over IPv6.
    me6: Option<String>,
    pairs6: BTreeMap<String, PairSeen>,
    mtu6: BTreeMap<String, (bool, bool)>,
    switches6: BTreeMap<String, bool>,
    switch6_retries: Vec<String>,
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
            ["me6", ip] => p.me6 = dash(ip),
            ["pair6", name, rtt, seen, rest @ ..] => {
                let tries = rest.first().and_then(|t| t.parse().ok());
                p.pairs6.insert(name.to_string(), (rtt.parse().ok(), dash(seen).map(|s| plain_ipv4(&s)), tries));
            }
            ["mtu6", name, full, over] => {
                p.mtu6.insert(name.to_string(), (*full == "ok", *over == "refused"));
            }
            ["switch6", name, r] => {
                p.switches6.insert(name.to_string(), *r == "ok" || *r == "retried");
                if *r == "retried" {
                    p.switch6_retries.push(name.to_string());
                }
            }
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

#[cfg(test)]
mod dual_tests {
    use super::*;

    fn plan() -> ClusterPlan {
        let text = "cluster: {cidr: 172.16.0.0/12, cidr6: 'fd42:7:1::/48'}\nnodes:\n  - {name: a, host: 192.0.2.1}\n  - {name: b, host: 192.0.2.2}\n  - {name: c, host: 192.0.2.3}\n";
        let inv = crate::model::inventory::parse(std::path::Path::new("t.yaml"), text).unwrap();
        let lock = crate::model::ipam::assign(&inv, None).unwrap();
        crate::plan::plan(&inv, &lock)
    }

    /// What a dual-stack client printed: `a` as the client, towards `b` and `c`.
    fn client(pair6_c: &str, mtu6_c: &str, switch6_c: &str) -> String {
        format!(
            "me 172.16.0.2 1450\nme6 fd42:7:1:1::2\n\
             pair b 0.5 [::ffff:172.16.0.2] 1\nmtu b ok refused\npair c 0.6 [::ffff:172.16.0.2] 1\nmtu c ok refused\n\
             switch b ok\nswitch c ok\n\
             pair6 b 0.7 [fd42:7:1:1:0:0:0:2] 1\nmtu6 b ok refused\n{pair6_c}\n{mtu6_c}\nswitch6 b ok\n{switch6_c}\n"
        )
    }

    fn run(text: &str, c6: Option<Ipv6Addr>) -> Report {
        let wanted = vec![("a".to_string(), "b".to_string()), ("a".to_string(), "c".to_string())];
        let listeners: BTreeMap<String, Result<Ipv4Addr, String>> = [
            ("a".to_string(), Ok("172.16.0.2".parse().unwrap())),
            ("b".to_string(), Ok("172.17.0.2".parse().unwrap())),
            ("c".to_string(), Ok("172.18.0.2".parse().unwrap())),
        ]
        .into();
        let six: BTreeMap<String, Option<Ipv6Addr>> = [
            ("a".to_string(), Some("fd42:7:1:1::2".parse().unwrap())),
            ("b".to_string(), Some("fd42:7:1:2::2".parse().unwrap())),
            ("c".to_string(), c6),
        ]
        .into();
        let out: BTreeMap<String, Result<String, String>> = [("a".to_string(), Ok(text.to_string()))].into();
        assemble_dual(&wanted, &listeners, Some(&six), &out, &plan(), None, true)
    }

    #[test]
    fn a_pair_passes_only_when_both_families_pass() {
        let c6 = Some("fd42:7:1:3::2".parse().unwrap());
        let r = run(&client("pair6 c 0.8 [fd42:7:1:1::2] 2", "mtu6 c ok refused", "switch6 c ok"), c6);
        let (b, c) = (&r.pairs[0], &r.pairs[1]);
        assert!(b.ok && c.ok, "{r:?}");
        let six = b.ipv6.as_ref().unwrap();
        assert_eq!(six.client.as_deref(), Some("fd42:7:1:1::2"));
        assert_eq!(six.seen_source.as_deref(), Some("fd42:7:1:1:0:0:0:2"), "the same address spelt otherwise");
        assert_eq!((six.full_size, six.oversize_refused, six.tries), (Some(true), Some(true), Some(1)));
        assert_eq!(c.ipv6.as_ref().unwrap().tries, Some(2));
        assert!(r.hosts[0].ok && r.hosts[0].unreachable_switches6.is_empty());
        assert_eq!(b.seen_source.as_deref(), Some("172.16.0.2"), "IPv4's fields stay IPv4's");
    }

    #[test]
    fn each_failing_family_names_itself() {
        let c6 = Some("fd42:7:1:3::2".parse().unwrap());
        // IPv6 lost its way to c (and c's switch); IPv4 is fine.
        let r = run(&client("pair6 c - - 2", "mtu6 c fail lost", "switch6 c fail"), c6);
        let c = &r.pairs[1];
        assert!(!c.ok && r.pairs[0].ok);
        assert_eq!(c.error.as_deref(), Some("IPv6: no answer from the listener"));
        assert_eq!(c.full_size, Some(true), "IPv4's probes passed");
        assert!(!r.ok && !r.hosts[0].ok && r.hosts[0].unreachable_switches6 == ["c"], "{r:?}");
        // NAT over IPv6, and the DF probe, are told apart.
        let r = run(&client("pair6 c 0.8 [fd42:7:1:ff::1] 1", "mtu6 c ok refused", "switch6 c ok"), c6);
        assert_eq!(
            r.pairs[1].error.as_deref(),
            Some("IPv6: NAT: the listener saw fd42:7:1:ff::1 instead of fd42:7:1:1::2")
        );
        let r = run(&client("pair6 c 0.8 [fd42:7:1:1::2] 1", "mtu6 c fail refused", "switch6 c ok"), c6);
        assert_eq!(r.pairs[1].error.as_deref(), Some("IPv6: a full-size packet with don't-fragment was lost"));
        let r = run(&client("pair6 c 0.8 [fd42:7:1:1::2] 1", "mtu6 c ok lost", "switch6 c ok"), c6);
        assert_eq!(r.pairs[1].error.as_deref(), Some("IPv6: an oversize packet with don't-fragment was not refused"));
        // A listener docker gave no IPv6 address fails over IPv6 only.
        let r = run(&client("", "", "switch6 c ok"), None);
        assert_eq!(r.pairs[1].error.as_deref(), Some("IPv6: c's container has no IPv6 address"));
        // Both families failing: both named.
        let text =
            client("pair6 c - - 2", "", "switch6 c ok").replace("pair c 0.6 [::ffff:172.16.0.2] 1", "pair c - - 2");
        let r = run(&text, c6);
        assert_eq!(
            r.pairs[1].error.as_deref(),
            Some("IPv4: no answer from the listener; IPv6: no answer from the listener")
        );
    }

    #[test]
    fn without_ipv6_the_pairs_serialize_as_before() {
        let r = run(&client("", "", ""), None);
        let v4 = assemble(
            &[("a".to_string(), "b".to_string())],
            &[("b".to_string(), Ok("172.17.0.2".parse().unwrap()))].into(),
            &[("a".to_string(), Ok(client("", "", "")))].into(),
            &plan(),
            None,
            true,
        );
        let json = serde_json::to_value(&v4.pairs[0]).unwrap();
        assert!(json.get("ipv6").is_none(), "{json}");
        assert!(serde_json::to_value(&r.pairs[0]).unwrap().get("ipv6").is_some());
        let host = serde_json::to_value(&v4.hosts[0]).unwrap();
        assert!(host.get("unreachable_switches6").is_none(), "{host}");
    }
}
