//! The endpoints and EndpointSlice controllers, in-process in `podnet server`: the seeds'
//! Services with pods made from their workloads' templates (created directly, bound to nodes the
//! test registers, given IPs and Ready conditions by the test — there is no node agent), then
//! readiness, deletion, named ports, publishNotReadyAddresses, Services without selector or of
//! type ExternalName, big Services and Service deletion.

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{podnet_bin, seed_manifests, TestServer};
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);

/// Polls `f` until it returns Some, or panics after [`WAIT`].
async fn wait_for<T, Fut: Future<Output = Option<T>>>(what: &str, mut f: impl FnMut() -> Fut) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn seed(name: &str) -> String {
    let path = seed_manifests().into_iter().find(|p| p.ends_with(name)).unwrap_or_else(|| panic!("no seed {name}"));
    path.to_str().unwrap().to_string()
}

fn seed_yaml(name: &str) -> Value {
    serde_yaml::from_str(&std::fs::read_to_string(seed(name)).unwrap()).unwrap()
}

/// Registers Ready nodes.
async fn register_nodes(client: &kube::Client, names: &[&str]) {
    let nodes: Api<Node> = Api::all(client.clone());
    for (i, name) in names.iter().enumerate() {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "topology.kubernetes.io/zone": "zone-a"}},
        }))
        .unwrap();
        nodes.create(&PostParams::default(), &node).await.unwrap();
        let status = json!({"status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
            "addresses": [{"type": "InternalIP", "address": format!("192.168.0.{}", i + 10)}, {"type": "Hostname", "address": name}],
        }});
        nodes.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
    }
}

/// Creates a pod from a workload's pod template, bound to `node`.
async fn create_pod(client: &kube::Client, name: &str, template: &Value, node: &str) {
    let mut spec = template["spec"].clone();
    spec["nodeName"] = json!(node);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": template["metadata"]["labels"]},
        "spec": spec,
    }))
    .unwrap();
    Api::<Pod>::default_namespaced(client.clone()).create(&PostParams::default(), &pod).await.unwrap();
}

/// What a node agent would report: running, with an IP, ready or not.
async fn set_status(client: &kube::Client, name: &str, ip: &str, ready: bool) {
    let status = json!({"status": {
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
                        "lastTransitionTime": "2024-01-01T00:00:00Z"}],
    }});
    Api::<Pod>::default_namespaced(client.clone())
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

async fn endpoints(client: &kube::Client, name: &str) -> Option<Endpoints> {
    Api::<Endpoints>::default_namespaced(client.clone()).get_opt(name).await.unwrap()
}

async fn slices(client: &kube::Client, service: &str) -> Vec<EndpointSlice> {
    let lp = ListParams::default().labels(&format!("kubernetes.io/service-name={service}"));
    let mut list = Api::<EndpointSlice>::default_namespaced(client.clone()).list(&lp).await.unwrap().items;
    list.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    list
}

/// Ready and not-ready addresses of Endpoints, `ip:port` per port, sorted.
fn addresses(ep: &Endpoints) -> (Vec<String>, Vec<String>) {
    let mut ready = Vec::new();
    let mut not_ready = Vec::new();
    for subset in ep.subsets.iter().flatten() {
        for port in subset.ports.iter().flatten() {
            for a in subset.addresses.iter().flatten() {
                ready.push(format!("{}:{}", a.ip, port.port));
            }
            for a in subset.not_ready_addresses.iter().flatten() {
                not_ready.push(format!("{}:{}", a.ip, port.port));
            }
        }
    }
    ready.sort();
    not_ready.sort();
    (ready, not_ready)
}

/// Every endpoint of the slices: pod name → (addresses, ports, ready, serving, terminating, node).
type SliceView = BTreeMap<String, (Vec<String>, Vec<i32>, bool, bool, bool, Option<String>)>;

fn slice_view(slices: &[EndpointSlice]) -> SliceView {
    let mut view = BTreeMap::new();
    for s in slices {
        let mut ports: Vec<i32> = s.ports.iter().flatten().filter_map(|p| p.port).collect();
        ports.sort();
        for e in &s.endpoints {
            let c = e.conditions.clone().unwrap_or_default();
            let pod = e.target_ref.as_ref().and_then(|t| t.name.clone()).unwrap_or_default();
            view.insert(
                pod,
                (
                    e.addresses.clone(),
                    ports.clone(),
                    c.ready.unwrap_or(false),
                    c.serving.unwrap_or(false),
                    c.terminating.unwrap_or(false),
                    e.node_name.clone(),
                ),
            );
        }
    }
    view
}

fn ready_addresses(expected: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn myweb_seed_readiness_deletion_and_service_deletion() {
    let s = TestServer::start();
    let client = s.client().await;
    register_nodes(&client, &["n1", "n2"]).await;
    s.ok(&["create", "-f", &seed("myweb-svc.yaml")]);
    let template = seed_yaml("myweb-rs.yaml")["spec"]["template"].clone();
    let pods =
        [("myweb-rs-a", "n1", "10.244.1.2"), ("myweb-rs-b", "n2", "10.244.2.2"), ("myweb-rs-c", "n1", "10.244.1.3")];
    for (name, node, _) in pods {
        create_pod(&client, name, &template, node).await;
    }

    // No IPs yet: a Service without endpoints has empty Endpoints and a placeholder slice.
    let ep = wait_for("the endpoints object", || endpoints(&client, "myweb-svc")).await;
    assert!(ep.subsets.is_none(), "{ep:?}");
    let placeholder = wait_for("a placeholder slice", || async {
        let list = slices(&client, "myweb-svc").await;
        (list.len() == 1).then(|| list.into_iter().next().unwrap())
    })
    .await;
    assert!(placeholder.endpoints.is_empty());

    for (name, _, ip) in pods {
        set_status(&client, name, ip, true).await;
    }
    let expected = ready_addresses(&["10.244.1.2:8080", "10.244.2.2:8080", "10.244.1.3:8080"]);
    wait_for("three ready endpoints on 8080", || async {
        let ep = endpoints(&client, "myweb-svc").await?;
        (addresses(&ep).0 == expected).then_some(())
    })
    .await;
    // What a user sees.
    let table = s.ok(&["get", "ep", "myweb-svc"]);
    let row = table.lines().nth(1).unwrap();
    for a in &expected {
        assert!(row.contains(a.as_str()), "{table}");
    }
    let ep = endpoints(&client, "myweb-svc").await.unwrap();
    assert!(ep.metadata.annotations.as_ref().unwrap().contains_key("endpoints.kubernetes.io/last-change-trigger-time"));
    assert!(ep.metadata.owner_references.is_none());
    let subset = &ep.subsets.as_ref().unwrap()[0];
    let first = &subset.addresses.as_ref().unwrap()[0];
    assert_eq!(first.node_name.as_deref(), Some("n1"));
    assert_eq!(first.target_ref.as_ref().unwrap().kind.as_deref(), Some("Pod"));

    let list = wait_for("one slice with three endpoints", || async {
        let list = slices(&client, "myweb-svc").await;
        (list.len() == 1 && slice_view(&list).values().filter(|v| v.2).count() == 3).then_some(list)
    })
    .await;
    let slice = &list[0];
    // The placeholder was reused.
    assert_eq!(slice.metadata.name, placeholder.metadata.name);
    assert!(slice.metadata.name.as_ref().unwrap().starts_with("myweb-svc-"));
    assert_eq!(slice.address_type, "IPv4");
    let labels = slice.metadata.labels.as_ref().unwrap();
    assert_eq!(labels["endpointslice.kubernetes.io/managed-by"], "endpointslice-controller.k8s.io");
    let owner = &slice.metadata.owner_references.as_ref().unwrap()[0];
    let svc = Api::<Service>::default_namespaced(client.clone()).get("myweb-svc").await.unwrap();
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Service", "myweb-svc"));
    assert_eq!(Some(&owner.uid), svc.metadata.uid.as_ref());
    assert_eq!((owner.controller, owner.block_owner_deletion), (Some(true), Some(true)));
    let view = slice_view(&list);
    assert_eq!(view["myweb-rs-b"], (vec!["10.244.2.2".to_string()], vec![8080], true, true, false, Some("n2".into())));
    assert_eq!(slice.endpoints[0].zone.as_deref(), Some("zone-a"));
    let kubectl_slices = s.ok(&["get", "endpointslices", "-l", "kubernetes.io/service-name=myweb-svc"]);
    assert!(kubectl_slices.contains("IPv4") && kubectl_slices.contains("8080"), "{kubectl_slices}");

    let rv = slice.metadata.resource_version.clone();
    let ep_rv = ep.metadata.resource_version.clone();

    // Not ready: notReadyAddresses, and ready=false serving=false in the slice.
    set_status(&client, "myweb-rs-b", "10.244.2.2", false).await;
    wait_for("myweb-rs-b not ready", || async {
        let ep = endpoints(&client, "myweb-svc").await?;
        let (ready, not_ready) = addresses(&ep);
        let view = slice_view(&slices(&client, "myweb-svc").await);
        let slice_ok = view.get("myweb-rs-b").is_some_and(|v| !v.2 && !v.3 && !v.4);
        (ready.len() == 2 && not_ready == vec!["10.244.2.2:8080".to_string()] && slice_ok).then_some(())
    })
    .await;
    let list = slices(&client, "myweb-svc").await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].metadata.name, slice.metadata.name, "the slice is updated in place");
    assert_ne!(list[0].metadata.resource_version, rv);
    assert_ne!(endpoints(&client, "myweb-svc").await.unwrap().metadata.resource_version, ep_rv);

    // Deleted (terminating: there is no node agent to finish it): out of the Endpoints,
    // terminating in the slice, serving as long as it is ready.
    Api::<Pod>::default_namespaced(client.clone()).delete("myweb-rs-c", &DeleteParams::default()).await.unwrap();
    wait_for("myweb-rs-c terminating", || async {
        let ep = endpoints(&client, "myweb-svc").await?;
        let (ready, _) = addresses(&ep);
        let view = slice_view(&slices(&client, "myweb-svc").await);
        let terminating = view.get("myweb-rs-c").is_some_and(|v| !v.2 && v.3 && v.4);
        (ready == vec!["10.244.1.2:8080".to_string()] && terminating).then_some(())
    })
    .await;
    // Gone for good.
    Api::<Pod>::default_namespaced(client.clone())
        .delete("myweb-rs-c", &DeleteParams { grace_period_seconds: Some(0), ..Default::default() })
        .await
        .unwrap();
    wait_for("myweb-rs-c gone from the slice", || async {
        let view = slice_view(&slices(&client, "myweb-svc").await);
        (!view.contains_key("myweb-rs-c") && view.len() == 2).then_some(())
    })
    .await;

    // Deleting the Service deletes its Endpoints and slices.
    s.ok(&["delete", "svc", "myweb-svc"]);
    wait_for("endpoints and slices deleted", || async {
        (endpoints(&client, "myweb-svc").await.is_none() && slices(&client, "myweb-svc").await.is_empty()).then_some(())
    })
    .await;
    // The kubernetes Service's, written by the API server, are untouched.
    let kubernetes = endpoints(&client, "kubernetes").await.unwrap();
    assert!(kubernetes.subsets.as_ref().is_some_and(|s| !s.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_target_ports_resolve_per_pod() {
    let s = TestServer::start();
    let client = s.client().await;
    register_nodes(&client, &["n1", "n2"]).await;
    s.ok(&["create", "-f", &seed("myweb-svc-named.yaml")]);
    let template = seed_yaml("myweb-rs-named.yaml")["spec"]["template"].clone();
    for (i, node) in ["n1", "n2", "n1"].iter().enumerate() {
        let name = format!("myweb-rs-named-{i}");
        create_pod(&client, &name, &template, node).await;
        set_status(&client, &name, &format!("10.244.{}.{}", i % 2 + 1, i + 10), true).await;
    }
    let expected = ready_addresses(&["10.244.1.10:8080", "10.244.2.11:8080", "10.244.1.12:8080"]);
    wait_for("three endpoints on the named port's 8080", || async {
        let ep = endpoints(&client, "myweb-svc-named").await?;
        (addresses(&ep).0 == expected).then_some(())
    })
    .await;
    let table = s.ok(&["get", "ep", "myweb-svc-named"]);
    assert!(table.contains("10.244.1.10:8080"), "{table}");

    // A pod that maps web8080 to another number: a subset and a slice of its own.
    let mut other = template.clone();
    other["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(9090);
    create_pod(&client, "myweb-other", &other, "n2").await;
    set_status(&client, "myweb-other", "10.244.2.20", true).await;
    let ep = wait_for("two subsets", || async {
        let ep = endpoints(&client, "myweb-svc-named").await?;
        (ep.subsets.as_ref().map_or(0, Vec::len) == 2).then_some(ep)
    })
    .await;
    let mut subsets: Vec<(Vec<String>, i32)> = ep
        .subsets
        .unwrap()
        .iter()
        .map(|s| {
            let mut ips: Vec<String> = s.addresses.iter().flatten().map(|a| a.ip.clone()).collect();
            ips.sort();
            (ips, s.ports.as_ref().unwrap()[0].port)
        })
        .collect();
    subsets.sort_by_key(|s| s.1);
    assert_eq!(subsets[0].1, 8080);
    assert_eq!(subsets[0].0.len(), 3);
    assert_eq!(subsets[1], (vec!["10.244.2.20".to_string()], 9090));
    let list = wait_for("two slices", || async {
        let list = slices(&client, "myweb-svc-named").await;
        (list.len() == 2 && list.iter().map(|s| s.endpoints.len()).sum::<usize>() == 4).then_some(list)
    })
    .await;
    let mut by_port: Vec<(i32, usize, String)> = list
        .iter()
        .map(|s| {
            let p = &s.ports.as_ref().unwrap()[0];
            (p.port.unwrap(), s.endpoints.len(), p.name.clone().unwrap_or_default())
        })
        .collect();
    by_port.sort();
    assert_eq!(by_port, vec![(8080, 3, String::new()), (9090, 1, String::new())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multiple_ports_and_headless_services() {
    let s = TestServer::start();
    let client = s.client().await;
    register_nodes(&client, &["n1", "n2"]).await;
    s.ok(&["create", "-f", &seed("myweb-svc-multi.yaml")]);
    s.ok(&["create", "-f", &seed("headless-nginx.yaml")]);
    let multi = seed_yaml("myweb-rs-multi.yaml")["spec"]["template"].clone();
    let nginx = seed_yaml("deploy-nginx.yaml")["spec"]["template"].clone();
    for i in 0..3 {
        let node = if i == 1 { "n2" } else { "n1" };
        create_pod(&client, &format!("multi-{i}"), &multi, node).await;
        set_status(&client, &format!("multi-{i}"), &format!("10.244.1.{}", i + 10), true).await;
        create_pod(&client, &format!("webui-{i}"), &nginx, node).await;
        set_status(&client, &format!("webui-{i}"), &format!("10.244.2.{}", i + 10), true).await;
    }

    let ep = wait_for("endpoints on 8080 and 8443", || async {
        let ep = endpoints(&client, "myweb-svc-multi").await?;
        (addresses(&ep).0.len() == 6).then_some(ep)
    })
    .await;
    let subsets = ep.subsets.as_ref().unwrap();
    assert_eq!(subsets.len(), 1, "one subset serving both ports");
    let mut ports: Vec<(String, i32)> =
        subsets[0].ports.iter().flatten().map(|p| (p.name.clone().unwrap_or_default(), p.port)).collect();
    ports.sort();
    assert_eq!(ports, vec![("http".to_string(), 8080), ("https".to_string(), 8443)]);
    let table = s.ok(&["get", "ep", "myweb-svc-multi"]);
    assert!(table.contains(":8080") && table.contains("+ 3 more..."), "{table}");
    let list = wait_for("a slice with both ports", || async {
        let list = slices(&client, "myweb-svc-multi").await;
        (list.len() == 1 && list[0].endpoints.len() == 3).then_some(list)
    })
    .await;
    let mut slice_ports: Vec<(String, i32)> =
        list[0].ports.iter().flatten().map(|p| (p.name.clone().unwrap_or_default(), p.port.unwrap())).collect();
    slice_ports.sort();
    assert_eq!(slice_ports, ports);

    // Headless: endpoints too, with the headless label.
    let ep = wait_for("headless endpoints", || async {
        let ep = endpoints(&client, "headless-service").await?;
        (addresses(&ep).0.len() == 3).then_some(ep)
    })
    .await;
    assert_eq!(addresses(&ep).0, ready_addresses(&["10.244.2.10:80", "10.244.2.11:80", "10.244.2.12:80"]));
    assert_eq!(ep.metadata.labels.as_ref().unwrap()["service.kubernetes.io/headless"], "");
    let list = wait_for("headless slice", || async {
        let list = slices(&client, "headless-service").await;
        (list.len() == 1 && list[0].endpoints.len() == 3).then_some(list)
    })
    .await;
    assert_eq!(list[0].metadata.labels.as_ref().unwrap()["service.kubernetes.io/headless"], "");

    // A pod whose subdomain names the Service gets its hostname in the endpoints.
    let mut named = nginx.clone();
    named["spec"]["hostname"] = json!("web-0");
    named["spec"]["subdomain"] = json!("headless-service");
    create_pod(&client, "webui-host", &named, "n2").await;
    set_status(&client, "webui-host", "10.244.2.30", true).await;
    wait_for("the hostname", || async {
        let ep = endpoints(&client, "headless-service").await?;
        let has = ep
            .subsets
            .iter()
            .flatten()
            .flat_map(|s| s.addresses.iter().flatten())
            .any(|a| a.ip == "10.244.2.30" && a.hostname.as_deref() == Some("web-0"));
        let list = slices(&client, "headless-service").await;
        let in_slice = list.iter().flat_map(|s| s.endpoints.iter()).any(|e| e.hostname.as_deref() == Some("web-0"));
        (has && in_slice).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_not_ready_addresses() {
    let s = TestServer::start();
    let client = s.client().await;
    register_nodes(&client, &["n1"]).await;
    let svc = "apiVersion: v1\nkind: Service\nmetadata:\n  name: peers\nspec:\n  clusterIP: None\n  publishNotReadyAddresses: true\n  selector:\n    app: peer\n  ports:\n  - port: 7000\n";
    s.ok_stdin(&["create", "-f", "-"], svc);
    let template =
        json!({"metadata": {"labels": {"app": "peer"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}});
    create_pod(&client, "peer-0", &template, "n1").await;
    set_status(&client, "peer-0", "10.244.1.5", false).await;
    wait_for("a not-ready pod published as ready", || async {
        let ep = endpoints(&client, "peers").await?;
        let view = slice_view(&slices(&client, "peers").await);
        let slice_ok = view.get("peer-0").is_some_and(|v| v.2 && !v.3 && !v.4);
        (addresses(&ep).0 == vec!["10.244.1.5:7000".to_string()] && slice_ok).then_some(())
    })
    .await;
    // Even terminating.
    Api::<Pod>::default_namespaced(client.clone()).delete("peer-0", &DeleteParams::default()).await.unwrap();
    wait_for("a terminating pod still published", || async {
        let ep = endpoints(&client, "peers").await?;
        let view = slice_view(&slices(&client, "peers").await);
        let slice_ok = view.get("peer-0").is_some_and(|v| v.2 && v.4);
        (addresses(&ep).0 == vec!["10.244.1.5:7000".to_string()] && slice_ok).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_without_selector_and_external_names_are_left_alone() {
    let s = TestServer::start();
    let client = s.client().await;
    register_nodes(&client, &["n1"]).await;
    let template =
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}});
    create_pod(&client, "web-0", &template, "n1").await;
    set_status(&client, "web-0", "10.244.1.7", true).await;

    let manual = "apiVersion: v1\nkind: Service\nmetadata:\n  name: manual\nspec:\n  ports:\n  - port: 80\n---\napiVersion: v1\nkind: Endpoints\nmetadata:\n  name: manual\nsubsets:\n- addresses:\n  - ip: 192.0.2.10\n  ports:\n  - port: 80\n";
    s.ok_stdin(&["create", "-f", "-"], manual);
    let external = "apiVersion: v1\nkind: Service\nmetadata:\n  name: ext\nspec:\n  type: ExternalName\n  externalName: example.com\n  selector:\n    app: web\n";
    s.ok_stdin(&["create", "-f", "-"], external);
    let manual_rv = endpoints(&client, "manual").await.unwrap().metadata.resource_version;

    // A Service created afterwards gets its endpoints: the controller has been through the others.
    s.ok(&["expose", "pod", "web-0", "--port=80", "--name=later"]);
    wait_for("the later service's endpoints", || async {
        let ep = endpoints(&client, "later").await?;
        (addresses(&ep).0 == vec!["10.244.1.7:80".to_string()]).then_some(())
    })
    .await;
    wait_for("the later service's slice", || async { (slices(&client, "later").await.len() == 1).then_some(()) }).await;

    let ep = endpoints(&client, "manual").await.unwrap();
    assert_eq!(ep.metadata.resource_version, manual_rv, "hand-made endpoints untouched");
    assert_eq!(addresses(&ep).0, vec!["192.0.2.10:80".to_string()]);
    assert!(slices(&client, "manual").await.is_empty());
    assert!(endpoints(&client, "ext").await.is_none());
    assert!(slices(&client, "ext").await.is_empty());
    let table = s.ok(&["get", "ep", "manual"]);
    assert!(table.contains("192.0.2.10:80"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_a_hundred_pods_take_two_slices() {
    let s = TestServer::start();
    let client = s.client().await;
    register_nodes(&client, &["n1", "n2"]).await;
    let svc = "apiVersion: v1\nkind: Service\nmetadata:\n  name: big\nspec:\n  selector:\n    app: big\n  ports:\n  - port: 80\n    targetPort: 8080\n";
    s.ok_stdin(&["create", "-f", "-"], svc);
    let template =
        json!({"metadata": {"labels": {"app": "big"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}});
    let count = 110;
    let creates = (0..count).map(|i| {
        let (client, template) = (client.clone(), template.clone());
        async move {
            let name = format!("big-{i}");
            create_pod(&client, &name, &template, if i % 2 == 0 { "n1" } else { "n2" }).await;
            set_status(&client, &name, &format!("10.244.{}.{}", i / 100 + 1, i % 100 + 2), true).await;
        }
    });
    futures::future::join_all(creates).await;
    let list = wait_for("110 endpoints in two slices", || async {
        let list = slices(&client, "big").await;
        let total: usize = list.iter().map(|s| s.endpoints.len()).sum();
        (total == count).then_some(list)
    })
    .await;
    // Two slices, none over 100 (how they share depends on how the pods arrived: like upstream,
    // a batch of new endpoints goes to a slice only if it fits whole).
    assert_eq!(list.len(), 2, "{:?}", list.iter().map(|s| s.endpoints.len()).collect::<Vec<_>>());
    assert!(list.iter().all(|s| s.endpoints.len() <= 100));
    assert!(list.iter().all(|s| s.endpoints.iter().all(|e| e.conditions.as_ref().unwrap().ready == Some(true))));
    let ep = wait_for("110 addresses", || async {
        let ep = endpoints(&client, "big").await?;
        (addresses(&ep).0.len() == count).then_some(ep)
    })
    .await;
    assert!(!ep.metadata.annotations.unwrap_or_default().contains_key("endpoints.kubernetes.io/over-capacity"));
    let table = s.ok(&["get", "ep", "big"]);
    assert!(table.contains("+ 107 more..."), "{table}");
}

/// `podnet controllers --controllers=endpoints` against the server, killed when dropped.
struct Controllers(Child);

impl Controllers {
    fn start(s: &TestServer) -> Controllers {
        let child = Command::new(podnet_bin())
            .args(["controllers", "--controllers=endpoints", "--kubeconfig"])
            .arg(s.kubeconfig())
            .env("PODNET_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting podnet controllers");
        Controllers(child)
    }
}

impl Drop for Controllers {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn simple_service(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  selector:\n    app: {name}\n  ports:\n  - port: 80\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_controller_converges_and_cleans_up_after_deleted_services() {
    // The API server alone; the controllers run standalone, and are restarted.
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_in(dir.path(), "127.0.0.1:0", &["--controllers=none"]);
    let client = s.client().await;
    register_nodes(&client, &["n1"]).await;
    for name in ["stay", "leave"] {
        s.ok_stdin(&["create", "-f", "-"], &simple_service(name));
    }
    let pod = |app: &str| json!({"metadata": {"labels": {"app": app}}, "spec": {"containers": [{"name": "c", "image": "x"}]}});
    for i in 0..3 {
        create_pod(&client, &format!("stay-{i}"), &pod("stay"), "n1").await;
        set_status(&client, &format!("stay-{i}"), &format!("10.244.1.{}", i + 2), true).await;
    }
    create_pod(&client, "leave-0", &pod("leave"), "n1").await;
    set_status(&client, "leave-0", "10.244.1.9", true).await;

    let controllers = Controllers::start(&s);
    let before = wait_for("both services' endpoints", || async {
        let stay = slices(&client, "stay").await;
        let leave = endpoints(&client, "leave").await?;
        let ready = addresses(&endpoints(&client, "stay").await?).0.len() == 3 && addresses(&leave).0.len() == 1;
        (ready && stay.len() == 1 && stay[0].endpoints.len() == 3).then_some(stay)
    })
    .await;
    drop(controllers); // SIGKILL

    // While no controller runs: a pod turns not ready, one is added, a Service is deleted.
    set_status(&client, "stay-1", "10.244.1.3", false).await;
    create_pod(&client, "stay-3", &pod("stay"), "n1").await;
    set_status(&client, "stay-3", "10.244.1.5", true).await;
    s.ok(&["delete", "svc", "leave"]);
    assert!(endpoints(&client, "leave").await.is_some());

    let _controllers = Controllers::start(&s);
    let after = wait_for("convergence after the restart", || async {
        let (ready, not_ready) = addresses(&endpoints(&client, "stay").await?);
        let list = slices(&client, "stay").await;
        let view = slice_view(&list);
        let ok = ready.len() == 3
            && not_ready == vec!["10.244.1.3:80".to_string()]
            && view.len() == 4
            && view.get("stay-1").is_some_and(|v| !v.2);
        let leftovers_gone = endpoints(&client, "leave").await.is_none() && slices(&client, "leave").await.is_empty();
        (ok && leftovers_gone).then_some(list)
    })
    .await;
    assert_eq!(after.len(), 1, "no duplicate slice");
    assert_eq!(after[0].metadata.name, before[0].metadata.name, "the slice is kept");
}
