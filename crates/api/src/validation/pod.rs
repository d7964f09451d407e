//! Pods and pod templates: upstream's `ValidatePodCreate`, `ValidatePodSpec`,
//! `ValidatePodTemplateSpec` and `ValidatePodUpdate` (containers, volumes and mounts, env,
//! probes and lifecycle hooks, resources, tolerations, affinity, DNS settings…).

use std::collections::HashSet;

use podnet_meta::names;
use serde_json::{Map, Value};

use super::{
    array, as_int, boolean, child, dns_label, dns_subdomain, field, go_string_slice, index, int, invalid_go,
    ip_address, key, label_selector, labels, non_negative, normalized, not_found, object, opt_string, port_num_or_name,
    protocol, push_all, qualified_name, quantity, quoted, required_because, same, show, string, Errs, QUANTITY_ERROR,
};
use crate::status::Cause;

use crate::defaults::VOLUME_SOURCES;

const FILE_MODE_ERROR: &str = "must be a number between 0 and 0777 (octal), both inclusive";
const MAX_INT32: i64 = i32::MAX as i64;

/// A `v1.Pod`: its spec, the pod-only rules and, on updates, what may change.
pub(super) fn validate_pod(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = field(obj, "spec").unwrap_or(&Value::Null);
    let annotations = field(obj, "metadata").and_then(|m| object(m, "annotations"));
    if let Some(mirror) = annotations.and_then(|a| a.get("kubernetes.io/config.mirror")) {
        if string(spec, "nodeName").is_empty() {
            errs.push(Cause::invalid(
                "metadata.annotations[kubernetes.io/config.mirror]",
                show(mirror),
                "must set spec.nodeName if mirror pod annotation is set",
            ));
        }
    }
    validate_pod_spec(spec, "spec", errs);
    match old {
        None => {
            if !array(spec, "ephemeralContainers").is_empty() {
                errs.push(Cause::forbidden("spec.ephemeralContainers", "cannot be set on create"));
            }
        }
        Some(old) => validate_pod_update(spec, field(old, "spec").unwrap_or(&Value::Null), errs),
    }
}

/// `ValidatePodTemplateSpec`: the template's labels and annotations and its pod spec.
pub(super) fn validate_template(template: &Value, path: &str, errs: &mut Errs) {
    let meta = field(template, "metadata").unwrap_or(&Value::Null);
    labels(field(meta, "labels"), &child(path, "labels"), errs);
    super::annotations(field(meta, "annotations"), &child(path, "annotations"), errs);
    let spec = field(template, "spec").unwrap_or(&Value::Null);
    validate_pod_spec(spec, &child(path, "spec"), errs);
    if !array(spec, "ephemeralContainers").is_empty() {
        errs.push(Cause::forbidden(
            child(&child(path, "spec"), "ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
}

/// `ValidatePodSpec`.
pub(super) fn validate_pod_spec(spec: &Value, path: &str, errs: &mut Errs) {
    let volumes = validate_volumes(array(spec, "volumes"), &child(path, "volumes"), errs);
    let containers = array(spec, "containers");
    let init_containers = array(spec, "initContainers");
    let grace = int(spec, "terminationGracePeriodSeconds");

    // Regular containers.
    let containers_path = child(path, "containers");
    if containers.is_empty() {
        errs.push(Cause::required(&containers_path));
    }
    let mut all_names = HashSet::new();
    for (i, c) in containers.iter().enumerate() {
        let p = index(&containers_path, i);
        container_common(c, &p, &volumes, errs);
        let name = string(c, "name");
        if !all_names.insert(name.to_string()) {
            errs.push(Cause::duplicate(child(&p, "name"), name));
        }
        if let Some(lifecycle) = field(c, "lifecycle") {
            validate_lifecycle(lifecycle, grace, &child(&p, "lifecycle"), errs);
        }
        validate_probe(field(c, "livenessProbe"), &child(&p, "livenessProbe"), ProbeKind::Liveness, errs);
        validate_probe(field(c, "readinessProbe"), &child(&p, "readinessProbe"), ProbeKind::Readiness, errs);
        validate_probe(field(c, "startupProbe"), &child(&p, "startupProbe"), ProbeKind::Startup, errs);
        if field(c, "restartPolicy").is_some() {
            errs.push(Cause::forbidden(child(&p, "restartPolicy"), "may not be set for non-init containers"));
        }
    }
    host_port_conflicts(containers, &containers_path, 0, errs);

    // Init containers: names unique across both lists.
    let init_path = child(path, "initContainers");
    for (i, c) in init_containers.iter().enumerate() {
        let p = index(&init_path, i);
        container_common(c, &p, &volumes, errs);
        let restart_always = match opt_string(c, "restartPolicy") {
            Some("Always") => true,
            Some(other) => {
                errs.push(Cause::not_supported(child(&p, "restartPolicy"), other, &["Always"]));
                false
            }
            None => false,
        };
        let name = string(c, "name");
        if all_names.contains(name) {
            errs.push(Cause::duplicate(child(&p, "name"), name));
        } else if !name.is_empty() {
            all_names.insert(name.to_string());
        }
        host_port_conflicts(std::slice::from_ref(c), &init_path, i, errs);
        if restart_always {
            if let Some(lifecycle) = field(c, "lifecycle") {
                validate_lifecycle(lifecycle, grace, &child(&p, "lifecycle"), errs);
            }
            validate_probe(field(c, "livenessProbe"), &child(&p, "livenessProbe"), ProbeKind::Liveness, errs);
            validate_probe(field(c, "readinessProbe"), &child(&p, "readinessProbe"), ProbeKind::Readiness, errs);
            validate_probe(field(c, "startupProbe"), &child(&p, "startupProbe"), ProbeKind::Startup, errs);
        } else {
            for name in ["lifecycle", "livenessProbe", "readinessProbe", "startupProbe"] {
                if field(c, name).is_some() {
                    errs.push(Cause::forbidden(
                        child(&p, name),
                        "may not be set for init containers without restartPolicy=Always",
                    ));
                }
            }
        }
    }

    // Ephemeral containers: unique names, a known target, no ports, probes or resources.
    let ephemeral_path = child(path, "ephemeralContainers");
    for (i, c) in array(spec, "ephemeralContainers").iter().enumerate() {
        let p = index(&ephemeral_path, i);
        container_common(c, &p, &volumes, errs);
        let name = string(c, "name");
        if !name.is_empty() && !all_names.insert(name.to_string()) {
            errs.push(Cause::duplicate(child(&p, "name"), name));
        }
        let target = string(c, "targetContainerName");
        let targets_known = containers.iter().chain(init_containers).any(|other| string(other, "name") == target);
        if !target.is_empty() && !targets_known {
            errs.push(not_found(child(&p, "targetContainerName"), target));
        }
        for name in ["ports", "resources", "livenessProbe", "readinessProbe", "startupProbe", "lifecycle"] {
            if !super::is_zero(field(c, name)) {
                errs.push(Cause::forbidden(child(&p, name), "cannot be set for an Ephemeral Container"));
            }
        }
    }

    host_network_deps(spec, path, errs);
    if let Some(policy) = opt_string(spec, "restartPolicy") {
        enum_value(policy, &child(path, "restartPolicy"), &["Always", "OnFailure", "Never"], errs);
    }
    if let Some(policy) = opt_string(spec, "dnsPolicy") {
        enum_value(
            policy,
            &child(path, "dnsPolicy"),
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
            errs,
        );
    }
    labels(field(spec, "nodeSelector"), &child(path, "nodeSelector"), errs);
    validate_affinity(field(spec, "affinity"), &child(path, "affinity"), errs);
    validate_dns_config(spec, path, errs);
    for (i, gate) in array(spec, "readinessGates").iter().enumerate() {
        qualified_name(
            string(gate, "conditionType"),
            &child(&index(&child(path, "readinessGates"), i), "conditionType"),
            errs,
        );
    }
    let mut gates = HashSet::new();
    for (i, gate) in array(spec, "schedulingGates").iter().enumerate() {
        let p = index(&child(path, "schedulingGates"), i);
        let name = string(gate, "name");
        qualified_name(name, &p, errs);
        if !gates.insert(name) {
            errs.push(Cause::duplicate(&p, name));
        }
    }
    validate_topology_spread(array(spec, "topologySpreadConstraints"), &child(path, "topologySpreadConstraints"), errs);
    for name in ["serviceAccountName", "nodeName", "priorityClassName"] {
        let value = string(spec, name);
        if !value.is_empty() {
            push_all(errs, &child(path, name), value, names::name_is_dns_subdomain(value, false));
        }
    }
    if let Some(runtime_class) = opt_string(spec, "runtimeClassName") {
        push_all(
            errs,
            &child(path, "runtimeClassName"),
            runtime_class,
            names::name_is_dns_subdomain(runtime_class, false),
        );
    }
    if let Some(deadline) = int(spec, "activeDeadlineSeconds") {
        if !(1..=MAX_INT32).contains(&deadline) {
            errs.push(Cause::invalid(
                child(path, "activeDeadlineSeconds"),
                deadline,
                names::inclusive_range_error(1, MAX_INT32),
            ));
        }
    }
    for name in ["hostname", "subdomain"] {
        let value = string(spec, name);
        if !value.is_empty() {
            dns_label(value, &child(path, name), errs);
        }
    }
    validate_tolerations(array(spec, "tolerations"), &child(path, "tolerations"), errs);
    for (i, alias) in array(spec, "hostAliases").iter().enumerate() {
        let p = index(&child(path, "hostAliases"), i);
        ip_address(string(alias, "ip"), &child(&p, "ip"), errs);
        for (j, host) in array(alias, "hostnames").iter().enumerate() {
            dns_subdomain(&show(host), &index(&child(&p, "hostnames"), j), errs);
        }
    }
    if let Some(policy) = opt_string(spec, "preemptionPolicy") {
        enum_value(policy, &child(path, "preemptionPolicy"), &["PreemptLowerPriority", "Never"], errs);
    }
    if let Some(os) = field(spec, "os") {
        let name = string(os, "name");
        if name.is_empty() {
            errs.push(Cause::required(child(&child(path, "os"), "name")));
        } else if name != "linux" && name != "windows" {
            errs.push(Cause::not_supported(child(&child(path, "os"), "name"), name, &["linux", "windows"]));
        }
    }
}

/// A required enum field: `Required` when empty, `NotSupported` when unknown.
fn enum_value(value: &str, path: &str, supported: &[&str], errs: &mut Errs) {
    if value.is_empty() {
        errs.push(Cause::required(path));
    } else if !supported.contains(&value) {
        errs.push(Cause::not_supported(path, value, supported));
    }
}

// ---------------------------------------------------------------------------------- containers

/// `validateContainerCommon`: what holds for regular, init and ephemeral containers.
fn container_common(c: &Value, path: &str, volumes: &HashSet<String>, errs: &mut Errs) {
    let name = string(c, "name");
    if name.is_empty() {
        errs.push(Cause::required(child(path, "name")));
    } else {
        dns_label(name, &child(path, "name"), errs);
    }
    if string(c, "image").is_empty() {
        errs.push(Cause::required(child(path, "image")));
    }
    if let Some(policy) = opt_string(c, "terminationMessagePolicy") {
        enum_value(policy, &child(path, "terminationMessagePolicy"), &["File", "FallbackToLogsOnError"], errs);
    }
    validate_container_ports(array(c, "ports"), &child(path, "ports"), errs);
    validate_env(array(c, "env"), &child(path, "env"), errs);
    validate_env_from(array(c, "envFrom"), &child(path, "envFrom"), errs);
    validate_volume_mounts(array(c, "volumeMounts"), &child(path, "volumeMounts"), volumes, errs);
    for (i, device) in array(c, "volumeDevices").iter().enumerate() {
        let p = index(&child(path, "volumeDevices"), i);
        let name = string(device, "name");
        if name.is_empty() {
            errs.push(Cause::required(child(&p, "name")));
        } else if !volumes.contains(name) {
            errs.push(not_found(child(&p, "name"), name));
        }
        if string(device, "devicePath").is_empty() {
            errs.push(Cause::required(child(&p, "devicePath")));
        }
    }
    if let Some(policy) = opt_string(c, "imagePullPolicy") {
        enum_value(policy, &child(path, "imagePullPolicy"), &["Always", "IfNotPresent", "Never"], errs);
    }
    validate_resources(field(c, "resources"), &child(path, "resources"), errs);
}

/// `validateContainerPorts`.
fn validate_container_ports(ports: &[Value], path: &str, errs: &mut Errs) {
    let mut names_seen = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = index(path, i);
        let name = string(port, "name");
        if !name.is_empty() {
            let problems = names::is_valid_port_name(name);
            if !problems.is_empty() {
                push_all(errs, &child(&p, "name"), name, problems);
            } else if !names_seen.insert(name) {
                errs.push(Cause::duplicate(child(&p, "name"), name));
            }
        }
        match int(port, "containerPort") {
            None | Some(0) => errs.push(Cause::required(child(&p, "containerPort"))),
            Some(n) => push_all(errs, &child(&p, "containerPort"), n, names::is_valid_port_num(n)),
        }
        if let Some(host_port) = int(port, "hostPort").filter(|n| *n != 0) {
            push_all(errs, &child(&p, "hostPort"), host_port, names::is_valid_port_num(host_port));
        }
        if let Some(proto) = opt_string(port, "protocol") {
            protocol(Some(proto), &child(&p, "protocol"), errs);
        }
        if let Some(host_ip) = opt_string(port, "hostIP").filter(|s| !s.is_empty()) {
            ip_address(host_ip, &child(&p, "hostIP"), errs);
        }
    }
}

/// `AccumulateUniqueHostPorts`: a host port (with its IP and protocol) is used once.
fn host_port_conflicts(containers: &[Value], path: &str, first_index: usize, errs: &mut Errs) {
    let mut seen = HashSet::new();
    for (ci, c) in containers.iter().enumerate() {
        for (pi, port) in array(c, "ports").iter().enumerate() {
            let Some(host_port) = int(port, "hostPort").filter(|n| *n != 0) else {
                continue;
            };
            let proto = opt_string(port, "protocol").unwrap_or("TCP");
            let id = format!("{}/{proto}/{host_port}", string(port, "hostIP"));
            if !seen.insert(id.clone()) {
                let p = index(&child(&index(path, first_index + ci), "ports"), pi);
                errs.push(Cause::duplicate(child(&p, "hostPort"), id));
            }
        }
    }
}

/// `validatePodHostNetworkDeps`: with host networking, host ports equal container ports.
fn host_network_deps(spec: &Value, path: &str, errs: &mut Errs) {
    if !boolean(spec, "hostNetwork") {
        return;
    }
    for list in ["containers", "initContainers"] {
        for (ci, c) in array(spec, list).iter().enumerate() {
            for (pi, port) in array(c, "ports").iter().enumerate() {
                let host_port = int(port, "hostPort").unwrap_or(0);
                if host_port != 0 && Some(host_port) != int(port, "containerPort") {
                    let p = index(&child(&index(&child(path, list), ci), "ports"), pi);
                    errs.push(Cause::invalid(
                        child(&p, "hostPort"),
                        host_port,
                        "must match `containerPort` when `hostNetwork` is true",
                    ));
                }
            }
        }
    }
}

/// `IsRelaxedEnvVarName` (the rule since `RelaxedEnvironmentVariableValidation`).
fn env_var_name(name: &str, path: &str, errs: &mut Errs) {
    if !name.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'=') {
        errs.push(Cause::invalid(
            path,
            name,
            "a valid environment variable name must consist only of printable ASCII characters other than '='",
        ));
    }
}

/// The downward API fields an environment variable may refer to.
const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// The downward API fields a volume file may hold.
const VOLUME_FIELD_PATHS: &[&str] =
    &["metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace", "metadata.uid"];

const RESOURCE_FIELD_PATHS: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

/// `ValidateEnv`.
fn validate_env(vars: &[Value], path: &str, errs: &mut Errs) {
    for (i, var) in vars.iter().enumerate() {
        let p = index(path, i);
        let name = string(var, "name");
        if name.is_empty() {
            errs.push(Cause::required(child(&p, "name")));
        } else {
            env_var_name(name, &child(&p, "name"), errs);
        }
        let Some(from) = field(var, "valueFrom") else {
            continue;
        };
        let from_path = child(&p, "valueFrom");
        let mut sources = 0;
        if let Some(field_ref) = field(from, "fieldRef") {
            sources += 1;
            object_field_selector(field_ref, ENV_FIELD_PATHS, &child(&from_path, "fieldRef"), errs);
        }
        if let Some(resource_ref) = field(from, "resourceFieldRef") {
            sources += 1;
            resource_field_selector(resource_ref, false, &child(&from_path, "resourceFieldRef"), errs);
        }
        for source in ["configMapKeyRef", "secretKeyRef"] {
            if let Some(selector) = field(from, source) {
                sources += 1;
                let sp = child(&from_path, source);
                let name = string(selector, "name");
                push_all(errs, &child(&sp, "name"), name, names::name_is_dns_subdomain(name, false));
                let key = string(selector, "key");
                if key.is_empty() {
                    errs.push(Cause::required(child(&sp, "key")));
                } else {
                    push_all(errs, &child(&sp, "key"), key, names::is_config_map_key(key));
                }
            }
        }
        if sources == 0 {
            errs.push(Cause::invalid(
                &from_path,
                "",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            ));
        } else if !string(var, "value").is_empty() {
            errs.push(Cause::invalid(&from_path, "", "may not be specified when `value` is not empty"));
        } else if sources > 1 {
            errs.push(Cause::invalid(&from_path, "", "may not have more than one field specified at a time"));
        }
    }
}

/// `validateObjectFieldSelector`.
fn object_field_selector(selector: &Value, supported: &[&str], path: &str, errs: &mut Errs) {
    if string(selector, "apiVersion").is_empty() && field(selector, "apiVersion").is_some() {
        errs.push(Cause::required(child(path, "apiVersion")));
        return;
    }
    let field_path = string(selector, "fieldPath");
    if field_path.is_empty() {
        errs.push(Cause::required(child(path, "fieldPath")));
        return;
    }
    if let Some((base, subscript)) = split_subscript(field_path) {
        match base {
            "metadata.annotations" => qualified_name(&subscript.to_lowercase(), path, errs),
            "metadata.labels" => qualified_name(subscript, path, errs),
            _ => errs.push(Cause::invalid(path, base, "does not support subscript")),
        }
    } else if !supported.contains(&field_path) {
        let mut list = supported.to_vec();
        list.sort_unstable();
        errs.push(Cause::not_supported(child(path, "fieldPath"), field_path, &list));
    }
}

/// `metadata.labels['app']` → (`metadata.labels`, `app`).
fn split_subscript(path: &str) -> Option<(&str, &str)> {
    let open = path.find("['")?;
    let inner = path[open + 2..].strip_suffix("']")?;
    Some((&path[..open], inner))
}

/// `validateContainerResourceFieldSelector`.
fn resource_field_selector(selector: &Value, volume: bool, path: &str, errs: &mut Errs) {
    let resource = string(selector, "resource");
    if volume && string(selector, "containerName").is_empty() {
        errs.push(Cause::required(child(path, "containerName")));
    } else if resource.is_empty() {
        errs.push(Cause::required(child(path, "resource")));
    } else if !RESOURCE_FIELD_PATHS.contains(&resource)
        && !resource.starts_with("requests.hugepages-")
        && !resource.starts_with("limits.hugepages-")
    {
        errs.push(Cause::not_supported(child(path, "resource"), resource, RESOURCE_FIELD_PATHS));
    }
}

/// `ValidateEnvFrom`.
fn validate_env_from(sources: &[Value], path: &str, errs: &mut Errs) {
    for (i, source) in sources.iter().enumerate() {
        let p = index(path, i);
        let prefix = string(source, "prefix");
        if !prefix.is_empty() {
            env_var_name(prefix, &child(&p, "prefix"), errs);
        }
        let mut count = 0;
        for name in ["configMapRef", "secretRef"] {
            if let Some(reference) = field(source, name) {
                count += 1;
                let ref_name = string(reference, "name");
                let np = child(&child(&p, name), "name");
                if ref_name.is_empty() {
                    errs.push(Cause::required(np));
                } else {
                    push_all(errs, &np, ref_name, names::name_is_dns_subdomain(ref_name, true));
                }
            }
        }
        if count == 0 {
            errs.push(Cause::invalid(path, "", "must specify one of: `configMapRef` or `secretRef`"));
        } else if count > 1 {
            errs.push(Cause::invalid(path, "", "may not have more than one field specified at a time"));
        }
    }
}

/// `validateLocalDescendingPath`: relative and without `..`.
fn local_descending_path(target: &str, path: &str, errs: &mut Errs) {
    if target.starts_with('/') {
        errs.push(Cause::invalid(path, target, "must be a relative path"));
    }
    if target.split('/').any(|part| part == "..") {
        errs.push(Cause::invalid(path, target, "must not contain '..'"));
    }
}

/// `validateLocalNonReservedPath`: also not starting with `..`.
fn local_non_reserved_path(target: &str, path: &str, errs: &mut Errs) {
    local_descending_path(target, path, errs);
    if target.starts_with("..") && !target.starts_with("../") {
        errs.push(Cause::invalid(path, target, "must not start with '..'"));
    }
}

/// `ValidateVolumeMounts`.
fn validate_volume_mounts(mounts: &[Value], path: &str, volumes: &HashSet<String>, errs: &mut Errs) {
    let mut mount_points = HashSet::new();
    for (i, mount) in mounts.iter().enumerate() {
        let p = index(path, i);
        let name = string(mount, "name");
        if name.is_empty() {
            errs.push(Cause::required(child(&p, "name")));
        }
        if !volumes.contains(name) {
            errs.push(not_found(child(&p, "name"), name));
        }
        let mount_path = string(mount, "mountPath");
        if mount_path.is_empty() {
            errs.push(Cause::required(child(&p, "mountPath")));
        }
        if !mount_points.insert(mount_path) {
            errs.push(Cause::invalid(child(&p, "mountPath"), mount_path, "must be unique"));
        }
        let sub_path = string(mount, "subPath");
        if !sub_path.is_empty() {
            local_descending_path(sub_path, &child(path, "subPath"), errs);
        }
        let sub_path_expr = string(mount, "subPathExpr");
        if !sub_path_expr.is_empty() {
            if !sub_path.is_empty() {
                errs.push(Cause::invalid(
                    child(&p, "subPathExpr"),
                    sub_path_expr,
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
            local_descending_path(sub_path_expr, &child(path, "subPathExpr"), errs);
        }
        if let Some(propagation) = opt_string(mount, "mountPropagation") {
            let supported = ["Bidirectional", "HostToContainer", "None"];
            if !supported.contains(&propagation) {
                errs.push(Cause::not_supported(child(path, "mountPropagation"), propagation, &supported));
            }
        }
    }
}

// ----------------------------------------------------------------------------------- resources

/// Whether a resource is a native one (no domain, or a `kubernetes.io/` one).
fn is_native_resource(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

fn is_huge_pages(name: &str) -> bool {
    name.starts_with("hugepages-")
}

/// `validateContainerResourceName`.
fn container_resource_name(name: &str, path: &str, errs: &mut Errs) {
    qualified_name(name, path, errs);
    if !name.contains('/') {
        if !matches!(name, "cpu" | "memory" | "ephemeral-storage") && !is_huge_pages(name) {
            errs.push(Cause::invalid(path, name, "must be a standard resource for containers"));
        }
    } else if !is_native_resource(name) && !names::is_qualified_name(&format!("requests.{name}")).is_empty() {
        errs.push(Cause::invalid(path, name, "doesn't follow extended resource name standard"));
    }
}

/// The value of a quantity, pushing an error when it is malformed or negative.
fn checked_quantity(v: &Value, path: &str, errs: &mut Errs) -> Option<f64> {
    match quantity(v) {
        None => {
            errs.push(Cause::invalid(path, show(v), QUANTITY_ERROR));
            None
        }
        Some(q) if q < 0.0 => {
            errs.push(Cause::invalid(path, show(v), "must be greater than or equal to 0"));
            None
        }
        Some(q) => Some(q),
    }
}

/// `ValidateContainerResourceRequirements`.
fn validate_resources(resources: Option<&Value>, path: &str, errs: &mut Errs) {
    let Some(resources) = resources else { return };
    let limits_path = child(path, "limits");
    let requests_path = child(path, "requests");
    let empty = Map::new();
    let limits = object(resources, "limits").unwrap_or(&empty);
    let requests = object(resources, "requests").unwrap_or(&empty);
    for (name, value) in limits {
        let p = key(&limits_path, name);
        container_resource_name(name, &p, errs);
        checked_quantity(value, &p, errs);
    }
    for (name, value) in requests {
        let p = key(&requests_path, name);
        container_resource_name(name, &p, errs);
        let Some(request) = checked_quantity(value, &p, errs) else {
            continue;
        };
        let overcommit = is_native_resource(name) && !is_huge_pages(name);
        match limits.get(name) {
            Some(limit_value) => {
                let Some(limit) = quantity(limit_value) else {
                    continue;
                };
                if !overcommit && (request - limit).abs() > f64::EPSILON * limit.abs().max(1.0) {
                    errs.push(invalid_go(
                        &requests_path,
                        &quoted(value),
                        format!("must be equal to {name} limit of {}", show(limit_value)),
                    ));
                } else if request > limit * (1.0 + 1e-12) {
                    errs.push(invalid_go(
                        &requests_path,
                        &quoted(value),
                        format!("must be less than or equal to {name} limit of {}", show(limit_value)),
                    ));
                }
            }
            None if !overcommit => {
                errs.push(required_because(&limits_path, "Limit must be set for non overcommitable resources"));
            }
            None => {}
        }
    }
}

// -------------------------------------------------------------------------------------- probes

#[derive(Clone, Copy, PartialEq, Eq)]
enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

/// `validateProbe` and the liveness/readiness/startup specifics.
fn validate_probe(probe: Option<&Value>, path: &str, kind: ProbeKind, errs: &mut Errs) {
    let Some(probe) = probe else { return };
    validate_handler(probe, path, &["exec", "httpGet", "tcpSocket", "grpc"], errs);
    for name in ["initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"] {
        non_negative(probe, name, path, errs);
    }
    if let Some(grace) = int(probe, "terminationGracePeriodSeconds") {
        if kind == ProbeKind::Readiness {
            errs.push(Cause::invalid(
                child(path, "terminationGracePeriodSeconds"),
                grace,
                "must not be set for readinessProbes",
            ));
        } else if grace <= 0 {
            errs.push(Cause::invalid(child(path, "terminationGracePeriodSeconds"), grace, "must be greater than 0"));
        }
    }
    if kind != ProbeKind::Readiness {
        if let Some(threshold) = int(probe, "successThreshold").filter(|t| *t != 1) {
            errs.push(Cause::invalid(child(path, "successThreshold"), threshold, "must be 1"));
        }
    }
}

/// `validateLifecycle`.
fn validate_lifecycle(lifecycle: &Value, grace: Option<i64>, path: &str, errs: &mut Errs) {
    for hook in ["postStart", "preStop"] {
        if let Some(handler) = field(lifecycle, hook) {
            let p = child(path, hook);
            validate_handler(handler, &p, &["exec", "httpGet", "tcpSocket", "sleep"], errs);
            if let Some(seconds) = field(handler, "sleep").and_then(|s| int(s, "seconds")) {
                let sp = child(&child(&p, "sleep"), "seconds");
                if seconds < 0 {
                    errs.push(Cause::invalid(&sp, seconds, "must be non-negative"));
                } else if grace.is_some_and(|g| seconds > g) {
                    errs.push(Cause::invalid(&sp, seconds, "must be less than terminationGracePeriodSeconds"));
                }
            }
        }
    }
    if let Some(signal) = opt_string(lifecycle, "stopSignal") {
        if !signal.starts_with("SIG") {
            errs.push(Cause::invalid(child(path, "stopSignal"), signal, "must be a valid signal name"));
        }
    }
}

/// `validateHandler`: exactly one action, each valid.
fn validate_handler(handler: &Value, path: &str, kinds: &[&str], errs: &mut Errs) {
    let mut count = 0;
    for kind in kinds {
        let Some(action) = field(handler, kind) else {
            continue;
        };
        let p = child(path, kind);
        if count > 0 {
            errs.push(Cause::forbidden(&p, "may not specify more than 1 handler type"));
            continue;
        }
        count += 1;
        match *kind {
            "exec" if array(action, "command").is_empty() => {
                errs.push(Cause::required(child(&p, "command")));
            }
            "httpGet" => {
                if field(action, "path").is_some() && string(action, "path").is_empty() {
                    errs.push(Cause::required(child(&p, "path")));
                }
                port_num_or_name(field(action, "port"), &child(&p, "port"), errs);
                if let Some(scheme) = opt_string(action, "scheme") {
                    if scheme != "HTTP" && scheme != "HTTPS" {
                        errs.push(Cause::not_supported(child(&p, "scheme"), scheme, &["HTTP", "HTTPS"]));
                    }
                }
                for header in array(action, "httpHeaders") {
                    let name = string(header, "name");
                    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                        errs.push(Cause::invalid(
                            child(&p, "httpHeaders"),
                            name,
                            names::regex_error(
                                "a valid HTTP header must consist of alphanumeric characters or '-'",
                                "[-A-Za-z0-9]+",
                                &["X-Header-Name"],
                            ),
                        ));
                    }
                }
            }
            "tcpSocket" => port_num_or_name(field(action, "port"), &child(&p, "port"), errs),
            "grpc" => {
                let port = int(action, "port").unwrap_or(0);
                push_all(errs, &child(&p, "port"), port, names::is_valid_port_num(port));
            }
            _ => {}
        }
    }
    if count == 0 {
        errs.push(required_because(path, "must specify a handler type"));
    }
}

// ------------------------------------------------------------------------------------- volumes

/// `ValidateVolumes`: returns the names of the volumes, for the mounts.
fn validate_volumes(volumes: &[Value], path: &str, errs: &mut Errs) -> HashSet<String> {
    let mut all = HashSet::new();
    for (i, volume) in volumes.iter().enumerate() {
        let p = index(path, i);
        let sources: Vec<&str> = VOLUME_SOURCES.iter().copied().filter(|s| field(volume, s).is_some()).collect();
        match sources.as_slice() {
            [] => errs.push(required_because(&p, "must specify a volume type")),
            [first, rest @ ..] => {
                volume_source(first, &volume[*first], &child(&p, first), errs);
                for extra in rest {
                    errs.push(Cause::forbidden(child(&p, extra), "may not specify more than 1 volume type"));
                }
            }
        }
        let name = string(volume, "name");
        if name.is_empty() {
            errs.push(Cause::required(child(&p, "name")));
        } else {
            dns_label(name, &child(&p, "name"), errs);
        }
        if !all.insert(name.to_string()) {
            errs.push(Cause::duplicate(child(&p, "name"), name));
        }
    }
    all
}

fn file_mode(v: &Value, name: &str, path: &str, errs: &mut Errs) {
    if let Some(mode) = int(v, name).filter(|m| !(0..=0o777).contains(m)) {
        errs.push(Cause::invalid(child(path, name), mode, FILE_MODE_ERROR));
    }
}

/// `validateKeyToPath` items of secret and config map volumes.
fn key_to_path_items(items: &[Value], path: &str, errs: &mut Errs) {
    for (i, item) in items.iter().enumerate() {
        let p = index(&child(path, "items"), i);
        if string(item, "key").is_empty() {
            errs.push(Cause::required(child(&p, "key")));
        }
        let target = string(item, "path");
        if target.is_empty() {
            errs.push(Cause::required(child(&p, "path")));
        }
        local_non_reserved_path(target, &child(&p, "path"), errs);
        file_mode(item, "mode", &p, errs);
    }
}

/// Downward API volume files.
fn downward_api_items(items: &[Value], path: &str, errs: &mut Errs) {
    for (i, item) in items.iter().enumerate() {
        let p = index(&child(path, "items"), i);
        let target = string(item, "path");
        if target.is_empty() {
            errs.push(Cause::required(child(&p, "path")));
        }
        local_non_reserved_path(target, &child(&p, "path"), errs);
        file_mode(item, "mode", &p, errs);
        match (field(item, "fieldRef"), field(item, "resourceFieldRef")) {
            (Some(_), Some(_)) => errs.push(Cause::invalid(
                &p,
                "resource",
                "fieldRef and resourceFieldRef can not be specified simultaneously",
            )),
            (Some(field_ref), None) => {
                object_field_selector(field_ref, VOLUME_FIELD_PATHS, &child(&p, "fieldRef"), errs)
            }
            (None, Some(resource_ref)) => {
                resource_field_selector(resource_ref, true, &child(&p, "resourceFieldRef"), errs)
            }
            (None, None) => errs.push(required_because(&p, "one of fieldRef and resourceFieldRef is required")),
        }
    }
}

/// The checks of the volume sources in common use.
fn volume_source(kind: &str, source: &Value, path: &str, errs: &mut Errs) {
    match kind {
        "hostPath" => {
            let host_path = string(source, "path");
            if host_path.is_empty() {
                errs.push(Cause::required(child(path, "path")));
            } else if host_path.split('/').any(|part| part == "..") {
                errs.push(Cause::invalid(child(path, "path"), host_path, "must not contain '..'"));
            }
            if let Some(kind) = opt_string(source, "type") {
                let supported = [
                    "",
                    "BlockDevice",
                    "CharDevice",
                    "Directory",
                    "DirectoryOrCreate",
                    "File",
                    "FileOrCreate",
                    "Socket",
                ];
                if !supported.contains(&kind) {
                    errs.push(Cause::not_supported(child(path, "type"), kind, &supported));
                }
            }
        }
        "emptyDir" => {
            if let Some(limit) = field(source, "sizeLimit") {
                checked_quantity(limit, &child(path, "sizeLimit"), errs);
            }
        }
        "secret" => {
            if string(source, "secretName").is_empty() {
                errs.push(Cause::required(child(path, "secretName")));
            }
            file_mode(source, "defaultMode", path, errs);
            key_to_path_items(array(source, "items"), path, errs);
        }
        "configMap" => {
            let name = string(source, "name");
            if name.is_empty() {
                errs.push(Cause::required(child(path, "name")));
            } else {
                push_all(errs, &child(path, "name"), name, names::name_is_dns_subdomain(name, false));
            }
            file_mode(source, "defaultMode", path, errs);
            key_to_path_items(array(source, "items"), path, errs);
        }
        "persistentVolumeClaim" if string(source, "claimName").is_empty() => {
            errs.push(Cause::required(child(path, "claimName")));
        }
        "nfs" => {
            if string(source, "server").is_empty() {
                errs.push(Cause::required(child(path, "server")));
            }
            let nfs_path = string(source, "path");
            if nfs_path.is_empty() {
                errs.push(Cause::required(child(path, "path")));
            } else if !nfs_path.starts_with('/') {
                errs.push(Cause::invalid(child(path, "path"), nfs_path, "must be an absolute path"));
            }
        }
        "csi" if string(source, "driver").is_empty() => {
            errs.push(Cause::required(child(path, "driver")));
        }
        "ephemeral" if field(source, "volumeClaimTemplate").is_none() => {
            errs.push(Cause::required(child(path, "volumeClaimTemplate")));
        }
        "image" if string(source, "reference").is_empty() => {
            errs.push(Cause::required(child(path, "reference")));
        }
        "downwardAPI" => {
            file_mode(source, "defaultMode", path, errs);
            downward_api_items(array(source, "items"), path, errs);
        }
        "projected" => {
            file_mode(source, "defaultMode", path, errs);
            for (i, projection) in array(source, "sources").iter().enumerate() {
                let p = index(&child(path, "sources"), i);
                let kinds = [
                    "secret",
                    "configMap",
                    "downwardAPI",
                    "serviceAccountToken",
                    "clusterTrustBundle",
                    "podCertificate",
                ];
                let present: Vec<&str> = kinds.iter().copied().filter(|k| field(projection, k).is_some()).collect();
                if present.len() != 1 {
                    errs.push(Cause::forbidden(&p, "may not specify more than 1 volume type per source"));
                }
                if let Some(token) = field(projection, "serviceAccountToken") {
                    let tp = child(&p, "serviceAccountToken");
                    if string(token, "path").is_empty() {
                        errs.push(Cause::required(child(&tp, "path")));
                    }
                    if let Some(seconds) = int(token, "expirationSeconds") {
                        if seconds < 600 {
                            errs.push(Cause::invalid(
                                child(&tp, "expirationSeconds"),
                                seconds,
                                "may not specify a duration less than 10 minutes",
                            ));
                        } else if seconds > 1 << 32 {
                            errs.push(Cause::invalid(
                                child(&tp, "expirationSeconds"),
                                seconds,
                                "may not specify a duration larger than 2^32 seconds",
                            ));
                        }
                    }
                }
                for kind in ["secret", "configMap"] {
                    if let Some(projected) = field(projection, kind) {
                        key_to_path_items(array(projected, "items"), &child(&p, kind), errs);
                    }
                }
                if let Some(downward) = field(projection, "downwardAPI") {
                    downward_api_items(array(downward, "items"), &child(&p, "downwardAPI"), errs);
                }
            }
        }
        _ => {}
    }
}

// --------------------------------------------------------------------------- scheduling fields

/// `ValidateTolerations`.
pub(super) fn validate_tolerations(tolerations: &[Value], path: &str, errs: &mut Errs) {
    for (i, t) in tolerations.iter().enumerate() {
        let p = index(path, i);
        let toleration_key = string(t, "key");
        let operator = string(t, "operator");
        let effect = string(t, "effect");
        if !toleration_key.is_empty() {
            qualified_name(toleration_key, &child(&p, "key"), errs);
        }
        if toleration_key.is_empty() && operator != "Exists" {
            errs.push(Cause::invalid(
                child(&p, "operator"),
                operator,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if field(t, "tolerationSeconds").is_some() && effect != "NoExecute" {
            errs.push(Cause::invalid(
                child(&p, "effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        let value = string(t, "value");
        match operator {
            "" | "Equal" => {
                let problems = names::is_valid_label_value(value);
                if !problems.is_empty() {
                    errs.push(Cause::invalid(child(&p, "operator"), value, problems.join(";")));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    errs.push(Cause::invalid(
                        child(&p, "operator"),
                        value,
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(Cause::not_supported(child(&p, "operator"), other, &["Equal", "Exists"])),
        }
        if !effect.is_empty() && !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
            errs.push(Cause::not_supported(
                child(&p, "effect"),
                effect,
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            ));
        }
    }
}

/// `ValidateNodeSelectorRequirement` (and the `matchFields` variant).
fn node_selector_requirement(req: &Value, path: &str, fields: bool, errs: &mut Errs) {
    let values = array(req, "values");
    match string(req, "operator") {
        "In" | "NotIn" => {
            if values.is_empty() {
                errs.push(required_because(
                    child(path, "values"),
                    "must be specified when `operator` is 'In' or 'NotIn'",
                ));
            } else if fields && values.len() != 1 {
                errs.push(required_because(
                    child(path, "values"),
                    "must be only one value when `operator` is 'In' or 'NotIn' for node field selector",
                ));
            }
        }
        "Exists" | "DoesNotExist" if !fields => {
            if !values.is_empty() {
                errs.push(Cause::forbidden(
                    child(path, "values"),
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                ));
            }
        }
        "Gt" | "Lt" if !fields => {
            if values.len() != 1 {
                errs.push(required_because(
                    child(path, "values"),
                    "must be specified single value when `operator` is 'Lt' or 'Gt'",
                ));
            }
        }
        other => errs.push(Cause::invalid(child(path, "operator"), other, "not a valid selector operator")),
    }
    let req_key = string(req, "key");
    if fields {
        if req_key != "metadata.name" {
            errs.push(Cause::invalid(child(path, "key"), req_key, "not a valid field selector key"));
        }
    } else {
        qualified_name(req_key, &child(path, "key"), errs);
    }
}

fn node_selector_term(term: &Value, path: &str, errs: &mut Errs) {
    for (i, req) in array(term, "matchExpressions").iter().enumerate() {
        node_selector_requirement(req, &index(&child(path, "matchExpressions"), i), false, errs);
    }
    for (i, req) in array(term, "matchFields").iter().enumerate() {
        node_selector_requirement(req, &index(&child(path, "matchFields"), i), true, errs);
    }
}

fn weight(term: &Value, path: &str, errs: &mut Errs) {
    let w = int(term, "weight").unwrap_or(0);
    if !(1..=100).contains(&w) {
        errs.push(Cause::invalid(child(path, "weight"), w, "must be in the range 1-100"));
    }
}

fn pod_affinity_term(term: &Value, path: &str, errs: &mut Errs) {
    if let Some(selector) = field(term, "labelSelector") {
        label_selector(selector, &child(path, "labelSelector"), errs);
    }
    if let Some(selector) = field(term, "namespaceSelector") {
        label_selector(selector, &child(path, "namespaceSelector"), errs);
    }
    for namespace in array(term, "namespaces") {
        dns_label(&show(namespace), &child(path, "namespace"), errs);
    }
    let topology = string(term, "topologyKey");
    if topology.is_empty() {
        errs.push(required_because(child(path, "topologyKey"), "can not be empty"));
    } else {
        qualified_name(topology, &child(path, "topologyKey"), errs);
    }
}

/// `validateAffinity`.
fn validate_affinity(affinity: Option<&Value>, path: &str, errs: &mut Errs) {
    let Some(affinity) = affinity else { return };
    if let Some(node) = field(affinity, "nodeAffinity") {
        let np = child(path, "nodeAffinity");
        if let Some(required) = field(node, "requiredDuringSchedulingIgnoredDuringExecution") {
            let rp = child(&np, "requiredDuringSchedulingIgnoredDuringExecution");
            let terms = array(required, "nodeSelectorTerms");
            if terms.is_empty() {
                errs.push(required_because(
                    child(&rp, "nodeSelectorTerms"),
                    "must have at least one node selector term",
                ));
            }
            for (i, term) in terms.iter().enumerate() {
                node_selector_term(term, &index(&child(&rp, "nodeSelectorTerms"), i), errs);
            }
        }
        let pp = child(&np, "preferredDuringSchedulingIgnoredDuringExecution");
        for (i, term) in array(node, "preferredDuringSchedulingIgnoredDuringExecution").iter().enumerate() {
            let p = index(&pp, i);
            weight(term, &p, errs);
            node_selector_term(field(term, "preference").unwrap_or(&Value::Null), &child(&p, "preference"), errs);
        }
    }
    for kind in ["podAffinity", "podAntiAffinity"] {
        let Some(pod) = field(affinity, kind) else {
            continue;
        };
        let kp = child(path, kind);
        let rp = child(&kp, "requiredDuringSchedulingIgnoredDuringExecution");
        for (i, term) in array(pod, "requiredDuringSchedulingIgnoredDuringExecution").iter().enumerate() {
            pod_affinity_term(term, &index(&rp, i), errs);
        }
        let pp = child(&kp, "preferredDuringSchedulingIgnoredDuringExecution");
        for (i, term) in array(pod, "preferredDuringSchedulingIgnoredDuringExecution").iter().enumerate() {
            let p = index(&pp, i);
            weight(term, &p, errs);
            pod_affinity_term(
                field(term, "podAffinityTerm").unwrap_or(&Value::Null),
                &child(&p, "podAffinityTerm"),
                errs,
            );
        }
    }
}

/// `validateTopologySpreadConstraints`.
fn validate_topology_spread(constraints: &[Value], path: &str, errs: &mut Errs) {
    let mut seen = HashSet::new();
    for (i, c) in constraints.iter().enumerate() {
        let p = index(path, i);
        let skew = int(c, "maxSkew").unwrap_or(0);
        if skew <= 0 {
            errs.push(Cause::invalid(child(&p, "maxSkew"), skew, "must be greater than zero"));
        }
        let topology = string(c, "topologyKey");
        if topology.is_empty() {
            errs.push(required_because(child(&p, "topologyKey"), "can not be empty"));
        } else {
            qualified_name(topology, &child(&p, "topologyKey"), errs);
        }
        let action = string(c, "whenUnsatisfiable");
        if action != "DoNotSchedule" && action != "ScheduleAnyway" {
            errs.push(Cause::not_supported(
                child(&p, "whenUnsatisfiable"),
                action,
                &["DoNotSchedule", "ScheduleAnyway"],
            ));
        }
        if !seen.insert((topology, action)) {
            errs.push(Cause::duplicate(&p, format!("{{{topology}, {action}}}")));
        }
        if let Some(min_domains) = int(c, "minDomains") {
            if min_domains <= 0 {
                errs.push(Cause::invalid(child(&p, "minDomains"), min_domains, "must be greater than zero"));
            } else if action != "DoNotSchedule" {
                errs.push(Cause::invalid(
                    child(&p, "minDomains"),
                    min_domains,
                    format!("can only use minDomains if whenUnsatisfiable=DoNotSchedule, not {action}"),
                ));
            }
        }
        for name in ["nodeAffinityPolicy", "nodeTaintsPolicy"] {
            if let Some(policy) = opt_string(c, name).filter(|p| *p != "Honor" && *p != "Ignore") {
                errs.push(Cause::not_supported(child(&p, name), policy, &["Honor", "Ignore"]));
            }
        }
        if let Some(selector) = field(c, "labelSelector") {
            label_selector(selector, &child(&p, "labelSelector"), errs);
        }
        for (j, label_key) in array(c, "matchLabelKeys").iter().enumerate() {
            qualified_name(&show(label_key), &index(&child(&p, "matchLabelKeys"), j), errs);
        }
    }
}

/// `validatePodDNSConfig`.
fn validate_dns_config(spec: &Value, path: &str, errs: &mut Errs) {
    let config_path = child(path, "dnsConfig");
    let config = field(spec, "dnsConfig");
    if string(spec, "dnsPolicy") == "None" {
        match config {
            None => {
                errs.push(required_because(&config_path, "must provide `dnsConfig` when `dnsPolicy` is None"));
                return;
            }
            Some(c) if array(c, "nameservers").is_empty() => {
                errs.push(required_because(
                    child(&config_path, "nameservers"),
                    "must provide at least one DNS nameserver when `dnsPolicy` is None",
                ));
                return;
            }
            Some(_) => {}
        }
    }
    let Some(config) = config else { return };
    let nameservers = array(config, "nameservers");
    if nameservers.len() > 3 {
        errs.push(invalid_go(
            child(&config_path, "nameservers"),
            &go_string_slice(nameservers),
            "must not have more than 3 nameservers",
        ));
    }
    for (i, ns) in nameservers.iter().enumerate() {
        ip_address(&show(ns), &index(&child(&config_path, "nameservers"), i), errs);
    }
    let searches = array(config, "searches");
    if searches.len() > 32 {
        errs.push(invalid_go(
            child(&config_path, "searches"),
            &go_string_slice(searches),
            "must not have more than 32 search paths",
        ));
    }
    let joined: Vec<String> = searches.iter().map(show).collect();
    if joined.join(" ").len() > 2048 {
        errs.push(invalid_go(
            child(&config_path, "searches"),
            &go_string_slice(searches),
            "must not have more than 2048 characters (including spaces) in the search list",
        ));
    }
    for (i, search) in joined.iter().enumerate() {
        if search == "." {
            continue;
        }
        dns_subdomain(search.strip_suffix('.').unwrap_or(search), &index(&child(&config_path, "searches"), i), errs);
    }
    for (i, option) in array(config, "options").iter().enumerate() {
        if string(option, "name").is_empty() {
            errs.push(required_because(index(&child(&config_path, "options"), i), "Option.Name must not be empty"));
        }
    }
}

// -------------------------------------------------------------------------------------- update

/// The fields `ValidatePodUpdate` lets change, for its message.
const UPDATABLE_POD_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// `ValidatePodUpdate`: only images, the active deadline, added tolerations and removed
/// scheduling gates may change.
fn validate_pod_update(spec: &Value, old: &Value, errs: &mut Errs) {
    for list in ["containers", "initContainers"] {
        let (new_list, old_list) = (array(spec, list), array(old, list));
        let p = child("spec", list);
        if new_list.len() != old_list.len() {
            errs.push(Cause::forbidden(p, "pod updates may not add or remove containers"));
            return;
        }
        for (i, c) in new_list.iter().enumerate() {
            let image = string(c, "image");
            if image.trim() != image {
                errs.push(Cause::invalid(
                    child(&index(&p, i), "image"),
                    image,
                    "must not have leading or trailing whitespace",
                ));
            }
        }
    }

    match (int(spec, "activeDeadlineSeconds"), int(old, "activeDeadlineSeconds")) {
        (Some(new), old_value) => {
            if !(0..=MAX_INT32).contains(&new) {
                errs.push(Cause::invalid(
                    "spec.activeDeadlineSeconds",
                    new,
                    names::inclusive_range_error(0, MAX_INT32),
                ));
                return;
            }
            if old_value.is_some_and(|o| o < new) {
                errs.push(Cause::invalid(
                    "spec.activeDeadlineSeconds",
                    new,
                    "must be less than or equal to previous value",
                ));
                return;
            }
        }
        (None, Some(_)) => errs.push(Cause::invalid(
            "spec.activeDeadlineSeconds",
            "null",
            "must not update from a positive integer to nil value",
        )),
        (None, None) => {}
    }

    // Tolerations: the old ones stay (their tolerationSeconds may change).
    let new_tolerations = array(spec, "tolerations");
    for old_toleration in array(old, "tolerations") {
        let without_seconds = |t: &Value| {
            let mut t = normalized(t);
            if let Some(map) = t.as_object_mut() {
                map.remove("tolerationSeconds");
                if map.get("operator").and_then(Value::as_str) == Some("Equal") {
                    map.remove("operator");
                }
            }
            t
        };
        let wanted = without_seconds(old_toleration);
        if !new_tolerations.iter().any(|t| without_seconds(t) == wanted) {
            errs.push(Cause::forbidden(
                "spec.tolerations",
                "existing toleration can not be modified except its tolerationSeconds",
            ));
            break;
        }
    }

    // Scheduling gates: only removals.
    let new_gates: Vec<&str> = array(spec, "schedulingGates").iter().map(|g| string(g, "name")).collect();
    let old_gates: Vec<&str> = array(old, "schedulingGates").iter().map(|g| string(g, "name")).collect();
    if new_gates.iter().any(|g| !old_gates.contains(g)) {
        errs.push(Cause::forbidden("spec.schedulingGates", "only deletion is allowed, but found new scheduling gate"));
    }

    if same(Some(spec), Some(old)) {
        return;
    }
    // Everything else must be equal once the mutable fields are copied from the old spec.
    let mut munged = normalized(spec);
    let old_n = normalized(old);
    if let Some(m) = munged.as_object_mut() {
        for list in ["containers", "initContainers"] {
            if let Some(items) = m.get_mut(list).and_then(Value::as_array_mut) {
                for (i, c) in items.iter_mut().enumerate() {
                    let old_image = old_n.get(list).and_then(|l| l.get(i)).and_then(|c| c.get("image")).cloned();
                    if let Some(c) = c.as_object_mut() {
                        match old_image {
                            Some(image) => c.insert("image".into(), image),
                            None => c.remove("image"),
                        };
                    }
                }
            }
        }
        for name in ["activeDeadlineSeconds", "schedulingGates", "tolerations"] {
            match old_n.get(name) {
                Some(v) => m.insert(name.into(), v.clone()),
                None => m.remove(name),
            };
        }
        let old_grace = old_n.get("terminationGracePeriodSeconds").and_then(as_int);
        if old_grace.is_some_and(|g| g < 0) && m.get("terminationGracePeriodSeconds").and_then(as_int) == Some(1) {
            m.insert("terminationGracePeriodSeconds".into(), old_n["terminationGracePeriodSeconds"].clone());
        }
        if !old_gates.is_empty() {
            // Gated pods may gain node selectors and node affinity.
            for name in ["nodeSelector", "affinity"] {
                match old_n.get(name) {
                    Some(v) => m.insert(name.into(), v.clone()),
                    None => m.remove(name),
                };
            }
        }
    }
    let munged = normalized(&munged);
    if munged != old_n {
        errs.push(Cause::forbidden(
            "spec",
            format!(
                "pod updates may not change fields other than {UPDATABLE_POD_FIELDS}\n{}",
                spec_diff(&old_n, &munged)
            ),
        ));
    }
}

/// A short description of what differs between two pod specs, in the spirit of upstream's
/// `cmp.Diff`: one `-`/`+` pair per changed field.
fn spec_diff(old: &Value, new: &Value) -> String {
    let mut lines = Vec::new();
    diff_into("", old, new, &mut lines);
    lines.truncate(20);
    format!("  core.PodSpec{{\n{}\n  }}", lines.join("\n"))
}

fn diff_into(path: &str, old: &Value, new: &Value, lines: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let (x, y) = (a.get(k).unwrap_or(&Value::Null), b.get(k).unwrap_or(&Value::Null));
                if x != y {
                    diff_into(&child(path, k), x, y, lines);
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                if x != y {
                    diff_into(&index(path, i), x, y, lines);
                }
            }
        }
        _ => {
            lines.push(format!("  \t- {path}: {old}"));
            lines.push(format!("  \t+ {path}: {new}"));
        }
    }
}

/// Pod specs of `batch/v1` jobs: `restartPolicy` is `OnFailure` or `Never`.
pub(super) fn job_restart_policy(spec: &Value, path: &str, errs: &mut Errs) {
    let policy = string(spec, "restartPolicy");
    if policy != "OnFailure" && policy != "Never" {
        errs.push(Cause::not_supported(child(path, "restartPolicy"), policy, &["OnFailure", "Never"]));
    }
}
