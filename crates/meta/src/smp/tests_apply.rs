//! Tests of the server-side apply merge.

use serde_json::{json, Value};

use super::{apply_merge, SmpError};

fn apply(kind: &str, live: Value, applied: Value) -> Value {
    apply_merge(&live, &applied, kind).unwrap_or_else(|e| panic!("apply failed: {e}"))
}

fn apply_err(kind: &str, live: Value, applied: Value) -> SmpError {
    apply_merge(&live, &applied, kind).expect_err("apply should fail")
}

fn live_deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "labels": {"app": "web", "team": "net"},
            "finalizers": ["example.com/a"],
            "resourceVersion": "7",
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web", "track": "stable"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "nodeSelector": {"disk": "ssd", "zone": "a"},
                    "tolerations": [{"key": "a", "operator": "Exists"}],
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx:1.25",
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "env": [{"name": "MODE", "value": "prod"}],
                            "terminationMessagePath": "/dev/termination-log",
                        },
                        {"name": "sidecar", "image": "envoy:1.30"},
                    ],
                },
            },
        },
        "status": {"replicas": 2},
    })
}

fn containers(v: &Value) -> &Value {
    &v["spec"]["template"]["spec"]["containers"]
}

#[test]
fn apply_creates_from_nothing() {
    let applied = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "labels": {"a": "1", "b": null}},
        "data": {"k": "v"},
    });
    assert_eq!(
        apply_merge(&Value::Null, &applied, "ConfigMap").unwrap(),
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "c", "labels": {"a": "1"}},
            "data": {"k": "v"},
        })
    );
}

#[test]
fn apply_changes_an_image_and_keeps_server_fields() {
    let applied = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}},
    });
    let merged = apply("Deployment", live_deployment(), applied);
    let mut expected = live_deployment();
    expected["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.27");
    assert_eq!(merged, expected);
}

#[test]
fn apply_without_ownership_keeps_omitted_containers() {
    // Documented limitation: no managedFields, so the omitted sidecar stays.
    let applied = json!({"spec": {"template": {"spec": {"containers": [{"name": "web"}]}}}});
    let merged = apply("Deployment", live_deployment(), applied);
    assert_eq!(merged, live_deployment());
}

#[test]
fn apply_appends_new_list_elements() {
    let applied = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "web"},
        {"name": "sidecar"},
        {"name": "metrics", "image": "prom/exporter"},
    ]}}}});
    let merged = apply("Deployment", live_deployment(), applied);
    let names: Vec<&str> =
        containers(&merged).as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["web", "sidecar", "metrics"]);
    assert_eq!(containers(&merged)[2], json!({"name": "metrics", "image": "prom/exporter"}));
}

#[test]
fn apply_takes_the_applied_order_and_keeps_live_only_elements_in_place() {
    let live = json!({"metadata": {"ownerReferences": [
        {"uid": "a"}, {"uid": "x"}, {"uid": "b"},
    ]}});
    let applied = json!({"metadata": {"ownerReferences": [
        {"uid": "b"}, {"uid": "a"}, {"uid": "c"},
    ]}});
    let merged = apply("Pod", live, applied);
    assert_eq!(merged["metadata"]["ownerReferences"], json!([{"uid": "x"}, {"uid": "b"}, {"uid": "a"}, {"uid": "c"}]));
}

#[test]
fn apply_merges_nested_associative_lists() {
    let applied = json!({"spec": {"template": {"spec": {"containers": [{
        "name": "web",
        "env": [{"name": "LOG", "value": "debug"}, {"name": "MODE", "value": "dev"}],
    }]}}}});
    let merged = apply("Deployment", live_deployment(), applied);
    assert_eq!(
        containers(&merged)[0]["env"],
        json!([{"name": "LOG", "value": "debug"}, {"name": "MODE", "value": "dev"}])
    );
}

#[test]
fn container_ports_are_keyed_by_port_and_protocol() {
    let applied = json!({"spec": {"template": {"spec": {"containers": [{
        "name": "web",
        // No protocol: TCP, the live port.
        "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 80, "protocol": "UDP"}],
    }]}}}});
    let merged = apply("Deployment", live_deployment(), applied);
    assert_eq!(
        containers(&merged)[0]["ports"],
        json!([
            {"containerPort": 80, "protocol": "TCP", "name": "http"},
            {"containerPort": 80, "protocol": "UDP"},
        ])
    );
}

#[test]
fn service_ports_are_keyed_by_port_and_protocol() {
    let live = json!({"spec": {
        "ports": [{"port": 53, "protocol": "TCP", "targetPort": 53}],
        "selector": {"app": "dns", "old": "x"},
        "clusterIP": "10.96.0.10",
    }});
    let applied = json!({"spec": {
        "ports": [{"port": 53, "targetPort": 5353}, {"port": 53, "protocol": "UDP", "targetPort": 5353}],
        "selector": {"app": "dns"},
    }});
    let merged = apply("Service", live, applied);
    assert_eq!(
        merged["spec"],
        json!({
            "ports": [
                {"port": 53, "protocol": "TCP", "targetPort": 5353},
                {"port": 53, "protocol": "UDP", "targetPort": 5353},
            ],
            // +mapType=atomic: replaced whole.
            "selector": {"app": "dns"},
            "clusterIP": "10.96.0.10",
        })
    );
}

#[test]
fn atomic_maps_and_structs_are_replaced() {
    let applied = json!({"spec": {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"spec": {"nodeSelector": {"disk": "hdd"}}},
    }});
    let merged = apply("Deployment", live_deployment(), applied);
    // LabelSelector is +structType=atomic.
    assert_eq!(merged["spec"]["selector"], json!({"matchLabels": {"app": "web"}}));
    // nodeSelector is +mapType=atomic.
    assert_eq!(merged["spec"]["template"]["spec"]["nodeSelector"], json!({"disk": "hdd"}));
}

#[test]
fn granular_maps_merge() {
    let applied = json!({"metadata": {"labels": {"app": "web2", "tier": "fe"}}});
    let merged = apply("Deployment", live_deployment(), applied);
    assert_eq!(merged["metadata"]["labels"], json!({"app": "web2", "team": "net", "tier": "fe"}));
}

#[test]
fn null_removes_a_field() {
    let applied = json!({"metadata": {"labels": {"team": null}}, "spec": {"replicas": null}});
    let merged = apply("Deployment", live_deployment(), applied);
    assert_eq!(merged["metadata"]["labels"], json!({"app": "web"}));
    assert!(merged["spec"].get("replicas").is_none());
}

#[test]
fn atomic_lists_are_replaced() {
    let applied = json!({"spec": {"template": {"spec": {"tolerations": [
        {"key": "b", "operator": "Equal", "value": null},
    ]}}}});
    let merged = apply("Deployment", live_deployment(), applied);
    assert_eq!(merged["spec"]["template"]["spec"]["tolerations"], json!([{"key": "b", "operator": "Equal"}]));
}

#[test]
fn sets_are_unions() {
    let applied = json!({"metadata": {"finalizers": ["example.com/b", "example.com/a"]}});
    let merged = apply("Deployment", live_deployment(), applied);
    assert_eq!(merged["metadata"]["finalizers"], json!(["example.com/b", "example.com/a"]));
    let applied = json!({"metadata": {"finalizers": ["example.com/b"]}});
    let merged = apply("Deployment", live_deployment(), applied);
    assert_eq!(merged["metadata"]["finalizers"], json!(["example.com/a", "example.com/b"]));
}

#[test]
fn scale_like_apply() {
    let merged = apply("Deployment", live_deployment(), json!({"spec": {"replicas": 5}}));
    let mut expected = live_deployment();
    expected["spec"]["replicas"] = json!(5);
    assert_eq!(merged, expected);
}

#[test]
fn status_conditions_are_keyed_by_type() {
    let live = json!({"status": {"conditions": [
        {"type": "Ready", "status": "False"},
        {"type": "PodScheduled", "status": "True"},
    ]}});
    let applied = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    assert_eq!(
        apply("Pod", live, applied)["status"]["conditions"],
        json!([
            {"type": "Ready", "status": "True"},
            {"type": "PodScheduled", "status": "True"},
        ])
    );
}

#[test]
fn unknown_kinds_have_atomic_lists() {
    let live = json!({"spec": {"items": [{"name": "a"}], "config": {"x": 1}}});
    let applied = json!({"spec": {"items": [{"name": "b"}], "config": {"y": 2}}});
    assert_eq!(
        apply("CronTab", live, applied),
        json!({"spec": {"items": [{"name": "b"}], "config": {"x": 1, "y": 2}}})
    );
}

#[test]
fn directives_are_plain_data() {
    let merged = apply("ConfigMap", json!({"data": {"a": "1"}}), json!({"data": {"$patch": "replace"}}));
    assert_eq!(merged["data"], json!({"a": "1", "$patch": "replace"}));
}

#[test]
fn duplicate_keys_are_errors() {
    let err = apply_err(
        "Deployment",
        live_deployment(),
        json!({"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "a"}]}}}}),
    );
    assert_eq!(err, SmpError::DuplicateKey { path: ".spec.template.spec.containers".into(), key: "name=\"a\"".into() });
    let err = apply_err("Deployment", live_deployment(), json!({"metadata": {"finalizers": ["x", "x"]}}));
    assert!(matches!(err, SmpError::DuplicateKey { .. }), "{err:?}");
}

#[test]
fn missing_keys_are_errors() {
    let err = apply_err(
        "Deployment",
        live_deployment(),
        json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}),
    );
    assert_eq!(
        err,
        SmpError::MissingMergeKey {
            path: ".spec.template.spec.containers[0]".into(),
            key: "name".into(),
            element: "{\"image\":\"x\"}".into(),
        }
    );
    let err =
        apply_err("Deployment", live_deployment(), json!({"spec": {"template": {"spec": {"containers": ["web"]}}}}));
    assert!(matches!(err, SmpError::ElementNotObject { .. }), "{err:?}");
}

#[test]
fn documents_must_be_objects() {
    assert!(matches!(
        apply_merge(&json!({}), &json!([]), "Pod"),
        Err(SmpError::NotAnObject { what: "applied configuration", .. })
    ));
    assert!(matches!(
        apply_merge(&json!(1), &json!({}), "Pod"),
        Err(SmpError::NotAnObject { what: "live object", .. })
    ));
}
