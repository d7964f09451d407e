//! Which UDP conntrack entries are stale (pure), as kube-proxy's `CleanStaleEntries` decides: an
//! entry whose original destination is a UDP service's IP and port (cluster, external or
//! load-balancer IP), or its node port, but whose reply comes from an address that is not one of
//! the service's serving endpoints — the endpoint went away, or the flow was set up while the
//! service had no endpoint and so was never DNATed. UDP has no connection to end, so without
//! this the kernel would keep sending such a client into the void. Services without serving
//! endpoints are left alone (their traffic is rejected anyway).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::model::{Protocol, ServicePort};

use super::conntrack::{Flow, IPPROTO_UDP};
use super::Family;

type Backends = BTreeSet<(IpAddr, u16)>;

/// The entries of `flows` (of `family`) to delete, given the service ports now programmed.
pub fn stale<'a>(flows: &'a [Flow], ports: &[ServicePort], family: Family) -> Vec<&'a Flow> {
    let mut by_frontend: BTreeMap<(IpAddr, u16), Backends> = BTreeMap::new();
    let mut by_node_port: BTreeMap<u16, Backends> = BTreeMap::new();
    for sp in ports.iter().filter(|p| p.id.protocol == Protocol::Udp) {
        let serving: Backends =
            sp.endpoints.iter().filter(|e| e.serving && family.has(&e.ip)).map(|e| (e.ip, e.port)).collect();
        if serving.is_empty() {
            continue;
        }
        let frontends = sp.cluster_ips.iter().chain(&sp.load_balancer_ips).chain(&sp.external_ips);
        for ip in frontends.filter(|ip| family.has(ip)) {
            by_frontend.entry((*ip, sp.port)).or_default().extend(serving.iter().copied());
        }
        if let Some(node_port) = sp.node_port {
            by_node_port.entry(node_port).or_default().extend(serving.iter().copied());
        }
    }
    flows
        .iter()
        .filter(|f| f.orig.proto == IPPROTO_UDP && family.has(&f.orig.dst))
        .filter(|f| {
            let backend = (f.reply.src, f.reply.src_port);
            let frontend = by_frontend.get(&(f.orig.dst, f.orig.dst_port)).is_some_and(|b| !b.contains(&backend));
            let node_port = by_node_port.get(&f.orig.dst_port).is_some_and(|b| !b.contains(&backend));
            frontend || node_port
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iptables::conntrack::Tuple;
    use crate::model::{Endpoint, ServicePortName};

    fn flow(src: &str, dst: &str, dport: u16, reply_src: &str, reply_sport: u16) -> Flow {
        let t = |s: &str, d: &str, sp, dp| Tuple {
            src: s.parse().unwrap(),
            dst: d.parse().unwrap(),
            proto: IPPROTO_UDP,
            src_port: sp,
            dst_port: dp,
        };
        Flow { orig: t(src, dst, 40000, dport), reply: t(reply_src, src, reply_sport, 40000), zone: None, id: None }
    }

    fn dns(endpoints: &[&str]) -> ServicePort {
        let id = ServicePortName {
            namespace: "kube-system".into(),
            name: "dns".into(),
            port: "dns".into(),
            protocol: Protocol::Udp,
        };
        let endpoints = endpoints
            .iter()
            .map(|ip| Endpoint {
                ip: ip.parse().unwrap(),
                port: 5353,
                node_name: None,
                ready: true,
                serving: true,
                terminating: false,
                local: false,
            })
            .collect();
        ServicePort {
            node_port: Some(30053),
            ..ServicePort::cluster_ip(id, "10.96.0.10".parse().unwrap(), 53, endpoints)
        }
    }

    #[test]
    fn entries_to_gone_or_missing_endpoints_are_stale() {
        let flows = [
            flow("10.250.2.2", "10.96.0.10", 53, "10.250.1.5", 5353), // to a serving endpoint
            flow("10.250.2.3", "10.96.0.10", 53, "10.250.1.6", 5353), // to an endpoint now gone
            flow("10.250.2.4", "10.96.0.10", 53, "10.96.0.10", 53),   // never DNATed (no endpoints then)
            flow("192.168.1.9", "192.168.1.1", 30053, "10.250.1.6", 5353), // node port, gone endpoint
            flow("10.250.2.2", "10.96.0.99", 53, "10.96.0.99", 53),   // not a service
        ];
        let ports = [dns(&["10.250.1.5"])];
        let stale: Vec<usize> =
            stale(&flows, &ports, Family::V4).iter().map(|f| flows.iter().position(|g| g == *f).unwrap()).collect();
        assert_eq!(stale, [1, 2, 3]);
    }

    #[test]
    fn services_without_endpoints_and_tcp_are_left_alone() {
        let flows = [flow("10.250.2.3", "10.96.0.10", 53, "10.250.1.6", 5353)];
        assert!(stale(&flows, &[dns(&[])], Family::V4).is_empty());
        let mut tcp = dns(&["10.250.1.5"]);
        tcp.id.protocol = Protocol::Tcp;
        assert!(stale(&flows, &[tcp], Family::V4).is_empty());
    }
}
