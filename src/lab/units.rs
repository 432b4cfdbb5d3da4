//! The systemd units a lab node boots with, written into the node's own /etc layer when the lab is made: the
//! distribution's units enabled as on a fresh host with these packages, the lab's own (underlay address, busybox
//! image, readiness signal), and masks for what would act on the machine itself.

use std::path::{Path, PathBuf};

use super::sys::lab_err;
use crate::error::Result;

const DISTRO: &str = "/lib/systemd/system";
const NODE_UNITS: &str = "/etc/systemd/system";

/// Units that would act on the machine rather than the node (devices, kernel settings and modules, binfmt, the
/// kernel's entropy, its /var/tmp) or have nothing to do in a container (consoles, a root to remount, system
/// users and static device nodes the machine already has). The last three are on the boot's critical path.
const MASKED: &[&str] = &[
    "systemd-udevd.service",
    "systemd-udev-trigger.service",
    "systemd-udev-settle.service",
    "systemd-udevd-control.socket",
    "systemd-udevd-kernel.socket",
    "systemd-sysctl.service",
    "systemd-modules-load.service",
    "kmod-static-nodes.service",
    "systemd-binfmt.service",
    "proc-sys-fs-binfmt_misc.automount",
    "systemd-random-seed.service",
    "systemd-tmpfiles-clean.timer",
    "getty.target",
    "console-getty.service",
    "systemd-remount-fs.service",
    "systemd-sysusers.service",
    "systemd-tmpfiles-setup-dev.service",
];

const FIREWALLD: &str = "firewalld.service";
/// The name D-Bus activates firewalld by; without it, `firewall-cmd` on a node without `--firewalld` finds
/// nothing to start, as on a host where firewalld is not enabled.
const FIREWALLD_ALIAS: &str = "dbus-org.fedoraproject.FirewallD1.service";

const OVS_UNITS: &[&str] = &["openvswitch-switch.service", "ovsdb-server.service", "ovs-vswitchd.service"];

/// One node, as its units need it.
pub struct NodeUnits<'a> {
    /// The node's directory on the machine (seen at the same path inside the node).
    pub node_dir: &'a Path,
    /// node-boot.sh, whose `--ready` mode the readiness unit runs.
    pub boot_script: &'a Path,
    pub busybox_tar: &'a Path,
    /// The underlay address with its prefix, and the gateway.
    pub addr: String,
    pub gateway: String,
    /// No Open vSwitch on this host (the kernel backend).
    pub kernel: bool,
    /// No docker (`--light`).
    pub light: bool,
    /// firewalld runs (`--firewalld`); otherwise it stays off, whatever the machine's own /etc enables.
    pub firewalld: bool,
    /// In a lab with sites: the site's NIC (`eth1`), which carries the tunnels and the default route; `eth0`
    /// then only reaches the management network (SSH).
    pub site: Option<&'a super::sites::SiteLink>,
}

impl NodeUnits<'_> {
    /// Writes every unit and link into `dir`, the node's (empty, opaque) /etc/systemd/system layer.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let wants = dir.join("multi-user.target.wants");
        let sockets = dir.join("sockets.target.wants");
        for d in [&wants, &sockets] {
            std::fs::create_dir_all(d).map_err(|e| lab_err(format!("{}: {e}", d.display())))?;
        }
        link(&distro("multi-user.target"), &dir.join("default.target"))?;
        for m in MASKED {
            link(Path::new("/dev/null"), &dir.join(m))?;
        }
        let mut need = vec!["lab-underlay.service", "ssh.service"];
        let mut enabled = vec!["ssh.service"];
        if self.kernel {
            for m in OVS_UNITS {
                link(Path::new("/dev/null"), &dir.join(m))?;
            }
        } else {
            enabled.push("openvswitch-switch.service");
            need.push("openvswitch-switch.service");
        }
        if self.firewalld {
            // As the package enables it: the unit, and the alias D-Bus activation asks systemd for. Before docker
            // (docker.service is ordered after firewalld.service): docker then puts its bridges in its own zone.
            enabled.push(FIREWALLD);
            need.push(FIREWALLD);
            link(&distro(FIREWALLD), &dir.join(FIREWALLD_ALIAS))?;
        }
        if !self.light {
            enabled.extend(["containerd.service", "docker.service"]);
            link(&distro("docker.socket"), &sockets.join("docker.socket"))?;
            need.extend(["docker.service", "lab-busybox.service"]);
            write(dir, "lab-busybox.service", &self.busybox())?;
        }
        for u in enabled {
            link(&distro(u), &wants.join(u))?;
        }
        write(dir, "lab-underlay.service", &self.underlay())?;
        write(dir, "lab-ready.service", &self.ready(&need))?;
        // As the node sees them: `dir` is the upper layer of its /etc.
        for u in need.iter().filter(|u| u.starts_with("lab-")).chain(&["lab-ready.service"]) {
            link(&Path::new(NODE_UNITS).join(u), &wants.join(u))?;
        }
        Ok(())
    }

    /// The underlay address, configured as networking.service would: before network.target, so sshd (after it)
    /// can bind to it and vxmesh.service (after network-online.target) finds it. `Before=` alone orders nothing
    /// unless something pulls network.target in.
    fn underlay(&self) -> String {
        let (addr, gw) = (&self.addr, &self.gateway);
        let mut u = String::from(
            "[Unit]\nDescription=vxmesh lab: this host's underlay address\nBefore=network.target\nWants=network.target\n",
        );
        if !self.kernel {
            u.push_str("After=openvswitch-switch.service ovs-vswitchd.service\n");
        }
        u.push_str("\n[Service]\nType=oneshot\nRemainAfterExit=yes\n");
        if let Some(l) = self.site {
            u.push_str(&format!(
                "ExecStart=ip link set eth0 up\nExecStart=ip addr replace {addr} dev eth0\n\
                 ExecStart=ip link set eth1 mtu {mtu} up\nExecStart=ip addr replace {u}/{p} dev eth1\n\
                 ExecStart=ip route replace default via {g} dev eth1\n",
                mtu = l.mtu,
                u = l.underlay,
                p = l.prefix,
                g = l.gateway,
            ));
        } else if self.kernel {
            u.push_str(&format!(
                "ExecStart=ip link set eth0 up\nExecStart=ip addr replace {addr} dev eth0\n\
                 ExecStart=ip route replace default via {gw} dev eth0\n"
            ));
        } else {
            // The underlay address lives on br-phy, as on OVS-DPDK hosts: the userspace datapath routes tunnels
            // through it. A veth feeding OVS's userspace datapath with TX checksum offload on passes ICMP but
            // breaks TCP. OVS reads eth0 through a packet socket, so the kernel still sees what arrives there and,
            // by default, answers ARP for br-phy's address with eth0's own MAC; peers' OVS tunnel neighbour caches
            // then keep whichever answer came last, and with eth0's their tunnels to this host never come up (BFD
            // down, pairs failing at random). A real OVS-DPDK host's NIC has no kernel stack: no ARP from eth0.
            u.push_str(&format!(
                "ExecStart=ethtool -K eth0 tx off\nExecStart=sysctl -qw net.ipv4.conf.eth0.arp_ignore=8\n\
                 ExecStart=ovs-vsctl --may-exist add-br br-phy -- set bridge br-phy datapath_type=netdev -- --may-exist add-port br-phy eth0\n\
                 ExecStart=ip link set eth0 up\nExecStart=ip addr replace {addr} dev br-phy\n\
                 ExecStart=ip link set br-phy up\nExecStart=ip route replace default via {gw} dev br-phy\n"
            ));
        }
        u
    }

    /// Nothing can be pulled: the lab's busybox image, imported once docker answers.
    fn busybox(&self) -> String {
        format!(
            "[Unit]\nDescription=vxmesh lab: busybox:latest for containers (nothing can be pulled)\n\
             Requires=docker.service\nAfter=docker.service\n\n[Service]\nType=oneshot\nRemainAfterExit=yes\n\
             ExecStart=sh -c 'docker image inspect busybox:latest >/dev/null 2>&1 || docker import {} busybox:latest'\n",
            self.busybox_tar.display()
        )
    }

    /// Tells the lab the boot is over, after everything multi-user.target pulled in (vxmesh.service included),
    /// or which unit the lab needs did not start. `DefaultDependencies=no`: a target orders itself after the
    /// units it wants, which would be a cycle with `After=multi-user.target`.
    fn ready(&self, need: &[&str]) -> String {
        format!(
            "[Unit]\nDescription=vxmesh lab: tell the lab this host has booted\nDefaultDependencies=no\n\
             After=multi-user.target\n\n[Service]\nType=oneshot\nExecStart=bash {} --ready {} {}\n",
            self.boot_script.display(),
            self.node_dir.display(),
            need.join(" ")
        )
    }
}

fn distro(unit: &str) -> PathBuf {
    Path::new(DISTRO).join(unit)
}

fn write(dir: &Path, name: &str, text: &str) -> Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(|e| lab_err(format!("{}: {e}", path.display())))
}

/// `ln -sfn target link`.
fn link(target: &Path, link: &Path) -> Result<()> {
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(target, link).map_err(|e| lab_err(format!("{}: {e}", link.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(kernel: bool, light: bool) -> NodeUnits<'static> {
        node_with(kernel, light, false)
    }

    fn node_with(kernel: bool, light: bool, firewalld: bool) -> NodeUnits<'static> {
        NodeUnits {
            node_dir: Path::new("/var/lib/vxmesh-lab/t/node1"),
            boot_script: Path::new("/var/lib/vxmesh-lab/t/node-boot.sh"),
            busybox_tar: Path::new("/var/lib/vxmesh-lab/t/busybox.tar"),
            addr: "192.168.77.11/24".into(),
            gateway: "192.168.77.1".into(),
            kernel,
            light,
            firewalld,
            site: None,
        }
    }

    #[test]
    fn the_lab_waits_for_what_each_kind_of_node_runs() {
        let ready = |n: NodeUnits| n.ready(&[]);
        assert!(ready(node(false, false)).contains("ExecStart=bash /var/lib/vxmesh-lab/t/node-boot.sh --ready"));
        let dir = std::env::temp_dir().join(format!("vxmesh-units-{}", std::process::id()));
        for (kernel, light, wanted, absent) in [
            (false, false, &["openvswitch-switch.service", "docker.service", "lab-busybox.service"][..], &[][..]),
            (true, false, &["docker.service"], &["openvswitch-switch.service"]),
            (false, true, &["openvswitch-switch.service"], &["docker.service", "lab-busybox.service"]),
        ] {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            node(kernel, light).write(&dir).unwrap();
            let ready = std::fs::read_to_string(dir.join("lab-ready.service")).unwrap();
            let exec = ready.lines().find(|l| l.starts_with("ExecStart=")).unwrap();
            for u in wanted {
                assert!(exec.split(' ').any(|w| w == *u), "{kernel} {light}: waits for {u}: {exec}");
                assert!(dir.join("multi-user.target.wants").join(u).symlink_metadata().is_ok(), "{u} is enabled");
            }
            for u in absent {
                assert!(!exec.split(' ').any(|w| w == *u), "{kernel} {light}: does not wait for {u}: {exec}");
                assert!(dir.join("multi-user.target.wants").join(u).symlink_metadata().is_err(), "{u} is not enabled");
            }
            let masked = std::fs::read_link(dir.join("openvswitch-switch.service")).ok();
            assert_eq!(masked.as_deref() == Some(Path::new("/dev/null")), kernel, "OVS masked only without OVS");
            for u in [FIREWALLD, FIREWALLD_ALIAS] {
                assert!(dir.join("multi-user.target.wants").join(u).symlink_metadata().is_err(), "{u} is off");
                assert!(dir.join(u).symlink_metadata().is_err(), "{u} is off");
            }
            assert!(!exec.contains(FIREWALLD), "no wait for firewalld: {exec}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn firewalld_runs_only_where_asked_and_answers_d_bus() {
        let dir = std::env::temp_dir().join(format!("vxmesh-units-fwd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        node_with(true, false, true).write(&dir).unwrap();
        let ready = std::fs::read_to_string(dir.join("lab-ready.service")).unwrap();
        assert!(ready.split([' ', '\n']).any(|w| w == FIREWALLD), "waits for firewalld: {ready}");
        let unit = distro(FIREWALLD);
        assert_eq!(std::fs::read_link(dir.join("multi-user.target.wants").join(FIREWALLD)).unwrap(), unit);
        assert_eq!(std::fs::read_link(dir.join(FIREWALLD_ALIAS)).unwrap(), unit, "D-Bus activation finds it");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
