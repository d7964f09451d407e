//! From the API's objects (k8s-openapi) to the snapshot's plain structs, keeping what CoreDNS's
//! kubernetes plugin keeps: a Service's cluster IPs (all families), type, external name and
//! ports; an EndpointSlice's ports and endpoints (address, hostname, pod name when shorter than
//! 64 characters, readiness — unknown counts as ready); a Pod's addresses; a Namespace's name.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::cluster::{Cluster, EndpointInfo, EndpointSliceInfo, PodInfo, PortInfo, ServiceInfo, ServiceKind};

/// The label naming an EndpointSlice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A Service as the snapshot keeps it (`None` without a name).
pub fn service(svc: &Service) -> Option<ServiceInfo> {
    let name = svc.metadata.name.clone()?;
    let namespace = svc.metadata.namespace.clone().unwrap_or_else(|| "default".to_string());
    let spec = svc.spec.clone().unwrap_or_default();
    let kind = if spec.type_.as_deref() == Some("ExternalName") {
        ServiceKind::ExternalName(spec.external_name.unwrap_or_default())
    } else {
        let ips: Vec<String> = match spec.cluster_ips {
            Some(ips) if !ips.is_empty() => ips,
            _ => spec.cluster_ip.into_iter().collect(),
        };
        if ips.first().map(String::as_str) == Some("None") {
            ServiceKind::Headless
        } else {
            ServiceKind::ClusterIp(ips.iter().filter_map(|s| s.parse().ok()).collect())
        }
    };
    let mut ports: Vec<PortInfo> = spec
        .ports
        .unwrap_or_default()
        .into_iter()
        .map(|p| PortInfo {
            name: p.name.unwrap_or_default(),
            protocol: p.protocol.unwrap_or_else(|| "TCP".to_string()),
            port: p.port,
        })
        .collect();
    if ports.is_empty() {
        ports.push(PortInfo::none());
    }
    Some(ServiceInfo { namespace, name, kind, ports })
}

/// An EndpointSlice as the snapshot keeps it (`None` without a service label, or for FQDN slices).
pub fn endpoint_slice(slice: &EndpointSlice) -> Option<EndpointSliceInfo> {
    if slice.address_type == "FQDN" {
        return None;
    }
    let service = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?.clone();
    let namespace = slice.metadata.namespace.clone().unwrap_or_else(|| "default".to_string());
    let mut ports: Vec<PortInfo> = slice
        .ports
        .iter()
        .flatten()
        .map(|p| PortInfo {
            name: p.name.clone().unwrap_or_default(),
            protocol: p.protocol.clone().unwrap_or_else(|| "TCP".to_string()),
            port: p.port.unwrap_or(-1),
        })
        .collect();
    if ports.is_empty() {
        ports.push(PortInfo::none());
    }
    let endpoints = slice
        .endpoints
        .iter()
        .map(|e| EndpointInfo {
            addresses: e.addresses.iter().filter_map(|a| a.parse::<IpAddr>().ok()).collect(),
            hostname: e.hostname.clone().filter(|h| !h.is_empty()),
            target_name: e.target_ref.as_ref().and_then(|r| r.name.clone()).filter(|n| !n.is_empty() && n.len() < 64),
            node_name: e.node_name.clone(),
            ready: e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true),
        })
        .collect();
    Some(EndpointSliceInfo {
        namespace,
        name: slice.metadata.name.clone().unwrap_or_default(),
        service,
        ports,
        endpoints,
    })
}

/// A Pod as the snapshot keeps it.
pub fn pod(pod: &Pod) -> Option<PodInfo> {
    let name = pod.metadata.name.clone()?;
    let namespace = pod.metadata.namespace.clone().unwrap_or_else(|| "default".to_string());
    let status = pod.status.as_ref()?;
    let mut ips: Vec<IpAddr> = Vec::new();
    let all = status.pod_ip.iter().chain(status.pod_ips.iter().flatten().map(|p| &p.ip));
    for ip in all.filter_map(|s| s.parse::<IpAddr>().ok()) {
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    Some(PodInfo { namespace, name, ips })
}

/// A snapshot of these API objects.
pub fn cluster<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    pods: impl IntoIterator<Item = &'a Pod>,
    namespaces: impl IntoIterator<Item = &'a Namespace>,
    serial: u32,
) -> Cluster {
    Cluster::new(
        services.into_iter().filter_map(service),
        slices.into_iter().filter_map(endpoint_slice),
        pods.into_iter().filter_map(pod),
        namespaces.into_iter().filter_map(|n| n.metadata.name.clone()),
        serial,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::serde_json::{self, json};

    #[test]
    fn converts_objects() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10", "fd00::10"],
                     "ports": [{"name": "http", "port": 80}, {"port": 53, "protocol": "UDP"}]}
        }))
        .unwrap();
        let s = service(&svc).unwrap();
        assert_eq!(s.kind, ServiceKind::ClusterIp(vec!["10.96.0.10".parse().unwrap(), "fd00::10".parse().unwrap()]));
        assert_eq!(s.ports, vec![PortInfo::new("http", "TCP", 80), PortInfo::new("", "UDP", 53)]);

        let headless: Service = serde_json::from_value(json!({
            "metadata": {"name": "db", "namespace": "ns"}, "spec": {"clusterIP": "None"}
        }))
        .unwrap();
        let h = service(&headless).unwrap();
        assert_eq!(h.kind, ServiceKind::Headless);
        assert_eq!(h.ports, vec![PortInfo::none()]);

        let ext: Service = serde_json::from_value(json!({
            "metadata": {"name": "ext", "namespace": "ns"},
            "spec": {"type": "ExternalName", "externalName": "example.com"}
        }))
        .unwrap();
        assert_eq!(service(&ext).unwrap().kind, ServiceKind::ExternalName("example.com".into()));

        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "db-x", "namespace": "ns", "labels": {"kubernetes.io/service-name": "db"}},
            "addressType": "IPv4",
            "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.244.1.2"], "hostname": "db-0", "conditions": {"ready": true},
                 "targetRef": {"kind": "Pod", "name": "db-0"}},
                {"addresses": ["10.244.1.3"], "conditions": {"ready": false}},
                {"addresses": ["10.244.1.4"]}
            ]
        }))
        .unwrap();
        let e = endpoint_slice(&slice).unwrap();
        assert_eq!(e.service, "db");
        assert_eq!(e.endpoints[0].hostname.as_deref(), Some("db-0"));
        assert_eq!(e.endpoints[0].target_name.as_deref(), Some("db-0"));
        assert!(e.endpoints[0].ready && !e.endpoints[1].ready && e.endpoints[2].ready);

        let unlabelled: EndpointSlice =
            serde_json::from_value(json!({"metadata": {"name": "x"}, "addressType": "IPv4", "endpoints": []})).unwrap();
        assert!(endpoint_slice(&unlabelled).is_none());

        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "status": {"podIP": "10.244.1.2", "podIPs": [{"ip": "10.244.1.2"}, {"ip": "fd00::2"}]}
        }))
        .unwrap();
        assert_eq!(pod(&p).unwrap().ips.len(), 2);
    }
}
