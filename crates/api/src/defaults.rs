//! Defaulting of built-in kinds, as kube-apiserver does it before validation and storage.
//!
//! [`apply_defaults`] fills in what a stock kube-apiserver fills in on every write of an object
//! in its `v1` JSON shape: the `SetDefaults_*` functions of `pkg/apis/*/v1/defaults.go` (and the
//! declarative `+default` markers of `k8s.io/api`), plus the defaulting done by the admission
//! plugins every cluster runs for pods — `ServiceAccount` (`spec.serviceAccountName: default`),
//! `DefaultTolerationSeconds` (the not-ready/unreachable `NoExecute` tolerations) and `Priority`
//! (`priority`, `preemptionPolicy`) — and the `v1` conversion mirrors a client sees on reads
//! (`serviceAccount` ↔ `serviceAccountName`, `podCIDR` ↔ `podCIDRs`, `podIP` ↔ `podIPs`).
//!
//! It never touches what needs allocation (a Service's cluster IPs, IP families and node ports)
//! or what registry strategies set (`status` of new objects, generated names), and it does not
//! project service-account tokens into pods. Like upstream, a value that is set is kept; the
//! exceptions are upstream's too: the `kubernetes.io/metadata.name` label of a namespace always
//! equals its name, a Service whose affinity is `None` has no `sessionAffinityConfig`, and the
//! deprecated `spec.serviceAccount` mirrors `spec.serviceAccountName`. Applying the defaults twice
//! gives the same object, so they can run on every create, update and status write.
//!
//! Not done: the rounding of resource quantities to milli-units, the defaults of legacy volume
//! plugins (iSCSI, RBD, Azure Disk, ScaleIO) and pod-level resources.

use serde_json::{json, Map, Value};

type Obj = Map<String, Value>;

/// Fills in the defaults of a `kind` object in place. Unknown kinds are left alone.
pub fn apply_defaults(kind: &str, obj: &mut Value) {
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    match kind {
        "Pod" => pod(root),
        "PodTemplate" => {
            if let Some(template) = child(root, "template") {
                pod_template(template);
            }
        }
        "ReplicationController" => {
            if let Some(spec) = child(root, "spec") {
                set_default(spec, "replicas", json!(1));
                if let Some(template) = existing_object(spec, "template") {
                    pod_template(template);
                }
            }
        }
        "Deployment" => deployment(root),
        "ReplicaSet" => {
            if let Some(spec) = child(root, "spec") {
                set_default(spec, "replicas", json!(1));
                template_of(spec);
            }
        }
        "DaemonSet" => daemon_set(root),
        "StatefulSet" => stateful_set(root),
        "Job" => {
            if let Some(spec) = child(root, "spec") {
                job_spec(spec);
            }
        }
        "CronJob" => cron_job(root),
        "Service" => service(root),
        "Namespace" => namespace(root),
        "Secret" => set_default_str(root, "type", "Opaque"),
        "Endpoints" => {
            for subset in objects_mut(root, "subsets") {
                for port in objects_mut(subset, "ports") {
                    set_default_str(port, "protocol", "TCP");
                }
            }
        }
        "EndpointSlice" => {
            for port in objects_mut(root, "ports") {
                set_default(port, "name", json!(""));
                set_default(port, "protocol", json!("TCP"));
            }
        }
        "NetworkPolicy" => network_policy(root),
        "IngressClass" => {
            if let Some(params) = existing_object(root, "spec").and_then(|s| existing_object(s, "parameters")) {
                set_default(params, "scope", json!("Cluster"));
            }
        }
        "Node" => node(root),
        "PersistentVolumeClaim" => {
            if let Some(spec) = child(root, "spec") {
                set_default(spec, "volumeMode", json!("Filesystem"));
            }
            if let Some(status) = child(root, "status") {
                set_default_str(status, "phase", "Pending");
            }
        }
        "PersistentVolume" => {
            if let Some(spec) = child(root, "spec") {
                set_default_str(spec, "persistentVolumeReclaimPolicy", "Retain");
                set_default(spec, "volumeMode", json!("Filesystem"));
                if let Some(host_path) = existing_object(spec, "hostPath") {
                    set_default(host_path, "type", json!(""));
                }
            }
            if let Some(status) = child(root, "status") {
                set_default_str(status, "phase", "Pending");
            }
        }
        _ => {}
    }
}

// ------------------------------------------------------------------------------------ helpers

/// `true` when a field is absent or `null` (a nil pointer, slice or map in Go).
fn is_unset(value: Option<&Value>) -> bool {
    matches!(value, None | Some(Value::Null))
}

/// `true` when a Go string field is empty: absent, `null` or `""`.
fn is_empty_str(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        _ => false,
    }
}

/// `true` when a Go non-pointer integer is unset: absent, `null` or `0`.
fn is_zero_int(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::Number(n)) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

/// `true` when a slice or map is empty: absent, `null`, `[]` or `{}`.
fn is_empty_collection(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        _ => false,
    }
}

/// Sets a pointer field (or a field with a `+default` marker) that is absent or `null`.
fn set_default(map: &mut Obj, key: &str, value: Value) {
    if is_unset(map.get(key)) {
        map.insert(key.to_string(), value);
    }
}

/// Sets a Go string field that is empty.
fn set_default_str(map: &mut Obj, key: &str, value: &str) {
    if is_empty_str(map.get(key)) {
        map.insert(key.to_string(), json!(value));
    }
}

/// Sets a Go integer field that is zero.
fn set_default_int(map: &mut Obj, key: &str, value: i64) {
    if is_zero_int(map.get(key)) {
        map.insert(key.to_string(), json!(value));
    }
}

/// The object under `key`, created (as `{}`) when absent or `null`; `None` when it holds
/// something else, which validation reports.
fn child<'a>(map: &'a mut Obj, key: &str) -> Option<&'a mut Obj> {
    let slot = map.entry(key.to_string()).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
}

/// The object under `key` when there is one (a set pointer in Go).
fn existing_object<'a>(map: &'a mut Obj, key: &str) -> Option<&'a mut Obj> {
    map.get_mut(key).and_then(Value::as_object_mut)
}

/// The objects of the array under `key`; nothing when it is absent or not an array.
fn objects_mut<'a>(map: &'a mut Obj, key: &str) -> impl Iterator<Item = &'a mut Obj> {
    map.get_mut(key).and_then(Value::as_array_mut).into_iter().flatten().filter_map(Value::as_object_mut)
}

/// The tag of an image reference as upstream's `parsers.ParseImageName` finds it: the part after
/// the last ':' of the repository, `latest` when there is neither a tag nor a digest, and empty
/// when there is only a digest (or no image at all).
fn image_tag(image: &str) -> &str {
    if image.is_empty() {
        return "";
    }
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    let last_segment_start = name.rfind('/').map_or(0, |i| i + 1);
    match name[last_segment_start..].rfind(':') {
        Some(i) => &name[last_segment_start + i + 1..],
        None if digest.is_some() => "",
        None => "latest",
    }
}

/// `Always` for `:latest` (or untagged) images, `IfNotPresent` otherwise.
fn pull_policy_for(image: &str) -> &'static str {
    if image_tag(image) == "latest" {
        "Always"
    } else {
        "IfNotPresent"
    }
}

// -------------------------------------------------------------------------------------- pods

/// `v1.Pod`: the pod spec defaults, `SetDefaults_Pod` and the admission plugins' defaults.
fn pod(root: &mut Obj) {
    let mirror = root
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get("kubernetes.io/config.mirror"))
        .is_some();
    let Some(spec) = child(root, "spec") else {
        return;
    };

    // SetDefaults_Pod: requests default to limits, service links, host network ports.
    for key in ["containers", "initContainers"] {
        for container in objects_mut(spec, key) {
            requests_from_limits(container);
        }
    }
    set_default(spec, "enableServiceLinks", json!(true));
    if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
        for key in ["containers", "initContainers"] {
            for container in objects_mut(spec, key) {
                for port in objects_mut(container, "ports") {
                    if is_zero_int(port.get("hostPort")) {
                        if let Some(container_port) = port.get("containerPort").cloned() {
                            port.insert("hostPort".into(), container_port);
                        }
                    }
                }
            }
        }
    }

    // The ServiceAccount admission plugin (mirror pods have no service account).
    if !mirror {
        let deprecated = spec.get("serviceAccount").and_then(Value::as_str).unwrap_or("").to_string();
        if is_empty_str(spec.get("serviceAccountName")) {
            let name = if deprecated.is_empty() { "default".to_string() } else { deprecated };
            spec.insert("serviceAccountName".into(), json!(name));
        }
    }

    pod_spec(spec);

    // DefaultTolerationSeconds.
    default_tolerations(spec);

    // Priority: the built-in classes; other classes are resolved by whoever knows them.
    let priority = match spec.get("priorityClassName").and_then(Value::as_str).unwrap_or("") {
        "" => Some(0),
        "system-node-critical" => Some(2_000_001_000),
        "system-cluster-critical" => Some(2_000_000_000),
        _ => None,
    };
    if let Some(priority) = priority {
        set_default(spec, "priority", json!(priority));
        set_default_str(spec, "preemptionPolicy", "PreemptLowerPriority");
    }

    // The status IP mirrors of the v1 conversion.
    if let Some(status) = existing_object(root, "status") {
        mirror_ips(status, "podIP", "podIPs");
        mirror_ips(status, "hostIP", "hostIPs");
    }
}

/// `status.podIP` ↔ `status.podIPs[0].ip` (and the same for host IPs).
fn mirror_ips(status: &mut Obj, single: &str, plural: &str) {
    let first = status
        .get(plural)
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(|f| f.get("ip"))
        .and_then(Value::as_str)
        .map(str::to_string);
    match (status.get(single).and_then(Value::as_str).filter(|s| !s.is_empty()), first) {
        (Some(ip), None) if is_empty_collection(status.get(plural)) => {
            let ips = json!([{ "ip": ip }]);
            status.insert(plural.into(), ips);
        }
        (None, Some(first)) => {
            status.insert(single.into(), json!(first));
        }
        _ => {}
    }
}

/// The not-ready and unreachable `NoExecute` tolerations of `DefaultTolerationSeconds`, unless
/// the pod already tolerates those taints.
fn default_tolerations(spec: &mut Obj) {
    const NOT_READY: &str = "node.kubernetes.io/not-ready";
    const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
    let tolerates = |tolerations: &[Value], taint: &str| {
        tolerations.iter().any(|t| {
            let key = t.get("key").and_then(Value::as_str).unwrap_or("");
            let effect = t.get("effect").and_then(Value::as_str).unwrap_or("");
            (key == taint || key.is_empty()) && (effect == "NoExecute" || effect.is_empty())
        })
    };
    let existing = spec.get("tolerations").and_then(Value::as_array).cloned().unwrap_or_default();
    if !is_unset(spec.get("tolerations")) && !spec["tolerations"].is_array() {
        return; // validation reports it
    }
    let mut added = Vec::new();
    for taint in [NOT_READY, UNREACHABLE] {
        if !tolerates(&existing, taint) {
            added.push(json!({
                "key": taint,
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            }));
        }
    }
    if !added.is_empty() {
        let mut all = existing;
        all.extend(added);
        spec.insert("tolerations".into(), Value::Array(all));
    }
}

/// `SetDefaults_Pod`'s requests: every limit without a request becomes the request too.
fn requests_from_limits(container: &mut Obj) {
    let Some(resources) = existing_object(container, "resources") else {
        return;
    };
    let Some(limits) = resources.get("limits").and_then(Value::as_object).cloned() else {
        return;
    };
    let Some(requests) = child(resources, "requests") else {
        return;
    };
    for (name, quantity) in limits {
        requests.entry(name).or_insert(quantity);
    }
}

/// A pod template (`{metadata, spec}`): the pod spec defaults only.
fn pod_template(template: &mut Obj) {
    if let Some(spec) = child(template, "spec") {
        pod_spec(spec);
    }
}

/// The pod template under `spec.template` of a workload.
fn template_of(spec: &mut Obj) {
    if let Some(template) = child(spec, "template") {
        pod_template(template);
    }
}

/// `SetDefaults_PodSpec` and the defaults of everything a pod spec holds.
fn pod_spec(spec: &mut Obj) {
    set_default_str(spec, "dnsPolicy", "ClusterFirst");
    set_default_str(spec, "restartPolicy", "Always");
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default_str(spec, "schedulerName", "default-scheduler");

    // The deprecated `serviceAccount` mirrors `serviceAccountName` (v1 conversion).
    if is_empty_str(spec.get("serviceAccountName")) {
        if let Some(deprecated) = spec.get("serviceAccount").filter(|v| !is_empty_str(Some(v))).cloned() {
            spec.insert("serviceAccountName".into(), deprecated);
        }
    }
    if let Some(name) = spec.get("serviceAccountName").filter(|v| !is_empty_str(Some(v))).cloned() {
        spec.insert("serviceAccount".into(), name);
    }

    for key in ["containers", "initContainers", "ephemeralContainers"] {
        for container in objects_mut(spec, key) {
            container_defaults(container);
        }
    }
    for volume in objects_mut(spec, "volumes") {
        volume_defaults(volume);
    }
}

/// `SetDefaults_Container` and the defaults of ports, env, probes and lifecycle hooks.
fn container_defaults(container: &mut Obj) {
    if is_empty_str(container.get("imagePullPolicy")) {
        let image = container.get("image").and_then(Value::as_str).unwrap_or("");
        let policy = pull_policy_for(image);
        container.insert("imagePullPolicy".into(), json!(policy));
    }
    set_default_str(container, "terminationMessagePath", "/dev/termination-log");
    set_default_str(container, "terminationMessagePolicy", "File");
    for port in objects_mut(container, "ports") {
        set_default_str(port, "protocol", "TCP");
    }
    for env in objects_mut(container, "env") {
        if let Some(field_ref) = existing_object(env, "valueFrom").and_then(|v| existing_object(v, "fieldRef")) {
            set_default_str(field_ref, "apiVersion", "v1");
        }
    }
    for key in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(probe) = existing_object(container, key) {
            probe_defaults(probe);
        }
    }
    if let Some(lifecycle) = existing_object(container, "lifecycle") {
        for key in ["postStart", "preStop"] {
            if let Some(http_get) = existing_object(lifecycle, key).and_then(|h| existing_object(h, "httpGet")) {
                http_get_defaults(http_get);
            }
        }
    }
}

/// `SetDefaults_Probe`, `SetDefaults_HTTPGetAction` and the gRPC service's `+default=""`.
fn probe_defaults(probe: &mut Obj) {
    set_default_int(probe, "timeoutSeconds", 1);
    set_default_int(probe, "periodSeconds", 10);
    set_default_int(probe, "successThreshold", 1);
    set_default_int(probe, "failureThreshold", 3);
    if let Some(http_get) = existing_object(probe, "httpGet") {
        http_get_defaults(http_get);
    }
    if let Some(grpc) = existing_object(probe, "grpc") {
        set_default(grpc, "service", json!(""));
    }
}

fn http_get_defaults(http_get: &mut Obj) {
    set_default_str(http_get, "path", "/");
    set_default_str(http_get, "scheme", "HTTP");
}

/// The volume sources a `v1.Volume` may hold.
pub(crate) const VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
];

/// `SetDefaults_Volume` and the defaults of the volume sources.
fn volume_defaults(volume: &mut Obj) {
    if VOLUME_SOURCES.iter().all(|s| is_unset(volume.get(*s))) {
        volume.insert("emptyDir".into(), json!({}));
    }
    if let Some(host_path) = existing_object(volume, "hostPath") {
        set_default(host_path, "type", json!(""));
    }
    for key in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(source) = existing_object(volume, key) {
            set_default(source, "defaultMode", json!(420));
        }
    }
    if let Some(downward) = existing_object(volume, "downwardAPI") {
        downward_items(downward);
    }
    if let Some(projected) = existing_object(volume, "projected") {
        for source in objects_mut(projected, "sources") {
            if let Some(downward) = existing_object(source, "downwardAPI") {
                downward_items(downward);
            }
            if let Some(token) = existing_object(source, "serviceAccountToken") {
                set_default(token, "expirationSeconds", json!(3600));
            }
        }
    }
    if let Some(claim_spec) = existing_object(volume, "ephemeral")
        .and_then(|e| existing_object(e, "volumeClaimTemplate"))
        .and_then(|t| existing_object(t, "spec"))
    {
        set_default(claim_spec, "volumeMode", json!("Filesystem"));
    }
    if let Some(image) = existing_object(volume, "image") {
        if is_empty_str(image.get("pullPolicy")) {
            let reference = image.get("reference").and_then(Value::as_str).unwrap_or("");
            let policy = pull_policy_for(reference);
            image.insert("pullPolicy".into(), json!(policy));
        }
    }
}

fn downward_items(downward: &mut Obj) {
    for item in objects_mut(downward, "items") {
        if let Some(field_ref) = existing_object(item, "fieldRef") {
            set_default_str(field_ref, "apiVersion", "v1");
        }
    }
}

// ---------------------------------------------------------------------------------- workloads

fn deployment(root: &mut Obj) {
    let Some(spec) = child(root, "spec") else {
        return;
    };
    set_default(spec, "replicas", json!(1));
    if let Some(strategy) = child(spec, "strategy") {
        set_default_str(strategy, "type", "RollingUpdate");
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
            if let Some(rolling) = child(strategy, "rollingUpdate") {
                set_default(rolling, "maxUnavailable", json!("25%"));
                set_default(rolling, "maxSurge", json!("25%"));
            }
        }
    }
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "progressDeadlineSeconds", json!(600));
    template_of(spec);
}

fn daemon_set(root: &mut Obj) {
    let Some(spec) = child(root, "spec") else {
        return;
    };
    if let Some(strategy) = child(spec, "updateStrategy") {
        set_default_str(strategy, "type", "RollingUpdate");
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
            if let Some(rolling) = child(strategy, "rollingUpdate") {
                set_default(rolling, "maxUnavailable", json!(1));
                set_default(rolling, "maxSurge", json!(0));
            }
        }
    }
    set_default(spec, "revisionHistoryLimit", json!(10));
    template_of(spec);
}

fn stateful_set(root: &mut Obj) {
    let Some(spec) = child(root, "spec") else {
        return;
    };
    set_default_str(spec, "podManagementPolicy", "OrderedReady");
    if let Some(strategy) = child(spec, "updateStrategy") {
        if is_empty_str(strategy.get("type")) {
            strategy.insert("type".into(), json!("RollingUpdate"));
            set_default(strategy, "rollingUpdate", json!({}));
        }
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
            if let Some(rolling) = existing_object(strategy, "rollingUpdate") {
                set_default(rolling, "partition", json!(0));
            }
        }
    }
    if let Some(policy) = child(spec, "persistentVolumeClaimRetentionPolicy") {
        set_default_str(policy, "whenDeleted", "Retain");
        set_default_str(policy, "whenScaled", "Retain");
    }
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    for claim in objects_mut(spec, "volumeClaimTemplates") {
        if let Some(claim_spec) = child(claim, "spec") {
            set_default(claim_spec, "volumeMode", json!("Filesystem"));
        }
        if let Some(status) = child(claim, "status") {
            set_default_str(status, "phase", "Pending");
        }
    }
    template_of(spec);
}

/// `batch/v1` `SetDefaults_Job`.
fn job_spec(spec: &mut Obj) {
    if is_unset(spec.get("completions")) && is_unset(spec.get("parallelism")) {
        spec.insert("completions".into(), json!(1));
        spec.insert("parallelism".into(), json!(1));
    }
    set_default(spec, "parallelism", json!(1));
    let per_index = !is_unset(spec.get("backoffLimitPerIndex"));
    set_default(spec, "backoffLimit", json!(if per_index { i64::from(i32::MAX) } else { 6 }));
    set_default(spec, "completionMode", json!("NonIndexed"));
    set_default(spec, "suspend", json!(false));
    let replacement = if is_unset(spec.get("podFailurePolicy")) { "TerminatingOrFailed" } else { "Failed" };
    set_default(spec, "podReplacementPolicy", json!(replacement));
    template_of(spec);
}

/// `batch/v1` `SetDefaults_CronJob`.
fn cron_job(root: &mut Obj) {
    let Some(spec) = child(root, "spec") else {
        return;
    };
    set_default_str(spec, "concurrencyPolicy", "Allow");
    set_default(spec, "suspend", json!(false));
    set_default(spec, "successfulJobsHistoryLimit", json!(3));
    set_default(spec, "failedJobsHistoryLimit", json!(1));
    if let Some(job_spec_) = child(spec, "jobTemplate").and_then(|t| child(t, "spec")) {
        job_spec(job_spec_);
    }
}

// ------------------------------------------------------------------------------------ network

/// `SetDefaults_Service`, without what needs allocation.
fn service(root: &mut Obj) {
    let Some(spec) = child(root, "spec") else {
        return;
    };
    set_default_str(spec, "sessionAffinity", "None");
    match spec.get("sessionAffinity").and_then(Value::as_str) {
        Some("None") => {
            spec.remove("sessionAffinityConfig");
        }
        Some("ClientIP") => {
            let has_timeout = spec
                .get("sessionAffinityConfig")
                .and_then(|c| c.get("clientIP"))
                .and_then(|c| c.get("timeoutSeconds"))
                .is_some_and(|t| !t.is_null());
            if !has_timeout {
                spec.insert("sessionAffinityConfig".into(), json!({"clientIP": {"timeoutSeconds": 10800}}));
            }
        }
        _ => {}
    }
    set_default_str(spec, "type", "ClusterIP");
    for port in objects_mut(spec, "ports") {
        set_default_str(port, "protocol", "TCP");
        let unset_target = match port.get("targetPort") {
            None | Some(Value::Null) => true,
            Some(Value::Number(n)) => n.as_f64() == Some(0.0),
            Some(Value::String(s)) => s.is_empty(),
            _ => false,
        };
        if unset_target {
            if let Some(number) = port.get("port").filter(|p| p.is_number()).cloned() {
                port.insert("targetPort".into(), number);
            }
        }
    }
    let service_type = spec.get("type").and_then(Value::as_str).unwrap_or("").to_string();
    let has_external_ips = !is_empty_collection(spec.get("externalIPs"));
    let externally_accessible = service_type == "LoadBalancer"
        || service_type == "NodePort"
        || (service_type == "ClusterIP" && has_external_ips);
    if externally_accessible {
        set_default_str(spec, "externalTrafficPolicy", "Cluster");
    }
    if matches!(service_type.as_str(), "ClusterIP" | "NodePort" | "LoadBalancer") {
        set_default(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if service_type == "LoadBalancer" {
        set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
        if let Some(ingress) = existing_object(root, "status").and_then(|s| existing_object(s, "loadBalancer")) {
            for entry in objects_mut(ingress, "ingress") {
                if !is_empty_str(entry.get("ip")) {
                    set_default(entry, "ipMode", json!("VIP"));
                }
            }
        }
    }
}

fn network_policy(root: &mut Obj) {
    let Some(spec) = child(root, "spec") else {
        return;
    };
    for key in ["ingress", "egress"] {
        for rule in objects_mut(spec, key) {
            for port in objects_mut(rule, "ports") {
                set_default(port, "protocol", json!("TCP"));
            }
        }
    }
    if is_empty_collection(spec.get("policyTypes")) {
        let mut types = vec![json!("Ingress")];
        if !is_empty_collection(spec.get("egress")) {
            types.push(json!("Egress"));
        }
        spec.insert("policyTypes".into(), Value::Array(types));
    }
}

// ------------------------------------------------------------------------------------ cluster

fn namespace(root: &mut Obj) {
    let name = root.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or("").to_string();
    if !name.is_empty() {
        if let Some(labels) = child(root, "metadata").and_then(|m| child(m, "labels")) {
            labels.insert("kubernetes.io/metadata.name".into(), json!(name));
        }
    }
    if let Some(spec) = child(root, "spec") {
        set_default(spec, "finalizers", json!(["kubernetes"]));
    }
    if let Some(status) = child(root, "status") {
        set_default_str(status, "phase", "Active");
    }
}

fn node(root: &mut Obj) {
    if let Some(spec) = existing_object(root, "spec") {
        let pod_cidr = spec.get("podCIDR").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
        let first = spec
            .get("podCIDRs")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_str)
            .map(str::to_string);
        match (pod_cidr, first) {
            (Some(cidr), None) if is_empty_collection(spec.get("podCIDRs")) => {
                spec.insert("podCIDRs".into(), json!([cidr]));
            }
            (None, Some(first)) => {
                spec.insert("podCIDR".into(), json!(first));
            }
            _ => {}
        }
    }
    if let Some(status) = existing_object(root, "status") {
        if is_unset(status.get("allocatable")) {
            if let Some(capacity) = status.get("capacity").filter(|c| c.is_object()).cloned() {
                status.insert("allocatable".into(), capacity);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaulted(kind: &str, mut obj: Value) -> Value {
        apply_defaults(kind, &mut obj);
        let again = {
            let mut o = obj.clone();
            apply_defaults(kind, &mut o);
            o
        };
        assert_eq!(obj, again, "defaults of {kind} are not idempotent");
        obj
    }

    #[test]
    fn bare_pod() {
        let pod = defaulted(
            "Pod",
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}
            }),
        );
        let spec = &pod["spec"];
        assert_eq!(spec["restartPolicy"], "Always");
        assert_eq!(spec["dnsPolicy"], "ClusterFirst");
        assert_eq!(spec["terminationGracePeriodSeconds"], 30);
        assert_eq!(spec["schedulerName"], "default-scheduler");
        assert_eq!(spec["securityContext"], json!({}));
        assert_eq!(spec["enableServiceLinks"], true);
        assert_eq!(spec["serviceAccountName"], "default");
        assert_eq!(spec["serviceAccount"], "default");
        assert_eq!(spec["priority"], 0);
        assert_eq!(spec["preemptionPolicy"], "PreemptLowerPriority");
        let c = &spec["containers"][0];
        assert_eq!(c["imagePullPolicy"], "Always");
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(c["terminationMessagePolicy"], "File");
        assert_eq!(
            spec["tolerations"],
            json!([
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            ])
        );
        assert!(pod.get("status").is_none());
    }

    #[test]
    fn pod_containers_probes_env_volumes() {
        let pod = defaulted(
            "Pod",
            json!({
                "metadata": {"name": "p"},
                "spec": {
                    "serviceAccountName": "builder",
                    "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60}],
                    "initContainers": [{"name": "init", "image": "busybox:1.36", "resources": {"limits": {"cpu": "1"}}}],
                    "containers": [{
                        "name": "app", "image": "registry:5000/app@sha256:abc",
                        "ports": [{"containerPort": 8080}],
                        "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                        "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "100m"}},
                        "livenessProbe": {"httpGet": {"port": 8080}},
                        "readinessProbe": {"grpc": {"port": 9000}, "periodSeconds": 5},
                        "lifecycle": {"preStop": {"httpGet": {"port": "http", "path": "/stop"}}}
                    }],
                    "volumes": [
                        {"name": "scratch"},
                        {"name": "cfg", "configMap": {"name": "cfg"}},
                        {"name": "token", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}
                    ]
                }
            }),
        );
        let spec = &pod["spec"];
        assert_eq!(spec["serviceAccountName"], "builder");
        assert_eq!(spec["serviceAccount"], "builder");
        // Only the unreachable toleration is added; the not-ready one is the user's.
        let tolerations = spec["tolerations"].as_array().unwrap();
        assert_eq!(tolerations.len(), 2);
        assert_eq!(tolerations[0]["tolerationSeconds"], 60);
        assert_eq!(tolerations[1]["key"], "node.kubernetes.io/unreachable");
        let init = &spec["initContainers"][0];
        assert_eq!(init["imagePullPolicy"], "IfNotPresent");
        assert_eq!(init["resources"]["requests"], json!({"cpu": "1"}));
        let c = &spec["containers"][0];
        assert_eq!(c["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
        assert_eq!(c["resources"]["requests"], json!({"cpu": "100m", "memory": "128Mi"}));
        assert_eq!(
            c["livenessProbe"],
            json!({"httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(c["readinessProbe"]["periodSeconds"], 5);
        assert_eq!(c["readinessProbe"]["grpc"]["service"], "");
        assert_eq!(c["lifecycle"]["preStop"]["httpGet"], json!({"port": "http", "path": "/stop", "scheme": "HTTP"}));
        assert_eq!(spec["volumes"][0]["emptyDir"], json!({}));
        assert_eq!(spec["volumes"][1]["configMap"]["defaultMode"], 420);
        assert_eq!(spec["volumes"][2]["projected"]["defaultMode"], 420);
        assert_eq!(spec["volumes"][2]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"], 3600);
    }

    #[test]
    fn image_pull_policies() {
        assert_eq!(pull_policy_for("nginx"), "Always");
        assert_eq!(pull_policy_for("nginx:latest"), "Always");
        assert_eq!(pull_policy_for("nginx:1.27"), "IfNotPresent");
        assert_eq!(pull_policy_for("localhost:5000/nginx"), "Always");
        assert_eq!(pull_policy_for("localhost:5000/nginx:v2"), "IfNotPresent");
        assert_eq!(pull_policy_for("nginx@sha256:0123"), "IfNotPresent");
        assert_eq!(pull_policy_for("nginx:latest@sha256:0123"), "Always");
        assert_eq!(pull_policy_for(""), "IfNotPresent");
    }

    #[test]
    fn host_network_pod_gets_host_ports_and_priority_of_builtin_class() {
        let pod = defaulted(
            "Pod",
            json!({"metadata": {"name": "p"}, "spec": {
                "hostNetwork": true, "priorityClassName": "system-node-critical",
                "containers": [{"name": "a", "image": "a:1", "ports": [{"containerPort": 53, "protocol": "UDP"}]}]
            }}),
        );
        assert_eq!(
            pod["spec"]["containers"][0]["ports"][0],
            json!({"containerPort": 53, "protocol": "UDP", "hostPort": 53})
        );
        assert_eq!(pod["spec"]["priority"], 2_000_001_000);
        let custom = defaulted(
            "Pod",
            json!({"metadata": {"name": "p"}, "spec": {"priorityClassName": "high", "containers": [{"name": "a", "image": "a"}]}}),
        );
        assert!(custom["spec"].get("priority").is_none());
    }

    #[test]
    fn deployment_from_kubectl_create() {
        // What `kubectl create deployment web --image=nginx` sends.
        let d = defaulted(
            "Deployment",
            json!({
                "kind": "Deployment", "apiVersion": "apps/v1",
                "metadata": {"name": "web", "creationTimestamp": null, "labels": {"app": "web"}},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "nginx", "image": "nginx", "resources": {}}]}
                    },
                    "strategy": {}
                },
                "status": {}
            }),
        );
        let spec = &d["spec"];
        assert_eq!(spec["replicas"], 1);
        assert_eq!(
            spec["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(spec["progressDeadlineSeconds"], 600);
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Always");
        assert_eq!(pod["dnsPolicy"], "ClusterFirst");
        assert_eq!(pod["terminationGracePeriodSeconds"], 30);
        assert_eq!(pod["schedulerName"], "default-scheduler");
        assert_eq!(pod["securityContext"], json!({}));
        assert_eq!(pod["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(pod["containers"][0]["resources"], json!({}));
        // Pod-only defaults stay out of templates.
        for key in ["enableServiceLinks", "serviceAccountName", "tolerations", "priority"] {
            assert!(pod.get(key).is_none(), "{key} defaulted in a template");
        }
    }

    #[test]
    fn recreate_deployment_has_no_rolling_update() {
        let d = defaulted(
            "Deployment",
            json!({"metadata": {"name": "d"}, "spec": {"replicas": 0, "strategy": {"type": "Recreate"}, "template": {"spec": {"containers": []}}}}),
        );
        assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
        assert_eq!(d["spec"]["replicas"], 0);
    }

    #[test]
    fn replica_set_and_daemon_set() {
        let rs = defaulted("ReplicaSet", json!({"metadata": {"name": "r"}, "spec": {"template": {"spec": {}}}}));
        assert_eq!(rs["spec"]["replicas"], 1);
        let ds = defaulted("DaemonSet", json!({"metadata": {"name": "d"}, "spec": {"template": {"spec": {}}}}));
        assert_eq!(
            ds["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert_eq!(ds["spec"]["revisionHistoryLimit"], 10);
        let on_delete = defaulted("DaemonSet", json!({"spec": {"updateStrategy": {"type": "OnDelete"}}}));
        assert_eq!(on_delete["spec"]["updateStrategy"], json!({"type": "OnDelete"}));
    }

    #[test]
    fn service_with_one_port() {
        let svc = defaulted(
            "Service",
            json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
        );
        let spec = &svc["spec"];
        assert_eq!(spec["type"], "ClusterIP");
        assert_eq!(spec["sessionAffinity"], "None");
        assert_eq!(spec["internalTrafficPolicy"], "Cluster");
        assert_eq!(spec["ports"][0], json!({"port": 80, "protocol": "TCP", "targetPort": 80}));
        for key in ["externalTrafficPolicy", "allocateLoadBalancerNodePorts", "clusterIP", "clusterIPs", "ipFamilies"] {
            assert!(spec.get(key).is_none(), "{key} set");
        }
    }

    #[test]
    fn service_kinds_and_affinity() {
        let lb = defaulted(
            "Service",
            json!({"spec": {"type": "LoadBalancer", "sessionAffinity": "ClientIP", "ports": [{"port": 443, "targetPort": "https", "protocol": "UDP"}]},
                   "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}, {"hostname": "lb.example.com"}]}}}),
        );
        let spec = &lb["spec"];
        assert_eq!(spec["externalTrafficPolicy"], "Cluster");
        assert_eq!(spec["internalTrafficPolicy"], "Cluster");
        assert_eq!(spec["allocateLoadBalancerNodePorts"], true);
        assert_eq!(spec["sessionAffinityConfig"], json!({"clientIP": {"timeoutSeconds": 10800}}));
        assert_eq!(spec["ports"][0], json!({"port": 443, "targetPort": "https", "protocol": "UDP"}));
        assert_eq!(lb["status"]["loadBalancer"]["ingress"][0]["ipMode"], "VIP");
        assert!(lb["status"]["loadBalancer"]["ingress"][1].get("ipMode").is_none());

        let ext = defaulted("Service", json!({"spec": {"type": "ExternalName", "externalName": "example.com"}}));
        assert!(ext["spec"].get("internalTrafficPolicy").is_none());
        assert!(ext["spec"].get("externalTrafficPolicy").is_none());

        let none = defaulted(
            "Service",
            json!({"spec": {"sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 5}}, "externalIPs": ["192.0.2.9"], "ports": [{"port": 80, "targetPort": 0}]}}),
        );
        assert!(none["spec"].get("sessionAffinityConfig").is_none());
        assert_eq!(none["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(none["spec"]["ports"][0]["targetPort"], 80);
    }

    #[test]
    fn namespace_defaults() {
        let ns =
            defaulted("Namespace", json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}));
        assert_eq!(ns["metadata"]["labels"], json!({"kubernetes.io/metadata.name": "team-a"}));
        assert_eq!(ns["spec"], json!({"finalizers": ["kubernetes"]}));
        assert_eq!(ns["status"], json!({"phase": "Active"}));
        // The name label is corrected; other labels and a terminating phase are kept.
        let ns = defaulted(
            "Namespace",
            json!({"metadata": {"name": "b", "labels": {"kubernetes.io/metadata.name": "x", "team": "b"}}, "spec": {"finalizers": []}, "status": {"phase": "Terminating"}}),
        );
        assert_eq!(ns["metadata"]["labels"], json!({"kubernetes.io/metadata.name": "b", "team": "b"}));
        assert_eq!(ns["spec"]["finalizers"], json!([]));
        assert_eq!(ns["status"]["phase"], "Terminating");
    }

    #[test]
    fn small_kinds() {
        assert_eq!(defaulted("Secret", json!({"metadata": {"name": "s"}}))["type"], "Opaque");
        assert_eq!(defaulted("Secret", json!({"type": "kubernetes.io/tls"}))["type"], "kubernetes.io/tls");
        let ep =
            defaulted("Endpoints", json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]}));
        assert_eq!(ep["subsets"][0]["ports"][0]["protocol"], "TCP");
        let slice = defaulted(
            "EndpointSlice",
            json!({"addressType": "IPv4", "endpoints": [], "ports": [{"port": 80}, {"name": "dns", "protocol": "UDP", "port": 53}]}),
        );
        assert_eq!(slice["ports"][0], json!({"port": 80, "name": "", "protocol": "TCP"}));
        assert_eq!(slice["ports"][1], json!({"name": "dns", "protocol": "UDP", "port": 53}));
        let np =
            defaulted("NetworkPolicy", json!({"spec": {"podSelector": {}, "ingress": [{"ports": [{"port": 80}]}]}}));
        assert_eq!(np["spec"]["policyTypes"], json!(["Ingress"]));
        assert_eq!(np["spec"]["ingress"][0]["ports"][0]["protocol"], "TCP");
        let np = defaulted("NetworkPolicy", json!({"spec": {"podSelector": {}, "egress": [{}]}}));
        assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        let class = defaulted(
            "IngressClass",
            json!({"spec": {"controller": "example.com/ingress", "parameters": {"kind": "P", "name": "p"}}}),
        );
        assert_eq!(class["spec"]["parameters"]["scope"], "Cluster");
        let node =
            defaulted("Node", json!({"spec": {"podCIDR": "10.244.1.0/24"}, "status": {"capacity": {"cpu": "2"}}}));
        assert_eq!(node["spec"]["podCIDRs"], json!(["10.244.1.0/24"]));
        assert_eq!(node["status"]["allocatable"], json!({"cpu": "2"}));
        for kind in ["ConfigMap", "ServiceAccount", "Lease", "Event", "Ingress", "Unknown"] {
            let obj = json!({"metadata": {"name": "x"}, "spec": {"a": 1}});
            assert_eq!(defaulted(kind, obj.clone()), obj, "{kind}");
        }
    }

    #[test]
    fn stateful_set_and_jobs() {
        let sts = defaulted(
            "StatefulSet",
            json!({"spec": {"volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {}}], "template": {"spec": {}}}}),
        );
        let spec = &sts["spec"];
        assert_eq!(spec["podManagementPolicy"], "OrderedReady");
        assert_eq!(spec["updateStrategy"], json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}));
        assert_eq!(
            spec["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        assert_eq!(spec["volumeClaimTemplates"][0]["status"]["phase"], "Pending");
        let job = defaulted("Job", json!({"spec": {"template": {"spec": {"restartPolicy": "Never"}}}}));
        assert_eq!(job["spec"]["completions"], 1);
        assert_eq!(job["spec"]["backoffLimit"], 6);
        assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
        let cron = defaulted(
            "CronJob",
            json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {}}}}}}),
        );
        assert_eq!(cron["spec"]["concurrencyPolicy"], "Allow");
        assert_eq!(cron["spec"]["jobTemplate"]["spec"]["completionMode"], "NonIndexed");
    }

    #[test]
    fn non_objects_are_left_alone() {
        let mut v = json!("x");
        apply_defaults("Pod", &mut v);
        assert_eq!(v, json!("x"));
        let pod = defaulted("Pod", json!({"spec": {"containers": "oops"}}));
        assert_eq!(pod["spec"]["containers"], "oops");
    }
}
