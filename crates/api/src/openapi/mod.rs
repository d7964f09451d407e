//! OpenAPI v3 documents, shaped like kube-apiserver's: the root `/openapi/v3` lists one document
//! per served group-version; each document lists every operation (with its
//! `x-kubernetes-group-version-kind` and the query parameters the server honours:
//! `fieldValidation`, `dryRun`, `fieldManager`…) and, under `components/schemas`, the schemas
//! those operations use.
//!
//! kubectl reads these documents for two things:
//!
//! - It learns from the parameters that the server validates fields itself, and then sends
//!   `fieldValidation=Strict` instead of validating against a schema client-side. The PATCH
//!   operations do not advertise strategic merge patch, so `kubectl apply` computes its patches
//!   from the types compiled into it, exactly as it does for kube-apiserver's built-in types.
//! - `kubectl explain` finds the operation of the resource's path in its group-version's document,
//!   takes the GVK from it, looks for the component schema whose `x-kubernetes-group-version-kind`
//!   lists that GVK, and renders it, following `$ref`s (`description`, `type`, `properties`,
//!   `items`, `additionalProperties`, `required`).
//!
//! The schemas are k8s-openapi's (its `schemars` feature): names such as
//! `io.k8s.api.core.v1.Service`, field names and descriptions all come from Kubernetes' own
//! OpenAPI definitions. They are generated once, in the OpenAPI 3.0 dialect (references into
//! `#/components/schemas/`, a reference with a description beside it wrapped in `allOf`, as kube
//! does), then brought to what kube-apiserver publishes: the kinds carry their
//! `x-kubernetes-group-version-kind`, `metadata` is required only where kube requires it (core/v1
//! Event), IntOrString is `format: int-or-string` with `oneOf` integer/string (and keeps
//! `x-kubernetes-int-or-string: true`), and Quantity is `oneOf` string/number. The `scale`
//! subresources use `autoscaling/v1` Scale and pods' `binding` subresource core/v1 Binding. A
//! served kind without a k8s-openapi type gets an open object schema so that it still resolves.
//!
//! `/openapi/v2` is one Swagger 2.0 document converted from these, served as JSON and, in the
//! protobuf form kubectl asks for, by [`v2_proto`].

mod v2_proto;

pub use v2_proto::{v2_protobuf, wants_protobuf as wants_v2_protobuf, MIME as V2_PROTOBUF_MIME};

use std::collections::HashSet;
use std::sync::LazyLock;

use k8s_openapi::api::{apps::v1 as apps, autoscaling::v1 as autoscaling, coordination::v1 as coordination};
use k8s_openapi::api::{core::v1 as core, discovery::v1 as discovery, networking::v1 as networking};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta;
use k8s_openapi::schemars::{generate::SchemaSettings, JsonSchema, SchemaGenerator};
use serde_json::{json, Map, Value};
use sha2::Digest;

use crate::resources::{ResourceInfo, Subresource, RESOURCES};
use crate::status::{ApiError, ApiResult};

/// Where component schemas live in a document, as a `$ref` prefix.
const COMPONENTS: &str = "#/components/schemas/";
const INT_OR_STRING: &str = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";

/// Kinds whose kube-apiserver schema lists `metadata` as required (their Go field has no
/// `omitempty`). k8s-openapi lists it for every resource, its Rust field not being optional.
const METADATA_REQUIRED: &[(&str, &str)] = &[("", "Event")];

/// A kind with a top-level schema: `(group, version, kind)`.
type Gvk = (&'static str, &'static str, &'static str);

/// The kind a subresource reads and writes, when it is not the resource's own.
fn subresource_kind(sub: Subresource) -> Option<Gvk> {
    match sub {
        Subresource::Status | Subresource::Log | Subresource::Exec | Subresource::Attach => None,
        Subresource::Scale => Some(("autoscaling", "v1", "Scale")),
        Subresource::Binding => Some(("", "v1", "Binding")),
    }
}

/// Every kind that gets a schema: the served kinds and those of their subresources.
fn kinds() -> Vec<Gvk> {
    let mut out: Vec<Gvk> = Vec::new();
    for r in RESOURCES {
        let own = (r.group, r.version, r.kind);
        for gvk in std::iter::once(own).chain(r.subresources.iter().filter_map(|s| subresource_kind(*s))) {
            if !out.contains(&gvk) {
                out.push(gvk);
            }
        }
    }
    out
}

/// Adds `T`'s schema (and everything it references) to `generator`; returns its component name.
fn add<T: JsonSchema>(generator: &mut SchemaGenerator) -> String {
    generator.subschema_for::<T>();
    T::schema_name().into_owned()
}

/// Adds the k8s-openapi type of a kind to `generator`; `None` when there is none.
fn register(generator: &mut SchemaGenerator, (group, version, kind): Gvk) -> Option<String> {
    let g = generator;
    Some(match (group, version, kind) {
        ("", "v1", "Namespace") => add::<core::Namespace>(g),
        ("", "v1", "Node") => add::<core::Node>(g),
        ("", "v1", "Pod") => add::<core::Pod>(g),
        ("", "v1", "Binding") => add::<core::Binding>(g),
        ("", "v1", "Service") => add::<core::Service>(g),
        ("", "v1", "Endpoints") => add::<core::Endpoints>(g),
        ("", "v1", "ConfigMap") => add::<core::ConfigMap>(g),
        ("", "v1", "Secret") => add::<core::Secret>(g),
        ("", "v1", "Event") => add::<core::Event>(g),
        ("", "v1", "ServiceAccount") => add::<core::ServiceAccount>(g),
        ("", "v1", "ReplicationController") => add::<core::ReplicationController>(g),
        ("apps", "v1", "Deployment") => add::<apps::Deployment>(g),
        ("apps", "v1", "ReplicaSet") => add::<apps::ReplicaSet>(g),
        ("apps", "v1", "DaemonSet") => add::<apps::DaemonSet>(g),
        ("autoscaling", "v1", "Scale") => add::<autoscaling::Scale>(g),
        ("discovery.k8s.io", "v1", "EndpointSlice") => add::<discovery::EndpointSlice>(g),
        ("networking.k8s.io", "v1", "Ingress") => add::<networking::Ingress>(g),
        ("networking.k8s.io", "v1", "IngressClass") => add::<networking::IngressClass>(g),
        ("networking.k8s.io", "v1", "NetworkPolicy") => add::<networking::NetworkPolicy>(g),
        ("coordination.k8s.io", "v1", "Lease") => add::<coordination::Lease>(g),
        _ => return None,
    })
}

/// kube-apiserver's component name for a kind: `io.k8s.api.<group's first label>.<version>.<Kind>`.
fn fallback_name((group, version, kind): Gvk) -> String {
    let group = match group {
        "" => "core",
        g => g.split('.').next().unwrap_or(g),
    };
    format!("io.k8s.api.{group}.{version}.{kind}")
}

/// All component schemas, computed once.
struct Schemas {
    /// Every kind of [`kinds`] with its component name.
    kinds: Vec<(Gvk, String)>,
    /// Component name → schema.
    components: Map<String, Value>,
    list_meta: String,
}

static SCHEMAS: LazyLock<Schemas> = LazyLock::new(generate);

fn generate() -> Schemas {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let mut registered = Vec::new();
    let mut open = Vec::new();
    for gvk in kinds() {
        match register(&mut generator, gvk) {
            Some(name) => registered.push((gvk, name)),
            None => open.push((gvk, fallback_name(gvk))),
        }
    }
    let list_meta = add::<ListMeta>(&mut generator);
    let mut components = generator.take_definitions(true);

    if let Some(Value::Object(s)) = components.get_mut(INT_OR_STRING) {
        s.insert("format".into(), json!("int-or-string"));
        s.insert("oneOf".into(), json!([{"type": "integer"}, {"type": "string"}]));
    }
    if let Some(Value::Object(s)) = components.get_mut(QUANTITY) {
        s.remove("x-kubernetes-int-or-string");
        s.insert("oneOf".into(), json!([{"type": "string"}, {"type": "number"}]));
    }
    for ((group, version, kind), name) in &registered {
        let Some(Value::Object(s)) = components.get_mut(name) else {
            continue;
        };
        s.insert("x-kubernetes-group-version-kind".into(), json!([{"group": group, "version": version, "kind": kind}]));
        if !METADATA_REQUIRED.contains(&(group, kind)) {
            if let Some(Value::Array(required)) = s.get_mut("required") {
                required.retain(|f| f != "metadata");
                if required.is_empty() {
                    s.remove("required");
                }
            }
        }
    }
    for ((group, version, kind), name) in &open {
        components.insert(
            name.clone(),
            json!({
                "type": "object",
                "x-kubernetes-group-version-kind": [{"group": group, "version": version, "kind": kind}],
                "x-kubernetes-preserve-unknown-fields": true,
            }),
        );
    }
    registered.extend(open);
    Schemas { kinds: registered, components, list_meta }
}

/// `{"$ref": …}` to the schema of a kind.
fn kind_ref(gvk: Gvk) -> Value {
    let name =
        SCHEMAS.kinds.iter().find(|(k, _)| *k == gvk).map(|(_, n)| n.clone()).unwrap_or_else(|| fallback_name(gvk));
    json!({"$ref": format!("{COMPONENTS}{name}")})
}

/// The schema of a list of a kind (k8s-openapi has no schema for its generic `List<T>`).
fn list_schema(gvk: Gvk) -> Value {
    json!({
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"$ref": format!("{COMPONENTS}{}", SCHEMAS.list_meta)},
            "items": {"type": "array", "items": kind_ref(gvk)},
        },
        "required": ["items"],
    })
}

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

/// One group-version's document and its hash, computed once.
struct Document {
    group: &'static str,
    version: &'static str,
    body: Value,
    hash: String,
}

static DOCUMENTS: LazyLock<Vec<Document>> = LazyLock::new(|| {
    group_versions()
        .into_iter()
        .map(|(group, version)| {
            let body = build_document(group, version);
            let hash = hash(&body);
            Document { group, version, body, hash }
        })
        .collect()
});

/// `/openapi/v3`: the index of group-version documents.
pub fn root() -> Value {
    let paths: Map<String, Value> = DOCUMENTS
        .iter()
        .map(|d| {
            let p = gv_path(d.group, d.version);
            let url = format!("/openapi/v3/{p}?hash={}", d.hash);
            (p, json!({"serverRelativeURL": url}))
        })
        .collect();
    json!({"paths": paths})
}

fn param(name: &str, typ: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": typ, "uniqueItems": true}})
}

/// An operation on objects of kind `gvk`; `schema` is its response's (and request body's) schema.
fn operation(gvk: Gvk, action: &str, op_id: &str, params: &[&str], body_types: &[&str], schema: &Value) -> Value {
    let (group, version, kind) = gvk;
    let mut op = json!({
        "operationId": op_id,
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": kind},
        "parameters": params.iter().map(|p| param(p, if *p == "force" { "boolean" } else { "string" })).collect::<Vec<_>>(),
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": schema}}}},
    });
    if !body_types.is_empty() {
        let content: Map<String, Value> =
            body_types.iter().map(|t| (t.to_string(), json!({"schema": schema}))).collect();
        op["requestBody"] = json!({"content": content, "required": true});
    }
    op
}

const WRITE_PARAMS: &[&str] = &["dryRun", "fieldManager", "fieldValidation", "pretty"];
const PATCH_PARAMS: &[&str] = &["dryRun", "fieldManager", "fieldValidation", "force", "pretty"];
const PATCH_TYPES: &[&str] =
    &["application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"];
const BODY_TYPES: &[&str] = &["application/json", "application/yaml"];

fn resource_paths(r: &ResourceInfo, paths: &mut Map<String, Value>) {
    let base = format!("/{}", gv_path(r.group, r.version));
    let (collection, item) = if r.namespaced {
        (
            format!("{base}/namespaces/{{namespace}}/{}", r.plural),
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural),
        )
    } else {
        (format!("{base}/{}", r.plural), format!("{base}/{}/{{name}}", r.plural))
    };
    let k = r.kind;
    let gvk = (r.group, r.version, r.kind);
    let object = kind_ref(gvk);
    let list = list_schema(gvk);
    let list_params = &["labelSelector", "fieldSelector", "limit", "continue", "resourceVersion", "watch"];
    paths.insert(
        collection,
        json!({
            "get": operation(gvk, "list", &format!("list{k}"), list_params, &[], &list),
            "post": operation(gvk, "post", &format!("create{k}"), WRITE_PARAMS, BODY_TYPES, &object),
            "delete": operation(gvk, "deletecollection", &format!("deleteCollection{k}"), &["labelSelector", "fieldSelector", "dryRun"], &[], &object),
        }),
    );
    paths.insert(
        item.clone(),
        json!({
            "get": operation(gvk, "get", &format!("read{k}"), &["pretty"], &[], &object),
            "put": operation(gvk, "put", &format!("replace{k}"), WRITE_PARAMS, BODY_TYPES, &object),
            "patch": operation(gvk, "patch", &format!("patch{k}"), PATCH_PARAMS, PATCH_TYPES, &object),
            "delete": operation(gvk, "delete", &format!("delete{k}"), &["dryRun", "gracePeriodSeconds", "propagationPolicy"], &[], &object),
        }),
    );
    // The proxied subresources stream text or WebSocket channels, not objects: they have no
    // schema'd operations here.
    for sub in r.subresources.iter().filter(|s| !s.is_proxied()) {
        let s = sub.name();
        let sub_gvk = subresource_kind(*sub).unwrap_or(gvk);
        let schema = kind_ref(sub_gvk);
        let ops = if *sub == Subresource::Binding {
            json!({"post": operation(sub_gvk, "post", &format!("create{k}{s}"), WRITE_PARAMS, BODY_TYPES, &schema)})
        } else {
            json!({
                "get": operation(sub_gvk, "get", &format!("read{k}{s}"), &["pretty"], &[], &schema),
                "put": operation(sub_gvk, "put", &format!("replace{k}{s}"), WRITE_PARAMS, &["application/json"], &schema),
                "patch": operation(sub_gvk, "patch", &format!("patch{k}{s}"), PATCH_PARAMS, PATCH_TYPES, &schema),
            })
        };
        paths.insert(format!("{item}/{s}"), ops);
    }
}

/// Appends to `out` the component names `value` references.
fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v.as_str().and_then(|s| s.strip_prefix(COMPONENTS))) {
                    ("$ref", Some(name)) => out.push(name.to_string()),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

fn build_document(group: &str, version: &str) -> Value {
    let mut paths = Map::new();
    for r in RESOURCES.iter().filter(|r| r.group == group && r.version == version) {
        resource_paths(r, &mut paths);
    }
    // The components the paths reference, and theirs, transitively.
    let mut pending = Vec::new();
    collect_refs(&Value::Object(paths.clone()), &mut pending);
    let mut seen = HashSet::new();
    let mut schemas = Map::new();
    while let Some(name) = pending.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(schema) = SCHEMAS.components.get(&name) {
            collect_refs(schema, &mut pending);
            schemas.insert(name, schema.clone());
        }
    }
    schemas.sort_keys();
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v{}.{}.0", crate::discovery::KUBE_MAJOR, crate::discovery::KUBE_MINOR)},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

/// `/openapi/v3/<api|apis/group>/<version>`.
pub fn document(group: &str, version: &str) -> ApiResult<Value> {
    DOCUMENTS
        .iter()
        .find(|d| d.group == group && d.version == version)
        .map(|d| d.body.clone())
        .ok_or(ApiError::NoSuchResource)
}

/// `/openapi/v2`: one Swagger 2.0 document for every group-version, converted from the v3
/// documents (kubectl asks for its protobuf form, [`v2_protobuf`], for client-side validation and
/// `explain --output=plaintext-openapiv2`).
pub fn v2() -> &'static Value {
    static V2: LazyLock<Value> = LazyLock::new(|| {
        let mut paths = Map::new();
        let mut definitions = Map::new();
        for d in DOCUMENTS.iter() {
            for (path, item) in d.body["paths"].as_object().into_iter().flatten() {
                let ops: Map<String, Value> = item
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(method, op)| (method.clone(), operation_v2(op)))
                    .collect();
                paths.insert(path.clone(), Value::Object(ops));
            }
            for (name, schema) in d.body["components"]["schemas"].as_object().into_iter().flatten() {
                definitions.insert(name.clone(), schema_v2(schema));
            }
        }
        definitions.sort_keys();
        json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": format!("v{}.{}.0", crate::discovery::KUBE_MAJOR, crate::discovery::KUBE_MINOR)},
            "paths": paths,
            "definitions": definitions,
        })
    });
    &V2
}

/// A v3 operation in v2 form: simple parameters carry their type, the request body is a `body`
/// parameter, responses carry their schema directly.
fn operation_v2(op: &Value) -> Value {
    let mut out = op.clone();
    let mut params: Vec<Value> = op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| json!({"name": p["name"], "in": p["in"], "type": p["schema"]["type"], "uniqueItems": true}))
        .collect();
    if let Some(content) = op["requestBody"]["content"].as_object() {
        let schema = content.values().next().map(|c| schema_v2(&c["schema"])).unwrap_or(json!({}));
        params.push(json!({"name": "body", "in": "body", "required": true, "schema": schema}));
        out["consumes"] = json!(content.keys().collect::<Vec<_>>());
    }
    let map = out.as_object_mut().expect("operations are objects");
    map.remove("requestBody");
    map.insert("parameters".into(), json!(params));
    map.insert("produces".into(), json!(["application/json", "application/yaml"]));
    let mut responses = Map::new();
    for (code, r) in op["responses"].as_object().into_iter().flatten() {
        let schema = r["content"].as_object().and_then(|c| c.values().next()).map(|c| schema_v2(&c["schema"]));
        let mut resp = json!({"description": r["description"]});
        if let Some(schema) = schema {
            resp["schema"] = schema;
        }
        responses.insert(code.clone(), resp);
    }
    map.insert("responses".into(), Value::Object(responses));
    out
}

/// A v3 schema in v2 form: `$ref`s point into `#/definitions/`, and `oneOf` (int-or-string,
/// quantities), which v2 lacks, becomes a string as kube-apiserver publishes it.
fn schema_v2(schema: &Value) -> Value {
    match schema {
        Value::Object(m) => {
            if m.contains_key("oneOf") {
                let mut s = json!({"type": "string"});
                for k in ["description", "format"] {
                    if let Some(v) = m.get(k) {
                        s[k] = v.clone();
                    }
                }
                return s;
            }
            Value::Object(
                m.iter()
                    .filter(|(k, _)| k.as_str() != "nullable")
                    .map(|(k, v)| match (k.as_str(), v.as_str()) {
                        ("$ref", Some(r)) => (k.clone(), json!(r.replace(COMPONENTS, "#/definitions/"))),
                        _ => (k.clone(), schema_v2(v)),
                    })
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(schema_v2).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Follows a `$ref` (directly or through a one-element `allOf`, as kubectl does).
    fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
        let r = schema.get("$ref").or_else(|| schema["allOf"].get(0).and_then(|s| s.get("$ref")));
        match r.and_then(Value::as_str) {
            Some(r) => &doc["components"]["schemas"][r.strip_prefix(COMPONENTS).expect("local ref")],
            None => schema,
        }
    }

    /// The schema `kubectl explain` picks for a resource: the GVK of its path's operation, then
    /// the component listing that GVK.
    fn explained<'a>(doc: &'a Value, r: &ResourceInfo) -> &'a Value {
        let item = if r.namespaced {
            format!("/{}/namespaces/{{namespace}}/{}/{{name}}", gv_path(r.group, r.version), r.plural)
        } else {
            format!("/{}/{}/{{name}}", gv_path(r.group, r.version), r.plural)
        };
        let gvk = &doc["paths"][&item]["get"]["x-kubernetes-group-version-kind"];
        assert_eq!(gvk, &json!({"group": r.group, "version": r.version, "kind": r.kind}));
        let mut found = doc["components"]["schemas"]
            .as_object()
            .unwrap()
            .values()
            .filter(|s| s["x-kubernetes-group-version-kind"].as_array().is_some_and(|l| l.contains(gvk)));
        let schema = found.next().unwrap_or_else(|| panic!("no schema for {}", r.kind));
        assert!(found.next().is_none(), "two schemas for {}", r.kind);
        schema
    }

    #[test]
    fn patch_operations_advertise_field_validation() {
        let doc = document("apps", "v1").unwrap();
        let op = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        assert!(op["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "fieldValidation"));
        assert!(root()["paths"]["apis/apps/v1"]["serverRelativeURL"].as_str().unwrap().contains("hash="));
        assert!(document("apps", "v9").is_err());
    }

    #[test]
    fn no_operation_advertises_strategic_merge_patch() {
        for (g, v) in group_versions() {
            let text = document(g, v).unwrap()["paths"].to_string();
            assert!(!text.contains("strategic-merge-patch"), "{g}/{v}");
        }
    }

    #[test]
    fn root_hashes_are_those_of_the_documents() {
        let root = root();
        for (g, v) in group_versions() {
            let url = root["paths"][gv_path(g, v)]["serverRelativeURL"].as_str().unwrap().to_string();
            assert!(url.ends_with(&format!("?hash={}", hash(&document(g, v).unwrap()))), "{url}");
        }
    }

    #[test]
    fn every_served_kind_has_a_real_schema_with_its_gvk() {
        for r in RESOURCES {
            let doc = document(r.group, r.version).unwrap();
            let schema = explained(&doc, r);
            assert!(schema["description"].as_str().is_some_and(|d| !d.is_empty()), "{}", r.kind);
            assert_eq!(schema["type"], "object", "{}", r.kind);
            assert!(schema["x-kubernetes-preserve-unknown-fields"].is_null(), "{} has a placeholder", r.kind);
            for field in ["apiVersion", "kind", "metadata"] {
                assert!(schema["properties"][field].is_object(), "{}.{field}", r.kind);
            }
            let metadata = resolve(&doc, &schema["properties"]["metadata"]);
            assert!(metadata["properties"]["labels"]["additionalProperties"]["type"] == "string");
        }
    }

    #[test]
    fn every_ref_resolves() {
        for (g, v) in group_versions() {
            let doc = document(g, v).unwrap();
            let mut refs = Vec::new();
            collect_refs(&doc, &mut refs);
            assert!(!refs.is_empty());
            let schemas = doc["components"]["schemas"].as_object().unwrap();
            for r in refs {
                assert!(schemas.contains_key(&r), "{g}/{v}: dangling $ref {r}");
            }
            assert!(!doc.to_string().contains("#/$defs"), "{g}/{v}");
        }
    }

    #[test]
    fn service_ports_have_an_int_or_string_target_port() {
        let doc = document("", "v1").unwrap();
        let svc = explained(&doc, crate::resources::by_kind("", "Service").unwrap());
        assert!(svc["description"].as_str().unwrap().starts_with("Service is a named abstraction"));
        assert!(svc.get("required").is_none(), "kube does not require a Service's metadata");
        let spec_field = &svc["properties"]["spec"];
        assert_eq!(spec_field["allOf"][0]["$ref"], "#/components/schemas/io.k8s.api.core.v1.ServiceSpec");
        assert!(spec_field["description"].as_str().unwrap().starts_with("Spec defines the behavior of a service."));
        let spec = resolve(&doc, spec_field);
        assert_eq!(spec["properties"]["ports"]["type"], "array");
        let port = resolve(&doc, &spec["properties"]["ports"]["items"]);
        assert_eq!(port["required"], json!(["port"]));
        assert_eq!(port["properties"]["port"]["type"], "integer");
        let target = &port["properties"]["targetPort"];
        assert!(target["description"].as_str().unwrap().starts_with("Number or name of the port"));
        let ios = resolve(&doc, target);
        assert_eq!(ios["x-kubernetes-int-or-string"], true);
        assert_eq!(ios["format"], "int-or-string");
        assert_eq!(ios["oneOf"], json!([{"type": "integer"}, {"type": "string"}]));
        assert!(ios.get("type").is_none(), "kubectl names it IntOrString only without a type");
        assert_eq!(spec["properties"]["selector"]["additionalProperties"]["type"], "string");
    }

    #[test]
    fn quantities_and_required_metadata_are_as_kube_publishes_them() {
        let doc = document("", "v1").unwrap();
        let quantity = &doc["components"]["schemas"][QUANTITY];
        assert_eq!(quantity["oneOf"], json!([{"type": "string"}, {"type": "number"}]));
        assert!(quantity.get("x-kubernetes-int-or-string").is_none());
        let event = explained(&doc, crate::resources::by_kind("", "Event").unwrap());
        assert!(event["required"].as_array().unwrap().contains(&json!("metadata")));
        let binding = &doc["components"]["schemas"]["io.k8s.api.core.v1.Binding"];
        assert_eq!(binding["required"], json!(["target"]));
        let slice = explained(
            &document("discovery.k8s.io", "v1").unwrap(),
            crate::resources::by_kind("discovery.k8s.io", "EndpointSlice").unwrap(),
        )
        .clone();
        assert_eq!(slice["required"], json!(["addressType", "endpoints"]));
    }

    #[test]
    fn subresources_use_scale_and_binding() {
        let doc = document("apps", "v1").unwrap();
        let scale_op = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/replicasets/{name}/scale"]["put"];
        assert_eq!(
            scale_op["x-kubernetes-group-version-kind"],
            json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
        );
        let scale = &doc["components"]["schemas"]["io.k8s.api.autoscaling.v1.Scale"];
        assert_eq!(
            scale["x-kubernetes-group-version-kind"],
            json!([{"group": "autoscaling", "version": "v1", "kind": "Scale"}])
        );
        let status_op = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/replicasets/{name}/status"]["patch"];
        assert_eq!(status_op["x-kubernetes-group-version-kind"]["kind"], "ReplicaSet");
        let core = document("", "v1").unwrap();
        let binding = &core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/binding"]["post"];
        assert_eq!(binding["x-kubernetes-group-version-kind"]["kind"], "Binding");
        assert!(binding["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "fieldValidation"));
        let list = &core["paths"]["/api/v1/namespaces/{namespace}/pods"]["get"]["responses"]["200"]["content"]
            ["application/json"]["schema"];
        assert_eq!(list["properties"]["items"]["items"]["$ref"], "#/components/schemas/io.k8s.api.core.v1.Pod");
    }

    #[test]
    fn pod_containers_and_deployment_template_resolve() {
        let core = document("", "v1").unwrap();
        let pod = explained(&core, crate::resources::by_kind("", "Pod").unwrap());
        let spec = resolve(&core, &pod["properties"]["spec"]);
        let containers = &spec["properties"]["containers"];
        assert_eq!(containers["type"], "array");
        let container = resolve(&core, &containers["items"]);
        assert!(container["required"].as_array().unwrap().contains(&json!("name")));
        let limits = &resolve(&core, &container["properties"]["resources"])["properties"]["limits"];
        assert_eq!(limits["additionalProperties"]["$ref"], format!("{COMPONENTS}{QUANTITY}"));

        let apps = document("apps", "v1").unwrap();
        let deploy = explained(&apps, crate::resources::by_kind("apps", "Deployment").unwrap());
        let spec = resolve(&apps, &deploy["properties"]["spec"]);
        assert!(spec["required"].as_array().unwrap().contains(&json!("selector")));
        let template = resolve(&apps, &spec["properties"]["template"]);
        assert!(resolve(&apps, &template["properties"]["spec"])["properties"]["containers"].is_object());
    }

    #[test]
    fn v2_is_a_swagger_document_with_resolvable_refs() {
        let doc = v2();
        assert_eq!(doc["swagger"], "2.0");
        let text = doc.to_string();
        assert!(!text.contains("#/components/"));
        fn refs(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => m.iter().for_each(|(k, v)| match (k.as_str(), v.as_str()) {
                    ("$ref", Some(r)) => out.push(r.to_string()),
                    _ => refs(v, out),
                }),
                Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        refs(doc, &mut all);
        assert!(all.len() > 100, "{}", all.len());
        for r in all {
            let name = r.strip_prefix("#/definitions/").unwrap_or_else(|| panic!("non-local ref {r}"));
            assert!(doc["definitions"].get(name).is_some(), "unresolved {r}");
        }
        let patch = &doc["paths"]["/api/v1/namespaces/{namespace}/services/{name}"]["patch"];
        assert!(patch["parameters"].as_array().unwrap().iter().any(|p| p["in"] == "body"));
    }
}
