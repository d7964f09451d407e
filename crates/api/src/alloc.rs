//! The service registry's allocators: cluster IPs from the service CIDR and node ports from
//! the node-port range. Both are in memory, rebuilt from the stored Services at start, and
//! guarded by one lock, so concurrent creates never get the same IP or port.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::sync::Mutex;

use rand::Rng;

/// Why an address or port could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    #[error("failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {range}")]
    IpNotInRange { ip: Ipv4Addr, range: String },
    #[error("failed to allocate IP {ip}: provided IP is already allocated")]
    IpTaken { ip: Ipv4Addr },
    #[error("failed to allocate a serviceIP: range is full")]
    IpRangeFull,
    #[error("provided port is not in the valid range. The range of valid ports is {range}")]
    PortNotInRange { range: String },
    #[error("provided port is already allocated")]
    PortTaken,
    #[error("range is full")]
    PortRangeFull,
}

/// An IPv4 CIDR such as `10.96.0.0/12`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Cidr {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl std::str::FromStr for Ipv4Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (ip, prefix) = s.split_once('/').ok_or_else(|| format!("invalid CIDR {s:?}: expected a.b.c.d/n"))?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| format!("invalid CIDR {s:?}: bad address"))?;
        let prefix: u8 =
            prefix.parse().ok().filter(|p| *p <= 32).ok_or_else(|| format!("invalid CIDR {s:?}: bad prefix length"))?;
        if prefix > 30 {
            return Err(format!("invalid CIDR {s:?}: too small for services"));
        }
        let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
        Ok(Ipv4Cidr { network: Ipv4Addr::from(u32::from(ip) & mask), prefix })
    }
}

impl std::fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Ipv4Cidr {
    fn size(&self) -> u32 {
        1u32 << (32 - self.prefix)
    }
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let base = u32::from(self.network);
        let v = u32::from(ip);
        v >= base && v - base < self.size()
    }
    /// The n-th address of the range (`nth(1)` is the `kubernetes` Service's IP).
    pub fn nth(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + n)
    }
}

struct State {
    ips: HashSet<Ipv4Addr>,
    ports: HashSet<u16>,
}

/// Cluster IP and node port allocation for Services.
pub struct ServiceAllocator {
    cidr: Ipv4Cidr,
    ports: RangeInclusive<u16>,
    state: Mutex<State>,
}

impl ServiceAllocator {
    pub fn new(cidr: Ipv4Cidr, ports: RangeInclusive<u16>) -> Self {
        ServiceAllocator { cidr, ports, state: Mutex::new(State { ips: HashSet::new(), ports: HashSet::new() }) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn cidr(&self) -> Ipv4Cidr {
        self.cidr
    }

    /// Allocates `requested`, or a random free address when `None`. The network and broadcast
    /// addresses are never handed out.
    pub fn allocate_ip(&self, requested: Option<Ipv4Addr>) -> Result<Ipv4Addr, AllocError> {
        let mut st = self.state();
        let usable = self.cidr.size() - 2;
        if let Some(ip) = requested {
            let off = u32::from(ip).wrapping_sub(u32::from(self.cidr.network));
            if !self.cidr.contains(ip) || off == 0 || off == self.cidr.size() - 1 {
                return Err(AllocError::IpNotInRange { ip, range: self.cidr.to_string() });
            }
            if !st.ips.insert(ip) {
                return Err(AllocError::IpTaken { ip });
            }
            return Ok(ip);
        }
        if st.ips.len() as u32 >= usable {
            return Err(AllocError::IpRangeFull);
        }
        // Random probing, then a linear scan from a random start, as the bitmap allocator does.
        let mut rng = rand::rng();
        let start = rng.random_range(1..=usable);
        for i in 0..usable {
            let off = (start - 1 + i) % usable + 1;
            let ip = self.cidr.nth(off);
            if st.ips.insert(ip) {
                return Ok(ip);
            }
        }
        Err(AllocError::IpRangeFull)
    }

    pub fn release_ip(&self, ip: Ipv4Addr) {
        self.state().ips.remove(&ip);
    }

    pub fn allocate_port(&self, requested: Option<u16>) -> Result<u16, AllocError> {
        let mut st = self.state();
        let range = || format!("{}-{}", self.ports.start(), self.ports.end());
        if let Some(p) = requested {
            if !self.ports.contains(&p) {
                return Err(AllocError::PortNotInRange { range: range() });
            }
            return if st.ports.insert(p) { Ok(p) } else { Err(AllocError::PortTaken) };
        }
        let n = (*self.ports.end() - *self.ports.start()) as u32 + 1;
        let start = rand::rng().random_range(0..n);
        for i in 0..n {
            let p = *self.ports.start() + ((start + i) % n) as u16;
            if st.ports.insert(p) {
                return Ok(p);
            }
        }
        Err(AllocError::PortRangeFull)
    }

    pub fn release_port(&self, port: u16) {
        self.state().ports.remove(&port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ips_are_unique_and_checked() {
        let a = ServiceAllocator::new("10.96.0.0/29".parse().unwrap(), 30000..=30001);
        assert_eq!(a.allocate_ip(Some("10.96.0.1".parse().unwrap())), Ok("10.96.0.1".parse().unwrap()));
        assert!(matches!(a.allocate_ip(Some("10.96.0.1".parse().unwrap())), Err(AllocError::IpTaken { .. })));
        assert!(matches!(a.allocate_ip(Some("10.97.0.1".parse().unwrap())), Err(AllocError::IpNotInRange { .. })));
        assert!(matches!(a.allocate_ip(Some("10.96.0.0".parse().unwrap())), Err(AllocError::IpNotInRange { .. })));
        let mut got: HashSet<Ipv4Addr> = (0..5).map(|_| a.allocate_ip(None).unwrap()).collect();
        got.insert("10.96.0.1".parse().unwrap());
        assert_eq!(got.len(), 6);
        assert_eq!(a.allocate_ip(None), Err(AllocError::IpRangeFull));
        a.release_ip("10.96.0.3".parse().unwrap());
        assert_eq!(a.allocate_ip(None), Ok("10.96.0.3".parse().unwrap()));
    }

    #[test]
    fn ports_are_unique_and_checked() {
        let a = ServiceAllocator::new("10.96.0.0/12".parse().unwrap(), 30000..=30001);
        assert_eq!(a.allocate_port(Some(30001)), Ok(30001));
        assert_eq!(a.allocate_port(Some(30001)), Err(AllocError::PortTaken));
        assert!(matches!(a.allocate_port(Some(80)), Err(AllocError::PortNotInRange { .. })));
        assert_eq!(a.allocate_port(None), Ok(30000));
        assert_eq!(a.allocate_port(None), Err(AllocError::PortRangeFull));
    }

    #[test]
    fn cidr_parsing() {
        let c: Ipv4Cidr = "10.96.3.4/12".parse().unwrap();
        assert_eq!(c.to_string(), "10.96.0.0/12");
        assert!("10.96.0.0".parse::<Ipv4Cidr>().is_err());
        assert!("10.96.0.0/33".parse::<Ipv4Cidr>().is_err());
    }
}
