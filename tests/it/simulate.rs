//! A model of what each change does to a host's facts, so the diff can be checked to converge.
//! The lab tests check the same against real hosts; this checks it for every drift proptest can think of.

use vxmesh::diff::{Change, Mtu};
use vxmesh::facts::{DockerNetwork, HostFacts, Link, OvsBridge, OvsInterface, OvsPort};

fn mtu(m: Mtu) -> u32 {
    match m {
        Mtu::Value(v) => v,
        Mtu::Detect => panic!("simulated hosts always know their MTU"),
    }
}

fn link<'a>(f: &'a mut HostFacts, dev: &str) -> &'a mut Link {
    f.links.entry(dev.to_string()).or_default()
}

fn add_port(f: &mut HostFacts, bridge: &str, port: &str) {
    let b = f.ovs.bridges.get_mut(bridge).expect("ovs-vsctl add-port fails without the bridge");
    if !b.ports.iter().any(|p| p == port) {
        b.ports.push(port.to_string());
        b.ports.sort();
    }
    f.ovs
        .ports
        .entry(port.to_string())
        .or_insert_with(|| OvsPort { protected: false, interfaces: vec![port.to_string()] });
    f.ovs.interfaces.entry(port.to_string()).or_default();
}

pub fn apply(f: &mut HostFacts, c: &Change) {
    match c {
        Change::Sysctl(s) => {
            f.sysctls.insert(s.key.clone(), s.value.clone());
        }
        Change::CreateVeth { switch_end, docker_end, mtu: m } => {
            for d in [switch_end, docker_end] {
                f.links.insert(
                    d.clone(),
                    Link { mtu: mtu(*m), up: false, kind: "veth".into(), master: None, addrs: vec![] },
                );
                // A fresh veth has offloads on again.
                f.tx_offload.insert(d.clone(), true);
            }
        }
        Change::LinkMtu { dev, mtu: m } => link(f, dev).mtu = mtu(*m),
        Change::LinkUp { dev } => link(f, dev).up = true,
        Change::TxOffloadOff { dev } => {
            f.tx_offload.insert(dev.clone(), false);
        }
        Change::Bridge { bridge, datapath, mtu: m } => {
            f.ovs
                .bridges
                .entry(bridge.clone())
                .or_insert_with(|| OvsBridge { datapath_type: String::new(), ports: vec![] })
                .datapath_type = datapath.as_str().to_string();
            add_port(f, bridge, bridge);
            f.ovs.interfaces.get_mut(bridge).unwrap().mtu_request = Some(mtu(*m));
            let l = link(f, bridge);
            l.kind = "openvswitch".into();
            l.mtu = mtu(*m);
        }
        Change::Tunnel { bridge, tunnel, vni, port, .. } => {
            add_port(f, bridge, &tunnel.port);
            let i = f.ovs.interfaces.get_mut(&*tunnel.port).unwrap();
            *i = OvsInterface { r#type: "vxlan".into(), ..OvsInterface::default() };
            i.options.insert("remote_ip".into(), tunnel.remote_ip.to_string());
            i.options.insert("key".into(), vni.to_string());
            i.options.insert("dst_port".into(), port.to_string());
            i.bfd.insert("enable".into(), tunnel.bfd.to_string());
            i.bfd.insert("min_tx".into(), vxmesh::names::BFD_INTERVAL_MS.to_string());
            i.bfd.insert("min_rx".into(), vxmesh::names::BFD_INTERVAL_MS.to_string());
            f.ovs.ports.get_mut(&*tunnel.port).unwrap().protected = tunnel.protected;
        }
        Change::RemoveTunnel { bridge, port } => {
            if let Some(b) = f.ovs.bridges.get_mut(bridge) {
                b.ports.retain(|p| p != port);
            }
            f.ovs.ports.remove(port);
            f.ovs.interfaces.remove(port);
        }
        Change::AttachPort { bridge, port } => add_port(f, bridge, port),
        Change::SwitchAddress { dev, address, stale } => {
            let l = link(f, dev);
            l.addrs.retain(|a| !stale.contains(a));
            if !l.addrs.contains(address) {
                l.addrs.push(*address);
            }
        }
        Change::DockerNetwork { spec, mtu: m, .. } => {
            let options = vxmesh::diff::docker_options(spec, *m).into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            f.docker_network = Some(DockerNetwork {
                name: spec.network.clone(),
                driver: "bridge".into(),
                subnet: Some(spec.subnet.to_string()),
                gateway: Some(spec.gateway.to_string()),
                options,
                containers: 0,
            });
            let l = link(f, &spec.bridge);
            l.kind = "bridge".into();
            l.up = true;
        }
        Change::DockerDaemon { content, bip, .. } => {
            f.docker_daemon_json = content.clone();
            // docker restarted (live-restore on) and gave docker0 the new address.
            link(f, "docker0").addrs = vec![*bip];
        }
        Change::Enslave { dev, master } => link(f, dev).master = Some(master.clone()),
        Change::IptablesChain(c) => {
            let t = f.iptables.tables.entry(c.table.to_string()).or_default();
            t.insert(c.chain.to_string(), c.rules.clone());
            for former in &c.former_parents {
                if let Some(rules) = t.get_mut(*former) {
                    rules.retain(|r| *r != c.jump);
                }
            }
            let parent = t.entry(c.parent.to_string()).or_default();
            parent.retain(|r| *r != c.jump);
            parent.insert(0, c.jump.clone());
        }
        Change::NftTable { port, peers } => {
            f.nft = Some(vxmesh::facts::NftTable { peers: peers.iter().copied().collect(), guarded_port: Some(*port) });
        }
        Change::Firewalld { add, remove } => {
            f.firewalld.rich_rules.retain(|r| !remove.contains(r));
            f.firewalld.rich_rules.extend(add.iter().cloned());
        }
        Change::BootUnit { script, unit } => {
            f.boot.script = vxmesh::boot::hash_of(script).map(String::from);
            f.boot.unit = vxmesh::boot::hash_of(unit).map(String::from);
            f.boot.enabled = true;
        }
        Change::Blocked { reason } => panic!("simulated hosts never block: {reason}"),
    }
}
