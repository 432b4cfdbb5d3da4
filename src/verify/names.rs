//! Names proven by verify (`cluster.dns`): on every host whose name server runs, the verify container resolves
//! every peer's verify container as `NAME.NODE.DOMAIN` (exactly its address) and `NAME.DOMAIN` (all of them,
//! its address among them) through its own resolver, as any container would, and fetches from the address the
//! name gave.
//! Whether a host serves names is read from the host (its name server's configuration), not from the plan.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use super::{LISTEN_PORT, Report, scripts};
use crate::model::names;
use crate::shell::{Stmt, Word, data, render};

/// The probes: the domain the host serves (or `names off`), then three lines per peer.
pub fn script(run: &str, targets: &[(String, Ipv4Addr)]) -> String {
    let mut stmts = vec![
        Stmt::Static("set -u"),
        Stmt::Set { var: "container", value: Word::Data(scripts::container(run)) },
        Stmt::Set { var: "conf", value: Word::Lit(names::DNS_CONFIG) },
        Stmt::Set { var: "port", value: data(LISTEN_PORT) },
        Stmt::Static(
            "domain=$(sed -n 's|^local=/\\(.*\\)/$|\\1|p' \"$conf\" 2>/dev/null | head -n1)
[ -n \"$domain\" ] || { echo 'names off'; exit 0; }
echo \"names $domain\"
pid=$(docker inspect -f '{{.State.Pid}}' \"$container\" 2>/dev/null) || { echo 'the verify container is gone' >&2; exit 1; }
inside() { nsenter -t \"$pid\" -m -n -- \"$@\"; }
addrs() { inside nslookup -type=a \"$1\" 2>/dev/null | sed -n '/^Name:/,$ s/^Address:[[:space:]]*//p' | tr '\\n' ' '; }
# A name appears within about a second of its container starting: ask a few times before calling it missing.
probe_names() {
  i=0
  while :; do
    one=$(addrs \"$container.$1.$domain\"); all=$(addrs \"$container.$domain\")
    case \" $one \" in *\" $2 \"*) case \" $all \" in *\" $2 \"*) break ;; esac ;; esac
    i=$((i + 1)); [ $i -lt 8 ] || break; sleep 0.5
  done
  # busybox-static's wget cannot resolve (static glibc has no NSS): it fetches from the address the name gave.
  set -- \"$1\" $one
  seen=
  [ $# -lt 2 ] || seen=$(inside timeout 3 wget -qO- \"http://$2:$port/cgi-bin/ip\" 2>/dev/null)
  echo \"name-one $1 $one\"
  echo \"name-all $1 $all\"
  echo \"name-seen $1 $seen\"
}",
        ),
    ];
    stmts.push(Stmt::Background(
        targets.iter().map(|(name, ip)| Stmt::from(crate::cmd!["probe_names", data(name), data(ip)])).collect(),
    ));
    stmts.push(Stmt::Static("wait"));
    render(&stmts, 0)
}

/// What one host's probes printed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Probed {
    /// The domain the host serves; `None`: names are off there.
    pub domain: Option<String>,
    pub peers: BTreeMap<String, PeerProbe>,
}

/// One peer as a host's probes saw it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PeerProbe {
    /// The addresses of `NAME.PEER.DOMAIN`.
    pub one: Vec<String>,
    /// The addresses of `NAME.DOMAIN`.
    pub all: Vec<String>,
    /// What the listener at the address of `NAME.PEER.DOMAIN` saw as the source.
    pub seen: Option<String>,
}

pub fn parse(text: &str) -> Probed {
    let mut p = Probed::default();
    for line in text.lines() {
        let mut w = line.split_whitespace();
        match (w.next(), w.next()) {
            (Some("names"), Some("off")) => p.domain = None,
            (Some("names"), Some(d)) => p.domain = Some(d.to_string()),
            (Some(kind @ ("name-one" | "name-all" | "name-seen")), Some(peer)) => {
                let rest: Vec<String> = w.map(str::to_string).collect();
                let e = p.peers.entry(peer.to_string()).or_default();
                match kind {
                    "name-one" => e.one = rest,
                    "name-all" => e.all = rest,
                    _ => e.seen = rest.first().map(|s| super::assemble::plain_ipv4(s)),
                }
            }
            _ => {}
        }
    }
    p
}

/// Adds the names' verdict to each pair the probes covered: `names` set, and a failing pair says why.
pub fn apply(
    report: &mut Report,
    listener_ip: &BTreeMap<String, Ipv4Addr>,
    out: &BTreeMap<String, Result<String, String>>,
) {
    let probed: BTreeMap<&str, Probed> =
        out.iter().filter_map(|(n, o)| o.as_ref().ok().map(|t| (n.as_str(), parse(t)))).collect();
    for pair in &mut report.pairs {
        let Some(p) = probed.get(pair.from.as_str()) else {
            if let Some(Err(e)) = out.get(&pair.from) {
                pair.names = Some(false);
                pair.error.get_or_insert_with(|| format!("names not probed: {e}"));
                pair.ok = false;
            }
            continue;
        };
        let Some(domain) = &p.domain else { continue };
        let Some(want) = listener_ip.get(&pair.to).map(Ipv4Addr::to_string) else { continue };
        let PeerProbe { one, all, seen } = p.peers.get(&pair.to).cloned().unwrap_or_default();
        let problem = if one != [want.clone()] {
            Some(format!("name: NAME.{}.{domain} gave {} instead of {want}", pair.to, shown(&one)))
        } else if !all.contains(&want) {
            Some(format!("name: NAME.{domain} gave {} without {want}", shown(&all)))
        } else if seen.is_none() || seen != pair.client {
            Some(format!("name: no answer from the address NAME.{}.{domain} gave", pair.to))
        } else {
            None
        };
        pair.names = Some(problem.is_none());
        if let Some(why) = problem {
            pair.ok = false;
            pair.error.get_or_insert(why);
        }
    }
    report.ok = report.ok && report.pairs.iter().all(|p| p.ok);
}

fn shown(addrs: &[String]) -> String {
    let set: BTreeSet<&str> = addrs.iter().map(String::as_str).collect();
    if set.is_empty() { "nothing".into() } else { set.into_iter().collect::<Vec<_>>().join(",") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_reads_the_domain_from_the_host_and_quotes_every_value() {
        let s = script("1-2", &[("vm2".into(), "172.19.0.2".parse().unwrap())]);
        assert!(s.contains("container=vxmesh-verify-1-2\n"), "{s}");
        assert!(s.contains(&format!("conf={}\n", names::DNS_CONFIG)), "{s}");
        assert!(s.contains("probe_names vm2 172.19.0.2"), "{s}");
        let hostile = script("x", &[("a;b".into(), "1.2.3.4".parse().unwrap())]);
        assert!(hostile.contains("probe_names 'a;b' 1.2.3.4"), "{hostile}");
    }

    #[test]
    fn parses_what_the_probes_print() {
        let p = parse(
            "names vxmesh\nname-one vm2 172.19.0.2 \nname-all vm2 172.18.0.2 172.19.0.2 \nname-seen vm2 [::ffff:172.18.0.2]\n\
             name-one vm3 \nname-all vm3 \nname-seen vm3 \n",
        );
        assert_eq!(p.domain.as_deref(), Some("vxmesh"));
        assert_eq!(
            p.peers["vm2"],
            PeerProbe {
                one: vec!["172.19.0.2".into()],
                all: vec!["172.18.0.2".into(), "172.19.0.2".into()],
                seen: Some("172.18.0.2".into())
            }
        );
        assert_eq!(p.peers["vm3"], PeerProbe::default());
        assert_eq!(parse("names off\n"), Probed::default());
    }
}
