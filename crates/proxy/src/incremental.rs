//! The model kept between syncs and rebuilt one Service at a time (pure). A Service's ports are
//! built again ([`model::build`]) only when the Service or one of its EndpointSlices changed — by
//! resourceVersion, as the reflectors hand them over — so a change among 10,000 Services costs
//! one Service's work and the changed ports come out of it, instead of the whole model being
//! rebuilt and compared port by port on every change.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::model::{self, ServicePort, ServicePortName};

/// Above this many Services rebuilt at once, the port list is sorted again rather than spliced.
const SPLICE_MAX: usize = 64;

/// What one Service's ports were built from and which they are.
#[derive(Debug)]
struct Built {
    /// The Service's resourceVersion, then each of its slices' name and resourceVersion (by name).
    versions: Vec<String>,
    ids: Vec<ServicePortName>,
}

/// The outcome of [`IncrementalModel::update`].
#[derive(Debug, Default)]
pub struct Update {
    /// The ports added, removed or changed.
    pub changed: BTreeSet<ServicePortName>,
    /// The EndpointSlices of the Services built again.
    pub slices: Vec<Arc<EndpointSlice>>,
}

/// Every proxied port, kept up to date Service by Service.
#[derive(Debug, Default)]
pub struct IncrementalModel {
    /// Per namespace and Service name.
    built: HashMap<String, HashMap<String, Built>>,
    /// All ports, sorted by id (as [`model::build`] returns them).
    ports: Arc<Vec<ServicePort>>,
}

/// `(namespace, name)` of an object's metadata.
fn key_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (&str, &str) {
    (meta.namespace.as_deref().unwrap_or(""), meta.name.as_deref().unwrap_or(""))
}

/// The versions a Service's ports depend on; `None` when one is unknown (always rebuilt).
fn versions(svc: &Service, slices: &[&Arc<EndpointSlice>]) -> Option<Vec<String>> {
    let mut out = vec![svc.metadata.resource_version.clone()?];
    for s in slices {
        out.push(s.metadata.name.clone()?);
        out.push(s.metadata.resource_version.clone()?);
    }
    Some(out)
}

impl IncrementalModel {
    /// Every port, sorted by id.
    pub fn ports(&self) -> &Arc<Vec<ServicePort>> {
        &self.ports
    }

    /// Brings the model up to date with `services` and `slices` on node `node` (which must not
    /// change between calls).
    pub fn update(&mut self, services: &[Arc<Service>], slices: &[Arc<EndpointSlice>], node: &str) -> Update {
        let mut by_service: HashMap<(&str, &str), Vec<&Arc<EndpointSlice>>> = HashMap::new();
        for s in slices {
            let label = s.metadata.labels.as_ref().and_then(|l| l.get("kubernetes.io/service-name"));
            if let Some(svc) = label {
                let ns = s.metadata.namespace.as_deref().unwrap_or("");
                by_service.entry((ns, svc.as_str())).or_default().push(s);
            }
        }
        let mut update = Update::default();
        // (old ids, new ports) per Service built again.
        let mut rebuilt: Vec<(Vec<ServicePortName>, Vec<ServicePort>)> = Vec::new();
        let mut seen: HashSet<(&str, &str)> = HashSet::with_capacity(services.len());
        for svc in services {
            let key = key_of(&svc.metadata);
            seen.insert(key);
            let mut own = by_service.remove(&key).unwrap_or_default();
            own.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
            let now = versions(svc, &own);
            let old = self.built.get(key.0).and_then(|n| n.get(key.1));
            if now.is_some() && old.map(|b| &b.versions) == now.as_ref() {
                continue;
            }
            let ports = model::build(std::iter::once(&**svc), own.iter().map(|s| &***s), node);
            update.slices.extend(own.iter().map(|s| Arc::clone(s)));
            let old_ids = old.map(|b| b.ids.clone()).unwrap_or_default();
            let built = Built { versions: now.unwrap_or_default(), ids: ports.iter().map(|p| p.id.clone()).collect() };
            self.built.entry(key.0.to_string()).or_default().insert(key.1.to_string(), built);
            rebuilt.push((old_ids, ports));
        }
        if seen.len() < self.built.values().map(HashMap::len).sum() {
            for (ns, names) in &mut self.built {
                let gone: Vec<String> =
                    names.keys().filter(|n| !seen.contains(&(ns.as_str(), n.as_str()))).cloned().collect();
                for name in gone {
                    if let Some(b) = names.remove(&name) {
                        rebuilt.push((b.ids, Vec::new()));
                    }
                }
            }
            self.built.retain(|_, names| !names.is_empty());
        }
        if !rebuilt.is_empty() {
            self.apply(rebuilt, &mut update.changed);
        }
        update
    }

    /// Replaces the ports of the Services built again, noting those that differ.
    fn apply(
        &mut self,
        rebuilt: Vec<(Vec<ServicePortName>, Vec<ServicePort>)>,
        changed: &mut BTreeSet<ServicePortName>,
    ) {
        let ports = Arc::make_mut(&mut self.ports);
        let find = |ports: &Vec<ServicePort>, id: &ServicePortName| ports.binary_search_by(|p| p.id.cmp(id));
        for (old_ids, new) in &rebuilt {
            for id in old_ids {
                let same = find(ports, id).ok().and_then(|i| new.iter().find(|p| p.id == *id).map(|n| ports[i] == *n));
                if same != Some(true) {
                    changed.insert(id.clone());
                }
            }
            for p in new.iter().filter(|p| !old_ids.contains(&p.id)) {
                changed.insert(p.id.clone());
            }
        }
        let splice = rebuilt.len() <= SPLICE_MAX;
        if splice {
            for (old_ids, new) in rebuilt {
                for id in &old_ids {
                    if let Ok(i) = find(ports, id) {
                        ports.remove(i);
                    }
                }
                for p in new {
                    match find(ports, &p.id) {
                        Ok(i) => ports[i] = p,
                        Err(i) => ports.insert(i, p),
                    }
                }
            }
        } else {
            let removed: HashSet<ServicePortName> = rebuilt.iter().flat_map(|(old, _)| old.iter().cloned()).collect();
            ports.retain(|p| !removed.contains(&p.id));
            ports.extend(rebuilt.into_iter().flat_map(|(_, new)| new));
            ports.sort_by(|a, b| a.id.cmp(&b.id));
            ports.dedup_by(|a, b| a.id == b.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(name: &str, ip: &str, rv: &str) -> Arc<Service> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv},
                "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": 80}]}}))
            .unwrap(),
        )
    }

    fn slice(svc: &str, ips: &[&str], rv: &str) -> Arc<EndpointSlice> {
        let endpoints: Vec<_> =
            ips.iter().map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}})).collect();
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": format!("{svc}-x"), "namespace": "ns",
                "resourceVersion": rv, "labels": {"kubernetes.io/service-name": svc}},
                "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                "endpoints": endpoints}))
            .unwrap(),
        )
    }

    fn names(c: &BTreeSet<ServicePortName>) -> Vec<String> {
        c.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn only_what_changed_is_built_again_and_reported() {
        let mut m = IncrementalModel::default();
        let (a, b) = (svc("a", "10.96.0.1", "1"), svc("b", "10.96.0.2", "2"));
        let slices = vec![slice("a", &["10.244.0.1"], "3"), slice("b", &["10.244.0.2"], "4")];
        let first = m.update(&[a.clone(), b.clone()], &slices, "n");
        assert_eq!(names(&first.changed), ["ns/a:http", "ns/b:http"]);
        assert_eq!(first.slices.len(), 2);
        let whole = model::build([&*a, &*b], slices.iter().map(|s| &**s), "n");
        assert_eq!(**m.ports(), whole);

        // Nothing changed: nothing built, nothing reported.
        let again = m.update(&[a.clone(), b.clone()], &slices, "n");
        assert!(again.changed.is_empty() && again.slices.is_empty());

        // b's slice changes: only b.
        let slices2 = vec![slices[0].clone(), slice("b", &["10.244.0.2", "10.244.0.3"], "5")];
        let second = m.update(&[a.clone(), b.clone()], &slices2, "n");
        assert_eq!(names(&second.changed), ["ns/b:http"]);
        assert_eq!(second.slices.len(), 1);
        assert_eq!(**m.ports(), model::build([&*a, &*b], slices2.iter().map(|s| &**s), "n"));

        // A new resourceVersion with the same ports: built again, not reported.
        let a2 = svc("a", "10.96.0.1", "6");
        assert!(m.update(&[a2.clone(), b.clone()], &slices2, "n").changed.is_empty());

        // a removed, c added.
        let c = svc("c", "10.96.0.3", "7");
        let third = m.update(&[b.clone(), c.clone()], &slices2, "n");
        assert_eq!(names(&third.changed), ["ns/a:http", "ns/c:http"]);
        assert_eq!(**m.ports(), model::build([&*b, &*c], slices2.iter().map(|s| &**s), "n"));
    }

    #[test]
    fn changes_are_the_ports_that_differ() {
        // Objects without a resourceVersion are always built again, and compared.
        let svc: Service = serde_json::from_value(json!({"metadata": {"name": "a", "namespace": "d"},
            "spec": {"clusterIP": "10.96.0.5", "ports": [{"name": "x", "port": 80}, {"name": "y", "port": 81}]}}))
        .unwrap();
        let mut m = IncrementalModel::default();
        let update = |m: &mut IncrementalModel, s: &Service| names(&m.update(&[Arc::new(s.clone())], &[], "n").changed);
        assert_eq!(update(&mut m, &svc), ["d/a:x", "d/a:y"]);
        assert!(update(&mut m, &svc).is_empty());
        let mut svc2 = svc.clone();
        svc2.spec.as_mut().unwrap().ports.as_mut().unwrap()[1].port = 82;
        assert_eq!(update(&mut m, &svc2), ["d/a:y"]);
        // An added port, and one port replaced by another (as many ports as before).
        let mut svc3 = svc2.clone();
        let z = serde_json::from_value(json!({"name": "z", "port": 83})).unwrap();
        svc3.spec.as_mut().unwrap().ports.as_mut().unwrap().push(z);
        assert_eq!(update(&mut m, &svc3), ["d/a:z"]);
        let mut svc4 = svc2.clone();
        svc4.spec.as_mut().unwrap().ports.as_mut().unwrap()[1].name = Some("w".into());
        assert_eq!(update(&mut m, &svc4), ["d/a:w", "d/a:y", "d/a:z"]);
        assert!(m.update(&[], &[], "n").changed.len() == 2, "both ports of a removed Service");
    }

    #[test]
    fn many_services_at_once_are_sorted_like_a_whole_build() {
        let mut m = IncrementalModel::default();
        let services: Vec<_> =
            (0..200).rev().map(|i| svc(&format!("s{i}"), &format!("10.96.1.{}", i % 250), "1")).collect();
        let update = m.update(&services, &[], "n");
        assert_eq!(update.changed.len(), 200);
        assert_eq!(**m.ports(), model::build(services.iter().map(|s| &**s), [], "n"));
    }
}
