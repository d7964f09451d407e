//! The cache's pure part: keys, which responses are kept and for how long (CoreDNS's rules), TTLs
//! counted down in answers, stale items, prefetch popularity, and random eviction at capacity.
//! Time comes in as an argument.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::{DNSClass, Name, RecordType};
use rand::Rng;

use crate::corefile::{names, CacheClass, CacheOptions};
use crate::plugins::response::{self, ResponseType};

/// What a cached answer is keyed on. The name compares and hashes case-insensitively (as
/// hickory's `Name` does), so a lookup copies the question's name (inline for short names) and
/// builds no string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub name: Name,
    pub qtype: RecordType,
    pub qclass: DNSClass,
    pub dnssec_ok: bool,
}

impl Key {
    /// The key of a query, or `None` for what is never cached (no question, zone transfers).
    pub fn of(m: &Message) -> Option<Key> {
        let q = m.query()?;
        if matches!(q.query_type(), RecordType::AXFR | RecordType::IXFR) {
            return None;
        }
        Some(Key {
            name: q.name().clone(),
            qtype: q.query_type(),
            qclass: q.query_class(),
            dnssec_ok: response::dnssec_ok(m),
        })
    }
}

/// Which cache an item lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Success,
    Denial,
    /// SERVFAIL, kept for `servfail` with the denials, never served stale.
    ServFail,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Success => "success",
            Kind::Denial | Kind::ServFail => "denial",
        }
    }
}

/// The lowest TTL of the records (the SOA's minimum too for denials), or 5s with no records.
pub fn minimal_ttl(m: &Message, t: ResponseType) -> Duration {
    let records = m.answers().iter().chain(m.name_servers()).chain(m.additionals());
    let mut min: Option<u32> = None;
    for r in records {
        let mut ttl = r.ttl();
        if matches!(t, ResponseType::NameError | ResponseType::NoData) {
            if let Some(soa) = r.data().as_soa() {
                ttl = ttl.min(soa.minimum());
            }
        }
        min = Some(min.map_or(ttl, |m| m.min(ttl)));
    }
    Duration::from_secs(u64::from(min.unwrap_or(5).min(3600)))
}

fn clamp(ttl: Duration, class: &CacheClass) -> Duration {
    ttl.clamp(class.min_ttl, class.max_ttl.max(class.min_ttl))
}

fn disabled(class: &CacheClass, qname: &str) -> bool {
    match &class.disabled {
        None => false,
        Some(zones) if zones.is_empty() => true,
        Some(zones) => zones.iter().any(|z| names::in_zone(qname, z)),
    }
}

/// Whether and for how long `m` (the answer for `qname`) is cached.
pub fn policy(m: &Message, qname: &str, opts: &CacheOptions) -> Option<(Kind, Duration)> {
    if m.truncated() {
        return None;
    }
    let t = response::typify(m);
    let (kind, ttl) = match t {
        ResponseType::NoError | ResponseType::Delegation => (Kind::Success, clamp(minimal_ttl(m, t), &opts.success)),
        ResponseType::NameError | ResponseType::NoData => (Kind::Denial, clamp(minimal_ttl(m, t), &opts.denial)),
        ResponseType::ServerError => (Kind::ServFail, opts.servfail),
        _ => return None,
    };
    let off = match kind {
        Kind::Success => disabled(&opts.success, qname),
        Kind::Denial | Kind::ServFail => disabled(&opts.denial, qname),
    };
    (!off && !ttl.is_zero()).then_some((kind, ttl))
}

/// How popular an item is, for prefetch: hits with no gap longer than the prefetch duration.
#[derive(Debug, Clone, Copy)]
struct Freq {
    hits: u32,
    last: Instant,
}

impl Freq {
    fn hit(&mut self, now: Instant, gap: Duration) -> u32 {
        if now.saturating_duration_since(self.last) > gap {
            self.hits = 0;
        }
        self.hits += 1;
        self.last = now;
        self.hits
    }
}

#[derive(Debug, Clone)]
struct Item {
    /// Shared, so that a hit takes it out of the lock and copies it there.
    message: Arc<Message>,
    kind: Kind,
    stored: Instant,
    ttl: Duration,
    freq: Freq,
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// A live answer with its TTLs counted down; `prefetch` when it should be refreshed now.
    Hit {
        message: Message,
        kind: Kind,
        prefetch: bool,
    },
    /// An expired answer still within `serve_stale`, TTLs zero.
    Stale {
        message: Message,
    },
    Miss,
}

/// What a lookup found, before the answer is copied out of the cache: [`Store::find`] runs under
/// the cache's lock and [`Found::finish`] after it, so that the threads answering queries do not
/// wait on each other while answers are copied.
#[derive(Debug)]
pub enum Found {
    Hit { message: Arc<Message>, age: Duration, remaining: Duration, keepttl: bool, kind: Kind, prefetch: bool },
    Stale { message: Arc<Message> },
    Miss,
}

impl Found {
    /// The answer, its TTLs counted down (or zero when stale).
    pub fn finish(self) -> Lookup {
        match self {
            Found::Hit { message, age, remaining, keepttl, kind, prefetch } => {
                Lookup::Hit { message: age_message(&message, age, remaining, keepttl), kind, prefetch }
            }
            Found::Stale { message } => {
                let mut message = (*message).clone();
                response::for_each_record_mut(&mut message, |r| {
                    r.set_ttl(0);
                });
                Lookup::Stale { message }
            }
            Found::Miss => Lookup::Miss,
        }
    }
}

/// A map that evicts a random entry when full.
#[derive(Debug)]
struct Bounded<K, V> {
    capacity: usize,
    map: HashMap<K, (usize, V)>,
    keys: Vec<K>,
}

impl<K: Clone + Eq + Hash, V> Bounded<K, V> {
    fn new(capacity: usize) -> Self {
        Bounded { capacity: capacity.max(1), map: HashMap::new(), keys: Vec::new() }
    }

    fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        self.map.get_mut(k).map(|(_, v)| v)
    }

    fn remove(&mut self, k: &K) -> Option<V> {
        let (i, v) = self.map.remove(k)?;
        self.keys.swap_remove(i);
        if let Some(moved) = self.keys.get(i) {
            self.map.get_mut(moved).expect("indexed").0 = i;
        }
        Some(v)
    }

    /// Inserts, returning whether an entry was evicted to make room.
    fn insert(&mut self, k: K, v: V, rng: &mut impl Rng) -> bool {
        if let Some(slot) = self.map.get_mut(&k) {
            slot.1 = v;
            return false;
        }
        let mut evicted = false;
        if self.keys.len() >= self.capacity {
            let victim = self.keys[rng.random_range(0..self.keys.len())].clone();
            self.remove(&victim);
            evicted = true;
        }
        self.map.insert(k.clone(), (self.keys.len(), v));
        self.keys.push(k);
        evicted
    }

    fn len(&self) -> usize {
        self.keys.len()
    }
}

/// The success and denial caches of one `cache` plugin.
#[derive(Debug)]
pub struct Store {
    opts: CacheOptions,
    success: Bounded<Key, Item>,
    denial: Bounded<Key, Item>,
}

/// What an insert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Inserted {
    pub kind: Option<Kind>,
    pub evicted: bool,
}

impl Store {
    pub fn new(opts: CacheOptions) -> Self {
        Store { success: Bounded::new(opts.success.capacity), denial: Bounded::new(opts.denial.capacity), opts }
    }

    pub fn options(&self) -> &CacheOptions {
        &self.opts
    }

    /// Items in the `success` or `denial` cache.
    pub fn len(&self, kind: Kind) -> usize {
        match kind {
            Kind::Success => self.success.len(),
            Kind::Denial | Kind::ServFail => self.denial.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.success.len() + self.denial.len() == 0
    }

    fn bucket(&mut self, kind: Kind) -> &mut Bounded<Key, Item> {
        match kind {
            Kind::Success => &mut self.success,
            Kind::Denial | Kind::ServFail => &mut self.denial,
        }
    }

    /// Looks `key` up at `now`.
    pub fn lookup(&mut self, key: &Key, now: Instant) -> Lookup {
        self.find(key, now).finish()
    }

    /// [`Store::lookup`] without copying the answer (see [`Found`]).
    pub fn find(&mut self, key: &Key, now: Instant) -> Found {
        let stale_for = self.opts.serve_stale.map(|s| s.duration);
        let keepttl = self.opts.keepttl;
        let prefetch = self.opts.prefetch;
        for kind in [Kind::Success, Kind::Denial] {
            let bucket = self.bucket(kind);
            let Some(item) = bucket.get_mut(key) else {
                continue;
            };
            let age = now.saturating_duration_since(item.stored);
            if age < item.ttl {
                let remaining = item.ttl - age;
                let hits = item.freq.hit(now, prefetch.map_or(Duration::ZERO, |p| p.duration));
                let due = prefetch.is_some_and(|p| {
                    hits >= p.amount
                        && remaining.as_secs_f64() <= item.ttl.as_secs_f64() * f64::from(p.percentage) / 100.0
                });
                return Found::Hit {
                    message: item.message.clone(),
                    age,
                    remaining,
                    keepttl,
                    kind: item.kind,
                    prefetch: due,
                };
            }
            let stale_ok = item.kind != Kind::ServFail && stale_for.is_some_and(|s| age < item.ttl + s);
            if stale_ok {
                return Found::Stale { message: item.message.clone() };
            }
            bucket.remove(key);
            return Found::Miss;
        }
        Found::Miss
    }

    /// Caches `m` under `key` if the policy allows. A SERVFAIL never replaces a good item.
    pub fn insert(&mut self, key: Key, m: &Message, now: Instant, rng: &mut impl Rng) -> Inserted {
        let Some((kind, ttl)) = policy(m, &names::normalize(&key.name.to_ascii()), &self.opts) else {
            return Inserted::default();
        };
        let existing = self.success.get_mut(&key).map(|i| i.kind).or_else(|| self.denial.get_mut(&key).map(|i| i.kind));
        if kind == Kind::ServFail && existing.is_some_and(|k| k != Kind::ServFail) {
            return Inserted::default();
        }
        // An item lives in one cache only.
        let other = if kind == Kind::Success { Kind::Denial } else { Kind::Success };
        self.bucket(other).remove(&key);
        let item = Item { message: Arc::new(m.clone()), kind, stored: now, ttl, freq: Freq { hits: 0, last: now } };
        let evicted = self.bucket(kind).insert(key, item, rng);
        Inserted { kind: Some(kind), evicted }
    }
}

/// `m` as served `age` after it was cached: every TTL counted down, and capped by the item's
/// `remaining` life (unless `keepttl`).
fn age_message(m: &Message, age: Duration, remaining: Duration, keepttl: bool) -> Message {
    let mut out = m.clone();
    if !keepttl {
        let age = u32::try_from(age.as_secs()).unwrap_or(u32::MAX);
        let left = u32::try_from(remaining.as_secs_f64().ceil() as u64).unwrap_or(u32::MAX);
        response::for_each_record_mut(&mut out, |r| {
            let ttl = r.ttl().saturating_sub(age).min(left);
            r.set_ttl(ttl);
        });
    }
    out
}
