//! CIDR arithmetic for node IPAM: the cluster CIDR as a numbered set of equal blocks (one per
//! node), which blocks a node's pod CIDRs cover, and the lowest block nobody uses.
//!
//! Addresses are handled as `u128` (IPv4 in the low 32 bits), and the blocks in use as sorted
//! ranges of block numbers, so any cluster size costs the same.

use std::net::IpAddr;

/// The cluster CIDR cut into blocks of one prefix length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidrSet {
    v6: bool,
    /// The network address of the cluster CIDR.
    base: u128,
    prefix: u8,
    block_prefix: u8,
}

fn bits(v6: bool) -> u8 {
    if v6 {
        128
    } else {
        32
    }
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn to_ip(v6: bool, n: u128) -> IpAddr {
    if v6 {
        IpAddr::V6(n.into())
    } else {
        IpAddr::V4((n as u32).into())
    }
}

/// The mask of a prefix length in a `width`-bit address.
fn mask(width: u8, prefix: u8) -> u128 {
    if prefix == 0 {
        return 0;
    }
    let all = if width == 128 { u128::MAX } else { (1u128 << width) - 1 };
    all & !((1u128 << (width - prefix)) - 1)
}

/// Parses `address/prefix`; the address may have host bits set (they are reported separately).
pub fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, prefix) = s.trim().split_once('/')?;
    let ip: IpAddr = addr.parse().ok()?;
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) || prefix.len() > 3 {
        return None;
    }
    let prefix: u8 = prefix.parse().ok()?;
    (prefix <= bits(ip.is_ipv6())).then_some((ip, prefix))
}

impl CidrSet {
    /// The set of `cluster_cidr` cut into `/block_prefix` blocks, or why the configuration is wrong
    /// (in words meant for the person who typed the flags).
    pub fn new(cluster_cidr: &str, block_prefix: u8) -> Result<CidrSet, String> {
        if cluster_cidr.contains(',') {
            return Err(format!(
                "--cluster-cidr {cluster_cidr:?}: only one CIDR is supported (dual-stack pod CIDRs are not)"
            ));
        }
        let (ip, prefix) = parse_cidr(cluster_cidr).ok_or_else(|| {
            format!("--cluster-cidr {cluster_cidr:?} is not a CIDR: expected an address and a prefix length, like 10.244.0.0/16")
        })?;
        let v6 = ip.is_ipv6();
        let width = bits(v6);
        let n = to_u128(ip);
        let base = n & mask(width, prefix);
        if base != n {
            return Err(format!(
                "--cluster-cidr {cluster_cidr:?} has host bits set: the network is {}/{prefix}",
                to_ip(v6, base)
            ));
        }
        if block_prefix > width {
            return Err(format!(
                "--node-cidr-mask-size {block_prefix} is too long for an {} cluster CIDR (at most {width})",
                if v6 { "IPv6" } else { "IPv4" }
            ));
        }
        if block_prefix < prefix {
            return Err(format!(
                "--node-cidr-mask-size {block_prefix} must not be smaller than the prefix length of --cluster-cidr \
                 {cluster_cidr} ({prefix}): a node's block has to fit in the cluster CIDR"
            ));
        }
        Ok(CidrSet { v6, base, prefix, block_prefix })
    }

    /// How many blocks there are.
    pub fn capacity(&self) -> u128 {
        let shift = self.block_prefix - self.prefix;
        if shift >= 128 {
            u128::MAX
        } else {
            1u128 << shift
        }
    }

    fn block_size_bits(&self) -> u8 {
        bits(self.v6) - self.block_prefix
    }

    /// Block number `index`, as a CIDR string.
    pub fn block(&self, index: u128) -> String {
        let shift = self.block_size_bits();
        let offset = if shift >= 128 { 0 } else { index << shift };
        format!("{}/{}", to_ip(self.v6, self.base + offset), self.block_prefix)
    }

    /// The blocks (first and last number) a CIDR overlaps, if it overlaps the cluster CIDR at all
    /// and is of the same family. A CIDR smaller than a block occupies the block it is in.
    pub fn blocks_of(&self, cidr: &str) -> Option<(u128, u128)> {
        let (ip, prefix) = parse_cidr(cidr)?;
        if ip.is_ipv6() != self.v6 {
            return None;
        }
        let width = bits(self.v6);
        let start = to_u128(ip) & mask(width, prefix);
        let size_bits = width - prefix;
        let end = if size_bits >= 128 { u128::MAX } else { start | ((1u128 << size_bits) - 1) };
        let cluster_bits = width - self.prefix;
        let cluster_end = if cluster_bits >= 128 { u128::MAX } else { self.base | ((1u128 << cluster_bits) - 1) };
        if end < self.base || start > cluster_end {
            return None;
        }
        let (start, end) = (start.max(self.base), end.min(cluster_end));
        let shift = self.block_size_bits();
        let index = |a: u128| if shift >= 128 { 0 } else { (a - self.base) >> shift };
        Some((index(start), index(end)))
    }

    /// The lowest block number in none of the `used` ranges (inclusive, in any order).
    pub fn first_free(&self, used: &[(u128, u128)]) -> Option<u128> {
        let mut used = used.to_vec();
        used.sort_unstable();
        let mut candidate: u128 = 0;
        for (first, last) in used {
            if first > candidate {
                break;
            }
            candidate = candidate.max(last.saturating_add(1));
        }
        (candidate < self.capacity()).then_some(candidate)
    }
}

impl std::fmt::Display for CidrSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} in /{} blocks", to_ip(self.v6, self.base), self.prefix, self.block_prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_range_gives_256_blocks() {
        let set = CidrSet::new("10.244.0.0/16", 24).unwrap();
        assert_eq!(set.capacity(), 256);
        assert_eq!(set.block(0), "10.244.0.0/24");
        assert_eq!(set.block(1), "10.244.1.0/24");
        assert_eq!(set.block(255), "10.244.255.0/24");
        assert_eq!(set.blocks_of("10.244.7.0/24"), Some((7, 7)));
        assert_eq!(set.blocks_of("10.244.7.128/25"), Some((7, 7)), "a part of a block takes the block");
        assert_eq!(set.blocks_of("10.244.8.0/23"), Some((8, 9)), "a bigger CIDR takes every block it covers");
        assert_eq!(set.blocks_of("10.0.0.0/8"), Some((0, 255)));
        assert_eq!(set.blocks_of("10.245.0.0/24"), None, "outside");
        assert_eq!(set.blocks_of("fd00::/64"), None, "other family");
        assert_eq!(set.blocks_of("garbage"), None);
    }

    #[test]
    fn lowest_free_block() {
        let set = CidrSet::new("10.244.0.0/16", 24).unwrap();
        assert_eq!(set.first_free(&[]), Some(0));
        assert_eq!(set.first_free(&[(0, 0), (1, 1), (3, 3)]), Some(2));
        assert_eq!(set.first_free(&[(3, 3), (0, 2)]), Some(4), "unsorted input");
        assert_eq!(set.first_free(&[(0, 5), (2, 3), (6, 6)]), Some(7), "overlapping ranges");
        assert_eq!(set.first_free(&[(0, 255)]), None, "exhausted");
        let small = CidrSet::new("10.250.0.0/23", 24).unwrap();
        assert_eq!(small.capacity(), 2);
        assert_eq!(small.first_free(&[(0, 0), (1, 1)]), None);
    }

    #[test]
    fn ipv6_blocks() {
        let set = CidrSet::new("fd00:10:244::/56", 64).unwrap();
        assert_eq!(set.capacity(), 256);
        assert_eq!(set.block(0), "fd00:10:244::/64");
        assert_eq!(set.block(2), "fd00:10:244:2::/64");
        assert_eq!(set.blocks_of("fd00:10:244:5::/64"), Some((5, 5)));
        let huge = CidrSet::new("fd00::/8", 128).unwrap();
        assert_eq!(huge.capacity(), 1u128 << 120);
        assert_eq!(huge.first_free(&[(0, 10)]), Some(11));
        let whole = CidrSet::new("::/0", 128).unwrap();
        assert_eq!(whole.capacity(), u128::MAX);
        assert_eq!(whole.block(1), "::1/128");
    }

    #[test]
    fn configuration_errors_say_what_is_wrong() {
        let err = |c: &str, m: u8| CidrSet::new(c, m).unwrap_err();
        assert!(err("10.244.0.0", 24).contains("is not a CIDR"), "{}", err("10.244.0.0", 24));
        assert!(err("10.244.0.0/33", 24).contains("is not a CIDR"));
        assert!(err("banana/16", 24).contains("is not a CIDR"));
        assert!(err("10.244.1.0/16", 24).contains("host bits set: the network is 10.244.0.0/16"));
        assert!(err("10.244.0.0/16", 8).contains("must not be smaller than the prefix length"));
        assert!(err("10.244.0.0/16", 33).contains("too long for an IPv4"));
        assert!(err("10.244.0.0/16,fd00::/56", 24).contains("only one CIDR"));
        assert_eq!(CidrSet::new("10.244.0.0/24", 24).unwrap().capacity(), 1, "one block is allowed");
        assert_eq!(CidrSet::new(" 10.244.0.0/16 ", 24).unwrap().to_string(), "10.244.0.0/16 in /24 blocks");
    }
}
