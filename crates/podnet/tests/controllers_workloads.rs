//! The ReplicaSet and Deployment controllers against `podnet server`, driven with the real
//! kubectl: pods from templates, replacement, scaling, adoption, rolling updates within
//! maxSurge/maxUnavailable, Recreate, pause, rollback, history, and convergence when the
//! controllers are killed at any moment.
//!
//! There is no node agent: [`make_pods_ready`] stands in for one, marking pods Running and Ready
//! with an IP, and finishing the deletion of pods that a node would have stopped.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use common::{eventually, podnet_bin, seed_manifests, TestServer};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::watcher;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);

fn seed(name: &str) -> String {
    let path = seed_manifests().into_iter().find(|p| p.ends_with(name)).unwrap_or_else(|| panic!("no seed {name}"));
    path.to_str().unwrap().to_string()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// A stand-in for the node agent, running until dropped: every pod gets phase Running, a Ready
/// condition and an IP; pods being deleted are finished (deleted with grace period 0).
struct Kubelet {
    stop: Arc<AtomicBool>,
    ready: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn make_pods_ready(s: &TestServer) -> Kubelet {
    let stop = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(AtomicBool::new(true));
    let kubeconfig = s.kubeconfig();
    let thread = {
        let (stop, ready) = (stop.clone(), ready.clone());
        std::thread::spawn(move || {
            runtime().block_on(async move {
                let kc = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
                let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.unwrap();
                let client = kube::Client::try_from(config).unwrap();
                let next_ip = AtomicU32::new(2);
                while !stop.load(Ordering::SeqCst) {
                    if let Ok(pods) = Api::<Pod>::all(client.clone()).list(&ListParams::default()).await {
                        for pod in pods {
                            let api: Api<Pod> =
                                Api::namespaced(client.clone(), pod.metadata.namespace.as_deref().unwrap());
                            let name = pod.metadata.name.clone().unwrap();
                            if pod.metadata.deletion_timestamp.is_some() {
                                let _ = api.delete(&name, &DeleteParams::default().grace_period(0)).await;
                            } else if ready.load(Ordering::SeqCst) && !is_ready(&pod) {
                                let n = next_ip.fetch_add(1, Ordering::SeqCst);
                                let ip = format!("10.244.{}.{}", n / 250, n % 250 + 2);
                                let now =
                                    k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
                                let conditions: Vec<Value> =
                                    ["PodScheduled", "Initialized", "ContainersReady", "Ready"]
                                        .iter()
                                        .map(|t| json!({"type": t, "status": "True", "lastTransitionTime": now}))
                                        .collect();
                                let patch = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                                                              "startTime": now, "conditions": conditions}});
                                let _ = api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await;
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        })
    };
    Kubelet { stop, ready, thread: Some(thread) }
}

impl Kubelet {
    /// New pods stay not ready until [`Kubelet::resume`].
    fn pause(&self) {
        self.ready.store(false, Ordering::SeqCst);
    }

    fn resume(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The pods of a label selector, as JSON.
fn pods(s: &TestServer, selector: &str) -> Vec<Value> {
    let out = s.ok(&["get", "pods", "-l", selector, "-o", "json"]);
    let list: Value = serde_json::from_str(&out).unwrap();
    list["items"].as_array().cloned().unwrap_or_default()
}

/// Pods not being deleted.
fn live(pods: &[Value]) -> Vec<Value> {
    pods.iter().filter(|p| p["metadata"]["deletionTimestamp"].is_null()).cloned().collect()
}

fn name(obj: &Value) -> String {
    obj["metadata"]["name"].as_str().unwrap_or_default().to_string()
}

fn pod_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

fn controller_uid(obj: &Value) -> Option<String> {
    obj["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true)
        .and_then(|r| r["uid"].as_str())
        .map(str::to_string)
}

fn get(s: &TestServer, what: &[&str]) -> Value {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    args.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&s.ok(&args)).unwrap()
}

fn jsonpath(s: &TestServer, what: &[&str], path: &str) -> String {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    let expr = format!("jsonpath={path}");
    args.extend_from_slice(&["-o", &expr]);
    s.ok(&args)
}

/// Waits until `f` returns Some, failing with `what` and the last value it saw.
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let mut last = String::new();
    eventually(WAIT, || match f() {
        Ok(v) => Some(v),
        Err(e) => {
            last = e;
            None
        }
    })
    .unwrap_or_else(|| panic!("timed out waiting for {what}; last seen: {last}"))
}

/// The ReplicaSets of a selector, by revision.
fn replicasets(s: &TestServer, selector: &str) -> Vec<Value> {
    let out = s.ok(&["get", "rs", "-l", selector, "-o", "json"]);
    let list: Value = serde_json::from_str(&out).unwrap();
    let mut items = list["items"].as_array().cloned().unwrap_or_default();
    items.sort_by_key(|rs| (annotation(rs, "deployment.kubernetes.io/revision").parse::<i64>().unwrap_or(0), name(rs)));
    items
}

fn annotation(obj: &Value, key: &str) -> String {
    obj["metadata"]["annotations"][key].as_str().unwrap_or_default().to_string()
}

#[test]
fn replicaset_keeps_replacing_and_scaling_pods() {
    let s = TestServer::start();
    let kubelet = make_pods_ready(&s);
    s.ok(&["apply", "-f", &seed("myweb-rs.yaml")]);
    let rs = get(&s, &["rs", "myweb-rs"]);
    let uid = rs["metadata"]["uid"].as_str().unwrap().to_string();

    // Three pods named myweb-rs-xxxxx, controlled by the ReplicaSet, with the template's labels.
    let first = wait_for("3 ready pods", || {
        let p = live(&pods(&s, "app=web,env=dev"));
        if p.len() == 3 && p.iter().all(pod_ready) {
            Ok(p)
        } else {
            Err(format!("{} pods", p.len()))
        }
    });
    for p in &first {
        let n = name(p);
        let suffix = n.strip_prefix("myweb-rs-").unwrap_or_else(|| panic!("{n}"));
        assert!(suffix.len() == 5 && suffix.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()), "{n}");
        assert_eq!(p["metadata"]["generateName"], "myweb-rs-");
        assert_eq!(controller_uid(p).as_deref(), Some(uid.as_str()), "{p}");
        let owner = &p["metadata"]["ownerReferences"][0];
        assert_eq!((owner["kind"].as_str(), owner["blockOwnerDeletion"].as_bool()), (Some("ReplicaSet"), Some(true)));
        assert_eq!(p["spec"]["containers"][0]["image"], "ghcr.io/c1t1d0s7/go-myweb");
    }
    let status_path = "{.status.replicas} {.status.fullyLabeledReplicas} {.status.readyReplicas} \
                       {.status.availableReplicas} {.status.observedGeneration}";
    wait_for("the status", || {
        let st = jsonpath(&s, &["rs", "myweb-rs"], status_path);
        if st == "3 3 3 3 1" {
            Ok(())
        } else {
            Err(st)
        }
    });

    // A deleted pod is replaced.
    let victim = name(&first[0]);
    s.ok(&["delete", "pod", &victim]);
    wait_for("a replacement", || {
        let p = live(&pods(&s, "app=web,env=dev"));
        let names: Vec<String> = p.iter().map(name).collect();
        if p.len() == 3 && !names.contains(&victim) {
            Ok(())
        } else {
            Err(format!("{names:?}"))
        }
    });

    // A pod being deleted (held here by a finalizer) no longer counts: it is replaced at once.
    let held = wait_for("3 pods", || {
        let p = live(&pods(&s, "app=web,env=dev"));
        if p.len() == 3 {
            Ok(name(&p[0]))
        } else {
            Err(format!("{} pods", p.len()))
        }
    });
    s.ok(&["patch", "pod", &held, "--type=merge", "-p", r#"{"metadata":{"finalizers":["example.com/hold"]}}"#]);
    s.ok(&["delete", "pod", &held, "--wait=false"]);
    wait_for("a replacement of the terminating pod", || {
        let all = pods(&s, "app=web,env=dev");
        let st = jsonpath(&s, &["rs", "myweb-rs"], "{.status.replicas}");
        let terminating = all.iter().any(|p| name(p) == held && !p["metadata"]["deletionTimestamp"].is_null());
        if all.len() == 4 && live(&all).len() == 3 && terminating && st == "3" {
            Ok(())
        } else {
            Err(format!("{} pods, {} live, status {st}", all.len(), live(&all).len()))
        }
    });
    s.ok(&["patch", "pod", &held, "--type=json", "-p", r#"[{"op":"remove","path":"/metadata/finalizers"}]"#]);
    wait_for("the terminating pod gone", || {
        let n = pods(&s, "app=web,env=dev").len();
        if n == 3 {
            Ok(())
        } else {
            Err(format!("{n} pods"))
        }
    });

    // kubectl scale 3 → 10 → 1; the new pods are not ready, so they go first.
    let ready_before: BTreeSet<String> = wait_for("3 ready pods", || {
        let p = live(&pods(&s, "app=web,env=dev"));
        if p.len() == 3 && p.iter().all(pod_ready) {
            Ok(p.iter().map(name).collect())
        } else {
            Err(format!("{} pods", p.len()))
        }
    });
    kubelet.pause();
    s.ok(&["scale", "rs", "myweb-rs", "--replicas=10"]);
    wait_for("10 pods", || {
        let n = live(&pods(&s, "app=web,env=dev")).len();
        if n == 10 {
            Ok(())
        } else {
            Err(format!("{n} pods"))
        }
    });
    wait_for("the status of 10", || {
        let st = jsonpath(&s, &["rs", "myweb-rs"], "{.status.replicas} {.status.readyReplicas}");
        if st == "10 3" {
            Ok(())
        } else {
            Err(st)
        }
    });
    s.ok(&["scale", "rs", "myweb-rs", "--replicas=1"]);
    let last = wait_for("1 pod", || {
        let p = live(&pods(&s, "app=web,env=dev"));
        if p.len() == 1 {
            Ok(name(&p[0]))
        } else {
            Err(format!("{} pods", p.len()))
        }
    });
    assert!(ready_before.contains(&last), "{last} was not one of the ready pods {ready_before:?}");
    kubelet.resume();
    wait_for("the status of 1", || {
        let st = jsonpath(&s, &["rs", "myweb-rs"], &format!("{status_path} {{.metadata.generation}}"));
        if st == "1 1 1 1 3 3" {
            Ok(())
        } else {
            Err(st)
        }
    });
    // It stays at one.
    assert_eq!(live(&pods(&s, "app=web,env=dev")).len(), 1);

    // kubectl get rs shows the counts; kubectl describe shows the events.
    let table = s.ok(&["get", "rs", "myweb-rs"]);
    assert!(
        table.lines().nth(1).is_some_and(|l| l.split_whitespace().take(4).eq(["myweb-rs", "1", "1", "1"])),
        "{table}"
    );
    let describe = s.ok(&["describe", "rs", "myweb-rs"]);
    for want in [
        "SuccessfulCreate",
        "Created pod: myweb-rs-",
        "SuccessfulDelete",
        "Deleted pod: myweb-rs-",
        "replicaset-controller",
    ] {
        assert!(describe.contains(want), "{want} missing from:\n{describe}");
    }
}

#[test]
fn replicaset_adopts_orphans_and_releases_pods() {
    let s = TestServer::start();
    let _kubelet = make_pods_ready(&s);
    // Two orphans that the ReplicaSet's selector picks, and one it does not.
    for (n, app) in [("orphan-1", "web"), ("orphan-2", "web"), ("bystander", "other")] {
        let pod = format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {n}\n  labels:\n    app: {app}\n    env: dev\n\
             spec:\n  containers:\n  - name: c\n    image: busybox\n"
        );
        s.ok_stdin(&["apply", "-f", "-"], &pod);
    }
    s.ok(&["apply", "-f", &seed("myweb-rs.yaml")]);
    let uid = jsonpath(&s, &["rs", "myweb-rs"], "{.metadata.uid}");
    let owned = wait_for("3 owned pods", || {
        let p = live(&pods(&s, "app=web,env=dev"));
        let owned = p.iter().filter(|p| controller_uid(p).as_deref() == Some(uid.as_str())).count();
        if p.len() == 3 && owned == 3 {
            Ok(p)
        } else {
            Err(format!("{} pods, {owned} owned", p.len()))
        }
    });
    let names: BTreeSet<String> = owned.iter().map(name).collect();
    assert!(names.contains("orphan-1") && names.contains("orphan-2"), "{names:?}");
    assert_eq!(names.iter().filter(|n| n.starts_with("myweb-rs-")).count(), 1, "{names:?}");
    assert!(get(&s, &["pod", "bystander"])["metadata"]["ownerReferences"].is_null());

    // A pod relabeled out of the selector is released and replaced.
    s.ok(&["label", "pod", "orphan-1", "env=prod", "--overwrite"]);
    wait_for("the release and a replacement", || {
        let released = get(&s, &["pod", "orphan-1"]);
        let refs = released["metadata"]["ownerReferences"].as_array().map_or(0, Vec::len);
        let p = live(&pods(&s, "app=web,env=dev"));
        let owned = p.iter().filter(|p| controller_uid(p).as_deref() == Some(uid.as_str())).count();
        if refs == 0 && p.len() == 3 && owned == 3 {
            Ok(())
        } else {
            Err(format!("orphan-1 has {refs} owners; {} pods, {owned} owned", p.len()))
        }
    });
}

/// A view of the pods of one selector at one moment of a watch: name → (pod-template-hash,
/// ready, being deleted).
type Snapshot = BTreeMap<String, (String, bool, bool)>;

/// Records every state of the pods of `selector`, as a watch delivers them, until stopped.
struct PodWatch {
    snapshots: Arc<Mutex<Vec<Snapshot>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl PodWatch {
    fn start(s: &TestServer, selector: &str) -> PodWatch {
        let snapshots = Arc::new(Mutex::new(Vec::new()));
        let synced = Arc::new(AtomicBool::new(false));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let kubeconfig = s.kubeconfig();
        let selector = selector.to_string();
        let thread = {
            let (snapshots, synced) = (snapshots.clone(), synced.clone());
            std::thread::spawn(move || {
                runtime().block_on(async move {
                    let kc = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
                    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.unwrap();
                    let api: Api<Pod> = Api::default_namespaced(kube::Client::try_from(config).unwrap());
                    let mut stream = watcher(api, watcher::Config::default().labels(&selector)).boxed();
                    let mut state = Snapshot::new();
                    let record = async {
                        while let Some(event) = stream.next().await {
                            let view = |p: &Pod| {
                                let labels = p.metadata.labels.clone().unwrap_or_default();
                                let hash = labels.get("pod-template-hash").cloned().unwrap_or_default();
                                (hash, is_ready(p), p.metadata.deletion_timestamp.is_some())
                            };
                            match event {
                                Ok(watcher::Event::Init) => state.clear(),
                                Ok(watcher::Event::InitApply(p)) => {
                                    state.insert(p.metadata.name.clone().unwrap(), view(&p));
                                }
                                Ok(watcher::Event::InitDone) => {
                                    snapshots.lock().unwrap().push(state.clone());
                                    synced.store(true, Ordering::SeqCst);
                                }
                                Ok(watcher::Event::Apply(p)) => {
                                    state.insert(p.metadata.name.clone().unwrap(), view(&p));
                                    snapshots.lock().unwrap().push(state.clone());
                                }
                                Ok(watcher::Event::Delete(p)) => {
                                    state.remove(p.metadata.name.as_deref().unwrap());
                                    snapshots.lock().unwrap().push(state.clone());
                                }
                                Err(e) => panic!("pod watch failed: {e}"),
                            }
                        }
                    };
                    tokio::select! {
                        _ = stopped => {}
                        _ = record => {}
                    }
                })
            })
        };
        assert!(
            eventually(WAIT, || synced.load(Ordering::SeqCst).then_some(())).is_some(),
            "the pod watch did not sync"
        );
        PodWatch { snapshots, stop: Some(stop), thread: Some(thread) }
    }

    /// Waits until the latest state satisfies `f`.
    fn wait_until(&self, what: &str, f: impl Fn(&Snapshot) -> bool) {
        let seen = eventually(WAIT, || self.snapshots.lock().unwrap().last().is_some_and(&f).then_some(()));
        assert!(seen.is_some(), "the pod watch never saw {what}: {:?}", self.snapshots.lock().unwrap().last());
    }

    /// Stops and returns every state seen.
    fn finish(mut self) -> Vec<Snapshot> {
        let _ = self.stop.take().unwrap().send(());
        self.thread.take().unwrap().join().unwrap();
        std::mem::take(&mut *self.snapshots.lock().unwrap())
    }
}

/// Live (not terminating) pods of a snapshot, and how many of them are ready.
fn counts(snapshot: &Snapshot) -> (usize, usize) {
    let live: Vec<_> = snapshot.values().filter(|(_, _, deleting)| !deleting).collect();
    (live.len(), live.iter().filter(|(_, ready, _)| *ready).count())
}

fn rollout_status(s: &TestServer, deploy: &str) {
    let out = s.ok(&["rollout", "status", &format!("deploy/{deploy}"), "--timeout=60s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
}

#[test]
fn deployment_rolls_out_updates_and_rolls_back() {
    let s = TestServer::start();
    let _kubelet = make_pods_ready(&s);
    s.ok(&["apply", "-f", &seed("deploy-nginx.yaml")]);
    rollout_status(&s, "webui");
    let deploy = get(&s, &["deploy", "webui"]);
    let d_uid = deploy["metadata"]["uid"].as_str().unwrap().to_string();
    assert_eq!(annotation(&deploy, "deployment.kubernetes.io/revision"), "1");

    // One ReplicaSet, webui-<hash>, with the hash in its labels, selector and template.
    let rss = replicasets(&s, "app=webui");
    assert_eq!(rss.len(), 1, "{rss:?}");
    let first = &rss[0];
    let hash = first["metadata"]["labels"]["pod-template-hash"].as_str().unwrap().to_string();
    assert_eq!(name(first), format!("webui-{hash}"));
    assert!(hash.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)) && hash.len() <= 10, "{hash}");
    assert_eq!(first["spec"]["selector"]["matchLabels"]["pod-template-hash"], hash.as_str());
    assert_eq!(first["spec"]["template"]["metadata"]["labels"]["pod-template-hash"], hash.as_str());
    assert_eq!(controller_uid(first).as_deref(), Some(d_uid.as_str()));
    assert_eq!(annotation(first, "deployment.kubernetes.io/revision"), "1");
    assert_eq!(annotation(first, "deployment.kubernetes.io/desired-replicas"), "3");
    assert_eq!(annotation(first, "deployment.kubernetes.io/max-replicas"), "4");
    let p = live(&pods(&s, "app=webui"));
    assert_eq!(p.len(), 3);
    assert!(p.iter().all(|p| name(p).starts_with(&format!("webui-{hash}-"))), "{p:?}");

    // Status and conditions as kubectl shows them.
    let status = &get(&s, &["deploy", "webui"])["status"];
    assert_eq!(
        (&status["replicas"], &status["updatedReplicas"], &status["readyReplicas"], &status["availableReplicas"]),
        (&json!(3), &json!(3), &json!(3), &json!(3)),
        "{status}"
    );
    let conditions = status["conditions"].as_array().unwrap();
    let cond = |t: &str| conditions.iter().find(|c| c["type"] == t).unwrap_or_else(|| panic!("no {t}: {status}"));
    assert_eq!(
        (&cond("Available")["status"], &cond("Available")["reason"]),
        (&json!("True"), &json!("MinimumReplicasAvailable"))
    );
    assert_eq!(
        (&cond("Progressing")["status"], &cond("Progressing")["reason"]),
        (&json!("True"), &json!("NewReplicaSetAvailable"))
    );

    // A rolling update within maxSurge (1 of 3) and maxUnavailable (0 of 3).
    let watch = PodWatch::start(&s, "app=webui");
    s.ok(&["set", "image", "deploy/webui", "nginx-container=nginx:1.25"]);
    rollout_status(&s, "webui");
    let snapshots = watch.finish();
    assert!(snapshots.len() > 6, "{snapshots:?}");
    for snap in &snapshots {
        let (live, ready) = counts(snap);
        assert!(live <= 4, "more than replicas + maxSurge pods: {snap:?}");
        assert!(ready >= 3, "fewer than replicas - maxUnavailable ready pods: {snap:?}");
    }
    let rss = replicasets(&s, "app=webui");
    assert_eq!(rss.len(), 2, "{rss:?}");
    let (old, new) = (&rss[0], &rss[1]);
    assert_eq!(name(old), format!("webui-{hash}"));
    let new_hash = new["metadata"]["labels"]["pod-template-hash"].as_str().unwrap().to_string();
    assert_ne!(new_hash, hash);
    assert_eq!((&old["spec"]["replicas"], &new["spec"]["replicas"]), (&json!(0), &json!(3)));
    assert_eq!(annotation(new, "deployment.kubernetes.io/revision"), "2");
    assert_eq!(annotation(&get(&s, &["deploy", "webui"]), "deployment.kubernetes.io/revision"), "2");
    wait_for("only new pods", || {
        let p = live(&pods(&s, "app=webui"));
        let images: Vec<&str> = p.iter().map(|p| p["spec"]["containers"][0]["image"].as_str().unwrap()).collect();
        if p.len() == 3 && images.iter().all(|i| *i == "nginx:1.25") {
            Ok(())
        } else {
            Err(format!("{images:?}"))
        }
    });
    let describe = s.ok(&["describe", "deploy", "webui"]);
    for want in [
        "ScalingReplicaSet".to_string(),
        format!("Scaled up replica set webui-{hash} from 0 to 3"),
        format!("Scaled up replica set webui-{new_hash} from 0 to 1"),
        format!("Scaled down replica set webui-{hash} to 2 from 3"),
    ] {
        assert!(describe.contains(&want), "{want} missing from:\n{describe}");
    }
    let new_line = describe.lines().find(|l| l.starts_with("NewReplicaSet:")).unwrap_or_default();
    assert!(new_line.contains(&format!("webui-{new_hash}")), "{describe}");

    // History lists both revisions; undo goes back to the first template as revision 3.
    let history = s.ok(&["rollout", "history", "deploy/webui"]);
    let revisions: Vec<&str> = history.lines().skip(2).filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(revisions, ["1", "2"], "{history}");
    s.ok(&["rollout", "undo", "deploy/webui"]);
    rollout_status(&s, "webui");
    assert_eq!(jsonpath(&s, &["deploy", "webui"], "{.spec.template.spec.containers[0].image}"), "nginx:1.14");
    let rss = replicasets(&s, "app=webui");
    assert_eq!(rss.len(), 2, "rollback reuses the old ReplicaSet: {rss:?}");
    let back = rss.iter().find(|r| name(r) == format!("webui-{hash}")).unwrap();
    assert_eq!(back["spec"]["replicas"], 3);
    assert_eq!(annotation(back, "deployment.kubernetes.io/revision"), "3");
    assert_eq!(annotation(back, "deployment.kubernetes.io/revision-history"), "1");
    wait_for("the deployment's revision 3", || {
        let r = annotation(&get(&s, &["deploy", "webui"]), "deployment.kubernetes.io/revision");
        if r == "3" {
            Ok(())
        } else {
            Err(r)
        }
    });
    let history = s.ok(&["rollout", "history", "deploy/webui"]);
    let revisions: Vec<&str> = history.lines().skip(2).filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(revisions, ["2", "3"], "{history}");
    wait_for("only old-template pods", || {
        let p = live(&pods(&s, "app=webui"));
        let hashes: BTreeSet<&str> =
            p.iter().map(|p| p["metadata"]["labels"]["pod-template-hash"].as_str().unwrap()).collect();
        if p.len() == 3 && hashes == BTreeSet::from([hash.as_str()]) {
            Ok(())
        } else {
            Err(format!("{hashes:?}"))
        }
    });

    // kubectl scale on a Deployment scales its ReplicaSet.
    s.ok(&["scale", "deploy", "webui", "--replicas=5"]);
    rollout_status(&s, "webui");
    assert_eq!(live(&pods(&s, "app=webui")).len(), 5);
    assert_eq!(jsonpath(&s, &["rs", &format!("webui-{hash}")], "{.spec.replicas}"), "5");
}

#[test]
fn rolling_update_respects_surge_unavailability_and_min_ready_seconds() {
    let s = TestServer::start();
    let _kubelet = make_pods_ready(&s);
    let manifest = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: wide\nspec:\n  replicas: 10\n\
                    \x20 minReadySeconds: 1\n  strategy:\n    rollingUpdate:\n      maxSurge: 3\n      maxUnavailable: 20%\n\
                    \x20 selector:\n    matchLabels:\n      app: wide\n  template:\n    metadata:\n      labels:\n\
                    \x20       app: wide\n    spec:\n      containers:\n      - name: c\n        image: busybox:1\n";
    s.ok_stdin(&["apply", "-f", "-"], manifest);
    rollout_status(&s, "wide");
    let first = replicasets(&s, "app=wide");
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["spec"]["minReadySeconds"], 1);
    assert_eq!(annotation(&first[0], "deployment.kubernetes.io/max-replicas"), "13");

    let watch = PodWatch::start(&s, "app=wide");
    s.ok(&["set", "image", "deploy/wide", "c=busybox:2"]);
    rollout_status(&s, "wide");
    let snapshots = watch.finish();
    let mut max_live = 0;
    for snap in &snapshots {
        let (live, ready) = counts(snap);
        max_live = max_live.max(live);
        assert!(live <= 13, "more than 10 + 3 pods: {snap:?}");
        assert!(ready >= 8, "fewer than 10 - 2 ready pods: {snap:?}");
    }
    assert!(max_live > 10, "the rollout never surged: {max_live}");
    let st =
        jsonpath(&s, &["deploy", "wide"], "{.status.updatedReplicas} {.status.availableReplicas} {.status.replicas}");
    assert_eq!(st, "10 10 10");
}

#[test]
fn recreate_pause_and_revision_history_limit() {
    let s = TestServer::start();
    let _kubelet = make_pods_ready(&s);
    let manifest = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: rc\nspec:\n  replicas: 2\n\
                    \x20 revisionHistoryLimit: 1\n  strategy:\n    type: Recreate\n  selector:\n    matchLabels:\n\
                    \x20     app: rc\n  template:\n    metadata:\n      labels:\n        app: rc\n    spec:\n\
                    \x20     containers:\n      - name: c\n        image: busybox:1\n";
    s.ok_stdin(&["apply", "-f", "-"], manifest);
    rollout_status(&s, "rc");

    // Recreate: no new pod while an old one exists.
    let watch = PodWatch::start(&s, "app=rc");
    s.ok(&["set", "image", "deploy/rc", "c=busybox:2"]);
    rollout_status(&s, "rc");
    let rss = replicasets(&s, "app=rc");
    let new_hash = rss.last().unwrap()["metadata"]["labels"]["pod-template-hash"].as_str().unwrap().to_string();
    watch.wait_until("the new pods", |snap| snap.len() == 2 && snap.values().all(|v| v.0 == new_hash));
    let snapshots = watch.finish();
    let hashes: BTreeSet<String> = snapshots.iter().flat_map(|s| s.values().map(|v| v.0.clone())).collect();
    assert_eq!(hashes.len(), 2, "{snapshots:?}");
    for snap in &snapshots {
        let here: BTreeSet<&String> = snap.values().map(|v| &v.0).collect();
        assert!(here.len() <= 1, "old and new pods together: {snap:?}");
    }

    // A third revision: with revisionHistoryLimit 1, the first ReplicaSet goes.
    s.ok(&["set", "image", "deploy/rc", "c=busybox:3"]);
    rollout_status(&s, "rc");
    wait_for("two ReplicaSets", || {
        let rss = replicasets(&s, "app=rc");
        let revisions: Vec<String> = rss.iter().map(|r| annotation(r, "deployment.kubernetes.io/revision")).collect();
        if revisions == ["2", "3"] {
            Ok(())
        } else {
            Err(format!("{revisions:?}"))
        }
    });

    // Paused: a template change does not roll, scaling does.
    s.ok(&["rollout", "pause", "deploy/rc"]);
    s.ok(&["set", "image", "deploy/rc", "c=busybox:4"]);
    wait_for("the paused generation observed", || {
        let d = get(&s, &["deploy", "rc"]);
        let progressing = d["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Progressing"))
            .map(|c| c["reason"].clone());
        if d["status"]["observedGeneration"] == d["metadata"]["generation"]
            && progressing == Some(json!("DeploymentPaused"))
        {
            Ok(())
        } else {
            Err(format!("{}", d["status"]))
        }
    });
    // No ReplicaSet for the new template (upstream also prunes history while paused).
    let rss = replicasets(&s, "app=rc");
    assert!(rss.iter().all(|r| r["spec"]["template"]["spec"]["containers"][0]["image"] != "busybox:4"), "{rss:?}");
    assert!(live(&pods(&s, "app=rc")).iter().all(|p| p["spec"]["containers"][0]["image"] == "busybox:3"));
    s.ok(&["scale", "deploy", "rc", "--replicas=3"]);
    wait_for("3 pods while paused", || {
        let p = live(&pods(&s, "app=rc"));
        let images: Vec<&str> = p.iter().map(|p| p["spec"]["containers"][0]["image"].as_str().unwrap()).collect();
        if images == ["busybox:3"; 3] {
            Ok(())
        } else {
            Err(format!("{images:?}"))
        }
    });
    // Undo refuses a paused deployment, as upstream's kubectl does.
    s.fails(&["rollout", "undo", "deploy/rc"]);
    s.ok(&["rollout", "resume", "deploy/rc"]);
    rollout_status(&s, "rc");
    wait_for("the resumed rollout", || {
        let p = live(&pods(&s, "app=rc"));
        let images: Vec<&str> = p.iter().map(|p| p["spec"]["containers"][0]["image"].as_str().unwrap()).collect();
        if images == ["busybox:4"; 3] {
            Ok(())
        } else {
            Err(format!("{images:?}"))
        }
    });
}

/// `podnet controllers` as a child process, killed with SIGKILL when dropped.
struct Controllers {
    child: Child,
}

impl Controllers {
    fn start(s: &TestServer) -> Controllers {
        let child = Command::new(podnet_bin())
            .arg("controllers")
            .arg("--kubeconfig")
            .arg(s.kubeconfig())
            .arg("--controllers=replicaset,deployment")
            .env("PODNET_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting podnet controllers");
        Controllers { child }
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills them and starts a successor once the requests the dead process had already sent
    /// have landed: a create it sent just before dying may still be in the server, and a
    /// successor listing the pods before it commits would create one too many (as a new
    /// kube-controller-manager leader waits for the old leader's lease to expire first).
    fn restart(&mut self, s: &TestServer) {
        self.kill9();
        std::thread::sleep(Duration::from_millis(300));
        *self = Controllers::start(s);
    }
}

impl Drop for Controllers {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Kills (SIGKILL) and restarts the controllers as soon as the pod watch shows a state that
/// satisfies `at`, so that the kill lands in the middle of what they are doing; returns the
/// number of live pods at the kill.
fn kill_when(s: &TestServer, controllers: &mut Controllers, watch: &PodWatch, at: impl Fn(&Snapshot) -> bool) -> usize {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let latest = watch.snapshots.lock().unwrap().last().cloned();
        if let Some(snap) = latest.filter(|snap| at(snap)) {
            controllers.restart(s);
            return counts(&snap).0;
        }
        assert!(std::time::Instant::now() < deadline, "the pod watch never reached the state to kill at");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn killed_controllers_converge_without_duplicates_or_losses() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_in(dir.path(), "127.0.0.1:0", &["--controllers=none"]);
    let _kubelet = make_pods_ready(&s);
    let mut controllers = Controllers::start(&s);
    let count = |selector: &str| live(&pods(&s, selector)).len();
    let wait_exactly = |selector: &str, n: usize| {
        wait_for(&format!("{n} pods of {selector}"), || {
            let got = count(selector);
            if got == n {
                Ok(())
            } else {
                Err(format!("{got}"))
            }
        })
    };

    // A scale-up of a ReplicaSet, killed again and again on the way.
    let watch = PodWatch::start(&s, "app=churn");
    let rs = "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: churn\nspec:\n  replicas: 150\n  selector:\n\
              \x20   matchLabels:\n      app: churn\n  template:\n    metadata:\n      labels:\n        app: churn\n\
              \x20   spec:\n      containers:\n      - name: c\n        image: busybox\n";
    s.ok_stdin(&["apply", "-f", "-"], rs);
    let mut seen = Vec::new();
    for threshold in [1, 8, 30, 70, 120] {
        seen.push(kill_when(&s, &mut controllers, &watch, |snap| counts(snap).0 >= threshold));
    }
    wait_exactly("app=churn", 150);
    watch.wait_until("150 churn pods", |snap| counts(snap).0 == 150);
    let snapshots = watch.finish();
    let max = snapshots.iter().map(|s| counts(s).0).max().unwrap();
    assert_eq!(max, 150, "duplicates were created during the scale-up (pods at the kills: {seen:?})");

    // A scale-down, killed in the middle.
    let watch = PodWatch::start(&s, "app=churn");
    s.ok(&["scale", "rs", "churn", "--replicas=7"]);
    let mut seen = Vec::new();
    for threshold in [149, 120, 60] {
        seen.push(kill_when(&s, &mut controllers, &watch, |snap| counts(snap).0 <= threshold));
    }
    wait_exactly("app=churn", 7);
    watch.wait_until("7 churn pods", |snap| counts(snap).0 == 7);
    let snapshots = watch.finish();
    let min = snapshots.iter().map(|s| counts(s).0).min().unwrap();
    assert_eq!(min, 7, "pods were lost during the scale-down (pods at the kills: {seen:?})");

    // A Deployment rolled out and updated, killed at every stage.
    let watch = PodWatch::start(&s, "app=roll");
    let deploy = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: roll\nspec:\n  replicas: 40\n  strategy:\n\
                  \x20   rollingUpdate:\n      maxSurge: 5\n      maxUnavailable: 5\n  selector:\n    matchLabels:\n\
                  \x20     app: roll\n  template:\n    metadata:\n      labels:\n        app: roll\n    spec:\n\
                  \x20     containers:\n      - name: c\n        image: busybox:1\n";
    s.ok_stdin(&["apply", "-f", "-"], deploy);
    for threshold in [1, 20] {
        kill_when(&s, &mut controllers, &watch, |snap| counts(snap).0 >= threshold);
    }
    rollout_status(&s, "roll");
    let first_hash =
        replicasets(&s, "app=roll")[0]["metadata"]["labels"]["pod-template-hash"].as_str().unwrap().to_string();
    s.ok(&["set", "image", "deploy/roll", "c=busybox:2"]);
    let mut seen = Vec::new();
    for threshold in [1, 5, 15, 30] {
        let updated =
            |snap: &Snapshot| snap.values().filter(|(hash, _, deleting)| *hash != first_hash && !deleting).count();
        seen.push(kill_when(&s, &mut controllers, &watch, |snap| updated(snap) >= threshold));
    }
    rollout_status(&s, "roll");
    let snapshots = watch.finish();
    let max = snapshots.iter().map(|s| counts(s).0).max().unwrap();
    assert!(max <= 45, "more than replicas + maxSurge pods (pods at the kills: {seen:?})");

    // The end state: exactly the desired pods, each owned, no duplicate ReplicaSet.
    wait_exactly("app=churn", 7);
    let churn_uid = jsonpath(&s, &["rs", "churn"], "{.metadata.uid}");
    let churn = live(&pods(&s, "app=churn"));
    assert!(churn.iter().all(|p| controller_uid(p).as_deref() == Some(churn_uid.as_str())), "{churn:?}");
    wait_for("40 updated roll pods", || {
        let p = live(&pods(&s, "app=roll"));
        let updated = p.iter().filter(|p| p["spec"]["containers"][0]["image"] == "busybox:2").count();
        if p.len() == 40 && updated == 40 {
            Ok(())
        } else {
            Err(format!("{} pods, {updated} updated", p.len()))
        }
    });
    let rss = replicasets(&s, "app=roll");
    assert_eq!(rss.len(), 2, "one ReplicaSet per template (pods at the kills: {seen:?}): {rss:?}");
    let rs_uids: BTreeSet<String> = rss.iter().map(|r| r["metadata"]["uid"].as_str().unwrap().to_string()).collect();
    assert!(live(&pods(&s, "app=roll")).iter().all(|p| controller_uid(p).is_some_and(|u| rs_uids.contains(&u))));
    let specs: Vec<i64> = rss.iter().map(|r| r["spec"]["replicas"].as_i64().unwrap()).collect();
    assert_eq!(specs, [0, 40]);
    let all = get(&s, &["pods"]);
    let orphans: Vec<String> =
        all["items"].as_array().unwrap().iter().filter(|p| controller_uid(p).is_none()).map(name).collect();
    assert!(orphans.is_empty(), "orphans: {orphans:?}");
}
