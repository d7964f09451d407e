//! Address ranges of host-local IPAM: a [`Range`] is a subnet with an inclusive `rangeStart` …
//! `rangeEnd` and a gateway; a [`RangeSet`] is a list of ranges of one address family that one
//! address is taken from (dual-stack uses one set per family). Defaults and checks are the
//! reference plugin's: the gateway defaults to the subnet's first address, `rangeStart` to the
//! first address after the network address, `rangeEnd` to the last address (IPv4: before the
//! broadcast address); /31, /32, /127 and /128 subnets are too small.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// An address as a number, with its family.
pub fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u32::from(v4) as u128,
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address `n` in the family of `like`.
pub fn from_u128(like: IpAddr, n: u128) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(n as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

/// The address after `ip` (wrapping at the end of the family's space).
pub fn next_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4).wrapping_add(1))),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6).wrapping_add(1))),
    }
}

/// The first address after the network address of `subnet` (the default gateway, `.1`).
pub fn first_host(subnet: &IpNet) -> IpAddr {
    next_ip(subnet.network())
}

/// One range of a range set, canonical (all fields filled and checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// The subnet, as a network address with its prefix length.
    pub subnet: IpNet,
    /// The first address handed out (inclusive).
    pub start: IpAddr,
    /// The last address handed out (inclusive).
    pub end: IpAddr,
    /// The gateway: never handed out, returned with every address of this range.
    pub gateway: IpAddr,
}

impl Range {
    /// Builds a canonical range from the configuration's fields, with the reference plugin's
    /// defaults and checks. Returns what is wrong as a message.
    pub fn new(
        subnet: IpNet,
        start: Option<IpAddr>,
        end: Option<IpAddr>,
        gateway: Option<IpAddr>,
    ) -> Result<Range, String> {
        let (ones, bits) = (subnet.prefix_len(), subnet.max_prefix_len());
        if ones > bits - 2 {
            return Err(format!("network {subnet} is too small to allocate from"));
        }
        if subnet.addr() != subnet.network() {
            return Err(format!(
                "network {subnet} has host bits set: for a prefix length of {ones} the network address is {}",
                subnet.network()
            ));
        }
        let same_family = |ip: &IpAddr| ip.is_ipv4() == subnet.addr().is_ipv4();
        let gateway = match gateway {
            Some(gw) if !same_family(&gw) => return Err(format!("gateway {gw} is not in the family of {subnet}")),
            Some(gw) => gw,
            None => first_host(&subnet),
        };
        let start = match start {
            Some(s) if !(same_family(&s) && subnet.contains(&s)) => {
                return Err(format!("rangeStart {s} is not in network {subnet}"))
            }
            Some(s) => s,
            None => first_host(&subnet),
        };
        let end = match end {
            Some(e) if !(same_family(&e) && subnet.contains(&e)) => {
                return Err(format!("rangeEnd {e} is not in network {subnet}"))
            }
            Some(e) => e,
            None => last_ip(&subnet),
        };
        if to_u128(start) > to_u128(end) {
            return Err(format!("rangeStart {start} is after rangeEnd {end}"));
        }
        Ok(Range { subnet, start, end, gateway })
    }

    /// True when `ip` may be handed out from this range (family, subnet and start…end).
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.start.is_ipv4()
            && self.subnet.contains(&ip)
            && (to_u128(self.start)..=to_u128(self.end)).contains(&to_u128(ip))
    }

    /// True when the two ranges share an address.
    pub fn overlaps(&self, other: &Range) -> bool {
        self.start.is_ipv4() == other.start.is_ipv4()
            && (self.contains(other.start)
                || self.contains(other.end)
                || other.contains(self.start)
                || other.contains(self.end))
    }

    /// The number of addresses from start to end.
    pub fn size(&self) -> u128 {
        to_u128(self.end) - to_u128(self.start) + 1
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// The last usable address of `subnet`: the last address, minus the broadcast address for IPv4.
pub fn last_ip(subnet: &IpNet) -> IpAddr {
    let last = subnet.broadcast();
    match last {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) - 1)),
        v6 => v6,
    }
}

/// A set of ranges of one family, from which one address is taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSet(pub Vec<Range>);

impl RangeSet {
    /// Checks the set: not empty, one address family, no two ranges overlapping.
    pub fn new(ranges: Vec<Range>) -> Result<RangeSet, String> {
        let Some(first) = ranges.first() else { return Err("empty range set".into()) };
        let v4 = first.start.is_ipv4();
        if ranges.iter().any(|r| r.start.is_ipv4() != v4) {
            return Err("mixed address families".into());
        }
        for (i, a) in ranges.iter().enumerate() {
            for b in &ranges[i + 1..] {
                if a.overlaps(b) {
                    return Err(format!("subnets {} and {} overlap", a.subnet, b.subnet));
                }
            }
        }
        Ok(RangeSet(ranges))
    }

    pub fn is_ipv4(&self) -> bool {
        self.0[0].start.is_ipv4()
    }

    /// The range `ip` belongs to.
    pub fn range_for(&self, ip: IpAddr) -> Option<&Range> {
        self.0.iter().find(|r| r.contains(ip))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.range_for(ip).is_some()
    }

    /// True when some range of `self` overlaps some range of `other`.
    pub fn overlaps(&self, other: &RangeSet) -> bool {
        self.0.iter().any(|a| other.0.iter().any(|b| a.overlaps(b)))
    }
}

impl fmt::Display for RangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(Range::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

/// Walks a range set in host-local's order: from the address after `last` (the last one
/// reserved, when it is in the set) or from the first range's start, through every range in turn,
/// wrapping around, skipping gateways, until it is back where it started.
#[derive(Debug, Clone)]
pub struct RangeIter<'a> {
    set: &'a RangeSet,
    idx: usize,
    cur: Option<IpAddr>,
    start: Option<IpAddr>,
}

impl<'a> RangeIter<'a> {
    pub fn new(set: &'a RangeSet, last_reserved: Option<IpAddr>) -> RangeIter<'a> {
        if let Some(last) = last_reserved {
            if let Some(idx) = set.0.iter().position(|r| r.contains(last)) {
                return RangeIter { set, idx, cur: Some(last), start: None };
            }
        }
        RangeIter { set, idx: 0, cur: None, start: Some(set.0[0].start) }
    }
}

impl Iterator for RangeIter<'_> {
    /// An address and the range it is in.
    type Item = (IpAddr, usize);

    fn next(&mut self) -> Option<(IpAddr, usize)> {
        loop {
            let r = &self.set.0[self.idx];
            let Some(cur) = self.cur else {
                // First call without a last reserved address: the range start, inclusive.
                self.cur = Some(r.start);
                self.start = Some(r.start);
                if r.start == r.gateway {
                    continue;
                }
                return Some((r.start, self.idx));
            };
            let next = if cur == r.end {
                self.idx = (self.idx + 1) % self.set.0.len();
                self.set.0[self.idx].start
            } else {
                next_ip(cur)
            };
            self.cur = Some(next);
            match self.start {
                None => self.start = Some(next),
                Some(s) if s == next => return None,
                Some(_) => {}
            }
            if next == self.set.0[self.idx].gateway {
                continue;
            }
            return Some((next, self.idx));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }
    fn range(subnet: &str, start: Option<&str>, end: Option<&str>, gw: Option<&str>) -> Result<Range, String> {
        Range::new(net(subnet), start.map(ip), end.map(ip), gw.map(ip))
    }

    #[test]
    fn defaults() {
        let r = range("10.1.2.0/24", None, None, None).unwrap();
        assert_eq!((r.start, r.end, r.gateway), (ip("10.1.2.1"), ip("10.1.2.254"), ip("10.1.2.1")));
        let r = range("fd00::/120", None, None, None).unwrap();
        assert_eq!((r.start, r.end, r.gateway), (ip("fd00::1"), ip("fd00::ff"), ip("fd00::1")));
        let r = range("10.1.2.0/30", None, None, None).unwrap();
        assert_eq!((r.start, r.end), (ip("10.1.2.1"), ip("10.1.2.2")));
    }

    #[test]
    fn checks() {
        assert_eq!(
            range("10.1.2.0/31", None, None, None).unwrap_err(),
            "network 10.1.2.0/31 is too small to allocate from"
        );
        assert!(range("fd00::/127", None, None, None).is_err());
        assert!(range("10.1.2.5/24", None, None, None).unwrap_err().contains("host bits set"));
        assert_eq!(
            range("10.1.2.0/24", Some("10.1.3.1"), None, None).unwrap_err(),
            "rangeStart 10.1.3.1 is not in network 10.1.2.0/24"
        );
        assert_eq!(
            range("10.1.2.0/24", None, Some("fd00::1"), None).unwrap_err(),
            "rangeEnd fd00::1 is not in network 10.1.2.0/24"
        );
        assert!(range("10.1.2.0/24", Some("10.1.2.9"), Some("10.1.2.8"), None).unwrap_err().contains("after"));
        assert!(range("10.1.2.0/24", None, None, Some("fd00::1")).is_err());
    }

    #[test]
    fn range_sets() {
        let a = range("10.1.2.0/24", None, None, None).unwrap();
        let b = range("10.1.3.0/24", None, None, None).unwrap();
        let c = range("fd00::/64", None, None, None).unwrap();
        assert!(RangeSet::new(vec![a.clone(), b.clone()]).is_ok());
        assert_eq!(RangeSet::new(vec![a.clone(), c.clone()]).unwrap_err(), "mixed address families");
        assert!(RangeSet::new(vec![a.clone(), a.clone()]).unwrap_err().contains("overlap"));
        assert_eq!(RangeSet::new(vec![]).unwrap_err(), "empty range set");
        let s = RangeSet::new(vec![a, b]).unwrap();
        assert_eq!(s.to_string(), "10.1.2.1-10.1.2.254,10.1.3.1-10.1.3.254");
        assert!(s.contains(ip("10.1.3.7")));
        assert!(!s.contains(ip("10.1.3.255")));
        assert!(!s.contains(ip("10.1.4.1")));
    }

    fn walk(set: &RangeSet, last: Option<&str>) -> Vec<String> {
        RangeIter::new(set, last.map(ip)).map(|(a, _)| a.to_string()).collect()
    }

    #[test]
    fn iteration_order() {
        let set = RangeSet::new(vec![
            range("10.1.2.0/29", None, None, None).unwrap(),
            range("10.1.3.0/29", Some("10.1.3.4"), Some("10.1.3.5"), Some("10.1.3.5")).unwrap(),
        ])
        .unwrap();
        // Gateways (.2.1 and .3.5) are skipped.
        assert_eq!(walk(&set, None), ["10.1.2.2", "10.1.2.3", "10.1.2.4", "10.1.2.5", "10.1.2.6", "10.1.3.4"]);
        // After the last reserved address, wrapping around to it, which comes last.
        assert_eq!(
            walk(&set, Some("10.1.2.4")),
            ["10.1.2.5", "10.1.2.6", "10.1.3.4", "10.1.2.2", "10.1.2.3", "10.1.2.4"]
        );
        // A last reserved address outside the set starts from the beginning.
        assert_eq!(walk(&set, Some("192.168.0.1"))[0], "10.1.2.2");
    }
}
