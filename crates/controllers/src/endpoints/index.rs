//! The controllers' view of the cluster, kept up to date from their watches (upstream's
//! informer caches, indexed for this job):
//!
//! - [`Members`]: Services by namespace with their selectors, pods by namespace, and which pods
//!   each Service selects. A pod event yields only the Services it concerns: those it belongs to
//!   when a field the endpoints show changed (readiness, IPs, deletion, node), those it joins or
//!   leaves when its labels changed, nothing otherwise. Candidates are found through a label
//!   index (a selector's first `key=value` requirement), then checked against the whole
//!   selector, so neither a pod event nor a Service event scans the namespace.
//! - [`Grouped`]: objects (EndpointSlices, Endpoints) grouped by the Service they belong to.
//!
//! Both follow the watch protocol: a relist (`Init`, `InitApply`…, `InitDone`) replaces their
//! contents at once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::runtime::watcher;
use kube::Resource;
use podnet_meta::labels::Selector;

use super::pods;
use super::Key;

type Label = (String, String);

/// The selector of a Service whose endpoints the controllers manage, `None` for the others (and
/// for a selector that does not parse, which the API server does not accept anyway).
pub fn selector_of(svc: &Service) -> Option<Selector> {
    if !pods::manages(svc) {
        return None;
    }
    let map: serde_json::Map<String, serde_json::Value> =
        pods::selector(svc)?.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
    Selector::from_map(&map).ok()
}

/// The label a selector is indexed under: its first exact `key=value` requirement.
fn anchor(selector: &Selector) -> Option<Label> {
    selector
        .requirements()
        .iter()
        .find_map(|r| selector.requires_exact_match(r.key()).map(|value| (r.key().to_string(), value.to_string())))
}

fn matches(selector: &Selector, pod: &Pod) -> bool {
    let labels = pod.metadata.labels.as_ref();
    selector.matches_lookup(|key| labels.and_then(|l| l.get(key)).map(String::as_str))
}

fn labels_of(pod: &Pod) -> impl Iterator<Item = Label> + '_ {
    pod.metadata.labels.iter().flatten().map(|(k, v)| (k.clone(), v.clone()))
}

type Facts<'a> = (Option<&'a str>, bool, bool, Vec<&'a str>, Option<&'a str>, bool, Option<&'a str>, Option<&'a str>);

/// What of a pod its endpoints show, beyond its labels.
fn endpoint_facts(pod: &Pod) -> Facts<'_> {
    let spec = pod.spec.as_ref();
    (
        pod.metadata.uid.as_deref(),
        pod.metadata.deletion_timestamp.is_some(),
        pods::is_ready(pod),
        pods::pod_ips(pod),
        pods::node_name(pod),
        pods::is_terminal(pod),
        spec.and_then(|s| s.hostname.as_deref()),
        spec.and_then(|s| s.subdomain.as_deref()),
    )
}

#[derive(Debug, Default)]
struct Namespace {
    /// Every Service, with the selector of those the controllers manage.
    services: BTreeMap<String, Option<Selector>>,
    /// Managed Services by their selector's anchor label; those without one.
    services_by_label: HashMap<Label, BTreeSet<String>>,
    services_unanchored: BTreeSet<String>,
    pods: HashMap<String, Arc<Pod>>,
    pods_by_label: HashMap<Label, BTreeSet<String>>,
    /// Service → the pods it selects, and pod → the Services selecting it.
    members: HashMap<String, BTreeSet<String>>,
    member_of: HashMap<String, BTreeSet<String>>,
}

impl Namespace {
    fn set_member(&mut self, service: &str, pod: &str, member: bool) -> bool {
        if member {
            self.member_of.entry(pod.to_string()).or_default().insert(service.to_string());
            self.members.entry(service.to_string()).or_default().insert(pod.to_string())
        } else {
            let removed = self.members.get_mut(service).is_some_and(|m| m.remove(pod));
            if let Some(of) = self.member_of.get_mut(pod) {
                of.remove(service);
                if of.is_empty() {
                    self.member_of.remove(pod);
                }
            }
            if self.members.get(service).is_some_and(BTreeSet::is_empty) {
                self.members.remove(service);
            }
            removed
        }
    }

    /// The managed Services whose selector this pod may match.
    fn candidate_services(&self, pod: &Pod) -> BTreeSet<String> {
        let mut candidates = self.services_unanchored.clone();
        for label in labels_of(pod) {
            if let Some(names) = self.services_by_label.get(&label) {
                candidates.extend(names.iter().cloned());
            }
        }
        candidates
    }

    /// The pods this selector may match.
    fn candidate_pods(&self, selector: &Selector) -> Vec<String> {
        match anchor(selector) {
            Some(label) => self.pods_by_label.get(&label).map(|p| p.iter().cloned().collect()).unwrap_or_default(),
            None => self.pods.keys().cloned().collect(),
        }
    }

    fn unindex_service(&mut self, name: &str) {
        if let Some(Some(selector)) = self.services.get(name) {
            match anchor(selector) {
                Some(label) => {
                    if let Some(set) = self.services_by_label.get_mut(&label) {
                        set.remove(name);
                        if set.is_empty() {
                            self.services_by_label.remove(&label);
                        }
                    }
                }
                None => {
                    self.services_unanchored.remove(name);
                }
            }
        }
        for pod in self.members.get(name).cloned().unwrap_or_default() {
            self.set_member(name, &pod, false);
        }
    }

    fn index_service(&mut self, name: &str, selector: Option<Selector>) {
        if let Some(selector) = &selector {
            match anchor(selector) {
                Some(label) => {
                    self.services_by_label.entry(label).or_default().insert(name.to_string());
                }
                None => {
                    self.services_unanchored.insert(name.to_string());
                }
            }
            for pod_name in self.candidate_pods(selector) {
                if self.pods.get(&pod_name).is_some_and(|pod| matches(selector, pod)) {
                    self.set_member(name, &pod_name, true);
                }
            }
        }
        self.services.insert(name.to_string(), selector);
    }

    fn unindex_pod(&mut self, name: &str) -> Option<Arc<Pod>> {
        let pod = self.pods.remove(name)?;
        for label in labels_of(&pod) {
            if let Some(set) = self.pods_by_label.get_mut(&label) {
                set.remove(name);
                if set.is_empty() {
                    self.pods_by_label.remove(&label);
                }
            }
        }
        Some(pod)
    }

    fn index_pod(&mut self, pod: Arc<Pod>) {
        let name = pod.metadata.name.clone().unwrap_or_default();
        for label in labels_of(&pod) {
            self.pods_by_label.entry(label).or_default().insert(name.clone());
        }
        self.pods.insert(name, pod);
    }
}

/// Services, pods and which pods each Service selects.
#[derive(Debug, Default)]
pub struct Members {
    namespaces: HashMap<String, Namespace>,
    pods_relist: Option<Vec<Arc<Pod>>>,
    services_relist: Option<Vec<(Key, Option<Selector>)>>,
}

impl Members {
    /// A Service was added or changed.
    pub fn apply_service(&mut self, svc: &Service) {
        let key = Key::of(svc);
        let selector = selector_of(svc);
        let ns = self.namespaces.entry(key.namespace.clone()).or_default();
        if ns.services.get(&key.name) == Some(&selector) {
            return;
        }
        ns.unindex_service(&key.name);
        ns.index_service(&key.name, selector);
    }

    pub fn delete_service(&mut self, key: &Key) {
        if let Some(ns) = self.namespaces.get_mut(&key.namespace) {
            ns.unindex_service(&key.name);
            ns.services.remove(&key.name);
        }
    }

    /// Whether a Service of this name exists.
    pub fn has_service(&self, key: &Key) -> bool {
        self.namespaces.get(&key.namespace).is_some_and(|ns| ns.services.contains_key(&key.name))
    }

    /// The managed Services.
    pub fn managed_services(&self) -> Vec<Key> {
        self.namespaces
            .iter()
            .flat_map(|(ns, n)| n.services.iter().filter(|(_, s)| s.is_some()).map(|(name, _)| Key::new(ns, name)))
            .collect()
    }

    /// A pod was added or changed: the Services to sync.
    pub fn apply_pod(&mut self, pod: Arc<Pod>) -> Vec<Key> {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let ns = self.namespaces.entry(namespace.clone()).or_default();
        let old = ns.unindex_pod(&name);
        let (pod_changed, labels_changed) = match &old {
            None => (true, true),
            Some(old) => (endpoint_facts(old) != endpoint_facts(&pod), old.metadata.labels != pod.metadata.labels),
        };
        ns.index_pod(pod.clone());
        let was: BTreeSet<String> = ns.member_of.get(&name).cloned().unwrap_or_default();
        let mut triggers = BTreeSet::new();
        if labels_changed {
            let candidates = ns.candidate_services(&pod);
            let now: BTreeSet<String> = candidates
                .into_iter()
                .filter(|s| ns.services.get(s).and_then(Option::as_ref).is_some_and(|sel| matches(sel, &pod)))
                .collect();
            for service in was.difference(&now) {
                ns.set_member(service, &name, false);
                triggers.insert(service.clone());
            }
            for service in now.difference(&was) {
                ns.set_member(service, &name, true);
                triggers.insert(service.clone());
            }
            if pod_changed {
                triggers.extend(now);
            }
        } else if pod_changed {
            triggers.extend(was);
        }
        triggers.into_iter().map(|s| Key::new(&namespace, &s)).collect()
    }

    /// A pod is gone: the Services it belonged to.
    pub fn delete_pod(&mut self, pod: &Pod) -> Vec<Key> {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let Some(ns) = self.namespaces.get_mut(&namespace) else {
            return Vec::new();
        };
        ns.unindex_pod(&name);
        let was = ns.member_of.get(&name).cloned().unwrap_or_default();
        for service in &was {
            ns.set_member(service, &name, false);
        }
        was.into_iter().map(|s| Key::new(&namespace, &s)).collect()
    }

    /// The pods a Service selects.
    pub fn pods_of(&self, key: &Key) -> Vec<Arc<Pod>> {
        let Some(ns) = self.namespaces.get(&key.namespace) else {
            return Vec::new();
        };
        ns.members.get(&key.name).into_iter().flatten().filter_map(|p| ns.pods.get(p).cloned()).collect()
    }

    /// Follows the pod watch. Returns the Services to sync.
    pub fn pod_event(&mut self, event: watcher::Event<Pod>) -> Vec<Key> {
        match event {
            watcher::Event::Apply(pod) => self.apply_pod(Arc::new(pod)),
            watcher::Event::Delete(pod) => self.delete_pod(&pod),
            watcher::Event::Init => {
                self.pods_relist = Some(Vec::new());
                Vec::new()
            }
            watcher::Event::InitApply(pod) => {
                self.pods_relist.get_or_insert_with(Vec::new).push(Arc::new(pod));
                Vec::new()
            }
            watcher::Event::InitDone => {
                let pods = self.pods_relist.take().unwrap_or_default();
                for ns in self.namespaces.values_mut() {
                    let services = std::mem::take(&mut ns.services);
                    *ns = Namespace::default();
                    ns.services = services;
                }
                for pod in pods {
                    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
                    self.namespaces.entry(namespace).or_default().index_pod(pod);
                }
                for ns in self.namespaces.values_mut() {
                    for (name, selector) in std::mem::take(&mut ns.services) {
                        ns.index_service(&name, selector);
                    }
                }
                self.managed_services()
            }
        }
    }

    /// Follows the Service watch (after its store). Returns the Services deleted, including
    /// those a relist no longer lists.
    pub fn service_event(&mut self, event: &watcher::Event<Service>) -> Vec<Key> {
        match event {
            watcher::Event::Apply(svc) => {
                self.apply_service(svc);
                Vec::new()
            }
            watcher::Event::Delete(svc) => {
                let key = Key::of(svc);
                self.delete_service(&key);
                vec![key]
            }
            watcher::Event::Init => {
                self.services_relist = Some(Vec::new());
                Vec::new()
            }
            watcher::Event::InitApply(svc) => {
                self.services_relist.get_or_insert_with(Vec::new).push((Key::of(svc), selector_of(svc)));
                Vec::new()
            }
            watcher::Event::InitDone => {
                let listed = self.services_relist.take().unwrap_or_default();
                let listed_keys: BTreeSet<&Key> = listed.iter().map(|(k, _)| k).collect();
                let mut gone = Vec::new();
                for (namespace, ns) in &self.namespaces {
                    for name in ns.services.keys() {
                        let key = Key::new(namespace, name);
                        if !listed_keys.contains(&key) {
                            gone.push(key);
                        }
                    }
                }
                for key in &gone {
                    self.delete_service(key);
                }
                for (key, selector) in listed {
                    let ns = self.namespaces.entry(key.namespace.clone()).or_default();
                    if ns.services.get(&key.name) != Some(&selector) {
                        ns.unindex_service(&key.name);
                        ns.index_service(&key.name, selector);
                    }
                }
                gone
            }
        }
    }
}

/// Objects grouped by the Service they belong to, and by name within the group.
pub struct Grouped<K> {
    group_of: fn(&K) -> Option<Key>,
    groups: HashMap<Key, BTreeMap<String, Arc<K>>>,
    /// (namespace, name) → the group the object is in.
    located: HashMap<(String, String), Key>,
    relist: Option<Vec<K>>,
}

impl<K: Resource> Grouped<K> {
    pub fn new(group_of: fn(&K) -> Option<Key>) -> Self {
        Grouped { group_of, groups: HashMap::new(), located: HashMap::new(), relist: None }
    }

    fn id(obj: &K) -> (String, String) {
        (obj.meta().namespace.clone().unwrap_or_default(), obj.meta().name.clone().unwrap_or_default())
    }

    fn remove(&mut self, id: &(String, String)) -> Option<Key> {
        let group = self.located.remove(id)?;
        if let Some(members) = self.groups.get_mut(&group) {
            members.remove(&id.1);
            if members.is_empty() {
                self.groups.remove(&group);
            }
        }
        Some(group)
    }

    fn insert(&mut self, obj: K) -> Option<Key> {
        let id = Self::id(&obj);
        let group = (self.group_of)(&obj)?;
        self.groups.entry(group.clone()).or_default().insert(id.1.clone(), Arc::new(obj));
        self.located.insert(id, group.clone());
        Some(group)
    }

    /// Follows the watch. Returns the groups that changed.
    pub fn handle(&mut self, event: watcher::Event<K>) -> Vec<Key> {
        match event {
            watcher::Event::Apply(obj) => {
                let old = self.remove(&Self::id(&obj));
                let new = self.insert(obj);
                let mut changed: Vec<Key> = old.into_iter().chain(new).collect();
                changed.dedup();
                changed
            }
            watcher::Event::Delete(obj) => self.remove(&Self::id(&obj)).into_iter().collect(),
            watcher::Event::Init => {
                self.relist = Some(Vec::new());
                Vec::new()
            }
            watcher::Event::InitApply(obj) => {
                self.relist.get_or_insert_with(Vec::new).push(obj);
                Vec::new()
            }
            watcher::Event::InitDone => {
                let mut changed: BTreeSet<Key> = self.groups.keys().cloned().collect();
                self.groups.clear();
                self.located.clear();
                for obj in self.relist.take().unwrap_or_default() {
                    changed.extend(self.insert(obj));
                }
                changed.into_iter().collect()
            }
        }
    }

    pub fn group(&self, key: &Key) -> Option<&BTreeMap<String, Arc<K>>> {
        self.groups.get(key)
    }

    pub fn keys(&self) -> Vec<Key> {
        self.groups.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoints::pods::tests::{pod, service};
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use serde_json::json;

    fn svc(name: &str, selector: serde_json::Value) -> Service {
        service(json!({"metadata": {"name": name, "namespace": "ns"}, "spec": {"selector": selector}}))
    }

    fn p(name: &str, labels: serde_json::Value, ready: bool) -> Arc<Pod> {
        Arc::new(pod(json!({
            "metadata": {"name": name, "namespace": "ns", "uid": name, "labels": labels},
            "spec": {"containers": []},
            "status": {"podIP": "10.0.0.1", "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        })))
    }

    fn names(keys: Vec<Key>) -> Vec<String> {
        let mut names: Vec<String> = keys.into_iter().map(|k| k.name).collect();
        names.sort();
        names
    }

    fn members(m: &Members, service: &str) -> Vec<String> {
        let mut names: Vec<String> =
            m.pods_of(&Key::new("ns", service)).iter().map(|p| p.metadata.name.clone().unwrap()).collect();
        names.sort();
        names
    }

    #[test]
    fn pod_events_concern_only_their_services() {
        let mut m = Members::default();
        m.apply_service(&svc("web", json!({"app": "web"})));
        m.apply_service(&svc("web-dev", json!({"app": "web", "env": "dev"})));
        m.apply_service(&svc("db", json!({"app": "db"})));
        m.apply_service(&service(json!({"metadata": {"name": "manual", "namespace": "ns"}, "spec": {}})));

        assert_eq!(names(m.apply_pod(p("a", json!({"app": "web", "env": "dev"}), false))), vec!["web", "web-dev"]);
        assert_eq!(names(m.apply_pod(p("b", json!({"app": "web"}), false))), vec!["web"]);
        assert_eq!(members(&m, "web"), vec!["a", "b"]);
        assert_eq!(members(&m, "web-dev"), vec!["a"]);
        // Nothing the endpoints show changed: nothing to do.
        assert!(m.apply_pod(p("b", json!({"app": "web"}), false)).is_empty());
        // Readiness: the services it is in.
        assert_eq!(names(m.apply_pod(p("a", json!({"app": "web", "env": "dev"}), true))), vec!["web", "web-dev"]);
        // Labels: the services it leaves and joins.
        assert_eq!(names(m.apply_pod(p("a", json!({"app": "db"}), true))), vec!["db", "web", "web-dev"]);
        assert_eq!(names(m.apply_pod(p("a", json!({"app": "db", "x": "y"}), true))), Vec::<String>::new());
        assert_eq!(members(&m, "db"), vec!["a"]);
        assert!(members(&m, "web-dev").is_empty());
        // Deletion: the services it was in.
        assert_eq!(names(m.delete_pod(&p("a", json!({}), true))), vec!["db"]);
        assert!(members(&m, "db").is_empty());
    }

    #[test]
    fn service_changes_recompute_members() {
        let mut m = Members::default();
        m.apply_pod(p("a", json!({"app": "web"}), true));
        m.apply_pod(p("b", json!({"app": "db"}), true));
        m.apply_service(&svc("s", json!({"app": "web"})));
        assert_eq!(members(&m, "s"), vec!["a"]);
        m.apply_service(&svc("s", json!({"app": "db"})));
        assert_eq!(members(&m, "s"), vec!["b"]);
        // ExternalName: no members.
        m.apply_service(&service(json!({"metadata": {"name": "s", "namespace": "ns"},
                                        "spec": {"type": "ExternalName", "selector": {"app": "db"}}})));
        assert!(members(&m, "s").is_empty());
        assert!(m.has_service(&Key::new("ns", "s")));
        m.delete_service(&Key::new("ns", "s"));
        assert!(!m.has_service(&Key::new("ns", "s")));
        assert!(m.apply_pod(p("b", json!({"app": "db"}), false)).is_empty());
    }

    #[test]
    fn relists_replace_everything() {
        let mut m = Members::default();
        m.apply_service(&svc("s", json!({"app": "web"})));
        m.apply_service(&svc("old", json!({"app": "web"})));
        m.apply_pod(p("a", json!({"app": "web"}), true));
        assert!(m.pod_event(watcher::Event::Init).is_empty());
        m.pod_event(watcher::Event::InitApply((*p("b", json!({"app": "web"}), true)).clone()));
        assert_eq!(names(m.pod_event(watcher::Event::InitDone)), vec!["old", "s"]);
        assert_eq!(members(&m, "s"), vec!["b"]);

        m.service_event(&watcher::Event::Init);
        m.service_event(&watcher::Event::InitApply(svc("s", json!({"app": "web"}))));
        assert_eq!(names(m.service_event(&watcher::Event::InitDone)), vec!["old"]);
        assert_eq!(names(m.managed_services()), vec!["s"]);
        assert_eq!(members(&m, "s"), vec!["b"]);
    }

    fn slice(name: &str, service: &str) -> EndpointSlice {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "ns",
            "labels": {"kubernetes.io/service-name": service}}, "addressType": "IPv4", "endpoints": []}))
        .unwrap()
    }

    fn by_service_label(s: &EndpointSlice) -> Option<Key> {
        let name = s.metadata.labels.as_ref()?.get("kubernetes.io/service-name")?;
        Some(Key::new(s.metadata.namespace.as_deref().unwrap_or_default(), name))
    }

    #[test]
    fn grouped_objects() {
        let mut g: Grouped<EndpointSlice> = Grouped::new(by_service_label);
        assert_eq!(names(g.handle(watcher::Event::Apply(slice("a-1", "a")))), vec!["a"]);
        assert_eq!(names(g.handle(watcher::Event::Apply(slice("a-2", "a")))), vec!["a"]);
        assert_eq!(g.group(&Key::new("ns", "a")).unwrap().len(), 2);
        // relabelled to another service
        assert_eq!(names(g.handle(watcher::Event::Apply(slice("a-2", "b")))), vec!["a", "b"]);
        assert_eq!(g.group(&Key::new("ns", "a")).unwrap().len(), 1);
        assert_eq!(names(g.handle(watcher::Event::Delete(slice("a-1", "a")))), vec!["a"]);
        assert!(g.group(&Key::new("ns", "a")).is_none());
        g.handle(watcher::Event::Init);
        g.handle(watcher::Event::InitApply(slice("c-1", "c")));
        assert_eq!(names(g.handle(watcher::Event::InitDone)), vec!["b", "c"]);
        assert_eq!(names(g.keys()), vec!["c"]);
    }
}
