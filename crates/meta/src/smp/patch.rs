//! Applying a strategic merge patch (see the module documentation of [`super`]).

use serde_json::{Map, Value};

use super::schema::{type_for_kind, Field, ListStrategy, TypeDef};
use super::{type_name, value_eq, Path, SmpError};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

/// Applies a strategic merge patch to `original` and returns the patched object, as
/// kube-apiserver does for `Content-Type: application/strategic-merge-patch+json`.
///
/// `kind` picks the patch metadata: the object's `kind` (`"Deployment"`), optionally prefixed by
/// its apiVersion and a slash (`"apps/v1/Deployment"`); see [`type_for_kind`]. A kind without
/// metadata (a custom resource, say) is patched with the defaults: objects merged recursively,
/// lists replaced, directives still honoured. A `null` original is treated as `{}`.
///
/// ```
/// use serde_json::json;
/// use podnet_meta::smp::strategic_merge_patch;
///
/// let live = json!({"spec": {"template": {"spec": {"containers": [
///     {"name": "web", "image": "nginx:1.25"},
///     {"name": "sidecar", "image": "envoy"},
/// ]}}}});
/// let patch = json!({"spec": {"template": {"spec": {"containers": [
///     {"name": "web", "image": "nginx:1.27"},
/// ]}}}});
/// let patched = strategic_merge_patch(&live, &patch, "Deployment").unwrap();
/// assert_eq!(patched["spec"]["template"]["spec"]["containers"], json!([
///     {"name": "web", "image": "nginx:1.27"},
///     {"name": "sidecar", "image": "envoy"},
/// ]));
/// ```
pub fn strategic_merge_patch(original: &Value, patch: &Value, kind: &str) -> Result<Value, SmpError> {
    strategic_merge_patch_with(original, patch, type_for_kind(kind))
}

/// [`strategic_merge_patch`] with an explicit schema root (`None`: no patch metadata at all).
pub fn strategic_merge_patch_with(
    original: &Value,
    patch: &Value,
    schema: Option<&'static TypeDef>,
) -> Result<Value, SmpError> {
    let Value::Object(patch) = patch else {
        return Err(SmpError::NotAnObject { what: "patch", found: type_name(patch) });
    };
    let original = match original {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        other => return Err(SmpError::NotAnObject { what: "original object", found: type_name(other) }),
    };
    merge_map(original, patch, schema, &Path::ROOT).map(Value::Object)
}

/// Merges a patch object into an original object of type `ty`.
fn merge_map(
    original: Map<String, Value>,
    patch: &Map<String, Value>,
    ty: Option<&'static TypeDef>,
    path: &Path<'_>,
) -> Result<Map<String, Value>, SmpError> {
    if let Some(directive) = patch.get(DIRECTIVE) {
        match directive.as_str() {
            // The rest of the patch object is the new value, directives in it interpreted.
            Some("replace") => return merge_fields(Map::new(), patch, ty, path),
            // Upstream returns an empty map: the field stays, emptied.
            Some("delete") => return Ok(Map::new()),
            Some("merge") => {}
            _ => return Err(SmpError::InvalidPatchDirective { path: path.render(), value: directive.to_string() }),
        }
    }
    merge_fields(original, patch, ty, path)
}

/// Whether a patch key is a directive rather than a field.
fn is_directive(key: &str) -> bool {
    key == DIRECTIVE
        || key == RETAIN_KEYS
        || key.starts_with(SET_ELEMENT_ORDER)
        || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
}

/// The field a `<prefix>/<field>` directive key names.
fn directive_target<'k>(key: &'k str, prefix: &'static str, path: &Path<'_>) -> Result<&'k str, SmpError> {
    match key.split_once('/') {
        Some((p, field)) if p == prefix && !field.is_empty() => Ok(field),
        _ => Err(SmpError::MalformedDirective { path: path.render(), key: key.to_string(), prefix }),
    }
}

/// The merge of a patch object into an original object, `$patch` aside.
fn merge_fields(
    mut original: Map<String, Value>,
    patch: &Map<String, Value>,
    ty: Option<&'static TypeDef>,
    path: &Path<'_>,
) -> Result<Map<String, Value>, SmpError> {
    let field_of = |name: &str| ty.and_then(|t| t.field(name));

    // $retainKeys: every field the patch sets must be retained; the original loses the others.
    if let Some(retain) = patch.get(RETAIN_KEYS) {
        let Value::Array(retain) = retain else {
            return Err(SmpError::InvalidDirectiveValue {
                path: path.render(),
                directive: RETAIN_KEYS.to_string(),
                expected: "a list of field names",
                found: type_name(retain),
            });
        };
        let retained = |k: &str| retain.iter().any(|r| r.as_str() == Some(k));
        if let Some((k, _)) = patch.iter().find(|(k, v)| !v.is_null() && !is_directive(k) && !retained(k)) {
            return Err(SmpError::RetainKeysMismatch { path: path.render(), field: k.clone() });
        }
        original.retain(|k, _| retained(k));
    }

    // $setElementOrder/<field>: merge the list now, then order it. The list's own patch entry
    // is then done with.
    let mut ordered: Vec<&str> = Vec::new();
    for (key, order) in patch {
        if !key.starts_with(SET_ELEMENT_ORDER) {
            continue;
        }
        let name = directive_target(key, SET_ELEMENT_ORDER, path)?;
        let Value::Array(order) = order else {
            return Err(SmpError::InvalidDirectiveValue {
                path: path.render(),
                directive: key.clone(),
                expected: "a list",
                found: type_name(order),
            });
        };
        let Some(field) = field_of(name).filter(|f| f.list != ListStrategy::Replace) else {
            // Only merged lists have an order to set; a replaced list comes whole from the patch.
            continue;
        };
        let fpath = path.field(name);
        let patch_list = match patch.get(name) {
            Some(Value::Array(list)) => Some(list),
            // A null or a non-list: the main loop deletes or replaces the field.
            Some(_) => continue,
            None => None,
        };
        let original_list = match original.get_mut(name) {
            Some(Value::Array(list)) => Some(std::mem::take(list)),
            _ => None,
        };
        let key_name = match field.list {
            ListStrategy::MergeByKey(k) => Some(k),
            _ => None,
        };
        if let Some(patch_list) = patch_list {
            check_element_order(patch_list, order, key_name, name, &fpath)?;
        }
        let merge = match (original_list, patch_list) {
            (None, None) => continue,
            (Some(list), None) => ListMerge { view: list.clone(), merged: list },
            (original_list, Some(patch_list)) => {
                merge_list(original_list.unwrap_or_default(), patch_list, field, &fpath)?
            }
        };
        let key_name = key_name.filter(|_| merge.merged.iter().any(Value::is_object));
        let mut ids = Vec::with_capacity(order.len());
        for o in order {
            ids.push(ident(o, key_name).ok_or_else(|| missing_key(&fpath, key_name.unwrap_or_default(), o))?);
        }
        let list = order_items(merge.merged, &ids, &merge.view, key_name);
        original.insert(name.to_string(), Value::Array(list));
        ordered.push(name);
    }

    for (key, value) in patch {
        if key == DIRECTIVE
            || key == RETAIN_KEYS
            || key.starts_with(SET_ELEMENT_ORDER)
            || ordered.contains(&key.as_str())
        {
            continue;
        }
        if key.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
            let name = directive_target(key, DELETE_FROM_PRIMITIVE_LIST, path)?;
            let Value::Array(remove) = value else {
                return Err(SmpError::InvalidDirectiveValue {
                    path: path.render(),
                    directive: key.clone(),
                    expected: "a list",
                    found: type_name(value),
                });
            };
            // Upstream deletes from any list, merged or not, and leaves a missing list missing.
            if let Some(Value::Array(list)) = original.get_mut(name) {
                list.retain(|v| !remove.iter().any(|r| value_eq(v, r)));
            }
            continue;
        }
        if value.is_null() {
            original.shift_remove(key);
            continue;
        }
        let field = field_of(key);
        let current = original.get_mut(key).map(std::mem::take);
        let merged = merge_value(current, value, field, &path.field(key))?;
        original.insert(key.clone(), merged);
    }
    Ok(original)
}

/// The merge of a patch value into an original value (`None`: the original lacks the field).
fn merge_value(
    original: Option<Value>,
    patch: &Value,
    field: Option<&'static Field>,
    path: &Path<'_>,
) -> Result<Value, SmpError> {
    let ty = field.and_then(|f| f.ty);
    match (original, patch) {
        (Some(Value::Object(o)), Value::Object(p)) => merge_map(o, p, ty, path).map(Value::Object),
        (_, Value::Object(p)) => merge_map(Map::new(), p, ty, path).map(Value::Object),
        (original, Value::Array(p)) => {
            let original = match original {
                Some(Value::Array(o)) => o,
                _ => Vec::new(),
            };
            match field {
                Some(f) if f.list != ListStrategy::Replace => {
                    Ok(Value::Array(merge_list(original, p, f, path)?.merged))
                }
                _ => fresh_list(p, ty, path).map(Value::Array),
            }
        }
        (_, scalar) => Ok(scalar.clone()),
    }
}

/// A patch list that replaces the original one, its objects' directives interpreted.
fn fresh_list(patch: &[Value], ty: Option<&'static TypeDef>, path: &Path<'_>) -> Result<Vec<Value>, SmpError> {
    patch
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::Object(p) => merge_map(Map::new(), p, ty, &path.index(i)).map(Value::Object),
            Value::Array(p) => fresh_list(p, None, &path.index(i)).map(Value::Array),
            other => Ok(other.clone()),
        })
        .collect()
}

/// The result of merging a list: the merged elements, and the order of the original elements
/// that later ordering steps compare against.
struct ListMerge {
    merged: Vec<Value>,
    /// What upstream's `$setElementOrder` step sees as the live list: the original after the
    /// deletions, its freed slots overwritten by the first added elements (upstream deletes and
    /// appends in place in the same backing array, and kube-apiserver's results depend on it).
    view: Vec<Value>,
}

#[derive(PartialEq)]
enum Elements {
    Objects,
    Scalars,
}

/// Whether the elements of the lists are all objects or all primitives.
fn element_kind(lists: [&[Value]; 2], path: &Path<'_>) -> Result<Elements, SmpError> {
    let mut kind = None;
    for v in lists.into_iter().flatten() {
        let this = match v {
            Value::Array(_) => return Err(SmpError::ListOfLists { path: path.render() }),
            Value::Object(_) => Elements::Objects,
            _ => Elements::Scalars,
        };
        match &kind {
            None => kind = Some(this),
            Some(k) if *k != this => return Err(SmpError::MixedList { path: path.render() }),
            Some(_) => {}
        }
    }
    Ok(kind.unwrap_or(Elements::Scalars))
}

fn missing_key(path: &Path<'_>, key: &str, element: &Value) -> SmpError {
    SmpError::MissingMergeKey { path: path.render(), key: key.to_string(), element: element.to_string() }
}

/// Merges a patch list into an original list of a field with a merge strategy.
fn merge_list(
    original: Vec<Value>,
    patch: &[Value],
    field: &'static Field,
    path: &Path<'_>,
) -> Result<ListMerge, SmpError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(ListMerge { merged: original, view: Vec::new() });
    }
    if element_kind([&original, patch], path)? == Elements::Scalars {
        // A union, without duplicates, ordered like the patch around the original.
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for v in original.iter().chain(patch) {
            if !merged.iter().any(|m| value_eq(m, v)) {
                merged.push(v.clone());
            }
        }
        let order: Vec<&Value> = patch.iter().collect();
        let merged = order_items(merged, &order, &original, None);
        return Ok(ListMerge { merged, view: original });
    }
    let ListStrategy::MergeByKey(key) = field.list else {
        return Err(SmpError::NoMergeKey { path: path.render() });
    };
    let ty = field.ty;

    // The special elements first: deletions by key, and the replace marker.
    let original_len = original.len();
    let mut base = original;
    let mut items: Vec<&Map<String, Value>> = Vec::with_capacity(patch.len());
    let mut replace = false;
    for element in patch {
        let Value::Object(obj) = element else { unreachable!("element_kind checked that the elements are objects") };
        let Some(directive) = obj.get(DIRECTIVE) else {
            items.push(obj);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let Some(k) = obj.get(key) else {
                    return Err(missing_key(path, key, element));
                };
                base.retain(|e| !ident(e, Some(key)).is_some_and(|v| value_eq(v, k)));
            }
            Some("replace") => replace = true,
            Some("merge") => {
                return Err(SmpError::MergeDirectiveInList { path: path.render() });
            }
            _ => return Err(SmpError::InvalidPatchDirective { path: path.render(), value: directive.to_string() }),
        }
    }
    if replace {
        // The list becomes the other elements of the patch, in their order.
        let merged = items
            .iter()
            .enumerate()
            .map(|(i, p)| merge_map(Map::new(), p, ty, &path.index(i)).map(Value::Object))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(ListMerge { merged, view: base });
    }

    let after_delete = base.clone();
    let deleted = original_len - after_delete.len();
    let mut added = Vec::new();
    for obj in &items {
        let Some(k) = obj.get(key) else {
            return Err(missing_key(path, key, &Value::Object((*obj).clone())));
        };
        let epath = path.keyed(key, k);
        let found = base.iter().position(|e| ident(e, Some(key)).is_some_and(|v| value_eq(v, k)));
        match found {
            Some(i) => {
                let Value::Object(o) = std::mem::take(&mut base[i]) else {
                    unreachable!("element_kind checked that the elements are objects")
                };
                base[i] = Value::Object(merge_fields(o, obj, ty, &epath)?);
            }
            None => {
                let new = Value::Object(merge_fields(Map::new(), obj, ty, &epath)?);
                if added.len() < deleted {
                    added.push(new.clone());
                }
                base.push(new);
            }
        }
    }
    let order: Vec<&Value> = items.iter().filter_map(|o| o.get(key)).collect();
    let merged = order_items(base, &order, &after_delete, Some(key));
    let mut view = after_delete;
    view.extend(added);
    Ok(ListMerge { merged, view })
}

/// The identity of a list element: its merge key's value, or the element itself for primitives.
fn ident<'v>(v: &'v Value, key: Option<&str>) -> Option<&'v Value> {
    match key {
        Some(k) => v.as_object()?.get(k),
        None => Some(v),
    }
}

/// Where an element with this identity is in `list`.
fn position(list: &[Value], id: &Value, key: Option<&str>) -> Option<usize> {
    list.iter().position(|e| ident(e, key).is_some_and(|v| value_eq(v, id)))
}

/// Orders merged elements as upstream does: the elements named in `order` (the identities of
/// the patch list's or the `$setElementOrder` list's elements) in that order, the others
/// (server-only) in their `server` order, and the two interleaved: a server-only element goes
/// before a named one only if it came before it in `server`.
fn order_items(merged: Vec<Value>, order: &[&Value], server: &[Value], key: Option<&str>) -> Vec<Value> {
    let named_rank = |v: &Value| {
        let id = ident(v, key)?;
        order.iter().position(|o| value_eq(o, id))
    };
    let server_rank = |v: &Value| ident(v, key).and_then(|id| position(server, id, key));
    let (mut named, mut server_only): (Vec<Value>, Vec<Value>) =
        merged.into_iter().partition(|v| named_rank(v).is_some());
    named.sort_by_key(|v| named_rank(v));
    server_only.sort_by_key(|v| server_rank(v).unwrap_or(usize::MAX));

    let mut out = Vec::with_capacity(named.len() + server_only.len());
    let mut named = named.into_iter().peekable();
    let mut server_only = server_only.into_iter().peekable();
    loop {
        let take_server = match (server_only.peek(), named.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(s), Some(n)) => match (server_rank(s), server_rank(n)) {
                (Some(si), Some(ni)) => si < ni,
                _ => false,
            },
        };
        let next = if take_server { server_only.next() } else { named.next() };
        out.extend(next);
    }
    out
}

/// Checks that the patch list's elements come in the order of the `$setElementOrder` list, and
/// that the order list names all of them (deletions and other directives aside).
fn check_element_order(
    patch: &[Value],
    order: &[Value],
    key: Option<&str>,
    field: &str,
    path: &Path<'_>,
) -> Result<(), SmpError> {
    let has_directive = |v: &Value| v.as_object().is_some_and(|o| o.contains_key(DIRECTIVE));
    let identity = |v: &'_ Value| -> Result<Value, SmpError> {
        match key {
            Some(k) => match v.as_object() {
                Some(o) => o.get(k).cloned().ok_or_else(|| missing_key(path, k, v)),
                None => {
                    Err(SmpError::ElementNotObject { path: path.render(), key: k.to_string(), found: type_name(v) })
                }
            },
            None => Ok(v.clone()),
        }
    };
    let items: Vec<&Value> = patch.iter().filter(|v| !has_directive(v)).collect();
    let mut i = 0;
    for o in order {
        let Some(item) = items.get(i) else { break };
        if value_eq(&identity(item)?, &identity(o)?) {
            i += 1;
        }
    }
    if i < items.len() {
        return Err(SmpError::SetElementOrderMismatch { path: path.render(), field: field.to_string() });
    }
    Ok(())
}
