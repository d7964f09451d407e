//! The agent's Node: registration (labels, addresses, capacity, node info, conditions) and
//! heartbeats — a Lease in `kube-node-lease` renewed every [`LEASE_RENEW`] and the Ready
//! condition's heartbeat, as kubelet does.

use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

/// How often the Lease is renewed (kubelet: 10 s with a 40 s duration).
pub const LEASE_RENEW: Duration = Duration::from_secs(10);
const LEASE_DURATION_SECONDS: i32 = 40;
/// How often the Node's status (conditions' heartbeats) is written.
pub const STATUS_UPDATE: Duration = Duration::from_secs(20);

/// The version podnet's agent reports as kubelet's.
pub const KUBELET_VERSION: &str = "v1.33.0-podnet";

/// What a Node says about its machine.
#[derive(Debug, Clone)]
pub struct NodeFacts {
    pub name: String,
    pub internal_ip: IpAddr,
    pub cpus: usize,
    pub memory_kib: u64,
    pub kernel: String,
    pub os_image: String,
    pub machine_id: String,
    pub boot_id: String,
}

impl NodeFacts {
    /// Reads the machine's facts from /proc and /etc.
    pub fn gather(name: &str, internal_ip: IpAddr) -> NodeFacts {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default().trim().to_string();
        let memory_kib = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        let os_image = read("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_else(|| "Linux".into());
        NodeFacts {
            name: name.to_string(),
            internal_ip,
            cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            memory_kib,
            kernel: read("/proc/sys/kernel/osrelease"),
            os_image,
            machine_id: read("/etc/machine-id"),
            boot_id: read("/proc/sys/kernel/random/boot_id"),
        }
    }
}

/// The Node's labels and status as the agent reports them (Ready, since the agent is running).
pub fn node_object(facts: &NodeFacts, now: &str) -> Value {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let resources = json!({"cpu": facts.cpus.to_string(), "memory": format!("{}Ki", facts.memory_kib),
        "pods": "110", "ephemeral-storage": "10Gi"});
    let condition = |t: &str, status: &str, reason: &str, message: &str| {
        json!({"type": t, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": facts.name, "labels": {
            "kubernetes.io/hostname": facts.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": arch,
            "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": arch}},
        "status": {
            "addresses": [{"type": "InternalIP", "address": facts.internal_ip.to_string()},
                          {"type": "Hostname", "address": facts.name}],
            "capacity": resources, "allocatable": resources,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": crate::kubelet::PORT}},
            "nodeInfo": {"architecture": arch, "bootID": facts.boot_id, "containerRuntimeVersion":
                format!("podnet://{}", env!("CARGO_PKG_VERSION")), "kernelVersion": facts.kernel,
                "kubeProxyVersion": "", "kubeletVersion": KUBELET_VERSION, "machineID": facts.machine_id,
                "operatingSystem": "linux", "osImage": facts.os_image, "systemUUID": facts.machine_id},
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "podnet agent is posting ready status"),
            ],
        }
    })
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Creates the Node, or brings an existing one's labels and status up to date.
pub async fn register(client: &kube::Client, facts: &NodeFacts) -> kube::Result<Node> {
    let nodes: Api<Node> = Api::all(client.clone());
    let obj = node_object(facts, &now());
    let node: Node = serde_json::from_value(obj.clone()).expect("a valid Node");
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let labels = json!({"metadata": {"labels": obj["metadata"]["labels"]}});
            nodes.patch(&facts.name, &PatchParams::default(), &Patch::Merge(&labels)).await?;
        }
        Err(e) => return Err(e),
    }
    // Status is a subresource: a create ignores it.
    let status = json!({"status": obj["status"]});
    nodes.patch_status(&facts.name, &PatchParams::default(), &Patch::Merge(&status)).await
}

/// Renews the node's Lease (creating it if needed).
pub async fn renew_lease(client: &kube::Client, node: &str) -> kube::Result<()> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let body = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": node, "namespace": "kube-node-lease",
            "ownerReferences": []},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": LEASE_DURATION_SECONDS, "renewTime": now}});
    match leases.patch(node, &PatchParams::default(), &Patch::Merge(&json!({"spec": body["spec"]}))).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => {
            let lease: Lease = serde_json::from_value(body).expect("a valid Lease");
            leases.create(&PostParams::default(), &lease).await.map(|_| ())
        }
        Err(e) => Err(e),
    }
}

/// Writes the heartbeat of every condition (keeping their transition times).
pub async fn heartbeat(client: &kube::Client, facts: &NodeFacts) -> kube::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let current = nodes.get_status(&facts.name).await?;
    let now = now();
    let mut fresh = node_object(facts, &now);
    let old = current.status.and_then(|s| s.conditions).unwrap_or_default();
    for c in fresh["status"]["conditions"].as_array_mut().into_iter().flatten() {
        let same = old
            .iter()
            .find(|o| Some(o.type_.as_str()) == c["type"].as_str() && Some(o.status.as_str()) == c["status"].as_str());
        if let Some(t) = same.and_then(|o| o.last_transition_time.as_ref()) {
            c["lastTransitionTime"] = json!(t.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
        }
    }
    let patch = json!({"status": {"conditions": fresh["status"]["conditions"]}});
    nodes.patch_status(&facts.name, &PatchParams::default(), &Patch::Strategic(&patch)).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_object_is_a_valid_ready_node() {
        let facts = NodeFacts {
            name: "node1".into(),
            internal_ip: "172.20.0.11".parse().unwrap(),
            cpus: 2,
            memory_kib: 4_000_000,
            kernel: "6.1".into(),
            os_image: "Debian".into(),
            machine_id: "m".into(),
            boot_id: "b".into(),
        };
        let node: Node = serde_json::from_value(node_object(&facts, "2026-11-22T10:00:00Z")).unwrap();
        let status = node.status.unwrap();
        assert_eq!(status.addresses.unwrap()[0].address, "172.20.0.11");
        let ready = status.conditions.unwrap().into_iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "True");
        assert_eq!(node.metadata.labels.unwrap()["kubernetes.io/hostname"], "node1");
    }
}
