//! kube-proxy's chain names: the fixed top-level chains, the masquerade mark, and the per-service
//! and per-endpoint chains named by a hash, exactly as `pkg/proxy/iptables/proxier.go` computes
//! them — SHA-256 of the service port name (`ns/name:port`) followed by the lowercase protocol
//! (and, for an endpoint chain, by `ip:port`), base32 (RFC 4648 alphabet), first 16 characters —
//! so that chain names match those of kube-proxy for the same Service.

use sha2::{Digest, Sha256};

use crate::model::ServicePortName;

/// nat and filter: the dispatch chain for cluster IPs, external and load-balancer IPs.
pub const KUBE_SERVICES: &str = "KUBE-SERVICES";
/// filter: rejects or drops external traffic to services without (local) endpoints.
pub const KUBE_EXTERNAL_SERVICES: &str = "KUBE-EXTERNAL-SERVICES";
/// nat: node ports; filter: health-check node ports.
pub const KUBE_NODEPORTS: &str = "KUBE-NODEPORTS";
/// nat: masquerades marked packets.
pub const KUBE_POSTROUTING: &str = "KUBE-POSTROUTING";
/// nat: marks a packet for masquerading.
pub const KUBE_MARK_MASQ: &str = "KUBE-MARK-MASQ";
/// filter: accepts forwarded service traffic, drops INVALID packets.
pub const KUBE_FORWARD: &str = "KUBE-FORWARD";
/// filter: drops load-balancer traffic not allowed by loadBalancerSourceRanges.
pub const KUBE_PROXY_FIREWALL: &str = "KUBE-PROXY-FIREWALL";
/// filter: kubelet's chain blocking martian packets to 127.0.0.0/8 (localhost node ports).
pub const KUBE_FIREWALL: &str = "KUBE-FIREWALL";

/// The mark of packets to masquerade (kube-proxy's default `--iptables-masquerade-bit` 14).
pub const MASQ_MARK: &str = "0x4000";

const SVC: &str = "KUBE-SVC-";
const SVL: &str = "KUBE-SVL-";
const EXT: &str = "KUBE-EXT-";
const FW: &str = "KUBE-FW-";
const SEP: &str = "KUBE-SEP-";

/// RFC 4648 base32 alphabet (Go's `base32.StdEncoding`).
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// The first 16 base32 characters of `sha256(input)` (the first 10 bytes of the digest).
fn hash16(input: &str) -> String {
    let digest = Sha256::digest(input.as_bytes());
    let mut out = String::with_capacity(16);
    for chunk in digest[..10].chunks(5) {
        let bits = chunk.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        for i in (0..8).rev() {
            out.push(BASE32[((bits >> (i * 5)) & 31) as usize] as char);
        }
    }
    out
}

/// kube-proxy's `portProtoHash`: `ns/name:port` + `tcp`.
pub fn port_proto_hash(id: &ServicePortName) -> String {
    hash16(&format!("{id}{}", id.protocol.as_lower()))
}

/// `KUBE-SVC-…`: the service port's endpoints under the Cluster traffic policy.
pub fn svc_chain(id: &ServicePortName) -> String {
    format!("{SVC}{}", port_proto_hash(id))
}

/// `KUBE-SVL-…`: the service port's local endpoints (a Local traffic policy).
pub fn svl_chain(id: &ServicePortName) -> String {
    format!("{SVL}{}", port_proto_hash(id))
}

/// `KUBE-EXT-…`: external traffic (node port, external and load-balancer IPs).
pub fn ext_chain(id: &ServicePortName) -> String {
    format!("{EXT}{}", port_proto_hash(id))
}

/// `KUBE-FW-…`: loadBalancerSourceRanges.
pub fn fw_chain(id: &ServicePortName) -> String {
    format!("{FW}{}", port_proto_hash(id))
}

/// `KUBE-SEP-…`: one endpoint (`ip:port`, `[ip6]:port`) of the service port.
pub fn sep_chain(id: &ServicePortName, endpoint: &str) -> String {
    format!("{SEP}{}", hash16(&format!("{id}{}{endpoint}", id.protocol.as_lower())))
}

/// Whether a chain is a per-service or per-endpoint chain (kube-proxy's `isServiceChainName`).
pub fn is_service_chain(chain: &str) -> bool {
    [SVC, SVL, EXT, FW, SEP].iter().any(|p| chain.starts_with(p))
}

/// kube-proxy's `computeProbability`: `fmt.Sprintf("%0.10f", 1.0/float64(n))`.
pub fn probability(n: usize) -> String {
    format!("{:.10}", 1.0 / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol;

    fn id(ns: &str, name: &str, port: &str, protocol: Protocol) -> ServicePortName {
        ServicePortName { namespace: ns.into(), name: name.into(), port: port.into(), protocol }
    }

    #[test]
    fn chain_names_match_kube_proxy() {
        // From a real node (seed 003): `default/clusterip-service`, TCP, three endpoints.
        let svc = id("default", "clusterip-service", "", Protocol::Tcp);
        assert_eq!(svc_chain(&svc), "KUBE-SVC-KUSV3H3OUX7H3MDQ");
        assert_eq!(sep_chain(&svc, "10.36.0.1:80"), "KUBE-SEP-KPNE4OMUFKEDG6YL");
        assert_eq!(sep_chain(&svc, "10.44.0.1:80"), "KUBE-SEP-HRLSFD7UJD73STE6");
        assert_eq!(sep_chain(&svc, "10.44.0.2:80"), "KUBE-SEP-KJJCEWDGN43ZNMPN");
        // Well-known ones of every cluster.
        assert_eq!(svc_chain(&id("default", "kubernetes", "https", Protocol::Tcp)), "KUBE-SVC-NPX46M4PTMTKRN6Y");
        let dns = id("kube-system", "kube-dns", "dns", Protocol::Udp);
        assert_eq!(svc_chain(&dns), "KUBE-SVC-TCOU7JCQXEZGVUNU");
        assert_eq!(svc_chain(&id("kube-system", "kube-dns", "dns-tcp", Protocol::Tcp)), "KUBE-SVC-ERIFXISQEP7F7OF4");
        assert_eq!(svc_chain(&id("kube-system", "kube-dns", "metrics", Protocol::Tcp)), "KUBE-SVC-JD5MR3NA4I4DYORP");
        // The other prefixes share the hash.
        assert_eq!(svl_chain(&dns), "KUBE-SVL-TCOU7JCQXEZGVUNU");
        assert_eq!(ext_chain(&dns), "KUBE-EXT-TCOU7JCQXEZGVUNU");
        assert_eq!(fw_chain(&dns), "KUBE-FW-TCOU7JCQXEZGVUNU");
        assert!(svc_chain(&dns).len() <= 28, "iptables chain names are at most 28 characters");
    }

    #[test]
    fn protocol_is_part_of_the_hash() {
        let tcp = id("default", "dns", "", Protocol::Tcp);
        let udp = id("default", "dns", "", Protocol::Udp);
        assert_ne!(svc_chain(&tcp), svc_chain(&udp));
    }

    #[test]
    fn probabilities_as_kube_proxy_formats_them() {
        assert_eq!(probability(2), "0.5000000000");
        assert_eq!(probability(3), "0.3333333333");
        assert_eq!(probability(6), "0.1666666667");
        assert_eq!(probability(7), "0.1428571429");
        assert_eq!(probability(1000), "0.0010000000");
    }

    #[test]
    fn service_chain_names() {
        for c in ["KUBE-SVC-X", "KUBE-SVL-X", "KUBE-EXT-X", "KUBE-FW-X", "KUBE-SEP-X"] {
            assert!(is_service_chain(c), "{c}");
        }
        for c in [KUBE_SERVICES, KUBE_NODEPORTS, KUBE_MARK_MASQ, KUBE_POSTROUTING, "KUBE-FORWARD"] {
            assert!(!is_service_chain(c), "{c}");
        }
    }
}
