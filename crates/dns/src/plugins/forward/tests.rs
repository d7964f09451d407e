//! Tests of `forward` against tiny DNS responders on 127.0.0.1.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

use super::*;
use crate::corefile::{ForwardOptions, Policy, UpstreamSpec};
use crate::plugins::testutil::{a_record, addresses, answer, query, udp_responder, Mock};
use crate::Next;

fn options(to: &[SocketAddr]) -> ForwardOptions {
    let mut o = ForwardOptions::new(vec![".".into()], to.iter().map(|a| UpstreamSpec::Address(*a)).collect());
    o.policy = Policy::Sequential;
    o
}

fn fast() -> ForwardTimeouts {
    ForwardTimeouts { read: Duration::from_millis(300), overall: Duration::from_millis(800) }
}

fn plugin(o: ForwardOptions, t: ForwardTimeouts) -> Arc<ForwardPlugin> {
    Arc::new(ForwardPlugin::new(o, t, Arc::new(Metrics::new())).unwrap())
}

fn a_responder(ip: [u8; 4]) -> impl Fn(&Message) -> Option<Message> + Send + Sync + 'static {
    move |q| {
        let owner = q.query().unwrap().name().to_ascii();
        Some(answer(q, ResponseCode::NoError, vec![a_record(&owner, 60, ip)]))
    }
}

/// A UDP socket that never answers.
async fn black_hole() -> (SocketAddr, UdpSocket) {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    (s.local_addr().unwrap(), s)
}

#[tokio::test]
async fn forwards_over_udp() {
    let (addr, _task) = udp_responder(a_responder([192, 0, 2, 1])).await;
    let f = plugin(options(&[addr]), fast());
    let req = query("example.org.", RecordType::A);
    let resp = f.handle(&req, Next::new(&[])).await;
    assert_eq!(resp.response_code(), ResponseCode::NoError);
    assert_eq!(resp.id(), req.message.id());
    assert_eq!(addresses(&resp), ["192.0.2.1"]);
    let to = addr.to_string();
    assert_eq!(f.metrics.value("coredns_forward_requests_total", &[("to", &to)]), Some(1.0));
    assert_eq!(f.metrics.value("coredns_forward_responses_total", &[("to", &to), ("rcode", "NOERROR")]), Some(1.0));
}

/// A UDP socket and a TCP listener on one free port of 127.0.0.1. (A port free for UDP may be
/// taken for TCP, by a connection of another test: then another port.)
async fn udp_and_tcp() -> (UdpSocket, TcpListener) {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        match TcpListener::bind(udp.local_addr().unwrap()).await {
            Ok(tcp) => return (udp, tcp),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(e) => panic!("binding TCP: {e}"),
        }
    }
    panic!("no port free for both UDP and TCP in 50 attempts");
}

#[tokio::test]
async fn retries_over_tcp_when_truncated() {
    let (udp, tcp) = udp_and_tcp().await;
    let addr = udp.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, from)) = udp.recv_from(&mut buf).await {
            let q = Message::from_vec(&buf[..n]).unwrap();
            let mut r = answer(&q, ResponseCode::NoError, vec![]);
            r.set_truncated(true);
            udp.send_to(&r.to_vec().unwrap(), from).await.unwrap();
        }
    });
    tokio::spawn(async move {
        while let Ok((mut s, _)) = tcp.accept().await {
            let len = s.read_u16().await.unwrap() as usize;
            let mut buf = vec![0u8; len];
            s.read_exact(&mut buf).await.unwrap();
            let q = Message::from_vec(&buf).unwrap();
            let ips: Vec<_> = (1..=40).map(|i| a_record("big.example.", 60, [10, 0, 0, i])).collect();
            let bytes = answer(&q, ResponseCode::NoError, ips).to_vec().unwrap();
            s.write_u16(bytes.len() as u16).await.unwrap();
            s.write_all(&bytes).await.unwrap();
        }
    });
    let f = plugin(options(&[addr]), fast());
    let resp = f.handle(&query("big.example.", RecordType::A), Next::new(&[])).await;
    assert!(!resp.truncated());
    assert_eq!(addresses(&resp).len(), 40);
}

#[tokio::test]
async fn refuses_beyond_max_concurrent() {
    let (addr, _hole) = black_hole().await;
    let mut o = options(&[addr]);
    o.max_concurrent = 2;
    let f = plugin(o, fast());
    let mut pending = Vec::new();
    for _ in 0..2 {
        let f = f.clone();
        pending.push(tokio::spawn(async move {
            let req = query("slow.example.", RecordType::A);
            f.handle(&req, Next::new(&[])).await.response_code()
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let start = Instant::now();
    let resp = f.handle(&query("third.example.", RecordType::A), Next::new(&[])).await;
    assert_eq!(resp.response_code(), ResponseCode::Refused);
    assert!(start.elapsed() < Duration::from_millis(100));
    for p in pending {
        assert_eq!(p.await.unwrap(), ResponseCode::ServFail);
    }
    assert_eq!(f.metrics.total("coredns_forward_max_concurrent_rejects_total"), 1.0);
    // Slots are given back.
    let resp = f.handle(&query("again.example.", RecordType::A), Next::new(&[])).await;
    assert_eq!(resp.response_code(), ResponseCode::ServFail);
}

#[tokio::test]
async fn silent_upstream_gives_servfail_within_the_timeout() {
    let (addr, _hole) = black_hole().await;
    let f = plugin(options(&[addr]), fast());
    let start = Instant::now();
    let resp = f.handle(&query("example.org.", RecordType::A), Next::new(&[])).await;
    let took = start.elapsed();
    assert_eq!(resp.response_code(), ResponseCode::ServFail);
    assert!(took >= Duration::from_millis(700), "{took:?}");
    assert!(took < Duration::from_millis(1500), "{took:?}");
}

#[tokio::test]
async fn closed_port_gives_servfail_within_the_timeout() {
    let (addr, hole) = black_hole().await;
    drop(hole);
    let f = plugin(options(&[addr]), fast());
    let start = Instant::now();
    let resp = f.handle(&query("example.org.", RecordType::A), Next::new(&[])).await;
    assert_eq!(resp.response_code(), ResponseCode::ServFail);
    assert!(start.elapsed() < Duration::from_millis(1500));
}

#[tokio::test]
async fn fails_over_to_the_next_upstream() {
    let (bad, _hole) = black_hole().await;
    let (good, _task) = udp_responder(a_responder([192, 0, 2, 7])).await;
    let f = plugin(options(&[bad, good]), fast());
    let resp = f.handle(&query("example.org.", RecordType::A), Next::new(&[])).await;
    assert_eq!(addresses(&resp), ["192.0.2.7"]);
}

#[tokio::test]
async fn failing_upstream_is_marked_down_by_health_checks() {
    let (bad, hole) = black_hole().await;
    drop(hole);
    let (good, _task) = udp_responder(a_responder([192, 0, 2, 8])).await;
    let mut o = options(&[bad, good]);
    o.max_fails = 1;
    o.health_check = Duration::from_millis(20);
    let f = plugin(o, fast());
    let resp = f.handle(&query("example.org.", RecordType::A), Next::new(&[])).await;
    assert_eq!(addresses(&resp), ["192.0.2.8"]);
    let deadline = Instant::now() + Duration::from_secs(3);
    while !f.upstreams()[0].down(1) {
        assert!(Instant::now() < deadline, "never marked down");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!f.upstreams()[1].down(1));
    assert!(f.metrics.total("coredns_forward_healthcheck_failures_total") >= 2.0);
}

#[tokio::test]
async fn names_outside_from_or_in_except_go_to_the_next_plugin() {
    let (addr, _task) = udp_responder(a_responder([192, 0, 2, 1])).await;
    let mut o = options(&[addr]);
    o.from = vec!["example.org.".into()];
    o.except = vec!["internal.example.org.".into()];
    let f = plugin(o, fast());
    let next = Mock::a(5, [10, 9, 9, 9]);
    let chain: Vec<Arc<dyn crate::Handler>> = vec![next.clone()];
    for (name, want) in
        [("www.example.org.", "192.0.2.1"), ("example.com.", "10.9.9.9"), ("a.internal.example.org.", "10.9.9.9")]
    {
        let resp = f.handle(&query(name, RecordType::A), Next::new(&chain)).await;
        assert_eq!(addresses(&resp), [want], "{name}");
    }
}

#[tokio::test]
async fn next_rcodes_go_to_the_next_plugin() {
    let (addr, _task) = udp_responder(|q| Some(answer(q, ResponseCode::NXDomain, vec![]))).await;
    let mut o = options(&[addr]);
    o.next = vec![ResponseCode::NXDomain];
    let f = plugin(o, fast());
    let chain: Vec<Arc<dyn crate::Handler>> = vec![Mock::a(5, [10, 1, 1, 1])];
    let resp = f.handle(&query("x.example.", RecordType::A), Next::new(&chain)).await;
    assert_eq!(addresses(&resp), ["10.1.1.1"]);
}

#[test]
fn resolv_conf_upstreams() {
    let dir = std::env::temp_dir().join(format!("podnet-dns-forward-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("resolv.conf");
    std::fs::write(&path, "nameserver 127.0.0.53\nnameserver 127.0.0.2\n").unwrap();
    let o = ForwardOptions::new(vec![".".into()], vec![UpstreamSpec::ResolvConf(path.clone())]);
    let f = ForwardPlugin::new(o, fast(), Arc::new(Metrics::new())).unwrap();
    let addrs: Vec<SocketAddr> = f.upstreams().iter().map(|u| u.addr).collect();
    assert_eq!(addrs, ["127.0.0.53:53".parse().unwrap(), "127.0.0.2:53".parse().unwrap()]);
    std::fs::write(&path, "search example\n").unwrap();
    let o = ForwardOptions::new(vec![".".into()], vec![UpstreamSpec::ResolvConf(path.clone())]);
    let err = ForwardPlugin::new(o, fast(), Arc::new(Metrics::new())).err().unwrap();
    assert!(err.to_string().starts_with("no nameservers in"), "{err}");
    let o = ForwardOptions::new(vec![".".into()], vec![UpstreamSpec::ResolvConf(dir.join("missing"))]);
    assert!(ForwardPlugin::new(o, fast(), Arc::new(Metrics::new())).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}
