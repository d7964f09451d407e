//! `cache`: answers from a cache of the chain's answers, keyed on name, type, class and the DO
//! bit; success and denial answers are kept up to their own TTL caps and capacities, TTLs count
//! down in answers. Popular items are prefetched before they expire; with `serve_stale`, expired
//! items are still served (TTL 0) when the upstream fails or while they are refreshed.

mod store;
#[cfg(test)]
mod tests;

pub use store::{minimal_ttl, policy, Inserted, Key, Kind, Lookup, Store, WireHit};

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use hickory_proto::op::{Message, ResponseCode};

use super::metrics::{self, Metrics};
use crate::corefile::{names, CacheOptions, RefreshMode};
use crate::wire::{self, WireAnswer, WireNext, WireQuery};
use crate::{BoxFuture, Handler, Next, Request};

/// Where the cache reads the time (a test moves it by hand).
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
}

/// The real time.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// What the cache and its background refreshes share.
struct Shared {
    store: Mutex<Store>,
    refreshing: Mutex<HashSet<Key>>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    server: String,
    zones: String,
}

impl Shared {
    fn insert(&self, key: Key, m: &Message) {
        let mut store = self.store.lock().expect("cache lock");
        let done = store.insert(key, m, self.clock.now(), &mut rand::rng());
        if let Some(kind) = done.kind {
            let labels = [("server", self.server.as_str()), ("type", kind.label()), ("zones", self.zones.as_str())];
            self.metrics.set(&metrics::CACHE_ENTRIES, &labels, store.len(kind) as f64);
            if done.evicted {
                self.metrics.inc(&metrics::CACHE_EVICTIONS_TOTAL, &labels);
            }
        }
    }

    fn count(&self, desc: &'static metrics::Desc, kind: Option<Kind>) {
        match kind {
            Some(k) => self.metrics.inc(desc, &[("server", &self.server), ("type", k.label()), ("zones", &self.zones)]),
            None => self.metrics.inc(desc, &[("server", &self.server), ("zones", &self.zones)]),
        }
    }
}

/// The `cache` plugin.
pub struct CachePlugin {
    shared: Arc<Shared>,
    zones: Vec<String>,
    /// `zones` in lowercased wire form, to match a query without building a string (`None` if
    /// one does not parse).
    zone_wires: Option<Vec<Vec<u8>>>,
    stale_refresh: Option<RefreshMode>,
    /// The plugins after this one, for refreshes that outlive the query.
    rest: OnceLock<Vec<Arc<dyn Handler>>>,
}

impl CachePlugin {
    /// A cache with `options` for server `server` (`dns://:53`).
    pub fn new(options: CacheOptions, server: &str, metrics: Arc<Metrics>) -> Self {
        Self::with_clock(options, server, metrics, Arc::new(SystemClock))
    }

    pub fn with_clock(options: CacheOptions, server: &str, metrics: Arc<Metrics>, clock: Arc<dyn Clock>) -> Self {
        let zones = options.zones.clone();
        let stale_refresh = options.serve_stale.map(|s| s.refresh);
        CachePlugin {
            shared: Arc::new(Shared {
                store: Mutex::new(Store::new(options)),
                refreshing: Mutex::new(HashSet::new()),
                clock,
                metrics,
                server: server.to_string(),
                zones: zones.join(","),
            }),
            zone_wires: zones.iter().map(|z| wire::zone_name(z)).collect(),
            zones,
            stale_refresh,
            rest: OnceLock::new(),
        }
    }

    /// Gives the cache the plugins after it, so prefetch and stale refreshes run in the
    /// background ([`super::build_chain`] does this). Without them, a refresh is made inline.
    pub fn attach_rest(&self, rest: Vec<Arc<dyn Handler>>) {
        let _ = self.rest.set(rest);
    }

    /// Items in the success or denial cache.
    pub fn len(&self, kind: Kind) -> usize {
        self.shared.store.lock().expect("cache lock").len(kind)
    }

    pub fn is_empty(&self) -> bool {
        self.shared.store.lock().expect("cache lock").is_empty()
    }

    fn key(&self, req: &Request) -> Option<Key> {
        let key = Key::of(&req.message)?;
        self.covers(key.name()).then_some(key)
    }

    /// Whether `name` (lowercased wire form) is in the cache's zones.
    fn covers(&self, name: &[u8]) -> bool {
        match &self.zone_wires {
            Some(zones) => zones.iter().any(|z| wire::in_zone(z, name)),
            None => names::matching_zone(&wire::name_text(name), &self.zones).is_some(),
        }
    }

    /// Refreshes `key` in the background; false when that cannot be done here.
    fn refresh_in_background(&self, key: Key, req: &Request) -> bool {
        let (Some(rest), Ok(rt)) = (self.rest.get(), tokio::runtime::Handle::try_current()) else {
            return false;
        };
        if !self.shared.refreshing.lock().expect("cache lock").insert(key.clone()) {
            return true;
        }
        let (rest, shared, req) = (rest.clone(), self.shared.clone(), req.clone());
        rt.spawn(async move {
            let resp = Next::new(&rest).run(&req).await;
            shared.insert(key.clone(), &resp);
            shared.refreshing.lock().expect("cache lock").remove(&key);
        });
        true
    }

    /// A cached message as the answer to `req`.
    fn answer(req: &Request, mut m: Message) -> Message {
        m.set_id(req.message.id());
        m.set_recursion_desired(req.message.recursion_desired());
        *m.queries_mut() = req.message.queries().to_vec();
        m
    }
}

fn failed(m: &Message) -> bool {
    matches!(m.response_code(), ResponseCode::ServFail | ResponseCode::Refused)
}

impl Handler for CachePlugin {
    fn name(&self) -> &'static str {
        "cache"
    }

    fn handle<'a>(&'a self, req: &'a Request, next: Next<'a>) -> BoxFuture<'a, Message> {
        Box::pin(async move {
            let Some(key) = self.key(req) else {
                return next.run(req).await;
            };
            let s = &self.shared;
            s.count(&metrics::CACHE_REQUESTS_TOTAL, None);
            let found = s.store.lock().expect("cache lock").find(&key, s.clock.now());
            let found = found.finish();
            match found {
                Lookup::Hit { message, kind, prefetch } => {
                    s.count(&metrics::CACHE_HITS_TOTAL, Some(kind));
                    if prefetch && self.refresh_in_background(key, req) {
                        s.count(&metrics::CACHE_PREFETCH_TOTAL, None);
                    }
                    Self::answer(req, message)
                }
                Lookup::Stale { message } => {
                    let immediate = self.stale_refresh == Some(RefreshMode::Immediate);
                    if immediate && self.refresh_in_background(key.clone(), req) {
                        s.count(&metrics::CACHE_SERVED_STALE_TOTAL, None);
                        return Self::answer(req, message);
                    }
                    // Verify (or no background here): ask first, fall back on the stale item.
                    let resp = next.run(req).await;
                    if failed(&resp) {
                        s.count(&metrics::CACHE_SERVED_STALE_TOTAL, None);
                        return Self::answer(req, message);
                    }
                    s.insert(key, &resp);
                    resp
                }
                Lookup::Miss => {
                    s.count(&metrics::CACHE_MISSES_TOTAL, None);
                    let resp = next.run(req).await;
                    s.insert(key, &resp);
                    resp
                }
            }
        })
    }

    /// A live answer straight from its bytes; anything else (a miss, a stale item, an answer
    /// that does not fit or that a `loadbalance` in front would reorder) declines, untouched,
    /// for [`Handler::handle`].
    fn wire(&self, q: &WireQuery<'_>, next: WireNext<'_>, out: &mut Vec<u8>) -> Option<WireAnswer> {
        if !self.covers(q.name()) {
            return next.run(q, out);
        }
        let s = &self.shared;
        let now = s.clock.now();
        let hit = s.store.lock().expect("cache lock").find_wire(q, next.reorders(), now, out);
        let WireHit::Written { kind, prefetch } = hit else {
            return None;
        };
        s.count(&metrics::CACHE_REQUESTS_TOTAL, None);
        s.count(&metrics::CACHE_HITS_TOTAL, Some(kind));
        if prefetch {
            // The refresh runs the rest of the chain on a message, as the Message path would.
            if let crate::server::Parsed::Query(message) = crate::server::parse_query(q.bytes()) {
                let req = Request { message, client: q.client, transport: q.transport };
                if let Some(key) = Key::of(&req.message) {
                    if self.refresh_in_background(key, &req) {
                        s.count(&metrics::CACHE_PREFETCH_TOTAL, None);
                    }
                }
            }
        }
        Some(WireAnswer { rcode: wire::rcode_of(out) })
    }
}
