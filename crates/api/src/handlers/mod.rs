//! The verbs: get, list, create, update, patch, delete and deletecollection on every resource,
//! with the object lifecycle kube-apiserver gives them — system metadata, defaults, validation,
//! the status and scale subresources, pod binding and graceful deletion, finalizers, namespace
//! termination and the Service registry. Watch lives in [`crate::watch`].
//!
//! Every write goes through one pipeline: decode → shape check ([`crate::typed`]) → defaults →
//! registry hooks → validation → a [`Store::mutate`] whose closure checks preconditions against
//! the stored object under the store lock.
//!
//! [`read`] has get and list, [`create`] create and binding, [`update`] update and patch (and
//! the status and scale subresources), [`delete`] delete, deletecollection and namespace
//! termination.

mod create;
mod delete;
mod read;
mod update;

pub use delete::DeleteOptions;
pub use update::scale_view;

use chrono::{SecondsFormat, Utc};
use podnet_meta::{fields::FieldSelector, labels::Selector};
use rand::Rng;
use serde_json::{json, Map, Value};

use crate::request::{Query, Target};
use crate::resources::ResourceInfo;
use crate::status::{ApiError, ApiResult};
use crate::store::ObjectKey;
use crate::table::IncludeObject;

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
    /// Anything else, with its media type (health checks, the protobuf OpenAPI v2 document).
    Typed {
        bytes: Vec<u8>,
        content_type: &'static str,
    },
}

impl Reply {
    pub(crate) fn json(code: u16, body: Value, warnings: Vec<String>) -> Reply {
        Reply { code, body: ReplyBody::Json(body), warnings }
    }
}

/// RFC 3339 time with seconds, as Kubernetes writes `metav1.Time`.
pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub(crate) fn meta(obj: &Value) -> &Value {
    &obj["metadata"]
}

pub(crate) fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    obj["metadata"].as_object_mut().expect("metadata is an object")
}

pub(crate) fn not_found(res: &ResourceInfo, name: &str) -> ApiError {
    ApiError::NotFound { group: res.group.into(), kind: res.plural.into(), name: name.into() }
}

pub(crate) fn key(t: &Target, name: &str) -> ObjectKey {
    ObjectKey { resource: t.resource, namespace: t.ns().to_string(), name: name.to_string() }
}

/// The random suffix of generated names: 5 characters from the alphabet upstream uses (no
/// vowels, no look-alike digits).
pub(crate) fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
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

    /// Whether the filter has no selectors (everything matches).
    pub fn is_empty(&self) -> bool {
        self.labels.is_none() && self.fields.is_none()
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

pub(crate) fn include_object(q: &Query) -> ApiResult<IncludeObject> {
    IncludeObject::parse(q.get("includeObject").unwrap_or("")).ok_or_else(|| {
        ApiError::bad_request("invalid includeObject: supported values: \"None\", \"Metadata\", \"Object\"")
    })
}
