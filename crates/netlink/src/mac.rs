//! Ethernet (MAC) addresses: parsing (`aa:bb:cc:dd:ee:ff`, also with `-`), printing in the
//! lower-case colon form `ip link` uses, and the few bit tests a network plugin needs.

use std::fmt;
use std::str::FromStr;

/// A 48-bit Ethernet address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

/// The error of parsing a [`MacAddr`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address {0:?}: expected six hexadecimal bytes like aa:bb:cc:dd:ee:ff")]
pub struct ParseMacError(pub String);

impl MacAddr {
    /// `00:00:00:00:00:00` — on a VXLAN FDB entry it means "every destination" (flooding).
    pub const ZERO: MacAddr = MacAddr([0; 6]);
    /// `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    /// The six bytes.
    pub fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// From a byte slice of length 6 (a netlink attribute), else `None`.
    pub fn from_slice(bytes: &[u8]) -> Option<MacAddr> {
        <[u8; 6]>::try_from(bytes).ok().map(MacAddr)
    }

    /// Whether this is a group (multicast or broadcast) address.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Whether the locally-administered bit is set (as in the kernel's random addresses).
    pub fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }

    /// Whether this is `00:00:00:00:00:00`.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }

    /// A unicast, locally administered address derived from `seed` bytes (e.g. an IP address):
    /// `0a:58:` followed by the last four bytes of the seed, zero-padded — the scheme Kubernetes
    /// network plugins use for pod MACs derived from IPv4 addresses.
    pub fn from_seed(seed: &[u8]) -> MacAddr {
        let mut mac = [0x0a, 0x58, 0, 0, 0, 0];
        let tail = &seed[seed.len().saturating_sub(4)..];
        mac[6 - tail.len()..].copy_from_slice(tail);
        MacAddr(mac)
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(b: [u8; 6]) -> Self {
        MacAddr(b)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddr({self})")
    }
}

impl FromStr for MacAddr {
    type Err = ParseMacError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseMacError(s.to_string());
        let sep = if s.contains('-') { '-' } else { ':' };
        let mut out = [0u8; 6];
        let mut parts = s.split(sep);
        for byte in out.iter_mut() {
            let part = parts.next().ok_or_else(err)?;
            if part.is_empty() || part.len() > 2 {
                return Err(err());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(MacAddr(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        let m: MacAddr = "0A:58:0a:f4:00:1f".parse().unwrap();
        assert_eq!(m.octets(), [0x0a, 0x58, 0x0a, 0xf4, 0x00, 0x1f]);
        assert_eq!(m.to_string(), "0a:58:0a:f4:00:1f");
        assert_eq!("0a-58-0a-f4-00-1f".parse::<MacAddr>().unwrap(), m);
        assert_eq!("0:1:2:3:4:5".parse::<MacAddr>().unwrap(), MacAddr([0, 1, 2, 3, 4, 5]));
        assert_eq!(format!("{m:?}"), "MacAddr(0a:58:0a:f4:00:1f)");
    }

    #[test]
    fn parse_rejects_garbage() {
        for bad in
            ["", "0a:58:0a:f4:00", "0a:58:0a:f4:00:1f:00", "0a:58:0a:f4:00:zz", "0a:58:0a:f4:00:123", "0a::0a:f4:00:1f"]
        {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
        let e = "x".parse::<MacAddr>().unwrap_err();
        assert!(e.to_string().contains("\"x\""));
    }

    #[test]
    fn bits() {
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(MacAddr::ZERO.is_zero());
        let m: MacAddr = "0a:58:0a:f4:00:1f".parse().unwrap();
        assert!(m.is_local() && !m.is_multicast());
        assert_eq!(MacAddr::from_slice(&[1, 2, 3]), None);
        assert_eq!(MacAddr::from_slice(&[1, 2, 3, 4, 5, 6]), Some(MacAddr([1, 2, 3, 4, 5, 6])));
    }

    #[test]
    fn from_seed() {
        assert_eq!(MacAddr::from_seed(&[10, 244, 1, 5]).to_string(), "0a:58:0a:f4:01:05");
        assert_eq!(MacAddr::from_seed(&[7]).to_string(), "0a:58:00:00:00:07");
        let v6 = "fd00::1:2".parse::<std::net::Ipv6Addr>().unwrap().octets();
        assert_eq!(MacAddr::from_seed(&v6).to_string(), "0a:58:00:01:00:02");
    }
}
