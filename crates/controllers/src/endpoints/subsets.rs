//! The Endpoints object of a Service, as upstream's endpoints controller writes it: one address
//! per pod with an IP (ready ones in `addresses`, the others in `notReadyAddresses`; terminating
//! pods left out unless `publishNotReadyAddresses`), every service port resolved per pod, repacked
//! into the canonical subsets (addresses grouped by the exact set of ports they serve, so pods
//! that map one port name to different numbers land in different subsets), at most 1000
//! addresses, the Service's labels and the `last-change-trigger-time` annotation.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;

use super::pods;

/// The annotation that says when the change this object reflects happened.
pub const TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
/// The annotation of an Endpoints object that lists fewer addresses than it should.
pub const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
/// The most addresses an Endpoints object lists.
pub const MAX_CAPACITY: usize = 1000;

/// A port in canonical form: (name, port, protocol, appProtocol).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct PortKey {
    name: String,
    port: i32,
    protocol: String,
    app_protocol: Option<String>,
}

impl PortKey {
    fn to_port(&self) -> EndpointPort {
        EndpointPort {
            name: Some(self.name.clone()).filter(|n| !n.is_empty()),
            port: self.port,
            protocol: Some(self.protocol.clone()),
            app_protocol: self.app_protocol.clone(),
        }
    }
}

/// Addresses are told apart by IP and pod UID, as upstream's repacking does.
type AddressKey = (String, String);

fn address_key(address: &EndpointAddress) -> AddressKey {
    (address.ip.clone(), address.target_ref.as_ref().and_then(|r| r.uid.clone()).unwrap_or_default())
}

/// The subsets the Service's Endpoints should have, given the pods its selector matches.
pub fn desired_subsets(svc: &Service, pods: &[Arc<Pod>]) -> Vec<EndpointSubset> {
    let publish_not_ready = svc.spec.as_ref().and_then(|s| s.publish_not_ready_addresses).unwrap_or(false);
    // (address, ready, port) triples; `None` stands for "no ports" (a headless Service without ports).
    let mut entries: Vec<(EndpointAddress, bool, Option<PortKey>)> = Vec::new();
    for pod in pods {
        if !pods::should_be_in_endpoints(pod, publish_not_ready) {
            continue;
        }
        let family = pods::endpoints_family(svc, pod);
        let Some(ip) = pods::ips_of(pod, family).into_iter().next() else {
            continue;
        };
        let address = EndpointAddress {
            ip,
            hostname: pods::hostname_for(pod, svc),
            node_name: pods::node_name(pod).map(str::to_string),
            target_ref: Some(pod_reference(pod)),
        };
        let ready = publish_not_ready || pods::is_ready(pod);
        if pods::ports(svc).is_empty() {
            if pods::is_headless(svc) {
                entries.push((address, ready, None));
            }
            continue;
        }
        for port in pods::ports(svc) {
            let Some(number) = pods::find_port(pod, port) else {
                continue;
            };
            let key = PortKey {
                name: port.name.clone().unwrap_or_default(),
                port: number,
                protocol: pods::protocol(port.protocol.as_ref()).to_string(),
                app_protocol: port.app_protocol.clone(),
            };
            entries.push((address.clone(), ready, Some(key)));
        }
    }
    repack(entries)
}

/// The reference to a pod that endpoints carry.
pub fn pod_reference(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

/// Upstream's `RepackSubsets`: maps every port to the addresses that serve it (an address that
/// is not ready for a port stays not ready), then groups ports by identical address sets.
/// Addresses are sorted by IP and UID, ports by name, number and protocol, subsets by their
/// addresses.
fn repack(entries: Vec<(EndpointAddress, bool, Option<PortKey>)>) -> Vec<EndpointSubset> {
    let mut addresses: BTreeMap<AddressKey, EndpointAddress> = BTreeMap::new();
    let mut by_port: BTreeMap<Option<PortKey>, BTreeMap<AddressKey, bool>> = BTreeMap::new();
    for (address, ready, port) in entries {
        let key = address_key(&address);
        addresses.entry(key.clone()).or_insert(address);
        let set = by_port.entry(port).or_default();
        let was_ready = set.get(&key).copied().unwrap_or(true);
        set.insert(key, was_ready && ready);
    }
    let mut groups: BTreeMap<Vec<(AddressKey, bool)>, BTreeSet<Option<PortKey>>> = BTreeMap::new();
    for (port, set) in by_port {
        groups.entry(set.into_iter().collect()).or_default().insert(port);
    }
    groups
        .into_iter()
        .map(|(set, ports)| {
            let pick = |want: bool| -> Vec<EndpointAddress> {
                set.iter().filter(|(_, ready)| *ready == want).map(|(key, _)| addresses[key].clone()).collect()
            };
            let ports: Vec<EndpointPort> = ports.iter().flatten().map(PortKey::to_port).collect();
            EndpointSubset {
                addresses: Some(pick(true)).filter(|a| !a.is_empty()),
                not_ready_addresses: Some(pick(false)).filter(|a| !a.is_empty()),
                ports: Some(ports).filter(|p| !p.is_empty()),
            }
        })
        .collect()
}

/// A subset in comparable form: absent lists are empty, target references lose their
/// resourceVersion, ports their defaulted protocol.
#[derive(Debug, PartialEq)]
struct Canonical {
    addresses: Vec<EndpointAddress>,
    not_ready: Vec<EndpointAddress>,
    ports: Vec<PortKey>,
}

fn canonical(subsets: &[EndpointSubset]) -> Vec<Canonical> {
    let addresses = |list: &Option<Vec<EndpointAddress>>| -> Vec<EndpointAddress> {
        list.iter()
            .flatten()
            .map(|a| {
                let mut a = a.clone();
                if let Some(r) = a.target_ref.as_mut() {
                    r.resource_version = None;
                }
                a.hostname = a.hostname.filter(|h| !h.is_empty());
                a.node_name = a.node_name.filter(|n| !n.is_empty());
                a
            })
            .collect()
    };
    subsets
        .iter()
        .map(|s| Canonical {
            addresses: addresses(&s.addresses),
            not_ready: addresses(&s.not_ready_addresses),
            ports: s
                .ports
                .iter()
                .flatten()
                .map(|p| PortKey {
                    name: p.name.clone().unwrap_or_default(),
                    port: p.port,
                    protocol: pods::protocol(p.protocol.as_ref()).to_string(),
                    app_protocol: p.app_protocol.clone(),
                })
                .collect(),
        })
        .collect()
}

/// The labels the Service's Endpoints carry: the Service's, plus the headless label when it has
/// no cluster IP.
pub fn desired_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    if pods::is_ip_set(svc) {
        labels.remove(pods::HEADLESS_LABEL);
    } else {
        labels.insert(pods::HEADLESS_LABEL.into(), String::new());
    }
    labels
}

#[cfg(test)]
fn address_count(subsets: &[EndpointSubset]) -> usize {
    subsets
        .iter()
        .map(|s| s.addresses.as_ref().map_or(0, Vec::len) + s.not_ready_addresses.as_ref().map_or(0, Vec::len))
        .sum()
}

/// The Endpoints object to write, or `None` when `current` is already right (same subsets and
/// labels, over-capacity annotation correct) — the trigger time alone is no reason to write.
/// Unlike upstream, a truncated object that is already right is not rewritten on every sync.
pub fn endpoints_to_write(
    svc: &Service,
    current: Option<&Endpoints>,
    subsets: Vec<EndpointSubset>,
    trigger_time: Option<Timestamp>,
) -> Option<Endpoints> {
    let labels = desired_labels(svc);
    let mut subsets = subsets;
    let truncated = truncate(&mut subsets);
    if let Some(current) = current {
        let same_subsets = canonical(current.subsets.as_deref().unwrap_or(&[])) == canonical(&subsets);
        let same_labels = current.metadata.labels.clone().unwrap_or_default() == labels;
        let flagged = current.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(OVER_CAPACITY));
        if same_subsets && same_labels && flagged == truncated {
            return None;
        }
    }
    let mut endpoints = current.cloned().unwrap_or_else(|| Endpoints {
        metadata: ObjectMeta {
            name: svc.metadata.name.clone(),
            namespace: svc.metadata.namespace.clone(),
            ..Default::default()
        },
        ..Default::default()
    });
    endpoints.metadata.managed_fields = None;
    endpoints.metadata.labels = Some(labels).filter(|l| !l.is_empty());
    endpoints.subsets = Some(subsets).filter(|s| !s.is_empty());
    let mut annotations = endpoints.metadata.annotations.take().unwrap_or_default();
    match trigger_time {
        Some(t) => annotations.insert(TRIGGER_TIME.into(), t.to_string()),
        None => annotations.remove(TRIGGER_TIME),
    };
    if truncated {
        annotations.insert(OVER_CAPACITY.into(), "truncated".into());
    } else {
        annotations.remove(OVER_CAPACITY);
    }
    endpoints.metadata.annotations = Some(annotations).filter(|a| !a.is_empty());
    Some(endpoints)
}

/// Upstream's `truncateEndpoints`: keeps at most [`MAX_CAPACITY`] addresses, ready ones first,
/// each subset keeping its share. Returns whether anything was cut.
fn truncate(subsets: &mut [EndpointSubset]) -> bool {
    let ready: usize = subsets.iter().map(|s| s.addresses.as_ref().map_or(0, Vec::len)).sum();
    let not_ready: usize = subsets.iter().map(|s| s.not_ready_addresses.as_ref().map_or(0, Vec::len)).sum();
    if ready + not_ready <= MAX_CAPACITY {
        return false;
    }
    let truncate_ready = ready > MAX_CAPACITY;
    let (max, total) = if truncate_ready { (MAX_CAPACITY, ready) } else { (MAX_CAPACITY - ready, not_ready) };
    let mut room = max;
    for subset in subsets.iter_mut() {
        let list = if truncate_ready { &mut subset.addresses } else { &mut subset.not_ready_addresses };
        let count = list.as_ref().map_or(0, Vec::len);
        let share = (count * max).div_ceil(total).min(room);
        if let Some(list) = list.as_mut() {
            list.truncate(share);
        }
        room -= list.as_ref().map_or(0, Vec::len);
        if truncate_ready {
            subset.not_ready_addresses = None;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoints::pods::tests::{pod, service, web_pod};
    use serde_json::json;

    fn svc(spec: serde_json::Value) -> Service {
        service(json!({"metadata": {"name": "web", "namespace": "default", "labels": {"team": "a"}}, "spec": spec}))
    }

    fn ips(list: &Option<Vec<EndpointAddress>>) -> Vec<&str> {
        list.iter().flatten().map(|a| a.ip.as_str()).collect()
    }

    fn ports(subset: &EndpointSubset) -> Vec<i32> {
        subset.ports.iter().flatten().map(|p| p.port).collect()
    }

    #[test]
    fn ready_and_not_ready_addresses() {
        let s = svc(
            json!({"clusterIP": "10.96.0.5", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}),
        );
        let a = web_pod("a", "10.0.0.2", json!([]));
        let mut b = web_pod("b", "10.0.0.1", json!([]));
        b.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].status = "False".into();
        let mut gone = web_pod("c", "10.0.0.3", json!([]));
        gone.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now()));
        let pods = vec![Arc::new(a), Arc::new(b), Arc::new(gone)];
        let subsets = desired_subsets(&s, &pods);
        assert_eq!(subsets.len(), 1);
        assert_eq!(ips(&subsets[0].addresses), vec!["10.0.0.2"]);
        assert_eq!(ips(&subsets[0].not_ready_addresses), vec!["10.0.0.1"]);
        assert_eq!(ports(&subsets[0]), vec![8080]);
        let address = &subsets[0].addresses.as_ref().unwrap()[0];
        assert_eq!(address.node_name.as_deref(), Some("n1"));
        assert_eq!(address.target_ref.as_ref().unwrap().name.as_deref(), Some("a"));

        // publishNotReadyAddresses: everyone ready, terminating pods included.
        let s = svc(json!({"clusterIP": "10.96.0.5", "selector": {"app": "web"}, "publishNotReadyAddresses": true,
                           "ports": [{"port": 80, "targetPort": 8080}]}));
        let subsets = desired_subsets(&s, &pods);
        assert_eq!(ips(&subsets[0].addresses), vec!["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
        assert!(subsets[0].not_ready_addresses.is_none());
    }

    #[test]
    fn named_ports_split_subsets() {
        let s = svc(json!({"clusterIP": "10.96.0.5", "selector": {"app": "web"},
                           "ports": [{"name": "http", "port": 80, "targetPort": "web"}]}));
        let a = web_pod("a", "10.0.0.1", json!([{"name": "web", "containerPort": 8080}]));
        let b = web_pod("b", "10.0.0.2", json!([{"name": "web", "containerPort": 9090}]));
        let c = web_pod("c", "10.0.0.3", json!([{"name": "other", "containerPort": 9090}]));
        let subsets = desired_subsets(&s, &[Arc::new(a), Arc::new(b), Arc::new(c)]);
        assert_eq!(subsets.len(), 2);
        let mut seen: Vec<(Vec<&str>, Vec<i32>)> = subsets.iter().map(|s| (ips(&s.addresses), ports(s))).collect();
        seen.sort();
        assert_eq!(seen, vec![(vec!["10.0.0.1"], vec![8080]), (vec!["10.0.0.2"], vec![9090])]);
        assert_eq!(subsets[0].ports.as_ref().unwrap()[0].name.as_deref(), Some("http"));
    }

    #[test]
    fn multiple_ports_share_a_subset() {
        let s = svc(json!({"clusterIP": "10.96.0.5", "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}, {"name": "https", "port": 443, "targetPort": 8443}]}));
        let pods: Vec<Arc<Pod>> =
            (1..=3).map(|i| Arc::new(web_pod(&format!("p{i}"), &format!("10.0.0.{i}"), json!([])))).collect();
        let subsets = desired_subsets(&s, &pods);
        assert_eq!(subsets.len(), 1);
        assert_eq!(ips(&subsets[0].addresses), vec!["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
        assert_eq!(ports(&subsets[0]), vec![8080, 8443]);
    }

    #[test]
    fn headless_without_ports() {
        let s = svc(json!({"clusterIP": "None", "selector": {"app": "web"}}));
        let pods = vec![Arc::new(web_pod("a", "10.0.0.1", json!([])))];
        let subsets = desired_subsets(&s, &pods);
        assert_eq!(subsets.len(), 1);
        assert_eq!(ips(&subsets[0].addresses), vec!["10.0.0.1"]);
        assert!(subsets[0].ports.is_none());
        // Not headless and no ports: nothing.
        let s = svc(json!({"clusterIP": "10.96.0.5", "selector": {"app": "web"}}));
        assert!(desired_subsets(&s, &pods).is_empty());
    }

    #[test]
    fn hostname_and_pods_without_ip() {
        let s = service(json!({"metadata": {"name": "db", "namespace": "default"},
            "spec": {"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 5432}]}}));
        let with_host = pod(json!({"metadata": {"name": "db-0", "namespace": "default", "uid": "u0"},
            "spec": {"containers": [], "hostname": "db-0", "subdomain": "db"},
            "status": {"podIP": "10.0.0.9", "conditions": [{"type": "Ready", "status": "True"}]}}));
        let no_ip =
            pod(json!({"metadata": {"name": "db-1", "namespace": "default", "uid": "u1"}, "spec": {"containers": []}}));
        let subsets = desired_subsets(&s, &[Arc::new(with_host), Arc::new(no_ip)]);
        assert_eq!(subsets.len(), 1);
        let address = &subsets[0].addresses.as_ref().unwrap()[0];
        assert_eq!(address.hostname.as_deref(), Some("db-0"));
        assert_eq!(address.node_name, None);
        assert_eq!(ports(&subsets[0]), vec![5432]);
    }

    #[test]
    fn writes_only_when_something_changed() {
        let s = svc(json!({"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"port": 80}]}));
        let pods = vec![Arc::new(web_pod("a", "10.0.0.1", json!([])))];
        let t = "2024-01-01T00:00:00Z".parse::<Timestamp>().unwrap();
        let fresh = endpoints_to_write(&s, None, desired_subsets(&s, &pods), Some(t)).expect("a new object");
        assert_eq!(fresh.metadata.name.as_deref(), Some("web"));
        assert_eq!(fresh.metadata.namespace.as_deref(), Some("default"));
        let labels = fresh.metadata.labels.clone().unwrap();
        assert_eq!(labels.get("team").map(String::as_str), Some("a"));
        assert_eq!(labels.get(pods::HEADLESS_LABEL).map(String::as_str), Some(""));
        assert_eq!(fresh.metadata.annotations.as_ref().unwrap()[TRIGGER_TIME], "2024-01-01T00:00:00Z");
        assert!(fresh.metadata.owner_references.is_none());

        // As the server returns it (defaults, resourceVersions): nothing to do.
        let mut stored: Endpoints = serde_json::from_value(serde_json::to_value(&fresh).unwrap()).unwrap();
        stored.metadata.resource_version = Some("7".into());
        let address = &mut stored.subsets.as_mut().unwrap()[0].addresses.as_mut().unwrap()[0];
        address.target_ref.as_mut().unwrap().resource_version = Some("3".into());
        assert!(endpoints_to_write(&s, Some(&stored), desired_subsets(&s, &pods), None).is_none());

        // A pod gone: rewritten, the trigger time cleared when there is none, rv kept.
        let update = endpoints_to_write(&s, Some(&stored), desired_subsets(&s, &[]), None).expect("an update");
        assert!(update.subsets.is_none());
        assert_eq!(update.metadata.resource_version.as_deref(), Some("7"));
        assert!(update.metadata.annotations.is_none());

        // A label change alone is a change.
        let mut relabelled = s.clone();
        relabelled.metadata.labels = None;
        assert!(endpoints_to_write(&relabelled, Some(&stored), desired_subsets(&s, &pods), None).is_some());
    }

    #[test]
    fn truncates_to_capacity() {
        let s = svc(json!({"clusterIP": "10.96.0.5", "selector": {"app": "web"}, "ports": [{"port": 80}]}));
        let pods: Vec<Arc<Pod>> = (0..1100)
            .map(|i| Arc::new(web_pod(&format!("p{i}"), &format!("10.1.{}.{}", i / 250, i % 250), json!([]))))
            .collect();
        let ep = endpoints_to_write(&s, None, desired_subsets(&s, &pods), None).unwrap();
        assert_eq!(address_count(ep.subsets.as_ref().unwrap()), MAX_CAPACITY);
        assert_eq!(ep.metadata.annotations.as_ref().unwrap()[OVER_CAPACITY], "truncated");
        assert!(endpoints_to_write(&s, Some(&ep), desired_subsets(&s, &pods), None).is_none());
        assert!(endpoints_to_write(&s, Some(&ep), desired_subsets(&s, &pods[..10]), None).is_some());
    }
}
