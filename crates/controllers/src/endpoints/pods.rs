//! What both controllers read from Pods and Services: whether a Service gets endpoints at all,
//! its address families, a pod's readiness, addresses, hostname and the container port a service
//! port resolves to. Pure functions over the k8s-openapi types, as upstream's `endpointsliceutil`
//! and `podutil` helpers.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

/// The label both Endpoints and EndpointSlices of a headless Service carry (empty value).
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// An IP family, and the EndpointSlice `addressType` that carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// The family of an address, if it is one.
    pub fn of(ip: &str) -> Option<Family> {
        match ip.trim().parse::<IpAddr>().ok()? {
            IpAddr::V4(_) => Some(Family::V4),
            IpAddr::V6(_) => Some(Family::V6),
        }
    }

    /// The EndpointSlice `addressType` of this family.
    pub fn address_type(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    /// The family an EndpointSlice `addressType` or a Service `ipFamilies` entry names.
    pub fn from_name(name: &str) -> Option<Family> {
        match name {
            "IPv4" => Some(Family::V4),
            "IPv6" => Some(Family::V6),
            _ => None,
        }
    }
}

/// The Service's `spec.selector` when it has one. A missing or empty selector selects no pods:
/// such a Service's endpoints are managed by hand.
pub fn selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    svc.spec.as_ref()?.selector.as_ref().filter(|s| !s.is_empty())
}

/// Whether these controllers maintain the Service's Endpoints and EndpointSlices: it has a
/// selector and is not of type ExternalName.
pub fn manages(svc: &Service) -> bool {
    let external = svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ExternalName");
    !external && selector(svc).is_some()
}

fn cluster_ip(svc: &Service) -> &str {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()).unwrap_or("")
}

/// Whether the Service has a cluster IP (upstream's `IsServiceIPSet`): not headless, not unset.
pub fn is_ip_set(svc: &Service) -> bool {
    let ip = cluster_ip(svc);
    !ip.is_empty() && ip != "None"
}

/// Whether the Service is explicitly headless (`clusterIP: None`), which allows it no ports.
pub fn is_headless(svc: &Service) -> bool {
    cluster_ip(svc) == "None"
}

/// The Service's ports (none when it has no spec).
pub fn ports(svc: &Service) -> &[ServicePort] {
    svc.spec.as_ref().and_then(|s| s.ports.as_deref()).unwrap_or(&[])
}

/// Whether a headless service without ports: its endpoints carry addresses but no ports.
pub fn portless_headless(svc: &Service) -> bool {
    ports(svc).is_empty() && is_headless(svc)
}

/// The address families the Service's EndpointSlices carry: its `ipFamilies`; else the family
/// of its cluster IP; else (a headless Service of an old API server) both.
pub fn families(svc: &Service) -> Vec<Family> {
    let mut families: Vec<Family> = svc
        .spec
        .as_ref()
        .and_then(|s| s.ip_families.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|f| Family::from_name(f))
        .collect();
    families.dedup();
    if !families.is_empty() {
        return families;
    }
    if is_ip_set(svc) {
        return vec![Family::of(cluster_ip(svc)).unwrap_or(Family::V4)];
    }
    vec![Family::V4, Family::V6]
}

/// The family of the single address an Endpoints object lists per pod: the Service's first
/// `ipFamilies` entry; else the family of its cluster IP; else (headless) that of the pod's IP.
pub fn endpoints_family(svc: &Service, pod: &Pod) -> Family {
    if let Some(first) = svc
        .spec
        .as_ref()
        .and_then(|s| s.ip_families.as_ref())
        .and_then(|f| f.first())
        .and_then(|f| Family::from_name(f))
    {
        return first;
    }
    if is_ip_set(svc) {
        return Family::of(cluster_ip(svc)).unwrap_or(Family::V4);
    }
    pod_ips(pod).first().and_then(|ip| Family::of(ip)).unwrap_or(Family::V4)
}

/// The pod's IPs: `status.podIPs`, or `status.podIP` when the list is empty.
pub fn pod_ips(pod: &Pod) -> Vec<&str> {
    let Some(status) = pod.status.as_ref() else {
        return Vec::new();
    };
    let ips: Vec<&str> = status.pod_ips.iter().flatten().map(|p| p.ip.as_str()).filter(|ip| !ip.is_empty()).collect();
    if !ips.is_empty() {
        return ips;
    }
    status.pod_ip.as_deref().filter(|ip| !ip.is_empty()).into_iter().collect()
}

/// The pod's addresses of one family, in canonical text form.
pub fn ips_of(pod: &Pod, family: Family) -> Vec<String> {
    pod_ips(pod)
        .into_iter()
        .filter_map(|ip| ip.trim().parse::<IpAddr>().ok())
        .filter(|ip| Family::of(&ip.to_string()) == Some(family))
        .map(|ip| ip.to_string())
        .collect()
}

/// Whether the pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

fn ready_condition(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")
}

/// When the pod's Ready condition last changed: the pod's trigger time for the
/// `last-change-trigger-time` annotation.
pub fn ready_transition(pod: &Pod) -> Option<Timestamp> {
    ready_condition(pod)?.last_transition_time.as_ref().map(|t| t.0)
}

/// Whether the pod is being deleted (`metadata.deletionTimestamp` set).
pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Whether the pod has finished for good (phase Succeeded or Failed).
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

/// Upstream's `ShouldPodBeInEndpoints`: not terminal, has an IP, and — unless terminating pods are
/// included — not being deleted.
pub fn should_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    !is_terminal(pod) && !pod_ips(pod).is_empty() && (include_terminating || !is_terminating(pod))
}

/// The hostname an endpoint gets: the pod's `spec.hostname` when its `spec.subdomain` names this
/// Service (in the same namespace).
pub fn hostname_for(pod: &Pod, svc: &Service) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let hostname = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    let same_namespace = pod.metadata.namespace == svc.metadata.namespace;
    (same_namespace && spec.subdomain.as_deref() == svc.metadata.name.as_deref()).then(|| hostname.to_string())
}

/// The protocol of a port, defaulted to TCP.
pub fn protocol(protocol: Option<&String>) -> &str {
    protocol.map(String::as_str).filter(|p| !p.is_empty()).unwrap_or("TCP")
}

/// Upstream's `FindPort`: the container port a service port's `targetPort` means for this pod. A
/// number is itself (unset: the service port); a name is looked up among the ports of the pod's
/// containers, then of its sidecars (init containers with `restartPolicy: Always`), with the
/// same protocol. `None` when the pod has no such named port.
pub fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(0)) => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) if name.is_empty() => Some(port.port),
        Some(IntOrString::String(name)) => {
            let spec = pod.spec.as_ref()?;
            let wanted = protocol(port.protocol.as_ref());
            let sidecars =
                spec.init_containers.iter().flatten().filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers
                .iter()
                .chain(sidecars)
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| p.name.as_deref() == Some(name.as_str()) && protocol(p.protocol.as_ref()) == wanted)
                .map(|p| p.container_port)
        }
    }
}

/// The pod's node, if it is bound to one.
pub fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.node_name.as_deref().filter(|n| !n.is_empty())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).expect("a Pod")
    }

    pub fn service(value: serde_json::Value) -> Service {
        serde_json::from_value(value).expect("a Service")
    }

    /// A ready pod `name` with labels app=web, IP `ip` on node n1, container ports.
    pub fn web_pod(name: &str, ip: &str, ports: serde_json::Value) -> Pod {
        pod(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x", "ports": ports}]},
            "status": {"podIP": ip, "podIPs": [{"ip": ip}],
                       "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z"}]},
        }))
    }

    #[test]
    fn selectors_and_management() {
        let with = service(json!({"metadata": {"name": "s"}, "spec": {"selector": {"app": "web"}}}));
        let empty = service(json!({"metadata": {"name": "s"}, "spec": {"selector": {}}}));
        let none = service(json!({"metadata": {"name": "s"}, "spec": {}}));
        let external =
            service(json!({"metadata": {"name": "s"}, "spec": {"type": "ExternalName", "selector": {"app": "web"}}}));
        assert!(manages(&with));
        assert!(!manages(&empty));
        assert!(!manages(&none));
        assert!(!manages(&external));
    }

    #[test]
    fn families_of_services() {
        let v4 = service(json!({"spec": {"clusterIP": "10.96.0.10", "ipFamilies": ["IPv4"]}}));
        assert_eq!(families(&v4), vec![Family::V4]);
        let dual = service(json!({"spec": {"clusterIP": "None", "ipFamilies": ["IPv6", "IPv4"]}}));
        assert_eq!(families(&dual), vec![Family::V6, Family::V4]);
        let old = service(json!({"spec": {"clusterIP": "fd00::1"}}));
        assert_eq!(families(&old), vec![Family::V6]);
        let headless = service(json!({"spec": {"clusterIP": "None"}}));
        assert_eq!(families(&headless), vec![Family::V4, Family::V6]);
        assert!(is_headless(&headless) && !is_ip_set(&headless));
        let p = web_pod("a", "fd00::5", json!([]));
        assert_eq!(endpoints_family(&headless, &p), Family::V6);
        assert_eq!(endpoints_family(&v4, &p), Family::V4);
    }

    #[test]
    fn addresses_readiness_and_inclusion() {
        let mut p = web_pod("a", "10.0.0.1", json!([]));
        assert_eq!(pod_ips(&p), vec!["10.0.0.1"]);
        assert_eq!(ips_of(&p, Family::V4), vec!["10.0.0.1"]);
        assert!(ips_of(&p, Family::V6).is_empty());
        assert!(is_ready(&p));
        assert!(ready_transition(&p).is_some());
        assert!(should_be_in_endpoints(&p, false));
        p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now()));
        assert!(!should_be_in_endpoints(&p, false));
        assert!(should_be_in_endpoints(&p, true));
        p.status.as_mut().unwrap().phase = Some("Succeeded".into());
        assert!(!should_be_in_endpoints(&p, true));
        let no_ip = pod(json!({"metadata": {"name": "b"}, "status": {"podIP": ""}}));
        assert!(!should_be_in_endpoints(&no_ip, true));
        let only_pod_ip = pod(json!({"metadata": {"name": "b"}, "status": {"podIP": "10.0.0.2"}}));
        assert_eq!(pod_ips(&only_pod_ip), vec!["10.0.0.2"]);
        assert!(!is_ready(&only_pod_ip));
    }

    #[test]
    fn ports_resolve_per_pod() {
        let a = web_pod("a", "10.0.0.1", json!([{"name": "web", "containerPort": 8080}]));
        let b = web_pod("b", "10.0.0.2", json!([{"name": "web", "containerPort": 9090, "protocol": "TCP"}]));
        let named: ServicePort = serde_json::from_value(json!({"port": 80, "targetPort": "web"})).unwrap();
        assert_eq!(find_port(&a, &named), Some(8080));
        assert_eq!(find_port(&b, &named), Some(9090));
        let udp: ServicePort =
            serde_json::from_value(json!({"port": 80, "targetPort": "web", "protocol": "UDP"})).unwrap();
        assert_eq!(find_port(&a, &udp), None);
        let missing: ServicePort = serde_json::from_value(json!({"port": 80, "targetPort": "nope"})).unwrap();
        assert_eq!(find_port(&a, &missing), None);
        let number: ServicePort = serde_json::from_value(json!({"port": 80, "targetPort": 8443})).unwrap();
        assert_eq!(find_port(&a, &number), Some(8443));
        let unset: ServicePort = serde_json::from_value(json!({"port": 80})).unwrap();
        assert_eq!(find_port(&a, &unset), Some(80));
        let sidecar = pod(json!({"spec": {"containers": [{"name": "c", "image": "x"}],
            "initContainers": [{"name": "s", "image": "x", "restartPolicy": "Always", "ports": [{"name": "web", "containerPort": 7070}]}]}}));
        assert_eq!(find_port(&sidecar, &named), Some(7070));
    }

    #[test]
    fn hostnames_need_the_subdomain() {
        let svc = service(json!({"metadata": {"name": "db", "namespace": "default"}}));
        let mut p = pod(json!({"metadata": {"name": "a", "namespace": "default"},
                               "spec": {"containers": [], "hostname": "db-0", "subdomain": "db"}}));
        assert_eq!(hostname_for(&p, &svc).as_deref(), Some("db-0"));
        p.spec.as_mut().unwrap().subdomain = Some("other".into());
        assert_eq!(hostname_for(&p, &svc), None);
    }
}
