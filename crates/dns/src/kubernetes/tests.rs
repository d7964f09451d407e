//! Unit tests of [`super::answer()`]: every record type, the negative answers, the options.

use std::net::IpAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ep(addr: &str, hostname: Option<&str>, pod: Option<&str>, ready: bool) -> EndpointInfo {
    EndpointInfo {
        addresses: vec![ip(addr)],
        hostname: hostname.map(str::to_string),
        target_name: pod.map(str::to_string),
        node_name: None,
        ready,
    }
}

fn svc(ns: &str, name: &str, kind: ServiceKind, ports: Vec<PortInfo>) -> ServiceInfo {
    let ports = if ports.is_empty() { vec![PortInfo::none()] } else { ports };
    ServiceInfo { namespace: ns.into(), name: name.into(), kind, ports }
}

fn slice(ns: &str, service: &str, ports: Vec<PortInfo>, endpoints: Vec<EndpointInfo>) -> EndpointSliceInfo {
    EndpointSliceInfo { namespace: ns.into(), name: format!("{service}-x"), service: service.into(), ports, endpoints }
}

/// The cluster the tests ask.
fn cluster() -> Cluster {
    let tcp = |n: &str, p| PortInfo::new(n, "TCP", p);
    let services = vec![
        svc(
            "default",
            "web",
            ServiceKind::ClusterIp(vec![ip("10.96.0.10"), ip("fd00::10")]),
            vec![tcp("http", 80), PortInfo::new("dns", "UDP", 53), tcp("", 8080)],
        ),
        svc("ns", "db", ServiceKind::Headless, vec![tcp("pg", 5432)]),
        svc("ns", "empty", ServiceKind::Headless, vec![tcp("pg", 5432)]),
        svc("ns", "noports", ServiceKind::ClusterIp(vec![ip("10.96.0.20")]), vec![]),
        svc("ns", "ext", ServiceKind::ExternalName("example.com".into()), vec![]),
        svc("ns", "ext-in", ServiceKind::ExternalName("web.default.svc.cluster.local".into()), vec![]),
        svc("ns", "ext-loop", ServiceKind::ExternalName("ext-loop.ns.svc.cluster.local".into()), vec![]),
        svc("kube-system", "kube-dns", ServiceKind::ClusterIp(vec![ip("10.96.0.53")]), vec![]),
        svc("hidden", "secret", ServiceKind::ClusterIp(vec![ip("10.96.0.99")]), vec![tcp("http", 80)]),
    ];
    let slices = vec![
        slice(
            "ns",
            "db",
            vec![tcp("pg", 5432)],
            vec![
                ep("10.244.1.2", Some("db-0"), Some("db-0"), true),
                ep("10.244.1.3", None, Some("db-x"), true),
                ep("10.244.1.4", None, None, false),
            ],
        ),
        slice("ns", "empty", vec![tcp("pg", 5432)], vec![ep("10.244.1.9", None, None, false)]),
        slice("default", "web", vec![tcp("http", 8080)], vec![ep("10.244.2.2", None, None, true)]),
        slice("kube-system", "kube-dns", vec![PortInfo::none()], vec![ep("10.244.0.53", None, None, true)]),
    ];
    let pods = vec![PodInfo { namespace: "ns".into(), name: "db-0".into(), ips: vec![ip("10.244.1.2")] }];
    let namespaces = ["default", "ns", "kube-system", "hidden"].map(String::from);
    Cluster::new(services, slices, pods, namespaces, 1234)
}

fn config() -> KubernetesConfig {
    let mut c = KubernetesConfig::new(["cluster.local", "in-addr.arpa", "ip6.arpa"]).unwrap();
    c.pods = PodMode::Insecure;
    c
}

/// A name as a client may send it (any bytes in a label, as on the wire).
fn wire_name(name: &str) -> Name {
    let mut n = Name::from_labels(name.trim_end_matches('.').split('.').map(str::as_bytes)).unwrap();
    n.set_fqdn(true);
    n
}

fn outcome(cfg: &KubernetesConfig, name: &str, qtype: RecordType) -> Outcome {
    answer(&cluster(), cfg, &Query::new(wire_name(name), qtype))
}

fn ask_with(cfg: &KubernetesConfig, name: &str, qtype: RecordType) -> Answer {
    match outcome(cfg, name, qtype) {
        Outcome::Answer(a) => a,
        other => panic!("{name} {qtype}: {other:?}"),
    }
}

fn ask(name: &str, qtype: RecordType) -> Answer {
    ask_with(&config(), name, qtype)
}

/// A record as `owner TTL TYPE data`.
fn text(r: &Record) -> String {
    let data = match r.data() {
        RData::SRV(s) => format!("{} {} {} {}", s.priority(), s.weight(), s.port(), s.target()),
        RData::SOA(s) => format!("{} {} {} {}", s.mname(), s.rname(), s.serial(), s.minimum()),
        d => d.to_string(),
    };
    format!("{} {} {} {}", r.name(), r.ttl(), r.record_type(), data)
}

fn texts(rs: &[Record]) -> Vec<String> {
    rs.iter().map(text).collect()
}

fn assert_nxdomain(a: &Answer) {
    assert_eq!(a.rcode, ResponseCode::NXDomain, "{a:?}");
    assert!(a.answers.is_empty());
    assert_eq!(texts(&a.authority), ["cluster.local. 5 SOA ns.dns.cluster.local. hostmaster.cluster.local. 1234 5"]);
}

fn assert_nodata(a: &Answer) {
    assert_eq!(a.rcode, ResponseCode::NoError, "{a:?}");
    assert!(a.answers.is_empty(), "{a:?}");
    assert_eq!(a.authority.len(), 1);
    assert_eq!(a.authority[0].record_type(), RecordType::SOA);
}

#[test]
fn cluster_ip_a_and_aaaa() {
    let a = ask("web.default.svc.cluster.local.", RecordType::A);
    assert_eq!(a.rcode, ResponseCode::NoError);
    assert_eq!(texts(&a.answers), ["web.default.svc.cluster.local. 5 A 10.96.0.10"]);
    assert!(a.authority.is_empty());
    let a = ask("web.default.svc.cluster.local.", RecordType::AAAA);
    assert_eq!(texts(&a.answers), ["web.default.svc.cluster.local. 5 AAAA fd00::10"]);
    // A service with only an IPv4 address has no AAAA: NODATA.
    assert_nodata(&ask("noports.ns.svc.cluster.local.", RecordType::AAAA));
    assert_eq!(texts(&ask("noports.ns.svc.cluster.local.", RecordType::A).answers).len(), 1);
}

#[test]
fn names_are_case_insensitive_and_keep_their_case() {
    let a = ask("WEB.Default.SVC.Cluster.LOCAL.", RecordType::A);
    assert_eq!(texts(&a.answers), ["WEB.Default.SVC.Cluster.LOCAL. 5 A 10.96.0.10"]);
    let a = ask("Nope.Default.SVC.Cluster.LOCAL.", RecordType::A);
    assert_eq!(a.rcode, ResponseCode::NXDomain);
    assert_eq!(a.authority[0].name().to_ascii(), "Cluster.LOCAL.");
}

#[test]
fn headless_services_and_endpoint_names() {
    let a = ask("db.ns.svc.cluster.local.", RecordType::A);
    assert_eq!(
        texts(&a.answers),
        ["db.ns.svc.cluster.local. 5 A 10.244.1.2", "db.ns.svc.cluster.local. 5 A 10.244.1.3"],
        "only ready endpoints"
    );
    let a = ask("db-0.db.ns.svc.cluster.local.", RecordType::A);
    assert_eq!(texts(&a.answers), ["db-0.db.ns.svc.cluster.local. 5 A 10.244.1.2"]);
    let a = ask("10-244-1-3.db.ns.svc.cluster.local.", RecordType::A);
    assert_eq!(texts(&a.answers), ["10-244-1-3.db.ns.svc.cluster.local. 5 A 10.244.1.3"]);
    assert_nxdomain(&ask("10-244-1-4.db.ns.svc.cluster.local.", RecordType::A));
    assert_nxdomain(&ask("db-x.db.ns.svc.cluster.local.", RecordType::A));
    // Endpoint names also work for ClusterIP services, as in CoreDNS.
    let a = ask("10-244-2-2.web.default.svc.cluster.local.", RecordType::A);
    assert_eq!(texts(&a.answers), ["10-244-2-2.web.default.svc.cluster.local. 5 A 10.244.2.2"]);
    assert_nodata(&ask("db.ns.svc.cluster.local.", RecordType::AAAA));
}

#[test]
fn endpoint_pod_names() {
    let mut cfg = config();
    cfg.endpoint_pod_names = true;
    let a = ask_with(&cfg, "db-x.db.ns.svc.cluster.local.", RecordType::A);
    assert_eq!(texts(&a.answers), ["db-x.db.ns.svc.cluster.local. 5 A 10.244.1.3"]);
    // A hostname still wins over the pod name.
    assert_nxdomain(&ask_with(&cfg, "10-244-1-3.db.ns.svc.cluster.local.", RecordType::A));
    let a = ask_with(&cfg, "_pg._tcp.db.ns.svc.cluster.local.", RecordType::SRV);
    assert_eq!(
        texts(&a.answers),
        [
            "_pg._tcp.db.ns.svc.cluster.local. 5 SRV 0 50 5432 db-0.db.ns.svc.cluster.local.",
            "_pg._tcp.db.ns.svc.cluster.local. 5 SRV 0 50 5432 db-x.db.ns.svc.cluster.local.",
        ]
    );
}

#[test]
fn headless_without_ready_endpoints_is_nxdomain() {
    for t in [RecordType::A, RecordType::AAAA, RecordType::SRV, RecordType::TXT] {
        assert_nxdomain(&ask("empty.ns.svc.cluster.local.", t));
    }
}

#[test]
fn srv_for_cluster_ip_services() {
    let a = ask("_http._tcp.web.default.svc.cluster.local.", RecordType::SRV);
    assert_eq!(
        texts(&a.answers),
        ["_http._tcp.web.default.svc.cluster.local. 5 SRV 0 50 80 web.default.svc.cluster.local."]
    );
    assert_eq!(
        texts(&a.additionals),
        ["web.default.svc.cluster.local. 5 A 10.96.0.10", "web.default.svc.cluster.local. 5 AAAA fd00::10"]
    );
    let a = ask("_dns._udp.web.default.svc.cluster.local.", RecordType::SRV);
    assert_eq!(
        texts(&a.answers),
        ["_dns._udp.web.default.svc.cluster.local. 5 SRV 0 50 53 web.default.svc.cluster.local."]
    );
    assert_nxdomain(&ask("_dns._tcp.web.default.svc.cluster.local.", RecordType::SRV));
    assert_nxdomain(&ask("_nope._tcp.web.default.svc.cluster.local.", RecordType::SRV));
    // Without port and protocol: every port.
    let a = ask("web.default.svc.cluster.local.", RecordType::SRV);
    let ports: Vec<String> = texts(&a.answers).iter().map(|t| t.split(' ').nth(5).unwrap().to_string()).collect();
    assert_eq!(ports, ["80", "53", "8080"]);
    assert!(texts(&a.answers)[0].contains("SRV 0 16 "), "weight 100 / 6 hosts");
    // A service without ports has no SRV: NODATA.
    assert_nodata(&ask("noports.ns.svc.cluster.local.", RecordType::SRV));
    // The port and protocol labels are case-insensitive.
    assert_eq!(ask("_HTTP._TCP.web.default.svc.cluster.local.", RecordType::SRV).answers.len(), 1);
}

#[test]
fn srv_for_headless_services() {
    let a = ask("_pg._tcp.db.ns.svc.cluster.local.", RecordType::SRV);
    assert_eq!(
        texts(&a.answers),
        [
            "_pg._tcp.db.ns.svc.cluster.local. 5 SRV 0 50 5432 db-0.db.ns.svc.cluster.local.",
            "_pg._tcp.db.ns.svc.cluster.local. 5 SRV 0 50 5432 10-244-1-3.db.ns.svc.cluster.local.",
        ]
    );
    assert_eq!(
        texts(&a.additionals),
        ["db-0.db.ns.svc.cluster.local. 5 A 10.244.1.2", "10-244-1-3.db.ns.svc.cluster.local. 5 A 10.244.1.3"]
    );
}

#[test]
fn ptr_for_services_and_endpoints() {
    let a = ask("10.0.96.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(texts(&a.answers), ["10.0.96.10.in-addr.arpa. 5 PTR web.default.svc.cluster.local."]);
    let v6 = "0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.";
    assert_eq!(texts(&ask(v6, RecordType::PTR).answers), [format!("{v6} 5 PTR web.default.svc.cluster.local.")]);
    let a = ask("2.1.244.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(texts(&a.answers), ["2.1.244.10.in-addr.arpa. 5 PTR db-0.db.ns.svc.cluster.local."]);
    let a = ask("3.1.244.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(texts(&a.answers), ["3.1.244.10.in-addr.arpa. 5 PTR 10-244-1-3.db.ns.svc.cluster.local."]);
    let a = ask("4.1.244.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(a.rcode, ResponseCode::NXDomain, "not-ready endpoints have no PTR");
    assert_eq!(a.authority[0].name().to_ascii(), "in-addr.arpa.");
    let mut cfg = config();
    cfg.set_option("fallthrough", &["in-addr.arpa", "ip6.arpa"]).unwrap();
    assert_eq!(outcome(&cfg, "4.1.244.10.in-addr.arpa.", RecordType::PTR), Outcome::FallThrough);
    assert!(matches!(outcome(&cfg, "10.0.96.10.in-addr.arpa.", RecordType::PTR), Outcome::Answer(_)));
    // A forward name has no PTR.
    assert_nodata(&ask("web.default.svc.cluster.local.", RecordType::PTR));
}

#[test]
fn external_name_services() {
    let a = ask("ext.ns.svc.cluster.local.", RecordType::A);
    assert_eq!(texts(&a.answers), ["ext.ns.svc.cluster.local. 5 CNAME example.com."]);
    assert_eq!(a.external, [Name::from_ascii("example.com.").unwrap()]);
    let a = ask("ext.ns.svc.cluster.local.", RecordType::CNAME);
    assert_eq!(texts(&a.answers), ["ext.ns.svc.cluster.local. 5 CNAME example.com."]);
    assert!(a.external.is_empty());
    // A target inside the zone is followed here.
    let a = ask("ext-in.ns.svc.cluster.local.", RecordType::A);
    assert_eq!(
        texts(&a.answers),
        [
            "ext-in.ns.svc.cluster.local. 5 CNAME web.default.svc.cluster.local.",
            "web.default.svc.cluster.local. 5 A 10.96.0.10"
        ]
    );
    assert!(a.external.is_empty());
    // A CNAME to itself is dropped.
    assert_nodata(&ask("ext-loop.ns.svc.cluster.local.", RecordType::A));
    // No SRV, no endpoints.
    assert_nodata(&ask("ext.ns.svc.cluster.local.", RecordType::SRV));
    assert_nxdomain(&ask("x.ext.ns.svc.cluster.local.", RecordType::A));
}

#[test]
fn dns_version() {
    let a = ask("dns-version.cluster.local.", RecordType::TXT);
    assert_eq!(texts(&a.answers), ["dns-version.cluster.local. 28800 TXT 1.1.0"]);
    assert_nodata(&ask("dns-version.cluster.local.", RecordType::A));
}

#[test]
fn pod_records() {
    let a = ask("10-244-9-9.ns.pod.cluster.local.", RecordType::A);
    assert_eq!(texts(&a.answers), ["10-244-9-9.ns.pod.cluster.local. 5 A 10.244.9.9"]);
    let a = ask("fd00--9.ns.pod.cluster.local.", RecordType::AAAA);
    assert_eq!(texts(&a.answers), ["fd00--9.ns.pod.cluster.local. 5 AAAA fd00::9"]);
    assert_nodata(&ask("fd00--9.ns.pod.cluster.local.", RecordType::A));
    assert_nxdomain(&ask("10-244-9-9.nope.pod.cluster.local.", RecordType::A));
    assert_nxdomain(&ask("not-an-ip.ns.pod.cluster.local.", RecordType::A));
    assert_nodata(&ask("ns.pod.cluster.local.", RecordType::A));

    let mut cfg = config();
    cfg.pods = PodMode::Verified;
    let a = ask_with(&cfg, "10-244-1-2.ns.pod.cluster.local.", RecordType::A);
    assert_eq!(texts(&a.answers), ["10-244-1-2.ns.pod.cluster.local. 5 A 10.244.1.2"]);
    assert_nxdomain(&ask_with(&cfg, "10-244-9-9.ns.pod.cluster.local.", RecordType::A));
    assert_nxdomain(&ask_with(&cfg, "10-244-1-2.default.pod.cluster.local.", RecordType::A));

    cfg.pods = PodMode::Disabled;
    assert_nxdomain(&ask_with(&cfg, "10-244-1-2.ns.pod.cluster.local.", RecordType::A));
}

#[test]
fn wildcards() {
    let a = ask("*.default.svc.cluster.local.", RecordType::A);
    assert_eq!(texts(&a.answers), ["*.default.svc.cluster.local. 5 A 10.96.0.10"]);
    // Every service of the namespace, ExternalName CNAMEs included.
    let a = ask("any.ns.svc.cluster.local.", RecordType::A);
    assert_eq!(
        texts(&a.answers),
        [
            "any.ns.svc.cluster.local. 5 A 10.244.1.2",
            "any.ns.svc.cluster.local. 5 A 10.244.1.3",
            "any.ns.svc.cluster.local. 5 CNAME example.com.",
            "any.ns.svc.cluster.local. 5 CNAME web.default.svc.cluster.local.",
            "web.default.svc.cluster.local. 5 A 10.96.0.10",
            "any.ns.svc.cluster.local. 5 A 10.96.0.20",
        ]
    );
    let a = ask("web.*.svc.cluster.local.", RecordType::A);
    assert_eq!(a.answers.len(), 1);
    let a = ask("*.db.ns.svc.cluster.local.", RecordType::A);
    assert_eq!(a.answers.len(), 2);
    let a = ask("_*._tcp.web.default.svc.cluster.local.", RecordType::SRV);
    assert_eq!(a.answers.len(), 2, "http and the unnamed port");
    // A wildcard in an existing namespace without services: NODATA, not NXDOMAIN.
    let mut cfg = config();
    cfg.namespaces = ["default".to_string()].into();
    assert_nxdomain(&ask_with(&cfg, "*.ns.svc.cluster.local.", RecordType::A));
    assert_eq!(ask_with(&cfg, "web.*.svc.cluster.local.", RecordType::A).answers.len(), 1);
}

#[test]
fn negative_answers() {
    // Names that do not exist: NXDOMAIN with the SOA.
    for name in [
        "nope.default.svc.cluster.local.",
        "web.nope.svc.cluster.local.",
        "foo.cluster.local.",
        "a.b.web.default.svc.cluster.local.",
        "x.y.z.web.default.svc.cluster.local.",
        "nope.cluster.local.",
    ] {
        for t in [RecordType::A, RecordType::AAAA, RecordType::TXT, RecordType::MX, RecordType::SRV] {
            assert_nxdomain(&ask(name, t));
        }
    }
    // Names that exist without records of the type: NODATA with the SOA.
    for (name, t) in [
        ("web.default.svc.cluster.local.", RecordType::TXT),
        ("web.default.svc.cluster.local.", RecordType::MX),
        ("web.default.svc.cluster.local.", RecordType::CNAME),
        ("default.svc.cluster.local.", RecordType::A),
        ("default.svc.cluster.local.", RecordType::TXT),
        ("svc.cluster.local.", RecordType::A),
        ("pod.cluster.local.", RecordType::A),
        ("cluster.local.", RecordType::A),
        ("cluster.local.", RecordType::TXT),
        ("_tcp.web.default.svc.cluster.local.", RecordType::A),
        ("web.default.svc.cluster.local.", RecordType::SOA),
        ("web.default.svc.cluster.local.", RecordType::NS),
    ] {
        let a = ask(name, t);
        assert_eq!(a.rcode, ResponseCode::NoError, "{name} {t}");
        assert_nodata(&a);
    }
    assert_nxdomain(&ask("_nope.web.default.svc.cluster.local.", RecordType::A));
    // The namespaces option hides the others.
    let mut cfg = config();
    cfg.namespaces = ["default".to_string()].into();
    assert_eq!(ask_with(&cfg, "web.default.svc.cluster.local.", RecordType::A).answers.len(), 1);
    assert_nxdomain(&ask_with(&cfg, "db.ns.svc.cluster.local.", RecordType::A));
    assert_nxdomain(&ask_with(&cfg, "ns.svc.cluster.local.", RecordType::A));
    assert_eq!(ask_with(&cfg, "99.0.96.10.in-addr.arpa.", RecordType::PTR).rcode, ResponseCode::NXDomain);
}

#[test]
fn apex_soa_and_ns() {
    let a = ask("cluster.local.", RecordType::SOA);
    assert_eq!(texts(&a.answers), ["cluster.local. 5 SOA ns.dns.cluster.local. hostmaster.cluster.local. 1234 5"]);
    let a = ask("cluster.local.", RecordType::NS);
    assert_eq!(texts(&a.answers), ["cluster.local. 5 NS ns.dns.cluster.local."]);
    let mut cfg = config();
    cfg.ns_addresses = vec![ip("10.244.0.53")];
    let a = ask_with(&cfg, "cluster.local.", RecordType::NS);
    assert_eq!(texts(&a.answers), ["cluster.local. 5 NS kube-dns.kube-system.svc.cluster.local."]);
    assert_eq!(texts(&a.additionals), ["kube-dns.kube-system.svc.cluster.local. 5 A 10.96.0.53"]);
    cfg.ns_addresses = vec![ip("192.0.2.1")];
    let a = ask_with(&cfg, "ns.dns.cluster.local.", RecordType::A);
    assert_eq!(texts(&a.answers), ["ns.dns.cluster.local. 5 A 192.0.2.1"]);
    assert_nodata(&ask_with(&cfg, "dns.cluster.local.", RecordType::A));
    let mut cfg = config();
    cfg.ttl = 600;
    let a = ask_with(&cfg, "nope.cluster.local.", RecordType::A);
    assert_eq!(a.authority[0].ttl(), 300, "the SOA's TTL is at most 300");
}

#[test]
fn outside_the_zones_and_transfers() {
    assert_eq!(outcome(&config(), "example.com.", RecordType::A), Outcome::NotInZone);
    assert_eq!(outcome(&config(), "local.", RecordType::A), Outcome::NotInZone);
    let a = ask("cluster.local.", RecordType::AXFR);
    assert_eq!(a.rcode, ResponseCode::Refused);
    let mut cfg = config();
    cfg.fallthrough = Some(vec![]);
    assert_eq!(outcome(&cfg, "nope.default.svc.cluster.local.", RecordType::A), Outcome::FallThrough);
    assert!(matches!(outcome(&cfg, "web.default.svc.cluster.local.", RecordType::A), Outcome::Answer(_)));
    assert!(
        matches!(outcome(&cfg, "default.svc.cluster.local.", RecordType::A), Outcome::Answer(_)),
        "NODATA is final"
    );
}

#[test]
fn noendpoints() {
    let mut cfg = config();
    cfg.noendpoints = true;
    assert_nxdomain(&ask_with(&cfg, "db.ns.svc.cluster.local.", RecordType::A));
    assert_nxdomain(&ask_with(&cfg, "db-0.db.ns.svc.cluster.local.", RecordType::A));
    assert_eq!(ask_with(&cfg, "2.1.244.10.in-addr.arpa.", RecordType::PTR).rcode, ResponseCode::NXDomain);
    assert_eq!(ask_with(&cfg, "web.default.svc.cluster.local.", RecordType::A).answers.len(), 1);
}

#[test]
fn ttl_option() {
    let mut cfg = config();
    cfg.ttl = 30;
    let a = ask_with(&cfg, "web.default.svc.cluster.local.", RecordType::A);
    assert_eq!(a.answers[0].ttl(), 30);
    let a = ask_with(&cfg, "dns-version.cluster.local.", RecordType::TXT);
    assert_eq!(a.answers[0].ttl(), 28800);
}

#[test]
fn ignore_empty_service() {
    let mut cfg = config();
    cfg.ignore_empty_service = true;
    assert_nxdomain(&ask_with(&cfg, "noports.ns.svc.cluster.local.", RecordType::A));
    assert_eq!(ask_with(&cfg, "web.default.svc.cluster.local.", RecordType::A).answers.len(), 1);
    assert_eq!(ask_with(&cfg, "ext.ns.svc.cluster.local.", RecordType::CNAME).answers.len(), 1);
}
