//! What the controllers remember between syncs of a Service:
//!
//! - [`TriggerTimes`]: when its pods last became (not) ready and when it was created, to stamp
//!   the `endpoints.kubernetes.io/last-change-trigger-time` annotation with the time of the
//!   earliest change a write reflects (upstream's `TriggerTimeTracker`);
//! - [`Written`]: the objects they wrote that their watch has not delivered yet, so that a sync
//!   right after a write computes from what is on the server rather than from the older copy in
//!   the cache — no duplicate slice created, no conflict, no wait (upstream's
//!   `EndpointSliceTracker` has the same purpose, but makes the sync wait).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::jiff::Timestamp;
use kube::Resource;

use super::pods;
use super::Key;

/// The trigger times a Service's last sync saw.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pods: HashMap<String, Timestamp>,
    service: Option<Timestamp>,
}

/// Upstream's `TriggerTimeTracker`, one per controller.
#[derive(Debug, Default)]
pub struct TriggerTimes {
    services: HashMap<Key, Seen>,
}

impl TriggerTimes {
    /// The trigger time of a sync of `svc` with these (selected) pods, and what to remember once
    /// the sync succeeded: the Service's creation the first time it is seen; afterwards the
    /// earliest pod Ready transition (or Service creation) newer than the last sync saw; `None`
    /// when nothing changed.
    pub fn compute(&self, key: &Key, svc: &Service, pods: &[Arc<Pod>]) -> (Option<Timestamp>, Seen) {
        let previous = self.services.get(key);
        let mut seen = Seen::default();
        let mut earliest: Option<Timestamp> = None;
        let mut changed = |t: Timestamp| earliest = Some(earliest.map_or(t, |e| e.min(t)));
        for pod in pods {
            let Some(t) = pods::ready_transition(pod) else { continue };
            let name = pod.metadata.name.clone().unwrap_or_default();
            if previous.and_then(|p| p.pods.get(&name)).is_none_or(|last| t > *last) {
                changed(t);
            }
            seen.pods.insert(name, t);
        }
        let created = svc.metadata.creation_timestamp.as_ref().map(|t| t.0);
        if let Some(c) = created {
            if previous.and_then(|p| p.service).is_none_or(|last| c > last) {
                changed(c);
            }
        }
        seen.service = created;
        match previous {
            None => (created, seen),
            Some(_) => (earliest, seen),
        }
    }

    /// Remembers what a successful sync saw.
    pub fn commit(&mut self, key: Key, seen: Seen) {
        self.services.insert(key, seen);
    }

    pub fn forget(&mut self, key: &Key) {
        self.services.remove(key);
    }
}

/// How long an own write may stay unseen before the watch's copy is trusted again anyway.
const UNSEEN_FOR_AT_MOST: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Entry<K> {
    /// The resourceVersions (`None`: no object) the watch may still show from before the writes.
    superseded: Vec<Option<String>>,
    /// What the last write left (`None`: deleted).
    latest: Option<Arc<K>>,
    at: Instant,
}

/// Own writes not yet seen by the watch, grouped by Service.
#[derive(Debug)]
pub struct Written<K> {
    groups: HashMap<Key, BTreeMap<String, Entry<K>>>,
}

impl<K> Default for Written<K> {
    fn default() -> Self {
        Written { groups: HashMap::new() }
    }
}

fn version<K: Resource>(obj: Option<&Arc<K>>) -> Option<String> {
    obj.and_then(|o| o.meta().resource_version.clone())
}

impl<K: Resource> Written<K> {
    /// Records a write of object `name` in `group`: it replaced the version `based_on` (`None`:
    /// it created the object) and left `result` (`None`: it deleted it).
    pub fn record(&mut self, group: &Key, name: &str, based_on: Option<String>, result: Option<Arc<K>>) {
        let entries = self.groups.entry(group.clone()).or_default();
        let entry = entries.entry(name.to_string()).or_insert_with(|| Entry {
            superseded: Vec::new(),
            latest: None,
            at: Instant::now(),
        });
        if !entry.superseded.contains(&based_on) {
            entry.superseded.push(based_on);
        }
        entry.latest = result;
        entry.at = Instant::now();
    }

    /// Forgets a write that turned out not to be the latest (a conflict).
    pub fn forget(&mut self, group: &Key, name: &str) {
        if let Some(entries) = self.groups.get_mut(group) {
            entries.remove(name);
            if entries.is_empty() {
                self.groups.remove(group);
            }
        }
    }

    pub fn forget_group(&mut self, group: &Key) {
        self.groups.remove(group);
    }

    /// The watch delivered object `name` of `group` at `seen` (`None`: its deletion). Returns
    /// whether that is the controller's own last write, which then needs no remembering (nor a
    /// sync) any more.
    pub fn observed(&mut self, group: &Key, name: &str, seen: Option<String>) -> bool {
        let own = self.groups.get(group).and_then(|e| e.get(name)).is_some_and(|entry| {
            let latest = version(entry.latest.as_ref());
            latest == seen && (seen.is_some() || entry.latest.is_none())
        });
        if own {
            self.forget(group, name);
        }
        own
    }

    /// The current objects of `group`: those the watch shows, where an own write it has not
    /// shown yet replaces (or hides, or adds) them. Entries the watch has caught up with are
    /// dropped.
    pub fn resolve(&mut self, group: &Key, watched: Option<&BTreeMap<String, Arc<K>>>) -> Vec<Arc<K>> {
        let Some(entries) = self.groups.get_mut(group) else {
            return watched.map(|w| w.values().cloned().collect()).unwrap_or_default();
        };
        let names: BTreeSet<String> =
            watched.into_iter().flat_map(|w| w.keys()).chain(entries.keys()).cloned().collect();
        let mut current = Vec::with_capacity(names.len());
        for name in names {
            let seen = watched.and_then(|w| w.get(&name));
            let Some(entry) = entries.get(&name) else {
                current.extend(seen.cloned());
                continue;
            };
            let seen_version = version(seen);
            let pending = entry.at.elapsed() < UNSEEN_FOR_AT_MOST
                && seen_version != version(entry.latest.as_ref())
                && entry.superseded.contains(&seen_version);
            if pending {
                current.extend(entry.latest.clone());
            } else {
                entries.remove(&name);
                current.extend(seen.cloned());
            }
        }
        if entries.is_empty() {
            self.groups.remove(group);
        }
        current
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoints::pods::tests::{service, web_pod};
    use k8s_openapi::api::core::v1::ConfigMap;
    use serde_json::json;

    fn key() -> Key {
        Key { namespace: "default".into(), name: "web".into() }
    }

    fn obj(name: &str, rv: &str) -> Arc<ConfigMap> {
        Arc::new(serde_json::from_value(json!({"metadata": {"name": name, "resourceVersion": rv}})).unwrap())
    }

    fn names(list: &[Arc<ConfigMap>]) -> Vec<String> {
        list.iter().map(|o| format!("{}@{}", o.metadata.name.as_ref().unwrap(), version(Some(o)).unwrap())).collect()
    }

    #[test]
    fn own_writes_until_the_watch_shows_them() {
        let mut w: Written<ConfigMap> = Written::default();
        let k = key();
        // created, not yet watched
        w.record(&k, "a", None, Some(obj("a", "5")));
        assert_eq!(names(&w.resolve(&k, None)), vec!["a@5"]);
        // updated again from what was written, the watch still shows nothing
        w.record(&k, "a", Some("5".into()), Some(obj("a", "6")));
        assert_eq!(names(&w.resolve(&k, None)), vec!["a@6"]);
        // the watch shows the first version: still the write
        let mut watched = BTreeMap::from([("a".to_string(), obj("a", "5"))]);
        assert_eq!(names(&w.resolve(&k, Some(&watched))), vec!["a@6"]);
        // the watch caught up: its copy, and the entry is gone
        watched.insert("a".into(), obj("a", "6"));
        assert_eq!(names(&w.resolve(&k, Some(&watched))), vec!["a@6"]);
        assert!(w.groups.is_empty());
    }

    #[test]
    fn deletions_hide_and_newer_versions_win() {
        let mut w: Written<ConfigMap> = Written::default();
        let k = key();
        let watched = BTreeMap::from([("a".to_string(), obj("a", "3")), ("b".to_string(), obj("b", "4"))]);
        w.record(&k, "a", Some("3".into()), None);
        assert_eq!(names(&w.resolve(&k, Some(&watched))), vec!["b@4"]);
        // someone else wrote b after us: theirs is the current one
        w.record(&k, "b", Some("2".into()), Some(obj("b", "3")));
        assert_eq!(names(&w.resolve(&k, Some(&watched))), vec!["b@4"]);
        // the deletion seen
        let watched = BTreeMap::from([("b".to_string(), obj("b", "4"))]);
        assert_eq!(names(&w.resolve(&k, Some(&watched))), vec!["b@4"]);
        assert!(w.groups.is_empty());
    }

    #[test]
    fn the_watch_catching_up_ends_the_memory() {
        let mut w: Written<ConfigMap> = Written::default();
        let k = key();
        w.record(&k, "a", None, Some(obj("a", "5")));
        w.record(&k, "b", Some("2".into()), None);
        assert!(!w.observed(&k, "a", Some("4".into())));
        assert!(!w.observed(&k, "b", Some("2".into())));
        assert_eq!(w.groups[&k].len(), 2);
        assert!(w.observed(&k, "a", Some("5".into())));
        assert!(w.observed(&k, "b", None));
        assert!(w.groups.is_empty());
        assert!(!w.observed(&k, "b", None));
    }

    #[test]
    fn trigger_times() {
        let mut t = TriggerTimes::default();
        let k = key();
        let svc = service(json!({"metadata": {"name": "web", "creationTimestamp": "2024-01-01T00:00:00Z"}}));
        let pods = vec![Arc::new(web_pod("a", "10.0.0.1", json!([])))]; // ready since 2024-01-01T00:00:00Z
        let (first, seen) = t.compute(&k, &svc, &pods);
        assert_eq!(first.unwrap().to_string(), "2024-01-01T00:00:00Z");
        t.commit(k.clone(), seen);
        let (again, seen) = t.compute(&k, &svc, &pods);
        assert_eq!(again, None);
        t.commit(k.clone(), seen);
        let mut later = web_pod("b", "10.0.0.2", json!([]));
        let at: Timestamp = "2024-02-02T00:00:00Z".parse().unwrap();
        later.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].last_transition_time =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at));
        let (changed, _) = t.compute(&k, &svc, &[pods[0].clone(), Arc::new(later)]);
        assert_eq!(changed, Some(at));
        t.forget(&k);
        assert_eq!(t.compute(&k, &svc, &pods).0.unwrap().to_string(), "2024-01-01T00:00:00Z");
    }
}
