//! Tests of chains built from a Corefile: plugin order, build errors, the HTTP endpoints of
//! `health`, `ready` and `prometheus`, `errors`, `loop` and `reload`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::testutil::{a_record, addresses, answer, query, udp_responder, Mock};
use super::*;
use crate::corefile::{Corefile, ReloadOptions};
use crate::{BoxFuture, Handler, Next, Request};

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("podnet-dns-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn stub_kubernetes(
    synced: Arc<AtomicBool>,
) -> impl Fn(&crate::corefile::KubernetesOptions, &ChainContext) -> Result<KubernetesPlugin, BoxError> {
    move |_, _| {
        let s = synced.clone();
        Ok(KubernetesPlugin {
            handler: Mock::a(5, [10, 96, 0, 1]),
            readiness: Some(Arc::new(move || s.load(Ordering::Relaxed))),
        })
    }
}

/// GET `path` from `addr`: the status code and the body.
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
async fn kubeadm_corefile_builds_in_plugin_cfg_order() {
    let dir = temp_dir("kubeadm");
    let resolv = dir.join("resolv.conf");
    std::fs::write(&resolv, "nameserver 127.0.0.1\n").unwrap();
    let text = crate::corefile::tests::KUBEADM.replace("/etc/resolv.conf", resolv.to_str().unwrap());
    let cf = Corefile::parse(&text).unwrap();
    let ctx = ChainContext::new();
    let chain = build_chain(&cf.servers[0], &ctx, stub_kubernetes(Arc::new(AtomicBool::new(true)))).unwrap();
    let names: Vec<&str> = chain.iter().map(|h| h.name()).collect();
    assert_eq!(
        names,
        ["reload", "ready", "health", "prometheus", "errors", "loadbalance", "cache", "mock", "loop", "forward"]
    );
    let mut endpoints = ctx.http_endpoints();
    endpoints.sort();
    let want: Vec<SocketAddr> =
        ["0.0.0.0:8080", "0.0.0.0:8181", "0.0.0.0:9153"].iter().map(|a| a.parse().unwrap()).collect();
    assert_eq!(endpoints, want);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn build_errors_name_the_line() {
    let cf = Corefile::parse(".:53 {\n  errors\n  forward . /nonexistent/resolv.conf\n}\n").unwrap();
    let err = build_chain(&cf.servers[0], &ChainContext::new(), stub_kubernetes(Arc::new(AtomicBool::new(true))))
        .err()
        .unwrap();
    assert!(err.to_string().starts_with("Corefile:3: forward: cannot read /nonexistent/resolv.conf"), "{err}");
    let cf = Corefile::parse(".:53 {\n  kubernetes cluster.local\n}\n").unwrap();
    let err = build_chain(&cf.servers[0], &ChainContext::new(), |_: &_, _: &_| -> Result<KubernetesPlugin, BoxError> {
        Err("no API server".into())
    })
    .err()
    .unwrap();
    assert_eq!(err.to_string(), "Corefile:2: kubernetes: no API server");
    let cf = Corefile::parse(".:53 {\n  cache\n  nonsense\n}\n").unwrap();
    let err = build_chain(&cf.servers[0], &ChainContext::new(), stub_kubernetes(Arc::new(AtomicBool::new(true))))
        .err()
        .unwrap();
    assert_eq!(err.to_string(), "Corefile:3: unknown plugin \"nonsense\"");
}

#[tokio::test]
async fn health_ready_and_metrics_endpoints() {
    let text = ".:1053 {\n  health 127.0.0.1:0 {\n    lameduck 300ms\n  }\n  ready 127.0.0.1:0\n  prometheus 127.0.0.1:0\n  kubernetes cluster.local\n}\n";
    let cf = Corefile::parse(text).unwrap();
    let ctx = ChainContext::new();
    let synced = Arc::new(AtomicBool::new(false));
    let chain = build_chain(&cf.servers[0], &ctx, stub_kubernetes(synced.clone())).unwrap();
    ctx.start().await.unwrap();
    ctx.start().await.unwrap();
    let addr = ctx.bound_addr("127.0.0.1:0".parse().unwrap()).unwrap();
    assert_eq!(http_get(addr, "/health").await, (200, "OK".into()));
    assert_eq!(http_get(addr, "/ready").await, (503, "kubernetes".into()));
    synced.store(true, Ordering::Relaxed);
    assert_eq!(http_get(addr, "/ready").await, (200, "OK".into()));
    assert_eq!(http_get(addr, "/nope").await.0, 404);

    // Through the server's encoding, which tells the plugins the answer's size.
    let req = query("kubernetes.default.svc.cluster.local.", RecordType::A);
    let wire = crate::server::respond(&chain, req.message.clone(), req.client, req.transport).await;
    let resp = Message::from_vec(&wire).unwrap();
    assert_eq!(addresses(&resp), ["10.96.0.1"]);
    let (status, body) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200);
    let size_sum = format!(
        "coredns_dns_response_size_bytes_sum{{server=\"dns://:1053\",zone=\".\",proto=\"udp\"}} {}\n",
        wire.len()
    );
    assert!(body.contains(&size_sum), "missing {size_sum} in\n{body}");
    for line in [
        "coredns_dns_response_size_bytes_count{server=\"dns://:1053\",zone=\".\",proto=\"udp\"} 1",
        "coredns_dns_requests_total{server=\"dns://:1053\",zone=\".\",proto=\"udp\",family=\"1\",type=\"A\"} 1",
        "coredns_dns_responses_total{server=\"dns://:1053\",zone=\".\",rcode=\"NOERROR\"} 1",
        "coredns_dns_request_duration_seconds_count{server=\"dns://:1053\",zone=\".\",type=\"A\"} 1",
        "coredns_plugin_enabled{server=\"dns://:1053\",zone=\".\",name=\"kubernetes\"} 1",
        "# TYPE coredns_dns_request_duration_seconds histogram",
        "coredns_build_info{",
    ] {
        assert!(body.contains(line), "missing {line} in\n{body}");
    }
    let start = Instant::now();
    ctx.shutdown().await;
    assert!(start.elapsed() >= Duration::from_millis(300), "lameduck");
    assert!(TcpStream::connect(addr).await.is_err());
}

struct Failing;

impl Handler for Failing {
    fn name(&self) -> &'static str {
        "failing"
    }

    fn handle<'a>(&'a self, req: &'a Request, _next: Next<'a>) -> BoxFuture<'a, Message> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            report_error("failing", "read udp 127.0.0.1:1->127.0.0.1:2: i/o timeout");
            req.response(ResponseCode::ServFail)
        })
    }
}

#[tokio::test]
async fn errors_collects_what_plugins_report() {
    let chain: Vec<Arc<dyn Handler>> = vec![Arc::new(Failing)];
    let req = query("example.org.", RecordType::A);
    let (resp, errors) = errors::ErrorsPlugin::collect(&req, Next::new(&chain)).await;
    assert_eq!(resp.response_code(), ResponseCode::ServFail);
    assert_eq!(errors, ["plugin/failing: read udp 127.0.0.1:1->127.0.0.1:2: i/o timeout"]);
    // Outside `errors`, reporting is a no-op.
    report_error("failing", "ignored");
}

fn recording_action() -> (LoopAction, Arc<Mutex<Vec<LoopDetected>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    (Arc::new(move |d: &LoopDetected| s.lock().unwrap().push(d.clone())), seen)
}

#[tokio::test]
async fn loop_is_detected_when_forwarding_comes_back() {
    let (action, detected) = recording_action();
    let looping = Arc::new(loop_detect::LoopPlugin::new(&[".".to_string()], action));
    // A DNS server on 127.0.0.1 that runs this same chain, which forwards to that server.
    let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let addr = socket.local_addr().unwrap();
    let fwd = forward::ForwardPlugin::new(
        crate::corefile::ForwardOptions::new(vec![".".into()], vec![crate::corefile::UpstreamSpec::Address(addr)]),
        ForwardTimeouts { read: Duration::from_millis(500), overall: Duration::from_secs(1) },
        Arc::new(Metrics::new()),
    )
    .unwrap();
    let chain: Arc<Vec<Arc<dyn Handler>>> = Arc::new(vec![looping.clone(), Arc::new(fwd)]);
    let served = Arc::new(AtomicUsize::new(0));
    let (c, s, n) = (chain.clone(), socket.clone(), served.clone());
    let server = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((len, from)) = s.recv_from(&mut buf).await {
            n.fetch_add(1, Ordering::SeqCst);
            let message = Message::from_vec(&buf[..len]).unwrap();
            let (c, s) = (c.clone(), s.clone());
            tokio::spawn(async move {
                let req = Request { message, client: from, transport: crate::Transport::Udp };
                let resp = Next::new(&c).run(&req).await;
                let _ = s.send_to(&resp.to_vec().unwrap(), from).await;
            });
        }
    });
    tokio::time::timeout(Duration::from_secs(5), looping.clone().probe(chain.to_vec())).await.unwrap();
    let d = detected.lock().unwrap().clone();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].qname, looping.qname());
    assert!(d[0].to_string().starts_with("Loop (127.0.0.1:"), "{}", d[0]);
    assert_eq!(looping.seen(), 3);
    assert!(served.load(Ordering::SeqCst) <= 3);
    server.abort();
}

#[tokio::test]
async fn no_loop_through_a_real_upstream() {
    let (action, detected) = recording_action();
    let looping = Arc::new(loop_detect::LoopPlugin::new(&["example.".to_string()], action));
    assert!(looping.qname().ends_with(".example."));
    let (addr, _task) = udp_responder(|q| Some(answer(q, ResponseCode::NXDomain, vec![]))).await;
    let fwd = forward::ForwardPlugin::new(
        crate::corefile::ForwardOptions::new(vec![".".into()], vec![crate::corefile::UpstreamSpec::Address(addr)]),
        ForwardTimeouts::default(),
        Arc::new(Metrics::new()),
    )
    .unwrap();
    let chain: Vec<Arc<dyn Handler>> = vec![looping.clone(), Arc::new(fwd)];
    let probe = tokio::spawn(looping.clone().probe(chain.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(looping.seen(), 1);
    assert!(detected.lock().unwrap().is_empty());
    probe.abort();
}

#[tokio::test]
async fn reload_applies_good_corefiles_and_keeps_the_old_on_bad_ones() {
    let dir = temp_dir("reload");
    let path = dir.join("Corefile");
    std::fs::write(&path, ".:1053 {\n  reload\n  errors\n}\n").unwrap();
    let mut reloader = Reloader::new(&path);
    assert_eq!(reloader.check().unwrap(), None);

    std::fs::write(&path, ".:1053 {\n  reload\n  errors\n  bogus\n}\n").unwrap();
    let err = reloader.check().unwrap_err();
    assert_eq!(err.line, 4);
    assert_eq!(reloader.check().unwrap(), None, "a bad file is reported once");

    std::fs::write(&path, ".:1053 {\n  reload\n  log\n}\n").unwrap();
    let cf = reloader.check().unwrap().unwrap();
    assert_eq!(cf.servers[0].plugins[1].name, "log");

    // Applying: a good change is applied, bad ones are counted and keep the old chain.
    let metrics = Metrics::new();
    let shared = SharedChain::new(Vec::new());
    let ctx = ChainContext::new();
    let mut applied = 0;
    let mut apply = |cf: Corefile| -> Result<(), BoxError> {
        let servers = build_servers(&cf, &ctx, |_: &_, _: &_| -> Result<KubernetesPlugin, BoxError> {
            Err("no kubernetes here".into())
        })?;
        shared.store(servers.into_iter().next().unwrap().chain);
        applied += 1;
        Ok(())
    };
    let mut step = |text: &str| {
        std::fs::write(&path, text).unwrap();
        reload_once(&mut reloader, Some(&metrics), &mut apply)
    };
    assert_eq!(
        step(".:1053 {\n  reload 5s\n  cache 30\n}\n"),
        ReloadOutcome::Applied(Some(ReloadOptions {
            interval: Duration::from_secs(5),
            jitter: Duration::from_millis(2500)
        }))
    );
    assert!(
        matches!(step(".:1053 {\n  reload\n  cache 0\n}\n"), ReloadOutcome::Failed(e) if e.ends_with("Corefile:3: cache: cache TTL can not be zero or negative"))
    );
    // A Corefile that builds badly (kubernetes cannot start) keeps the old chain too.
    assert!(
        matches!(step(".:1053 {\n  reload\n  kubernetes\n}\n"), ReloadOutcome::Failed(e) if e.contains("no kubernetes here"))
    );
    assert_eq!(step(".:1053 {\n  reload\n  kubernetes\n}\n"), ReloadOutcome::Unchanged);
    assert_eq!(step(".:1053 {\n  errors\n}\n"), ReloadOutcome::Applied(None));
    assert_eq!(applied, 2);
    assert_eq!(metrics.value("coredns_reload_failed_total", &[]), Some(2.0));
    let names: Vec<&str> = shared.load().iter().map(|h| h.name()).collect();
    assert_eq!(names, ["errors"]);

    // The watcher applies a change and ends when `reload` is dropped.
    std::fs::write(&path, ".:1053 {\n  reload\n  log\n}\n").unwrap();
    let seen = Arc::new(Mutex::new(Vec::<Corefile>::new()));
    let s = seen.clone();
    let watcher = tokio::spawn(watch_corefile(
        Reloader::new(&path),
        ReloadOptions { interval: Duration::from_millis(30), jitter: Duration::ZERO },
        None,
        move |cf: Corefile| {
            s.lock().unwrap().push(cf);
            Ok(())
        },
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(seen.lock().unwrap().is_empty());
    std::fs::write(&path, ".:1053 {\n  log\n}\n").unwrap();
    tokio::time::timeout(Duration::from_secs(3), watcher).await.unwrap().unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn cache_in_a_built_chain_refreshes_stale_items_through_the_rest() {
    let cf = Corefile::parse(".:53 {\n  cache {\n    serve_stale\n  }\n  kubernetes\n}\n").unwrap();
    let upstream = Mock::new(|r| {
        let owner = r.message.query().unwrap().name().to_ascii();
        answer(&r.message, ResponseCode::NoError, vec![a_record(&owner, 60, [10, 0, 0, 1])])
    });
    let u = upstream.clone();
    let chain = build_chain(&cf.servers[0], &ChainContext::new(), move |_: &_, _: &_| {
        Ok(KubernetesPlugin { handler: u.clone(), readiness: None })
    })
    .unwrap();
    let req = query("svc.example.", RecordType::A);
    Next::new(&chain).run(&req).await;
    Next::new(&chain).run(&req).await;
    assert_eq!(upstream.calls(), 1);
}
