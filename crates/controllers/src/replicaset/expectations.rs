//! Expectations: what a controller remembers of its own writes until its watch has seen them.
//!
//! A controller decides from its cache, and its cache lags behind its own writes: right after
//! creating two pods, the pod cache may still show none, and a second look would create two more.
//! Upstream's `ControllerExpectations` count the creates and deletes in flight and hold the next
//! sync until the informer has observed them; this is the same idea with names. Before creating,
//! a controller opens an entry ([`Expectations::begin`]); every object the watch delivers for that
//! owner is recorded ([`Expectations::observe`]); each create that succeeds is expected until it
//! has been observed or is in the cache, each delete until the cache no longer has the object
//! (or has it terminating). Entries expire after a while, so a missed event cannot wedge the
//! controller: it then decides from the cache, as it would after a restart.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an expectation is waited for before the controller decides from its cache anyway.
pub const EXPECTATION_TTL: Duration = Duration::from_secs(30);

#[derive(Debug)]
struct Pending {
    /// Names created and not yet observed.
    created: HashSet<String>,
    /// Names observed while the entry was open (a create can be observed before it returns).
    seen: HashSet<String>,
    /// Name → uid of objects deleted and still in the cache.
    deleted: HashMap<String, String>,
    since: Instant,
}

/// What the cache knows of an object, for [`Expectations::satisfied`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cached<'a> {
    Absent,
    Present { uid: &'a str, terminating: bool },
}

/// Expectations of a controller, per owner (keyed by the owner's uid).
#[derive(Debug)]
pub struct Expectations {
    pending: Mutex<HashMap<String, Pending>>,
    ttl: Duration,
}

impl Default for Expectations {
    fn default() -> Self {
        Expectations::with_ttl(EXPECTATION_TTL)
    }
}

impl Expectations {
    pub fn with_ttl(ttl: Duration) -> Self {
        Expectations { pending: Mutex::new(HashMap::new()), ttl }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens (or refreshes) the entry of `owner` before writing.
    pub fn begin(&self, owner: &str) {
        let mut pending = self.lock();
        let entry = pending.entry(owner.to_string()).or_insert_with(|| Pending {
            created: HashSet::new(),
            seen: HashSet::new(),
            deleted: HashMap::new(),
            since: Instant::now(),
        });
        entry.since = Instant::now();
    }

    /// A create for `owner` returned the object `name`.
    pub fn created(&self, owner: &str, name: &str) {
        if let Some(entry) = self.lock().get_mut(owner) {
            if !entry.seen.contains(name) {
                entry.created.insert(name.to_string());
            }
        }
    }

    /// `owner` is deleting the object `name` with this uid.
    pub fn deleting(&self, owner: &str, name: &str, uid: &str) {
        if let Some(entry) = self.lock().get_mut(owner) {
            entry.deleted.insert(name.to_string(), uid.to_string());
        }
    }

    /// The delete of `name` failed: it is not expected to go.
    pub fn delete_failed(&self, owner: &str, name: &str) {
        if let Some(entry) = self.lock().get_mut(owner) {
            entry.deleted.remove(name);
        }
    }

    /// The watch delivered the object `name` of `owner`.
    pub fn observe(&self, owner: &str, name: &str) {
        if let Some(entry) = self.lock().get_mut(owner) {
            entry.created.remove(name);
            entry.seen.insert(name.to_string());
        }
    }

    /// Whether the cache has caught up with `owner`'s writes; `cached(name)` says what the cache
    /// holds. A satisfied or expired entry is dropped. Returns how long to wait otherwise.
    pub fn satisfied<'a>(&self, owner: &str, cached: impl Fn(&str) -> Cached<'a>) -> Result<(), Duration> {
        let mut pending = self.lock();
        let Some(entry) = pending.get_mut(owner) else {
            return Ok(());
        };
        entry.created.retain(|name| cached(name) == Cached::Absent);
        entry.deleted.retain(|name, uid| match cached(name) {
            Cached::Absent => false,
            Cached::Present { uid: cached_uid, terminating } => cached_uid == uid && !terminating,
        });
        let elapsed = entry.since.elapsed();
        if (entry.created.is_empty() && entry.deleted.is_empty()) || elapsed >= self.ttl {
            if elapsed >= self.ttl {
                tracing::warn!(owner, "expectations expired: deciding from the cache");
            }
            pending.remove(owner);
            return Ok(());
        }
        Err(self.ttl - elapsed)
    }

    /// Forgets `owner` (deleted), and every entry older than the TTL.
    pub fn forget(&self, owner: &str) {
        let ttl = self.ttl;
        let mut pending = self.lock();
        pending.remove(owner);
        pending.retain(|_, e| e.since.elapsed() < ttl);
    }

    /// Whether `owner` has an open entry.
    pub fn is_open(&self, owner: &str) -> bool {
        self.lock().contains_key(owner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_wait_until_cached_or_observed() {
        let e = Expectations::default();
        assert!(e.satisfied("rs", |_| Cached::Absent).is_ok());
        e.begin("rs");
        e.created("rs", "web-a");
        e.created("rs", "web-b");
        assert!(e.satisfied("rs", |_| Cached::Absent).is_err());
        e.observe("rs", "web-a");
        let cached = |name: &str| {
            if name == "web-b" {
                Cached::Present { uid: "u", terminating: false }
            } else {
                Cached::Absent
            }
        };
        assert!(e.satisfied("rs", cached).is_ok());
        assert!(!e.is_open("rs"));
    }

    #[test]
    fn a_create_observed_before_it_returns_is_not_expected() {
        let e = Expectations::default();
        e.begin("rs");
        e.observe("rs", "web-a");
        e.created("rs", "web-a");
        assert!(e.satisfied("rs", |_| Cached::Absent).is_ok());
    }

    #[test]
    fn deletes_wait_until_gone_or_terminating() {
        let e = Expectations::default();
        e.begin("rs");
        e.deleting("rs", "web-a", "u1");
        e.deleting("rs", "web-b", "u2");
        e.deleting("rs", "web-c", "u3");
        e.delete_failed("rs", "web-c");
        let live = |name: &str| match name {
            "web-a" => Cached::Present { uid: "u1", terminating: false },
            _ => Cached::Absent,
        };
        assert!(e.satisfied("rs", live).is_err());
        let terminating = |name: &str| match name {
            "web-a" => Cached::Present { uid: "u1", terminating: true },
            _ => Cached::Absent,
        };
        assert!(e.satisfied("rs", terminating).is_ok());
        // A new object with the same name is not the deleted one.
        e.begin("rs");
        e.deleting("rs", "web-a", "u1");
        assert!(e.satisfied("rs", |_| Cached::Present { uid: "u9", terminating: false }).is_ok());
    }

    #[test]
    fn entries_expire() {
        let e = Expectations::with_ttl(Duration::from_millis(0));
        e.begin("rs");
        e.created("rs", "web-a");
        assert!(e.satisfied("rs", |_| Cached::Absent).is_ok());
        e.begin("other");
        e.forget("rs");
        assert!(!e.is_open("other"));
    }

    #[test]
    fn observations_without_an_entry_are_ignored() {
        let e = Expectations::default();
        e.observe("rs", "web-a");
        e.created("rs", "web-a");
        assert!(!e.is_open("rs"));
    }
}
