//! A container's environment as kubelet builds it: service links (`<SVC>_SERVICE_HOST`…, and
//! always the `kubernetes` Service's, so in-cluster clients find the API), `envFrom`, then `env`
//! with `valueFrom` (fieldRef, configMapKeyRef, secretKeyRef, resourceFieldRef) and `$(VAR)`
//! references; and `$(VAR)` expansion in command and args. Pure: the agent fetches the
//! ConfigMaps, Secrets and Services beforehand.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, Service};

/// What `valueFrom` and `envFrom` may read, fetched by the agent: name → key → value.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
    pub secrets: BTreeMap<String, BTreeMap<String, String>>,
    /// Services of the pod's namespace (for service links) and the `kubernetes` Service.
    pub services: Vec<Service>,
    /// The node's address (status.hostIP).
    pub host_ip: String,
    /// The pod's addresses (status.podIP, status.podIPs).
    pub pod_ips: Vec<String>,
}

/// Why a container cannot start yet: kubelet's CreateContainerConfigError.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The ConfigMaps and Secrets the pod's containers refer to (optional ones included).
pub fn referenced(pod: &Pod) -> (Vec<String>, Vec<String>) {
    let (mut cms, mut secrets) = (Vec::new(), Vec::new());
    let spec = pod.spec.as_ref();
    let containers = spec.iter().flat_map(|s| s.init_containers.iter().flatten().chain(&s.containers));
    for c in containers {
        for f in c.env_from.iter().flatten() {
            cms.extend(f.config_map_ref.as_ref().map(|r| r.name.clone()));
            secrets.extend(f.secret_ref.as_ref().map(|r| r.name.clone()));
        }
        for e in c.env.iter().flatten() {
            let Some(from) = &e.value_from else { continue };
            cms.extend(from.config_map_key_ref.as_ref().map(|r| r.name.clone()));
            secrets.extend(from.secret_key_ref.as_ref().map(|r| r.name.clone()));
        }
    }
    cms.sort();
    cms.dedup();
    secrets.sort();
    secrets.dedup();
    (cms, secrets)
}

/// Docker-link style variables of one Service (`FOO_SERVICE_HOST`, `FOO_PORT_80_TCP_ADDR`…).
fn service_link_vars(svc: &Service, out: &mut Vec<(String, String)>) {
    let Some(spec) = &svc.spec else { return };
    let Some(ip) = spec.cluster_ip.as_deref().filter(|ip| !ip.is_empty() && *ip != "None") else { return };
    let name = svc.metadata.name.as_deref().unwrap_or_default().to_uppercase().replace('-', "_");
    let ports = spec.ports.as_deref().unwrap_or_default();
    let Some(first) = ports.first() else { return };
    out.push((format!("{name}_SERVICE_HOST"), ip.to_string()));
    out.push((format!("{name}_SERVICE_PORT"), first.port.to_string()));
    for p in ports {
        if let Some(pname) = &p.name {
            out.push((format!("{name}_SERVICE_PORT_{}", pname.to_uppercase().replace('-', "_")), p.port.to_string()));
        }
    }
    let proto = |p: &k8s_openapi::api::core::v1::ServicePort| p.protocol.clone().unwrap_or_else(|| "TCP".into());
    out.push((format!("{name}_PORT"), format!("{}://{ip}:{}", proto(first).to_lowercase(), first.port)));
    for p in ports {
        let (pr, port) = (proto(p), p.port);
        let base = format!("{name}_PORT_{port}_{pr}");
        out.push((base.clone(), format!("{}://{ip}:{port}", pr.to_lowercase())));
        out.push((format!("{base}_PROTO"), pr.to_lowercase()));
        out.push((format!("{base}_PORT"), port.to_string()));
        out.push((format!("{base}_ADDR"), ip.to_string()));
    }
}

/// Expands `$(VAR)` from `vars` (the later definition of a name wins), as kubelet does.
pub fn expand(input: &str, vars: &[(String, String)]) -> String {
    podnet_images::expand(input, |name| vars.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
}

/// The value of a `fieldRef` path.
fn field_ref(pod: &Pod, path: &str, src: &Sources) -> Result<String, ConfigError> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let subscript = |prefix: &str| path.strip_prefix(prefix).and_then(|r| r.strip_suffix("']"));
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()).unwrap_or_default(),
        "status.hostIP" => src.host_ip.clone(),
        "status.hostIPs" => src.host_ip.clone(),
        "status.podIP" => src.pod_ips.first().cloned().unwrap_or_default(),
        "status.podIPs" => src.pod_ips.join(","),
        _ => {
            if let Some(key) = subscript("metadata.labels['") {
                meta.labels.as_ref().and_then(|l| l.get(key).cloned()).unwrap_or_default()
            } else if let Some(key) = subscript("metadata.annotations['") {
                meta.annotations.as_ref().and_then(|l| l.get(key).cloned()).unwrap_or_default()
            } else {
                return Err(ConfigError(format!("unsupported fieldRef path {path:?}")));
            }
        }
    })
}

/// The environment of `container` in `pod`, in kubelet's order (later entries win).
pub fn container_env(pod: &Pod, container: &Container, src: &Sources) -> Result<Vec<(String, String)>, ConfigError> {
    let mut vars: Vec<(String, String)> = Vec::new();
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let links = pod.spec.as_ref().and_then(|s| s.enable_service_links).unwrap_or(true);
    for svc in &src.services {
        let svc_ns = svc.metadata.namespace.as_deref().unwrap_or("default");
        let master = svc_ns == "default" && svc.metadata.name.as_deref() == Some("kubernetes");
        if master || (links && svc_ns == namespace) {
            service_link_vars(svc, &mut vars);
        }
    }
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (data, optional, what, name) = if let Some(r) = &from.config_map_ref {
            (src.config_maps.get(&r.name), r.optional.unwrap_or(false), "configmap", &r.name)
        } else if let Some(r) = &from.secret_ref {
            (src.secrets.get(&r.name), r.optional.unwrap_or(false), "secret", &r.name)
        } else {
            continue;
        };
        match data {
            Some(d) => vars.extend(d.iter().map(|(k, v)| (format!("{prefix}{k}"), v.clone()))),
            None if optional => {}
            None => return Err(ConfigError(format!("{what} {name:?} not found"))),
        }
    }
    for e in container.env.iter().flatten() {
        let value = match &e.value_from {
            None => expand(e.value.as_deref().unwrap_or_default(), &vars),
            Some(from) => {
                if let Some(f) = &from.field_ref {
                    field_ref(pod, &f.field_path, src)?
                } else if let Some(r) = &from.config_map_key_ref {
                    match src.config_maps.get(&r.name).and_then(|d| d.get(&r.key)) {
                        Some(v) => v.clone(),
                        None if r.optional.unwrap_or(false) => continue,
                        None => {
                            return Err(ConfigError(format!(
                                "couldn't find key {} in ConfigMap {namespace}/{}",
                                r.key, r.name
                            )))
                        }
                    }
                } else if let Some(r) = &from.secret_key_ref {
                    match src.secrets.get(&r.name).and_then(|d| d.get(&r.key)) {
                        Some(v) => v.clone(),
                        None if r.optional.unwrap_or(false) => continue,
                        None => {
                            return Err(ConfigError(format!(
                                "couldn't find key {} in Secret {namespace}/{}",
                                r.key, r.name
                            )))
                        }
                    }
                } else if let Some(r) = &from.resource_field_ref {
                    resource_field(container, &r.resource)
                } else {
                    String::new()
                }
            }
        };
        vars.push((e.name.clone(), value));
    }
    // Later definitions win, each name once, in the order of first appearance.
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in vars {
        match out.iter_mut().find(|(name, _)| *name == k) {
            Some(slot) => slot.1 = v,
            None => out.push((k, v)),
        }
    }
    Ok(out)
}

/// A `resourceFieldRef` value: the container's limit (or request) in the unit kubelet uses
/// (whole CPUs rounded up, bytes); without a limit, the node's capacity is not known here, so 0.
fn resource_field(container: &Container, resource: &str) -> String {
    let res = container.resources.as_ref();
    let (kind, name) = resource.split_once('.').unwrap_or(("limits", resource));
    let map =
        if kind == "requests" { res.and_then(|r| r.requests.as_ref()) } else { res.and_then(|r| r.limits.as_ref()) };
    let q = map.and_then(|m| m.get(name)).map(|q| q.0.clone()).unwrap_or_else(|| "0".into());
    if name == "cpu" {
        let cores = match q.strip_suffix('m') {
            Some(m) => m.parse::<f64>().unwrap_or(0.0) / 1000.0,
            None => q.parse::<f64>().unwrap_or(0.0),
        };
        return (cores.ceil() as u64).to_string();
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "shop", "uid": "u-1", "labels": {"app": "web"}},
            "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "busybox",
                "env": [
                    {"name": "MY_POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                    {"name": "GREETING", "value": "hi $(MY_POD) $$(MY_POD) $(NOPE)"},
                    {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "color"}}}
                ],
                "envFrom": [{"prefix": "CFG_", "configMapRef": {"name": "cfg"}}]}]}
        }))
        .unwrap()
    }

    fn sources() -> Sources {
        let svc = |ns: &str, name: &str, ip: &str, port: i32| -> Service {
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns},
                "spec": {"clusterIP": ip, "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}}))
            .unwrap()
        };
        Sources {
            config_maps: [("cfg".to_string(), [("color".to_string(), "blue".to_string())].into())].into(),
            secrets: BTreeMap::new(),
            services: vec![
                svc("default", "kubernetes", "10.96.0.1", 443),
                svc("shop", "my-web", "10.96.3.4", 80),
                svc("other", "db", "10.96.9.9", 5432),
            ],
            host_ip: "172.20.0.11".into(),
            pod_ips: vec!["10.244.1.7".into()],
        }
    }

    #[test]
    fn builds_kubelets_environment() {
        let p = pod();
        let env = container_env(&p, &p.spec.as_ref().unwrap().containers[0], &sources()).unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
        assert_eq!(get("KUBERNETES_SERVICE_PORT"), Some("443"));
        assert_eq!(get("KUBERNETES_SERVICE_PORT_HTTPS"), Some("443"));
        assert_eq!(get("KUBERNETES_PORT_443_TCP_ADDR"), Some("10.96.0.1"));
        assert_eq!(get("MY_WEB_SERVICE_HOST"), Some("10.96.3.4"));
        assert_eq!(get("MY_WEB_PORT"), Some("tcp://10.96.3.4:80"));
        assert_eq!(get("DB_SERVICE_HOST"), None, "services of other namespaces are not linked");
        assert_eq!(get("MY_POD"), Some("p"));
        assert_eq!(get("MY_IP"), Some("10.244.1.7"));
        assert_eq!(get("APP"), Some("web"));
        assert_eq!(get("GREETING"), Some("hi p $(MY_POD) $(NOPE)"));
        assert_eq!(get("COLOR"), Some("blue"));
        assert_eq!(get("CFG_color"), Some("blue"));
    }

    #[test]
    fn a_missing_config_map_is_a_config_error() {
        let p = pod();
        let mut src = sources();
        src.config_maps.clear();
        let err = container_env(&p, &p.spec.as_ref().unwrap().containers[0], &src).unwrap_err();
        assert_eq!(err.0, "configmap \"cfg\" not found");
        assert_eq!(referenced(&p), (vec!["cfg".to_string()], vec![]));
    }

    #[test]
    fn expansion_rules() {
        let vars = vec![("A".to_string(), "1".to_string())];
        assert_eq!(expand("$(A)-$$(A)-$(B)-$A-$(", &vars), "1-$(A)-$(B)-$A-$(");
    }
}
