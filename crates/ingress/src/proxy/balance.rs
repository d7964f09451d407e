//! Choosing a backend: the canary decision (header, then cookie, then weight — ingress-nginx's
//! order), cookie session affinity, and the load-balancing policies — round-robin over
//! [`Upstream::next`] and peak EWMA with two random choices (ingress-nginx's `ewma`), whose
//! per-endpoint latency state lives here, keyed by address, so it survives table swaps — and
//! passive health: an endpoint that just failed is passed over for a while (nginx's `max_fails=1
//! fail_timeout=10s`), so requests during a rollout do not keep finding the pods going away.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use http::HeaderMap;

use super::headers::{cookie, hex_into};
use crate::annotations::{Canary, LoadBalance};
use crate::metrics::fnv1a_of;
use crate::table::Upstream;

/// Whether a request goes to the canary.
pub fn wants_canary(rule: &Canary, headers: &HeaderMap) -> bool {
    if let Some(value) = rule.header.as_deref().and_then(|h| headers.get(h)) {
        match rule.header_value.as_deref() {
            Some(expected) if value.as_bytes() == expected.as_bytes() => return true,
            Some(_) => {}
            None if value == "always" => return true,
            None if value == "never" => return false,
            None => {}
        }
    }
    if let Some(value) = rule.cookie.as_deref().and_then(|c| cookie(headers, c)) {
        match value {
            "always" => return true,
            "never" => return false,
            _ => {}
        }
    }
    rule.weight > 0 && rand::random_range(0..rule.weight_total.max(1)) < rule.weight
}

/// The affinity cookie value of an endpoint: a stable hash of its address (16 hex digits).
pub fn affinity_value(endpoint: &SocketAddr) -> [u8; 16] {
    let mut text = [0u8; 64];
    let len = {
        use std::io::Write as _;
        let mut cursor = std::io::Cursor::new(&mut text[..]);
        let _ = write!(cursor, "{endpoint}");
        cursor.position() as usize
    };
    let mut out = [0u8; 16];
    hex_into(&mut out, &fnv1a_of(&text[..len]).to_be_bytes());
    out
}

/// The endpoint an affinity cookie names, if it is still among `endpoints`.
pub fn affinity_endpoint(endpoints: &[SocketAddr], value: &str) -> Option<SocketAddr> {
    endpoints.iter().copied().find(|e| affinity_value(e).as_slice() == value.as_bytes())
}

/// How fast old latency observations fade (ingress-nginx's `DECAY_TIME` is 10 s).
const DECAY: Duration = Duration::from_secs(10);

/// How long an endpoint that failed is passed over while others are left (nginx's
/// `fail_timeout`).
const FAIL_TIMEOUT: Duration = Duration::from_secs(10);

/// Latency state of one endpoint.
#[derive(Debug)]
pub struct EndpointStats {
    /// Peak EWMA of response times, in µs, as f64 bits.
    ewma_micros: AtomicU64,
    /// When it was last updated, in µs since [`Balancer::epoch`].
    updated: AtomicU64,
    /// Requests outstanding.
    in_flight: AtomicUsize,
}

impl EndpointStats {
    fn new() -> Self {
        EndpointStats {
            ewma_micros: AtomicU64::new(0f64.to_bits()),
            updated: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn score(&self) -> f64 {
        let ewma = f64::from_bits(self.ewma_micros.load(Ordering::Relaxed));
        (ewma + 1.0) * (self.in_flight.load(Ordering::Relaxed) + 1) as f64
    }

    /// Folds in one observation at `now_micros` (racy updates lose an observation at worst).
    fn observe(&self, rtt_micros: f64, now_micros: u64) {
        let last = self.updated.swap(now_micros, Ordering::Relaxed);
        let old = f64::from_bits(self.ewma_micros.load(Ordering::Relaxed));
        let new = if rtt_micros > old || last == 0 {
            rtt_micros
        } else {
            let w = (-(now_micros.saturating_sub(last) as f64) / DECAY.as_micros() as f64).exp();
            old * w + rtt_micros * (1.0 - w)
        };
        self.ewma_micros.store(new.to_bits(), Ordering::Relaxed);
    }
}

/// A request in flight to an EWMA endpoint; reports its latency when finished.
#[derive(Debug)]
pub struct InFlight {
    stats: Arc<EndpointStats>,
    started: Instant,
    epoch: Instant,
}

impl InFlight {
    /// Records the response time (to the response head) and ends the request.
    pub fn finish(self) {
        let now = Instant::now();
        let rtt = now.duration_since(self.started).as_micros() as f64;
        self.stats.observe(rtt, now.duration_since(self.epoch).as_micros() as u64);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Tries per request (ingress-nginx's `proxy-next-upstream-tries`); a refused connection is not
/// counted, as nothing was sent and no time was lost.
pub const MAX_TRIES: usize = 3;
/// Endpoints tried at most per request, refused connections included.
pub const MAX_ATTEMPTS: usize = 8;

/// The endpoints one request tries, in order: the affinity cookie's endpoint first, then the
/// balancer's picks, never one twice, within [`MAX_TRIES`] tries and [`MAX_ATTEMPTS`]
/// endpoints.
#[derive(Debug)]
pub struct Attempts<'a> {
    balancer: &'a Balancer,
    upstream: &'a Upstream,
    policy: LoadBalance,
    sticky: Option<SocketAddr>,
    tried: [SocketAddr; MAX_ATTEMPTS],
    made: usize,
    /// Tries spent: every attempt but a refused connection.
    spent: usize,
}

impl<'a> Attempts<'a> {
    pub fn new(
        balancer: &'a Balancer,
        upstream: &'a Upstream,
        policy: LoadBalance,
        sticky: Option<SocketAddr>,
    ) -> Self {
        let unspecified = SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), 0);
        Attempts { balancer, upstream, policy, sticky, tried: [unspecified; MAX_ATTEMPTS], made: 0, spent: 0 }
    }

    /// Whether another endpoint may follow the current one.
    pub fn others_left(&self) -> bool {
        self.made < MAX_ATTEMPTS && self.made < self.upstream.endpoints.len()
    }

    /// Tries spent so far.
    pub fn spent(&self) -> usize {
        self.spent
    }

    /// The current endpoint failed (`refused`: its connection was refused). Returns whether
    /// the request may go on to another endpoint.
    pub fn failed(&mut self, endpoint: SocketAddr, refused: bool) -> bool {
        self.balancer.failed(endpoint);
        if !refused {
            self.spent += 1;
        }
        self.spent < MAX_TRIES && self.others_left()
    }
}

impl Iterator for Attempts<'_> {
    type Item = (SocketAddr, Option<InFlight>);

    /// The next endpoint to try (`None`: none left), and its timing for EWMA routes.
    fn next(&mut self) -> Option<(SocketAddr, Option<InFlight>)> {
        if self.made == MAX_ATTEMPTS {
            return None;
        }
        let endpoint = match self.sticky {
            Some(e) if self.made == 0 => e,
            _ => self.balancer.pick(self.upstream, self.policy, &self.tried[..self.made])?,
        };
        self.tried[self.made] = endpoint;
        self.made += 1;
        let timing = (self.policy == LoadBalance::Ewma).then(|| self.balancer.start(endpoint));
        Some((endpoint, timing))
    }
}

/// Endpoint selection state shared by all requests.
#[derive(Debug)]
pub struct Balancer {
    stats: RwLock<HashMap<SocketAddr, Arc<EndpointStats>>>,
    /// Endpoints that failed, with when they may be chosen again.
    failed: RwLock<HashMap<SocketAddr, Instant>>,
    /// The latest of those times, in µs since `epoch` (0: none yet): while it is in the past,
    /// choosing looks at nothing else.
    failed_until: AtomicU64,
    epoch: Instant,
}

impl Default for Balancer {
    fn default() -> Self {
        Balancer {
            stats: RwLock::default(),
            failed: RwLock::default(),
            failed_until: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

impl Balancer {
    /// An endpoint of `upstream` not in `tried`, by `policy`, preferring those that have not
    /// failed lately; `None` when none is left.
    pub fn pick(&self, upstream: &Upstream, policy: LoadBalance, tried: &[SocketAddr]) -> Option<SocketAddr> {
        let healthy = self.recent_failures().map(|failed| {
            let now = Instant::now();
            move |e: &SocketAddr| failed.get(e).is_none_or(|until| *until <= now)
        });
        match healthy {
            None => self.pick_among(upstream, policy, |e| !tried.contains(e)),
            Some(healthy) => self
                .pick_among(upstream, policy, |e| !tried.contains(e) && healthy(e))
                .or_else(|| self.pick_among(upstream, policy, |e| !tried.contains(e))),
        }
    }

    /// Records that `endpoint` failed: it is passed over for [`FAIL_TIMEOUT`] while others are
    /// left.
    pub fn failed(&self, endpoint: SocketAddr) {
        let until = Instant::now() + FAIL_TIMEOUT;
        let mut failed = self.failed.write().unwrap_or_else(|e| e.into_inner());
        failed.retain(|_, t| *t > until - FAIL_TIMEOUT);
        failed.insert(endpoint, until);
        let micros = until.duration_since(self.epoch).as_micros() as u64;
        self.failed_until.fetch_max(micros, Ordering::Relaxed);
    }

    /// The failed endpoints, if any may still be passed over (one atomic load otherwise).
    fn recent_failures(&self) -> Option<std::sync::RwLockReadGuard<'_, HashMap<SocketAddr, Instant>>> {
        let until = self.failed_until.load(Ordering::Relaxed);
        if until == 0 || self.epoch.elapsed().as_micros() as u64 >= until {
            return None;
        }
        Some(self.failed.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// An endpoint of `upstream` that `eligible` accepts, by `policy`.
    fn pick_among(
        &self,
        upstream: &Upstream,
        policy: LoadBalance,
        eligible: impl Fn(&SocketAddr) -> bool,
    ) -> Option<SocketAddr> {
        let endpoints = &upstream.endpoints;
        match (policy, endpoints.len()) {
            (_, 0) => None,
            (_, 1) => endpoints.first().copied().filter(eligible),
            (LoadBalance::RoundRobin, n) => {
                (0..n).map(|_| endpoints[upstream.next.fetch_add(1, Ordering::Relaxed) % n]).find(eligible)
            }
            (LoadBalance::Ewma, _) => self.pick_ewma(endpoints, eligible),
        }
    }

    /// Two random eligible candidates; the lower score wins.
    fn pick_ewma(&self, endpoints: &[SocketAddr], eligible: impl Fn(&SocketAddr) -> bool) -> Option<SocketAddr> {
        let left: Vec<SocketAddr> = endpoints.iter().copied().filter(eligible).collect();
        match left.len() {
            0 => None,
            1 => Some(left[0]),
            n => {
                let a = rand::random_range(0..n);
                let b = (a + 1 + rand::random_range(0..n - 1)) % n;
                let (sa, sb) = (self.stats(left[a]).score(), self.stats(left[b]).score());
                Some(if sb < sa { left[b] } else { left[a] })
            }
        }
    }

    fn stats(&self, endpoint: SocketAddr) -> Arc<EndpointStats> {
        if let Some(s) = self.stats.read().unwrap_or_else(|e| e.into_inner()).get(&endpoint) {
            return s.clone();
        }
        let mut map = self.stats.write().unwrap_or_else(|e| e.into_inner());
        map.entry(endpoint).or_insert_with(|| Arc::new(EndpointStats::new())).clone()
    }

    /// Starts timing a request to `endpoint` (for EWMA routes).
    pub fn start(&self, endpoint: SocketAddr) -> InFlight {
        let stats = self.stats(endpoint);
        stats.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight { stats, started: Instant::now(), epoch: self.epoch }
    }

    /// Forgets endpoints that are in none of `live` (called now and then; keeps the map small).
    pub fn retain(&self, live: impl Fn(&SocketAddr) -> bool) {
        self.stats
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|a, s| live(a) || s.in_flight.load(Ordering::Relaxed) > 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotations::BackendProtocol;

    fn upstream(endpoints: &[&str]) -> Upstream {
        Upstream {
            name: "ns-svc-80".into(),
            namespace: "ns".into(),
            service: "svc".into(),
            endpoints: endpoints.iter().map(|e| e.parse().unwrap()).collect(),
            protocol: BackendProtocol::Http,
            next: AtomicUsize::new(0),
        }
    }

    #[test]
    fn attempts_start_at_the_sticky_endpoint_and_stop_at_the_try_budget() {
        let b = Balancer::default();
        let u = upstream(&["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80", "10.0.0.5:80"]);
        let sticky = Some(u.endpoints[3]);
        let mut attempts = Attempts::new(&b, &u, LoadBalance::RoundRobin, sticky);
        let (first, timing) = attempts.next().unwrap();
        assert_eq!((first, timing.is_none()), (u.endpoints[3], true), "the cookie's endpoint, no EWMA timing");
        // Refused connections cost no try; other failures do, three at most.
        assert!(attempts.failed(first, true));
        let mut seen = vec![first];
        for spent in 1..=MAX_TRIES {
            let (e, _) = attempts.next().unwrap();
            assert!(!seen.contains(&e), "{e} tried twice");
            seen.push(e);
            assert_eq!(attempts.failed(e, false), spent < MAX_TRIES, "after {spent} tries");
        }
        assert_eq!(attempts.spent(), MAX_TRIES);
        // The endpoints run out before the budget does.
        let two = upstream(&["10.0.0.1:80", "10.0.0.2:80"]);
        let mut attempts = Attempts::new(&b, &two, LoadBalance::Ewma, None);
        let (e, timing) = attempts.next().unwrap();
        assert!(timing.is_some(), "EWMA routes time their requests");
        assert!(attempts.failed(e, false));
        let (e, _) = attempts.next().unwrap();
        assert!(!attempts.failed(e, false), "no endpoint left");
        assert!(attempts.next().is_none());
    }

    #[test]
    fn round_robin_cycles_and_skips_tried_endpoints() {
        let b = Balancer::default();
        let u = upstream(&["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]);
        let picks: Vec<_> = (0..6).map(|_| b.pick(&u, LoadBalance::RoundRobin, &[]).unwrap().to_string()).collect();
        assert_eq!(picks[..3], picks[3..]);
        let tried = [u.endpoints[0], u.endpoints[1]];
        for _ in 0..3 {
            assert_eq!(b.pick(&u, LoadBalance::RoundRobin, &tried), Some(u.endpoints[2]));
        }
        assert_eq!(b.pick(&u, LoadBalance::RoundRobin, &u.endpoints), None);
        assert_eq!(b.pick(&upstream(&[]), LoadBalance::RoundRobin, &[]), None);
    }

    #[test]
    fn failed_endpoints_are_passed_over_while_others_are_left() {
        let b = Balancer::default();
        let u = upstream(&["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]);
        b.failed(u.endpoints[0]);
        b.failed(u.endpoints[1]);
        for policy in [LoadBalance::RoundRobin, LoadBalance::Ewma] {
            for _ in 0..10 {
                assert_eq!(b.pick(&u, policy, &[]), Some(u.endpoints[2]), "{policy:?}");
            }
            // With every healthy endpoint tried, the failed ones are still better than none.
            let again = b.pick(&u, policy, &[u.endpoints[2]]).unwrap();
            assert_ne!(again, u.endpoints[2]);
        }
        // Once the failures are old, every endpoint is chosen again.
        let old = Instant::now() - FAIL_TIMEOUT;
        b.failed.write().unwrap().values_mut().for_each(|t| *t = old);
        let picks: std::collections::HashSet<_> =
            (0..6).map(|_| b.pick(&u, LoadBalance::RoundRobin, &[]).unwrap()).collect();
        assert_eq!(picks.len(), 3);
    }

    #[test]
    fn ewma_prefers_the_fast_endpoint() {
        let b = Balancer::default();
        let u = upstream(&["10.0.0.1:80", "10.0.0.2:80"]);
        b.stats(u.endpoints[0]).observe(50_000.0, 1);
        b.stats(u.endpoints[1]).observe(1_000.0, 1);
        for _ in 0..20 {
            assert_eq!(b.pick(&u, LoadBalance::Ewma, &[]), Some(u.endpoints[1]));
        }
        assert_eq!(b.pick(&u, LoadBalance::Ewma, &[u.endpoints[1]]), Some(u.endpoints[0]));
        // In-flight requests count against an endpoint.
        let _busy: Vec<_> = (0..100).map(|_| b.start(u.endpoints[1])).collect();
        assert_eq!(b.pick(&u, LoadBalance::Ewma, &[]), Some(u.endpoints[0]));
    }

    #[test]
    fn canary_header_cookie_and_weight_in_order() {
        let rule = Canary {
            header: Some("X-Canary".into()),
            cookie: Some("canary".into()),
            weight: 0,
            weight_total: 100,
            ..Default::default()
        };
        let mut h = HeaderMap::new();
        assert!(!wants_canary(&rule, &h));
        h.insert("x-canary", "always".parse().unwrap());
        assert!(wants_canary(&rule, &h));
        h.insert("cookie", "canary=always".parse().unwrap());
        h.insert("x-canary", "never".parse().unwrap());
        assert!(!wants_canary(&rule, &h), "the header decides before the cookie");
        h.insert("x-canary", "maybe".parse().unwrap());
        assert!(wants_canary(&rule, &h), "then the cookie");
        let valued = Canary { header_value: Some("blue".into()), ..rule.clone() };
        let mut h = HeaderMap::new();
        h.insert("x-canary", "blue".parse().unwrap());
        assert!(wants_canary(&valued, &h));
        h.insert("x-canary", "always".parse().unwrap());
        assert!(!wants_canary(&valued, &h));
        let all = Canary { weight: 100, ..Default::default() };
        assert!(wants_canary(&all, &HeaderMap::new()));
        let half = Canary { weight: 1, weight_total: 2, ..Default::default() };
        let hits = (0..2000).filter(|_| wants_canary(&half, &HeaderMap::new())).count();
        assert!((800..1200).contains(&hits), "{hits}");
    }

    #[test]
    fn affinity_values_are_stable_and_found() {
        let a: SocketAddr = "10.0.0.1:8080".parse().unwrap();
        let v = affinity_value(&a);
        assert_eq!(v, affinity_value(&a));
        assert_ne!(v, affinity_value(&"10.0.0.2:8080".parse().unwrap()));
        let s = std::str::from_utf8(&v).unwrap();
        assert_eq!(affinity_endpoint(&[a], s), Some(a));
        assert_eq!(affinity_endpoint(&[], s), None);
    }
}
