//! The controllers that deal with nodes, against `podnet server` and the real kubectl: the
//! scheduler (the seeds' nodeSelectors, unschedulable pods, taints, cordons and readiness,
//! spreading), node IPAM (distinct blocks, kept across a restart, reused after a deletion,
//! exhaustion, flag validation) and the DaemonSet controller (one pod per eligible node, status,
//! a rolling update that `kubectl rollout status` follows).
//!
//! There is no node agent: the tests register the Node objects themselves, and a stand-in
//! kubelet (`FakeKubelet`) marks bound pods Running and Ready with an IP and finishes the
//! graceful deletion of pods on nodes, as a kubelet would.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{eventually, TestServer};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);

/// A tokio runtime for the kube client and the stand-in kubelet, beside the synchronous kubectl calls.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// How a test node looks.
struct NodeSpec<'a> {
    name: &'a str,
    ready: bool,
    labels: Value,
    spec: Value,
}

impl<'a> NodeSpec<'a> {
    fn ready(name: &'a str) -> Self {
        NodeSpec { name, ready: true, labels: json!({}), spec: json!({}) }
    }
}

/// Registers a node as a kubelet would: the object with the hostname label, then its status
/// (Ready or not, an InternalIP and a Hostname address).
async fn register(client: &kube::Client, n: NodeSpec<'_>) {
    static ADDRESS: AtomicU32 = AtomicU32::new(10);
    let api: Api<Node> = Api::all(client.clone());
    let mut labels = json!({"kubernetes.io/hostname": n.name, "kubernetes.io/os": "linux"});
    for (k, v) in n.labels.as_object().unwrap() {
        labels[k] = v.clone();
    }
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": n.name, "labels": labels},
        "spec": n.spec,
    }))
    .unwrap();
    api.create(&PostParams::default(), &node).await.expect("creating the node");
    let ip = format!("192.168.50.{}", ADDRESS.fetch_add(1, Ordering::Relaxed));
    let status = json!({"status": {
        "conditions": [{
            "type": "Ready",
            "status": if n.ready { "True" } else { "False" },
            "reason": if n.ready { "KubeletReady" } else { "KubeletNotReady" },
            "message": "registered by the test",
            "lastHeartbeatTime": "2024-01-01T00:00:00Z",
            "lastTransitionTime": "2024-01-01T00:00:00Z",
        }],
        "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": n.name}],
    }});
    api.patch_status(n.name, &PatchParams::default(), &Patch::Merge(&status)).await.expect("node status");
}

/// A stand-in kubelet for every node: bound pods become Running and Ready with an IP, and pods
/// being deleted are finished off (deleted with grace period 0). Stops when dropped.
struct FakeKubelet {
    task: tokio::task::JoinHandle<()>,
}

impl FakeKubelet {
    fn start(rt: &tokio::runtime::Runtime, client: kube::Client) -> FakeKubelet {
        let task = rt.spawn(async move {
            let api: Api<Pod> = Api::all(client.clone());
            let mut pods = watcher(api, watcher::Config::default()).default_backoff().applied_objects().boxed();
            let ip = AtomicU32::new(2);
            while let Some(event) = pods.next().await {
                let Ok(pod) = event else { continue };
                let (Some(ns), Some(name)) = (pod.metadata.namespace.clone(), pod.metadata.name.clone()) else {
                    continue;
                };
                if pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_none_or(str::is_empty) {
                    continue;
                }
                let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
                if pod.metadata.deletion_timestamp.is_some() {
                    let _ =
                        api.delete(&name, &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await;
                    continue;
                }
                let ready = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                if ready {
                    continue;
                }
                let n = ip.fetch_add(1, Ordering::Relaxed);
                let pod_ip = format!("10.244.{}.{}", n / 250, n % 250 + 2);
                let now = "2024-01-01T00:00:00Z";
                let patch = json!({"status": {
                    "phase": "Running",
                    "hostIP": "192.168.50.1",
                    "podIP": pod_ip,
                    "podIPs": [{"ip": pod_ip}],
                    "startTime": now,
                    "conditions": [
                        {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                        {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                        {"type": "Ready", "status": "True", "lastTransitionTime": now},
                    ],
                }});
                let _ = api.patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch)).await;
            }
        });
        FakeKubelet { task }
    }
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn jsonpath(s: &TestServer, what: &[&str], path: &str) -> String {
    let mut args: Vec<&str> = vec!["get"];
    args.extend_from_slice(what);
    let output = format!("jsonpath={path}");
    args.extend_from_slice(&["-o", &output]);
    s.ok(&args)
}

/// Waits until `f` holds, or panics with `what` and the last value seen.
fn wait_for<T: std::fmt::Debug>(what: &str, mut probe: impl FnMut() -> T, ok: impl Fn(&T) -> bool) -> T {
    let mut last = None;
    let found = eventually(WAIT, || {
        let v = probe();
        if ok(&v) {
            return Some(v);
        }
        last = Some(v);
        None
    });
    found.unwrap_or_else(|| panic!("timed out waiting for {what}; last seen: {last:?}"))
}

fn pod_yaml(name: &str, extra_spec: Value) -> String {
    let mut spec = json!({"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.9"}]});
    for (k, v) in extra_spec.as_object().unwrap() {
        spec[k] = v.clone();
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"test": "sched"}}, "spec": spec})
        .to_string()
}

fn node_of(s: &TestServer, pod: &str) -> String {
    jsonpath(s, &["pod", pod], "{.spec.nodeName}")
}

fn pod_scheduled_condition(s: &TestServer, pod: &str) -> String {
    jsonpath(
        s,
        &["pod", pod],
        "{range .status.conditions[?(@.type==\"PodScheduled\")]}{.status}/{.reason}/{.message}{end}",
    )
}

#[test]
fn seed_pods_land_on_the_nodes_their_selectors_name() {
    let s = TestServer::start();
    let rt = runtime();
    let client = rt.block_on(s.client());
    rt.block_on(async {
        register(&client, NodeSpec::ready("k8s-node1")).await;
        register(&client, NodeSpec::ready("k8s-node2")).await;
    });
    let manifest = common::seed_manifests().into_iter().find(|p| p.ends_with("pod-src-dest.yaml")).unwrap();
    s.ok(&["create", "-f", manifest.to_str().unwrap()]);
    wait_for("pod-src on k8s-node2", || node_of(&s, "pod-src"), |n| n == "k8s-node2");
    wait_for("pod-dest on k8s-node1", || node_of(&s, "pod-dest"), |n| n == "k8s-node1");
    assert!(pod_scheduled_condition(&s, "pod-src").starts_with("True"), "{}", pod_scheduled_condition(&s, "pod-src"));
    let describe = wait_for(
        "the Scheduled event",
        || s.ok(&["describe", "pod", "pod-src"]),
        |d| d.contains("Successfully assigned default/pod-src to k8s-node2"),
    );
    assert!(describe.contains("Scheduled") && describe.contains("default-scheduler"), "{describe}");
    let wide = s.ok(&["get", "pods", "-o", "wide"]);
    assert!(wide.lines().any(|l| l.starts_with("pod-dest") && l.contains("k8s-node1")), "{wide}");
}

#[test]
fn an_unschedulable_pod_says_why_and_waits_for_a_node() {
    let s = TestServer::start();
    let rt = runtime();
    let client = rt.block_on(s.client());
    rt.block_on(register(&client, NodeSpec::ready("k8s-node1")));
    s.ok_stdin(
        &["create", "-f", "-"],
        &pod_yaml("waiting", json!({"nodeSelector": {"kubernetes.io/hostname": "k8s-node3"}})),
    );
    let expected = "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.";
    let condition =
        wait_for("PodScheduled=False", || pod_scheduled_condition(&s, "waiting"), |c| c.starts_with("False"));
    assert_eq!(condition, format!("False/Unschedulable/{expected}"));
    let describe = wait_for(
        "the FailedScheduling event",
        || s.ok(&["describe", "pod", "waiting"]),
        |d| d.contains("FailedScheduling"),
    );
    assert!(describe.contains(expected) && describe.contains("default-scheduler"), "{describe}");
    assert!(describe.contains("Warning"), "{describe}");
    assert_eq!(node_of(&s, "waiting"), "");

    // The node it wants appears: it is scheduled there.
    rt.block_on(register(&client, NodeSpec::ready("k8s-node3")));
    wait_for("the pod on k8s-node3", || node_of(&s, "waiting"), |n| n == "k8s-node3");
    wait_for("PodScheduled=True", || pod_scheduled_condition(&s, "waiting"), |c| c.starts_with("True"));
}

#[test]
fn taints_tolerations_cordons_and_readiness() {
    let s = TestServer::start();
    let rt = runtime();
    let client = rt.block_on(s.client());
    rt.block_on(async {
        register(
            &client,
            NodeSpec {
                spec: json!({"taints": [{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}]}),
                ..NodeSpec::ready("tainted")
            },
        )
        .await;
        register(&client, NodeSpec { spec: json!({"unschedulable": true}), ..NodeSpec::ready("cordoned") }).await;
        register(&client, NodeSpec { ready: false, ..NodeSpec::ready("notready") }).await;
    });
    s.ok_stdin(&["create", "-f", "-"], &pod_yaml("plain", json!({})));
    let condition =
        wait_for("plain unschedulable", || pod_scheduled_condition(&s, "plain"), |c| c.starts_with("False"));
    assert_eq!(
        condition,
        "False/Unschedulable/0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: infra}, \
         1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, 1 node(s) were unschedulable."
    );

    // A toleration opens the tainted node.
    let tolerant =
        json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "infra", "effect": "NoSchedule"}]});
    s.ok_stdin(&["create", "-f", "-"], &pod_yaml("tolerant", tolerant));
    wait_for("tolerant on the tainted node", || node_of(&s, "tolerant"), |n| n == "tainted");
    // A toleration of another value does not.
    let wrong =
        json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"}]});
    s.ok_stdin(&["create", "-f", "-"], &pod_yaml("wrong-value", wrong));
    wait_for("wrong-value unschedulable", || pod_scheduled_condition(&s, "wrong-value"), |c| c.starts_with("False"));

    // Uncordoning makes room: the waiting pods are retried and land there.
    s.ok(&["uncordon", "cordoned"]);
    wait_for("plain on the uncordoned node", || node_of(&s, "plain"), |n| n == "cordoned");
    wait_for("wrong-value on the uncordoned node", || node_of(&s, "wrong-value"), |n| n == "cordoned");

    // A NoExecute taint keeps pods away too; the not-ready node takes pods once Ready.
    s.ok(&["taint", "nodes", "cordoned", "maintenance=now:NoExecute"]);
    s.ok(&["taint", "nodes", "tainted", "dedicated:NoSchedule-"]);
    s.ok(&["taint", "nodes", "tainted", "soft=yes:PreferNoSchedule"]);
    s.ok_stdin(&["create", "-f", "-"], &pod_yaml("soft", json!({})));
    wait_for("soft on the PreferNoSchedule node, the only one left", || node_of(&s, "soft"), |n| n == "tainted");
    rt.block_on(async {
        let api: Api<Node> = Api::all(client.clone());
        let ready = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
            "lastHeartbeatTime": "2024-01-01T00:00:01Z", "lastTransitionTime": "2024-01-01T00:00:01Z"}]}});
        api.patch_status("notready", &PatchParams::default(), &Patch::Strategic(&ready)).await.unwrap();
    });
    s.ok_stdin(&["create", "-f", "-"], &pod_yaml("after-ready", json!({})));
    wait_for("after-ready avoids PreferNoSchedule", || node_of(&s, "after-ready"), |n| n == "notready");
}

#[test]
fn six_pods_spread_two_per_node() {
    let s = TestServer::start();
    let rt = runtime();
    let client = rt.block_on(s.client());
    rt.block_on(async {
        for n in ["node-a", "node-b", "node-c"] {
            register(&client, NodeSpec::ready(n)).await;
        }
    });
    let manifests: Vec<String> = (0..6).map(|i| pod_yaml(&format!("spread-{i}"), json!({}))).collect();
    s.ok_stdin(&["create", "-f", "-"], &manifests.join("\n---\n"));
    let placement = wait_for(
        "six bound pods",
        || jsonpath(&s, &["pods", "-l", "test=sched"], "{range .items[*]}{.spec.nodeName}{\"\\n\"}{end}"),
        |out| out.lines().filter(|l| !l.is_empty()).count() == 6,
    );
    let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
    for node in placement.lines() {
        *per_node.entry(node).or_default() += 1;
    }
    assert_eq!(per_node, BTreeMap::from([("node-a", 2), ("node-b", 2), ("node-c", 2)]));
}

fn pod_cidrs(s: &TestServer) -> BTreeMap<String, String> {
    let out =
        jsonpath(s, &["nodes"], "{range .items[*]}{.metadata.name}={.spec.podCIDR}={.spec.podCIDRs[*]}{\"\\n\"}{end}");
    out.lines()
        .filter_map(|l| {
            let mut parts = l.split('=');
            let (name, cidr, cidrs) = (parts.next()?, parts.next()?, parts.next()?);
            assert_eq!(cidr, cidrs, "podCIDRs is [podCIDR] for {name}");
            Some((name.to_string(), cidr.to_string()))
        })
        .collect()
}

fn cidr_of(s: &TestServer, node: &str) -> String {
    wait_for(&format!("a pod CIDR for {node}"), || jsonpath(s, &["node", node], "{.spec.podCIDR}"), |c| !c.is_empty())
}

#[test]
fn node_ipam_allocates_distinct_blocks_keeps_them_and_reuses_released_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = TestServer::start_in(dir.path(), "127.0.0.1:0", &[]);
    let rt = runtime();
    let client = rt.block_on(s.client());
    rt.block_on(async {
        for n in ["n1", "n2", "n3"] {
            register(&client, NodeSpec::ready(n)).await;
        }
        // A node that comes with its own pod CIDR keeps it.
        register(&client, NodeSpec { spec: json!({"podCIDR": "10.244.3.0/24"}), ..NodeSpec::ready("preset") }).await;
    });
    for n in ["n1", "n2", "n3"] {
        cidr_of(&s, n);
    }
    let before = pod_cidrs(&s);
    let blocks: BTreeSet<&String> = before.values().collect();
    assert_eq!(blocks.len(), 4, "distinct: {before:?}");
    assert_eq!(before["preset"], "10.244.3.0/24");
    for (node, cidr) in &before {
        assert!(cidr.starts_with("10.244.") && cidr.ends_with(".0/24"), "{node}: {cidr}");
    }
    let expected: BTreeSet<String> = (0..4).map(|i| format!("10.244.{i}.0/24")).collect();
    assert_eq!(before.values().cloned().collect::<BTreeSet<_>>(), expected, "the lowest free blocks");
    let describe = s.ok(&["describe", "node", "n1"]);
    assert!(describe.contains("PodCIDR:") && describe.contains(&before["n1"]), "{describe}");

    // A restart rebuilds the allocation from the nodes: nothing moves, nothing is handed out twice.
    let addr = s.addr.to_string();
    s.stop();
    drop(client);
    let s = TestServer::start_in(dir.path(), &addr, &[]);
    let client = rt.block_on(s.client());
    assert_eq!(pod_cidrs(&s), before);
    rt.block_on(register(&client, NodeSpec::ready("n4")));
    assert_eq!(cidr_of(&s, "n4"), "10.244.4.0/24");

    // Deleting a node releases its block, which the next node gets.
    s.ok(&["delete", "node", "n2"]);
    rt.block_on(register(&client, NodeSpec::ready("n5")));
    assert_eq!(cidr_of(&s, "n5"), before["n2"]);
    let after = pod_cidrs(&s);
    assert_eq!(after.values().collect::<BTreeSet<_>>().len(), after.len(), "still distinct: {after:?}");
}

#[test]
fn node_ipam_reports_an_exhausted_range_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_in(dir.path(), "127.0.0.1:0", &["--cluster-cidr", "10.250.0.0/23"]);
    let rt = runtime();
    let client = rt.block_on(s.client());
    rt.block_on(async {
        for n in ["a", "b"] {
            register(&client, NodeSpec::ready(n)).await;
        }
    });
    // Both blocks are taken (in whichever order the controller saw the two nodes).
    let (a, b) = (cidr_of(&s, "a"), cidr_of(&s, "b"));
    assert_eq!(BTreeSet::from([a.as_str(), b.as_str()]), BTreeSet::from(["10.250.0.0/24", "10.250.1.0/24"]));
    rt.block_on(register(&client, NodeSpec::ready("c")));
    let events = wait_for(
        "a CIDRNotAvailable event",
        || s.ok(&["get", "events", "-A", "--field-selector", "involvedObject.name=c,reason=CIDRNotAvailable"]),
        |out| out.contains("CIDRNotAvailable"),
    );
    assert!(events.contains("Node c status is now: CIDRNotAvailable") && events.contains("Warning"), "{events}");
    let describe = s.ok(&["describe", "node", "c"]);
    assert!(describe.contains("CIDRNotAvailable"), "{describe}");
    assert_eq!(jsonpath(&s, &["node", "c"], "{.spec.podCIDR}"), "");
    s.ok(&["delete", "node", "b"]);
    assert_eq!(cidr_of(&s, "c"), b, "c gets b's block once b is gone");
}

#[test]
fn node_ipam_rejects_bad_flags_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_in(dir.path(), "127.0.0.1:0", &["--controllers=none"]);
    let check = |flags: &[&str], expected: &str| {
        let mut child = Command::new(common::podnet_bin())
            .arg("controllers")
            .arg("--kubeconfig")
            .arg(s.kubeconfig())
            .arg("--controllers=nodeipam")
            .args(flags)
            .env("PODNET_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let exited = eventually(WAIT, || child.try_wait().unwrap());
        if exited.is_none() {
            let _ = child.kill();
            panic!("podnet controllers {flags:?} kept running");
        }
        let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
        assert!(stderr.contains(expected), "{flags:?}: {stderr}");
    };
    check(&["--cluster-cidr", "10.244.0.0/33"], "--cluster-cidr \"10.244.0.0/33\" is not a CIDR");
    check(&["--cluster-cidr", "10.244.1.0/16"], "has host bits set: the network is 10.244.0.0/16");
    check(&["--node-cidr-mask-size", "8"], "--node-cidr-mask-size 8 must not be smaller than the prefix length");
}

/// The pods a label selector matches, by node: node → (pod name, hash, image, ready, terminating).
type Placement = BTreeMap<String, Vec<(String, String, String, bool, bool)>>;

fn daemon_pods(s: &TestServer, selector: &str) -> Placement {
    let out = s.ok(&["get", "pods", "-l", selector, "-o", "json"]);
    let list: Value = serde_json::from_str(&out).unwrap();
    let mut placement = Placement::new();
    for pod in list["items"].as_array().unwrap() {
        let node = pod["spec"]["nodeName"].as_str().unwrap_or("").to_string();
        let ready = pod["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
        placement.entry(node).or_default().push((
            pod["metadata"]["name"].as_str().unwrap().to_string(),
            pod["metadata"]["labels"]["controller-revision-hash"].as_str().unwrap_or("").to_string(),
            pod["spec"]["containers"][0]["image"].as_str().unwrap_or("").to_string(),
            ready,
            pod["metadata"]["deletionTimestamp"].is_string(),
        ));
    }
    placement
}

fn daemonset_yaml(name: &str, extra_template_spec: Value) -> String {
    let mut spec = json!({"containers": [{"name": "proxy", "image": "registry.k8s.io/pause:3.9"}]});
    for (k, v) in extra_template_spec.as_object().unwrap() {
        spec[k] = v.clone();
    }
    json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        },
    })
    .to_string()
}

/// One running, ready pod on each of `nodes` and nowhere else.
fn one_ready_pod_on(placement: &Placement, nodes: &[&str]) -> bool {
    placement.keys().map(String::as_str).collect::<Vec<_>>() == nodes
        && placement.values().all(|pods| pods.len() == 1 && pods[0].3 && !pods[0].4)
}

fn ds_status(s: &TestServer, name: &str) -> String {
    jsonpath(
        s,
        &["ds", name],
        "{.status.desiredNumberScheduled} {.status.currentNumberScheduled} {.status.numberReady} \
         {.status.updatedNumberScheduled} {.status.numberAvailable} {.status.numberMisscheduled}",
    )
}

#[test]
fn a_daemonset_runs_one_pod_per_eligible_node() {
    let s = TestServer::start();
    let rt = runtime();
    let client = rt.block_on(s.client());
    let _kubelet = FakeKubelet::start(&rt, client.clone());
    rt.block_on(async {
        register(&client, NodeSpec::ready("n1")).await;
        register(&client, NodeSpec::ready("n2")).await;
    });
    s.ok_stdin(&["create", "-f", "-"], &daemonset_yaml("proxy", json!({})));
    wait_for("a ready pod on n1 and n2", || daemon_pods(&s, "app=proxy"), |p| one_ready_pod_on(p, &["n1", "n2"]));
    wait_for("the status", || ds_status(&s, "proxy"), |st| st == "2 2 2 2 2 0");
    let get = s.ok(&["get", "ds", "proxy"]);
    let row: Vec<&str> = get.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..6], ["proxy", "2", "2", "2", "2", "2"], "{get}");

    // The pods are the DaemonSet's, pinned by node affinity and bound by the scheduler.
    let pod: Value = serde_json::from_str(&s.ok(&["get", "pods", "-l", "app=proxy", "-o", "json"])).unwrap();
    let first = &pod["items"][0];
    assert_eq!(first["metadata"]["ownerReferences"][0]["kind"], "DaemonSet");
    assert_eq!(first["metadata"]["ownerReferences"][0]["controller"], true);
    let terms = &first["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
    assert_eq!(terms["nodeSelectorTerms"][0]["matchFields"][0]["values"][0], first["spec"]["nodeName"]);
    let tolerations = first["spec"]["tolerations"].to_string();
    for key in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable", "node.kubernetes.io/unschedulable"] {
        assert!(tolerations.contains(key), "{tolerations}");
    }
    let describe = s.ok(&["describe", "ds", "proxy"]);
    assert!(describe.contains("SuccessfulCreate") && describe.contains("Created pod: proxy-"), "{describe}");

    // A new node gets its pod; a deleted node's pod goes.
    rt.block_on(register(&client, NodeSpec::ready("n3")));
    wait_for("a pod on n3", || daemon_pods(&s, "app=proxy"), |p| one_ready_pod_on(p, &["n1", "n2", "n3"]));
    s.ok(&["delete", "node", "n2"]);
    wait_for("n2's pod gone", || daemon_pods(&s, "app=proxy"), |p| one_ready_pod_on(p, &["n1", "n3"]));
    wait_for("the status", || ds_status(&s, "proxy"), |st| st == "2 2 2 2 2 0");

    // A nodeSelector restricts it; relabelling moves it.
    s.ok(&["label", "node", "n1", "role=edge"]);
    s.ok_stdin(&["create", "-f", "-"], &daemonset_yaml("edge", json!({"nodeSelector": {"role": "edge"}})));
    wait_for("edge on n1 only", || daemon_pods(&s, "app=edge"), |p| one_ready_pod_on(p, &["n1"]));
    wait_for("the status", || ds_status(&s, "edge"), |st| st == "1 1 1 1 1 0");
    s.ok(&["label", "node", "n3", "role=edge"]);
    s.ok(&["label", "node", "n1", "role-"]);
    wait_for("edge on n3 only", || daemon_pods(&s, "app=edge"), |p| one_ready_pod_on(p, &["n3"]));
    let describe = s.ok(&["describe", "ds", "edge"]);
    assert!(describe.contains("SuccessfulDelete") && describe.contains("Deleted pod: edge-"), "{describe}");
    // The proxy was never disturbed.
    wait_for("the status", || ds_status(&s, "proxy"), |st| st == "2 2 2 2 2 0");
}

#[test]
fn a_daemonset_template_change_rolls_out_one_node_at_a_time() {
    let s = TestServer::start();
    let rt = runtime();
    let client = rt.block_on(s.client());
    let _kubelet = FakeKubelet::start(&rt, client.clone());
    let nodes = ["n1", "n2", "n3"];
    rt.block_on(async {
        for n in nodes {
            register(&client, NodeSpec::ready(n)).await;
        }
    });
    s.ok_stdin(&["create", "-f", "-"], &daemonset_yaml("proxy", json!({})));
    let out = s.ok(&["rollout", "status", "ds/proxy", "--timeout=90s"]);
    assert!(out.contains("daemon set \"proxy\" successfully rolled out"), "{out}");
    let first = wait_for("three ready pods", || daemon_pods(&s, "app=proxy"), |p| one_ready_pod_on(p, &nodes));
    let old_hash = first["n1"][0].1.clone();
    assert!(!old_hash.is_empty());

    // Watch the pods through the update: never more than one node without a ready pod.
    let worst = Arc::new(Mutex::new(0usize));
    let synced = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let observer = {
        let (client, worst, synced) = (client.clone(), worst.clone(), synced.clone());
        rt.spawn(async move {
            let api: Api<Pod> = Api::namespaced(client, "default");
            let config = watcher::Config::default().labels("app=proxy");
            let mut events = watcher(api, config).boxed();
            let mut pods: BTreeMap<String, Pod> = BTreeMap::new();
            let mut init: BTreeMap<String, Pod> = BTreeMap::new();
            while let Some(Ok(event)) = events.next().await {
                match event {
                    watcher::Event::Init => init.clear(),
                    watcher::Event::InitApply(p) => {
                        init.insert(p.metadata.name.clone().unwrap(), p);
                    }
                    watcher::Event::InitDone => {
                        pods = std::mem::take(&mut init);
                        synced.store(true, Ordering::SeqCst);
                    }
                    watcher::Event::Apply(p) => {
                        pods.insert(p.metadata.name.clone().unwrap(), p);
                    }
                    watcher::Event::Delete(p) => {
                        pods.remove(p.metadata.name.as_deref().unwrap());
                    }
                }
                if !synced.load(Ordering::SeqCst) {
                    continue;
                }
                let serving: BTreeSet<&str> = pods
                    .values()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .filter(|p| {
                        p.status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                    })
                    .filter_map(|p| p.spec.as_ref()?.node_name.as_deref())
                    .collect();
                let unavailable = nodes.iter().filter(|n| !serving.contains(*n)).count();
                let mut w = worst.lock().unwrap();
                *w = (*w).max(unavailable);
            }
        })
    };
    wait_for("the observer's first list", || synced.load(Ordering::SeqCst), |s| *s);
    assert_eq!(*worst.lock().unwrap(), 0);

    s.ok(&["set", "image", "ds/proxy", "proxy=registry.k8s.io/pause:3.10"]);
    let out = s.ok(&["rollout", "status", "ds/proxy", "--timeout=120s"]);
    assert!(out.contains("daemon set \"proxy\" successfully rolled out"), "{out}");
    let after = wait_for("three new ready pods", || daemon_pods(&s, "app=proxy"), |p| one_ready_pod_on(p, &nodes));
    for (node, pods) in &after {
        let (_, hash, image, _, _) = &pods[0];
        assert_ne!(hash, &old_hash, "{node}");
        assert_eq!(image, "registry.k8s.io/pause:3.10", "{node}");
    }
    assert_eq!(ds_status(&s, "proxy"), "3 3 3 3 3 0");
    observer.abort();
    assert_eq!(*worst.lock().unwrap(), 1, "maxUnavailable 1: one node at a time");
    let generation = jsonpath(&s, &["ds", "proxy"], "{.metadata.generation} {.status.observedGeneration}");
    assert_eq!(generation, "2 2");
}
