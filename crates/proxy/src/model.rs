//! What the proxy programs, whatever its mode: every port of every proxied Service with its
//! addresses (cluster IPs, node port, external IPs, load-balancer IPs), its policies and its
//! endpoints, built from Services and EndpointSlices as kube-proxy's `ServicePortMap` and
//! `EndpointsMap` are. Pure: the modes render rules from a [`ServicePort`] list.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// A transport protocol of a Service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    fn parse(s: Option<&str>) -> Option<Protocol> {
        match s.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// Lowercase, as nftables and iptables write it (`tcp`).
    pub fn as_lower(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }

    /// As the API writes it (`TCP`).
    pub fn as_upper(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

/// One port of one Service: `namespace/name:port-name` and its protocol, as kube-proxy names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServicePortName {
    pub namespace: String,
    pub name: String,
    /// The port's name ("" for an unnamed single port).
    pub port: String,
    pub protocol: Protocol,
}

impl fmt::Display for ServicePortName {
    /// `ns/name:port` (kube-proxy's `ServicePortName.String()`; `ns/name` for an unnamed port).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.port.is_empty() {
            write!(f, "{}/{}", self.namespace, self.name)
        } else {
            write!(f, "{}/{}:{}", self.namespace, self.name, self.port)
        }
    }
}

/// One endpoint of a Service port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
    pub node_name: Option<String>,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    /// On this node (its nodeName is the proxy's node).
    pub local: bool,
}

impl Endpoint {
    /// `ip:port` (`[ip]:port` for IPv6), as kube-proxy writes it in comments.
    pub fn address(&self) -> String {
        std::net::SocketAddr::new(self.ip, self.port).to_string()
    }
}

/// Everything the proxy needs of one Service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub id: ServicePortName,
    /// The Service's cluster IPs (one per family); empty for none.
    pub cluster_ips: Vec<IpAddr>,
    pub port: u16,
    pub node_port: Option<u16>,
    pub external_ips: Vec<IpAddr>,
    /// `status.loadBalancer.ingress[].ip`.
    pub load_balancer_ips: Vec<IpAddr>,
    pub load_balancer_source_ranges: Vec<IpNet>,
    /// sessionAffinity ClientIP, with its timeout (default 10800 s).
    pub affinity: Option<Duration>,
    /// externalTrafficPolicy Local (for NodePort, external and load-balancer traffic).
    pub external_local: bool,
    /// internalTrafficPolicy Local (for cluster IP traffic).
    pub internal_local: bool,
    pub health_check_node_port: Option<u16>,
    /// All endpoints, sorted, without duplicates.
    pub endpoints: Vec<Endpoint>,
}

/// Kubernetes' default sessionAffinityConfig.clientIP.timeoutSeconds.
pub const DEFAULT_AFFINITY_TIMEOUT: Duration = Duration::from_secs(10800);

impl ServicePort {
    /// A port of a plain ClusterIP Service: one cluster IP, no node port, no external or
    /// load-balancer addresses, no affinity, Cluster traffic policies.
    pub fn cluster_ip(id: ServicePortName, cluster_ip: IpAddr, port: u16, endpoints: Vec<Endpoint>) -> ServicePort {
        ServicePort {
            id,
            cluster_ips: vec![cluster_ip],
            port,
            node_port: None,
            external_ips: vec![],
            load_balancer_ips: vec![],
            load_balancer_source_ranges: vec![],
            affinity: None,
            external_local: false,
            internal_local: false,
            health_check_node_port: None,
            endpoints,
        }
    }

    /// Whether the Service is of a type with node ports or external traffic.
    pub fn has_external(&self) -> bool {
        self.node_port.is_some() || !self.external_ips.is_empty() || !self.load_balancer_ips.is_empty()
    }

    /// The endpoints KEP-1669 allows from a candidate set: the ready ones, or if there are none,
    /// those serving while terminating.
    fn usable<'a>(candidates: impl Iterator<Item = &'a Endpoint> + Clone) -> Vec<&'a Endpoint> {
        let ready: Vec<&Endpoint> = candidates.clone().filter(|e| e.ready).collect();
        if !ready.is_empty() {
            return ready;
        }
        candidates.filter(|e| e.serving && e.terminating).collect()
    }

    /// Endpoints for traffic to the cluster IP (only local ones with internalTrafficPolicy Local).
    pub fn cluster_endpoints(&self) -> Vec<&Endpoint> {
        let local = self.internal_local;
        Self::usable(self.endpoints.iter().filter(move |e| !local || e.local))
    }

    /// Endpoints for external traffic (NodePort, external IPs, load balancer): only local ones
    /// with externalTrafficPolicy Local.
    pub fn external_endpoints(&self) -> Vec<&Endpoint> {
        let local = self.external_local;
        Self::usable(self.endpoints.iter().filter(move |e| !local || e.local))
    }

    /// Local endpoints that may serve: what healthCheckNodePort reports.
    pub fn local_ready_count(&self) -> usize {
        Self::usable(self.endpoints.iter().filter(|e| e.local)).len()
    }
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse().ok()
}

/// Builds the proxied Service ports from Services and EndpointSlices, as seen by the proxy on
/// `node`. Services without a cluster IP (headless) and of type ExternalName are not proxied.
pub fn build<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    node: &str,
) -> Vec<ServicePort> {
    // Endpoints per (namespace, service, port name, protocol).
    type Key = (String, String, String, Protocol);
    let mut endpoints: BTreeMap<Key, Vec<Endpoint>> = BTreeMap::new();
    for slice in slices {
        let ns = slice.metadata.namespace.clone().unwrap_or_default();
        let Some(svc) = slice.metadata.labels.as_ref().and_then(|l| l.get("kubernetes.io/service-name")) else {
            continue;
        };
        if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
            continue;
        }
        for p in slice.ports.iter().flatten() {
            let (Some(port), Some(proto)) = (p.port, Protocol::parse(p.protocol.as_deref())) else { continue };
            let Ok(port) = u16::try_from(port) else { continue };
            let key = (ns.clone(), svc.clone(), p.name.clone().unwrap_or_default(), proto);
            for ep in &slice.endpoints {
                let cond = ep.conditions.as_ref();
                let ready = cond.and_then(|c| c.ready).unwrap_or(true);
                let serving = cond.and_then(|c| c.serving).unwrap_or(ready);
                let terminating = cond.and_then(|c| c.terminating).unwrap_or(false);
                for addr in ep.addresses.iter().filter_map(|a| parse_ip(a)) {
                    endpoints.entry(key.clone()).or_default().push(Endpoint {
                        ip: addr,
                        port,
                        node_name: ep.node_name.clone(),
                        ready,
                        serving,
                        terminating,
                        local: ep.node_name.as_deref() == Some(node),
                    });
                }
            }
        }
    }
    let mut out = Vec::new();
    for svc in services {
        let Some(spec) = &svc.spec else { continue };
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        let mut cluster_ips: Vec<IpAddr> = spec.cluster_ips.iter().flatten().filter_map(|s| parse_ip(s)).collect();
        if cluster_ips.is_empty() {
            cluster_ips.extend(spec.cluster_ip.as_deref().and_then(parse_ip));
        }
        if cluster_ips.is_empty() {
            continue; // headless (clusterIP None) or not allocated yet
        }
        let ns = svc.metadata.namespace.clone().unwrap_or_default();
        let name = svc.metadata.name.clone().unwrap_or_default();
        let external_ips: Vec<IpAddr> = spec.external_ips.iter().flatten().filter_map(|s| parse_ip(s)).collect();
        let load_balancer_ips: Vec<IpAddr> = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|i| i.ip.as_deref().and_then(parse_ip))
            .collect();
        let ranges: Vec<IpNet> =
            spec.load_balancer_source_ranges.iter().flatten().filter_map(|r| r.trim().parse().ok()).collect();
        let affinity = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .map(|t| Duration::from_secs(t.max(0) as u64))
                .unwrap_or(DEFAULT_AFFINITY_TIMEOUT)
        });
        let external_local = spec.external_traffic_policy.as_deref() == Some("Local")
            && matches!(spec.type_.as_deref(), Some("NodePort") | Some("LoadBalancer"));
        let internal_local = spec.internal_traffic_policy.as_deref() == Some("Local");
        for p in spec.ports.iter().flatten() {
            let Some(protocol) = Protocol::parse(p.protocol.as_deref()) else { continue };
            let Ok(port) = u16::try_from(p.port) else { continue };
            let port_name = p.name.clone().unwrap_or_default();
            let key = (ns.clone(), name.clone(), port_name.clone(), protocol);
            let mut eps = endpoints.get(&key).cloned().unwrap_or_default();
            eps.sort();
            eps.dedup_by(|a, b| a.ip == b.ip && a.port == b.port);
            let node_port = p.node_port.and_then(|n| u16::try_from(n).ok()).filter(|n| *n > 0);
            out.push(ServicePort {
                id: ServicePortName { namespace: ns.clone(), name: name.clone(), port: port_name, protocol },
                cluster_ips: cluster_ips.clone(),
                port,
                node_port,
                external_ips: external_ips.clone(),
                load_balancer_ips: load_balancer_ips.clone(),
                load_balancer_source_ranges: ranges.clone(),
                affinity,
                external_local,
                internal_local,
                health_check_node_port: spec
                    .health_check_node_port
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|n| *n > 0 && external_local),
                endpoints: eps,
            });
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(v: serde_json::Value) -> Service {
        serde_json::from_value(v).unwrap()
    }

    fn slice(v: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(v).unwrap()
    }

    fn fixture() -> (Vec<Service>, Vec<EndpointSlice>) {
        let services = vec![
            svc(json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"type": "NodePort",
                "clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"], "externalTrafficPolicy": "Local",
                "healthCheckNodePort": 32000, "sessionAffinity": "ClientIP",
                "ports": [{"name": "http", "port": 80, "targetPort": "web8080", "nodePort": 31080},
                          {"name": "dns", "port": 53, "protocol": "UDP"}]}})),
            svc(json!({"metadata": {"name": "headless", "namespace": "default"}, "spec": {"clusterIP": "None",
                "ports": [{"port": 80}]}})),
            svc(json!({"metadata": {"name": "ext", "namespace": "default"}, "spec": {"type": "ExternalName",
                "externalName": "example.com"}})),
        ];
        let slices = vec![slice(json!({"metadata": {"name": "web-abc", "namespace": "default",
        "labels": {"kubernetes.io/service-name": "web"}}, "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": ["10.244.1.5"], "nodeName": "node1", "conditions": {"ready": true}},
            {"addresses": ["10.244.2.5"], "nodeName": "node2", "conditions": {"ready": false, "serving": true, "terminating": true}},
            {"addresses": ["10.244.2.6"], "nodeName": "node2", "conditions": {"ready": true}}
        ]}))];
        (services, slices)
    }

    #[test]
    fn builds_ports_with_their_endpoints_and_policies() {
        let (services, slices) = fixture();
        let ports = build(&services, &slices, "node2");
        assert_eq!(ports.len(), 2, "headless and ExternalName services are not proxied");
        let http = ports.iter().find(|p| p.id.port == "http").unwrap();
        assert_eq!(http.id.to_string(), "default/web:http");
        assert_eq!(http.node_port, Some(31080));
        assert_eq!(http.affinity, Some(DEFAULT_AFFINITY_TIMEOUT));
        assert_eq!(http.health_check_node_port, Some(32000));
        assert_eq!(http.endpoints.len(), 3);
        assert!(http.endpoints.iter().all(|e| e.port == 8080));
        let cluster: Vec<String> = http.cluster_endpoints().iter().map(|e| e.address()).collect();
        assert_eq!(cluster, ["10.244.1.5:8080", "10.244.2.6:8080"]);
        let external: Vec<String> = http.external_endpoints().iter().map(|e| e.address()).collect();
        assert_eq!(external, ["10.244.2.6:8080"], "externalTrafficPolicy Local keeps the local ones");
        let dns = ports.iter().find(|p| p.id.port == "dns").unwrap();
        assert!(dns.endpoints.is_empty());
    }

    #[test]
    fn terminating_endpoints_only_when_no_ready_one() {
        let (services, mut slices) = fixture();
        for e in &mut slices[0].endpoints {
            if e.node_name.as_deref() == Some("node1") || e.addresses[0] == "10.244.2.6" {
                e.conditions.as_mut().unwrap().ready = Some(false);
            }
        }
        let ports = build(&services, &slices, "node2");
        let http = ports.iter().find(|p| p.id.port == "http").unwrap();
        let cluster: Vec<String> = http.cluster_endpoints().iter().map(|e| e.address()).collect();
        assert_eq!(cluster, ["10.244.2.5:8080"]);
        assert_eq!(http.local_ready_count(), 1);
    }
}
