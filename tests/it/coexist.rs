//! Another overlay on the same hosts: Docker Swarm, whose overlay networks take UDP 4789 and subnets from
//! 10.0.0.0/8, and a VXLAN device of someone else's on the mesh's port.

use crate::labkit::Lab;
use crate::util::vxmesh;

/// On Swarm's port and inside Swarm's pool vxmesh refuses before it touches any host, naming both and what to
/// change; on another port and a cidr outside the pool both overlays carry traffic side by side; a foreign VXLAN
/// device that takes the mesh's port later shows in `status`.
#[test]
fn a_docker_swarm_is_named_before_any_change_and_then_lives_beside_the_mesh() {
    let Some(lab) = Lab::new("c1")
        .nodes(2)
        .backend("linux")
        .inventory(|i| i.cluster("cidr", "10.96.0.0/12").cluster("switch_cidr", "10.111.0.0/16"))
        .create()
    else {
        return;
    };
    let (dir, inv) = (lab.work(), lab.inv());
    let ip1 = lab.nodes[0].ip.to_string();
    crate::labkit::ssh(&lab, "node1", &format!("docker swarm init --advertise-addr {ip1} >/dev/null"));
    let token = crate::labkit::ssh(&lab, "node1", "docker swarm join-token -q worker");
    crate::labkit::ssh(&lab, "node2", &format!("docker swarm join --token {} {ip1}:2377 >/dev/null", token.trim()));
    crate::labkit::ssh(&lab, "node1", "docker network create -d overlay --attachable swarmnet >/dev/null");

    let r = vxmesh(dir, &["up", "-i", inv]);
    assert_eq!(r.code, 2, "{r}");
    let said = format!("{}{}", r.stdout, r.stderr);
    assert!(said.contains("Docker Swarm") && said.contains("UDP 4789") && said.contains("cluster.port"), "{r}");
    assert!(said.contains("10.0.0.0/8") && said.contains("cluster.cidr `10.96.0.0/12`"), "{r}");
    let sw0 = crate::labkit::ssh(&lab, "node1", "ip -o link show sw0 2>/dev/null | wc -l");
    assert_eq!(sw0.trim(), "0", "a refused up touched node1");

    // Beside it: another port, a cidr outside Swarm's pool and away from docker_gwbridge's 172.18.0.0/16.
    let side = lab
        .inventory()
        .cluster("cidr", "172.20.0.0/14")
        .cluster("switch_cidr", "172.23.0.0/16")
        .cluster("port", "4790");
    let inv2 = dir.join("side.yaml");
    side.write(&inv2);
    let inv2 = inv2.to_str().unwrap();
    let r = vxmesh(dir, &["up", "-i", inv2]);
    assert_eq!(r.code, 0, "the mesh beside Swarm: {r}");
    crate::labkit::ssh(&lab, "node1", "docker run -d --name swa --network swarmnet busybox sleep 600 >/dev/null");
    let ping = crate::labkit::ssh(
        &lab,
        "node2",
        "docker run --rm --network swarmnet busybox ping -c 2 -W 2 swa >/dev/null && echo ok",
    );
    assert_eq!(ping.trim(), "ok", "Swarm's overlay beside the mesh");

    // Someone else's VXLAN device on the mesh's port, later: `status` names it.
    crate::labkit::ssh(&lab, "node2", "ip link add fx0 type vxlan id 4242 dstport 4790 dev eth0");
    let r = vxmesh(dir, &["status", "-i", inv2]);
    assert_eq!(r.code, 3, "{r}");
    assert!(r.stdout.contains("`fx0`") && r.stdout.contains("UDP 4790"), "{r}");
    crate::labkit::ssh(&lab, "node2", "ip link del fx0");
    let r = vxmesh(dir, &["status", "-i", inv2]);
    assert_eq!(r.code, 0, "{r}");
}
