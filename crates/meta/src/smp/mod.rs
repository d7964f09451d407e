//! Strategic merge patch, as kube-apiserver applies `application/strategic-merge-patch+json`,
//! and the merge behind server-side apply (`application/apply-patch+yaml`).
//!
//! Both work on `serde_json::Value` and need to know, for the built-in kinds, how each list is
//! merged. That knowledge lives in [`schema`](TypeDef): a small static tree of the Kubernetes
//! struct types that matter (Pod → PodSpec → Container → …) with, per field, the
//! `patchStrategy`/`patchMergeKey` struct tags of `k8s.io/api` (for strategic merge patch) and the
//! `+listType`/`+listMapKey`/`+mapType`/`+structType` markers (for server-side apply).
//! [`type_for_kind`] finds the root of a kind.
//!
//! # Strategic merge patch
//!
//! [`strategic_merge_patch`] follows `k8s.io/apimachinery/pkg/util/strategicpatch`
//! (`StrategicMergeMapPatch`):
//!
//! - objects merge recursively; a `null` value deletes the field;
//! - lists with a merge key (`containers` by `name`, `ports` by `containerPort`, …) merge element
//!   by element: a patch element merges into the original element with the same key, or is added;
//!   `{"$patch": "delete", "<key>": v}` deletes every element with that key; an element
//!   `{"$patch": "replace"}` makes the list exactly the other elements of the patch list;
//! - lists of primitives with the `merge` strategy (`finalizers`) are unions, and
//!   `$deleteFromPrimitiveList/<field>: [..]` removes values from them;
//! - `$setElementOrder/<field>: [..]` (what `kubectl apply` sends) sets the order of a merged
//!   list; without it, elements named in the patch come in patch order and the others keep their
//!   place relative to them, which puts *new* elements before the untouched ones, as upstream does;
//! - `$patch: replace` in an object replaces it with the rest of the patch object,
//!   `$patch: delete` empties it (the field stays, as `{}`, as upstream), `$patch: merge` is the
//!   default;
//! - `$retainKeys: [..]` in an object drops the original fields it does not name (sent for
//!   `retainKeys` fields such as a Deployment's `spec.strategy` or a Pod's volumes);
//! - every other list is replaced whole, and so is every list of a kind or a field the schema
//!   does not know: unknown objects still merge recursively, like JSON merge patch (RFC 7386).
//!
//! Deliberate differences from upstream, all about inputs `kubectl` never sends: a value the
//! original lacks is built by applying the patch value to nothing, so directives and `null`s
//! inside it are interpreted rather than copied verbatim (upstream copies them and lets the typed
//! decoding drop them); `$deleteFromPrimitiveList` on a missing list does nothing;
//! `$setElementOrder` on a list that is not merged is ignored; original list elements without
//! their merge key are kept as they are instead of failing the patch; `$patch: merge` on an
//! object is accepted as a no-op.
//!
//! # Server-side apply
//!
//! [`apply_merge`] merges an applied configuration into the live object the way the
//! structured-merge-diff library merges two objects: maps and structs field by field,
//! associative lists (`+listType=map`) element by element on their `+listMapKey`s, sets
//! (`+listType=set`) as unions, and atomic lists, atomic maps (`nodeSelector`,
//! Service `selector`) and atomic structs (`LabelSelector`) set whole from the applied config.
//! Fields the applied configuration does not mention are left as they are; a `null` removes the
//! field. There is **no field-ownership tracking**: real server-side apply also *removes* fields
//! that the same field manager applied before and has now dropped, and reports conflicts with
//! other managers; this merge never removes an omitted field and never conflicts, so dropping a
//! container from an applied Deployment does not delete it here (delete it with a strategic merge
//! patch or an update instead).

mod apply;
mod patch;
mod schema;
#[cfg(test)]
mod tests_apply;
#[cfg(test)]
mod tests_errors;
#[cfg(test)]
mod tests_kubectl;
#[cfg(test)]
mod tests_patch;

use std::fmt;

use serde_json::Value;

pub use apply::{apply_merge, apply_merge_with};
pub use patch::{strategic_merge_patch, strategic_merge_patch_with};
pub use schema::{type_for_kind, ApplyStrategy, Field, ListStrategy, TypeDef, KINDS};

/// Why a patch or an applied configuration could not be merged. Each message says where
/// (a path like `.spec.template.spec.containers[name="web"].ports`) and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmpError {
    /// The original object, the patch or the applied configuration is not a JSON object.
    #[error("the {what} must be a JSON object, not {found}")]
    NotAnObject {
        /// `"original object"`, `"patch"`, `"live object"` or `"applied configuration"`.
        what: &'static str,
        /// The JSON type found instead.
        found: &'static str,
    },
    /// A `$patch` directive whose value is not `"replace"`, `"delete"` or `"merge"`.
    #[error("{path}: invalid $patch directive {value}: expected \"replace\", \"delete\" or \"merge\"")]
    InvalidPatchDirective { path: String, value: String },
    /// `$patch: merge` as a list element: upstream does not support it.
    #[error(
        "{path}: a list element cannot carry \"$patch\": \"merge\" (merging lists cannot be specified in the patch)"
    )]
    MergeDirectiveInList { path: String },
    /// A directive (`$retainKeys`, `$setElementOrder/…`, `$deleteFromPrimitiveList/…`) whose value
    /// has the wrong JSON type.
    #[error("{path}: {directive} must be {expected}, not {found}")]
    InvalidDirectiveValue { path: String, directive: String, expected: &'static str, found: &'static str },
    /// A key that starts like a directive but is not `<directive>/<field>`.
    #[error("{path}: malformed directive {key:?}: expected {prefix}/<field>")]
    MalformedDirective { path: String, key: String, prefix: &'static str },
    /// An element of a list merged by key, in the patch or the applied configuration, lacks the
    /// key.
    #[error("{path}: list element does not contain the merge key {key:?}: {element}")]
    MissingMergeKey { path: String, key: String, element: String },
    /// An element of a list merged by key is not an object.
    #[error("{path}: list elements merged by key {key:?} must be objects, found {found}")]
    ElementNotObject { path: String, key: String, found: &'static str },
    /// A merged list mixing objects and other values.
    #[error("{path}: a merged list cannot mix objects and other values")]
    MixedList { path: String },
    /// A merged list whose elements are lists.
    #[error("{path}: lists of lists cannot be merged")]
    ListOfLists { path: String },
    /// A list of objects whose field merges primitives only (no merge key).
    #[error("{path}: cannot merge a list of objects without a merge key")]
    NoMergeKey { path: String },
    /// A field set in a patch object but left out of its `$retainKeys`.
    #[error("{path}: field {field:?} is set in the patch but missing from $retainKeys")]
    RetainKeysMismatch { path: String, field: String },
    /// The elements of a patch list are not in the order of its `$setElementOrder` list.
    #[error("{path}: the order of the patch list does not match $setElementOrder/{field}")]
    SetElementOrderMismatch { path: String, field: String },
    /// Two elements of an applied associative list or set have the same key.
    #[error("{path}: duplicate entries for key {key}")]
    DuplicateKey { path: String, key: String },
}

/// The name of a JSON value's type, for error messages.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Equality of JSON values as Go compares decoded JSON: numbers by value (`80` equals `80.0`).
fn value_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                x == y
            } else if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                x == y
            } else {
                x.as_f64() == y.as_f64()
            }
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| value_eq(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| value_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Where in the document a merge is, as a chain of segments on the stack; rendered only for
/// error messages.
#[derive(Clone, Copy)]
struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    seg: Seg<'a>,
}

#[derive(Clone, Copy)]
enum Seg<'a> {
    Root,
    Field(&'a str),
    /// A list element identified by its merge key.
    Keyed(&'a str, &'a Value),
    Index(usize),
}

impl<'a> Path<'a> {
    const ROOT: Path<'static> = Path { parent: None, seg: Seg::Root };

    fn field(&'a self, name: &'a str) -> Path<'a> {
        Path { parent: Some(self), seg: Seg::Field(name) }
    }

    fn keyed(&'a self, key: &'a str, value: &'a Value) -> Path<'a> {
        Path { parent: Some(self), seg: Seg::Keyed(key, value) }
    }

    fn index(&'a self, i: usize) -> Path<'a> {
        Path { parent: Some(self), seg: Seg::Index(i) }
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(parent) = self.parent {
            parent.fmt(f)?;
        }
        match self.seg {
            Seg::Root => Ok(()),
            Seg::Field(name) => write!(f, ".{name}"),
            Seg::Keyed(key, value) => write!(f, "[{key}={value}]"),
            Seg::Index(i) => write!(f, "[{i}]"),
        }
    }
}

impl Path<'_> {
    /// The rendered path; `.` for the root.
    fn render(&self) -> String {
        let s = self.to_string();
        if s.is_empty() {
            ".".to_string()
        } else {
            s
        }
    }
}
