//! Which endpoints a service port's chains use, per address family — kube-proxy's
//! `CategorizeEndpoints` without topology hints: the Cluster-policy endpoints, the Local-policy
//! endpoints, their union (the endpoints that get a `KUBE-SEP-*` chain) and whether the service
//! has any usable endpoint at all. Both sets follow KEP-1669 as [`ServicePort`] does: the ready
//! endpoints, or when there are none, those serving while terminating.

use crate::model::{Endpoint, ServicePort};

use super::Family;

/// The endpoints of one service port in one family, sorted by `ip:port` as kube-proxy sorts them.
#[derive(Debug, Default)]
pub struct Categorized<'a> {
    /// For the `KUBE-SVC-*` chain (empty if the service port never uses Cluster policy).
    pub cluster: Vec<&'a Endpoint>,
    /// For the `KUBE-SVL-*` chain (empty if the service port never uses Local policy).
    pub local: Vec<&'a Endpoint>,
    /// `cluster` ∪ `local`: the endpoints that get a `KUBE-SEP-*` chain.
    pub reachable: Vec<&'a Endpoint>,
    /// Whether any endpoint anywhere may serve (ready, or serving and terminating).
    pub has_any: bool,
}

/// Whether the port ever sends traffic by the Cluster policy: internal traffic with
/// internalTrafficPolicy Cluster, or any external traffic (even with externalTrafficPolicy
/// Local, pods and the node itself are short-circuited to the Cluster chain).
pub fn uses_cluster(sp: &ServicePort, family: Family) -> bool {
    !sp.internal_local || externally_accessible(sp, family)
}

/// Whether the port ever sends traffic by the Local policy.
pub fn uses_local(sp: &ServicePort, family: Family) -> bool {
    sp.internal_local || (sp.external_local && externally_accessible(sp, family))
}

/// Whether the port has a node port, external IPs or load-balancer IPs (of `family`).
pub fn externally_accessible(sp: &ServicePort, family: Family) -> bool {
    sp.node_port.is_some()
        || sp.external_ips.iter().any(|ip| family.has(ip))
        || sp.load_balancer_ips.iter().any(|ip| family.has(ip))
}

/// KEP-1669: the ready candidates, else the serving and terminating ones.
fn usable<'a>(candidates: &[&'a Endpoint]) -> Vec<&'a Endpoint> {
    let ready: Vec<&Endpoint> = candidates.iter().copied().filter(|e| e.ready).collect();
    if !ready.is_empty() {
        return ready;
    }
    candidates.iter().copied().filter(|e| e.serving && e.terminating).collect()
}

/// Sorts and categorizes the endpoints of `sp` in `family`.
pub fn categorize(sp: &ServicePort, family: Family) -> Categorized<'_> {
    let mut all: Vec<&Endpoint> = sp.endpoints.iter().filter(|e| family.has(&e.ip)).collect();
    all.sort_by_cached_key(|e| e.address());
    all.dedup_by(|a, b| a.ip == b.ip && a.port == b.port);
    let has_any = all.iter().any(|e| e.ready || (e.serving && e.terminating));
    let cluster = if uses_cluster(sp, family) { usable(&all) } else { Vec::new() };
    let local = if uses_local(sp, family) {
        let locals: Vec<&Endpoint> = all.iter().copied().filter(|e| e.local).collect();
        usable(&locals)
    } else {
        Vec::new()
    };
    let reachable =
        all.iter().copied().filter(|e| cluster.iter().chain(&local).any(|c| std::ptr::eq(*c, *e))).collect();
    Categorized { cluster, local, reachable, has_any }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Protocol, ServicePortName};

    fn ep(ip: &str, local: bool, ready: bool, terminating: bool) -> Endpoint {
        Endpoint {
            ip: ip.parse().unwrap(),
            port: 80,
            node_name: None,
            ready,
            serving: ready || terminating,
            terminating,
            local,
        }
    }

    fn port(endpoints: Vec<Endpoint>) -> ServicePort {
        ServicePort::cluster_ip(
            ServicePortName { namespace: "ns".into(), name: "s".into(), port: String::new(), protocol: Protocol::Tcp },
            "10.96.0.10".parse().unwrap(),
            80,
            endpoints,
        )
    }

    fn addrs(eps: &[&Endpoint]) -> Vec<String> {
        eps.iter().map(|e| e.address()).collect()
    }

    #[test]
    fn sorted_by_address_string_as_kube_proxy() {
        let sp = port(vec![ep("10.0.0.9", false, true, false), ep("10.0.0.10", false, true, false)]);
        let c = categorize(&sp, Family::V4);
        assert_eq!(addrs(&c.cluster), ["10.0.0.10:80", "10.0.0.9:80"]);
        assert!(c.local.is_empty());
        assert!(c.has_any);
    }

    #[test]
    fn external_local_uses_both_chains() {
        let mut sp = port(vec![ep("10.0.0.1", true, true, false), ep("10.0.0.2", false, true, false)]);
        sp.node_port = Some(30080);
        sp.external_local = true;
        let c = categorize(&sp, Family::V4);
        assert_eq!(addrs(&c.cluster), ["10.0.0.1:80", "10.0.0.2:80"]);
        assert_eq!(addrs(&c.local), ["10.0.0.1:80"]);
        assert_eq!(c.reachable.len(), 2);
    }

    #[test]
    fn internal_local_only_local_and_terminating_fallback() {
        let mut sp = port(vec![ep("10.0.0.1", true, false, true), ep("10.0.0.2", false, true, false)]);
        sp.internal_local = true;
        let c = categorize(&sp, Family::V4);
        assert!(c.cluster.is_empty(), "no external traffic: no Cluster chain");
        assert_eq!(addrs(&c.local), ["10.0.0.1:80"], "the local terminating one, as no local one is ready");
        assert_eq!(addrs(&c.reachable), ["10.0.0.1:80"]);
    }

    #[test]
    fn family_filter_and_nothing_usable() {
        let sp = port(vec![ep("fd00::1", false, true, false), ep("10.0.0.1", false, false, false)]);
        let v4 = categorize(&sp, Family::V4);
        assert!(!v4.has_any && v4.cluster.is_empty());
        let v6 = categorize(&sp, Family::V6);
        assert_eq!(addrs(&v6.cluster), ["[fd00::1]:80"]);
    }
}
