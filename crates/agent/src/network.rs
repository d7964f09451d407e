//! The node's place in the pod network: it waits for the node's pod CIDR (node IPAM assigns it),
//! publishes flannel's annotations (backend type, VTEP MAC, public IP) on its Node, and on every
//! change of any Node programs the paths to the other nodes' pod CIDRs and the masquerading of
//! traffic leaving the cluster (podnet-routing), in the agent's own network namespace.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use futures::StreamExt;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{reflector, watcher};
use podnet_routing::{annotations, Backend};
use tokio::sync::watch;

use crate::cni::NetworkConfig;

/// What the node's network is made from.
#[derive(Debug, Clone)]
pub struct NetworkSettings {
    pub node_name: String,
    pub node_ip: IpAddr,
    pub backend: Backend,
    pub cluster_cidrs: Vec<IpNet>,
    pub ipam_dir: PathBuf,
    /// The same-node redirect's bpffs, when pods get it.
    pub bpf_pin_dir: Option<PathBuf>,
}

/// The interface that holds `ip` and its MTU.
fn underlay_of(ip: IpAddr) -> anyhow::Result<(String, u32)> {
    let mut h = podnet_netlink::Handle::new()?;
    let addr = h
        .dump_addresses()?
        .into_iter()
        .find(|a| a.addr.addr() == ip)
        .ok_or_else(|| anyhow::anyhow!("no interface of this namespace has the node address {ip}"))?;
    let link = h.get_link(addr.index)?;
    Ok((link.name, link.mtu))
}

/// Runs until the watch ends: keeps `network` (the CNI configuration) and the routes current.
pub async fn run(
    client: kube::Client,
    settings: NetworkSettings,
    network: watch::Sender<Option<NetworkConfig>>,
) -> anyhow::Result<()> {
    let (link, mtu) = underlay_of(settings.node_ip)?;
    // Bridged pod-to-pod traffic must pass the IP hooks, or a reply from a pod on the same bridge
    // skips the service proxy's reverse NAT (kubelet and kube-proxy require the same).
    for key in ["net/bridge/bridge-nf-call-iptables", "net/bridge/bridge-nf-call-ip6tables"] {
        let path = std::path::Path::new("/proc/sys").join(key);
        if path.exists() && std::fs::read_to_string(&path).map(|v| v.trim() != "1").unwrap_or(false) {
            if let Err(e) = std::fs::write(&path, "1") {
                tracing::warn!(error = %e, "cannot enable {key}");
            }
        }
    }
    let mut config = podnet_routing::Config::new(settings.backend, &settings.node_name, settings.node_ip, &link, mtu);
    config.cluster_cidrs = settings.cluster_cidrs.clone();
    let nodes: Api<Node> = Api::all(client.clone());
    let (store, writer) = reflector::store();
    // Raw events: during the initial list the store is filled only at InitDone, so the state is
    // read on InitDone, Apply and Delete, never on the InitApply events before it.
    let stream = reflector(writer, watcher(nodes.clone(), watcher::Config::default()));
    let mut stream = std::pin::pin!(stream);
    let mut published = false;
    let mut last_plan = None;
    while let Some(ev) = stream.next().await {
        match ev {
            Err(e) => {
                tracing::warn!(error = %e, "node watch");
                continue;
            }
            Ok(watcher::Event::Init) | Ok(watcher::Event::InitApply(_)) => continue,
            Ok(_) => {}
        }
        let all: Vec<Node> = store.state().iter().map(|n| (**n).clone()).collect();
        let Some(me) = all.iter().find(|n| n.metadata.name.as_deref() == Some(settings.node_name.as_str())) else {
            continue;
        };
        let cidrs: Vec<IpNet> = me
            .spec
            .as_ref()
            .and_then(|s| s.pod_cidrs.clone().or_else(|| s.pod_cidr.clone().map(|c| vec![c])))
            .unwrap_or_default()
            .iter()
            .filter_map(|c| c.parse().ok())
            .collect();
        if cidrs.is_empty() {
            continue;
        }
        config.pod_cidrs = cidrs.clone();
        if !published {
            let want: BTreeMap<String, String> = annotations::node_annotations(&config);
            let have = me.metadata.annotations.clone().unwrap_or_default();
            if want.iter().any(|(k, v)| have.get(k) != Some(v)) {
                let patch = serde_json::json!({"metadata": {"annotations": want}});
                nodes.patch(&settings.node_name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
            }
            published = true;
        }
        let routes: Vec<podnet_routing::NodeRoute> = all.iter().filter_map(annotations::node_route).collect();
        let plan = podnet_routing::plan(&config, &routes);
        let next = NetworkConfig {
            pod_cidrs: cidrs,
            mtu: plan.pod_mtu,
            ipam_dir: settings.ipam_dir.clone(),
            bpf_pin_dir: settings.bpf_pin_dir.clone(),
        };
        network.send_if_modified(|cur| {
            let changed = cur.as_ref().is_none_or(|c| c.pod_cidrs != next.pod_cidrs || c.mtu != next.mtu);
            if changed {
                *cur = Some(next.clone());
            }
            changed
        });
        if last_plan.as_ref() == Some(&plan) {
            continue;
        }
        for w in &plan.warnings {
            tracing::warn!("routing: {w}");
        }
        let p = plan.clone();
        match tokio::task::spawn_blocking(move || podnet_routing::apply_current(&p)).await? {
            Ok(changes) => {
                if !changes.is_empty() {
                    tracing::info!("routing: {changes}");
                }
                last_plan = Some(plan);
            }
            Err(e) => tracing::error!(error = %e, "routing: cannot apply the plan"),
        }
    }
    Ok(())
}
