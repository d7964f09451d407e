//! The lab's system pods, deployed as on a real cluster: the service proxy as the DaemonSet
//! kube-system/podnet-proxy (hostNetwork, one pod per node, as kube-proxy's), and the cluster DNS
//! as kubeadm deploys CoreDNS — ConfigMap kube-system/coredns with kubeadm's default Corefile,
//! Deployment kube-system/coredns (2 replicas, k8s-app=kube-dns) and Service kube-system/kube-dns
//! at the tenth address of the service range (53/UDP, 53/TCP, 9153/TCP) — both running the
//! `podnet` lab image — and the ingress controller as Deployment kube-system/podnet-ingress
//! behind the LoadBalancer Service kube-system/podnet-ingress (node ports 32446 and 30391, as
//! seed 000's ingress-nginx-controller shows them), with IngressClasses `podnet` (the default)
//! and `nginx` / `nginx-ingress` (the names ingress-nginx manifests and seed 000 use), all for
//! controller podnet.io/ingress-controller. `podnet up` applies them and waits until they are
//! ready.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::api::networking::v1::IngressClass;
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

pub use podnet_dns::corefile::KUBEADM_COREFILE;

/// The cluster DNS objects: ConfigMap, Deployment and Service, as kubeadm makes them.
pub fn dns_objects(spec: &LabSpec) -> (serde_json::Value, serde_json::Value, serde_json::Value) {
    let labels = json!({"k8s-app": "kube-dns"});
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "coredns", "namespace": "kube-system"},
        "data": {"Corefile": KUBEADM_COREFILE}});
    let deploy = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "coredns", "namespace": "kube-system", "labels": labels},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "dnsPolicy": "Default",
                    "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"},
                                    {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
                    "containers": [{
                        "name": "coredns",
                        "image": "podnet",
                        "args": ["dns", "--configmap=kube-system/coredns"],
                        "ports": [{"containerPort": 53, "name": "dns", "protocol": "UDP"},
                                  {"containerPort": 53, "name": "dns-tcp", "protocol": "TCP"},
                                  {"containerPort": 9153, "name": "metrics", "protocol": "TCP"}],
                        "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}, "initialDelaySeconds": 60,
                                          "timeoutSeconds": 5, "failureThreshold": 5},
                        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}, "periodSeconds": 1},
                    }],
                },
            },
        },
    });
    let svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": "kube-system",
            "labels": {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"},
            "annotations": {"prometheus.io/port": "9153", "prometheus.io/scrape": "true"}},
        "spec": {
            "selector": labels,
            "clusterIP": spec.cluster_dns().to_string(),
            "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                      {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                      {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}],
        },
    });
    (cm, deploy, svc)
}

/// The HTTP and HTTPS node ports of the ingress Service (seed 000's `80:32446/TCP,443:30391/TCP`).
pub const INGRESS_NODE_PORTS: (u16, u16) = (32446, 30391);

/// The ingress objects: IngressClasses, Deployment and Service.
pub fn ingress_objects() -> (Vec<serde_json::Value>, serde_json::Value, serde_json::Value) {
    let labels = json!({"app.kubernetes.io/name": "podnet-ingress", "app.kubernetes.io/component": "controller"});
    let classes = ["podnet", "nginx", "nginx-ingress"]
        .iter()
        .map(|name| {
            let default = if *name == "podnet" { "true" } else { "false" };
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                "metadata": {"name": name, "labels": labels,
                             "annotations": {"ingressclass.kubernetes.io/is-default-class": default}},
                "spec": {"controller": "podnet.io/ingress-controller"}})
        })
        .collect();
    let deploy = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "podnet-ingress", "namespace": "kube-system", "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 30,
                    "containers": [{
                        "name": "controller",
                        "image": "podnet",
                        "args": ["ingress", "--publish-service=kube-system/podnet-ingress"],
                        "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"},
                                  {"containerPort": 443, "name": "https", "protocol": "TCP"},
                                  {"containerPort": 10254, "name": "metrics", "protocol": "TCP"}],
                        "livenessProbe": {"httpGet": {"path": "/healthz", "port": 10254}, "initialDelaySeconds": 10,
                                          "failureThreshold": 5},
                        "readinessProbe": {"httpGet": {"path": "/healthz", "port": 10254}, "periodSeconds": 1},
                    }],
                },
            },
        },
    });
    let (http, https) = INGRESS_NODE_PORTS;
    let svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "podnet-ingress", "namespace": "kube-system", "labels": labels},
        "spec": {
            "type": "LoadBalancer",
            "selector": labels,
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http", "nodePort": http},
                      {"name": "https", "port": 443, "protocol": "TCP", "targetPort": "https", "nodePort": https}],
        },
    });
    (classes, deploy, svc)
}

/// Waits until `want` pods matching `selector` in kube-system are Ready (on the nodes of
/// `on_nodes`, when given).
async fn wait_ready_pods(
    pods: &Api<Pod>,
    selector: &str,
    want: usize,
    on_nodes: Option<&[String]>,
    what: &str,
) -> Result<(), LabError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = pods.list(&ListParams::default().labels(selector)).await?;
        let ready_nodes: Vec<String> = list
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .filter_map(|p| p.spec.as_ref()?.node_name.clone())
            .collect();
        let done = match on_nodes {
            Some(nodes) => nodes.iter().all(|n| ready_nodes.contains(n)),
            None => ready_nodes.len() >= want,
        };
        if done {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(LabError::Failed(format!("{what}: not ready after 60 s (ready on: {ready_nodes:?})")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Applies the system pods and waits until every node runs a ready one of each.
pub async fn deploy(client: &kube::Client, spec: &LabSpec) -> Result<(), LabError> {
    let pp = PatchParams::apply("podnet-up").force();
    let ds: Api<DaemonSet> = Api::namespaced(client.clone(), "kube-system");
    ds.patch("podnet-proxy", &pp, &Patch::Apply(proxy_daemonset(spec))).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "kube-system");
    let nodes = spec.node_names();
    wait_ready_pods(&pods, "k8s-app=podnet-proxy", nodes.len(), Some(&nodes), "the podnet-proxy pods").await?;
    // The cluster DNS reaches the API through the kubernetes Service: after the proxy.
    let (cm, deploy, svc) = dns_objects(spec);
    Api::<ConfigMap>::namespaced(client.clone(), "kube-system").patch("coredns", &pp, &Patch::Apply(cm)).await?;
    Api::<Service>::namespaced(client.clone(), "kube-system").patch("kube-dns", &pp, &Patch::Apply(svc)).await?;
    Api::<Deployment>::namespaced(client.clone(), "kube-system").patch("coredns", &pp, &Patch::Apply(deploy)).await?;
    let (classes, deploy, svc) = ingress_objects();
    let class_api: Api<IngressClass> = Api::all(client.clone());
    for class in classes {
        let name = class["metadata"]["name"].as_str().unwrap_or_default().to_string();
        class_api.patch(&name, &pp, &Patch::Apply(class)).await?;
    }
    Api::<Service>::namespaced(client.clone(), "kube-system").patch("podnet-ingress", &pp, &Patch::Apply(svc)).await?;
    Api::<Deployment>::namespaced(client.clone(), "kube-system")
        .patch("podnet-ingress", &pp, &Patch::Apply(deploy))
        .await?;
    wait_ready_pods(&pods, "k8s-app=kube-dns", 2, None, "the coredns pods").await?;
    wait_ready_pods(&pods, "app.kubernetes.io/name=podnet-ingress", 1, None, "the podnet-ingress pod").await
}
