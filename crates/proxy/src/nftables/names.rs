//! Names of the per-service chains and sets, as kube-proxy's nftables mode makes them: a prefix
//! (`service-`, `local-`, `external-`, `firewall-`, `endpoint-`, `affinity-`), then 8 base32
//! characters of a SHA-256 of the rest, then `namespace/name/protocol/port` (and
//! `__ip/port` for an endpoint). The hash keeps names unique when they must be truncated (nftables
//! names are limited) and tells apart names that differ in one digit; the `/` (which no fixed
//! chain name has) marks a chain as belonging to a service.

use std::net::IpAddr;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::model::{Endpoint, Protocol, ServicePortName};

/// Longest name part after the prefix (kube-proxy's `chainNameBaseLengthMax`: the kernel's 255
/// characters less 16 for the longest prefix).
pub const BASE_MAX: usize = 240;

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// The first 8 base32 characters (40 bits) of the SHA-256 of `s`.
fn hash8(s: &str) -> String {
    let digest = Sha256::digest(s.as_bytes());
    let bits = digest[..5].iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    (0..8).rev().map(|i| BASE32[((bits >> (i * 5)) & 31) as usize] as char).collect()
}

/// Keeps the characters nftables allows in a name (`[A-Za-z0-9_./-]`); API names only use
/// `[a-z0-9-]`, so this changes nothing for valid objects.
fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-') { c } else { '_' }).collect()
}

/// `HASH-name`, cut to [`BASE_MAX`] with `...` at the end if needed.
fn hash_and_truncate(name: &str, hashed: &str) -> String {
    let mut out = format!("{}-{}", hash8(hashed), sanitize(name));
    if out.len() > BASE_MAX {
        out.truncate(BASE_MAX - 3);
        out.push_str("...");
    }
    out
}

/// `namespace/name/protocol/port`.
fn service_part(id: &ServicePortName) -> String {
    format!("{}/{}/{}/{}", id.namespace, id.name, id.protocol.as_lower(), id.port)
}

/// `namespace/name/protocol/port__ip/port` (`:` of an IPv6 address written `.`).
fn endpoint_part(id: &ServicePortName, ip: &IpAddr, port: u16) -> String {
    format!("{}__{}/{}", service_part(id), ip.to_string().replace(':', "."), port)
}

fn service_base(id: &ServicePortName) -> String {
    let name = service_part(id);
    hash_and_truncate(&name, &name)
}

/// The names of a service port's own chains, its base hashed once: (service, local, external,
/// firewall) as [`service_chain`], [`local_chain`], [`external_chain`], [`firewall_chain`].
pub fn port_chains(id: &ServicePortName) -> [String; 4] {
    let base = service_base(id);
    ["service-", "local-", "external-", "firewall-"].map(|p| format!("{p}{base}"))
}

/// The chain with the service port's endpoints for the Cluster traffic policy.
pub fn service_chain(id: &ServicePortName) -> String {
    format!("service-{}", service_base(id))
}

/// The chain with the service port's local endpoints (the Local traffic policies).
pub fn local_chain(id: &ServicePortName) -> String {
    format!("local-{}", service_base(id))
}

/// The chain external traffic (NodePort, external and load-balancer IPs) goes through.
pub fn external_chain(id: &ServicePortName) -> String {
    format!("external-{}", service_base(id))
}

/// The chain enforcing loadBalancerSourceRanges.
pub fn firewall_chain(id: &ServicePortName) -> String {
    format!("firewall-{}", service_base(id))
}

/// The chain that DNATs to one endpoint.
pub fn endpoint_chain(id: &ServicePortName, ep: &Endpoint) -> String {
    let name = endpoint_part(id, &ep.ip, ep.port);
    format!("endpoint-{}", hash_and_truncate(&name, &name))
}

/// The dynamic set of the clients pinned to one endpoint (ClientIP affinity). The timeout is part
/// of the hash: a set's timeout cannot be changed in place, so a new timeout makes a new set.
pub fn affinity_set(id: &ServicePortName, ep: &Endpoint, timeout: Duration) -> String {
    let name = endpoint_part(id, &ep.ip, ep.port);
    format!("affinity-{}", hash_and_truncate(&name, &format!("{name}/{}", timeout.as_secs())))
}

/// Blocks of keys per endpoint map: a map is bound by the rules of at most this many chains (the
/// kernel checks each element added against every rule bound to its map).
pub const BLOCKS_PER_MAP: u32 = 64;
/// Keys per block: a balancing chain has at most this many endpoints.
pub const BLOCK_KEYS: u32 = 1 << 16;

/// The endpoint map of `protocol` holding `block` in generation `epoch`:
/// `endpoints-PROTOCOL-EPOCH-GROUP` (a map per protocol: `nft` 1.0 ties the map's `typeof` to
/// one protocol's port).
pub fn endpoint_map(protocol: Protocol, epoch: u32, block: u32) -> String {
    format!("endpoints-{}-{epoch}-{}", protocol.as_lower(), block / BLOCKS_PER_MAP)
}

/// The first key of `block` in its endpoint map.
pub fn block_offset(block: u32) -> u32 {
    (block % BLOCKS_PER_MAP) * BLOCK_KEYS
}

/// The generation of an endpoint map's name, if it is one.
pub fn endpoint_map_epoch(name: &str) -> Option<u32> {
    let mut parts = name.strip_prefix("endpoints-")?.split('-');
    let (proto, epoch, group) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !matches!(proto, "tcp" | "udp" | "sctp") {
        return None;
    }
    group.parse::<u32>().ok()?;
    epoch.parse().ok()
}

/// Whether a chain belongs to a service (only those names have a `/`).
pub fn is_service_chain(name: &str) -> bool {
    name.contains('/')
}

/// Whether a set is an affinity set.
pub fn is_affinity_set(name: &str) -> bool {
    name.starts_with("affinity-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol;

    fn id(port: &str) -> ServicePortName {
        ServicePortName { namespace: "ns1".into(), name: "svc1".into(), port: port.into(), protocol: Protocol::Tcp }
    }

    fn ep(ip: &str, port: u16) -> Endpoint {
        Endpoint {
            ip: ip.parse().unwrap(),
            port,
            node_name: None,
            ready: true,
            serving: true,
            terminating: false,
            local: false,
        }
    }

    #[test]
    fn names_have_prefix_hash_and_readable_part() {
        let c = service_chain(&id("p80"));
        assert!(c.starts_with("service-") && c.ends_with("-ns1/svc1/tcp/p80"), "{c}");
        assert_eq!(c.len(), "service-".len() + 8 + 1 + "ns1/svc1/tcp/p80".len());
        assert_eq!(local_chain(&id("p80"))[6..], c[8..], "same base for all chains of a port");
        let e = endpoint_chain(&id("p80"), &ep("10.180.0.1", 80));
        assert!(e.ends_with("-ns1/svc1/tcp/p80__10.180.0.1/80"), "{e}");
        let e6 = endpoint_chain(&id("p80"), &ep("fd00::1", 80));
        assert!(e6.ends_with("__fd00..1/80"), "{e6}");
        assert!(is_service_chain(&c) && is_service_chain(&e) && !is_service_chain("services"));
    }

    #[test]
    fn names_of_a_port_at_once() {
        let [s, l, e, f] = port_chains(&id("p"));
        assert_eq!(
            [s, l, e, f],
            [service_chain(&id("p")), local_chain(&id("p")), external_chain(&id("p")), firewall_chain(&id("p"))]
        );
    }

    #[test]
    fn names_differ_and_are_stable() {
        assert_ne!(service_chain(&id("a")), service_chain(&id("b")));
        assert_eq!(service_chain(&id("a")), service_chain(&id("a")));
        assert_ne!(endpoint_chain(&id("a"), &ep("10.0.0.1", 80)), endpoint_chain(&id("a"), &ep("10.0.0.11", 80)));
        let a = affinity_set(&id("a"), &ep("10.0.0.1", 80), Duration::from_secs(10));
        let b = affinity_set(&id("a"), &ep("10.0.0.1", 80), Duration::from_secs(20));
        assert_ne!(a, b, "a new timeout makes a new set");
        assert!(is_affinity_set(&a));
    }

    #[test]
    fn endpoint_maps_hold_blocks_of_keys() {
        assert_eq!(endpoint_map(Protocol::Tcp, 3, 0), "endpoints-tcp-3-0");
        assert_eq!(endpoint_map(Protocol::Tcp, 3, 63), "endpoints-tcp-3-0");
        assert_eq!(endpoint_map(Protocol::Udp, 3, 64), "endpoints-udp-3-1");
        assert_eq!((block_offset(0), block_offset(1), block_offset(65)), (0, 65536, 65536));
        assert_eq!(endpoint_map_epoch("endpoints-sctp-3-1"), Some(3));
        assert_eq!(endpoint_map_epoch("endpoints-3-1"), None);
        assert_eq!(endpoint_map_epoch("endpoints-check"), None);
        assert_eq!(endpoint_map_epoch("service-ips"), None);
    }

    #[test]
    fn long_names_are_truncated_and_stay_unique() {
        let long = |c: char| ServicePortName {
            namespace: "n".repeat(63),
            name: "s".repeat(63),
            port: format!("{}{c}", "p".repeat(62)),
            protocol: Protocol::Sctp,
        };
        let a = endpoint_chain(&long('a'), &ep("fd00:1234:5678:9abc:def0:1234:5678:9abc", 65535));
        let b = endpoint_chain(&long('b'), &ep("fd00:1234:5678:9abc:def0:1234:5678:9abc", 65535));
        assert_eq!(a.len(), "endpoint-".len() + BASE_MAX);
        assert!(a.ends_with("..."));
        assert_ne!(a, b);
    }

    #[test]
    fn odd_characters_are_replaced() {
        let odd =
            ServicePortName { namespace: "a b".into(), name: "c;d".into(), port: "".into(), protocol: Protocol::Udp };
        assert!(service_chain(&odd).ends_with("-a_b/c_d/udp/"));
    }
}
