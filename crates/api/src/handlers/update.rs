//! PUT and PATCH, on objects and on their status and scale subresources: the requested object
//! is built from the stored one under the store lock, then goes through defaults, the Service
//! registry and validation.

use serde_json::{json, Value};

use super::*;
use crate::request::{decode_body, PatchType, Query, Target};
use crate::resources::{ResourceInfo, Subresource};
use crate::services::{self, Allocation};
use crate::status::{ApiError, ApiResult, Cause};
use crate::store::Change;
use crate::{defaults, validation, Api};

impl Api {
    /// PUT an object (or its status or scale).
    pub fn update(&self, t: &Target, body: &[u8], content_type: Option<&str>, q: &Query) -> ApiResult<Reply> {
        let name = t.name.clone().expect("update has a name");
        let dry_run = q.dry_run()?;
        let fv = q.field_validation()?;
        let mut warnings = Vec::new();
        let raw = decode_body(body, content_type)?;
        if t.subresource == Some(Subresource::Scale) {
            let scale = self.check_shape("Scale", raw, fv, &mut warnings)?;
            let updated = self.write_scale(t, &name, dry_run, |_| Ok(scale))?;
            return Ok(Reply::json(200, updated, warnings));
        }
        let new = self.admit_body(t.resource, t.namespace.as_deref(), raw, fv, &mut warnings)?;
        let body_name = meta(&new)["name"].as_str().unwrap_or("");
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if t.subresource.is_none()
            && matches!(t.resource.kind, "Service" | "Endpoints" | "Event" | "Lease")
            && self.store.get(&key(t, &name)).is_none()
        {
            // These kinds may be created by PUT, as in kube-apiserver.
            let created = self.create_object(t.resource, t.ns(), new, dry_run)?;
            return Ok(Reply::json(201, (*created).clone(), warnings));
        }
        let stored = self.write(t, &name, dry_run, |_| Ok(new))?;
        Ok(Reply::json(200, stored, warnings))
    }

    /// PATCH an object (or its status or scale), with any of the four patch types.
    pub fn patch(&self, t: &Target, body: &[u8], content_type: Option<&str>, q: &Query) -> ApiResult<Reply> {
        let name = t.name.clone().expect("patch has a name");
        let dry_run = q.dry_run()?;
        let fv = q.field_validation()?;
        let mut warnings = Vec::new();
        let patch_type = PatchType::from_content_type(content_type)?;
        let patch: Value = match patch_type {
            PatchType::Apply => decode_body(body, Some("application/yaml"))?,
            _ => serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("the patch is not valid JSON: {e}")))?,
        };
        if patch_type == PatchType::Apply {
            if q.get("fieldManager").is_none() {
                return Err(ApiError::invalid(
                    "meta.k8s.io",
                    "PatchOptions",
                    "",
                    vec![Cause {
                        reason: "FieldValueRequired",
                        field: "fieldManager".into(),
                        message: "Required value: is required for apply patch".into(),
                    }],
                ));
            }
            if t.subresource.is_none() && self.store.get(&key(t, &name)).is_none() {
                // Server-side apply of an object that does not exist creates it.
                let obj = self.admit_body(t.resource, t.namespace.as_deref(), patch, fv, &mut warnings)?;
                if meta(&obj)["name"].as_str() != Some(name.as_str()) {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object does not match the name on the URL ({name})"
                    )));
                }
                let created = self.create_object(t.resource, t.ns(), obj, dry_run)?;
                return Ok(Reply::json(201, (*created).clone(), warnings));
            }
        }
        let kind = t.resource.kind;
        let apply = |base: &Value| -> ApiResult<Value> { apply_patch(patch_type, kind, base, &patch) };
        if t.subresource == Some(Subresource::Scale) {
            let updated = self.write_scale(t, &name, dry_run, |scale| {
                let patched = apply_patch(patch_type, "Scale", scale, &patch)?;
                Ok(patched)
            })?;
            return Ok(Reply::json(200, updated, warnings));
        }
        let mut shape_warnings = Vec::new();
        let stored = self.write(t, &name, dry_run, |cur| {
            let patched = apply(cur)?;
            self.check_shape(kind, patched, fv, &mut shape_warnings)
        })?;
        warnings.extend(shape_warnings);
        Ok(Reply::json(200, stored, warnings))
    }

    /// The update pipeline shared by PUT and PATCH: `make_new` builds the requested object from
    /// the stored one, under the store lock.
    fn write<F>(&self, t: &Target, name: &str, dry_run: bool, make_new: F) -> ApiResult<Value>
    where
        F: FnOnce(&Value) -> ApiResult<Value>,
    {
        let res = t.resource;
        let mut taken = Allocation::default();
        let mut freed = Allocation::default();
        let result = self.store.mutate(&key(t, name), dry_run, |cur| {
            let cur = cur.ok_or_else(|| not_found(res, name))?;
            let requested = make_new(cur)?;
            let cur_rv = meta(cur)["resourceVersion"].as_str().unwrap_or("");
            if let Some(rv) = meta(&requested)["resourceVersion"].as_str().filter(|rv| !rv.is_empty()) {
                if rv != cur_rv {
                    return Err(ApiError::conflict(
                        res.group,
                        res.plural,
                        name,
                        "the object has been modified; please apply your changes to the latest version and try again",
                    ));
                }
            }
            let mut new = merge_for_update(res, t.subresource, cur, requested);
            defaults::apply_defaults(res.kind, &mut new);
            if res.kind == "Service" && t.subresource.is_none() {
                let (t_, f_) = services::allocate_on_update(&self.services, cur, &mut new)?;
                taken = t_;
                freed = f_;
            }
            if GENERATION_KINDS.contains(&res.kind) {
                let gen = meta(cur)["generation"].as_i64().unwrap_or(1);
                let changed = strip_meta_status(cur) != strip_meta_status(&new);
                meta_mut(&mut new).insert("generation".into(), json!(if changed { gen + 1 } else { gen }));
            }
            let causes = validation::validate(res.kind, &new, Some(cur));
            if !causes.is_empty() {
                return Err(ApiError::invalid(res.group, res.kind, name, causes));
            }
            if new == **cur {
                return Ok(Change::Unchanged);
            }
            if finalized(res, &new) {
                freed = services_held(res, &new);
                return Ok(Change::Delete);
            }
            Ok(Change::Put(new))
        });
        match result {
            Ok(c) => {
                if dry_run {
                    taken.release(&self.services);
                } else {
                    freed.release(&self.services);
                }
                Ok(c.object.map(|o| (*o).clone()).unwrap_or(Value::Null))
            }
            Err(e) => {
                taken.release(&self.services);
                Err(e)
            }
        }
    }

    /// Writes through the scale subresource: `change` turns the current Scale into the
    /// requested one, whose spec.replicas is written to the object.
    fn write_scale<F>(&self, t: &Target, name: &str, dry_run: bool, change: F) -> ApiResult<Value>
    where
        F: FnOnce(&Value) -> ApiResult<Value>,
    {
        let res = t.resource;
        let stored = self.write(t, name, dry_run, |cur| {
            let scale = change(&scale_view(res, cur))?;
            let replicas = scale["spec"]["replicas"].as_i64().unwrap_or(0);
            if replicas < 0 {
                return Err(ApiError::invalid(
                    "autoscaling",
                    "Scale",
                    name,
                    vec![Cause::invalid("spec.replicas", replicas, "must be greater than or equal to 0")],
                ));
            }
            let mut new = cur.clone();
            if let Some(rv) = meta(&scale)["resourceVersion"].as_str().filter(|rv| !rv.is_empty()) {
                meta_mut(&mut new).insert("resourceVersion".into(), json!(rv));
            }
            new["spec"]["replicas"] = json!(replicas);
            Ok(new)
        })?;
        Ok(scale_view(res, &stored))
    }
}

/// Builds the object an update stores from the stored one and the requested one: system
/// metadata is kept; the main resource does not change status, the status subresource
/// changes nothing but status.
fn merge_for_update(res: &ResourceInfo, sub: Option<Subresource>, cur: &Value, requested: Value) -> Value {
    let mut new = match sub {
        Some(Subresource::Status) => {
            let mut n = cur.clone();
            n["status"] = requested.get("status").cloned().unwrap_or(json!({}));
            n
        }
        _ => {
            let mut n = requested;
            if res.has(Subresource::Status) {
                match cur.get("status") {
                    Some(s) => n["status"] = s.clone(),
                    None => {
                        if let Some(m) = n.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
            n
        }
    };
    let cur_meta = meta(cur).clone();
    let m = meta_mut(&mut new);
    for f in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "namespace",
        "name",
        "generation",
        "resourceVersion",
    ] {
        match cur_meta.get(f) {
            Some(v) => {
                m.insert(f.into(), v.clone());
            }
            None => {
                m.remove(f);
            }
        }
    }
    m.remove("managedFields");
    m.remove("selfLink");
    new
}

fn strip_meta_status(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    o
}

/// Whether an update removed the last finalizer of an object being deleted, which deletes it.
fn finalized(res: &ResourceInfo, obj: &Value) -> bool {
    let m = meta(obj);
    if !m["deletionTimestamp"].is_string() || m["finalizers"].as_array().is_some_and(|f| !f.is_empty()) {
        return false;
    }
    if res.kind == "Namespace" {
        return false; // namespaces finish through their spec.finalizers
    }
    // Pods in their grace period are deleted by the node agent, not by dropping finalizers.
    !(res.kind == "Pod" && m["deletionGracePeriodSeconds"].as_i64().unwrap_or(0) > 0)
}

pub(super) fn services_held(res: &ResourceInfo, obj: &Value) -> Allocation {
    if res.kind == "Service" {
        services::held_by(obj)
    } else {
        Allocation::default()
    }
}

/// The `autoscaling/v1` Scale of a Deployment or ReplicaSet.
pub fn scale_view(res: &ResourceInfo, obj: &Value) -> Value {
    let m = meta(obj);
    let selector = crate::table::format_label_selector(obj["spec"].get("selector"));
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
            "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"],
        },
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(if res.kind == "DaemonSet" { 0 } else { 1 })},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
    })
}

/// Applies a patch of any type to `base`.
fn apply_patch(patch_type: PatchType, kind: &str, base: &Value, patch: &Value) -> ApiResult<Value> {
    let mut doc = base.clone();
    match patch_type {
        PatchType::Json => {
            let p: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("the JSON patch is not a list of operations: {e}")))?;
            json_patch::patch(&mut doc, &p).map_err(|e| ApiError::Invalid {
                group: String::new(),
                kind: kind.into(),
                name: String::new(),
                message: format!("the JSON patch could not be applied: {e}"),
                causes: vec![],
            })?;
        }
        PatchType::Merge => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            json_patch::merge(&mut doc, patch);
        }
        PatchType::Strategic => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("a strategic merge patch must be a JSON object"));
            }
            doc = podnet_meta::smp::strategic_merge_patch(base, patch, kind)
                .map_err(|e| ApiError::bad_request(format!("the strategic merge patch could not be applied: {e}")))?;
        }
        PatchType::Apply => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("an apply configuration must be an object"));
            }
            doc = podnet_meta::smp::apply_merge(base, patch, kind)
                .map_err(|e| ApiError::bad_request(format!("the apply configuration could not be merged: {e}")))?;
        }
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_kept_on_main_updates_and_only_status_changes_on_status_updates() {
        let res = crate::resources::by_kind("apps", "Deployment").unwrap();
        let cur = json!({"metadata": {"name": "d", "uid": "u1", "resourceVersion": "5"}, "spec": {"replicas": 1}, "status": {"replicas": 1}});
        let req =
            json!({"metadata": {"name": "d", "uid": "other"}, "spec": {"replicas": 2}, "status": {"replicas": 9}});
        let n = merge_for_update(res, None, &cur, req.clone());
        assert_eq!((n["spec"]["replicas"].as_i64(), n["status"]["replicas"].as_i64()), (Some(2), Some(1)));
        assert_eq!(n["metadata"]["uid"], "u1");
        let s = merge_for_update(res, Some(Subresource::Status), &cur, req);
        assert_eq!((s["spec"]["replicas"].as_i64(), s["status"]["replicas"].as_i64()), (Some(1), Some(9)));
    }
}
