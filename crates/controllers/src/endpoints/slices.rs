//! The EndpointSlices of a Service, as upstream's EndpointSlice reconciler plans them: for each
//! address family of the Service, the pods with an IP (terminating ones included, with
//! `terminating: true`) grouped by the ports they resolve the service ports to, at most 100
//! endpoints per slice. Existing slices are kept and only changed where they differ: endpoints
//! that are gone are dropped, changed ones replaced in place, new ones fill the slices that
//! change anyway before an unchanged slice with room and before a new slice is made; a slice
//! that would be deleted while another is created is reused under its name. A Service without
//! endpoints keeps one empty placeholder slice.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;

use super::pods::{self, Family};
use super::subsets::{pod_reference, TRIGGER_TIME};

/// The label that ties a slice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label that says which controller manages a slice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's name in [`MANAGED_BY_LABEL`].
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// The most endpoints a slice holds (upstream's default `--max-endpoints-per-slice`).
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// The writes that bring a Service's slices to the desired state.
#[derive(Debug, Default)]
pub struct Plan {
    /// New slices (named by `generateName`).
    pub create: Vec<EndpointSlice>,
    /// Whole slices to replace, carrying the resourceVersion they were computed from.
    pub update: Vec<EndpointSlice>,
    pub delete: Vec<Arc<EndpointSlice>>,
    /// Nodes that pods name but that do not exist (yet): their pods were left out.
    pub missing_nodes: BTreeSet<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// Ports in canonical form, sorted: what groups endpoints into slices.
type PortsKey = Vec<(String, Option<i32>, String, Option<String>)>;

fn ports_key(ports: Option<&Vec<EndpointPort>>) -> PortsKey {
    let mut key: PortsKey = ports
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port,
                pods::protocol(p.protocol.as_ref()).to_string(),
                p.app_protocol.clone(),
            )
        })
        .collect();
    key.sort();
    key
}

/// What identifies an endpoint across syncs (upstream's endpoint hash): its addresses, hostname
/// and the pod it stands for.
type EndpointKey = (Vec<String>, String, String, String);

fn endpoint_key(endpoint: &Endpoint) -> EndpointKey {
    let mut addresses = endpoint.addresses.clone();
    addresses.sort();
    let target = endpoint.target_ref.as_ref();
    (
        addresses,
        endpoint.hostname.clone().unwrap_or_default(),
        target.and_then(|t| t.namespace.clone()).unwrap_or_default(),
        target.and_then(|t| t.name.clone()).unwrap_or_default(),
    )
}

/// Upstream's `EndpointsEqualBeyondHash`: node, zone, conditions and target (whatever its
/// resourceVersion).
fn equal_beyond_key(a: &Endpoint, b: &Endpoint) -> bool {
    let conditions = |e: &Endpoint| e.conditions.as_ref().map(|c| (c.ready, c.serving, c.terminating));
    let target = |e: &Endpoint| {
        e.target_ref.clone().map(|mut t| {
            t.resource_version = None;
            t
        })
    };
    a.node_name == b.node_name
        && a.zone == b.zone
        && conditions(a).unwrap_or_default() == conditions(b).unwrap_or_default()
        && target(a) == target(b)
}

/// The ports an endpoint of this pod serves: every service port the pod resolves (none for a
/// headless Service without ports).
pub fn endpoint_ports(svc: &Service, pod: &Pod) -> Vec<EndpointPort> {
    if pods::portless_headless(svc) {
        return Vec::new();
    }
    pods::ports(svc)
        .iter()
        .filter_map(|port| {
            pods::find_port(pod, port).map(|number| EndpointPort {
                name: Some(port.name.clone().unwrap_or_default()),
                port: Some(number),
                protocol: Some(pods::protocol(port.protocol.as_ref()).to_string()),
                app_protocol: port.app_protocol.clone(),
            })
        })
        .collect()
}

/// Upstream's `podToEndpoint`: serving is readiness, terminating is a deletionTimestamp, and
/// ready is serving and not terminating (always true with `publishNotReadyAddresses`).
pub fn pod_endpoint(pod: &Pod, zone: Option<String>, svc: &Service, family: Family) -> Endpoint {
    let publish_not_ready = svc.spec.as_ref().and_then(|s| s.publish_not_ready_addresses).unwrap_or(false);
    let serving = pods::is_ready(pod);
    let terminating = pods::is_terminating(pod);
    Endpoint {
        addresses: pods::ips_of(pod, family),
        conditions: Some(EndpointConditions {
            ready: Some(publish_not_ready || (serving && !terminating)),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: pods::hostname_for(pod, svc),
        node_name: pods::node_name(pod).map(str::to_string),
        target_ref: Some(pod_reference(pod)),
        zone,
        ..Default::default()
    }
}

fn is_reserved(label: &str) -> bool {
    label == SERVICE_NAME_LABEL || label == MANAGED_BY_LABEL || label == pods::HEADLESS_LABEL
}

/// The labels of the Service's slices: the Service's own (but the reserved ones), the headless
/// label when it has no cluster IP, the service name and the managed-by label.
pub fn desired_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = svc
        .metadata
        .labels
        .iter()
        .flatten()
        .filter(|(k, _)| !is_reserved(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !pods::is_ip_set(svc) {
        labels.insert(pods::HEADLESS_LABEL.into(), String::new());
    }
    labels.insert(SERVICE_NAME_LABEL.into(), svc.metadata.name.clone().unwrap_or_default());
    labels.insert(MANAGED_BY_LABEL.into(), CONTROLLER_NAME.into());
    labels
}

/// The ownerReference of the Service's slices: the Service, as their controller.
pub fn controller_ref(svc: &Service) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Service".into(),
        name: svc.metadata.name.clone().unwrap_or_default(),
        uid: svc.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether the slice belongs to this very Service (not to an earlier one of the same name).
pub fn owned_by(slice: &EndpointSlice, svc: &Service) -> bool {
    let uid = svc.metadata.uid.as_deref().unwrap_or_default();
    slice
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == uid && o.kind == "Service" && o.api_version == "v1")
}

fn new_slice(svc: &Service, ports: Vec<EndpointPort>, family: Family) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", svc.metadata.name.as_deref().unwrap_or("endpointslice"))),
            namespace: svc.metadata.namespace.clone(),
            labels: Some(desired_labels(svc)),
            owner_references: Some(vec![controller_ref(svc)]),
            ..Default::default()
        },
        address_type: family.address_type().into(),
        endpoints: Vec::new(),
        ports: Some(ports),
    }
}

/// Whether an existing slice is the placeholder this Service would get (upstream compares
/// namespace, labels, owners and content; annotations do not matter).
fn is_placeholder_of(slice: &EndpointSlice, placeholder: &EndpointSlice) -> bool {
    slice.metadata.namespace == placeholder.metadata.namespace
        && slice.metadata.labels.clone().unwrap_or_default() == placeholder.metadata.labels.clone().unwrap_or_default()
        && slice.metadata.owner_references.clone().unwrap_or_default()
            == placeholder.metadata.owner_references.clone().unwrap_or_default()
        && slice.address_type == placeholder.address_type
        && slice.endpoints.is_empty()
        && slice.ports.as_ref().is_none_or(Vec::is_empty)
}

/// Plans the writes for a Service's slices.
///
/// `existing` are the Service's slices managed by this controller and not being deleted; `node`
/// tells whether a node exists (`Some`) and its zone. Pods on a node that does not exist are left
/// out (unless `publishNotReadyAddresses`), and reported in [`Plan::missing_nodes`].
pub fn plan(
    svc: &Service,
    pods: &[Arc<Pod>],
    existing: &[Arc<EndpointSlice>],
    node: impl Fn(&str) -> Option<Option<String>>,
    trigger_time: Option<Timestamp>,
    max_per_slice: usize,
) -> Plan {
    let families = pods::families(svc);
    let mut plan = Plan::default();
    let mut by_family: BTreeMap<Family, Vec<Arc<EndpointSlice>>> = BTreeMap::new();
    for slice in existing {
        match Family::from_name(&slice.address_type).filter(|f| families.contains(f)) {
            Some(family) => by_family.entry(family).or_default().push(slice.clone()),
            None => plan.delete.push(slice.clone()),
        }
    }
    for family in families {
        let existing = by_family.remove(&family).unwrap_or_default();
        let (mut create, mut update, mut delete) =
            plan_family(svc, pods, existing, family, &node, max_per_slice, &mut plan.missing_nodes);
        reuse_deleted_names(svc, &mut create, &mut update, &mut delete);
        plan.create.append(&mut create);
        plan.update.append(&mut update);
        plan.delete.append(&mut delete);
    }
    if svc.metadata.deletion_timestamp.is_some() {
        // Do not race the garbage collector with new slices of a Service on its way out.
        plan.create.clear();
    }
    for slice in plan.create.iter_mut().chain(plan.update.iter_mut()) {
        let mut annotations = slice.metadata.annotations.take().unwrap_or_default();
        match trigger_time {
            Some(t) => annotations.insert(TRIGGER_TIME.into(), t.to_string()),
            None => annotations.remove(TRIGGER_TIME),
        };
        slice.metadata.annotations = Some(annotations).filter(|a| !a.is_empty());
        slice.metadata.managed_fields = None;
    }
    plan
}

type Writes = (Vec<EndpointSlice>, Vec<EndpointSlice>, Vec<Arc<EndpointSlice>>);

fn plan_family(
    svc: &Service,
    pods: &[Arc<Pod>],
    existing: Vec<Arc<EndpointSlice>>,
    family: Family,
    node: &impl Fn(&str) -> Option<Option<String>>,
    max_per_slice: usize,
    missing_nodes: &mut BTreeSet<String>,
) -> Writes {
    let publish_not_ready = svc.spec.as_ref().and_then(|s| s.publish_not_ready_addresses).unwrap_or(false);
    let mut delete: Vec<Arc<EndpointSlice>> = Vec::new();
    let mut existing_by_ports: BTreeMap<PortsKey, Vec<Arc<EndpointSlice>>> = BTreeMap::new();
    for slice in &existing {
        if owned_by(slice, svc) {
            existing_by_ports.entry(ports_key(slice.ports.as_ref())).or_default().push(slice.clone());
        } else {
            delete.push(slice.clone());
        }
    }

    let mut desired: BTreeMap<PortsKey, (Vec<EndpointPort>, BTreeMap<EndpointKey, Endpoint>)> = BTreeMap::new();
    for pod in pods {
        if !pods::should_be_in_endpoints(pod, true) {
            continue;
        }
        let zone = match pods::node_name(pod) {
            Some(name) => match node(name) {
                Some(zone) => zone,
                None if publish_not_ready => None,
                None => {
                    missing_nodes.insert(name.to_string());
                    continue;
                }
            },
            None if publish_not_ready => None,
            None => continue,
        };
        let endpoint = pod_endpoint(pod, zone, svc, family);
        if endpoint.addresses.is_empty() {
            continue;
        }
        let ports = endpoint_ports(svc, pod);
        let key = ports_key(Some(&ports));
        desired.entry(key).or_insert_with(|| (ports, BTreeMap::new())).1.insert(endpoint_key(&endpoint), endpoint);
    }

    let mut create = Vec::new();
    let mut update = Vec::new();
    for (key, (ports, endpoints)) in desired {
        let slices = existing_by_ports.remove(&key).unwrap_or_default();
        let (mut c, mut u, mut d) = plan_ports(svc, slices, endpoints, ports, family, max_per_slice);
        create.append(&mut c);
        update.append(&mut u);
        delete.append(&mut d);
    }
    // Slices for port sets no pod has any more.
    delete.extend(existing_by_ports.into_values().flatten());

    if existing.len() == delete.len() && create.is_empty() {
        let placeholder = new_slice(svc, Vec::new(), family);
        if delete.len() == 1 && is_placeholder_of(&delete[0], &placeholder) {
            delete.clear();
        } else {
            create.push(placeholder);
        }
    }
    (create, update, delete)
}

/// Upstream's `reconcileByPortMapping`, for the slices of one set of ports.
fn plan_ports(
    svc: &Service,
    mut existing: Vec<Arc<EndpointSlice>>,
    mut desired: BTreeMap<EndpointKey, Endpoint>,
    ports: Vec<EndpointPort>,
    family: Family,
    max_per_slice: usize,
) -> Writes {
    existing.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let labels = desired_labels(svc);
    let mut originals: BTreeMap<String, Arc<EndpointSlice>> = BTreeMap::new();
    let mut changed: BTreeMap<String, EndpointSlice> = BTreeMap::new();
    let mut unchanged: BTreeSet<String> = BTreeSet::new();
    let mut to_delete: BTreeSet<String> = BTreeSet::new();

    // 1. Keep the endpoints still desired (in their new version), drop the others.
    for slice in existing {
        let name = slice.metadata.name.clone().unwrap_or_default();
        let mut kept = Vec::with_capacity(slice.endpoints.len());
        let mut endpoint_changed = false;
        for endpoint in &slice.endpoints {
            if let Some(wanted) = desired.remove(&endpoint_key(endpoint)) {
                endpoint_changed |= !equal_beyond_key(&wanted, endpoint);
                kept.push(wanted);
            }
        }
        let labels_changed = slice.metadata.labels.clone().unwrap_or_default() != labels;
        if endpoint_changed || kept.len() != slice.endpoints.len() {
            if kept.is_empty() {
                to_delete.insert(name.clone());
            } else {
                let mut copy = (*slice).clone();
                copy.endpoints = kept;
                copy.metadata.labels = Some(labels.clone());
                changed.insert(name.clone(), copy);
            }
        } else if labels_changed {
            let mut copy = (*slice).clone();
            copy.metadata.labels = Some(labels.clone());
            changed.insert(name.clone(), copy);
        } else {
            unchanged.insert(name.clone());
        }
        originals.insert(name, slice);
    }

    // 2. Fill the slices that change anyway, fullest first.
    if !desired.is_empty() && !changed.is_empty() {
        let mut names: Vec<String> = changed.keys().cloned().collect();
        names.sort_by_key(|n| Reverse(changed[n].endpoints.len()));
        for name in names {
            let slice = changed.get_mut(&name).expect("listed");
            while slice.endpoints.len() < max_per_slice {
                let Some((_, endpoint)) = desired.pop_first() else { break };
                slice.endpoints.push(endpoint);
            }
        }
    }

    // 3. Put what is left in the unchanged slice it fills best, else in new slices.
    let mut create = Vec::new();
    while !desired.is_empty() {
        let mut fill = None;
        if desired.len() < max_per_slice {
            let room = |name: &String| max_per_slice.checked_sub(desired.len() + originals[name].endpoints.len());
            fill = unchanged.iter().filter_map(|n| room(n).map(|r| (r, n.clone()))).min().map(|(_, n)| n);
        }
        let mut slice = match &fill {
            Some(name) => (*originals[name]).clone(),
            None => new_slice(svc, ports.clone(), family),
        };
        while slice.endpoints.len() < max_per_slice {
            let Some((_, endpoint)) = desired.pop_first() else { break };
            slice.endpoints.push(endpoint);
        }
        match fill {
            Some(name) => {
                unchanged.remove(&name);
                changed.insert(name, slice);
            }
            None => create.push(slice),
        }
    }

    let delete = to_delete.iter().map(|n| originals[n].clone()).collect();
    (create, changed.into_values().collect(), delete)
}

/// Upstream's `finalize`: a slice about to be deleted while another is created (same family,
/// same owner) is updated into the new one instead.
fn reuse_deleted_names(
    svc: &Service,
    create: &mut Vec<EndpointSlice>,
    update: &mut Vec<EndpointSlice>,
    delete: &mut Vec<Arc<EndpointSlice>>,
) {
    let mut i = 0;
    while i < delete.len() && !create.is_empty() {
        let old = &delete[i];
        let reusable = create.last().is_some_and(|c| c.address_type == old.address_type) && owned_by(old, svc);
        if reusable {
            let mut slice = create.pop().expect("not empty");
            slice.metadata.name = old.metadata.name.clone();
            slice.metadata.resource_version = old.metadata.resource_version.clone();
            update.push(slice);
            delete.remove(i);
        } else {
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoints::pods::tests::{service, web_pod};
    use serde_json::json;

    fn svc(spec: serde_json::Value) -> Service {
        service(json!({"metadata": {"name": "web", "namespace": "default", "uid": "svc-uid", "labels": {"team": "a"}},
                       "spec": spec}))
    }

    fn web() -> Service {
        svc(json!({"clusterIP": "10.96.0.5", "ipFamilies": ["IPv4"], "selector": {"app": "web"},
                   "ports": [{"port": 80, "targetPort": 8080}]}))
    }

    fn pods(n: usize) -> Vec<Arc<Pod>> {
        (0..n)
            .map(|i| Arc::new(web_pod(&format!("p{i}"), &format!("10.1.{}.{}", i / 200, i % 200 + 1), json!([]))))
            .collect()
    }

    fn any_node(_: &str) -> Option<Option<String>> {
        Some(None)
    }

    /// What the server makes of the writes: names for created slices, new resourceVersions.
    fn apply(existing: &[Arc<EndpointSlice>], plan: Plan) -> Vec<Arc<EndpointSlice>> {
        let mut by_name: BTreeMap<String, Arc<EndpointSlice>> =
            existing.iter().map(|s| (s.metadata.name.clone().unwrap(), s.clone())).collect();
        for s in &plan.delete {
            by_name.remove(s.metadata.name.as_ref().unwrap());
        }
        for mut s in plan.update {
            s.metadata.resource_version = Some("2".into());
            by_name.insert(s.metadata.name.clone().unwrap(), Arc::new(s));
        }
        for (i, mut s) in plan.create.into_iter().enumerate() {
            let name = format!("{}{i}x{}", s.metadata.generate_name.clone().unwrap(), by_name.len());
            s.metadata.name = Some(name.clone());
            s.metadata.resource_version = Some("1".into());
            by_name.insert(name, Arc::new(s));
        }
        by_name.into_values().collect()
    }

    fn conditions(slices: &[Arc<EndpointSlice>], pod: &str) -> (bool, bool, bool) {
        let e = slices
            .iter()
            .flat_map(|s| s.endpoints.iter())
            .find(|e| e.target_ref.as_ref().unwrap().name.as_deref() == Some(pod))
            .expect("the pod's endpoint");
        let c = e.conditions.as_ref().unwrap();
        (c.ready.unwrap(), c.serving.unwrap(), c.terminating.unwrap())
    }

    #[test]
    fn a_new_service_gets_one_slice_and_then_nothing_to_do() {
        let s = web();
        let p = pods(3);
        let plan = plan(&s, &p, &[], any_node, None, MAX_ENDPOINTS_PER_SLICE);
        assert_eq!((plan.create.len(), plan.update.len(), plan.delete.len()), (1, 0, 0));
        let slice = &plan.create[0];
        assert_eq!(slice.metadata.generate_name.as_deref(), Some("web-"));
        assert_eq!(slice.address_type, "IPv4");
        assert_eq!(slice.endpoints.len(), 3);
        let labels = slice.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[SERVICE_NAME_LABEL], "web");
        assert_eq!(labels[MANAGED_BY_LABEL], CONTROLLER_NAME);
        assert_eq!(labels["team"], "a");
        assert!(!labels.contains_key(pods::HEADLESS_LABEL));
        let owner = &slice.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller, owner.block_owner_deletion),
            ("Service", "svc-uid", Some(true), Some(true))
        );
        let port = &slice.ports.as_ref().unwrap()[0];
        assert_eq!((port.name.as_deref(), port.port, port.protocol.as_deref()), (Some(""), Some(8080), Some("TCP")));
        let e = &slice.endpoints[0];
        assert_eq!(e.node_name.as_deref(), Some("n1"));
        assert_eq!(e.target_ref.as_ref().unwrap().kind.as_deref(), Some("Pod"));

        let existing = apply(&[], plan);
        assert!(plan_is_empty(&s, &p, &existing));
    }

    fn plan_is_empty(s: &Service, p: &[Arc<Pod>], existing: &[Arc<EndpointSlice>]) -> bool {
        plan(s, p, existing, any_node, None, MAX_ENDPOINTS_PER_SLICE).is_empty()
    }

    #[test]
    fn readiness_and_termination_update_the_slice_in_place() {
        let s = web();
        let mut p = pods(3);
        let existing = apply(&[], plan(&s, &p, &[], any_node, None, MAX_ENDPOINTS_PER_SLICE));
        let name = existing[0].metadata.name.clone();

        let mut not_ready = (*p[1]).clone();
        not_ready.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].status = "False".into();
        p[1] = Arc::new(not_ready);
        let mut leaving = (*p[2]).clone();
        leaving.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now()));
        p[2] = Arc::new(leaving);
        let t: Timestamp = "2024-05-01T10:00:00Z".parse().unwrap();
        let next = plan(&s, &p, &existing, any_node, Some(t), MAX_ENDPOINTS_PER_SLICE);
        assert_eq!((next.create.len(), next.update.len(), next.delete.len()), (0, 1, 0));
        assert_eq!(next.update[0].metadata.name, name);
        assert_eq!(next.update[0].metadata.resource_version.as_deref(), Some("1"));
        assert_eq!(next.update[0].metadata.annotations.as_ref().unwrap()[TRIGGER_TIME], "2024-05-01T10:00:00Z");
        let existing = apply(&existing, next);
        assert_eq!(conditions(&existing, "p0"), (true, true, false));
        assert_eq!(conditions(&existing, "p1"), (false, false, false));
        assert_eq!(conditions(&existing, "p2"), (false, true, true));
        assert!(plan_is_empty(&s, &p, &existing));

        // publishNotReadyAddresses: ready regardless.
        let mut publish = s.clone();
        publish.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
        let existing = apply(&existing, plan(&publish, &p, &existing, any_node, None, MAX_ENDPOINTS_PER_SLICE));
        assert_eq!(conditions(&existing, "p1"), (true, false, false));
        assert_eq!(conditions(&existing, "p2"), (true, true, true));
    }

    #[test]
    fn pods_that_resolve_a_named_port_differently_get_separate_slices() {
        let s = svc(json!({"clusterIP": "10.96.0.5", "selector": {"app": "web"},
                           "ports": [{"name": "http", "port": 80, "targetPort": "web"}]}));
        let p = vec![
            Arc::new(web_pod("a", "10.0.0.1", json!([{"name": "web", "containerPort": 8080}]))),
            Arc::new(web_pod("b", "10.0.0.2", json!([{"name": "web", "containerPort": 9090}]))),
        ];
        let plan = plan(&s, &p, &[], any_node, None, MAX_ENDPOINTS_PER_SLICE);
        assert_eq!(plan.create.len(), 2);
        let mut got: Vec<(i32, usize)> =
            plan.create.iter().map(|s| (s.ports.as_ref().unwrap()[0].port.unwrap(), s.endpoints.len())).collect();
        got.sort();
        assert_eq!(got, vec![(8080, 1), (9090, 1)]);
    }

    #[test]
    fn more_than_a_slice_full() {
        let s = web();
        let p = pods(150);
        let existing = apply(&[], plan(&s, &p, &[], any_node, None, MAX_ENDPOINTS_PER_SLICE));
        let mut sizes: Vec<usize> = existing.iter().map(|s| s.endpoints.len()).collect();
        sizes.sort();
        assert_eq!(sizes, vec![50, 100]);
        assert!(plan_is_empty(&s, &p, &existing));

        // One more pod goes into the slice with room, which is the only write.
        let more = pods(151);
        let next = plan(&s, &more, &existing, any_node, None, MAX_ENDPOINTS_PER_SLICE);
        assert_eq!((next.create.len(), next.update.len(), next.delete.len()), (0, 1, 0));
        assert_eq!(next.update[0].endpoints.len(), 51);

        // Pods gone from the full slice: it is updated, the other one untouched.
        let full = existing.iter().find(|s| s.endpoints.len() == 100).unwrap();
        let gone: BTreeSet<String> =
            full.endpoints.iter().take(10).map(|e| e.target_ref.as_ref().unwrap().name.clone().unwrap()).collect();
        let fewer: Vec<Arc<Pod>> =
            p.iter().filter(|p| !gone.contains(p.metadata.name.as_ref().unwrap())).cloned().collect();
        let next = plan(&s, &fewer, &existing, any_node, None, MAX_ENDPOINTS_PER_SLICE);
        assert_eq!((next.create.len(), next.update.len(), next.delete.len()), (0, 1, 0));
        assert_eq!(next.update[0].endpoints.len(), 90);
    }

    #[test]
    fn a_service_without_endpoints_keeps_a_placeholder() {
        let s = web();
        let first = plan(&s, &[], &[], any_node, None, MAX_ENDPOINTS_PER_SLICE);
        assert_eq!(first.create.len(), 1);
        assert!(first.create[0].endpoints.is_empty());
        assert!(first.create[0].ports.as_ref().unwrap().is_empty());
        let existing = apply(&[], first);
        assert!(plan_is_empty(&s, &[], &existing));

        // Pods arrive: the placeholder is reused.
        let name = existing[0].metadata.name.clone();
        let next = plan(&s, &pods(2), &existing, any_node, None, MAX_ENDPOINTS_PER_SLICE);
        assert_eq!((next.create.len(), next.update.len(), next.delete.len()), (0, 1, 0));
        assert_eq!(next.update[0].metadata.name, name);
        assert_eq!(next.update[0].endpoints.len(), 2);
        let existing = apply(&existing, next);

        // ... and they leave: back to a placeholder under the same name.
        let next = plan(&s, &[], &existing, any_node, None, MAX_ENDPOINTS_PER_SLICE);
        assert_eq!((next.create.len(), next.update.len(), next.delete.len()), (0, 1, 0));
        assert_eq!(next.update[0].metadata.name, name);
        assert!(next.update[0].endpoints.is_empty());
    }

    #[test]
    fn slices_of_another_owner_or_family_are_deleted() {
        let s = web();
        let p = pods(2);
        let existing = apply(&[], plan(&s, &p, &[], any_node, None, MAX_ENDPOINTS_PER_SLICE));
        let mut old_owner = (*existing[0]).clone();
        old_owner.metadata.name = Some("web-old".into());
        old_owner.metadata.owner_references.as_mut().unwrap()[0].uid = "earlier".into();
        let mut v6 = (*existing[0]).clone();
        v6.metadata.name = Some("web-v6".into());
        v6.address_type = "IPv6".into();
        let all = vec![existing[0].clone(), Arc::new(old_owner), Arc::new(v6)];
        let next = plan(&s, &p, &all, any_node, None, MAX_ENDPOINTS_PER_SLICE);
        assert!(next.create.is_empty() && next.update.is_empty());
        let mut deleted: Vec<&str> = next.delete.iter().map(|s| s.metadata.name.as_deref().unwrap()).collect();
        deleted.sort();
        assert_eq!(deleted, vec!["web-old", "web-v6"]);
    }

    #[test]
    fn pods_on_unknown_nodes_wait_for_them() {
        let s = web();
        let p = pods(2);
        let nowhere = |_: &str| None;
        let next = plan(&s, &p, &[], nowhere, None, MAX_ENDPOINTS_PER_SLICE);
        assert_eq!(next.missing_nodes.iter().collect::<Vec<_>>(), vec!["n1"]);
        assert!(next.create[0].endpoints.is_empty(), "a placeholder");
        let zoned = |_: &str| Some(Some("zone-a".to_string()));
        let next = plan(&s, &p, &[], zoned, None, MAX_ENDPOINTS_PER_SLICE);
        assert_eq!(next.create[0].endpoints[0].zone.as_deref(), Some("zone-a"));
        let mut publish = s.clone();
        publish.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
        let next = plan(&publish, &p, &[], nowhere, None, MAX_ENDPOINTS_PER_SLICE);
        assert_eq!(next.create[0].endpoints.len(), 2);
    }

    #[test]
    fn headless_services_and_service_labels() {
        let s = svc(json!({"clusterIP": "None", "ipFamilies": ["IPv4"], "selector": {"app": "web"}}));
        let existing = apply(&[], plan(&s, &pods(1), &[], any_node, None, MAX_ENDPOINTS_PER_SLICE));
        assert_eq!(existing.len(), 1);
        assert_eq!(existing[0].metadata.labels.as_ref().unwrap()[pods::HEADLESS_LABEL], "");
        assert!(existing[0].ports.as_ref().unwrap().is_empty());
        assert_eq!(existing[0].endpoints.len(), 1);
        let mut relabelled = s.clone();
        relabelled.metadata.labels = Some([("team".to_string(), "b".to_string())].into());
        let next = plan(&relabelled, &pods(1), &existing, any_node, None, MAX_ENDPOINTS_PER_SLICE);
        assert_eq!((next.create.len(), next.update.len(), next.delete.len()), (0, 1, 0));
        assert_eq!(next.update[0].metadata.labels.as_ref().unwrap()["team"], "b");
    }

    #[test]
    fn a_service_being_deleted_gets_no_new_slices() {
        let mut s = web();
        s.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now()));
        assert!(plan(&s, &pods(3), &[], any_node, None, MAX_ENDPOINTS_PER_SLICE).create.is_empty());
    }
}
