//! OpenAPI v3 documents, enough for kubectl: one document per group-version listing every
//! operation with its `x-kubernetes-group-version-kind` and the query parameters the server
//! honours (`fieldValidation`, `dryRun`, `fieldManager`…).
//!
//! kubectl reads these to learn that the server validates fields itself (it then sends
//! `fieldValidation=Strict` instead of validating against a schema client-side). The PATCH
//! operations do not advertise strategic merge patch, so `kubectl apply` computes its patches
//! from the types compiled into it, exactly as it does for kube-apiserver's built-in types.
//! Schemas are given as open objects; `/openapi/v2` is not served (kubectl does without it).

use serde_json::{json, Map, Value};
use sha2::Digest;

use crate::resources::{ResourceInfo, RESOURCES};
use crate::status::{ApiError, ApiResult};

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

/// The hash a document is published under in the root's `serverRelativeURL`.
fn hash(doc: &Value) -> String {
    let digest = sha2::Sha512::digest(doc.to_string().as_bytes());
    digest.iter().take(32).map(|b| format!("{b:02X}")).collect()
}

/// `/openapi/v3`: the index of group-version documents.
pub fn root() -> Value {
    let mut paths = Map::new();
    for (g, v) in group_versions() {
        let p = gv_path(g, v);
        let h = hash(&document_unchecked(g, v));
        paths.insert(p.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={h}")}));
    }
    json!({"paths": paths})
}

fn param(name: &str, typ: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": typ, "uniqueItems": true}})
}

fn operation(r: &ResourceInfo, action: &str, op_id: &str, params: &[&str], body_types: &[&str]) -> Value {
    let mut op = json!({
        "operationId": op_id,
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
        "parameters": params.iter().map(|p| param(p, if *p == "force" { "boolean" } else { "string" })).collect::<Vec<_>>(),
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": schema_ref(r)}}}}},
    });
    if !body_types.is_empty() {
        let content: Map<String, Value> =
            body_types.iter().map(|t| (t.to_string(), json!({"schema": {"$ref": schema_ref(r)}}))).collect();
        op["requestBody"] = json!({"content": content, "required": true});
    }
    op
}

fn schema_name(r: &ResourceInfo) -> String {
    let group = match r.group {
        "" => "io.k8s.api.core".to_string(),
        g => format!("io.k8s.api.{}", g.split('.').next().unwrap_or(g)),
    };
    format!("{group}.{}.{}", r.version, r.kind)
}

fn schema_ref(r: &ResourceInfo) -> String {
    format!("#/components/schemas/{}", schema_name(r))
}

const WRITE_PARAMS: &[&str] = &["dryRun", "fieldManager", "fieldValidation", "pretty"];
const PATCH_PARAMS: &[&str] = &["dryRun", "fieldManager", "fieldValidation", "force", "pretty"];
const PATCH_TYPES: &[&str] = &["application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"];

fn document_unchecked(group: &str, version: &str) -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for r in RESOURCES.iter().filter(|r| r.group == group && r.version == version) {
        let base = format!("/{}", gv_path(group, version));
        let (collection, item) = if r.namespaced {
            (format!("{base}/namespaces/{{namespace}}/{}", r.plural), format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural))
        } else {
            (format!("{base}/{}", r.plural), format!("{base}/{}/{{name}}", r.plural))
        };
        let k = r.kind;
        paths.insert(
            collection,
            json!({
                "get": operation(r, "list", &format!("list{k}"), &["labelSelector", "fieldSelector", "limit", "continue", "resourceVersion", "watch"], &[]),
                "post": operation(r, "post", &format!("create{k}"), WRITE_PARAMS, &["application/json", "application/yaml"]),
                "delete": operation(r, "deletecollection", &format!("deleteCollection{k}"), &["labelSelector", "fieldSelector", "dryRun"], &[]),
            }),
        );
        paths.insert(
            item.clone(),
            json!({
                "get": operation(r, "get", &format!("read{k}"), &["pretty"], &[]),
                "put": operation(r, "put", &format!("replace{k}"), WRITE_PARAMS, &["application/json", "application/yaml"]),
                "patch": operation(r, "patch", &format!("patch{k}"), PATCH_PARAMS, PATCH_TYPES),
                "delete": operation(r, "delete", &format!("delete{k}"), &["dryRun", "gracePeriodSeconds", "propagationPolicy"], &[]),
            }),
        );
        for sub in r.subresources {
            let s = sub.name();
            if s == "binding" {
                continue;
            }
            paths.insert(
                format!("{item}/{s}"),
                json!({
                    "get": operation(r, "get", &format!("read{k}{s}"), &["pretty"], &[]),
                    "put": operation(r, "put", &format!("replace{k}{s}"), WRITE_PARAMS, &["application/json"]),
                    "patch": operation(r, "patch", &format!("patch{k}{s}"), PATCH_PARAMS, PATCH_TYPES),
                }),
            );
        }
        schemas.insert(
            schema_name(r),
            json!({
                "type": "object",
                "description": format!("{} ({}).", k, r.api_version()),
                "x-kubernetes-group-version-kind": [{"group": r.group, "version": r.version, "kind": k}],
                "x-kubernetes-preserve-unknown-fields": true,
            }),
        );
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v{}.{}.0", crate::discovery::KUBE_MAJOR, crate::discovery::KUBE_MINOR)},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

/// `/openapi/v3/<api|apis/group>/<version>`.
pub fn document(group: &str, version: &str) -> ApiResult<Value> {
    if !group_versions().contains(&(group, version)) {
        return Err(ApiError::NoSuchResource);
    }
    Ok(document_unchecked(group, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_operations_advertise_field_validation() {
        let doc = document("apps", "v1").unwrap();
        let op = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        assert!(op["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "fieldValidation"));
        assert!(root()["paths"]["apis/apps/v1"]["serverRelativeURL"].as_str().unwrap().contains("hash="));
        assert!(document("apps", "v9").is_err());
    }
}
