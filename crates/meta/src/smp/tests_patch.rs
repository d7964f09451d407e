//! Tests of strategic merge patch: the cases of upstream's `strategicpatch` tests, on their
//! `MergeItem` test type.

use serde_json::{json, Value};

use super::schema::{Field, TypeDef};
use super::{strategic_merge_patch, strategic_merge_patch_with, SmpError};

/// Upstream's `MergeItem` test type.
pub(super) static MERGE_ITEM: TypeDef = TypeDef {
    name: "MergeItem",
    fields: &[
        Field::new("mergingList").of(&MERGE_ITEM).merge_key("name"),
        Field::new("nonMergingList").of(&MERGE_ITEM),
        Field::new("mergingIntList").merge_primitives(),
        Field::new("mergeItemPtr").of(&MERGE_ITEM).merge_key("name"),
        Field::new("retainKeysMap").of(&RETAIN_KEYS_ITEM).retain_keys(),
        Field::new("retainKeysMergingList").of(&MERGE_ITEM).merge_key("name").retain_keys(),
    ],
    atomic: false,
};

static RETAIN_KEYS_ITEM: TypeDef = TypeDef {
    name: "RetainKeysMergeItem",
    fields: &[
        Field::new("mergingIntList").merge_primitives(),
        Field::new("mergingList").of(&MERGE_ITEM).merge_key("name"),
    ],
    atomic: false,
};

fn item(original: Value, patch: Value) -> Value {
    strategic_merge_patch_with(&original, &patch, Some(&MERGE_ITEM)).unwrap_or_else(|e| panic!("patch failed: {e}"))
}

pub(super) fn item_err(original: Value, patch: Value) -> SmpError {
    strategic_merge_patch_with(&original, &patch, Some(&MERGE_ITEM)).expect_err("the patch should fail")
}

// ---- maps ----

#[test]
fn adds_changes_and_deletes_fields() {
    assert_eq!(
        item(json!({"name": 1, "other": "a"}), json!({"value": 1})),
        json!({"name": 1, "other": "a", "value": 1})
    );
    assert_eq!(
        item(json!({"name": 1, "other": "a"}), json!({"name": null, "value": 1})),
        json!({"other": "a", "value": 1})
    );
    assert_eq!(
        item(json!({"simpleMap": {"key1": 1, "key2": 1, "other": "a"}}), json!({"simpleMap": {"key2": null}})),
        json!({"simpleMap": {"key1": 1, "other": "a"}})
    );
}

#[test]
fn null_for_a_missing_field_is_dropped() {
    assert_eq!(
        item(json!({"name": "a"}), json!({"name": 1, "value": 1, "other": null})),
        json!({"name": 1, "value": 1})
    );
}

#[test]
fn empty_patch_changes_nothing() {
    let original = json!({"name": 1, "mergingList": [{"name": "a"}]});
    assert_eq!(item(original.clone(), json!({})), original);
}

#[test]
fn null_original_is_an_empty_object() {
    assert_eq!(
        strategic_merge_patch_with(&Value::Null, &json!({"name": 1}), Some(&MERGE_ITEM)).unwrap(),
        json!({"name": 1})
    );
}

#[test]
fn field_order_is_preserved() {
    let patched = item(json!({"a": 1, "b": 2, "c": 3}), json!({"b": null, "d": 4, "a": 5}));
    let keys: Vec<&String> = patched.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["a", "c", "d"]);
}

#[test]
fn patch_delete_directive_empties_a_map() {
    assert_eq!(
        item(json!({"simpleMap": {"key1": 1, "key2": 1}}), json!({"simpleMap": {"$patch": "delete"}})),
        json!({"simpleMap": {}})
    );
}

#[test]
fn patch_replace_directive_replaces_a_map() {
    assert_eq!(item(json!({"name": 1, "value": 1}), json!({"$patch": "replace"})), json!({}));
    assert_eq!(item(json!({"name": 1, "value": 1}), json!({"other": "a", "$patch": "replace"})), json!({"other": "a"}));
    assert_eq!(
        item(json!({"simpleMap": {"key1": 1}, "name": 1}), json!({"simpleMap": {"$patch": "replace", "key2": 2}})),
        json!({"simpleMap": {"key2": 2}, "name": 1})
    );
}

#[test]
fn patch_merge_directive_on_a_map_is_the_default() {
    assert_eq!(
        item(json!({"simpleMap": {"key1": 1}}), json!({"simpleMap": {"$patch": "merge", "key2": 2}})),
        json!({"simpleMap": {"key1": 1, "key2": 2}})
    );
}

#[test]
fn type_change_takes_the_patch_value() {
    assert_eq!(
        item(json!({"simpleMap": "x"}), json!({"simpleMap": {"a": 1, "b": null}})),
        json!({"simpleMap": {"a": 1}})
    );
    assert_eq!(item(json!({"simpleMap": {"a": 1}}), json!({"simpleMap": [1]})), json!({"simpleMap": [1]}));
}

// ---- lists of primitives ----

#[test]
fn non_merging_lists_are_replaced() {
    assert_eq!(
        item(json!({"nonMergingIntList": [1, 2]}), json!({"nonMergingIntList": [2, 3]})),
        json!({"nonMergingIntList": [2, 3]})
    );
    assert_eq!(
        item(
            json!({"nonMergingList": [{"name": 1, "value": "a"}, {"name": 2}]}),
            json!({"nonMergingList": [{"name": 1, "value": null, "other": "b"}]})
        ),
        json!({"nonMergingList": [{"name": 1, "other": "b"}]})
    );
}

#[test]
fn merging_int_list_is_a_union() {
    assert_eq!(
        item(json!({"mergingIntList": [1, 2]}), json!({"mergingIntList": [2, 3]})),
        json!({"mergingIntList": [1, 2, 3]})
    );
}

#[test]
fn merging_int_list_takes_the_patch_order() {
    assert_eq!(
        item(json!({"mergingIntList": [1, 2, 3]}), json!({"mergingIntList": [3, 1, 2]})),
        json!({"mergingIntList": [3, 1, 2]})
    );
    assert_eq!(
        item(json!({"mergingIntList": [1, 2, 3]}), json!({"mergingIntList": [3, 1]})),
        json!({"mergingIntList": [2, 3, 1]})
    );
}

#[test]
fn delete_from_primitive_list() {
    assert_eq!(
        item(json!({"mergingIntList": [1, 2, 3]}), json!({"$deleteFromPrimitiveList/mergingIntList": [2]})),
        json!({"mergingIntList": [1, 3]})
    );
    // Upstream deletes from lists without the merge strategy too.
    assert_eq!(
        item(json!({"nonMergingIntList": [1, 2, 3]}), json!({"$deleteFromPrimitiveList/nonMergingIntList": [2]})),
        json!({"nonMergingIntList": [1, 3]})
    );
}

#[test]
fn delete_from_primitive_list_never_adds() {
    assert_eq!(
        item(json!({"mergingIntList": [1, 2]}), json!({"$deleteFromPrimitiveList/mergingIntList": [3]})),
        json!({"mergingIntList": [1, 2]})
    );
    assert_eq!(
        item(json!({"mergingIntList": null}), json!({"$deleteFromPrimitiveList/mergingIntList": [3]})),
        json!({"mergingIntList": null})
    );
    assert_eq!(
        item(json!({"foo": ["bar"]}), json!({"$deleteFromPrimitiveList/mergingIntList": [3]})),
        json!({"foo": ["bar"]})
    );
}

#[test]
fn delete_from_primitive_list_removes_duplicates_with_set_element_order() {
    assert_eq!(
        item(
            json!({"mergingIntList": [1, 2, 3, 3, 4]}),
            json!({
                "$setElementOrder/mergingIntList": [1, 2],
                "$deleteFromPrimitiveList/mergingIntList": [3],
            })
        ),
        json!({"mergingIntList": [1, 2, 4]})
    );
}

#[test]
fn add_and_delete_in_primitive_list() {
    assert_eq!(
        item(
            json!({"mergingIntList": [1, 2, 3, 4]}),
            json!({
                "$setElementOrder/mergingIntList": [1, 2, 4],
                "$deleteFromPrimitiveList/mergingIntList": [3],
                "mergingIntList": [4],
            })
        ),
        json!({"mergingIntList": [1, 2, 4]})
    );
}

#[test]
fn set_element_order_alone_reorders_an_int_list() {
    assert_eq!(
        item(json!({"mergingIntList": [1, 3]}), json!({"$setElementOrder/mergingIntList": [3, 2, 1]})),
        json!({"mergingIntList": [3, 1]})
    );
}

// ---- lists merged by key ----

#[test]
fn merging_list_merges_elements_by_key() {
    assert_eq!(
        item(
            json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}]}),
            json!({
                "$setElementOrder/mergingList": [{"name": 1}, {"name": 2}],
                "mergingList": [{"name": 1, "value": 1}],
            })
        ),
        json!({"mergingList": [
            {"name": 1, "other": "a", "value": 1},
            {"name": 2, "value": 2, "other": "b"},
        ]})
    );
}

#[test]
fn merging_list_deletes_a_field_of_an_element() {
    assert_eq!(
        item(
            json!({"mergingList": [{"name": 1, "value": 1, "other": "a"}, {"name": 2, "value": 2}]}),
            json!({
                "$setElementOrder/mergingList": [{"name": 1}, {"name": 2}],
                "mergingList": [{"name": 1, "value": null}],
            })
        ),
        json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2}]})
    );
}

#[test]
fn merging_list_with_set_element_order_adds_in_order() {
    assert_eq!(
        item(
            json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}]}),
            json!({
                "$setElementOrder/mergingList": [{"name": 4}, {"name": 1}, {"name": 2}, {"name": 3}],
                "mergingList": [{"name": 4, "value": 4}, {"name": 3, "value": 3}],
            })
        ),
        json!({"mergingList": [
            {"name": 4, "value": 4},
            {"name": 1, "other": "a"},
            {"name": 2, "value": 2, "other": "b"},
            {"name": 3, "value": 3},
        ]})
    );
}

#[test]
fn merging_list_with_set_element_order_keeps_server_only_elements() {
    assert_eq!(
        item(
            json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 3, "value": 2, "other": "b"}]}),
            json!({
                "$setElementOrder/mergingList": [{"name": 1}, {"name": 2}],
                "mergingList": [{"name": 1, "value": 1}, {"name": 2, "value": 2}],
            })
        ),
        json!({"mergingList": [
            {"name": 1, "other": "a", "value": 1},
            {"name": 2, "value": 2},
            {"name": 3, "value": 2, "other": "b"},
        ]})
    );
}

#[test]
fn set_element_order_may_name_missing_elements() {
    assert_eq!(
        item(
            json!({"mergingList": [{"name": 1}, {"name": 3}]}),
            json!({
                "$setElementOrder/mergingList": [{"name": 3}, {"name": 2}, {"name": 1}],
                "mergingList": [{"name": 3, "value": 3}, {"name": 1, "value": 1}],
            })
        ),
        json!({"mergingList": [{"name": 3, "value": 3}, {"name": 1, "value": 1}]})
    );
}

#[test]
fn merging_list_takes_the_patch_order_without_set_element_order() {
    assert_eq!(
        item(
            json!({"mergingList": [{"name": 1}, {"name": 2, "value": "b"}, {"name": 3}]}),
            json!({"mergingList": [
                {"name": 3, "value": "c"},
                {"name": 1, "value": "a"},
                {"name": 2, "other": "x"},
            ]})
        ),
        json!({"mergingList": [
            {"name": 3, "value": "c"},
            {"name": 1, "value": "a"},
            {"name": 2, "value": "b", "other": "x"},
        ]})
    );
    assert_eq!(
        item(
            json!({"mergingList": [{"name": 1}, {"name": 2, "value": "b"}, {"name": 3}]}),
            json!({"mergingList": [{"name": 3, "value": "c"}, {"name": 1, "value": "a"}]})
        ),
        json!({"mergingList": [
            {"name": 2, "value": "b"},
            {"name": 3, "value": "c"},
            {"name": 1, "value": "a"},
        ]})
    );
}

#[test]
fn new_elements_come_first_without_set_element_order() {
    // What upstream does (and the Kubernetes docs show for `kubectl patch` adding a container).
    assert_eq!(
        item(json!({"mergingList": [{"name": "a"}, {"name": "b"}]}), json!({"mergingList": [{"name": "c"}]})),
        json!({"mergingList": [{"name": "c"}, {"name": "a"}, {"name": "b"}]})
    );
}

#[test]
fn delete_directive_removes_elements() {
    assert_eq!(
        item(
            json!({"mergingList": [{"name": 1}, {"name": 2, "other": "b"}]}),
            json!({
                "$setElementOrder/mergingList": [{"name": 2}],
                "mergingList": [{"name": 1, "$patch": "delete"}],
            })
        ),
        json!({"mergingList": [{"name": 2, "other": "b"}]})
    );
    // Deleting what is not there is fine.
    assert_eq!(
        item(
            json!({"mergingList": [{"name": 2, "other": "b"}]}),
            json!({"mergingList": [{"name": 1, "$patch": "delete"}]})
        ),
        json!({"mergingList": [{"name": 2, "other": "b"}]})
    );
}

#[test]
fn delete_directive_removes_all_duplicates() {
    assert_eq!(
        item(
            json!({"mergingList": [
                {"name": 1}, {"name": 1}, {"name": 2, "value": "a"}, {"name": 3}, {"name": 3},
            ]}),
            json!({"mergingList": [
                {"name": 1, "$patch": "delete"},
                {"name": 3, "$patch": "delete"},
            ]})
        ),
        json!({"mergingList": [{"name": 2, "value": "a"}]})
    );
}

#[test]
fn delete_all_elements() {
    assert_eq!(
        item(
            json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "other": "b"}]}),
            json!({"mergingList": [
                {"name": 1, "$patch": "delete"},
                {"name": 2, "$patch": "delete"},
            ]})
        ),
        json!({"mergingList": []})
    );
}

#[test]
fn add_and_delete_with_server_only_elements() {
    // The new element takes the freed place, after the server-only one, as upstream.
    assert_eq!(
        item(
            json!({"mergingList": [{"name": 1}, {"name": 2, "other": "b"}, {"name": 4, "other": "c"}]}),
            json!({
                "$setElementOrder/mergingList": [{"name": 2}, {"name": 3}],
                "mergingList": [{"name": 3}, {"name": 1, "$patch": "delete"}],
            })
        ),
        json!({"mergingList": [
            {"name": 2, "other": "b"},
            {"name": 4, "other": "c"},
            {"name": 3},
        ]})
    );
    assert_eq!(
        item(
            json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 4, "other": "c"}]}),
            json!({
                "$setElementOrder/mergingList": [{"name": 2}, {"name": 3}],
                "mergingList": [{"name": 2}, {"name": 3}, {"name": 1, "$patch": "delete"}],
            })
        ),
        json!({"mergingList": [{"name": 4, "other": "c"}, {"name": 2}, {"name": 3}]})
    );
    assert_eq!(
        item(
            json!({"mergingList": [{"name": 3, "other": "a"}]}),
            json!({
                "$setElementOrder/mergingList": [{"name": 2}],
                "mergingList": [{"name": 2}, {"name": 1, "$patch": "delete"}],
            })
        ),
        json!({"mergingList": [{"name": 2}, {"name": 3, "other": "a"}]})
    );
}

#[test]
fn replace_directive_in_a_list() {
    assert_eq!(
        item(json!({"mergingList": [{"name": 1}, {"name": 2}]}), json!({"mergingList": [{"$patch": "replace"}]})),
        json!({"mergingList": []})
    );
    assert_eq!(
        item(
            json!({"mergingList": [{"name": 1, "value": "a"}, {"name": 2}]}),
            json!({"mergingList": [{"name": 3}, {"name": 1, "other": "b"}, {"$patch": "replace"}]})
        ),
        json!({"mergingList": [{"name": 3}, {"name": 1, "other": "b"}]})
    );
}

#[test]
fn empty_merging_lists() {
    assert_eq!(item(json!({"mergingList": []}), json!({"mergingList": []})), json!({"mergingList": []}));
}

#[test]
fn nested_merging_lists() {
    assert_eq!(
        item(
            json!({"mergingList": [
                {"name": 1, "mergingList": [{"name": "a", "value": 1}, {"name": "b"}]},
                {"name": 2},
            ]}),
            json!({"mergingList": [
                {"name": 1, "mergingList": [{"name": "a", "value": 2}, {"name": "b", "$patch": "delete"}]},
            ]})
        ),
        json!({"mergingList": [
            {"name": 1, "mergingList": [{"name": "a", "value": 2}]},
            {"name": 2},
        ]})
    );
}

#[test]
fn non_merging_list_nested_in_merging_list_is_replaced() {
    assert_eq!(
        item(
            json!({"mergingList": [
                {"name": 1, "other": "a", "nonMergingList": [{"name": 1}, {"name": 2, "value": 2}]},
                {"name": 2, "other": "b"},
            ]}),
            json!({
                "$setElementOrder/mergingList": [{"name": 1}, {"name": 2}],
                "mergingList": [{"name": 1, "nonMergingList": [{"name": 1, "value": 1}]}],
            })
        ),
        json!({"mergingList": [
            {"name": 1, "other": "a", "nonMergingList": [{"name": 1, "value": 1}]},
            {"name": 2, "other": "b"},
        ]})
    );
}

#[test]
fn directives_in_a_new_list_are_interpreted() {
    assert_eq!(
        item(
            json!({"name": "hi"}),
            json!({"mergingList": [{"name": "hello"}, {"$patch": "delete", "name": "doesntexist"}]})
        ),
        json!({"name": "hi", "mergingList": [{"name": "hello"}]})
    );
}

#[test]
fn merge_keys_compare_numbers_by_value() {
    assert_eq!(
        item(
            json!({"mergingList": [{"name": 80, "value": "a"}]}),
            json!({"mergingList": [{"name": 80.0, "other": "b"}]})
        ),
        // The patch's value of the key is written, as any other field of the element.
        json!({"mergingList": [{"name": 80.0, "value": "a", "other": "b"}]})
    );
}

#[test]
fn merge_item_pointer_field() {
    assert_eq!(
        item(json!({"mergeItemPtr": [{"name": 1}, {"name": 2}]}), json!({"mergeItemPtr": [{"name": 2, "value": "x"}]})),
        json!({"mergeItemPtr": [{"name": 1}, {"name": 2, "value": "x"}]})
    );
}

// ---- retainKeys ----

#[test]
fn retain_keys_map_without_directive_merges() {
    assert_eq!(
        item(json!({"retainKeysMap": {"name": "foo"}}), json!({"retainKeysMap": {"value": "bar"}})),
        json!({"retainKeysMap": {"name": "foo", "value": "bar"}})
    );
    assert_eq!(
        item(json!({"retainKeysMap": {"name": "foo", "value": "a"}}), json!({"retainKeysMap": {"value": null}})),
        json!({"retainKeysMap": {"name": "foo"}})
    );
    assert_eq!(
        item(json!({"retainKeysMap": {"name": "foo", "value": "a"}}), json!({"retainKeysMap": {}})),
        json!({"retainKeysMap": {"name": "foo", "value": "a"}})
    );
}

#[test]
fn retain_keys_clears_other_fields() {
    assert_eq!(
        item(
            json!({"retainKeysMap": {"name": "foo", "value": "a", "other": "x"}}),
            json!({"retainKeysMap": {"$retainKeys": ["name", "simpleMap"], "simpleMap": {"k": "v"}}})
        ),
        json!({"retainKeysMap": {"name": "foo", "simpleMap": {"k": "v"}}})
    );
}

#[test]
fn retain_keys_allows_nulls_and_list_directives() {
    assert_eq!(
        item(
            json!({"retainKeysMap": {"name": "foo", "value": "a", "mergingIntList": [1, 2]}}),
            json!({"retainKeysMap": {
                "$retainKeys": ["name", "mergingIntList"],
                "value": null,
                "$setElementOrder/mergingIntList": [1],
                "$deleteFromPrimitiveList/mergingIntList": [2],
            }})
        ),
        json!({"retainKeysMap": {"name": "foo", "mergingIntList": [1]}})
    );
}

#[test]
fn retain_keys_in_merging_list_elements() {
    assert_eq!(
        item(
            json!({"retainKeysMergingList": [{"name": "bar"}, {"name": "foo", "value": "a", "other": "o"}]}),
            json!({"retainKeysMergingList": [{"$retainKeys": ["name", "other"], "name": "foo"}]})
        ),
        json!({"retainKeysMergingList": [{"name": "bar"}, {"name": "foo", "other": "o"}]})
    );
    assert_eq!(
        item(
            json!({"retainKeysMergingList": [{"name": "bar"}, {"name": "foo", "value": "a"}]}),
            json!({"retainKeysMergingList": [{"name": "foo", "value": "b"}]})
        ),
        json!({"retainKeysMergingList": [{"name": "bar"}, {"name": "foo", "value": "b"}]})
    );
}

#[test]
fn retain_keys_must_name_every_patched_field() {
    let err = item_err(
        json!({"retainKeysMap": {"name": "foo"}}),
        json!({"retainKeysMap": {"$retainKeys": ["name"], "value": "x"}}),
    );
    assert_eq!(err, SmpError::RetainKeysMismatch { path: ".retainKeysMap".into(), field: "value".into() });
    assert!(err.to_string().contains("$retainKeys"), "{err}");
}

#[test]
fn documents_must_be_objects() {
    let err = strategic_merge_patch(&json!({}), &json!([1]), "Pod").unwrap_err();
    assert_eq!(err, SmpError::NotAnObject { what: "patch", found: "a list" });
    let err = strategic_merge_patch(&json!("x"), &json!({}), "Pod").unwrap_err();
    assert_eq!(err.to_string(), "the original object must be a JSON object, not a string");
}
