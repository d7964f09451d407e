//! DELETE and deletecollection: preconditions, graceful deletion of pods, finalizers and
//! propagation policies, and the termination of namespaces.

use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};

use super::update::services_held;
use super::*;
use crate::request::{decode_body, Query, Target};
use crate::resources::{by_kind, ResourceInfo, RESOURCES};
use crate::status::{success_status, ApiError, ApiResult};
use crate::store::{Change, ObjectKey};
use crate::Api;

impl Api {
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
