//! Tests of strategic merge patch on malformed patches, and on random documents: errors, never
//! panics.

use serde_json::{json, Value};

use super::tests_patch::{item_err, MERGE_ITEM};
use super::{apply_merge, apply_merge_with, strategic_merge_patch, strategic_merge_patch_with, SmpError};

// ---- malformed patches ----

#[test]
fn set_element_order_must_match_the_patch_order() {
    let err = item_err(
        json!({"mergingList": [{"name": 1}, {"name": 3}, {"name": 2}]}),
        json!({
            "$setElementOrder/mergingList": [{"name": 1}, {"name": 2}, {"name": 3}],
            "mergingList": [{"name": 3, "value": 3}, {"name": 1, "value": 1}],
        }),
    );
    assert!(matches!(err, SmpError::SetElementOrderMismatch { ref field, .. } if field == "mergingList"), "{err:?}");
    let err = item_err(
        json!({"mergingIntList": [1, 3, 2]}),
        json!({"$setElementOrder/mergingIntList": [1, 2, 3], "mergingIntList": [3, 1]}),
    );
    assert!(matches!(err, SmpError::SetElementOrderMismatch { .. }), "{err:?}");
}

#[test]
fn missing_merge_key_is_an_error() {
    let err = item_err(json!({"mergingList": [{"name": 1, "value": "a"}]}), json!({"mergingList": [{"value": "b"}]}));
    assert!(
        matches!(err, SmpError::MissingMergeKey { ref path, ref key, .. } if path == ".mergingList" && key == "name"),
        "{err:?}"
    );
    let err =
        item_err(json!({"mergingList": [{"name": 1}]}), json!({"mergingList": [{"$patch": "delete", "value": "b"}]}));
    assert!(matches!(err, SmpError::MissingMergeKey { .. }), "{err:?}");
    let err =
        item_err(json!({}), json!({"$setElementOrder/mergingList": [{"value": 1}], "mergingList": [{"name": 1}]}));
    assert!(matches!(err, SmpError::MissingMergeKey { .. }), "{err:?}");
}

#[test]
fn invalid_patch_directive_values() {
    for bad in [json!("remove"), json!(1), json!(null)] {
        let err = item_err(json!({"simpleMap": {"a": 1}}), json!({"simpleMap": {"$patch": bad}}));
        assert!(matches!(err, SmpError::InvalidPatchDirective { ref path, .. } if path == ".simpleMap"), "{err:?}");
    }
    let err =
        item_err(json!({"mergingList": [{"name": 1}]}), json!({"mergingList": [{"name": 1, "$patch": "deleted"}]}));
    assert!(matches!(err, SmpError::InvalidPatchDirective { .. }), "{err:?}");
    assert!(err.to_string().contains("\"deleted\""), "{err}");
    let err = item_err(json!({}), json!({"$patch": "nope"}));
    assert_eq!(err.to_string(), ".: invalid $patch directive \"nope\": expected \"replace\", \"delete\" or \"merge\"");
}

#[test]
fn merge_directive_in_a_list_is_an_error() {
    let err = item_err(json!({"mergingList": [{"name": 1}]}), json!({"mergingList": [{"$patch": "merge"}]}));
    assert!(matches!(err, SmpError::MergeDirectiveInList { .. }), "{err:?}");
}

#[test]
fn directives_of_the_wrong_type() {
    for patch in [
        json!({"$retainKeys": "name"}),
        json!({"$setElementOrder/mergingList": {"name": 1}}),
        json!({"$deleteFromPrimitiveList/mergingIntList": 3}),
    ] {
        let err = item_err(json!({"mergingIntList": [3]}), patch.clone());
        assert!(matches!(err, SmpError::InvalidDirectiveValue { .. }), "{patch}: {err:?}");
    }
}

#[test]
fn malformed_directive_keys() {
    for key in [
        "$setElementOrder",
        "$setElementOrder/",
        "$setElementOrderX/mergingList",
        "$deleteFromPrimitiveList",
        "$deleteFromPrimitiveListmergingIntList",
    ] {
        let mut patch = serde_json::Map::new();
        patch.insert(key.to_string(), json!([1]));
        let err = item_err(json!({"mergingIntList": [1]}), Value::Object(patch));
        assert!(matches!(err, SmpError::MalformedDirective { key: ref k, .. } if k == key), "{key}: {err:?}");
    }
}

#[test]
fn bad_list_shapes() {
    let err = item_err(json!({"mergingList": [{"name": 1}]}), json!({"mergingList": ["x"]}));
    assert!(matches!(err, SmpError::MixedList { .. }), "{err:?}");
    let err = item_err(json!({"mergingIntList": [[1]]}), json!({"mergingIntList": [[2]]}));
    assert!(matches!(err, SmpError::ListOfLists { .. }), "{err:?}");
    let err = item_err(json!({"mergingIntList": [1]}), json!({"mergingIntList": [{"name": 1}]}));
    assert!(matches!(err, SmpError::MixedList { .. }), "{err:?}");
    let err = item_err(json!({}), json!({"mergingIntList": [{"name": 1}]}));
    assert!(matches!(err, SmpError::NoMergeKey { .. }), "{err:?}");
}

// ---- robustness ----

/// A tiny deterministic generator of JSON documents full of directives and merge keys.
struct Gen(u64);

impl Gen {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }

    fn key(&mut self) -> String {
        const KEYS: &[&str] = &[
            "name",
            "value",
            "mergingList",
            "nonMergingList",
            "mergingIntList",
            "retainKeysMap",
            "$patch",
            "$retainKeys",
            "$setElementOrder/mergingList",
            "$setElementOrder/mergingIntList",
            "$deleteFromPrimitiveList/mergingIntList",
            "$setElementOrder",
            "spec",
            "template",
            "containers",
            "ports",
            "containerPort",
            "$setElementOrder/containers",
            "env",
            "finalizers",
            "metadata",
            "uid",
            "type",
        ];
        KEYS[self.next(KEYS.len() as u64) as usize].to_string()
    }

    fn value(&mut self, depth: u32) -> Value {
        let pick = if depth == 0 { self.next(5) } else { self.next(8) };
        match pick {
            0 => Value::Null,
            1 => json!(self.next(4)),
            2 => json!(["replace", "delete", "merge", "x", "name"][self.next(5) as usize]),
            3 => json!(self.next(2) == 0),
            4 => json!({"name": self.next(3)}),
            5 | 6 => {
                let mut m = serde_json::Map::new();
                for _ in 0..self.next(4) {
                    m.insert(self.key(), self.value(depth - 1));
                }
                Value::Object(m)
            }
            _ => Value::Array((0..self.next(4)).map(|_| self.value(depth - 1)).collect()),
        }
    }
}

#[test]
fn random_documents_never_panic() {
    let mut g = Gen(7);
    let mut merged = 0;
    for _ in 0..20000 {
        let object = |g: &mut Gen| {
            let mut m = serde_json::Map::new();
            for _ in 0..=g.next(4) {
                m.insert(g.key(), g.value(4));
            }
            Value::Object(m)
        };
        let original = object(&mut g);
        let patch = object(&mut g);
        merged += usize::from(strategic_merge_patch_with(&original, &patch, Some(&MERGE_ITEM)).is_ok());
        merged += usize::from(strategic_merge_patch(&original, &patch, "Deployment").is_ok());
        merged += usize::from(apply_merge(&original, &patch, "Deployment").is_ok());
        merged += usize::from(apply_merge_with(&original, &patch, Some(&MERGE_ITEM)).is_ok());
    }
    // Most documents are fine; the point is that the others fail with an error, not a panic.
    assert!(merged > 20000, "{merged}");
}
