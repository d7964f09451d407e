//! Load-balancer IPs on the nodes' network, as a bare-metal load balancer in layer-2 mode
//! (MetalLB, k3s' ServiceLB) announces them: each `status.loadBalancer.ingress` address of a
//! LoadBalancer Service inside the announced range (`--announce-cidr`) is held by exactly one
//! Ready node, chosen by a hash of the address over the sorted Ready nodes, as a /32 on the
//! loopback link [`LINK`] (as kube-proxy's IPVS mode binds service addresses to a local dummy
//! link; `lo` needs no kernel module). With the default `arp_ignore` the node then answers ARP
//! for it on the underlay, and the service proxy's rules take the traffic from there. Only
//! addresses inside the announced range are ever added or removed. When nodes come or go, the
//! addresses move.

use std::collections::BTreeSet;
use std::net::IpAddr;

use futures::StreamExt;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use podnet_netlink::Handle;
use tokio::sync::Notify;

/// The link that holds the announced addresses.
pub const LINK: &str = "lo";

/// FNV-1a of an address: which node announces it.
fn spread(ip: &IpAddr) -> u64 {
    let bytes = match ip {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    };
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100000001b3))
}

fn is_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The addresses `me` announces, given all Services and Nodes.
pub fn owned(me: &str, range: &IpNet, services: &[Service], nodes: &[Node]) -> BTreeSet<IpAddr> {
    let mut ready: Vec<&str> =
        nodes.iter().filter(|n| is_ready(n)).filter_map(|n| n.metadata.name.as_deref()).collect();
    ready.sort();
    if ready.is_empty() {
        return BTreeSet::new();
    }
    services
        .iter()
        .filter(|s| s.spec.as_ref().and_then(|sp| sp.type_.as_deref()) == Some("LoadBalancer"))
        .flat_map(|s| {
            s.status
                .as_ref()
                .and_then(|st| st.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.clone())
                .unwrap_or_default()
        })
        .filter_map(|i| i.ip?.parse::<IpAddr>().ok())
        .filter(|ip| range.contains(ip))
        .filter(|ip| ready[(spread(ip) % ready.len() as u64) as usize] == me)
        .collect()
}

/// Makes [`LINK`] hold exactly `want` of the addresses in `range`.
fn apply(range: &IpNet, want: &BTreeSet<IpAddr>) -> anyhow::Result<()> {
    let mut h = Handle::new()?;
    let have: BTreeSet<IpAddr> = h
        .link_addresses(LINK)?
        .into_iter()
        .filter(|a| a.addr.prefix_len() == a.addr.max_prefix_len() && range.contains(&a.addr.addr()))
        .map(|a| a.addr.addr())
        .collect();
    for ip in want.difference(&have) {
        h.add_addr(LINK, IpNet::from(*ip))?;
        tracing::info!(%ip, "announcing a load-balancer address");
    }
    for ip in have.difference(want) {
        h.del_addr(LINK, IpNet::from(*ip))?;
        tracing::info!(%ip, "no longer announcing a load-balancer address");
    }
    Ok(())
}

/// Keeps the node's announced addresses current until the watches end.
pub async fn run(client: kube::Client, me: String, range: IpNet) -> anyhow::Result<()> {
    let (services, w1): (Store<Service>, _) = reflector::store();
    let (nodes, w2): (Store<Node>, _) = reflector::store();
    let changed = std::sync::Arc::new(Notify::new());
    for stream in [
        reflector::reflector(w1, watcher(Api::<Service>::all(client.clone()), watcher::Config::default()))
            .touched_objects()
            .map(|r| r.map(|_| ()))
            .boxed(),
        reflector::reflector(w2, watcher(Api::<Node>::all(client.clone()), watcher::Config::default()))
            .touched_objects()
            .map(|r| r.map(|_| ()))
            .boxed(),
    ] {
        let changed = changed.clone();
        tokio::spawn(async move {
            let mut stream = stream;
            while stream.next().await.is_some() {
                changed.notify_one();
            }
        });
    }
    services.wait_until_ready().await?;
    nodes.wait_until_ready().await?;
    let mut last: Option<BTreeSet<IpAddr>> = None;
    loop {
        let svcs: Vec<Service> = services.state().iter().map(|s| (**s).clone()).collect();
        let ns: Vec<Node> = nodes.state().iter().map(|n| (**n).clone()).collect();
        let want = owned(&me, &range, &svcs, &ns);
        if last.as_ref() != Some(&want) {
            let w = want.clone();
            match tokio::task::spawn_blocking(move || apply(&range, &w)).await? {
                Ok(()) => last = Some(want),
                Err(e) => tracing::warn!(error = %e, "announcing load-balancer addresses"),
            }
        }
        changed.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_address_has_exactly_one_ready_owner() {
        let node = |n: &str, ready: &str| -> Node {
            serde_json::from_value(
                json!({"metadata": {"name": n}, "status": {"conditions": [{"type": "Ready", "status": ready}]}}),
            )
            .unwrap()
        };
        let nodes = vec![node("node1", "True"), node("node2", "True"), node("node3", "False")];
        let services: Vec<Service> = (0..20)
            .map(|i| {
                serde_json::from_value(json!({"metadata": {"name": format!("s{i}")}, "spec": {"type": "LoadBalancer"},
                    "status": {"loadBalancer": {"ingress": [{"ip": format!("172.31.0.{}", 160 + i)}]}}}))
                .unwrap()
            })
            .collect();
        let range: IpNet = "172.31.0.160/27".parse().unwrap();
        let a = owned("node1", &range, &services, &nodes);
        let b = owned("node2", &range, &services, &nodes);
        assert!(owned("node3", &range, &services, &nodes).is_empty(), "a NotReady node announces nothing");
        assert_eq!(a.len() + b.len(), 20);
        assert!(a.is_disjoint(&b));
        assert!(!a.is_empty() && !b.is_empty(), "the addresses are spread");
        let outside: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(owned("node1", &outside, &services, &nodes).is_empty());
    }
}
