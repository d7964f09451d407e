//! The decisions of the garbage collector's workers, as pure functions: what to do with a
//! dependent given the state of its owners (upstream's `attemptToDeleteItem`), and the patches
//! that remove owner references and finalizers.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::PropagationPolicy;
use serde_json::{json, Value};

use super::graph::{FOREGROUND, ORPHAN};

/// What a live lookup found about one owner of a dependent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerState {
    /// The owner exists and is not waiting for its dependents.
    Solid,
    /// No object with the reference's UID exists where the reference points.
    Dangling,
    /// The owner exists, being deleted in the foreground: it waits for its dependents.
    Waiting,
}

/// What to do with a dependent.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// It has an owner and nothing to clean up.
    Keep,
    /// It keeps a solid owner but loses its references to these (absent or waiting) owners.
    RemoveReferences(Vec<String>),
    /// Delete it in the foreground (an owner waits for it and it has dependents of its own);
    /// first make its own references non-blocking when a foreground cycle is possible.
    DeleteForeground { unblock_first: bool },
    /// Delete it, with this propagation.
    Delete(PropagationPolicy),
}

/// Decides the fate of a dependent from its owners' states (in the order of its references):
/// kept while one owner is solid (dropping the references to the others), else deleted, in the
/// foreground when an owner waits for it and it has dependents itself, else with the
/// propagation its own finalizers ask for (upstream's rules).
pub fn decide(
    owners: &[(String, OwnerState)],
    has_dependents: bool,
    dependent_deleting_dependents: bool,
    finalizers: &[String],
) -> Decision {
    let solid = owners.iter().any(|(_, s)| *s == OwnerState::Solid);
    let waiting = owners.iter().any(|(_, s)| *s == OwnerState::Waiting);
    if solid {
        let drop: Vec<String> =
            owners.iter().filter(|(_, s)| *s != OwnerState::Solid).map(|(u, _)| u.clone()).collect();
        return if drop.is_empty() { Decision::Keep } else { Decision::RemoveReferences(drop) };
    }
    if owners.is_empty() {
        return Decision::Keep;
    }
    if waiting && has_dependents {
        return Decision::DeleteForeground { unblock_first: dependent_deleting_dependents };
    }
    let policy = if finalizers.iter().any(|f| f == ORPHAN) {
        PropagationPolicy::Orphan
    } else if finalizers.iter().any(|f| f == FOREGROUND) {
        PropagationPolicy::Foreground
    } else {
        PropagationPolicy::Background
    };
    Decision::Delete(policy)
}

/// The owner references left once those with the given UIDs are removed; None if none of them
/// is there.
pub fn references_without(refs: &[OwnerReference], uids: &[String]) -> Option<Vec<OwnerReference>> {
    let kept: Vec<OwnerReference> = refs.iter().filter(|r| !uids.contains(&r.uid)).cloned().collect();
    (kept.len() != refs.len()).then_some(kept)
}

/// The owner references with `blockOwnerDeletion` turned off; None if none blocks.
pub fn references_unblocked(refs: &[OwnerReference]) -> Option<Vec<OwnerReference>> {
    if !refs.iter().any(|r| r.block_owner_deletion == Some(true)) {
        return None;
    }
    Some(
        refs.iter()
            .cloned()
            .map(|mut r| {
                if r.block_owner_deletion == Some(true) {
                    r.block_owner_deletion = Some(false);
                }
                r
            })
            .collect(),
    )
}

/// The finalizers without `name`; None if it is not there.
pub fn finalizers_without(finalizers: &[String], name: &str) -> Option<Vec<String>> {
    let kept: Vec<String> = finalizers.iter().filter(|f| *f != name).cloned().collect();
    (kept.len() != finalizers.len()).then_some(kept)
}

/// A JSON merge patch setting one metadata field, guarded by the resourceVersion it was computed
/// from (a concurrent change makes it a 409 Conflict, as upstream's patches).
pub fn metadata_patch(resource_version: Option<&str>, field: &str, value: Value) -> Value {
    let mut meta = serde_json::Map::new();
    if let Some(rv) = resource_version {
        meta.insert("resourceVersion".into(), json!(rv));
    }
    meta.insert(field.into(), value);
    json!({ "metadata": meta })
}

#[cfg(test)]
mod tests {
    use super::*;
    use OwnerState::*;

    fn owners(states: &[OwnerState]) -> Vec<(String, OwnerState)> {
        states.iter().enumerate().map(|(i, s)| (format!("u{i}"), *s)).collect()
    }

    #[test]
    fn a_solid_owner_keeps_the_dependent() {
        assert_eq!(decide(&owners(&[Solid]), false, false, &[]), Decision::Keep);
        assert_eq!(
            decide(&owners(&[Dangling, Solid, Waiting]), true, false, &[]),
            Decision::RemoveReferences(vec!["u0".into(), "u2".into()])
        );
    }

    #[test]
    fn without_solid_owners_the_dependent_is_deleted() {
        assert_eq!(decide(&owners(&[Dangling]), false, false, &[]), Decision::Delete(PropagationPolicy::Background));
        assert_eq!(
            decide(&owners(&[Dangling, Dangling]), true, false, &[]),
            Decision::Delete(PropagationPolicy::Background)
        );
        // An owner waiting in the foreground, and dependents of its own: foreground too.
        assert_eq!(decide(&owners(&[Waiting]), true, false, &[]), Decision::DeleteForeground { unblock_first: false });
        assert_eq!(decide(&owners(&[Waiting]), true, true, &[]), Decision::DeleteForeground { unblock_first: true });
        // Without dependents, background is enough.
        assert_eq!(decide(&owners(&[Waiting]), false, false, &[]), Decision::Delete(PropagationPolicy::Background));
        // The dependent's own finalizers choose the propagation.
        assert_eq!(
            decide(&owners(&[Dangling]), true, false, &["orphan".into()]),
            Decision::Delete(PropagationPolicy::Orphan)
        );
        assert_eq!(
            decide(&owners(&[Dangling]), true, false, &["example.com/x".into(), "foregroundDeletion".into()]),
            Decision::Delete(PropagationPolicy::Foreground)
        );
        assert_eq!(decide(&[], true, false, &[]), Decision::Keep);
    }

    fn r(uid: &str, block: Option<bool>) -> OwnerReference {
        OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: format!("n-{uid}"),
            uid: uid.into(),
            block_owner_deletion: block,
            controller: None,
        }
    }

    #[test]
    fn patches() {
        let refs = vec![r("a", Some(true)), r("b", None)];
        assert_eq!(references_without(&refs, &["a".into()]), Some(vec![r("b", None)]));
        assert_eq!(references_without(&refs, &["z".into()]), None);
        assert_eq!(references_without(&refs, &["a".into(), "b".into()]), Some(vec![]));
        assert_eq!(references_unblocked(&refs), Some(vec![r("a", Some(false)), r("b", None)]));
        assert_eq!(references_unblocked(&[r("b", Some(false))]), None);
        let f = vec!["orphan".to_string(), "example.com/x".to_string()];
        assert_eq!(finalizers_without(&f, "orphan"), Some(vec!["example.com/x".to_string()]));
        assert_eq!(finalizers_without(&f, "foregroundDeletion"), None);
        assert_eq!(
            metadata_patch(Some("42"), "finalizers", json!([])),
            json!({"metadata": {"resourceVersion": "42", "finalizers": []}})
        );
        assert_eq!(metadata_patch(None, "ownerReferences", json!([])), json!({"metadata": {"ownerReferences": []}}));
    }
}
