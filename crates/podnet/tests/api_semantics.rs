//! API semantics beyond the everyday kubectl commands: patch types, server-side apply, dry run,
//! generateName, deletion policies and graceful pod deletion, deletecollection, streaming lists,
//! oversized bodies, and concurrent Service creates.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::TestServer;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, PostParams};
use kube::runtime::{reflector, watcher, WatchStreamExt};

#[test]
fn patch_types_and_server_side_apply() {
    // The API server alone: the deployment controller would write the Deployment meanwhile.
    let s = TestServer::start_with(&["--controllers=none"]);
    s.ok(&["create", "deployment", "web", "--image=nginx:1.25", "--replicas=2"]);
    // strategic merge patch merges containers by name
    s.ok(&[
        "patch",
        "deploy",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox"}]}}}}"#,
    ]);
    let names = s.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[*].name}"]);
    assert_eq!(names, "sidecar nginx");
    // ... and deletes with the $patch directive
    s.ok(&[
        "patch",
        "deploy",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","$patch":"delete"}]}}}}"#,
    ]);
    assert_eq!(s.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[*].name}"]), "nginx");
    // merge patch replaces lists
    s.ok(&["patch", "deploy", "web", "--type=merge", "-p", r#"{"metadata":{"labels":{"tier":"front"}}}"#]);
    // JSON patch, with a failing test op that changes nothing
    s.ok(&["patch", "deploy", "web", "--type=json", "-p", r#"[{"op":"replace","path":"/spec/replicas","value":4}]"#]);
    let err = s.fails(&[
        "patch",
        "deploy",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"test","path":"/spec/replicas","value":9},{"op":"replace","path":"/spec/replicas","value":1}]"#,
    ]);
    assert!(!err.is_empty());
    assert_eq!(s.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas} {.metadata.labels.tier}"]), "4 front");
    // A patch that changes nothing keeps the resourceVersion.
    let rv = s.ok(&["get", "deploy", "web", "-o", "jsonpath={.metadata.resourceVersion}"]);
    s.ok(&["patch", "deploy", "web", "--type=merge", "-p", r#"{"spec":{"replicas":4}}"#]);
    assert_eq!(s.ok(&["get", "deploy", "web", "-o", "jsonpath={.metadata.resourceVersion}"]), rv);

    // Server-side apply: upsert, then update.
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: \"1\"\n";
    let out = s.ok_stdin(&["apply", "--server-side", "-f", "-"], cm);
    assert!(out.contains("serverside-applied"), "{out}");
    s.ok_stdin(&["apply", "--server-side", "-f", "-"], &cm.replace("\"1\"", "\"2\""));
    assert_eq!(s.ok(&["get", "cm", "ssa", "-o", "jsonpath={.data.a}"]), "2");
}

#[test]
fn dry_run_and_generate_name() {
    let s = TestServer::start();
    let out = s.ok(&[
        "create",
        "configmap",
        "dry",
        "--from-literal=a=b",
        "--dry-run=server",
        "-o",
        "jsonpath={.metadata.name}",
    ]);
    assert_eq!(out, "dry");
    s.fails(&["get", "cm", "dry"]);
    let svc = "apiVersion: v1\nkind: Service\nmetadata:\n  name: drysvc\nspec:\n  type: NodePort\n  ports:\n  - port: 80\n    nodePort: 30999\n";
    s.ok_stdin(&["create", "--dry-run=server", "-f", "-"], svc);
    // The dry run allocated nothing: the port is still free.
    s.ok_stdin(&["create", "-f", "-"], svc);

    let gen = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  generateName: gen-\n";
    let a = s.ok_stdin(&["create", "-o", "name", "-f", "-"], gen);
    let b = s.ok_stdin(&["create", "-o", "name", "-f", "-"], gen);
    assert!(a.starts_with("configmap/gen-") && a.trim().len() == "configmap/gen-".len() + 5, "{a}");
    assert_ne!(a, b);
}

#[test]
fn deletion_policies_and_graceful_pods() {
    // The API server alone: with the garbage collector running, a foreground deletion without
    // dependents finishes before the test can look at it.
    let s = TestServer::start_with(&["--controllers=none"]);
    // A pod bound to a node is deleted gracefully: it stays, terminating, until the node agent
    // (or a forced delete) finishes it.
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bound\nspec:\n  nodeName: node1\n  terminationGracePeriodSeconds: 20\n  containers:\n  - name: c\n    image: nginx\n";
    s.ok_stdin(&["create", "-f", "-"], pod);
    s.ok(&["delete", "pod", "bound", "--wait=false"]);
    let meta = s.ok(&[
        "get",
        "pod",
        "bound",
        "-o",
        "jsonpath={.metadata.deletionGracePeriodSeconds} {.metadata.deletionTimestamp}",
    ]);
    assert!(meta.starts_with("20 "), "{meta}");
    assert!(s.ok(&["get", "pod", "bound"]).contains("Terminating"));
    s.ok(&["delete", "pod", "bound", "--grace-period=0", "--force"]);
    s.fails(&["get", "pod", "bound"]);

    // Foreground deletion keeps the object with the foregroundDeletion finalizer for the GC.
    s.ok(&["create", "configmap", "fg"]);
    s.ok(&["delete", "cm", "fg", "--cascade=foreground", "--wait=false"]);
    let f = s.ok(&["get", "cm", "fg", "-o", "jsonpath={.metadata.finalizers}"]);
    assert!(f.contains("foregroundDeletion"), "{f}");
    // Removing the last finalizer finishes the deletion.
    s.ok(&["patch", "cm", "fg", "--type=merge", "-p", r#"{"metadata":{"finalizers":null}}"#]);
    s.fails(&["get", "cm", "fg"]);

    // Preconditions: a delete with a stale uid is a conflict.
    s.ok(&["create", "configmap", "pre"]);
    let out = s.kubectl_stdin(
        &["delete", "--raw", "/api/v1/namespaces/default/configmaps/pre", "-f", "-"],
        Some(r#"{"kind":"DeleteOptions","apiVersion":"v1","preconditions":{"uid":"not-the-uid"}}"#),
    );
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    s.ok(&["get", "cm", "pre"]);

    // deletecollection with a label selector.
    for n in ["a", "b", "c"] {
        s.ok(&["create", "configmap", &format!("dc-{n}")]);
    }
    s.ok(&["label", "cm", "dc-a", "dc-b", "doomed=yes"]);
    s.ok(&["delete", "--raw", "/api/v1/namespaces/default/configmaps?labelSelector=doomed%3Dyes"]);
    let left = s.ok(&["get", "cm", "-o", "name"]);
    assert!(!left.contains("dc-a") && !left.contains("dc-b") && left.contains("dc-c"), "{left}");
}

#[test]
fn ingresses_without_a_class_get_the_default_class() {
    let s = TestServer::start_with(&["--controllers=none"]);
    let class = |name: &str, default: bool| {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: {name}\n  annotations:\n    \
             ingressclass.kubernetes.io/is-default-class: \"{default}\"\nspec:\n  controller: example.com/{name}\n"
        )
    };
    let ingress = |name: &str, class: &str| {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\nspec:\n{class}  defaultBackend:\n    \
             service:\n      name: web\n      port:\n        number: 80\n"
        )
    };
    // No default class: the Ingress stays class-less.
    s.ok_stdin(&["create", "-f", "-"], &ingress("before", ""));
    s.ok_stdin(&["create", "-f", "-"], &class("main", true));
    s.ok_stdin(&["create", "-f", "-"], &class("other", false));
    s.ok_stdin(&["create", "-f", "-"], &ingress("after", ""));
    s.ok_stdin(&["create", "-f", "-"], &ingress("explicit", "  ingressClassName: other\n"));
    let classes =
        s.ok(&["get", "ingress", "-o", "jsonpath={range .items[*]}{.metadata.name}={.spec.ingressClassName} {end}"]);
    assert_eq!(classes.trim(), "after=main before= explicit=other");
    // Two default classes: creating a class-less Ingress is forbidden, as upstream.
    s.ok_stdin(&["create", "-f", "-"], &class("second", true));
    let out = s.kubectl_stdin(&["create", "-f", "-"], Some(&ingress("ambiguous", "")));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 default IngressClasses were found"), "{out:?}");
}

#[test]
fn oversized_bodies_get_413() {
    let s = TestServer::start();
    let big = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"big"}},"data":{{"a":"{}"}}}}"#,
        "x".repeat(4 << 20)
    );
    let file = s.data_dir.join("big.json");
    std::fs::write(&file, big).unwrap();
    let out = s.kubectl(&["create", "--raw", "/api/v1/namespaces/default/configmaps", "-f", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && (err.contains("too large") || err.contains("413")), "{err}");
    s.fails(&["get", "cm", "big"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_service_creates_get_distinct_ips_and_ports() {
    let s = TestServer::start_in(
        &tempfile::tempdir().unwrap().keep(),
        "127.0.0.1:0",
        &["--service-node-port-range", "30000-30063"],
    );
    let client = s.client().await;
    let mut tasks = Vec::new();
    for i in 0..64 {
        let api: Api<Service> = Api::namespaced(client.clone(), "default");
        tasks.push(tokio::spawn(async move {
            let svc: Service = serde_json::from_value(serde_json::json!({
                "apiVersion": "v1", "kind": "Service", "metadata": {"name": format!("s{i}")},
                "spec": {"type": "NodePort", "ports": [{"port": 80}]},
            }))
            .unwrap();
            api.create(&PostParams::default(), &svc).await.unwrap()
        }));
    }
    let mut ips = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for t in tasks {
        let svc = t.await.unwrap();
        let spec = svc.spec.unwrap();
        ips.insert(spec.cluster_ip.unwrap());
        ports.insert(spec.ports.unwrap()[0].node_port.unwrap());
    }
    assert_eq!((ips.len(), ports.len()), (64, 64));
    // The range is now full: the next one is refused, and nothing is half-created.
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    let extra: Service = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "extra"},
        "spec": {"type": "NodePort", "ports": [{"port": 80}]},
    }))
    .unwrap();
    assert!(api.create(&PostParams::default(), &extra).await.is_err());
    assert!(api.get_opt("extra").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_list_ends_with_the_initial_events_bookmark() {
    let s = TestServer::start();
    let client = s.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for i in 0..5 {
        let cm: ConfigMap = serde_json::from_value(
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("sl{i}")}}),
        )
        .unwrap();
        api.create(&PostParams::default(), &cm).await.unwrap();
    }
    // kube's watcher in streaming-list mode (sendInitialEvents=true) only becomes ready once
    // the server sends the initial-events-end bookmark.
    let (reader, writer) = reflector::store();
    let stream = reflector(writer, watcher(api, watcher::Config::default().streaming_lists())).applied_objects();
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while stream.next().await.is_some() {}
    });
    tokio::time::timeout(Duration::from_secs(10), reader.wait_until_ready()).await.expect("ready in time").unwrap();
    assert_eq!(reader.state().len(), 5);
    task.abort();
}
