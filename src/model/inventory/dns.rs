//! `cluster.dns`: container names across hosts (`NAME.NODE.DOMAIN`, `NAME.DOMAIN`), off unless asked for.

use serde::Serialize;

use super::check::{Check, at, shown};
use super::raw::{At, RawDns, Scalar, Shaped};

/// Names across hosts: each host serves its containers' names to the mesh and keeps its peers'.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsSettings {
    /// Off by default until `tests/it/dns.rs` has been run on every backend (docs/architecture.md, "Names").
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
    let d = ck.shaped("cluster.dns", raw, "a mapping, e.g. `{enabled: true, domain: vxmesh}`")?;
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
    let pos = match &raw.value {
        Shaped::Ok(d) => d.domain.as_ref().map_or_else(|| at(raw), at),
        Shaped::Wrong(_) => at(raw),
    };
    ck.add(
        pos,
        format!(
            "cluster.dns.domain: `{}` is also the name of the mesh's docker network (cluster.docker.network): docker \
             answers NAME.{0} itself for a container NAME on that network, so NAME.{0} would find only the local one \
             wherever one runs; set cluster.dns.domain to another name, e.g. `mesh`",
            shown(&dns.domain)
        ),
    );
}

fn domain(v: &At<Scalar>, ck: &mut Check) -> Option<String> {
    let field = "cluster.dns.domain";
    let text = ck.text(field, v, "a domain, e.g. `vxmesh`")?;
    if is_domain(&text) {
        return Some(text);
    }
    ck.add(
        at(v),
        format!(
            "{field}: `{}` is not a domain of lower-case DNS labels (letters, digits and `-`, dots between, at most \
             {DOMAIN_MAX} bytes), e.g. `vxmesh` or `mesh.example`",
            shown(&text)
        ),
    );
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
            e.contains("x.yaml:3:8: cluster.dns.domain: `vxmesh` is also the name of the mesh's docker network"),
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
        let e = parsed("  dns: {enabled: yes please}\n").unwrap_err();
        assert!(e.contains("cluster.dns.enabled: `yes please` is not `true` or `false`"), "{e}");
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
