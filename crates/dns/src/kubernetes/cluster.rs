//! A snapshot of what cluster DNS needs from the API — services, endpoint slices, pods and
//! namespaces as plain structs — with the indexes queries use (by name, by address). A snapshot
//! never changes: the watcher builds a new one on every change (re-indexing only the kinds that
//! changed) and swaps it in.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

/// A port of a Service or of an EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    /// Empty for an unnamed port.
    pub name: String,
    /// `TCP`, `UDP` or `SCTP`, as the API writes it.
    pub protocol: String,
    /// -1 when the object declares no port (the name then answers A/AAAA, never SRV).
    pub port: i32,
}

impl PortInfo {
    pub fn new(name: &str, protocol: &str, port: i32) -> Self {
        PortInfo { name: name.to_string(), protocol: protocol.to_string(), port }
    }

    /// The stand-in for "no ports declared".
    pub fn none() -> Self {
        PortInfo { name: String::new(), protocol: String::new(), port: -1 }
    }
}

/// What kind of records a Service gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceKind {
    /// ClusterIP, NodePort and LoadBalancer services: one record per cluster IP.
    ClusterIp(Vec<IpAddr>),
    /// `clusterIP: None`: one record per ready endpoint.
    Headless,
    /// `type: ExternalName`: a CNAME to this name.
    ExternalName(String),
}

/// A Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    pub namespace: String,
    pub name: String,
    pub kind: ServiceKind,
    /// Never empty: a service without ports has [`PortInfo::none`].
    pub ports: Vec<PortInfo>,
}

/// One endpoint of an EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointInfo {
    pub addresses: Vec<IpAddr>,
    pub hostname: Option<String>,
    /// The pod's name (from `targetRef`), for `endpoint_pod_names`.
    pub target_name: Option<String>,
    pub node_name: Option<String>,
    /// `conditions.ready`, unknown counting as ready.
    pub ready: bool,
}

/// An EndpointSlice of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSliceInfo {
    pub namespace: String,
    /// The slice's own name.
    pub name: String,
    /// The Service it belongs to (label `kubernetes.io/service-name`).
    pub service: String,
    /// Never empty: a slice without ports has [`PortInfo::none`].
    pub ports: Vec<PortInfo>,
    pub endpoints: Vec<EndpointInfo>,
}

/// A Pod (only its addresses matter, for `pods verified`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub ips: Vec<IpAddr>,
}

/// Services sorted by namespace and name, and where each cluster IP is.
#[derive(Debug, Default)]
struct Services {
    by_name: Vec<Arc<ServiceInfo>>,
    /// Indexes into `by_name`.
    by_ip: HashMap<IpAddr, Vec<u32>>,
}

/// Endpoint slices sorted by namespace, service and name, and where each ready address is.
#[derive(Debug, Default)]
struct Slices {
    by_service: Vec<Arc<EndpointSliceInfo>>,
    /// Indexes into `by_service` of the slices with a ready endpoint at an address.
    by_ip: HashMap<IpAddr, Vec<u32>>,
}

#[derive(Debug, Default)]
struct Pods {
    by_ip: HashMap<IpAddr, Vec<Arc<PodInfo>>>,
}

/// An immutable, indexed snapshot of the cluster. Each kind is indexed apart and shared between
/// snapshots, so a change to one kind (endpoints, typically) rebuilds that kind only; the objects
/// themselves are shared with whoever keeps them (the watcher), never copied.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    services: Arc<Services>,
    slices: Arc<Slices>,
    pods: Arc<Pods>,
    namespaces: Arc<BTreeSet<String>>,
    serial: u32,
}

impl Cluster {
    /// A snapshot of these objects. `serial` is the SOA serial answered (CoreDNS uses the time of
    /// the last change, in Unix seconds).
    pub fn new(
        services: impl IntoIterator<Item = ServiceInfo>,
        slices: impl IntoIterator<Item = EndpointSliceInfo>,
        pods: impl IntoIterator<Item = PodInfo>,
        namespaces: impl IntoIterator<Item = String>,
        serial: u32,
    ) -> Cluster {
        Cluster::default()
            .with_services(services.into_iter().map(Arc::new), serial)
            .with_slices(slices.into_iter().map(Arc::new), serial)
            .with_pods(pods.into_iter().map(Arc::new), serial)
            .with_namespaces(namespaces, serial)
    }

    /// This snapshot with other services (one per namespace and name).
    pub fn with_services(&self, services: impl IntoIterator<Item = Arc<ServiceInfo>>, serial: u32) -> Cluster {
        let mut by_name: Vec<Arc<ServiceInfo>> = services.into_iter().collect();
        by_name.sort_unstable_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        by_name.dedup_by(|a, b| (&a.namespace, &a.name) == (&b.namespace, &b.name));
        let mut by_ip: HashMap<IpAddr, Vec<u32>> = HashMap::new();
        for (i, s) in by_name.iter().enumerate() {
            if let ServiceKind::ClusterIp(ips) = &s.kind {
                for ip in ips {
                    by_ip.entry(*ip).or_default().push(i as u32);
                }
            }
        }
        by_name.shrink_to_fit();
        Cluster { services: Arc::new(Services { by_name, by_ip }), serial, ..self.clone() }
    }

    /// This snapshot with other endpoint slices.
    pub fn with_slices(&self, slices: impl IntoIterator<Item = Arc<EndpointSliceInfo>>, serial: u32) -> Cluster {
        let mut by_service: Vec<Arc<EndpointSliceInfo>> = slices.into_iter().collect();
        by_service
            .sort_unstable_by(|a, b| (&a.namespace, &a.service, &a.name).cmp(&(&b.namespace, &b.service, &b.name)));
        let mut by_ip: HashMap<IpAddr, Vec<u32>> = HashMap::new();
        for (i, s) in by_service.iter().enumerate() {
            for a in s.endpoints.iter().filter(|e| e.ready).flat_map(|e| &e.addresses) {
                let entry = by_ip.entry(*a).or_default();
                if entry.last() != Some(&(i as u32)) {
                    entry.push(i as u32);
                }
            }
        }
        by_service.shrink_to_fit();
        Cluster { slices: Arc::new(Slices { by_service, by_ip }), serial, ..self.clone() }
    }

    /// This snapshot with other pods.
    pub fn with_pods(&self, pods: impl IntoIterator<Item = Arc<PodInfo>>, serial: u32) -> Cluster {
        let mut idx = Pods::default();
        for p in pods {
            for ip in &p.ips {
                idx.by_ip.entry(*ip).or_default().push(p.clone());
            }
        }
        Cluster { pods: Arc::new(idx), serial, ..self.clone() }
    }

    /// This snapshot with other namespaces.
    pub fn with_namespaces(&self, namespaces: impl IntoIterator<Item = String>, serial: u32) -> Cluster {
        Cluster { namespaces: Arc::new(namespaces.into_iter().collect()), serial, ..self.clone() }
    }

    /// The SOA serial.
    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// Whether the namespace exists.
    pub fn has_namespace(&self, ns: &str) -> bool {
        self.namespaces.contains(ns)
    }

    /// The service `ns/name`.
    pub fn service(&self, ns: &str, name: &str) -> Option<&ServiceInfo> {
        let all = &self.services.by_name;
        let at = all.binary_search_by(|s| (s.namespace.as_str(), s.name.as_str()).cmp(&(ns, name))).ok()?;
        Some(&all[at])
    }

    /// All services, ordered by namespace and name.
    pub fn services(&self) -> impl Iterator<Item = &ServiceInfo> {
        self.services.by_name.iter().map(|s| &**s)
    }

    /// The endpoint slices of the service `ns/name`.
    pub fn slices(&self, ns: &str, service: &str) -> impl Iterator<Item = &EndpointSliceInfo> {
        let all = &self.slices.by_service;
        let key = |s: &EndpointSliceInfo| (s.namespace.as_str(), s.service.as_str()).cmp(&(ns, service));
        let start = all.partition_point(|s| key(s).is_lt());
        let end = start + all[start..].partition_point(|s| key(s).is_eq());
        all[start..end].iter().map(|s| &**s)
    }

    /// The services having `ip` as a cluster IP.
    pub fn services_by_ip(&self, ip: IpAddr) -> impl Iterator<Item = &ServiceInfo> {
        let all = &self.services.by_name;
        self.services.by_ip.get(&ip).into_iter().flatten().map(|i| &*all[*i as usize])
    }

    /// The endpoint slices with a ready endpoint at `ip`.
    pub fn slices_by_ip(&self, ip: IpAddr) -> impl Iterator<Item = &EndpointSliceInfo> {
        let all = &self.slices.by_service;
        self.slices.by_ip.get(&ip).into_iter().flatten().map(|i| &*all[*i as usize])
    }

    /// The pods having `ip`.
    pub fn pods_by_ip(&self, ip: IpAddr) -> impl Iterator<Item = &PodInfo> {
        self.pods.by_ip.get(&ip).into_iter().flatten().map(|p| &**p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let svc = ServiceInfo {
            namespace: "default".into(),
            name: "web".into(),
            kind: ServiceKind::ClusterIp(vec![ip("10.96.0.10"), ip("fd00::10")]),
            ports: vec![PortInfo::new("http", "TCP", 80)],
        };
        let ep = |a: &str, ready| EndpointInfo {
            addresses: vec![ip(a)],
            hostname: None,
            target_name: None,
            node_name: None,
            ready,
        };
        let slice = EndpointSliceInfo {
            namespace: "default".into(),
            name: "web-abc".into(),
            service: "web".into(),
            ports: vec![PortInfo::new("http", "TCP", 8080)],
            endpoints: vec![ep("10.244.0.5", true), ep("10.244.0.6", false)],
        };
        let pod = PodInfo { namespace: "default".into(), name: "p".into(), ips: vec![ip("10.244.0.5")] };
        let c = Cluster::new([svc], [slice], [pod], ["default".to_string()], 7);
        assert_eq!(c.serial(), 7);
        assert!(c.has_namespace("default") && !c.has_namespace("nope"));
        assert_eq!(c.services_by_ip(ip("fd00::10")).next().unwrap().name, "web");
        assert_eq!(c.slices("default", "web").count(), 1);
        assert_eq!(c.slices_by_ip(ip("10.244.0.5")).count(), 1);
        assert_eq!(c.slices_by_ip(ip("10.244.0.6")).count(), 0, "not-ready endpoints are not indexed");
        assert_eq!(c.pods_by_ip(ip("10.244.0.5")).count(), 1);
        // Replacing one kind keeps the others.
        let d = c.with_slices([], 8);
        assert_eq!((d.serial(), d.slices("default", "web").count()), (8, 0));
        assert!(d.service("default", "web").is_some() && d.has_namespace("default"));
        assert!(Arc::ptr_eq(&c.services, &d.services));
    }
}
