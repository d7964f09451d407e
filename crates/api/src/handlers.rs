//! The verbs: get, list, create, update, patch, delete and deletecollection on every resource,
//! with the object lifecycle kube-apiserver gives them — system metadata, defaults, validation,
//! the status and scale subresources, pod binding and graceful deletion, finalizers, namespace
//! termination and the Service registry. Watch lives in [`crate::watch`].
//!
//! Every write goes through one pipeline: decode → shape check ([`crate::typed`]) → defaults →
//! registry hooks → validation → a [`Store::mutate`] whose closure checks preconditions against
//! the stored object under the store lock.

use std::sync::Arc;

use chrono::{SecondsFormat, Utc};
use podnet_meta::{fields::FieldSelector, labels::Selector};
use rand::Rng;
use serde_json::{json, Map, Value};

use crate::request::{decode_body, FieldValidation, PatchType, Query, Representation, Target};
use crate::resources::{by_kind, ResourceInfo, Subresource, RESOURCES};
use crate::services::{self, Allocation};
use crate::status::{success_status, ApiError, ApiResult, Cause};
use crate::store::{Change, ObjectKey};
use crate::table::{self, IncludeObject, TableMeta};
use crate::{defaults, typed, validation, Api};

/// Kinds whose `metadata.generation` counts changes of their spec.
const GENERATION_KINDS: &[&str] =
    &["Deployment", "ReplicaSet", "ReplicationController", "DaemonSet", "Ingress", "IngressClass", "NetworkPolicy"];

/// Namespaces that exist from the start and may not be deleted.
pub const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// A successful answer: a status code, a JSON body and any `Warning` headers.
pub struct Reply {
    pub code: u16,
    pub body: ReplyBody,
    pub warnings: Vec<String>,
}

pub enum ReplyBody {
    Json(Value),
    /// Pre-encoded JSON (large lists are written straight into bytes).
    Bytes(Vec<u8>),
}

impl Reply {
    fn json(code: u16, body: Value, warnings: Vec<String>) -> Reply {
        Reply { code, body: ReplyBody::Json(body), warnings }
    }
}

/// RFC 3339 time with seconds, as Kubernetes writes `metav1.Time`.
pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn meta(obj: &Value) -> &Value {
    &obj["metadata"]
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    obj["metadata"].as_object_mut().expect("metadata is an object")
}

fn not_found(res: &ResourceInfo, name: &str) -> ApiError {
    ApiError::NotFound { group: res.group.into(), kind: res.plural.into(), name: name.into() }
}

fn key(t: &Target, name: &str) -> ObjectKey {
    ObjectKey { resource: t.resource, namespace: t.ns().to_string(), name: name.to_string() }
}

/// The random suffix of generated names: 5 characters from the alphabet upstream uses (no
/// vowels, no look-alike digits).
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

impl Api {
    // ---------------------------------------------------------------- reads

    pub fn get(&self, t: &Target, q: &Query, repr: Representation) -> ApiResult<Reply> {
        let name = t.name.as_deref().expect("get has a name");
        let obj = self.store.get(&key(t, name)).ok_or_else(|| not_found(t.resource, name))?;
        if t.subresource == Some(Subresource::Scale) {
            return Ok(Reply::json(200, scale_view(t.resource, &obj), vec![]));
        }
        if repr == Representation::Table {
            let rv = meta(&obj)["resourceVersion"].as_str().unwrap_or("");
            let include = include_object(q)?;
            return Ok(Reply::json(200, table::table(t.resource.kind, &[&obj], rv, include, Utc::now()), vec![]));
        }
        Ok(Reply::json(200, (*obj).clone(), vec![]))
    }

    pub fn list(&self, t: &Target, q: &Query, repr: Representation) -> ApiResult<Reply> {
        let filter = ObjectFilter::from_query(t.resource, q)?;
        let (items, rev) = self.store.list(t.resource, t.namespace.as_deref());
        let mut items: Vec<Arc<Value>> = items.into_iter().filter(|o| filter.matches(o)).collect();

        // Pagination: `continue` holds the revision of the first page and the last key sent.
        let mut list_rev = rev;
        if let Some(token) = q.get("continue") {
            let (crev, after) = decode_continue(token)?;
            if crev < self.store.compacted_revision() {
                return Err(ApiError::Expired {
                    message: "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.".into(),
                });
            }
            list_rev = crev;
            items.retain(|o| object_sort_key(o) > after);
        }
        let limit = q.number("limit")?.filter(|l| *l > 0).map(|l| l as usize);
        let (mut continue_token, mut remaining) = (None, None);
        if let Some(limit) = limit {
            if items.len() > limit {
                remaining = Some((items.len() - limit) as i64);
                items.truncate(limit);
                continue_token = items.last().map(|o| encode_continue(list_rev, &object_sort_key(o)));
            }
        }
        let rv = list_rev.to_string();
        if repr == Representation::Table {
            let refs: Vec<&Value> = items.iter().map(|o| o.as_ref()).collect();
            let meta = TableMeta {
                resource_version: &rv,
                continue_token: continue_token.as_deref(),
                remaining_item_count: remaining,
                no_headers: false,
            };
            return Ok(Reply::json(
                200,
                table::table_with_meta(t.resource.kind, &refs, &meta, include_object(q)?, Utc::now()),
                vec![],
            ));
        }
        // Write the list straight into bytes: no copy of the items.
        let mut meta = json!({ "resourceVersion": rv });
        if let Some(c) = continue_token {
            meta["continue"] = json!(c);
            meta["remainingItemCount"] = json!(remaining);
        }
        let mut out = Vec::with_capacity(64 + items.len() * 512);
        out.extend_from_slice(b"{\"kind\":");
        serde_json::to_writer(&mut out, &t.resource.list_kind()).map_err(ApiError::internal)?;
        out.extend_from_slice(b",\"apiVersion\":");
        serde_json::to_writer(&mut out, &t.resource.api_version()).map_err(ApiError::internal)?;
        out.extend_from_slice(b",\"metadata\":");
        serde_json::to_writer(&mut out, &meta).map_err(ApiError::internal)?;
        out.extend_from_slice(b",\"items\":[");
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, item.as_ref()).map_err(ApiError::internal)?;
        }
        out.extend_from_slice(b"]}");
        Ok(Reply { code: 200, body: ReplyBody::Bytes(out), warnings: vec![] })
    }

    // ---------------------------------------------------------------- create

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
    fn admit_body(
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
    fn check_shape(&self, kind: &str, obj: Value, fv: FieldValidation, warnings: &mut Vec<String>) -> ApiResult<Value> {
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

    // ---------------------------------------------------------------- update and patch

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

    // ---------------------------------------------------------------- delete

    pub fn delete(&self, t: &Target, body: &[u8], content_type: Option<&str>, q: &Query) -> ApiResult<Reply> {
        let name = t.name.clone().expect("delete has a name");
        let opts = DeleteOptions::parse(body, content_type, q)?;
        let (code, obj) = self.delete_object(t.resource, t.ns(), &name, &opts)?;
        Ok(Reply::json(code, obj, vec![]))
    }

    /// Deletes one object, honouring preconditions, finalizers, pod grace periods, the
    /// propagation policy and namespace termination. Returns the status code and the body.
    pub fn delete_object(
        &self,
        res: &'static ResourceInfo,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<(u16, Value)> {
        if res.kind == "Namespace" && SYSTEM_NAMESPACES.contains(&name) {
            return Err(ApiError::Forbidden {
                group: String::new(),
                kind: "namespaces".into(),
                name: name.into(),
                message: format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted"),
            });
        }
        let key = ObjectKey { resource: res, namespace: ns.into(), name: name.into() };
        let mut gone = false;
        let committed = self.store.mutate(&key, opts.dry_run, |cur| {
            let cur = cur.ok_or_else(|| not_found(res, name))?;
            if let Some(uid) = &opts.precondition_uid {
                if meta(cur)["uid"].as_str() != Some(uid) {
                    return Err(ApiError::conflict(
                        res.group,
                        res.plural,
                        name,
                        &format!(
                            "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                            meta(cur)["uid"].as_str().unwrap_or("")
                        ),
                    ));
                }
            }
            if let Some(rv) = &opts.precondition_rv {
                if meta(cur)["resourceVersion"].as_str() != Some(rv) {
                    return Err(ApiError::conflict(
                        res.group,
                        res.plural,
                        name,
                        "the object has been modified; please apply your changes to the latest version and try again",
                    ));
                }
            }
            let mut obj = (**cur).clone();
            let already_deleting = meta(cur)["deletionTimestamp"].is_string();
            let now = now_rfc3339();

            if res.kind == "Namespace" {
                if already_deleting {
                    return Ok(Change::Unchanged);
                }
                meta_mut(&mut obj).insert("deletionTimestamp".into(), json!(now));
                obj["status"]["phase"] = json!("Terminating");
                return Ok(Change::Put(obj));
            }

            // Graceful deletion of pods that run on a node: the node agent finishes it.
            if res.kind == "Pod" {
                let on_node = cur["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty());
                let finished = matches!(cur["status"]["phase"].as_str(), Some("Succeeded" | "Failed"));
                let default_grace = cur["spec"]["terminationGracePeriodSeconds"].as_i64().unwrap_or(30);
                let mut grace = opts.grace_period.unwrap_or(default_grace).max(0);
                if !on_node || finished {
                    grace = 0;
                }
                if grace > 0 {
                    let current = meta(cur)["deletionGracePeriodSeconds"].as_i64();
                    if already_deleting && current.is_some_and(|c| c <= grace) {
                        return Ok(Change::Unchanged);
                    }
                    let at = Utc::now() + chrono::Duration::seconds(grace);
                    let m = meta_mut(&mut obj);
                    m.insert("deletionTimestamp".into(), json!(at.to_rfc3339_opts(SecondsFormat::Secs, true)));
                    m.insert("deletionGracePeriodSeconds".into(), json!(grace));
                    return Ok(Change::Put(obj));
                }
            }

            // Propagation policies that keep the object until the garbage collector is done.
            let policy_finalizer = match opts.propagation.as_deref() {
                Some("Foreground") => Some("foregroundDeletion"),
                Some("Orphan") => Some("orphan"),
                _ => None,
            };
            let mut finalizers: Vec<Value> = meta(cur)["finalizers"].as_array().cloned().unwrap_or_default();
            if let Some(f) = policy_finalizer {
                if !finalizers.iter().any(|x| x == f) {
                    finalizers.push(json!(f));
                }
            }
            if !finalizers.is_empty() {
                let m = meta_mut(&mut obj);
                m.insert("finalizers".into(), json!(finalizers));
                if !already_deleting {
                    m.insert("deletionTimestamp".into(), json!(now));
                    m.insert("deletionGracePeriodSeconds".into(), json!(0));
                }
                return if obj == **cur { Ok(Change::Unchanged) } else { Ok(Change::Put(obj)) };
            }
            gone = true;
            Ok(Change::Delete)
        })?;
        let obj = committed.object.map(|o| (*o).clone()).unwrap_or(Value::Null);
        if gone && !opts.dry_run {
            services_held(res, &obj).release(&self.services);
        }
        if res.kind == "Namespace" && !opts.dry_run {
            let _ = self.namespace_deletions.send(name.to_string());
        }
        if gone && res.kind != "Pod" && res.kind != "Namespace" && opts.return_status {
            return Ok((200, success_status(res.group, res.plural, name, meta(&obj)["uid"].as_str())));
        }
        Ok((if gone { 200 } else { 202 }, obj))
    }

    /// DELETE on a collection: every object matching the selectors.
    pub fn delete_collection(
        &self,
        t: &Target,
        body: &[u8],
        content_type: Option<&str>,
        q: &Query,
    ) -> ApiResult<Reply> {
        let filter = ObjectFilter::from_query(t.resource, q)?;
        let opts = DeleteOptions::parse(body, content_type, q)?;
        let (items, rev) = self.store.list(t.resource, t.namespace.as_deref());
        let mut deleted = Vec::new();
        for item in items.iter().filter(|o| filter.matches(o)) {
            let name = meta(item)["name"].as_str().unwrap_or("");
            let ns = meta(item)["namespace"].as_str().unwrap_or("");
            match self.delete_object(t.resource, ns, name, &opts) {
                Ok((_, obj)) => deleted.push(obj),
                Err(ApiError::NotFound { .. }) => {}
                Err(ApiError::Forbidden { .. }) if t.resource.kind == "Namespace" => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Reply::json(
            200,
            json!({"kind": t.resource.list_kind(), "apiVersion": t.resource.api_version(), "metadata": {"resourceVersion": rev.to_string()}, "items": deleted}),
            vec![],
        ))
    }

    /// Finishes the deletion of a terminating namespace: deletes everything in it, then the
    /// namespace itself once it is empty. Returns whether the namespace is gone.
    pub fn finalize_namespace(&self, ns: &str) -> bool {
        let nsres = by_kind("", "Namespace").expect("served");
        let nskey = ObjectKey { resource: nsres, namespace: String::new(), name: ns.into() };
        match self.store.get(&nskey) {
            None => return true,
            Some(n) if !n["metadata"]["deletionTimestamp"].is_string() => return true,
            Some(_) => {}
        }
        let opts = DeleteOptions::default();
        let mut remaining = 0;
        for res in RESOURCES.iter().filter(|r| r.namespaced) {
            let (items, _) = self.store.list(res, Some(ns));
            for item in items {
                let name = meta(&item)["name"].as_str().unwrap_or("").to_string();
                if meta(&item)["deletionTimestamp"].is_null() {
                    if let Err(e) = self.delete_object(res, ns, &name, &opts) {
                        if !matches!(e, ApiError::NotFound { .. }) {
                            tracing::warn!(namespace = ns, resource = res.plural, name, error = %e, "deleting namespace content");
                        }
                    }
                }
            }
            remaining += self.store.count(res, ns);
        }
        if remaining > 0 {
            return false;
        }
        let result = self.store.mutate(&nskey, false, |cur| match cur {
            None => Ok(Change::Unchanged),
            Some(n) if n["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty()) => {
                // Other finalizers (metadata.finalizers) hold the namespace until they are removed.
                let mut n = (**n).clone();
                n["spec"]["finalizers"] = json!([]);
                Ok(Change::Put(n))
            }
            Some(_) => Ok(Change::Delete),
        });
        result.map(|c| c.event == Some(crate::store::EventKind::Deleted)).unwrap_or(false)
    }
}

/// Options of a DELETE: the query parameters and the DeleteOptions body.
#[derive(Debug, Default)]
pub struct DeleteOptions {
    pub grace_period: Option<i64>,
    pub propagation: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
    /// Answer with a Status instead of the object (what upstream does for most kinds).
    pub return_status: bool,
}

impl DeleteOptions {
    fn parse(body: &[u8], content_type: Option<&str>, q: &Query) -> ApiResult<DeleteOptions> {
        let mut opts = DeleteOptions {
            grace_period: q.number("gracePeriodSeconds")?,
            dry_run: q.dry_run()?,
            return_status: true,
            ..Default::default()
        };
        opts.propagation = q.get("propagationPolicy").map(str::to_string);
        if !body.iter().all(u8::is_ascii_whitespace) {
            // JSON, YAML or protobuf, like any other body.
            let b: Value = decode_body(body, content_type)?;
            if let Some(g) = b["gracePeriodSeconds"].as_i64() {
                opts.grace_period = Some(g);
            }
            if let Some(p) = b["propagationPolicy"].as_str() {
                opts.propagation = Some(p.to_string());
            } else if b["orphanDependents"] == json!(true) {
                opts.propagation = Some("Orphan".into());
            }
            opts.precondition_uid = b["preconditions"]["uid"].as_str().map(str::to_string);
            opts.precondition_rv = b["preconditions"]["resourceVersion"].as_str().map(str::to_string);
            if b["dryRun"].as_array().is_some_and(|d| d.iter().any(|x| x == "All")) {
                opts.dry_run = true;
            }
        }
        if let Some(p) = &opts.propagation {
            if !matches!(p.as_str(), "Background" | "Foreground" | "Orphan") {
                return Err(ApiError::bad_request(format!(
                    "invalid propagationPolicy {p:?}: supported values: \"Background\", \"Foreground\", \"Orphan\""
                )));
            }
        }
        Ok(opts)
    }
}

/// Label and field selectors of a list, watch or deletecollection.
pub struct ObjectFilter {
    labels: Option<Selector>,
    fields: Option<FieldSelector>,
}

impl ObjectFilter {
    pub fn from_query(res: &ResourceInfo, q: &Query) -> ApiResult<ObjectFilter> {
        let labels = match q.get("labelSelector") {
            None => None,
            Some(s) => Some(
                Selector::parse(s).map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?,
            ),
        };
        let fields = match q.get("fieldSelector") {
            None => None,
            Some(s) => {
                let f = FieldSelector::parse(s)
                    .map_err(|e| ApiError::bad_request(format!("invalid field selector: {e}")))?;
                for field in f.field_names() {
                    if field != "metadata.name"
                        && field != "metadata.namespace"
                        && !res.selectable_fields.contains(&field)
                    {
                        return Err(ApiError::bad_request(format!("field label not supported: {field}")));
                    }
                }
                Some(f)
            }
        };
        Ok(ObjectFilter { labels, fields })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        if let Some(sel) = &self.labels {
            if !sel.matches_object(obj) {
                return false;
            }
        }
        if let Some(f) = &self.fields {
            return f.matches(|field| field_value(obj, field));
        }
        true
    }
}

/// The value a field selector compares for `field`.
fn field_value(obj: &Value, field: &str) -> Option<String> {
    match field {
        // Events select `source` by the reporting component.
        "source" => obj["source"]["component"].as_str().map(str::to_string),
        "spec.hostNetwork" | "spec.unschedulable" => Some(
            obj.pointer(&format!("/{}", field.replace('.', "/"))).and_then(Value::as_bool).unwrap_or(false).to_string(),
        ),
        "metadata.namespace" => Some(obj["metadata"]["namespace"].as_str().unwrap_or("").to_string()),
        _ => podnet_meta::fields::field_value(obj, field),
    }
}

fn include_object(q: &Query) -> ApiResult<IncludeObject> {
    IncludeObject::parse(q.get("includeObject").unwrap_or("")).ok_or_else(|| {
        ApiError::bad_request("invalid includeObject: supported values: \"None\", \"Metadata\", \"Object\"")
    })
}

fn version_of(obj: &Value) -> String {
    let av = obj["apiVersion"].as_str().unwrap_or("");
    crate::resources::split_api_version(av).1.to_string()
}

fn object_sort_key(o: &Value) -> String {
    format!("{}/{}", o["metadata"]["namespace"].as_str().unwrap_or(""), o["metadata"]["name"].as_str().unwrap_or(""))
}

fn encode_continue(rev: u64, after: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json!({"rv": rev, "start": after}).to_string())
}

fn decode_continue(token: &str) -> ApiResult<(u64, String)> {
    use base64::Engine;
    let bad = || ApiError::bad_request("invalid continue token: it was not issued by this server");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    Ok((v["rv"].as_u64().ok_or_else(bad)?, v["start"].as_str().ok_or_else(bad)?.to_string()))
}

/// Status a new object may not bring with it, as each kind's create strategy resets it.
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
        "Deployment" | "ReplicaSet" | "ReplicationController" | "DaemonSet" | "Ingress" => {
            map.insert("status".into(), json!({}));
            if kind == "Ingress" {
                map.insert("status".into(), json!({"loadBalancer": {}}));
            }
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

fn services_held(res: &ResourceInfo, obj: &Value) -> Allocation {
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
    fn qos_classes() {
        assert_eq!(pod_qos_class(&json!({"containers": [{"name": "a"}]})), "BestEffort");
        assert_eq!(
            pod_qos_class(&json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]})),
            "Guaranteed"
        );
        assert_eq!(pod_qos_class(&json!({"containers": [{"resources": {"requests": {"cpu": "1"}}}]})), "Burstable");
    }

    #[test]
    fn continue_tokens_round_trip() {
        let t = encode_continue(42, "default/web");
        assert_eq!(decode_continue(&t).unwrap(), (42, "default/web".to_string()));
        assert!(decode_continue("garbage!").is_err());
    }

    #[test]
    fn status_is_kept_on_main_updates_and_only_status_changes_on_status_updates() {
        let res = by_kind("apps", "Deployment").unwrap();
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
