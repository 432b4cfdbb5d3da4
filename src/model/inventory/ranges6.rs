//! IPv6 ranges a tunnel endpoint (`underlay_ip`, `public_ip`) must stay out of, each with the reason the other
//! hosts could not reach it.

use std::net::Ipv6Addr;

use ipnet::Ipv6Net;

/// A range with a special meaning to every IPv6 stack.
pub struct Special6 {
    pub net: Ipv6Net,
    /// What the range is, as the RFCs name it.
    pub what: &'static str,
    /// Why the other hosts cannot send tunnels there.
    pub why: &'static str,
}

impl Special6 {
    /// `` `fe80::/10` (link-local: ...) ``, the way messages name a range (as the IPv4 ones).
    pub fn describe(&self) -> String {
        format!("`{}` ({}: {})", self.net, self.what, self.why)
    }
}

const fn net(segments: [u16; 8], prefix: u8) -> Ipv6Net {
    let [a, b, c, d, e, f, g, h] = segments;
    Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), prefix)
}

/// In the order they are checked: the first match names the problem (`::` and `::1` lie inside `::/96`).
/// Documentation (2001:db8::/32) and ULA (fc00::/7) addresses are fine: labs and private underlays use them.
pub const SPECIAL6: [Special6; 7] = [
    Special6 { net: net([0; 8], 128), what: "unspecified", why: "it means no address at all and is never routed" },
    Special6 { net: net([0, 0, 0, 0, 0, 0, 0, 1], 128), what: "loopback", why: "it never leaves a host" },
    Special6 {
        net: net([0, 0, 0, 0, 0, 0xffff, 0, 0], 96),
        what: "IPv4-mapped",
        why: "it stands for an IPv4 address inside an IPv6 socket and never appears on the wire; write the IPv4 address",
    },
    Special6 {
        net: net([0; 8], 96),
        what: "IPv4-compatible",
        why: "deprecated by RFC 4291 and never routed; write the IPv4 address",
    },
    Special6 {
        net: net([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),
        what: "link-local",
        why: "it is never routed, and reaching it needs an interface (a zone) an inventory cannot give",
    },
    Special6 {
        net: net([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10),
        what: "site-local",
        why: "deprecated by RFC 3879; use a ULA (fd00::/8) or global address",
    },
    Special6 { net: net([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), what: "multicast", why: "it addresses groups, not hosts" },
];

/// The special range `ip` lies in, when it cannot be a tunnel endpoint.
pub fn non_unicast6(ip: Ipv6Addr) -> Option<&'static Special6> {
    SPECIAL6.iter().find(|s| s.net.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_special_range_is_found_and_usable_ones_are_not() {
        let what = |s: &str| non_unicast6(s.parse().unwrap()).map(|s| s.what);
        assert_eq!(what("::"), Some("unspecified"));
        assert_eq!(what("::1"), Some("loopback"));
        assert_eq!(what("::ffff:10.0.0.1"), Some("IPv4-mapped"));
        assert_eq!(what("::10.0.0.1"), Some("IPv4-compatible"));
        assert_eq!(what("fe80::1"), Some("link-local"));
        assert_eq!(what("febf::1"), Some("link-local"));
        assert_eq!(what("fec0::1"), Some("site-local"));
        assert_eq!(what("ff02::1"), Some("multicast"));
        for fine in ["2001:db8::11", "fd00::2", "fd78::11", "2a01:4f8::1", "fc00::1"] {
            assert_eq!(what(fine), None, "{fine}");
        }
    }
}
