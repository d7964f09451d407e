//! Tests of `cache` with a mock upstream handler and a clock moved by hand.

use crate::plugins::response::zone_of;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use super::*;
use crate::corefile::{CacheOptions, Prefetch, RefreshMode, ServeStale};
use crate::plugins::testutil::{a_record, addresses, answer, query, soa_record, Mock};
use crate::Handler;

struct Manual(Mutex<Instant>);

impl Manual {
    fn new() -> Arc<Manual> {
        Arc::new(Manual(Mutex::new(Instant::now())))
    }

    fn advance(&self, secs: u64) {
        *self.0.lock().unwrap() += Duration::from_secs(secs);
    }
}

impl Clock for Manual {
    fn now(&self) -> Instant {
        *self.0.lock().unwrap()
    }
}

struct Setup {
    cache: Arc<CachePlugin>,
    upstream: Arc<Mock>,
    clock: Arc<Manual>,
    chain: Vec<Arc<dyn Handler>>,
}

impl Setup {
    fn new(opts: CacheOptions, upstream: Arc<Mock>, attach: bool) -> Setup {
        let clock = Manual::new();
        let cache = Arc::new(CachePlugin::with_clock(opts, "dns://:53", Arc::new(Metrics::new()), clock.clone()));
        if attach {
            cache.attach_rest(vec![upstream.clone()]);
        }
        let chain: Vec<Arc<dyn Handler>> = vec![cache.clone(), upstream.clone()];
        Setup { cache, upstream, clock, chain }
    }

    async fn ask(&self, name: &str, t: RecordType) -> Message {
        let req = query(name, t);
        let resp = Next::new(&self.chain).run(&req).await;
        assert_eq!(resp.id(), req.message.id());
        resp
    }

    /// Waits (up to half a second) for a background refresh to have asked the upstream `n` times.
    async fn wait_for_calls(&self, n: usize) {
        for _ in 0..100 {
            if self.upstream.calls() == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Asks on the wire path; `None` when it declines.
    fn ask_wire(&self, name: &str, t: RecordType) -> Option<Message> {
        wire_ask(&self.chain, name, t)
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.cache.shared.metrics.value(name, labels).unwrap_or(0.0)
    }
}

fn wire_ask(chain: &[Arc<dyn Handler>], name: &str, t: RecordType) -> Option<Message> {
    let bytes = query(name, t).message.to_vec().unwrap();
    let client = "10.0.0.9:5300".parse().unwrap();
    assert!(crate::wire::WireQuery::parse(&bytes, client, crate::Transport::Udp).is_some(), "a plain query");
    crate::wire::answer(chain, &bytes, client, crate::Transport::Udp).map(|out| Message::from_vec(&out).unwrap())
}

fn opts() -> CacheOptions {
    CacheOptions::new(vec![".".into()])
}

#[tokio::test]
async fn caches_and_counts_ttls_down_until_expiry() {
    let s = Setup::new(opts(), Mock::a(60, [192, 0, 2, 1]), false);
    let first = s.ask("example.org.", RecordType::A).await;
    assert_eq!(first.answers()[0].ttl(), 60);
    s.clock.advance(20);
    let second = s.ask("example.org.", RecordType::A).await;
    assert_eq!(s.upstream.calls(), 1);
    assert_eq!(addresses(&second), ["192.0.2.1"]);
    assert_eq!(second.answers()[0].ttl(), 40);
    // Another type, another class of key.
    s.ask("example.org.", RecordType::AAAA).await;
    assert_eq!(s.upstream.calls(), 2);
    s.clock.advance(41);
    let third = s.ask("example.org.", RecordType::A).await;
    assert_eq!(s.upstream.calls(), 3);
    assert_eq!(third.answers()[0].ttl(), 60);
    let server = [("server", "dns://:53"), ("type", "success"), ("zones", ".")];
    assert_eq!(s.value("coredns_cache_hits_total", &server), 1.0);
    assert_eq!(s.value("coredns_cache_misses_total", &[("server", "dns://:53"), ("zones", ".")]), 3.0);
    assert_eq!(s.value("coredns_cache_entries", &server), 2.0);
}

#[tokio::test]
async fn max_and_min_ttl_caps() {
    let mut o = opts();
    o.success.max_ttl = Duration::from_secs(30);
    let s = Setup::new(o, Mock::a(300, [192, 0, 2, 1]), false);
    s.ask("capped.example.", RecordType::A).await;
    s.clock.advance(10);
    let r = s.ask("capped.example.", RecordType::A).await;
    assert_eq!(r.answers()[0].ttl(), 20, "TTL capped at the 30s the item lives");
    s.clock.advance(21);
    s.ask("capped.example.", RecordType::A).await;
    assert_eq!(s.upstream.calls(), 2);

    // A TTL of 0 is kept the minimum 5s.
    let s = Setup::new(opts(), Mock::a(0, [192, 0, 2, 1]), false);
    s.ask("zero.example.", RecordType::A).await;
    s.clock.advance(4);
    s.ask("zero.example.", RecordType::A).await;
    assert_eq!(s.upstream.calls(), 1);
    s.clock.advance(2);
    s.ask("zero.example.", RecordType::A).await;
    assert_eq!(s.upstream.calls(), 2);
}

#[tokio::test]
async fn denials_use_the_soa_and_their_own_cap() {
    let upstream = Mock::new(|req| {
        let mut m = answer(&req.message, ResponseCode::NXDomain, vec![]);
        m.add_name_server(soa_record("example.", 3600, 120));
        m
    });
    let mut o = opts();
    o.denial.max_ttl = Duration::from_secs(60);
    let s = Setup::new(o, upstream, false);
    let r = s.ask("nope.example.", RecordType::A).await;
    assert_eq!(r.response_code(), ResponseCode::NXDomain);
    s.clock.advance(59);
    let r = s.ask("nope.example.", RecordType::A).await;
    assert_eq!(r.response_code(), ResponseCode::NXDomain);
    assert_eq!(s.upstream.calls(), 1);
    assert_eq!(s.cache.len(Kind::Denial), 1);
    s.clock.advance(2);
    s.ask("nope.example.", RecordType::A).await;
    assert_eq!(s.upstream.calls(), 2);
}

#[tokio::test]
async fn servfail_is_cached_briefly_and_refused_not_at_all() {
    let s = Setup::new(opts(), Mock::new(|r| answer(&r.message, ResponseCode::ServFail, vec![])), false);
    s.ask("bad.example.", RecordType::A).await;
    s.ask("bad.example.", RecordType::A).await;
    assert_eq!(s.upstream.calls(), 1);
    s.clock.advance(6);
    s.ask("bad.example.", RecordType::A).await;
    assert_eq!(s.upstream.calls(), 2);

    let s = Setup::new(opts(), Mock::new(|r| answer(&r.message, ResponseCode::Refused, vec![])), false);
    s.ask("refused.example.", RecordType::A).await;
    s.ask("refused.example.", RecordType::A).await;
    assert_eq!(s.upstream.calls(), 2);
}

#[tokio::test]
async fn dnssec_ok_is_part_of_the_key_and_zones_limit_the_cache() {
    let mut o = opts();
    o.zones = vec!["example.".into()];
    let s = Setup::new(o, Mock::a(60, [192, 0, 2, 1]), false);
    s.ask("a.example.", RecordType::A).await;
    let mut req = query("a.example.", RecordType::A);
    let mut edns = Edns::new();
    edns.set_dnssec_ok(true);
    req.message.set_edns(edns);
    Next::new(&s.chain).run(&req).await;
    assert_eq!(s.upstream.calls(), 2);
    Next::new(&s.chain).run(&req).await;
    assert_eq!(s.upstream.calls(), 2);
    s.ask("other.org.", RecordType::A).await;
    s.ask("other.org.", RecordType::A).await;
    assert_eq!(s.upstream.calls(), 4, "outside the cache's zones");
}

#[tokio::test]
async fn capacity_evicts() {
    let mut o = opts();
    o.success.capacity = 2;
    let s = Setup::new(o, Mock::a(60, [192, 0, 2, 1]), false);
    for n in ["a.example.", "b.example.", "c.example."] {
        s.ask(n, RecordType::A).await;
    }
    assert_eq!(s.cache.len(Kind::Success), 2);
    assert_eq!(
        s.value("coredns_cache_evictions_total", &[("server", "dns://:53"), ("type", "success"), ("zones", ".")]),
        1.0
    );
}

#[tokio::test]
async fn serve_stale_when_the_upstream_fails() {
    let mut o = opts();
    o.serve_stale = Some(ServeStale { duration: Duration::from_secs(3600), refresh: RefreshMode::Verify });
    let s = Setup::new(o, Mock::a(30, [192, 0, 2, 1]), false);
    s.ask("stale.example.", RecordType::A).await;
    s.upstream.set(|r| answer(&r.message, ResponseCode::ServFail, vec![]));
    s.clock.advance(100);
    let r = s.ask("stale.example.", RecordType::A).await;
    assert_eq!(r.response_code(), ResponseCode::NoError);
    assert_eq!(addresses(&r), ["192.0.2.1"]);
    assert_eq!(r.answers()[0].ttl(), 0);
    assert_eq!(s.upstream.calls(), 2, "verify asked the upstream first");
    assert_eq!(s.value("coredns_cache_served_stale_total", &[("server", "dns://:53"), ("zones", ".")]), 1.0);
    // Past the stale window: the failure goes through.
    s.clock.advance(3600);
    let r = s.ask("stale.example.", RecordType::A).await;
    assert_eq!(r.response_code(), ResponseCode::ServFail);
}

#[tokio::test]
async fn serve_stale_immediate_refreshes_in_the_background() {
    let mut o = opts();
    o.serve_stale = Some(ServeStale { duration: Duration::from_secs(3600), refresh: RefreshMode::Immediate });
    let s = Setup::new(o, Mock::a(30, [192, 0, 2, 1]), true);
    s.ask("fresh.example.", RecordType::A).await;
    s.upstream.set(|r| {
        let owner = r.message.query().unwrap().name().to_ascii();
        answer(&r.message, ResponseCode::NoError, vec![a_record(&owner, 30, [192, 0, 2, 2])])
    });
    s.clock.advance(40);
    let r = s.ask("fresh.example.", RecordType::A).await;
    assert_eq!(addresses(&r), ["192.0.2.1"], "stale answer at once");
    s.wait_for_calls(2).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let r = s.ask("fresh.example.", RecordType::A).await;
    assert_eq!(addresses(&r), ["192.0.2.2"], "refreshed meanwhile");
    assert_eq!(s.upstream.calls(), 2);
}

#[tokio::test]
async fn prefetches_popular_items() {
    let mut o = opts();
    o.prefetch = Some(Prefetch { amount: 2, duration: Duration::from_secs(60), percentage: 50 });
    let s = Setup::new(o, Mock::a(100, [192, 0, 2, 1]), true);
    s.ask("popular.example.", RecordType::A).await;
    s.clock.advance(10);
    s.ask("popular.example.", RecordType::A).await;
    s.clock.advance(50);
    s.ask("popular.example.", RecordType::A).await;
    s.wait_for_calls(2).await;
    assert_eq!(s.upstream.calls(), 2, "prefetched once");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let r = s.ask("popular.example.", RecordType::A).await;
    assert_eq!(r.answers()[0].ttl(), 100, "the prefetched copy is fresh");
    assert_eq!(s.value("coredns_cache_prefetch_total", &[("server", "dns://:53"), ("zones", ".")]), 1.0);
}

#[test]
fn policy_follows_coredns() {
    let q = query("x.example.", RecordType::A).message;
    let o = opts();
    let truncated = {
        let mut m = answer(&q, ResponseCode::NoError, vec![a_record("x.example.", 60, [1, 2, 3, 4])]);
        m.set_truncated(true);
        m
    };
    assert_eq!(policy(&truncated, "x.example.", &o), None);
    let nx_without_soa = answer(&q, ResponseCode::NXDomain, vec![]);
    assert_eq!(policy(&nx_without_soa, "x.example.", &o), None);
    let mut nodata = answer(&q, ResponseCode::NoError, vec![]);
    nodata.add_name_server(soa_record("example.", 300, 20));
    assert_eq!(policy(&nodata, "x.example.", &o), Some((Kind::Denial, Duration::from_secs(20))));
    let mut disabled = opts();
    disabled.denial.disabled = Some(vec!["example.".into()]);
    assert_eq!(policy(&nodata, "x.example.", &disabled), None);
    let mut keep = opts();
    keep.servfail = Duration::ZERO;
    assert_eq!(policy(&answer(&q, ResponseCode::ServFail, vec![]), "x.example.", &keep), None);
}

#[test]
fn servfail_never_replaces_a_good_item() {
    let mut store = Store::new(opts());
    let q = query("x.example.", RecordType::A).message;
    let key = Key::of(&q).unwrap();
    let now = Instant::now();
    let good = answer(&q, ResponseCode::NoError, vec![a_record("x.example.", 60, [1, 2, 3, 4])]);
    let mut rng = rand::rng();
    assert_eq!(store.insert(key.clone(), &good, now, &mut rng).kind, Some(Kind::Success));
    let bad = answer(&q, ResponseCode::ServFail, vec![]);
    assert_eq!(store.insert(key.clone(), &bad, now, &mut rng).kind, None);
    assert!(matches!(store.lookup(&key, now), Lookup::Hit { .. }));
}

#[tokio::test]
async fn keys_ignore_case_and_zones_match_on_labels() {
    let s = Setup::new(CacheOptions::new(vec!["example.".into()]), Mock::a(60, [192, 0, 2, 1]), false);
    s.ask("Web.Example.", RecordType::A).await;
    s.ask("web.EXAMPLE.", RecordType::A).await;
    assert_eq!(s.upstream.calls(), 1, "one key for both spellings");
    assert_eq!(s.cache.len(Kind::Success), 1);
    // Not in the zone: passed on, never cached.
    s.ask("web.notexample.", RecordType::A).await;
    s.ask("web.notexample.", RecordType::A).await;
    s.ask("example.org.", RecordType::A).await;
    assert_eq!(s.upstream.calls(), 4);
    assert_eq!(s.cache.len(Kind::Success), 1);
    assert!(zone_of(&Name::root(), &Name::from_ascii("a.b.").unwrap()));
    assert!(zone_of(&Name::from_ascii("b.").unwrap(), &Name::from_ascii("A.B.").unwrap()));
    assert!(!zone_of(&Name::from_ascii("a.b.").unwrap(), &Name::from_ascii("b.").unwrap()));
}

#[tokio::test]
async fn the_wire_path_serves_live_items_and_declines_the_rest_untouched() {
    let s = Setup::new(opts(), Mock::a(60, [192, 0, 2, 1]), false);
    let totals = |s: &Setup| {
        let zones = [("server", "dns://:53"), ("zones", ".")];
        let hits = s.value("coredns_cache_hits_total", &[("server", "dns://:53"), ("type", "success"), ("zones", ".")]);
        (s.value("coredns_cache_requests_total", &zones), hits, s.value("coredns_cache_misses_total", &zones))
    };
    // A miss declines without counting anything; the Message path then fills the cache.
    assert_eq!(s.ask_wire("Wire.Example.", RecordType::A), None);
    assert_eq!((totals(&s), s.upstream.calls()), ((0.0, 0.0, 0.0), 0));
    s.ask("wire.example.", RecordType::A).await;
    s.clock.advance(20);
    let mut hit = s.ask_wire("wire.example.", RecordType::A).expect("a hit on the wire path");
    assert_eq!((addresses(&hit), hit.answers()[0].ttl()), (vec!["192.0.2.1".to_string()], 40));
    let mut by_message = s.ask("wire.example.", RecordType::A).await;
    by_message.set_id(0);
    hit.set_id(0);
    assert_eq!(hit, by_message, "the Message path's answer");
    assert_eq!((totals(&s), s.upstream.calls()), ((3.0, 2.0, 1.0), 1));
    // Another spelling: the Message path answers it (from the cache), with the question as asked.
    assert_eq!(s.ask_wire("WIRE.example.", RecordType::A), None);
    let other = s.ask("WIRE.example.", RecordType::A).await;
    assert_eq!(other.queries()[0].name().to_ascii(), "WIRE.example.");
    assert_eq!((totals(&s), s.upstream.calls()), ((4.0, 3.0, 1.0), 1));
    // Expired: declined, and the Message path asks again.
    s.clock.advance(41);
    assert_eq!(s.ask_wire("wire.example.", RecordType::A), None);
    assert_eq!(totals(&s), (4.0, 3.0, 1.0));
    s.ask("wire.example.", RecordType::A).await;
    assert_eq!(s.upstream.calls(), 2);
}

#[tokio::test]
async fn the_wire_path_leaves_answers_to_shuffle_to_loadbalance() {
    let upstream = Mock::new(|req| {
        let name = req.message.query().unwrap().name().to_ascii();
        let mut records = vec![a_record(&name, 60, [192, 0, 2, 1])];
        if name.starts_with("two") {
            records.push(a_record(&name, 60, [192, 0, 2, 2]));
        }
        answer(&req.message, ResponseCode::NoError, records)
    });
    let s = Setup::new(opts(), upstream, false);
    let balanced: Vec<Arc<dyn Handler>> =
        vec![Arc::new(crate::plugins::loadbalance::LoadBalancePlugin), s.cache.clone()];
    for name in ["one.example.", "two.example."] {
        s.ask(name, RecordType::A).await;
    }
    assert!(wire_ask(&balanced, "one.example.", RecordType::A).is_some());
    assert!(wire_ask(&balanced, "two.example.", RecordType::A).is_none(), "two addresses to shuffle");
    assert_eq!(s.ask_wire("two.example.", RecordType::A).map(|m| addresses(&m).len()), Some(2), "no loadbalance");
}

#[tokio::test]
async fn the_wire_path_prefetches_popular_items() {
    let mut o = opts();
    o.prefetch = Some(Prefetch { amount: 2, duration: Duration::from_secs(60), percentage: 50 });
    let s = Setup::new(o, Mock::a(100, [192, 0, 2, 1]), true);
    s.ask("popular.example.", RecordType::A).await;
    s.clock.advance(10);
    assert!(s.ask_wire("popular.example.", RecordType::A).is_some());
    s.clock.advance(50);
    assert!(s.ask_wire("popular.example.", RecordType::A).is_some());
    s.wait_for_calls(2).await;
    assert_eq!(s.upstream.calls(), 2, "prefetched once");
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(s.ask_wire("popular.example.", RecordType::A).unwrap().answers()[0].ttl(), 100);
    assert_eq!(s.value("coredns_cache_prefetch_total", &[("server", "dns://:53"), ("zones", ".")]), 1.0);
}
