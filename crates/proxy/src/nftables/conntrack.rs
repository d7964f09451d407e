//! Which conntrack entries are stale after a sync (pure). UDP has no connection to close: a
//! conntrack entry keeps sending a client's datagrams where they went first, so after a sync
//! the entries of a UDP service's addresses whose DNAT target is no longer one of its endpoints
//! are deleted — those to a removed endpoint, and those created while the service had no
//! endpoints (not DNATed at all: their reply source is the service address itself) — as
//! kube-proxy's conntrack cleanup does. The entries are read and deleted by
//! [`super::ctnetlink`].

use std::net::{IpAddr, SocketAddr};

use super::rules::UdpFrontends;

/// IPPROTO_UDP.
pub const UDP: u8 = 17;

/// What decides whether a conntrack entry is stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// The layer 4 protocol number.
    pub proto: u8,
    /// The original direction's destination (the address the client sent to).
    pub orig_dst: SocketAddr,
    /// The reply direction's source (where the traffic was DNATed to; the original destination
    /// when it was not).
    pub reply_src: SocketAddr,
}

/// Whether `flow` goes to one of the `frontends` (a service address, or a node port on one of
/// `node_addrs`) and was sent to a target that is no longer one of its endpoints. Without node
/// addresses (NodePorts on every local address) a node-port flow counts only when DNATed.
pub fn is_stale(flow: &Flow, frontends: &[&UdpFrontends], node_addrs: &[IpAddr]) -> bool {
    if flow.proto != UDP {
        return false;
    }
    frontends.iter().any(|f| {
        let to_node_port = f.node_port == Some(flow.orig_dst.port())
            && if node_addrs.is_empty() {
                flow.reply_src != flow.orig_dst
            } else {
                node_addrs.contains(&flow.orig_dst.ip())
            };
        (f.addrs.contains(&flow.orig_dst) || to_node_port) && !f.targets.contains(&flow.reply_src)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn frontends() -> UdpFrontends {
        UdpFrontends {
            addrs: [sa("10.96.0.10:53")].into(),
            node_port: Some(30053),
            targets: [sa("10.244.1.5:5353")].into(),
        }
    }

    fn flow(dst: &str, reply_src: &str) -> Flow {
        Flow { proto: UDP, orig_dst: sa(dst), reply_src: sa(reply_src) }
    }

    #[test]
    fn stale_when_the_target_is_gone_or_there_was_none() {
        let f = frontends();
        let node = ["192.168.1.10".parse().unwrap()];
        assert!(!is_stale(&flow("10.96.0.10:53", "10.244.1.5:5353"), &[&f], &node), "current endpoint");
        assert!(is_stale(&flow("10.96.0.10:53", "10.244.2.9:5353"), &[&f], &node), "removed endpoint");
        assert!(is_stale(&flow("10.96.0.10:53", "10.96.0.10:53"), &[&f], &node), "created while rejecting");
        assert!(!is_stale(&flow("10.96.0.11:53", "10.96.0.11:53"), &[&f], &node), "another address");
        assert!(!is_stale(&flow("10.96.0.10:54", "10.96.0.10:54"), &[&f], &node), "another port");
        let tcp = Flow { proto: 6, ..flow("10.96.0.10:53", "10.244.2.9:5353") };
        assert!(!is_stale(&tcp, &[&f], &node), "only UDP");
    }

    #[test]
    fn node_ports_on_node_addresses() {
        let f = frontends();
        let node = ["192.168.1.10".parse().unwrap()];
        assert!(is_stale(&flow("192.168.1.10:30053", "10.244.2.9:5353"), &[&f], &node));
        assert!(!is_stale(&flow("192.168.1.10:30053", "10.244.1.5:5353"), &[&f], &node));
        assert!(!is_stale(&flow("192.168.7.7:30053", "192.168.7.7:30053"), &[&f], &node), "not the node");
        // Without node addresses: only DNATed flows.
        assert!(is_stale(&flow("192.168.7.7:30053", "10.244.2.9:5353"), &[&f], &[]));
        assert!(!is_stale(&flow("192.168.7.7:30053", "192.168.7.7:30053"), &[&f], &[]));
    }

    #[test]
    fn removed_service_has_no_target() {
        let f = UdpFrontends { targets: Default::default(), ..frontends() };
        assert!(is_stale(&flow("10.96.0.10:53", "10.244.1.5:5353"), &[&f], &[]));
    }
}
