//! The cache's pure part: keys, which responses are kept and for how long (CoreDNS's rules), TTLs
//! counted down in answers, stale items, prefetch popularity, and random eviction at capacity.
//! Time comes in as an argument.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use rand::Rng;

use crate::corefile::{names, CacheClass, CacheOptions, Prefetch};
use crate::plugins::response::{self, ResponseType};
use crate::wire::{self, StoredAnswer, Ttls, WireQuery};

/// What a cached answer is keyed on: the question's name in lowercased wire form, its type and
/// class, and the DO bit — the bytes [`WireQuery::key`] reads off a query, so the wire path
/// looks an answer up without building anything.
/// Shared between the cache's map and its list of keys (for random eviction).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key(Arc<[u8]>);

impl Key {
    /// The key of a query, or `None` for what is never cached (no question, zone transfers).
    pub fn of(m: &Message) -> Option<Key> {
        let q = m.query()?;
        if matches!(q.query_type(), RecordType::AXFR | RecordType::IXFR) {
            return None;
        }
        let key = wire::key_of(q.name(), q.query_type(), u16::from(q.query_class()), response::dnssec_ok(m));
        Some(Key(key.into()))
    }

    /// The question's name, lowercased wire form.
    pub fn name(&self) -> &[u8] {
        &self.0[..self.0.len() - 5]
    }
}

impl Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        &self.0
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
    answer: StoredAnswer,
    kind: Kind,
    stored: Instant,
    ttl: Duration,
    freq: Freq,
}

impl Item {
    /// Counts a hit `age` into the item's life; true when it is due for a prefetch.
    fn hit(&mut self, now: Instant, age: Duration, prefetch: Option<Prefetch>) -> bool {
        let hits = self.freq.hit(now, prefetch.map_or(Duration::ZERO, |p| p.duration));
        let remaining = self.ttl.saturating_sub(age);
        prefetch.is_some_and(|p| {
            hits >= p.amount && remaining.as_secs_f64() <= self.ttl.as_secs_f64() * f64::from(p.percentage) / 100.0
        })
    }
}

/// An item as a lookup finds it.
enum Probe<'a> {
    /// Live, or expired but within `serve_stale`: the item and its age.
    Live(&'a mut Item, Duration),
    /// Expired for good: to be dropped from this cache.
    Dead(Kind),
    Absent,
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
/// wait on each other while answers are parsed.
#[derive(Debug)]
pub enum Found {
    Hit { answer: StoredAnswer, ttls: Ttls, kind: Kind, prefetch: bool },
    Stale { answer: StoredAnswer },
    Miss,
}

impl Found {
    /// The answer, its TTLs counted down (or zero when stale).
    pub fn finish(self) -> Lookup {
        match self {
            Found::Hit { answer, ttls, kind, prefetch } => match answer.message(ttls) {
                Some(message) => Lookup::Hit { message, kind, prefetch },
                None => Lookup::Miss,
            },
            Found::Stale { answer } => match answer.message(Ttls::Zero) {
                Some(message) => Lookup::Stale { message },
                None => Lookup::Miss,
            },
            Found::Miss => Lookup::Miss,
        }
    }
}

/// What a lookup on the wire path did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireHit {
    /// The answer is written; `prefetch` when it should be refreshed now.
    Written { kind: Kind, prefetch: bool },
    /// Nothing written and nothing counted: the Message path must answer (a miss, a stale item,
    /// an answer that does not fit or that `loadbalance` would reorder).
    Declined,
}

/// The TTLs of an answer served `age` after it was cached with `remaining` life left.
fn aged(age: Duration, remaining: Duration, keepttl: bool) -> Ttls {
    if keepttl {
        return Ttls::Keep;
    }
    let age = u32::try_from(age.as_secs()).unwrap_or(u32::MAX);
    let left = u32::try_from(remaining.as_secs_f64().ceil() as u64).unwrap_or(u32::MAX);
    Ttls::Aged { age, left }
}

/// A map that evicts a random entry when full.
#[derive(Debug)]
struct Bounded<K, V> {
    capacity: usize,
    map: HashMap<K, (usize, V), foldhash::fast::RandomState>,
    keys: Vec<K>,
}

impl<K: Clone + Eq + Hash + Borrow<[u8]>, V> Bounded<K, V> {
    fn new(capacity: usize) -> Self {
        Bounded { capacity: capacity.max(1), map: HashMap::default(), keys: Vec::new() }
    }

    fn get_mut(&mut self, k: &[u8]) -> Option<&mut V> {
        self.map.get_mut(k).map(|(_, v)| v)
    }

    fn remove(&mut self, k: &[u8]) -> Option<V> {
        let (i, v) = self.map.remove(k)?;
        self.keys.swap_remove(i);
        if let Some(moved) = self.keys.get(i) {
            self.map.get_mut::<[u8]>(moved.borrow()).expect("indexed").0 = i;
        }
        Some(v)
    }

    /// Inserts, returning whether an entry was evicted to make room.
    fn insert(&mut self, k: K, v: V, rng: &mut impl Rng) -> bool {
        if let Some(slot) = self.map.get_mut::<[u8]>(k.borrow()) {
            slot.1 = v;
            return false;
        }
        let mut evicted = false;
        if self.keys.len() >= self.capacity {
            let victim = self.keys[rng.random_range(0..self.keys.len())].clone();
            self.remove(victim.borrow());
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
        let (keepttl, prefetch) = (self.opts.keepttl, self.opts.prefetch);
        match self.probe(key.borrow(), now) {
            Probe::Absent => Found::Miss,
            Probe::Dead(kind) => {
                self.bucket(kind).remove(key.borrow());
                Found::Miss
            }
            Probe::Live(item, age) if age < item.ttl => {
                let due = item.hit(now, age, prefetch);
                Found::Hit {
                    answer: item.answer.clone(),
                    ttls: aged(age, item.ttl - age, keepttl),
                    kind: item.kind,
                    prefetch: due,
                }
            }
            Probe::Live(item, _) => Found::Stale { answer: item.answer.clone() },
        }
    }

    /// The wire path's lookup: a live answer for `q` written into `out`, or nothing written and
    /// nothing changed. `reordered`: a plugin in front would reorder address records.
    pub fn find_wire(&mut self, q: &WireQuery<'_>, reordered: bool, now: Instant, out: &mut Vec<u8>) -> WireHit {
        let (keepttl, prefetch) = (self.opts.keepttl, self.opts.prefetch);
        let Probe::Live(item, age) = self.probe(q.key(), now) else {
            return WireHit::Declined;
        };
        if age >= item.ttl || (reordered && item.answer.reorderable()) {
            return WireHit::Declined;
        }
        if !item.answer.write(q, aged(age, item.ttl - age, keepttl), out) {
            return WireHit::Declined;
        }
        WireHit::Written { kind: item.kind, prefetch: item.hit(now, age, prefetch) }
    }

    /// The item under `key` at `now`: live (or stale but servable), dead, or absent.
    fn probe(&mut self, key: &[u8], now: Instant) -> Probe<'_> {
        let stale_for = self.opts.serve_stale.map(|s| s.duration);
        let found = match self.success.get_mut(key) {
            Some(item) => Some(item),
            None => self.denial.get_mut(key),
        };
        let Some(item) = found else {
            return Probe::Absent;
        };
        let age = now.saturating_duration_since(item.stored);
        let stale_ok = item.kind != Kind::ServFail && stale_for.is_some_and(|s| age < item.ttl + s);
        if age < item.ttl || stale_ok {
            Probe::Live(item, age)
        } else {
            Probe::Dead(item.kind)
        }
    }

    /// Caches `m` under `key` if the policy allows. A SERVFAIL never replaces a good item.
    pub fn insert(&mut self, key: Key, m: &Message, now: Instant, rng: &mut impl Rng) -> Inserted {
        let Some((kind, ttl)) = policy(m, &wire::name_text(key.name()), &self.opts) else {
            return Inserted::default();
        };
        let Some(answer) = StoredAnswer::new(m) else {
            return Inserted::default();
        };
        let k: &[u8] = key.borrow();
        let existing = self.success.get_mut(k).map(|i| i.kind).or_else(|| self.denial.get_mut(k).map(|i| i.kind));
        if kind == Kind::ServFail && existing.is_some_and(|k| k != Kind::ServFail) {
            return Inserted::default();
        }
        // An item lives in one cache only.
        let other = if kind == Kind::Success { Kind::Denial } else { Kind::Success };
        self.bucket(other).remove(key.borrow());
        let item = Item { answer, kind, stored: now, ttl, freq: Freq { hits: 0, last: now } };
        let evicted = self.bucket(kind).insert(key, item, rng);
        Inserted { kind: Some(kind), evicted }
    }
}
