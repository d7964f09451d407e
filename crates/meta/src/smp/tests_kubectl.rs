//! Tests of strategic merge patch on the built-in kinds: the schema, and what `kubectl apply`,
//! `patch`, `label`, `annotate`, `scale`, `set` and `rollout restart` send.

use serde_json::{json, Value};

use super::{strategic_merge_patch, type_for_kind, ListStrategy, SmpError, KINDS};

fn smp(kind: &str, original: Value, patch: Value) -> Value {
    strategic_merge_patch(&original, &patch, kind).unwrap_or_else(|e| panic!("patch failed: {e}"))
}

#[test]
fn error_paths_name_the_element() {
    let err = smp_err(
        "Deployment",
        json!({"spec": {"template": {"spec": {"containers": [{"name": "web"}]}}}}),
        json!({"spec": {"template": {"spec": {"containers": [
            {"name": "web", "env": [{"value": "1"}]},
        ]}}}}),
    );
    assert_eq!(
        err,
        SmpError::MissingMergeKey {
            path: ".spec.template.spec.containers[name=\"web\"].env".into(),
            key: "name".into(),
            element: "{\"value\":\"1\"}".into(),
        }
    );
}

fn smp_err(kind: &str, original: Value, patch: Value) -> SmpError {
    strategic_merge_patch(&original, &patch, kind).expect_err("the patch should fail")
}

// ---- the schema ----

#[test]
fn every_kind_has_a_schema() {
    for kind in KINDS {
        assert!(type_for_kind(kind).is_some(), "{kind}");
    }
    assert!(type_for_kind("apps/v1/Deployment").is_some());
    assert!(type_for_kind("v1/Pod").is_some());
    assert!(type_for_kind("CronTab").is_none());
    assert!(type_for_kind("pod").is_none());
}

#[test]
fn schema_paths_resolve() {
    let deployment = type_for_kind("Deployment").unwrap();
    let pod_spec = deployment
        .field("spec")
        .and_then(|f| f.ty)
        .and_then(|t| t.field("template"))
        .and_then(|f| f.ty)
        .and_then(|t| t.field("spec"))
        .and_then(|f| f.ty)
        .unwrap();
    assert_eq!(pod_spec.name, "PodSpec");
    let containers = pod_spec.field("containers").unwrap();
    assert_eq!(containers.list, ListStrategy::MergeByKey("name"));
    let ports = containers.ty.unwrap().field("ports").unwrap();
    assert_eq!(ports.list, ListStrategy::MergeByKey("containerPort"));
    assert!(pod_spec.field("volumes").unwrap().retain_keys);
    assert!(deployment.field("spec").unwrap().ty.unwrap().field("strategy").unwrap().retain_keys);
}

// ---- what kubectl sends ----

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "labels": {"app": "web", "tier": "frontend"},
            "annotations": {"deployment.kubernetes.io/revision": "1"},
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx:1.25",
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "env": [{"name": "MODE", "value": "prod"}, {"name": "DEBUG", "value": "0"}],
                            "imagePullPolicy": "IfNotPresent",
                            "terminationMessagePath": "/dev/termination-log",
                        },
                        {"name": "sidecar", "image": "envoy:1.30", "imagePullPolicy": "IfNotPresent"},
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                    "tolerations": [{"key": "a", "operator": "Exists"}],
                    "restartPolicy": "Always",
                },
            },
        },
        "status": {"replicas": 2, "conditions": [
            {"type": "Available", "status": "True"},
            {"type": "Progressing", "status": "True"},
        ]},
    })
}

fn containers(v: &Value) -> &Value {
    &v["spec"]["template"]["spec"]["containers"]
}

#[test]
fn kubectl_apply_changes_an_image() {
    let patch = json!({
        "metadata": {"annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": "{...}",
        }},
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
            "containers": [{"image": "nginx:1.27", "name": "web"}],
        }}},
    });
    let patched = smp("Deployment", deployment(), patch);
    let mut expected = deployment();
    expected["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.27");
    expected["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = json!("{...}");
    assert_eq!(patched, expected);
}

#[test]
fn kubectl_apply_removes_a_container() {
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "web"}],
        "containers": [{"$patch": "delete", "name": "sidecar"}],
    }}}});
    let patched = smp("Deployment", deployment(), patch);
    let names: Vec<&Value> = containers(&patched).as_array().unwrap().iter().map(|c| &c["name"]).collect();
    assert_eq!(names, [&json!("web")]);
    assert_eq!(containers(&patched)[0], containers(&deployment())[0]);
}

#[test]
fn kubectl_apply_adds_a_container_in_place() {
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "web"}, {"name": "metrics"}, {"name": "sidecar"}],
        "containers": [{"image": "prom/exporter", "name": "metrics"}],
    }}}});
    let patched = smp("Deployment", deployment(), patch);
    assert_eq!(containers(&patched)[1], json!({"image": "prom/exporter", "name": "metrics"}));
    assert_eq!(containers(&patched)[2]["name"], "sidecar");
}

#[test]
fn kubectl_patch_adds_a_container_first() {
    // `kubectl patch deployment web -p '{"spec":{"template":{"spec":{"containers":[...]}}}}'`:
    // no $setElementOrder, so the new container comes first, as the Kubernetes docs show.
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "redis", "image": "redis"},
    ]}}}});
    let patched = smp("apps/v1/Deployment", deployment(), patch);
    let names: Vec<&str> =
        containers(&patched).as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["redis", "web", "sidecar"]);
}

#[test]
fn kubectl_set_env_and_unset() {
    let patch = json!({"spec": {"template": {"spec": {"containers": [{
        "name": "web",
        "$setElementOrder/env": [{"name": "MODE"}, {"name": "LOG"}],
        "env": [
            {"name": "MODE", "value": "dev"},
            {"name": "LOG", "value": "debug"},
            {"$patch": "delete", "name": "DEBUG"},
        ],
    }]}}}});
    let patched = smp("Deployment", deployment(), patch);
    assert_eq!(
        containers(&patched)[0]["env"],
        json!([{"name": "MODE", "value": "dev"}, {"name": "LOG", "value": "debug"}])
    );
    assert_eq!(containers(&patched)[1], containers(&deployment())[1]);
}

#[test]
fn container_ports_merge_by_container_port_only() {
    // Upstream's merge key is containerPort alone: 80/UDP merges into 80/TCP
    // (kubernetes/kubernetes#108255).
    let patch = json!({"spec": {"template": {"spec": {"containers": [{
        "name": "web",
        "ports": [{"containerPort": 80, "protocol": "UDP"}, {"containerPort": 443}],
    }]}}}});
    let patched = smp("Deployment", deployment(), patch);
    assert_eq!(
        containers(&patched)[0]["ports"],
        json!([{"containerPort": 80, "protocol": "UDP"}, {"containerPort": 443}])
    );
}

#[test]
fn kubectl_scale_like_patch() {
    let patched = smp("Deployment", deployment(), json!({"spec": {"replicas": 5}}));
    let mut expected = deployment();
    expected["spec"]["replicas"] = json!(5);
    assert_eq!(patched, expected);
}

#[test]
fn kubectl_rollout_restart() {
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z",
    }}}}});
    let patched = smp("Deployment", deployment(), patch);
    assert_eq!(
        patched["spec"]["template"]["metadata"],
        json!({
            "labels": {"app": "web"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"},
        })
    );
}

#[test]
fn kubectl_label_and_annotate() {
    let pod = json!({"metadata": {"name": "p", "labels": {"app": "web", "env": "dev"}}});
    // kubectl label pod p team=net --overwrite env=prod
    let patched = smp("Pod", pod.clone(), json!({"metadata": {"labels": {"team": "net", "env": "prod"}}}));
    assert_eq!(patched["metadata"]["labels"], json!({"app": "web", "env": "prod", "team": "net"}));
    // kubectl label pod p env-
    let patched = smp("Pod", pod.clone(), json!({"metadata": {"labels": {"env": null}}}));
    assert_eq!(patched["metadata"]["labels"], json!({"app": "web"}));
    // kubectl annotate pod p note=hello, on a pod without annotations
    let patched = smp("Pod", pod, json!({"metadata": {"annotations": {"note": "hello"}}}));
    assert_eq!(patched["metadata"]["annotations"], json!({"note": "hello"}));
}

#[test]
fn kubectl_apply_removes_a_label() {
    let patch = json!({"metadata": {"labels": {"tier": null}}});
    let patched = smp("Deployment", deployment(), patch);
    assert_eq!(patched["metadata"]["labels"], json!({"app": "web"}));
}

fn service() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {
            "clusterIP": "10.96.0.10",
            "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
            "type": "ClusterIP",
        },
    })
}

#[test]
fn kubectl_apply_adds_a_service_port() {
    let patch = json!({"spec": {
        "$setElementOrder/ports": [{"port": 80}, {"port": 443}],
        "ports": [{"name": "https", "port": 443, "targetPort": 8443}],
    }});
    let patched = smp("Service", service(), patch);
    assert_eq!(
        patched["spec"]["ports"],
        json!([
            {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
            {"name": "https", "port": 443, "targetPort": 8443},
        ])
    );
    assert_eq!(patched["spec"]["clusterIP"], "10.96.0.10");
}

#[test]
fn kubectl_apply_removes_a_service_port() {
    let mut live = service();
    live["spec"]["ports"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443}));
    let patch = json!({"spec": {
        "$setElementOrder/ports": [{"port": 443}],
        "ports": [{"$patch": "delete", "port": 80}],
    }});
    let patched = smp("Service", live, patch);
    assert_eq!(
        patched["spec"]["ports"],
        json!([{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443}])
    );
}

#[test]
fn service_selector_merges_under_strategic_merge_patch() {
    // SMP ignores +mapType=atomic: the selector merges.
    let patched = smp("Service", service(), json!({"spec": {"selector": {"tier": "fe"}}}));
    assert_eq!(patched["spec"]["selector"], json!({"app": "web", "tier": "fe"}));
}

#[test]
fn deployment_strategy_switch_with_retain_keys() {
    let patch = json!({"spec": {"strategy": {
        "$retainKeys": ["type"],
        "rollingUpdate": null,
        "type": "Recreate",
    }}});
    let patched = smp("Deployment", deployment(), patch);
    assert_eq!(patched["spec"]["strategy"], json!({"type": "Recreate"}));
    // Without the null, $retainKeys alone clears rollingUpdate.
    let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
    let patched = smp("Deployment", deployment(), patch);
    assert_eq!(patched["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[test]
fn volume_source_switch_with_retain_keys() {
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/volumes": [{"name": "data"}],
        "volumes": [{
            "$retainKeys": ["configMap", "name"],
            "configMap": {"name": "settings"},
            "name": "data",
        }],
    }}}});
    let patched = smp("Deployment", deployment(), patch);
    assert_eq!(
        patched["spec"]["template"]["spec"]["volumes"],
        json!([{"name": "data", "configMap": {"name": "settings"}}])
    );
}

#[test]
fn tolerations_are_replaced() {
    let patch = json!({"spec": {"template": {"spec": {"tolerations": [
        {"key": "b", "operator": "Exists"},
    ]}}}});
    let patched = smp("Deployment", deployment(), patch);
    assert_eq!(patched["spec"]["template"]["spec"]["tolerations"], json!([{"key": "b", "operator": "Exists"}]));
}

#[test]
fn status_conditions_merge_by_type() {
    let patch = json!({"status": {
        "$setElementOrder/conditions": [{"type": "Available"}, {"type": "Progressing"}],
        "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"}],
    }});
    let patched = smp("Deployment", deployment(), patch);
    assert_eq!(
        patched["status"]["conditions"],
        json!([
            {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
            {"type": "Progressing", "status": "True"},
        ])
    );
}

#[test]
fn pod_status_patch_from_the_kubelet() {
    let pod = json!({
        "metadata": {"name": "p"},
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [{"name": "a", "ready": false}, {"name": "b", "ready": false}],
        },
    });
    let patch = json!({"status": {
        "$setElementOrder/conditions": [{"type": "PodScheduled"}, {"type": "Ready"}],
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [{"name": "a", "ready": true}],
        "podIP": "10.0.0.5",
        "podIPs": [{"ip": "10.0.0.5"}],
        "phase": "Running",
    }});
    let patched = smp("Pod", pod, patch);
    assert_eq!(
        patched["status"],
        json!({
            "phase": "Running",
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": "True"},
            ],
            // Atomic: replaced whole.
            "containerStatuses": [{"name": "a", "ready": true}],
            "podIP": "10.0.0.5",
            "podIPs": [{"ip": "10.0.0.5"}],
        })
    );
}

#[test]
fn node_status_addresses_merge_by_type() {
    let node = json!({"status": {"addresses": [
        {"type": "InternalIP", "address": "10.0.0.1"},
        {"type": "Hostname", "address": "n1"},
    ]}});
    let patch = json!({"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.2"}]}});
    let patched = smp("Node", node, patch);
    assert_eq!(
        patched["status"]["addresses"],
        json!([
            {"type": "InternalIP", "address": "10.0.0.2"},
            {"type": "Hostname", "address": "n1"},
        ])
    );
}

#[test]
fn finalizers_are_a_merged_set() {
    let ns = json!({"metadata": {"name": "ns", "finalizers": ["a", "b"]}});
    let patched = smp("Namespace", ns.clone(), json!({"metadata": {"finalizers": ["b", "c"]}}));
    assert_eq!(patched["metadata"]["finalizers"], json!(["a", "b", "c"]));
    let patched = smp("Namespace", ns, json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}));
    assert_eq!(patched["metadata"]["finalizers"], json!(["b"]));
}

#[test]
fn owner_references_merge_by_uid() {
    let rs = json!({"metadata": {"ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "u1"},
    ]}});
    let patch = json!({"metadata": {"ownerReferences": [
        {"uid": "u1", "controller": true},
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "c", "uid": "u2"},
    ]}});
    let patched = smp("ReplicaSet", rs, patch);
    assert_eq!(
        patched["metadata"]["ownerReferences"],
        json!([
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "u1", "controller": true},
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "c", "uid": "u2"},
        ])
    );
}

#[test]
fn ephemeral_and_init_containers_merge_like_containers() {
    let pod = json!({"spec": {
        "initContainers": [{"name": "init", "image": "busybox", "env": [{"name": "A", "value": "1"}]}],
        "ephemeralContainers": [{"name": "debug", "image": "busybox"}],
    }});
    let patch = json!({"spec": {
        "initContainers": [{"name": "init", "env": [{"name": "B", "value": "2"}]}],
        "ephemeralContainers": [{"name": "debug2", "image": "alpine", "targetContainerName": "web"}],
    }});
    let patched = smp("Pod", pod, patch);
    assert_eq!(
        patched["spec"]["initContainers"],
        json!([{"name": "init", "image": "busybox", "env": [
            {"name": "B", "value": "2"},
            {"name": "A", "value": "1"},
        ]}])
    );
    assert_eq!(
        patched["spec"]["ephemeralContainers"],
        json!([
            {"name": "debug2", "image": "alpine", "targetContainerName": "web"},
            {"name": "debug", "image": "busybox"},
        ])
    );
}

#[test]
fn endpoint_slice_endpoints_are_replaced() {
    let slice = json!({"endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}]});
    let patched = smp("EndpointSlice", slice, json!({"endpoints": [{"addresses": ["10.0.0.3"]}]}));
    assert_eq!(patched["endpoints"], json!([{"addresses": ["10.0.0.3"]}]));
}

#[test]
fn unknown_kinds_merge_maps_and_replace_lists() {
    let crd = json!({"spec": {"items": [{"name": "a"}], "config": {"x": 1, "y": 2}}});
    let patch = json!({"spec": {"items": [{"name": "b"}], "config": {"y": null, "z": 3}}});
    assert_eq!(smp("CronTab", crd, patch), json!({"spec": {"items": [{"name": "b"}], "config": {"x": 1, "z": 3}}}));
    // Directives are still honoured.
    assert_eq!(
        smp("CronTab", json!({"spec": {"a": 1}}), json!({"spec": {"$patch": "replace", "b": 2}})),
        json!({"spec": {"b": 2}})
    );
}

#[test]
fn inputs_are_not_modified() {
    let original = deployment();
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "x"}]}}}});
    let before = (original.clone(), patch.clone());
    let _ = smp("Deployment", original.clone(), patch.clone());
    assert_eq!((original, patch), before);
}
