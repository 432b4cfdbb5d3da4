//! `ps`: every container on the mesh's docker network across all hosts, with its host, image, mesh address and
//! state: the one view of where everything runs. Read-only: one `docker ps` and one `docker network inspect` per
//! host, in one round trip.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cmd;
use crate::error::HostError;
use crate::model::inventory::{DockerMode, Inventory, is_label};
use crate::plan::{ClusterPlan, NodePlan};
use crate::remote::executor::{self, Options};
use crate::shell::{self, Stmt, Word};

/// One container on the mesh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MeshContainer {
    pub node: String,
    pub name: String,
    pub image: String,
    /// Its address on the mesh network; none while it is not running.
    pub address: Option<String>,
    /// Its IPv6 address on the mesh network, with dual-stack containers (`cluster.cidr6`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address6: Option<String>,
    /// docker's state: `running`, `exited`, ...
    pub state: String,
    /// docker's words for it: `Up 3 minutes`, `Exited (0) 2 hours ago`.
    pub status: String,
    /// With `cluster.dns`: the names it answers to across the mesh while it runs (`NAME.NODE.DOMAIN`,
    /// `NAME.DOMAIN`); none when its name is not a DNS label (the hosts skip it too).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
}

/// What `ps` found: the containers, and the hosts it could not ask.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    pub containers: Vec<MeshContainer>,
    pub failed: BTreeMap<String, String>,
}

const MARK: &str = "### vxmesh-ps-network";

/// `docker ps` of the containers on `network` (running or not), then the network's own view (their addresses).
pub fn script(network: &str) -> String {
    let filter = shell::join([Word::Lit("network="), Word::Data(network.to_string())]);
    let stmts: Vec<Stmt> = vec![
        cmd!["docker", "ps", "-a", "--no-trunc", "--filter", filter, "--format", "{{json .}}"].into(),
        cmd!["echo", MARK].into(),
        cmd!["docker", "network", "inspect", Word::Data(network.to_string()), "--format", "{{json .Containers}}"]
            .silent_stderr()
            .may_fail()
            .into(),
    ];
    format!("export LC_ALL=C PATH=\"$PATH:/usr/sbin:/sbin\"\n{}", shell::render(&stmts, 0))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PsLine {
    #[serde(rename = "ID")]
    id: String,
    names: String,
    image: String,
    state: String,
    status: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Endpoint {
    #[serde(rename = "IPv4Address")]
    ipv4_address: Option<String>,
    #[serde(rename = "IPv6Address")]
    ipv6_address: Option<String>,
}

/// An endpoint's address without its prefix length (`172.18.0.2/16` -> `172.18.0.2`); none when docker left it empty.
fn bare(address: Option<&str>) -> Option<String> {
    address.map(|a| a.split('/').next().unwrap_or(a).to_string()).filter(|a| !a.is_empty())
}

/// The containers `node` reported, from [`script`]'s output.
pub fn parse(node: &str, out: &str) -> Result<Vec<MeshContainer>, String> {
    let (ps, network) = out.split_once(MARK).ok_or("the output was cut before its end")?;
    let endpoints: BTreeMap<String, Endpoint> = match network.trim() {
        "" | "null" => BTreeMap::new(),
        text => serde_json::from_str(text).map_err(|e| format!("docker network inspect: {e}"))?,
    };
    let mut v = vec![];
    for line in ps.lines().filter(|l| !l.trim().is_empty()) {
        let c: PsLine = serde_json::from_str(line).map_err(|e| format!("docker ps: {e}"))?;
        let endpoint = endpoints.get(&c.id);
        v.push(MeshContainer {
            node: node.to_string(),
            name: c.names,
            image: c.image,
            address: bare(endpoint.and_then(|e| e.ipv4_address.as_deref())),
            address6: bare(endpoint.and_then(|e| e.ipv6_address.as_deref())),
            state: c.state,
            status: c.status,
            names: vec![],
        });
    }
    v.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(v)
}

/// The names a container answers to across the mesh, as the hosts' watchers make them: its name in lower case,
/// when that is a DNS label and it has an address on the mesh.
pub fn names_of(c: &MeshContainer, domain: &str) -> Vec<String> {
    let (label, node) = (c.name.to_ascii_lowercase(), c.node.to_ascii_lowercase());
    if c.address.is_none() || !is_label(&label) || !is_label(&node) {
        return vec![];
    }
    vec![format!("{label}.{node}.{domain}"), format!("{label}.{domain}")]
}

fn network(node: &NodePlan) -> Option<&str> {
    (node.docker.mode != DockerMode::None).then_some(node.docker.network.as_str())
}

pub async fn run(inv: &Inventory, plan: &ClusterPlan, opts: &Options) -> Listing {
    let (hosts, sessions) = executor::connect_all(inv, plan, opts).await;
    let out = executor::on_each(&hosts, opts, "ps", |node, t, bar| async move {
        bar.set_message("listing containers");
        let Some(net) = network(&node) else { return Ok(vec![]) };
        let o = t.run(&script(net)).await?;
        if o.code != 0 {
            return Err(HostError::ScriptFailed { code: o.code, stderr: crate::converge::host::tail(&o.stderr, 3) });
        }
        parse(&node.name, &o.stdout).map_err(HostError::Facts)
    })
    .await;
    sessions.close().await;
    let mut listing = Listing { containers: vec![], failed: BTreeMap::new() };
    for o in out {
        match o.result {
            Ok(mut c) => listing.containers.append(&mut c),
            Err(e) => {
                listing.failed.insert(o.node.name.clone(), e.to_string());
            }
        }
    }
    if inv.cluster.dns.enabled {
        for c in &mut listing.containers {
            c.names = names_of(c, &inv.cluster.dns.domain);
        }
    }
    listing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_docker_ps_with_the_networks_addresses() {
        let out = format!(
            "{}\n{}\n{MARK}\n{}\n",
            r#"{"ID":"aaa","Names":"web","Image":"nginx:1","State":"running","Status":"Up 3 minutes"}"#,
            r#"{"ID":"bbb","Names":"job","Image":"busybox","State":"exited","Status":"Exited (0) 1 hour ago"}"#,
            r#"{"aaa":{"Name":"web","EndpointID":"e","MacAddress":"02:42:ac:12:00:02","IPv4Address":"172.18.0.2/16","IPv6Address":""}}"#
        );
        let v = parse("node1", &out).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(
            (v[1].name.as_str(), v[1].address.as_deref(), v[1].state.as_str()),
            ("web", Some("172.18.0.2"), "running")
        );
        assert_eq!((v[0].name.as_str(), v[0].address.as_deref()), ("job", None), "a stopped container has no address");
        assert_eq!(v[1].address6, None, "docker's empty IPv6Address is none");
        let dual = out.replace(r#""IPv6Address":"""#, r#""IPv6Address":"fd42:7:1:1::2/64""#);
        let v = parse("node1", &dual).unwrap();
        assert_eq!(v[1].address6.as_deref(), Some("fd42:7:1:1::2"));
        let json = serde_json::to_value(&v[0]).unwrap();
        assert!(json.get("address6").is_none(), "absent, not null, without IPv6: {json}");
        assert!(parse("node1", "cut").is_err());
        assert_eq!(parse("n", &format!("{MARK}\nnull\n")).unwrap(), vec![]);
    }

    #[test]
    fn names_are_given_only_to_running_containers_whose_names_are_labels() {
        let c = |name: &str, address: Option<&str>| MeshContainer {
            node: "Node1".into(),
            name: name.into(),
            image: "busybox".into(),
            address: address.map(String::from),
            address6: None,
            state: "running".into(),
            status: "Up".into(),
            names: vec![],
        };
        assert_eq!(names_of(&c("Web", Some("172.18.0.2")), "vxmesh"), ["web.node1.vxmesh", "web.vxmesh"]);
        assert!(names_of(&c("web", None), "vxmesh").is_empty());
        assert!(names_of(&c("my_app.1", Some("172.18.0.3")), "vxmesh").is_empty());
    }

    #[test]
    fn the_network_name_reaches_the_host_as_one_quoted_word() {
        let s = script("mesh;reboot");
        assert!(s.contains("network='mesh;reboot'") && s.contains("inspect 'mesh;reboot'"), "{s}");
    }
}
