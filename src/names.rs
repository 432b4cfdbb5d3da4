//! Names of every device vxmesh creates on a host: derived from the inventory, deterministic, and within Linux's 15 bytes.

/// Linux interface names hold at most 15 bytes (IFNAMSIZ 16 with the trailing NUL).
pub const IFNAME_MAX: usize = 15;

/// The OVS bridge every host gets.
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

/// The comment tagging every firewall and NAT rule vxmesh owns.
pub const RULE_TAG: &str = "vxmesh";

/// iptables chains vxmesh owns, one per purpose, so removing them is exact.
pub const NAT_CHAIN: &str = "VXMESH-NAT";
pub const FORWARD_CHAIN: &str = "VXMESH-FWD";
pub const VXLAN_CHAIN: &str = "VXMESH-VXLAN";

/// BFD's transmit and receive intervals on tunnels, in ms. OVS's default (100 ms) costs every host 10 packets a
/// second per peer through its datapath; at 1 s a dead peer still shows within ~3 s, at a tenth of the cost.
pub const BFD_INTERVAL_MS: u32 = 1000;

/// The nftables table vxmesh owns when the firewall backend is nftables.
pub const NFT_TABLE: &str = "vxmesh";

/// The tunnel port on every node that leads to `peer`: the same name on every host.
pub fn tunnel_port(peer: &str) -> String {
    format!("{TUNNEL_PREFIX}{peer}")
}

/// The Linux bridge docker creates for a `mode: network` docker network.
pub fn docker_bridge(network: &str) -> String {
    format!("{DOCKER_BRIDGE_PREFIX}{network}")
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
        assert_eq!(tunnel_port(&"n".repeat(NODE_NAME_MAX)).len(), IFNAME_MAX);
        assert_eq!(docker_bridge(&"d".repeat(NETWORK_NAME_MAX)).len(), IFNAME_MAX);
        for fixed in [SWITCH_BRIDGE, VETH_SWITCH_END, VETH_DOCKER_END, DOCKER0] {
            assert!(fixed.len() <= IFNAME_MAX, "{fixed}");
        }
    }
}
