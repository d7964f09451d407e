//! End to end: a chain built from a Corefile (a stub stands in for `kubernetes`), answering
//! through hosts, the stub, forward to a UDP responder on 127.0.0.1, cache and loadbalance, with
//! the health, ready and metrics endpoints served over HTTP.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use podnet_dns::corefile::{Corefile, KubernetesOptions};
use podnet_dns::plugins::{build_chain, BoxError, ChainContext, ForwardTimeouts, KubernetesPlugin, LoopDetected};
use podnet_dns::{BoxFuture, Handler, Next, Request, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const COREFILE: &str = r#"
(common) {
    errors
    log
}

.:1053 {
    import common
    health 127.0.0.1:0
    ready 127.0.0.1:0
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
    hosts {
        10.0.0.9 myhost.example
        fallthrough
    }
    prometheus 127.0.0.1:0
    forward . {$UPSTREAM} {
        max_concurrent 1000
    }
    cache 30 {
        success 1000 30 1
        serve_stale
    }
    loop
    loadbalance
}
"#;

fn query(name: &str, t: RecordType) -> Request {
    let mut m = Message::new();
    m.set_id(rand::random()).set_recursion_desired(true);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    Request { message: m, client: SocketAddr::from((Ipv4Addr::LOCALHOST, 41000)), transport: Transport::Udp }
}

fn addresses(m: &Message) -> Vec<String> {
    m.answers().iter().map(|r| r.data().to_string()).collect()
}

fn a(owner: &Name, ttl: u32, ip: [u8; 4]) -> Record {
    Record::from_rdata(owner.clone(), ttl, RData::A(A::new(ip[0], ip[1], ip[2], ip[3])))
}

/// Stands in for the kubernetes plugin: four addresses for `*.svc.cluster.local`, NXDOMAIN
/// elsewhere in cluster.local, and falls through for everything else.
struct StubKubernetes;

impl Handler for StubKubernetes {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn handle<'a>(&'a self, req: &'a Request, next: Next<'a>) -> BoxFuture<'a, Message> {
        let q = req.message.query().unwrap().clone();
        let name = q.name().to_ascii().to_ascii_lowercase();
        if !name.ends_with("cluster.local.") {
            return next.run(req);
        }
        Box::pin(async move {
            if !name.ends_with(".svc.cluster.local.") {
                return req.response(ResponseCode::NXDomain);
            }
            let mut m = req.response(ResponseCode::NoError);
            m.set_authoritative(true);
            for i in 1..=4 {
                m.add_answer(a(q.name(), 30, [10, 96, 0, i]));
            }
            m
        })
    }
}

/// A UDP DNS responder on 127.0.0.1 answering A 192.0.2.1 with TTL 1, silent when `mute`.
struct Upstream {
    addr: SocketAddr,
    queries: Arc<Mutex<Vec<(String, RecordType)>>>,
    mute: Arc<AtomicBool>,
}

async fn upstream() -> Upstream {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let queries = Arc::new(Mutex::new(Vec::new()));
    let mute = Arc::new(AtomicBool::new(false));
    let (q, m) = (queries.clone(), mute.clone());
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let req = Message::from_vec(&buf[..n]).unwrap();
            let query = req.query().unwrap().clone();
            q.lock().unwrap().push((query.name().to_ascii(), query.query_type()));
            if m.load(Ordering::SeqCst) {
                continue;
            }
            let mut resp = Message::new();
            resp.set_id(req.id())
                .set_message_type(MessageType::Response)
                .set_recursion_available(true)
                .add_query(query.clone());
            if query.query_type() == RecordType::A {
                resp.add_answer(a(query.name(), 1, [192, 0, 2, 1]));
            } else {
                resp.set_response_code(ResponseCode::NXDomain);
            }
            let _ = socket.send_to(&resp.to_vec().unwrap(), from).await;
        }
    });
    Upstream { addr, queries, mute }
}

async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).await.unwrap();
    let status = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn corefile_chain_end_to_end() {
    let up = upstream().await;
    let env_addr = up.addr.to_string();
    let env = move |name: &str| (name == "UPSTREAM").then(|| env_addr.clone());
    let corefile = Corefile::parse_with(COREFILE, "Corefile", &env).unwrap();
    assert_eq!(corefile.servers.len(), 1);
    let block = &corefile.servers[0];
    assert_eq!(block.port, 1053);

    let loops = Arc::new(Mutex::new(Vec::<LoopDetected>::new()));
    let l = loops.clone();
    let ctx = ChainContext::new()
        .with_forward_timeouts(ForwardTimeouts {
            read: Duration::from_millis(300),
            overall: Duration::from_millis(600),
        })
        .with_loop_action(Arc::new(move |d: &LoopDetected| l.lock().unwrap().push(d.clone())));
    let synced = Arc::new(AtomicBool::new(false));
    let factory_calls = AtomicUsize::new(0);
    let s = synced.clone();
    let chain =
        build_chain(block, &ctx, |opts: &KubernetesOptions, _: &ChainContext| -> Result<KubernetesPlugin, BoxError> {
            factory_calls.fetch_add(1, Ordering::SeqCst);
            assert_eq!(opts.zones, ["cluster.local.", "in-addr.arpa.", "ip6.arpa."]);
            assert_eq!(opts.ttl, 30);
            let s = s.clone();
            Ok(KubernetesPlugin {
                handler: Arc::new(StubKubernetes),
                readiness: Some(Arc::new(move || s.load(Ordering::SeqCst))),
            })
        })
        .unwrap();
    assert_eq!(factory_calls.load(Ordering::SeqCst), 1);
    let names: Vec<&str> = chain.iter().map(|h| h.name()).collect();
    assert_eq!(
        names,
        [
            "ready",
            "health",
            "prometheus",
            "errors",
            "log",
            "loadbalance",
            "cache",
            "hosts",
            "kubernetes",
            "loop",
            "forward"
        ]
    );

    ctx.start().await.unwrap();
    let http = ctx.bound_addr("127.0.0.1:0".parse().unwrap()).unwrap();
    assert_eq!(http_get(http, "/health").await, (200, "OK".into()));
    assert_eq!(http_get(http, "/ready").await, (503, "kubernetes".into()));
    synced.store(true, Ordering::SeqCst);
    assert_eq!(http_get(http, "/ready").await, (200, "OK".into()));

    let run = |name: &'static str, t: RecordType| {
        let chain = &chain;
        async move {
            let req = query(name, t);
            let resp = Next::new(chain).run(&req).await;
            assert_eq!(resp.id(), req.message.id());
            resp
        }
    };

    // kubernetes answers its zone; loadbalance shuffles the addresses, also from the cache.
    let mut orders = HashSet::new();
    for _ in 0..30 {
        let r = run("web.default.svc.cluster.local.", RecordType::A).await;
        let mut got = addresses(&r);
        orders.insert(got.clone());
        got.sort();
        assert_eq!(got, ["10.96.0.1", "10.96.0.2", "10.96.0.3", "10.96.0.4"]);
    }
    assert!(orders.len() > 1, "answers never shuffled");
    let r = run("nope.cluster.local.", RecordType::A).await;
    assert_eq!(r.response_code(), ResponseCode::NXDomain);

    // hosts answers its inline entry.
    let r = run("myhost.example.", RecordType::A).await;
    assert_eq!(addresses(&r), ["10.0.0.9"]);

    // The loop probe went through the chain to the upstream once, and came back no more.
    let deadline = Instant::now() + Duration::from_secs(3);
    while !up.queries.lock().unwrap().iter().any(|(_, t)| *t == RecordType::HINFO) {
        assert!(Instant::now() < deadline, "no loop probe");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(loops.lock().unwrap().is_empty());

    // forward asks the upstream; the cache answers the second time.
    let before = up.queries.lock().unwrap().len();
    let r = run("example.org.", RecordType::A).await;
    assert_eq!(addresses(&r), ["192.0.2.1"]);
    let r = run("example.org.", RecordType::A).await;
    assert_eq!(addresses(&r), ["192.0.2.1"]);
    assert_eq!(up.queries.lock().unwrap().len(), before + 1);

    // The upstream goes silent: a cached name is served stale, a new one fails in time.
    up.mute.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let start = Instant::now();
    let r = run("example.org.", RecordType::A).await;
    assert_eq!(addresses(&r), ["192.0.2.1"]);
    assert_eq!(r.answers()[0].ttl(), 0);
    assert!(start.elapsed() < Duration::from_millis(200), "stale answers come at once");
    let start = Instant::now();
    let r = run("unknown.example.", RecordType::A).await;
    assert_eq!(r.response_code(), ResponseCode::ServFail);
    assert!(start.elapsed() < Duration::from_millis(1500), "{:?}", start.elapsed());

    let (status, metrics) = http_get(http, "/metrics").await;
    assert_eq!(status, 200);
    let to = format!("coredns_forward_requests_total{{to=\"{}\"}}", up.addr);
    for needle in [
        "coredns_dns_requests_total{server=\"dns://:1053\",zone=\".\",proto=\"udp\",family=\"1\",type=\"A\"}",
        "coredns_dns_responses_total{server=\"dns://:1053\",zone=\".\",rcode=\"SERVFAIL\"} 1",
        "coredns_cache_hits_total{server=\"dns://:1053\",type=\"success\",zones=\".\"}",
        "coredns_cache_served_stale_total{server=\"dns://:1053\",zones=\".\"} 1",
        to.as_str(),
    ] {
        assert!(metrics.contains(needle), "missing {needle} in\n{metrics}");
    }
    ctx.shutdown().await;
}

#[tokio::test]
async fn bad_corefiles_name_the_line() {
    let text = ".:53 {\n    errors\n    forward . 127.0.0.1 {\n        max_concurrent 10\n        fastest\n    }\n}\n";
    let cf = Corefile::parse(text).unwrap();
    let err = build_chain(&cf.servers[0], &ChainContext::new(), |_: &_, _: &_| -> Result<KubernetesPlugin, BoxError> {
        Err("unused".into())
    })
    .err()
    .unwrap();
    assert_eq!(err.to_string(), "Corefile:5: forward: unknown option \"fastest\"");
    let err = Corefile::parse(".:53 {\n    errors\n    import missing\n}\n").unwrap_err();
    assert_eq!(err.to_string(), "Corefile:3: import: no snippet named \"missing\"");
}
