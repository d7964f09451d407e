//! The request path's invariants, checked on arbitrary bytes: what the UDP and TCP loops do with
//! a datagram or a TCP message — [`parse_query`], then the chain of a server block, then
//! [`encode_response`] — must never panic, and whatever it sends back must be a DNS message
//! that parses, has the query's id and QR set, and fits the transport. A query the wire path
//! ([`crate::wire`]) takes must be one the Message path takes, and its answer from the wire path
//! (asked again, from the cache) the Message path's answer. Used by the fuzz target
//! (`fuzz/`, `cargo fuzz run request`) and by a seeded test of mutated queries on every build
//! (`tests/request_path.rs`).
//!
//! The chain is a Kubernetes server block as kubeadm writes it, without `forward` (nothing may
//! leave the process): errors, loadbalance, cache, hosts and kubernetes over a fixed snapshot
//! with services of every kind, headless endpoints with hostnames, pods and ExternalNames.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use futures::FutureExt;
use hickory_proto::op::{Message, MessageType};

use crate::corefile::Corefile;
use crate::daemon::kubernetes_config;
use crate::kubernetes::{Cluster, EndpointInfo, EndpointSliceInfo, PodInfo, PortInfo, ServiceInfo, ServiceKind};
use crate::plugins::{build_chain, BoxError, ChainContext, KubernetesPlugin};
use crate::server::{max_response_size, parse_query, respond, Parsed};
use crate::wire::{self, WireQuery};
use crate::{Handler, Transport};

/// The server block the checks run through.
pub const COREFILE: &str = "\
.:53 {
    errors
    loadbalance
    cache 30
    hosts {
        10.0.0.1 a.example.org
        fd00::1 a.example.org
        fallthrough
    }
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
}
";

/// The chain of [`COREFILE`] over [`cluster`].
pub fn chain() -> Vec<Arc<dyn Handler>> {
    let corefile = Corefile::parse(COREFILE).expect("the fuzz Corefile parses");
    let snapshot = cluster();
    build_chain(&corefile.servers[0], &ChainContext::new(), |opts, _| -> Result<KubernetesPlugin, BoxError> {
        let plugin = crate::kubernetes::KubernetesPlugin::with_snapshot(kubernetes_config(opts)?, snapshot.clone());
        Ok(KubernetesPlugin { handler: Arc::new(plugin), readiness: None })
    })
    .expect("the fuzz chain builds")
}

/// Services of every kind, with the endpoints and pods that give them records.
pub fn cluster() -> Cluster {
    let ip = |s: &str| s.parse::<IpAddr>().expect("an address");
    let tcp = |name: &str, port| PortInfo::new(name, "TCP", port);
    let svc = |ns: &str, name: &str, kind, ports| ServiceInfo { namespace: ns.into(), name: name.into(), kind, ports };
    let ep = |addr: &str, hostname: Option<&str>, ready| EndpointInfo {
        addresses: vec![ip(addr)],
        hostname: hostname.map(str::to_string),
        target_name: None,
        node_name: Some("node1".into()),
        ready,
    };
    let slice = |ns: &str, service: &str, ports, endpoints| EndpointSliceInfo {
        namespace: ns.into(),
        name: format!("{service}-x"),
        service: service.into(),
        ports,
        endpoints,
    };
    let services = vec![
        svc(
            "default",
            "web",
            ServiceKind::ClusterIp(vec![ip("10.96.0.10"), ip("fd00::10")]),
            vec![tcp("http", 80), PortInfo::new("dns", "UDP", 53)],
        ),
        svc("ns", "db", ServiceKind::Headless, vec![tcp("pg", 5432)]),
        svc("ns", "ext", ServiceKind::ExternalName("example.com".into()), vec![]),
        svc("ns", "ext-in", ServiceKind::ExternalName("web.default.svc.cluster.local".into()), vec![]),
        svc("ns", "ext-loop", ServiceKind::ExternalName("ext-loop.ns.svc.cluster.local".into()), vec![]),
    ];
    // Enough endpoints that an SRV answer with its additionals does not fit 512 bytes (TC).
    let many: Vec<EndpointInfo> =
        (1..=40).map(|i| ep(&format!("10.244.1.{i}"), Some(&format!("db-{i}")), true)).collect();
    let slices = vec![
        slice("ns", "db", vec![tcp("pg", 5432)], many),
        slice(
            "default",
            "web",
            vec![tcp("http", 8080)],
            vec![ep("10.244.2.2", None, true), ep("10.244.2.3", None, false)],
        ),
    ];
    let pods = vec![PodInfo { namespace: "ns".into(), name: "db-1".into(), ips: vec![ip("10.244.1.1")] }];
    Cluster::new(services, slices, pods, ["default", "ns"].map(String::from), 1)
}

/// Runs `bytes` through the request path of `chain` over both transports and checks what comes
/// back. Panics (with what was wrong) when an invariant does not hold. Returns how many answers
/// came from the wire path.
pub fn check(chain: &[Arc<dyn Handler>], bytes: &[u8]) -> usize {
    let mut wire_answers = 0;
    let client: SocketAddr = "10.244.1.5:40000".parse().expect("an address");
    match parse_query(bytes) {
        Parsed::Reply(reply) if WireQuery::parse(bytes, client, Transport::Udp).is_none() => {
            check_answer(bytes, &reply, usize::from(u16::MAX))
        }
        Parsed::Query(query) => {
            for transport in [Transport::Udp, Transport::Tcp] {
                let answer = respond(chain, query.clone(), client, transport)
                    .now_or_never()
                    .expect("this chain answers without waiting (no forward)");
                check_answer(bytes, &answer, max_response_size(&query, transport));
                let parsed = Message::from_vec(&answer).expect("checked above");
                assert_eq!(parsed.queries(), query.queries(), "an answer repeats the question");
                // Asked again, the wire path may answer from the cache: the same answer.
                if let Some(again) = wire::answer(chain, bytes, client, transport) {
                    wire_answers += 1;
                    check_answer(bytes, &again, max_response_size(&query, transport));
                    assert_eq!(
                        without_ttls(&again),
                        without_ttls(&answer),
                        "the wire path answers as the message path does"
                    );
                }
            }
        }
        _ => {
            if let Some(q) = WireQuery::parse(bytes, client, Transport::Udp) {
                panic!("the wire path takes a query the message path refuses: {q:?}");
            }
        }
    }
    wire_answers
}

/// `answer` parsed, its TTLs zeroed (a cached answer's count down).
fn without_ttls(answer: &[u8]) -> Message {
    let mut m = Message::from_vec(answer).expect("checked before");
    crate::plugins::response::for_each_record_mut(&mut m, |r| {
        r.set_ttl(0);
    });
    m
}

/// An answer to `query`: parses, same id, QR set, at most `max` bytes.
fn check_answer(query: &[u8], answer: &[u8], max: usize) {
    assert!(answer.len() <= max, "an answer of {} bytes where {max} fit", answer.len());
    let m = match Message::from_vec(answer) {
        Ok(m) => m,
        Err(e) => panic!("an answer that does not parse ({e}): {answer:02x?}"),
    };
    assert_eq!(m.id(), u16::from_be_bytes([query[0], query[1]]), "an answer with another id");
    assert_eq!(m.message_type(), MessageType::Response, "an answer without QR");
}
