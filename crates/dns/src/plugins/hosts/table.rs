//! A hosts table: `IP name [aliases...]` lines (comments and bad lines skipped), looked up by
//! name for A/AAAA and by address for PTR. Pure.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::corefile::names;

/// Names to addresses and back, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostsTable {
    by_name: HashMap<String, Vec<IpAddr>>,
    by_addr: HashMap<IpAddr, Vec<String>>,
}

impl HostsTable {
    /// Parses hosts-file text.
    pub fn parse(text: &str) -> Self {
        let mut t = HostsTable::default();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default();
            let mut words = line.split_whitespace();
            let Some(addr) = words.next() else { continue };
            let Ok(ip) = addr.parse::<IpAddr>() else { continue };
            t.add(ip, words.map(names::normalize));
        }
        t
    }

    /// Adds `names` for `ip`.
    pub fn add(&mut self, ip: IpAddr, names: impl IntoIterator<Item = String>) {
        for name in names {
            let ips = self.by_name.entry(name.clone()).or_default();
            if !ips.contains(&ip) {
                ips.push(ip);
            }
            let ns = self.by_addr.entry(ip).or_default();
            if !ns.contains(&name) {
                ns.push(name);
            }
        }
    }

    /// The addresses of normalized `name` of one family.
    pub fn lookup(&self, name: &str, v6: bool) -> Vec<IpAddr> {
        self.by_name
            .get(name)
            .map(|ips| ips.iter().filter(|ip| ip.is_ipv6() == v6).copied().collect())
            .unwrap_or_default()
    }

    /// The names of `ip`.
    pub fn names_of(&self, ip: IpAddr) -> &[String] {
        self.by_addr.get(&ip).map_or(&[], Vec::as_slice)
    }

    /// Whether `name` is in the table at all.
    pub fn has_name(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// Number of (address, name) entries.
    pub fn len(&self) -> usize {
        self.by_addr.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_addr.is_empty()
    }
}

/// The address a normalized reverse name stands for (`4.3.2.1.in-addr.arpa.` → 1.2.3.4).
pub fn reverse_to_ip(name: &str) -> Option<IpAddr> {
    if let Some(v4) = name.strip_suffix(".in-addr.arpa.") {
        let mut octets: Vec<&str> = v4.split('.').collect();
        if octets.len() != 4 {
            return None;
        }
        octets.reverse();
        return octets.join(".").parse().ok();
    }
    let v6 = name.strip_suffix(".ip6.arpa.")?;
    let nibbles: Vec<&str> = v6.split('.').collect();
    if nibbles.len() != 32 || nibbles.iter().any(|n| n.len() != 1) {
        return None;
    }
    let hex: String = nibbles.iter().rev().copied().collect();
    let groups: Vec<&str> = (0..8).map(|i| &hex[i * 4..i * 4 + 4]).collect();
    groups.join(":").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_looks_up() {
        let t = HostsTable::parse(
            "# comment\n127.0.0.1 localhost\n10.0.0.1 Web.Example.org web # alias\n::1 localhost ip6-localhost\nbogus line\nfe80::1%lo0 linklocal\n",
        );
        assert_eq!(t.lookup("web.example.org.", false), vec!["10.0.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(t.lookup("localhost.", true), vec!["::1".parse::<IpAddr>().unwrap()]);
        assert!(t.lookup("web.", true).is_empty());
        assert!(t.has_name("web."));
        assert_eq!(t.names_of("10.0.0.1".parse().unwrap()), ["web.example.org.", "web."]);
        assert!(!t.has_name("linklocal."));
        assert_eq!(t.len(), 5);
    }

    #[test]
    fn reverse_names() {
        assert_eq!(reverse_to_ip("1.0.0.10.in-addr.arpa."), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(
            reverse_to_ip("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa."),
            Some("::1".parse().unwrap())
        );
        assert_eq!(reverse_to_ip("0.10.in-addr.arpa."), None);
    }
}
