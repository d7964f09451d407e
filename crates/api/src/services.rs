//! The Service registry: what kube-apiserver does to a Service beyond storing it — hand out its
//! cluster IP and node ports on create, carry them over or change them on update, and free them
//! on delete. Allocation happens before the write is committed and is undone if it is not.

use std::net::Ipv4Addr;

use serde_json::{json, Value};

use crate::alloc::{AllocError, ServiceAllocator};
use crate::status::{ApiError, ApiResult, Cause};

/// What one write took from the allocators (to give back if the write does not happen) or
/// freed (to give back once it has).
#[derive(Debug, Default)]
pub struct Allocation {
    pub ips: Vec<Ipv4Addr>,
    pub ports: Vec<u16>,
}

impl Allocation {
    /// Returns everything to the allocators.
    pub fn release(self, alloc: &ServiceAllocator) {
        for ip in self.ips {
            alloc.release_ip(ip);
        }
        for p in self.ports {
            alloc.release_port(p);
        }
    }
}

fn svc_type(svc: &Value) -> &str {
    svc["spec"]["type"].as_str().unwrap_or("ClusterIP")
}

fn needs_cluster_ip(svc: &Value) -> bool {
    svc_type(svc) != "ExternalName"
}

fn needs_node_ports(svc: &Value) -> bool {
    match svc_type(svc) {
        "NodePort" => true,
        "LoadBalancer" => svc["spec"]["allocateLoadBalancerNodePorts"].as_bool().unwrap_or(true),
        _ => false,
    }
}

fn needs_health_check_port(svc: &Value) -> bool {
    svc_type(svc) == "LoadBalancer" && svc["spec"]["externalTrafficPolicy"] == "Local"
}

/// The cluster IP of a service, if it has a real one.
fn cluster_ip(svc: &Value) -> Option<Ipv4Addr> {
    svc["spec"]["clusterIP"].as_str().and_then(|s| s.parse().ok())
}

fn node_ports(svc: &Value) -> Vec<u16> {
    let mut out: Vec<u16> = svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["nodePort"].as_u64())
        .filter_map(|p| u16::try_from(p).ok())
        .collect();
    if let Some(h) = svc["spec"]["healthCheckNodePort"].as_u64().and_then(|p| u16::try_from(p).ok()) {
        out.push(h);
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn invalid(svc: &Value, causes: Vec<Cause>) -> ApiError {
    ApiError::invalid("", "Service", svc["metadata"]["name"].as_str().unwrap_or(""), causes)
}

fn set_cluster_ip(svc: &mut Value, ip: &str) {
    svc["spec"]["clusterIP"] = json!(ip);
    svc["spec"]["clusterIPs"] = json!([ip]);
    if ip != "None" || svc["spec"]["ipFamilies"].is_null() {
        svc["spec"]["ipFamilies"] = json!(["IPv4"]);
    }
    if svc["spec"]["ipFamilyPolicy"].is_null() {
        svc["spec"]["ipFamilyPolicy"] = json!("SingleStack");
    }
}

/// Allocates the cluster IP and node ports of a Service being created, filling them in.
pub fn allocate_on_create(alloc: &ServiceAllocator, svc: &mut Value) -> ApiResult<Allocation> {
    let mut taken = Allocation::default();
    match allocate_into(alloc, svc, None, &mut taken) {
        Ok(()) => Ok(taken),
        Err(e) => {
            taken.release(alloc);
            Err(e)
        }
    }
}

/// Carries a Service's allocations over an update: values the new object leaves empty are kept
/// from the old one (as kube-apiserver does, so `kubectl replace` and `apply` work), new ones are
/// allocated. Returns what was newly taken and what the old object held that the new one no
/// longer does (to free after the commit).
pub fn allocate_on_update(
    alloc: &ServiceAllocator,
    old: &Value,
    new: &mut Value,
) -> ApiResult<(Allocation, Allocation)> {
    drop_type_dependent_fields(old, new);
    let mut taken = Allocation::default();
    if let Err(e) = allocate_into(alloc, new, Some(old), &mut taken) {
        taken.release(alloc);
        return Err(e);
    }
    let mut freed = Allocation::default();
    if let Some(ip) = cluster_ip(old) {
        if cluster_ip(new) != Some(ip) {
            freed.ips.push(ip);
        }
    }
    let kept = node_ports(new);
    freed.ports = node_ports(old).into_iter().filter(|p| !kept.contains(p)).collect();
    Ok((taken, freed))
}

/// When an update changes a Service's type so that it no longer needs node ports, a health check
/// port or traffic policies, the values it still carries unchanged from the old object are
/// dropped (as kube-apiserver's dropTypeDependentFields does), so that `kubectl patch` from
/// NodePort to ClusterIP works without clearing them by hand.
fn drop_type_dependent_fields(old: &Value, new: &mut Value) {
    if svc_type(old) == svc_type(new) {
        return;
    }
    if needs_node_ports(old) && !needs_node_ports(new) {
        let old_ports = old["spec"]["ports"].as_array().cloned().unwrap_or_default();
        if let Some(ports) = new["spec"]["ports"].as_array_mut() {
            for p in ports.iter_mut() {
                let same = old_ports.iter().any(|o| o["port"] == p["port"] && o["nodePort"] == p["nodePort"]);
                if same {
                    if let Some(m) = p.as_object_mut() {
                        m.remove("nodePort");
                    }
                }
            }
        }
    }
    let Some(spec) = new["spec"].as_object_mut() else { return };
    let external = |t: &str| matches!(t, "NodePort" | "LoadBalancer");
    let new_type = spec.get("type").and_then(Value::as_str).unwrap_or("ClusterIP").to_string();
    if !(new_type == "LoadBalancer" && spec.get("externalTrafficPolicy").and_then(Value::as_str) == Some("Local"))
        && spec.get("healthCheckNodePort") == old["spec"].get("healthCheckNodePort")
    {
        spec.remove("healthCheckNodePort");
    }
    if !external(&new_type) && spec.get("externalTrafficPolicy") == old["spec"].get("externalTrafficPolicy") {
        spec.remove("externalTrafficPolicy");
    }
    if new_type != "LoadBalancer"
        && spec.get("allocateLoadBalancerNodePorts") == old["spec"].get("allocateLoadBalancerNodePorts")
    {
        spec.remove("allocateLoadBalancerNodePorts");
    }
}

/// What a deleted Service held.
pub fn held_by(svc: &Value) -> Allocation {
    Allocation { ips: cluster_ip(svc).into_iter().collect(), ports: node_ports(svc) }
}

fn allocate_into(
    alloc: &ServiceAllocator,
    svc: &mut Value,
    old: Option<&Value>,
    taken: &mut Allocation,
) -> ApiResult<()> {
    if !svc["spec"].is_object() {
        return Ok(()); // validation reports the missing spec
    }
    // Cluster IP.
    if needs_cluster_ip(svc) {
        let requested = svc["spec"]["clusterIP"].as_str().unwrap_or("").to_string();
        let old_ip =
            old.filter(|o| needs_cluster_ip(o)).and_then(|o| o["spec"]["clusterIP"].as_str()).map(str::to_string);
        match (requested.as_str(), old_ip) {
            ("", Some(old_ip)) => set_cluster_ip(svc, &old_ip),
            (req, Some(old_ip)) if req == old_ip => set_cluster_ip(svc, &old_ip),
            (_, Some(_)) => {} // a changed IP: validation reports it as immutable
            ("None", None) => set_cluster_ip(svc, "None"),
            ("", None) => {
                let ip = alloc
                    .allocate_ip(None)
                    .map_err(|e| ApiError::internal(format!("failed to allocate a serviceIP: {e}")))?;
                taken.ips.push(ip);
                set_cluster_ip(svc, &ip.to_string());
            }
            (req, None) => {
                let ip: Ipv4Addr = req.parse().map_err(|_| {
                    invalid(
                        svc,
                        vec![Cause::invalid(
                            "spec.clusterIPs[0]",
                            req,
                            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                        )],
                    )
                })?;
                alloc
                    .allocate_ip(Some(ip))
                    .map_err(|e| invalid(svc, vec![Cause::invalid("spec.clusterIPs", format!("[\"{req}\"]"), e)]))?;
                taken.ips.push(ip);
                set_cluster_ip(svc, req);
            }
        }
    } else if let Some(spec) = svc["spec"].as_object_mut() {
        spec.remove("clusterIPs");
        spec.remove("ipFamilies");
        spec.remove("ipFamilyPolicy");
        if spec.get("clusterIP").and_then(Value::as_str) == Some("") {
            spec.remove("clusterIP");
        }
    }

    // Node ports.
    if needs_node_ports(svc) {
        let old_ports: Vec<Value> = old
            .filter(|o| needs_node_ports(o))
            .and_then(|o| o["spec"]["ports"].as_array().cloned())
            .unwrap_or_default();
        let old_held = old.map(node_ports).unwrap_or_default();
        let count = svc["spec"]["ports"].as_array().map_or(0, Vec::len);
        for i in 0..count {
            let port = svc["spec"]["ports"][i].clone();
            let requested = port["nodePort"].as_u64().filter(|p| *p != 0);
            let nodeport = match requested {
                Some(p) => {
                    let p16 = u16::try_from(p).map_err(|_| {
                        invalid(
                            svc,
                            vec![Cause::invalid(
                                format!("spec.ports[{i}].nodePort"),
                                p,
                                "provided port is not in the valid range",
                            )],
                        )
                    })?;
                    if old_held.contains(&p16) || taken.ports.contains(&p16) {
                        p16
                    } else {
                        alloc.allocate_port(Some(p16)).map_err(|e| {
                            invalid(svc, vec![Cause::invalid(format!("spec.ports[{i}].nodePort"), p, e)])
                        })?;
                        taken.ports.push(p16);
                        p16
                    }
                }
                None => {
                    // Keep the old port of the same port and protocol.
                    let same = old_ports.iter().find(|o| {
                        o["port"] == port["port"]
                            && o["protocol"].as_str().unwrap_or("TCP") == port["protocol"].as_str().unwrap_or("TCP")
                    });
                    match same.and_then(|o| o["nodePort"].as_u64()).and_then(|p| u16::try_from(p).ok()) {
                        Some(p) => p,
                        None => {
                            let p = alloc.allocate_port(None).map_err(|e: AllocError| {
                                ApiError::internal(format!("failed to allocate a nodePort: {e}"))
                            })?;
                            taken.ports.push(p);
                            p
                        }
                    }
                }
            };
            svc["spec"]["ports"][i]["nodePort"] = json!(nodeport);
        }
    }
    if needs_health_check_port(svc) {
        let requested =
            svc["spec"]["healthCheckNodePort"].as_u64().filter(|p| *p != 0).and_then(|p| u16::try_from(p).ok());
        let old_hc = old.and_then(|o| o["spec"]["healthCheckNodePort"].as_u64()).and_then(|p| u16::try_from(p).ok());
        let port = match (requested, old_hc) {
            (None, Some(o)) => o,
            (Some(r), Some(o)) if r == o => o,
            (r, _) => {
                let p = alloc
                    .allocate_port(r)
                    .map_err(|e| invalid(svc, vec![Cause::invalid("spec.healthCheckNodePort", r.unwrap_or(0), e)]))?;
                taken.ports.push(p);
                p
            }
        };
        svc["spec"]["healthCheckNodePort"] = json!(port);
    } else if let Some(spec) = svc["spec"].as_object_mut() {
        if spec.get("healthCheckNodePort").and_then(Value::as_u64) == Some(0) {
            spec.remove("healthCheckNodePort");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allocator() -> ServiceAllocator {
        ServiceAllocator::new("10.96.0.0/24".parse().unwrap(), 30000..=30010)
    }

    #[test]
    fn create_update_delete() {
        let a = allocator();
        let mut svc = json!({"metadata": {"name": "web"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30005}]}});
        let taken = allocate_on_create(&a, &mut svc).unwrap();
        assert_eq!(taken.ports, vec![30005]);
        assert!(svc["spec"]["clusterIP"].as_str().unwrap().starts_with("10.96.0."));
        assert_eq!(svc["spec"]["clusterIPs"].as_array().unwrap().len(), 1);

        // A second service asking for the same port gets 422.
        let mut other = json!({"metadata": {"name": "x"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30005}]}});
        let err = allocate_on_create(&a, &mut other).unwrap_err();
        assert_eq!(err.code(), 422);
        assert!(err.to_string().contains("provided port is already allocated"), "{err}");

        // An update without clusterIP or nodePort keeps both (kubectl replace).
        let mut new = json!({"metadata": {"name": "web"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP"}, {"port": 81, "protocol": "TCP"}]}});
        let (taken, freed) = allocate_on_update(&a, &svc, &mut new).unwrap();
        assert_eq!(new["spec"]["clusterIP"], svc["spec"]["clusterIP"]);
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30005);
        assert_eq!(taken.ports.len(), 1);
        assert!(freed.ips.is_empty() && freed.ports.is_empty());

        // To ClusterIP: node ports carried over unchanged are dropped and freed.
        let mut cip = new.clone();
        cip["spec"]["type"] = json!("ClusterIP");
        cip["spec"]["externalTrafficPolicy"] = json!("Cluster");
        let mut new = new;
        new["spec"]["externalTrafficPolicy"] = json!("Cluster");
        let (_, freed) = allocate_on_update(&a, &new, &mut cip).unwrap();
        assert_eq!(freed.ports.len(), 2);
        assert!(cip["spec"]["ports"][0].get("nodePort").is_none());
        assert!(cip["spec"].get("externalTrafficPolicy").is_none());
        freed.release(&a);
        held_by(&cip).release(&a);
        assert_eq!(a.allocate_port(Some(30005)), Ok(30005));
    }

    #[test]
    fn headless_and_requested_ip() {
        let a = allocator();
        let mut h = json!({"metadata": {"name": "h"}, "spec": {"clusterIP": "None", "ports": [{"port": 80}]}});
        assert!(allocate_on_create(&a, &mut h).unwrap().ips.is_empty());
        assert_eq!(h["spec"]["clusterIPs"], json!(["None"]));
        let mut s = json!({"metadata": {"name": "s"}, "spec": {"clusterIP": "10.96.0.50", "ports": [{"port": 80}]}});
        allocate_on_create(&a, &mut s).unwrap();
        let mut t = json!({"metadata": {"name": "t"}, "spec": {"clusterIP": "10.96.0.50", "ports": [{"port": 80}]}});
        assert_eq!(allocate_on_create(&a, &mut t).unwrap_err().code(), 422);
        let mut u = json!({"metadata": {"name": "u"}, "spec": {"clusterIP": "10.1.0.50", "ports": [{"port": 80}]}});
        assert!(allocate_on_create(&a, &mut u).unwrap_err().to_string().contains("not in the valid range"));
    }
}
