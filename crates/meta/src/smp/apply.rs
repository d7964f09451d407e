//! The merge of server-side apply (see the module documentation of [`super`]).

use serde_json::{Map, Value};

use super::schema::{list_map_key_default, type_for_kind, ApplyList, Field, TypeDef};
use super::{type_name, value_eq, Path, SmpError};

/// Merges an applied configuration into the live object, for server-side apply
/// (`Content-Type: application/apply-patch+yaml`, the YAML already parsed to JSON).
///
/// The merge follows structured-merge-diff: objects merge field by field; associative lists
/// (`+listType=map`: containers by `name`, container ports by `containerPort` and `protocol`,
/// Service ports by `port` and `protocol`, …) merge element by element, an element missing a
/// `protocol` key counting as `TCP`; sets (`finalizers`) are unions; atomic lists, atomic maps
/// and atomic structs, and scalars, are set from the applied configuration. Merged lists keep
/// the applied order, live-only elements staying next to where they were. A `null` in the
/// applied configuration removes the field. Directives (`$patch`, …) mean nothing here.
///
/// `kind` picks the schema as for [`strategic_merge_patch`](super::strategic_merge_patch);
/// without one, objects merge and lists are atomic. A `null` live object is treated as `{}`
/// (apply creating the object).
///
/// **Limitation**: there is no field ownership. Real server-side apply records which manager
/// set which field (`metadata.managedFields`), removes the fields a manager applied before and
/// no longer applies, and reports conflicts with fields other managers own. Here fields absent
/// from the applied configuration are always kept and nothing conflicts: removing a container,
/// a port or a label from an applied manifest does not remove it from the object.
///
/// Errors: an applied element of an associative list without one of its keys (and no default),
/// or two applied elements with the same key.
pub fn apply_merge(live: &Value, applied: &Value, kind: &str) -> Result<Value, SmpError> {
    apply_merge_with(live, applied, type_for_kind(kind))
}

/// [`apply_merge`] with an explicit schema root (`None`: no metadata at all).
pub fn apply_merge_with(live: &Value, applied: &Value, schema: Option<&'static TypeDef>) -> Result<Value, SmpError> {
    let Value::Object(applied) = applied else {
        return Err(SmpError::NotAnObject { what: "applied configuration", found: type_name(applied) });
    };
    let live = match live {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        other => return Err(SmpError::NotAnObject { what: "live object", found: type_name(other) }),
    };
    apply_map(live, applied, schema, &Path::ROOT).map(Value::Object)
}

fn apply_map(
    mut live: Map<String, Value>,
    applied: &Map<String, Value>,
    ty: Option<&'static TypeDef>,
    path: &Path<'_>,
) -> Result<Map<String, Value>, SmpError> {
    for (key, value) in applied {
        if value.is_null() {
            live.shift_remove(key);
            continue;
        }
        let field = ty.and_then(|t| t.field(key));
        let current = live.get_mut(key).map(std::mem::take);
        let merged = apply_value(current, value, field, &path.field(key))?;
        live.insert(key.clone(), merged);
    }
    Ok(live)
}

fn apply_value(
    live: Option<Value>,
    applied: &Value,
    field: Option<&'static Field>,
    path: &Path<'_>,
) -> Result<Value, SmpError> {
    let ty = field.and_then(|f| f.ty);
    match applied {
        Value::Object(a) => {
            let base = match live {
                Some(Value::Object(m)) if !field.is_some_and(|f| f.apply_atomic_object()) => m,
                _ => Map::new(),
            };
            apply_map(base, a, ty, path).map(Value::Object)
        }
        Value::Array(a) => {
            let live = match live {
                Some(Value::Array(l)) => l,
                _ => Vec::new(),
            };
            match field.map(|f| f.apply_list()) {
                Some(ApplyList::Keys(keys)) => apply_keyed(live, a, keys, ty, path),
                Some(ApplyList::Set) => apply_set(live, a, path),
                Some(ApplyList::Atomic) | None => a
                    .iter()
                    .enumerate()
                    .map(|(i, v)| apply_value(None, v, None, &path.index(i)))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Value::Array),
            }
        }
        scalar => Ok(scalar.clone()),
    }
}

/// The key of an element of an associative list: the values of its key fields, a missing one
/// taking its default. `None` if the element is not an object or lacks a key without default.
fn element_key(v: &Value, keys: &[&str]) -> Option<Vec<Value>> {
    let obj = v.as_object()?;
    keys.iter()
        .map(|k| match obj.get(*k) {
            Some(Value::Null) | None => list_map_key_default(k).map(|d| Value::String(d.to_string())),
            Some(v) => Some(v.clone()),
        })
        .collect()
}

fn key_eq(a: &[Value], b: &[Value]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| value_eq(x, y))
}

fn render_key(keys: &[&str], values: &[Value]) -> String {
    keys.iter().zip(values).map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// Merges an applied associative list into the live one.
fn apply_keyed(
    live: Vec<Value>,
    applied: &[Value],
    keys: &'static [&'static str],
    ty: Option<&'static TypeDef>,
    path: &Path<'_>,
) -> Result<Value, SmpError> {
    let mut applied_keys: Vec<Vec<Value>> = Vec::with_capacity(applied.len());
    for (i, v) in applied.iter().enumerate() {
        if !v.is_object() {
            return Err(SmpError::ElementNotObject {
                path: path.index(i).render(),
                key: keys.join(","),
                found: type_name(v),
            });
        }
        let Some(k) = element_key(v, keys) else {
            let missing = keys.iter().find(|k| v.get(**k).is_none_or(Value::is_null)).copied().unwrap_or_default();
            return Err(SmpError::MissingMergeKey {
                path: path.index(i).render(),
                key: missing.to_string(),
                element: v.to_string(),
            });
        };
        if applied_keys.iter().any(|seen| key_eq(seen, &k)) {
            return Err(SmpError::DuplicateKey { path: path.render(), key: render_key(keys, &k) });
        }
        applied_keys.push(k);
    }
    let live_keys: Vec<Option<Vec<Value>>> = live.iter().map(|v| element_key(v, keys)).collect();
    let merged = interleave(live, &live_keys, applied, &applied_keys, |live, applied, i| {
        let ipath = path.index(i);
        let epath = match (keys.first(), applied_keys[i].first()) {
            (Some(k), Some(v)) => path.keyed(k, v),
            _ => ipath,
        };
        let Value::Object(a) = applied else { unreachable!("applied elements were checked to be objects") };
        let base = match live {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        apply_map(base, a, ty, &epath).map(Value::Object)
    })?;
    Ok(Value::Array(merged))
}

/// Merges an applied set into the live one.
fn apply_set(live: Vec<Value>, applied: &[Value], path: &Path<'_>) -> Result<Value, SmpError> {
    let mut applied_keys: Vec<Vec<Value>> = Vec::with_capacity(applied.len());
    for v in applied {
        if applied_keys.iter().any(|seen| value_eq(&seen[0], v)) {
            return Err(SmpError::DuplicateKey { path: path.render(), key: v.to_string() });
        }
        applied_keys.push(vec![v.clone()]);
    }
    let live_keys: Vec<Option<Vec<Value>>> = live.iter().map(|v| Some(vec![v.clone()])).collect();
    let merged = interleave(live, &live_keys, applied, &applied_keys, |_, a, _| Ok(a.clone()))?;
    Ok(Value::Array(merged))
}

/// The order structured-merge-diff gives a merged list: the applied elements in their order,
/// each merged with its live counterpart, and the live-only elements kept where they were
/// relative to the elements around them. `merge(live, applied, applied_index)` merges one
/// element.
fn interleave(
    live: Vec<Value>,
    live_keys: &[Option<Vec<Value>>],
    applied: &[Value],
    applied_keys: &[Vec<Value>],
    mut merge: impl FnMut(Option<Value>, &Value, usize) -> Result<Value, SmpError>,
) -> Result<Vec<Value>, SmpError> {
    let in_applied = |k: &Option<Vec<Value>>| k.as_ref().and_then(|k| applied_keys.iter().position(|a| key_eq(a, k)));
    let mut live: Vec<Option<Value>> = live.into_iter().map(Some).collect();
    // The live element each applied element merges with (the first with its key).
    let counterpart: Vec<Option<usize>> =
        applied_keys.iter().map(|a| live_keys.iter().position(|k| k.as_ref().is_some_and(|k| key_eq(k, a)))).collect();
    // The applied elements that also are live, in applied order.
    let mut shared = (0..applied.len()).filter(|&i| counterpart[i].is_some());
    let mut next_shared = shared.next();
    let mut done = vec![false; applied.len()];
    let mut out = Vec::with_capacity(live.len() + applied.len());
    let (mut li, mut ai) = (0, 0);
    let mut take_applied = |ai: usize, live: &mut Vec<Option<Value>>, out: &mut Vec<Value>| {
        let base = counterpart[ai].and_then(|i| live[i].take());
        out.push(merge(base, &applied[ai], ai)?);
        Ok::<(), SmpError>(())
    };
    while li < live.len() || ai < applied.len() {
        if li < live.len() && ai < applied.len() {
            if counterpart[ai] == Some(li) {
                take_applied(ai, &mut live, &mut out)?;
                done[ai] = true;
                li += 1;
                ai += 1;
                next_shared = shared.next();
                continue;
            }
            if let Some(j) = in_applied(&live_keys[li]) {
                // A shared element whose turn has not come: it goes where the applied list
                // puts it.
                if next_shared.is_some_and(|n| n != j) || counterpart[j] != Some(li) {
                    li += 1;
                    continue;
                }
            }
        }
        if li < live.len() {
            match in_applied(&live_keys[li]) {
                None => {
                    out.extend(live[li].take());
                    li += 1;
                    continue;
                }
                // Already merged, or a duplicate of a live element that was.
                Some(j) if done[j] || counterpart[j] != Some(li) => {
                    li += 1;
                    continue;
                }
                Some(_) => {}
            }
        }
        if ai < applied.len() {
            take_applied(ai, &mut live, &mut out)?;
            done[ai] = true;
            if next_shared == Some(ai) {
                next_shared = shared.next();
            }
            ai += 1;
        } else {
            li += 1;
        }
    }
    Ok(out)
}
