//! Durability and watch continuity: a restart keeps every object, `kill -9` in the middle of a
//! burst of writes loses no acknowledged write, and the kube crate's watcher and reflector carry
//! on through a restart of the server (resuming, or relisting after 410 Expired).

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::TestServer;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::{reflector, watcher, WatchStreamExt};

fn configmap(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name}, "data": {"k": name},
    }))
    .unwrap()
}

#[test]
fn restart_keeps_every_object() {
    let dir = tempfile::tempdir().unwrap();
    // The API server alone, so that nothing but the restart could change an object.
    let mut s = TestServer::start_in(dir.path(), "127.0.0.1:0", &["--controllers=none"]);
    for f in common::seed_manifests() {
        s.ok(&["create", "-f", f.to_str().unwrap()]);
    }
    let snapshot = |s: &TestServer| {
        let out = s.ok(&["get", "all,cm,ep,endpointslices,ing,ns", "-A", "-o", "jsonpath={range .items[*]}{.kind}/{.metadata.name}/{.metadata.uid}/{.metadata.resourceVersion}{\"\\n\"}{end}"]);
        out.lines().map(str::to_string).collect::<BTreeSet<_>>()
    };
    let before = snapshot(&s);
    assert!(before.len() > 15, "{before:?}");
    let addr = s.addr.to_string();
    s.stop();
    let s2 = TestServer::start_in(dir.path(), &addr, &["--controllers=none"]);
    assert_eq!(snapshot(&s2), before);
    // Allocations survive too: the seed's fixed NodePort is still taken.
    let np = "apiVersion: v1\nkind: Service\nmetadata:\n  name: again\nspec:\n  type: NodePort\n  ports:\n  - port: 80\n    nodePort: 31080\n";
    let err = String::from_utf8(s2.kubectl_stdin(&["create", "-f", "-"], Some(np)).stderr).unwrap();
    assert!(err.contains("provided port is already allocated"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = TestServer::start_in(dir.path(), "127.0.0.1:0", &[]);
    let client = s.client().await;
    let acked = Arc::new(Mutex::new(Vec::new()));
    let mut writers = Vec::new();
    for w in 0..8 {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let name = format!("burst-{w}-{i}");
                match api.create(&PostParams::default(), &configmap(&name)).await {
                    Ok(_) => acked.lock().unwrap().push(name),
                    Err(_) => return, // the server is gone
                }
            }
        }));
    }
    // Let the burst run, then kill the server in the middle of it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.kill9();
    for w in writers {
        let _ = w.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 50, "only {} writes were acknowledged", acked.len());

    let addr = s.addr.to_string();
    let s2 = TestServer::start_in(dir.path(), &addr, &[]);
    let api: Api<ConfigMap> = Api::namespaced(s2.client().await, "default");
    let stored: BTreeSet<String> =
        api.list(&ListParams::default()).await.unwrap().items.into_iter().filter_map(|c| c.metadata.name).collect();
    let lost: Vec<&String> = acked.iter().filter(|n| !stored.contains(*n)).collect();
    assert!(lost.is_empty(), "{} acknowledged writes lost, e.g. {:?}", lost.len(), &lost[..lost.len().min(5)]);
}

/// Runs a reflector over ConfigMaps in `default` and returns its reader.
fn start_reflector(client: kube::Client) -> (reflector::Store<ConfigMap>, tokio::task::JoinHandle<()>) {
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let (reader, writer) = reflector::store();
    let stream = reflector(writer, watcher(api, watcher::Config::default())).default_backoff().applied_objects();
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while stream.next().await.is_some() {}
    });
    (reader, task)
}

async fn wait_for_names(reader: &reflector::Store<ConfigMap>, want: &[&str]) -> bool {
    for _ in 0..300 {
        let have: BTreeSet<String> = reader.state().iter().filter_map(|c| c.metadata.name.clone()).collect();
        if want.iter().all(|w| have.contains(*w)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflector_follows_through_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = TestServer::start_in(dir.path(), "127.0.0.1:0", &[]);
    let addr = s.addr.to_string();
    let client = s.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &configmap("before")).await.unwrap();
    let (reader, task) = start_reflector(client);
    assert!(wait_for_names(&reader, &["before"]).await, "initial list");

    s.stop();
    let s2 = TestServer::start_in(dir.path(), &addr, &[]);
    let api2: Api<ConfigMap> = Api::namespaced(s2.client().await, "default");
    api2.create(&PostParams::default(), &configmap("after")).await.unwrap();
    assert!(
        wait_for_names(&reader, &["before", "after"]).await,
        "the reflector did not see the write after the restart"
    );
    api2.delete("before", &Default::default()).await.unwrap();
    let gone = async {
        for _ in 0..300 {
            if !reader.state().iter().any(|c| c.metadata.name.as_deref() == Some("before")) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    };
    assert!(gone.await, "the delete did not reach the reflector");
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_history_gives_410_and_the_reflector_relists() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = TestServer::start_in(dir.path(), "127.0.0.1:0", &["--history", "10"]);
    let addr = s.addr.to_string();
    let client = s.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let old_rv = api.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
    for i in 0..40 {
        api.create(&PostParams::default(), &configmap(&format!("c{i}"))).await.unwrap();
    }
    // A watch from the compacted revision ends with an ERROR event carrying 410 Expired.
    let mut stream = api.watch(&kube::api::WatchParams::default(), &old_rv).await.unwrap().boxed();
    match stream.next().await {
        Some(Ok(kube::api::WatchEvent::Error(e))) => assert_eq!(e.code, 410, "{e:?}"),
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }

    // A reflector whose watch position is compacted away while the server is down relists.
    let (reader, task) = start_reflector(client);
    assert!(wait_for_names(&reader, &["c0", "c39"]).await);
    s.stop();
    let s2 = TestServer::start_in(dir.path(), &addr, &["--history", "10"]);
    let api2: Api<ConfigMap> = Api::namespaced(s2.client().await, "default");
    for i in 40..80 {
        api2.create(&PostParams::default(), &configmap(&format!("c{i}"))).await.unwrap();
    }
    assert!(wait_for_names(&reader, &["c0", "c79"]).await, "the reflector did not recover");
    assert_eq!(reader.state().len(), 80);
    task.abort();
}
