//! The two nftables families the proxy programs: a table `ip podnet` for IPv4 and `ip6 podnet`
//! for IPv6, as kube-proxy runs one proxier per IP family. A service port belongs to the family
//! of its cluster IP; its other addresses and its endpoints are filtered by family.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

/// An nftables family of the proxy's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// `ip`: IPv4.
    Ipv4,
    /// `ip6`: IPv6.
    Ipv6,
}

impl Family {
    /// Both families, in the order they are written in a transaction.
    pub const ALL: [Family; 2] = [Family::Ipv4, Family::Ipv6];

    /// The nftables family and address expression keyword: `ip` or `ip6`.
    pub fn nft(self) -> &'static str {
        match self {
            Family::Ipv4 => "ip",
            Family::Ipv6 => "ip6",
        }
    }

    /// The nftables type of an address: `ipv4_addr` or `ipv6_addr`.
    pub fn addr_type(self) -> &'static str {
        match self {
            Family::Ipv4 => "ipv4_addr",
            Family::Ipv6 => "ipv6_addr",
        }
    }

    /// The family of an address.
    pub fn of(ip: &IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        }
    }

    /// Whether `ip` is of this family.
    pub fn has(self, ip: &IpAddr) -> bool {
        Family::of(ip) == self
    }

    /// Whether `net` is of this family.
    pub fn has_net(self, net: &IpNet) -> bool {
        Family::of(&net.addr()) == self
    }

    /// The loopback destinations that never take NodePorts (`127.0.0.0/8`, `::1`).
    pub fn loopback(self) -> &'static str {
        match self {
            Family::Ipv4 => "127.0.0.0/8",
            Family::Ipv6 => "::1",
        }
    }

    /// The socket address family (`AF_INET`, `AF_INET6`), as ctnetlink wants it.
    pub fn af(self) -> u8 {
        match self {
            Family::Ipv4 => 2,
            Family::Ipv6 => 10,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.nft())
    }
}
