//! Address allocation over a [`Store`], as host-local does it: a requested address is reserved
//! if it is in the set, is not the gateway and is free; otherwise the set is walked from the
//! address after the last one reserved in it (round robin) and the first free address wins. An
//! attachment (container ID + interface) gets at most one address per range set.

use std::collections::HashSet;
use std::net::IpAddr;

use super::range::{RangeIter, RangeSet};
use crate::error::{CniError, CniResult};
use crate::types::{Attachment, IpConfig};

/// Where reservations live (the on-disk store, or memory in tests). The caller holds the lock.
pub trait Store {
    /// Reserves `ip` for the attachment; false when it is already taken. Records `ip` as the
    /// last one reserved in range set `range_id`.
    fn reserve(&mut self, id: &str, ifname: &str, ip: IpAddr, range_id: &str) -> CniResult<bool>;
    /// The last address reserved in range set `range_id`.
    fn last_reserved_ip(&self, range_id: &str) -> Option<IpAddr>;
    /// The addresses held by the attachment.
    fn get_by_id(&self, id: &str, ifname: &str) -> Vec<IpAddr>;
    /// Frees every address held by the attachment; returns them.
    fn release_by_id(&mut self, id: &str, ifname: &str) -> CniResult<Vec<IpAddr>>;
    /// Every reservation: address, container ID and interface name (empty for the reference
    /// plugin's older files, which hold only the container ID).
    fn entries(&self) -> Vec<(IpAddr, String, String)>;
    /// Frees one address.
    fn release_ip(&mut self, ip: IpAddr) -> CniResult<()>;
    /// True when `ip` is reserved.
    fn is_reserved(&self, ip: IpAddr) -> bool;
}

/// Takes one address from `set` (range set number `idx`) for the attachment.
pub fn allocate(
    store: &mut dyn Store,
    set: &RangeSet,
    idx: usize,
    id: &str,
    ifname: &str,
    requested: Option<IpAddr>,
) -> CniResult<IpConfig> {
    let range_id = idx.to_string();
    if let Some(ip) = requested {
        let range = set.range_for(ip).ok_or_else(|| {
            CniError::AddressUnavailable(format!("requested IP address {ip} is not in range set {set}"))
        })?;
        if ip == range.gateway {
            return Err(CniError::AddressUnavailable(format!("requested IP address {ip} is the subnet's gateway")));
        }
        if !store.reserve(id, ifname, ip, &range_id)? {
            return Err(CniError::AddressUnavailable(format!(
                "requested IP address {ip} is not available in range set {set}"
            )));
        }
        return Ok(IpConfig {
            interface: None,
            address: ipnet::IpNet::new(ip, range.subnet.prefix_len()).expect("prefix fits"),
            gateway: Some(range.gateway),
        });
    }
    if let Some(held) = store.get_by_id(id, ifname).into_iter().find(|ip| set.contains(*ip)) {
        return Err(CniError::AddressUnavailable(format!(
            "{held} has been allocated to {id}, duplicate allocation is not allowed"
        )));
    }
    for (ip, ri) in RangeIter::new(set, store.last_reserved_ip(&range_id)) {
        if store.reserve(id, ifname, ip, &range_id)? {
            let range = &set.0[ri];
            return Ok(IpConfig {
                interface: None,
                address: ipnet::IpNet::new(ip, range.subnet.prefix_len()).expect("prefix fits"),
                gateway: Some(range.gateway),
            });
        }
    }
    Err(CniError::RangeExhausted(format!("no IP addresses available in range set: {set}")))
}

/// True when some address of `set` is free (STATUS): walks at most the reserved addresses.
pub fn has_free(store: &dyn Store, set: &RangeSet) -> bool {
    RangeIter::new(set, None).any(|(ip, _)| !store.is_reserved(ip))
}

/// GC: frees every reservation whose attachment is not in `valid` (older files, which name only
/// the container, are kept when the container has a valid attachment). Returns what was freed.
pub fn gc(store: &mut dyn Store, valid: &HashSet<Attachment>) -> CniResult<Vec<IpAddr>> {
    let ids: HashSet<&str> = valid.iter().map(|a| a.container_id.as_str()).collect();
    let mut freed = Vec::new();
    for (ip, id, ifname) in store.entries() {
        let keep = if ifname.is_empty() {
            ids.contains(id.as_str())
        } else {
            valid.contains(&Attachment { container_id: id.clone(), ifname: ifname.clone() })
        };
        if !keep {
            store.release_ip(ip)?;
            freed.push(ip);
        }
    }
    Ok(freed)
}

/// A store in memory, for tests.
#[derive(Debug, Default, Clone)]
pub struct MemStore {
    pub held: std::collections::BTreeMap<IpAddr, (String, String)>,
    pub last: std::collections::BTreeMap<String, IpAddr>,
}

impl Store for MemStore {
    fn reserve(&mut self, id: &str, ifname: &str, ip: IpAddr, range_id: &str) -> CniResult<bool> {
        if self.held.contains_key(&ip) {
            return Ok(false);
        }
        self.held.insert(ip, (id.trim().to_string(), ifname.to_string()));
        self.last.insert(range_id.to_string(), ip);
        Ok(true)
    }
    fn last_reserved_ip(&self, range_id: &str) -> Option<IpAddr> {
        self.last.get(range_id).copied()
    }
    fn get_by_id(&self, id: &str, ifname: &str) -> Vec<IpAddr> {
        self.held.iter().filter(|(_, (i, f))| i == id.trim() && f == ifname).map(|(ip, _)| *ip).collect()
    }
    fn release_by_id(&mut self, id: &str, ifname: &str) -> CniResult<Vec<IpAddr>> {
        let ips = self.get_by_id(id, ifname);
        for ip in &ips {
            self.held.remove(ip);
        }
        Ok(ips)
    }
    fn entries(&self) -> Vec<(IpAddr, String, String)> {
        self.held.iter().map(|(ip, (i, f))| (*ip, i.clone(), f.clone())).collect()
    }
    fn release_ip(&mut self, ip: IpAddr) -> CniResult<()> {
        self.held.remove(&ip);
        Ok(())
    }
    fn is_reserved(&self, ip: IpAddr) -> bool {
        self.held.contains_key(&ip)
    }
}

#[cfg(test)]
mod tests {
    use super::super::range::Range;
    use super::*;

    fn set(subnet: &str, start: Option<&str>, end: Option<&str>, gw: Option<&str>) -> RangeSet {
        let p = |s: &str| s.parse::<IpAddr>().unwrap();
        RangeSet::new(vec![Range::new(subnet.parse().unwrap(), start.map(p), end.map(p), gw.map(p)).unwrap()]).unwrap()
    }

    fn take(store: &mut MemStore, s: &RangeSet, id: &str) -> CniResult<String> {
        allocate(store, s, 0, id, "eth0", None).map(|c| c.address.to_string())
    }

    #[test]
    fn allocation_order_skips_the_gateway_and_goes_round_robin() {
        let s = set("10.1.2.0/29", None, None, None);
        let mut st = MemStore::default();
        assert_eq!(take(&mut st, &s, "a").unwrap(), "10.1.2.2/29");
        assert_eq!(take(&mut st, &s, "b").unwrap(), "10.1.2.3/29");
        st.release_by_id("a", "eth0").unwrap();
        // Round robin: the freed .2 is not reused before the end of the range.
        assert_eq!(take(&mut st, &s, "c").unwrap(), "10.1.2.4/29");
        let c = allocate(&mut st, &s, 0, "d", "eth0", None).unwrap();
        assert_eq!(c.gateway, Some("10.1.2.1".parse().unwrap()));
        assert_eq!(take(&mut st, &s, "e").unwrap(), "10.1.2.6/29");
        assert_eq!(take(&mut st, &s, "f").unwrap(), "10.1.2.2/29");
    }

    #[test]
    fn range_start_end_and_gateway() {
        let s = set("10.1.2.0/24", Some("10.1.2.10"), Some("10.1.2.11"), Some("10.1.2.10"));
        let mut st = MemStore::default();
        assert_eq!(take(&mut st, &s, "a").unwrap(), "10.1.2.11/24");
        let e = take(&mut st, &s, "b").unwrap_err();
        assert_eq!(e.code(), crate::error::codes::RANGE_EXHAUSTED);
        assert_eq!(e.to_string(), "no IP addresses available in range set: 10.1.2.10-10.1.2.11");
    }

    #[test]
    fn requested_addresses() {
        let s = set("10.1.2.0/24", None, None, None);
        let mut st = MemStore::default();
        let ip = |x: &str| Some(x.parse::<IpAddr>().unwrap());
        assert_eq!(allocate(&mut st, &s, 0, "a", "eth0", ip("10.1.2.77")).unwrap().address.to_string(), "10.1.2.77/24");
        let e = allocate(&mut st, &s, 0, "b", "eth0", ip("10.1.2.77")).unwrap_err();
        assert!(e.to_string().contains("10.1.2.77 is not available"));
        let e = allocate(&mut st, &s, 0, "b", "eth0", ip("10.1.2.1")).unwrap_err();
        assert!(e.to_string().contains("gateway"));
        // The next automatic allocation continues after the last reserved address.
        assert_eq!(take(&mut st, &s, "c").unwrap(), "10.1.2.78/24");
    }

    #[test]
    fn no_duplicate_allocation() {
        let s = set("10.1.2.0/24", None, None, None);
        let mut st = MemStore::default();
        take(&mut st, &s, "a").unwrap();
        let e = take(&mut st, &s, "a").unwrap_err();
        assert_eq!(e.to_string(), "10.1.2.2 has been allocated to a, duplicate allocation is not allowed");
        // Another interface of the same container is another attachment.
        assert!(allocate(&mut st, &s, 0, "a", "net1", None).is_ok());
    }

    #[test]
    fn dual_stack_uses_one_last_reserved_per_set() {
        let v4 = set("10.1.2.0/24", None, None, None);
        let v6 = set("fd00::/64", None, None, None);
        let mut st = MemStore::default();
        let a4 = allocate(&mut st, &v4, 0, "a", "eth0", None).unwrap();
        let a6 = allocate(&mut st, &v6, 1, "a", "eth0", None).unwrap();
        assert_eq!((a4.address.to_string(), a6.address.to_string()), ("10.1.2.2/24".into(), "fd00::2/64".into()));
        assert_eq!(st.last_reserved_ip("1"), Some("fd00::2".parse().unwrap()));
        assert_eq!(st.get_by_id("a", "eth0").len(), 2);
    }

    #[test]
    fn gc_and_status() {
        let s = set("10.1.2.0/30", None, None, None);
        let mut st = MemStore::default();
        take(&mut st, &s, "keep").unwrap();
        assert!(!has_free(&st, &s));
        st.held.insert("10.1.2.3".parse().unwrap(), ("old".into(), String::new()));
        let valid: HashSet<Attachment> =
            [Attachment { container_id: "keep".into(), ifname: "eth0".into() }].into_iter().collect();
        let freed = gc(&mut st, &valid).unwrap();
        assert_eq!(freed, vec!["10.1.2.3".parse::<IpAddr>().unwrap()]);
        assert_eq!(st.held.len(), 1);
        let freed = gc(&mut st, &HashSet::new()).unwrap();
        assert_eq!(freed.len(), 1);
        assert!(has_free(&st, &s));
    }
}
