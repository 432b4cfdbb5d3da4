//! Addresses and networks as text without `core::fmt`: the same characters as their `Display`, written from a
//! stack buffer.
//!
//! A 1,000-host mesh writes some ten million addresses per `up` (every tunnel, route and rule names one or two);
//! `Ipv4Addr`'s `Display` goes through the formatter's padding machinery for each octet and was a sixth of the
//! fleet benchmark's CPU. IPv6 keeps the standard library's formatting (its zero compression is not worth
//! copying), which is rare in a mesh's per-peer work.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// A value whose text can be lent without allocating (for IPv4).
pub trait AddrText: fmt::Display {
    /// Calls `k` with the value's text, exactly as `Display` writes it.
    fn with_text<R>(&self, k: impl FnOnce(&str) -> R) -> R;

    /// The text, owned.
    fn text(&self) -> String {
        self.with_text(str::to_owned)
    }

    /// Appends the text to `out`.
    fn push_text(&self, out: &mut String) {
        self.with_text(|s| out.push_str(s))
    }
}

/// Up to 21 bytes: `255.255.255.255:65535`.
struct Buf {
    bytes: [u8; 21],
    len: usize,
}

impl Buf {
    fn new() -> Buf {
        Buf { bytes: [0; 21], len: 0 }
    }

    fn push(&mut self, b: u8) {
        self.bytes[self.len] = b;
        self.len += 1;
    }

    /// A number below 256, in decimal without leading zeros.
    fn push_u8(&mut self, v: u8) {
        if v >= 100 {
            self.push(b'0' + v / 100);
        }
        if v >= 10 {
            self.push(b'0' + (v / 10) % 10);
        }
        self.push(b'0' + v % 10);
    }

    /// A port, in decimal without leading zeros.
    fn push_u16(&mut self, v: u16) {
        let digits = v.checked_ilog10().unwrap_or(0) + 1;
        for i in (0..digits).rev() {
            self.push(b'0' + (v / 10u16.pow(i) % 10) as u8);
        }
    }

    fn push_ipv4(&mut self, a: Ipv4Addr) {
        for (i, o) in a.octets().into_iter().enumerate() {
            if i > 0 {
                self.push(b'.');
            }
            self.push_u8(o);
        }
    }

    fn as_str(&self) -> &str {
        // Only ASCII digits, dots and slashes were written.
        std::str::from_utf8(&self.bytes[..self.len]).expect("ASCII")
    }
}

impl AddrText for Ipv4Addr {
    fn with_text<R>(&self, k: impl FnOnce(&str) -> R) -> R {
        let mut b = Buf::new();
        b.push_ipv4(*self);
        k(b.as_str())
    }
}

impl AddrText for Ipv4Net {
    fn with_text<R>(&self, k: impl FnOnce(&str) -> R) -> R {
        let mut b = Buf::new();
        b.push_ipv4(self.addr());
        b.push(b'/');
        b.push_u8(self.prefix_len());
        k(b.as_str())
    }
}

impl AddrText for Ipv6Addr {
    fn with_text<R>(&self, k: impl FnOnce(&str) -> R) -> R {
        k(&self.to_string())
    }
}

impl AddrText for Ipv6Net {
    fn with_text<R>(&self, k: impl FnOnce(&str) -> R) -> R {
        k(&self.to_string())
    }
}

impl AddrText for IpAddr {
    fn with_text<R>(&self, k: impl FnOnce(&str) -> R) -> R {
        match self {
            IpAddr::V4(a) => a.with_text(k),
            IpAddr::V6(a) => a.with_text(k),
        }
    }
}

impl AddrText for IpNet {
    fn with_text<R>(&self, k: impl FnOnce(&str) -> R) -> R {
        match self {
            IpNet::V4(n) => n.with_text(k),
            IpNet::V6(n) => n.with_text(k),
        }
    }
}

impl AddrText for SocketAddr {
    fn with_text<R>(&self, k: impl FnOnce(&str) -> R) -> R {
        match self {
            SocketAddr::V4(s) => {
                let mut b = Buf::new();
                b.push_ipv4(*s.ip());
                b.push(b':');
                b.push_u16(s.port());
                k(b.as_str())
            }
            SocketAddr::V6(_) => k(&self.to_string()),
        }
    }
}

impl<T: AddrText> AddrText for &T {
    fn with_text<R>(&self, k: impl FnOnce(&str) -> R) -> R {
        (**self).with_text(k)
    }
}

/// For `format!` and `write!`: the value's text through [`AddrText`] (width and alignment still apply).
pub struct Shown<T>(pub T);

impl<T: AddrText> fmt::Display for Shown<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.with_text(|s| f.pad(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn ipv4_text_is_display(bits: u32, prefix in 0u8..=32) {
            let a = Ipv4Addr::from(bits);
            prop_assert_eq!(a.text(), a.to_string());
            let n = Ipv4Net::new(a, prefix).unwrap();
            prop_assert_eq!(n.text(), n.to_string());
            prop_assert_eq!(format!("{:<20}|", Shown(n)), format!("{:<20}|", n.to_string()));
            prop_assert_eq!(IpAddr::V4(a).text(), a.to_string());
        }

        #[test]
        fn socket_text_is_display(bits: u32, v6: u128, port: u16) {
            let s = SocketAddr::from((Ipv4Addr::from(bits), port));
            prop_assert_eq!(s.text(), s.to_string());
            let s = SocketAddr::from((Ipv6Addr::from(v6), port));
            prop_assert_eq!(s.text(), s.to_string());
        }

        #[test]
        fn ipv6_text_is_display(bits: u128, prefix in 0u8..=128) {
            let a = Ipv6Addr::from(bits);
            prop_assert_eq!(IpAddr::V6(a).text(), a.to_string());
            let n = IpNet::V6(Ipv6Net::new(a, prefix).unwrap());
            prop_assert_eq!(n.text(), n.to_string());
        }
    }

    #[test]
    fn edges() {
        for a in ["0.0.0.0", "255.255.255.255", "10.0.9.100", "1.10.100.0"] {
            let ip: Ipv4Addr = a.parse().unwrap();
            assert_eq!(ip.text(), a);
            assert_eq!(Shown(ip).to_string(), a);
        }
        let n: Ipv4Net = "255.255.255.255/32".parse().unwrap();
        assert_eq!(n.text(), "255.255.255.255/32");
        for s in ["255.255.255.255:65535", "1.2.3.4:0", "10.0.0.1:9", "10.0.0.1:10", "10.0.0.1:51820"] {
            assert_eq!(s.parse::<SocketAddr>().unwrap().text(), s);
        }
    }
}
