//! `cluster.dns`: container names across hosts (`NAME.NODE.DOMAIN`, `NAME.DOMAIN`), off unless asked for.

use serde::Serialize;

use super::check::{Check, at, shown};
use super::raw::{At, RawDns, Scalar, Shaped};

/// Names across hosts: each host serves its containers' names to the mesh and keeps its peers'.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsSettings {
    /// Off when the inventory has no `dns:` section; `init` writes it on (docs/architecture.md, "Names").
    pub enabled: bool,
    /// The cluster's domain, lower case, without a trailing dot: `web.vm1.vxmesh`, `web.vxmesh`.
    pub domain: String,
}

pub const DEFAULT_DOMAIN: &str = "vxmesh";

/// Longest domain: room is left for a 63-byte container label and a node label within DNS's 253 bytes.
pub const DOMAIN_MAX: usize = 120;

/// One DNS label as vxmesh accepts it: 1 to 63 lower-case letters, digits and `-`, neither first nor last a `-`.
/// The same rule the hosts' watcher applies to every name docker reports (`components::dns`).
pub fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A domain of one or more labels, as [`is_label`] sees them.
pub fn is_domain(s: &str) -> bool {
    s.len() <= DOMAIN_MAX && s.split('.').all(is_label)
}

pub(super) fn settings(raw: Option<&At<Shaped<RawDns>>>, ck: &mut Check) -> Option<DnsSettings> {
    let Some(raw) = raw else { return Some(DnsSettings { enabled: false, domain: DEFAULT_DOMAIN.into() }) };
    let d = ck.shaped("cluster.dns", raw, "a mapping, e.g. `{enabled: true, domain: mesh}`")?;
    let enabled = d.enabled.as_ref().map_or(Some(false), |v| ck.boolean("cluster.dns.enabled", v));
    let domain = match &d.domain {
        None => Some(DEFAULT_DOMAIN.to_string()),
        Some(v) => domain(v, ck),
    };
    Some(DnsSettings { enabled: enabled?, domain: domain? })
}

/// docker's embedded DNS answers `NAME.NETWORK` itself for a container NAME on the network called NETWORK (and
/// never forwards it): with the domain named as the mesh's network, `NAME.DOMAIN` would find only the local NAME
/// wherever one runs. Seen on docker 20.10 in the lab (tests/it/dns.rs).
pub(super) fn domain_is_not_the_network(
    raw: Option<&At<Shaped<RawDns>>>,
    dns: Option<&DnsSettings>,
    network: Option<&str>,
    ck: &mut Check,
) {
    let (Some(raw), Some(dns), Some(network)) = (raw, dns, network) else { return };
    if !dns.enabled || dns.domain != network {
        return;
    }
    let written = match &raw.value {
        Shaped::Ok(d) => d.domain.as_ref(),
        Shaped::Wrong(_) => None,
    };
    let pos = written.map_or_else(|| at(raw), at);
    // Both defaults are `vxmesh`: say so when neither was written, or the user hunts for a value they never typed.
    let whose = if written.is_none() { " (the default domain)" } else { "" };
    ck.add(
        pos,
        format!(
            "cluster.dns.domain: `{}`{whose} is also the name of the mesh's docker network (cluster.docker.network): \
             docker answers NAME.{0} itself for a container NAME on that network, so NAME.{0} would find only the local \
             one wherever one runs; set cluster.dns.domain to another name, e.g. `{}`",
            shown(&dns.domain),
            if dns.domain == "mesh" { "names" } else { "mesh" }
        ),
    );
}

/// What names need that the inventory alone can tell: containers on the mesh (docker), and node names that are DNS
/// labels (`NAME.NODE.DOMAIN`). Every firewall backend opens the name server's ports to the mesh.
/// Refused here, before any host is contacted, rather than by each host's check.
pub(super) fn needs(
    raw: Option<&At<Shaped<RawDns>>>,
    dns: Option<&DnsSettings>,
    mode: Option<super::DockerMode>,
    nodes: &[super::Node],
    ck: &mut Check,
) {
    let (Some(raw), Some(dns)) = (raw, dns) else { return };
    if !dns.enabled {
        return;
    }
    let pos = match &raw.value {
        Shaped::Ok(d) => d.enabled.as_ref().map_or_else(|| at(raw), at),
        Shaped::Wrong(_) => at(raw),
    };
    if mode == Some(super::DockerMode::None) {
        ck.add(pos, "cluster.dns: names are containers' names, and cluster.docker.mode `none` runs no docker on the mesh; turn cluster.dns off or use mode `network`");
    }
    // A name that does not start with a letter or digit is refused as a node name already: said once.
    let named_right = |n: &&super::Node| n.name.starts_with(|c: char| c.is_ascii_alphanumeric());
    for n in nodes.iter().filter(named_right).filter(|n| !is_label(&n.name.to_ascii_lowercase())) {
        ck.add(
            n.pos,
            format!(
                "nodes[{0}].name: `{0}` is not a DNS label (letters, digits and `-`, but not `-` last), and with \
                 cluster.dns its containers are named NAME.{0}.{1}; rename the node or turn cluster.dns off",
                shown(&n.name),
                dns.domain
            ),
        );
    }
}

fn domain(v: &At<Scalar>, ck: &mut Check) -> Option<String> {
    let field = "cluster.dns.domain";
    let text = ck.text(field, v, "a domain, e.g. `mesh`")?;
    if is_domain(&text) {
        return Some(text);
    }
    // The one rule broken, where it is one of the common ones; else all of them.
    let why = if text.len() > 1 && is_domain(text.trim_end_matches('.')) {
        format!("ends with a dot; write it without: `{}`", shown(text.trim_end_matches('.')))
    } else if let Some(long) = text.split('.').find(|l| l.len() > 63) {
        format!("has a label of {} bytes (`{}`); each label between dots is at most 63", long.len(), shown(long))
    } else if text.len() > DOMAIN_MAX {
        format!("is {} bytes long; at most {DOMAIN_MAX}", text.len())
    } else {
        "is not a domain of lower-case DNS labels (letters, digits and `-`, but not `-` first or last, dots \
         between), e.g. `mesh` or `mesh.example`"
            .to_string()
    };
    ck.add(at(v), format!("{field}: `{}` {why}", shown(&text)));
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(dns: &str) -> Result<DnsSettings, String> {
        let text = format!("cluster:\n  cidr: 172.16.0.0/12\n{dns}nodes:\n  - {{name: a, host: 10.0.0.1}}\n");
        super::super::parse(std::path::Path::new("x.yaml"), &text).map(|i| i.cluster.dns).map_err(|e| e.to_string())
    }

    #[test]
    fn off_by_default_and_refused_where_docker_would_answer_the_domain_itself() {
        assert_eq!(parsed(""), Ok(DnsSettings { enabled: false, domain: "vxmesh".into() }));
        assert_eq!(parsed("  dns: {domain: vxmesh}\n").map(|d| d.enabled), Ok(false), "off: no conflict");
        let e = parsed("  dns: {enabled: true}\n").unwrap_err();
        assert!(
            e.contains("x.yaml:3:8: cluster.dns.domain: `vxmesh` (the default domain) is also the name of the mesh's docker network"),
            "{e}"
        );
        let e = parsed("  dns:\n    enabled: true\n    domain: vxmesh\n").unwrap_err();
        assert!(e.contains("x.yaml:5:13: cluster.dns.domain"), "{e}");
        assert_eq!(
            parsed("  dns: {enabled: true, domain: mesh}\n"),
            Ok(DnsSettings { enabled: true, domain: "mesh".into() })
        );
        let other = "  docker: {network: apps}\n  dns: {enabled: true}\n";
        assert_eq!(parsed(other).map(|d| d.domain), Ok("vxmesh".into()));
        let e = parsed("  dns: {enabled: true, domain: Mesh.}\n").unwrap_err();
        assert!(e.contains("cluster.dns.domain: `Mesh.` is not a domain of lower-case DNS labels"), "{e}");
        let e = parsed("  dns: {enabled: true, domain: mesh.example.}\n").unwrap_err();
        assert!(e.contains("`mesh.example.` ends with a dot; write it without: `mesh.example`"), "{e}");
        let e = parsed(&format!("  dns: {{enabled: true, domain: a.{}}}\n", "b".repeat(64))).unwrap_err();
        assert!(e.contains("has a label of 64 bytes"), "{e}");
        let e = parsed("  dns: {enabled: yes please}\n").unwrap_err();
        assert!(e.contains("cluster.dns.enabled: `yes please` is not `true` or `false`"), "{e}");
    }

    #[test]
    fn what_names_need_is_refused_before_any_host_is_contacted() {
        let on = "  dns: {enabled: true, domain: mesh}\n";
        let e = parsed(&format!("  docker: {{mode: none}}\n{on}")).unwrap_err();
        assert!(e.contains("x.yaml:4:18: cluster.dns: names are containers' names"), "{e}");
        assert!(parsed(&format!("  firewall: firewalld\n{on}")).is_ok(), "firewalld opens the ports in its own zone");
        let text = format!("cluster:\n  cidr: 172.16.0.0/12\n{on}nodes:\n  - {{name: vm_2, host: 10.0.0.1}}\n");
        let e = super::super::parse(std::path::Path::new("x.yaml"), &text).unwrap_err().to_string();
        assert!(e.contains("x.yaml:5:5: nodes[vm_2].name: `vm_2` is not a DNS label"), "{e}");
        let off = text.replace("enabled: true", "enabled: false");
        assert!(super::super::parse(std::path::Path::new("x.yaml"), &off).is_ok(), "off: any node name");
        assert!(parsed("  dns: {enabled: true, domain: mesh}\n  docker: {network: apps}\n").is_ok());
        let e = parsed("  docker: {network: mesh}\n  dns: {enabled: true, domain: mesh}\n").unwrap_err();
        assert!(e.contains("set cluster.dns.domain to another name, e.g. `names`"), "{e}");
    }

    #[test]
    fn labels_and_domains() {
        for good in ["a", "web", "web-1", "0x", &"a".repeat(63)] {
            assert!(is_label(good), "{good:?}");
        }
        for bad in ["", "-a", "a-", "A", "a.b", "a_b", "a b", "a;b", "$(id)", "a\nb", "é", &"a".repeat(64)] {
            assert!(!is_label(bad), "{bad:?}");
        }
        assert!(is_domain("vxmesh") && is_domain("mesh.example"));
        for bad in ["", ".", "vxmesh.", ".vxmesh", "a..b", "Mesh", &"a.".repeat(70)] {
            assert!(!is_domain(bad), "{bad:?}");
        }
    }
}
