//! The `nameserver` lines of a resolv.conf, as upstreams on port 53. Pure.

use std::net::{IpAddr, SocketAddr};

/// The name servers of resolv.conf text, in order (zone suffixes like `%eth0` dropped).
pub fn nameservers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let line = line.split(['#', ';']).next()?;
            let mut words = line.split_whitespace();
            if words.next()? != "nameserver" {
                return None;
            }
            let addr = words.next()?;
            let addr = addr.split('%').next()?;
            addr.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nameservers() {
        let text = "# generated\nsearch svc.cluster.local\nnameserver 10.96.0.10\nnameserver fe80::1%eth0 # link\n;nameserver 1.1.1.1\nnameserver bogus\noptions ndots:5\n";
        assert_eq!(nameservers(text), vec!["10.96.0.10:53".parse().unwrap(), "[fe80::1]:53".parse().unwrap()]);
    }
}
