//! Tests of the validation of every kind: the causes of invalid objects, with their exact field
//! paths, and realistic objects (defaulted as the API server defaults them) that are valid.

use serde_json::{json, Value};

use super::validate;
use crate::defaults::apply_defaults;
use crate::status::Cause;

/// `(reason, field)` of every cause, in order.
fn fields(causes: &[Cause]) -> Vec<(&'static str, String)> {
    causes.iter().map(|c| (c.reason, c.field.clone())).collect()
}

/// Validates a defaulted copy of `obj`, as the API server does on create.
fn check(kind: &str, obj: Value) -> Vec<Cause> {
    let mut obj = obj;
    apply_defaults(kind, &mut obj);
    validate(kind, &obj, None)
}

/// Validates a defaulted update of `old` to `new`.
fn check_update(kind: &str, old: Value, new: Value) -> Vec<Cause> {
    let (mut old, mut new) = (old, new);
    apply_defaults(kind, &mut old);
    apply_defaults(kind, &mut new);
    validate(kind, &new, Some(&old))
}

#[track_caller]
fn assert_valid(kind: &str, obj: Value) {
    let causes = check(kind, obj);
    assert!(causes.is_empty(), "{kind} should be valid: {causes:#?}");
}

#[track_caller]
fn assert_causes(causes: &[Cause], expected: &[(&str, &str)]) {
    let got = fields(causes);
    let want: Vec<(&str, String)> = expected.iter().map(|(r, f)| (*r, f.to_string())).collect();
    assert_eq!(got, want, "causes: {causes:#?}");
}

fn message<'a>(causes: &'a [Cause], field: &str) -> &'a str {
    &causes.iter().find(|c| c.field == field).unwrap_or_else(|| panic!("no cause at {field}: {causes:#?}")).message
}

fn pod(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
}

fn service(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
}

/// A service as stored: defaulted and with its cluster IP allocated.
fn allocated_service(spec: Value, ip: &str) -> Value {
    let mut svc = service(spec);
    apply_defaults("Service", &mut svc);
    svc["spec"]["clusterIP"] = json!(ip);
    svc["spec"]["clusterIPs"] = json!([ip]);
    svc
}

fn deployment(selector: Value, template_labels: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": 3,
            "selector": selector,
            "template": {
                "metadata": {"labels": template_labels},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}
            }
        }
    })
}

// --------------------------------------------------------------------------------------- pods

#[test]
fn realistic_pod_is_valid() {
    assert_valid(
        "Pod",
        pod(json!({
            "initContainers": [{"name": "migrate", "image": "app:1.2", "command": ["/migrate"]}],
            "containers": [{
                "name": "app",
                "image": "registry.example.com:5000/team/app:1.2",
                "ports": [{"name": "http", "containerPort": 8080}, {"name": "metrics", "containerPort": 9090}],
                "env": [
                    {"name": "MODE", "value": "prod"},
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                    {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                    {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}
                ],
                "envFrom": [{"configMapRef": {"name": "app-config"}, "prefix": "CFG_"}],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "128Mi"}},
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "initialDelaySeconds": 5},
                "readinessProbe": {"tcpSocket": {"port": 8080}},
                "startupProbe": {"exec": {"command": ["true"]}, "failureThreshold": 30},
                "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
                "volumeMounts": [
                    {"name": "data", "mountPath": "/data"},
                    {"name": "config", "mountPath": "/etc/app", "readOnly": true},
                    {"name": "token", "mountPath": "/var/run/token"}
                ]
            }],
            "volumes": [
                {"name": "data", "emptyDir": {"sizeLimit": "1Gi"}},
                {"name": "config", "configMap": {"name": "app-config", "items": [{"key": "app.yaml", "path": "app.yaml"}]}},
                {"name": "token", "projected": {"sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}]}}
            ],
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"}],
            "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}}
            ]}},
            "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"}],
            "dnsConfig": {"options": [{"name": "ndots", "value": "2"}]},
            "hostAliases": [{"ip": "10.0.0.10", "hostnames": ["db.local"]}]
        })),
    );
    // What `kubectl run web --image=nginx` sends.
    assert_valid(
        "Pod",
        json!({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "web", "creationTimestamp": null, "labels": {"run": "web"}},
               "spec": {"containers": [{"name": "web", "image": "nginx", "resources": {}}], "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"},
               "status": {}}),
    );
}

#[test]
fn pod_without_containers() {
    assert_causes(&check("Pod", pod(json!({}))), &[("FieldValueRequired", "spec.containers")]);
    assert_causes(&check("Pod", pod(json!({"containers": []}))), &[("FieldValueRequired", "spec.containers")]);
    assert_causes(&check("Pod", json!({"metadata": {"name": "p"}})), &[("FieldValueRequired", "spec.containers")]);
}

#[test]
fn pod_bad_container_name_and_missing_image() {
    let causes = check("Pod", pod(json!({"containers": [{"name": "Web_1", "image": "nginx"}, {"name": "side"}]})));
    assert_causes(
        &causes,
        &[("FieldValueInvalid", "spec.containers[0].name"), ("FieldValueRequired", "spec.containers[1].image")],
    );
    assert!(message(&causes, "spec.containers[0].name").starts_with(
        "Invalid value: \"Web_1\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'"
    ));
}

#[test]
fn pod_duplicate_names_across_containers_and_init_containers() {
    let causes = check(
        "Pod",
        pod(json!({
            "initContainers": [{"name": "app", "image": "busybox"}],
            "containers": [{"name": "app", "image": "nginx"}, {"name": "app", "image": "nginx"}]
        })),
    );
    assert_causes(
        &causes,
        &[("FieldValueDuplicate", "spec.containers[1].name"), ("FieldValueDuplicate", "spec.initContainers[0].name")],
    );
}

#[test]
fn pod_container_ports() {
    let causes = check(
        "Pod",
        pod(json!({"containers": [{"name": "a", "image": "a", "ports": [
            {"name": "http", "containerPort": 80},
            {"name": "http", "containerPort": 81},
            {"name": "Bad_Name", "containerPort": 70000, "protocol": "ICMP"},
            {"containerPort": 0},
            {"containerPort": 90, "hostPort": 8080},
            {"containerPort": 91, "hostPort": 8080}
        ]}]})),
    );
    assert_causes(
        &causes,
        &[
            ("FieldValueDuplicate", "spec.containers[0].ports[1].name"),
            ("FieldValueInvalid", "spec.containers[0].ports[2].name"),
            ("FieldValueInvalid", "spec.containers[0].ports[2].containerPort"),
            ("FieldValueNotSupported", "spec.containers[0].ports[2].protocol"),
            ("FieldValueRequired", "spec.containers[0].ports[3].containerPort"),
            ("FieldValueDuplicate", "spec.containers[0].ports[5].hostPort"),
        ],
    );
    assert_eq!(
        message(&causes, "spec.containers[0].ports[2].containerPort"),
        "Invalid value: 70000: must be between 1 and 65535, inclusive"
    );
    assert_eq!(
        message(&causes, "spec.containers[0].ports[2].protocol"),
        "Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\""
    );
}

#[test]
fn pod_enums_env_mounts_probes_resources() {
    let causes = check(
        "Pod",
        pod(json!({
            "restartPolicy": "Sometimes",
            "dnsPolicy": "Google",
            "containers": [{
                "name": "a", "image": "a", "imagePullPolicy": "Maybe",
                "env": [{"name": "A=B"}, {"name": ""}, {"name": "X", "value": "1", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                        {"name": "Y", "valueFrom": {"fieldRef": {"fieldPath": "status.phase"}}}],
                "volumeMounts": [{"name": "missing", "mountPath": "/m"}],
                "livenessProbe": {"periodSeconds": 10, "successThreshold": 2, "httpGet": {"port": 8080}},
                "readinessProbe": {"exec": {"command": []}},
                "resources": {"requests": {"cpu": "2", "memory": "lots"}, "limits": {"cpu": "1"}}
            }]
        })),
    );
    assert_causes(
        &causes,
        &[
            ("FieldValueInvalid", "spec.containers[0].env[0].name"),
            ("FieldValueRequired", "spec.containers[0].env[1].name"),
            ("FieldValueInvalid", "spec.containers[0].env[2].valueFrom"),
            ("FieldValueNotSupported", "spec.containers[0].env[3].valueFrom.fieldRef.fieldPath"),
            ("FieldValueNotFound", "spec.containers[0].volumeMounts[0].name"),
            ("FieldValueNotSupported", "spec.containers[0].imagePullPolicy"),
            ("FieldValueInvalid", "spec.containers[0].resources.requests"),
            ("FieldValueInvalid", "spec.containers[0].resources.requests[memory]"),
            ("FieldValueInvalid", "spec.containers[0].livenessProbe.successThreshold"),
            ("FieldValueRequired", "spec.containers[0].readinessProbe.exec.command"),
            ("FieldValueNotSupported", "spec.restartPolicy"),
            ("FieldValueNotSupported", "spec.dnsPolicy"),
        ],
    );
    assert_eq!(
        message(&causes, "spec.containers[0].resources.requests"),
        "Invalid value: \"2\": must be less than or equal to cpu limit of 1"
    );
    assert_eq!(
        message(&causes, "spec.restartPolicy"),
        "Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""
    );
}

#[test]
fn pod_volumes_and_tolerations() {
    let causes = check(
        "Pod",
        pod(json!({
            "containers": [{"name": "a", "image": "a"}],
            "volumes": [
                {"name": "cfg", "configMap": {}},
                {"name": "cfg", "emptyDir": {}, "hostPath": {"path": "/x"}},
                {"name": "s", "secret": {"secretName": "s", "defaultMode": 4096, "items": [{"key": "k", "path": "../etc"}]}}
            ],
            "tolerations": [
                {"operator": "Equal", "value": "x"},
                {"key": "k", "operator": "Exists", "value": "v"},
                {"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5}
            ]
        })),
    );
    assert_causes(
        &causes,
        &[
            ("FieldValueRequired", "spec.volumes[0].configMap.name"),
            ("FieldValueForbidden", "spec.volumes[1].emptyDir"),
            ("FieldValueDuplicate", "spec.volumes[1].name"),
            ("FieldValueInvalid", "spec.volumes[2].secret.defaultMode"),
            ("FieldValueInvalid", "spec.volumes[2].secret.items[0].path"),
            ("FieldValueInvalid", "spec.tolerations[0].operator"),
            ("FieldValueInvalid", "spec.tolerations[1].operator"),
            ("FieldValueInvalid", "spec.tolerations[2].effect"),
        ],
    );
}

#[test]
fn pod_update_rules() {
    let old = pod(json!({"containers": [{"name": "a", "image": "nginx:1.26"}]}));
    // Image changes are allowed.
    let new = pod(json!({"containers": [{"name": "a", "image": "nginx:1.27"}]}));
    assert_causes(&check_update("Pod", old.clone(), new), &[]);
    // Tolerations may be added; the defaulted ones stay.
    let new = pod(json!({"containers": [{"name": "a", "image": "nginx:1.26"}], "tolerations": [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        {"key": "gpu", "operator": "Exists"}
    ]}));
    assert_causes(&check_update("Pod", old.clone(), new), &[]);
    // The active deadline may be set, then lowered.
    let new = pod(json!({"containers": [{"name": "a", "image": "nginx:1.26"}], "activeDeadlineSeconds": 60}));
    assert_causes(&check_update("Pod", old.clone(), new.clone()), &[]);
    let raised = pod(json!({"containers": [{"name": "a", "image": "nginx:1.26"}], "activeDeadlineSeconds": 120}));
    assert_causes(&check_update("Pod", new, raised), &[("FieldValueInvalid", "spec.activeDeadlineSeconds")]);
    // Anything else is forbidden.
    let new = pod(json!({"containers": [{"name": "a", "image": "nginx:1.26", "ports": [{"containerPort": 80}]}]}));
    let causes = check_update("Pod", old.clone(), new);
    assert_causes(&causes, &[("FieldValueForbidden", "spec")]);
    assert!(message(&causes, "spec").starts_with(
        "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`"
    ));
    assert!(message(&causes, "spec").contains("containers[0].ports"));
    // Adding a container is reported as such.
    let new = pod(json!({"containers": [{"name": "a", "image": "nginx:1.26"}, {"name": "b", "image": "b"}]}));
    let causes = check_update("Pod", old.clone(), new);
    assert_causes(&causes, &[("FieldValueForbidden", "spec.containers")]);
    assert_eq!(message(&causes, "spec.containers"), "Forbidden: pod updates may not add or remove containers");
    // Removing a toleration is not allowed.
    let mut stored = old.clone();
    apply_defaults("Pod", &mut stored);
    let mut new = stored.clone();
    new["spec"]["tolerations"] = json!([]);
    let causes = validate("Pod", &new, Some(&stored));
    assert_causes(&causes, &[("FieldValueForbidden", "spec.tolerations")]);
    // A status update (same spec) passes.
    let mut new = stored.clone();
    new["status"] = json!({"phase": "Running", "podIP": "10.244.1.5"});
    assert_causes(&validate("Pod", &new, Some(&stored)), &[]);
}

#[test]
fn pod_ephemeral_containers_not_on_create() {
    let causes = check(
        "Pod",
        pod(
            json!({"containers": [{"name": "a", "image": "a"}], "ephemeralContainers": [{"name": "debug", "image": "busybox", "targetContainerName": "a"}]}),
        ),
    );
    assert_causes(&causes, &[("FieldValueForbidden", "spec.ephemeralContainers")]);
}

// ----------------------------------------------------------------------------------- services

#[test]
fn realistic_services_are_valid() {
    let svc = allocated_service(
        json!({"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}),
        "10.96.0.10",
    );
    assert_causes(&validate("Service", &svc, None), &[]);
    let multi = allocated_service(
        json!({"type": "NodePort", "selector": {"app": "web"}, "ports": [
            {"name": "http", "port": 80, "targetPort": "http", "nodePort": 30080},
            {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "nodePort": 30053}
        ]}),
        "10.96.0.11",
    );
    assert_causes(&validate("Service", &multi, None), &[]);
    let lb = allocated_service(
        json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 32000,
               "sessionAffinity": "ClientIP", "loadBalancerSourceRanges": ["10.0.0.0/8", " 192.168.0.0/16 "],
               "ports": [{"port": 443, "nodePort": 31443}]}),
        "10.96.0.12",
    );
    assert_causes(&validate("Service", &lb, None), &[]);
    let headless = allocated_service(json!({"clusterIP": "None", "selector": {"app": "db"}}), "None");
    assert_causes(&validate("Service", &headless, None), &[]);
    let mut external = service(json!({"type": "ExternalName", "externalName": "db.example.com."}));
    apply_defaults("Service", &mut external);
    assert_causes(&validate("Service", &external, None), &[]);
}

#[test]
fn service_with_duplicate_ports() {
    let svc = allocated_service(
        json!({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}, {"name": "c", "port": 80, "protocol": "UDP"}]}),
        "10.96.0.20",
    );
    let causes = validate("Service", &svc, None);
    assert_causes(&causes, &[("FieldValueDuplicate", "spec.ports[1]")]);
}

#[test]
fn multi_port_service_without_names() {
    let svc = allocated_service(json!({"ports": [{"port": 80}, {"port": 443}]}), "10.96.0.21");
    assert_causes(
        &validate("Service", &svc, None),
        &[("FieldValueRequired", "spec.ports[0].name"), ("FieldValueRequired", "spec.ports[1].name")],
    );
    let svc =
        allocated_service(json!({"ports": [{"name": "web", "port": 80}, {"name": "web", "port": 443}]}), "10.96.0.21");
    assert_causes(&validate("Service", &svc, None), &[("FieldValueDuplicate", "spec.ports[1].name")]);
}

#[test]
fn node_port_on_cluster_ip_service() {
    let svc = allocated_service(json!({"ports": [{"port": 80, "nodePort": 30080}]}), "10.96.0.22");
    let causes = validate("Service", &svc, None);
    assert_causes(&causes, &[("FieldValueForbidden", "spec.ports[0].nodePort")]);
    assert_eq!(message(&causes, "spec.ports[0].nodePort"), "Forbidden: may not be used when `type` is 'ClusterIP'");
}

#[test]
fn cluster_ip_changed_on_update() {
    let old = allocated_service(json!({"ports": [{"port": 80}]}), "10.96.0.30");
    let mut new = old.clone();
    new["spec"]["clusterIP"] = json!("10.96.0.31");
    let causes = validate("Service", &new, Some(&old));
    assert_causes(&causes, &[("FieldValueInvalid", "spec.clusterIP")]);
    assert_eq!(message(&causes, "spec.clusterIP"), "Invalid value: \"10.96.0.31\": field is immutable");
    // Unchanged, and to ExternalName, are fine.
    assert_causes(&validate("Service", &old, Some(&old)), &[]);
    let mut external = service(json!({"type": "ExternalName", "externalName": "example.com"}));
    apply_defaults("Service", &mut external);
    assert_causes(&validate("Service", &external, Some(&old)), &[]);
}

#[test]
fn service_field_rules() {
    let svc = allocated_service(
        json!({"type": "Bogus", "sessionAffinity": "Sticky", "selector": {"app": "-bad-"}, "externalIPs": ["127.0.0.1", "nope"],
               "ports": [{"port": 0, "targetPort": "Not_A_Name", "protocol": "ICMP", "name": "Web"}]}),
        "10.96.0.40",
    );
    assert_causes(
        &validate("Service", &svc, None),
        &[
            ("FieldValueInvalid", "spec.ports[0].name"),
            ("FieldValueInvalid", "spec.ports[0].port"),
            ("FieldValueNotSupported", "spec.ports[0].protocol"),
            ("FieldValueInvalid", "spec.ports[0].targetPort"),
            ("FieldValueInvalid", "spec.selector"),
            ("FieldValueNotSupported", "spec.sessionAffinity"),
            ("FieldValueInvalid", "spec.externalIPs[0]"),
            ("FieldValueInvalid", "spec.externalIPs[1]"),
            ("FieldValueNotSupported", "spec.type"),
        ],
    );
    let svc = allocated_service(json!({"ports": []}), "10.96.0.41");
    assert_causes(&validate("Service", &svc, None), &[("FieldValueRequired", "spec.ports")]);
    let mut svc = service(json!({"type": "ExternalName", "externalName": "not_a_host"}));
    apply_defaults("Service", &mut svc);
    assert_causes(&validate("Service", &svc, None), &[("FieldValueInvalid", "spec.externalName")]);
    let mut svc = service(json!({"type": "ExternalName"}));
    apply_defaults("Service", &mut svc);
    assert_causes(&validate("Service", &svc, None), &[("FieldValueRequired", "spec.externalName")]);
    let svc = allocated_service(
        json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86401}}, "ports": [{"port": 80}]}),
        "10.96.0.42",
    );
    assert_causes(
        &validate("Service", &svc, None),
        &[("FieldValueInvalid", "spec.sessionAffinityConfig.clientIP.timeoutSeconds")],
    );
    let mut named = json!({"metadata": {"name": "1web"}, "spec": {"ports": [{"port": 80}]}});
    apply_defaults("Service", &mut named);
    assert_causes(&validate("Service", &named, None), &[("FieldValueInvalid", "metadata.name")]);
}

// ---------------------------------------------------------------------------------- workloads

#[test]
fn realistic_workloads_are_valid() {
    assert_valid(
        "Deployment",
        deployment(json!({"matchLabels": {"app": "web"}}), json!({"app": "web", "tier": "front"})),
    );
    // What `kubectl create deployment web --image=nginx` sends.
    assert_valid(
        "Deployment",
        json!({"kind": "Deployment", "apiVersion": "apps/v1",
               "metadata": {"name": "web", "creationTimestamp": null, "labels": {"app": "web"}},
               "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
                                     "spec": {"containers": [{"name": "nginx", "image": "nginx", "resources": {}}]}},
                        "strategy": {}},
               "status": {}}),
    );
    let mut rs = deployment(
        json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "www"]}]}),
        json!({"app": "www"}),
    );
    rs["kind"] = json!("ReplicaSet");
    rs["spec"].as_object_mut().unwrap().remove("strategy");
    assert_valid("ReplicaSet", rs);
    let mut ds = deployment(json!({"matchLabels": {"app": "agent"}}), json!({"app": "agent"}));
    ds["kind"] = json!("DaemonSet");
    ds["spec"].as_object_mut().unwrap().remove("replicas");
    ds["spec"]["template"]["spec"]["hostNetwork"] = json!(true);
    ds["spec"]["template"]["spec"]["tolerations"] = json!([{"operator": "Exists"}]);
    assert_valid("DaemonSet", ds);
}

#[test]
fn deployment_selector_not_matching_template_labels() {
    let causes = check("Deployment", deployment(json!({"matchLabels": {"app": "web"}}), json!({"app": "api"})));
    assert_causes(&causes, &[("FieldValueInvalid", "spec.template.metadata.labels")]);
    assert_eq!(
        message(&causes, "spec.template.metadata.labels"),
        "Invalid value: map[string]string{\"app\":\"api\"}: `selector` does not match template `labels`"
    );
    // No selector at all: both errors, as upstream reports them.
    let mut d = deployment(json!(null), json!({"app": "web"}));
    d["spec"].as_object_mut().unwrap().remove("selector");
    assert_causes(
        &check("Deployment", d),
        &[("FieldValueRequired", "spec.selector"), ("FieldValueInvalid", "spec.template.metadata.labels")],
    );
    // An empty selector is invalid.
    let causes = check("Deployment", deployment(json!({}), json!({"app": "web"})));
    assert_causes(&causes, &[("FieldValueInvalid", "spec.selector")]);
    assert!(message(&causes, "spec.selector").ends_with("empty selector is invalid for deployment"));
}

#[test]
fn deployment_field_rules() {
    let mut d = deployment(json!({"matchLabels": {"app": "web"}}), json!({"app": "web"}));
    d["spec"]["replicas"] = json!(-1);
    d["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "0%"}});
    d["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
    d["spec"]["template"]["spec"]["containers"][0]["name"] = json!("Nginx");
    let causes = check("Deployment", d);
    assert_causes(
        &causes,
        &[
            ("FieldValueInvalid", "spec.replicas"),
            ("FieldValueInvalid", "spec.template.spec.containers[0].name"),
            ("FieldValueNotSupported", "spec.template.spec.restartPolicy"),
            ("FieldValueInvalid", "spec.strategy.rollingUpdate.maxUnavailable"),
        ],
    );
    assert_eq!(message(&causes, "spec.replicas"), "Invalid value: -1: must be greater than or equal to 0");
    let mut d = deployment(json!({"matchLabels": {"app": "web"}}), json!({"app": "web"}));
    d["spec"]["strategy"] = json!({"type": "Recreate", "rollingUpdate": {"maxSurge": 1}});
    assert_causes(&check("Deployment", d), &[("FieldValueForbidden", "spec.strategy.rollingUpdate")]);
    let mut d = deployment(json!({"matchLabels": {"app": "web"}}), json!({"app": "web"}));
    d["spec"]["strategy"] = json!({"rollingUpdate": {"maxSurge": "abc", "maxUnavailable": "150%"}});
    assert_causes(
        &check("Deployment", d),
        &[
            ("FieldValueInvalid", "spec.strategy.rollingUpdate.maxSurge"),
            ("FieldValueInvalid", "spec.strategy.rollingUpdate.maxUnavailable"),
        ],
    );
}

#[test]
fn workload_selector_is_immutable() {
    let old = deployment(json!({"matchLabels": {"app": "web"}}), json!({"app": "web", "v": "2"}));
    let new = deployment(json!({"matchLabels": {"app": "web", "v": "2"}}), json!({"app": "web", "v": "2"}));
    let causes = check_update("Deployment", old.clone(), new);
    assert_causes(&causes, &[("FieldValueInvalid", "spec.selector")]);
    assert_eq!(
        message(&causes, "spec.selector"),
        "Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\", \"v\":\"2\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
    );
    // Scaling and new images are fine.
    let mut scaled = old.clone();
    scaled["spec"]["replicas"] = json!(5);
    scaled["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.28");
    assert_causes(&check_update("Deployment", old, scaled), &[]);
}

#[test]
fn daemon_set_rules() {
    let mut ds = deployment(json!({"matchLabels": {"app": "agent"}}), json!({"app": "agent"}));
    ds["spec"].as_object_mut().unwrap().remove("replicas");
    ds["spec"]["updateStrategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}});
    assert_causes(
        &check("DaemonSet", ds.clone()),
        &[("FieldValueInvalid", "spec.updateStrategy.rollingUpdate.maxSurge")],
    );
    ds["spec"]["updateStrategy"] = json!({"type": "Sometimes"});
    assert_causes(&check("DaemonSet", ds), &[("FieldValueNotSupported", "spec.updateStrategy.type")]);
}

#[test]
fn jobs_need_a_non_always_restart_policy() {
    let job = json!({"metadata": {"name": "j"}, "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "a"}]}}}});
    assert_causes(&check("Job", job), &[("FieldValueNotSupported", "spec.template.spec.restartPolicy")]);
    let job = json!({"metadata": {"name": "j"}, "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "a", "image": "a"}]}}}});
    assert_causes(&check("Job", job), &[]);
}

// ------------------------------------------------------------------------------------ metadata

#[test]
fn bad_label_value() {
    let mut p = pod(json!({"containers": [{"name": "a", "image": "a"}]}));
    p["metadata"]["labels"] = json!({"app": "web server", "ok": "yes"});
    let causes = check("Pod", p);
    assert_causes(&causes, &[("FieldValueInvalid", "metadata.labels")]);
    assert!(message(&causes, "metadata.labels")
        .starts_with("Invalid value: \"web server\": a valid label must be an empty string"));
}

#[test]
fn metadata_rules() {
    let mut cm = json!({"metadata": {"name": "Bad.Name", "namespace": "my.ns", "labels": {"/x": "y"},
        "annotations": {"Example.com/Key": "ok", "bad key": "x"}, "finalizers": ["custom", "example.com/cleanup"],
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs"}]}});
    let causes = check("ConfigMap", cm.clone());
    assert_causes(
        &causes,
        &[
            ("FieldValueInvalid", "metadata.name"),
            ("FieldValueInvalid", "metadata.namespace"),
            ("FieldValueInvalid", "metadata.labels"),
            ("FieldValueInvalid", "metadata.annotations"),
            ("FieldValueInvalid", "metadata.ownerReferences.uid"),
            ("FieldValueInvalid", "metadata.finalizers"),
        ],
    );
    // Annotations are limited to 256 KiB in total.
    cm = json!({"metadata": {"name": "big", "annotations": {"a": "x".repeat(256 * 1024)}}});
    let causes = check("ConfigMap", cm);
    assert_causes(&causes, &[("FieldValueTooLong", "metadata.annotations")]);
    assert_eq!(message(&causes, "metadata.annotations"), "Too long: may not be more than 262144 bytes");
    // Neither name nor generateName; a generateName prefix may end in '-'.
    assert_causes(&check("ConfigMap", json!({"metadata": {}})), &[("FieldValueRequired", "metadata.name")]);
    assert_causes(&check("ConfigMap", json!({"metadata": {"generateName": "cfg-"}})), &[]);
    // Unknown kinds: metadata only, and names like RBAC's are fine.
    assert_causes(
        &check("ClusterRole", json!({"metadata": {"name": "system:controller:foo"}, "rules": "anything"})),
        &[],
    );
    assert_causes(
        &check("ClusterRole", json!({"metadata": {"name": "a/b"}})),
        &[("FieldValueInvalid", "metadata.name")],
    );
    // Not an object at all.
    assert_eq!(validate("Pod", &json!([1]), None).len(), 1);
}

// --------------------------------------------------------------------------------- config data

#[test]
fn config_maps_and_secrets() {
    assert_valid(
        "ConfigMap",
        json!({"metadata": {"name": "cfg"}, "data": {"app.yaml": "a: 1", "KEY_NAME": "v"}, "binaryData": {"logo.png": "iVBORw0KGgo="}}),
    );
    let causes = check(
        "ConfigMap",
        json!({"metadata": {"name": "cfg"}, "data": {"bad key": "v", "..": "v", "dup": "1"}, "binaryData": {"dup": "AA=="}}),
    );
    assert_causes(
        &causes,
        &[
            ("FieldValueInvalid", "data[bad key]"),
            ("FieldValueInvalid", "data[..]"),
            ("FieldValueInvalid", "data[dup]"),
            ("FieldValueInvalid", "binaryData[dup]"),
        ],
    );
    assert_valid(
        "Secret",
        json!({"metadata": {"name": "db"}, "data": {"password": "c2VjcmV0"}, "stringData": {"user": "admin"}}),
    );
    assert_valid(
        "Secret",
        json!({"metadata": {"name": "tls"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}}),
    );
    let causes = check(
        "Secret",
        json!({"metadata": {"name": "tls"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "Y2VydA=="}}),
    );
    assert_causes(&causes, &[("FieldValueRequired", "data[tls.key]")]);
    let causes = check("Secret", json!({"metadata": {"name": "s"}, "data": {"k": "not base64!"}}));
    assert_causes(&causes, &[("FieldValueInvalid", "data[k]")]);
    // The type is immutable; so is the data of an immutable secret.
    let old = json!({"metadata": {"name": "s"}, "immutable": true, "data": {"k": "dg=="}});
    let new = json!({"metadata": {"name": "s"}, "type": "kubernetes.io/basic-auth", "data": {"username": "dg=="}});
    assert_causes(
        &check_update("Secret", old, new),
        &[("FieldValueInvalid", "type"), ("FieldValueForbidden", "immutable"), ("FieldValueForbidden", "data")],
    );
}

// ------------------------------------------------------------------------------------- network

#[test]
fn endpoints() {
    assert_valid(
        "Endpoints",
        json!({"metadata": {"name": "web"}, "subsets": [{
            "addresses": [{"ip": "10.244.1.5", "nodeName": "node-1", "targetRef": {"kind": "Pod", "name": "web-1"}}],
            "notReadyAddresses": [{"ip": "fd00::5"}],
            "ports": [{"name": "http", "port": 8080}, {"name": "dns", "port": 53, "protocol": "UDP"}]
        }]}),
    );
    let causes = check(
        "Endpoints",
        json!({"metadata": {"name": "web"}, "subsets": [
            {"addresses": [{"ip": "10.0.0.300"}, {"ip": "169.254.169.254"}], "ports": [{"port": 80}, {"port": 70000, "name": "b"}]},
            {"ports": [{"port": 80}]}
        ]}),
    );
    assert_causes(
        &causes,
        &[
            ("FieldValueInvalid", "subsets[0].addresses[0].ip"),
            ("FieldValueInvalid", "subsets[0].addresses[1].ip"),
            ("FieldValueRequired", "subsets[0].ports[0].name"),
            ("FieldValueInvalid", "subsets[0].ports[1].port"),
            ("FieldValueRequired", "subsets[1]"),
        ],
    );
}

#[test]
fn bootstrap_objects_are_valid() {
    // What the API server creates at start, with its default advertise address (127.0.0.1):
    // loopback endpoints are accepted, unlike upstream.
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert_valid("Namespace", json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
    }
    let svc = allocated_service(
        json!({"type": "ClusterIP", "clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]}),
        "10.96.0.1",
    );
    assert_causes(&validate("Service", &svc, None), &[]);
    assert_valid(
        "Endpoints",
        json!({"apiVersion": "v1", "kind": "Endpoints",
               "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
               "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]}),
    );
    assert_valid(
        "EndpointSlice",
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
               "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"kubernetes.io/service-name": "kubernetes"}},
               "addressType": "IPv4",
               "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true, "serving": true, "terminating": false}}],
               "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}),
    );
}

#[test]
fn endpoint_slices() {
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-abc12", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.1.5"], "conditions": {"ready": true}, "nodeName": "node-1",
                       "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "default"}, "zone": "a"}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
    });
    assert_valid("EndpointSlice", slice.clone());
    let causes = check("EndpointSlice", json!({"metadata": {"name": "s"}, "addressType": "IPv5", "endpoints": []}));
    assert_causes(&causes, &[("FieldValueNotSupported", "addressType")]);
    assert_eq!(
        message(&causes, "addressType"),
        "Unsupported value: \"IPv5\": supported values: \"FQDN\", \"IPv4\", \"IPv6\""
    );
    let causes = check(
        "EndpointSlice",
        json!({"metadata": {"name": "s"}, "addressType": "IPv6", "endpoints": [{"addresses": []}, {"addresses": ["10.0.0.1"]}],
               "ports": [{"name": "a"}, {"name": "a"}]}),
    );
    assert_causes(
        &causes,
        &[
            ("FieldValueRequired", "endpoints[0].addresses"),
            ("FieldValueInvalid", "endpoints[1].addresses[0]"),
            ("FieldValueDuplicate", "ports[1].name"),
        ],
    );
    let many: Vec<Value> = (0..1001).map(|_| json!({"addresses": ["10.0.0.1"]})).collect();
    let causes = check("EndpointSlice", json!({"metadata": {"name": "s"}, "addressType": "IPv4", "endpoints": many}));
    assert_causes(&causes, &[("FieldValueTooMany", "endpoints")]);
    let addresses: Vec<String> = (0..101).map(|i| format!("10.0.{}.{}", i / 250, i % 250 + 1)).collect();
    let causes = check(
        "EndpointSlice",
        json!({"metadata": {"name": "s"}, "addressType": "IPv4", "endpoints": [{"addresses": addresses}]}),
    );
    assert_causes(&causes, &[("FieldValueTooMany", "endpoints[0].addresses")]);
    let fqdn = json!({"metadata": {"name": "s"}, "addressType": "FQDN", "endpoints": [{"addresses": ["db.example.com", "localhost"]}]});
    assert_causes(&check("EndpointSlice", fqdn), &[("FieldValueInvalid", "endpoints[0].addresses[1]")]);
    let mut changed = slice.clone();
    changed["addressType"] = json!("IPv6");
    changed["endpoints"] = json!([]);
    assert_causes(&check_update("EndpointSlice", slice, changed), &[("FieldValueInvalid", "addressType")]);
}

#[test]
fn ingresses() {
    let ingress = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": ["*.example.com"], "secretName": "wildcard-tls"}],
            "rules": [
                {"host": "www.example.com", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                    {"path": "/api", "pathType": "Exact", "backend": {"service": {"name": "api", "port": {"name": "http"}}}}
                ]}},
                {"host": "*.example.com", "http": {"paths": [
                    {"pathType": "ImplementationSpecific", "backend": {"resource": {"apiGroup": "k8s.example.com", "kind": "StorageBucket", "name": "static"}}}
                ]}}
            ]
        }
    });
    assert_valid("Ingress", ingress);
    let causes = check(
        "Ingress",
        json!({"metadata": {"name": "web"}, "spec": {"rules": [{"host": "10.0.0.1", "http": {"paths": [
            {"path": "api", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"number": 80, "name": "http"}}}},
            {"path": "/a//b", "pathType": "Exact", "backend": {}},
            {"path": "/x", "backend": {"service": {"name": "x", "port": {"number": 80}}}},
            {"path": "/y", "pathType": "Fuzzy", "backend": {"service": {"name": "y", "port": {}}}}
        ]}}]}}),
    );
    assert_causes(
        &causes,
        &[
            ("FieldValueInvalid", "spec.rules[0].host"),
            ("FieldValueInvalid", "spec.rules[0].http.paths[0].path"),
            ("FieldValueInvalid", "spec.rules[0].http.paths[0].backend"),
            ("FieldValueInvalid", "spec.rules[0].http.paths[1].path"),
            ("FieldValueInvalid", "spec.rules[0].http.paths[1].backend"),
            ("FieldValueRequired", "spec.rules[0].http.paths[2].pathType"),
            ("FieldValueNotSupported", "spec.rules[0].http.paths[3].pathType"),
            ("FieldValueRequired", "spec.rules[0].http.paths[3].backend"),
        ],
    );
    assert_eq!(
        message(&causes, "spec.rules[0].http.paths[0].path"),
        "Invalid value: \"api\": must be an absolute path"
    );
    assert_eq!(message(&causes, "spec.rules[0].http.paths[2].pathType"), "Required value: pathType must be specified");
    let causes = check("Ingress", json!({"metadata": {"name": "web"}, "spec": {}}));
    assert_causes(&causes, &[("FieldValueInvalid", "spec")]);
    assert_eq!(
        message(&causes, "spec"),
        "Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` must be specified"
    );
}

#[test]
fn ingress_classes() {
    assert_valid(
        "IngressClass",
        json!({"metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx"}}),
    );
    assert_valid(
        "IngressClass",
        json!({"metadata": {"name": "x"}, "spec": {"controller": "example.com/x", "parameters": {"kind": "Params", "name": "p", "scope": "Namespace", "namespace": "infra"}}}),
    );
    assert_causes(
        &check("IngressClass", json!({"metadata": {"name": "x"}, "spec": {}})),
        &[("FieldValueRequired", "spec.controller")],
    );
    assert_causes(
        &check("IngressClass", json!({"metadata": {"name": "x"}, "spec": {"controller": "nginx"}})),
        &[("FieldValueInvalid", "spec.controller")],
    );
    assert_causes(
        &check_update(
            "IngressClass",
            json!({"metadata": {"name": "x"}, "spec": {"controller": "example.com/a"}}),
            json!({"metadata": {"name": "x"}, "spec": {"controller": "example.com/b"}}),
        ),
        &[("FieldValueInvalid", "spec.controller")],
    );
}

#[test]
fn network_policies() {
    assert_valid(
        "NetworkPolicy",
        json!({"metadata": {"name": "allow-web"}, "spec": {
            "podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "a"}}, "podSelector": {}}, {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
                         "ports": [{"port": 80}, {"port": "https", "protocol": "TCP"}, {"port": 30000, "endPort": 32767}]}],
            "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]
        }}),
    );
    assert_valid(
        "NetworkPolicy",
        json!({"metadata": {"name": "deny-all"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}),
    );
    let causes = check(
        "NetworkPolicy",
        json!({"metadata": {"name": "p"}, "spec": {
            "podSelector": {"matchExpressions": [{"key": "app", "operator": "In"}]},
            "ingress": [{"from": [{}, {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}, "podSelector": {}}],
                         "ports": [{"port": 0, "protocol": "ICMP"}, {"port": 90, "endPort": 80}]}],
            "policyTypes": ["Ingress", "Sideways"]
        }}),
    );
    assert_causes(
        &causes,
        &[
            ("FieldValueRequired", "spec.podSelector.matchExpressions[0].values"),
            ("FieldValueNotSupported", "spec.ingress[0].ports[0].protocol"),
            ("FieldValueInvalid", "spec.ingress[0].ports[0].port"),
            ("FieldValueInvalid", "spec.ingress[0].ports[1].endPort"),
            ("FieldValueRequired", "spec.ingress[0].from[0]"),
            ("FieldValueInvalid", "spec.ingress[0].from[1].ipBlock.except[0]"),
            ("FieldValueForbidden", "spec.ingress[0].from[1]"),
            ("FieldValueNotSupported", "spec.policyTypes[1]"),
        ],
    );
}

// ------------------------------------------------------------------------------------- cluster

#[test]
fn namespaces() {
    assert_valid("Namespace", json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}));
    let causes = check("Namespace", json!({"metadata": {"name": "team.a"}}));
    assert_causes(&causes, &[("FieldValueInvalid", "metadata.name")]);
    assert_eq!(message(&causes, "metadata.name"), "Invalid value: \"team.a\": must not contain dots");
    assert_causes(
        &check("Namespace", json!({"metadata": {"name": "a"}, "spec": {"finalizers": ["custom"]}})),
        &[("FieldValueInvalid", "spec.finalizers")],
    );
}

#[test]
fn nodes() {
    let node = json!({"metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1"}},
        "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24", "fd00:1::/64"], "providerID": "podnet://node-1",
                 "taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]},
        "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"}, "addresses": [{"type": "InternalIP", "address": "192.168.1.10"}]}});
    assert_valid("Node", node.clone());
    let causes = check(
        "Node",
        json!({"metadata": {"name": "n"}, "spec": {"podCIDR": "10.244.1.0/33",
               "taints": [{"key": "a", "effect": "Never"}, {"key": "b", "effect": "NoSchedule"}, {"key": "b", "effect": "NoSchedule"}]}}),
    );
    assert_causes(
        &causes,
        &[
            ("FieldValueInvalid", "spec.podCIDRs[0]"),
            ("FieldValueNotSupported", "spec.taints[0].effect"),
            ("FieldValueDuplicate", "spec.taints[2]"),
        ],
    );
    let mut moved = node.clone();
    moved["spec"]["podCIDR"] = json!("10.244.2.0/24");
    moved["spec"]["podCIDRs"] = json!(["10.244.2.0/24"]);
    assert_causes(&check_update("Node", node.clone(), moved), &[("FieldValueForbidden", "spec.podCIDRs")]);
    // A node without a CIDR may get one; status changes are fine.
    let bare = json!({"metadata": {"name": "node-1"}});
    assert_causes(&check_update("Node", bare, node.clone()), &[]);
    let mut status = node.clone();
    status["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
    assert_causes(&check_update("Node", node, status), &[]);
}

#[test]
fn leases() {
    assert_valid(
        "Lease",
        json!({"metadata": {"name": "node-1", "namespace": "kube-node-lease"}, "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40, "renewTime": "2024-01-01T00:00:00.000000Z"}}),
    );
    assert_valid("Lease", json!({"metadata": {"name": "l"}, "spec": {}}));
    let causes =
        check("Lease", json!({"metadata": {"name": "l"}, "spec": {"leaseDurationSeconds": 0, "leaseTransitions": -1}}));
    assert_causes(
        &causes,
        &[("FieldValueInvalid", "spec.leaseDurationSeconds"), ("FieldValueInvalid", "spec.leaseTransitions")],
    );
    assert_eq!(message(&causes, "spec.leaseDurationSeconds"), "Invalid value: 0: must be greater than 0");
}

#[test]
fn events() {
    // A core/v1 event as client-go's recorder writes it.
    assert_valid(
        "Event",
        json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "web-1.17a2b3c4d5e6f708", "namespace": "default"},
               "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web-1", "uid": "1234"},
               "reason": "Scheduled", "message": "Successfully assigned default/web-1 to node-1", "type": "Normal",
               "source": {"component": "default-scheduler"}, "count": 1,
               "firstTimestamp": "2024-01-01T00:00:00Z", "lastTimestamp": "2024-01-01T00:00:00Z"}),
    );
    // An events.k8s.io/v1 event as kube-rs' recorder writes it, stored through the core API.
    assert_valid(
        "Event",
        json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "web.abc", "namespace": "default"},
               "involvedObject": {"kind": "Deployment", "namespace": "default", "name": "web"},
               "eventTime": "2024-01-01T00:00:00.000000Z", "action": "Scaling", "reason": "ScalingReplicaSet",
               "reportingComponent": "podnet-controller", "reportingInstance": "podnet-controller-node-1", "type": "Normal"}),
    );
    assert_valid(
        "Event",
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "web.abc", "namespace": "default"},
               "regarding": {"kind": "Deployment", "namespace": "default", "name": "web"}, "note": "scaled",
               "eventTime": "2024-01-01T00:00:00.000000Z", "action": "Scaling", "reason": "ScalingReplicaSet",
               "reportingController": "podnet.io/controller", "reportingInstance": "controller-1", "type": "Normal"}),
    );
    let causes = check("Event", json!({"metadata": {"name": "e", "namespace": "default"}, "reason": "x"}));
    assert_causes(&causes, &[("FieldValueRequired", "involvedObject")]);
    let causes = check(
        "Event",
        json!({"metadata": {"name": "e", "namespace": "team-a"}, "involvedObject": {"kind": "Pod", "namespace": "team-b", "name": "p"}}),
    );
    assert_causes(&causes, &[("FieldValueInvalid", "involvedObject.namespace")]);
    let causes = check(
        "Event",
        json!({"metadata": {"name": "e", "namespace": "default"}, "involvedObject": {"kind": "Pod", "namespace": "default", "name": "p"},
               "eventTime": "2024-01-01T00:00:00.000000Z"}),
    );
    assert_causes(
        &causes,
        &[
            ("FieldValueRequired", "reportingComponent"),
            ("FieldValueRequired", "reportingInstance"),
            ("FieldValueRequired", "action"),
            ("FieldValueRequired", "reason"),
        ],
    );
}

#[test]
fn service_accounts() {
    assert_valid("ServiceAccount", json!({"metadata": {"name": "default", "namespace": "default"}}));
    assert_causes(
        &check("ServiceAccount", json!({"metadata": {"name": "Builder"}})),
        &[("FieldValueInvalid", "metadata.name")],
    );
}

// ------------------------------------------------------------------------------------- helpers

#[test]
fn quantities_and_addresses() {
    use super::{parse_cidr, parse_ip, parse_quantity};
    assert_eq!(parse_quantity("500m"), Some(0.5));
    assert_eq!(parse_quantity("1Gi"), Some(1024.0 * 1024.0 * 1024.0));
    assert_eq!(parse_quantity("2e3"), Some(2000.0));
    assert_eq!(parse_quantity("1.5"), Some(1.5));
    for bad in ["", "lots", "1..2", "1Gb", "e3", "1e"] {
        assert_eq!(parse_quantity(bad), None, "{bad}");
    }
    assert!(parse_ip("010.001.1.1").is_some());
    assert!(parse_ip("10.0.0.256").is_none());
    assert!(parse_ip("fd00::1").is_some());
    assert_eq!(parse_cidr("10.0.0.0/8").map(|c| c.1), Some(8));
    assert!(parse_cidr("10.0.0.0/33").is_none());
    assert!(parse_cidr("10.0.0.0").is_none());
}
