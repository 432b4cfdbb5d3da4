//! Names of every device, chain and table vxmesh creates on a host: derived from the validated inventory,
//! deterministic, and within Linux's 15 bytes. A device name is an [`IfName`], which only this module makes.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

/// Linux interface names hold at most 15 bytes (IFNAMSIZ 16 with the trailing NUL).
pub const IFNAME_MAX: usize = 15;

/// A network device name that is valid by construction: 1 to 15 bytes of letters, digits, `-` and `_`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct IfName(Arc<str>);

impl IfName {
    /// `None` for anything but a safe interface name: the only way to make one.
    fn checked(s: &str) -> Option<IfName> {
        let ok = !s.is_empty()
            && s.len() <= IFNAME_MAX
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && !s.starts_with('-');
        ok.then(|| IfName(Arc::from(s)))
    }

    fn fixed(s: &'static str) -> IfName {
        IfName::checked(s).expect("constant names are valid")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::ops::Deref for IfName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for IfName {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for IfName {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for IfName {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

/// The bridge every host gets (OVS or Linux).
pub const SWITCH_BRIDGE: &str = "sw0";

/// The veth end plugged into `sw0`.
pub const VETH_SWITCH_END: &str = "vxm-sw0";

/// The veth end enslaved to the docker bridge.
pub const VETH_DOCKER_END: &str = "vxm-dkr";

/// Prefix of tunnel ports; every port on `sw0` with it belongs to vxmesh.
pub const TUNNEL_PREFIX: &str = "vx-";

/// Prefix of the Linux bridge docker creates for the mesh network.
pub const DOCKER_BRIDGE_PREFIX: &str = "br-";

/// The bridge of docker's default network, used in `docker0` mode.
pub const DOCKER0: &str = "docker0";

pub fn switch_bridge() -> IfName {
    IfName::fixed(SWITCH_BRIDGE)
}

pub fn veth_switch_end() -> IfName {
    IfName::fixed(VETH_SWITCH_END)
}

pub fn veth_docker_end() -> IfName {
    IfName::fixed(VETH_DOCKER_END)
}

/// The kernel backend's VXLAN device, in `sw0`.
pub const VXLAN_DEVICE: &str = "vxm-vxlan";

pub fn vxlan_device() -> IfName {
    IfName::fixed(VXLAN_DEVICE)
}

/// A throwaway device the facts script makes (and removes) to learn whether the kernel has VXLAN.
pub fn vxlan_probe() -> IfName {
    IfName::fixed("vxm-probe")
}

/// The WireGuard interface's name as a literal, for the fixed shell text that names it (`concat!`).
macro_rules! wireguard_device_name {
    () => {
        "vxm-wg"
    };
}
pub(crate) use wireguard_device_name;

/// The WireGuard interface the tunnels run over, when encryption is on.
pub const WIREGUARD_DEVICE: &str = wireguard_device_name!();

/// wireguard-go's control socket for the interface (where wg-quick's userspace interfaces keep theirs).
pub const WIREGUARD_SOCKET: &str = concat!("/var/run/wireguard/", wireguard_device_name!(), ".sock");

pub fn wireguard_device() -> IfName {
    IfName::fixed(WIREGUARD_DEVICE)
}

/// A throwaway device the facts script makes (and removes) to learn whether the kernel has WireGuard.
pub fn wireguard_probe() -> IfName {
    IfName::fixed("vxm-wgprobe")
}

/// The directory of vxmesh's own files on a host, as a literal for `concat!` (fixed shell text names it too).
macro_rules! state_dir {
    () => {
        "/etc/vxmesh"
    };
}
pub(crate) use state_dir;

/// The directory of vxmesh's own files on a host: the boot script, the record of the last change, the WireGuard key.
pub const STATE_DIR: &str = state_dir!();

/// The script the boot unit runs.
pub const BOOT_SCRIPT: &str = concat!(state_dir!(), "/boot.sh");

/// The file recording the fingerprint of the plan vxmesh last changed the host from, and when; as a literal for
/// the fixed shell text that writes it.
macro_rules! applied_file {
    () => {
        concat!($crate::model::names::state_dir!(), "/applied")
    };
}
pub(crate) use applied_file;

/// The fingerprint of the plan vxmesh last changed the host from, and when.
pub const APPLIED: &str = applied_file!();

/// Where the host keeps its WireGuard private key: made there, readable by root only, never sent anywhere.
pub const WIREGUARD_KEY: &str = concat!(state_dir!(), "/wireguard.key");

pub fn docker0() -> IfName {
    IfName::fixed(DOCKER0)
}

/// Names across hosts (`cluster.dns`): the directory of the name server's configuration and the watcher script.
pub const DNS_DIR: &str = concat!(state_dir!(), "/dns");

/// dnsmasq's configuration for the mesh's names.
pub const DNS_CONFIG: &str = concat!(state_dir!(), "/dns/dnsmasq.conf");

/// The script that follows docker's events, publishes this host's names and fetches its peers'.
pub const DNS_WATCHER: &str = concat!(state_dir!(), "/dns/watch.sh");

/// Runtime records (hosts files dnsmasq reads by inotify, the file peers fetch): in /run, so a reboot starts from
/// what docker runs then, never from names of containers that are gone.
pub const DNS_RUN_DIR: &str = "/run/vxmesh-dns";

/// The name server's unit (dnsmasq) and the watcher's, with their files and the links that enable them.
pub const DNS_UNIT: &str = "vxmesh-dns.service";
pub const DNS_WATCH_UNIT: &str = "vxmesh-dns-watch.service";
pub const DNS_UNIT_PATH: &str = "/etc/systemd/system/vxmesh-dns.service";
pub const DNS_WATCH_UNIT_PATH: &str = "/etc/systemd/system/vxmesh-dns-watch.service";
pub const DNS_UNIT_LINK: &str = "/etc/systemd/system/multi-user.target.wants/vxmesh-dns.service";
pub const DNS_WATCH_UNIT_LINK: &str = "/etc/systemd/system/multi-user.target.wants/vxmesh-dns-watch.service";

/// iptables chains of the names: the mesh's DNS and TFTP ports closed to all but the mesh (filter, from INPUT),
/// and containers' queries for the cluster's domain sent to this host's server (nat, from PREROUTING).
pub const DNS_CHAIN: &str = "VXMESH-DNS";
pub const DNS_NAT_CHAIN: &str = "VXMESH-DNSNAT";

/// The comment tagging every firewall and NAT rule vxmesh owns.
pub const RULE_TAG: &str = "vxmesh";

/// iptables chains vxmesh owns, one per purpose, so removing them is exact.
pub const NAT_CHAIN: &str = "VXMESH-NAT";
pub const FORWARD_CHAIN: &str = "VXMESH-FWD";
pub const VXLAN_CHAIN: &str = "VXMESH-VXLAN";
pub const WIREGUARD_CHAIN: &str = "VXMESH-WG";

/// BFD's transmit and receive intervals on tunnels, in ms. OVS's default (100 ms) costs every host 10 packets a
/// second per peer through its datapath; at 1 s a dead peer still shows within ~3 s, at a tenth of the cost.
pub const BFD_INTERVAL_MS: u32 = 1000;

/// The nftables table vxmesh owns when the firewall backend is nftables.
pub const NFT_TABLE: &str = "vxmesh";

/// The tunnel port on every node that leads to `peer`: the same name on every host.
/// `None` when `peer` is not a valid node name (validation reports it; the plan only sees valid ones).
pub fn tunnel_port(peer: &str) -> Option<IfName> {
    IfName::checked(&format!("{TUNNEL_PREFIX}{peer}"))
}

/// The Linux bridge docker creates for a `mode: network` docker network; `None` for an invalid network name.
pub fn docker_bridge(network: &str) -> Option<IfName> {
    IfName::checked(&format!("{DOCKER_BRIDGE_PREFIX}{network}"))
}

/// Longest node name whose tunnel port name still fits.
pub const NODE_NAME_MAX: usize = IFNAME_MAX - TUNNEL_PREFIX.len();

/// Longest docker network name whose bridge name still fits.
pub const NETWORK_NAME_MAX: usize = IFNAME_MAX - DOCKER_BRIDGE_PREFIX.len();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_allowed_names_fit_ifnamsiz() {
        assert_eq!(tunnel_port(&"n".repeat(NODE_NAME_MAX)).unwrap().len(), IFNAME_MAX);
        assert_eq!(docker_bridge(&"d".repeat(NETWORK_NAME_MAX)).unwrap().len(), IFNAME_MAX);
        assert!(tunnel_port(&"n".repeat(NODE_NAME_MAX + 1)).is_none());
        for fixed in [SWITCH_BRIDGE, VETH_SWITCH_END, VETH_DOCKER_END, DOCKER0, WIREGUARD_DEVICE, "vxm-wgprobe"] {
            assert!(IfName::checked(fixed).is_some(), "{fixed}");
        }
    }

    /// Renaming a host-side name here must be enough: no other source file may spell it (the lab keeps its own
    /// files elsewhere and is not the product).
    #[test]
    fn host_paths_and_the_wireguard_device_are_spelled_only_here() {
        fn files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for e in std::fs::read_dir(dir).expect("src is readable") {
                let p = e.expect("a directory entry").path();
                if p.is_dir() {
                    files(&p, out);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    out.push(p);
                }
            }
        }
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut all = vec![];
        files(&src, &mut all);
        let this = src.join("model").join("names.rs");
        let mut offenders = vec![];
        for f in all.iter().filter(|f| **f != this && !f.starts_with(src.join("lab"))) {
            let text = std::fs::read_to_string(f).expect("a readable source file");
            for literal in [STATE_DIR, WIREGUARD_DEVICE] {
                if text.contains(literal) {
                    offenders.push(format!("{} spells {literal}", f.display()));
                }
            }
        }
        assert!(all.len() > 20, "found only {} source files under {}", all.len(), src.display());
        assert!(offenders.is_empty(), "use model::names instead:\n{}", offenders.join("\n"));
        assert!(BOOT_SCRIPT.starts_with(STATE_DIR) && WIREGUARD_SOCKET.contains(WIREGUARD_DEVICE));
    }

    #[test]
    fn only_safe_names_can_be_made() {
        for bad in ["a;b", "a b", "$(id)", "a\nb", "a'b", "x`y`"] {
            assert!(tunnel_port(bad).is_none(), "{bad:?}");
            assert!(docker_bridge(bad).is_none(), "{bad:?}");
        }
        for bad in ["", "-x", "a;b", "a\nb"] {
            assert!(IfName::checked(bad).is_none(), "{bad:?}");
        }
    }
}
