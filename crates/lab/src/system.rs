//! The lab's system pods, deployed as on a real cluster: the service proxy as the DaemonSet
//! kube-system/podnet-proxy (hostNetwork, one pod per node, as kube-proxy's), running the
//! `podnet` lab image. `podnet up` applies them and waits until each node runs its pod.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

use crate::spec::{self, LabSpec};
use crate::LabError;

/// The proxy DaemonSet for `spec`.
pub fn proxy_daemonset(spec: &LabSpec) -> serde_json::Value {
    let master = format!("https://{}:{}", spec::control_plane_ip(), spec::API_PORT);
    json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "podnet-proxy", "namespace": "kube-system", "labels": {"k8s-app": "podnet-proxy"}},
        "spec": {
            "selector": {"matchLabels": {"k8s-app": "podnet-proxy"}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": {"k8s-app": "podnet-proxy"}},
                "spec": {
                    "hostNetwork": true,
                    "dnsPolicy": "ClusterFirstWithHostNet",
                    "tolerations": [{"operator": "Exists"}],
                    "containers": [{
                        "name": "podnet-proxy",
                        "image": "podnet",
                        "args": ["proxy", format!("--proxy-mode={}", spec.proxy_mode),
                                 format!("--cluster-cidr={}", spec.pod_cidr), format!("--master={master}")],
                        "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                        "readinessProbe": {"httpGet": {"path": "/healthz", "port": 10256}, "periodSeconds": 1},
                    }],
                },
            },
        },
    })
}

/// Applies the system pods and waits until every node runs a ready one of each.
pub async fn deploy(client: &kube::Client, spec: &LabSpec) -> Result<(), LabError> {
    let ds: Api<DaemonSet> = Api::namespaced(client.clone(), "kube-system");
    let pp = PatchParams::apply("podnet-up").force();
    ds.patch("podnet-proxy", &pp, &Patch::Apply(proxy_daemonset(spec))).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "kube-system");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = pods.list(&ListParams::default().labels("k8s-app=podnet-proxy")).await?;
        let ready_nodes: Vec<String> = list
            .items
            .iter()
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .filter_map(|p| p.spec.as_ref()?.node_name.clone())
            .collect();
        if spec.node_names().iter().all(|n| ready_nodes.contains(n)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(LabError::Failed(format!(
                "the podnet-proxy pods are not ready on every node after 60 s (ready on: {ready_nodes:?})"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
