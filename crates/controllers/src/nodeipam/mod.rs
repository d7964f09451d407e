//! Node IPAM: gives each Node a block of the cluster's pod CIDR (`--cluster-cidr`, default
//! 10.244.0.0/16, one `/--node-cidr-mask-size` block per node, default /24) in `spec.podCIDR` and
//! `spec.podCIDRs`, as kube-controller-manager's range allocator does.
//!
//! The Node objects are the only record: which blocks are taken is derived, on every decision,
//! from the nodes the watch shows, so a restart rebuilds it and a deleted node's block is free
//! again at once. A node that already has a pod CIDR keeps it (the API forbids changing it).
//! Blocks handed out but not yet seen through the watch are remembered until they are, and the
//! write carries the node's resourceVersion, so concurrent additions never get the same block
//! and a node changed meanwhile is retried. Running two allocators at once against one cluster
//! would need leader election, which podnet does not do.
//!
//! The lowest free block is chosen. When none is left, the node gets a Warning event
//! `CIDRNotAvailable` and waits until a node is deleted.

pub mod cidr;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::Resource;
use serde_json::json;

use crate::events::EventType;
use crate::scheduler::{api_code, ready, run_on_changes};
use crate::{Config, Context, Error, Result};
use cidr::CidrSet;

const COMPONENT: &str = "node-ipam-controller";

/// Checks the IPAM flags, with an error message meant for whoever typed them.
pub fn validate(config: &Config) -> Result<CidrSet> {
    CidrSet::new(&config.cluster_cidr, config.node_cidr_mask).map_err(Error::Other)
}

/// A node's pod CIDRs: `spec.podCIDRs`, or `spec.podCIDR` alone.
pub fn pod_cidrs(node: &Node) -> Vec<String> {
    let Some(spec) = &node.spec else { return Vec::new() };
    match spec.pod_cidrs.as_deref() {
        Some(cidrs) if !cidrs.is_empty() => cidrs.to_vec(),
        _ => spec.pod_cidr.iter().filter(|c| !c.is_empty()).cloned().collect(),
    }
}

/// The block numbers the nodes use, as ranges.
pub fn used_blocks<'a>(set: &CidrSet, nodes: impl IntoIterator<Item = &'a Node>) -> Vec<(u128, u128)> {
    nodes.into_iter().flat_map(pod_cidrs).filter_map(|c| set.blocks_of(&c)).collect()
}

struct Ipam {
    ctx: Arc<Context>,
    set: CidrSet,
    nodes: Store<Node>,
    /// Blocks written to nodes the watch has not shown with them yet: node uid → (name, block).
    pending: Mutex<HashMap<String, (String, u128)>>,
}

pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()> {
    let set = validate(&ctx.config).map_err(|e| anyhow::anyhow!("node IPAM: {e}"))?;
    tracing::info!(cidrs = %set, "node IPAM");
    let client = ctx.client.clone();
    let after_delete = |nodes: &Store<Node>| {
        // A block was freed: the nodes still waiting for one may have it.
        nodes.state().iter().filter(|n| pod_cidrs(n).is_empty()).map(|n| ObjectRef::from_obj(n.as_ref())).collect()
    };
    let state = |nodes| Arc::new(Ipam { ctx, set, nodes, pending: Mutex::new(HashMap::new()) });
    run_on_changes("nodeipam", Api::<Node>::all(client), state, after_delete, |node, ipam: Arc<Ipam>| {
        Box::pin(async move { ipam.reconcile(node).await })
    })
    .await;
    Ok(())
}

impl Ipam {
    async fn reconcile(&self, node: Arc<Node>) -> Result<Action> {
        if !pod_cidrs(&node).is_empty() || node.metadata.deletion_timestamp.is_some() {
            return Ok(Action::await_change());
        }
        ready(&self.nodes).await?;
        let name = node.metadata.name.clone().unwrap_or_default();
        let uid = node.metadata.uid.clone().unwrap_or_default();
        let block = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let nodes = self.nodes.state();
            // Forget what the watch now shows, and the nodes that are gone.
            pending.retain(|uid, _| {
                nodes.iter().any(|n| n.metadata.uid.as_deref() == Some(uid.as_str()) && pod_cidrs(n).is_empty())
            });
            if pending.contains_key(&uid) {
                // Written already; the watch will show it.
                return Ok(Action::await_change());
            }
            let mut used = used_blocks(&self.set, nodes.iter().map(|n| n.as_ref()));
            used.extend(pending.values().map(|(_, b)| (*b, *b)));
            let free = self.set.first_free(&used);
            if let Some(block) = free {
                pending.insert(uid.clone(), (name.clone(), block));
            }
            free
        };
        let Some(block) = block else {
            tracing::warn!(node = %name, cidrs = %self.set, "no pod CIDR left for the node");
            let message = format!("Node {name} status is now: CIDRNotAvailable");
            let reference = node.object_ref(&());
            self.ctx.recorder.record(&reference, COMPONENT, EventType::Warning, "CIDRNotAvailable", &message).await;
            // Retried when a node is deleted; the requeue is only a safety net.
            return Ok(Action::requeue(Duration::from_secs(300)));
        };
        let cidr = self.set.block(block);
        let patch = json!({
            "metadata": {"resourceVersion": node.metadata.resource_version},
            "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
        });
        let api: Api<Node> = Api::all(self.ctx.client.clone());
        match api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => {
                tracing::info!(node = %name, %cidr, "allocated the node's pod CIDR");
                Ok(Action::await_change())
            }
            Err(e) => {
                self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&uid);
                match api_code(&e) {
                    // Gone meanwhile.
                    Some(404) => Ok(Action::await_change()),
                    // Changed meanwhile (perhaps given a CIDR by someone else): look again.
                    Some(409) => Ok(Action::requeue(Duration::from_millis(200))),
                    _ => {
                        let message = format!("Node {name}: could not set its pod CIDR {cidr}: {e}");
                        let reference = node.object_ref(&());
                        self.ctx
                            .recorder
                            .record(&reference, COMPONENT, EventType::Warning, "CIDRAssignmentFailed", &message)
                            .await;
                        Err(e.into())
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, spec: serde_json::Value) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
    }

    #[test]
    fn cidrs_of_nodes() {
        assert_eq!(pod_cidrs(&node("a", json!({}))), Vec::<String>::new());
        assert_eq!(pod_cidrs(&node("a", json!({"podCIDR": "10.244.3.0/24"}))), vec!["10.244.3.0/24"]);
        assert_eq!(
            pod_cidrs(&node("a", json!({"podCIDR": "10.244.3.0/24", "podCIDRs": ["10.244.3.0/24", "fd00::/64"]}))),
            vec!["10.244.3.0/24", "fd00::/64"]
        );
    }

    #[test]
    fn allocation_is_rebuilt_from_the_nodes() {
        let set = CidrSet::new("10.244.0.0/16", 24).unwrap();
        let nodes = [
            node("a", json!({"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]})),
            node("b", json!({"podCIDRs": ["10.244.2.0/24"]})),
            node("c", json!({})),
            node("d", json!({"podCIDR": "192.168.0.0/24"})),
        ];
        let used = used_blocks(&set, &nodes);
        assert_eq!(used, vec![(0, 0), (2, 2)], "the outsider is ignored");
        assert_eq!(set.first_free(&used), Some(1), "a released block is reused first");
    }

    #[test]
    fn validation_of_the_config() {
        let mut config = Config::default();
        assert!(validate(&config).is_ok());
        config.cluster_cidr = "10.244.0.0/33".into();
        assert!(validate(&config).unwrap_err().to_string().contains("is not a CIDR"));
        config.cluster_cidr = "10.244.0.0/16".into();
        config.node_cidr_mask = 12;
        assert!(validate(&config).unwrap_err().to_string().contains("--node-cidr-mask-size 12"));
    }
}
