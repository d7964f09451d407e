//! The garbage collector end to end: cascading deletion through ownerReferences with kubectl's
//! three propagation policies (background, foreground, orphan), dependents with several owners,
//! owners known by UID (dangling, recreated, cross-namespace and invalid references), namespace
//! deletion with real content, and a collector restarted in the middle of a cascade.
//!
//! The ownership chains are built by the tests themselves (ConfigMaps owning ConfigMaps, a
//! Service owning Endpoints, Deployment → ReplicaSet → Pods with explicit references), on a
//! server that runs only the garbage collector, so no other controller interferes.

mod common;

use std::collections::BTreeSet;
use std::future::Future;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::TestServer;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Event, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::IngressClass;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Resource;
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(90);

/// A server running the garbage collector alone (`--controllers=gc`).
struct GcServer {
    s: TestServer,
    _dir: tempfile::TempDir,
}

impl GcServer {
    fn start(controllers: &str) -> GcServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = TestServer::start_in(dir.path(), "127.0.0.1:0", &[&format!("--controllers={controllers}")]);
        GcServer { s, _dir: dir }
    }
}

/// `podnet controllers --controllers=gc` against a server, killed when dropped.
struct Collector(Child);

impl Collector {
    fn start(s: &TestServer) -> Collector {
        let child = Command::new(common::podnet_bin())
            .args(["controllers", "--controllers=gc", "--kubeconfig"])
            .arg(s.kubeconfig())
            .env("PODNET_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting podnet controllers");
        Collector(child)
    }

    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until `f` holds, or panics after [`TIMEOUT`] naming `what`.
async fn wait_until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if f().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An owner reference to `owner`.
fn owner_ref<K: Resource<DynamicType = ()>>(owner: &K, block: bool) -> Value {
    json!({
        "apiVersion": K::api_version(&()), "kind": K::kind(&()),
        "name": owner.meta().name, "uid": owner.meta().uid, "blockOwnerDeletion": block,
    })
}

fn uid<K: Resource>(obj: &K) -> String {
    obj.meta().uid.clone().expect("uid")
}

async fn create<K>(client: &kube::Client, ns: &str, obj: Value) -> K
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + k8s_openapi::serde::de::DeserializeOwned
        + k8s_openapi::serde::Serialize
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let obj: K = serde_json::from_value(obj).expect("a valid object");
    api.create(&PostParams::default(), &obj).await.expect("create")
}

/// A ConfigMap with these owner references and finalizers.
async fn cm(client: &kube::Client, ns: &str, name: &str, owners: Vec<Value>, finalizers: &[&str]) -> ConfigMap {
    create(
        client,
        ns,
        json!({"metadata": {"name": name, "ownerReferences": owners, "finalizers": finalizers}, "data": {"k": "v"}}),
    )
    .await
}

async fn get<K>(api: &Api<K>, name: &str) -> Option<K>
where
    K: Resource + Clone + k8s_openapi::serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name).await.expect("get")
}

async fn exists<K>(api: &Api<K>, name: &str) -> bool
where
    K: Resource + Clone + k8s_openapi::serde::de::DeserializeOwned + std::fmt::Debug,
{
    get(api, name).await.is_some()
}

/// The UIDs an object's ownerReferences name.
fn owner_uids<K: Resource>(obj: &K) -> Vec<String> {
    obj.meta().owner_references.iter().flatten().map(|r| r.uid.clone()).collect()
}

async fn wait_gone<K>(api: &Api<K>, names: &[&str])
where
    K: Resource + Clone + k8s_openapi::serde::de::DeserializeOwned + std::fmt::Debug,
{
    for name in names {
        wait_until(&format!("{name} to be deleted"), || async move { !exists(api, name).await }).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_deletion_cascades_through_chains() {
    let g = GcServer::start("gc");
    let s = &g.s;
    let client = s.client().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());

    // Deployment → ReplicaSet → Pods, with the references the controllers would write.
    s.ok(&["create", "deployment", "web", "--image=nginx:1.25", "--replicas=2"]);
    let deploy = get(&Api::<Deployment>::default_namespaced(client.clone()), "web").await.unwrap();
    let rs: ReplicaSet = create(
        &client,
        "default",
        json!({
            "metadata": {"name": "web-5d4f", "labels": {"app": "web"}, "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": uid(&deploy), "controller": true, "blockOwnerDeletion": true}]},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}}},
        }),
    )
    .await;
    for i in 0..2 {
        let _: Pod = create(
            &client,
            "default",
            json!({
                "metadata": {"name": format!("web-5d4f-{i}"), "labels": {"app": "web"}, "ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d4f", "uid": uid(&rs), "controller": true, "blockOwnerDeletion": true}]},
                "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]},
            }),
        )
        .await;
    }
    // ConfigMap → ConfigMap → ConfigMap.
    let root = cm(&client, "default", "root", vec![], &[]).await;
    let child = cm(&client, "default", "child", vec![owner_ref(&root, false)], &[]).await;
    cm(&client, "default", "grandchild", vec![owner_ref(&child, false)], &[]).await;
    // Service → Endpoints.
    s.ok_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: db\nspec:\n  ports:\n  - port: 5432\n",
    );
    let svc = get(&Api::<Service>::default_namespaced(client.clone()), "db").await.unwrap();
    let _: Endpoints = create(
        &client,
        "default",
        json!({"metadata": {"name": "db", "ownerReferences": [owner_ref(&svc, true)]},
               "subsets": [{"addresses": [{"ip": "10.1.2.3"}], "ports": [{"port": 5432}]}]}),
    )
    .await;
    // A cluster-scoped owner, with a cluster-scoped and a namespaced dependent.
    s.ok_stdin(
        &["create", "-f", "-"],
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: owner-class\nspec:\n  controller: example.com/ingress\n",
    );
    let ics: Api<IngressClass> = Api::all(client.clone());
    let class = get(&ics, "owner-class").await.unwrap();
    let dependent_class: IngressClass = serde_json::from_value(json!({
        "metadata": {"name": "dependent-class", "ownerReferences": [owner_ref(&class, false)]},
        "spec": {"controller": "example.com/ingress"},
    }))
    .unwrap();
    ics.create(&PostParams::default(), &dependent_class).await.unwrap();
    cm(&client, "default", "class-config", vec![owner_ref(&class, false)], &[]).await;
    // Bystanders: no owner, and an owner that stays.
    let keeper = cm(&client, "default", "keeper", vec![], &[]).await;
    cm(&client, "default", "kept", vec![owner_ref(&keeper, true)], &[]).await;

    s.ok(&["delete", "deployment", "web"]);
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    wait_gone(&Api::<ReplicaSet>::default_namespaced(client.clone()), &["web-5d4f"]).await;
    wait_gone(&pods, &["web-5d4f-0", "web-5d4f-1"]).await;

    s.ok(&["delete", "configmap", "root"]);
    wait_gone(&cms, &["child", "grandchild"]).await;

    s.ok(&["delete", "service", "db"]);
    wait_gone(&Api::<Endpoints>::default_namespaced(client.clone()), &["db"]).await;

    s.ok(&["delete", "ingressclass", "owner-class"]);
    wait_gone(&ics, &["dependent-class"]).await;
    wait_gone(&cms, &["class-config"]).await;

    assert!(exists(&cms, "keeper").await && exists(&cms, "kept").await);
}

type WatchLog = Arc<Mutex<Vec<(String, bool, bool)>>>;

/// Records the order of a watch's events: (name, deleted, has a deletionTimestamp). Abort the
/// task before the server stops.
async fn record_watch(api: Api<ConfigMap>) -> (WatchLog, tokio::task::JoinHandle<()>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let sink = log.clone();
    let task = tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        let mut stream = watcher(api, watcher::Config::default()).default_backoff().boxed();
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(watcher::Event::InitDone) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    }
                }
                Ok(watcher::Event::Apply(c)) => {
                    let deleting = c.metadata.deletion_timestamp.is_some();
                    sink.lock().unwrap().push((c.metadata.name.unwrap_or_default(), false, deleting));
                }
                Ok(watcher::Event::Delete(c)) => {
                    sink.lock().unwrap().push((c.metadata.name.unwrap_or_default(), true, true));
                }
                _ => {}
            }
        }
    });
    ready_rx.await.expect("the watch started");
    (log, task)
}

/// Position of the DELETED event of `name` in the log.
fn deleted_at(log: &[(String, bool, bool)], name: &str) -> usize {
    log.iter()
        .position(|(n, deleted, _)| n == name && *deleted)
        .unwrap_or_else(|| panic!("{name} not deleted: {log:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreground_deletion_removes_dependents_first() {
    let g = GcServer::start("gc");
    let s = &g.s;
    let client = s.client().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());

    let root = cm(&client, "default", "root", vec![], &[]).await;
    let mut children = Vec::new();
    let mut grandchildren = Vec::new();
    for c in 0..3 {
        let child = cm(&client, "default", &format!("child-{c}"), vec![owner_ref(&root, true)], &[]).await;
        for g in 0..2 {
            let name = format!("grandchild-{c}-{g}");
            cm(&client, "default", &name, vec![owner_ref(&child, true)], &[]).await;
            grandchildren.push(name);
        }
        children.push(format!("child-{c}"));
    }
    // A dependent that does not block the owner, and one held by another finalizer.
    cm(&client, "default", "loose", vec![owner_ref(&root, false)], &[]).await;
    cm(&client, "default", "held", vec![owner_ref(&root, true)], &["example.com/hold"]).await;

    let (log, watch) = record_watch(cms.clone()).await;
    s.ok(&["delete", "configmap", "root", "--cascade=foreground", "--wait=false"]);

    let all_children: Vec<&str> = children.iter().chain(&grandchildren).map(String::as_str).collect();
    wait_gone(&cms, &all_children).await;
    wait_gone(&cms, &["loose"]).await;
    let c = &cms;
    wait_until("held to be deleting", || async move {
        get(c, "held").await.is_some_and(|c| c.metadata.deletion_timestamp.is_some())
    })
    .await;
    // The owner waits, being deleted, for the dependent that blocks it.
    let waiting = get(&cms, "root").await.expect("the owner waits for its blocking dependents");
    assert!(waiting.metadata.deletion_timestamp.is_some());
    assert!(waiting.metadata.finalizers.iter().flatten().any(|f| f == "foregroundDeletion"), "{waiting:?}");

    s.ok(&["patch", "configmap", "held", "--type=merge", "-p", r#"{"metadata":{"finalizers":null}}"#]);
    wait_gone(&cms, &["held", "root"]).await;

    let l = &log;
    wait_until("the watch to report the owner deleted", || async move {
        l.lock().unwrap().iter().any(|(n, deleted, _)| n == "root" && *deleted)
    })
    .await;
    watch.abort();
    let log = log.lock().unwrap().clone();
    let root_deleted = deleted_at(&log, "root");
    // The watch saw the owner being deleted before any dependent went, and deleted last.
    let first_dependent_deleted = log.iter().position(|(n, d, _)| *d && n != "root").unwrap();
    let root_marked = log.iter().position(|(n, d, deleting)| n == "root" && !d && *deleting).expect("root marked");
    assert!(root_marked < first_dependent_deleted, "{log:?}");
    for name in all_children.iter().chain(&["loose", "held"]) {
        assert!(deleted_at(&log, name) < root_deleted, "{name} after root: {log:?}");
    }
    // Each child went after its own dependents (it was deleted in the foreground too).
    for c in 0..3 {
        for g in 0..2 {
            assert!(
                deleted_at(&log, &format!("grandchild-{c}-{g}")) < deleted_at(&log, &format!("child-{c}")),
                "{log:?}"
            );
        }
    }

    // Two objects owning each other with blocking references: no deadlock.
    let ying = cm(&client, "default", "ying", vec![], &[]).await;
    let yang = cm(&client, "default", "yang", vec![owner_ref(&ying, true)], &[]).await;
    let patch = json!({"metadata": {"ownerReferences": [owner_ref(&yang, true)]}});
    cms.patch("ying", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.unwrap();
    s.ok(&["delete", "configmap", "ying", "--cascade=foreground", "--wait=false"]);
    wait_gone(&cms, &["ying", "yang"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_deletion_keeps_dependents_without_the_reference() {
    let g = GcServer::start("gc");
    let s = &g.s;
    let client = s.client().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());

    let owner = cm(&client, "default", "owner", vec![], &[]).await;
    let other = cm(&client, "default", "other", vec![], &[]).await;
    cm(&client, "default", "dep-a", vec![owner_ref(&owner, true)], &[]).await;
    cm(&client, "default", "dep-b", vec![owner_ref(&owner, true), owner_ref(&other, true)], &[]).await;
    cm(&client, "default", "dep-of-dep", vec![owner_ref(&get(&cms, "dep-a").await.unwrap(), true)], &[]).await;

    // kubectl waits until the owner is gone, which needs the collector to orphan first.
    s.ok(&["delete", "configmap", "owner", "--cascade=orphan"]);
    assert!(!exists(&cms, "owner").await);
    let a = get(&cms, "dep-a").await.expect("dep-a is orphaned, not deleted");
    assert!(owner_uids(&a).is_empty(), "{a:?}");
    let b = get(&cms, "dep-b").await.expect("dep-b is orphaned, not deleted");
    assert_eq!(owner_uids(&b), vec![uid(&other)]);
    assert!(exists(&cms, "dep-of-dep").await);

    // The same with a Deployment and its ReplicaSet.
    s.ok(&["create", "deployment", "api", "--image=nginx:1.25"]);
    let deploy = get(&Api::<Deployment>::default_namespaced(client.clone()), "api").await.unwrap();
    let _: ReplicaSet = create(
        &client,
        "default",
        json!({
            "metadata": {"name": "api-6c8b", "ownerReferences": [owner_ref(&deploy, true)]},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "api"}},
                     "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}}},
        }),
    )
    .await;
    s.ok(&["delete", "deployment", "api", "--cascade=orphan"]);
    let rs = get(&Api::<ReplicaSet>::default_namespaced(client.clone()), "api-6c8b").await.expect("orphaned");
    assert!(owner_uids(&rs).is_empty(), "{rs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependent_with_several_owners_survives_until_the_last_goes() {
    let g = GcServer::start("gc");
    let s = &g.s;
    let client = s.client().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());

    let first = cm(&client, "default", "first", vec![], &[]).await;
    let second = cm(&client, "default", "second", vec![], &[]).await;
    cm(&client, "default", "shared", vec![owner_ref(&first, true), owner_ref(&second, true)], &[]).await;
    s.ok(&["delete", "configmap", "first"]);
    // The reference to the deleted owner is removed; the dependent stays.
    let (c, second_uid) = (&cms, &uid(&second));
    wait_until("the dangling reference to be removed", || async move {
        get(c, "shared").await.is_some_and(|c| owner_uids(&c) == vec![second_uid.clone()])
    })
    .await;
    s.ok(&["delete", "configmap", "second"]);
    wait_gone(&cms, &["shared"]).await;

    // Foreground: the shared dependent does not hold the owner back, and stays.
    let third = cm(&client, "default", "third", vec![], &[]).await;
    let fourth = cm(&client, "default", "fourth", vec![], &[]).await;
    cm(&client, "default", "shared2", vec![owner_ref(&third, true), owner_ref(&fourth, true)], &[]).await;
    cm(&client, "default", "only-third", vec![owner_ref(&third, true)], &[]).await;
    s.ok(&["delete", "configmap", "third", "--cascade=foreground"]);
    assert!(!exists(&cms, "third").await && !exists(&cms, "only-third").await);
    let shared = get(&cms, "shared2").await.expect("shared2 keeps its other owner");
    assert_eq!(owner_uids(&shared), vec![uid(&fourth)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_are_known_by_uid_and_where_they_live() {
    let g = GcServer::start("gc");
    let s = &g.s;
    let client = s.client().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let cm_ref = |name: &str, uid: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "name": name, "uid": uid});

    // A kind the server does not serve: never collected (the reference cannot be resolved).
    cm(
        &client,
        "default",
        "unknown-kind",
        vec![json!({"apiVersion": "example.com/v1", "kind": "Widget", "name": "w", "uid": "5e4b6f0e-0000-4000-8000-000000000001"})],
        &[],
    )
    .await;
    // An owner that never existed.
    cm(&client, "default", "ghost-child", vec![cm_ref("ghost", "5e4b6f0e-0000-4000-8000-000000000002")], &[]).await;
    // An owner with the right name and another UID is another object.
    let real = cm(&client, "default", "real", vec![], &[]).await;
    cm(&client, "default", "impostor-child", vec![cm_ref("real", "5e4b6f0e-0000-4000-8000-000000000003")], &[]).await;
    cm(&client, "default", "real-child", vec![owner_ref(&real, false)], &[]).await;
    wait_gone(&cms, &["ghost-child", "impostor-child"]).await;
    assert!(exists(&cms, "real").await && exists(&cms, "real-child").await);

    // Recreated under the same name: the dependents of the first one go, the new one stays.
    let phoenix = cm(&client, "default", "phoenix", vec![], &[]).await;
    cm(&client, "default", "phoenix-child", vec![owner_ref(&phoenix, false)], &[]).await;
    s.ok(&["delete", "configmap", "phoenix"]);
    let reborn = cm(&client, "default", "phoenix", vec![], &[]).await;
    assert_ne!(uid(&reborn), uid(&phoenix));
    wait_gone(&cms, &["phoenix-child"]).await;
    assert!(exists(&cms, "phoenix").await);

    // A namespaced owner lives in its dependent's namespace: a reference across namespaces
    // is dangling (and reported).
    s.ok(&["create", "namespace", "a"]);
    s.ok(&["create", "namespace", "b"]);
    let elsewhere = cm(&client, "b", "owner", vec![], &[]).await;
    cm(&client, "a", "cross", vec![owner_ref(&elsewhere, false)], &[]).await;
    wait_gone(&Api::<ConfigMap>::namespaced(client.clone(), "a"), &["cross"]).await;
    assert!(exists(&Api::<ConfigMap>::namespaced(client.clone(), "b"), "owner").await);
    let events_a = &Api::<Event>::namespaced(client.clone(), "a");
    wait_until("the OwnerRefInvalidNamespace event", || async move {
        let list = events_a.list(&Default::default()).await.unwrap();
        list.items.iter().any(|e| e.reason.as_deref() == Some("OwnerRefInvalidNamespace"))
    })
    .await;

    // A cluster-scoped dependent cannot have a namespaced owner: never collected, reported.
    let ics: Api<IngressClass> = Api::all(client.clone());
    let bad: IngressClass = serde_json::from_value(json!({
        "metadata": {"name": "bad-class", "ownerReferences": [owner_ref(&real, false)]},
        "spec": {"controller": "example.com/ingress"},
    }))
    .unwrap();
    ics.create(&PostParams::default(), &bad).await.unwrap();
    s.ok(&["delete", "configmap", "real"]);
    wait_gone(&cms, &["real-child"]).await;
    let events_default = &Api::<Event>::default_namespaced(client.clone());
    wait_until("the event about bad-class", || async move {
        let list = events_default.list(&Default::default()).await.unwrap();
        list.items.iter().any(|e| {
            e.reason.as_deref() == Some("OwnerRefInvalidNamespace")
                && e.involved_object.name.as_deref() == Some("bad-class")
        })
    })
    .await;
    assert!(exists(&ics, "bad-class").await);
    assert!(exists(&cms, "unknown-kind").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_deletion_removes_everything_then_the_namespace() {
    // All the controllers, as a cluster runs them.
    let s = TestServer::start();
    let client = s.client().await;
    s.ok(&["create", "namespace", "shop"]);
    s.ok(&["create", "deployment", "web", "--image=nginx:1.25", "--replicas=2", "-n", "shop"]);
    s.ok(&["create", "service", "clusterip", "web", "--tcp=80:80", "-n", "shop"]);
    s.ok(&["create", "configmap", "settings", "--from-literal=a=b", "-n", "shop"]);
    s.ok(&["create", "secret", "generic", "creds", "--from-literal=p=q", "-n", "shop"]);
    // Pods of a ReplicaSet of the test's own, whatever the workload controllers do.
    let rs: ReplicaSet = create(
        &client,
        "shop",
        json!({
            "metadata": {"name": "batch"},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "batch"}},
                     "template": {"metadata": {"labels": {"app": "batch"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
        }),
    )
    .await;
    for i in 0..3 {
        let _: Pod = create(
            &client,
            "shop",
            json!({
                "metadata": {"name": format!("batch-{i}"), "labels": {"job": "batch"}, "ownerReferences": [owner_ref(&rs, true)]},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            }),
        )
        .await;
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    assert!(pods.list(&Default::default()).await.unwrap().items.len() >= 3);

    s.ok(&["delete", "namespace", "shop", "--wait=false"]);
    let s = &s;
    wait_until("the namespace to be gone", || async move {
        let out = s.kubectl(&["get", "namespace", "shop"]);
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("NotFound")
    })
    .await;
    assert!(pods.list(&Default::default()).await.unwrap().items.is_empty());
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "shop");
    assert!(deployments.list(&Default::default()).await.unwrap().items.is_empty());
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "shop");
    assert!(rss.list(&Default::default()).await.unwrap().items.is_empty());
    let svcs: Api<Service> = Api::namespaced(client.clone(), "shop");
    assert!(svcs.list(&Default::default()).await.unwrap().items.is_empty());
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "shop");
    assert!(cms.list(&Default::default()).await.unwrap().items.is_empty());
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "shop");
    assert!(secrets.list(&Default::default()).await.unwrap().items.is_empty());
    // The name can be used again.
    s.ok(&["create", "namespace", "shop"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_collector_finishes_the_cascades() {
    let g = GcServer::start("none");
    let s = &g.s;
    let client = s.client().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let mut gc = Collector::start(s);

    // A wide tree for a background cascade.
    let tree = cm(&client, "default", "tree", vec![], &[]).await;
    let mut tree_names = Vec::new();
    for b in 0..15 {
        let branch = cm(&client, "default", &format!("branch-{b}"), vec![owner_ref(&tree, true)], &[]).await;
        tree_names.push(format!("branch-{b}"));
        for l in 0..3 {
            cm(&client, "default", &format!("leaf-{b}-{l}"), vec![owner_ref(&branch, true)], &[]).await;
            tree_names.push(format!("leaf-{b}-{l}"));
        }
    }
    // A foreground deletion that a finalizer holds in the middle.
    let fg = cm(&client, "default", "fg", vec![], &[]).await;
    cm(&client, "default", "fg-held", vec![owner_ref(&fg, true)], &["example.com/hold"]).await;
    cm(&client, "default", "fg-free", vec![owner_ref(&fg, true)], &[]).await;
    // An owner to be deleted with orphan while the collector is down.
    let orphaner = cm(&client, "default", "orphaner", vec![], &[]).await;
    cm(&client, "default", "orphan-dep", vec![owner_ref(&orphaner, true)], &[]).await;

    s.ok(&["delete", "configmap", "fg", "--cascade=foreground", "--wait=false"]);
    wait_gone(&cms, &["fg-free"]).await;
    let c = &cms;
    wait_until("fg-held to be deleting", || async move {
        get(c, "fg-held").await.is_some_and(|c| c.metadata.deletion_timestamp.is_some())
    })
    .await;

    // Kill the collector in the middle of a background cascade.
    s.ok(&["delete", "configmap", "tree", "--wait=false"]);
    gc.kill();
    let left = cms.list(&Default::default()).await.unwrap().items.len();

    // Meanwhile: an orphaning deletion, the held dependent let go, a new dangling dependent.
    s.ok(&["delete", "configmap", "orphaner", "--cascade=orphan", "--wait=false"]);
    s.ok(&["patch", "configmap", "fg-held", "--type=merge", "-p", r#"{"metadata":{"finalizers":null}}"#]);
    cm(&client, "default", "late", vec![owner_ref(&tree, true)], &[]).await;
    assert!(exists(&cms, "orphaner").await, "nothing removes the orphan finalizer while the collector is down");
    assert!(exists(&cms, "fg").await, "nothing finishes the foreground deletion while the collector is down");

    let _gc = Collector::start(s);
    let mut doomed: Vec<&str> = tree_names.iter().map(String::as_str).collect();
    doomed.extend(["late", "fg", "orphaner"]);
    wait_gone(&cms, &doomed).await;
    let dep = get(&cms, "orphan-dep").await.expect("orphaned, not deleted");
    assert!(owner_uids(&dep).is_empty(), "{dep:?}");
    let remaining: BTreeSet<String> =
        cms.list(&Default::default()).await.unwrap().items.into_iter().filter_map(|c| c.metadata.name).collect();
    assert!(remaining.contains("orphan-dep") && !remaining.contains("fg-held"), "{remaining:?} (had {left})");
}
