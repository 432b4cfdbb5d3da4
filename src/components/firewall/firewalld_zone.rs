//! vxmesh's own firewalld objects: zone `vxmesh` (the switch and the WireGuard interface, what the mesh may send
//! to this host) and policy `vxmesh-fwd` (the mesh forwarded to containers). firewalld puts every interface it
//! has no zone for in its default zone, which rejects forwarding: sw0 there broke every pair.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::Serialize;

use crate::model::addr_text::Shown;
use crate::model::names;
use crate::plan::NodePlan;
use crate::shell::{Stmt, Word, join};

pub const ZONE: &str = "vxmesh";
pub const POLICY: &str = "vxmesh-fwd";

/// A zone or policy as `firewall-cmd --info-zone` / `--info-policy` prints it: only what vxmesh manages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FwObject {
    pub target: String,
    pub interfaces: BTreeSet<String>,
    pub forward: bool,
    pub ingress: BTreeSet<String>,
    pub egress: BTreeSet<String>,
    pub rich_rules: BTreeSet<String>,
}

/// `--info-zone` / `--info-policy` output; `None` when it printed nothing (no such zone or policy).
pub fn parse_info(text: &str) -> Option<FwObject> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    lines.next()?;
    let mut o = FwObject::default();
    let mut in_rules = false;
    for line in lines {
        if line.starts_with('\t') || (in_rules && line.starts_with("    ")) {
            if in_rules {
                o.rich_rules.insert(line.trim().to_string());
            }
            continue;
        }
        let Some((key, value)) = line.trim().split_once(':') else { continue };
        let words = || value.split_whitespace().map(String::from).collect::<BTreeSet<String>>();
        in_rules = key == "rich rules";
        match key {
            "target" => o.target = value.trim().to_string(),
            "interfaces" => o.interfaces = words(),
            "forward" => o.forward = value.trim() == "yes",
            "ingress-zones" => o.ingress = words(),
            "egress-zones" => o.egress = words(),
            _ => {}
        }
    }
    Some(o)
}

/// What firewalld holds of vxmesh's zone and policy, running and permanent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Objects {
    pub zone: Option<FwObject>,
    pub policy: Option<FwObject>,
}

fn family_rule(ipv6: bool, parts: &[String]) -> String {
    format!("rule family=\"{}\" {}", if ipv6 { "ipv6" } else { "ipv4" }, parts.join(" "))
}

/// A rich rule accepting UDP `port` from `source`, or from anyone of the family `ipv6` says (firewalld's own
/// spelling, as `--list-rich-rules` prints it). A source's own family wins: a rule is one family.
pub fn accept_udp(source: Option<IpAddr>, port: u16, ipv6: bool) -> String {
    let ipv6 = source.map_or(ipv6, |s| s.is_ipv6());
    let src = source.map(|s| format!("source address=\"{}\"", Shown(s)));
    family_rule(
        ipv6,
        &[src, Some(format!("port port=\"{port}\" protocol=\"udp\" accept"))].into_iter().flatten().collect::<Vec<_>>(),
    )
}

/// The zone a node needs: sw0 (and, encrypted, the WireGuard interface, on which VXLAN is accepted from the
/// peers' WireGuard addresses only); with names, the name server's ports from the cluster's range to the switch
/// address. Intra-zone forwarding is on: a relay forwards WireGuard to WireGuard.
pub fn zone(node: &NodePlan) -> FwObject {
    let mut interfaces: BTreeSet<String> = [names::SWITCH_BRIDGE.to_string()].into();
    let mut rich_rules = BTreeSet::new();
    if let Some(g) = &node.firewall.wireguard {
        interfaces.insert(g.device.as_str().to_string());
        rich_rules.extend(node.wireguard_mesh().map(|p| accept_udp(Some(IpAddr::V4(p)), node.firewall.port, false)));
    }
    if node.dns.is_some() {
        let (cluster, listen) = (node.forward_accept, node.switch.address.addr());
        for (port, proto) in [(53, "udp"), (53, "tcp"), (69, "udp")] {
            rich_rules.insert(format!(
                "rule family=\"ipv4\" source address=\"{cluster}\" destination address=\"{listen}\" port port=\"{port}\" protocol=\"{proto}\" accept"
            ));
        }
    }
    FwObject { target: "default".into(), interfaces, forward: true, rich_rules, ..FwObject::default() }
}

/// The policy a node needs: from the mesh's zone to any zone (docker's, with the containers), the cluster to the
/// cluster only, as `VXMESH-FWD` does in iptables.
pub fn policy(node: &NodePlan) -> FwObject {
    let cidr = node.forward_accept;
    FwObject {
        target: "CONTINUE".into(),
        ingress: [ZONE.to_string()].into(),
        egress: ["ANY".to_string()].into(),
        rich_rules: std::iter::once(format!(
            "rule family=\"ipv4\" source address=\"{cidr}\" destination address=\"{cidr}\" accept"
        ))
        // Dual-stack containers: the IPv6 range to itself as well.
        .chain(node.ipv6.as_ref().map(|v| {
            format!("rule family=\"ipv6\" source address=\"{c}\" destination address=\"{c}\" accept", c = v.cluster)
        }))
        .collect(),
        ..FwObject::default()
    }
}

fn fw(permanent: bool, rest: impl IntoIterator<Item = Word>) -> Stmt {
    let head = if permanent { vec!["--quiet".into(), "--permanent".into()] } else { vec!["--quiet".into()] };
    crate::shell::Cmd::new(std::iter::once("firewall-cmd".into()).chain(head).chain(rest)).into()
}

fn opt(op: &'static str, value: &str) -> Word {
    join([Word::Lit(op), Word::Data(value.to_string())])
}

/// Commands that make `have` (`None`: absent) what `want` manages, in the running or the permanent configuration.
/// The target can only be set permanently: a running one that differs needs a reload.
pub fn commands(kind: &'static str, want: &FwObject, have: Option<&FwObject>, permanent: bool) -> Vec<Stmt> {
    let (select, new): (&'static str, &'static str) = match kind {
        "zone" => ("--zone=vxmesh", "--new-zone=vxmesh"),
        _ => ("--policy=vxmesh-fwd", "--new-policy=vxmesh-fwd"),
    };
    let mut v = vec![];
    let empty = FwObject::default();
    let have = match have {
        Some(h) => h,
        None => {
            v.push(fw(permanent, [Word::Lit(new)]));
            &empty
        }
    };
    // One call per kind of change: firewall-cmd takes an option many times, but not two different ones.
    let at = |v: &mut Vec<Stmt>, op: &'static str, values: Vec<&String>| {
        if !values.is_empty() {
            v.push(fw(permanent, std::iter::once(Word::Lit(select)).chain(values.into_iter().map(|x| opt(op, x)))));
        }
    };
    if permanent && have.target != want.target && !want.target.is_empty() {
        at(&mut v, "--set-target=", vec![&want.target]);
    }
    let sets: [(&BTreeSet<String>, &BTreeSet<String>, &'static str, &'static str); 4] = [
        (&want.interfaces, &have.interfaces, "--add-interface=", "--remove-interface="),
        (&want.ingress, &have.ingress, "--add-ingress-zone=", "--remove-ingress-zone="),
        (&want.egress, &have.egress, "--add-egress-zone=", "--remove-egress-zone="),
        (&want.rich_rules, &have.rich_rules, "--add-rich-rule=", "--remove-rich-rule="),
    ];
    for (w, h, add, remove) in sets {
        at(&mut v, remove, h.difference(w).collect());
        at(&mut v, add, w.difference(h).collect());
    }
    if want.forward && !have.forward {
        v.push(fw(permanent, [Word::Lit(select), Word::Lit("--add-forward")]));
    }
    v
}

/// Whether `have` already is what `want` manages.
pub fn matches(want: &FwObject, have: Option<&FwObject>) -> bool {
    have.is_some_and(|h| {
        h.target == want.target
            && h.interfaces == want.interfaces
            && h.forward == want.forward
            && h.ingress == want.ingress
            && h.egress == want.egress
            && h.rich_rules == want.rich_rules
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZONE_INFO: &str = "vxmesh (active)\n  target: default\n  icmp-block-inversion: no\n  interfaces: sw0 wg9\n  sources: \n  services: \n  ports: \n  protocols: \n  forward: yes\n  masquerade: no\n  forward-ports: \n  source-ports: \n  icmp-blocks: \n  rich rules: \n\trule family=\"ipv4\" source address=\"10.99.0.2\" port port=\"4789\" protocol=\"udp\" accept\n";
    const POLICY_INFO: &str = "vxmesh-fwd (active)\n  priority: -1\n  target: CONTINUE\n  ingress-zones: vxmesh\n  egress-zones: ANY\n  services: \n  ports: \n  protocols: \n  masquerade: no\n  forward-ports: \n  source-ports: \n  icmp-blocks: \n  rich rules: \n\trule family=\"ipv4\" source address=\"172.16.0.0/12\" destination address=\"172.16.0.0/12\" accept\n";

    #[test]
    fn reads_what_firewall_cmd_prints() {
        let z = parse_info(ZONE_INFO).unwrap();
        assert_eq!(z.target, "default");
        assert_eq!(z.interfaces, ["sw0".to_string(), "wg9".to_string()].into());
        assert!(z.forward);
        assert_eq!(z.rich_rules.len(), 1);
        assert_eq!(z.rich_rules.first().unwrap(), &accept_udp(Some("10.99.0.2".parse().unwrap()), 4789, false));
        let p = parse_info(POLICY_INFO).unwrap();
        assert_eq!(
            (p.target.as_str(), p.ingress.len(), p.egress.first().map(String::as_str)),
            ("CONTINUE", 1, Some("ANY"))
        );
        assert_eq!(p.rich_rules.len(), 1);
        assert_eq!(parse_info(""), None, "no such zone");
    }

    #[test]
    fn commands_add_what_is_missing_and_remove_what_is_not_ours() {
        let want = parse_info(ZONE_INFO).unwrap();
        assert!(commands("zone", &want, Some(&want), true).is_empty());
        assert!(matches(&want, Some(&want)));
        let mut have = want.clone();
        have.interfaces.insert("eth9".into());
        have.interfaces.remove("wg9");
        have.forward = false;
        let text = crate::shell::lines(&commands("zone", &want, Some(&have), false)).join("\n");
        assert!(text.contains("firewall-cmd --quiet --zone=vxmesh --remove-interface=eth9"), "{text}");
        assert!(text.contains("firewall-cmd --quiet --zone=vxmesh --add-interface=wg9"), "{text}");
        assert!(text.contains("--add-forward"), "{text}");
        assert!(!text.contains("--permanent"), "{text}");
        let fresh = crate::shell::lines(&commands("policy", &parse_info(POLICY_INFO).unwrap(), None, true));
        assert_eq!(fresh[0], "firewall-cmd --quiet --permanent --new-policy=vxmesh-fwd", "{fresh:?}");
        assert!(fresh.iter().any(|l| l.ends_with("--set-target=CONTINUE")), "{fresh:?}");
        assert!(!matches(&want, None));
    }
}
