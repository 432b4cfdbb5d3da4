//! Runs verification on the hosts: listeners, then clients, then (with `--bandwidth`) iperf3 around a ring.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use super::assemble::assemble_dual;
use super::scripts::{
    address_script, bandwidth_client, bandwidth_server, cleanup_script, dual_client_script, dual_switch_script,
    listener_script,
};
use super::{Bandwidth, Named, Named6, Probes6, Report, VerifyOptions, names, parse_bandwidth};
use crate::error::HostError;
use crate::plan::ClusterPlan;
use crate::remote::executor::{self, Connected, Options};

/// Runs iperf3 around a ring of hosts, one pair at a time so they do not compete; listeners must be running.
async fn measure_bandwidth(hosts: &[Connected], run: &str) -> Vec<Bandwidth> {
    let n = hosts.len();
    let mut out = vec![];
    for i in 0..n {
        let (a, b) = (&hosts[i], &hosts[(i + 1) % n]);
        if n < 2 || (n == 2 && i == 1) {
            break;
        }
        let (Ok(sa), Ok(sb)) = (&a.session, &b.session) else { continue };
        let server = sb.run(&bandwidth_server(run, b.node.underlay)).await;
        let mut row = match server {
            Ok(o) if o.code == 0 => {
                let ip = sb
                    .run(&address_script(&b.node.docker.network, run))
                    .await
                    .ok()
                    .and_then(|o| o.stdout.trim().parse::<Ipv4Addr>().ok());
                match ip {
                    Some(ip) => match sa.run(&bandwidth_client(run, ip, a.node.underlay, b.node.underlay)).await {
                        Ok(o) => parse_bandwidth(&o.stdout, &a.node.name, &b.node.name),
                        Err(e) => Bandwidth { error: Some(e.to_string()), ..Default::default() },
                    },
                    None => Bandwidth { error: Some("no listener address".into()), ..Default::default() },
                }
            }
            Ok(o) => Bandwidth { error: Some(o.stderr.trim().to_string()), ..Default::default() },
            Err(e) => Bandwidth { error: Some(e.to_string()), ..Default::default() },
        };
        row.from = a.node.name.clone();
        row.to = b.node.name.clone();
        out.push(row);
    }
    out
}

/// Removes every temporary container of run `run` on every host; used on success, failure and Ctrl-C.
pub async fn cleanup(hosts: &[Connected], opts: &Options, run: &str) {
    let script = Arc::new(cleanup_script(run));
    let quiet = Options { progress: false, ..opts.clone() };
    executor::on_each(hosts, &quiet, "cleanup", move |_, s, _| {
        let script = script.clone();
        async move { s.run(&script).await.map(|_| ()) }
    })
    .await;
}

/// Runs the whole verification; the caller calls [`cleanup`] afterwards whatever happens.
pub async fn verify(hosts: &[Connected], plan: &ClusterPlan, opts: &Options, v: &VerifyOptions, run: &str) -> Report {
    if plan.nodes.first().is_some_and(|n| n.docker.mode == crate::model::inventory::DockerMode::None) {
        return verify_switches(hosts, plan, opts, v).await;
    }
    let started = std::time::Instant::now();
    let image = Arc::new(v.image.clone());
    let run_id = Arc::new(run.to_string());
    // Phase 1: a listener on every host.
    let listeners = executor::on_each(hosts, opts, "listen", {
        let (image, run_id) = (image.clone(), run_id.clone());
        move |node, s, bar| {
            let script = listener_script(&node, &run_id, &image);
            async move {
                bar.set_message("starting listener container");
                let out = s.run(&script).await?;
                if out.code != 0 {
                    return Err(HostError::Verify(format!("listener container did not start: {}", out.stderr.trim())));
                }
                parse_listener(&out.stdout)
                    .ok_or_else(|| HostError::Verify(format!("listener has no address: {}", out.stdout.trim())))
            }
        }
    })
    .await;
    let listened: BTreeMap<String, Result<(Ipv4Addr, Option<Ipv6Addr>), String>> =
        listeners.into_iter().map(|o| (o.node.name.clone(), o.result.map_err(|e| e.to_string()))).collect();
    let listener_ip: BTreeMap<String, Result<Ipv4Addr, String>> =
        listened.iter().map(|(n, r)| (n.clone(), r.as_ref().map(|a| a.0).map_err(Clone::clone))).collect();
    // Dual-stack containers: every pair and switch is checked over IPv6 too.
    let dual = plan.nodes.iter().any(|n| n.ipv6.is_some());
    let listener_ip6: BTreeMap<String, Option<Ipv6Addr>> =
        listened.iter().filter_map(|(n, r)| Some((n.clone(), r.as_ref().ok()?.1))).collect();
    let switch6_of: BTreeMap<&str, Ipv6Addr> =
        plan.nodes.iter().filter_map(|n| Some((n.name.as_str(), n.ipv6.as_ref()?.switch.addr()))).collect();
    let names: Vec<String> = plan.nodes.iter().map(|n| n.name.clone()).collect();
    let wanted = v.pairs(&names);
    let switch_of: BTreeMap<&str, Ipv4Addr> =
        plan.nodes.iter().map(|n| (n.name.as_str(), n.switch.address.addr())).collect();

    // Phase 2: every host's client probes its peers.
    let per_host: BTreeMap<String, (Named, Named)> = plan
        .nodes
        .iter()
        .map(|n| {
            let targets: Vec<(String, Ipv4Addr)> = wanted
                .iter()
                .filter(|(a, _)| *a == n.name)
                .filter_map(|(_, b)| listener_ip.get(b).and_then(|r| r.as_ref().ok()).map(|ip| (b.clone(), *ip)))
                .collect();
            let switches = names.iter().filter(|b| **b != n.name).map(|b| (b.clone(), switch_of[b.as_str()])).collect();
            (n.name.clone(), (targets, switches))
        })
        .collect();
    let per_host6: BTreeMap<String, Probes6> = plan
        .nodes
        .iter()
        .filter(|n| dual && n.ipv6.is_some())
        .map(|n| {
            let targets = wanted
                .iter()
                .filter(|(a, _)| *a == n.name)
                .filter_map(|(_, b)| Some((b.clone(), (*listener_ip6.get(b)?)?)))
                .collect();
            let switches = names
                .iter()
                .filter(|b| **b != n.name)
                .filter_map(|b| Some((b.clone(), *switch6_of.get(b.as_str())?)))
                .collect();
            (n.name.clone(), Probes6 { targets, switches })
        })
        .collect();
    let per_host = Arc::new(per_host);
    let per_host6 = Arc::new(per_host6);
    let clients = executor::on_each(hosts, opts, "probe", {
        let (run_id, per_host, per_host6, outside) = (run_id.clone(), per_host.clone(), per_host6.clone(), v.outside);
        move |node, s, bar| {
            let (targets, switches) = per_host[&node.name].clone();
            let six = per_host6.get(&node.name);
            let script = dual_client_script(&node, &run_id, &targets, &switches, outside, six);
            async move {
                bar.set_message(format!("probing {} peers", targets.len()));
                let out = s.run(&script).await?;
                if !out.stdout.starts_with("me ") {
                    return Err(HostError::Verify(format!("client container did not start: {}", out.stderr.trim())));
                }
                Ok(out.stdout)
            }
        }
    })
    .await;
    let client_out: BTreeMap<String, Result<String, String>> =
        clients.into_iter().map(|o| (o.node.name.clone(), o.result.map_err(|e| e.to_string()))).collect();
    // Phase 3: names, on the hosts that serve them (the host says; names off costs one short round trip).
    let named = executor::on_each(hosts, opts, "names", {
        let (run_id, per_host) = (run_id.clone(), per_host.clone());
        move |node, s, bar| {
            let script = names::script(&run_id, &per_host[&node.name].0);
            async move {
                bar.set_message("resolving peers by name");
                let out = s.run(&script).await?;
                if out.code != 0 {
                    return Err(HostError::Verify(format!("names were not probed: {}", out.stderr.trim())));
                }
                Ok(out.stdout)
            }
        }
    })
    .await;
    let names_out: BTreeMap<String, Result<String, String>> =
        named.into_iter().map(|o| (o.node.name.clone(), o.result.map_err(|e| e.to_string()))).collect();
    // Every host's container serves its peers until all clients are done: only the cleanup removes them.
    let containers_removed = false;
    let six = dual.then_some(&listener_ip6);
    let mut report = assemble_dual(&wanted, &listener_ip, six, &client_out, plan, v.outside, true);
    let listening: BTreeMap<String, Ipv4Addr> =
        listener_ip.iter().filter_map(|(n, r)| Some((n.clone(), *r.as_ref().ok()?))).collect();
    names::apply(&mut report, &listening, &names_out);
    let bandwidth = if v.bandwidth { measure_bandwidth(hosts, run).await } else { vec![] };
    Report { seconds: started.elapsed().as_secs_f64(), bandwidth, containers_removed, ..report }
}

/// What a listener printed: its container's IPv4 address, then (dual-stack) its IPv6 address or `-`.
pub(super) fn parse_listener(out: &str) -> Option<(Ipv4Addr, Option<Ipv6Addr>)> {
    let mut words = out.split_whitespace();
    let v4 = words.next()?.parse().ok()?;
    let v6 = words.next().and_then(|w| w.parse().ok());
    words.next().is_none().then_some((v4, v6))
}

/// Hosts without docker: every switch pings every peer's switch through the tunnels, DF probes included.
async fn verify_switches(hosts: &[Connected], plan: &ClusterPlan, opts: &Options, v: &VerifyOptions) -> Report {
    let started = std::time::Instant::now();
    let names: Vec<String> = plan.nodes.iter().map(|n| n.name.clone()).collect();
    let wanted = v.pairs(&names);
    let switch_of: BTreeMap<String, Ipv4Addr> =
        plan.nodes.iter().map(|n| (n.name.clone(), n.switch.address.addr())).collect();
    // With `cidr6` sw0 has an IPv6 address too: the switches prove that family as well.
    let switch6_of: BTreeMap<String, Option<Ipv6Addr>> =
        plan.nodes.iter().map(|n| (n.name.clone(), n.ipv6.as_ref().map(|v| v.switch.addr()))).collect();
    let dual = switch6_of.values().any(Option::is_some);
    let targets6_of: Arc<BTreeMap<String, Named6>> = Arc::new(
        plan.nodes
            .iter()
            .map(|n| {
                let to = wanted.iter().filter(|(a, _)| *a == n.name);
                (n.name.clone(), to.filter_map(|(_, b)| Some((b.clone(), switch6_of[b]?))).collect())
            })
            .collect(),
    );
    let targets_of: Arc<BTreeMap<String, Named>> = Arc::new(
        plan.nodes
            .iter()
            .map(|n| {
                (
                    n.name.clone(),
                    wanted.iter().filter(|(a, _)| *a == n.name).map(|(_, b)| (b.clone(), switch_of[b])).collect(),
                )
            })
            .collect(),
    );
    let out = executor::on_each(hosts, opts, "probe", move |node, s, _| {
        let six = targets6_of.get(&node.name).filter(|_| dual);
        let script = dual_switch_script(&node, &targets_of[&node.name], six);
        async move { s.run(&script).await.map(|o| o.stdout) }
    })
    .await;
    let client_out: BTreeMap<String, Result<String, String>> =
        out.into_iter().map(|o| (o.node.name.clone(), o.result.map_err(|e| e.to_string()))).collect();
    let listeners = switch_of.into_iter().map(|(k, v)| (k, Ok(v))).collect();
    let six = dual.then_some(&switch6_of);
    let report = assemble_dual(&wanted, &listeners, six, &client_out, plan, None, false);
    // No containers here.
    Report { seconds: started.elapsed().as_secs_f64(), containers_removed: true, ..report }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_prints_its_ipv4_address_then_maybe_its_ipv6_one() {
        let v4: Ipv4Addr = "172.16.0.2".parse().unwrap();
        assert_eq!(parse_listener("172.16.0.2\n"), Some((v4, None)));
        assert_eq!(parse_listener("172.16.0.2 fd42:7:1:1::2\n"), Some((v4, Some("fd42:7:1:1::2".parse().unwrap()))));
        assert_eq!(parse_listener("172.16.0.2 -\n"), Some((v4, None)), "docker gave it no IPv6 address");
        assert_eq!(parse_listener(""), None);
        assert_eq!(parse_listener("no such container\n"), None);
    }
}
