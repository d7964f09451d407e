//! The server end to end: started on 127.0.0.1:0 with a `kubernetes` plugin answering from a
//! hand-built snapshot (and a stand-in forwarder after it), asked over real UDP and TCP sockets
//! with hickory-proto's messages and, when installed, `dig`: A/AAAA/SRV/PTR/TXT, pods, headless
//! services, NXDOMAIN and NODATA with the SOA, TC over UDP and the full answer over TCP, SERVFAIL
//! before the sync, ExternalName through the chain, malformed packets, shutdown.

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use podnet_dns::kubernetes::{
    Cluster, EndpointInfo, EndpointSliceInfo, KubernetesConfig, KubernetesPlugin, PodInfo, PodMode, PortInfo,
    ServiceInfo, ServiceKind, SharedCluster,
};
use podnet_dns::server::{Chain, Server, ServerConfig};
use podnet_dns::{BoxFuture, Handler, Next, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::oneshot;

const BIG: u32 = 300;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn endpoint(addr: IpAddr, hostname: Option<&str>) -> EndpointInfo {
    EndpointInfo {
        addresses: vec![addr],
        hostname: hostname.map(str::to_string),
        target_name: None,
        node_name: None,
        ready: true,
    }
}

fn service(ns: &str, name: &str, kind: ServiceKind, ports: Vec<PortInfo>) -> ServiceInfo {
    ServiceInfo { namespace: ns.into(), name: name.into(), kind, ports }
}

fn slice(ns: &str, svc: &str, ports: Vec<PortInfo>, endpoints: Vec<EndpointInfo>) -> EndpointSliceInfo {
    EndpointSliceInfo { namespace: ns.into(), name: format!("{svc}-abc"), service: svc.into(), ports, endpoints }
}

/// The cluster the server answers from.
fn cluster(extra: Vec<ServiceInfo>) -> Cluster {
    let http = PortInfo::new("http", "TCP", 80);
    let mut services = vec![
        service("default", "web", ServiceKind::ClusterIp(vec![ip("10.96.0.10"), ip("fd00::10")]), vec![http.clone()]),
        service("ns", "db", ServiceKind::Headless, vec![PortInfo::new("pg", "TCP", 5432)]),
        service("ns", "big", ServiceKind::Headless, vec![http.clone()]),
        service("ns", "gone", ServiceKind::Headless, vec![http.clone()]),
        service("ns", "ext", ServiceKind::ExternalName("upstream.example".into()), vec![PortInfo::none()]),
    ];
    services.extend(extra);
    let big = (0..BIG).map(|i| endpoint(IpAddr::from([10, 245, (i / 250) as u8, (i % 250) as u8 + 1]), None)).collect();
    let slices = vec![
        slice(
            "ns",
            "db",
            vec![PortInfo::new("pg", "TCP", 5432)],
            vec![endpoint(ip("10.244.1.2"), Some("db-0")), endpoint(ip("10.244.1.3"), Some("db-1"))],
        ),
        slice("ns", "big", vec![PortInfo::new("http", "TCP", 8080)], big),
        slice("ns", "gone", vec![http], vec![]),
    ];
    let pods = vec![PodInfo { namespace: "ns".into(), name: "db-0".into(), ips: vec![ip("10.244.1.2")] }];
    Cluster::new(services, slices, pods, ["default", "ns"].map(String::from), 42)
}

fn config() -> KubernetesConfig {
    let mut c = KubernetesConfig::new(["cluster.local", "in-addr.arpa", "ip6.arpa"]).unwrap();
    c.pods = PodMode::Insecure;
    c.set_option("fallthrough", &["in-addr.arpa", "ip6.arpa"]).unwrap();
    c
}

/// A stand-in for `forward`: `*.example` has A 192.0.2.1, anything else NXDOMAIN.
struct Upstream;

impl Handler for Upstream {
    fn name(&self) -> &'static str {
        "upstream"
    }

    fn handle<'a>(&'a self, req: &'a Request, _next: Next<'a>) -> BoxFuture<'a, Message> {
        Box::pin(async move {
            let q = req.message.queries()[0].clone();
            if !Name::from_ascii("example.").unwrap().zone_of(q.name()) {
                return req.response(ResponseCode::NXDomain);
            }
            let mut m = req.response(ResponseCode::NoError);
            m.set_recursion_available(true);
            if q.query_type() == RecordType::A {
                m.add_answer(Record::from_rdata(q.name().clone(), 30, RData::A(A::new(192, 0, 2, 1))));
            }
            m
        })
    }
}

struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.task).await.expect("server stops").unwrap();
    }
}

async fn start_with(plugin: KubernetesPlugin, config: ServerConfig) -> Running {
    let chain: Chain = Arc::new(vec![Arc::new(plugin) as Arc<dyn Handler>, Arc::new(Upstream)]);
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), config).await.unwrap();
    let addr = server.local_addr();
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(server.run(chain, async move {
        let _ = rx.await;
    }));
    Running { addr, stop: Some(tx), task }
}

async fn start() -> Running {
    start_with(KubernetesPlugin::with_snapshot(config(), cluster(vec![])), ServerConfig::default()).await
}

fn question(name: &str, qtype: RecordType, edns: Option<u16>) -> Message {
    let mut m = Message::new();
    m.set_id(rand_id()).set_recursion_desired(true);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    m
}

fn rand_id() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(1000);
    NEXT.fetch_add(7, Ordering::Relaxed)
}

async fn udp_raw(addr: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(bytes, addr).await.unwrap();
    let mut buf = vec![0u8; 65_535];
    match tokio::time::timeout(Duration::from_millis(500), sock.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

async fn udp(addr: SocketAddr, q: &Message) -> Message {
    let bytes = udp_raw(addr, &q.to_vec().unwrap()).await.expect("an answer over udp");
    let m = Message::from_vec(&bytes).unwrap();
    assert_eq!(m.id(), q.id());
    m
}

async fn ask(addr: SocketAddr, name: &str, qtype: RecordType) -> Message {
    udp(addr, &question(name, qtype, Some(1232))).await
}

async fn tcp_send(stream: &mut TcpStream, bytes: &[u8]) {
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    stream.write_all(&framed).await.unwrap();
}

async fn tcp_recv(stream: &mut TcpStream) -> Option<Message> {
    let mut len = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut len)).await.ok()?.ok()?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut buf).await.ok()?;
    Some(Message::from_vec(&buf).unwrap())
}

fn rdata(m: &Message) -> Vec<String> {
    m.answers().iter().map(|r| r.data().to_string()).collect()
}

fn assert_soa(m: &Message, zone: &str) {
    assert_eq!(m.name_servers().len(), 1, "{m:?}");
    let soa = &m.name_servers()[0];
    assert_eq!((soa.record_type(), soa.name().to_ascii()), (RecordType::SOA, zone.to_string()));
}

#[tokio::test]
async fn answers_the_record_types() {
    let s = start().await;
    let m = ask(s.addr, "web.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(
        (m.response_code(), m.authoritative(), m.message_type()),
        (ResponseCode::NoError, true, MessageType::Response)
    );
    assert_eq!(rdata(&m), ["10.96.0.10"]);
    assert_eq!(m.answers()[0].ttl(), 5);
    assert!(m.extensions().is_some(), "EDNS0 echoed");
    assert_eq!(rdata(&ask(s.addr, "web.default.svc.cluster.local.", RecordType::AAAA).await), ["fd00::10"]);

    let m = ask(s.addr, "_http._tcp.web.default.svc.cluster.local.", RecordType::SRV).await;
    assert_eq!(rdata(&m), ["0 50 80 web.default.svc.cluster.local."]);
    let extra: Vec<String> = m.additionals().iter().map(|r| r.data().to_string()).collect();
    assert_eq!(extra, ["10.96.0.10", "fd00::10"]);

    let m = ask(s.addr, "10.0.96.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(rdata(&m), ["web.default.svc.cluster.local."]);
    let m = ask(s.addr, "2.1.244.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(rdata(&m), ["db-0.db.ns.svc.cluster.local."]);

    let m = ask(s.addr, "dns-version.cluster.local.", RecordType::TXT).await;
    assert_eq!(rdata(&m), ["1.1.0"]);

    let m = ask(s.addr, "10-244-9-9.ns.pod.cluster.local.", RecordType::A).await;
    assert_eq!(rdata(&m), ["10.244.9.9"]);

    let m = ask(s.addr, "db.ns.svc.cluster.local.", RecordType::A).await;
    assert_eq!(rdata(&m), ["10.244.1.2", "10.244.1.3"]);
    let m = ask(s.addr, "db-1.db.ns.svc.cluster.local.", RecordType::A).await;
    assert_eq!(rdata(&m), ["10.244.1.3"]);
    let m = ask(s.addr, "_pg._tcp.db.ns.svc.cluster.local.", RecordType::SRV).await;
    assert_eq!(rdata(&m), ["0 50 5432 db-0.db.ns.svc.cluster.local.", "0 50 5432 db-1.db.ns.svc.cluster.local."]);
    assert_eq!(m.additionals().len(), 2);

    let m = ask(s.addr, "WEB.DEFAULT.svc.Cluster.Local.", RecordType::A).await;
    assert_eq!(rdata(&m), ["10.96.0.10"]);
    assert_eq!(m.queries()[0].name().to_ascii(), "WEB.DEFAULT.svc.Cluster.Local.", "the question as asked");
    s.stop().await;
}

#[tokio::test]
async fn negative_answers_carry_the_soa() {
    let s = start().await;
    let m = ask(s.addr, "nope.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!((m.response_code(), m.authoritative()), (ResponseCode::NXDomain, true));
    assert!(m.answers().is_empty());
    assert_soa(&m, "cluster.local.");

    let m = ask(s.addr, "web.default.svc.cluster.local.", RecordType::TXT).await;
    assert_eq!((m.response_code(), m.answers().len()), (ResponseCode::NoError, 0), "NODATA");
    assert_soa(&m, "cluster.local.");

    let m = ask(s.addr, "gone.ns.svc.cluster.local.", RecordType::A).await;
    assert_eq!(m.response_code(), ResponseCode::NXDomain, "headless without ready endpoints");

    let m = ask(s.addr, "default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(m.response_code(), ResponseCode::NoError);
    assert_soa(&m, "cluster.local.");

    // A reverse name nobody has falls through to the next plugin (NXDOMAIN there, without SOA).
    let m = ask(s.addr, "9.9.9.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(m.response_code(), ResponseCode::NXDomain);
    assert!(m.name_servers().is_empty());
    s.stop().await;
}

#[tokio::test]
async fn external_names_resolve_through_the_chain() {
    let s = start().await;
    let m = ask(s.addr, "ext.ns.svc.cluster.local.", RecordType::A).await;
    assert_eq!(rdata(&m), ["upstream.example.", "192.0.2.1"]);
    assert_eq!(m.answers()[0].record_type(), RecordType::CNAME);
    // Names outside the zones go to the next plugin.
    let m = ask(s.addr, "www.example.", RecordType::A).await;
    assert_eq!(rdata(&m), ["192.0.2.1"]);
    s.stop().await;
}

#[tokio::test]
async fn truncated_over_udp_full_over_tcp() {
    let s = start().await;
    let name = "big.ns.svc.cluster.local.";
    let m = udp(s.addr, &question(name, RecordType::A, None)).await;
    assert!(m.truncated(), "TC without EDNS0");
    assert!(m.answers().len() < BIG as usize);
    assert!(m.to_vec().unwrap().len() <= 512);

    let q = question(name, RecordType::A, Some(1232));
    let raw = udp_raw(s.addr, &q.to_vec().unwrap()).await.unwrap();
    assert!(raw.len() <= 1232 && raw.len() > 512, "the EDNS0 size is used: {}", raw.len());
    let m = Message::from_vec(&raw).unwrap();
    assert!(m.truncated() && m.extensions().is_some());

    let m = udp(s.addr, &question(name, RecordType::A, Some(65_000))).await;
    assert!(!m.truncated());
    assert_eq!(m.answers().len(), BIG as usize);

    let mut tcp = TcpStream::connect(s.addr).await.unwrap();
    let q = question(name, RecordType::A, None);
    tcp_send(&mut tcp, &q.to_vec().unwrap()).await;
    let m = tcp_recv(&mut tcp).await.unwrap();
    assert!(!m.truncated());
    assert_eq!(m.answers().len(), BIG as usize);
    s.stop().await;
}

#[tokio::test]
async fn several_queries_per_tcp_connection() {
    let s = start().await;
    let mut tcp = TcpStream::connect(s.addr).await.unwrap();
    let names = ["web.default.svc.cluster.local.", "db.ns.svc.cluster.local.", "nope.ns.svc.cluster.local."];
    let qs: Vec<Message> = names.iter().map(|n| question(n, RecordType::A, None)).collect();
    for q in &qs {
        tcp_send(&mut tcp, &q.to_vec().unwrap()).await;
    }
    let mut got = Vec::new();
    for _ in &qs {
        got.push(tcp_recv(&mut tcp).await.expect("an answer"));
    }
    for q in &qs {
        let m = got.iter().find(|m| m.id() == q.id()).expect("answered");
        assert_eq!(m.queries(), q.queries());
    }
    // And again on the same connection, after the burst.
    let q = question("web.default.svc.cluster.local.", RecordType::AAAA, None);
    tcp_send(&mut tcp, &q.to_vec().unwrap()).await;
    assert_eq!(rdata(&tcp_recv(&mut tcp).await.unwrap()), ["fd00::10"]);
    s.stop().await;
}

#[tokio::test]
async fn idle_tcp_connections_are_closed() {
    let limits = ServerConfig { tcp_idle_timeout: Duration::from_millis(200), ..ServerConfig::default() };
    let s = start_with(KubernetesPlugin::with_snapshot(config(), cluster(vec![])), limits).await;
    let mut tcp = TcpStream::connect(s.addr).await.unwrap();
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await.expect("closed").unwrap_or(0);
    assert_eq!(n, 0);
    s.stop().await;
}

/// A small deterministic generator, for garbage.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[tokio::test]
async fn malformed_packets_do_not_hurt() {
    let s = start().await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for i in 0..500 {
        let len = (rng.next() % 600) as usize;
        let mut b = rng.bytes(len);
        if i % 2 == 0 && b.len() > 3 {
            b[2] &= 0x07; // a query with opcode QUERY: the parser has to look further
        }
        sock.send_to(&b, s.addr).await.unwrap();
    }
    // Truncated headers are dropped.
    assert!(udp_raw(s.addr, &[0x12]).await.is_none());
    assert!(udp_raw(s.addr, &[0x12, 0x34, 0x01, 0x00, 0x00]).await.is_none());
    // A readable header with garbage after it: FORMERR with the id.
    let mut junk = vec![0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
    junk.extend(rng.bytes(40));
    junk[12] = 0xc0; // a compression pointer to nowhere
    let m = Message::from_vec(&udp_raw(s.addr, &junk).await.expect("FORMERR")).unwrap();
    assert_eq!((m.id(), m.response_code()), (0x1234, ResponseCode::FormErr));
    // Oversized: a valid query followed by 60 000 bytes of garbage, and 60 000 bytes of garbage.
    let mut big = question("web.default.svc.cluster.local.", RecordType::A, None).to_vec().unwrap();
    big.extend(rng.bytes(60_000));
    let _ = udp_raw(s.addr, &big).await;
    let _ = udp_raw(s.addr, &rng.bytes(60_000)).await;
    // Not a query.
    let mut notify = question("cluster.local.", RecordType::SOA, None);
    notify.set_op_code(OpCode::Notify);
    let m = Message::from_vec(&udp_raw(s.addr, &notify.to_vec().unwrap()).await.unwrap()).unwrap();
    assert_eq!(m.response_code(), ResponseCode::NotImp);
    let mut resp = question("cluster.local.", RecordType::SOA, None);
    resp.set_message_type(MessageType::Response);
    let m = Message::from_vec(&udp_raw(s.addr, &resp.to_vec().unwrap()).await.unwrap()).unwrap();
    assert_eq!(m.response_code(), ResponseCode::FormErr);
    let mut empty = Message::new();
    empty.set_id(77);
    let m = Message::from_vec(&udp_raw(s.addr, &empty.to_vec().unwrap()).await.unwrap()).unwrap();
    assert_eq!((m.id(), m.response_code()), (77, ResponseCode::FormErr));

    // Over TCP: garbage, then a short frame (the connection is closed), then a good query.
    for _ in 0..20 {
        let mut tcp = TcpStream::connect(s.addr).await.unwrap();
        let len = (rng.next() % 300) as usize;
        let _ = tcp.write_all(&rng.bytes(len)).await;
        drop(tcp);
    }
    let mut tcp = TcpStream::connect(s.addr).await.unwrap();
    tcp_send(&mut tcp, &[1, 2, 3]).await;
    assert!(tcp_recv(&mut tcp).await.is_none(), "closed on an unreadable message");

    // Still serving.
    assert_eq!(rdata(&ask(s.addr, "web.default.svc.cluster.local.", RecordType::A).await), ["10.96.0.10"]);
    let mut tcp = TcpStream::connect(s.addr).await.unwrap();
    tcp_send(&mut tcp, &question("web.default.svc.cluster.local.", RecordType::A, None).to_vec().unwrap()).await;
    assert_eq!(rdata(&tcp_recv(&mut tcp).await.unwrap()), ["10.96.0.10"]);
    s.stop().await;
}

#[tokio::test]
async fn servfail_until_synced_then_changes_show_at_once() {
    let shared = SharedCluster::new();
    let s = start_with(KubernetesPlugin::new(config(), shared.clone()), ServerConfig::default()).await;
    let m = ask(s.addr, "web.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(m.response_code(), ResponseCode::ServFail);
    // Names outside the zones are not held up.
    assert_eq!(ask(s.addr, "www.example.", RecordType::A).await.response_code(), ResponseCode::NoError);

    shared.replace(cluster(vec![]));
    shared.mark_synced();
    assert_eq!(rdata(&ask(s.addr, "web.default.svc.cluster.local.", RecordType::A).await), ["10.96.0.10"]);

    // A new service is answered as soon as the snapshot is swapped.
    let name = "new.default.svc.cluster.local.";
    assert_eq!(ask(s.addr, name, RecordType::A).await.response_code(), ResponseCode::NXDomain);
    let svc = service("default", "new", ServiceKind::ClusterIp(vec![ip("10.96.0.77")]), vec![PortInfo::none()]);
    let t = Instant::now();
    shared.replace(cluster(vec![svc]));
    assert_eq!(rdata(&ask(s.addr, name, RecordType::A).await), ["10.96.0.77"]);
    assert!(t.elapsed() < Duration::from_millis(100), "{:?}", t.elapsed());
    s.stop().await;
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let s = start().await;
    let addr = s.addr;
    assert_eq!(ask(addr, "web.default.svc.cluster.local.", RecordType::A).await.response_code(), ResponseCode::NoError);
    let mut idle = TcpStream::connect(addr).await.unwrap();
    s.stop().await;
    let mut buf = [0u8; 1];
    assert_eq!(idle.read(&mut buf).await.unwrap_or(0), 0, "open connections are closed");
    assert!(udp_raw(addr, &question("web.default.svc.cluster.local.", RecordType::A, None).to_vec().unwrap())
        .await
        .is_none());
    assert!(TcpStream::connect(addr).await.is_err());
}

// `dig`, when installed (Debian: bind9-dnsutils).

fn dig(addr: SocketAddr, args: &[&str]) -> Option<String> {
    let port = addr.port().to_string();
    let mut cmd = Command::new("dig");
    cmd.args(["@127.0.0.1", "-p", &port, "+tries=1", "+time=3"]).args(args);
    match cmd.output() {
        Ok(out) => Some(String::from_utf8_lossy(&out.stdout).into_owned()),
        Err(_) => {
            eprintln!("dig is not installed (apt-get install bind9-dnsutils): skipping");
            None
        }
    }
}

fn short(addr: SocketAddr, args: &[&str]) -> Option<Vec<String>> {
    let mut a = vec!["+short"];
    a.extend_from_slice(args);
    dig(addr, &a).map(|o| o.lines().map(str::to_string).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_agrees() {
    let s = start().await;
    let addr = s.addr;
    let Some(a) =
        tokio::task::spawn_blocking(move || short(addr, &["web.default.svc.cluster.local", "A"])).await.unwrap()
    else {
        return s.stop().await;
    };
    assert_eq!(a, ["10.96.0.10"]);
    let run = move |args: Vec<&'static str>| tokio::task::spawn_blocking(move || dig(addr, &args).unwrap());
    let out = run(vec!["+short", "web.default.svc.cluster.local", "AAAA"]).await.unwrap();
    assert_eq!(out.trim(), "fd00::10");
    let out = run(vec!["+short", "_http._tcp.web.default.svc.cluster.local", "SRV"]).await.unwrap();
    assert_eq!(out.trim(), "0 50 80 web.default.svc.cluster.local.");
    let out = run(vec!["+short", "-x", "10.96.0.10"]).await.unwrap();
    assert_eq!(out.trim(), "web.default.svc.cluster.local.");
    let out = run(vec!["+short", "dns-version.cluster.local", "TXT"]).await.unwrap();
    assert_eq!(out.trim(), "\"1.1.0\"");
    let out = run(vec!["+short", "10-244-9-9.ns.pod.cluster.local"]).await.unwrap();
    assert_eq!(out.trim(), "10.244.9.9");
    let out = run(vec!["+short", "db.ns.svc.cluster.local"]).await.unwrap();
    assert_eq!(out.lines().count(), 2);

    let out = run(vec!["nope.default.svc.cluster.local"]).await.unwrap();
    assert!(out.contains("status: NXDOMAIN"), "{out}");
    assert!(out.contains("flags: qr aa rd"), "{out}");
    assert!(
        out.contains("AUTHORITY: 1") && out.contains("SOA\tns.dns.cluster.local. hostmaster.cluster.local."),
        "{out}"
    );
    let out = run(vec!["web.default.svc.cluster.local", "TXT"]).await.unwrap();
    assert!(out.contains("status: NOERROR") && out.contains("ANSWER: 0") && out.contains("AUTHORITY: 1"), "{out}");

    // TC over UDP (no retry), the whole answer over TCP, and dig's own fallback to TCP.
    let out = run(vec!["+noedns", "+ignore", "big.ns.svc.cluster.local"]).await.unwrap();
    assert!(out.contains(" tc"), "{out}");
    let out = run(vec!["+tcp", "+short", "big.ns.svc.cluster.local"]).await.unwrap();
    assert_eq!(out.lines().count(), BIG as usize);
    let out = run(vec!["+noedns", "+short", "big.ns.svc.cluster.local"]).await.unwrap();
    assert_eq!(out.lines().count(), BIG as usize);
    s.stop().await;
}

#[tokio::test]
async fn a_taken_port_is_an_error() {
    let running = start().await;
    let again = Server::bind(running.addr, ServerConfig::default()).await;
    assert!(again.is_err(), "a second server bound {}", running.addr);
    let m = ask(running.addr, "web.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(m.response_code(), ResponseCode::NoError);
    running.stop().await;
}
