//! What the userspace proxy serves, as data (pure): every frontend — a protocol and a socket
//! address the proxy listens on — with the service port and the endpoint scope it leads to, and
//! the addresses the node must take as its own for those frontends to receive traffic.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;

use crate::model::{Protocol, ServicePort, ServicePortName};
use crate::NodeContext;

/// Which endpoints a frontend's connections may go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Traffic to a cluster IP: [`ServicePort::cluster_endpoints`] (internalTrafficPolicy).
    Internal,
    /// Traffic to a node port, an external IP or a load-balancer IP:
    /// [`ServicePort::external_endpoints`] (externalTrafficPolicy).
    External,
}

/// A socket the proxy listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Frontend {
    pub protocol: Protocol,
    pub addr: SocketAddr,
}

impl fmt::Display for Frontend {
    /// `tcp 10.96.0.10:80`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.protocol.as_lower(), self.addr)
    }
}

/// Where a frontend leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub service: ServicePortName,
    pub scope: Scope,
    /// loadBalancerSourceRanges, for a load-balancer IP's frontend (empty: every source).
    pub source_ranges: Vec<IpNet>,
}

impl Target {
    /// Whether a client at `ip` may connect (loadBalancerSourceRanges).
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.source_ranges.is_empty() || self.source_ranges.iter().any(|r| r.contains(&ip))
    }
}

/// The whole plan of one sync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Every frontend and where it leads.
    pub frontends: BTreeMap<Frontend, Target>,
    /// The addresses that must be local for their frontends to receive anything: cluster IPs,
    /// external IPs and load-balancer IPs (node addresses are local already).
    pub local_ips: BTreeSet<IpAddr>,
    /// Service ports that are not served: SCTP ones (the userspace proxy relays TCP and UDP).
    pub unsupported: Vec<ServicePortName>,
}

/// The addresses node ports are served on: the node's addresses (the unspecified ones left
/// out), and 127.0.0.1 when the node has an IPv4 address (kube-proxy's default of serving IPv4
/// node ports on localhost). A node without addresses serves them on the wildcard addresses.
pub fn node_port_addresses(node: &NodeContext) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = node.addresses.iter().filter(|a| !a.is_unspecified()).copied().collect();
    if out.is_empty() {
        return vec![Ipv4Addr::UNSPECIFIED.into(), Ipv6Addr::UNSPECIFIED.into()];
    }
    if out.iter().any(IpAddr::is_ipv4) {
        out.push(Ipv4Addr::LOCALHOST.into());
    }
    out.sort();
    out.dedup();
    out
}

/// The frontends of `ports` on `node`. An address and port claimed twice (an external IP that
/// is another service's cluster IP…) goes to the first claim, in the order of `ports`.
pub fn plan(ports: &[ServicePort], node: &NodeContext) -> Plan {
    let mut out = Plan::default();
    let node_addrs = node_port_addresses(node);
    for port in ports {
        if port.id.protocol == Protocol::Sctp {
            out.unsupported.push(port.id.clone());
            continue;
        }
        let mut add = |ip: IpAddr, number: u16, scope: Scope, ranges: &[IpNet], local: bool| {
            let frontend = Frontend { protocol: port.id.protocol, addr: SocketAddr::new(ip, number) };
            if out.frontends.contains_key(&frontend) {
                return;
            }
            let target = Target { service: port.id.clone(), scope, source_ranges: ranges.to_vec() };
            out.frontends.insert(frontend, target);
            if local {
                out.local_ips.insert(ip);
            }
        };
        for ip in &port.cluster_ips {
            add(*ip, port.port, Scope::Internal, &[], true);
        }
        if let Some(node_port) = port.node_port {
            for ip in &node_addrs {
                add(*ip, node_port, Scope::External, &[], false);
            }
        }
        for ip in &port.external_ips {
            add(*ip, port.port, Scope::External, &[], true);
        }
        for ip in &port.load_balancer_ips {
            add(*ip, port.port, Scope::External, &port.load_balancer_source_ranges, true);
        }
    }
    // A node's own address taken as an external IP is local already.
    for ip in &node.addresses {
        out.local_ips.remove(ip);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Endpoint;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn port(name: &str, protocol: Protocol, cluster_ip: &str) -> ServicePort {
        ServicePort::cluster_ip(
            ServicePortName { namespace: "ns".into(), name: name.into(), port: "p".into(), protocol },
            ip(cluster_ip),
            80,
            Vec::<Endpoint>::new(),
        )
    }

    fn node() -> NodeContext {
        NodeContext {
            name: "n1".into(),
            addresses: vec![ip("192.168.1.10"), ip("fd00:1::10"), ip("0.0.0.0")],
            cluster_cidrs: vec![],
        }
    }

    fn fe(protocol: Protocol, addr: &str) -> Frontend {
        Frontend { protocol, addr: addr.parse().unwrap() }
    }

    #[test]
    fn every_address_of_a_service_gets_a_frontend() {
        let mut web = port("web", Protocol::Tcp, "10.96.0.10");
        web.cluster_ips.push(ip("fd00:96::10"));
        web.node_port = Some(30080);
        web.external_ips = vec![ip("203.0.113.5"), ip("192.168.1.10")];
        web.load_balancer_ips = vec![ip("203.0.113.9")];
        web.load_balancer_source_ranges = vec!["198.51.100.0/24".parse().unwrap()];
        let dns = port("dns", Protocol::Udp, "10.96.0.10");
        let sctp = port("sig", Protocol::Sctp, "10.96.0.11");
        let p = plan(&[web, dns, sctp], &node());
        let keys: Vec<String> = p.frontends.keys().map(|f| f.to_string()).collect();
        assert_eq!(
            keys,
            [
                "tcp 10.96.0.10:80",
                "tcp 127.0.0.1:30080",
                "tcp 192.168.1.10:80",
                "tcp 192.168.1.10:30080",
                "tcp 203.0.113.5:80",
                "tcp 203.0.113.9:80",
                "tcp [fd00:1::10]:30080",
                "tcp [fd00:96::10]:80",
                "udp 10.96.0.10:80",
            ]
        );
        let route = |f: &str, proto| p.frontends[&fe(proto, f)].clone();
        assert_eq!(route("10.96.0.10:80", Protocol::Tcp).scope, Scope::Internal);
        assert_eq!(route("127.0.0.1:30080", Protocol::Tcp).scope, Scope::External);
        assert_eq!(route("203.0.113.5:80", Protocol::Tcp).scope, Scope::External);
        assert_eq!(route("10.96.0.10:80", Protocol::Udp).service.name, "dns");
        let lb = route("203.0.113.9:80", Protocol::Tcp);
        assert!(lb.allows(ip("198.51.100.7")) && !lb.allows(ip("192.0.2.1")));
        assert!(lb.allows(ip("::ffff:198.51.100.7")), "v4-mapped clients are matched as IPv4");
        assert!(route("203.0.113.5:80", Protocol::Tcp).allows(ip("192.0.2.1")), "no ranges: everyone");
        let locals: Vec<String> = p.local_ips.iter().map(|i| i.to_string()).collect();
        assert_eq!(locals, ["10.96.0.10", "203.0.113.5", "203.0.113.9", "fd00:96::10"], "not the node's own");
        assert_eq!(p.unsupported.len(), 1);
    }

    #[test]
    fn the_first_claim_of_an_address_wins() {
        let a = port("a", Protocol::Tcp, "10.96.0.10");
        let mut b = port("b", Protocol::Tcp, "10.96.0.11");
        b.external_ips = vec![ip("10.96.0.10")];
        let p = plan(&[a, b], &node());
        assert_eq!(p.frontends[&fe(Protocol::Tcp, "10.96.0.10:80")].service.name, "a");
        assert_eq!(p.frontends.len(), 2);
    }

    #[test]
    fn node_port_addresses_add_localhost_or_fall_back_to_wildcards() {
        let addrs: Vec<String> = node_port_addresses(&node()).iter().map(|a| a.to_string()).collect();
        assert_eq!(addrs, ["127.0.0.1", "192.168.1.10", "fd00:1::10"]);
        let v6 = NodeContext { addresses: vec![ip("fd00:1::10")], ..node() };
        assert_eq!(node_port_addresses(&v6), [ip("fd00:1::10")]);
        let none = NodeContext { addresses: vec![], ..node() };
        assert_eq!(node_port_addresses(&none), [ip("0.0.0.0"), ip("::")]);
    }
}
