//! A model of what each change does to a host's facts, so the diff can be checked to converge.
//! The lab tests check the same against real hosts; this checks it for every drift proptest can think of.

use vxmesh::components::boot::{self, BootFacts};
use vxmesh::components::docker_network::{self, DockerNetwork, DockerNetworkFacts};
use vxmesh::components::docker0::{self, DaemonJson};
use vxmesh::components::firewall::firewalld_zone::Objects;
use vxmesh::components::firewall::{FirewalldConfig, FirewalldFacts, NftFacts, firewalld};
use vxmesh::components::overlay6::{self, Overlay6Facts};
use vxmesh::components::ovs::{self, OvsBridge, OvsFacts, OvsInterface, OvsPort};
use vxmesh::components::wireguard::{self, WgDevice, WgPeerState, WireguardFacts};
use vxmesh::components::{Mtu, Step, rules, switch, sysctl, veth};
use vxmesh::facts::{HostFacts, Link};

fn mtu(m: Mtu) -> u32 {
    m.value().expect("simulated hosts always know their MTU")
}

fn link<'a>(f: &'a mut HostFacts, dev: &str) -> &'a mut Link {
    f.links.entry(dev.to_string()).or_default()
}

fn add_port(o: &mut OvsFacts, bridge: &str, port: &str) {
    let b = o.bridges.get_mut(bridge).expect("ovs-vsctl add-port fails without the bridge");
    if !b.ports.iter().any(|p| p == port) {
        b.ports.push(port.to_string());
        b.ports.sort();
    }
    o.ports.entry(port.to_string()).or_insert_with(|| OvsPort { protected: false, interfaces: vec![port.to_string()] });
    o.interfaces.entry(port.to_string()).or_default();
}

/// Applies one step's effect, whichever component made it.
pub fn apply(f: &mut HostFacts, s: &Step) {
    if let Some(c) = s.change_as::<sysctl::SetSysctl>() {
        f.sysctls.insert(c.key.clone(), c.value.clone());
    } else if let Some(c) = s.change_as::<veth::Change>() {
        apply_veth(f, c);
    } else if let Some(c) = s.change_as::<ovs::Change>() {
        apply_ovs(f, c);
    } else if let Some(c) = s.change_as::<switch::Change>() {
        match c {
            switch::Change::SwitchAddress { dev, address, stale } => {
                let l = link(f, dev);
                l.addrs.retain(|a| !stale.contains(a));
                if !l.addrs.contains(address) {
                    l.addrs.push(*address);
                }
            }
            switch::Change::LinkUp { dev } => link(f, dev).up = true,
            switch::Change::SwitchMac { dev, mac } => link(f, dev).mac = Some(mac.clone()),
            switch::Change::Route { dev, subnet, via, .. } => {
                f.routes.retain(|r| r.dst != subnet.to_string());
                f.routes.push(vxmesh::facts::Route {
                    dst: subnet.to_string(),
                    dev: Some(dev.to_string()),
                    gateway: Some(via.to_string()),
                });
            }
            switch::Change::RemoveRoute { dst, via, .. } => {
                f.routes.retain(|r| !(r.dst == *dst && r.gateway.as_deref() == Some(via.as_str())))
            }
        }
    } else if let Some(c) = s.change_as::<docker_network::Change>() {
        match c {
            docker_network::Change::DockerNetwork { spec, mtu: m, .. } => {
                let options = docker_network::options(spec, *m)
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.display().trim_matches('\'').to_string()))
                    .collect();
                f.set_part(DockerNetworkFacts(Some(DockerNetwork {
                    name: spec.network.clone(),
                    driver: "bridge".into(),
                    subnet: Some(spec.subnet.to_string()),
                    gateway: Some(spec.gateway.to_string()),
                    options,
                    containers: vec![],
                    subnets: vec![spec.subnet.to_string()],
                    ipv6: spec.subnet6.is_some(),
                    subnet6: spec.subnet6.map(|s| s.to_string()),
                    gateway6: spec.gateway6.map(|g| g.to_string()),
                })));
                let l = link(f, spec.bridge.as_ref().unwrap());
                l.kind = "bridge".into();
                l.up = true;
            }
            docker_network::Change::RemoveDockerNetwork { .. } => f.set_part(DockerNetworkFacts(None)),
        }
    } else if let Some(c) = s.change_as::<docker0::Change>() {
        match c {
            docker0::Change::DockerDaemon { content, bip, .. } => {
                f.set_part(DaemonJson(content.clone()));
                // docker restarted (live-restore on) and gave docker0 the new address.
                link(f, "docker0").addrs = vec![*bip];
            }
            docker0::Change::Blocked { reason } => panic!("simulated hosts never block: {reason}"),
        }
    } else if let Some(c) = s.change_as::<overlay6::Change>() {
        let mut o = f.part::<Overlay6Facts>().cloned().unwrap_or_default();
        match c {
            overlay6::Change::KeepRouterAdvertisements { .. } => o.ra_at_risk.clear(),
            overlay6::Change::SwitchAddress6 { address, .. } => o.addrs = vec![*address],
            overlay6::Change::Route6 { subnet, via, .. } => o.routes.push(vxmesh::facts::Route {
                dst: subnet.to_string(),
                dev: Some("sw0".into()),
                gateway: Some(via.to_string()),
            }),
            overlay6::Change::RemoveRoute6 { dst, via, .. } => {
                o.routes.retain(|r| !(r.dst == *dst && r.gateway.as_deref() == Some(via.as_str())))
            }
        }
        f.set_part(o);
    } else if let Some(c) = s.change_as::<rules::Change>() {
        let rules::Change::IptablesChain(c) = c else { panic!("up never removes chains") };
        let mut ip6 = f.part::<Overlay6Facts>().cloned().unwrap_or_default();
        let ipt = if c.ipv6 { &mut ip6.ip6tables } else { &mut f.iptables };
        let t = ipt.tables.entry(c.table.to_string()).or_default();
        t.insert(c.chain.to_string(), c.rules.clone());
        for former in &c.former_parents {
            if let Some(rules) = t.get_mut(*former) {
                rules.retain(|r| *r != c.jump);
            }
        }
        let parent = t.entry(c.parent.to_string()).or_default();
        parent.retain(|r| *r != c.jump);
        parent.insert(0, c.jump.clone());
        if c.ipv6 {
            f.set_part(ip6);
        }
    } else if let Some(c) = s.change_as::<vxmesh::components::firewall::nftables::Change>() {
        if let vxmesh::components::firewall::nftables::Change::NftTable(t) = c {
            f.set_part(NftFacts(Some(t.clone())));
        }
    } else if let Some(c) = s.change_as::<firewalld::Change>() {
        apply_firewalld(f, c);
    } else if let Some(c) = s.change_as::<wireguard::Change>() {
        apply_wireguard(f, c);
    } else if let Some(c) = s.change_as::<boot::Change>() {
        if let boot::Change::BootUnit { script, unit } = c {
            f.set_part(BootFacts {
                script: boot::hash_of(script).map(String::from),
                unit: boot::hash_of(unit).map(String::from),
                enabled: true,
            });
        }
    } else {
        panic!("the simulator does not know {:?}'s change {:?}", s.component, s.change);
    }
}

/// Rules go to the running and the permanent configuration at once; a reload makes firewalld run the permanent one.
fn apply_firewalld(f: &mut HostFacts, c: &firewalld::Change) {
    let edit = |rules: &mut Vec<String>, add: &[String], remove: &[String]| {
        rules.retain(|r| !remove.contains(r));
        for a in add {
            if !rules.contains(a) {
                rules.push(a.clone());
            }
        }
    };
    match c {
        firewalld::Change::Firewalld { add, remove } => {
            edit(&mut f.part_mut::<FirewalldFacts>().rich_rules, add, remove);
            edit(&mut f.part_mut::<FirewalldConfig>().permanent_rules, add, remove);
        }
        firewalld::Change::FirewalldZone { zone, policy, reload } => {
            let cfg = f.part_mut::<FirewalldConfig>();
            let objects = Objects { zone: Some((**zone).clone()), policy: Some((**policy).clone()) };
            cfg.permanent = objects.clone();
            cfg.running = objects;
            if *reload {
                let permanent = cfg.permanent_rules.clone();
                f.part_mut::<FirewalldFacts>().rich_rules = permanent;
            }
        }
        firewalld::Change::RemoveFirewalldZone => {
            let cfg = f.part_mut::<FirewalldConfig>();
            (cfg.permanent, cfg.running) = (Objects::default(), Objects::default());
        }
    }
}

fn apply_veth(f: &mut HostFacts, c: &veth::Change) {
    match c {
        veth::Change::CreateVeth { switch_end, docker_end, mtu: m } => {
            for d in [switch_end, docker_end] {
                f.links.insert(
                    d.to_string(),
                    Link {
                        mtu: mtu(*m),
                        up: false,
                        kind: "veth".into(),
                        master: None,
                        addrs: vec![],
                        addrs6: vec![],
                        mac: None,
                    },
                );
                // A fresh veth has offloads on again.
                f.tx_offload.insert(d.to_string(), true);
            }
        }
        veth::Change::LinkMtu { dev, mtu: m } => link(f, dev).mtu = mtu(*m),
        veth::Change::LinkUp { dev } => link(f, dev).up = true,
        veth::Change::TxOffloadOff { dev } => {
            f.tx_offload.insert(dev.to_string(), false);
        }
        veth::Change::Enslave { dev, master } => link(f, dev).master = Some(master.to_string()),
        veth::Change::DeleteVeth { dev } => {
            f.links.remove(dev.as_str());
        }
    }
}

fn apply_ovs(f: &mut HostFacts, c: &ovs::Change) {
    match c {
        ovs::Change::Bridge { bridge, datapath, mtu: m } => {
            let o = f.part_mut::<OvsFacts>();
            o.bridges
                .entry(bridge.to_string())
                .or_insert_with(|| OvsBridge { datapath_type: String::new(), ports: vec![] })
                .datapath_type = datapath.as_str().to_string();
            add_port(o, bridge, bridge);
            o.interfaces.get_mut(bridge.as_str()).unwrap().mtu_request = Some(mtu(*m));
            let l = link(f, bridge);
            l.kind = "openvswitch".into();
            l.mtu = mtu(*m);
        }
        ovs::Change::Tunnel { bridge, tunnel, vni, port, .. } => {
            let o = f.part_mut::<OvsFacts>();
            add_port(o, bridge, &tunnel.port);
            let i = o.interfaces.get_mut(tunnel.port.as_str()).unwrap();
            *i = OvsInterface { r#type: "vxlan".into(), ..OvsInterface::default() };
            i.options.insert("remote_ip".into(), tunnel.remote_ip.to_string());
            i.options.insert("key".into(), vni.to_string());
            i.options.insert("dst_port".into(), port.to_string());
            i.bfd.insert("enable".into(), tunnel.bfd.to_string());
            i.bfd.insert("min_tx".into(), vxmesh::model::names::BFD_INTERVAL_MS.to_string());
            i.bfd.insert("min_rx".into(), vxmesh::model::names::BFD_INTERVAL_MS.to_string());
            o.ports.get_mut(tunnel.port.as_str()).unwrap().protected = tunnel.protected;
        }
        ovs::Change::RemoveTunnel { bridge, port } => {
            let o = f.part_mut::<OvsFacts>();
            if let Some(b) = o.bridges.get_mut(bridge.as_str()) {
                b.ports.retain(|p| p != port);
            }
            o.ports.remove(port);
            o.interfaces.remove(port);
        }
        ovs::Change::AttachPort { bridge, port } => add_port(f.part_mut::<OvsFacts>(), bridge, port),
        ovs::Change::RemoveBridge { bridge } => {
            f.part_mut::<OvsFacts>().bridges.remove(bridge.as_str());
        }
    }
}

/// The key a simulated host makes for itself.
pub const SIMULATED_KEY: &str = "c2ltdWxhdGVkIGhvc3Qga2V5IG9mIDMyIGJ5dGVzIQ==";

fn apply_wireguard(f: &mut HostFacts, c: &wireguard::Change) {
    use wireguard::Change;
    let fresh = !f.links.contains_key("vxm-wg");
    let w = f.part_mut::<WireguardFacts>();
    match c {
        Change::GenerateKey => w.public_key = Some(SIMULATED_KEY.into()),
        Change::Guard { cidr } => {
            w.guards.insert(*cidr);
        }
        Change::Device { dev, address, port, mtu: m } => {
            let key = w.public_key.clone().expect("the key is made before the interface");
            let peers = if fresh { vec![] } else { w.device.take().map(|d| d.peers).unwrap_or_default() };
            w.device = Some(WgDevice { public_key: key, listen_port: Some(*port), peers });
            let l = link(f, dev);
            l.kind = "wireguard".into();
            if !l.addrs.contains(address) {
                l.addrs.push(*address);
            }
            l.mtu = mtu(*m) + 50;
            l.up = true;
        }
        Change::Peer { public_key, endpoint, address, replaces, .. } => {
            let d = w.device.as_mut().expect("`wg set` fails without the interface");
            d.peers.retain(|p| Some(&p.public_key) != replaces.as_ref() && p.public_key != *public_key);
            d.peers.push(WgPeerState {
                public_key: public_key.clone(),
                endpoint: Some(endpoint.clone()),
                allowed_ips: vec![format!("{address}/32")],
                latest_handshake: 0,
                keepalive: Some(wireguard::KEEPALIVE),
            });
        }
        Change::PeerWithoutKey { peer } => panic!("simulated peers always have keys: {peer}"),
        Change::RemovePeer { public_key } => {
            if let Some(d) = w.device.as_mut() {
                d.peers.retain(|p| p.public_key != *public_key);
            }
        }
        Change::RemoveDevice { .. } | Change::RemoveGuard { .. } | Change::RemoveKey => {
            panic!("up never removes WireGuard")
        }
    }
}
