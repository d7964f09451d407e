//! Tests of `hosts`: file and inline entries, PTR, NODATA/NXDOMAIN, fallthrough and reload.

use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use super::*;
use crate::corefile::{Fallthrough, HostsOptions};
use crate::plugins::testutil::{addresses, query, Mock};
use crate::Handler;

fn temp_file(tag: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("podnet-dns-hosts-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("hosts");
    std::fs::write(&path, text).unwrap();
    path
}

fn options(file: PathBuf) -> HostsOptions {
    HostsOptions {
        file,
        zones: vec![".".into()],
        inline: vec![("10.1.1.1".parse().unwrap(), vec!["inline.example.".into()])],
        ttl: 60,
        no_reverse: false,
        reload: Duration::ZERO,
        fallthrough: None,
    }
}

#[tokio::test]
async fn answers_from_file_and_inline_entries() {
    let path = temp_file("answers", "10.2.2.2 web.example www.example\nfd00::2 web.example\n");
    let h = HostsPlugin::new(options(path.clone()), Arc::new(Metrics::new()));
    let r = h.handle(&query("WEB.example.", RecordType::A), Next::new(&[])).await;
    assert!(r.authoritative());
    assert_eq!(addresses(&r), ["10.2.2.2"]);
    assert_eq!(r.answers()[0].ttl(), 60);
    let r = h.handle(&query("web.example.", RecordType::AAAA), Next::new(&[])).await;
    assert_eq!(r.answers()[0].data().to_string(), "fd00::2");
    let r = h.handle(&query("inline.example.", RecordType::A), Next::new(&[])).await;
    assert_eq!(addresses(&r), ["10.1.1.1"]);
    let r = h.handle(&query("2.2.2.10.in-addr.arpa.", RecordType::PTR), Next::new(&[])).await;
    let ptrs: Vec<String> = r.answers().iter().map(|a| a.data().to_string()).collect();
    assert_eq!(ptrs, ["web.example.", "www.example."]);
    // The name exists, not with this type: NODATA; an unknown name: NXDOMAIN.
    let r = h.handle(&query("www.example.", RecordType::AAAA), Next::new(&[])).await;
    assert_eq!((r.response_code(), r.answers().len()), (ResponseCode::NoError, 0));
    let r = h.handle(&query("nope.example.", RecordType::A), Next::new(&[])).await;
    assert_eq!(r.response_code(), ResponseCode::NXDomain);
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[tokio::test]
async fn fallthrough_and_zones() {
    let path = temp_file("fallthrough", "10.2.2.2 web.example\n");
    let mut o = options(path.clone());
    o.zones = vec!["example.".into()];
    o.fallthrough = Some(Fallthrough::default());
    o.no_reverse = true;
    let h = HostsPlugin::new(o, Arc::new(Metrics::new()));
    let next = Mock::a(5, [10, 9, 9, 9]);
    let chain: Vec<Arc<dyn Handler>> = vec![next.clone()];
    let r = h.handle(&query("other.example.", RecordType::A), Next::new(&chain)).await;
    assert_eq!(addresses(&r), ["10.9.9.9"]);
    let r = h.handle(&query("web.other.", RecordType::A), Next::new(&chain)).await;
    assert_eq!(addresses(&r), ["10.9.9.9"], "outside the zones");
    let r = h.handle(&query("web.example.", RecordType::A), Next::new(&chain)).await;
    assert_eq!(addresses(&r), ["10.2.2.2"]);
    assert_eq!(next.calls(), 2);
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[tokio::test]
async fn reloads_a_changed_file() {
    let path = temp_file("reload", "10.2.2.2 web.example\n");
    let mut o = options(path.clone());
    o.reload = Duration::from_millis(20);
    let metrics = Arc::new(Metrics::new());
    let h = HostsPlugin::new(o, metrics.clone());
    assert_eq!(metrics.value("coredns_hosts_entries", &[]), Some(2.0));
    std::fs::write(&path, "10.3.3.3 web.example\n10.3.3.4 new.example\n").unwrap();
    let mut seen = Vec::new();
    for _ in 0..100 {
        let r = h.handle(&query("web.example.", RecordType::A), Next::new(&[])).await;
        seen = addresses(&r);
        if seen == ["10.3.3.3"] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen, ["10.3.3.3"]);
    assert_eq!(metrics.value("coredns_hosts_entries", &[]), Some(3.0));
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}
