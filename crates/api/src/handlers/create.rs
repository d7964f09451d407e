//! POST: creating objects (system metadata, status reset, defaults, the Service registry,
//! validation) and binding pods to nodes.

use std::sync::Arc;

use serde_json::{json, Value};

use super::*;
use crate::request::{decode_body, FieldValidation, Query, Target};
use crate::resources::{by_kind, ResourceInfo, Subresource};
use crate::services::{self, Allocation};
use crate::status::{ApiError, ApiResult, Cause};
use crate::store::{Change, ObjectKey};
use crate::{defaults, typed, validation, Api};

impl Api {
    /// POST to a collection, or to `pods/<name>/binding`.
    pub fn create(&self, t: &Target, body: &[u8], content_type: Option<&str>, q: &Query) -> ApiResult<Reply> {
        let dry_run = q.dry_run()?;
        let fv = q.field_validation()?;
        let mut warnings = Vec::new();
        let raw = decode_body(body, content_type)?;
        if t.subresource == Some(Subresource::Binding) {
            return self.bind(t, raw, dry_run);
        }
        if t.name.is_some() {
            return Err(ApiError::MethodNotAllowed {
                message: "the server does not allow this method on the requested resource".into(),
            });
        }
        let obj = self.admit_body(t.resource, t.namespace.as_deref(), raw, fv, &mut warnings)?;
        let created = self.create_object(t.resource, t.ns(), obj, dry_run)?;
        Ok(Reply::json(201, (*created).clone(), warnings))
    }

    /// Checks a decoded request body: an object of the resource's kind (apiVersion and kind
    /// filled in when missing), in the URL's namespace, of the right shape.
    pub(super) fn admit_body(
        &self,
        res: &ResourceInfo,
        url_ns: Option<&str>,
        mut obj: Value,
        fv: FieldValidation,
        warnings: &mut Vec<String>,
    ) -> ApiResult<Value> {
        let Some(map) = obj.as_object_mut() else {
            return Err(ApiError::bad_request(format!("the body must be a JSON object of kind {}", res.kind)));
        };
        let api_version = res.api_version();
        match map.get("apiVersion").and_then(Value::as_str) {
            None | Some("") => {
                map.insert("apiVersion".into(), json!(api_version));
            }
            Some(v) if v == api_version => {}
            Some(v) => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({v}) does not match the expected API version ({api_version})"
                )))
            }
        }
        match map.get("kind").and_then(Value::as_str) {
            None | Some("") => {
                map.insert("kind".into(), json!(res.kind));
            }
            Some(k) if k == res.kind => {}
            Some(k) => {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind ({}) of {}",
                    res.kind, res.plural
                )))
            }
        }
        if let (Some(url_ns), Some(body_ns)) =
            (url_ns, map.get("metadata").and_then(|m| m.get("namespace")).and_then(Value::as_str))
        {
            if !body_ns.is_empty() && body_ns != url_ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
        self.check_shape(res.kind, obj, fv, warnings)
    }

    /// Decodes an object into its k8s-openapi type and back; unknown fields are dropped, and
    /// rejected under `fieldValidation=Strict`.
    pub(super) fn check_shape(
        &self,
        kind: &str,
        obj: Value,
        fv: FieldValidation,
        warnings: &mut Vec<String>,
    ) -> ApiResult<Value> {
        let normalized = typed::normalize(kind, &obj).map_err(|e| {
            ApiError::bad_request(format!(
                "{kind} in version \"{}\" cannot be handled as a {kind}: {e}",
                version_of(&obj)
            ))
        })?;
        if fv != FieldValidation::Ignore {
            let unknown = typed::unknown_fields(&obj, &normalized);
            if !unknown.is_empty() {
                let msgs: Vec<String> = unknown.iter().map(|f| format!("unknown field \"{f}\"")).collect();
                if fv == FieldValidation::Strict {
                    return Err(ApiError::bad_request(format!("strict decoding error: {}", msgs.join(", "))));
                }
                warnings.extend(msgs);
            }
        }
        Ok(normalized)
    }

    /// Creates an object: the part of POST after the body is decoded, also used by server-side
    /// apply, `podnet server`'s bootstrap and create-on-update.
    pub fn create_object(
        &self,
        res: &'static ResourceInfo,
        ns: &str,
        mut obj: Value,
        dry_run: bool,
    ) -> ApiResult<Arc<Value>> {
        let m = meta_mut(&mut obj);
        let mut name = m.get("name").and_then(Value::as_str).unwrap_or("").to_string();
        if name.is_empty() {
            match m.get("generateName").and_then(Value::as_str).filter(|g| !g.is_empty()) {
                Some(prefix) => {
                    // Upstream truncates the prefix so that the name stays within 63 characters.
                    let prefix: String = prefix.chars().take(58).collect();
                    name = format!("{prefix}{}", random_suffix());
                }
                None => {
                    return Err(ApiError::invalid(
                        res.group,
                        res.kind,
                        "",
                        vec![Cause {
                            reason: "FieldValueRequired",
                            field: "metadata.name".into(),
                            message: "Required value: name or generateName is required".into(),
                        }],
                    ))
                }
            }
            m.insert("name".into(), json!(name));
        }
        if res.namespaced {
            m.insert("namespace".into(), json!(ns));
        } else {
            m.remove("namespace");
        }
        for f in ["resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink", "managedFields"] {
            m.remove(f);
        }
        m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        m.insert("creationTimestamp".into(), json!(now_rfc3339()));
        if GENERATION_KINDS.contains(&res.kind) {
            m.insert("generation".into(), json!(1));
        } else {
            m.remove("generation");
        }
        if res.namespaced {
            self.check_namespace_open(ns)?;
        }
        let key = ObjectKey {
            resource: res,
            namespace: if res.namespaced { ns.into() } else { String::new() },
            name: name.clone(),
        };
        let exists =
            || ApiError::AlreadyExists { group: res.group.into(), kind: res.plural.into(), name: name.clone() };
        // Checked again under the store lock; checking first keeps a duplicate create from
        // being reported as an allocation conflict.
        if self.store.get(&key).is_some() {
            return Err(exists());
        }
        prepare_for_create(res.kind, &mut obj);
        if res.kind == "Ingress" {
            self.default_ingress_class(&mut obj, &name)?;
        }
        defaults::apply_defaults(res.kind, &mut obj);

        let mut allocation = Allocation::default();
        if res.kind == "Service" {
            allocation = services::allocate_on_create(&self.services, &mut obj)?;
        }
        let causes = validation::validate(res.kind, &obj, None);
        let result = if !causes.is_empty() {
            Err(ApiError::invalid(res.group, res.kind, &name, causes))
        } else {
            self.store.mutate(&key, dry_run, |cur| match cur {
                Some(_) => Err(exists()),
                None => Ok(Change::Put(obj)),
            })
        };
        match result {
            Ok(c) if !dry_run => Ok(c.object.expect("created")),
            Ok(c) => {
                allocation.release(&self.services);
                Ok(c.object.expect("created"))
            }
            Err(e) => {
                allocation.release(&self.services);
                Err(e)
            }
        }
    }

    fn check_namespace_open(&self, ns: &str) -> ApiResult<()> {
        let nsres = by_kind("", "Namespace").expect("namespaces are served");
        let key = ObjectKey { resource: nsres, namespace: String::new(), name: ns.into() };
        match self.store.get(&key) {
            None => Err(ApiError::NotFound { group: String::new(), kind: "namespaces".into(), name: ns.into() }),
            Some(n) if n["metadata"]["deletionTimestamp"].is_string() || n["status"]["phase"] == "Terminating" => {
                Err(ApiError::Forbidden {
                    group: String::new(),
                    kind: "namespaces".into(),
                    name: ns.into(),
                    message: format!("unable to create new content in namespace {ns} because it is being terminated"),
                })
            }
            Some(_) => Ok(()),
        }
    }

    /// POST pods/<name>/binding: assigns an unscheduled pod to a node.
    fn bind(&self, t: &Target, binding: Value, dry_run: bool) -> ApiResult<Reply> {
        let name = t.name.as_deref().expect("binding has a pod name");
        let node = binding["target"]["name"].as_str().unwrap_or("").to_string();
        if node.is_empty() {
            return Err(ApiError::invalid("", "Binding", name, vec![Cause::required("target.name")]));
        }
        self.store.mutate(&key(t, name), dry_run, |cur| {
            let cur = cur.ok_or_else(|| not_found(t.resource, name))?;
            if cur["metadata"]["deletionTimestamp"].is_string() {
                return Err(ApiError::conflict("", "pods", name, "pod is being deleted, cannot be assigned to a host"));
            }
            if let Some(existing) = cur["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
                return Err(ApiError::conflict(
                    "",
                    "pods",
                    name,
                    &format!("pod {name} is already assigned to node \"{existing}\""),
                ));
            }
            let mut pod = (**cur).clone();
            pod["spec"]["nodeName"] = json!(node);
            let conds = pod["status"]["conditions"].as_array().cloned().unwrap_or_default();
            let mut conds: Vec<Value> = conds.into_iter().filter(|c| c["type"] != "PodScheduled").collect();
            conds.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now_rfc3339()}));
            pod["status"]["conditions"] = json!(conds);
            Ok(Change::Put(pod))
        })?;
        Ok(Reply::json(
            201,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
            vec![],
        ))
    }
}

fn version_of(obj: &Value) -> String {
    let av = obj["apiVersion"].as_str().unwrap_or("");
    crate::resources::split_api_version(av).1.to_string()
}

/// Status a new object may not bring with it, as each kind's create strategy resets it.
impl Api {
    /// The DefaultIngressClass admission plugin: an Ingress created without a class (neither
    /// `spec.ingressClassName` nor the deprecated `kubernetes.io/ingress.class` annotation) gets
    /// the IngressClass marked `ingressclass.kubernetes.io/is-default-class: "true"`; with more
    /// than one such class the create is forbidden, as upstream.
    fn default_ingress_class(&self, obj: &mut Value, name: &str) -> ApiResult<()> {
        let has_class = obj.pointer("/spec/ingressClassName").is_some_and(|c| !c.is_null())
            || obj.pointer("/metadata/annotations/kubernetes.io~1ingress.class").is_some();
        if has_class {
            return Ok(());
        }
        let Some(classes) = by_kind("networking.k8s.io", "IngressClass") else { return Ok(()) };
        let defaults: Vec<String> = self
            .store
            .list(classes, None)
            .0
            .iter()
            .filter(|c| {
                c.pointer("/metadata/annotations/ingressclass.kubernetes.io~1is-default-class").and_then(Value::as_str)
                    == Some("true")
            })
            .filter_map(|c| c.pointer("/metadata/name").and_then(Value::as_str).map(str::to_string))
            .collect();
        match defaults.as_slice() {
            [] => Ok(()),
            [class] => {
                if let Some(spec) = obj.as_object_mut().map(|m| m.entry("spec").or_insert_with(|| json!({}))) {
                    if let Some(spec) = spec.as_object_mut() {
                        spec.insert("ingressClassName".into(), json!(class));
                    }
                }
                Ok(())
            }
            many => Err(ApiError::Forbidden {
                group: "networking.k8s.io".into(),
                kind: "ingresses".into(),
                name: name.into(),
                message: format!("{} default IngressClasses were found, only 1 allowed", many.len()),
            }),
        }
    }
}

fn prepare_for_create(kind: &str, obj: &mut Value) {
    let Some(map) = obj.as_object_mut() else { return };
    match kind {
        "Pod" => {
            let qos = pod_qos_class(map.get("spec").unwrap_or(&Value::Null));
            map.insert("status".into(), json!({"phase": "Pending", "qosClass": qos}));
        }
        "Service" => {
            map.insert("status".into(), json!({"loadBalancer": {}}));
        }
        // The counters kube-apiserver always writes (they are not omitempty), so that objects
        // read back pass the schemas' `required` lists.
        "Deployment" => {
            map.insert("status".into(), json!({}));
        }
        "ReplicaSet" | "ReplicationController" => {
            map.insert("status".into(), json!({"replicas": 0}));
        }
        "DaemonSet" => {
            map.insert(
                "status".into(),
                json!({"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0, "numberReady": 0}),
            );
        }
        "Ingress" => {
            map.insert("status".into(), json!({"loadBalancer": {}}));
        }
        "Namespace" => {
            map.insert("status".into(), json!({"phase": "Active"}));
        }
        _ => {}
    }
}

/// The QoS class of a pod spec: Guaranteed, Burstable or BestEffort.
fn pod_qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> =
        ["containers", "initContainers"].iter().flat_map(|k| spec[*k].as_array().into_iter().flatten()).collect();
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in &containers {
        let req = &c["resources"]["requests"];
        let lim = &c["resources"]["limits"];
        for r in ["cpu", "memory"] {
            if req[r].is_string() || lim[r].is_string() {
                any = true;
            }
            let l = lim[r].as_str();
            let q = req[r].as_str().or(l);
            if l.is_none() || q != l {
                guaranteed = false;
            }
        }
    }
    if guaranteed {
        "Guaranteed"
    } else if any {
        "Burstable"
    } else {
        "BestEffort"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos_classes() {
        assert_eq!(pod_qos_class(&json!({"containers": [{"name": "a"}]})), "BestEffort");
        assert_eq!(
            pod_qos_class(&json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]})),
            "Guaranteed"
        );
        assert_eq!(pod_qos_class(&json!({"containers": [{"resources": {"requests": {"cpu": "1"}}}]})), "Burstable");
    }
}
