//! flannel's Node annotations, and reading a Kubernetes Node into a [`NodeRoute`] (pure).
//!
//! flannel's kube subnet manager publishes on each Node (as its `kube-subnet-manager` does):
//!
//! ```text
//! flannel.alpha.coreos.com/backend-type: vxlan
//! flannel.alpha.coreos.com/backend-data: {"VNI":1,"VtepMAC":"c6:0b:fa:1a:e4:3a"}
//! flannel.alpha.coreos.com/kube-subnet-manager: "true"
//! flannel.alpha.coreos.com/public-ip: 172.18.0.11
//! ```
//!
//! (`backend-data` is `null` for host-gw; an IPv6 node address goes to `public-ipv6` and
//! `backend-v6-data`.) podnet writes the same ([`node_annotations`]), with the VTEP MAC it
//! derives from the node's name, and reads the MAC back from any node's annotations
//! ([`vtep_mac_from_annotations`]; both `"VNI":1` and `"VNIs":[1]` forms), so a node run by real
//! flannel — whose MAC is random — is reachable too.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;
use podnet_netlink::MacAddr;
use serde_json::json;

use crate::plan::{vtep_mac, Backend, Config, NodeRoute};

/// `flannel.alpha.coreos.com/backend-type`: `vxlan` or `host-gw`.
pub const BACKEND_TYPE: &str = "flannel.alpha.coreos.com/backend-type";
/// `flannel.alpha.coreos.com/backend-data`: `{"VNI":1,"VtepMAC":"…"}` (vxlan) or `null`.
pub const BACKEND_DATA: &str = "flannel.alpha.coreos.com/backend-data";
/// `flannel.alpha.coreos.com/backend-v6-data`: the same for an IPv6 VTEP.
pub const BACKEND_V6_DATA: &str = "flannel.alpha.coreos.com/backend-v6-data";
/// `flannel.alpha.coreos.com/kube-subnet-manager`: `"true"`.
pub const KUBE_SUBNET_MANAGER: &str = "flannel.alpha.coreos.com/kube-subnet-manager";
/// `flannel.alpha.coreos.com/public-ip`: the node's (IPv4) underlay address.
pub const PUBLIC_IP: &str = "flannel.alpha.coreos.com/public-ip";
/// `flannel.alpha.coreos.com/public-ipv6`: the node's IPv6 underlay address.
pub const PUBLIC_IPV6: &str = "flannel.alpha.coreos.com/public-ipv6";
/// `flannel.alpha.coreos.com/public-ip-overwrite`: set by an administrator, overrides `public-ip`.
pub const PUBLIC_IP_OVERWRITE: &str = "flannel.alpha.coreos.com/public-ip-overwrite";

/// The annotations this node should carry, as flannel writes them. The agent merges them into
/// its Node's metadata (they are all flannel's keys: it may overwrite them).
pub fn node_annotations(config: &Config) -> BTreeMap<String, String> {
    let (ip_key, data_key) =
        if config.node_ip.is_ipv4() { (PUBLIC_IP, BACKEND_DATA) } else { (PUBLIC_IPV6, BACKEND_V6_DATA) };
    BTreeMap::from([
        (BACKEND_TYPE.to_string(), config.backend.as_str().to_string()),
        (data_key.to_string(), backend_data(config)),
        (KUBE_SUBNET_MANAGER.to_string(), "true".to_string()),
        (ip_key.to_string(), config.node_ip.to_string()),
    ])
}

/// The `backend-data` value: `{"VNI":1,"VtepMAC":"…"}` for vxlan (as flannel marshals its
/// `vxlanLeaseAttrs`), `null` for host-gw.
pub fn backend_data(config: &Config) -> String {
    match config.backend {
        Backend::HostGw => "null".to_string(),
        Backend::Vxlan => json!({
            "VNI": config.vxlan.vni,
            "VtepMAC": vtep_mac(&config.this_node).to_string(),
        })
        .to_string(),
    }
}

/// The VTEP MAC in a `backend-data` value (`{"VtepMAC":"…", …}`), if it holds one.
pub fn parse_backend_data(data: &str) -> Option<MacAddr> {
    let value: serde_json::Value = serde_json::from_str(data).ok()?;
    value.get("VtepMAC")?.as_str()?.parse().ok()
}

/// The VTEP MAC a node publishes: from `backend-data`, else `backend-v6-data`.
pub fn vtep_mac_from_annotations(annotations: &BTreeMap<String, String>) -> Option<MacAddr> {
    [BACKEND_DATA, BACKEND_V6_DATA].iter().find_map(|k| annotations.get(*k).and_then(|d| parse_backend_data(d)))
}

/// The routing view of a Kubernetes Node: its name; its underlay address — flannel's
/// `public-ip-overwrite` annotation, else the first IPv4 `InternalIP` (else IPv6), else the
/// `public-ip` / `public-ipv6` annotations; its `spec.podCIDRs` (else `spec.podCIDR`); the VTEP
/// MAC of its annotations. `None` when it has no name or no usable address. CIDRs that do not
/// parse are left out.
pub fn node_route(node: &Node) -> Option<NodeRoute> {
    let name = node.metadata.name.clone()?;
    let empty = BTreeMap::new();
    let annotations = node.metadata.annotations.as_ref().unwrap_or(&empty);
    let annotated = |key: &str| annotations.get(key).and_then(|v| v.trim().parse::<IpAddr>().ok());
    let internal: Vec<IpAddr> = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .map(|addrs| {
            addrs.iter().filter(|a| a.type_ == "InternalIP").filter_map(|a| a.address.trim().parse().ok()).collect()
        })
        .unwrap_or_default();
    let internal_ip = annotated(PUBLIC_IP_OVERWRITE)
        .or_else(|| internal.iter().find(|a| a.is_ipv4()).copied())
        .or_else(|| internal.first().copied())
        .or_else(|| annotated(PUBLIC_IP))
        .or_else(|| annotated(PUBLIC_IPV6))?;
    let spec = node.spec.as_ref();
    let cidrs: Vec<&String> = match spec.and_then(|s| s.pod_cidrs.as_ref()) {
        Some(list) if !list.is_empty() => list.iter().collect(),
        _ => spec.and_then(|s| s.pod_cidr.as_ref()).into_iter().collect(),
    };
    let pod_cidrs: Vec<IpNet> = cidrs.into_iter().filter_map(|c| c.trim().parse().ok()).collect();
    Some(NodeRoute { name, internal_ip, pod_cidrs, vtep_mac: vtep_mac_from_annotations(annotations) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::plan;

    fn config(backend: Backend) -> Config {
        Config::new(backend, "n1", "172.18.0.11".parse().unwrap(), "eth0", 1500)
    }

    #[test]
    fn vxlan_annotations_are_flannels() {
        let a = node_annotations(&config(Backend::Vxlan));
        assert_eq!(a[BACKEND_TYPE], "vxlan");
        assert_eq!(a[KUBE_SUBNET_MANAGER], "true");
        assert_eq!(a[PUBLIC_IP], "172.18.0.11");
        assert_eq!(a[BACKEND_DATA], format!(r#"{{"VNI":1,"VtepMAC":"{}"}}"#, vtep_mac("n1")));
        assert_eq!(a.len(), 4);
        // What this node publishes is what the others compute for it.
        assert_eq!(vtep_mac_from_annotations(&a), Some(vtep_mac("n1")));
    }

    #[test]
    fn host_gw_and_ipv6_annotations() {
        let a = node_annotations(&config(Backend::HostGw));
        assert_eq!((a[BACKEND_TYPE].as_str(), a[BACKEND_DATA].as_str()), ("host-gw", "null"));
        assert_eq!(vtep_mac_from_annotations(&a), None);
        let mut c = config(Backend::Vxlan);
        c.node_ip = "fd00::11".parse().unwrap();
        let a = node_annotations(&c);
        assert_eq!(a[PUBLIC_IPV6], "fd00::11");
        assert!(!a.contains_key(PUBLIC_IP));
        assert_eq!(vtep_mac_from_annotations(&a), Some(vtep_mac("n1")));
    }

    #[test]
    fn parses_both_backend_data_forms() {
        let mac: MacAddr = "9e:ce:eb:12:a5:35".parse().unwrap();
        assert_eq!(parse_backend_data(r#"{"VNI":1,"VtepMAC":"9e:ce:eb:12:a5:35"}"#), Some(mac));
        assert_eq!(parse_backend_data(r#"{"VNIs":[1],"VtepMAC":"9e:ce:eb:12:a5:35"}"#), Some(mac));
        assert_eq!(parse_backend_data(r#"{"VtepMAC":"9e:ce:eb:12:a5:35"}"#), Some(mac));
        for bad in ["null", "", "{", r#"{"VtepMAC":"nope"}"#, r#"{"VtepMAC":7}"#] {
            assert_eq!(parse_backend_data(bad), None, "{bad}");
        }
    }

    fn k8s_node(value: serde_json::Value) -> Node {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn reads_a_kubernetes_node() {
        let n = k8s_node(json!({
            "metadata": {"name": "n2", "annotations": {BACKEND_DATA: r#"{"VNI":1,"VtepMAC":"c6:0b:fa:1a:e4:3a"}"#}},
            "spec": {"podCIDR": "10.244.2.0/24", "podCIDRs": ["10.244.2.0/24", "fd00:10:244:2::/64"]},
            "status": {"addresses": [
                {"type": "Hostname", "address": "n2"},
                {"type": "InternalIP", "address": "fd00::12"},
                {"type": "InternalIP", "address": "172.18.0.12"}
            ]}
        }));
        let r = node_route(&n).unwrap();
        assert_eq!(r.name, "n2");
        assert_eq!(r.internal_ip, "172.18.0.12".parse::<IpAddr>().unwrap(), "IPv4 InternalIP first");
        assert_eq!(r.pod_cidrs.len(), 2);
        assert_eq!(r.vtep_mac, Some("c6:0b:fa:1a:e4:3a".parse().unwrap()));

        // Older API servers: podCIDR only; the overwrite annotation wins over InternalIP.
        let n = k8s_node(json!({
            "metadata": {"name": "n3", "annotations": {PUBLIC_IP_OVERWRITE: "192.0.2.3"}},
            "spec": {"podCIDR": "10.244.3.0/24"},
            "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.13"}]}
        }));
        let r = node_route(&n).unwrap();
        assert_eq!(r.internal_ip, "192.0.2.3".parse::<IpAddr>().unwrap());
        assert_eq!(r.pod_cidrs, ["10.244.3.0/24".parse::<IpNet>().unwrap()]);
        assert_eq!(r.vtep_mac, None);
        assert_eq!(r.effective_vtep_mac(), vtep_mac("n3"));

        // A node without a pod CIDR yet is still a node (routed once it gets one).
        let n = k8s_node(json!({"metadata": {"name": "n4", "annotations": {PUBLIC_IP: "172.18.0.14"}}}));
        assert!(node_route(&n).unwrap().pod_cidrs.is_empty());
        // No address: nothing to route to.
        assert!(node_route(&k8s_node(json!({"metadata": {"name": "n5"}}))).is_none());
        assert!(node_route(&k8s_node(json!({"metadata": {}}))).is_none());
    }

    #[test]
    fn annotations_round_trip_through_plan() {
        // n2 published its annotations; n1 plans with what it reads from n2's Node.
        let mut c2 = config(Backend::Vxlan);
        c2.this_node = "n2".into();
        c2.node_ip = "172.18.0.12".parse().unwrap();
        let node = k8s_node(json!({
            "metadata": {"name": "n2", "annotations": node_annotations(&c2)},
            "spec": {"podCIDRs": ["10.244.2.0/24"]}
        }));
        let r = node_route(&node).unwrap();
        assert_eq!(r.internal_ip, c2.node_ip, "from the public-ip annotation");
        let mut c1 = config(Backend::Vxlan);
        c1.pod_cidrs = vec!["10.244.1.0/24".parse().unwrap()];
        let p = plan(&c1, &[r]);
        assert_eq!(p.fdb[0].mac, vtep_mac("n2"));
        assert_eq!(p.fdb[0].dst, c2.node_ip);
    }
}
